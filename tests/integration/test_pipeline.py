"""Bot event → Kafka → faust worker → ClickHouse, on the real broker and embedded ClickHouse."""

from __future__ import annotations

import random
import time
import urllib.request

import orjson
from kafka import KafkaProducer

from streams.adapters.avro import default_codec
from streams.adapters.signing import REPLAY_HEADER, replay_signature
from streams.domain.calendar import Period
from streams.sdk.producer import BillingProducer
from tests.builders import installed_json, simulated_month, submission_json
from tests.commands import pokazy
from tests.integration.conftest import Pipeline
from tests.integration.expected import READINGS_SQL, ReferenceRun, actual_readings

REGISTRY = [
    installed_json(
        "0000000001", "GAMA-1", {"day": 12000, "night": 6500}, "2021-03-15", dso="dtek-kem"
    ),
    installed_json("0000000002", "NIK-2", {"total": 40000}, "2022-01-10", digits=5),
]


def test_submissions_land_in_readings_rejections_and_replies(pipeline: Pipeline) -> None:
    pipeline.worker()
    both = [{"register": "1.8.2", "value": 12345}, {"register": "T21", "value": 6789}]
    accepted = submission_json("0000000001", "2023-05-30T09:15:00Z", both)
    off_window = submission_json(
        "0000000002", "2023-05-15T10:00:00Z", [{"zone": "total", "value": 40100}]
    )
    too_many_digits = submission_json(
        "0000000002", "2023-05-31T10:00:00Z", [{"zone": "total", "value": 401000}]
    )
    total_on_two_zone = submission_json(
        "0000000001", "2023-06-01T08:00:00Z", [{"register": "1.8.0", "value": 19000}]
    )
    unknown_account = submission_json(
        "9999999999", "2023-06-01T08:00:00Z", [{"zone": "total", "value": 1}]
    )
    # 00:30 Kyiv summer time on 1 April 2023 is 21:30 UTC on 31 March: in-window for March.
    after_midnight = submission_json(
        "0000000002", "2023-03-31T21:30:00Z", [{"zone": "total", "value": 40050}]
    )
    sent = [accepted, off_window, too_many_digits, total_on_two_zone, unknown_account]
    pipeline.publish(REGISTRY, [*sent, after_midnight])
    junk = KafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    junk.send(pipeline.settings.topic("readings"), key=b"0000000001", value=b"not avro at all")
    junk.send(pipeline.settings.topic("readings"), key=b"0000000001", value=b"")
    junk.flush()
    junk.close()
    pipeline.wait_idle()

    readings = pipeline.query(READINGS_SQL + " ORDER BY event_id, zone")
    assert actual_readings(readings) == {
        (accepted["event_id"], "day", 12345, "in_window", "2023-05", _d("2023-05-30"), 345),
        (accepted["event_id"], "night", 6789, "in_window", "2023-05", _d("2023-05-30"), 289),
        (off_window["event_id"], "total", 40100, "off_window", "2023-05", _d("2023-05-15"), 100),
        (after_midnight["event_id"], "total", 40050, "in_window", "2023-03", _d("2023-04-01"), 50),
    }
    rows = pipeline.query(
        "SELECT zone, register FROM {db}.readings WHERE account_id = '0000000001'"
    )
    registers = {(r["zone"], r["register"]) for r in rows}
    assert registers == {("day", "1.8.2"), ("night", "T21")}

    rejections = pipeline.query("SELECT event_id, reason, value, payload FROM {db}.rejections")
    reasons = sorted((r["event_id"], r["reason"]) for r in rejections)
    assert reasons == sorted(
        [
            (too_many_digits["event_id"], "TOO_MANY_DIGITS"),
            (total_on_two_zone["event_id"], "TOTAL_NOT_ACCEPTED"),
            (unknown_account["event_id"], "UNKNOWN_ACCOUNT"),
            ("", "MALFORMED"),
            ("", "MALFORMED"),
        ]
    )
    hashes = pipeline.query("SELECT DISTINCT sender_hash FROM {db}.readings")
    assert len(hashes) == 1 and "u-77" not in hashes[0]["sender_hash"]

    replies = _replies(pipeline, expected=6)
    assert replies[accepted["event_id"]]["status"] == "accepted"
    assert replies[too_many_digits["event_id"]]["status"] == "rejected"
    assert replies[too_many_digits["event_id"]]["readings"][0]["reason"] == "TOO_MANY_DIGITS"
    metrics = _get(pipeline, "/metrics").decode()
    assert 'pokazy_readings_total{outcome="rejected",reason="TOO_MANY_DIGITS"} 1.0' in metrics
    assert 'pokazy_readings_total{outcome="accepted",reason=""} 4.0' in metrics
    assert 'pokazy_messages_total{kind="undecodable"} 2.0' in metrics
    assert "pokazy_sink_last_insert_timestamp_seconds" in metrics
    health = orjson.loads(_get(pipeline, "/health"))
    assert health["status"] == "ok" and health["lag"] == 0

    off_window_reply = replies[off_window["event_id"]]["readings"][0]
    assert off_window_reply["message_en"].endswith("the next window opens on 30 May.")
    assert "30 травня" in off_window_reply["message_uk"]


