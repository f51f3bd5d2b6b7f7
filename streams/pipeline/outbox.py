"""What the worker sends to Kafka for a batch (its accounts' new states, its replies), settled
before the batch is acknowledged.

faust's `Table.__setitem__` sends every change through its producer buffer: a `FutureMessage`, a
buffer task, a completion callback and sensors per key, and, on `rocksdb://`, a write of the
changelog offset per key, and nobody checks whether the send succeeded. `AccountTable.put` does
the same thing directly:

- the same key and value bytes go to the table's changelog topic, on the partition of the
  message being processed (what faust's `partition_for_key` gives), with the app's producer;
  faust's recovery reads these records as it reads its own;
- the value goes into the table's local store (`Table.data`), as `Table.__setitem__` does
  after sending, so the next read sees it.

Records are queued per topic partition and handed to the producer in bulk (`send_queued`):
aiokafka's `create_batch`/`send_batch`, one future per produce batch rather than a coroutine
and a future per record. What faust did per key in its callback is done once per batch by
`Outbox.settle`: every send is awaited before the messages that caused it are acknowledged
(faust never checked, so a failed changelog send could be committed past), and the newest
changelog offset per partition is recorded in the store, so that `rocksdb://` reads only the
changelog's tail after a restart.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import faust.streams as faust_streams
from aiokafka.structs import RecordMetadata
from faust.types import TP
from kafka.partitioner.default import murmur2

# A produce batch's future and how many records it holds.
Sent = list[tuple[Awaitable[RecordMetadata], int]]


class Outbox:
    """Records queued for the producer, then sent and not yet settled.

    `producer` gives the aiokafka producer faust started (it exists only once the app runs); it
    is the one faust flushes before every offset commit. `settle` is stricter: the worker awaits
    it before acknowledging, so a record that never reached the broker stops the worker instead
    of letting the offset behind it be committed.
    """

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer
        self._queued: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        self._partitions: dict[str, int] = {}
        self._sent: Sent = []

    def add(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """Queue a record for `send_queued`."""
        queued = self._queued.get((topic, partition))
        if queued is None:
            queued = self._queued[(topic, partition)] = []
        queued.append((key, value))

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (for the producer's default partitioner)."""
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self._producer().partitions_for(topic))
        return count

    async def send_queued(self) -> None:
        """Hand every queued record to the producer, in produce batches; kept for `settle`."""
        queued, self._queued = self._queued, {}
        producer = self._producer()
        for (topic, partition), records in queued.items():
            batch, count = producer.create_batch(), 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    sent = await producer.send_batch(batch, topic, partition=partition)
                    self._sent.append((sent, count))
                    batch, count = producer.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None)  # a first always fits
                count += 1
            self._sent.append((await producer.send_batch(batch, topic, partition=partition), count))

    def take(self) -> Sent:
        """Detach the sends made so far: they belong to the messages pending right now."""
        sent, self._sent = self._sent, []
        return sent

    @staticmethod
    async def settle(sent: Sent) -> dict[tuple[str, int], int]:
        """Wait until every record is on the broker; the newest offset per topic partition.

        Raises the first send's error (after the producer's own retries ran out).
        """
        newest: dict[tuple[str, int], int] = {}
        for future, count in sent:
            metadata = await future  # a batch's metadata carries its first record's offset
            where = (metadata.topic, metadata.partition)
            last = metadata.offset + count - 1
            if last > newest.get(where, -1):
                newest[where] = last
        return newest


def account_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the SDK uses) gives a key."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class _PartitionEvent:
    """What faust's stores ask of the current event: the partition of its message."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


class AccountTable:
    """The faust table of account states, written around faust's per-key changelog path."""

    def __init__(self, table: Any, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()
        self._events: dict[int, _PartitionEvent] = {}

    @contextmanager
    def on_partition(self, partition: int) -> Iterator[None]:
        """Reads and writes within are for `partition` (a batch's input partition).

        faust's stores take a key's partition from the event being processed
        (`faust.streams.current_event`): `rocksdb://` writes into, and reads from, that
        partition's database. A batch has no faust event, so one naming the partition stands in.
        """
        event = self._events.get(partition)
        if event is None:
            event = self._events[partition] = _PartitionEvent(partition)
        token = faust_streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
        try:
            yield
        finally:
            faust_streams._current_event.reset(token)

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        return value

    def items_on(self, partition: int, partitions: int) -> Iterator[tuple[bytes, bytes]]:
        """The accounts whose state lives on `partition` (their key hashes to it).

        `rocksdb://` keeps one database per partition (faust's `_db_for_partition`): only that
        one is read, not every account of every partition. Other stores are one mapping,
        filtered by the partitioner. States written meanwhile (a close writes every account it
        reads) do not disturb the iteration: a RocksDB iterator reads a snapshot, and the
        mapping is copied first.
        """
        store = self.table.data
        read_partition = getattr(store, "_visible_items", None)
        if read_partition is not None:
            yield from read_partition(store._db_for_partition(partition))
            return
        for key, value in list(store.items()):
            if account_partition(key, partitions) == partition:
                yield key, value

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """Store `value` under `key`: queued for the changelog, and in the store.

        faust sends first and stores after; here the record is queued and sent with the rest of
        the batch before anything of it is acknowledged, which is the order that matters.
        """
        self.outbox.add(self.changelog, partition, key, value)
        self.table.data[key] = value

    def persisted(self, offsets: dict[tuple[str, int], int]) -> None:
        """Record how far the changelog is written, as faust's `_on_changelog_sent` did."""
        for (topic, partition), offset in offsets.items():
            if topic == self.changelog:
                self.table.data.set_persisted_offset(TP(topic, partition), offset)
