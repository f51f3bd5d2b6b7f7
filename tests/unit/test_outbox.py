"""The outbox: records sent for unacknowledged messages, settled before those are acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata, TopicPartition

from streams.outbox import AccountTable, Outbox
from streams.settings import Settings
from streams.sink import Batch
from streams.worker import Pipeline

CHANGELOG = "pokazy.worker-accounts-changelog"


class FakeProducer:
    """Records sends; each returns a future the test resolves (or fails) later."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []
        self.futures: list[asyncio.Future[RecordMetadata]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[RecordMetadata]:
        self.sent.append((topic, key, value, partition))
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def deliver(self, index: int) -> None:
        topic, _key, _value, partition = self.sent[index]
        where = (topic, partition if partition is not None else 0)
        offset = self.offsets[where] = self.offsets.get(where, -1) + 1
        tp = TopicPartition(*where)
        self.futures[index].set_result(
            RecordMetadata(topic, where[1], tp, offset, -1, 0, None)  # type: ignore[arg-type]
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


def test_put_sends_the_bytes_to_the_changelog_partition_and_stores_them() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        accounts = AccountTable(table, Outbox(producer))
        assert accounts.get(b"a1") is None
        await accounts.put(b"a1", b'{"v":1}', 3)
        assert producer.sent == [(CHANGELOG, b"a1", b'{"v":1}', 3)]
        assert accounts.get(b"a1") == b'{"v":1}'
        assert list(accounts.items()) == [(b"a1", b'{"v":1}')]

    run(scenario())


def test_settle_waits_for_every_send_and_returns_the_newest_offset_per_partition() -> None:
    async def scenario() -> None:
        producer = FakeProducer()
        outbox = Outbox(producer)
        for key, partition in [(b"a", 0), (b"b", 1), (b"c", 0), (b"d", 0)]:
            await outbox.send(CHANGELOG, key, b"v", partition)
        await outbox.send("replies", b"a", b"r", None)
        sent = outbox.take()
        assert outbox.take() == []
        settling = asyncio.ensure_future(Outbox.settle(sent))
        await asyncio.sleep(0)
        assert not settling.done()  # nothing delivered yet
        for index in (4, 3, 2, 1):
            producer.deliver(index)
        await asyncio.sleep(0)
        assert not settling.done()  # the first send is still in flight
        producer.deliver(0)
        assert await settling == {(CHANGELOG, 0): 2, (CHANGELOG, 1): 0, ("replies", 0): 0}

    run(scenario())


def test_settle_raises_when_a_send_failed() -> None:
    async def scenario() -> None:
        producer = FakeProducer()
        outbox = Outbox(producer)
        await outbox.send(CHANGELOG, b"a", b"v", 0)
        await outbox.send(CHANGELOG, b"b", b"v", 0)
        producer.deliver(0)
        producer.futures[1].set_exception(KafkaTimeoutError())
        with pytest.raises(KafkaTimeoutError):
            await Outbox.settle(outbox.take())

    run(scenario())


def test_persisted_records_only_changelog_offsets() -> None:
    table = FakeTable()
    accounts = AccountTable(table, Outbox(FakeProducer()))
    accounts.persisted({(CHANGELOG, 0): 7, (CHANGELOG, 2): 3, ("replies", 1): 99})
    assert table.data.persisted == {0: 7, 2: 3}


class FakeSink:
    def __init__(self) -> None:
        self.written: list[Batch] = []
        self.metrics = self

    def progressed(self) -> None:
        pass

    async def write(self, batch: Batch) -> None:
        self.written.append(batch)


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def ack(self, event: str) -> None:
        self.acked.append(event)


def pipeline(producer: FakeProducer, table: FakeTable) -> tuple[Pipeline, FakeSink, list[Any]]:
    crashes: list[Any] = []

    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    sink = FakeSink()
    outbox = Outbox(producer)
    built = Pipeline(
        Settings(),
        sink,  # type: ignore[arg-type]
        AccountTable(table, outbox),
        outbox,
        crash=crash,
    )
    return built, sink, crashes


def test_messages_are_acknowledged_only_once_their_records_are_on_the_broker() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, sink, crashes = pipeline(producer, table)
        stream = FakeStream()
        await built.accounts.put(b"a", b"v", 1)
        empty = Batch([], [], [])
        writing = asyncio.ensure_future(
            built._write_then_ack(empty, built.outbox.take(), [(stream, "m1")])
        )
        await asyncio.sleep(0.01)
        assert sink.written == [empty]
        assert stream.acked == []  # rows written, changelog record still in flight
        producer.deliver_all()
        await writing
        assert stream.acked == ["m1"]
        assert table.data.persisted == {1: 0}
        assert crashes == []

    run(scenario())


def test_a_record_that_never_reaches_the_broker_stops_the_worker_unacknowledged() -> None:
    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, crashes = pipeline(producer, table)
        stream = FakeStream()
        await built.accounts.put(b"a", b"v", 0)
        producer.futures[0].set_exception(KafkaTimeoutError())
        await built._write_then_ack(Batch([], [], []), built.outbox.take(), [(stream, "m1")])
        assert stream.acked == []
        assert table.data.persisted == {}
        assert [type(c) for c in crashes] == [KafkaTimeoutError]

    run(scenario())


def test_the_pipeline_is_idle_only_with_nothing_pending_or_being_written() -> None:
    """What the starvation watch asks before it may restart a worker (`watch_delivery`)."""

    async def scenario() -> None:
        producer, table = FakeProducer(), FakeTable()
        built, _sink, _crashes = pipeline(producer, table)
        assert built.idle_for(0)
        assert not built.idle_for(3600)  # nothing has been quiet that long since it started
        await built.accounts.put(b"a", b"v", 0)
        built._writing = asyncio.ensure_future(
            built._write_then_ack(Batch([], [], []), built.outbox.take(), [(FakeStream(), "m")])
        )
        await asyncio.sleep(0.01)
        assert not built.idle_for(0)  # a write waits for the broker
        producer.deliver_all()
        await built._writing
        assert built.idle_for(0)
        built._pending.append((FakeStream(), "m2"))
        assert not built.idle_for(0)  # a message waits for its batch

    run(scenario())
