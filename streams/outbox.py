"""What the worker sends to Kafka for a message (its account's new state, its reply), settled
before the message is acknowledged.

faust's `Table.__setitem__` sends every change through its producer buffer: a `FutureMessage`, a
buffer task, a completion callback and sensors per key, and, on `rocksdb://`, a write of the
changelog offset per key, and nobody checks whether the send succeeded. `AccountTable.put` does
the same thing directly:

- the same key and value bytes go to the table's changelog topic, on the partition of the
  message being processed (what faust's `partition_for_key` gives), with the app's producer;
  faust's recovery reads these records as it reads its own;
- the value goes into the table's local store (`Table.data`), as `Table.__setitem__` does
  after sending, so the next read sees it.

What faust did per key in its callback is done once per batch by `Outbox.settle`: every send is
awaited before the messages that caused it are acknowledged (faust never checked, so a failed
changelog send could be committed past), and the newest changelog offset per partition is
recorded in the store, so that `rocksdb://` reads only the changelog's tail after a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from typing import Any

from aiokafka.structs import RecordMetadata
from faust.types import TP

Sent = list[Awaitable[RecordMetadata]]


class Outbox:
    """Records sent with the app's producer and not yet settled.

    The producer is the one faust flushes before every offset commit; `settle` is stricter:
    the worker awaits it before acknowledging, so a record that never reached the broker
    stops the worker instead of letting the offset behind it be committed.
    """

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._sent: Sent = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:
        """Hand a record to the producer (batched by it); its future is kept for `settle`."""
        self._sent.append(await self.producer.send(topic, key, value, partition, None, None))

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
        for future in sent:
            metadata = await future
            where = (metadata.topic, metadata.partition)
            if metadata.offset > newest.get(where, -1):
                newest[where] = metadata.offset
        return newest


class AccountTable:
    """The faust table of account states, written around faust's per-key changelog path."""

    def __init__(self, table: Any, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        return value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.table.data.items()))

    async def put(self, key: bytes, value: bytes, partition: int) -> None:
        """Store `value` under `key`: changelog first (as faust orders it), then the store."""
        await self.outbox.send(self.changelog, key, value, partition)
        self.table.data[key] = value

    def persisted(self, offsets: dict[tuple[str, int], int]) -> None:
        """Record how far the changelog is written, as faust's `_on_changelog_sent` did."""
        for (topic, partition), offset in offsets.items():
            if topic == self.changelog:
                self.table.data.set_persisted_offset(TP(topic, partition), offset)
