"""A hostile, faulty world on the real broker: every kind of bad input, interleaved with honest
readings of the same accounts (so on the same partitions), through one worker.

Every bad message must end in `rejections` with its reason code, and nothing else may change:
the honest readings and the billing of the month are exactly the domain core's reference run
over the honest input alone, every partition is consumed to its end (`wait_idle`), and the
worker that started is the one still running, healthy, with no INTERNAL_ERROR.
"""

from __future__ import annotations

import copy
import io
import json
import random
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer
from kafka import KafkaProducer

from streams.adapters.avro import MAGIC, default_codec
from streams.adapters.decode import (
    PERIOD_CLOSE_REQUESTED,
    READING_SUBMITTED,
    PeriodCloseRequested,
)
from streams.domain.calendar import Period
from streams.domain.model import Reason
from streams.pipeline.sink import OVERSIZED_PAYLOAD_KEPT
from streams.sdk.producer import BillingProducer, encode_registry
from tests.builders import installed_json, removed_json
from tests.builders import submission_json as submission
from tests.integration.conftest import ROOT, Pipeline
from tests.integration.expected import (
    BILLING_SQL,
    READINGS_SQL,
    ReferenceRun,
    actual_billing,
    actual_readings,
)

PERIOD = Period(2023, 5)
TWO, SINGLE = "0000000001", "0000000002"
# Ids that would break a query or a shell if anything concatenated them: stored verbatim.
SQL_ACCOUNT = "0'); DROP TABLE readings_log; --"
SHELL_METER = "$(touch /tmp/pwned)`id`;|&"
SQL_UNKNOWN = "x' OR '1'='1' UNION SELECT * FROM system.users --"
REGISTRY: list[dict[str, Any]] = [
    installed_json(TWO, "GAMA-1", {"day": 12000, "night": 6500}, "2021-03-15"),
    installed_json(SINGLE, "NIK-2", {"total": 40000}, "2022-01-10", digits=5),
    installed_json(SQL_ACCOUNT, SHELL_METER, {"total": 100}, "2022-02-01"),
]

CODEC = default_codec()


def avro(obj: dict[str, Any]) -> bytes:
    """The bytes the SDK would send, without the SDK's own checks (a front end that skips them)."""
    return CODEC.encode(READING_SUBMITTED, CODEC.from_json(READING_SUBMITTED, obj))


def impostor(value_type: str, value: Any) -> bytes:
    """A ReadingSubmitted whose value was written as another type under pokazy's fingerprint."""
    schema = copy.deepcopy(json.loads((ROOT / "schemas" / f"{READING_SUBMITTED}.avsc").read_text()))
    for item in schema["fields"][6]["type"]["items"]["fields"]:
        if item["name"] == "value":
            item["type"] = value_type
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(schema), {
        "event_id": str(uuid.uuid4()), "account_id": TWO, "meter_id": None, "channel": "viber",
        "sender_id": "u-77", "submitted_at": datetime(2023, 5, 30, 9, tzinfo=UTC),
        "readings": [{"zone": "day", "register": None, "value": value, "raw_text": None}],
    })  # fmt: skip
    return MAGIC + CODEC.fingerprint(READING_SUBMITTED) + body.getvalue()


def close_request(signature: str) -> bytes:
    at = datetime(2023, 6, 4, tzinfo=UTC)
    datum = {"period": str(PERIOD), "requested_at": at, "requested_by": "a bot"}
    return CODEC.encode(PERIOD_CLOSE_REQUESTED, {**datum, "signature": signature})


