"""Judging a submission: the validation table of SPEC §2.3, in its order, first failure wins.

`apply_submission` and `apply_registry_event` are the pure state transitions the worker calls;
they take the account's state and return the next one, with no I/O and no clock of their own.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from streams.domain.account import AccountState
from streams.domain.calendar import Period, Placement, ReadingKind, kyiv_date, place_reading
from streams.domain.ledger import Evaluation, Mark, evaluate_reading
from streams.domain.model import (
    MAX_ID_LENGTH,
    Meter,
    MeterInstalled,
    MeterRemoved,
    ReadingOutcome,
    Reason,
    RegisterReading,
    RegistryEvent,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.zones import (
    TWO_ZONE,
    Zone,
    is_valid_zone_set,
    normalize_register,
    zone_for_register,
)

# Instants outside these years are typos or hostile input; rejecting them early also keeps
# date arithmetic away from the ends of the calendar.
_EARLIEST_YEAR = 2000
_LATEST_YEAR = 2200


class _Rejected(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# The most display digits of a meter pokazy keeps (a reading is below 10**digits).
MAX_DIGITS = 12


def registry_problem(event: RegistryEvent) -> str | None:
    """What makes billing's master data impossible to apply, if anything (it is then refused
    as MALFORMED, and nothing changes). Ids are held to the limit submissions are: they key
    state and rows."""
    if isinstance(event, MeterInstalled):
        meter = event.meter
        if not is_valid_zone_set(meter.zones):
            return f"{[str(z) for z in meter.zones]} is not a zone set pokazy bills"
        if set(meter.initial) != set(meter.zones):
            return "initial readings must name exactly the meter's zones"
        if not 1 <= meter.digits <= MAX_DIGITS:
            return f"digits must be 1-{MAX_DIGITS}"
        if any(not 0 <= v < meter.modulus for v in meter.initial.values()):
            return f"initial readings must be 0 <= value < 10**{meter.digits}"
        ids = [("meter_id", meter.meter_id), ("dso", meter.dso), ("account_id", event.account_id)]
    else:
        ids = [("account_id", event.account_id), ("meter_id", event.meter_id)]
    for name, value in ids:
        if problem := _id_problem(name, value, MAX_ID_LENGTH):
            return problem
    return None


def _id_problem(name: str, value: str, limit: int) -> str | None:
    """An id keys state and rows: it is not blank and at most `limit` characters."""
    if not value.strip() or len(value) > limit:
        return f"{name} must be 1-{limit} characters"
    return None


def apply_registry_event(state: AccountState | None, event: RegistryEvent) -> AccountState:
    """Record an installation or removal from billing's master data (idempotent)."""
    current = state or AccountState(account_id=event.account_id)
    if isinstance(event, MeterInstalled):
        known = {m.meter_id: m for m in current.meters}
        meter = event.meter
        if (earlier := known.pop(meter.meter_id, None)) is not None and earlier.removed_on:
            # An installation redelivered after its removal must not bring the meter back.
            meter = replace(meter, removed_on=earlier.removed_on, final=earlier.final)
        meters = tuple(sorted((*known.values(), meter), key=lambda m: m.installed_on))
        return replace(current, meters=meters)
    return replace(current, meters=tuple(_removed(m, event) for m in current.meters))


def _removed(meter: Meter, event: MeterRemoved) -> Meter:
    if meter.meter_id != event.meter_id:
        return meter
    return replace(meter, removed_on=event.removed_on, final=dict(event.final))