def test_same_file_twice_gives_no_duplicate_rows(pipeline: Pipeline) -> None:
    pipeline.worker()
    month = simulated_month(80, Period(2023, 5), seed=11)
    pipeline.publish(month.registry, month.submissions)
    pipeline.wait_idle()
    pipeline.publish(month.registry, month.submissions)
    pipeline.wait_idle()

    expected = ReferenceRun()
    expected.registry(month.registry)
    expected.submit(month.submissions)
    readings = pipeline.query(READINGS_SQL)
    assert len(readings) == len(expected.readings)
    assert actual_readings(readings) == expected.readings
    rejections = pipeline.query("SELECT event_id, reason FROM {db}.rejections")
    assert len(rejections) == expected.rejection_rows
    assert {(r["event_id"], r["reason"]) for r in rejections} == expected.rejections


def test_worker_killed_mid_file_ends_with_one_row_per_reading(pipeline: Pipeline) -> None:
    worker = pipeline.worker()
    month = simulated_month(3000, Period(2023, 5), seed=5)
    pipeline.publish(month.registry, month.submissions)
    # SIGKILL as soon as some, but not all, of the file is in ClickHouse.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        landed = pipeline.query("SELECT count() AS n FROM {db}.readings_log")[0]["n"]
        if landed > 0:
            break
        time.sleep(random.uniform(0.05, 0.2))
    worker.kill()
    expected = ReferenceRun()
    expected.registry(month.registry)
    expected.submit(month.submissions)
    assert landed < len(expected.readings), "the kill came after the whole file was written"
    pipeline.worker()
    pipeline.wait_idle()

    readings = pipeline.query(READINGS_SQL)
    assert len(readings) == len(expected.readings)
    assert actual_readings(readings) == expected.readings
    rejections = pipeline.query("SELECT event_id, reason FROM {db}.rejections")
    assert len(rejections) == expected.rejection_rows


def _replies(pipeline: Pipeline, expected: int) -> dict[str, dict]:
    codec = default_codec()
    replies: dict[str, dict] = {}
    for message in pipeline.messages("replies"):
        name, datum = codec.decode(message.value)
        assert name == "pokazy.SubmissionOutcome"
        assert message.key == datum["account_id"].encode()
        replies[datum["event_id"]] = datum
        if len(replies) >= expected:
            break
    return replies


def _d(text: str):  # type: ignore[no-untyped-def]
    from datetime import date

    return date.fromisoformat(text)


