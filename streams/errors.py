"""The error hierarchy: retryable infrastructure failures versus permanent ones.

A worker retries a `RetryableError` (with backoff, without committing past it). A
`PermanentError` of a message (`InvalidEvent`, `DecodeError`) becomes a rejection with a reason
code, and the partition goes on; one of the rows it writes (ClickHouse refusing them for good,
`streams.adapters.clickhouse.InsertRefused`) stops the worker with its batch unacknowledged:
retrying cannot succeed, and acknowledging would lose the rows.
"""

from __future__ import annotations


class PokazyError(Exception):
    """Base of every error pokazy raises on purpose."""


class ConfigError(PokazyError):
    """The settings are invalid; the message lists every problem found."""


class PermanentError(PokazyError):
    """Bad input: retrying the same input can never succeed."""


class InvalidEvent(PermanentError):
    """An event does not satisfy its schema (raised before sending); names the field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class DecodeError(PermanentError):
    """Bytes from the wire cannot be read as one of pokazy's Avro records."""


class RetryableError(PokazyError):
    """An infrastructure dependency is unavailable for now; retry later."""


class BrokerUnavailable(RetryableError):
    """Kafka cannot be reached or did not acknowledge in time."""


class ClickHouseUnavailable(RetryableError):
    """ClickHouse cannot be reached or refused an insert for a transient reason."""
