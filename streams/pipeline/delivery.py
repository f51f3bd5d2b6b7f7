"""Batch delivery inside faust: the input topics reach the pipeline one fetched batch at a time.

faust hands every fetched record to its streams one at a time: a `Message`, an `Event`, a few
tasks to race it against flow control, an ack and a commit bookkeeping entry per record. For
pokazy that machinery cost more than judging the reading. This transport keeps faust (its app,
group membership and rebalances, table recovery, offset commits, timers and web server) and
replaces only how the records of the pipeline's topics travel from the fetch to the handler: the
consumer's drain loop passes each partition's fetched records to one `BatchHandler` call. Every
other topic (the table's changelog during recovery) keeps faust's per-message path.

It is selected by the broker URL scheme `pokazy://` (`register` adds it to faust's transport
registry). What faust does per message, and how each duty is kept here:

1. **Read offsets and gaps.** faust drops fetched records it cannot deliver (flow stopped, the
   partition paused or the generation changed while the fetch was out) after aiokafka already
   moved past them; with no later offset to reveal the hole, those records were never read (the
   start-up gap). Here `Positions` knows the offset each partition must deliver next, from the
   committed offset (or the log start) when the consumer seeks, then from what it delivered. A
   batch that starts beyond it is not delivered: the partition is sought back to the expected
   offset, loudly (`gaps`). A batch that starts below it is trimmed to what was not delivered
   yet. A batch fetched for a partition paused meanwhile is sought back to at once; one
   fetched while a rebalance runs is dropped, as the rebalance ends with a seek to the
   committed offsets (and the check above stands behind that seek). Records deleted by
   retention before they were read cannot be sought back to: that is logged, and delivery
   goes on from the log start.
2. **Acks and the commit.** The handler acknowledges a partition up to an offset
   (`ack_through`) once everything its records wrote is durable, in offset order. That watermark
   is what `_new_offset` gives faust's commit, which runs on its own timer
   (`broker_commit_interval`), after flushing the producer, as before.
3. **Flow control and generations.** Nothing is delivered while faust has stopped the flow or a
   rebalance runs; a batch fetched in an earlier generation is not delivered. An
   acknowledgement made for an earlier generation, or for a partition no longer assigned, is
   dropped: the partition's next owner reads those records again.
4. **Revocation.** Before partitions are revoked (and before the consumer stops), the in-flight
   work is finished (`before_revoke`: rows written, records settled, batches acknowledged) and
   committed, within a bound; past it the worker stops, its work unacknowledged, rather than
   write on for partitions that are another worker's by then.
5. **`current_event` for table writes.** faust's stores take a key's partition from the event
   being processed; `rocksdb://` writes into that partition's database. The pipeline writes
   the account table through `streams.pipeline.outbox.AccountTable`, which names the batch's
   partition as the current event (`on_partition`) and sends the changelog record to that
   partition.
6. **Backpressure.** The handler is awaited before the next batch is delivered, so the fetch
   waits while the pipeline waits for its sink or for the producer (aiokafka queues one batch
   per topic partition and blocks the next `send_batch` until it drains).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

SCHEME = "pokazy"

# (topic partition, its fetched records in offset order, the consumer generation they belong to)
BatchHandler = Callable[[TP, Sequence[Any], int], Awaitable[None]]

# How long a rebalance or a stop waits for the in-flight work before abandoning it.
FINISH_BOUND = 30.0


def register() -> None:
    """Make `pokazy://host:port` select this transport (idempotent)."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


