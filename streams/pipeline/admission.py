"""Admission: whether the worker may act on a message at all, decided before any rule or state.

Between the wire and the domain core stand four checks, cheapest first. Each failure is a
`Refused` with a reason code for `rejections`, never an exception, so bad input cannot stall a
partition:

1. size: a message over `max_bytes` is MALFORMED before a byte of it is decoded, so a hostile
   producer cannot make the worker parse, hold or store megabytes.
2. decode: bytes that are not exactly one of pokazy's records are MALFORMED.
3. key: an account's state lives on the partition of its key; an event keyed by anything but
   its own `account_id` would be judged against, and written into, another account's state
   (or none), so it is MALFORMED.
4. authority: only billing changes master data and closes periods. Registry events are obeyed
   only from the registry topic (billing's; bots can write only the readings topic), and a
   close request only from the readings topic with billing's signature. Anything else is
   UNAUTHORIZED, and nothing is changed.

Apart from them, `streams.adapters.signing.is_authentic_replay` decides whether a submission is
a replay by billing (`rejections replay`), which the rules judge again rather than treat as a
duplicate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from streams.adapters.avro import AvroCodec
from streams.adapters.decode import Inbound, PeriodCloseRequested, decode_inbound
from streams.domain.model import MeterInstalled, MeterRemoved, Reason
from streams.errors import DecodeError
from streams.settings import DEFAULT_MAX_MESSAGE_BYTES


class Source(enum.StrEnum):
    """The input topic a message came from, which decides what it may ask for."""

    READINGS = "readings"  # bots' submissions, and billing's signed close requests
    REGISTRY = "registry"  # billing's master data


@dataclass(frozen=True, slots=True)
class Refused:
    """A message the worker will not act on: one `rejections` row with this reason."""

    reason: Reason
    detail: str


def admit(
    payload: bytes,
    key: bytes | None,
    source: Source,
    *,
    control_key: bytes,
    codec: AvroCodec | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Inbound | Refused:
    """The domain event a message carries, if the worker may act on it; else why not."""
    if len(payload) > max_bytes:
        return Refused(
            Reason.MALFORMED, f"message of {len(payload)} bytes is over the {max_bytes}-byte limit"
        )
    try:
        inbound = decode_inbound(payload, codec)
    except DecodeError as exc:
        return Refused(Reason.MALFORMED, str(exc))
    if isinstance(inbound, PeriodCloseRequested):
        if source is not Source.READINGS or not inbound.signed_by(control_key):
            return Refused(Reason.UNAUTHORIZED, "a period close without a valid billing signature")
        return inbound
    if key != inbound.account_id.encode():
        return Refused(Reason.MALFORMED, "message key is not its account_id")
    if isinstance(inbound, MeterInstalled | MeterRemoved) and source is not Source.REGISTRY:
        return Refused(
            Reason.UNAUTHORIZED, "master data is obeyed only from billing's registry topic"
        )
    return inbound
