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

Apart from them, `is_authentic_replay` decides whether a submission is a replay by billing
(`rejections replay`), which the rules judge again rather than treat as a duplicate.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streams.codec import AvroCodec
from streams.decode import Inbound, PeriodCloseRequested, decode_inbound
from streams.domain.model import MeterInstalled, MeterRemoved, Reason
from streams.errors import DecodeError

# The largest message the worker decodes. The largest submission within the string limits of
# `streams.domain.model` is under 14 KB of Avro; registry events and close requests are far
# smaller. Kafka's own default (1 MB) would let one message cost a thousand times that.
DEFAULT_MAX_MESSAGE_BYTES = 16_384

# Not domain reasons: the worker failed on a message because of a defect of its own, or a
# message asked for what only billing may do (master data, a period close) without being
# billing's.
INTERNAL_ERROR = "INTERNAL_ERROR"
UNAUTHORIZED = "UNAUTHORIZED"

#: Every reason a `rejections` row can carry: the domain's codes and the worker's two.
REJECTION_REASONS = frozenset({*(str(r) for r in Reason), INTERNAL_ERROR, UNAUTHORIZED})

# The Kafka header `rejections replay` sets on what it re-publishes; its value is
# `replay_signature(payload)`. Anyone who can write the readings topic can set a header, so the
# name alone proves nothing: only billing's control key makes the value.
REPLAY_HEADER = "pokazy-replay"

# Kafka headers as the clients give them: (name, value) pairs, or a mapping in some drivers.
Headers = Iterable[tuple[str | bytes, bytes | None]] | Mapping[str | bytes, bytes | None] | None


class Source(enum.StrEnum):
    """The input topic a message came from, which decides what it may ask for."""

    READINGS = "readings"  # bots' submissions, and billing's signed close requests
    REGISTRY = "registry"  # billing's master data


@dataclass(frozen=True, slots=True)
class Refused:
    """A message the worker will not act on: one `rejections` row with this reason."""

    reason: str
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
            return Refused(UNAUTHORIZED, "a period close without a valid billing signature")
        return inbound
    if key != inbound.account_id.encode():
        return Refused(Reason.MALFORMED, "message key is not its account_id")
    if isinstance(inbound, MeterInstalled | MeterRemoved) and source is not Source.REGISTRY:
        return Refused(UNAUTHORIZED, "master data is obeyed only from billing's registry topic")
    return inbound


# The control key also signs period closes: a replay signature covers this prefix too, so no
# signature made for one purpose can ever verify for the other.
_REPLAY_DOMAIN = b"pokazy-replay\0"


def replay_signature(payload: bytes, control_key: bytes) -> bytes:
    """The replay header's value for `payload`: its hex HMAC-SHA256 with the control key."""
    return hmac.new(control_key, _REPLAY_DOMAIN + payload, hashlib.sha256).hexdigest().encode()


def is_authentic_replay(headers: Headers, payload: bytes, control_key: bytes) -> bool:
    """Whether `rejections replay` marked this very payload, with billing's control key.

    A replayed submission whose readings were all rejected is judged again; any other is a
    duplicate. A replay header that does not verify (forged, or copied onto another payload)
    is ignored: the message is judged as any other, so it cannot reopen a rejected event_id.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    values = [
        value
        for name, value in pairs
        if (name.decode(errors="replace") if isinstance(name, bytes) else name) == REPLAY_HEADER
    ]
    if not values:
        return False  # the usual case: no HMAC to compute
    expected = replay_signature(payload, control_key)
    return any(isinstance(v, bytes) and hmac.compare_digest(v, expected) for v in values)
