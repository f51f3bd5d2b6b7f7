"""Closes that lag the next month's first readings, and master data that arrives after its
period was closed (SPEC §2.4-2.5), scripted on top of the simulator's traffic.

The simulator (`pokazy simulate`) gives months of ordinary traffic; this adds what it does not
send: a customer who reads again early in the next month before the month is closed, and two
meters removed mid-month whose master data is published only after that month was closed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from streams.domain.calendar import KYIV, Period, kyiv_date, submission_window
from streams.tools.simulate import simulate

FIRST_MONTH = Period(2023, 1)
# The first readings of P+1 (off-window, or late readings of P, dated up to this day of P+1)
# come before the close of P.
LAG_DAYS = 9


@dataclass
class Phase:
    """What billing and the bots publish before the next pause: registry events, or
    submissions and then (if any) one close request. Different topics keep no order between
    them, so a phase never holds both registry events and submissions."""

    registry: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    close: Period | None = None


@dataclass(frozen=True)
class LaggingYear:
    phases: list[Phase]
    removed: tuple[str, str]  # (account, meter) removed for good in `gone_in`
    exchanged: tuple[str, str]  # (account, meter) exchanged in `gone_in`
    new_meter: str  # the exchanged account's new meter
    gone_in: Period


def lagging_year(accounts: int = 24, months: int = 6, seed: int = 5) -> LaggingYear:
    """The simulated months with every close published after the next month's first readings.

    On top of them, a third of the submissions read in P's window are read again on days 4-8
    of P+1, before P is closed: the same value (away), a little more, or a misread below the P
    reading (BELOW_PREVIOUS against the open P). And two single-zone meters go away on the 20th
    of the third month with their master data published only after that month was closed: one
    removed for good, one exchanged (the new meter's installation late too, then read in the
    windows after it).
    """
    rng = random.Random(seed)
    sim = simulate(accounts, months, seed=seed, start=FIRST_MONTH)
    registry = sim.registry_events()
    meters = {e["meter_id"]: e for e in registry if e["type"] == "MeterInstalled"}
    truth = [orjson.loads(line) for line in sim.truth]
    removed, exchanged = _steady_single_zone_accounts(registry)[:2]
    gone_in = FIRST_MONTH.shift(2)
    gone_on = gone_in.first_day + timedelta(days=19)
    submissions = [
        (s, t) for s, t in zip(sim.submission_events(), truth, strict=True)
        if not (s["account_id"] in (removed, exchanged) and _local_day(s) >= gone_on)
    ]  # fmt: skip
    periods = list(sim.closes)
    cuts = [p.end + timedelta(days=LAG_DAYS - 1) for p in periods]
    phases = [Phase(registry=registry)]
    new_meter = f"{_meter_of(registry, exchanged)}-2"
    last_true: dict[str, dict[str, int]] = {}
    start = 0
    for index, period in enumerate(periods):
        window_end, cut = submission_window(period)[1], cuts[index]
        window = [p for p in submissions[start:] if _local_day(p[0]) <= window_end]
        lagging = [p for p in submissions[start + len(window) :] if _local_day(p[0]) <= cut]
        start += len(window) + len(lagging)
        if period == gone_in.next():
            phases.append(Phase(registry=_late_exchange(
                meters, removed, exchanged, new_meter, gone_on, last_true)))  # fmt: skip
        for s, t in window:
            if t["true"] is not None:  # None: an account nobody has
                last_true[s["account_id"]] = t["true"]
        window_submissions = [s for s, _ in window]
        if period > gone_in:
            window_submissions.append(_new_meter_reading(rng, meters, exchanged, period, gone_in))
        phases.append(Phase(submissions=window_submissions))
        follow_ups = [
            _read_again(rng, s, meters[t["meter_id"]]["digits"], period)
            for s, t in window
            if t["meter_id"] in meters
            and _local_day(s) >= submission_window(period)[0]
            and rng.random() <= 0.33
        ]
        phases.append(Phase(
            submissions=sorted([*follow_ups, *(s for s, _ in lagging)],
                               key=lambda s: str(s["submitted_at"])),
            close=period,
        ))  # fmt: skip
    assert start == len(submissions), "every submission in a phase"
    return LaggingYear(
        phases,
        removed=(removed, _meter_of(registry, removed)),
        exchanged=(exchanged, _meter_of(registry, exchanged)),
        new_meter=new_meter,
        gone_in=gone_in,
    )


def _steady_single_zone_accounts(registry: list[dict[str, Any]]) -> list[str]:
    """Accounts with one single-zone meter that the simulation never exchanges."""
    installs: dict[str, list[dict[str, Any]]] = {}
    for event in registry:
        installs.setdefault(event["account_id"], []).append(event)
    return [
        account for account, events in installs.items()
        if len(events) == 1 and events[0]["zones"] == ["total"]
    ]  # fmt: skip


def _meter_of(registry: list[dict[str, Any]], account: str) -> str:
    return str(next(e["meter_id"] for e in registry if e["account_id"] == account))


def _local_day(submission: dict[str, Any]) -> date:
    return kyiv_date(datetime.fromisoformat(str(submission["submitted_at"])))


def _at(day: date, hour: int) -> str:
    instant = datetime.combine(day, time(hour), tzinfo=KYIV).astimezone(UTC)
    return instant.isoformat().replace("+00:00", "Z")


def _submission(
    rng: random.Random, account: str, at: str, readings: list[dict[str, Any]], sender: str
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "account_id": account,
        "channel": "viber",
        "sender_id": sender,
        "submitted_at": at,
        "readings": readings,
    }


def _read_again(
    rng: random.Random, submission: dict[str, Any], digits: int, period: Period
) -> dict[str, Any]:
    """The same registers read again on days 4-8 of P+1: unchanged, 7 more, or 37 less."""
    delta = rng.choice((0, 7, -37))
    modulus = 10**digits
    readings = [
        {**{k: v for k, v in r.items() if k != "raw_text"}, "value": (r["value"] + delta) % modulus}
        for r in submission["readings"]
    ]
    again = period.end + timedelta(days=rng.randrange(3, LAG_DAYS - 1))
    account = submission["account_id"]
    return _submission(rng, account, _at(again, 18), readings, f"{account}-early")


def _late_exchange(
    meters: dict[str, dict[str, Any]],
    removed: str,
    exchanged: str,
    new_meter: str,
    on: date,
    last_true: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    """The removals of `on` (60 kWh past the last true reading) and the new meter's
    installation."""
    events = []
    by_account = {m["account_id"]: m for m in meters.values()}
    for account in (removed, exchanged):
        meter = by_account[account]
        shown = last_true.get(account, meter["initial"])
        final = {z: (v + 60) % 10 ** meter["digits"] for z, v in shown.items()}
        events.append(
            {"type": "MeterRemoved", "account_id": account, "meter_id": meter["meter_id"],
             "final": final, "removed_on": str(on)}
        )  # fmt: skip
    events.append(
        {"type": "MeterInstalled", "account_id": exchanged, "meter_id": new_meter,
         "zones": ["total"], "digits": 6, "initial": {"total": 100}, "installed_on": str(on)}
    )  # fmt: skip
    return events


def _new_meter_reading(
    rng: random.Random,
    meters: dict[str, dict[str, Any]],
    account: str,
    period: Period,
    installed_in: Period,
) -> dict[str, Any]:
    """The exchanged account reads its new meter in P's window: 150 kWh a month."""
    months = (period.year - installed_in.year) * 12 + period.month - installed_in.month
    readings = [{"zone": "total", "value": 100 + 150 * months}]
    return _submission(rng, account, _at(period.last_day, 19), readings, f"{account}-new")
