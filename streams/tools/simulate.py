"""`pokazy simulate`: realistic, deterministic bot traffic for N accounts over M billing periods.

The one traffic generator: `pokazy demo`, `pokazy bench` and the tests all send what it makes.

Every account has a meter and a *true* consumption process: a seasonal number of kWh per month
(Kyiv households use roughly 150-350 kWh a month, more in winter), split between the meter's
zones, advancing the meter's registers day by day and wrapping at ``10**digits``. A customer's
correct reading is the true register at the instant of submission, so every accepted reading
is consistent with every other, and the pipeline's deltas, rollovers and estimates can be
checked against the truth.

On top of that each account does one thing per period (a `Behaviour`, with the shares below):
reads on time inside the window with the evening peak of its last days, reads early or late
(off-window), forgets (the period gets estimated), is away and re-sends the same reading,
mistypes and corrects, swaps day and night, sends the total register or a label the DSO does not
know. A few accounts never submit at all: chosen once for the whole simulation, not month by
month, so each of their periods is estimated, several in a row (SPEC §2.5: `no_history`, then
`prolonged_estimation`). Independently the bot sometimes retries a submission (same event, same
content), billing exchanges a few meters mid-month, customers type account numbers that do not
exist, and a few messages on the readings topic are not submissions at all.

Shares are *quotas*, not dice: exactly ``round(share × accounts)`` accounts never submit, and of
the other accounts of one zone set in one period exactly ``round(share × count)`` get a
behaviour (largest remainder), shuffled by the seed. The composition is exact and even small
runs contain every case; which account does what is random.

Everything is drawn from `random.Random` streams seeded from ``seed``: the same arguments give
byte-identical files.
"""

from __future__ import annotations

import base64
import bisect
import enum
import random
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from streams.adapters.avro import MAGIC, default_codec
from streams.adapters.decode import READING_SUBMITTED
from streams.domain.calendar import KYIV, Period, kyiv_date, submission_window
from streams.domain.zones import DEFAULT_DSO, SINGLE_ZONE, THREE_ZONE, TWO_ZONE, Zone

__all__ = [
    "DEFAULT_START",
    "Behaviour",
    "Role",
    "Simulation",
    "SimulationFiles",
    "behaviour_shares",
    "simulate",
    "write_simulation",
]

ZoneSet = tuple[Zone, ...]
T = TypeVar("T")


class Behaviour(enum.StrEnum):
    """What one account does about one billing period (exactly one per account-month)."""

    ON_TIME = "on_time"  # one correct reading inside the window
    EARLY = "early"  # one correct reading a few days before the window: off-window in P
    LATE = "late"  # one correct reading just after the window: off-window in P+1
    NONE = "none"  # nothing at all: P will be estimated
    ZERO_CONSUMPTION = "zero_consumption"  # away since the last reading: re-sends the same value
    TYPO_CORRECTED = "typo_corrected"  # a digit transposed or doubled, corrected minutes later
    ZONES_SWAPPED = "zones_swapped"  # two-zone: the day value under the night label and back
    TOTAL_REGISTER = "total_register"  # multi-zone: the total register (1.8.0) instead of zones
    UNKNOWN_REGISTER = "unknown_register"  # a display label the DSO's map does not know
    NEVER = "never"  # the account submits in no period of the simulation: all are estimated


class Role(enum.StrEnum):
    """What one submission line is, in `truth.jsonl`."""

    READING = "reading"  # the true register values, correctly named
    TYPO = "typo"  # one value mistyped
    CORRECTION = "correction"  # the true values again, a new event after a mistake
    SWAPPED = "swapped"  # day and night values exchanged
    TOTAL = "total"  # the total register of a multi-zone meter
    UNKNOWN_REGISTER = "unknown_register"  # one reading under a label the DSO does not know
    RETRY = "retry"  # the bot sent the line before it again: same event_id, same content


#: The `behaviour` of a submission in `truth.jsonl` for an account number that does not exist.
UNKNOWN_ACCOUNT = "unknown_account"

DEFAULT_START = Period(2023, 1)  # the first simulated period unless told otherwise

# --- The meter population --------------------------------------------------------------------
# Most Kyiv households have a single-zone meter; two-zone meters came with the night tariff;
# three-zone meters are rare.
ZONE_SET_SHARES: Mapping[ZoneSet, float] = {SINGLE_ZONE: 0.70, TWO_ZONE: 0.27, THREE_ZONE: 0.03}
# Integer display digits: old induction meters show 5, electronic ones 6, a few 7.
DIGITS_SHARES: Mapping[int, float] = {5: 0.20, 6: 0.74, 7: 0.06}
# Accounts whose 5-digit meter is installed a month's consumption short of 99,999, so its
# register rolls over to 0 during the first simulated period (on the busiest zone).
NEAR_ROLLOVER_SHARE = 0.02
NEAR_ROLLOVER_HEADROOM_KWH = (20, 160)
# Two-zone models label their registers 1.8.2/1.8.1, 15.8.2/15.8.1 or T22/T21 (SPEC §1).
LABEL_FAMILY_SHARES: Mapping[str, float] = {"1.8": 0.50, "15.8": 0.20, "T2": 0.30}
# Customers type labels as the display shows them: "1.8.2." with its dot, "t22", a Cyrillic Т.
LABEL_VARIANT_SHARE = 0.05
METER_MODELS: Mapping[ZoneSet, tuple[str, ...]] = {
    SINGLE_ZONE: ("NIK2102", "GAMA100", "STK1"),
    TWO_ZONE: ("NIK2104", "GAMA100T", "EMS132T"),
    THREE_ZONE: ("NIK2307", "LZQJXC"),
}

