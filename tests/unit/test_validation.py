"""Judging submissions (SPEC §2.3, the reason codes up to TOO_MANY_DIGITS) and registry events.

Every test runs on a fixed `now`: the rules have no clock of their own. The baseline rules
(§2.4) apply to every accepted reading, so readings meant to be accepted here are just above the
meter's initial reading (day 12,000 / night 6,500 / total 4,200); test_ledger.py and
test_closing.py cover the baseline rules and period close themselves.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from streams.adapters.avro import default_codec
from streams.adapters.decode import decode_inbound, submission_from_datum
from streams.domain.account import AccountState
from streams.domain.calendar import Period, ReadingKind
from streams.domain.model import (
    Meter,
    MeterInstalled,
    MeterRemoved,
    OutcomeStatus,
    Reason,
    RegisterReading,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.validation import (
    Written,
    apply_registry_event,
    apply_submission,
    judge_submission,
    registry_problem,
    written_by,
)
from streams.domain.zones import TWO_ZONE, Zone
from streams.errors import DecodeError
from tests import builders
from tests.builders import (
    ACCOUNT,
    DAY,
    GAMA,
    HALF_PEAK,
    NIGHT,
    PEAK,
    RULES,
    TOTAL,
    account,
    new_event_id,
    reading,
    single_zone,
    three_zone,
    two_zone,
)

NOW = datetime(2023, 5, 30, 12, 0, tzinfo=UTC)
AT = datetime(2023, 5, 30, 9, 15, tzinfo=UTC)  # 12:15 local, in the May 2023 window


def removed(state: AccountState, meter_id: str, on: date) -> AccountState:
    meter = next(m for m in state.meters if m.meter_id == meter_id)
    final = {zone: value + 100 for zone, value in meter.initial.items()}
    return apply_registry_event(state, MeterRemoved(ACCOUNT, meter_id, final, on))


r = reading
sub = functools.partial(builders.submission, at=AT)


def judge(
    state: AccountState | None, submission: Submission, now: datetime = NOW
) -> SubmissionOutcome:
    return judge_submission(state, submission, now=now, rules=RULES)


TWO = account(two_zone())
SINGLE = account(single_zone())
THREE = account(three_zone())
# Removed on 10 Jan 2023 and never replaced.
REMOVED = removed(TWO, GAMA, date(2023, 1, 10))
# A removal reached an account that never had an installation: state, but no meter ever.
NEVER_INSTALLED = apply_registry_event(
    None, MeterRemoved(ACCOUNT, "GHOST-1", {TOTAL: 1}, date(2023, 1, 1))
)
# A gap between two meters: removed 10 Jan 2022, the next installed 1 June 2022.
GAP = account(
    removed(TWO, GAMA, date(2022, 1, 10)).meters[0], single_zone(installed_on=date(2022, 6, 1))
)
# Meters installed just below their largest display value: the top value is a small advance.
TWO_NEAR_TOP = account(two_zone(initial={DAY: 999_000, NIGHT: 6500}))
SINGLE_NEAR_TOP = account(single_zone(initial=99_000))
THREE_NEAR_TOP = account(three_zone(initial={PEAK: 9_999_000, HALF_PEAK: 2, NIGHT: 3}))
# A meter installed with its night register at zero.
TWO_FROM_ZERO = account(two_zone(initial={DAY: 12000, NIGHT: 0}))
# Values just above the initial readings: every baseline rule passes.
ABOVE = {DAY: 12_100, NIGHT: 6_600, TOTAL: 4_300}


# --- MALFORMED: the whole submission, one row ----------------------------------------------------

MALFORMED = [
    pytest.param(TWO, sub(r(100, DAY), event_id="not-a-uuid"), id="event-id-not-uuid"),
    pytest.param(None, sub(r(100, DAY), event_id="42"), id="event-id-not-uuid-unknown-account"),
    pytest.param(TWO, sub(), id="no-readings"),
    pytest.param(
        THREE,
        sub(r(1, PEAK), r(2, HALF_PEAK), r(3, NIGHT), r(4, DAY)),
        id="four-readings",
    ),
    pytest.param(TWO, sub(r(100, DAY), r(200, DAY)), id="same-zone-twice"),
    pytest.param(
        TWO,
        sub(r(100, register="1.8.2"), r(200, register="1.8.2.")),
        id="same-label-twice-different-spelling",
    ),
    pytest.param(TWO, sub(r(100)), id="neither-zone-nor-register"),
    pytest.param(TWO, sub(r(100, DAY), r(200, register="  ")), id="blank-register-no-zone"),
    pytest.param(
        TWO,
        sub(r(100, register="1.8.2"), r(200, register="T22")),
        id="two-labels-same-zone",
    ),
    pytest.param(
        TWO,
        sub(r(100, NIGHT), r(200, register="\u042221")),
        id="zone-and-cyrillic-label-same-zone",
    ),
    pytest.param(TWO, sub(r(100, DAY), at=datetime(1999, 12, 31, 12, tzinfo=UTC)), id="year-1999"),
    pytest.param(TWO, sub(r(100, DAY), at=datetime(2300, 1, 1, tzinfo=UTC)), id="year-2300"),
    pytest.param(TWO, sub(r(100, DAY), account_id=""), id="empty-account-id"),
    pytest.param(TWO, sub(r(100, DAY), account_id="   "), id="blank-account-id"),
    pytest.param(TWO, sub(r(100, DAY), sender_id="u" * 65), id="sender-id-too-long"),
    pytest.param(TWO, sub(r(100, DAY), meter_id="M" * 65), id="meter-id-too-long"),
    pytest.param(TWO, sub(r(100, DAY), account_id="1" * 65), id="account-id-too-long"),
    pytest.param(TWO, sub(r(100, DAY), event_id="0" * 65), id="event-id-too-long"),
    pytest.param(TWO, sub(r(100, DAY, register="1" * 17)), id="register-too-long"),
    pytest.param(
        TWO,
        sub(RegisterReading(DAY, None, 12100, raw_text="д" * 1001)),
        id="raw-text-too-long",
    ),
    pytest.param(TWO, sub(*(r(12100 + n, DAY) for n in range(1000))), id="1000-readings"),
]


def test_strings_at_their_limits_are_judged_not_malformed() -> None:
    """The limits are maxima, not off by one: exactly at them a reading is judged as usual."""
    at_limit = sub(
        RegisterReading(None, "1.8.2" + " " * 11, 12100, raw_text="д" * 1000),
        account_id=ACCOUNT,
        sender_id="u" * 64,
    )
    outcome = judge(TWO, at_limit)
    assert [(v.reason, v.zone) for v in outcome.readings] == [(None, DAY)]
    unknown_long_label = judge(TWO, sub(r(12100, register="9" * 16)))
    assert [v.reason for v in unknown_long_label.readings] == [Reason.UNKNOWN_REGISTER]


@pytest.mark.parametrize(("state", "submission"), MALFORMED)
def test_malformed_submissions(state: AccountState | None, submission: Submission) -> None:
    outcome = judge(state, submission)
    assert outcome.status is OutcomeStatus.REJECTED
    assert len(outcome.readings) == 1
    row = outcome.readings[0]
    assert (row.position, row.reason) == (-1, Reason.MALFORMED)
    assert row.detail
    assert (outcome.event_id, outcome.account_id) == (submission.event_id, submission.account_id)


# --- one reason code per reading -----------------------------------------------------------------

ONE_READING = [
    pytest.param(None, sub(r(100, DAY)), Reason.UNKNOWN_ACCOUNT, id="no-state"),
    pytest.param(NEVER_INSTALLED, sub(r(100, DAY)), Reason.UNKNOWN_ACCOUNT, id="never-installed"),
    pytest.param(TWO, sub(r(100, DAY), meter_id="OTHER-1"), Reason.UNKNOWN_METER, id="other-meter"),
    pytest.param(REMOVED, sub(r(100, DAY)), Reason.UNKNOWN_METER, id="removed-not-replaced"),
    pytest.param(
        REMOVED, sub(r(100, DAY), meter_id=GAMA), Reason.UNKNOWN_METER, id="named-but-removed"
    ),
    pytest.param(
        GAP,
        sub(r(100, DAY), at=datetime(2022, 3, 1, 12, tzinfo=UTC)),
        Reason.UNKNOWN_METER,
        id="between-two-meters",
    ),
    pytest.param(
        TWO,
        sub(r(100, DAY), at=datetime(2021, 3, 14, 12, tzinfo=UTC)),
        Reason.BEFORE_INSTALLATION,
        id="day-before-installation",
    ),
    pytest.param(
        TWO,
        # 23:59 local on 14 March 2021 (winter time, +02:00).
        sub(r(100, DAY), at=datetime(2021, 3, 14, 21, 59, tzinfo=UTC)),
        Reason.BEFORE_INSTALLATION,
        id="local-minute-before-installation-day",
    ),
    pytest.param(
        GAP,
        sub(r(100, DAY), at=datetime(2020, 1, 1, 12, tzinfo=UTC)),
        Reason.BEFORE_INSTALLATION,
        id="before-first-of-two-meters",
    ),
    pytest.param(
        TWO,
        sub(r(100, DAY), at=NOW + timedelta(minutes=6)),
        Reason.FUTURE_TIMESTAMP,
        id="six-minutes-ahead",
    ),
    pytest.param(
        TWO,
        sub(r(100, DAY), at=NOW + timedelta(minutes=5, seconds=1)),
        Reason.FUTURE_TIMESTAMP,
        id="five-minutes-one-second-ahead",
    ),
    pytest.param(
        TWO,
        sub(r(100, DAY), at=datetime(2199, 1, 1, tzinfo=UTC)),
        Reason.FUTURE_TIMESTAMP,
        id="year-2199",
    ),
    pytest.param(TWO, sub(r(100, register="1.8.3")), Reason.UNKNOWN_REGISTER, id="label-1.8.3"),
    pytest.param(TWO, sub(r(100, register="T23")), Reason.UNKNOWN_REGISTER, id="label-T23"),
    pytest.param(
        TWO, sub(r(100, DAY, "1.8.9")), Reason.UNKNOWN_REGISTER, id="unknown-label-with-zone"
    ),
    pytest.param(
        TWO, sub(r(100, NIGHT, "1.8.2")), Reason.REGISTER_ZONE_MISMATCH, id="night-as-1.8.2"
    ),
    pytest.param(TWO, sub(r(100, DAY, "T21")), Reason.REGISTER_ZONE_MISMATCH, id="day-as-T21"),
    pytest.param(
        TWO, sub(r(100, TOTAL, "1.8.2")), Reason.REGISTER_ZONE_MISMATCH, id="total-as-1.8.2"
    ),
    pytest.param(
        TWO, sub(r(100, register="1.8.0")), Reason.TOTAL_NOT_ACCEPTED, id="two-zone-label-1.8.0"
    ),
    pytest.param(TWO, sub(r(100, TOTAL)), Reason.TOTAL_NOT_ACCEPTED, id="two-zone-zone-total"),
    pytest.param(
        THREE,
        sub(r(100, register="15.8.0")),
        Reason.TOTAL_NOT_ACCEPTED,
        id="three-zone-label-15.8.0",
    ),
    pytest.param(TWO, sub(r(100, PEAK)), Reason.ZONE_NOT_ON_METER, id="two-zone-peak"),
    pytest.param(TWO, sub(r(100, HALF_PEAK)), Reason.ZONE_NOT_ON_METER, id="two-zone-half-peak"),
    pytest.param(SINGLE, sub(r(100, DAY)), Reason.ZONE_NOT_ON_METER, id="single-zone-day"),
    pytest.param(
        SINGLE, sub(r(100, register="1.8.1")), Reason.ZONE_NOT_ON_METER, id="single-zone-1.8.1"
    ),
    pytest.param(THREE, sub(r(100, DAY)), Reason.ZONE_NOT_ON_METER, id="three-zone-day"),
    pytest.param(TWO, sub(r(-1, DAY)), Reason.INVALID_VALUE, id="negative"),
    pytest.param(TWO, sub(r(12.5, DAY)), Reason.INVALID_VALUE, id="not-an-integer"),
    pytest.param(TWO, sub(r(True, DAY)), Reason.INVALID_VALUE, id="boolean"),
    pytest.param(TWO, sub(r(10**6, DAY)), Reason.TOO_MANY_DIGITS, id="6-digits-10**6"),
    pytest.param(SINGLE, sub(r(10**5, TOTAL)), Reason.TOO_MANY_DIGITS, id="5-digits-10**5"),
    pytest.param(THREE, sub(r(10**7, PEAK)), Reason.TOO_MANY_DIGITS, id="7-digits-10**7"),
    pytest.param(TWO, sub(r(2**62, DAY)), Reason.TOO_MANY_DIGITS, id="huge"),
]


@pytest.mark.parametrize(("state", "submission", "reason"), ONE_READING)
def test_one_reason_per_case(
    state: AccountState | None, submission: Submission, reason: Reason
) -> None:
    outcome = judge(state, submission)
    assert outcome.status is OutcomeStatus.REJECTED
    [row] = outcome.readings
    assert (row.position, row.reason) == (0, reason)
    assert row.value == submission.readings[0].value
    assert row.register == submission.readings[0].register
    assert row.detail
    # A rejected reading is not placed in a period (it names its zone and meter once known).
    assert (row.kind, row.period, row.local_date) == (None, None, None)


ACCEPTED = [
    pytest.param(TWO_NEAR_TOP, sub(r(999_999, DAY)), id="6-digits-999999"),
    pytest.param(SINGLE_NEAR_TOP, sub(r(99_999, TOTAL)), id="5-digits-99999"),
    pytest.param(THREE_NEAR_TOP, sub(r(9_999_999, PEAK)), id="7-digits-9999999"),
    pytest.param(TWO_FROM_ZERO, sub(r(0, NIGHT)), id="zero"),
    pytest.param(TWO, sub(r(12_100, DAY), at=NOW + timedelta(minutes=4)), id="four-minutes-ahead"),
    pytest.param(TWO, sub(r(12_100, DAY), at=NOW + timedelta(minutes=5)), id="five-minutes-ahead"),
    pytest.param(TWO, sub(r(12_100, DAY), meter_id=GAMA), id="named-active-meter"),
    pytest.param(SINGLE, sub(r(4_300, TOTAL)), id="single-zone-total"),
    pytest.param(SINGLE, sub(r(4_300, register="1.8.0")), id="single-zone-1.8.0"),
    pytest.param(SINGLE, sub(r(4_300, TOTAL, "15.8.0.")), id="single-zone-total-and-label"),
    pytest.param(TWO, sub(r(12_100, DAY, "  ")), id="zone-with-blank-register"),
    pytest.param(
        TWO,
        # 00:30 local on 15 March 2021, the installation day.
        sub(r(12_100, DAY), at=datetime(2021, 3, 14, 22, 30, tzinfo=UTC)),
        id="installation-day-local",
    ),
    pytest.param(THREE, sub(r(1, PEAK), r(2, HALF_PEAK), r(3, NIGHT)), id="three-zone-all-zones"),
    pytest.param(
        TWO,
        sub(r(12_001, DAY, "1.8.2"), r(6_502, NIGHT, "t21")),
        id="two-zone-labels-and-zones",
    ),
]


@pytest.mark.parametrize(("state", "submission"), ACCEPTED)
def test_accepted(state: AccountState, submission: Submission) -> None:
    outcome = judge(state, submission)
    assert outcome.status is OutcomeStatus.ACCEPTED, outcome
    assert [row.position for row in outcome.readings] == list(range(len(submission.readings)))


# --- the order of the rules: first failure wins ---------------------------------------------------

FIRST_FAILURE = [
    pytest.param(
        TWO, sub(r(-5, register="1.8.9")), Reason.UNKNOWN_REGISTER, id="unknown-register>negative"
    ),
    pytest.param(
        TWO,
        sub(r(10**6, NIGHT, "1.8.2")),
        Reason.REGISTER_ZONE_MISMATCH,
        id="mismatch>too-many-digits",
    ),
    pytest.param(TWO, sub(r(-1, TOTAL)), Reason.TOTAL_NOT_ACCEPTED, id="total>negative"),
    pytest.param(
        TWO, sub(r(10**9, PEAK)), Reason.ZONE_NOT_ON_METER, id="not-on-meter>too-many-digits"
    ),
    pytest.param(
        TWO,
        sub(r(-1, register="X"), at=NOW + timedelta(hours=1)),
        Reason.FUTURE_TIMESTAMP,
        id="future>unknown-register",
    ),
    pytest.param(
        TWO,
        sub(r(-1, PEAK), at=datetime(2020, 1, 1, tzinfo=UTC)),
        Reason.BEFORE_INSTALLATION,
        id="before-installation>zone-and-value",
    ),
    pytest.param(
        REMOVED,
        sub(r(-1, register="X"), at=datetime(2099, 1, 1, tzinfo=UTC)),
        Reason.UNKNOWN_METER,
        id="no-active-meter>future",
    ),
    pytest.param(
        TWO,
        sub(r(-1, PEAK), meter_id="OTHER-1", at=NOW + timedelta(hours=1)),
        Reason.UNKNOWN_METER,
        id="other-meter>future>zone>value",
    ),
    pytest.param(
        None,
        sub(r(-1, register="X"), meter_id="OTHER-1", at=NOW + timedelta(hours=1)),
        Reason.UNKNOWN_ACCOUNT,
        id="unknown-account>everything",
    ),
    # SPEC §2.3 lists UNKNOWN_METER ("names a meter that is not the account's active meter at
    # that date") before BEFORE_INSTALLATION, so naming the right meter before its installation
    # is UNKNOWN_METER; unnamed, it is BEFORE_INSTALLATION (see the report: a spec ambiguity).
    pytest.param(
        TWO,
        sub(r(100, DAY), meter_id=GAMA, at=datetime(2021, 3, 14, 12, tzinfo=UTC)),
        Reason.UNKNOWN_METER,
        id="named-meter-before-its-installation",
    ),
]


@pytest.mark.parametrize(("state", "submission", "reason"), FIRST_FAILURE)
def test_first_failure_wins(
    state: AccountState | None, submission: Submission, reason: Reason
) -> None:
    [row] = judge(state, submission).readings
    assert row.reason is reason


# --- per-reading independence and what an accepted reading carries --------------------------------


def test_each_reading_is_judged_on_its_own() -> None:
    outcome = judge(TWO, sub(r(15_000, register="1.8.2"), r(-3, register="1.8.1")))
    assert outcome.status is OutcomeStatus.PARTIALLY_ACCEPTED
    [good] = outcome.accepted
    [bad] = outcome.rejected
    assert (good.position, good.zone, good.value) == (0, DAY, 15_000)
    assert (bad.position, bad.reason, bad.value) == (1, Reason.INVALID_VALUE, -3)


def test_every_reading_rejected_is_a_rejected_submission_with_a_row_each() -> None:
    outcome = judge(TWO, sub(r(10**6, DAY), r(5, PEAK)))
    assert outcome.status is OutcomeStatus.REJECTED
    assert [(row.position, row.reason) for row in outcome.rejected] == [
        (0, Reason.TOO_MANY_DIGITS),
        (1, Reason.ZONE_NOT_ON_METER),
    ]


def test_accepted_readings_carry_zone_meter_kind_period_and_local_date() -> None:
    outcome = judge(TWO, sub(r(15_321, register="1.8.2."), r(8_012, register="\u044221")))
    assert outcome.status is OutcomeStatus.ACCEPTED
    day, night = outcome.readings
    assert (day.zone, day.register, day.value) == (DAY, "1.8.2.", 15_321)
    assert (night.zone, night.register, night.value) == (NIGHT, "\u044221", 8_012)
    for row in (day, night):
        assert row.reason is None
        assert row.meter_id == GAMA
        assert row.kind is ReadingKind.IN_WINDOW
        assert row.period == Period(2023, 5)
        assert row.local_date == date(2023, 5, 30)
    # The baseline rules (§2.4) give the provisional kWh since the initial readings.
    assert (day.kwh, day.flags, day.baseline, day.unwrapped) == (3_321, (), 12_000, 15_321)
    assert (night.kwh, night.flags, night.baseline, night.unwrapped) == (1_512, (), 6_500, 8_012)


PLACED = [
    ("2023-06-15T09:00:00Z", ReadingKind.OFF_WINDOW, "2023-06", "2023-06-15"),
    ("2023-05-29T20:59:00Z", ReadingKind.OFF_WINDOW, "2023-05", "2023-05-29"),
    ("2023-05-29T21:00:00Z", ReadingKind.IN_WINDOW, "2023-05", "2023-05-30"),
    ("2023-03-31T21:30:00Z", ReadingKind.IN_WINDOW, "2023-03", "2023-04-01"),
    ("2023-04-03T21:00:00Z", ReadingKind.OFF_WINDOW, "2023-04", "2023-04-04"),
    ("2023-10-31T22:30:00Z", ReadingKind.IN_WINDOW, "2023-10", "2023-11-01"),
    ("2023-12-31T22:30:00Z", ReadingKind.IN_WINDOW, "2023-12", "2024-01-01"),
    ("2024-02-27T22:00:00Z", ReadingKind.IN_WINDOW, "2024-02", "2024-02-28"),
    ("2024-02-27T21:59:00Z", ReadingKind.OFF_WINDOW, "2024-02", "2024-02-27"),
]


@pytest.mark.parametrize(("at", "kind", "period", "local"), PLACED, ids=[p[0] for p in PLACED])
def test_accepted_reading_is_placed_by_kyiv_date(
    at: str, kind: ReadingKind, period: str, local: str
) -> None:
    instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
    [row] = judge(TWO, sub(r(12_100, DAY), at=instant), now=instant).readings
    assert row.accepted
    assert (row.kind, str(row.period), row.local_date) == (kind, period, date.fromisoformat(local))


# --- meter exchange ------------------------------------------------------------------------------

EXCHANGE_DAY = date(2023, 7, 12)
NEW = "NIK-2303"
EXCHANGED = account(removed(TWO, GAMA, EXCHANGE_DAY).meters[0], single_zone(NEW, EXCHANGE_DAY))
AFTER_EXCHANGE = datetime(2023, 7, 13, tzinfo=UTC)

EXCHANGE_CASES = [
    pytest.param("2023-07-11T12:00:00Z", None, DAY, GAMA, None, id="day-before-old"),
    pytest.param("2023-07-12T12:00:00Z", None, TOTAL, NEW, None, id="exchange-day-new"),
    pytest.param(
        "2023-07-12T12:00:00Z",
        None,
        DAY,
        None,
        Reason.ZONE_NOT_ON_METER,
        id="exchange-day-old-zone",
    ),
    # Summer time: 20:59Z is 23:59 on 11 July, 21:30Z is 00:30 on 12 July.
    pytest.param("2023-07-11T20:59:00Z", None, DAY, GAMA, None, id="last-local-minute-old"),
    pytest.param("2023-07-11T21:30:00Z", None, TOTAL, NEW, None, id="first-local-hour-new"),
    pytest.param(
        "2023-07-12T12:00:00Z", GAMA, DAY, None, Reason.UNKNOWN_METER, id="named-old-on-day"
    ),
    pytest.param(
        "2023-07-11T12:00:00Z", NEW, TOTAL, None, Reason.UNKNOWN_METER, id="named-new-day-before"
    ),
    pytest.param("2023-07-12T12:00:00Z", NEW, TOTAL, NEW, None, id="named-new-on-day"),
    pytest.param("2023-07-11T12:00:00Z", GAMA, NIGHT, GAMA, None, id="named-old-day-before"),
]


@pytest.mark.parametrize(("at", "named", "zone", "meter_id", "reason"), EXCHANGE_CASES)
def test_meter_exchange(
    at: str, named: str | None, zone: Zone, meter_id: str | None, reason: Reason | None
) -> None:
    instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
    [row] = judge(
        EXCHANGED, sub(r(ABOVE[zone], zone), at=instant, meter_id=named), now=AFTER_EXCHANGE
    ).readings
    assert (row.reason, row.meter_id) == (reason, meter_id)


def test_exchange_state_does_not_depend_on_registry_event_order() -> None:
    old, new = two_zone(), single_zone(NEW, EXCHANGE_DAY)
    removal = MeterRemoved(ACCOUNT, GAMA, {DAY: 15_321, NIGHT: 8_012}, EXCHANGE_DAY)
    orders = [
        [MeterInstalled(ACCOUNT, old), removal, MeterInstalled(ACCOUNT, new)],
        [MeterInstalled(ACCOUNT, old), MeterInstalled(ACCOUNT, new), removal],
        [MeterInstalled(ACCOUNT, new), MeterInstalled(ACCOUNT, old), removal],
    ]
    states = []
    for events in orders:
        state: AccountState | None = None
        for event in events:
            state = apply_registry_event(state, event)
        states.append(state)
    assert states[0] == states[1] == states[2]
    assert states[0] is not None
    assert states[0].meter_on(EXCHANGE_DAY).meter_id == NEW  # type: ignore[union-attr]
    assert states[0].meter_on(EXCHANGE_DAY - timedelta(days=1)).meter_id == GAMA  # type: ignore[union-attr]


# --- the spec's example, through decode -------------------------------------------------------


def test_spec_example_submission_is_accepted() -> None:
    # SPEC §3.1's JSON lines, as the Avro decoder hands them over.
    state = apply_registry_event(
        None,
        MeterInstalled(
            ACCOUNT,
            Meter(GAMA, (DAY, NIGHT), 6, {DAY: 12000, NIGHT: 6500}, date(2021, 3, 15), "dtek-kem"),
        ),
    )
    datum = {
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "account_id": ACCOUNT,
        "channel": "viber",
        "sender_id": "u-77",
        "submitted_at": datetime(2023, 5, 30, 9, 15, tzinfo=UTC),
        "readings": [{"register": "1.8.2", "value": 12345}, {"register": "1.8.1", "value": 6789}],
    }
    submission = submission_from_datum(datum)
    assert submission.meter_id is None
    _, outcome, duplicate = apply_submission(state, submission, now=NOW, rules=RULES)
    assert not duplicate
    assert outcome.status is OutcomeStatus.ACCEPTED
    assert [(row.zone, row.value, str(row.period)) for row in outcome.readings] == [
        (DAY, 12345, "2023-05"),
        (NIGHT, 6789, "2023-05"),
    ]


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        (datetime(2023, 5, 30, 9, 15, tzinfo=UTC), datetime(2023, 5, 30, 9, 15, tzinfo=UTC)),
        (datetime(2023, 5, 30, 9, 15), datetime(2023, 5, 30, 9, 15, tzinfo=UTC)),
        (
            datetime.fromisoformat("2023-05-30T12:15:00+03:00"),
            datetime(2023, 5, 30, 9, 15, tzinfo=UTC),
        ),
    ],
    ids=["utc", "naive-is-utc", "offset-converted"],
)
def test_submission_from_datum_times_are_utc(submitted_at: datetime, expected: datetime) -> None:
    submission = submission_from_datum(
        {
            "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "account_id": ACCOUNT,
            "meter_id": GAMA,
            "channel": "telegram",
            "sender_id": "u-1",
            "submitted_at": submitted_at,
            "readings": [{"zone": "night", "register": None, "value": 1, "raw_text": "ніч 1"}],
        }
    )
    assert submission.submitted_at == expected
    assert submission.submitted_at.utcoffset() == timedelta(0)
    assert submission.meter_id == GAMA
    assert submission.readings == (RegisterReading(NIGHT, None, 1, "ніч 1"),)


# --- duplicates and memory ------------------------------------------------------------------------


def test_duplicate_returns_the_first_outcome_and_leaves_state_unchanged() -> None:
    submission = sub(r(15_000, DAY), r(7_000, NIGHT))
    first_state, first, duplicate = apply_submission(TWO, submission, now=NOW, rules=RULES)
    assert not duplicate
    assert first_state is not None
    assert first_state.recent_outcome(submission.event_id) == first
    again_state, again, duplicate = apply_submission(first_state, submission, now=NOW, rules=RULES)
    assert duplicate
    assert again == first
    assert again_state == first_state


def test_duplicate_is_the_first_outcome_even_after_the_meters_changed() -> None:
    submission = sub(r(15_000, DAY))
    state, first, _ = apply_submission(TWO, submission, now=NOW, rules=RULES)
    assert first.status is OutcomeStatus.ACCEPTED
    assert state is not None
    # Billing removes the meter (before the reading's date): judged now, it would be UNKNOWN_METER.
    state = removed(state, GAMA, date(2023, 5, 1))
    assert judge(state, sub(r(15_000, DAY))).readings[0].reason is Reason.UNKNOWN_METER
    later = datetime(2023, 6, 2, tzinfo=UTC)
    again_state, again, duplicate = apply_submission(state, submission, now=later, rules=RULES)
    assert duplicate
    assert again == first
    assert again_state == state


def test_duplicate_with_a_different_payload_still_gets_the_first_outcome() -> None:
    event_id = new_event_id()
    state, first, _ = apply_submission(
        TWO, sub(r(15_000, DAY), event_id=event_id), now=NOW, rules=RULES
    )
    _, again, duplicate = apply_submission(
        state, sub(r(-1, PEAK), event_id=event_id), now=NOW, rules=RULES
    )
    assert duplicate
    assert again == first


def test_only_a_redelivery_rewrites_the_rows_of_a_duplicate() -> None:
    """A crash's redelivery writes its first rows again; another message reusing the event_id
    (a buggy or hostile bot) must not replace them with its own time, channel or payload."""
    first_submission = sub(r(15_000, DAY))
    state, first, _ = apply_submission(TWO, first_submission, now=NOW, rules=RULES)
    written = written_by(first_submission, first, duplicate=False, replayed=False)
    assert written == Written(accepted=first.accepted)
    assert len(written.accepted) == 1
    redelivered = apply_submission(state, first_submission, now=NOW, rules=RULES)
    assert redelivered[2]
    assert written_by(first_submission, redelivered[1], duplicate=True, replayed=False) == written
    impostor = replace(first_submission, submitted_at=datetime(9999, 12, 31, tzinfo=UTC))
    _, again, duplicate = apply_submission(state, impostor, now=NOW, rules=RULES)
    assert duplicate and again == first
    assert written_by(impostor, again, duplicate=True, replayed=True) == Written()


def test_a_replay_withdraws_what_its_first_pass_rejected_and_this_one_does_not() -> None:
    submission = sub(r(15_000, DAY), r(99_999, NIGHT))
    _, again, _ = apply_submission(TWO, submission, now=NOW, rules=RULES, replayed=True)
    written = written_by(submission, again, duplicate=False, replayed=True)
    assert [x.position for x in written.accepted] == [0]
    assert [x.position for x in written.rejected] == [1]
    assert written.replay and written.withdrawn == (-1, 0)
    whole = judge(TWO, sub(r(1, DAY), r(2, DAY), event_id=submission.event_id))
    assert [x.position for x in whole.readings] == [-1]
    assert written_by(submission, whole, duplicate=False, replayed=True).withdrawn == (0, 1)


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (MeterInstalled(ACCOUNT, two_zone()), None),
        (MeterRemoved(ACCOUNT, GAMA, {DAY: 1, NIGHT: 2}, date(2024, 1, 1)), None),
        (
            MeterInstalled(ACCOUNT, Meter(GAMA, (DAY, DAY), 6, {DAY: 1}, date(2021, 3, 15))),
            "['day', 'day'] is not a zone set pokazy bills",
        ),
        (
            MeterInstalled(ACCOUNT, Meter(GAMA, TWO_ZONE, 6, {DAY: 1}, date(2021, 3, 15))),
            "initial readings must name exactly the meter's zones",
        ),
        (MeterInstalled(ACCOUNT, replace(two_zone(), digits=13)), "digits must be 1-12"),
        (
            MeterInstalled(ACCOUNT, two_zone(initial={DAY: 10**6, NIGHT: 0})),
            "initial readings must be 0 <= value < 10**6",
        ),
        (MeterInstalled(ACCOUNT, two_zone(meter_id=" ")), "meter_id must be 1-64 characters"),
        (MeterInstalled(ACCOUNT, replace(two_zone(), dso="x" * 65)), "dso must be 1-64 characters"),
        (MeterInstalled("", two_zone()), "account_id must be 1-64 characters"),
        (MeterRemoved(ACCOUNT, "", {}, date(2024, 1, 1)), "meter_id must be 1-64 characters"),
    ],
)
def test_master_data_that_cannot_be_applied_is_named(
    event: MeterInstalled | MeterRemoved, problem: str | None
) -> None:
    assert registry_problem(event) == problem


def test_a_malformed_submission_is_remembered_too() -> None:
    submission = sub(r(1, DAY), event_id="not-a-uuid")
    state, first, _ = apply_submission(TWO, submission, now=NOW, rules=RULES)
    _, again, duplicate = apply_submission(state, submission, now=NOW, rules=RULES)
    assert duplicate
    assert again == first
    assert again.readings[0].reason is Reason.MALFORMED


def test_unknown_accounts_leave_no_state() -> None:
    submission = sub(r(100, DAY))
    for _ in range(2):
        state, outcome, duplicate = apply_submission(None, submission, now=NOW, rules=RULES)
        assert state is None
        assert not duplicate  # nothing is remembered, so nothing is ever a duplicate
        assert outcome.readings[0].reason is Reason.UNKNOWN_ACCOUNT


def test_judge_submission_does_not_change_state() -> None:
    submission = sub(r(12_100, DAY))
    judge(TWO, submission)
    assert TWO.recent == ()
    assert TWO.recent_outcome(submission.event_id) is None


@pytest.mark.parametrize(("remembered", "sent"), [(3, 5), (1, 4), (16, 20), (5, 5)])
def test_remembered_submissions_bound_the_memory(remembered: int, sent: int) -> None:
    rules = Rules(remembered_submissions=remembered)
    state: AccountState | None = TWO
    submissions = [sub(r(12_100 + i, DAY)) for i in range(sent)]
    for submission in submissions:
        state, _, _ = apply_submission(state, submission, now=NOW, rules=rules)
    assert state is not None
    kept = [o.event_id for o in state.recent]
    assert kept == [s.event_id for s in submissions[-remembered:]]
    # The newest is still a duplicate; the oldest forgotten one is judged again.
    assert apply_submission(state, submissions[-1], now=NOW, rules=rules)[2] is True
    if sent > remembered:
        assert apply_submission(state, submissions[0], now=NOW, rules=rules)[2] is False


def test_default_memory_is_sixteen_submissions() -> None:
    state: AccountState | None = TWO
    for i in range(40):
        state, _, _ = apply_submission(state, sub(r(12_000 + i, DAY)), now=NOW, rules=RULES)
    assert state is not None
    assert len(state.recent) == RULES.remembered_submissions == 16


def test_remembering_zero_submissions_keeps_none() -> None:
    rules = Rules(remembered_submissions=0)
    state: AccountState | None = TWO
    for i in range(3):
        state, _, _ = apply_submission(state, sub(r(12_000 + i, DAY)), now=NOW, rules=rules)
    assert state is not None
    assert state.recent == ()


# --- replayed rejections (`rejections replay`) ----------------------------------------------------


def test_a_replayed_rejection_is_judged_again() -> None:
    # Read on 30 May, after the only meter was removed in January: no meter is active.
    submission = sub(r(4_300, TOTAL))
    state, first, _ = apply_submission(REMOVED, submission, now=NOW, rules=RULES)
    assert [row.reason for row in first.readings] == [Reason.UNKNOWN_METER]
    # Billing's master data catches up: a new meter since 1 May.
    state = apply_registry_event(
        state, MeterInstalled(ACCOUNT, single_zone(installed_on=date(2023, 5, 1)))
    )
    # Redelivered as such, it is a duplicate with the first outcome ...
    assert apply_submission(state, submission, now=NOW, rules=RULES)[1:] == (first, True)
    # ... replayed from `rejections`, it is judged again, and remembered once.
    again_state, again, duplicate = apply_submission(
        state, submission, now=NOW, rules=RULES, replayed=True
    )
    assert not duplicate
    assert again.status is OutcomeStatus.ACCEPTED
    assert [o.event_id for o in again_state.recent].count(submission.event_id) == 1  # type: ignore[union-attr]
    assert again_state.recent_outcome(submission.event_id) == again  # type: ignore[union-attr]
    # Replayed a second time, it is now a duplicate: what was accepted is never counted twice.
    assert apply_submission(again_state, submission, now=NOW, rules=RULES, replayed=True)[1:] == (
        again,
        True,
    )


def test_a_replayed_partly_accepted_submission_is_a_duplicate() -> None:
    submission = sub(r(15_000, DAY), r(-1, NIGHT))
    state, first, _ = apply_submission(TWO, submission, now=NOW, rules=RULES)
    assert first.status is OutcomeStatus.PARTIALLY_ACCEPTED
    again_state, again, duplicate = apply_submission(
        state, submission, now=NOW, rules=RULES, replayed=True
    )
    assert (again_state, again, duplicate) == (state, first, True)


# --- registry events ------------------------------------------------------------------------------


def test_the_same_installation_twice_is_one_meter() -> None:
    event = MeterInstalled(ACCOUNT, two_zone())
    once = apply_registry_event(None, event)
    twice = apply_registry_event(once, event)
    assert twice == once
    assert [m.meter_id for m in twice.meters] == [GAMA]


def test_the_same_removal_twice_is_one_removal() -> None:
    event = MeterRemoved(ACCOUNT, GAMA, {DAY: 15_321, NIGHT: 8_012}, date(2023, 7, 12))
    once = apply_registry_event(TWO, event)
    twice = apply_registry_event(once, event)
    assert twice == once
    [meter] = twice.meters
    assert (meter.removed_on, dict(meter.final or {})) == (
        date(2023, 7, 12),
        {DAY: 15_321, NIGHT: 8_012},
    )


def test_a_corrected_installation_replaces_the_meter() -> None:
    corrected = Meter(GAMA, TWO_ZONE, 7, {DAY: 12_001, NIGHT: 6_501}, date(2021, 3, 16))
    state = apply_registry_event(TWO, MeterInstalled(ACCOUNT, corrected))
    assert state.meters == (corrected,)


def test_removing_an_unknown_meter_changes_nothing() -> None:
    state = apply_registry_event(TWO, MeterRemoved(ACCOUNT, "NOT-HERE", {DAY: 1}, date(2023, 1, 1)))
    assert state == TWO


def test_registry_events_keep_the_remembered_outcomes() -> None:
    state, outcome, _ = apply_submission(TWO, sub(r(12_100, DAY)), now=NOW, rules=RULES)
    assert outcome.status is OutcomeStatus.ACCEPTED
    assert state is not None
    state = apply_registry_event(
        state, MeterInstalled(ACCOUNT, single_zone("X-1", date(2024, 1, 1)))
    )
    assert state.recent == (outcome,)


@pytest.mark.parametrize("initial", [{"day": -5, "night": 1}, {"day": 1, "night": 10**9}])
def test_meter_installed_with_an_impossible_initial_reading_is_not_decoded(
    initial: dict[str, int],
) -> None:
    codec = default_codec()
    payload = codec.encode(
        "pokazy.MeterInstalled",
        {
            "account_id": ACCOUNT,
            "meter_id": GAMA,
            "zones": ["day", "night"],
            "digits": 6,
            "initial": initial,
            "installed_on": date(2021, 3, 15),
            "dso": "dtek-kem",
        },
    )
    with pytest.raises(DecodeError):
        decode_inbound(payload, codec)


@pytest.mark.parametrize(
    "readings",
    [
        (r(15_000, register="1.8.2"), r(10**6, register="T22")),
        (r(15_000, DAY), r(-1, register="15.8.2")),
    ],
    ids=["two-labels-one-too-long", "zone-and-label-one-negative"],
)
def test_same_zone_twice_is_malformed_even_if_one_reading_is_bad(
    readings: tuple[RegisterReading, ...],
) -> None:
    outcome = judge(TWO, sub(*readings))
    assert [(row.position, row.reason) for row in outcome.readings] == [(-1, Reason.MALFORMED)]


def test_a_replay_accepted_retracts_the_rejections_of_its_first_pass() -> None:
    """The first pass rejected both readings (no meter yet); the replay accepts the day one: its
    rejection row, the whole-submission key and the INTERNAL_ERROR key are withdrawn, the
    night one's rejection stands."""
    from streams.pipeline.sink import REJECTION_COLUMNS, internal_error_key, submission_rows

    submission = sub(r(15_000, DAY), r(99_999, NIGHT))
    first = apply_submission(None, submission, now=NOW, rules=RULES)[1]
    _, rejected = submission_rows(submission, first, False, "h", b"payload", NOW)
    assert [row[0] for row in rejected] == [f"{submission.event_id}:0", f"{submission.event_id}:1"]

    _, again, _ = apply_submission(TWO, submission, now=NOW, rules=RULES, replayed=True)
    assert [x.accepted for x in again.readings] == [True, False]
    readings, rows = submission_rows(submission, again, False, "h", b"payload", NOW, replayed=True)
    retracted = REJECTION_COLUMNS.index("retracted")
    assert len(readings) == 1
    assert [(row[0], row[retracted]) for row in rows] == [
        (f"{submission.event_id}:1", False),
        (f"{submission.event_id}:-1", True),
        (f"{submission.event_id}:0", True),
        (internal_error_key(b"payload"), True),
    ]
    assert all(len(row) == len(REJECTION_COLUMNS) for row in rows)
    # Not replayed: nothing is withdrawn.
    _, plain = submission_rows(submission, again, False, "h", b"payload", NOW)
    assert [row[retracted] for row in plain] == [False]