@dataclass
class Script:
    """The messages in publish order, and what each must become."""

    messages: list[tuple[bytes | None, bytes, int | None]] = field(default_factory=list)
    honest: list[dict[str, Any]] = field(default_factory=list)  # judged by the core
    judged: dict[str, str] = field(default_factory=dict)  # event_id -> reason, decodable
    refused: dict[str, str] = field(default_factory=dict)  # payload hex -> reason, unjudgeable

    def valid(self, obj: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        """A decodable submission keyed by its account: the core judges it (maybe rejecting)."""
        self.messages.append((obj["account_id"].encode(), avro(obj), None))
        self.honest.append(obj)
        if reason is not None:
            self.judged[obj["event_id"]] = reason
        return obj

    def bad(
        self, key: bytes | None, payload: bytes, reason: str, partition: int | None = None
    ) -> None:
        """A message the worker must refuse before the rules: one row keyed by its payload."""
        self.messages.append((key, payload, partition))
        self.refused[payload.hex()] = reason


def hostile_script() -> Script:
    rng = random.Random(7)
    s = Script()
    k1, k2 = TWO.encode(), SINGLE.encode()
    window = "2023-05-30T09:15:00Z"

    # Honest readings come first and last on each account, and between the bad messages.
    s.valid(submission(TWO, "2023-05-15T10:00:00Z", [{"zone": "day", "value": 12400}]))
    s.valid(submission(SINGLE, "2023-05-16T10:00:00Z", [{"zone": "total", "value": 40100}]))

    # A bot cannot close a period, change master data or write outside its account.
    s.bad(None, close_request(""), Reason.UNAUTHORIZED, partition=0)
    s.bad(None, close_request(""), Reason.UNAUTHORIZED, partition=1)  # the same bytes: one row
    forged = PeriodCloseRequested(PERIOD, datetime(2023, 6, 4, tzinfo=UTC), "a bot")
    s.bad(None, close_request(forged.sign(b"a bot's guess at the key")), Reason.UNAUTHORIZED, 0)
    for obj in (
        installed_json(TWO, "EVIL-1", {"day": 5, "night": 5}, "2023-05-20"),
        removed_json(SINGLE, "NIK-2", {"total": 40100}, "2023-05-20"),
    ):
        s.bad(obj["account_id"].encode(), encode_registry(obj)[1], Reason.UNAUTHORIZED)
    elsewhere = submission(TWO, window, [{"zone": "day", "value": 99999}])
    s.bad(k2, avro(elsewhere), "MALFORMED")  # account 1's reading keyed (routed) as account 2's
    s.bad(None, avro(submission(TWO, window, [{"zone": "day", "value": 1}])), "MALFORMED")

    # Bytes that are not a pokazy record.
    s.bad(k1, rng.randbytes(200), "MALFORMED")
    s.bad(k1, b"", "MALFORMED")
    truncated = avro(submission(TWO, window, [{"zone": "day", "value": 13000}]))
    s.bad(k1, truncated[: len(truncated) // 2], "MALFORMED")
    s.bad(k2, MAGIC + rng.randbytes(8) + truncated[10:], "MALFORMED")  # unknown fingerprint
    json_line = orjson.dumps(submission(SINGLE, window, [{"zone": "total", "value": 40200}]))
    s.bad(k2, json_line, "MALFORMED")
    s.bad(k2, b'{"account_id":"0000000002","readings":[{"value":1e30},{"value":NaN}]}', "MALFORMED")
    for value_type, value in (("double", 1e30), ("double", float("nan")), ("string", "-1")):
        s.bad(k1, impostor(value_type, value), "MALFORMED")
    s.bad(k1, "показ 12345 день".encode("cp1251"), "MALFORMED")
    not_utf8 = avro(submission(TWO, window, [{"zone": "day", "value": 13000, "raw_text": "ab"}]))
    assert not_utf8.count(b"\x04ab") == 1
    s.bad(k1, not_utf8.replace(b"\x04ab", b"\x04\xff\xfe"), "MALFORMED")  # invalid UTF-8 text
    s.bad(b"\xff\xfe", avro(submission(TWO, window, [{"zone": "day", "value": 2}])), "MALFORMED")
    oversized = avro(submission(TWO, window, [{"zone": "day", "value": 3, "raw_text": "ї" * 9000}]))
    s.bad(k1, oversized, "MALFORMED")  # 18 KB: over the 16 KiB message limit
    s.bad(k2, MAGIC + CODEC.fingerprint(READING_SUBMITTED) + rng.randbytes(200_000), "MALFORMED")

    # Decodable, but beyond the limits or the rules: judged, one row per reading (or submission).
    day = [{"zone": "day", "value": 13000}]
    thousand = [{"zone": "total", "value": 40000 + n} for n in range(1000)]
    judged: list[tuple[str, str, list[dict[str, Any]], dict[str, str], str]] = [
        (TWO, window, day, {"sender_id": "u" * 65}, "MALFORMED"),
        (TWO, window, [{"register": "1." * 5000, "value": 13000}], {}, "MALFORMED"),
        (TWO, window, [{"zone": "day", "value": 1, "raw_text": "д" * 1001}], {}, "MALFORMED"),
        (SINGLE, window, thousand, {}, "MALFORMED"),
        (TWO, "0001-01-01T00:00:00Z", day, {}, "MALFORMED"),
        (TWO, "9999-12-31T23:59:59.999Z", day, {}, "MALFORMED"),
        (TWO, window, [{"zone": "day", "value": -1}], {}, "INVALID_VALUE"),
        (SINGLE, window, [{"zone": "total", "value": 2**63 - 1}], {}, "TOO_MANY_DIGITS"),
        (SINGLE, window, [{"zone": "total", "value": -(2**63)}], {}, "INVALID_VALUE"),
        (TWO, window, [{"register": "T21';--$(id)", "value": 7000}], {}, "UNKNOWN_REGISTER"),
        (
            SQL_UNKNOWN,
            window,
            [{"zone": "total", "value": 1}],
            {"sender_id": "'; DROP TABLE x; --"},
            "UNKNOWN_ACCOUNT",
        ),
        (SQL_ACCOUNT, window, [{"zone": "total", "value": 10**6}], {}, "TOO_MANY_DIGITS"),
    ]
    for account, at, readings, fields, reason in judged:
        s.valid(submission(account, at, readings, **fields), reason)

    # Honest readings after all of it, on every account, and an impostor reusing an event id.
    both = [{"register": "1.8.2", "value": 12900}, {"register": "T21", "value": 6800}]
    honest = s.valid(submission(TWO, window, both))
    s.valid(
        {**honest, "submitted_at": "2023-06-01T08:00:00Z", "channel": "telegram",
         "readings": [{"zone": "day", "value": 999999}]}
    )  # fmt: skip
    s.valid(submission(SINGLE, "2023-06-01T07:00:00Z", [{"zone": "total", "value": 40300}]))
    shell = {"meter_id": SHELL_METER, "sender_id": "$(reboot)"}
    s.valid(submission(SQL_ACCOUNT, window, [{"zone": "total", "value": 450}], **shell))
    return s


def publish(pipeline: Pipeline, messages: list[tuple[bytes | None, bytes, int | None]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=pipeline.settings.kafka_bootstrap.split(","),
        acks="all",
        max_request_size=1_048_576,
        **pipeline.settings.kafka_client_options(),
    )
    try:
        for key, value, partition in messages:
            producer.send(
                pipeline.settings.topic("readings"), key=key, value=value, partition=partition
            )
        producer.flush()
    finally:
        producer.close()


def test_hostile_input_ends_in_rejections_and_changes_nothing_else(pipeline: Pipeline) -> None:
    worker = pipeline.worker()
    assert worker.process is not None
    pid = worker.process.pid
    with BillingProducer(pipeline.settings) as producer:
        for event in REGISTRY:
            producer.publish_registry(event, wait=False)
    pipeline.wait_idle()
    script = hostile_script()
    publish(pipeline, script.messages)
    pipeline.wait_idle()  # every partition consumed to its end: nothing stalled
    with BillingProducer(pipeline.settings) as producer:
        producer.request_period_close(PERIOD, "billing")
    pipeline.wait_idle()

    expected = ReferenceRun()
    expected.registry(REGISTRY)
    expected.submit(script.honest)
    expected.close(PERIOD)

    readings = pipeline.query(READINGS_SQL)
    assert actual_readings(readings) == expected.readings
    assert len(readings) == len(expected.readings) == 6
    assert actual_billing(pipeline.query(BILLING_SQL)) == expected.billing

    rows = pipeline.query(
        "SELECT event_id, account_id, register, reason, detail, hex(payload) AS payload_hex, "
        "length(payload) AS size, submitted_at FROM {db}.rejections"
    )
    judged = [r for r in rows if r["event_id"]]
    assert {(r["event_id"], r["reason"]) for r in judged} == expected.rejections
    assert len(judged) == expected.rejection_rows
    assert {e: r for e, r in script.judged.items()} == {r["event_id"]: r["reason"] for r in judged}
    refused = [r for r in rows if not r["event_id"]]
    kept = {r["payload_hex"].lower(): r["reason"] for r in refused}
    assert len(refused) == len(script.refused)
    assert kept == {_kept(p): reason for p, reason in script.refused.items()}
    for row in refused:
        assert row["size"] <= pipeline.settings.max_message_bytes
    assert any(
        r["size"] == OVERSIZED_PAYLOAD_KEPT and "over the 16384-byte limit" in r["detail"]
        for r in refused
    )
    years = {r["event_id"]: r["submitted_at"] for r in judged}
    assert sum(1 for at in years.values() if at is None) == 2  # years 1 and 9999: no date

    # Metacharacters are data: stored verbatim, nothing dropped or run.
    both = "SELECT account_id FROM {db}.readings UNION ALL SELECT account_id FROM {db}.rejections"
    accounts = {r["account_id"] for r in pipeline.query(both)}
    assert {SQL_ACCOUNT, SQL_UNKNOWN} <= accounts
    meters = pipeline.query(
        "SELECT meter_id, channel FROM {db}.readings WHERE value IN (450, 12900)"
    )
    assert sorted((r["meter_id"], r["channel"]) for r in meters) == sorted(
        [("GAMA-1", "viber"), (SHELL_METER, "viber")]  # the impostor of 12900 changed nothing
    )
    assert "T21';--$(id)" in {r["register"] for r in judged}
    tables = pipeline.query("SELECT name FROM system.tables WHERE database = '{db}'")
    assert "readings_log" in {t["name"] for t in tables}

    assert worker.process.poll() is None and worker.process.pid == pid
    health = orjson.loads(_get(pipeline, "/health"))
    assert health["status"] == "ok" and health["lag"] == 0
    metrics = _get(pipeline, "/metrics").decode()
    assert 'pokazy_messages_total{kind="unauthorized"} 5.0' in metrics


def _kept(payload_hex: str) -> str:
    """The payload as `rejections` keeps it (an oversized one cut to its head)."""
    payload = bytes.fromhex(payload_hex)
    if len(payload) > 16_384:
        payload = payload[:OVERSIZED_PAYLOAD_KEPT]
    return payload.hex()


def _get(pipeline: Pipeline, path: str) -> bytes:
    url = f"http://127.0.0.1:{pipeline.settings.web_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())
