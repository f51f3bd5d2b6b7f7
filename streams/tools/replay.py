"""`pokazy rejections replay`: where each message kept as INTERNAL_ERROR goes back to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from streams.adapters.decode import decode_inbound
from streams.domain.calendar import Period, period_of
from streams.domain.model import MeterInstalled, MeterRemoved, Submission
from streams.errors import PokazyError


@dataclass(frozen=True, slots=True)
class Replayed:
    """A stored message on its way back: the topic it belongs to (without prefix), its key."""

    topic: str
    key: bytes
    payload: bytes


def replay_targets(
    payloads: list[bytes], period: Period | None = None
) -> tuple[list[Replayed], int]:
    """Where each INTERNAL_ERROR payload goes back to, and how many cannot go back.

    Submissions go to the readings topic and master data to the registry topic, each keyed by
    its account; with `period`, only submissions of that period (by Kyiv date) and no master
    data. Period closes and undecodable bytes are counted as skipped.
    """
    found: list[Replayed] = []
    skipped = 0
    for payload in payloads:
        try:
            inbound = decode_inbound(payload)
        except PokazyError:
            skipped += 1
            continue
        if isinstance(inbound, Submission):
            if period is None or _period_of(inbound.submitted_at) == period:
                found.append(Replayed("readings", inbound.account_id.encode(), payload))
        elif isinstance(inbound, MeterInstalled | MeterRemoved):
            if period is None:
                found.append(Replayed("registry", inbound.account_id.encode(), payload))
        else:
            skipped += 1
    return found, skipped


def _period_of(instant: datetime) -> Period | None:
    """The period of an instant; None outside the periods pokazy knows."""
    try:
        return period_of(instant)
    except (ValueError, OverflowError):
        return None
