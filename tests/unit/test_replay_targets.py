"""Where `rejections replay` sends messages kept as INTERNAL_ERROR."""

from __future__ import annotations

from streams.adapters.avro import default_codec
from streams.adapters.decode import METER_INSTALLED, PERIOD_CLOSE_REQUESTED
from streams.domain.calendar import Period
from streams.sdk.producer import READING_SUBMITTED
from streams.tools.replay import Replayed, replay_targets

CODEC = default_codec()


def _submission(account: str, at: str) -> bytes:
    datum = CODEC.from_json(
        READING_SUBMITTED,
        {
            "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "account_id": account,
            "channel": "viber",
            "sender_id": "u-1",
            "submitted_at": at,
            "readings": [{"zone": "total", "value": 100}],
        },
    )
    return CODEC.encode(READING_SUBMITTED, datum)


INSTALLED = CODEC.encode(
    METER_INSTALLED,
    CODEC.from_json(
        METER_INSTALLED,
        {
            "account_id": "0000000002",
            "meter_id": "M-2",
            "zones": ["total"],
            "digits": 6,
            "initial": {"total": 0},
            "installed_on": "2021-03-15",
            "dso": "dtek-kem",
        },
    ),
)
CLOSE = CODEC.encode(
    PERIOD_CLOSE_REQUESTED,
    CODEC.from_json(
        PERIOD_CLOSE_REQUESTED,
        {"period": "2023-05", "requested_at": "2023-06-05T00:00:00Z", "requested_by": "billing"},
    ),
)


def test_submissions_go_to_readings_and_master_data_to_the_registry() -> None:
    may = _submission("0000000001", "2023-05-30T09:00:00Z")
    found, skipped = replay_targets([may, INSTALLED, CLOSE, b"\x00garbage"])
    assert found == [
        Replayed("readings", b"0000000001", may),
        Replayed("registry", b"0000000002", INSTALLED),
    ]
    assert skipped == 2  # the close (re-run close-period) and the bytes that never decoded


def test_a_period_keeps_only_that_periods_submissions() -> None:
    may = _submission("0000000001", "2023-05-30T09:00:00Z")
    june = _submission("0000000001", "2023-06-10T09:00:00Z")
    found, _ = replay_targets([may, june, INSTALLED], Period(2023, 5))
    assert [r.payload for r in found] == [may]
