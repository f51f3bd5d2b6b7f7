"""`pokazy simulate`: deterministic, realistic traffic that the SDK accepts and the rules expect.

The files are checked the way a user of them would: byte for byte between runs, line by line
through the producer SDK's encoding path, recounted against the manifest, and replayed through
the pure domain rules (registry, submissions, period closes), where the true readings must be
accepted and the customers' mistakes rejected with the reason the bot would show.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from streams.adapters.avro import default_codec
from streams.adapters.decode import (
    decode_inbound,
    submission_from_datum,
)
from streams.cli.simulate import simulate_command
from streams.domain.calendar import (
    KYIV,
    Period,
    ReadingKind,
    kyiv_date,
    place_reading,
    submission_window,
)
from streams.domain.closing import BillingLine, close_period
from streams.domain.ledger import Basis, ClosedPeriod, Flag
from streams.domain.model import Reason, Rules, Submission, SubmissionOutcome
from streams.domain.validation import apply_registry_event, apply_submission, malformation
from streams.domain.zones import Zone, zone_for_register
from streams.errors import DecodeError
from streams.sdk.producer import encode_registry, encode_submission
from streams.tools.simulate import (
    MALFORMED_KINDS,
    UNKNOWN_ACCOUNT,
    Behaviour,
    Role,
    behaviour_shares,
    simulate,
    write_simulation,
)
from tests.builders import utc

NOW = datetime(2025, 1, 1, tzinfo=UTC)
START = Period(2023, 1)
IN_WINDOW_BEHAVIOURS = {
    Behaviour.ON_TIME,
    Behaviour.ZERO_CONSUMPTION,
    Behaviour.TYPO_CORRECTED,
    Behaviour.ZONES_SWAPPED,
    Behaviour.TOTAL_REGISTER,
    Behaviour.UNKNOWN_REGISTER,
}
TRUE_VALUES = {Role.READING, Role.CORRECTION}
FILES = ("registry.jsonl", "submissions.jsonl", "truth.jsonl", "malformed.jsonl")


@dataclass(frozen=True)
class Traffic:
    """A simulation as written to disk, read back."""

    manifest: dict[str, Any]
    registry: list[dict[str, Any]]
    submissions: list[dict[str, Any]]
    truth: list[dict[str, Any]]
    malformed: list[dict[str, Any]]
    closes: list[Period]

    def pairs(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        return zip(self.submissions, self.truth, strict=True)

    @property
    def installed(self) -> dict[str, dict[str, Any]]:
        """Every account's first installation."""
        first: dict[str, dict[str, Any]] = {}
        for event in self.registry:
            if event["type"] == "MeterInstalled":
                first.setdefault(event["account_id"], event)
        return first


def read_back(out: Path) -> Traffic:
    def lines(name: str) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in (out / name).read_bytes().splitlines()]

    return Traffic(
        manifest=orjson.loads((out / "manifest.json").read_bytes()),
        registry=lines("registry.jsonl"),
        submissions=lines("submissions.jsonl"),
        truth=lines("truth.jsonl"),
        malformed=lines("malformed.jsonl"),
        closes=[Period.parse(p) for p in (out / "closes.txt").read_text().split()],
    )


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    """2,000 accounts over 3 periods."""
    out = tmp_path_factory.mktemp("sim")
    write_simulation(simulate(2000, 3, seed=11, start=START, now=NOW), out)
    return read_back(out)


@pytest.fixture(scope="module", params=[1, 2, 3])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    """500 accounts over one period, for several seeds."""
    out = tmp_path_factory.mktemp(f"small{request.param}")
    write_simulation(simulate(500, 1, seed=request.param, start=START, now=NOW), out)
    return read_back(out)


# --- determinism -------------------------------------------------------------------------------


