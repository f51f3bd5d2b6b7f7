"""Replies the worker builds satisfy the SubmissionOutcome schema (the worker skips validating).

The worker encodes replies with `trusted=True`, so this test is what holds them to the schema:
every outcome of a sample month (accepted, rejected, duplicates, malformed) makes a record that
pokazy's strict validator accepts and that decodes back to itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streams.adapters.avro import default_codec
from streams.adapters.decode import SUBMISSION_OUTCOME, decode_inbound
from streams.domain.account import AccountState
from streams.domain.calendar import Period
from streams.domain.model import MeterInstalled, MeterRemoved, Rules, Submission
from streams.domain.validation import apply_registry_event, apply_submission
from streams.pipeline.worker import reply_datum
from streams.sdk.producer import (
    encode_registry,
    encode_submission,
)
from tests.builders import simulated_month

NOW = datetime(2023, 7, 1, 9, 30, tzinfo=UTC)


def _replies() -> list[dict[str, object]]:
    codec = default_codec()
    month = simulated_month(300, Period(2023, 5), seed=3)
    states: dict[str, AccountState | None] = {}
    for event in month.registry:
        inbound = decode_inbound(encode_registry(event, codec)[1], codec)
        assert isinstance(inbound, MeterInstalled | MeterRemoved)
        states[inbound.account_id] = apply_registry_event(states.get(inbound.account_id), inbound)
    records = []
    for submission in [*month.submissions, *month.submissions[:50]]:  # and some duplicates
        inbound = decode_inbound(encode_submission(submission, codec)[2], codec)
        assert isinstance(inbound, Submission)
        state = states.get(inbound.account_id)
        new_state, outcome, duplicate = apply_submission(state, inbound, now=NOW, rules=Rules())
        states[inbound.account_id] = new_state
        records.append(reply_datum(outcome, duplicate, NOW))
    return records


REPLIES = _replies()


def test_the_sample_covers_every_status() -> None:
    assert {r["status"] for r in REPLIES} >= {"accepted", "rejected", "duplicate"}


def test_every_reply_fits_the_schema_and_round_trips() -> None:
    codec = default_codec()
    for record in REPLIES:
        codec.validate(SUBMISSION_OUTCOME, record)
        name, decoded = codec.decode(codec.encode(SUBMISSION_OUTCOME, record, trusted=True))
        assert (name, decoded) == (SUBMISSION_OUTCOME, record), record["event_id"]
