"""State: an account's `AccountState` as the bytes kept in the faust table and its changelog.

JSON (orjson) rather than pickle: the changelog outlives any one version of the code, so the
format is explicit and readable, and unknown keys from a newer version are ignored.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from streams.domain.calendar import Period, ReadingKind
from streams.domain.model import (
    AccountState,
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
            "recent": [_outcome(o) for o in state.recent],
        }
    )


def decode_state(raw: bytes) -> AccountState:
    data = orjson.loads(raw)
    return AccountState(
        account_id=data["account_id"],
        meters=tuple(_meter_from(m) for m in data["meters"]),
        recent=tuple(_outcome_from(o) for o in data["recent"]),
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
            ]
            for r in outcome.readings
        ],
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
        ) = row[:12]  # a newer version may append items; this one ignores them
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
            )
        )
    return SubmissionOutcome(data["event_id"], data["account_id"], tuple(readings))
