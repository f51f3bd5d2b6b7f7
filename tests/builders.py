"""What the tests build their inputs from, in one place.

- **Times**: `utc("2023-05-30T09:15:00Z")`, and `local("2023-05-30 12:15")` for a Kyiv
  wall-clock time as the UTC instant a bot would send.
- **The domain's objects**: meters (`meter`, `single_zone`, `two_zone`, `three_zone`), an
  account with its meters installed (`account`), register readings and submissions, and a
  `Scenario`: one account driven through the domain's own transitions (registry events,
  judged submissions, closes).
- **The wire's JSON forms** (what bots and billing give the SDK): `submission_json`,
  `installed_json`, `removed_json`.
- **Traffic**: from the one generator there is, the simulator (`pokazy simulate`), so the
  tests judge what the demo and the benchmark send (`simulated_month`).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streams.domain.account import AccountState
from streams.domain.calendar import KYIV, Period
from streams.domain.closing import BillingLine, close_period
from streams.domain.model import (
    Meter,
    MeterInstalled,
    MeterRemoved,
    ReadingOutcome,
    Reason,
    RegisterReading,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.validation import apply_registry_event, apply_submission
from streams.domain.zones import SINGLE_ZONE, THREE_ZONE, TWO_ZONE, Zone
from streams.tools.simulate import simulate

ACCOUNT = "0123456789"
RULES = Rules()
DAY, NIGHT, TOTAL = Zone.DAY, Zone.NIGHT, Zone.TOTAL
PEAK, HALF_PEAK = Zone.PEAK, Zone.HALF_PEAK
INSTALLED_ON = date(2021, 3, 15)

# --- times and ids --------------------------------------------------------------------------------


def utc(text: str) -> datetime:
    """An instant written in ISO 8601 with its offset or `Z`."""
    return datetime.fromisoformat(text)


def local(text: str) -> datetime:
    """A Kyiv wall-clock time ("2023-05-30 12:00") as the UTC instant a bot would send."""
    return datetime.fromisoformat(text).replace(tzinfo=KYIV).astimezone(UTC)


_event_ids = itertools.count(1)


def new_event_id() -> str:
    """A UUID no other call in this test run returns."""
    return str(uuid.UUID(int=next(_event_ids)))


# --- the domain's objects -------------------------------------------------------------------------


def meter(
    meter_id: str, zones: tuple[Zone, ...], digits: int, initial: dict[Zone, int], on: str
) -> Meter:
    return Meter(meter_id, zones, digits, initial, date.fromisoformat(on))


def single_zone(
    meter_id: str = "NIK-2303", installed_on: date = INSTALLED_ON, initial: int = 4200
) -> Meter:
    return Meter(meter_id, SINGLE_ZONE, 5, {TOTAL: initial}, installed_on)


def two_zone(
    meter_id: str = "GAMA-100200",
    installed_on: date = INSTALLED_ON,
    initial: dict[Zone, int] | None = None,
) -> Meter:
    return Meter(meter_id, TWO_ZONE, 6, initial or {DAY: 12000, NIGHT: 6500}, installed_on)


def three_zone(
    meter_id: str = "TRI-7",
    installed_on: date = INSTALLED_ON,
    initial: dict[Zone, int] | None = None,
) -> Meter:
    return Meter(
        meter_id, THREE_ZONE, 7, initial or {PEAK: 1, HALF_PEAK: 2, NIGHT: 3}, installed_on
    )


def account(*meters: Meter, account_id: str = ACCOUNT) -> AccountState:
    """An account with `meters` installed, in order, by the domain's own transition."""
    state: AccountState | None = None
    for m in meters:
        state = apply_registry_event(state, MeterInstalled(account_id, m))
    assert state is not None
    return state


def reading(value: Any, zone: Zone | None = None, register: str | None = None) -> RegisterReading:
    return RegisterReading(zone=zone, register=register, value=value)


def submission(
    *readings: RegisterReading,
    at: datetime,
    meter_id: str | None = None,
    event_id: str | None = None,
    account_id: str = ACCOUNT,
    sender_id: str = "u-77",
    channel: str = "viber",
) -> Submission:
    return Submission(
        event_id=event_id or new_event_id(),
        account_id=account_id,
        meter_id=meter_id,
        channel=channel,
        sender_id=sender_id,
        submitted_at=at,
        readings=readings,
    )


def billed(line: BillingLine) -> tuple[str, int, int, int, tuple[str, ...]]:
    """A billing row as billing reads it: basis, start and end readings, kWh, flags."""
    closed = line.closed
    flags = tuple(sorted(str(f) for f in closed.flags))
    return str(closed.basis), line.start_reading, line.end_reading, closed.kwh, flags


def verdict(row: ReadingOutcome) -> tuple[Reason | None, int | None, tuple[str, ...]]:
    """A reading's outcome as the reply shows it: reason (None = accepted), kWh, flags."""
    return row.reason, row.kwh, tuple(sorted(row.flags))


