"""Billing's replay signature: what proves `rejections replay` re-published a message.

A period close request carries its own signature with the same control key
(`streams.adapters.decode.PeriodCloseRequested`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

# The Kafka header `rejections replay` sets on what it re-publishes; its value is
# `replay_signature(payload)`. Anyone who can write the readings topic can set a header, so the
# name alone proves nothing: only billing's control key makes the value.
REPLAY_HEADER = "pokazy-replay"

# Kafka headers as the clients give them: (name, value) pairs, or a mapping in some drivers.
Headers = Iterable[tuple[str | bytes, bytes | None]] | Mapping[str | bytes, bytes | None] | None


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
