"""What the domain core says the pipeline must produce, computed in-process with no broker.

Runs the same pure functions the worker runs, in publish order per account, so an integration
test compares the ClickHouse views with an independent run of the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from streams.adapters.avro import default_codec
from streams.adapters.decode import (
    READING_SUBMITTED,
    decode_inbound,
)
from streams.domain.account import AccountState
from streams.domain.calendar import Period
from streams.domain.closing import close_period
from streams.domain.model import MeterInstalled, MeterRemoved, Rules, Submission
from streams.domain.validation import apply_registry_event, apply_submission
from streams.sdk.producer import encode_registry

Row = tuple[Any, ...]


@dataclass
class ReferenceRun:
    """The core's own run over the same events: the figures the views must show."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    states: dict[str, AccountState | None] = field(default_factory=dict)
    readings: set[Row] = field(
        default_factory=set
    )  # (event_id, zone, value, kind, period, date, kwh)
    rejections: set[tuple[str, str]] = field(default_factory=set)  # (event_id, reason)
    rejection_rows: int = 0
    billing: set[Row] = field(default_factory=set)

    def registry(self, events: Iterable[Mapping[str, Any]]) -> None:
        for obj in events:
            event = decode_inbound(encode_registry(obj)[1])
            assert isinstance(event, MeterInstalled | MeterRemoved)
            self.states[event.account_id] = apply_registry_event(
                self.states.get(event.account_id), event
            )

    def submit(self, submissions: Iterable[Mapping[str, Any]]) -> None:
        codec = default_codec()
        for obj in submissions:
            submission = decode_inbound(
                codec.encode(READING_SUBMITTED, codec.from_json(READING_SUBMITTED, obj))
            )
            assert isinstance(submission, Submission)
            state, outcome, duplicate = apply_submission(
                self.states.get(submission.account_id), submission, now=self.now, rules=Rules()
            )
            if state is not None:
                self.states[submission.account_id] = state
            if duplicate:
                continue
            for r in outcome.accepted:
                self.readings.add(
                    (submission.event_id, str(r.zone), r.value, str(r.kind), str(r.period),
                     r.local_date, r.kwh)
                )  # fmt: skip
            for r in outcome.rejected:
                self.rejections.add((submission.event_id, str(r.reason)))
                self.rejection_rows += 1

    def close(self, period: Period) -> None:
        for account, state in list(self.states.items()):
            if state is None:
                continue
            self.states[account], lines = close_period(state, period)
            for line in lines:
                self.billing.add(
                    (line.account_id, line.meter_id, str(line.closed.period), str(line.zone),
                     str(line.closed.basis), line.start_reading, line.end_reading,
                     line.closed.kwh, tuple(str(f) for f in line.closed.flags))
                )  # fmt: skip


READINGS_SQL = "SELECT event_id, zone, value, kind, period, local_date, kwh FROM {db}.readings"
BILLING_SQL = (
    "SELECT account_id, meter_id, period, zone, basis, start_reading, end_reading, kwh, flags "
    "FROM {db}.billing"
)


def actual_readings(rows: Iterable[Mapping[str, Any]]) -> set[Row]:
    return {
        (r["event_id"], r["zone"], r["value"], r["kind"], r["period"],
         date.fromisoformat(str(r["local_date"])), r["kwh"])
        for r in rows
    }  # fmt: skip


def actual_billing(rows: Iterable[Mapping[str, Any]]) -> set[Row]:
    return {
        (r["account_id"], r["meter_id"], r["period"], r["zone"], r["basis"], r["start_reading"],
         r["end_reading"], r["kwh"], tuple(r["flags"]))
        for r in rows
    }  # fmt: skip
