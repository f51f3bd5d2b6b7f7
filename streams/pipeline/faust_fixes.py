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

They guard the topics faust still delivers per message; the input topics are delivered per batch
by `streams.pipeline.delivery`, which never delivers past a hole (its rule 1).
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

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
