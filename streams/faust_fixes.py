"""Two corrections to faust-streaming 0.15.3's offset bookkeeping, applied by the worker.

Both turn a silent loss into a safe wait; pokazy commits input offsets only after rows are in
ClickHouse, and these holes would commit past messages that were never processed:

1. `Consumer._add_gap` treats a jump between two fetched offsets as already processed (meant
   for compacted topics and transaction markers). pokazy's input topics have neither, so a jump
   can only mean faust dropped fetched messages, which happens when its start-up seek to the
   committed offsets races the fetcher (seen here: offsets 181-184 never reached the stream and
   were committed). Here a jump is never counted as processed.
2. `Consumer._new_offset` commits past an unacknowledged head message when the first
   acknowledged offset is exactly one above the committed one (faust issue #606), and skips the
   head check entirely when the committed offset is 0. Here the head must be acknowledged.

The worker also guards where it reads (`DeliveryGuard`): a message beyond the next expected
offset means faust skipped fetched messages (its start-up seek to the committed offsets can
race its fetcher), and the worker restarts itself to read them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

log = logging.getLogger(__name__)

_applied = False


async def _no_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """A jump in fetched offsets is never taken as processed (see the module docstring)."""


def _new_offset(self: Any, tp: TP) -> int | None:
    """The offset to commit: one past the run of acknowledged offsets at the committed head."""
    acked = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the head message is not acknowledged yet
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def apply() -> None:
    """Patch faust once per process."""
    global _applied
    if not _applied:
        Consumer._add_gap = _no_gap  # type: ignore[method-assign]
        Consumer._new_offset = _new_offset  # type: ignore[method-assign]
        _applied = True


class DeliveryGuard:
    """Notices input offsets faust skipped, and restarts the worker to read them.

    Per partition and consumer generation it expects the next offset (starting at the committed
    one). A message beyond it means faust never delivered the ones in between, and a seek back
    does not bring them (faust drops the re-fetch as already read). Nothing past the gap has
    been committed (see the patches above), so the worker replaces itself with a fresh process
    (`os.execv`, same pid): it rejoins the group and reads again from the committed offsets,
    which costs a replay and a rebalance, never a reading. A message below the expected offset
    is a redelivery and passes: pokazy's rules make reprocessing harmless.
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self._generation = -1
        self._next: dict[TP, int] = {}

    def admit(self, message: Any) -> None:
        """Return if the message may be processed now; otherwise restart the worker."""
        tp, offset = message.tp, message.offset
        if message.generation_id != self._generation:
            self._generation, self._next = message.generation_id, {}
        expected = self._next.get(tp, self.consumer._committed_offset.get(tp))
        if expected is not None and offset > expected:
            log.error(
                "%s[%d]: offsets %d-%d were not delivered; restarting the worker to read them",
                tp.topic, tp.partition, expected, offset - 1,
            )  # fmt: skip
            restart_process([sys.executable, "-m", "streams", "worker"])
        self._next[tp] = max(offset + 1, self._next.get(tp, 0))

    def undelivered(
        self, assigned: Iterable[TP], highwater: Callable[[TP], int | None]
    ) -> list[tuple[TP, int, int]]:
        """Input partitions holding records the agent has not been given: (tp, next, end).

        Asked while the agent has been idle for a while and no rebalance or recovery runs: the
        records beyond what it saw should have reached it by then. They do not when faust's
        start-up race drops the *last* fetched records of a partition, so no later offset comes
        to show the gap to `admit`; the worker then restarts itself in the same way.
        """
        stuck = []
        for tp in assigned:
            expected = self._next.get(tp, self.consumer._committed_offset.get(tp))
            end = highwater(tp)
            if expected is not None and end is not None and end > expected:
                stuck.append((tp, expected, end))
        return stuck


def restart_process(argv: list[str]) -> NoReturn:
    """Replace this process with `argv` (same pid), holding none of its files.

    An exec keeps every descriptor not marked close-on-exec, and the locks held through them:
    embedded ClickHouse's lock on its data directory would make the new process refuse to
    open it. Every descriptor above stderr is closed first.
    """
    logging.shutdown()
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.execv(argv[0], argv)
