"""Closes that lag behind the readings (SPEC §2.4-2.5).

Billing closes May some days after its window ends, so early-June readings arrive while May is
still open, and master data may arrive after the period it concerns was closed:

- the latest accepted reading of a still-open earlier period (L) bounds a later period's
  readings: the floor is max(F, L), in every baseline rule, and the reply names L;
- a removal that arrives after the meter's last active period was closed is billed `final` in
  the next close, once; a late installation is billed from its initial reading.

Times are Kyiv wall-clock times. Every scenario goes through the domain's own transitions.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from streams.domain.calendar import Period
from streams.domain.closing import BillingLine, close_period
from streams.domain.messages import reading_message
from streams.domain.model import Reason
from streams.domain.zones import SINGLE_ZONE, TWO_ZONE
from streams.pipeline.state import decode_state, encode_state
from tests.builders import (
    DAY,
    NIGHT,
    TOTAL,
    Scenario,
    billed,
    gama_after_april,
    meter,
    verdict,
)

BELOW, SWAPPED = Reason.BELOW_PREVIOUS, Reason.ZONES_SWAPPED
CORRECTION, ROLLOVER = ("estimate_correction",), ("rollover",)


def gama_with_open_may() -> Scenario:
    """GAMA after April (B = F = day 12,000 / night 6,500, dated 1 May) and May's window
    reading on 1 June, day 12,300 / night 6,650, while May is still open. On 5 June the
    plausible advance from F's date (n = 35) is H = max(2000 x 2, 3 x 10 x 35) = 4,000."""
    s = gama_after_april()
    assert [verdict(r) for r in s.send("2023-06-01 10:00", day=12_300, night=6_650)] == [
        (None, 300, ()),
        (None, 150, ()),
    ]
    return s


# --- the floor max(F, L) --------------------------------------------------------------------------

# (day value on 5 June, verdict, the previous reading the reply names). kWh stays v - B: B is
# April's end until May closes.
JUNE_AGAINST_OPEN_MAY = [
    pytest.param(12_290, (BELOW, None, ()), 12_300, id="below-may"),
    # Above F (12,000) but below May's reading: before the rule it was accepted with 100 kWh and
    # June would later be billed below May's actual.
    pytest.param(12_100, (BELOW, None, ()), 12_300, id="between-f-and-may"),
    pytest.param(12_300, (None, 300, ()), 12_000, id="equal-to-may"),
    pytest.param(12_350, (None, 350, ()), 12_000, id="above-may"),
    pytest.param(16_000, (None, 4_000, ()), 12_000, id="at-h-counted-from-f"),
]


@pytest.mark.parametrize(("value", "expected", "named"), JUNE_AGAINST_OPEN_MAY)
def test_a_june_reading_is_held_against_the_open_may_reading(
    value: int, expected: tuple[Reason | None, int | None, tuple[str, ...]], named: int
) -> None:
    s = gama_with_open_may()
    [row] = s.send("2023-06-05 12:00", day=value)
    assert verdict(row) == expected
    assert row.baseline == named


def test_the_reply_names_the_open_may_reading_as_the_previous_one() -> None:
    s = gama_with_open_may()
    [row] = s.send("2023-06-05 12:00", day=12_290)
    assert row.detail == "12290 is below the previous 12300"
    uk, en = reading_message(row, date(2023, 6, 5))
    assert en == "day: The reading is lower than the previous one. The previous one: 12 300."
    assert uk.endswith("Попередній показ: 12 300.")


def test_a_reading_too_high_names_the_open_may_reading() -> None:
    s = gama_with_open_may()
    [row] = s.send("2023-06-05 12:00", day=16_500)  # 4,500 kWh since B: above H = 4,000
    assert (verdict(row), row.baseline) == ((Reason.IMPLAUSIBLY_HIGH, None, ()), 12_300)