def apply_submission(
    state: AccountState | None,
    submission: Submission,
    *,
    now: datetime,
    rules: Rules,
    replayed: bool = False,
) -> tuple[AccountState | None, SubmissionOutcome, bool]:
    """Judge a submission against the account's state.

    Returns the next state, the outcome and whether it is a duplicate. A duplicate (its event id
    is among the remembered ones) returns the first outcome unchanged and leaves state as is,
    except that a `replayed` rejection (re-published by `rejections replay`) whose readings were
    all rejected is judged again: nothing of it was counted, so nothing can be counted twice.
    Submissions for unknown accounts leave no state behind, so hostile ids cannot grow it.
    """
    if state is not None and (prior := state.recent_outcome(submission.event_id)) is not None:
        if not (replayed and not prior.accepted):
            return state, prior, True
        state = replace(
            state, recent=tuple(o for o in state.recent if o.event_id != submission.event_id)
        )
    outcome = judge_submission(state, submission, now=now, rules=rules)
    if state is None:
        return None, outcome, False
    for reading in outcome.accepted:
        state = _record(state, reading, submission)
    recent = (*state.recent, outcome)[
        max(0, len(state.recent) + 1 - rules.remembered_submissions) :
    ]
    return state.with_recent(recent), outcome, False


def _record(state: AccountState, reading: ReadingOutcome, submission: Submission) -> AccountState:
    """Keep an accepted reading as its period's latest of its kind (latest submission wins)."""
    assert reading.meter_id and reading.zone and reading.kind and reading.period
    assert reading.local_date is not None and reading.unwrapped is not None
    # An in-window reading stands for the 1st of P+1, any other for its own date.
    in_window = reading.kind is ReadingKind.IN_WINDOW
    as_of = reading.period.end if in_window else reading.local_date
    mark = Mark(reading.unwrapped, as_of, submission.submitted_at)
    ledger = state.zone_ledger(reading.meter_id, reading.zone)
    updated = ledger.with_reading(reading.kind, reading.period, mark)
    return state.with_zone_ledger(reading.meter_id, reading.zone, updated)


def submission_fingerprint(submission: Submission) -> str:
    """A digest of everything a submission carries, kept with its outcome.

    A message redelivered after a crash is the same submission and may re-emit its first
    outcome's rows; another submission that reuses the event_id is a duplicate too, but must
    not rewrite those rows with its own time, channel, sender or payload.

    The digest is of the JSON text `json.dumps` writes for the list below: outcomes remembered
    by earlier releases keep it, so the text must never change. It is written here value by
    value, as `json.dumps` would (a test holds them equal), without the encoder `json.dumps`
    builds on every call.
    """
    readings = ", ".join(
        f"[{_json(r.zone)}, {_json(r.register)}, {_json(r.value)}, {_json(r.raw_text)}]"
        for r in submission.readings
    )
    text = (
        f"[{_json(submission.event_id)}, {_json(submission.account_id)}, "
        f"{_json(submission.meter_id)}, {_json(submission.channel)}, "
        f"{_json(submission.sender_id)}, {_json(submission.submitted_at.isoformat())}, "
        f"[{readings}]]"
    )
    return hashlib.sha256(text.encode()).hexdigest()


_quoted = json.encoder.encode_basestring_ascii  # a string as `json.dumps` writes it