def test_a_replay_rejected_another_way_retracts_the_rows_it_no_longer_writes() -> None:
    """Unknown account first: one rejection per reading. Once the meter is known, the zone and
    the label name the same zone, so the replay rejects the whole submission (-1) instead: the
    per-reading rows of the first pass must go, or one submission shows three rejections."""
    from streams.pipeline.sink import REJECTION_COLUMNS, submission_rows

    submission = sub(r(15_000, DAY), r(16_000, register="1.8.2"))
    first = apply_submission(None, submission, now=NOW, rules=RULES)[1]
    assert [x.position for x in first.rejected] == [0, 1]
    _, again, _ = apply_submission(TWO, submission, now=NOW, rules=RULES, replayed=True)
    assert [(x.position, x.reason) for x in again.readings] == [(-1, Reason.MALFORMED)]
    _, rows = submission_rows(submission, again, False, "h", b"payload", NOW, replayed=True)
    retracted = REJECTION_COLUMNS.index("retracted")
    visible = {row[0] for row in rows if not row[retracted]}
    withdrawn = {row[0] for row in rows if row[retracted]}
    event = submission.event_id
    assert visible == {f"{event}:-1"}
    assert {f"{event}:0", f"{event}:1"} <= withdrawn and f"{event}:-1" not in withdrawn


def test_an_internal_error_has_a_key_of_its_own() -> None:
    """A replay retracts the INTERNAL_ERROR row of its bytes, never a refusal of the same bytes
    (sent under a wrong key, unauthorized), which stays visible."""
    from streams.pipeline.sink import (
        internal_error_key,
        payload_key,
        retraction_rows,
        undecodable_row,
    )

    defect = undecodable_row(b"same bytes", "boom", NOW, reason=Reason.INTERNAL_ERROR)
    refused = undecodable_row(b"same bytes", "not signed", NOW, reason=Reason.UNAUTHORIZED)
    assert defect[0] == internal_error_key(b"same bytes") != refused[0]
    assert refused[0] == payload_key(b"same bytes")
    assert [row[0] for row in retraction_rows("", "A", (), b"same bytes", NOW)] == [defect[0]]
