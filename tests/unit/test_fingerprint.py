"""A submission's fingerprint is kept in state: its text must be what `json.dumps` writes."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streams.adapters.decode import _canonical_uuid
from streams.domain.model import RegisterReading, Submission
from streams.domain.validation import is_uuid, submission_fingerprint
from streams.domain.zones import Zone


def reference(submission: Submission) -> str:
    """The definition outcomes remembered by earlier releases were fingerprinted with."""
    content = [
        submission.event_id,
        submission.account_id,
        submission.meter_id,
        submission.channel,
        submission.sender_id,
        submission.submitted_at.isoformat(),
        [[r.zone, r.register, r.value, r.raw_text] for r in submission.readings],
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


_TEXT = st.text(max_size=20)  # every code point: escapes, non-ASCII, surrogates
_VALUE = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.text())
_READING = st.builds(
    RegisterReading,
    zone=st.none() | st.sampled_from(Zone),
    register=st.none() | _TEXT,
    value=_VALUE,
    raw_text=st.none() | _TEXT,
)
_SUBMISSION = st.builds(
    Submission,
    event_id=_TEXT,
    account_id=_TEXT,
    meter_id=st.none() | _TEXT,
    channel=_TEXT,
    sender_id=_TEXT,
    submitted_at=st.datetimes(timezones=st.just(UTC)),
    readings=st.lists(_READING, max_size=4).map(tuple),
)


@given(_SUBMISSION)
def test_the_fingerprint_is_the_digest_of_what_json_dumps_writes(submission: Submission) -> None:
    assert submission_fingerprint(submission) == reference(submission)


def test_a_known_submission_keeps_its_fingerprint() -> None:
    submission = Submission(
        "0b6f3c2e-6a0c-4c4a-9d0e-2d7f6f1f0a11", "0000000001", None, "viber", "Олена",
        datetime(2023, 5, 30, 9, 15, tzinfo=UTC) + timedelta(milliseconds=5),
        (RegisterReading(Zone.DAY, None, 1200), RegisterReading(None, "1.8.2", 800, "800 ніч")),
    )  # fmt: skip
    # What the release before this test computed for it.
    assert submission_fingerprint(submission) == (
        "459b71412d70ce095132fdca1766d9e632c6bafdcd6aa5bdae6ae97acb22f61c"
    )


@given(st.uuids() | st.text(max_size=40))
def test_uuid_spellings_are_judged_and_canonicalised_as_uuid_does(value: uuid.UUID | str) -> None:
    spellings = (
        [str(value), str(value).upper(), value.hex, f"{{{value}}}", value.urn]
        if isinstance(value, uuid.UUID)
        else [value]
    )
    for text in spellings:
        try:
            canonical: str | None = str(uuid.UUID(text))
        except ValueError:
            canonical = None
        assert is_uuid(text) is (canonical is not None)
        assert _canonical_uuid(text) == (canonical or text)
