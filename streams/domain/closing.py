"""Closing a billing period for one account (SPEC §2.5): explicit, idempotent, in order.

Closing P first closes every earlier open period of each meter, oldest first, and bills
`final` the meters whose removal arrived after their last active period was closed. Closing a
period that is already closed changes nothing and returns the same billing lines again, so a
replayed close request rewrites exactly the rows the first one wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.domain.account import AccountState
from streams.domain.calendar import Period
from streams.domain.ledger import (
    ClosedPeriod,
    MeterLedger,
    active_in,
    billed_final,
    close_late_final,
    close_zone,
    final_period,
)
from streams.domain.model import Meter
from streams.domain.zones import Zone


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One `billing` row: an account's meter zone in a closed period."""

    account_id: str
    meter_id: str
    zone: Zone
    modulus: int
    closed: ClosedPeriod

    @property
    def start_reading(self) -> int:
        """B as the display showed it."""
        return self.closed.start % self.modulus

    @property
    def end_reading(self) -> int:
        """E as the display shows (or would show) it."""
        return self.closed.end % self.modulus


def close_period(state: AccountState, period: Period) -> tuple[AccountState, list[BillingLine]]:
    """Close `period` (and any earlier open one) for every meter of the account."""
    if state.closed_through is not None and period <= state.closed_through:
        return state, billing_lines(state, closed_by=period)
    first = _first_open_period(state)
    if first is None:
        return replace(state, closed_through=period), []
    state, lines = _bill_late_removals(state, period)
    current = first
    while current <= period:
        state, closed = _close_one(state, current, closed_by=period)
        lines.extend(closed)
        current = current.next()
    return replace(state, closed_through=period), lines


def billing_lines(state: AccountState, *, closed_by: Period) -> list[BillingLine]:
    """The lines a close request produced, from the closes the ledgers remember."""
    meters = {m.meter_id: m for m in state.meters}
    return [
        BillingLine(state.account_id, meter_id, zone, meters[meter_id].modulus, closed)
        for meter_id, ledger in state.ledgers.items()
        if meter_id in meters
        for zone, zone_ledger in ledger.zones.items()
        for closed in zone_ledger.closed
        if closed.closed_by == closed_by
    ]


def _first_open_period(state: AccountState) -> Period | None:
    if state.closed_through is not None:
        return state.closed_through.next()
    if not state.meters:
        return None
    return Period.of(min(m.installed_on for m in state.meters))


def _bill_late_removals(
    state: AccountState, period: Period
) -> tuple[AccountState, list[BillingLine]]:
    """Bill `final` in `period` each meter whose removal arrived after its last active period
    was closed (SPEC §2.5). Once: a meter billed final is never billed again."""
    closed_through = state.closed_through
    lines = []
    for meter in state.meters:
        last_active = final_period(meter)
        if meter.final is None or last_active is None:
            continue
        if closed_through is None or last_active > closed_through:
            continue  # its final period is still open: billed `final` when that one closes
        ledger = state.ledgers.get(meter.meter_id) or MeterLedger(meter.meter_id)
        zones = dict(ledger.zones)
        for zone in meter.zones:
            if zone not in meter.final or billed_final(ledger.zone(zone)):
                continue
            zones[zone], closed = close_late_final(meter, zone, ledger.zone(zone), period)
            lines.append(_line(state, meter, zone, closed))
        state = replace(
            state, ledgers={**state.ledgers, meter.meter_id: MeterLedger(meter.meter_id, zones)}
        )
    return state, lines


def _close_one(
    state: AccountState, period: Period, *, closed_by: Period
) -> tuple[AccountState, list[BillingLine]]:
    lines = []
    for meter in state.meters:
        if not active_in(meter, period):
            continue
        ledger = state.ledgers.get(meter.meter_id) or MeterLedger(meter.meter_id)
        zones = dict(ledger.zones)
        for zone in meter.zones:
            zones[zone], closed = close_zone(meter, zone, ledger.zone(zone), period, closed_by)
            lines.append(_line(state, meter, zone, closed))
        state = replace(
            state, ledgers={**state.ledgers, meter.meter_id: MeterLedger(meter.meter_id, zones)}
        )
    return state, lines


def _line(state: AccountState, meter: Meter, zone: Zone, closed: ClosedPeriod) -> BillingLine:
    return BillingLine(state.account_id, meter.meter_id, zone, meter.modulus, closed)
