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
from typing import Any, TypeVar

from streams.adapters.avro import AvroCodec, default_codec
from streams.domain.calendar import Period
from streams.domain.model import (
    Meter,
    MeterInstalled,
    MeterRemoved,
    RegisterReading,
    Submission,
)
from streams.domain.validation import CANONICAL_UUID, registry_problem
from streams.domain.zones import DEFAULT_DSO, Zone
from streams.errors import DecodeError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RegistryEventT = TypeVar("RegistryEventT", MeterInstalled, MeterRemoved)

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
    meter = Meter(
        meter_id=datum["meter_id"],
        zones=tuple(Zone(z) for z in datum["zones"]),
        digits=datum["digits"],
        initial={Zone(k): int(v) for k, v in datum["initial"].items()},
        installed_on=_date(datum["installed_on"]),
        dso=datum.get("dso") or DEFAULT_DSO,
    )
    return _applicable(MeterInstalled(datum["account_id"], meter))


def _removed(datum: Mapping[str, Any]) -> MeterRemoved:
    final = {Zone(k): int(v) for k, v in datum["final"].items()}
    removed = MeterRemoved(
        datum["account_id"], datum["meter_id"], final, _date(datum["removed_on"])
    )
    return _applicable(removed)


def _applicable(event: RegistryEventT) -> RegistryEventT:
    problem = registry_problem(event)
    if problem is not None:
        raise ValueError(problem)
    return event


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
