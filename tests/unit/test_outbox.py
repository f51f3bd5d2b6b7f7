"""The outbox: records sent for unacknowledged messages, settled before those are acknowledged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata, TopicPartition
from faust.types import TP

from streams.adapters.clickhouse import InsertRefused
from streams.adapters.decode import PeriodCloseRequested
from streams.domain.calendar import Period
from streams.errors import PokazyError
from streams.pipeline.outbox import AccountTable, Outbox
from streams.pipeline.sink import Batch
from streams.pipeline.worker import Pipeline
from streams.settings import Settings

CHANGELOG = "pokazy.worker-accounts-changelog"


class FakeBatch(list[tuple[bytes, bytes]]):
    """A produce batch holding at most `room` records, as aiokafka's fills up by size."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> bool | None:  # type: ignore[override]
        if len(self) >= self.room:
            return None
        super().append((key, value))
        return True


class FakeProducer:
    """Records produce batches; each returns a future the test resolves (or fails) later."""

    def __init__(self, room: int = 1000, partitions: int = 4) -> None:
        self.room = room
        self.batches: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
        self.futures: list[asyncio.Future[RecordMetadata]] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.partitions = partitions

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(
        self, batch: FakeBatch, topic: str, *, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        self.batches.append((topic, partition, list(batch)))
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    @property
    def sent(self) -> list[tuple[str, bytes, bytes, int]]:
        return [(t, k, v, p) for t, p, records in self.batches for k, v in records]

    def deliver(self, index: int) -> None:
        topic, partition, records = self.batches[index]
        where = (topic, partition)
        first = self.offsets.get(where, -1) + 1
        self.offsets[where] = first + len(records) - 1
        tp = TopicPartition(*where)
        self.futures[index].set_result(
            RecordMetadata(topic, partition, tp, first, -1, 0, None)  # type: ignore[arg-type]
        )

    def deliver_all(self) -> None:
        for index, future in enumerate(self.futures):
            if not future.done():
                self.deliver(index)


class FakeStore(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[int, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp.partition] = offset


class FakeTable:
    def __init__(self) -> None:
        self.data = FakeStore()
        self.changelog_topic = self

    def get_topic_name(self) -> str:
        return CHANGELOG


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_put_queues_the_bytes_for_the_changelog_partition_and_stores_them() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        outbox = Outbox(lambda: producer)
        accounts = AccountTable(table, outbox)
        assert accounts.get(b"a1") is None
        accounts.put(b"a1", b'{"v":1}', 3)
        assert accounts.get(b"a1") == b'{"v":1}'
        assert dict(table.data) == {b"a1": b'{"v":1}'}
        assert producer.sent == []  # queued until the batch ends
        await outbox.send_queued()
        assert producer.sent == [(CHANGELOG, b"a1", b'{"v":1}', 3)]

    run(scenario())


def test_queued_records_go_out_in_produce_batches_per_partition_in_order() -> None:
    async def scenario() -> None:
        producer = FakeProducer(room=2)
        outbox = Outbox(lambda: producer)
        for key in (b"a", b"b", b"c"):
            outbox.add(CHANGELOG, 0, key, b"v")
        outbox.add("replies", 1, b"a", b"r")
        await outbox.send_queued()
        assert producer.batches == [
            (CHANGELOG, 0, [(b"a", b"v"), (b"b", b"v")]),
            (CHANGELOG, 0, [(b"c", b"v")]),  # the first batch was full
            ("replies", 1, [(b"a", b"r")]),
        ]
        await outbox.send_queued()
        assert len(producer.batches) == 3  # nothing queued twice

    run(scenario())


def test_settle_waits_for_every_send_and_returns_the_newest_offset_per_partition() -> None:
    async def scenario() -> None:
        producer = FakeProducer(room=2)
        outbox = Outbox(lambda: producer)
        for key, partition in [(b"a", 0), (b"b", 1), (b"c", 0), (b"d", 0)]:
            outbox.add(CHANGELOG, partition, key, b"v")
        outbox.add("replies", 0, b"a", b"r")
        await outbox.send_queued()  # changelog 0: [a, c] [d]; changelog 1: [b]; replies 0: [a]
        sent = outbox.take()
        assert outbox.take() == []
        settling = asyncio.ensure_future(Outbox.settle(sent))
        await asyncio.sleep(0)
        assert not settling.done()  # nothing delivered yet
        for index in (3, 2, 1):
            producer.deliver(index)
        await asyncio.sleep(0)
        assert not settling.done()  # the first batch is still in flight
        producer.deliver(0)  # delivered after [d]: offsets 1-2, and [d] got 0
        assert await settling == {(CHANGELOG, 0): 2, (CHANGELOG, 1): 0, ("replies", 0): 0}

    run(scenario())


def test_settle_raises_when_a_send_failed() -> None:
    async def scenario() -> None:
        producer = FakeProducer()
        outbox = Outbox(lambda: producer)
        outbox.add(CHANGELOG, 0, b"a", b"v")
        outbox.add(CHANGELOG, 1, b"b", b"v")
        await outbox.send_queued()
        producer.deliver(0)
        producer.futures[1].set_exception(KafkaTimeoutError())
        with pytest.raises(KafkaTimeoutError):
            await Outbox.settle(outbox.take())

    run(scenario())


def test_persisted_records_only_changelog_offsets() -> None:
    table = FakeTable()
    accounts = AccountTable(table, Outbox(FakeProducer))
    accounts.persisted({(CHANGELOG, 0): 7, (CHANGELOG, 2): 3, ("replies", 1): 99})
    assert table.data.persisted == {0: 7, 2: 3}


class FakeSink:
    def __init__(self) -> None:
        self.written: list[Batch] = []
        self.rejections: list[Any] = []
        self.metrics = self

    @property
    def pending_rows(self) -> int:
        return len(self.rejections)

    def add(self, readings: Any = (), rejections: Any = (), billing: Any = ()) -> None:
        self.rejections.extend(rejections)

    def progressed(self) -> None:
        pass

    async def write(self, batch: Batch) -> None:
        self.written.append(batch)

    def take(self) -> Batch:
        return Batch([], [], [])


READINGS = TP("pokazy.readings", 1)


def pipeline(
    producer: FakeProducer, table: FakeTable
) -> tuple[Pipeline, FakeSink, list[Any], list[tuple[TP, int, int]]]:
    crashes: list[Any] = []
    acked: list[tuple[TP, int, int]] = []

    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    def acknowledge(tp: TP, offset: int, generation: int) -> bool:
        acked.append((tp, offset, generation))
        return True

    sink = FakeSink()
    outbox = Outbox(lambda: producer)
    built = Pipeline(
        Settings(),
        sink,  # type: ignore[arg-type]
        AccountTable(table, outbox),
        outbox,
        acknowledge=acknowledge,
        crash=crash,
    )
    return built, sink, crashes, acked


def test_batches_are_acknowledged_only_once_their_records_are_on_the_broker() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, sink, crashes, acked = pipeline(producer, table)
        built.accounts.put(b"a", b"v", 1)
        await built.outbox.send_queued()
        empty = Batch([], [], [])
        writing = asyncio.ensure_future(
            built._write_then_ack(empty, built.outbox.take(), [(READINGS, 8, 3)])
        )
        await asyncio.sleep(0.01)
        assert sink.written == [empty]
        assert acked == []  # rows written, changelog record still in flight
        producer.deliver_all()
        await writing
        assert acked == [(READINGS, 8, 3)]
        assert table.data.persisted == {1: 0}
        assert crashes == []

    run(scenario())


def test_a_record_that_never_reaches_the_broker_stops_the_worker_unacknowledged() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, crashes, acked = pipeline(producer, table)
        built.accounts.put(b"a", b"v", 0)
        await built.outbox.send_queued()
        producer.futures[0].set_exception(KafkaTimeoutError())
        await built._write_then_ack(Batch([], [], []), built.outbox.take(), [(READINGS, 1, 1)])
        assert acked == []
        assert table.data.persisted == {}
        assert [type(c) for c in crashes] == [KafkaTimeoutError]

    run(scenario())


def test_the_pipeline_is_idle_only_with_nothing_pending_or_being_written() -> None:
    """What the delivery watch asks before it looks for records never delivered."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, _crashes, _acked = pipeline(producer, table)
        assert built.idle_for(0)
        assert not built.idle_for(3600)  # nothing has been quiet that long since it started
        built.accounts.put(b"a", b"v", 0)
        await built.outbox.send_queued()
        built._writing = asyncio.ensure_future(
            built._write_then_ack(Batch([], [], []), built.outbox.take(), [(READINGS, 1, 1)])
        )
        await asyncio.sleep(0.01)
        assert not built.idle_for(0)  # a write waits for the broker
        producer.deliver_all()
        await built._writing
        assert built.idle_for(0)
        built._acks.append((READINGS, 2, 1))
        assert not built.idle_for(0)  # a batch waits for its write

    run(scenario())


def test_a_batch_names_its_partition_as_the_event_faust_stores_read_it_from() -> None:
    """`rocksdb://` writes a key into the database of the current event's partition."""
    from faust.streams import current_event

    accounts = AccountTable(FakeTable(), Outbox(FakeProducer))
    assert current_event() is None
    with accounts.on_partition(3):
        event = current_event()
        assert event is not None and event.message.partition == 3
    assert current_event() is None


def test_a_partitions_accounts_are_those_whose_key_hashes_to_it() -> None:
    from streams.pipeline.outbox import account_partition

    table = FakeTable()
    accounts = AccountTable(table, Outbox(FakeProducer))
    keys = [f"{1_000_000_000 + n}".encode() for n in range(40)]
    for key in keys:
        table.data[key] = b"v"
    for partition in range(4):
        on = dict(accounts.items_on(partition, 4))
        assert set(on) == {k for k in keys if account_partition(k, 4) == partition}


class PartitionedStore(FakeStore):
    """A `rocksdb://` store as faust keeps it: one database per partition."""

    def __init__(self) -> None:
        super().__init__()
        self.dbs: dict[int, dict[bytes, bytes]] = {0: {b"a": b"1"}, 1: {b"b": b"2", b"c": b"3"}}

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.dbs[partition]

    def _visible_items(self, db: dict[bytes, bytes]) -> Any:
        return iter(db.items())


def test_on_rocksdb_only_the_partitions_own_database_is_read() -> None:
    table = FakeTable()
    table.data = PartitionedStore()
    accounts = AccountTable(table, Outbox(FakeProducer))
    assert dict(accounts.items_on(1, 4)) == {b"b": b"2", b"c": b"3"}
    assert dict(accounts.items_on(0, 4)) == {b"a": b"1"}


def test_after_a_write_whose_records_were_lost_nothing_is_acknowledged_again() -> None:
    """A later write's watermark would commit past the lost one's records."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, crashes, acked = pipeline(producer, table)
        built.accounts.put(b"a", b"v", 1)
        await built.outbox.send_queued()
        producer.futures[0].set_exception(KafkaTimeoutError())
        await built._write_then_ack(Batch([], [], []), built.outbox.take(), [(READINGS, 10, 1)])
        built.accounts.put(b"b", b"v", 1)
        await built.outbox.send_queued()
        producer.deliver(1)
        await built._write_then_ack(Batch([], [], []), built.outbox.take(), [(READINGS, 20, 1)])
        assert acked == [] and len(crashes) == 1
        with pytest.raises(PokazyError, match="failed for good"):
            await built.handle_batch(READINGS, [object()], 1)

    run(scenario())


CLOSE = PeriodCloseRequested(Period(2023, 5), datetime(2023, 6, 5, tzinfo=UTC), "billing")


def close_failing_with(built: Pipeline, error: Exception) -> None:
    """The pipeline's period close fails with `error` (the close itself is tested elsewhere)."""

    async def close(*args: Any) -> None:
        raise error

    built._close = close  # type: ignore[method-assign]


def test_rows_clickhouse_refuses_for_good_stop_the_worker_with_their_batch_unacknowledged() -> None:
    """Retrying them would stall the partition forever; acknowledging would lose them."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, sink, crashes, acked = pipeline(producer, table)

        async def refused(batch: Batch) -> None:
            raise InsertRefused("pokazy.readings_log refuses the rows: Code: 16", code=16)

        sink.write = refused  # type: ignore[method-assign]
        built.accounts.put(b"a", b"v", 1)
        await built.outbox.send_queued()
        producer.deliver_all()
        await built._write_then_ack(Batch([], [], []), built.outbox.take(), [(READINGS, 10, 1)])
        assert acked == [] and len(crashes) == 1 and isinstance(crashes[0], InsertRefused)
        with pytest.raises(PokazyError, match="failed for good"):
            await built.handle_batch(READINGS, [object()], 1)

    run(scenario())


def test_billing_refused_mid_close_stops_the_worker_and_acknowledges_nothing_after() -> None:
    """The refused flush took the rows of the batches waiting for a write: the write a stopping
    worker makes (`finish`) must not acknowledge them."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, sink, _crashes, acked = pipeline(producer, table)
        built._acks.append((READINGS, 5, 1))  # an earlier batch, its rows in the refused flush
        close_failing_with(built, InsertRefused("pokazy.billing_log refuses the rows", code=53))
        with pytest.raises(InsertRefused):  # not an INTERNAL_ERROR row: the billing is lost
            await built.carry_out(CLOSE, b"payload", 0)
        assert sink.pending_rows == 0
        await built.finish()
        assert acked == []

    run(scenario())


def test_a_failure_to_produce_during_a_close_is_not_taken_for_a_bad_record() -> None:
    """An INTERNAL_ERROR row would let the batch be acknowledged without its records."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, sink, _crashes, _acked = pipeline(producer, table)
        close_failing_with(built, KafkaTimeoutError())
        with pytest.raises(KafkaTimeoutError):
            await built.carry_out(CLOSE, b"payload", 0)
        assert sink.pending_rows == 0

        close_failing_with(built, RuntimeError("a bug"))
        await built.carry_out(CLOSE, b"payload", 0)  # kept as INTERNAL_ERROR, not raised
        assert sink.pending_rows == 1

    run(scenario())


def test_a_finish_cut_short_leaves_the_write_in_flight_to_complete() -> None:
    """The bounded finish of a rebalance, or a stopping fetcher, must not cancel a write."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, _crashes, acked = pipeline(producer, table)
        built.accounts.put(b"a", b"v", 1)
        await built.outbox.send_queued()
        built._acks.append((READINGS, 5, 1))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(built.finish(), timeout=0.05)  # the broker is slow
        producer.deliver_all()
        await built.finish()
        assert acked == [(READINGS, 5, 1)]

    run(scenario())
