"""Billing periods and submission windows, by local date in Europe/Kyiv.

Every calendar rule works on the Kyiv local date of an instant (zoneinfo, never a fixed offset):
Ukraine moves its clocks on the last Sundays of March and October, often inside a window.
"""

from __future__ import annotations

import calendar
import enum
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

KYIV = ZoneInfo("Europe/Kyiv")

# The Commercial Metering Code's window: the last 2 local days of the month and the first 3 of
# the next. A reading inside it is the meter's reading as of the 1st of the next month.
WINDOW_DAYS_BEFORE_MONTH_END = 2
WINDOW_DAYS_AFTER_MONTH_START = 3

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """A billing period: one calendar month."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9998:
            raise ValueError(f"not a billing period: {self.year:04d}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse `YYYY-MM`."""
        return _parse_period(text)

    @classmethod
    def of(cls, day: date) -> Period:
        """The period a local date falls in."""
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return _period_text(self.year, self.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def end(self) -> date:
        """The 1st of the next month: the date an end-of-period reading stands for."""
        return self.last_day + timedelta(days=1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def next(self) -> Period:
        return Period.of(self.end)

    def previous(self) -> Period:
        return Period.of(self.first_day - timedelta(days=1))

    def shift(self, months: int) -> Period:
        index = self.year * 12 + (self.month - 1) + months
        return Period(index // 12, index % 12 + 1)


class ReadingKind(enum.StrEnum):
    IN_WINDOW = "in_window"
    OFF_WINDOW = "off_window"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a reading falls: its period, and the date its value stands for."""

    kind: ReadingKind
    period: Period
    local_date: date
    as_of: date  # the 1st of P+1 for an in-window reading, else its own local date


def kyiv_date(instant: datetime) -> date:
    """The Kyiv local date of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(KYIV).date()


def period_of(instant: datetime) -> Period:
    """The period an aware instant falls in, by its Kyiv local date (e.g. a rejection's)."""
    return Period.of(kyiv_date(instant))


def submission_window(period: Period) -> tuple[date, date]:
    """The first and last local dates (inclusive) of the window of `period`."""
    first = period.last_day - timedelta(days=WINDOW_DAYS_BEFORE_MONTH_END - 1)
    last = period.end + timedelta(days=WINDOW_DAYS_AFTER_MONTH_START - 1)
    return first, last


@functools.lru_cache(maxsize=4096)  # a date per submission: a few hundred distinct ones
def place_reading(day: date) -> Placement:
    """Classify a reading by its local date: in-window for a period, or off-window in its month."""
    own = Period.of(day)
    if day.day <= WINDOW_DAYS_AFTER_MONTH_START:
        return Placement(ReadingKind.IN_WINDOW, own.previous(), day, own.first_day)
    if day > own.last_day - timedelta(days=WINDOW_DAYS_BEFORE_MONTH_END):
        return Placement(ReadingKind.IN_WINDOW, own, day, own.end)
    return Placement(ReadingKind.OFF_WINDOW, own, day, day)


def next_window_opens(day: date) -> date:
    """The first local date of the next window that starts after `day`."""
    first, _ = submission_window(Period.of(day))
    return first if first > day else submission_window(Period.of(day).next())[0]


def is_closable(period: Period, today: date) -> bool:
    """Whether the window of `period` has ended by the local date `today`: closed earlier, it
    would estimate readings that customers may still send."""
    return submission_window(period)[1] < today


def latest_closable_period(today: date) -> Period:
    """The latest period whose window has ended by the local date `today`."""
    period = Period.of(today).previous()
    return period if is_closable(period, today) else period.previous()


# Periods are parsed and printed for every stored state and every row: a few hundred distinct
# values in a process's life, so both are cached.
@functools.lru_cache(maxsize=4096)
def _parse_period(text: str) -> Period:
    match = _PERIOD_RE.match(text.strip())
    if match is None:
        raise ValueError(f"a period is written YYYY-MM, got {text!r}")
    return Period(int(match.group(1)), int(match.group(2)))


@functools.lru_cache(maxsize=4096)
def _period_text(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"
