"""The domain's vocabulary: meters, submissions, reason codes and outcomes.

Frozen values only; nothing here knows about Kafka, faust or ClickHouse.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from streams.domain.calendar import Period, ReadingKind
from streams.domain.zones import DEFAULT_DSO, REGISTER_MAPS, Zone


class Reason(enum.StrEnum):
    """Every reason code a `rejections` row carries: why a register reading (or a whole
    submission) was rejected, in the order the rules of SPEC §2.3 apply, then the two given to
    a message as a whole (`MESSAGE_REASONS`)."""

    MALFORMED = "MALFORMED"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_METER = "UNKNOWN_METER"
    BEFORE_INSTALLATION = "BEFORE_INSTALLATION"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    UNKNOWN_REGISTER = "UNKNOWN_REGISTER"
    REGISTER_ZONE_MISMATCH = "REGISTER_ZONE_MISMATCH"
    TOTAL_NOT_ACCEPTED = "TOTAL_NOT_ACCEPTED"
    ZONE_NOT_ON_METER = "ZONE_NOT_ON_METER"
    INVALID_VALUE = "INVALID_VALUE"
    TOO_MANY_DIGITS = "TOO_MANY_DIGITS"
    PERIOD_CLOSED = "PERIOD_CLOSED"
    ZONES_SWAPPED = "ZONES_SWAPPED"
    BELOW_PREVIOUS = "BELOW_PREVIOUS"
    IMPLAUSIBLY_HIGH = "IMPLAUSIBLY_HIGH"
    # Master data, or a period close, not sent by billing: nothing is changed.
    UNAUTHORIZED = "UNAUTHORIZED"
    # The worker failed on the message because of a defect of its own: it is kept with its
    # payload, to be replayed once the defect is fixed.
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: The reasons no rule gives a reading: a message refused, or kept, whole.
MESSAGE_REASONS = frozenset({Reason.UNAUTHORIZED, Reason.INTERNAL_ERROR})


class Channel(enum.StrEnum):
    VIBER = "viber"
    TELEGRAM = "telegram"
    WEB = "web"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Meter:
    """An installed meter: its zones, display digits and the readings it was installed with."""

    meter_id: str
    zones: tuple[Zone, ...]
    digits: int
    initial: Mapping[Zone, int]
    installed_on: date
    dso: str = DEFAULT_DSO
    removed_on: date | None = None
    final: Mapping[Zone, int] | None = None

    def active_on(self, day: date) -> bool:
        """Installed by `day` and not yet removed (on an exchange day the new meter is active)."""
        return self.installed_on <= day and (self.removed_on is None or day < self.removed_on)

    @property
    def modulus(self) -> int:
        return int(10**self.digits)


@dataclass(frozen=True, slots=True)
class MeterInstalled:
    account_id: str
    meter: Meter


@dataclass(frozen=True, slots=True)
class MeterRemoved:
    account_id: str
    meter_id: str
    final: Mapping[Zone, int]
    removed_on: date


RegistryEvent = MeterInstalled | MeterRemoved


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """One register as the customer typed it: a zone, a display label, or both."""

    zone: Zone | None
    register: str | None
    value: int
    raw_text: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """One message from a bot: 1-3 register readings of one account at one instant."""

    event_id: str
    account_id: str
    meter_id: str | None
    channel: str
    sender_id: str
    submitted_at: datetime
    readings: tuple[RegisterReading, ...]


@dataclass(frozen=True, slots=True)
class ReadingOutcome:
    """The verdict on one register reading; `position` is -1 for a whole-submission rejection."""

    position: int
    zone: Zone | None
    register: str | None
    value: int | None
    reason: Reason | None = None
    detail: str = ""
    meter_id: str | None = None
    kind: ReadingKind | None = None
    period: Period | None = None
    local_date: date | None = None
    kwh: int | None = None
    flags: tuple[str, ...] = ()
    # The previous reading the customer's message names, as the display shows it: B; for
    # BELOW_PREVIOUS the floor the value fell below (F, or an earlier open period's reading L);
    # for IMPLAUSIBLY_HIGH the later of B and L.
    baseline: int | None = None
    unwrapped: int | None = None  # the accepted value with rollovers added

    @property
    def accepted(self) -> bool:
        return self.reason is None


class OutcomeStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class SubmissionOutcome:
    """Every reading's verdict for one submission, as first decided."""

    event_id: str
    account_id: str
    readings: tuple[ReadingOutcome, ...]
    # The judged submission's content digest (`validation.submission_fingerprint`): tells a
    # redelivery of the same submission from another one that reuses its event_id. Empty in
    # outcomes remembered before it was kept.
    fingerprint: str = ""

    @property
    def status(self) -> OutcomeStatus:
        accepted = sum(r.accepted for r in self.readings)
        if accepted == len(self.readings):
            return OutcomeStatus.ACCEPTED
        return OutcomeStatus.PARTIALLY_ACCEPTED if accepted else OutcomeStatus.REJECTED

    @property
    def rejected(self) -> tuple[ReadingOutcome, ...]:
        return tuple(r for r in self.readings if not r.accepted)

    @property
    def accepted(self) -> tuple[ReadingOutcome, ...]:
        return tuple(r for r in self.readings if r.accepted)


# Size limits of what a submission may carry (README "Limits"). Ids are account numbers, chat
# ids, meter serials and UUIDs; register labels are what a meter display shows ("15.8.2");
# raw_text is the customer's message a reading was read from. Beyond them a submission is
# MALFORMED: the longest strings are echoed into details, state and rows, so they are refused
# before any rule looks at them. Within these limits a whole submission is under 14 KB of Avro.
MAX_ID_LENGTH = 64
MAX_REGISTER_LENGTH = 16
MAX_RAW_TEXT_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class Rules:
    """The configurable constants of the rules (defaults per SPEC §2 and the limits above)."""

    register_maps: Mapping[str, Mapping[str, Zone]] = field(default_factory=lambda: REGISTER_MAPS)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_readings: int = 3
    remembered_submissions: int = 16
    max_id_length: int = MAX_ID_LENGTH
    max_register_length: int = MAX_REGISTER_LENGTH
    max_raw_text_length: int = MAX_RAW_TEXT_LENGTH
