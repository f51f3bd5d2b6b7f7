"""Billing periods and submission windows (SPEC §2.2), by Kyiv local date (SPEC §2)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.calendar import (
    KYIV,
    Period,
    ReadingKind,
    is_closable,
    kyiv_date,
    latest_closable_period,
    next_window_opens,
    period_of,
    place_reading,
    submission_window,
)
from tests.builders import utc

IN = ReadingKind.IN_WINDOW
OFF = ReadingKind.OFF_WINDOW


# --- place_reading: local date -> (kind, period, as_of) -------------------------------------

PLACEMENTS = [
    # The year end: 30-31 Dec and 1-3 Jan are all the December window.
    ("2023-12-29", OFF, "2023-12", "2023-12-29"),
    ("2023-12-30", IN, "2023-12", "2024-01-01"),
    ("2023-12-31", IN, "2023-12", "2024-01-01"),
    ("2024-01-01", IN, "2023-12", "2024-01-01"),
    ("2024-01-02", IN, "2023-12", "2024-01-01"),
    ("2024-01-03", IN, "2023-12", "2024-01-01"),
    ("2024-01-04", OFF, "2024-01", "2024-01-04"),
    # The spec's example: May 2023 -> 30 May .. 3 June.
    ("2023-05-29", OFF, "2023-05", "2023-05-29"),
    ("2023-05-30", IN, "2023-05", "2023-06-01"),
    ("2023-06-03", IN, "2023-05", "2023-06-01"),
    ("2023-06-04", OFF, "2023-06", "2023-06-04"),
    # 30-day months: the window opens on the 29th.
    ("2023-06-28", OFF, "2023-06", "2023-06-28"),
    ("2023-06-29", IN, "2023-06", "2023-07-01"),
    ("2023-06-30", IN, "2023-06", "2023-07-01"),
    ("2023-04-28", OFF, "2023-04", "2023-04-28"),
    ("2023-04-29", IN, "2023-04", "2023-05-01"),
    # Leap February 2024: 28 and 29 Feb are in-window, 27 Feb is not.
    ("2024-02-27", OFF, "2024-02", "2024-02-27"),
    ("2024-02-28", IN, "2024-02", "2024-03-01"),
    ("2024-02-29", IN, "2024-02", "2024-03-01"),
    ("2024-03-01", IN, "2024-02", "2024-03-01"),
    ("2024-03-03", IN, "2024-02", "2024-03-01"),
    ("2024-03-04", OFF, "2024-03", "2024-03-04"),
    # February 2023 (28 days): 27 Feb is in-window, 26 Feb is not.
    ("2023-02-26", OFF, "2023-02", "2023-02-26"),
    ("2023-02-27", IN, "2023-02", "2023-03-01"),
    ("2023-02-28", IN, "2023-02", "2023-03-01"),
    ("2023-03-03", IN, "2023-02", "2023-03-01"),
    # Mid-month.
    ("2023-03-15", OFF, "2023-03", "2023-03-15"),
    # 2100 is not a leap year (Gregorian century rule); 2000 was.
    ("2100-02-27", IN, "2100-02", "2100-03-01"),
    ("2000-02-27", OFF, "2000-02", "2000-02-27"),
    ("2000-02-28", IN, "2000-02", "2000-03-01"),
]


@pytest.mark.parametrize(
    ("day", "kind", "period", "as_of"),
    PLACEMENTS,
    ids=[f"{d}-{k.value}-{p}" for d, k, p, _ in PLACEMENTS],
)
def test_place_reading(day: str, kind: ReadingKind, period: str, as_of: str) -> None:
    placement = place_reading(date.fromisoformat(day))
    assert placement.kind is kind
    assert placement.period == Period.parse(period)
    assert placement.local_date == date.fromisoformat(day)
    assert placement.as_of == date.fromisoformat(as_of)


WINDOWS = [
    ("2023-05", "2023-05-30", "2023-06-03"),
    ("2023-06", "2023-06-29", "2023-07-03"),
    ("2023-12", "2023-12-30", "2024-01-03"),
    ("2024-02", "2024-02-28", "2024-03-03"),
    ("2023-02", "2023-02-27", "2023-03-03"),
    ("2000-02", "2000-02-28", "2000-03-03"),
    ("2100-02", "2100-02-27", "2100-03-03"),
    ("2023-01", "2023-01-30", "2023-02-03"),
]


@pytest.mark.parametrize(("period", "first", "last"), WINDOWS, ids=[w[0] for w in WINDOWS])
def test_submission_window(period: str, first: str, last: str) -> None:
    assert submission_window(Period.parse(period)) == (
        date.fromisoformat(first),
        date.fromisoformat(last),
    )


@pytest.mark.parametrize("period", [w[0] for w in WINDOWS])
def test_every_window_is_five_local_days(period: str) -> None:
    first, last = submission_window(Period.parse(period))
    assert (last - first).days + 1 == 5


# --- kyiv_date and placement of UTC instants around local midnight and DST ---------------------

INSTANTS = [
    # Summer time (+03:00) since 26 March 2023: 21:30Z on 31 March is 00:30 on 1 April.
    ("2023-03-31T21:30:00Z", "2023-04-01", IN, "2023-03", "2023-04-01", 3),
    ("2023-03-31T21:00:00Z", "2023-04-01", IN, "2023-03", "2023-04-01", 3),
    ("2023-03-31T20:59:00Z", "2023-03-31", IN, "2023-03", "2023-04-01", 3),
    # A fixed +02:00 would still say 3 April here; Kyiv is already on 4 April: window closed.
    ("2023-04-03T20:59:59Z", "2023-04-03", IN, "2023-03", "2023-04-01", 3),
    ("2023-04-03T21:00:00Z", "2023-04-04", OFF, "2023-04", "2023-04-04", 3),
    # The spring-forward weekend: 26 March 2023, 03:00 EET -> 04:00 EEST at 01:00Z.
    ("2023-03-25T21:59:59Z", "2023-03-25", OFF, "2023-03", "2023-03-25", 2),
    ("2023-03-25T22:30:00Z", "2023-03-26", OFF, "2023-03", "2023-03-26", 2),
    ("2023-03-26T00:59:59Z", "2023-03-26", OFF, "2023-03", "2023-03-26", 2),
    ("2023-03-26T01:00:00Z", "2023-03-26", OFF, "2023-03", "2023-03-26", 3),
    ("2023-03-26T20:59:59Z", "2023-03-26", OFF, "2023-03", "2023-03-26", 3),
    ("2023-03-26T21:00:00Z", "2023-03-27", OFF, "2023-03", "2023-03-27", 3),
    # The fall-back weekend: 29 October 2023, 04:00 EEST -> 03:00 EET at 01:00Z.
    ("2023-10-28T20:59:59Z", "2023-10-28", OFF, "2023-10", "2023-10-28", 3),
    ("2023-10-28T21:30:00Z", "2023-10-29", OFF, "2023-10", "2023-10-29", 3),
    ("2023-10-29T00:59:59Z", "2023-10-29", OFF, "2023-10", "2023-10-29", 3),
    ("2023-10-29T01:00:00Z", "2023-10-29", OFF, "2023-10", "2023-10-29", 2),
    ("2023-10-29T21:59:59Z", "2023-10-29", OFF, "2023-10", "2023-10-29", 2),
    ("2023-10-29T22:00:00Z", "2023-10-30", IN, "2023-10", "2023-11-01", 2),
    # Winter time (+02:00) again: 22:30Z on 31 October is 00:30 on 1 November.
    ("2023-10-31T21:30:00Z", "2023-10-31", IN, "2023-10", "2023-11-01", 2),
    ("2023-10-31T22:30:00Z", "2023-11-01", IN, "2023-10", "2023-11-01", 2),
    # A fixed +03:00 would already say 4 November here.
    ("2023-11-03T21:30:00Z", "2023-11-03", IN, "2023-10", "2023-11-01", 2),
    ("2023-11-03T22:00:00Z", "2023-11-04", OFF, "2023-11", "2023-11-04", 2),
    # Year end, winter time.
    ("2023-12-31T21:59:59Z", "2023-12-31", IN, "2023-12", "2024-01-01", 2),
    ("2023-12-31T22:00:00Z", "2024-01-01", IN, "2023-12", "2024-01-01", 2),
    ("2024-01-03T22:00:00Z", "2024-01-04", OFF, "2024-01", "2024-01-04", 2),
    # Leap February, winter time: 22:00Z on 27 Feb is 00:00 on 28 Feb.
    ("2024-02-27T21:59:59Z", "2024-02-27", OFF, "2024-02", "2024-02-27", 2),
    ("2024-02-27T22:00:00Z", "2024-02-28", IN, "2024-02", "2024-03-01", 2),
]


@pytest.mark.parametrize(
    ("instant", "local", "kind", "period", "as_of", "offset_hours"),
    INSTANTS,
    ids=[i[0] for i in INSTANTS],
)
def test_instants_are_placed_by_kyiv_local_date(
    instant: str, local: str, kind: ReadingKind, period: str, as_of: str, offset_hours: int
) -> None:
    at = utc(instant)
    assert at.astimezone(KYIV).utcoffset() == timedelta(hours=offset_hours)
    assert kyiv_date(at) == date.fromisoformat(local)
    placement = place_reading(kyiv_date(at))
    assert (placement.kind, str(placement.period), placement.as_of) == (
        kind,
        period,
        date.fromisoformat(as_of),
    )


def test_kyiv_date_does_not_depend_on_the_instants_own_offset() -> None:
    at = utc("2023-03-31T21:30:00Z")
    for tz in (timezone(timedelta(hours=-11)), timezone(timedelta(hours=14)), KYIV):
        assert kyiv_date(at.astimezone(tz)) == date(2023, 4, 1)


def test_kyiv_date_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        kyiv_date(datetime(2023, 5, 30, 9, 15))


# --- Period -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2023-05", Period(2023, 5)), (" 2023-12\n", Period(2023, 12)), ("0001-01", Period(1, 1))],
    ids=["plain", "surrounding-whitespace", "year-1"],
)
def test_period_parse(text: str, expected: Period) -> None:
    assert Period.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2023-5",
        "23-05",
        "2023/05",
        "2023-05-01",
        "05-2023",
        "May 2023",
        "",
        "2023-13",
        "2023-00",
        "0000-01",
        "9999-01",
        "2023 -05",
    ],
)
def test_period_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


@pytest.mark.parametrize("text", ["2023-05", "0999-01", "2024-12"])
def test_period_str_round_trips(text: str) -> None:
    assert str(Period.parse(text)) == text


@pytest.mark.parametrize(("year", "month"), [(2023, 0), (2023, 13), (0, 1), (9999, 1)])
def test_period_constructor_rejects(year: int, month: int) -> None:
    with pytest.raises(ValueError, match="not a billing period"):
        Period(year, month)


@pytest.mark.parametrize(
    ("period", "days", "first", "last", "end"),
    [
        ("2023-01", 31, "2023-01-01", "2023-01-31", "2023-02-01"),
        ("2023-02", 28, "2023-02-01", "2023-02-28", "2023-03-01"),
        ("2024-02", 29, "2024-02-01", "2024-02-29", "2024-03-01"),
        ("2023-04", 30, "2023-04-01", "2023-04-30", "2023-05-01"),
        ("2023-12", 31, "2023-12-01", "2023-12-31", "2024-01-01"),
        ("2100-02", 28, "2100-02-01", "2100-02-28", "2100-03-01"),
    ],
)
def test_period_days(period: str, days: int, first: str, last: str, end: str) -> None:
    p = Period.parse(period)
    assert p.days == days
    assert (p.first_day, p.last_day, p.end) == tuple(map(date.fromisoformat, (first, last, end)))


@pytest.mark.parametrize(
    ("period", "nxt", "prev"),
    [
        ("2023-12", "2024-01", "2023-11"),
        ("2024-01", "2024-02", "2023-12"),
        ("2024-02", "2024-03", "2024-01"),
        ("2023-06", "2023-07", "2023-05"),
    ],
)
def test_period_next_and_previous(period: str, nxt: str, prev: str) -> None:
    p = Period.parse(period)
    assert p.next() == Period.parse(nxt)
    assert p.previous() == Period.parse(prev)
    assert p.next().previous() == p


@pytest.mark.parametrize(
    ("period", "months", "expected"),
    [
        ("2023-12", 1, "2024-01"),
        ("2024-01", -1, "2023-12"),
        ("2023-05", 0, "2023-05"),
        ("2023-05", 12, "2024-05"),
        ("2023-05", -12, "2022-05"),
        ("2023-01", -13, "2021-12"),
        ("2023-11", 26, "2026-01"),
        ("2023-03", -27, "2020-12"),
    ],
)
def test_period_shift(period: str, months: int, expected: str) -> None:
    assert Period.parse(period).shift(months) == Period.parse(expected)


def test_periods_order_across_year_end() -> None:
    assert Period(2023, 12) < Period(2024, 1) < Period(2024, 2)
    assert sorted([Period(2024, 1), Period(2023, 12), Period(2023, 2)]) == [
        Period(2023, 2),
        Period(2023, 12),
        Period(2024, 1),
    ]


@given(
    st.builds(Period, st.integers(1000, 8000), st.integers(1, 12)),
    st.integers(-1200, 1200),
    st.integers(-1200, 1200),
)
def test_period_shift_composes(period: Period, a: int, b: int) -> None:
    assert period.shift(a).shift(b) == period.shift(a + b)
    assert period.shift(1) == period.next()
    assert period.shift(-1) == period.previous()


# --- next_window_opens --------------------------------------------------------------------------

OPENINGS = [
    ("2023-06-15", "2023-06-29"),  # a 30-day month: last - 1 = 29 June
    ("2023-05-15", "2023-05-30"),
    ("2023-06-04", "2023-06-29"),
    ("2024-01-04", "2024-01-30"),
    ("2024-02-15", "2024-02-28"),
    ("2023-02-15", "2023-02-27"),
    ("2023-12-20", "2023-12-30"),
    # Inside a window, the next one is a month away.
    ("2023-05-30", "2023-06-29"),
    ("2023-06-03", "2023-06-29"),
    ("2023-12-31", "2024-01-30"),
    ("2024-02-29", "2024-03-30"),
]


@pytest.mark.parametrize(("day", "opens"), OPENINGS, ids=[o[0] for o in OPENINGS])
def test_next_window_opens(day: str, opens: str) -> None:
    assert next_window_opens(date.fromisoformat(day)) == date.fromisoformat(opens)


# --- properties ---------------------------------------------------------------------------------

AWARE_INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2100, 12, 30),
    timezones=st.one_of(st.just(UTC), st.just(KYIV), st.timezones()),
    allow_imaginary=False,
)


@given(AWARE_INSTANTS)
def test_placement_agrees_with_windows(instant: datetime) -> None:
    day = kyiv_date(instant)
    # Kyiv is UTC+2 in winter and UTC+3 in summer, never anything else in this range.
    as_utc = instant.astimezone(UTC).replace(tzinfo=None)
    assert day in {(as_utc + timedelta(hours=2)).date(), (as_utc + timedelta(hours=3)).date()}

    placement = place_reading(day)
    first, last = submission_window(placement.period)
    assert (placement.kind is IN) == (first <= day <= last)
    assert placement.period in {Period.of(day), Period.of(day).previous()}
    assert placement.local_date == day
    if placement.kind is IN:
        assert placement.as_of == placement.period.end
    else:
        assert placement.period == Period.of(day)
        assert placement.as_of == day
    # The windows of the local month and the one before never both contain a date.
    containing = [
        p
        for p in (Period.of(day), Period.of(day).previous())
        if submission_window(p)[0] <= day <= submission_window(p)[1]
    ]
    assert len(containing) == (1 if placement.kind is IN else 0)
    assert next_window_opens(day) > day


@pytest.mark.parametrize(
    ("today", "period"),
    [
        ("2023-06-03", "2023-04"),  # May's window is still open on 3 June
        ("2023-06-04", "2023-05"),
        ("2023-06-30", "2023-05"),
        ("2024-01-04", "2023-12"),
        ("2024-01-01", "2023-11"),
        ("2024-03-04", "2024-02"),
    ],
)
def test_latest_closable_period(today: str, period: str) -> None:
    assert str(latest_closable_period(date.fromisoformat(today))) == period


def test_a_period_is_closable_once_its_window_has_ended() -> None:
    may = Period(2023, 5)  # window 30 May - 3 June (Kyiv)
    assert not is_closable(may, date(2023, 6, 3))
    assert is_closable(may, date(2023, 6, 4))
    assert not is_closable(Period(2023, 6), date(2023, 6, 4))


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2200, 12, 31)))
def test_the_latest_closable_period_is_closable_and_the_next_is_not(today: date) -> None:
    latest = latest_closable_period(today)
    assert is_closable(latest, today) and not is_closable(latest.next(), today)


def test_an_instant_belongs_to_the_period_of_its_kyiv_date() -> None:
    assert period_of(utc("2023-05-31T21:30:00Z")) == Period(2023, 6)  # 00:30 on 1 June in Kyiv
    assert period_of(utc("2023-05-31T20:30:00Z")) == Period(2023, 5)
