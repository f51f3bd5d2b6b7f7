"""Short replies a bot can show as is, in Ukrainian and English."""

from __future__ import annotations

from datetime import date

from streams.domain.calendar import next_window_opens
from streams.domain.model import OutcomeStatus, ReadingOutcome, Reason, SubmissionOutcome
from streams.domain.zones import Zone

Text = tuple[str, str]  # (Ukrainian, English)

_ZONE_NAMES: dict[Zone | None, Text] = {
    Zone.TOTAL: ("загальний", "total"),
    Zone.DAY: ("день", "day"),
    Zone.NIGHT: ("ніч", "night"),
    Zone.PEAK: ("пік", "peak"),
    Zone.HALF_PEAK: ("напівпік", "half-peak"),
    None: ("показ", "reading"),
}

_MONTHS_UK_GENITIVE = (
    "січня", "лютого", "березня", "квітня", "травня", "червня",
    "липня", "серпня", "вересня", "жовтня", "листопада", "грудня",
)  # fmt: skip

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

_REASONS: dict[Reason, Text] = {
    Reason.MALFORMED: (
        "Не вдалося прочитати повідомлення. Спробуйте ще раз.",
        "The message could not be read. Please try again.",
    ),
    Reason.UNKNOWN_ACCOUNT: (
        "Особовий рахунок не знайдено. Перевірте номер.",
        "Account not found. Please check the number.",
    ),
    Reason.UNKNOWN_METER: (
        "Цей лічильник не обліковується на рахунку.",
        "This meter is not registered on the account.",
    ),
    Reason.BEFORE_INSTALLATION: (
        "Дата показу раніша за встановлення лічильника.",
        "The reading is dated before the meter was installed.",
    ),
    Reason.FUTURE_TIMESTAMP: (
        "Час показу в майбутньому. Перевірте годинник пристрою.",
        "The reading is dated in the future. Check your device clock.",
    ),
    Reason.UNKNOWN_REGISTER: (
        "Невідомий індекс на табло. Вкажіть зону: день чи ніч.",
        "Unknown display index. Please name the zone: day or night.",
    ),
    Reason.REGISTER_ZONE_MISMATCH: (
        "Індекс на табло не відповідає вказаній зоні.",
        "The display index does not match the zone given.",
    ),
    Reason.TOTAL_NOT_ACCEPTED: (
        "Лічильник багатозонний: передайте покази кожної зони окремо, не загальний.",
        "Multi-zone meter: send each zone separately, not the total.",
    ),
    Reason.ZONE_NOT_ON_METER: (
        "На вашому лічильнику немає такої зони.",
        "Your meter has no such zone.",
    ),
    Reason.INVALID_VALUE: (
        "Показ має бути цілим невідʼємним числом.",
        "The reading must be a whole, non-negative number.",
    ),
    Reason.TOO_MANY_DIGITS: (
        "Забагато цифр для вашого лічильника.",
        "Too many digits for your meter.",
    ),
    Reason.PERIOD_CLOSED: (
        "Розрахунковий період уже закрито.",
        "The billing period is already closed.",
    ),
    Reason.ZONES_SWAPPED: (
        "Схоже, покази «день» і «ніч» переплутано. Перевірте й надішліть ще раз.",
        "Day and night readings look swapped. Please check and resend.",
    ),
    Reason.BELOW_PREVIOUS: (
        "Показ менший за попередній.",
        "The reading is lower than the previous one.",
    ),
    Reason.IMPLAUSIBLY_HIGH: (
        "Показ завеликий. Перевірте, чи не зайва цифра.",
        "The reading is implausibly high. Check for an extra digit.",
    ),
}


def reading_message(reading: ReadingOutcome, today: date) -> Text:
    """What to tell the customer about one register reading.

    `today` is the reading's own local date where it has one, so a replayed reply is the same.
    """
    zone_uk, zone_en = _ZONE_NAMES[reading.zone]
    if reading.reason is not None:
        uk, en = _REASONS[reading.reason]
        if reading.reason in (Reason.BELOW_PREVIOUS, Reason.IMPLAUSIBLY_HIGH) and (
            reading.baseline is not None
        ):
            previous = _figure(reading.baseline)
            uk, en = f"{uk} Попередній показ: {previous}.", f"{en} The previous one: {previous}."
        if reading.reason is Reason.PERIOD_CLOSED:
            when_uk, when_en = _when(next_window_opens(today))
            uk, en = (
                f"{uk} Наступний період передачі відкриється {when_uk}.",
                f"{en} The next window opens on {when_en}.",
            )
        return f"{zone_uk}: {uk}", f"{zone_en}: {en}"
    value = _figure(reading.value or 0)
    used_uk = used_en = ""
    if reading.kwh is not None:
        used_uk = f", спожито {_figure(reading.kwh)} кВт·год від попереднього"
        used_en = f", {_figure(reading.kwh)} kWh since the previous one"
    if reading.kind == "off_window":
        when_uk, when_en = _when(next_window_opens(today))
        return (
            f"{zone_uk}: показ {value} прийнято поза періодом передачі{used_uk}; "
            f"наступний період відкриється {when_uk}.",
            f"{zone_en}: reading {value} accepted outside the submission window{used_en}; "
            f"the next window opens on {when_en}.",
        )
    return (
        f"{zone_uk}: показ {value} прийнято{used_uk}.",
        f"{zone_en}: reading {value} accepted{used_en}.",
    )


def _figure(value: int) -> str:
    """12 340: thousands apart with a space, as bills print them."""
    return f"{value:,}".replace(",", " ")


def _when(day: date) -> Text:
    return (
        f"{day.day} {_MONTHS_UK_GENITIVE[day.month - 1]}",
        f"{day.day} {_MONTHS_EN[day.month - 1]}",
    )


def reply_status(outcome: SubmissionOutcome, duplicate: bool) -> OutcomeStatus:
    """A submission's overall status as its reply says it: a duplicate is told it is one, with
    its first outcome's readings."""
    return OutcomeStatus.DUPLICATE if duplicate else outcome.status


def submission_message(outcome: SubmissionOutcome, status: OutcomeStatus) -> Text:
    """A one-line summary of a submission's outcome."""
    if status is OutcomeStatus.DUPLICATE:
        return ("Ці покази вже отримано.", "These readings were already received.")
    if status is OutcomeStatus.ACCEPTED:
        return ("Дякуємо! Покази прийнято.", "Thank you! Your readings were accepted.")
    if status is OutcomeStatus.PARTIALLY_ACCEPTED:
        return (
            "Частину показів прийнято; перевірте решту.",
            "Some readings were accepted; please check the rest.",
        )
    return ("Покази не прийнято.", "The readings were not accepted.")