@dataclass
class Scenario:
    """One account driven through apply_registry_event / apply_submission / close_period,
    with times written as Kyiv wall-clock times."""

    state: AccountState = field(default_factory=lambda: AccountState(ACCOUNT))
    lines: list[BillingLine] = field(default_factory=list)  # every line a close emitted
    last: Submission | None = None

    @classmethod
    def of(cls, *meters: Meter) -> Scenario:
        scenario = cls()
        for m in meters:
            scenario.install(m)
        return scenario

    def install(self, m: Meter) -> None:
        self.state = apply_registry_event(self.state, MeterInstalled(ACCOUNT, m))

    def remove(self, meter_id: str, final: dict[Zone, int], on: str) -> None:
        event = MeterRemoved(ACCOUNT, meter_id, final, date.fromisoformat(on))
        self.state = apply_registry_event(self.state, event)

    def submission(
        self,
        at: str | datetime,
        *readings: RegisterReading,
        meter_id: str | None = None,
        **values: int,
    ) -> Submission:
        instant = local(at) if isinstance(at, str) else at
        registers = (*readings, *(RegisterReading(Zone(z), None, v) for z, v in values.items()))
        return submission(*registers, at=instant, meter_id=meter_id)

    def apply(self, submission: Submission, now: datetime | None = None) -> SubmissionOutcome:
        now = now or submission.submitted_at + timedelta(minutes=1)
        state, outcome, duplicate = apply_submission(self.state, submission, now=now, rules=RULES)
        assert state is not None
        assert not duplicate
        self.state, self.last = state, submission
        return outcome

    def send(
        self,
        at: str | datetime,
        *readings: RegisterReading,
        meter_id: str | None = None,
        now: datetime | None = None,
        **values: int,
    ) -> tuple[ReadingOutcome, ...]:
        """Submit readings (`day=12_100` or RegisterReading objects) at a Kyiv time."""
        submission = self.submission(at, *readings, meter_id=meter_id, **values)
        return self.apply(submission, now).readings

    def close(self, period: str) -> list[BillingLine]:
        self.state, lines = close_period(self.state, Period.parse(period))
        self.lines.extend(lines)
        return lines

    def close_each(self, first: str, last: str) -> None:
        period = Period.parse(first)
        while period <= Period.parse(last):
            self.close(str(period))
            period = period.next()

    def bill(self, period: str, zone: Zone, meter_id: str | None = None) -> BillingLine:
        matches = [
            line
            for line in self.lines
            if str(line.closed.period) == period
            and line.zone == zone
            and meter_id in (None, line.meter_id)
        ]
        assert len(matches) == 1, matches
        return matches[0]


GAMA = "GAMA-100200"


def gama_after_april() -> Scenario:
    """Two-zone GAMA installed 1 April 2023; April billed actual at day 12,000 / night 6,500
    (10 and 5 kWh a day). May is open: B = F = the April readings, floor dated 1 May; on 30 May
    (n = 29) H = max(2000, 3 x 10 x 29) = 2000 for both zones."""
    s = Scenario.of(meter(GAMA, TWO_ZONE, 6, {DAY: 11_700, NIGHT: 6_350}, "2023-04-01"))
    assert [r.reason for r in s.send("2023-04-30 12:00", day=12_000, night=6_500)] == [None, None]
    s.close("2023-04")
    return s


# --- the wire's JSON forms ------------------------------------------------------------------------


def submission_json(
    account_id: str, at: str, readings: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """A ReadingSubmitted as a bot gives it to the SDK, with a random event id as a bot's;
    `fields` add or replace any field."""
    return {
        "event_id": str(uuid.uuid4()),
        "account_id": account_id,
        "channel": "viber",
        "sender_id": "u-77",
        "submitted_at": at,
        "readings": readings,
        **fields,
    }


def installed_json(
    account_id: str,
    meter_id: str,
    initial: dict[str, int],
    on: str,
    digits: int = 6,
    **fields: Any,
) -> dict[str, Any]:
    """A MeterInstalled as billing gives it to the SDK; its zones are those of `initial`."""
    return {
        "type": "MeterInstalled",
        "account_id": account_id,
        "meter_id": meter_id,
        "zones": list(initial),
        "digits": digits,
        "initial": initial,
        "installed_on": on,
        **fields,
    }


def removed_json(account_id: str, meter_id: str, final: dict[str, int], on: str) -> dict[str, Any]:
    """A MeterRemoved as billing gives it to the SDK."""
    return {
        "type": "MeterRemoved",
        "account_id": account_id,
        "meter_id": meter_id,
        "final": final,
        "removed_on": on,
    }


# --- traffic --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    """A period's traffic as billing and the bots publish it (the SDK's dicts)."""

    registry: list[dict[str, Any]]  # the meters, installed in the period before
    submissions: list[dict[str, Any]]  # in time order, late readings (days 4-9 of next) included


def simulated_month(accounts: int, period: Period, seed: int) -> Month:
    """One period of the simulator's traffic for `accounts` accounts."""
    sim = simulate(accounts, 1, start=period, seed=seed)
    return Month(sim.registry_events(), sim.submission_events())
