"""Replies a bot shows as is: Ukrainian and English, per reading and per submission."""

from __future__ import annotations

import re
from datetime import date

import pytest

from streams.domain.calendar import ReadingKind, place_reading
from streams.domain.messages import reading_message, reply_status, submission_message
from streams.domain.model import (
    MESSAGE_REASONS,
    OutcomeStatus,
    ReadingOutcome,
    Reason,
    SubmissionOutcome,
)
from streams.domain.zones import Zone

CYRILLIC = re.compile("[\u0400-\u04ff]")
TODAY = date(2023, 5, 30)


def rejected(reason: Reason, zone: Zone | None = Zone.DAY) -> ReadingOutcome:
    return ReadingOutcome(0, zone, "1.8.2", 12345, reason=reason, detail="why")


def accepted(day: date, zone: Zone = Zone.DAY, value: int = 12345) -> ReadingOutcome:
    placement = place_reading(day)
    return ReadingOutcome(
        0,
        zone,
        None,
        value,
        meter_id="GAMA-100200",
        kind=placement.kind,
        period=placement.period,
        local_date=day,
    )


# The reasons a reading can be given; the others refuse or keep a message whole, unanswered.
READING_REASONS = [reason for reason in Reason if reason not in MESSAGE_REASONS]


@pytest.mark.parametrize("reason", READING_REASONS, ids=str)
def test_every_reason_has_a_ukrainian_and_an_english_message(reason: Reason) -> None:
    uk, en = reading_message(rejected(reason), TODAY)
    assert uk.startswith("день: ")
    assert en.startswith("day: ")
    assert len(uk) > len("день: ") + 10
    assert len(en) > len("day: ") + 10
    assert CYRILLIC.search(uk.removeprefix("день: "))
    assert en.isascii()
    # Not the acceptance text, and no internal code or detail leaks to the customer.
    for text in (uk, en):
        assert "12345" not in text
        assert str(reason) not in text
        assert "why" not in text


def test_every_reason_has_its_own_message() -> None:
    texts = [reading_message(rejected(reason), TODAY) for reason in READING_REASONS]
    assert len({uk for uk, _ in texts}) == len(READING_REASONS)
    assert len({en for _, en in texts}) == len(READING_REASONS)


@pytest.mark.parametrize(
    ("zone", "uk", "en"),
    [
        (Zone.TOTAL, "загальний", "total"),
        (Zone.DAY, "день", "day"),
        (Zone.NIGHT, "ніч", "night"),
        (Zone.PEAK, "пік", "peak"),
        (Zone.HALF_PEAK, "напівпік", "half-peak"),
        (None, "показ", "reading"),  # e.g. a MALFORMED submission's single row
    ],
)
def test_messages_name_the_zone(zone: Zone | None, uk: str, en: str) -> None:
    uk_text, en_text = reading_message(rejected(Reason.MALFORMED, zone), TODAY)
    assert uk_text.startswith(f"{uk}: ")
    assert en_text.startswith(f"{en}: ")


OFF_WINDOW = [
    # A 30-day month: W(June) = 29 June .. 3 July (SPEC §2.2, last(P) - 1).
    ("2023-06-15", "29 червня", "29 June"),
    ("2023-05-15", "30 травня", "30 May"),
    ("2023-06-04", "29 червня", "29 June"),
    ("2024-02-10", "28 лютого", "28 February"),
    ("2023-02-10", "27 лютого", "27 February"),
    ("2023-12-04", "30 грудня", "30 December"),
    ("2023-01-28", "30 січня", "30 January"),
    ("2023-09-27", "29 вересня", "29 September"),
]


@pytest.mark.parametrize(("day", "uk", "en"), OFF_WINDOW, ids=[o[0] for o in OFF_WINDOW])
def test_off_window_acceptance_names_the_next_window(day: str, uk: str, en: str) -> None:
    reading = accepted(date.fromisoformat(day))
    assert reading.kind is ReadingKind.OFF_WINDOW
    uk_text, en_text = reading_message(reading, date.fromisoformat(day))
    assert uk in uk_text
    assert en in en_text
    assert "12 345" in uk_text
    assert "12 345" in en_text
    assert "прийнято" in uk_text
    assert "accepted" in en_text


