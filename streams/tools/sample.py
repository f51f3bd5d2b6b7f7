"""A small, deterministic month of bot traffic for the demo and the tests.

Each account behaves one way: most submit inside the window, some off-window, some never; a few
make the mistakes customers make (a digit too many, the total register on a two-zone meter, an
unknown label), retry a submission, or do not exist.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from streams.domain.calendar import KYIV, Period, submission_window
from streams.domain.zones import TWO_ZONE

DAY_LABELS = ("1.8.2", "15.8.2", "T22")
NIGHT_LABELS = ("1.8.1", "15.8.1", "T21")


@dataclass(frozen=True)
class SampleMonth:
    registry: list[dict[str, Any]]
    submissions: list[dict[str, Any]]


def sample_month(accounts: int, period: Period, seed: int = 7) -> SampleMonth:
    """Registry events and one month of submissions for `accounts` accounts."""
    rng = random.Random(seed)
    registry: list[dict[str, Any]] = []
    submissions: list[dict[str, Any]] = []
    first, last = submission_window(period)
    window_days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    for n in range(accounts):
        account = f"{1_000_000_000 + n:010d}"
        two_zone = rng.random() < 0.35
        zones = list(TWO_ZONE) if two_zone else ["total"]
        digits = rng.choice((5, 6, 6, 6))
        initial = {z: rng.randrange(1000, 10 ** (digits - 1)) for z in zones}
        registry.append(
            {
                "type": "MeterInstalled",
                "account_id": account,
                "meter_id": f"M-{n:06d}",
                "zones": zones,
                "digits": digits,
                "initial": initial,
                # Installed in the first days of the month, so its close is the first one.
                "installed_on": str(period.first_day + timedelta(days=rng.randrange(0, 3))),
                "dso": "dtek-kem",
            }
        )
        behaviour = rng.random()
        if behaviour < 0.08:
            continue  # never submits this month
        off_window = behaviour < 0.18
        day = (
            period.first_day + timedelta(days=rng.randrange(4, period.days - 3))
            if off_window
            else rng.choice(window_days)
        )
        clock = time(rng.choice((8, 12, 19, 20, 21, 22)), rng.randrange(60))
        at = datetime.combine(day, clock, tzinfo=KYIV).astimezone(UTC)
        readings = []
        for zone in zones:
            value = (initial[zone] + rng.randrange(0, 400)) % 10**digits
            if zone == "total":
                readings.append({"zone": "total", "value": value})
            else:
                labels = DAY_LABELS if zone == "day" else NIGHT_LABELS
                readings.append({"register": rng.choice(labels), "value": value})
        mistake = rng.random()
        if mistake < 0.04:
            readings[0]["value"] = readings[0]["value"] * 10 + 7 + 10**digits  # a digit too many
        elif mistake < 0.07 and two_zone:
            readings = [{"register": "1.8.0", "value": sum(r["value"] for r in readings)}]
        elif mistake < 0.09:
            readings[0] = {"register": "9.9.9", "value": readings[0]["value"]}
        submission = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "account_id": account,
            "channel": rng.choice(("viber", "viber", "telegram")),
            "sender_id": f"u-{rng.getrandbits(32):08x}",
            "submitted_at": at.isoformat().replace("+00:00", "Z"),
            "readings": readings,
        }
        submissions.append(submission)
        if rng.random() < 0.05:
            submissions.append(dict(submission))  # the bot retried the same event
    for n in range(max(1, accounts // 30)):
        submissions.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "account_id": f"9{n:09d}",
                "channel": "telegram",
                "sender_id": "u-unknown",
                "submitted_at": datetime.combine(last, time(10), tzinfo=KYIV)
                .astimezone(UTC)
                .isoformat()
                .replace("+00:00", "Z"),
                "readings": [{"zone": "total", "value": 4242}],
            }
        )
    submissions.sort(key=lambda s: s["submitted_at"])
    return SampleMonth(registry, submissions)