def test_the_same_june_reading_after_may_closed_is_judged_as_before() -> None:
    s = gama_with_open_may()
    s.close("2023-05")  # B = F = 12,300 now
    [row] = s.send("2023-06-05 12:00", day=12_290)
    assert (verdict(row), row.baseline) == ((BELOW, None, ()), 12_300)
    [row] = s.send("2023-06-05 12:05", day=12_350)
    assert verdict(row) == (None, 50, ())


def test_a_may_correction_downwards_in_mays_own_window_is_accepted() -> None:
    s = gama_after_april()
    s.send("2023-05-31 20:00", day=12_300)
    # Same period: the latest submission wins, so a typo can be corrected downwards.
    [row] = s.send("2023-06-02 09:00", day=12_280)
    assert verdict(row) == (None, 280, ())
    s.close("2023-05")
    assert billed(s.bill("2023-05", DAY)) == ("actual", 12_000, 12_280, 280, ())


def test_readings_of_the_same_later_period_do_not_bound_each_other() -> None:
    s = gama_with_open_may()
    s.send("2023-06-10 12:00", day=12_400)
    [row] = s.send("2023-06-12 12:00", day=12_350)  # June corrects June: L is still May's
    assert verdict(row) == (None, 350, ())


def test_the_latest_earlier_reading_bounds_not_the_highest() -> None:
    s = gama_after_april()
    s.send("2023-05-20 12:00", day=12_250)  # May, off-window
    s.send("2023-06-01 12:00", day=12_200)  # May's window: corrects the typo of 20 May
    [row] = s.send("2023-06-05 12:00", day=12_220)
    assert verdict(row) == (None, 220, ())