# --- True consumption ------------------------------------------------------------------------
# An account's average month; the seasonal factor and ±noise make it roughly 150-350 kWh.
MONTHLY_KWH_RANGE = (150.0, 280.0)
# Month-of-year factor, January first: heating and lighting in winter, some cooling in July.
SEASONAL_FACTOR = (1.30, 1.22, 1.08, 0.95, 0.85, 0.82, 0.88, 0.86, 0.85, 0.95, 1.10, 1.28)
MONTHLY_NOISE = 0.10
# Two-zone: the day zone's share of consumption (about 60/40 day/night).
DAY_SHARE_RANGE = (0.55, 0.66)
THREE_ZONE_SPLIT: Mapping[Zone, float] = {Zone.PEAK: 0.22, Zone.HALF_PEAK: 0.45, Zone.NIGHT: 0.33}

# --- Accounts that never submit (a quota of all accounts, drawn once) --------------------------
# Flats let or empty, customers who leave it to the estimate: a few percent of a DSO's accounts
# go unread for months. Their periods are estimated in a row, which is what `no_history` and
# `prolonged_estimation` (SPEC §2.5) exist for; a month-by-month draw makes such runs rare.
NEVER_SUBMITS_SHARE = 0.03

# --- Behaviour per account-month (quotas per zone set; on time takes the rest) ----------------
# Shares of the account-months of the accounts that submit at all (all but NEVER_SUBMITS_SHARE).
EARLY_SHARE = 0.05
LATE_SHARE = 0.05
NONE_SHARE = 0.08
ZERO_CONSUMPTION_SHARE = 0.015
TYPO_SHARE = 0.02
UNKNOWN_REGISTER_SHARE = 0.005
ZONES_SWAPPED_SHARE = 0.03  # of two-zone account-months
TOTAL_REGISTER_SHARE = 0.02  # of two- and three-zone account-months
# A customer whose reading the bot refused (swap, total, unknown label) sends it again properly.
CORRECTION_AFTER_REFUSAL_SHARE = 0.7
CORRECTION_DELAY_MINUTES = (1, 15)

# --- Events that are not an account-month's behaviour ----------------------------------------
DUPLICATE_RETRY_SHARE = 0.02  # of submissions: the bot timed out and sent the same event again
EXCHANGE_SHARE = 0.003  # meters exchanged per account-month (about 3.5 % a year, at most once)
EXCHANGE_TO_TWO_ZONE_SHARE = 0.4  # single-zone exchanges where the customer took the night tariff
REFURBISHED_METER_SHARE = 0.2  # new meters that arrive with a register far from zero
UNKNOWN_ACCOUNT_SHARE = 0.004  # per period: submissions for an account number with a typo
MALFORMED_SHARE = 0.001  # per account-month, and at least one of each kind per simulation
METER_ID_SHARE = 0.2  # submissions that name the meter (bots that remember it)

# --- Channels ----------------------------------------------------------------------------------
CHANNEL_SHARES: Mapping[str, float] = {"viber": 0.60, "telegram": 0.35, "web": 0.04, "other": 0.01}
CHANNEL_LOYALTY = 0.95  # a customer mostly uses the same bot

# --- When customers submit (Kyiv local time) ---------------------------------------------------
# Window days in order: last(P)-1, last(P), 1st, 2nd, 3rd of P+1. People wait for the end of
# the month and the bot's reminder.
WINDOW_DAY_WEIGHTS = (0.24, 0.30, 0.26, 0.12, 0.08)
PEAK_WINDOW_DAYS = 3  # the last 2 days and the 1st carry the evening peak
EVENING_PEAK_HOURS = range(18, 22)  # 18:00-22:00 Kyiv
EVENING_PEAK_SHARE = 0.55  # of submissions on a peak day
# Relative activity by local hour. On a peak day the evening hours take EVENING_PEAK_SHARE and
# the other hours share the rest by these weights; on other days all hours follow them.
HOUR_WEIGHTS = (
    0.30, 0.15, 0.10, 0.05, 0.05, 0.10, 0.40, 1.00, 1.60, 2.00, 2.00, 2.00,
    2.00, 1.90, 1.80, 1.80, 1.90, 2.00, 2.40, 2.60, 2.60, 2.20, 1.60, 0.80,
)  # fmt: skip
EARLY_FIRST_DAY = 15  # early readings: day 15 .. last(P)-2
LATE_DAYS = (4, 9)  # late readings: days 4..9 of P+1
EXCHANGE_DAYS = (10, 14)  # meter exchanges: mid-month, between late and early readings
INSTALLATION_DAYS = (1, 25)  # every meter is installed in the period before the first

UNKNOWN_LABELS = ("1.8.3", "2.8.0", "T23", "1.8", "0.9.1")  # 2.8.0: export; 0.9.1: the clock

MALFORMED_KINDS = (
    "random_bytes",  # line noise
    "json_not_avro",  # a front end that bypassed the SDK
    "truncated_avro",  # a valid message cut short
    "unknown_fingerprint",  # Avro framing, a schema pokazy does not know
    "empty",  # a message with no value
    "bad_event_id",  # decodable, but the idempotency key is not a UUID
    "no_readings",  # decodable, but carries nothing
    "same_zone_twice",  # decodable, but names the day zone twice
)

_ZONE_WORD = {
    Zone.DAY: "день",
    Zone.NIGHT: "ніч",
    Zone.PEAK: "пік",
    Zone.HALF_PEAK: "напівпік",
}


def behaviour_shares(zones: ZoneSet) -> dict[Behaviour, float]:
    """The share of each behaviour among account-months of meters with this zone set.

    Of the accounts that submit at all: those that never do (`NEVER_SUBMITS_SHARE`) are set
    aside before the monthly quotas.
    """
    shares = {
        Behaviour.EARLY: EARLY_SHARE,
        Behaviour.LATE: LATE_SHARE,
        Behaviour.NONE: NONE_SHARE,
        Behaviour.ZERO_CONSUMPTION: ZERO_CONSUMPTION_SHARE,
        Behaviour.TYPO_CORRECTED: TYPO_SHARE,
        Behaviour.UNKNOWN_REGISTER: UNKNOWN_REGISTER_SHARE,
    }
    if zones == TWO_ZONE:
        shares[Behaviour.ZONES_SWAPPED] = ZONES_SWAPPED_SHARE
    if len(zones) > 1:
        shares[Behaviour.TOTAL_REGISTER] = TOTAL_REGISTER_SHARE
    return {Behaviour.ON_TIME: 1.0 - sum(shares.values()), **shares}


