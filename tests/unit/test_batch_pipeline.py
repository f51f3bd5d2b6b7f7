"""The per-batch pipeline: batch boundaries change nothing a bot, an analyst or billing sees.

A month of traffic with its period close is handled in per-partition batches of one record, of a
few, and of hundreds. The rows, the replies and the accounts' final states must be the same; a
bigger batch only writes each account's state fewer times.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from faust.types import TP

from streams.adapters.avro import default_codec
from streams.adapters.decode import (
    PERIOD_CLOSE_REQUESTED,
    PeriodCloseRequested,
)
from streams.domain.calendar import Period
from streams.pipeline.outbox import AccountTable, Outbox, account_partition
from streams.pipeline.sink import Batch
from streams.pipeline.state import decode_state
from streams.pipeline.worker import Pipeline
from streams.sdk.producer import encode_registry, encode_submission
from streams.settings import Settings
from tests.builders import simulated_month
from tests.unit.test_outbox import CHANGELOG, FakeProducer, FakeTable

NOW = datetime(2023, 6, 2, 9, 0, tzinfo=UTC)
PARTITIONS = 2


class InstantProducer(FakeProducer):
    """Every produce batch is on the broker as soon as it is sent."""

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        future = await super().send_batch(batch, topic, partition=partition)
        self.deliver(len(self.futures) - 1)
        return future


class Sink:
    def __init__(self) -> None:
        self.written: list[Batch] = []
        self.pending = Batch([], [], [])
        self.metrics = self

    # the parts of `ClickHouseSink` and its metrics the pipeline uses
    @property
    def pending_rows(self) -> int:
        return len(self.pending)

    def add(self, readings: Any = (), rejections: Any = (), billing: Any = ()) -> None:
        self.pending.readings.extend(readings)
        self.pending.rejections.extend(rejections)
        self.pending.billing.extend(billing)

    def take(self) -> Batch:
        taken, self.pending = self.pending, Batch([], [], [])
        return taken

    async def write(self, batch: Batch) -> None:
        self.written.append(batch)

    async def flush(self) -> None:
        await self.write(self.take())

    def progressed(self) -> None: ...
    def count_message(self, kind: str, n: int = 1) -> None: ...
    def count_reading(self, verdict: str, reason: str, n: int = 1) -> None: ...

    class _Counter:
        def inc(self, n: int = 1) -> None: ...

    billing_lines = _Counter()


def month_records(settings: Settings) -> tuple[dict[TP, list[Any]], dict[TP, list[Any]]]:
    """The registry's and the readings' records per partition, in publishing order."""
    codec = default_codec()
    month = simulated_month(60, Period(2023, 5), seed=11)
    registry: dict[TP, list[Any]] = {}
    readings: dict[TP, list[Any]] = {}

    def add(into: dict[TP, list[Any]], topic: str, key: bytes, value: bytes, p: int) -> None:
        records = into.setdefault(TP(topic, p), [])
        records.append(Record(key, value, len(records)))

    for event in month.registry:
        account, value = encode_registry(event, codec)
        key = account.encode()
        add(registry, settings.topic("registry"), key, value, account_partition(key, PARTITIONS))
    # A second submission from some accounts (another event, sent again by a customer): in one
    # batch with the first, the account's state is written once.
    again = [{**s, "event_id": f"{s['event_id'][:-4]}beef"} for s in month.submissions[:10]]
    for submission in [*month.submissions, *again]:
        _, account, value = encode_submission(submission, codec)
        key = account.encode()
        add(readings, settings.topic("readings"), key, value, account_partition(key, PARTITIONS))
    close = PeriodCloseRequested(Period(2023, 5), NOW.replace(microsecond=0), "billing")
    payload = codec.encode(
        PERIOD_CLOSE_REQUESTED,
        {
            "period": "2023-05",
            "requested_at": close.requested_at,
            "requested_by": close.requested_by,
            "signature": close.sign(settings.control_key.get_secret_value().encode()),
        },
    )
    for p in range(PARTITIONS):
        add(readings, settings.topic("readings"), None, payload, p)  # type: ignore[arg-type]
    return registry, readings


class Record:
    def __init__(self, key: bytes, value: bytes, offset: int) -> None:
        self.key, self.value, self.offset, self.headers = key, value, offset, ()


def run_in_batches(size: int) -> dict[str, Any]:
    settings = Settings(partitions=PARTITIONS)
    registry, readings = month_records(settings)
    producer, table, sink = InstantProducer(partitions=PARTITIONS), FakeTable(), Sink()
    outbox = Outbox(lambda: producer)
    acked: list[tuple[TP, int, int]] = []
    pipeline = Pipeline(
        settings,
        sink,  # type: ignore[arg-type]
        AccountTable(table, outbox),
        outbox,
        clock=lambda: NOW,
        acknowledge=lambda tp, offset, generation: acked.append((tp, offset, generation)) or True,
    )

    async def scenario() -> None:
        for topic in (registry, readings):
            for tp, records in sorted(topic.items()):
                for start in range(0, len(records), size):
                    await pipeline.handle_batch(tp, records[start : start + size], 7)
        await pipeline.finish()

    asyncio.run(scenario())
    rows = Batch([], [], [])
    for batch in sink.written:
        rows.readings.extend(batch.readings)
        rows.rejections.extend(batch.rejections)
        rows.billing.extend(batch.billing)
    sent = producer.sent
    return {
        "readings": sorted(map(repr, rows.readings)),
        "rejections": sorted(map(repr, rows.rejections)),
        "billing": sorted(map(repr, rows.billing)),
        "replies": [(k, v, p) for t, k, v, p in sent if t == settings.topic("replies")],
        "states": {k: decode_state(v) for k, v in table.data.items()},
        "changelog": Counter(k for t, k, _v, _p in sent if t == CHANGELOG),
        "last_acks": {tp: max(o for t, o, _g in acked if t == tp) for tp, _o, _g in acked},
        "generations": {g for _t, _o, g in acked},
        "records": {tp: len(r) for tp, r in {**registry, **readings}.items()},
    }


@pytest.fixture(scope="module")
def one_by_one() -> dict[str, Any]:
    return run_in_batches(1)


@pytest.mark.parametrize("size", [3, 500])
def test_batch_boundaries_change_no_row_reply_or_state(
    one_by_one: dict[str, Any], size: int
) -> None:
    batched = run_in_batches(size)
    assert one_by_one["readings"] and one_by_one["billing"] and one_by_one["replies"]
    for what in ("readings", "rejections", "billing", "replies", "states"):
        assert batched[what] == one_by_one[what], what


def test_a_batch_writes_each_changed_account_once(one_by_one: dict[str, Any]) -> None:
    batched = run_in_batches(500)
    # one batch per partition per topic, plus the close: an account is written at most thrice
    assert max(batched["changelog"].values()) <= 3
    assert sum(batched["changelog"].values()) < sum(one_by_one["changelog"].values())


def test_every_record_is_acknowledged_for_its_generation(one_by_one: dict[str, Any]) -> None:
    for run in (one_by_one, run_in_batches(500)):
        assert run["generations"] == {7}
        assert run["last_acks"] == run["records"]  # acked up to one past the last offset
