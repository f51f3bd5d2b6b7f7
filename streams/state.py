"""State: an account's `AccountState` as the bytes kept in the faust table and its changelog.

JSON (orjson) rather than pickle: the changelog outlives any one version of the code, so the
format is explicit and readable, and unknown keys from a newer version are ignored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from streams.domain.account import AccountState
from streams.domain.calendar import Period, ReadingKind
from streams.domain.ledger import Basis, ClosedPeriod, Flag, Mark, MeterLedger, ZoneLedger
from streams.domain.model import (
    Meter,
    ReadingOutcome,
    Reason,
    SubmissionOutcome,
)
from streams.domain.zones import Zone


def encode_state(state: AccountState) -> bytes:
    return orjson.dumps(
        {
            "account_id": state.account_id,
            "meters": [_meter(m) for m in state.meters],
            "ledgers": {
                meter_id: {str(zone): _zone_ledger(z) for zone, z in ledger.zones.items()}
                for meter_id, ledger in state.ledgers.items()
            },
            "closed_through": str(state.closed_through) if state.closed_through else None,
            "recent": [_outcome(o) for o in state.recent],
        }
    )


def decode_state(raw: bytes) -> AccountState:
    data = orjson.loads(raw)
    return AccountState(
        account_id=data["account_id"],
        meters=tuple(_meter_from(m) for m in data["meters"]),
        ledgers={
            meter_id: MeterLedger(
                meter_id, {Zone(zone): _zone_ledger_from(z) for zone, z in zones.items()}
            )
            for meter_id, zones in data.get("ledgers", {}).items()
        },
        closed_through=Period.parse(data["closed_through"]) if data.get("closed_through") else None,
        recent=tuple(_outcome_from(o) for o in data["recent"]),
    )


# Ledgers are the bulk of the state: compact positional lists, documented here.
# closed: [period, basis, start, end, days, actual, actual_on, [flags], closed_by]
# in/off: [period, value, on, submitted_at in epoch milliseconds]


def _zone_ledger(ledger: ZoneLedger) -> dict[str, Any]:
    return {
        "c": [
            [str(c.period), str(c.basis), c.start, c.end, c.days, c.actual,
             c.actual_on.isoformat(), [str(f) for f in c.flags], str(c.closed_by)]
            for c in ledger.closed
        ],
        "i": [_mark(p, m) for p, m in ledger.in_window],
        "o": [_mark(p, m) for p, m in ledger.off_window],
    }  # fmt: skip


def _mark(period: Period, mark: Mark) -> list[Any]:
    millis = (mark.submitted_at - _EPOCH) // timedelta(milliseconds=1)
    return [str(period), mark.value, mark.on.isoformat(), millis]


def _zone_ledger_from(data: dict[str, Any]) -> ZoneLedger:
    closed = tuple(
        ClosedPeriod(
            period=Period.parse(c[0]),
            basis=Basis(c[1]),
            start=c[2],
            end=c[3],
            days=c[4],
            actual=c[5],
            actual_on=date.fromisoformat(c[6]),
            flags=tuple(Flag(f) for f in c[7]),
            closed_by=Period.parse(c[8]),
        )
        for c in data["c"]
    )
    return ZoneLedger(closed, _marks_from(data["i"]), _marks_from(data["o"]))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _marks_from(items: list[list[Any]]) -> tuple[tuple[Period, Mark], ...]:
    return tuple(
        (
            Period.parse(p),
            Mark(value, date.fromisoformat(on), _EPOCH + timedelta(milliseconds=ms)),
        )
        for p, value, on, ms in items
    )


def _meter(meter: Meter) -> dict[str, Any]:
    return {
        "meter_id": meter.meter_id,
        "zones": list(meter.zones),
        "digits": meter.digits,
        "initial": {str(z): v for z, v in meter.initial.items()},
        "installed_on": meter.installed_on.isoformat(),
        "dso": meter.dso,
        "removed_on": meter.removed_on.isoformat() if meter.removed_on else None,
        "final": {str(z): v for z, v in meter.final.items()} if meter.final is not None else None,
    }


def _meter_from(data: dict[str, Any]) -> Meter:
    return Meter(
        meter_id=data["meter_id"],
        zones=tuple(Zone(z) for z in data["zones"]),
        digits=data["digits"],
        initial={Zone(k): v for k, v in data["initial"].items()},
        installed_on=date.fromisoformat(data["installed_on"]),
        dso=data["dso"],
        removed_on=date.fromisoformat(data["removed_on"]) if data["removed_on"] else None,
        final=(
            {Zone(k): v for k, v in data["final"].items()} if data["final"] is not None else None
        ),
    )


def _outcome(outcome: SubmissionOutcome) -> dict[str, Any]:
    return {
        "event_id": outcome.event_id,
        "account_id": outcome.account_id,
        "readings": [
            [
                r.position,
                r.zone,
                r.register,
                r.value,
                r.reason,
                r.detail,
                r.meter_id,
                r.kind,
                str(r.period) if r.period else None,
                r.local_date.isoformat() if r.local_date else None,
                r.kwh,
                list(r.flags),
                r.baseline,
                r.unwrapped,
            ]
            for r in outcome.readings
        ],
        "fingerprint": outcome.fingerprint,
    }


def _outcome_from(data: dict[str, Any]) -> SubmissionOutcome:
    readings = []
    for row in data["readings"]:
        (
            position,
            zone,
            register,
            value,
            reason,
            detail,
            meter_id,
            kind,
            period,
            day,
            kwh,
            flags,
            baseline,
            unwrapped,
        ) = (*row, None, None)[:14]  # older versions wrote 12 items, newer may add more
        readings.append(
            ReadingOutcome(
                position=position,
                zone=Zone(zone) if zone else None,
                register=register,
                value=value,
                reason=Reason(reason) if reason else None,
                detail=detail,
                meter_id=meter_id,
                kind=ReadingKind(kind) if kind else None,
                period=Period.parse(period) if period else None,
                local_date=date.fromisoformat(day) if day else None,
                kwh=kwh,
                flags=tuple(flags),
                baseline=baseline,
                unwrapped=unwrapped,
            )
        )
    return SubmissionOutcome(
        data["event_id"], data["account_id"], tuple(readings), data.get("fingerprint", "")
    )