def test_the_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    steps: list[int] = []
    for name in ("a", "b"):
        sim = simulate(700, 2, seed=5, start=START, now=NOW, progress=steps.append)
        write_simulation(sim, tmp_path / name)
    for name in (*FILES, "closes.txt", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert sum(steps) == 2 * 700  # progress counts every account, once per run


def test_another_seed_gives_other_traffic(tmp_path: Path) -> None:
    for seed in (5, 6):
        write_simulation(simulate(300, 1, seed=seed, start=START, now=NOW), tmp_path / str(seed))
    for name in FILES:
        assert (tmp_path / "5" / name).read_bytes() != (tmp_path / "6" / name).read_bytes(), name


# --- the files are what the SDK and the worker accept --------------------------------------------


def test_every_registry_and_submission_line_passes_the_sdk(traffic: Traffic) -> None:
    for event in traffic.registry:  # as BillingProducer.publish_registry encodes them
        account_id, payload = encode_registry(event)
        assert account_id == event["account_id"]
        decode_inbound(payload)  # and the worker reads them back as domain events
    for submission in traffic.submissions:  # as PokazyProducer.submit does
        event_id, account_id, payload = encode_submission(submission)
        assert (event_id, account_id) == (submission["event_id"], submission["account_id"])
        assert isinstance(decode_inbound(payload), Submission)


def test_malformed_messages_are_each_kind_and_refused(traffic: Traffic) -> None:
    assert Counter(m["kind"] for m in traffic.malformed).keys() == set(MALFORMED_KINDS)
    for message in traffic.malformed:
        payload = bytes.fromhex(message["value_hex"])
        try:
            event = decode_inbound(payload)
        except DecodeError:
            continue
        assert isinstance(event, Submission), message["kind"]
        assert malformation(event, Rules()) is not None, message["kind"]
        assert message["key"] in traffic.installed  # sent under a real customer's key
        assert utc(message["sent_at"]) <= NOW


# --- shares: the manifest, and recounted from the files ----------------------------------------


def test_behaviour_shares_are_the_documented_ones(traffic: Traffic) -> None:
    manifest = traffic.manifest
    assert manifest["account_months"] == 2000 * 3 == sum(manifest["behaviours"].values())
    # About 3 % of the accounts never submit: every one of their months is `never`.
    never = manifest["never_submitting_accounts"]
    assert 0.02 <= never / manifest["accounts"] <= 0.04
    assert manifest["behaviours"]["never"] == never * 3
    # The monthly shares apply to the other accounts, so of all account-months they are ~3 % lower.
    share = {b: n / manifest["account_months"] for b, n in manifest["behaviours"].items()}
    assert 0.72 <= share["on_time"] <= 0.80
    assert 0.09 <= share["early"] + share["late"] <= 0.11
    assert 0.075 <= share["none"] <= 0.085
    assert 0.01 <= share["zero_consumption"] <= 0.02
    assert 0.015 <= share["typo_corrected"] <= 0.025
    # Mistakes only a multi-zone meter allows: about 30 % of meters are multi-zone.
    assert 0.005 <= share["zones_swapped"] <= 0.015
    assert 0.003 <= share["total_register"] <= 0.01
    for zones in ((Zone.TOTAL,), (Zone.DAY, Zone.NIGHT)):
        assert sum(behaviour_shares(zones).values()) == pytest.approx(1.0)
    channels = manifest["channels"]
    total = sum(channels.values())
    assert 0.55 <= channels["viber"] / total <= 0.65
    assert 0.30 <= channels["telegram"] / total <= 0.40
    assert 0.02 <= (channels["web"] + channels["other"]) / total <= 0.08
    meters = manifest["meters"]
    assert 0.65 <= meters["single_zone"] / 2000 <= 0.75
    assert 0.22 <= meters["two_zone"] / 2000 <= 0.32


def test_recounting_the_files_gives_the_manifest(traffic: Traffic) -> None:
    manifest = traffic.manifest
    account_months: dict[tuple[str, str], str] = {}
    roles: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for submission, truth in traffic.pairs():
        assert truth["event_id"] == submission["event_id"]
        roles[truth["role"]] += 1
        if truth["role"] != Role.RETRY:
            channels[submission["channel"]] += 1
        if truth["behaviour"] != UNKNOWN_ACCOUNT:
            key = (truth["account_id"], truth["period"])
            assert account_months.setdefault(key, truth["behaviour"]) == truth["behaviour"]
    behaviours = Counter(account_months.values())
    # The account-months without a line: the months skipped, and every month of those who never
    # submit.
    silent = manifest["account_months"] - len(account_months)
    assert silent == manifest["behaviours"]["none"] + manifest["behaviours"]["never"]
    behaviours["none"] = manifest["behaviours"]["none"]
    behaviours["never"] = manifest["behaviours"]["never"]
    assert behaviours == Counter({k: v for k, v in manifest["behaviours"].items() if v})
    assert roles == Counter({k: v for k, v in manifest["roles"].items() if v})
    assert channels == Counter(manifest["channels"])
    events = manifest["events"]
    assert events["submission_lines"] == len(traffic.submissions)
    assert events["registry_lines"] == len(traffic.registry)
    removed = [e for e in traffic.registry if e["type"] == "MeterRemoved"]
    assert events["exchanges"] == len(removed) == 18  # 0.3 % of 2,000 accounts a month
    assert events["malformed"] == len(traffic.malformed) == 8  # at least one of each kind
    unknown = [t for t in traffic.truth if t["behaviour"] == UNKNOWN_ACCOUNT]
    assert (
        events["unknown_account_submissions"] == len(unknown) == 3 * 8
    )  # 0.4 % of 2,000 accounts a period
    assert not {t["account_id"] for t in unknown} & traffic.installed.keys()
    duplicates = Counter(s["event_id"] for s in traffic.submissions)
    assert events["duplicate_retries"] == sum(n - 1 for n in duplicates.values()) > 0
    assert traffic.closes == [START, START.next(), START.shift(2)]


def test_each_line_shows_the_mistake_its_truth_names(traffic: Traffic) -> None:
    seen: dict[str, bytes] = {}
    meters = {e["meter_id"]: e for e in traffic.registry if e["type"] == "MeterInstalled"}
    for submission, truth in traffic.pairs():
        line = orjson.dumps(submission)
        if truth["role"] == Role.RETRY:  # the bot's retry: the same event, byte for byte
            assert seen[submission["event_id"]] == line
            continue
        assert submission["event_id"] not in seen
        seen[submission["event_id"]] = line
        if truth["behaviour"] == UNKNOWN_ACCOUNT:
            continue
        true = truth["true"]
        meter = meters[truth["meter_id"]]
        assert submission.get("meter_id") in (None, meter["meter_id"])
        sent = named_values(submission)
        role = truth["role"]
        if role in TRUE_VALUES:
            assert sent == true
        elif role == Role.TYPO:
            (zone,) = [z for z in true if sent[z] != true[z]]
            assert is_typo(str(true[zone]), raw_value(submission, zone))
        elif role == Role.SWAPPED:
            assert sent == {"day": true["night"], "night": true["day"]}
        elif role == Role.TOTAL:
            (reading,) = submission["readings"]
            modulus = 10 ** meter["digits"]
            assert (sum(true.values()) - reading["value"]) % modulus in (0, modulus - 1)
        else:
            assert role == Role.UNKNOWN_REGISTER
            unknown = [
                r
                for r in submission["readings"]
                if "zone" not in r and zone_for_register(r["register"], "dtek-kem") is None
            ]
            assert len(unknown) == 1


def named_values(submission: dict[str, Any]) -> dict[str, int]:
    """The zone each reading names (by zone or by display label) and its value."""
    values = {}
    for reading in submission["readings"]:
        zone = reading.get("zone") or zone_for_register(reading.get("register") or "", "dtek-kem")
        if zone is not None:
            values[str(zone)] = reading["value"]
    return values


def raw_value(submission: dict[str, Any], zone: str) -> str:
    for reading in submission["readings"]:
        named = reading.get("zone") or zone_for_register(reading.get("register") or "", "dtek-kem")
        if named == zone:
            raw = reading.get("raw_text")
            return raw.split()[-1] if raw else str(reading["value"])
    raise AssertionError(zone)


def is_typo(true: str, typed: str) -> bool:
    """Two adjacent digits transposed, or one digit doubled (or a digit put in front of 0).

    Compared as numbers: a digit transposed to the front can be a 0 ("50013" typed "05013"),
    which only the chat text keeps; a web submission carries the value 5013.
    """
    transposed = {true[:i] + true[i + 1] + true[i] + true[i + 2 :] for i in range(len(true) - 1)}
    doubled = {true[: i + 1] + true[i:] for i in range(len(true))}
    typos = {int(text) for text in transposed | doubled}
    return int(typed) in typos or (true == "0" and len(typed) == 2)


# --- time: windows, the evening peak, nothing in the future ---------------------------------------


def test_submissions_are_sorted_and_none_is_in_the_future(traffic: Traffic) -> None:
    instants = [s["submitted_at"] for s in traffic.submissions]
    assert instants == sorted(instants)
    assert all(text.endswith("Z") for text in instants)
    assert utc(instants[-1]) <= NOW
    for period in traffic.closes:  # each close comes after its window
        assert submission_window(period)[1] < kyiv_date(NOW)


def test_the_generated_months_must_end_before_now() -> None:
    with pytest.raises(ValueError, match="after now"):
        simulate(10, 2, start=Period(2024, 12), now=NOW)
    simulate(10, 1, start=Period(2024, 11), now=NOW)  # its late readings end by 9 December


def test_windows_and_the_evening_peak(traffic: Traffic) -> None:
    firsts: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
    for submission, truth in traffic.pairs():
        if truth["behaviour"] != UNKNOWN_ACCOUNT:
            firsts.setdefault((truth["account_id"], truth["period"]), (submission, truth))
    in_window = evening = peak_day = quiet_evening = quiet_day = 0
    for submission, truth in firsts.values():
        local = utc(submission["submitted_at"]).astimezone(KYIV)
        placement = place_reading(local.date())
        period = Period.parse(truth["period"])
        if truth["behaviour"] in IN_WINDOW_BEHAVIOURS:
            assert (placement.kind, placement.period) == (ReadingKind.IN_WINDOW, period)
            in_window += 1
            first, _ = submission_window(period)
            is_evening = 18 <= local.hour < 22
            if (local.date() - first).days < 3:  # the last 2 days and the 1st
                peak_day += 1
                evening += is_evening
            else:
                quiet_day += 1
                quiet_evening += is_evening
        elif truth["behaviour"] == Behaviour.EARLY:
            assert (placement.kind, placement.period) == (ReadingKind.OFF_WINDOW, period)
        else:
            assert truth["behaviour"] == Behaviour.LATE
            assert (placement.kind, placement.period) == (ReadingKind.OFF_WINDOW, period.next())
    assert 0.78 <= in_window / traffic.manifest["account_months"] <= 0.88
    assert 0.75 <= peak_day / in_window <= 0.85  # most wait for the last days
    assert 0.48 <= evening / peak_day <= 0.62
    assert quiet_evening / quiet_day < 0.35


def test_meters_are_installed_before_any_reading_of_the_account(traffic: Traffic) -> None:
    dates = [e.get("installed_on") or e["removed_on"] for e in traffic.registry]
    assert dates == sorted(dates)  # the registry file is in the order things happened
    installed = traffic.installed
    for submission, truth in traffic.pairs():
        if truth["behaviour"] == UNKNOWN_ACCOUNT:
            continue
        event = installed[submission["account_id"]]
        assert event["installed_on"] < kyiv_date(utc(submission["submitted_at"])).isoformat()


# --- the cases a pipeline must survive ------------------------------------------------------------


def true_sequences(traffic: Traffic) -> tuple[int, int, int]:
    """Rollovers, zero-consumption re-sends and wrong ones, recounted from the truth."""
    last = {
        (e["meter_id"], zone): value
        for e in traffic.registry
        if e["type"] == "MeterInstalled"
        for zone, value in e["initial"].items()
    }
    rollovers = zero = zero_wrong = 0
    for truth in traffic.truth:
        if truth["role"] not in TRUE_VALUES or truth["behaviour"] == UNKNOWN_ACCOUNT:
            continue
        before = {z: last[truth["meter_id"], z] for z in truth["true"]}
        if truth["behaviour"] == Behaviour.ZERO_CONSUMPTION and truth["role"] == Role.READING:
            zero += 1
            zero_wrong += before != truth["true"]
        for zone, value in truth["true"].items():
            rollovers += value < before[zone]
            last[truth["meter_id"], zone] = value
    return rollovers, zero, zero_wrong


def test_every_rare_case_happens_with_500_accounts(small: Traffic) -> None:
    events = small.manifest["events"]
    behaviours = small.manifest["behaviours"]
    rollovers, zero, zero_wrong = true_sequences(small)
    assert events["rollovers"] == rollovers >= 1
    assert behaviours["zero_consumption"] == zero >= 1 and zero_wrong == 0
    assert events["exchanges"] >= 1
    assert behaviours["zones_swapped"] >= 1
    assert behaviours["typo_corrected"] >= 1 and events["corrections"] >= 1
    assert behaviours["never"] >= 1
    assert events["duplicate_retries"] >= 1
    assert events["unknown_account_submissions"] >= 1
    assert small.manifest["malformed"] == dict.fromkeys(MALFORMED_KINDS, 1)


def test_exchanges_remove_with_a_final_reading_and_install_the_same_day(traffic: Traffic) -> None:
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in traffic.registry:
        by_account[event["account_id"]].append(event)
    exchanged = {a: e for a, e in by_account.items() if len(e) > 1}
    assert exchanged
    to_two_zone = 0
    for first, removed, second in exchanged.values():
        assert removed["meter_id"] == first["meter_id"] != second["meter_id"]
        assert removed["removed_on"] == second["installed_on"]
        assert 10 <= int(removed["removed_on"][8:]) <= 14  # mid-month
        assert removed["final"].keys() == first["initial"].keys()
        assert all(0 <= v < 10 ** first["digits"] for v in removed["final"].values())
        to_two_zone += first["zones"] == ["total"] and second["zones"] == ["day", "night"]
    assert to_two_zone == traffic.manifest["events"]["exchanges_to_two_zone"]


def test_consumption_is_seasonal_and_split_about_60_40() -> None:
    sim = simulate(400, 12, seed=3, start=Period(2021, 12), now=NOW)
    truth = [orjson.loads(line) for line in sim.truth]
    # kWh between the on-time readings of consecutive periods, per month of the second period.
    last: dict[str, tuple[Period, dict[str, int]]] = {}
    monthly: dict[int, list[int]] = defaultdict(list)
    day_shares = []
    for t in truth:
        if t["behaviour"] != Behaviour.ON_TIME or t["role"] != Role.READING:
            continue
        period = Period.parse(t["period"])
        previous = last.get(t["meter_id"])
        last[t["meter_id"]] = (period, t["true"])
        if previous is None or previous[0] != period.previous():
            continue
        kwh = {z: (v - previous[1][z]) % 10**5 for z, v in t["true"].items()}
        monthly[period.month].append(sum(kwh.values()))
        if kwh.keys() == {"day", "night"} and sum(kwh.values()) > 100:
            day_shares.append(kwh["day"] / sum(kwh.values()))
    median = {m: sorted(v)[len(v) // 2] for m, v in monthly.items()}
    assert 150 <= sorted(median.values())[6] <= 300
    assert median[1] > 1.3 * median[6]  # winter above summer
    assert 0.55 <= sum(day_shares) / len(day_shares) <= 0.66


# --- through the rules: true readings accepted, mistakes rejected for the right reason ------


@dataclass(frozen=True)
class Replay:
    """The traffic run through the pure domain rules, in file order, with the periods closed."""

    outcomes: list[tuple[dict[str, Any], SubmissionOutcome, bool]]  # truth, outcome, duplicate
    billing: list[BillingLine]  # every close, the installation period's included


@pytest.fixture(scope="module")
def replay(traffic: Traffic) -> Replay:
    """Registry first, then each submission; a period is closed once its window has passed."""
    codec = default_codec()
    states: dict[str, Any] = {}
    for event in traffic.registry:  # master data first, as `pokazy registry load` does
        domain = decode_inbound(encode_registry(event, codec)[1])
        assert not isinstance(domain, Submission)
        states[event["account_id"]] = apply_registry_event(states.get(event["account_id"]), domain)  # type: ignore[arg-type]
    rules = Rules()
    pending_closes = list(traffic.closes)
    billing: list[BillingLine] = []

    def close(period: Period) -> None:
        for account, state in states.items():
            states[account], lines = close_period(state, period)
            billing.extend(lines)

    outcomes: list[tuple[dict[str, Any], SubmissionOutcome, bool]] = []
    for submission, truth in traffic.pairs():
        day = kyiv_date(utc(submission["submitted_at"]))
        while pending_closes and submission_window(pending_closes[0])[1] < day:
            close(pending_closes.pop(0))
        datum = codec.from_json("pokazy.ReadingSubmitted", submission)
        state, outcome, duplicate = apply_submission(
            states.get(submission["account_id"]), submission_from_datum(datum), now=NOW, rules=rules
        )
        if state is not None:
            states[submission["account_id"]] = state
        outcomes.append((truth, outcome, duplicate))
    for period in pending_closes:
        close(period)
    return Replay(outcomes, billing)


def test_the_rules_accept_the_truth_and_reject_the_mistakes(
    traffic: Traffic, replay: Replay
) -> None:
    outcomes, billing = replay.outcomes, replay.billing
    # An accepted wrong value (a plausible typo, an undetected swap) moves the account's
    # baseline: the later true readings of that account are no longer a fair test of the rules.
    tainted: set[str] = set()
    reasons: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    last_in_window: dict[tuple[str, str, str], int] = {}  # (meter, zone, period) -> true value
    for truth, outcome, duplicate in outcomes:
        role, account = truth["role"], truth["account_id"]
        assert duplicate == (role == Role.RETRY)
        for reading in outcome.readings:
            reasons[f"{role}:{reading.reason or 'accepted'}"] += 1
            flags.update(f"{role}:{flag}" for flag in reading.flags)
        if truth["behaviour"] == UNKNOWN_ACCOUNT:
            assert {r.reason for r in outcome.readings} == {Reason.UNKNOWN_ACCOUNT}
        elif role in TRUE_VALUES and account not in tainted:
            assert all(r.accepted for r in outcome.readings), (truth, outcome)
            for reading in outcome.readings:
                if reading.kind is ReadingKind.IN_WINDOW:
                    key = (truth["meter_id"], str(reading.zone), str(reading.period))
                    last_in_window[key] = reading.value  # type: ignore[assignment]
        elif role == Role.TOTAL:
            assert [r.reason for r in outcome.readings] == [Reason.TOTAL_NOT_ACCEPTED]
        elif role == Role.UNKNOWN_REGISTER:
            assert Reason.UNKNOWN_REGISTER in {r.reason for r in outcome.readings}
        elif any(r.value != truth["true"][str(r.zone)] for r in outcome.accepted):
            tainted.add(account)  # a plausible typo or an undetected swap went through
    assert len(tainted) <= 0.02 * 2000
    assert reasons["swapped:ZONES_SWAPPED"] >= 1
    assert reasons["typo:IMPLAUSIBLY_HIGH"] + reasons["typo:TOO_MANY_DIGITS"] >= 1
    assert flags["reading:rollover"] + flags["correction:rollover"] >= 1
    assert flags["reading:zero_consumption"] >= 1
    # Billing: a period closed as actual ends on the customer's last in-window true reading.
    simulated = [line for line in billing if line.closed.period in traffic.closes]
    actual = [line for line in simulated if line.closed.basis == "actual"]
    assert 0.75 <= len(actual) / len(simulated) <= 0.9
    checked = 0
    for line in actual:
        expected = last_in_window.get((line.meter_id, str(line.zone), str(line.closed.period)))
        if line.account_id not in tainted and expected is not None:
            assert line.end_reading == expected, line
            checked += 1
    assert checked > 0.9 * len(actual)


def test_accounts_that_never_submit_are_estimated_every_month(
    traffic: Traffic, replay: Replay
) -> None:
    never = traffic.manifest["never_submitting_accounts"]
    submitting = {t["account_id"] for t in traffic.truth if t["behaviour"] != UNKNOWN_ACCOUNT}
    exchanged = {e["account_id"] for e in traffic.registry if e["type"] == "MeterRemoved"}
    # Accounts without a single submission line that kept their meter: those that never submit
    # (their meters are not exchanged), and any that skipped each of the 3 months by chance
    # (8 % a month: about one of 2,000).
    silent = traffic.installed.keys() - submitting - exchanged
    assert never <= len(silent) <= never + 5
    closes: dict[tuple[str, Zone], list[ClosedPeriod]] = defaultdict(list)
    for line in replay.billing:  # in close order
        if line.account_id in silent:
            closes[line.account_id, line.zone].append(line.closed)
    assert {account for account, _ in closes} == silent
    # The installation period is closed first, as the first estimate: counted with it, the
    # third estimate in a row is the second simulated month.
    installation = Period.parse(traffic.manifest["installation_period"])
    for (account, zone), zone_closes in closes.items():
        assert [c.period for c in zone_closes] == [installation, *traffic.closes], account
        assert all(c.basis is Basis.ESTIMATED for c in zone_closes), (account, zone)
        # Never a measured month to take a rate from: 0 kWh a day, flagged as such.
        assert all(Flag.NO_HISTORY in c.flags and c.kwh == 0 for c in zone_closes), account
        prolonged = [Flag.PROLONGED_ESTIMATION in c.flags for c in zone_closes]
        assert prolonged == [False, False, True, True], (account, zone)


# --- the command ------------------------------------------------------------------------------


def test_the_command_writes_the_files_and_prints_the_summary(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(simulate_command)
    out = tmp_path / "traffic"
    args = ["--accounts", "50", "--months", "2", "--seed", "4", "--start", "2023-03"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "on_time" in result.output and "submission lines" in result.output
    traffic = read_back(out)
    assert traffic.closes == [Period(2023, 3), Period(2023, 4)]
    assert traffic.manifest["accounts"] == 50
    bad = CliRunner().invoke(
        app, ["--accounts", "5", "--months", "1", "--start", "2023-13", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "2023-13" in bad.output