def _json(value: object) -> str:
    """`json.dumps(value)`, for the values a submission carries."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quoted(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)


def is_redelivery(prior: SubmissionOutcome, submission: Submission) -> bool:
    """Whether a duplicate is the very submission `prior` judged (or cannot be told apart)."""
    return not prior.fingerprint or prior.fingerprint == submission_fingerprint(submission)


@dataclass(frozen=True, slots=True)
class Written:
    """What a judged submission leaves in the analyst tables."""

    accepted: tuple[ReadingOutcome, ...] = ()  # a `readings` row each
    rejected: tuple[ReadingOutcome, ...] = ()  # a `rejections` row each
    # A replay withdraws what its earlier pass left in `rejections` and this one does not
    # write again: these positions (-1: the whole submission's row), and the message's
    # INTERNAL_ERROR row if it was kept as one.
    replay: bool = False
    withdrawn: tuple[int, ...] = ()


def written_by(
    submission: Submission, outcome: SubmissionOutcome, *, duplicate: bool, replayed: bool
) -> Written:
    """The rows a judged submission writes.

    A duplicate re-emits its first outcome's rows when it is a redelivery of that submission:
    if the first pass crashed after its state was saved but before its rows were written, this
    is how they get written. Another submission reusing the event_id writes nothing: its rows
    would replace the first one's (same keys) with its own time, channel and payload. A
    `replayed` submission (`rejections replay`) also withdraws every rejection of its earlier
    pass that this outcome does not write again: the readings now accepted, and the whole
    submission's row (-1) or the single readings' rows, whichever was rejected before and is
    not now (the master data that arrived since can change which of the two applies).
    """
    if duplicate and not is_redelivery(outcome, submission):
        return Written()
    rejected = outcome.rejected
    if not replayed:
        return Written(outcome.accepted, rejected)
    rejected_now = {r.position for r in rejected}
    earlier = (-1, *range(len(submission.readings)))
    withdrawn = tuple(position for position in earlier if position not in rejected_now)
    return Written(outcome.accepted, rejected, replay=True, withdrawn=withdrawn)


def judge_submission(
    state: AccountState | None, submission: Submission, *, now: datetime, rules: Rules
) -> SubmissionOutcome:
    """Every reading's verdict, without changing anything."""
    fingerprint = submission_fingerprint(submission)
    problem = malformation(submission, rules)
    if problem is not None:
        return _whole_submission_rejected(submission, problem, fingerprint)
    day = kyiv_date(submission.submitted_at)
    verdicts = tuple(
        _judge_reading(state, submission, day, position, reading, now=now, rules=rules)
        for position, reading in enumerate(submission.readings)
    )
    resolved = [v.zone for v in verdicts if v.zone is not None]
    if len(resolved) != len(set(resolved)):
        return _whole_submission_rejected(
            submission, "two readings name the same zone through their labels", fingerprint
        )
    if state is not None:
        verdicts = _judge_against_baselines(state, verdicts)
    return SubmissionOutcome(submission.event_id, submission.account_id, verdicts, fingerprint)


def _judge_against_baselines(
    state: AccountState, verdicts: tuple[ReadingOutcome, ...]
) -> tuple[ReadingOutcome, ...]:
    """The last rules of §2.3 (ZONES_SWAPPED, BELOW_PREVIOUS, IMPLAUSIBLY_HIGH), then kWh."""
    pending = {v.position: v for v in verdicts if v.reason is None and v.zone is not None}
    if not pending:
        return verdicts
    meter = next(m for m in state.meters if m.meter_id == next(iter(pending.values())).meter_id)

    def evaluate(verdict: ReadingOutcome, zone: Zone) -> Evaluation:
        assert verdict.value is not None and verdict.local_date and verdict.period
        ledger = state.zone_ledger(meter.meter_id, zone)
        return evaluate_reading(
            meter, zone, ledger, verdict.value, verdict.local_date, verdict.period
        )

    own = {p: evaluate(v, v.zone) for p, v in pending.items() if v.zone is not None}
    swapped = _swapped_positions(meter, pending, own, evaluate)
    return tuple(
        _judged(verdict, own[verdict.position], verdict.position in swapped)
        if verdict.position in pending
        else verdict
        for verdict in verdicts
    )


def _judged(verdict: ReadingOutcome, evaluation: Evaluation, swapped: bool) -> ReadingOutcome:
    """A verdict that passed the rules before §2.4's, with the baseline rules' result."""
    reason: Reason | None = Reason.ZONES_SWAPPED if swapped else evaluation.reason
    detail = _SWAPPED if swapped else evaluation.detail
    accepted = reason is None
    return ReadingOutcome(
        verdict.position, verdict.zone, verdict.register, verdict.value, reason, detail,
        verdict.meter_id, verdict.kind, verdict.period, verdict.local_date,
        kwh=evaluation.kwh if accepted else None,
        flags=tuple(map(str, evaluation.flags)) if accepted else (),
        baseline=evaluation.baseline if accepted or swapped else evaluation.previous,
        unwrapped=evaluation.value if accepted else None,
    )  # fmt: skip


