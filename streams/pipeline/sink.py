"""Sink: the rows pokazy writes to ClickHouse, buffered and inserted in column-oriented batches.

The contract with the worker (the delivery order): rows are `add`ed while messages are
processed; `flush` inserts them and returns only once ClickHouse has them; only then does the
worker acknowledge the source messages, and faust commits acknowledged offsets later still.
A crash at any point before the commit costs a replay of those messages, whose rows carry the
same idempotency keys, so the analyst views (which read the replacing tables with FINAL) stay
free of duplicates. Nothing is ever acknowledged before it is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from streams.adapters.clickhouse import ClickHouse
from streams.domain.calendar import period_of
from streams.domain.closing import BillingLine
from streams.domain.model import ReadingOutcome, Reason, Submission, SubmissionOutcome
from streams.domain.validation import written_by
from streams.errors import RetryableError
from streams.pipeline.metrics import Metrics
from streams.settings import DEFAULT_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

T = TypeVar("T")

READING_COLUMNS = (
    "event_id", "account_id", "meter_id", "zone", "register", "value", "kind", "period",
    "local_date", "submitted_at", "channel", "sender_hash", "kwh", "flags", "ingested_at",
)  # fmt: skip
REJECTION_COLUMNS = (
    "row_key", "event_id", "account_id", "zone", "register", "value", "reason", "detail",
    "channel", "sender_hash", "submitted_at", "period", "payload", "rejected_at", "retracted",
)  # fmt: skip

BILLING_COLUMNS = (
    "account_id", "meter_id", "period", "zone", "basis", "start_reading", "end_reading", "kwh",
    "days", "flags", "closed_at",
)  # fmt: skip

Row = tuple[Any, ...]

# What `rejections` keeps of an oversized message's payload, and the longest detail text.
OVERSIZED_PAYLOAD_KEPT = 1024
MAX_DETAIL_CHARS = 500

# DateTime64 holds years 1900-2299; an out-of-range instant is stored as NULL in `rejections`.
_CLICKHOUSE_YEARS = range(1900, 2300)


def sender_hash(key: bytes, channel: str, sender_id: str) -> str:
    """HMAC-SHA256 of `channel:sender_id`: analysts can group by sender, never see the chat id."""
    return hmac.new(key, f"{channel}:{sender_id}".encode(), hashlib.sha256).hexdigest()


def reading_rows(
    submission: Submission,
    accepted: Sequence[ReadingOutcome],
    hashed_sender: str,
    now: datetime,
) -> list[Row]:
    """One `readings` row per accepted register reading."""
    return [
        (
            submission.event_id,
            submission.account_id,
            r.meter_id,
            r.zone,
            r.register,
            r.value,
            r.kind,
            str(r.period),
            r.local_date,
            submission.submitted_at,
            submission.channel,
            hashed_sender,
            r.kwh,
            list(r.flags),
            now,
        )
        for r in accepted
    ]


def rejection_rows(
    submission: Submission,
    rejected: Sequence[ReadingOutcome],
    hashed_sender: str,
    payload: bytes,
    now: datetime,
) -> list[Row]:
    """One `rejections` row per rejected reading (one for a whole malformed submission)."""
    at = submission.submitted_at
    in_range = at.year in _CLICKHOUSE_YEARS
    period = str(period_of(at)) if in_range else ""
    return [
        (
            f"{submission.event_id}:{r.position}",
            submission.event_id,
            submission.account_id,
            r.zone,
            r.register,
            r.value,
            r.reason,
            bounded_detail(r.detail),
            submission.channel,
            hashed_sender,
            at if in_range else None,
            period,
            payload,
            now,
            False,
        )
        for r in rejected
    ]


def retraction_rows(
    event_id: str, account_id: str, positions: Sequence[int], payload: bytes, now: datetime
) -> list[Row]:
    """Rows that withdraw what a replayed message's earlier pass left in `rejections` (0004).

    One per position given (key `<event_id>:<position>`, -1 for a whole-submission rejection),
    and one for the key under which an earlier pass may have kept the message as
    INTERNAL_ERROR: judged now, it has rows of its own. Withdrawing a rejection that never
    existed leaves nothing visible, so they are written unconditionally.
    """
    keys = [f"{event_id}:{position}" for position in positions]
    keys.append(internal_error_key(payload))
    return [
        (key, event_id, account_id, None, None, None, "", "", "", "", None, "", b"", now, True)
        for key in keys
    ]


def payload_key(payload: bytes) -> str:
    """The `rejections` key of a message refused whole (unreadable, unauthorized)."""
    return f"sha256:{hashlib.sha256(payload).hexdigest()}"


def internal_error_key(payload: bytes) -> str:
    """The `rejections` key of a message kept as INTERNAL_ERROR.

    Its own prefix: a replay that judges the message retracts this key and nothing else, so a
    refusal of the same bytes (sent under a wrong key, say) stays visible.
    """
    return f"internal:{hashlib.sha256(payload).hexdigest()}"


def submission_rows(
    submission: Submission,
    outcome: SubmissionOutcome,
    duplicate: bool,
    hashed_sender: str,
    payload: bytes,
    now: datetime,
    *,
    replayed: bool = False,
) -> tuple[list[Row], list[Row]]:
    """The `readings` and `rejections` rows a judged submission writes (which ones is the
    domain's rule, `streams.domain.validation.written_by`), and the withdrawals of a replay."""
    written = written_by(submission, outcome, duplicate=duplicate, replayed=replayed)
    rejections = rejection_rows(submission, written.rejected, hashed_sender, payload, now)
    if written.replay:
        rejections += retraction_rows(
            submission.event_id, submission.account_id, written.withdrawn, payload, now
        )
    return reading_rows(submission, written.accepted, hashed_sender, now), rejections


def billing_rows(lines: Sequence[BillingLine], closed_at: datetime) -> list[Row]:
    """One `billing` row per closed meter zone."""
    return [
        (
            line.account_id,
            line.meter_id,
            str(line.closed.period),
            str(line.zone),
            str(line.closed.basis),
            line.start_reading,
            line.end_reading,
            line.closed.kwh,
            line.closed.days,
            [str(f) for f in line.closed.flags],
            closed_at,
        )
        for line in lines
    ]


def undecodable_row(
    payload: bytes,
    detail: str,
    now: datetime,
    *,
    reason: str = "MALFORMED",
    max_payload: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Row:
    """The `rejections` row of a message that cannot be judged (unreadable, or a defect).

    The key is the hash of the whole payload, so a redelivered message replaces its twin; what
    is stored is bounded (`stored_payload`, `bounded_detail`), whatever a producer sends.
    """
    key = internal_error_key(payload) if reason == Reason.INTERNAL_ERROR else payload_key(payload)
    return (
        key, "", "", None, None, None, reason, bounded_detail(detail), "", "",
        None, "", stored_payload(payload, max_payload), now, False,
    )  # fmt: skip


def stored_payload(payload: bytes, max_payload: int) -> bytes:
    """The payload as `rejections` keeps it: whole up to `max_payload`, else its first 1 KiB.

    A payload within the message limit is kept byte for byte, for `rejections replay`. A larger
    one was refused unread and can never be replayed; its head (header, fingerprint, the first
    ids) is enough to find who sent it, and keeps a flood of huge messages from filling
    ClickHouse.
    """
    return payload if len(payload) <= max_payload else payload[:OVERSIZED_PAYLOAD_KEPT]


def bounded_detail(detail: str) -> str:
    """A detail text cut to `MAX_DETAIL_CHARS`: details quote input and exception texts."""
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[: MAX_DETAIL_CHARS - 3] + "..."


def _columns(rows: Sequence[Row], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows taken from the buffer together, written together."""

    readings: list[Row]
    rejections: list[Row]
    billing: list[Row]

    def __len__(self) -> int:
        return len(self.readings) + len(self.rejections) + len(self.billing)


class ClickHouseSink:
    """Buffers rows and inserts them, retrying with backoff until ClickHouse takes them."""

    def __init__(self, clickhouse: ClickHouse, metrics: Metrics | None = None) -> None:
        self.clickhouse = clickhouse
        self.metrics = metrics or Metrics()
        # chdb is in-process and blocking: every call runs on this one thread, off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._readings: list[Row] = []
        self._rejections: list[Row] = []
        self._billing: list[Row] = []
        # Read when scraped, not set per row.
        self.metrics.sink_pending_rows.set_function(lambda: self.pending_rows)

    @property
    def pending_rows(self) -> int:
        """Rows buffered and not yet taken for a write."""
        return len(self._readings) + len(self._rejections) + len(self._billing)

    def add(
        self,
        readings: Sequence[Row] = (),
        rejections: Sequence[Row] = (),
        billing: Sequence[Row] = (),
    ) -> None:
        self._readings.extend(readings)
        self._rejections.extend(rejections)
        self._billing.extend(billing)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a ClickHouse call on the ClickHouse thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def take(self) -> Batch:
        """Detach everything buffered as one batch; new rows go to a fresh buffer."""
        batch = Batch(self._readings, self._rejections, self._billing)
        self._readings, self._rejections, self._billing = [], [], []
        return batch

    async def write(self, batch: Batch) -> None:
        """Insert a batch; returns only when all of it is in ClickHouse, or raises
        `InsertRefused` for rows ClickHouse will never take."""
        await self._insert("readings_log", READING_COLUMNS, batch.readings)
        await self._insert("rejections_log", REJECTION_COLUMNS, batch.rejections)
        await self._insert("billing_log", BILLING_COLUMNS, batch.billing)

    async def flush(self) -> None:
        """Insert everything buffered; returns only when it is all in ClickHouse."""
        await self.write(self.take())

    async def _insert(self, table: str, names: Sequence[str], rows: list[Row]) -> None:
        if not rows:
            return
        columns = _columns(rows, len(names))
        # An outage is retried forever: dropping rows would lose readings, and the
        # unacknowledged messages behind them hold the partition's offset where it is until
        # ClickHouse takes them. The health endpoint turns unhealthy while this lasts. Rows
        # ClickHouse refuses for good (`InsertRefused`: a schema out of date, a value that does
        # not fit its column) are raised at once: retrying them would stall the partition
        # forever as if it were an outage.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RetryableError),
            wait=wait_exponential(multiplier=0.2, max=30),
            before_sleep=self._log_retry,
            reraise=True,
        ):
            with attempt:
                started = time.monotonic()
                await self.call(lambda: self.clickhouse.insert(table, columns, names))
        self.metrics.sink_insert_seconds.observe(time.monotonic() - started)
        self.metrics.sink_batch_rows.observe(len(rows))
        self.metrics.sink_last_insert.set(time.time())

    def _log_retry(self, state: Any) -> None:
        self.metrics.sink_retries.inc()
        log.error(
            "ClickHouse insert failed (attempt %d), retrying in %.1fs: %s",
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0.0,
            state.outcome.exception() if state.outcome else "",
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.clickhouse.close()