@dataclass
class Positions:
    """The offset each partition must deliver next, within one consumer generation."""

    _next: dict[TP, int] = field(default_factory=dict)

    def reset(self, offsets: Mapping[TP, int]) -> None:
        """Start over from these offsets (the consumer has just sought to them)."""
        self._next = dict(offsets)

    def forget(self, tps: Iterator[TP] | set[TP]) -> None:
        for tp in tps:
            self._next.pop(tp, None)

    def expected(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def admit(self, tp: TP, records: Sequence[Any]) -> tuple[Sequence[Any], int | None]:
        """The records to deliver now, and the offset to seek back to if some were skipped."""
        expected = self._next.get(tp)
        if expected is None or not records:
            return records, None
        first = records[0].offset
        if first > expected:
            return (), expected
        if first < expected:
            records = [r for r in records if r.offset >= expected]
        return records, None

    def delivered(self, tp: TP, last_offset: int) -> None:
        self._next[tp] = last_offset + 1


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, delivering the routed topics in per-partition batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_topics: frozenset[str] = frozenset()
        self.batch_handler: BatchHandler | None = None
        self.before_revoke: Callable[[], Awaitable[None]] | None = None
        self.positions = Positions()
        self.gaps = 0  # batches that started beyond the expected offset (rule 1)
        self._marks: dict[TP, int] = {}  # acknowledged up to (exclusive), this generation

    def route(
        self,
        topics: set[str],
        handler: BatchHandler,
        before_revoke: Callable[[], Awaitable[None]],
    ) -> None:
        """Deliver `topics` to `handler`; `before_revoke` finishes the work in flight."""
        self.batch_topics = frozenset(topics)
        self.batch_handler = handler
        self.before_revoke = before_revoke

    # 2. acks and the commit ------------------------------------------------------------------

    def ack_through(self, tp: TP, offset: int, generation: int) -> bool:
        """Everything below `offset` on `tp` is done; False if it may no longer be said."""
        if generation != self.app.consumer_generation_id or self.positions.expected(tp) is None:
            return False
        if offset > self._marks.get(tp, -1):
            self._marks[tp] = offset
        return True

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in self._marks:
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self.batch_topics:
            return self._marks.get(tp)
        return super()._new_offset(tp)

    # 1. positions, and 4. revocation ---------------------------------------------------------

    async def perform_seek(self) -> None:
        """Seek to the committed offsets, as faust does, and expect delivery to start there."""
        await super().perform_seek()
        routed = {tp for tp in self.assignment() if tp.topic in self.batch_topics}
        starts = {tp: self._committed_offset.get(tp) for tp in routed}
        fresh = [tp for tp, offset in starts.items() if offset is None]
        if fresh:  # nothing committed yet: auto_offset_reset=earliest reads from the log start
            starts.update(await self.earliest_offsets(*fresh))
        self.positions.reset({tp: offset for tp, offset in starts.items() if offset is not None})
        self._marks = {tp: mark for tp, mark in self._marks.items() if tp in routed}

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        try:
            await self._finish_in_flight("rebalance")
        finally:
            self.positions.forget(revoked)
            for tp in revoked:
                self._marks.pop(tp, None)
            await super().on_partitions_revoked(revoked)

    async def on_stop(self) -> None:
        try:
            await self._finish_in_flight("stop")
        finally:
            await super().on_stop()

    async def _finish_in_flight(self, why: str) -> None:
        """Finish, acknowledge and commit the work in flight; past the bound, stop the worker.

        Work that cannot finish (ClickHouse down, the producer stuck) would go on writing
        states and replies for partitions that are someone else's by then, so it is not left
        running: the worker stops, and the partitions' next owners read those records again.
        """
        if self.before_revoke is None:
            return
        try:
            await asyncio.wait_for(self.before_revoke(), timeout=FINISH_BOUND)
        except TimeoutError as exc:
            log.critical("%s: in-flight batches did not finish in %.0fs; stopping", why,
                         FINISH_BOUND)  # fmt: skip
            await self.app.crash(exc)
            return
        # A commit already running (faust's timer) may predate these acknowledgements.
        await self.maybe_wait_for_commit_to_finish()
        await self.force_commit()

    # the drain loop ----------------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:
        """faust's fetch loop, delivering routed partitions per batch (see the module)."""
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if self.should_stop or not records:
                    continue
                if not self.flow_active:
                    # As faust's getmany: a fetch that returns while the flow is stopped is
                    # dropped, and every partition goes back to its committed offset. The
                    # positions stay: what was delivered is still in flight, and a rebalance
                    # resets them when it seeks (`perform_seek`).
                    try:
                        await super().perform_seek()
                    except Exception as exc:
                        log.warning("seek to the committed offsets failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    if not batch:
                        continue
                    routed = tp.topic in self.batch_topics
                    if (
                        not self.flow_active
                        or self.app.consumer_generation_id != generation
                        or (routed and self.app.rebalancing)
                    ):
                        # 3. Not now: a rebalance runs, and ends by seeking every partition to
                        # its committed offset (faust's recovery), which fetches these again;
                        # `Positions` catches any hole that seek would leave.
                        continue
                    if (
                        active is not None
                        and tp not in active
                        and tp not in self._buffered_partitions  # full buffer: still delivered
                    ):
                        # Paused while the fetch was out: faust drops these (its recovery
                        # rereads the changelog by its own highwaters); a routed partition is
                        # fetched again from them.
                        if routed:
                            await self.rewind(tp, batch[0].offset)
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if routed:
                        await self._deliver_batch(tp, batch, generation)
                    else:
                        await self._deliver_each(tp, batch)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            # A batch that cannot be handled (the producer gave up, a store refused a write):
            # left here, faust would keep the worker up with its fetcher dead. Stopping it
            # leaves the batch unacknowledged for the next worker (or this one, restarted).
            log.exception("Drain messages raised: %r", exc)
            await self.app.crash(exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_batch(self, tp: TP, batch: Sequence[Any], generation: int) -> None:
        records, back_to = self.positions.admit(tp, batch)
        if back_to is not None and not await self._still_on_the_log(tp, back_to):
            records, back_to = self.positions.admit(tp, batch)
        if back_to is not None:
            self.gaps += 1
            log.error(
                "%s[%d]: fetched from offset %d while %d comes next; reading again from %d",
                tp.topic, tp.partition, batch[0].offset, back_to, back_to,
            )  # fmt: skip
            await self.rewind(tp, back_to)
            return
        if not records:
            return
        assert self.batch_handler is not None
        await self.batch_handler(tp, records, generation)  # 6. the next fetch waits for it
        if self.app.consumer_generation_id == generation:  # else the rebalance reset them
            self.positions.delivered(tp, records[-1].offset)

    async def _still_on_the_log(self, tp: TP, offset: int) -> bool:
        """Whether `offset` can still be read; if retention deleted it, say so and move on.

        A worker that fell behind the topic's retention cannot read what was deleted: seeking
        back to it would reset to the log start again, forever.
        """
        start = (await self.earliest_offsets(tp)).get(tp)
        if start is None or offset >= start:
            return True
        log.critical(
            "%s[%d]: offsets %d-%d were deleted by retention before they were read",
            tp.topic, tp.partition, offset, start - 1,
        )  # fmt: skip
        self.positions.delivered(tp, start - 1)
        return False

    async def _deliver_each(self, tp: TP, batch: Sequence[Any]) -> None:
        """faust's own per-message delivery, for every topic not routed here."""
        for record in batch:
            offset = record.offset
            read = self._read_offset[tp]
            if read is None or offset >= read:
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                await self.wait_first(
                    self.callback(self._to_message(tp, record)), self.suspend_flow.wait()
                )
                self._read_offset[tp] = offset

    async def rewind(self, tp: TP, offset: int) -> None:
        """Fetch `tp` again from `offset`, if it is still ours (otherwise its owner will).

        The seek runs on the consumer's own thread (`seek_wait`): aiokafka is not thread-safe,
        and a seek made from this one can leave its fetcher waiting forever.
        """
        if tp in self.assignment():
            try:
                await self.seek_wait({tp: offset})
            except Exception as exc:  # e.g. revoked meanwhile: its next owner reads it
                log.warning("%s[%d]: could not seek back to %d: %r", tp.topic, tp.partition,
                            offset, exc)  # fmt: skip


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the batch-delivering consumer."""

    Consumer = BatchConsumer