_SWAPPED = "the value fits the other zone: day and night look swapped"
_OTHER_ZONE = {Zone.DAY: Zone.NIGHT, Zone.NIGHT: Zone.DAY}


def _swapped_positions(
    meter: Meter,
    pending: dict[int, ReadingOutcome],
    own: dict[int, Evaluation],
    evaluate: Callable[[ReadingOutcome, Zone], Evaluation],
) -> set[int]:
    """Readings of a two-zone meter that fail as sent but pass as the other zone."""
    if set(meter.zones) != set(TWO_ZONE):
        return set()
    by_zone = {v.zone: v for v in pending.values()}
    day, night = by_zone.get(Zone.DAY), by_zone.get(Zone.NIGHT)
    if day is not None and night is not None:
        # Both zones in one submission: if either fails but both pass exchanged, the customer
        # swapped them, and both are rejected so.
        both_pass = own[day.position].passes and own[night.position].passes
        if not both_pass and (
            evaluate(day, Zone.NIGHT).passes and evaluate(night, Zone.DAY).passes
        ):
            return {day.position, night.position}
    return {
        position
        for position, verdict in pending.items()
        if verdict.zone in _OTHER_ZONE
        and not own[position].passes
        and evaluate(verdict, _OTHER_ZONE[verdict.zone]).passes
    }


def _whole_submission_rejected(
    submission: Submission, detail: str, fingerprint: str
) -> SubmissionOutcome:
    row = ReadingOutcome(-1, None, None, None, reason=Reason.MALFORMED, detail=detail)
    return SubmissionOutcome(submission.event_id, submission.account_id, (row,), fingerprint)


def malformation(submission: Submission, rules: Rules) -> str | None:
    """What makes a decodable submission malformed as a whole, if anything.

    The size limits come first and cost a `len` each: nothing longer than them reaches a rule,
    a detail text, the account's state or a row.
    """
    if len(submission.event_id) > rules.max_id_length:
        return f"event_id must be at most {rules.max_id_length} characters"
    if not is_uuid(submission.event_id):
        return "event_id is not a UUID"
    for name, value in (("account_id", submission.account_id), ("sender_id", submission.sender_id)):
        if problem := _id_problem(name, value, rules.max_id_length):
            return problem
    if submission.meter_id is not None and len(submission.meter_id) > rules.max_id_length:
        return f"meter_id must be at most {rules.max_id_length} characters"
    if not _EARLIEST_YEAR <= submission.submitted_at.year <= _LATEST_YEAR:
        return f"submitted_at {submission.submitted_at.isoformat()} is out of range"
    if not 1 <= len(submission.readings) <= rules.max_readings:
        return f"a submission carries 1-{rules.max_readings} readings"
    named: list[str] = []
    for reading in submission.readings:
        if reading.register is not None and len(reading.register) > rules.max_register_length:
            return f"a register label must be at most {rules.max_register_length} characters"
        if reading.raw_text is not None and len(reading.raw_text) > rules.max_raw_text_length:
            return f"raw_text must be at most {rules.max_raw_text_length} characters"
        if reading.zone is None and not (reading.register or "").strip():
            return "a reading names neither its zone nor its register"
        named.append(reading.zone or normalize_register(reading.register or ""))
    if len(named) != len(set(named)):
        return "the same zone twice in one submission"
    return None