@dataclass(frozen=True, slots=True)
class Simulation:
    """The generated traffic: JSON lines (without newlines) in file order, and the counts."""

    registry: list[bytes]  # MeterInstalled/MeterRemoved, by effective date
    submissions: list[bytes]  # ReadingSubmitted, sorted by submitted_at
    truth: list[bytes]  # one per submission line, same order: behaviour, role, true registers
    malformed: list[bytes]  # {"kind", "key", "sent_at", "value_hex"}: raw Kafka messages
    closes: tuple[Period, ...]  # the periods to close, in order
    manifest: dict[str, Any]

    def registry_events(self) -> list[dict[str, Any]]:
        """The registry as billing publishes it (`BillingProducer.publish_registry`)."""
        return [orjson.loads(line) for line in self.registry]

    def submission_events(self) -> list[dict[str, Any]]:
        """The submissions as the bots send them (`PokazyProducer.submit`), in time order."""
        return [orjson.loads(line) for line in self.submissions]

    def malformed_messages(self) -> list[tuple[bytes | None, bytes]]:
        """The malformed messages as (key, value), byte for byte as a broken front end sends."""
        messages = []
        for line in self.malformed:
            message = orjson.loads(line)
            key = message.get("key")
            messages.append((key.encode() if key else None, bytes.fromhex(message["value_hex"])))
        return messages

    def by_close(self) -> tuple[list[tuple[Period, list[dict[str, Any]]]], list[dict[str, Any]]]:
        """Each period to close with the submissions sent up to the end of its window (billing
        closes it then), in order; and the submissions after the last window (late readings)."""
        pending = list(self.closes)
        batches: list[tuple[Period, list[dict[str, Any]]]] = []
        current: list[dict[str, Any]] = []
        for submission in self.submission_events():
            day = kyiv_date(datetime.fromisoformat(submission["submitted_at"]))
            while pending and submission_window(pending[0])[1] < day:
                batches.append((pending.pop(0), current))
                current = []
            current.append(submission)
        for period in pending:
            batches.append((period, current))
            current = []
        return batches, current


@dataclass(frozen=True, slots=True)
class SimulationFiles:
    """Where `write_simulation` put each file."""

    registry: Path
    submissions: Path
    truth: Path
    malformed: Path
    closes: Path
    manifest: Path


