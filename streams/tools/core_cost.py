"""The worker's own cost per submission, measured in process: no Kafka, no ClickHouse, no faust.

The same `Pipeline` the worker runs handles the encoded messages in per-partition batches, as
`streams.pipeline.delivery` gives them (decode, judge, each account's state read and written
once per batch through its byte codec, the replies encoded and queued, the rows built, the batch
acknowledged after its write); only its edges are in memory: the accounts table is a dict, the
producer completes every send at once and the sink drops the rows it is given. What remains is
the cost that caps a worker besides Kafka and ClickHouse, in CPU microseconds per submission
(`time.process_time`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from streams.adapters.avro import default_codec
from streams.pipeline.outbox import AccountTable, Outbox, account_partition
from streams.pipeline.sink import Batch, ClickHouseSink
from streams.pipeline.worker import Pipeline, throughput_gc
from streams.sdk.producer import encode_registry, encode_submission
from streams.settings import Settings

# Records per partition batch: what one fetch gives a busy worker.
FETCH_RECORDS = 500


@dataclass(frozen=True)
class CoreFigures:
    """CPU per submission of the worker's own path (decode → judge → state → reply → rows)."""

    submissions: int
    readings: int
    accepted_rows: int  # `readings` rows made (a redelivered retry re-emits its rows)
    rejected_rows: int  # `rejections` rows made
    cpu_seconds: float
    us_per_submission: float
    us_per_reading: float
    registry_events: int
    registry_us_per_event: float


@dataclass(frozen=True, slots=True)
class _Record:
    key: bytes
    value: bytes
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class _Sent:
    topic: str
    partition: int
    offset: int = 0


class _ProduceBatch(list[tuple[bytes, bytes]]):
    def append(self, *, key: bytes, value: bytes, timestamp: None) -> bool:  # type: ignore[override]
        super().append((key, value))
        return True


class _InstantProducer:
    """A producer whose every batch is on the broker at once (offset 0)."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    async def partitions_for(self, topic: str) -> set[int]:
        return self._partitions

    def create_batch(self) -> _ProduceBatch:
        return _ProduceBatch()

    async def send_batch(
        self, batch: _ProduceBatch, topic: str, *, partition: int
    ) -> asyncio.Future[_Sent]:
        future: asyncio.Future[_Sent] = asyncio.get_running_loop().create_future()
        future.set_result(_Sent(topic, partition))
        return future


class _DroppingSink(ClickHouseSink):
    """Counts the rows of every write and drops them."""

    def __init__(self) -> None:
        super().__init__(clickhouse=None)  # type: ignore[arg-type]  # never written to
        self.readings = self.rejections = 0

    async def write(self, batch: Batch) -> None:
        self.readings += len(batch.readings)
        self.rejections += len(batch.rejections)


class _Store(dict[bytes, bytes]):
    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        """Nothing is persisted: the store lives as long as the measurement."""


class _Changelog:
    def get_topic_name(self) -> str:
        return "core-cost-changelog"


class _Table:
    def __init__(self) -> None:
        self.data = _Store()
        self.changelog_topic = _Changelog()


def measure_core(
    settings: Settings,
    registry: Sequence[dict[str, Any]],
    submissions: Sequence[dict[str, Any]],
) -> CoreFigures:
    """Load the registry, then time every submission through the worker's `Pipeline`."""
    with throughput_gc():  # as the worker runs
        return asyncio.run(_measure(settings, registry, submissions))


async def _measure(
    settings: Settings,
    registry: Sequence[dict[str, Any]],
    submissions: Sequence[dict[str, Any]],
) -> CoreFigures:
    codec = default_codec()
    events = [
        (key.encode(), payload) for key, payload in (encode_registry(e, codec) for e in registry)
    ]
    messages = [
        (key.encode(), payload)
        for _, key, payload in (encode_submission(s, codec) for s in submissions)
    ]
    producer = _InstantProducer(settings.partitions)
    outbox = Outbox(lambda: producer)
    sink = _DroppingSink()
    pipeline = Pipeline(settings, sink, AccountTable(_Table(), outbox), outbox)
    registry_cpu = await _run(pipeline, events, settings.topic("registry"), settings.partitions)
    sink.readings = sink.rejections = 0
    cpu = await _run(pipeline, messages, settings.topic("readings"), settings.partitions)
    accepted, rejected = sink.readings, sink.rejections
    readings = sum(len(s["readings"]) for s in submissions)
    return CoreFigures(
        submissions=len(messages),
        readings=readings,
        accepted_rows=accepted,
        rejected_rows=rejected,
        cpu_seconds=round(cpu, 3),
        us_per_submission=round(cpu / max(1, len(messages)) * 1e6, 1),
        us_per_reading=round(cpu / max(1, readings) * 1e6, 1),
        registry_events=len(events),
        registry_us_per_event=round(registry_cpu / max(1, len(events)) * 1e6, 1),
    )


async def _run(
    pipeline: Pipeline, messages: Sequence[tuple[bytes, bytes]], topic: str, partitions: int
) -> float:
    """CPU seconds to handle `messages`, fetched in per-partition batches, and write them."""
    by_partition: dict[int, list[_Record]] = {}
    for key, value in messages:
        records = by_partition.setdefault(account_partition(key, partitions), [])
        records.append(_Record(key, value, len(records)))
    fetches = [
        (TP(topic, partition), records[start : start + FETCH_RECORDS])
        for start in range(0, max(map(len, by_partition.values()), default=0), FETCH_RECORDS)
        for partition, records in sorted(by_partition.items())
        if start < len(records)
    ]
    started = time.process_time()
    for tp, batch in fetches:
        await pipeline.handle_batch(tp, batch, 0)
    await pipeline.finish()
    return time.process_time() - started


def core_rows(core: CoreFigures) -> list[tuple[str, str, str]]:
    """The benchmark table's rows for these figures."""
    return [
        ("core cost", f"{core.us_per_submission:,.0f} µs/submission",
         f"in process, CPU: decode, judge, state, reply, rows; {core.submissions:,} submissions, "
         f"{core.us_per_reading:,.0f} µs/reading; registry {core.registry_us_per_event:,.0f} "
         "µs/event"),
    ]  # fmt: skip
