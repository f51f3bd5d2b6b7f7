"""State: an account's `AccountState` as the bytes kept in the faust table and its changelog.

The changelog outlives any one version of the code, so every value starts with its format:

- **v3** (written now for a state whose MessagePack is at most `COMPRESS_ABOVE` bytes, most of
  them): the byte `0x03`, then the state as MessagePack, field names and all, decoded by
  msgspec straight into the domain's frozen dataclasses. Fields a newer version adds are
  ignored, fields an older one lacks take their defaults.
- **v2** (written now for a larger state, e.g. a year of remembered outcomes): the byte `0x02`,
  then the same MessagePack as an LZ4 block: ~11 KB become ~1.9 KB.
- **v1** (read only): the JSON object (orjson) that earlier releases wrote, with ledgers and
  outcomes as positional lists (documented below). Its first byte is always `{`.

Why a small state is not compressed: python-lz4 releases the GIL for every call, and gets it
back only when the thread holding it lets go. The worker's ClickHouse thread holds it while it
serializes an insert; measured with one busy Python thread, one `lz4.block.decompress` of a
state took ~300 µs instead of ~1 µs. A small state gains a quarter in size from LZ4 (~690 B of
MessagePack, ~530 B compressed), not worth that.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import lz4.block
import msgspec
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

V3 = b"\x03"
V2 = b"\x02"
_V1 = b"{"

# MessagePack longer than this is compressed (v2); shorter is kept as is (v3).
COMPRESS_ABOVE = 1024


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(AccountState)


def encode_state(state: AccountState) -> bytes:
    """The bytes of a state, in the current format (v3, or v2 for a large state)."""
    packed = _ENCODER.encode(state)
    if len(packed) <= COMPRESS_ABOVE:
        return V3 + packed
    compressed: bytes = lz4.block.compress(packed, store_size=True)
    return V2 + compressed


def decode_state(raw: bytes) -> AccountState:
    """A state from the bytes of any format this or an earlier release wrote."""
    head = raw[:1]
    if head == V3:
        return _DECODER.decode(memoryview(raw)[1:])
    if head == V2:
        return _DECODER.decode(lz4.block.decompress(raw[1:]))
    if head == _V1:
        return _decode_v1(raw)
    raise ValueError(f"not an account state: starts {raw[:4]!r}")


def _decode_v1(raw: bytes) -> AccountState:
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


# v1 ledgers are compact positional lists:
# closed: [period, basis, start, end, days, actual, actual_on, [flags], closed_by]
# in/off: [period, value, on, submitted_at in epoch milliseconds]


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
