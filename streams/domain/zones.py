"""Meter zones and the display-register labels that name them, per distribution company (DSO).

Labels are data: Kyiv programs `1.8.2` as day and `1.8.1` as night, other regions the other way
round, so a map belongs to a DSO and new ones are added here, not in code paths.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class Zone(enum.StrEnum):
    TOTAL = "total"
    DAY = "day"
    NIGHT = "night"
    PEAK = "peak"
    HALF_PEAK = "half_peak"


SINGLE_ZONE = (Zone.TOTAL,)
TWO_ZONE = (Zone.DAY, Zone.NIGHT)
THREE_ZONE = (Zone.PEAK, Zone.HALF_PEAK, Zone.NIGHT)
ZONE_SETS: tuple[tuple[Zone, ...], ...] = (SINGLE_ZONE, TWO_ZONE, THREE_ZONE)

DEFAULT_DSO = "dtek-kem"

# DTEK Kyiv Electric Networks (press release of 29.05.2023): day = 1.8.2, 15.8.2 or T22;
# night = 1.8.1, 15.8.1 or T21. Three-zone labels are not standardised: such readings name the zone.
REGISTER_MAPS: Mapping[str, Mapping[str, Zone]] = MappingProxyType(
    {
        DEFAULT_DSO: MappingProxyType(
            {
                "1.8.0": Zone.TOTAL,
                "15.8.0": Zone.TOTAL,
                "1.8.1": Zone.NIGHT,
                "15.8.1": Zone.NIGHT,
                "T21": Zone.NIGHT,
                "1.8.2": Zone.DAY,
                "15.8.2": Zone.DAY,
                "T22": Zone.DAY,
            }
        ),
    }
)

# Customers type what the display shows: "1.8.2." with the display's trailing dot, "t22", or a
# Cyrillic "\u0422" (TE) in "T22" that looks the same as the Latin T.
_LOOKALIKES = str.maketrans({"\u0422": "T", "\u0442": "T"})


def normalize_register(label: str) -> str:
    """The canonical spelling of a display label as typed by a customer."""
    return label.strip().translate(_LOOKALIKES).upper().rstrip(".")


def zone_for_register(
    label: str, dso: str, maps: Mapping[str, Mapping[str, Zone]] = REGISTER_MAPS
) -> Zone | None:
    """The zone a label names for a DSO (falling back to the default DSO's map), or None."""
    table = maps.get(dso) or maps[DEFAULT_DSO]
    return table.get(normalize_register(label))


def is_valid_zone_set(zones: tuple[Zone, ...]) -> bool:
    """Whether `zones` is one of the meter zone sets pokazy bills (order-insensitive)."""
    return any(set(zones) == set(known) and len(zones) == len(known) for known in ZONE_SETS)