def simulate(
    accounts: int,
    months: int,
    *,
    seed: int = 1,
    start: Period = DEFAULT_START,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Simulation:
    """Bot traffic for `accounts` accounts over `months` periods from `start`, for `seed`.

    Meters are installed in the period before `start`; the last period's late readings run
    to the 9th of the month after it, which must be before `now` (default: the clock), so no
    timestamp is in the future. `progress` is called with the number of accounts finished
    since its previous call.
    """
    if accounts < 1 or months < 1:
        raise ValueError("simulate at least one account over at least one period")
    now = now or datetime.now(UTC)
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    periods = tuple(start.shift(i) for i in range(months))
    horizon = datetime.combine(periods[-1].end + timedelta(days=LATE_DAYS[1]), time(0), tzinfo=KYIV)
    if horizon > now:
        raise ValueError(
            f"the traffic of {periods[-1]} runs until {horizon:%Y-%m-%d %H:%M} Kyiv time (late "
            f"readings included), after now ({now:%Y-%m-%d %H:%M %Z}): start earlier or "
            f"simulate fewer periods"
        )
    generator = _Generator(seed, periods)
    population = generator.population(accounts)
    plan = generator.plan(population)
    done = 0
    for account in population:
        generator.account_traffic(account, plan)
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(1000)
    if progress is not None and done % 1000:
        progress(done % 1000)
    generator.unknown_accounts(population)
    generator.malformed(population)
    return generator.result(population)


def write_simulation(sim: Simulation, out_dir: Path) -> SimulationFiles:
    """Write the simulation's files into `out_dir` (created if needed), replacing old ones."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = SimulationFiles(
        registry=out_dir / "registry.jsonl",
        submissions=out_dir / "submissions.jsonl",
        truth=out_dir / "truth.jsonl",
        malformed=out_dir / "malformed.jsonl",
        closes=out_dir / "closes.txt",
        manifest=out_dir / "manifest.json",
    )
    for path, lines in (
        (files.registry, sim.registry),
        (files.submissions, sim.submissions),
        (files.truth, sim.truth),
        (files.malformed, sim.malformed),
        (files.closes, [str(p).encode() for p in sim.closes]),
    ):
        path.write_bytes(b"\n".join([*lines, b""]))
    files.manifest.write_bytes(orjson.dumps(sim.manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return files


# ---------------------------------------------------------------------------------------------
# The generator. Three passes: the population (meters and consumption of every account), the
# plan (which accounts never submit, which have their meter exchanged, and every other
# account-month's behaviour as exact quotas), then each account's traffic in time order against
# its true registers.
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Meter:
    meter_id: str
    zones: ZoneSet
    digits: int
    initial: dict[Zone, int]
    family: str  # display label family: "1.8", "15.8" or "T2"

    @property
    def modulus(self) -> int:
        return int(10**self.digits)


@dataclass(slots=True)
class _Account:
    index: int
    account_id: str
    meter: _Meter
    installed: tuple[date, int]  # local date, second of day
    split: dict[Zone, float]  # each zone's share of consumption
    daily_kwh: list[float]  # per month from the installation period on
    channel: str  # the bot the customer mostly uses
    senders: dict[str, str] = field(default_factory=dict)  # chat user id per channel


@dataclass(frozen=True, slots=True)
class _Plan:
    exchanges: dict[int, tuple[int, ZoneSet]]  # account index -> (period index, new zone set)
    behaviours: list[list[Behaviour]]  # [period index][account index]


class _Moment:
    """A Kyiv local date and second of day; `t` is the date ordinal plus the day's fraction."""

    __slots__ = ("day", "second")

    def __init__(self, day: date, second: int) -> None:
        self.day = day + timedelta(days=second // 86_400)
        self.second = second % 86_400

    @property
    def t(self) -> float:
        return self.day.toordinal() + self.second / 86_400

    def later(self, seconds: int) -> _Moment:
        return _Moment(self.day, self.second + seconds)

    def utc_text(self) -> str:
        clock = time(self.second // 3600, self.second // 60 % 60, self.second % 60)
        instant = datetime.combine(self.day, clock, tzinfo=KYIV).astimezone(UTC)
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Registers:
    """The true, unwrapped registers of an account's active meter, advanced in time order."""

    def __init__(self, account: _Account, month_starts: Sequence[int], at: _Moment) -> None:
        self.account = account
        self.month_starts = month_starts  # ordinal of the 1st of each month, one past the last
        self.t = at.t
        self.unwrapped = {z: float(v) for z, v in account.meter.initial.items()}
        self.last_reported = dict(account.meter.initial)  # to notice a rollover

    def advance(self, to: _Moment, *, away: bool = False) -> None:
        """Consume until `to` at each month's daily rate (nothing if the customer is away)."""
        end = to.t
        if not away:
            kwh = 0.0
            t = self.t
            month = bisect.bisect_right(self.month_starts, t) - 1
            while t < end:
                upto = min(end, self.month_starts[month + 1])
                kwh += (upto - t) * self.account.daily_kwh[month]
                t, month = upto, month + 1
            for zone, share in self.account.split.items():
                self.unwrapped[zone] += kwh * share
        self.t = end

    def display(self) -> dict[Zone, int]:
        """What the meter shows now: the integer part of each register, wrapped."""
        modulus = self.account.meter.modulus
        return {zone: int(value) % modulus for zone, value in self.unwrapped.items()}

    def replace_meter(self, meter: _Meter, split: dict[Zone, float]) -> None:
        self.account.meter = meter
        self.account.split = split
        self.unwrapped = {z: float(v) for z, v in meter.initial.items()}
        self.last_reported = dict(meter.initial)


def _half_up(value: float) -> int:
    return int(value + 0.5)


def _quotas(shares: Mapping[Behaviour, float], count: int) -> list[Behaviour]:
    """Exactly `count` behaviours in the given shares (largest remainder), in share order."""
    exact = {b: share * count for b, share in shares.items()}
    counts = {b: int(x) for b, x in exact.items()}
    remainders = sorted(exact, key=lambda b: exact[b] - counts[b], reverse=True)
    for behaviour in remainders[: count - sum(counts.values())]:
        counts[behaviour] += 1
    return [b for b, n in counts.items() for _ in range(n)]


class _Weighted(Generic[T]):
    """A weighted draw, precomputed (the generator makes millions of them)."""

    __slots__ = ("cumulative", "options", "total")

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.options = [option for option, weight in weights.items() if weight > 0]
        self.cumulative = list(accumulate(w for w in weights.values() if w > 0))
        self.total = self.cumulative[-1]

    def draw(self, rng: random.Random) -> T:
        return self.options[bisect.bisect(self.cumulative, rng.random() * self.total)]


def _split(rng: random.Random, zones: ZoneSet) -> dict[Zone, float]:
    if zones == SINGLE_ZONE:
        return {Zone.TOTAL: 1.0}
    if zones == TWO_ZONE:
        day = rng.uniform(*DAY_SHARE_RANGE)
        return {Zone.DAY: day, Zone.NIGHT: 1.0 - day}
    return dict(THREE_ZONE_SPLIT)


def _line(obj: Mapping[str, Any]) -> bytes:
    # orjson's result keeps its ~4 KB write buffer; an exact-size copy keeps a million lines in
    # a few hundred MB instead of several GB.
    return bytes(memoryview(orjson.dumps(obj)))


def _label(zone: Zone, family: str) -> str:
    if zone is Zone.TOTAL:
        return "15.8.0" if family == "15.8" else "1.8.0"
    if family == "T2":
        return "T22" if zone is Zone.DAY else "T21"
    return f"{family}.{2 if zone is Zone.DAY else 1}"


_ZONE_SETS = _Weighted(ZONE_SET_SHARES)
_DIGITS = _Weighted(DIGITS_SHARES)
_LABEL_FAMILIES = _Weighted(LABEL_FAMILY_SHARES)
_CHANNELS = _Weighted(CHANNEL_SHARES)
_WINDOW_DAYS = _Weighted(dict(enumerate(WINDOW_DAY_WEIGHTS)))
_HOURS = _Weighted(dict(enumerate(HOUR_WEIGHTS)))
_OFF_PEAK_HOURS = _Weighted(
    {hour: 0.0 if hour in EVENING_PEAK_HOURS else w for hour, w in enumerate(HOUR_WEIGHTS)}
)
_TWO_ZONE_STYLES = _Weighted({"register": 0.55, "zone": 0.30, "both": 0.15})
_SINGLE_ZONE_STYLES = _Weighted({"zone": 0.7, "register": 0.3})


class _Generator:
    def __init__(self, seed: int, periods: tuple[Period, ...]) -> None:
        self.seed = seed
        self.periods = periods
        self.installation_period = periods[0].previous()
        # Separate streams, so a change to one concern does not reshuffle the others.
        self.rng_population = random.Random(f"pokazy-simulate:{seed}:population")
        self.rng_plan = random.Random(f"pokazy-simulate:{seed}:plan")
        self.rng_traffic = random.Random(f"pokazy-simulate:{seed}:traffic")
        self.rng_noise = random.Random(f"pokazy-simulate:{seed}:noise")
        months = [self.installation_period, *periods, periods[-1].next(), periods[-1].shift(2)]
        self.month_starts = [p.first_day.toordinal() for p in months]
        self.registry: list[tuple[str, int, bytes]] = []  # (effective date, order, line)
        self.submissions: list[tuple[str, int, bytes, bytes]] = []  # (at, order, line, truth)
        self.malformed_lines: list[bytes] = []
        self.counts: Counter[str] = Counter()
        self.behaviours: Counter[str] = Counter()
        self.roles: Counter[str] = Counter()
        self.channels: Counter[str] = Counter()
        self.malformed_kinds: Counter[str] = Counter()

    # -- pass 1: who has which meter and uses how much --------------------------------------

    def population(self, accounts: int) -> list[_Account]:
        rng = self.rng_population
        # Distinct 10-digit account numbers, and two distinct serials per account (its meter
        # and the one an exchange brings).
        account_ids = rng.sample(range(10**9, 10**10), accounts)
        self.serials = rng.sample(range(10**10), 2 * accounts)
        near_rollover = set(rng.sample(range(accounts), _half_up(accounts * NEAR_ROLLOVER_SHARE)))
        population = []
        for n in range(accounts):
            zones: ZoneSet = _ZONE_SETS.draw(rng)
            digits = 5 if n in near_rollover else _DIGITS.draw(rng)
            split = _split(rng, zones)
            meter = _Meter(
                meter_id=self._meter_id(rng, zones, n, 0),
                zones=zones,
                digits=digits,
                initial=self._aged_registers(rng, split, digits),
                family=_LABEL_FAMILIES.draw(rng),
            )
            if n in near_rollover:
                busiest = max(split, key=lambda z: split[z])
                meter.initial[busiest] = 10**digits - rng.randint(*NEAR_ROLLOVER_HEADROOM_KWH)
            base = rng.uniform(*MONTHLY_KWH_RANGE)
            daily = []
            for k in range(len(self.month_starts) - 1):
                month = self.installation_period.shift(k)
                noise = 1.0 + rng.uniform(-MONTHLY_NOISE, MONTHLY_NOISE)
                daily.append(base * SEASONAL_FACTOR[month.month - 1] * noise / month.days)
            installed_on = self.installation_period.first_day + timedelta(
                days=rng.randint(*INSTALLATION_DAYS) - 1
            )
            account = _Account(
                index=n,
                account_id=str(account_ids[n]),
                meter=meter,
                installed=(installed_on, rng.randrange(9 * 3600, 17 * 3600)),
                split=split,
                daily_kwh=daily,
                channel=_CHANNELS.draw(rng),
            )
            population.append(account)
            self._installed(account, _Moment(*account.installed), order=n)
            self.counts[f"meters_{len(zones)}_zone"] += 1
            self.counts[f"meters_{digits}_digit"] += 1
        self.counts["meters_near_rollover"] = len(near_rollover)
        return population

    def _meter_id(self, rng: random.Random, zones: ZoneSet, n: int, generation: int) -> str:
        return f"{rng.choice(METER_MODELS[zones])}-{self.serials[n * 2 + generation]:010d}"

    @staticmethod
    def _aged_registers(
        rng: random.Random, split: dict[Zone, float], digits: int
    ) -> dict[Zone, int]:
        # A meter some years in service: up to 60,000 kWh on it (5-digit ones may have wrapped).
        lifetime = rng.uniform(0, 10**5 if digits == 5 else 60_000)
        return {
            zone: int(lifetime * share * rng.uniform(0.9, 1.1)) % 10**digits
            for zone, share in split.items()
        }

    # -- pass 2: the plan --------------------------------------------------------------------

    def plan(self, population: list[_Account]) -> _Plan:
        rng = self.rng_plan
        zones_now = [a.meter.zones for a in population]
        # Chosen once for every period, so their estimates run in a row. Their meters are not
        # exchanged either: the removal's final reading is an actual measurement, and the new
        # meter starts a new chain, which would cut the run of estimates short.
        never = set(
            rng.sample(range(len(population)), _half_up(len(population) * NEVER_SUBMITS_SHARE))
        )
        self.counts["never_submitting_accounts"] = len(never)
        exchanges: dict[int, tuple[int, ZoneSet]] = {}
        behaviours: list[list[Behaviour]] = []
        for m in range(len(self.periods)):
            # A meter is exchanged at most once: meters last for years.
            candidates = [
                a.index for a in population if a.index not in exchanges and a.index not in never
            ]
            count = min(len(candidates), _half_up(len(population) * EXCHANGE_SHARE))
            for n in sorted(rng.sample(candidates, count)):
                old = zones_now[n]
                new = (
                    TWO_ZONE
                    if old == SINGLE_ZONE and rng.random() < EXCHANGE_TO_TWO_ZONE_SHARE
                    else old
                )
                exchanges[n] = (m, new)
                zones_now[n] = new
            # The behaviour of period m fits the meter its window readings go to (the exchange
            # comes mid-month, before them).
            month = [
                Behaviour.NEVER if n in never else Behaviour.ON_TIME for n in range(len(population))
            ]
            for zones in ZONE_SET_SHARES:
                members = [n for n, z in enumerate(zones_now) if z == zones and n not in never]
                quota = _quotas(behaviour_shares(zones), len(members))
                rng.shuffle(quota)
                for n, behaviour in zip(members, quota, strict=True):
                    month[n] = behaviour
            behaviours.append(month)
        return _Plan(exchanges, behaviours)

    # -- pass 3: one account's traffic, in time order ----------------------------------------

    def account_traffic(self, account: _Account, plan: _Plan) -> None:
        rng = self.rng_traffic
        events: list[tuple[float, int, int, _Moment]] = []  # (t, order, period index, when)
        exchange = plan.exchanges.get(account.index)
        if exchange is not None:
            period = self.periods[exchange[0]]
            day = period.first_day + timedelta(days=rng.randint(*EXCHANGE_DAYS) - 1)
            when = _Moment(day, rng.randrange(9 * 3600, 17 * 3600))
            events.append((when.t, 0, -1, when))
        for m, period in enumerate(self.periods):
            when_or_none = self._submission_moment(rng, period, plan.behaviours[m][account.index])
            if when_or_none is not None:
                events.append((when_or_none.t, 1, m, when_or_none))
        registers = _Registers(account, self.month_starts, _Moment(*account.installed))
        for _, _, m, when in sorted(events, key=lambda e: (e[0], e[1])):
            if m < 0:
                assert exchange is not None
                registers.advance(when)
                self._exchange(rng, account, registers, when, exchange[1])
                continue
            behaviour = plan.behaviours[m][account.index]
            registers.advance(when, away=behaviour is Behaviour.ZERO_CONSUMPTION)
            self._behave(rng, account, registers, behaviour, self.periods[m], when)
        for m in range(len(self.periods)):
            self.behaviours[plan.behaviours[m][account.index]] += 1

    def _submission_moment(
        self, rng: random.Random, period: Period, behaviour: Behaviour
    ) -> _Moment | None:
        if behaviour in (Behaviour.NONE, Behaviour.NEVER):
            return None
        if behaviour is Behaviour.EARLY:
            day = period.first_day + timedelta(
                days=rng.randint(EARLY_FIRST_DAY, period.days - 2) - 1
            )
            return _Moment(day, self._second_of_day(rng, peak=False))
        if behaviour is Behaviour.LATE:
            day = period.end + timedelta(days=rng.randint(*LATE_DAYS) - 1)
            return _Moment(day, self._second_of_day(rng, peak=False))
        return self._window_moment(rng, period)

    def _window_moment(self, rng: random.Random, period: Period) -> _Moment:
        first, _ = submission_window(period)
        offset = _WINDOW_DAYS.draw(rng)
        second = self._second_of_day(rng, peak=offset < PEAK_WINDOW_DAYS)
        return _Moment(first + timedelta(days=offset), second)

    @staticmethod
    def _second_of_day(rng: random.Random, *, peak: bool) -> int:
        if peak and rng.random() < EVENING_PEAK_SHARE:
            hour = rng.choice(EVENING_PEAK_HOURS)
        else:
            hour = (_OFF_PEAK_HOURS if peak else _HOURS).draw(rng)
        return hour * 3600 + rng.randrange(3600)

    def _exchange(
        self,
        rng: random.Random,
        account: _Account,
        registers: _Registers,
        when: _Moment,
        zones: ZoneSet,
    ) -> None:
        """Billing removes the meter with its final reading and installs a new one that day."""
        old = account.meter
        removed = {
            "type": "MeterRemoved",
            "account_id": account.account_id,
            "meter_id": old.meter_id,
            "final": {z.value: v for z, v in registers.display().items()},
            "removed_on": when.day.isoformat(),
        }
        self.registry.append((when.day.isoformat(), len(self.registry), _line(removed)))
        split = _split(rng, zones) if zones != old.zones else account.split
        if rng.random() < REFURBISHED_METER_SHARE:
            initial = self._aged_registers(rng, split, 6)
        else:
            initial = {z: rng.randrange(0, 20) for z in zones}  # factory-fresh
        new = _Meter(
            meter_id=self._meter_id(rng, zones, account.index, 1),
            zones=zones,
            digits=6,
            initial=initial,
            family=old.family,
        )
        registers.replace_meter(new, split)
        self._installed(account, when, order=len(self.registry))
        self.counts["exchanges"] += 1
        if zones != old.zones:
            self.counts["exchanges_to_two_zone"] += 1

    def _installed(self, account: _Account, when: _Moment, *, order: int) -> None:
        meter = account.meter
        installed = {
            "type": "MeterInstalled",
            "account_id": account.account_id,
            "meter_id": meter.meter_id,
            "zones": [z.value for z in meter.zones],
            "digits": meter.digits,
            "initial": {z.value: v for z, v in meter.initial.items()},
            "installed_on": when.day.isoformat(),
            "dso": DEFAULT_DSO,
        }
        self.registry.append((when.day.isoformat(), order, _line(installed)))

    def _behave(
        self,
        rng: random.Random,
        account: _Account,
        registers: _Registers,
        behaviour: Behaviour,
        period: Period,
        when: _Moment,
    ) -> None:
        """The customer's submissions for one period: one, or a mistake and maybe a correction."""
        meter = account.meter
        true = registers.display()
        channel = self._channel(rng, account)
        style = self._naming_style(rng, meter.zones)
        values = dict(true)
        readings: list[dict[str, Any]]
        if behaviour is Behaviour.TYPO_CORRECTED:
            zone = rng.choice(meter.zones)
            readings = self._readings(
                rng, meter, style, channel, values, typed={zone: _typo(rng, true[zone])}
            )
            role, corrected = Role.TYPO, True
        elif behaviour is Behaviour.ZONES_SWAPPED:
            values = {Zone.DAY: true[Zone.NIGHT], Zone.NIGHT: true[Zone.DAY]}
            readings = self._readings(rng, meter, style, channel, values)
            role, corrected = Role.SWAPPED, rng.random() < CORRECTION_AFTER_REFUSAL_SHARE
        elif behaviour is Behaviour.TOTAL_REGISTER:
            total = int(sum(registers.unwrapped.values())) % meter.modulus
            readings = [self._total_reading(rng, meter, channel, total)]
            role, corrected = Role.TOTAL, rng.random() < CORRECTION_AFTER_REFUSAL_SHARE
        elif behaviour is Behaviour.UNKNOWN_REGISTER:
            readings = self._readings(rng, meter, style, channel, values)
            label = rng.choice(UNKNOWN_LABELS)
            readings[0] = {"register": label, "value": readings[0]["value"]}
            if channel in ("viber", "telegram"):
                readings[0]["raw_text"] = f"{label} {readings[0]['value']}"
            role, corrected = Role.UNKNOWN_REGISTER, rng.random() < CORRECTION_AFTER_REFUSAL_SHARE
        else:
            readings = self._readings(rng, meter, style, channel, values)
            role, corrected = Role.READING, False
        self._emit(rng, account, registers, behaviour, period, when, channel, readings, role)
        if corrected:
            when = when.later(60 * rng.randint(*CORRECTION_DELAY_MINUTES) + rng.randrange(60))
            registers.advance(when)
            readings = self._readings(rng, meter, style, channel, registers.display())
            self._emit(
                rng, account, registers, behaviour, period, when, channel, readings, Role.CORRECTION
            )

    def _emit(
        self,
        rng: random.Random,
        account: _Account,
        registers: _Registers,
        behaviour: Behaviour,
        period: Period,
        when: _Moment,
        channel: str,
        readings: list[dict[str, Any]],
        role: Role,
    ) -> None:
        meter = account.meter
        true = registers.display()
        if role in (Role.READING, Role.CORRECTION):
            for zone, value in true.items():
                if value < registers.last_reported[zone]:
                    self.counts["rollovers"] += 1
                registers.last_reported[zone] = value
        submission: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "account_id": account.account_id,
        }
        if rng.random() < METER_ID_SHARE:
            submission["meter_id"] = meter.meter_id
        submission["channel"] = channel
        submission["sender_id"] = self._sender(rng, account, channel)
        submission["submitted_at"] = when.utc_text()
        submission["readings"] = readings
        truth = {
            "event_id": submission["event_id"],
            "account_id": account.account_id,
            "meter_id": meter.meter_id,
            "period": str(period),
            "behaviour": behaviour.value,
            "role": role.value,
            "true": {z.value: v for z, v in true.items()},
        }
        self._append(submission, truth)
        if rng.random() < DUPLICATE_RETRY_SHARE:
            self._append(submission, {**truth, "role": Role.RETRY.value})

    def _append(self, submission: dict[str, Any], truth: dict[str, Any]) -> None:
        order = len(self.submissions)
        self.submissions.append(
            (submission["submitted_at"], order, _line(submission), _line(truth))
        )
        self.roles[truth["role"]] += 1
        if truth["role"] != Role.RETRY:
            self.channels[submission["channel"]] += 1

    def _channel(self, rng: random.Random, account: _Account) -> str:
        if rng.random() < CHANNEL_LOYALTY:
            return account.channel
        channel: str = _CHANNELS.draw(rng)
        return channel

    def _sender(self, rng: random.Random, account: _Account, channel: str) -> str:
        """The customer's user id in a channel, stable across their submissions."""
        sender = account.senders.get(channel)
        if sender is None:
            if channel == "viber":  # Viber user ids are base64 of 16 bytes
                sender = base64.b64encode(rng.randbytes(16)).decode()
            elif channel == "telegram":
                sender = str(rng.randrange(10**8, 7 * 10**9))
            else:
                sender = f"{channel}-{rng.getrandbits(48):012x}"
            account.senders[channel] = sender
        return sender

    @staticmethod
    def _naming_style(rng: random.Random, zones: ZoneSet) -> str:
        """How the bot names registers: by the display label, by zone, or both."""
        if zones == TWO_ZONE:
            return _TWO_ZONE_STYLES.draw(rng)
        if zones == SINGLE_ZONE:
            return _SINGLE_ZONE_STYLES.draw(rng)
        return "zone"  # three-zone labels are not standardised (SPEC §2.1)

    def _readings(
        self,
        rng: random.Random,
        meter: _Meter,
        style: str,
        channel: str,
        values: Mapping[Zone, int],
        typed: Mapping[Zone, str] | None = None,
    ) -> list[dict[str, Any]]:
        """One reading per zone of the meter, in the order the bot asks for them."""
        readings = []
        for zone in meter.zones:
            text = (typed or {}).get(zone, str(values[zone]))
            reading: dict[str, Any] = {}
            if style in ("zone", "both"):
                reading["zone"] = zone.value
            if style in ("register", "both"):
                reading["register"] = self._typed_label(rng, _label(zone, meter.family))
            reading["value"] = int(text)
            if channel in ("viber", "telegram"):  # the chat message the bot parsed
                word = _ZONE_WORD.get(zone)
                reading["raw_text"] = f"{word} {text}" if word else text
            readings.append(reading)
        return readings

    def _total_reading(
        self, rng: random.Random, meter: _Meter, channel: str, total: int
    ) -> dict[str, Any]:
        reading: dict[str, Any]
        if rng.random() < 0.5:
            reading = {"register": self._typed_label(rng, _label(Zone.TOTAL, meter.family))}
        else:
            reading = {"zone": Zone.TOTAL.value}
        reading["value"] = total
        if channel in ("viber", "telegram"):
            reading["raw_text"] = str(total)
        return reading

    @staticmethod
    def _typed_label(rng: random.Random, label: str) -> str:
        if rng.random() >= LABEL_VARIANT_SHARE:
            return label
        if label.startswith("T"):
            return rng.choice(("\u0422" + label[1:], label.lower()))  # Cyrillic Т, or "t22"
        return label + "."  # the display's trailing dot

    # -- the rest of the topic: unknown accounts and malformed messages -----------------------

    def unknown_accounts(self, population: list[_Account]) -> None:
        """Submissions for account numbers nobody has: a registered one with two digits swapped."""
        rng = self.rng_noise
        known = {a.account_id for a in population}
        per_period = max(1, _half_up(len(population) * UNKNOWN_ACCOUNT_SHARE))
        for period in self.periods:
            for _ in range(per_period):
                account_id = _unknown_account(rng, rng.choice(population).account_id, known)
                when = self._window_moment(rng, period)
                channel: str = _CHANNELS.draw(rng)
                zones = rng.choice((SINGLE_ZONE, TWO_ZONE))
                readings = [{"zone": z.value, "value": rng.randrange(10**5)} for z in zones]
                submission = {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "account_id": account_id,
                    "channel": channel,
                    "sender_id": f"{channel}-{rng.getrandbits(48):012x}",
                    "submitted_at": when.utc_text(),
                    "readings": readings,
                }
                truth = {
                    "event_id": submission["event_id"],
                    "account_id": account_id,
                    "meter_id": None,
                    "period": str(period),
                    "behaviour": UNKNOWN_ACCOUNT,
                    "role": Role.READING.value,
                    "true": None,
                }
                self._append(submission, truth)
                self.counts["unknown_account_submissions"] += 1

    def malformed(self, population: list[_Account]) -> None:
        """Messages on the readings topic that the SDK would refuse: each kind at least once."""
        rng = self.rng_noise
        codec = default_codec()
        account_months = len(population) * len(self.periods)
        total = max(len(MALFORMED_KINDS), _half_up(account_months * MALFORMED_SHARE))
        for i in range(total):
            kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
            when = self._window_moment(rng, self.periods[i % len(self.periods)])
            key = rng.choice(population).account_id
            datum = {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "account_id": key,
                "channel": "viber",
                "sender_id": f"viber-{rng.getrandbits(48):012x}",
                "submitted_at": when.utc_text(),
                "readings": [{"zone": "total", "value": rng.randrange(10**5)}],
            }
            value: bytes
            if kind == "random_bytes":
                value = rng.randbytes(rng.randint(1, 200))
            elif kind == "json_not_avro":
                value = _line(datum)
            elif kind == "empty":
                value = b""
            else:
                if kind == "bad_event_id":
                    datum["event_id"] = f"msg-{rng.randrange(10**6)}"
                elif kind == "no_readings":
                    datum["readings"] = []
                elif kind == "same_zone_twice":
                    datum["readings"] = [
                        {"zone": "day", "value": rng.randrange(10**5)},
                        {"zone": "day", "value": rng.randrange(10**5)},
                    ]
                value = codec.encode(READING_SUBMITTED, codec.from_json(READING_SUBMITTED, datum))
                if kind == "truncated_avro":
                    value = value[: rng.randrange(1, len(value))]
                elif kind == "unknown_fingerprint":
                    value = MAGIC + rng.randbytes(8) + value[len(MAGIC) + 8 :]
            line = {"kind": kind, "key": key, "sent_at": when.utc_text(), "value_hex": value.hex()}
            self.malformed_lines.append(_line(line))
            self.malformed_kinds[kind] += 1

    # -- the result ----------------------------------------------------------------------------

    def result(self, population: list[_Account]) -> Simulation:
        self.registry.sort(key=lambda r: (r[0], r[1]))
        self.submissions.sort(key=lambda s: (s[0], s[1]))
        account_months = len(population) * len(self.periods)
        manifest: dict[str, Any] = {
            "seed": self.seed,
            "accounts": len(population),
            "never_submitting_accounts": self.counts["never_submitting_accounts"],
            "months": len(self.periods),
            "periods": [str(p) for p in self.periods],
            "installation_period": str(self.installation_period),
            "account_months": account_months,
            "behaviours": {b.value: self.behaviours[b] for b in Behaviour},
            "roles": {r.value: self.roles[r] for r in Role},
            "channels": {c: self.channels[c] for c in CHANNEL_SHARES},
            "meters": {
                "single_zone": self.counts["meters_1_zone"],
                "two_zone": self.counts["meters_2_zone"],
                "three_zone": self.counts["meters_3_zone"],
                "five_digit": self.counts["meters_5_digit"],
                "six_digit": self.counts["meters_6_digit"],
                "seven_digit": self.counts["meters_7_digit"],
                "near_rollover": self.counts["meters_near_rollover"],
            },
            "events": {
                "registry_lines": len(self.registry),
                "exchanges": self.counts["exchanges"],
                "exchanges_to_two_zone": self.counts["exchanges_to_two_zone"],
                "submission_lines": len(self.submissions),
                "duplicate_retries": self.roles[Role.RETRY],
                "corrections": self.roles[Role.CORRECTION],
                "rollovers": self.counts["rollovers"],
                "unknown_account_submissions": self.counts["unknown_account_submissions"],
                "malformed": len(self.malformed_lines),
            },
            "malformed": {k: self.malformed_kinds[k] for k in MALFORMED_KINDS},
            "shares": {
                "zone_sets": {"+".join(z.value for z in k): v for k, v in ZONE_SET_SHARES.items()},
                "never_submitting_accounts": NEVER_SUBMITS_SHARE,
                "behaviours": {
                    "+".join(z.value for z in zones): {
                        b.value: round(s, 4) for b, s in behaviour_shares(zones).items()
                    }
                    for zones in ZONE_SET_SHARES
                },
                "duplicate_retry": DUPLICATE_RETRY_SHARE,
                "exchange_per_account_month": EXCHANGE_SHARE,
                "unknown_account_per_period": UNKNOWN_ACCOUNT_SHARE,
                "channels": dict(CHANNEL_SHARES),
                "evening_peak_on_peak_days": EVENING_PEAK_SHARE,
            },
        }
        return Simulation(
            registry=[line for _, _, line in self.registry],
            submissions=[line for _, _, line, _ in self.submissions],
            truth=[truth for _, _, _, truth in self.submissions],
            malformed=self.malformed_lines,
            closes=self.periods,
            manifest=manifest,
        )


def _typo(rng: random.Random, value: int) -> str:
    """The value as mistyped: two adjacent different digits transposed, or one digit doubled."""
    text = str(value)
    pairs = [i for i in range(len(text) - 1) if text[i] != text[i + 1]]
    if pairs and rng.random() < 0.5:
        i = rng.choice(pairs)
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    i = rng.randrange(len(text))
    doubled = text[: i + 1] + text[i:]
    return doubled if int(doubled) != value else f"{rng.randint(1, 9)}{text}"  # "0" -> "00"


def _unknown_account(rng: random.Random, account_id: str, known: set[str]) -> str:
    """A registered account number with two adjacent digits transposed, if nobody has it."""
    for _ in range(20):
        i = rng.randrange(len(account_id) - 1)
        candidate = account_id[:i] + account_id[i + 1] + account_id[i] + account_id[i + 2 :]
        if candidate not in known and candidate[0] != "0":
            return candidate
    while True:  # a number so mangled that it is nobody's
        candidate = str(rng.randrange(10**9, 10**10))
        if candidate not in known:
            return candidate