def test_off_window_message_on_15_june_2023() -> None:
    uk, en = reading_message(accepted(date(2023, 6, 15), Zone.NIGHT, 6789), date(2023, 6, 15))
    assert uk == (
        "ніч: показ 6 789 прийнято поза періодом передачі; наступний період відкриється 29 червня."
    )
    assert en == (
        "night: reading 6 789 accepted outside the submission window; "
        "the next window opens on 29 June."
    )


@pytest.mark.parametrize("day", ["2023-05-30", "2023-06-03", "2024-02-29", "2024-01-01"])
def test_in_window_acceptance_is_plain(day: str) -> None:
    reading = accepted(date.fromisoformat(day), Zone.DAY, 0)
    assert reading.kind is ReadingKind.IN_WINDOW
    uk, en = reading_message(reading, date.fromisoformat(day))
    assert (uk, en) == ("день: показ 0 прийнято.", "day: reading 0 accepted.")


def outcome(*rows: ReadingOutcome) -> SubmissionOutcome:
    return SubmissionOutcome("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "0123456789", rows)


def test_submission_messages_differ_per_status() -> None:
    good = accepted(date(2023, 5, 30))
    bad = rejected(Reason.INVALID_VALUE)
    cases = {
        OutcomeStatus.ACCEPTED: outcome(good),
        OutcomeStatus.PARTIALLY_ACCEPTED: outcome(good, bad),
        OutcomeStatus.REJECTED: outcome(bad),
        OutcomeStatus.DUPLICATE: outcome(good),
    }
    texts = {}
    for status, result in cases.items():
        if status is not OutcomeStatus.DUPLICATE:
            assert result.status is status
        uk, en = submission_message(result, status)
        assert CYRILLIC.search(uk)
        assert en.isascii()
        texts[status] = (uk, en)
    assert len({uk for uk, _ in texts.values()}) == len(OutcomeStatus)
    assert len({en for _, en in texts.values()}) == len(OutcomeStatus)
    assert "Дякуємо" in texts[OutcomeStatus.ACCEPTED][0]


def test_below_previous_names_the_previous_reading() -> None:
    reading = ReadingOutcome(
        0, Zone.DAY, "1.8.2", 12000, reason=Reason.BELOW_PREVIOUS, detail="x", baseline=12340
    )
    uk, en = reading_message(reading, date(2023, 5, 30))
    assert en == ("day: The reading is lower than the previous one. The previous one: 12 340.")
    assert "Попередній показ: 12 340." in uk


def test_period_closed_names_the_next_window() -> None:
    reading = ReadingOutcome(0, Zone.TOTAL, None, 500, reason=Reason.PERIOD_CLOSED, detail="x")
    uk, en = reading_message(reading, date(2023, 6, 10))
    assert en.endswith("The next window opens on 29 June.")
    assert uk.endswith("відкриється 29 червня.")


def test_accepted_reading_names_the_provisional_kwh() -> None:
    reading = ReadingOutcome(
        0, Zone.DAY, "1.8.2", 12345, kind=ReadingKind.IN_WINDOW, kwh=1345, baseline=11000
    )
    uk, en = reading_message(reading, date(2023, 5, 30))
    assert en == "day: reading 12 345 accepted, 1 345 kWh since the previous one."
    assert uk == "день: показ 12 345 прийнято, спожито 1 345 кВт·год від попереднього."


def test_a_duplicate_is_told_it_is_one_whatever_its_first_outcome() -> None:
    accepted = SubmissionOutcome("e", "a", (ReadingOutcome(0, Zone.DAY, None, 1),))
    refused = SubmissionOutcome("e", "a", (rejected(Reason.BELOW_PREVIOUS),))
    assert reply_status(accepted, duplicate=False) is OutcomeStatus.ACCEPTED
    assert reply_status(refused, duplicate=False) is OutcomeStatus.REJECTED
    assert reply_status(accepted, duplicate=True) is OutcomeStatus.DUPLICATE
    assert reply_status(refused, duplicate=True) is OutcomeStatus.DUPLICATE
