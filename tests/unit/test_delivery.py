"""Batch delivery inside faust: each duty `streams.pipeline.delivery` takes over from faust's path.

The consumer is built without a broker: its faust and aiokafka edges (the fetch, seek, the
assignment, the app's generation and flags) are replaced by recording fakes, and its own methods
run as the worker runs them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.pipeline import delivery
from streams.pipeline.delivery import BatchConsumer, Positions

READINGS = TP("pokazy.readings", 0)
REGISTRY = TP("pokazy.registry", 0)
CHANGELOG = TP("pokazy.worker-accounts-changelog", 0)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes = b"a"
    value: bytes = b"v"
    headers: tuple[Any, ...] = ()
    timestamp: int | None = None
    timestamp_type: int = 0
    checksum: int | None = None
    serialized_key_size: int = 1
    serialized_value_size: int = 1


def records(tp: TP, *offsets: int) -> list[Record]:
    return [Record(tp.topic, tp.partition, offset) for offset in offsets]


@dataclass
class Harness:
    """A `BatchConsumer` whose fetches, seeks and commits are scripted and recorded."""

    fetches: list[tuple[dict[TP, list[Record]], set[TP] | None]]
    consumer: BatchConsumer = field(init=False)
    delivered: list[tuple[TP, list[int], int]] = field(default_factory=list)
    each: list[tuple[TP, int]] = field(default_factory=list)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    seeks_to_committed: int = 0
    commits: int = 0
    on_batch: Any = None  # called after each delivered batch, e.g. to change the generation
    crashes: list[BaseException] = field(default_factory=list)
    log_start: dict[TP, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = object.__new__(BatchConsumer)
        c.batch_topics = frozenset({READINGS.topic, REGISTRY.topic})
        c.batch_handler = self._handler
        c.before_revoke = None
        c.positions = Positions()
        c.gaps = 0
        c._marks = {}
        c._read_offset = defaultdict(lambda: None)
        c._acked = defaultdict(list)
        c._buffered_partitions = set()
        c._committed_offset = defaultdict(lambda: None)
        c._commit_every = None
        c._stopped = asyncio.Event()
        c._crashed = asyncio.Event()
        c.app = SimpleNamespace(
            crash=self._crash,
            consumer_generation_id=1,
            rebalancing=False,
            should_stop=False,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
        )
        c.transport = SimpleNamespace(app=c.app)
        c.flow_active = True
        c.suspend_flow = asyncio.Event()
        c.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        c._wait_next_records = self._fetch
        c.sleep = self._sleep
        c.seek_wait = self._seek_wait
        c.assignment = lambda: {READINGS, REGISTRY, CHANGELOG}
        c.highwater = lambda tp: 1000
        c.seek_to_committed = self._seek_to_committed
        c.earliest_offsets = self._earliest_offsets
        c.commit = c.force_commit = self._commit
        c.maybe_wait_for_commit_to_finish = self._no_commit_running
        c.callback = self._callback
        c._to_message = lambda tp, record: (tp, record.offset)
        c.wait_first = self._wait_first
        self.consumer = c

    def drain(self) -> None:
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        asyncio.run(self.consumer._drain_messages(fetcher))

    async def _fetch(self, timeout: float) -> tuple[dict[TP, list[Record]], set[TP] | None]:
        if not self.fetches:
            self.consumer._stopped.set()
            return {}, None
        return self.fetches.pop(0)

    async def _handler(self, tp: TP, batch: Sequence[Record], generation: int) -> None:
        self.delivered.append((tp, [r.offset for r in batch], generation))
        if self.on_batch is not None:
            self.on_batch(self.consumer)

    async def _crash(self, exc: BaseException) -> None:
        self.crashes.append(exc)

    async def _callback(self, message: tuple[TP, int]) -> None:
        self.each.append(message)

    async def _wait_first(self, coro: Any, *others: Any) -> None:
        for other in others:
            other.close()  # the flow is never suspended here
        await coro

    async def _sleep(self, seconds: float) -> None:
        pass

    async def _seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.items())

    async def _seek_to_committed(self) -> dict[TP, int]:
        self.seeks_to_committed += 1
        return {}

    async def _earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.log_start.get(tp, 0) for tp in tps}

    async def _no_commit_running(self) -> bool:
        return False

    async def _commit(self) -> bool:
        self.commits += 1
        return True


# 1. read offsets and gaps ---------------------------------------------------------------------


def test_positions_deliver_from_the_expected_offset_on() -> None:
    positions = Positions()
    assert positions.admit(READINGS, records(READINGS, 7, 8)) == (records(READINGS, 7, 8), None)
    positions.reset({READINGS: 3})
    assert positions.admit(READINGS, records(READINGS, 3, 4)) == (records(READINGS, 3, 4), None)
    assert positions.admit(READINGS, records(READINGS, 5, 6)) == ((), 3)  # 3-4 never came
    assert positions.admit(READINGS, records(READINGS, 1, 2, 3, 4)) == (
        records(READINGS, 3, 4),
        None,
    )
    positions.delivered(READINGS, 4)
    assert positions.expected(READINGS) == 5
    positions.forget({READINGS})
    assert positions.expected(READINGS) is None


def test_each_partition_batch_reaches_the_handler_in_one_call() -> None:
    harness = Harness(
        [({READINGS: records(READINGS, 0, 1, 2), REGISTRY: records(REGISTRY, 0)}, None)]
    )
    harness.consumer.positions.reset({READINGS: 0, REGISTRY: 0})
    harness.drain()
    assert harness.delivered == [(READINGS, [0, 1, 2], 1), (REGISTRY, [0], 1)]
    assert harness.consumer.positions.expected(READINGS) == 3
    assert harness.seeks == []


def test_a_batch_beyond_the_expected_offset_is_read_again_not_delivered() -> None:
    harness = Harness(
        [
            ({READINGS: records(READINGS, 5, 6)}, None),  # the start-up race lost 3-4
            ({READINGS: records(READINGS, 3, 4, 5, 6)}, None),  # fetched again after the seek
        ]
    )
    harness.consumer.positions.reset({READINGS: 3})
    harness.drain()
    assert harness.seeks == [(READINGS, 3)]
    assert harness.consumer.gaps == 1
    assert harness.delivered == [(READINGS, [3, 4, 5, 6], 1)]


def test_records_deleted_by_retention_are_skipped_loudly_not_sought_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness([({READINGS: records(READINGS, 50, 51)}, None)])
    harness.log_start = {READINGS: 50}  # the worker fell behind the topic's retention
    harness.consumer.positions.reset({READINGS: 3})
    harness.drain()
    assert harness.delivered == [(READINGS, [50, 51], 1)]
    assert harness.seeks == [] and harness.consumer.gaps == 0
    assert "offsets 3-49 were deleted by retention" in caplog.text


def test_records_delivered_already_are_not_delivered_twice() -> None:
    harness = Harness(
        [
            ({READINGS: records(READINGS, 0, 1, 2)}, None),
            ({READINGS: records(READINGS, 1, 2, 3)}, None),
        ]
    )
    harness.consumer.positions.reset({READINGS: 0})
    harness.drain()
    assert harness.delivered == [(READINGS, [0, 1, 2], 1), (READINGS, [3], 1)]


def test_a_batch_that_cannot_be_handled_stops_the_worker_unacknowledged() -> None:
    """faust would leave the worker running with its fetcher dead."""

    def fails(consumer: BatchConsumer) -> None:
        raise RuntimeError("the producer gave up")

    harness = Harness([({READINGS: records(READINGS, 0, 1)}, None)])
    harness.on_batch = fails
    harness.consumer.positions.reset({READINGS: 0})
    with pytest.raises(RuntimeError):
        harness.drain()
    assert [str(e) for e in harness.crashes] == ["the producer gave up"]
    assert harness.consumer._new_offset(READINGS) is None


# 3. flow control and generations ----------------------------------------------------------------


def test_nothing_is_delivered_while_a_rebalance_runs() -> None:
    """The rebalance ends with faust's seek to the committed offsets, which reads them again;
    a seek from here could race it."""
    harness = Harness([({READINGS: records(READINGS, 4, 5)}, None)])
    harness.consumer.app.rebalancing = True
    harness.drain()
    assert harness.delivered == []
    assert harness.seeks == []


def test_a_fetch_that_returns_with_the_flow_stopped_goes_back_to_the_committed_offsets() -> None:
    harness = Harness([({READINGS: records(READINGS, 4, 5)}, None)])
    harness.consumer.flow_active = False
    harness.drain()
    assert harness.delivered == []
    assert harness.seeks_to_committed == 1


def test_the_rest_of_a_fetch_from_an_earlier_generation_is_not_delivered() -> None:
    def rebalanced(consumer: BatchConsumer) -> None:
        consumer.app.consumer_generation_id = 2

    harness = Harness(
        [({READINGS: records(READINGS, 0, 1), REGISTRY: records(REGISTRY, 7, 8)}, None)]
    )
    harness.on_batch = rebalanced
    harness.drain()
    assert harness.delivered == [(READINGS, [0, 1], 1)]
    assert harness.seeks == []  # the new generation starts from the committed offsets


def test_a_partition_paused_while_its_fetch_was_out_is_read_again() -> None:
    harness = Harness(
        [({READINGS: records(READINGS, 0, 1), REGISTRY: records(REGISTRY, 7)}, {REGISTRY})]
    )
    harness.drain()
    assert harness.delivered == [(REGISTRY, [7], 1)]
    assert harness.seeks == [(READINGS, 0)]


def test_a_partition_no_longer_assigned_is_left_to_its_owner() -> None:
    harness = Harness([({READINGS: records(READINGS, 0, 1)}, {REGISTRY})])
    harness.consumer.assignment = lambda: {REGISTRY}
    harness.drain()
    assert harness.delivered == [] and harness.seeks == []


def test_a_partition_whose_stream_buffer_is_full_still_gets_what_was_fetched() -> None:
    """As faust's `getmany`: a full buffer takes the partition out of the active ones, and what
    was fetched for it is still delivered (the changelog during recovery)."""
    harness = Harness([({CHANGELOG: records(CHANGELOG, 0, 1)}, {READINGS})])
    harness.consumer._buffered_partitions = {CHANGELOG}
    harness.drain()
    assert harness.each == [(CHANGELOG, 0), (CHANGELOG, 1)]


def test_other_topics_keep_faust_per_message_delivery() -> None:
    harness = Harness([({CHANGELOG: records(CHANGELOG, 0, 1, 2)}, None)])
    harness.consumer.app.rebalancing = True  # table recovery reads the changelog mid-rebalance
    harness.drain()
    assert harness.delivered == []
    assert harness.each == [(CHANGELOG, 0), (CHANGELOG, 1), (CHANGELOG, 2)]


# 2. acks and the commit -------------------------------------------------------------------------


def test_acks_are_a_watermark_per_partition_for_the_current_generation() -> None:
    consumer = Harness([]).consumer
    consumer.positions.reset({READINGS: 0})
    assert consumer._new_offset(READINGS) is None  # nothing acknowledged: nothing to commit
    assert consumer.ack_through(READINGS, 5, 1)
    assert consumer.ack_through(READINGS, 3, 1)  # an older mark never moves it back
    assert consumer._new_offset(READINGS) == 5
    assert list(consumer._filter_tps_with_pending_acks()) == [READINGS]
    assert not consumer.ack_through(READINGS, 9, 0)  # made in an earlier generation
    assert not consumer.ack_through(REGISTRY, 9, 1)  # not assigned in this generation
    assert consumer._new_offset(READINGS) == 5


def test_the_commit_takes_the_watermark_and_faust_commits_past_nothing_else() -> None:
    """`_new_offset` is what faust's `force_commit` asks; `_should_commit` keeps it monotonic."""
    consumer = Harness([]).consumer
    consumer.positions.reset({READINGS: 0})
    consumer.ack_through(READINGS, 4, 1)
    assert consumer._filter_committable_offsets([READINGS]) == {READINGS: 4}
    consumer._committed_offset[READINGS] = 4
    assert consumer._filter_committable_offsets([READINGS]) == {}


