"""The worker's own cost per submission, measured in process: no Kafka, no ClickHouse, no faust.

The same `Pipeline` the worker runs handles each encoded message (decode, judge, the account's
state read and written through its byte codec, the reply encoded, the rows built); only its
edges are in memory: the accounts table is a dict, the producer completes every send at once
and the sink's rows are dropped when they pile up. What remains is the cost that caps a worker
after faust's per-message path, in CPU microseconds per submission (`time.process_time`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.codec import default_codec
from streams.decode import METER_INSTALLED, READING_SUBMITTED
from streams.outbox import AccountTable, Outbox
from streams.settings import Settings
from streams.sink import ClickHouseSink
from streams.worker import Pipeline

# Rows and sends are dropped once this many pile up, as a worker's flush would take them.
_DROP_EVERY = 5000


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


class _InstantProducer:
    """A producer whose every send is on the broker at once (offset 0)."""

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


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
    return asyncio.run(_measure(settings, registry, submissions))


async def _measure(
    settings: Settings,
    registry: Sequence[dict[str, Any]],
    submissions: Sequence[dict[str, Any]],
) -> CoreFigures:
    codec = default_codec()
    events = [
        (e["account_id"].encode(), codec.encode(METER_INSTALLED, codec.from_json(
            METER_INSTALLED, {k: v for k, v in e.items() if k != "type"})))
        for e in registry
    ]  # fmt: skip
    messages = [
        (s["account_id"].encode(), codec.encode(READING_SUBMITTED, codec.from_json(
            READING_SUBMITTED, s)))
        for s in submissions
    ]  # fmt: skip
    outbox = Outbox(_InstantProducer())
    sink = ClickHouseSink(clickhouse=None)  # type: ignore[arg-type]  # never written to
    pipeline = Pipeline(settings, sink, AccountTable(_Table(), outbox), outbox)
    registry_cpu, _, _ = await _run(pipeline, events, settings.topic("registry"))
    cpu, accepted, rejected = await _run(pipeline, messages, settings.topic("readings"))
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
    pipeline: Pipeline, messages: Sequence[tuple[bytes, bytes]], topic: str
) -> tuple[float, int, int]:
    """CPU seconds for `messages`, and the `readings` and `rejections` rows they made."""
    accepted = rejected = 0
    started = time.process_time()
    for index, (key, value) in enumerate(messages):
        await pipeline.process(key, value, topic, 0)
        if pipeline.sink.pending_rows >= _DROP_EVERY or index == len(messages) - 1:
            batch = pipeline.sink.take()
            accepted, rejected = accepted + len(batch.readings), rejected + len(batch.rejections)
            pipeline.outbox.take()
    return time.process_time() - started, accepted, rejected


def core_rows(core: CoreFigures) -> list[tuple[str, str, str]]:
    """The benchmark table's rows for these figures."""
    return [
        ("core cost", f"{core.us_per_submission:,.0f} µs/submission",
         f"in process, CPU: decode, judge, state, reply, rows; {core.submissions:,} submissions, "
         f"{core.us_per_reading:,.0f} µs/reading; registry {core.registry_us_per_event:,.0f} "
         "µs/event"),
    ]  # fmt: skip
