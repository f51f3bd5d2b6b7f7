"""A scripted year of a few dozen accounts: registry, monthly submissions, closes.

Each account has a true register that advances every month; customers mostly submit in the
window, sometimes off-window, sometimes not at all, and make the usual mistakes. Deterministic
for a seed. Returned in the order billing would see it: the registry, then per month the
submissions up to the end of that month's window, then the close of the month.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from streams.domain.calendar import KYIV, Period, submission_window

FIRST_MONTH = Period(2023, 1)


@dataclass
class ScriptedYear:
    registry: list[dict[str, Any]] = field(default_factory=list)
    months: list[tuple[Period, list[dict[str, Any]]]] = field(default_factory=list)


def _at(day: date, hour: int, minute: int = 0) -> str:
    instant = datetime.combine(day, time(hour, minute), tzinfo=KYIV).astimezone(UTC)
    return instant.isoformat().replace("+00:00", "Z")


def scripted_year(accounts: int = 30, start: Period = FIRST_MONTH, seed: int = 3) -> ScriptedYear:
    rng = random.Random(seed)
    year = ScriptedYear()
    meters: dict[str, dict[str, Any]] = {}
    for n in range(accounts):
        account = f"{2_000_000_000 + n:010d}"
        zones = ["day", "night"] if n % 3 == 0 else ["total"]
        digits = 5 if n % 4 == 0 else 6
        near_wrap = n % 7 == 0
        initial = {
            z: (10**digits - rng.randrange(200, 900)) if near_wrap else rng.randrange(1000, 50000)
            for z in zones
        }
        installed = start.shift(-rng.randrange(0, 14)).first_day + timedelta(
            days=rng.randrange(0, 20)
        )
        meters[account] = {"zones": zones, "digits": digits, "true": dict(initial), "id": f"Y-{n}"}
        year.registry.append(
            {"type": "MeterInstalled", "account_id": account, "meter_id": f"Y-{n}", "zones": zones,
             "digits": digits, "initial": initial, "installed_on": str(installed)}
        )  # fmt: skip
    for month in range(12):
        period = start.shift(month)
        first, last = submission_window(period)
        submissions: list[dict[str, Any]] = []
        for account, meter in meters.items():
            monthly = {z: rng.randrange(0, 60) if rng.random() < 0.05 else rng.randrange(80, 320)
                       for z in meter["zones"]}  # fmt: skip
            behaviour = rng.random()
            if behaviour < 0.1:
                day = period.first_day + timedelta(days=rng.randrange(4, 20))  # off-window
                share = (day - period.first_day).days / period.days
            else:
                day = first + timedelta(days=rng.randrange(0, (last - first).days + 1))
                share = 1.0
            for z in meter["zones"]:
                meter["true"][z] += int(monthly[z] * share)
            if behaviour > 0.9:
                for z in meter["zones"]:
                    meter["true"][z] += int(monthly[z] * (1 - share))
                continue  # no submission this month: estimated
            modulus = 10 ** meter["digits"]
            shown = {z: meter["true"][z] % modulus for z in meter["zones"]}
            readings = [{"zone": z, "value": v} for z, v in shown.items()]
            if 0.85 < behaviour <= 0.9:
                typo = dict(readings[0], value=(readings[0]["value"] * 10 + 3) % modulus)
                submissions.append(_submission(rng, account, _at(day, 19), [typo]))
                submissions.append(_submission(rng, account, _at(day, 19, 20), readings))
            elif 0.8 < behaviour <= 0.85 and len(readings) == 2:
                swapped = [{"zone": "day", "value": shown["night"]},
                           {"zone": "night", "value": shown["day"]}]  # fmt: skip
                submissions.append(_submission(rng, account, _at(day, 20), swapped))
                submissions.append(_submission(rng, account, _at(day, 20, 10), readings))
            else:
                submission = _submission(rng, account, _at(day, 20), readings)
                submissions.append(submission)
                if rng.random() < 0.05:
                    submissions.append(dict(submission))  # the bot retried
            if share < 1.0:
                for z in meter["zones"]:
                    meter["true"][z] += int(monthly[z] * (1 - share))
        submissions.sort(key=lambda s: s["submitted_at"])
        year.months.append((period, submissions))
    return year


def _submission(
    rng: random.Random, account: str, at: str, readings: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "account_id": account,
        "channel": rng.choice(("viber", "telegram")),
        "sender_id": f"u-{account}",
        "submitted_at": at,
        "readings": readings,
    }


@dataclass
class Phase:
    """What billing and the bots publish before the next pause: registry events, or
    submissions and then (if any) one close request. Different topics keep no order between
    them, so a phase never holds both registry events and submissions."""

    registry: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    close: Period | None = None


# The first readings of P+1 (off-window, dated up to this day) come before the close of P.
LAG_DAYS = 9


def lagging_year(accounts: int = 24, months: int = 6, seed: int = 5) -> list[Phase]:
    """The scripted year with every close published after the next month's first readings.

    On top of it, a third of the accounts that read in P's window read again on days 4-8 of
    P+1, before P is closed: the same value (away), a little more, or a misread below the P
    reading (BELOW_PREVIOUS against the open P). And two meters go away on the 20th of the
    third month with their master data published only after that month was closed: one
    removed for good, one exchanged (the new meter's installation late too, then read in the
    windows after it).
    """
    rng = random.Random(seed)
    year = scripted_year(accounts=accounts, seed=seed)
    removed, exchanged = (f"{2_000_000_000 + n:010d}" for n in (1, 2))
    meters = {event["account_id"]: event for event in year.registry}
    gone_in = year.months[2][0]
    periods = [period for period, _ in year.months[:months]]
    kept = {
        period: [
            s for s in submissions
            if not (s["account_id"] in (removed, exchanged) and period >= gone_in)
        ]
        for period, submissions in year.months[:months]
    }  # fmt: skip
    early = {
        period: [s for s in kept[period] if _local_day(s).month == period.month
                 and _local_day(s).day <= LAG_DAYS]
        for period in periods
    }  # fmt: skip
    last_shown: dict[str, dict[str, int]] = {}
    phases = [Phase(registry=list(year.registry))]
    for index, period in enumerate(periods):
        if period == gone_in.next():
            phases.append(Phase(registry=_late_exchange(meters, removed, exchanged, gone_in,
                                                        last_shown)))  # fmt: skip
        window = [s for s in kept[period] if index == 0 or s not in early[period]]
        if period > gone_in:
            window.append(_new_meter_reading(rng, meters[exchanged], period, gone_in))
        phases.append(Phase(submissions=window))
        follow_ups = []
        for s in window:
            last_shown[s["account_id"]] = {r["zone"]: r["value"] for r in s["readings"]}
            if _local_day(s) < submission_window(period)[0] or rng.random() > 0.33:
                continue  # not read in P's window, or not again early in P+1
            modulus = 10 ** meters[s["account_id"]]["digits"]
            delta = rng.choice((0, 7, -37))
            readings = [{"zone": r["zone"], "value": (r["value"] + delta) % modulus}
                        for r in s["readings"]]  # fmt: skip
            again = period.end + timedelta(days=rng.randrange(3, LAG_DAYS - 1))
            follow_up = _submission(rng, s["account_id"], _at(again, 18), readings)
            follow_ups.append({**follow_up, "sender_id": f"{follow_up['sender_id']}-early"})
        following = early[periods[index + 1]] if index + 1 < len(periods) else []
        lagging = sorted((*follow_ups, *following), key=lambda s: str(s["submitted_at"]))
        phases.append(Phase(submissions=lagging, close=period))
    return phases


def _local_day(submission: dict[str, Any]) -> date:
    instant = datetime.fromisoformat(str(submission["submitted_at"]).replace("Z", "+00:00"))
    return instant.astimezone(KYIV).date()


def _late_exchange(
    meters: dict[str, dict[str, Any]],
    removed: str,
    exchanged: str,
    gone_in: Period,
    last_shown: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    """The removals of the 20th of `gone_in` and the new meter's installation."""
    on = str(gone_in.first_day + timedelta(days=19))
    events = []
    for account in (removed, exchanged):
        meter = meters[account]
        shown = last_shown.get(account, meter["initial"])
        final = {z: (v + 60) % 10 ** meter["digits"] for z, v in shown.items()}
        events.append(
            {"type": "MeterRemoved", "account_id": account, "meter_id": meter["meter_id"],
             "final": final, "removed_on": on}
        )  # fmt: skip
    new = meters[exchanged]
    events.append(
        {"type": "MeterInstalled", "account_id": exchanged, "meter_id": f"{new['meter_id']}-2",
         "zones": new["zones"], "digits": 6, "initial": {z: 100 for z in new["zones"]},
         "installed_on": on}
    )  # fmt: skip
    return events


def _new_meter_reading(
    rng: random.Random, old: dict[str, Any], period: Period, installed_in: Period
) -> dict[str, Any]:
    """The exchanged account reads its new meter in P's window: 150 kWh a month a zone."""
    months = (period.year - installed_in.year) * 12 + period.month - installed_in.month
    readings = [{"zone": z, "value": 100 + 150 * months} for z in old["zones"]]
    return _submission(rng, old["account_id"], _at(period.last_day, 19), readings)