def test_rejections_replay_after_late_master_data_is_idempotent(pipeline: Pipeline) -> None:
    pipeline.worker()
    early = submission_json(
        "0000000002", "2023-05-31T10:00:00Z", [{"zone": "total", "value": 40200}]
    )
    with BillingProducer(pipeline.settings) as producer:
        producer.submit(early)
    pipeline.wait_idle()
    rejected = pipeline.query("SELECT event_id, reason FROM {db}.rejections")
    assert [(r["event_id"], r["reason"]) for r in rejected] == [
        (early["event_id"], "UNKNOWN_ACCOUNT")
    ]
    pipeline.publish(REGISTRY, [])
    republished = []
    for _ in range(2):
        replay = pokazy(
            pipeline.env, "rejections", "replay", "--reason", "UNKNOWN_ACCOUNT", check=True
        )
        republished.append(replay.stdout.strip())
        pipeline.wait_idle()
    readings = pipeline.query(READINGS_SQL)
    assert actual_readings(readings) == {
        (early["event_id"], "total", 40200, "in_window", "2023-05", _d("2023-05-31"), 200)
    }
    # The accepted reading left `rejections`, so nothing counts it as rejected and the second
    # replay finds nothing to send.
    assert republished == ["re-published 1 rejected messages", "re-published 0 rejected messages"]
    assert pipeline.query("SELECT * FROM {db}.rejections") == []
    assert pipeline.query("SELECT * FROM {db}.rejection_reasons") == []
    daily = pipeline.query(
        "SELECT local_date, submissions, accepted, rejected FROM {db}.submissions_daily"
    )
    assert daily == [{"local_date": "2023-05-31", "submissions": 1, "accepted": 1, "rejected": 0}]


def test_only_a_signed_replay_judges_a_rejected_submission_again(pipeline: Pipeline) -> None:
    pipeline.worker()
    # The bot already knows the new meter; billing's exchange arrives later (UNKNOWN_METER).
    early = submission_json("0000000002", "2023-05-31T10:00:00Z", [{"zone": "total", "value": 100}])
    early["meter_id"] = "NIK-3"
    pipeline.publish(REGISTRY, [early])
    pipeline.wait_idle()
    stored = pipeline.query("SELECT event_id, reason, hex(payload) AS payload FROM {db}.rejections")
    assert [(r["event_id"], r["reason"]) for r in stored] == [(early["event_id"], "UNKNOWN_METER")]
    exchange = [
        {"type": "MeterRemoved", "account_id": "0000000002", "meter_id": "NIK-2",
         "final": {"total": 40150}, "removed_on": "2023-05-20"},
        {"type": "MeterInstalled", "account_id": "0000000002", "meter_id": "NIK-3",
         "zones": ["total"], "digits": 5, "initial": {"total": 50}, "installed_on": "2023-05-20"},
    ]  # fmt: skip
    pipeline.publish(exchange, [])

    # Anyone who can write the readings topic can set the replay header. Unsigned, or signed
    # with another key, it is ignored: the event_id stays a duplicate of its rejection.
    payload = bytes.fromhex(stored[0]["payload"])
    forger = KafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    for forged in (b"1", replay_signature(payload, b"a-bot's-guess")):
        forger.send(
            pipeline.settings.topic("readings"),
            key=b"0000000002",
            value=payload,
            headers=[(REPLAY_HEADER, forged)],
        )
    forger.flush()
    forger.close()
    pipeline.wait_idle()
    assert pipeline.query(READINGS_SQL) == []
    metrics = _get(pipeline, "/metrics").decode()
    assert 'pokazy_readings_total{outcome="duplicate",reason="UNKNOWN_METER"} 2.0' in metrics

    # `rejections replay` signs with the control key: judged again, accepted on the new meter.
    pokazy(pipeline.env, "rejections", "replay", "--reason", "UNKNOWN_METER", check=True)
    pipeline.wait_idle()
    readings = pipeline.query(READINGS_SQL + " ORDER BY event_id")
    assert actual_readings(readings) == {
        (early["event_id"], "total", 100, "in_window", "2023-05", _d("2023-05-31"), 50)
    }
    assert [r["meter_id"] for r in pipeline.query("SELECT meter_id FROM {db}.readings")] == [
        "NIK-3"
    ]


def _get(pipeline: Pipeline, path: str) -> bytes:
    url = f"http://127.0.0.1:{pipeline.settings.web_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())
