"""Decode: bytes from Kafka to the domain's events (the first step of the flow).

Anything that is not one of pokazy's records raises `DecodeError`, which the worker turns into a
MALFORMED rejection that keeps the raw payload.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streams.adapters.avro import AvroCodec, default_codec
from streams.domain.calendar import Period
from streams.domain.model import (
    MAX_ID_LENGTH,
    Meter,
    MeterInstalled,
    MeterRemoved,
    RegisterReading,
    Submission,
)
from streams.domain.validation import CANONICAL_UUID
from streams.domain.zones import DEFAULT_DSO, Zone, is_valid_zone_set
from streams.errors import DecodeError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

READING_SUBMITTED = "pokazy.ReadingSubmitted"
METER_INSTALLED = "pokazy.MeterInstalled"
METER_REMOVED = "pokazy.MeterRemoved"
PERIOD_CLOSE_REQUESTED = "pokazy.PeriodCloseRequested"
SUBMISSION_OUTCOME = "pokazy.SubmissionOutcome"


@dataclass(frozen=True, slots=True)
class PeriodCloseRequested:
    """Billing's command to close a period, delivered to every partition of the readings."""

    period: Period
    requested_at: datetime
    requested_by: str
    signature: str = ""

    def signed_text(self) -> bytes:
        millis = (self.requested_at - _EPOCH) // timedelta(milliseconds=1)
        return f"{self.period}|{millis}|{self.requested_by}".encode()

    def sign(self, key: bytes) -> str:
        """The hex HMAC-SHA256 that proves billing sent the request."""
        return hmac.new(key, self.signed_text(), hashlib.sha256).hexdigest()

    def signed_by(self, key: bytes) -> bool:
        return hmac.compare_digest(self.sign(key), self.signature)


Inbound = Submission | MeterInstalled | MeterRemoved | PeriodCloseRequested


def decode_inbound(payload: bytes, codec: AvroCodec | None = None) -> Inbound:
    """The domain event a message carries; `DecodeError` for anything else."""
    name, datum = (codec or default_codec()).decode(payload)
    try:
        if name == READING_SUBMITTED:
            return submission_from_datum(datum)
        if name == METER_INSTALLED:
            return _installed(datum)
        if name == METER_REMOVED:
            return _removed(datum)
        if name == PERIOD_CLOSE_REQUESTED:
            return PeriodCloseRequested(
                Period.parse(datum["period"]),
                _utc(datum["requested_at"]),
                datum["requested_by"],
                datum.get("signature") or "",
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise DecodeError(f"{name} carries an impossible value: {exc}") from exc
    raise DecodeError(f"{name} is not accepted on pokazy's input topics")


def submission_from_datum(datum: Mapping[str, Any]) -> Submission:
    """A `Submission` from a decoded ReadingSubmitted datum."""
    return Submission(
        event_id=_canonical_uuid(datum["event_id"]),
        account_id=datum["account_id"],
        meter_id=datum.get("meter_id"),
        channel=datum["channel"],
        sender_id=datum["sender_id"],
        submitted_at=_utc(datum["submitted_at"]),
        readings=tuple(
            RegisterReading(
                zone=Zone(r["zone"]) if r.get("zone") is not None else None,
                register=r.get("register"),
                value=r["value"],
                raw_text=r.get("raw_text"),
            )
            for r in datum["readings"]
        ),
    )


def _installed(datum: Mapping[str, Any]) -> MeterInstalled:
    zones = tuple(Zone(z) for z in datum["zones"])
    initial = {Zone(k): int(v) for k, v in datum["initial"].items()}
    if not is_valid_zone_set(zones):
        raise ValueError(f"{datum['zones']} is not a zone set pokazy bills")
    if set(initial) != set(zones):
        raise ValueError("initial readings must name exactly the meter's zones")
    if not 1 <= datum["digits"] <= 12:
        raise ValueError("digits must be 1-12")
    if any(not 0 <= v < 10 ** datum["digits"] for v in initial.values()):
        raise ValueError(f"initial readings must be 0 <= value < 10**{datum['digits']}")
    meter = Meter(
        meter_id=_id(datum["meter_id"], "meter_id"),
        zones=zones,
        digits=datum["digits"],
        initial=initial,
        installed_on=_date(datum["installed_on"]),
        dso=_id(datum.get("dso") or DEFAULT_DSO, "dso"),
    )
    return MeterInstalled(_id(datum["account_id"], "account_id"), meter)


def _removed(datum: Mapping[str, Any]) -> MeterRemoved:
    final = {Zone(k): int(v) for k, v in datum["final"].items()}
    return MeterRemoved(
        _id(datum["account_id"], "account_id"),
        _id(datum["meter_id"], "meter_id"),
        final,
        _date(datum["removed_on"]),
    )


def _id(value: str, name: str) -> str:
    """An id of master data, held to the limit submissions are: it keys state and rows."""
    if not value.strip() or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} must be 1-{MAX_ID_LENGTH} characters")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _date(value: date) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError(f"{value!r} is not a date")
    return value


def _canonical_uuid(text: str) -> str:
    """The canonical spelling of a UUID, so `{ABC…}` and `abc…` are one idempotency key."""
    if CANONICAL_UUID.fullmatch(text):
        return text  # as bots send it, and as `str(uuid.UUID(text))` would spell it
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text  # judged MALFORMED by the rules
