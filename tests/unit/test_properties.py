"""Properties of the domain core over whole histories of one meter (SPEC §2.2-2.5).

Two kinds of history:

- *honest*: a household consuming a steady number of kWh a day per zone reads its meter now and
  then (sometimes with a typo corrected a minute later) and billing closes every period whose
  window has ended. Every reading must be accepted (nobody is locked out), and every actual
  period must end on the true meter value of the latest window reading.
- *arbitrary*: any values at any dates, any close requests. Whatever is accepted or rejected,
  the bookkeeping invariants must hold.

Both check after every step: duplicates change nothing, a second close changes nothing, the
state survives encode/decode, and the closed periods chain (kWh sum to the last end reading
minus the initial one).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.calendar import (
    Period,
    ReadingKind,
    latest_closable_period,
    next_window_opens,
    place_reading,
)
from streams.domain.closing import BillingLine, billing_lines, close_period
from streams.domain.ledger import MEASURED, Basis, Flag, active_days
from streams.domain.model import Meter, MeterInstalled, ReadingOutcome, SubmissionOutcome
from streams.domain.validation import apply_registry_event, apply_submission
from streams.domain.zones import SINGLE_ZONE, TWO_ZONE, Zone
from streams.pipeline.state import decode_state, encode_state
from tests.builders import ACCOUNT, RULES, Scenario, local

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IN, OFF = ReadingKind.IN_WINDOW, ReadingKind.OFF_WINDOW


@dataclass(frozen=True)
class Read:
    gap: int  # days after the previous step
    hour: int
    minute: int
    zones: tuple[Zone, ...]  # the registers sent, in this order
    typo: int  # > 0: first sent this much too high, corrected a minute later
    values: tuple[int, ...] = ()  # arbitrary histories: the displayed values sent


@dataclass(frozen=True)
class Close:
    gap: int
    back: int  # months before the latest period whose window has ended


@dataclass(frozen=True)
class Again:
    """Redeliver the last submission and the meter's installation."""

    gap: int = 0


Step = Read | Close | Again


@dataclass(frozen=True)
class History:
    meter: Meter
    per_day: dict[Zone, int]
    steps: tuple[Step, ...]
    windows_only: bool


def meters() -> st.SearchStrategy[Meter]:
    @st.composite
    def build(draw: st.DrawFn) -> Meter:
        zones = draw(st.sampled_from([SINGLE_ZONE, TWO_ZONE]))
        digits = draw(st.sampled_from([5, 6]))
        modulus = 10**digits
        near_top = draw(st.booleans())
        values = st.integers(modulus - 1_500, modulus - 1) if near_top else st.integers(0, 50_000)
        initial = {zone: draw(values) for zone in zones}
        installed_on = draw(st.dates(date(2022, 1, 1), date(2023, 6, 30)))
        return Meter("M-1", zones, digits, initial, installed_on)

    return build()


@st.composite
def honest_histories(draw: st.DrawFn) -> History:
    meter = draw(meters())
    per_day = {zone: draw(st.integers(0, 40)) for zone in meter.zones}
    zone_orders = st.permutations(meter.zones).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: tuple(order[:n]))
    )
    read = st.builds(
        Read,
        gap=st.integers(0, 20),
        hour=st.integers(0, 23),
        minute=st.integers(0, 58),
        zones=zone_orders,
        typo=st.sampled_from([0, 0, 0, 1, 37, 500]),
    )
    close = st.builds(Close, gap=st.integers(0, 20), back=st.sampled_from([0, 0, 0, 1, 2]))
    step = st.one_of(read, read, close, st.builds(Again))
    steps = [draw(step) for _ in range(draw(st.integers(3, 30)))]
    return History(meter, per_day, tuple(steps), draw(st.booleans()))


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> History:
    meter = draw(meters())

    @st.composite
    def read(draw: st.DrawFn) -> Read:
        zones = draw(st.permutations(meter.zones))[: draw(st.integers(1, len(meter.zones)))]
        near = st.sampled_from(sorted(meter.initial.values())).flatmap(
            lambda v: st.integers(-300, 6_000).map(lambda d: (v + d) % meter.modulus)
        )
        value = st.one_of(near, near, near, st.integers(0, meter.modulus - 1))
        return Read(
            gap=draw(st.integers(0, 45)),
            hour=draw(st.integers(0, 23)),
            minute=draw(st.integers(0, 58)),
            zones=tuple(zones),
            typo=0,
            values=tuple(draw(value) for _ in zones),
        )

    close = st.builds(Close, gap=st.integers(0, 45), back=st.integers(-1, 3))
    step = st.one_of(read(), read(), close, st.builds(Again))
    steps = [draw(step) for _ in range(draw(st.integers(3, 30)))]
    return History(meter, {}, tuple(steps), False)


