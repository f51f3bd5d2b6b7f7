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
