"""A meter zone's ledger: baselines, the plausible advance, closing periods (SPEC §2.4-2.5).

Every register value here is *unwrapped*: a rollover adds `10**digits`, so consumption is a
plain difference. A zone's ledger keeps its recently closed periods (end reading E, basis, and
A = the last actual measurement known at close, with its date) and, per open period, the
latest in-window and the latest off-window reading.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from streams.domain.calendar import Period, ReadingKind
from streams.domain.model import Meter, Reason
from streams.domain.zones import Zone

# A zone keeps this many recent closes: enough for "the same month last year" (12 back) and
# the closes a replayed close request must re-emit. Older actual/calculated closes that are
# still among the 3 most recent ones survive too (the fallback reference rate needs them).
KEPT_CLOSES = 13
REFERENCE_PERIODS = 3
# SPEC §2.4: H = max(2000 x ceil(n / 30), 3 x r x n).
ADVANCE_PER_30_DAYS = 2000
ADVANCE_RATE_FACTOR = 3


class Basis(enum.StrEnum):
    ACTUAL = "actual"
    CALCULATED = "calculated"
    ESTIMATED = "estimated"
    FINAL = "final"


class Flag(enum.StrEnum):
    ZERO_CONSUMPTION = "zero_consumption"
    ESTIMATE_CORRECTION = "estimate_correction"
    ROLLOVER = "rollover"
    NO_HISTORY = "no_history"
    PROLONGED_ESTIMATION = "prolonged_estimation"


MEASURED = (Basis.ACTUAL, Basis.CALCULATED)


@dataclass(frozen=True, slots=True)
class Mark:
    """A reading kept for an open period: unwrapped value, the date it stands for, when sent."""

    value: int
    on: date
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """One closed period of a zone: E(P), its basis, and the floor A(P) known at close."""

    period: Period
    basis: Basis
    start: int  # B: E of the period before (or the initial reading)
    end: int  # E(P)
    days: int  # days the meter was active in the period
    actual: int  # A(P): the last actual measured value known when P closed
    actual_on: date  # the date A(P) stands for
    flags: tuple[Flag, ...]
    closed_by: Period  # the close request that closed it: a replayed request re-emits it

    @property
    def kwh(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ZoneLedger:
    closed: tuple[ClosedPeriod, ...] = ()
    in_window: tuple[tuple[Period, Mark], ...] = ()
    off_window: tuple[tuple[Period, Mark], ...] = ()

    def latest(self, kind: ReadingKind, period: Period) -> Mark | None:
        marks = self.in_window if kind is ReadingKind.IN_WINDOW else self.off_window
        return next((mark for p, mark in marks if p == period), None)

    def with_reading(self, kind: ReadingKind, period: Period, mark: Mark) -> ZoneLedger:
        """Latest submission wins within a period (ties: the one processed last)."""
        current = self.latest(kind, period)
        if current is not None and current.submitted_at > mark.submitted_at:
            return self
        marks = self.in_window if kind is ReadingKind.IN_WINDOW else self.off_window
        kept = tuple(sorted(((p, m) for p, m in marks if p != period), key=_first))
        merged = tuple(sorted((*kept, (period, mark)), key=_first))
        if kind is ReadingKind.IN_WINDOW:
            return ZoneLedger(self.closed, merged, self.off_window)
        return ZoneLedger(self.closed, self.in_window, merged)


def _first(pair: tuple[Period, Mark]) -> Period:
    return pair[0]


@dataclass(frozen=True, slots=True)
class Baseline:
    """B (the last end reading), F (the last actual) and the date F stands for."""

    baseline: int
    floor: int
    floor_on: date


def baseline_of(meter: Meter, zone: Zone, ledger: ZoneLedger) -> Baseline:
    """B and F of a zone: from its last closed period, or the installation."""
    if ledger.closed:
        last = ledger.closed[-1]
        return Baseline(last.end, last.actual, last.actual_on)
    initial = meter.initial[zone]
    return Baseline(initial, initial, meter.installed_on)


@dataclass(frozen=True, slots=True)
class ReferenceRate:
    """kWh per day used for estimates and for the plausible advance: `kwh` over `days`."""

    kwh: int  # never negative: the rate is never below 0
    days: int
    no_history: bool

    @property
    def per_day(self) -> Fraction:
        return Fraction(self.kwh, self.days) if self.days else Fraction(0)


_NO_HISTORY = ReferenceRate(0, 0, True)


def reference_rate(ledger: ZoneLedger, period: Period) -> ReferenceRate:
    """Same month last year if measured, else the last up to 3 measured closes, else 0."""
    measured = [c for c in ledger.closed if c.basis in MEASURED and c.period < period]
    last_year = (period.year - 1, period.month)
    for close in measured:
        if (close.period.year, close.period.month) == last_year and close.days > 0:
            return ReferenceRate(max(0, close.kwh), close.days, False)
    recent = measured[-REFERENCE_PERIODS:]
    days = sum(c.days for c in recent)
    if days > 0:
        return ReferenceRate(max(0, sum(c.kwh for c in recent)), days, False)
    return _NO_HISTORY


def plausible_advance(base: Baseline, rate: ReferenceRate, on: date) -> int:
    """H, in whole kWh (rounded down: it bounds whole kWh): the most a zone can plausibly
    advance from the floor's date to `on`."""
    days = max(1, (on - base.floor_on).days)
    by_rate = ADVANCE_RATE_FACTOR * rate.kwh * days // rate.days if rate.days else 0
    return max(ADVANCE_PER_30_DAYS * -(-days // 30), by_rate)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A reading against the baseline: accepted (value, kwh, flags) or the reason it fails."""

    value: int = 0  # unwrapped
    kwh: int = 0
    flags: tuple[Flag, ...] = ()
    reason: Reason | None = None
    detail: str = ""
    baseline: int = 0  # B as the display shows it
    previous: int | None = None  # a failure: the reading it is held against, as displayed

    @property
    def passes(self) -> bool:
        return self.reason is None


def earlier_open_reading(ledger: ZoneLedger, period: Period) -> Mark | None:
    """L: the latest accepted reading of the still-open periods before `period` (SPEC §2.4).

    A zone keeps the latest reading of each kind per open period, so the latest of all of
    them (by `submitted_at`) is among those kept. Readings of `period` itself are not looked at:
    within a period the latest submission wins, so a typo can be corrected downwards.
    """
    earlier = [mark for p, mark in (*ledger.in_window, *ledger.off_window) if p < period]
    return max(earlier, key=_submitted_at, default=None)


def _submitted_at(mark: Mark) -> datetime:
    return mark.submitted_at


def evaluate_reading(
    meter: Meter, zone: Zone, ledger: ZoneLedger, value: int, on: date, period: Period
) -> Evaluation:
    """Place a displayed value against B and the floor max(F, L) (SPEC §2.4)."""
    base = baseline_of(meter, zone, ledger)
    modulus = meter.modulus
    limit = plausible_advance(base, reference_rate(ledger, period), on)
    b = base.baseline
    earlier = earlier_open_reading(ledger, period)
    # The floor: F, or the reading of a still-open earlier period if that is higher (the May
    # window reading bounds a June reading that arrives before May is closed).
    floor = base.floor if earlier is None else max(base.floor, earlier.value)
    placed = b - b % modulus + value  # in B's lap
    if placed >= b and placed >= floor:
        if placed - b <= limit:
            return _accepted(placed, b, modulus)
        if placed - modulus >= floor:
            # B has wrapped (an estimate crossed the modulus) but the reading is still in the
            # floor's lap: a correction of the over-estimate, not a huge advance.
            return _accepted(placed - modulus, b, modulus)
        return Evaluation(
            reason=Reason.IMPLAUSIBLY_HIGH,
            detail=f"{placed - b} kWh since {b % modulus} is above the plausible {limit}",
            baseline=b % modulus,
            previous=max(b, floor) % modulus,  # the customer's own last reading, if it is later
        )
    if placed >= floor:
        return _accepted(placed, b, modulus)  # F <= v < B: it corrects an over-estimate
    # Below the floor: a rollover only if, wrapped past the floor, it stays within H of B.
    wrapped = lowest_unwrapped(value, floor, modulus)
    if wrapped - b <= limit:
        return _accepted(wrapped, b, modulus, rollover=True)
    return _below(value, floor, b, modulus)


def _below(value: int, floor: int, baseline: int, modulus: int) -> Evaluation:
    return Evaluation(
        reason=Reason.BELOW_PREVIOUS,
        detail=f"{value} is below the previous {floor % modulus}",
        baseline=baseline % modulus,
        previous=floor % modulus,
    )


def _accepted(value: int, baseline: int, modulus: int, *, rollover: bool = False) -> Evaluation:
    kwh = value - baseline
    flags = []
    if kwh == 0:
        flags.append(Flag.ZERO_CONSUMPTION)
    if kwh < 0:
        flags.append(Flag.ESTIMATE_CORRECTION)
    if rollover:
        flags.append(Flag.ROLLOVER)
    return Evaluation(value=value, kwh=kwh, flags=tuple(flags), baseline=baseline % modulus)


def round_half_up(value: Fraction) -> int:
    """Whole kWh, halves rounded up (SPEC §2: volumes are integers, rounding half-up)."""
    return int(
        (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    )


def active_days(meter: Meter, period: Period, since: date | None = None) -> int:
    """Days the meter was active from `since` (default: max(1st, installed_on)) to the end of
    `period` or the removal."""
    start = since or max(period.first_day, meter.installed_on)
    end = min(period.end, meter.removed_on) if meter.removed_on else period.end
    return max(0, (end - start).days)


def final_period(meter: Meter) -> Period | None:
    """The period a removed meter is billed `final` in: the one its last active day is in."""
    return Period.of(meter.removed_on - timedelta(days=1)) if meter.removed_on else None


def active_in(meter: Meter, period: Period) -> bool:
    """Whether the meter was active on any day of the period."""
    return meter.installed_on <= period.last_day and (
        meter.removed_on is None or meter.removed_on > period.first_day
    )


def close_zone(
    meter: Meter, zone: Zone, ledger: ZoneLedger, period: Period, closed_by: Period
) -> tuple[ZoneLedger, ClosedPeriod]:
    """Close one period of one zone (SPEC §2.5) and drop that period's open readings."""
    base = baseline_of(meter, zone, ledger)
    b = base.baseline
    start = max(period.first_day, meter.installed_on)
    if not ledger.closed:
        # The meter's first bill starts from its initial reading, so it covers the days since
        # its installation, also when that lies in a period closed before the installation
        # reached us (a late exchange): nothing is lost, and kWh / days stays a true rate.
        start = meter.installed_on
    days = active_days(meter, period, start)
    flags: list[Flag] = []
    actual, actual_on = base.floor, base.floor_on
    in_window = ledger.latest(ReadingKind.IN_WINDOW, period)
    off_window = ledger.latest(ReadingKind.OFF_WINDOW, period)
    if final_period(meter) == period and meter.final is not None and zone in meter.final:
        basis = Basis.FINAL
        end = lowest_unwrapped(meter.final[zone], base.floor, meter.modulus)
        actual, actual_on = end, meter.removed_on or period.end
    elif in_window is not None:
        basis = Basis.ACTUAL
        end, actual, actual_on = in_window.value, in_window.value, period.end
    elif off_window is not None:
        basis = Basis.CALCULATED
        r, d = off_window.value, off_window.on
        # The rate since the period began, from B (SPEC §2.5); but when B is itself an estimate,
        # r - B is the consumption of every estimated month at once, so the rate is taken from
        # the last actual measurement F instead, over the days since it.
        since, since_on = (b, start)
        if ledger.closed and ledger.closed[-1].basis is Basis.ESTIMATED:
            since, since_on = base.floor, base.floor_on
        if d > since_on:
            per_day = Fraction(max(0, r - since), (d - since_on).days)
        else:
            per_day = reference_rate(ledger, period).per_day
        end = r + round_half_up(per_day * (period.end - d).days)
        actual, actual_on = r, d
    else:
        basis = Basis.ESTIMATED
        rate = reference_rate(ledger, period)
        end = b + round_half_up(rate.per_day * days)
        if rate.no_history:
            flags.append(Flag.NO_HISTORY)
        if len(ledger.closed) >= 2 and all(c.basis is Basis.ESTIMATED for c in ledger.closed[-2:]):
            flags.append(Flag.PROLONGED_ESTIMATION)
    kwh = end - b
    if kwh == 0 and basis in MEASURED:
        flags.insert(0, Flag.ZERO_CONSUMPTION)
    return _with_close(
        ledger,
        ClosedPeriod(period, basis, b, end, days, actual, actual_on, tuple(flags), closed_by),
        meter.modulus,
    )


def close_late_final(
    meter: Meter, zone: Zone, ledger: ZoneLedger, period: Period
) -> tuple[ZoneLedger, ClosedPeriod]:
    """Bill a removed meter `final` in `period`, the close request after its removal arrived.

    The removal reached us after the period of the meter's last active day was closed, so that
    period was billed as if the meter stayed; the final reading is billed now, once: kWh = the
    final reading - B, over 0 days (SPEC §2.5).
    """
    assert meter.final is not None and meter.removed_on is not None
    base = baseline_of(meter, zone, ledger)
    end = lowest_unwrapped(meter.final[zone], base.floor, meter.modulus)
    closed = ClosedPeriod(
        period, Basis.FINAL, base.baseline, end, 0, end, meter.removed_on, (), period
    )
    return _with_close(ledger, closed, meter.modulus)


def billed_final(ledger: ZoneLedger) -> bool:
    """Whether the zone's meter has had its final bill (nothing is ever closed after it)."""
    return bool(ledger.closed) and ledger.closed[-1].basis is Basis.FINAL


def _with_close(
    ledger: ZoneLedger, closed: ClosedPeriod, modulus: int
) -> tuple[ZoneLedger, ClosedPeriod]:
    """Add the flags every close carries, keep the close, drop the readings it settled."""
    flags = list(closed.flags)
    if closed.kwh < 0:
        flags.insert(0, Flag.ESTIMATE_CORRECTION)
    if closed.end // modulus > closed.start // modulus:
        flags.append(Flag.ROLLOVER)
    closed = replace(closed, flags=tuple(flags))
    period = closed.period
    return (
        ZoneLedger(
            closed=_prune((*ledger.closed, closed), closed.closed_by),
            in_window=tuple(pm for pm in ledger.in_window if pm[0] > period),
            off_window=tuple(pm for pm in ledger.off_window if pm[0] > period),
        ),
        closed,
    )


def _prune(closed: Iterable[ClosedPeriod], closed_by: Period) -> tuple[ClosedPeriod, ...]:
    """Drop old closes, but never those of the latest request (a replay re-emits them all)."""
    items = tuple(closed)
    measured = [c for c in items if c.basis in MEASURED][-REFERENCE_PERIODS:]
    return tuple(
        c
        for i, c in enumerate(items)
        if i >= len(items) - KEPT_CLOSES or c in measured or c.closed_by == closed_by
    )


def lowest_unwrapped(value: int, floor: int, modulus: int) -> int:
    """The lowest unwrapped value that shows `value` on the display and is not below `floor`."""
    placed = floor - floor % modulus + value
    return placed if placed >= floor else placed + modulus


@dataclass(frozen=True, slots=True)
class MeterLedger:
    """The ledgers of every zone of one meter."""

    meter_id: str
    zones: dict[Zone, ZoneLedger] = field(default_factory=dict)

    def zone(self, zone: Zone) -> ZoneLedger:
        return self.zones.get(zone) or ZoneLedger()
