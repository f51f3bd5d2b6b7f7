"""Admission (size, decode, key, authority), replay headers, and what `rejections` keeps."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import pytest

from streams.adapters.avro import default_codec
from streams.adapters.decode import (
    METER_INSTALLED,
    METER_REMOVED,
    PERIOD_CLOSE_REQUESTED,
    READING_SUBMITTED,
    PeriodCloseRequested,
)
from streams.adapters.signing import REPLAY_HEADER, Headers, is_authentic_replay, replay_signature
from streams.domain.calendar import Period
from streams.domain.model import MeterInstalled, MeterRemoved, Reason, Submission
from streams.errors import ConfigError
from streams.pipeline.admission import Refused, Source, admit
from streams.pipeline.sink import MAX_DETAIL_CHARS, OVERSIZED_PAYLOAD_KEPT, undecodable_row
from streams.settings import DEFAULT_MAX_MESSAGE_BYTES, Settings

KEY = b"billing-control-key"
ACCOUNT = "0123456789"
NOW = dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC)

SUBMISSION: dict[str, Any] = {
    "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "account_id": ACCOUNT,
    "channel": "viber",
    "sender_id": "u-77",
    "submitted_at": dt.datetime(2023, 5, 30, 9, 15, tzinfo=dt.UTC),
    "readings": [{"register": "1.8.2", "value": 12345}],
}
INSTALLED: dict[str, Any] = {
    "account_id": ACCOUNT,
    "meter_id": "GAMA-100200",
    "zones": ["day", "night"],
    "digits": 6,
    "initial": {"day": 12000, "night": 6500},
    "installed_on": dt.date(2021, 3, 15),
    "dso": "dtek-kem",
}
REMOVED: dict[str, Any] = {
    "account_id": ACCOUNT,
    "meter_id": "GAMA-100200",
    "final": {"day": 15321, "night": 8012},
    "removed_on": dt.date(2023, 7, 12),
}


def encode(name: str, datum: dict[str, Any]) -> bytes:
    return default_codec().encode(name, datum)


def close_request(signature: str | None) -> bytes:
    request = PeriodCloseRequested(Period(2023, 5), NOW, "billing")
    return encode(
        PERIOD_CLOSE_REQUESTED,
        {
            "period": "2023-05",
            "requested_at": NOW,
            "requested_by": "billing",
            "signature": request.sign(KEY) if signature is None else signature,
        },
    )


def run(payload: bytes, key: bytes | None = ACCOUNT.encode(), source: Source = Source.READINGS):
    return admit(payload, key, source, control_key=KEY)


def test_a_bot_submission_on_the_readings_topic_is_admitted() -> None:
    assert isinstance(run(encode(READING_SUBMITTED, SUBMISSION)), Submission)


def test_master_data_is_obeyed_from_the_registry_topic_only() -> None:
    for name, datum, kind in (
        (METER_INSTALLED, INSTALLED, MeterInstalled),
        (METER_REMOVED, REMOVED, MeterRemoved),
    ):
        payload = encode(name, datum)
        assert isinstance(run(payload, source=Source.REGISTRY), kind)
        refused = run(payload, source=Source.READINGS)
        assert isinstance(refused, Refused) and refused.reason == Reason.UNAUTHORIZED


@pytest.mark.parametrize(
    ("signature", "source", "admitted"),
    [
        (None, Source.READINGS, True),
        ("", Source.READINGS, False),
        ("00" * 32, Source.READINGS, False),
        (None, Source.REGISTRY, False),  # billing never closes through the registry topic
    ],
    ids=["signed", "unsigned", "forged", "signed-on-registry"],
)
def test_only_a_signed_close_on_the_readings_topic_is_obeyed(
    signature: str | None, source: Source, admitted: bool
) -> None:
    outcome = run(close_request(signature), key=None, source=source)
    if admitted:
        assert isinstance(outcome, PeriodCloseRequested)
    else:
        assert outcome == Refused(
            Reason.UNAUTHORIZED, "a period close without a valid billing signature"
        )


@pytest.mark.parametrize(
    "key", [None, b"", b"9999999999", ACCOUNT.encode() + b" ", b"\xff\xfe"], ids=repr
)
def test_an_event_keyed_by_anything_but_its_account_is_malformed(key: bytes | None) -> None:
    for payload, source in (
        (encode(READING_SUBMITTED, SUBMISSION), Source.READINGS),
        (encode(METER_INSTALLED, INSTALLED), Source.REGISTRY),
    ):
        assert run(payload, key=key, source=source) == Refused(
            Reason.MALFORMED, "message key is not its account_id"
        )


def test_an_oversized_message_is_refused_before_it_is_decoded() -> None:
    valid = encode(READING_SUBMITTED, SUBMISSION)
    at_limit = admit(
        valid, ACCOUNT.encode(), Source.READINGS, control_key=KEY, max_bytes=len(valid)
    )
    assert isinstance(at_limit, Submission)
    refused = admit(
        valid, ACCOUNT.encode(), Source.READINGS, control_key=KEY, max_bytes=len(valid) - 1
    )
    assert isinstance(refused, Refused) and refused.reason == Reason.MALFORMED
    limit = len(valid) - 1
    assert refused.detail == f"message of {len(valid)} bytes is over the {limit}-byte limit"


def test_the_largest_submission_within_the_string_limits_fits_the_message_limit() -> None:
    """The limits agree: a bot that keeps to every string limit is never refused for size."""
    widest = "\U0001f600"  # four bytes of UTF-8 per character
    largest = {
        **SUBMISSION,
        "event_id": "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "account_id": widest * 64,
        "meter_id": widest * 64,
        "sender_id": widest * 64,
        "readings": [
            {"zone": zone, "register": widest * 16, "value": -(2**63), "raw_text": widest * 1000}
            for zone in ("peak", "half_peak", "night")
        ],
    }
    payload = encode(READING_SUBMITTED, largest)
    assert len(payload) < 14_000 < DEFAULT_MAX_MESSAGE_BYTES
    outcome = run(payload, key=(widest * 64).encode())
    assert isinstance(outcome, Submission)


@pytest.mark.parametrize("field", ["account_id", "meter_id", "dso"])
def test_master_data_ids_have_the_submission_id_limit(field: str) -> None:
    for value, admitted in (("x" * 64, True), ("x" * 65, False), (" ", False)):
        datum = {**INSTALLED, field: value}
        key = datum["account_id"].encode()
        outcome = run(encode(METER_INSTALLED, datum), key=key, source=Source.REGISTRY)
        assert isinstance(outcome, MeterInstalled) is admitted, (field, value)
        if not admitted:
            assert isinstance(outcome, Refused) and outcome.reason == Reason.MALFORMED


def test_rejections_keep_a_bounded_payload_and_detail() -> None:
    within = b"\xc3\x01" + bytes(range(256)) * 8
    row = undecodable_row(within, "d" * 10_000, NOW, max_payload=len(within))
    assert row[12] == within  # kept whole: it may be replayed
    assert len(row[7]) == MAX_DETAIL_CHARS and row[7].endswith("...")
    oversized = within + b"!"
    row = undecodable_row(oversized, "too big", NOW, max_payload=len(within))
    assert row[12] == oversized[:OVERSIZED_PAYLOAD_KEPT]
    # The key is the whole payload's hash: a redelivery replaces its twin, a different
    # message with the same head does not.
    assert row[0] == f"sha256:{hashlib.sha256(oversized).hexdigest()}"


def test_the_message_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    monkeypatch.setenv("POKAZY_MAX_MESSAGE_BYTES", "65536")
    assert Settings.from_env().max_message_bytes == 65536
    monkeypatch.setenv("POKAZY_MAX_MESSAGE_BYTES", "10")
    with pytest.raises(ConfigError, match="POKAZY_MAX_MESSAGE_BYTES"):
        Settings.from_env()


# --- replay headers (`rejections replay`) ------------------------------------------------------

PAYLOAD = encode(READING_SUBMITTED, SUBMISSION)
SIGNED = replay_signature(PAYLOAD, KEY)


def test_the_replay_header_is_the_payloads_hex_hmac_sha256_with_the_control_key() -> None:
    # The contract another tool must follow to replay a message: the MAC covers a fixed prefix,
    # so a signature made for a period close never verifies as a replay, and the reverse.
    expected = hmac.new(KEY, b"pokazy-replay\0" + PAYLOAD, hashlib.sha256).hexdigest().encode()
    assert replay_signature(PAYLOAD, KEY) == expected
    assert replay_signature(PAYLOAD, KEY) != hmac.new(KEY, PAYLOAD, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        [(REPLAY_HEADER, SIGNED)],
        [(REPLAY_HEADER.encode(), SIGNED)],
        {REPLAY_HEADER: SIGNED},
        [("traceparent", b"00-ab-cd-01"), (REPLAY_HEADER, b"1"), (REPLAY_HEADER, SIGNED)],
    ],
    ids=["pairs", "bytes-name", "mapping", "among-others"],
)
def test_a_replay_signed_with_the_control_key_is_authentic(headers: Headers) -> None:
    assert is_authentic_replay(headers, PAYLOAD, KEY)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        {},
        [("traceparent", b"00-ab-cd-01")],
        [(REPLAY_HEADER, b"1")],  # what the header said before it was signed
        [(REPLAY_HEADER, b"")],
        [(REPLAY_HEADER, None)],
        [(REPLAY_HEADER, replay_signature(PAYLOAD, b"a-bot's-guess"))],
        [(REPLAY_HEADER, replay_signature(PAYLOAD + b" ", KEY))],  # copied from another message
        [(REPLAY_HEADER, SIGNED.upper())],
        [("Pokazy-Replay", SIGNED)],
        [(REPLAY_HEADER, SIGNED.decode())],  # a str value, not bytes
        [(b"\xff\xfe", SIGNED), (REPLAY_HEADER, b"x" * 1_000_000)],  # not UTF-8; huge
        [(REPLAY_HEADER, b"0" * 64)] * 1000,  # many duplicates, none of them right
    ],
    ids=repr,
)
def test_an_unverified_replay_header_is_ignored(headers: Headers) -> None:
    assert not is_authentic_replay(headers, PAYLOAD, KEY)