# 4. revocation ----------------------------------------------------------------------------------


@pytest.fixture
def faust_revoke(monkeypatch: pytest.MonkeyPatch) -> list[set[TP]]:
    calls: list[set[TP]] = []

    async def revoked(self: Any, tps: set[TP]) -> None:
        calls.append(tps)

    monkeypatch.setattr(faust_aiokafka.Consumer, "on_partitions_revoked", revoked)
    return calls


def test_a_revocation_finishes_the_work_in_flight_and_commits_before_faust_revokes(
    faust_revoke: list[set[TP]],
) -> None:
    harness = Harness([])
    consumer = harness.consumer
    consumer.positions.reset({READINGS: 0, REGISTRY: 0})
    order: list[str] = []

    async def finish() -> None:
        order.append("finish")
        consumer.ack_through(READINGS, 10, 1)

    consumer.before_revoke = finish
    asyncio.run(consumer.on_partitions_revoked({READINGS}))
    assert order == ["finish"] and harness.commits == 1
    assert faust_revoke == [{READINGS}]
    assert not consumer.ack_through(READINGS, 12, 1)  # revoked: no longer acknowledged
    assert consumer.ack_through(REGISTRY, 3, 1)


def test_work_that_does_not_finish_in_time_stops_the_worker_unacknowledged(
    faust_revoke: list[set[TP]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FINISH_BOUND", 0.05)
    harness = Harness([])
    consumer = harness.consumer
    consumer.positions.reset({READINGS: 0})

    async def stuck() -> None:
        await asyncio.sleep(3600)  # e.g. ClickHouse is down

    consumer.before_revoke = stuck
    asyncio.run(consumer.on_partitions_revoked({READINGS}))
    assert harness.commits == 0
    assert [type(e) for e in harness.crashes] == [TimeoutError]  # it would write on otherwise
    assert faust_revoke == [{READINGS}]
    assert not consumer.ack_through(READINGS, 5, 1)


def test_the_scheme_selects_the_batch_transport() -> None:
    delivery.register()
    assert drivers.by_url(f"{delivery.SCHEME}://127.0.0.1:9092") is delivery.Transport
    assert delivery.Transport.Consumer is BatchConsumer