# A UUID as `str(uuid.UUID(...))` spells it, as bots send it: no parsing needed to know it is one.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(text: str) -> bool:
    """Whether `uuid.UUID` takes `text`: its canonical spelling, or any other it accepts."""
    if CANONICAL_UUID.fullmatch(text):
        return True
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _judge_reading(
    state: AccountState | None,
    submission: Submission,
    day: date,
    position: int,
    reading: RegisterReading,
    *,
    now: datetime,
    rules: Rules,
) -> ReadingOutcome:
    zone, meter_id = reading.zone, None
    try:
        meter = _active_meter(state, submission, day)
        if submission.submitted_at > now + rules.future_tolerance:
            raise _Rejected(Reason.FUTURE_TIMESTAMP, f"submitted_at is after {now.isoformat()}")
        zone, meter_id = _zone_of(reading, meter, rules), meter.meter_id
        _check_value(reading.value, meter)
        placement = _open_placement(state, meter, day)
    except _Rejected as rejected:
        return ReadingOutcome(
            position, zone, reading.register, reading.value,
            reason=rejected.reason, detail=rejected.detail, meter_id=meter_id,
        )  # fmt: skip
    return ReadingOutcome(
        position, zone, reading.register, reading.value,
        meter_id=meter_id, kind=placement.kind, period=placement.period, local_date=day,
    )  # fmt: skip


def _open_placement(state: AccountState | None, meter: Meter, day: date) -> Placement:
    placement = place_reading(day)
    if placement.period < Period.of(meter.installed_on):
        # In the window of a month before the meter was installed (installed on the 2nd, read
        # on the 3rd): the reading cannot stand for that month's end, so it is what it is, an
        # actual measurement of its own month.
        placement = Placement(ReadingKind.OFF_WINDOW, Period.of(day), day, day)
    closed = state.closed_through if state else None
    if closed is not None and placement.period <= closed:
        raise _Rejected(Reason.PERIOD_CLOSED, f"period {placement.period} is closed")
    return placement


def _active_meter(state: AccountState | None, submission: Submission, day: date) -> Meter:
    first_installed_on = state.first_installed_on if state else None
    if state is None or first_installed_on is None:
        raise _Rejected(Reason.UNKNOWN_ACCOUNT, "no meter was ever installed on the account")
    meter = state.meter_on(day)
    if submission.meter_id is not None and (meter is None or meter.meter_id != submission.meter_id):
        raise _Rejected(Reason.UNKNOWN_METER, f"meter {submission.meter_id} is not active on {day}")
    if day < first_installed_on:
        raise _Rejected(
            Reason.BEFORE_INSTALLATION, f"{day} is before installation on {first_installed_on}"
        )
    if meter is None:
        raise _Rejected(Reason.UNKNOWN_METER, f"no meter is active on {day}")
    return meter


def _zone_of(reading: RegisterReading, meter: Meter, rules: Rules) -> Zone:
    zone = reading.zone
    if reading.register is not None and reading.register.strip():
        labelled = zone_for_register(reading.register, meter.dso, rules.register_maps)
        if labelled is None:
            raise _Rejected(
                Reason.UNKNOWN_REGISTER, f"register {reading.register!r} is unknown to {meter.dso}"
            )
        if zone is not None and zone != labelled:
            raise _Rejected(
                Reason.REGISTER_ZONE_MISMATCH,
                f"register {reading.register!r} is {labelled}, not {zone}",
            )
        zone = labelled
    assert zone is not None  # a reading without zone or register is malformed, judged earlier
    if zone not in meter.zones:
        if zone is Zone.TOTAL:
            raise _Rejected(Reason.TOTAL_NOT_ACCEPTED, "send each zone, not the total register")
        raise _Rejected(Reason.ZONE_NOT_ON_METER, f"meter {meter.meter_id} has no zone {zone}")
    return zone


def _check_value(value: int, meter: Meter) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Rejected(Reason.INVALID_VALUE, f"{value!r} is not a non-negative integer")
    if value >= meter.modulus:
        raise _Rejected(
            Reason.TOO_MANY_DIGITS, f"{value} has more than the meter's {meter.digits} digits"
        )
