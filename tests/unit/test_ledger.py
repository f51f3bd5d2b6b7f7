"""The baseline rules of SPEC §2.3-2.4: B, F, the plausible advance H, and the verdict on one
register reading (ZONES_SWAPPED, BELOW_PREVIOUS, IMPLAUSIBLY_HIGH, provisional kWh and flags).

Scenarios drive one account through the domain's own transitions (`tests.builders.Scenario`),
with times written as Kyiv wall-clock times.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from streams.domain.calendar import Period, ReadingKind
from streams.domain.ledger import (
    Basis,
    ClosedPeriod,
    Mark,
    ReferenceRate,
    ZoneLedger,
    baseline_of,
    evaluate_reading,
    plausible_advance,
    reference_rate,
    round_half_up,
)
from streams.domain.model import (
    Reason,
    RegisterReading,
)
from streams.domain.zones import SINGLE_ZONE, TWO_ZONE
from tests.builders import (
    DAY,
    GAMA,
    NIGHT,
    TOTAL,
    Scenario,
    billed,
    gama_after_april,
    meter,
    utc,
    verdict,
)

IN, OFF = ReadingKind.IN_WINDOW, ReadingKind.OFF_WINDOW

# --- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),  # banker's rounding would give 2
        (Fraction(513, 2), 257),  # 256.5: banker's rounding would give 256
        (Fraction(2499, 1000), 2),
        (Fraction(2501, 1000), 3),
        (Fraction(7, 3), 2),
        (Fraction(10**20 + 1, 2), 5 * 10**19 + 1),
    ],
)
def test_volumes_round_half_up(value: Fraction, rounded: int) -> None:
    assert round_half_up(value) == rounded


def closed(
    period: str,
    basis: Basis,
    start: int,
    end: int,
    days: int | None = None,
    *,
    actual: int | None = None,
    actual_on: date | None = None,
) -> ClosedPeriod:
    p = Period.parse(period)
    return ClosedPeriod(
        period=p,
        basis=basis,
        start=start,
        end=end,
        days=p.days if days is None else days,
        actual=end if actual is None else actual,
        actual_on=actual_on or p.end,
        flags=(),
        closed_by=p,
    )


A, C, E = Basis.ACTUAL, Basis.CALCULATED, Basis.ESTIMATED

REFERENCE_RATES = [
    pytest.param((), "2023-07", Fraction(0), True, id="nothing-closed-no-history"),
    pytest.param(
        (closed("2023-05", E, 0, 500),), "2023-07", Fraction(0), True, id="only-estimates"
    ),
    pytest.param((closed("2023-06", A, 0, 300),), "2023-07", Fraction(10), False, id="one-actual"),
    pytest.param(
        (closed("2023-06", A, 0, 300, 15),),
        "2023-07",
        Fraction(20),
        False,
        id="days-are-active-days",
    ),
    pytest.param(
        (
            closed("2023-02", A, 0, 2800),  # 100/day, the 4th measured back: not used
            closed("2023-03", A, 2800, 3110),  # 10/day
            closed("2023-04", C, 3110, 3710),  # 20/day
            closed("2023-05", E, 3710, 9999),  # skipped
            closed("2023-06", A, 9999, 10899),  # 30/day
        ),
        "2023-07",
        Fraction(310 + 600 + 900, 31 + 30 + 30),
        False,
        id="last-three-measured-skipping-estimates",
    ),
    pytest.param(
        (
            closed("2022-07", A, 0, 310),  # 10/day: the same month last year
            closed("2023-06", A, 5000, 5600),  # 20/day
        ),
        "2023-07",
        Fraction(10),
        False,
        id="same-month-last-year",
    ),
    pytest.param(
        (
            closed("2022-07", E, 0, 310),  # estimated: does not count as last year's July
            closed("2023-06", A, 5000, 5600),
        ),
        "2023-07",
        Fraction(20),
        False,
        id="same-month-last-year-estimated-is-not-used",
    ),
    pytest.param(
        (closed("2023-06", A, 5000, 4700),),
        "2023-07",
        Fraction(0),
        False,
        id="never-below-zero",
    ),
    pytest.param(
        (closed("2023-06", A, 0, 300), closed("2023-08", A, 300, 9000)),
        "2023-07",
        Fraction(10),
        False,
        id="only-periods-before",
    ),
]


@pytest.mark.parametrize(("closes", "period", "per_day", "no_history"), REFERENCE_RATES)
def test_reference_daily_rate(
    closes: tuple[ClosedPeriod, ...], period: str, per_day: Fraction, no_history: bool
) -> None:
    rate = reference_rate(ZoneLedger(closed=closes), Period.parse(period))
    assert (rate.per_day, rate.no_history) == (per_day, no_history)


NIK = meter("NIK-2303", SINGLE_ZONE, 5, {TOTAL: 4_200}, "2023-03-15")


def test_baseline_and_floor_start_at_the_installation() -> None:
    base = baseline_of(NIK, TOTAL, ZoneLedger())
    assert (base.baseline, base.floor, base.floor_on) == (4_200, 4_200, date(2023, 3, 15))


def test_baseline_and_floor_follow_the_last_closed_period() -> None:
    ledger = ZoneLedger(
        closed=(
            closed("2023-03", A, 4_200, 4_370),
            closed("2023-04", E, 4_370, 4_670, actual=4_370, actual_on=date(2023, 4, 1)),
        )
    )
    base = baseline_of(NIK, TOTAL, ledger)
    # B is the estimate, F the last actual measurement and the date it stands for.
    assert (base.baseline, base.floor, base.floor_on) == (4_670, 4_370, date(2023, 4, 1))


@pytest.mark.parametrize(
    ("floor_on", "on", "per_day", "limit"),
    [
        ("2023-05-01", "2023-05-02", 0, 2000),  # n = 1
        ("2023-05-01", "2023-05-31", 0, 2000),  # n = 30
        ("2023-05-01", "2023-06-01", 0, 4000),  # n = 31: ceil(31 / 30) = 2
        ("2023-05-01", "2023-05-01", 0, 2000),  # n = 0 counts as 1
        ("2023-05-01", "2023-04-20", 0, 2000),  # a date before the floor's counts as 1 day
        ("2023-01-10", "2023-09-10", 0, 18000),  # n = 243: ceil(8.1) = 9
        ("2023-05-01", "2023-05-31", 40, 3600),  # 3 x 40 x 30 > 2000
        ("2023-05-01", "2023-05-31", Fraction(200, 9), 2000),  # 3 x 22.2 x 30 = 2000
        # 3 x 1001/12 x 31 = 7757.75: whole kWh up to 7,757 are plausible, 7,758 is not.
        ("2023-05-01", "2023-06-01", Fraction(1001, 12), 7757),
    ],
)
def test_plausible_advance(floor_on: str, on: str, per_day: Fraction, limit: int) -> None:
    ledger = ZoneLedger(
        closed=(closed("2023-04", E, 4_200, 4_200, actual_on=date.fromisoformat(floor_on)),)
    )
    base = baseline_of(NIK, TOTAL, ledger)
    per_day = Fraction(per_day)
    rate = ReferenceRate(per_day.numerator, per_day.denominator, no_history=False)
    assert plausible_advance(base, rate, date.fromisoformat(on)) == limit


# --- latest submission wins (SPEC §2.2) -----------------------------------------------------------

MAY, JUNE = Period(2023, 5), Period(2023, 6)


def mark(value: int, at: str) -> Mark:
    return Mark(value, date(2023, 6, 1), utc(at))


def test_a_later_submission_replaces_the_earlier_one() -> None:
    ledger = ZoneLedger().with_reading(IN, MAY, mark(12_500, "2023-05-30T09:00:00Z"))
    ledger = ledger.with_reading(IN, MAY, mark(12_400, "2023-06-01T09:00:00Z"))
    assert ledger.latest(IN, MAY) == mark(12_400, "2023-06-01T09:00:00Z")
    assert ledger.in_window == ((MAY, mark(12_400, "2023-06-01T09:00:00Z")),)


def test_an_earlier_submission_processed_later_does_not_win() -> None:
    ledger = ZoneLedger().with_reading(IN, MAY, mark(12_400, "2023-06-01T09:00:00Z"))
    again = ledger.with_reading(IN, MAY, mark(12_500, "2023-05-30T09:00:00Z"))
    assert again == ledger


def test_a_tie_goes_to_the_one_processed_last() -> None:
    ledger = ZoneLedger().with_reading(IN, MAY, mark(12_400, "2023-06-01T09:00:00Z"))
    ledger = ledger.with_reading(IN, MAY, mark(12_450, "2023-06-01T09:00:00Z"))
    assert ledger.latest(IN, MAY) == mark(12_450, "2023-06-01T09:00:00Z")


def test_periods_and_kinds_are_kept_apart_and_in_order() -> None:
    ledger = (
        ZoneLedger()
        .with_reading(IN, JUNE, mark(13_000, "2023-06-30T09:00:00Z"))
        .with_reading(IN, MAY, mark(12_400, "2023-05-30T09:00:00Z"))
        .with_reading(OFF, MAY, mark(12_200, "2023-05-15T09:00:00Z"))
    )
    assert [p for p, _ in ledger.in_window] == [MAY, JUNE]
    assert ledger.latest(IN, MAY).value == 12_400  # type: ignore[union-attr]
    assert ledger.latest(OFF, MAY).value == 12_200  # type: ignore[union-attr]
    assert ledger.latest(OFF, JUNE) is None


# --- evaluate_reading on a given B, F and floor date (SPEC §2.4) ----------------------------------

ON_MAY_30 = date(2023, 5, 30)  # n = 29 days from a floor dated 1 May: H = 2000 (no history)


def ledger_at(b: int, f: int, floor_on: str = "2023-05-01") -> ZoneLedger:
    """A zone whose last close (April, estimated: no reference rate) left B and F."""
    return ZoneLedger(
        closed=(closed("2023-04", E, f, b, actual=f, actual_on=date.fromisoformat(floor_on)),)
    )


EVALUATIONS = [
    # (B, F, displayed value, local date) -> (reason, unwrapped value, kWh, flags)
    pytest.param(12_000, 12_000, 12_000, ON_MAY_30, None, 12_000, 0, ("zero_consumption",),
                 id="zero-consumption"),
    pytest.param(12_000, 12_000, 12_310, ON_MAY_30, None, 12_310, 310, (), id="plain-advance"),
    pytest.param(12_000, 12_000, 14_000, ON_MAY_30, None, 14_000, 2_000, (), id="advance-at-H"),
    pytest.param(12_000, 12_000, 14_001, ON_MAY_30, Reason.IMPLAUSIBLY_HIGH, None, None, (),
                 id="advance-above-H"),
    pytest.param(12_000, 12_000, 22_000, date(2023, 9, 1), None, 22_000, 10_000, (),
                 id="H-grows-with-days"),  # n = 123: H = 2000 x 5
    pytest.param(12_000, 12_000, 11_999, ON_MAY_30, Reason.BELOW_PREVIOUS, None, None, (),
                 id="below-floor"),
    pytest.param(12_310, 12_000, 12_000, ON_MAY_30, None, 12_000, -310,
                 ("estimate_correction",), id="at-floor-below-estimate"),
    pytest.param(12_310, 12_000, 12_200, ON_MAY_30, None, 12_200, -110,
                 ("estimate_correction",), id="between-floor-and-estimate"),
    pytest.param(12_310, 12_000, 11_999, ON_MAY_30, Reason.BELOW_PREVIOUS, None, None, (),
                 id="below-floor-after-estimate"),
    pytest.param(99_950, 99_950, 120, ON_MAY_30, None, 100_120, 170, ("rollover",),
                 id="rollover"),
    pytest.param(99_950, 99_950, 1_950, ON_MAY_30, None, 101_950, 2_000, ("rollover",),
                 id="rollover-at-H"),
    pytest.param(99_950, 99_950, 1_951, ON_MAY_30, Reason.BELOW_PREVIOUS, None, None, (),
                 id="rollover-above-H"),
    pytest.param(199_950, 199_950, 120, ON_MAY_30, None, 200_120, 170, ("rollover",),
                 id="second-rollover"),
    # An estimate crossed the modulus (B = 100,161 shows 161) but the meter has not: a reading in
    # the floor's lap corrects the estimate; one in B's lap is a plain (small) difference.
    pytest.param(100_161, 99_300, 99_950, ON_MAY_30, None, 99_950, -211,
                 ("estimate_correction",), id="estimate-wrapped-reading-did-not"),
    pytest.param(100_161, 99_300, 50, ON_MAY_30, None, 100_050, -111,
                 ("estimate_correction",), id="both-wrapped-reading-below-estimate"),
    pytest.param(100_161, 99_300, 300, ON_MAY_30, None, 100_300, 139, (),
                 id="both-wrapped-reading-above-estimate"),
    pytest.param(100_161, 99_300, 99_200, ON_MAY_30, Reason.IMPLAUSIBLY_HIGH, None, None, (),
                 id="estimate-wrapped-reading-below-floor"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("b", "f", "value", "on", "reason", "unwrapped", "kwh", "flags"), EVALUATIONS
)
def test_evaluate_reading(
    b: int,
    f: int,
    value: int,
    on: date,
    reason: Reason | None,
    unwrapped: int | None,
    kwh: int | None,
    flags: tuple[str, ...],
) -> None:
    evaluation = evaluate_reading(NIK, TOTAL, ledger_at(b, f), value, on, MAY)
    assert evaluation.reason is reason
    if reason is None:
        got = (evaluation.value, evaluation.kwh, tuple(sorted(str(f) for f in evaluation.flags)))
        assert got == (unwrapped, kwh, flags)
    else:
        assert evaluation.detail


# --- readings judged against a two-zone meter's history (SPEC §2.3 last rows) ---------------------

R = RegisterReading
BELOW, HIGH, SWAPPED = Reason.BELOW_PREVIOUS, Reason.IMPLAUSIBLY_HIGH, Reason.ZONES_SWAPPED
ZERO, CORRECTION, ROLLOVER = ("zero_consumption",), ("estimate_correction",), ("rollover",)

AFTER_APRIL = [
    pytest.param("2023-05-30 12:00", [R(DAY, None, 12_000)], [(None, 0, ZERO)],
                 id="zero-consumption"),
    pytest.param("2023-05-30 12:00", [R(DAY, None, 12_310), R(NIGHT, None, 6_655)],
                 [(None, 310, ()), (None, 155, ())], id="both-zones"),
    pytest.param("2023-05-30 12:00", [R(None, "1.8.2", 12_310), R(None, "T21", 6_655)],
                 [(None, 310, ()), (None, 155, ())], id="both-zones-by-label"),
    pytest.param("2023-05-30 12:00", [R(DAY, None, 14_000)], [(None, 2_000, ())],
                 id="advance-at-H"),
    pytest.param("2023-05-30 12:00", [R(DAY, None, 14_001)], [(HIGH, None, ())],
                 id="advance-above-H"),
    # A digit too many: 12,345 typed as 123,450 a month after the baseline of 12,000.
    pytest.param("2023-05-30 12:00", [R(DAY, None, 123_450)], [(HIGH, None, ())],
                 id="digit-too-many"),
    pytest.param("2023-05-30 12:00", [R(DAY, None, 11_999)], [(BELOW, None, ())],
                 id="below-previous"),
    pytest.param("2023-05-30 12:00", [R(NIGHT, None, 6_400)], [(BELOW, None, ())],
                 id="night-below-previous"),
    # Day and night exchanged in one submission: both rejected as swapped.
    pytest.param("2023-05-30 12:00", [R(DAY, None, 6_655), R(NIGHT, None, 12_310)],
                 [(SWAPPED, None, ()), (SWAPPED, None, ())], id="swapped-in-one-submission"),
    pytest.param("2023-05-30 12:00", [R(None, "1.8.2", 6_655), R(None, "1.8.1", 12_310)],
                 [(SWAPPED, None, ()), (SWAPPED, None, ())], id="swapped-labels"),
    # ... and in two submissions: each alone fails as sent and passes as the other zone.
    pytest.param("2023-05-30 12:00", [R(DAY, None, 6_655)], [(SWAPPED, None, ())],
                 id="night-value-sent-as-day"),
    pytest.param("2023-05-30 12:00", [R(NIGHT, None, 12_310)], [(SWAPPED, None, ())],
                 id="day-value-sent-as-night"),
    # A night value far off either zone is not a swap.
    pytest.param("2023-05-30 12:00", [R(NIGHT, None, 20_000)], [(HIGH, None, ())],
                 id="too-high-for-either-zone"),
    # Only the night reading fits the other zone, the day one fits neither exchanged: the
    # pair rule does not apply, each reading is judged alone.
    pytest.param("2023-05-30 12:00", [R(DAY, None, 12_310), R(NIGHT, None, 12_100)],
                 [(None, 310, ()), (SWAPPED, None, ())], id="one-reading-of-two-swapped"),
    pytest.param("2023-05-30 12:00", [R(None, "1.8.0", 18_810)],
                 [(Reason.TOTAL_NOT_ACCEPTED, None, ())], id="total-register-label"),
    pytest.param("2023-05-30 12:00", [R(TOTAL, None, 18_810), R(DAY, None, 12_310)],
                 [(Reason.TOTAL_NOT_ACCEPTED, None, ()), (None, 310, ())],
                 id="total-next-to-day"),
    # Validation order: TOO_MANY_DIGITS is judged before the baseline rules.
    pytest.param("2023-05-30 12:00", [R(DAY, None, 1_000_000)],
                 [(Reason.TOO_MANY_DIGITS, None, ())], id="too-many-digits-first"),
    # Three days into June is still May's window: n = 33, H = 4000.
    pytest.param("2023-06-03 12:00", [R(DAY, None, 16_000)], [(None, 4_000, ())],
                 id="window-end-H-4000"),
    # An off-window reading of May (provisional kWh since B all the same).
    pytest.param("2023-05-16 12:00", [R(DAY, None, 12_150)], [(None, 150, ())], id="off-window"),
]  # fmt: skip


@pytest.mark.parametrize(("at", "readings", "expected"), AFTER_APRIL)
def test_readings_after_an_actual_april(
    at: str,
    readings: list[RegisterReading],
    expected: list[tuple[Reason | None, int | None, tuple[str, ...]]],
) -> None:
    s = gama_after_april()
    rows = s.send(at, *readings)
    assert [verdict(row) for row in rows] == expected
    for row in rows:
        if row.zone in (DAY, NIGHT) and row.reason in (None, SWAPPED, BELOW, HIGH):
            # The reply shows B as the display did.
            assert row.baseline == {DAY: 12_000, NIGHT: 6_500}[row.zone]
        if row.reason is None:
            assert row.unwrapped == row.value
            assert row.period == MAY
        else:
            assert row.detail
            assert row.unwrapped is None


def test_a_rejected_reading_leaves_no_trace_in_the_ledger() -> None:
    s = gama_after_april()
    before = s.state.ledgers
    s.send("2023-05-30 12:00", day=6_655, night=12_310)
    assert s.state.ledgers == before


def test_a_swap_is_detected_even_when_one_reading_passes_as_sent() -> None:
    # Day and night close together: day 10,000 / night 9,000, H = 2000 on 30 May.
    s = Scenario.of(meter(GAMA, TWO_ZONE, 6, {DAY: 9_700, NIGHT: 8_850}, "2023-04-01"))
    s.send("2023-04-30 12:00", day=10_000, night=9_000)
    s.close("2023-04")
    # Meant: day 11,600 (+1,600), night 10,500 (+1,500). Sent exchanged, the day value still
    # passes as day (+500), but the night value does not (+2,600 > H): both are rejected.
    rows = s.send("2023-05-30 12:00", day=10_500, night=11_600)
    assert [verdict(row) for row in rows] == [(SWAPPED, None, ()), (SWAPPED, None, ())]
    # Sent one at a time, the day value is an acceptable day reading; the night one is swapped.
    assert [verdict(row) for row in s.send("2023-05-30 12:05", night=11_600)] == [
        (SWAPPED, None, ())
    ]
    assert [verdict(row) for row in s.send("2023-05-30 12:10", day=10_500)] == [(None, 500, ())]


def test_swaps_are_not_considered_on_single_zone_meters() -> None:
    s = Scenario.of(meter("NIK-1", SINGLE_ZONE, 5, {TOTAL: 4_000}, "2023-04-01"))
    assert [verdict(row) for row in s.send("2023-04-30 12:00", total=3_000)] == [(BELOW, None, ())]


def test_a_corrected_digit_too_many_is_accepted_and_billed() -> None:
    s = gama_after_april()
    assert [verdict(r) for r in s.send("2023-05-30 12:00", day=123_450)] == [(HIGH, None, ())]
    assert [verdict(r) for r in s.send("2023-05-30 12:05", day=12_345)] == [(None, 345, ())]
    s.close("2023-05")
    assert billed(s.bill("2023-05", DAY)) == ("actual", 12_000, 12_345, 345, ())


@pytest.mark.parametrize(
    ("digits", "initial", "reading", "value"),
    [(5, 99_950, 120, 100_120), (6, 999_950, 120, 1_000_120)],
    ids=["5-digit", "6-digit"],
)
def test_rollover_is_plus_170_on_the_reading_and_the_bill(
    digits: int, initial: int, reading: int, value: int
) -> None:
    s = Scenario.of(meter("M-1", SINGLE_ZONE, digits, {TOTAL: initial - 200}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=initial)
    s.close("2023-04")
    [row] = s.send("2023-05-31 12:00", total=reading)
    assert verdict(row) == (None, 170, ROLLOVER)
    assert (row.baseline, row.unwrapped) == (initial, value)
    s.close("2023-05")
    assert billed(s.bill("2023-05", TOTAL)) == ("actual", initial, reading, 170, ROLLOVER)
    assert s.bill("2023-05", TOTAL).closed.end == value  # kept unwrapped


def test_a_near_wrap_meter_read_months_after_installation_is_never_locked_out() -> None:
    # Installed at 99,000 in January; nobody reads it until the end of August. Every month in
    # between is estimated with no history (0 kWh), so B = F = 99,000 dated 10 January.
    s = Scenario.of(meter("NIK-9", SINGLE_ZONE, 5, {TOTAL: 99_000}, "2023-01-10"))
    s.close_each("2023-01", "2023-07")
    assert {billed(line) for line in s.lines} == {
        ("estimated", 99_000, 99_000, 0, ("no_history",)),
        ("estimated", 99_000, 99_000, 0, ("no_history", "prolonged_estimation")),
    }
    # 30 August: n = 232 days, H = 2000 x 8 = 16,000; the wrap to 1,500 is +2,500 kWh.
    [row] = s.send("2023-08-30 12:00", total=1_500)
    assert verdict(row) == (None, 2_500, ROLLOVER)
    s.close("2023-08")
    assert billed(s.bill("2023-08", TOTAL)) == ("actual", 99_000, 1_500, 2_500, ROLLOVER)


def test_a_near_wrap_meter_first_read_eight_months_after_installation() -> None:
    s = Scenario.of(meter("NIK-9", SINGLE_ZONE, 5, {TOTAL: 99_000}, "2023-01-10"))
    s.close_each("2023-01", "2023-08")  # estimated, 0 kWh, no history
    # 10 September (off-window): n = 243 days, H = 2000 x 9 = 18,000 >= 2,500.
    [row] = s.send("2023-09-10 12:00", total=1_500)
    assert (verdict(row), row.kind, row.unwrapped) == ((None, 2_500, ROLLOVER), OFF, 101_500)
    s.close("2023-09")
    # Calculated; after the estimates the rate runs from the installation (F): 2,500 kWh /
    # 243 days x 21 days to 1 October = 216. (SPEC §2.5's literal (r - B) / (d - s) would
    # spread 8 months of consumption over the 9 days since 1 September: +5,833.)
    assert billed(s.bill("2023-09", TOTAL)) == ("calculated", 99_000, 1_716, 2_716, ROLLOVER)


def test_the_same_wrap_a_month_after_installation_is_implausible() -> None:
    s = Scenario.of(meter("NIK-9", SINGLE_ZONE, 5, {TOTAL: 99_000}, "2023-01-10"))
    # 9 February: n = 30 days, H = 2000 < 2,500.
    assert [verdict(r) for r in s.send("2023-02-09 12:00", total=1_500)] == [(BELOW, None, ())]
    # Consumption of a bigger household raises H through the reference rate (3 x r x n).
    s.send("2023-01-30 12:00", total=99_600)  # 600 kWh in 21 days
    s.close("2023-01")  # actual, 600 kWh over 22 active days (10-31 Jan)
    # 27 February: n = 26 days from 1 Feb; H = max(2000, 3 x 600/22 x 26) = 2127.3.
    assert [verdict(r) for r in s.send("2023-02-27 12:00", total=1_728)] == [(BELOW, None, ())]
    assert [verdict(r) for r in s.send("2023-02-27 12:05", total=1_727)] == [
        (None, 2_127, ROLLOVER)
    ]


def test_zero_consumption_reading_and_bill() -> None:
    s = gama_after_april()
    rows = s.send("2023-05-31 12:00", day=12_000, night=6_500)
    assert [verdict(row) for row in rows] == [(None, 0, ZERO), (None, 0, ZERO)]
    s.close("2023-05")
    assert billed(s.bill("2023-05", DAY)) == ("actual", 12_000, 12_000, 0, ZERO)
    assert billed(s.bill("2023-05", NIGHT)) == ("actual", 6_500, 6_500, 0, ZERO)


def test_estimate_correction_reading_after_an_estimated_month() -> None:
    s = gama_after_april()
    s.close("2023-05")  # estimated: 10/day and 5/day x 31 days
    assert billed(s.bill("2023-05", DAY)) == ("estimated", 12_000, 12_310, 310, ())
    assert billed(s.bill("2023-05", NIGHT)) == ("estimated", 6_500, 6_655, 155, ())
    rows = s.send("2023-06-30 12:00", day=12_200, night=6_500)
    # F <= v < B: accepted, the provisional kWh is negative.
    assert [verdict(row) for row in rows] == [(None, -110, CORRECTION), (None, -155, CORRECTION)]
    assert [row.baseline for row in rows] == [12_310, 6_655]
    # Below F is below the last actual measurement: rejected.
    assert [verdict(r) for r in s.send("2023-06-30 12:05", day=11_990)] == [(BELOW, None, ())]
