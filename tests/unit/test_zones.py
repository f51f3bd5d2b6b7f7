"""Display-register labels -> zones per DSO, and the zone sets a meter may have (SPEC §2.1)."""

from __future__ import annotations

from datetime import date

import pytest

from streams.adapters.avro import default_codec
from streams.adapters.decode import decode_inbound
from streams.domain.zones import (
    DEFAULT_DSO,
    REGISTER_MAPS,
    SINGLE_ZONE,
    THREE_ZONE,
    TWO_ZONE,
    Zone,
    is_valid_zone_set,
    normalize_register,
    zone_for_register,
)
from streams.errors import DecodeError

# SPEC §2.1, default DSO dtek-kem.
SPEC_LABELS = {
    "1.8.1": Zone.NIGHT,
    "15.8.1": Zone.NIGHT,
    "T21": Zone.NIGHT,
    "1.8.2": Zone.DAY,
    "15.8.2": Zone.DAY,
    "T22": Zone.DAY,
    "1.8.0": Zone.TOTAL,
    "15.8.0": Zone.TOTAL,
}

TYPED = [
    # (as typed, zone)
    *SPEC_LABELS.items(),
    # The press release prints the display's trailing dot.
    *((f"{label}.", zone) for label, zone in SPEC_LABELS.items()),
    # Surrounding spaces from a chat message.
    (" 1.8.2 ", Zone.DAY),
    (" 1.8.1.\n", Zone.NIGHT),
    # Lowercase Latin t, Cyrillic capital Т (U+0422) and lowercase т (U+0442).
    ("t21", Zone.NIGHT),
    ("t22", Zone.DAY),
    ("\u042222", Zone.DAY),  # "Т22", Cyrillic capital TE
    ("\u042221", Zone.NIGHT),  # "Т21"
    ("\u044222", Zone.DAY),  # "т22"
    ("\u044221.", Zone.NIGHT),  # "т21."
]


@pytest.mark.parametrize(("label", "zone"), TYPED, ids=[repr(label) for label, _ in TYPED])
def test_dtek_kem_labels(label: str, zone: Zone) -> None:
    assert zone_for_register(label, DEFAULT_DSO) is zone


def test_the_default_map_is_exactly_the_spec() -> None:
    assert dict(REGISTER_MAPS[DEFAULT_DSO]) == SPEC_LABELS


@pytest.mark.parametrize(
    "label",
    ["1.8.3", "1.8", "18.2", "T23", "T2", "T 22", "2.8.1", "1.8.2.0", "", "   ", "day", "день"],
)
def test_unknown_labels(label: str) -> None:
    assert zone_for_register(label, DEFAULT_DSO) is None


def test_unknown_dso_falls_back_to_the_default_map() -> None:
    assert zone_for_register("1.8.2", "dtek-dnem") is Zone.DAY
    assert zone_for_register("T21", "no-such-dso") is Zone.NIGHT
    assert zone_for_register("1.8.9", "no-such-dso") is None


def test_a_dso_with_its_own_map_uses_it_and_only_it() -> None:
    # Other regions program day and night the other way round (SPEC §1).
    maps = {
        DEFAULT_DSO: REGISTER_MAPS[DEFAULT_DSO],
        "west": {"1.8.1": Zone.DAY, "1.8.2": Zone.NIGHT},
    }
    assert zone_for_register("1.8.1.", "west", maps) is Zone.DAY
    assert zone_for_register("1.8.2", "west", maps) is Zone.NIGHT
    # Not in west's map: no fallback label by label to Kyiv's.
    assert zone_for_register("T22", "west", maps) is None
    assert zone_for_register("1.8.1", DEFAULT_DSO, maps) is Zone.NIGHT


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("1.8.2.", "1.8.2"), (" t22 ", "T22"), ("\u0442" + "21", "T21"), ("15.8.0", "15.8.0")],
)
def test_normalize_register(typed: str, canonical: str) -> None:
    assert normalize_register(typed) == canonical


ZONE_SETS = [
    ("single", (Zone.TOTAL,), True),
    ("two", (Zone.DAY, Zone.NIGHT), True),
    ("two-reversed", (Zone.NIGHT, Zone.DAY), True),
    ("three", (Zone.PEAK, Zone.HALF_PEAK, Zone.NIGHT), True),
    ("three-shuffled", (Zone.NIGHT, Zone.PEAK, Zone.HALF_PEAK), True),
    ("empty", (), False),
    ("day-only", (Zone.DAY,), False),
    ("night-only", (Zone.NIGHT,), False),
    ("total-and-day", (Zone.TOTAL, Zone.DAY), False),
    ("two-plus-total", (Zone.DAY, Zone.NIGHT, Zone.TOTAL), False),
    ("day-twice", (Zone.DAY, Zone.DAY, Zone.NIGHT), False),
    ("total-twice", (Zone.TOTAL, Zone.TOTAL), False),
    ("peak-night", (Zone.PEAK, Zone.NIGHT), False),
    ("three-with-day", (Zone.PEAK, Zone.HALF_PEAK, Zone.DAY), False),
    ("all-five", tuple(Zone), False),
]


@pytest.mark.parametrize(
    ("zones", "valid"), [z[1:] for z in ZONE_SETS], ids=[z[0] for z in ZONE_SETS]
)
def test_is_valid_zone_set(zones: tuple[Zone, ...], valid: bool) -> None:
    assert is_valid_zone_set(zones) is valid


def test_named_zone_sets() -> None:
    assert SINGLE_ZONE == (Zone.TOTAL,)
    assert TWO_ZONE == (Zone.DAY, Zone.NIGHT)
    assert THREE_ZONE == (Zone.PEAK, Zone.HALF_PEAK, Zone.NIGHT)


@pytest.mark.parametrize(
    ("zones", "initial"),
    [
        (["day"], {"day": 1}),
        (["total", "day"], {"total": 1, "day": 1}),
        (["day", "night", "day"], {"day": 1, "night": 1}),
    ],
    ids=["day-only", "total-and-day", "day-twice"],
)
def test_meter_installed_with_an_invalid_zone_set_is_not_decoded(
    zones: list[str], initial: dict[str, int]
) -> None:
    codec = default_codec()
    payload = codec.encode(
        "pokazy.MeterInstalled",
        {
            "account_id": "0123456789",
            "meter_id": "GAMA-100200",
            "zones": zones,
            "digits": 6,
            "initial": initial,
            "installed_on": date(2021, 3, 15),
            "dso": DEFAULT_DSO,
        },
    )
    with pytest.raises(DecodeError):
        decode_inbound(payload, codec)