class Run:
    """Replays a history and checks the invariants after every step."""

    def __init__(self, history: History, *, honest: bool) -> None:
        self.history = history
        self.honest = honest
        self.meter = history.meter
        self.s = Scenario.of(self.meter)
        self.today = self.meter.installed_on
        self.first_lines: list[BillingLine] = []
        self.last_outcome: SubmissionOutcome | None = None
        # The true meter value and date of the latest accepted reading, per (period, kind), zone.
        self.truth: dict[tuple[Period, ReadingKind], dict[Zone, tuple[int, date]]] = {}

    def true_value(self, zone: Zone, day: date) -> int:
        return (
            self.meter.initial[zone]
            + self.history.per_day[zone] * (day - self.meter.installed_on).days
        )

    def run(self) -> None:
        for step in self.history.steps:
            self.today += timedelta(days=step.gap)
            if isinstance(step, Read):
                self.read(step)
            elif isinstance(step, Close):
                self.close(step)
            else:
                self.again()
            assert decode_state(encode_state(self.s.state)) == self.s.state
        self.check_chain()

    # --- steps ----------------------------------------------------------------------------------

    def read(self, step: Read) -> None:
        day = self.today
        if self.history.windows_only and place_reading(day).kind is OFF:
            day = next_window_opens(day)
        self.today = day
        at = local(f"{day.isoformat()} {step.hour:02d}:{step.minute:02d}")
        if self.honest:
            values = {zone: self.true_value(zone, day) for zone in step.zones}
            shown = {zone: value % self.meter.modulus for zone, value in values.items()}
            if step.typo:
                typo = {z: (v + step.typo) % self.meter.modulus for z, v in shown.items()}
                self.submit(at, typo)
            rows = self.submit(at + timedelta(minutes=1), shown)
            assert [row.reason for row in rows] == [None] * len(rows), rows
            placement = self.placement(day)
            latest = self.truth.setdefault(placement, {})
            for row in rows:
                assert row.zone is not None
                assert (row.period, row.kind) == placement
                latest[row.zone] = (values[row.zone], day)
                if self.history.windows_only:
                    # Unwrapped onto the right lap: the true value since installation.
                    assert row.unwrapped == values[row.zone]
        else:
            rows = self.submit(at, dict(zip(step.zones, step.values, strict=True)))
        for row in rows:
            if row.reason is None:
                assert row.kwh is not None
                assert ("zero_consumption" in row.flags) == (row.kwh == 0)
                assert ("estimate_correction" in row.flags) == (row.kwh < 0)
                assert row.unwrapped is not None
                assert row.unwrapped % self.meter.modulus == row.value

    def placement(self, day: date) -> tuple[Period, ReadingKind]:
        """SPEC §2.2, except that a window date of a month before the installation month (a
        meter installed on the 2nd, read on the 3rd) is an off-window reading of its own month."""
        placement = place_reading(day)
        if placement.period < Period.of(self.meter.installed_on):
            return Period.of(day), OFF
        return placement.period, placement.kind

    def submit(self, at: datetime, values: dict[Zone, int]) -> tuple[ReadingOutcome, ...]:
        submission = self.s.submission(at, **{str(z): v for z, v in values.items()})
        outcome = self.s.apply(submission)
        self.last_outcome = outcome
        return outcome.readings

    def again(self) -> None:
        before = self.s.state
        again = apply_registry_event(before, MeterInstalled(ACCOUNT, self.meter))
        assert again == before
        if self.s.last is None:
            return
        for now in (self.s.last.submitted_at, self.s.last.submitted_at + timedelta(days=40)):
            state, outcome, duplicate = apply_submission(before, self.s.last, now=now, rules=RULES)
            assert duplicate
            assert state == before
            assert outcome == self.last_outcome

    def close(self, step: Close) -> None:
        period = latest_closable_period(self.today).shift(-step.back)
        before = self.s.state
        state, lines = close_period(before, period)
        if before.closed_through is not None and period <= before.closed_through:
            assert state == before
            assert Counter(lines) == Counter(billing_lines(before, closed_by=period))
            return
        self.s.state = state
        # Closing the same period again changes nothing and returns the same lines.
        again_state, again = close_period(state, period)
        assert again_state == state
        assert Counter(again) == Counter(lines)
        assert state.closed_through == period
        for line in lines:
            self.check_line(line)
        self.first_lines.extend(lines)

    # --- checks ---------------------------------------------------------------------------------

    def check_line(self, line: BillingLine) -> None:
        closed = line.closed
        modulus = self.meter.modulus
        assert closed.kwh == closed.end - closed.start
        assert closed.actual <= closed.end  # F <= B
        assert closed.actual_on >= self.meter.installed_on
        assert closed.days == active_days(self.meter, closed.period) > 0
        flags = set(closed.flags)
        assert (Flag.ZERO_CONSUMPTION in flags) == (closed.kwh == 0 and closed.basis in MEASURED)
        assert (Flag.ESTIMATE_CORRECTION in flags) == (closed.kwh < 0)
        assert (Flag.ROLLOVER in flags) == (closed.end // modulus > closed.start // modulus)
        assert (line.start_reading, line.end_reading) == (
            closed.start % modulus,
            closed.end % modulus,
        )
        if not self.honest:
            return
        in_window = self.truth.get((closed.period, IN), {}).get(line.zone)
        off_window = self.truth.get((closed.period, OFF), {}).get(line.zone)
        if in_window is not None:
            assert closed.basis is Basis.ACTUAL
            assert closed.actual_on == closed.period.end
            if self.history.windows_only:
                assert closed.end == in_window[0]
            else:
                assert closed.end % modulus == in_window[0] % modulus
        elif off_window is not None:
            assert closed.basis is Basis.CALCULATED
            assert (closed.actual % modulus, closed.actual_on) == (
                off_window[0] % modulus,
                off_window[1],
            )
        else:
            assert closed.basis is Basis.ESTIMATED

    def check_chain(self) -> None:
        for zone in self.meter.zones:
            lines = [line for line in self.first_lines if line.zone == zone]
            if not lines:
                continue
            assert [line.closed.period for line in lines] == sorted(
                {line.closed.period for line in lines}
            )
            initial = self.meter.initial[zone]
            assert lines[0].closed.start == initial
            for earlier, later in itertools.pairwise(lines):
                assert later.closed.start == earlier.closed.end
                assert later.closed.period == earlier.closed.period.next()
            ledger = self.s.state.zone_ledger(self.meter.meter_id, zone)
            assert ledger.closed[-1] == lines[-1].closed
            assert sum(line.closed.kwh for line in lines) == ledger.closed[-1].end - initial
            # Days add up to the time from installation to the end of the last closed period.
            assert (
                sum(line.closed.days for line in lines)
                == (lines[-1].closed.period.end - self.meter.installed_on).days
            )


@SETTINGS
@given(honest_histories())
def test_honest_histories(history: History) -> None:
    Run(history, honest=True).run()


@SETTINGS
@given(arbitrary_histories())
def test_arbitrary_histories(history: History) -> None:
    Run(history, honest=False).run()


@st.composite
def corrections(draw: st.DrawFn) -> tuple[Meter, date, list[tuple[int, ...]], list[int]]:
    meter = draw(meters())
    # A window date at least a day after installation, and two sets of plausible values.
    day = next_window_opens(meter.installed_on + timedelta(days=draw(st.integers(1, 200))))
    day += timedelta(days=draw(st.integers(0, 4)))
    sends = [
        tuple(
            (meter.initial[zone] + draw(st.integers(0, 1_500))) % meter.modulus
            for zone in meter.zones
        )
        for _ in range(2)
    ]
    minutes = sorted(draw(st.lists(st.integers(0, 23 * 60 + 59), min_size=2, max_size=2)))
    return meter, day, sends, minutes


@SETTINGS
@given(corrections())
def test_a_correction_replaces_and_never_adds(
    case: tuple[Meter, date, list[tuple[int, ...]], list[int]],
) -> None:
    meter, day, sends, minutes = case
    s = Scenario.of(meter)
    for values, minute in zip(sends, minutes, strict=True):
        at = local(f"{day.isoformat()} {minute // 60:02d}:{minute % 60:02d}")
        rows = s.send(at, **{str(z): v for z, v in zip(meter.zones, values, strict=True)})
        assert [row.reason for row in rows] == [None] * len(rows)
        assert {row.kind for row in rows} == {IN}
    period = place_reading(day).period
    s.close(str(period))
    lines = [line for line in s.lines if line.closed.period == period]
    # One line per zone, ending on the later submission's value.
    assert sorted(line.zone for line in lines) == sorted(meter.zones)
    later = dict(zip(meter.zones, sends[1], strict=True))
    for line in lines:
        assert str(line.closed.basis) == "actual"
        assert line.end_reading == later[line.zone]
        assert line.closed.kwh == (later[line.zone] - meter.initial[line.zone]) % meter.modulus


@dataclass(frozen=True)
class Month:
    """What happens around one period P: readings early in P (off-window, each misread low by
    some kWh or not), the close of P-1 after `lag` of them, and maybe a reading in W(P)."""

    early: tuple[tuple[int, int], ...]  # (day of P, 4-27; kWh too low, 0 = read right)
    lag: int  # how many of the early readings come before the close of P-1
    window: int | None  # the day of W(P) read on (0-4), if any
    minute: int


@dataclass(frozen=True)
class Lagging:
    meter: Meter
    per_day: dict[Zone, int]
    months: tuple[Month, ...]


@st.composite
def lagging_histories(draw: st.DrawFn) -> Lagging:
    meter = draw(meters())
    per_day = {zone: draw(st.integers(0, 40)) for zone in meter.zones}
    early = st.lists(
        st.tuples(st.integers(4, 27), st.sampled_from([0, 0, 1, 40, 300, 1_000])), max_size=3
    ).map(lambda reads: tuple(sorted(reads)))
    month = st.builds(
        Month,
        early=early,
        lag=st.integers(0, 3),
        window=st.none() | st.integers(0, 4),
        minute=st.integers(0, 23 * 60 + 58),
    )
    return Lagging(meter, per_day, tuple(draw(st.lists(month, min_size=2, max_size=8))))


@SETTINGS
@given(lagging_histories())
def test_closes_that_lag_never_bill_a_misread_below_an_earlier_month(history: Lagging) -> None:
    """SPEC §2.4: honest readings in submission order, some misread low and never corrected,
    and each close published after some of the next month's first readings. Every right
    reading is accepted (until a misread was); no period is billed negative on a measured
    basis unless the period before it was calculated or estimated (a catch-up); a zone's kWh
    sum to its last end minus its initial reading."""
    meter, s = history.meter, Scenario.of(history.meter)
    first_lines: list[BillingLine] = []
    misled: list[ReadingOutcome] = []

    def read(day: date, minute: int, misread: int) -> None:
        at = local(f"{day.isoformat()} {minute // 60:02d}:{minute % 60:02d}")
        true = {z: meter.initial[z] + history.per_day[z] * (day - meter.installed_on).days
                for z in meter.zones}  # fmt: skip
        zone = meter.zones[minute % len(meter.zones)]
        sent = {z: (v - (misread if z == zone else 0)) % meter.modulus for z, v in true.items()}
        rows = s.send(at, **{str(z): v for z, v in sent.items()})
        if not misread and not misled:
            assert [row.reason for row in rows] == [None] * len(rows), rows
        # A misread that is accepted (above every bound) lowers what later readings are held
        # against; a misread rejected may take its pair down with it as ZONES_SWAPPED.
        misled.extend(row for row in rows if misread and row.zone == zone and row.accepted)

    period = Period.of(meter.installed_on).next()
    for month in history.months:
        for n, (day, misread) in enumerate(month.early):
            if n == month.lag:
                first_lines.extend(s.close(str(period.previous())))
            read(date(period.year, period.month, day), month.minute, misread)
        if len(month.early) <= month.lag:
            first_lines.extend(s.close(str(period.previous())))
        if month.window is not None:
            read(period.last_day - timedelta(days=1 - month.window), month.minute, 0)
        period = period.next()
    for zone in meter.zones:
        lines = [line.closed for line in first_lines if line.zone == zone]
        for earlier, later in itertools.pairwise(lines):
            if later.basis in MEASURED and later.kwh < 0:
                assert earlier.basis in (Basis.CALCULATED, Basis.ESTIMATED), (earlier, later)
        assert sum(c.kwh for c in lines) == lines[-1].end - meter.initial[zone]
