"""The wire contract held by another implementation: Apache Avro's own Java library.

`examples/java-bot/` is a bot front end in Java (Avro's `BinaryMessageEncoder` and
`BinaryMessageDecoder`, the Kafka Java client). Here it is built with Maven and run against the
test broker and a real worker, next to the Python SDK publishing the same submissions for a
mirror set of accounts: the analyst-visible rows and the replies of the two must be the same,
field by field, but for the ids that tell the two sets apart and the times of processing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.avro import default_codec
from streams.adapters.decode import READING_SUBMITTED, SUBMISSION_OUTCOME
from streams.sdk.producer import BillingProducer
from tests.commands import HANG_GUARD, ROOT
from tests.integration.conftest import Pipeline

EXAMPLE = ROOT / "examples" / "java-bot"
JAR = EXAMPLE / "target" / "pokazy-java-bot.jar"
SCHEMAS = ROOT / "schemas"
OLDER_SUBMISSION = SCHEMAS / "history" / "pokazy.ReadingSubmitted" / "v1.avsc"

# Billing's master data, with account ids as labels ("A1"): each side gets its own accounts.
REGISTRY = [
    {"type": "MeterInstalled", "account_id": "A1", "meter_id": "GAMA-1", "zones": ["day", "night"],
     "digits": 6, "initial": {"day": 12000, "night": 6500}, "installed_on": "2021-03-15"},
    {"type": "MeterInstalled", "account_id": "A2", "meter_id": "NIK-2", "zones": ["total"],
     "digits": 5, "initial": {"total": 40000}, "installed_on": "2022-01-10", "dso": "dtek-kem"},
    {"type": "MeterInstalled", "account_id": "A3", "meter_id": "GAMA-3", "zones": ["day", "night"],
     "digits": 6, "initial": {"day": 5000, "night": 3000}, "installed_on": "2021-03-15"},
]  # fmt: skip

# What customers send, in order, with event ids as labels ("e2" twice: a bot's retry).
SUBMISSIONS = [
    {"event_id": "e1", "account_id": "A1", "channel": "viber", "sender_id": "u-77",
     "submitted_at": "2023-05-30T09:15:00.250Z",
     "readings": [{"register": "1.8.2", "value": 12345, "raw_text": "день 12345"},
                  {"register": "T21", "value": 6789}]},
    {"event_id": "e2", "account_id": "A2", "channel": "telegram", "sender_id": "тг-42",
     "submitted_at": "2023-05-15T10:00:00+03:00", "readings": [{"zone": "total", "value": 40100}]},
    {"event_id": "e2", "account_id": "A2", "channel": "telegram", "sender_id": "тг-42",
     "submitted_at": "2023-05-15T10:00:00+03:00", "readings": [{"zone": "total", "value": 40100}]},
    {"event_id": "e3", "account_id": "A2", "channel": "web", "sender_id": "w-1",
     "submitted_at": "2023-05-31T10:00:00Z",
     "readings": [{"zone": "total", "value": 39000, "raw_text": "39 000 — як на фото"}]},
    {"event_id": "e4", "account_id": "A2", "channel": "viber", "sender_id": "u-78",
     "meter_id": "NIK-2", "submitted_at": "2023-06-01T05:00:00Z",
     "readings": [{"zone": "total", "register": "1.8.0", "value": 40100, "raw_text": "40100"}]},
    {"event_id": "e5", "account_id": "A3", "channel": "viber", "sender_id": "u-79",
     "submitted_at": "2023-05-30T19:00:00Z",
     "readings": [{"register": "1.8.2", "value": 3100}, {"register": "1.8.1", "value": 5100}]},
    {"event_id": "e6", "account_id": "NOPE", "channel": "other", "sender_id": "u-80",
     "submitted_at": "2023-05-30T19:00:00Z", "readings": [{"zone": "total", "value": 1}]},
    {"event_id": "e7", "account_id": "A1", "meter_id": "OTHER-1", "channel": "viber",
     "sender_id": "u-77", "submitted_at": "2023-05-31T07:00:00Z",
     "readings": [{"zone": "day", "value": 12350}]},
    {"event_id": "e8", "account_id": "A2", "channel": "viber", "sender_id": "u-78",
     "submitted_at": "2023-06-02T07:00:00Z",
     "readings": [{"zone": "total", "value": 4102444800123}]},
]  # fmt: skip

# Sent by the Java bot with ReadingSubmitted v1 (no meter_id, no raw_text), as an old bot would.
OLDER_SUBMISSIONS = [
    {"event_id": "e9", "account_id": "A3", "channel": "viber", "sender_id": "u-79",
     "submitted_at": "2023-06-02T08:00:00Z",
     "readings": [{"zone": "day", "value": 5050}, {"zone": "night", "value": 3020}]},
]  # fmt: skip

READINGS_COLUMNS = (
    "event_id, account_id, meter_id, zone, register, value, kind, period, local_date, "
    "submitted_at, channel, sender_hash, kwh, flags"
)  # every column of `readings` but ingested_at
REJECTIONS_COLUMNS = (
    "event_id, account_id, zone, register, value, reason, detail, channel, sender_hash, "
    "submitted_at, period, hex(payload) AS payload"
)  # every column of `rejections` but rejected_at


class Side:
    """One side's real ids for the labels: its own accounts and its own event ids."""

    def __init__(self, digit: str) -> None:
        self.ids: dict[str, str] = {}
        self._digit = digit

    def real(self, label: str) -> str:
        if label not in self.ids:
            account = f"{self._digit}{len(self.ids):09d}"  # ten digits, as account numbers are
            self.ids[label] = str(uuid.uuid4()) if label.startswith("e") else account
        return self.ids[label]

    def events(self, template: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The template's events with this side's ids."""
        return [
            {**event, **{k: self.real(event[k]) for k in ("event_id", "account_id") if k in event}}
            for event in template
        ]

    def labelled(self, value: Any) -> Any:
        """`value` (a row, a reply) with this side's ids replaced by their labels."""
        if isinstance(value, str):
            for label, real in self.ids.items():
                value = value.replace(real, label)
            return value
        if isinstance(value, list):
            return [self.labelled(v) for v in value]
        if isinstance(value, dict):
            return {k: self.labelled(v) for k, v in value.items()}
        return value


@pytest.fixture(scope="module")
def java_bot() -> Path:
    """The example built by Maven (from ~/.m2, or Maven Central the first time)."""
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found on PATH: the Java bot example needs Java 17 and Maven")
    build = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(EXAMPLE / "pom.xml"), "package"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, f"mvn package failed:\n{build.stdout}\n{build.stderr}"
    assert JAR.is_file()
    return JAR


def _java(jar: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # In the C locale Java 17 prints Cyrillic as '?' unless the program writes UTF-8 itself.
    return subprocess.run(
        ["java", "-jar", str(jar), *args],
        env={**os.environ, "LC_ALL": "C"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HANG_GUARD,
        check=False,
    )


def test_java_checks_the_test_vectors(java_bot: Path) -> None:
    result = _java(java_bot, "check-vectors", "--schemas", str(SCHEMAS))
    assert result.returncode == 0, result.stdout + result.stderr
    checked = sorted(line.split()[1] for line in result.stdout.splitlines()[:-1])
    assert checked == sorted(p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.rglob("*.avsc"))
    assert result.stdout.splitlines()[-1] == f"{len(checked)} vectors, 0 failed"


def test_java_bot_submissions_land_as_the_python_sdks_do(
    pipeline: Pipeline, java_bot: Path, tmp_path: Path
) -> None:
    pipeline.worker()
    python, java = Side("1"), Side("2")
    with BillingProducer(pipeline.settings) as producer:
        for event in python.events(REGISTRY) + java.events(REGISTRY):
            producer.publish_registry(event, wait=False)
    pipeline.wait_idle()

    with BillingProducer(pipeline.settings) as producer:
        for submission in python.events(SUBMISSIONS + OLDER_SUBMISSIONS):
            producer.submit(submission, wait=False)
    java_replies = []
    for template, writer in ((SUBMISSIONS, []), (OLDER_SUBMISSIONS, [str(OLDER_SUBMISSION)])):
        lines, replies = tmp_path / "submissions.jsonl", tmp_path / "replies.jsonl"
        lines.write_text("".join(json.dumps(s) + "\n" for s in java.events(template)), "utf-8")
        run = _java(
            java_bot, "publish", "--input", str(lines), "--replies-json", str(replies),
            "--bootstrap", pipeline.settings.kafka_bootstrap,
            "--topic-prefix", pipeline.settings.topic_prefix, "--schemas", str(SCHEMAS),
            "--timeout", "120", *(["--writer-schema", *writer] if writer else []),
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        read = [json.loads(line) for line in replies.read_text("utf-8").splitlines()]
        assert f"published {len(template)} submissions" in run.stdout
        for reply in read:  # what the bot shows its user: the status and the Ukrainian message
            assert f"{reply['event_id']} {reply['status']}: {reply['message_uk']}\n" in run.stdout
        java_replies += read
    pipeline.wait_idle()

    # Keyed and partitioned as the SDK does (murmur2 of the account id): each account's
    # submissions share a partition with its master data, where its state lives.
    readings, registry = (_partitions(pipeline, name) for name in ("readings", "registry"))
    for account in {java.real(event["account_id"]) for event in REGISTRY}:
        assert len(readings[account]) == 1 and readings[account] == registry[account]

    # The same rows, field by field, on both sides.
    for table, columns in (("readings", READINGS_COLUMNS), ("rejections", REJECTIONS_COLUMNS)):
        rows = pipeline.query(f"SELECT {columns} FROM {{db}}.{table}")
        assert rows, table
        by_side = [
            _sorted(side.labelled(_readable(row)) for row in rows if row["account_id"] in accounts)
            for side, accounts in ((python, _accounts(python)), (java, _accounts(java)))
        ]
        assert by_side[0] == by_side[1], table
        assert len(by_side[0]) + len(by_side[1]) == len(rows), table

    # A rejection keeps the bytes Avro's Java encoder wrote: the Python codec's, to the byte.
    codec = default_codec()
    java_sent = {s["event_id"]: s for s in java.events(SUBMISSIONS)}
    stored = pipeline.query(
        "SELECT DISTINCT event_id, hex(payload) AS payload FROM {db}.rejections "
        f"WHERE account_id IN ({', '.join(repr(a) for a in _accounts(java))})"
    )
    for row in stored:
        sent = codec.from_json(READING_SUBMITTED, java_sent[row["event_id"]])
        assert row["payload"].lower() == codec.encode(READING_SUBMITTED, sent).hex()

    # Every reply the Java decoder read is the reply the Python codec reads for the same event.
    python_replies = _python_replies(pipeline, set(python.ids.values()), len(java_replies))
    assert _sorted(java.labelled(_timeless(r)) for r in java_replies) == _sorted(
        python.labelled(_timeless(r)) for r in python_replies
    )
    by_event = {java.labelled(r["event_id"]): r for r in java_replies}
    assert [r["status"] for r in java_replies if java.labelled(r["event_id"]) == "e2"] == [
        "accepted",
        "duplicate",
    ]
    assert by_event["e9"]["status"] == "accepted"  # written with ReadingSubmitted v1
    reasons = {r["reason"] for reply in java_replies for r in reply["readings"]}
    rejected = {"BELOW_PREVIOUS", "ZONES_SWAPPED", "UNKNOWN_ACCOUNT", "UNKNOWN_METER"}
    assert reasons == {None, "TOO_MANY_DIGITS", *rejected}


def _accounts(side: Side) -> set[str]:
    return {real for label, real in side.ids.items() if not label.startswith("e")}


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its payload decoded, so the two sides' differing ids can be labelled in it."""
    if row.get("payload"):
        codec = default_codec()
        name, datum = codec.decode(bytes.fromhex(row["payload"]))
        row = {**row, "payload": codec.to_json(name, datum)}
    return row


def _timeless(reply: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k != "processed_at"}


def _sorted(items: Iterable[Any]) -> list[Any]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))


def _partitions(pipeline: Pipeline, topic: str) -> dict[str, set[int]]:
    """The partitions each key's messages are on."""
    partitions: dict[str, set[int]] = {}
    for message in pipeline.messages(topic, idle_timeout=3):
        partitions.setdefault(message.key.decode(), set()).add(message.partition)
    return partitions


def _python_replies(pipeline: Pipeline, event_ids: set[str], expected: int) -> list[dict[str, Any]]:
    """The replies to `event_ids` as the Python codec reads them, in their JSON form."""
    codec = default_codec()
    replies = []
    for message in pipeline.messages("replies"):
        name, datum = codec.decode(message.value)
        assert name == SUBMISSION_OUTCOME
        if datum["event_id"] in event_ids:
            replies.append(codec.to_json(name, datum))
        if len(replies) == expected:
            break
    return replies
