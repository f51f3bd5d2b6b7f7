"""What the domain core says the pipeline must produce for a registry and submission files.

Runs the same pure functions the worker runs, in publish order per account, with no broker,
so an integration test compares the ClickHouse views with an independent in-process run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.codec import default_codec
from streams.decode import METER_INSTALLED, METER_REMOVED, READING_SUBMITTED, decode_inbound
from streams.domain.model import AccountState, MeterInstalled, MeterRemoved, Rules, Submission
from streams.domain.validation import apply_registry_event, apply_submission


@dataclass
class Expected:
    readings: set[tuple[Any, ...]] = field(
        default_factory=set
    )  # (event_id, zone, value, kind, period, local_date)
    rejections: set[tuple[str, str]] = field(default_factory=set)  # (event_id, reason) per row
    rejection_rows: int = 0


def expected_views(
    registry: Iterable[Mapping[str, Any]],
    submissions: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
) -> Expected:
    codec = default_codec()
    names = {"MeterInstalled": METER_INSTALLED, "MeterRemoved": METER_REMOVED}
    states: dict[str, AccountState | None] = {}
    for obj in registry:
        name = names[obj["type"]]
        body = {k: v for k, v in obj.items() if k != "type"}
        event = decode_inbound(codec.encode(name, codec.from_json(name, body)))
        assert isinstance(event, MeterInstalled | MeterRemoved)
        states[event.account_id] = apply_registry_event(states.get(event.account_id), event)
    expected = Expected()
    clock = now or datetime.now(UTC)
    for obj in submissions:
        submission = decode_inbound(
            codec.encode(READING_SUBMITTED, codec.from_json(READING_SUBMITTED, obj))
        )
        assert isinstance(submission, Submission)
        state, outcome, duplicate = apply_submission(
            states.get(submission.account_id), submission, now=clock, rules=Rules()
        )
        if submission.account_id in states or state is not None:
            states[submission.account_id] = state
        if duplicate:
            continue
        for r in outcome.accepted:
            expected.readings.add(
                (submission.event_id, str(r.zone), r.value, str(r.kind), str(r.period),
                 r.local_date)
            )  # fmt: skip
        for r in outcome.rejected:
            expected.rejections.add((submission.event_id, str(r.reason)))
            expected.rejection_rows += 1
    return expected


def actual_readings(rows: Iterable[Mapping[str, Any]]) -> set[tuple[Any, ...]]:
    from datetime import date

    return {
        (r["event_id"], r["zone"], r["value"], r["kind"], r["period"],
         date.fromisoformat(str(r["local_date"])))
        for r in rows
    }  # fmt: skip