def test_two_open_months_the_later_bounds() -> None:
    s = Scenario.of(meter("NIK-2303", SINGLE_ZONE, 5, {TOTAL: 9_700}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=10_000)
    s.close("2023-04")
    s.send("2023-06-01 12:00", total=10_300)  # May's window
    s.send("2023-07-01 12:00", total=10_600)  # June's window; May is still not closed
    [row] = s.send("2023-07-05 12:00", total=10_500)
    assert (verdict(row), row.baseline) == ((BELOW, None, ()), 10_600)


def near_wrap_with_open_may(may: int) -> Scenario:
    """A 6-digit meter near the top: April actual 999,000 (16.7 kWh a day), May's window
    reading `may` on 1 June, May still open."""
    s = Scenario.of(meter("NEAR-1", SINGLE_ZONE, 6, {TOTAL: 998_500}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=999_000)
    s.close("2023-04")
    assert [r.reason for r in s.send("2023-06-01 12:00", total=may)] == [None]
    return s


NEAR_WRAP = [
    pytest.param(999_700, 200, (None, 1_200, ROLLOVER), 1_000_200, id="rollover-past-may"),
    pytest.param(999_700, 999_650, (BELOW, None, ()), None, id="below-may-near-the-top"),
    # May itself wrapped (999,000 -> 1,000,300): L's lap is above B's.
    pytest.param(300, 400, (None, 1_400, ROLLOVER), 1_000_400, id="above-a-wrapped-may"),
    # Before the rule, 250 was accepted as a second rollover to 1,000,250, below May's reading.
    pytest.param(300, 250, (BELOW, None, ()), None, id="below-a-wrapped-may"),
]


@pytest.mark.parametrize(("may", "june", "expected", "unwrapped"), NEAR_WRAP)
def test_a_june_rollover_is_judged_past_the_open_may_reading(
    may: int,
    june: int,
    expected: tuple[Reason | None, int | None, tuple[str, ...]],
    unwrapped: int | None,
) -> None:
    s = near_wrap_with_open_may(may)
    [row] = s.send("2023-06-05 12:00", total=june)
    assert (verdict(row), row.unwrapped) == (expected, unwrapped)
    if row.reason is BELOW:
        assert row.baseline == may


def twin_with_open_may() -> Scenario:
    """Two zones that read alike: April actual day 5,000 / night 5,000, May's window pair on
    1 June day 5,300 / night 5,100, May still open."""
    s = Scenario.of(meter("TWIN-1", TWO_ZONE, 6, {DAY: 4_700, NIGHT: 4_900}, "2023-04-01"))
    s.send("2023-04-30 12:00", day=5_000, night=5_000)
    s.close("2023-04")
    s.send("2023-06-01 12:00", day=5_300, night=5_100)
    return s


def test_day_and_night_swapped_against_the_open_may_pair() -> None:
    s = twin_with_open_may()
    # The true June pair is day 5,350 / night 5,120. Sent swapped, each value is above F, so
    # against F alone both were accepted; against May's pair day fails and the exchange passes.
    rows = s.send("2023-06-05 12:00", day=5_120, night=5_350)
    assert [verdict(r) for r in rows] == [(SWAPPED, None, ()), (SWAPPED, None, ())]
    rows = s.send("2023-06-05 12:02", day=5_350, night=5_120)
    assert [verdict(r) for r in rows] == [(None, 350, ()), (None, 120, ())]


def test_one_zone_swapped_against_the_open_may_pair() -> None:
    s = twin_with_open_may()
    [row] = s.send("2023-06-05 12:00", night=5_320)  # the day value under the night label
    assert verdict(row) == (None, 320, ())  # above night's May reading: nothing to tell
    [row] = s.send("2023-06-05 12:05", day=5_110)  # the night value under the day label
    assert verdict(row) == (SWAPPED, None, ())


def test_a_misread_below_the_open_may_reading_never_bills_june_below_may() -> None:
    """The story of the rule: May's reading accepted on 1 June, a misread on 5 June."""
    s = gama_with_open_may()
    [row] = s.send("2023-06-05 12:00", day=12_260)
    assert verdict(row) == (BELOW, None, ())  # the bot tells the customer at once
    s.send("2023-06-05 12:03", day=12_340)
    s.close("2023-05")
    s.close("2023-06")
    assert billed(s.bill("2023-05", DAY)) == ("actual", 12_000, 12_300, 300, ())
    # June calculated from 12,340 on 5 June: 40 kWh in 4 days, 10 a day to 1 July.
    assert billed(s.bill("2023-06", DAY)) == ("calculated", 12_300, 12_600, 300, ())


# --- a removal that arrives after its period was closed -------------------------------------------


def nik_removed_late() -> tuple[Scenario, list[BillingLine]]:
    """NIK (5 digits, 10 kWh a day): April actual 10,000; May estimated at 10,310 and closed;
    then the removal of 20 May arrives, with its final reading 10,180. Returns May's lines."""
    s = Scenario.of(meter("NIK-2303", SINGLE_ZONE, 5, {TOTAL: 9_700}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=10_000)
    s.close("2023-04")
    may = s.close("2023-05")
    assert [billed(line) for line in may] == [("estimated", 10_000, 10_310, 310, ())]
    s.remove("NIK-2303", {TOTAL: 10_180}, "2023-05-20")
    return s, may


def test_a_late_removal_is_billed_final_in_the_next_close_once() -> None:
    s, may = nik_removed_late()
    # A replayed close of May is not the next close: it rewrites May's rows as they were.
    assert Counter(s.close("2023-05")) == Counter(may)
    june = s.close("2023-06")
    assert [(line.meter_id, str(line.closed.period), billed(line), line.closed.days)
            for line in june] == [
        ("NIK-2303", "2023-06", ("final", 10_310, 10_180, -130, CORRECTION), 0)
    ]  # fmt: skip
    # A replayed June close re-emits the same line; later closes bill the meter no more.
    assert Counter(s.close("2023-06")) == Counter(june)
    assert s.close("2023-07") == []
    stored = decode_state(encode_state(s.state))
    assert stored == s.state
    assert close_period(stored, Period(2023, 8))[1] == []
    finals = [line for line in s.lines if str(line.closed.basis) == "final"]
    assert len(set(finals)) == 1
    # The meter's kWh add up to its final reading minus its initial one.
    assert sum(line.closed.kwh for line in set(s.lines)) == 10_180 - 9_700


def test_a_late_removal_redelivered_after_its_final_bill_changes_nothing() -> None:
    s, _ = nik_removed_late()
    assert [str(line.closed.basis) for line in s.close("2023-06")] == ["final"]
    before = s.state
    s.remove("NIK-2303", {TOTAL: 10_180}, "2023-05-20")
    assert s.state == before
    assert s.close("2023-07") == []


def test_readings_after_a_late_removal_name_no_active_meter() -> None:
    s, _ = nik_removed_late()
    [row] = s.send("2023-06-10 12:00", total=10_400)
    assert row.reason is Reason.UNKNOWN_METER


def test_a_late_exchange_whose_installation_arrives_late_too() -> None:
    s = Scenario.of(meter("NIK-2303", SINGLE_ZONE, 5, {TOTAL: 9_700}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=10_000)
    s.close("2023-04")
    s.send("2023-05-15 12:00", total=10_140)  # off-window, the old meter
    # May calculated: 140 kWh in 14 days, 10 a day for the 17 days to 1 June.
    assert [billed(line) for line in s.close("2023-05")] == [
        ("calculated", 10_000, 10_310, 310, ())
    ]
    # Billing's master data of the exchange on 20 May reaches the pipeline in June.
    s.remove("NIK-2303", {TOTAL: 10_190}, "2023-05-20")
    s.install(meter("GAMA-2", TWO_ZONE, 6, {DAY: 100, NIGHT: 50}, "2023-05-20"))
    rows = s.send("2023-06-30 12:00", day=520, night=218)
    assert [(r.meter_id, verdict(r)) for r in rows] == [
        ("GAMA-2", (None, 420, ())),
        ("GAMA-2", (None, 168, ())),
    ]
    june = s.close("2023-06")
    assert [(line.meter_id, line.zone, billed(line), line.closed.days) for line in june] == [
        ("NIK-2303", TOTAL, ("final", 10_310, 10_190, -120, CORRECTION), 0),
        # The new meter's first bill runs from its installation on 20 May: 42 days.
        ("GAMA-2", DAY, ("actual", 100, 520, 420, ()), 42),
        ("GAMA-2", NIGHT, ("actual", 50, 218, 168, ()), 42),
    ]
    # July estimated at the new meter's own rate: day 420 / 42 = 10, night 168 / 42 = 4 a day.
    assert [(line.zone, billed(line)) for line in s.close("2023-07")] == [
        (DAY, ("estimated", 520, 830, 310, ())),
        (NIGHT, ("estimated", 218, 342, 124, ())),
    ]
    old = [line for line in s.lines if line.meter_id == "NIK-2303"]
    assert sum(line.closed.kwh for line in old) == 10_190 - 9_700


def test_a_late_installation_calculated_from_its_installation_date() -> None:
    s = Scenario.of(meter("NIK-2303", SINGLE_ZONE, 5, {TOTAL: 9_700}, "2023-04-01"))
    s.send("2023-04-30 12:00", total=10_000)
    s.close("2023-04")
    s.close("2023-05")
    s.remove("NIK-2303", {TOTAL: 10_190}, "2023-05-20")
    s.install(meter("NIK-9", SINGLE_ZONE, 5, {TOTAL: 0}, "2023-05-21"))
    s.send("2023-06-10 12:00", total=200)  # off-window: 200 kWh in the 20 days since 21 May
    lines = {line.meter_id: line for line in s.close("2023-06")}
    # 10 kWh a day since the installation, 21 more days to 1 July.
    assert (billed(lines["NIK-9"]), lines["NIK-9"].closed.days) == (
        ("calculated", 0, 410, 410, ()),
        41,
    )
