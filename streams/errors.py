"""The error hierarchy: retryable infrastructure failures versus permanent bad input.

A worker retries a `RetryableError` (with backoff, without committing past it) and turns a
`PermanentError` into a rejection; nothing else should reach an agent's loop.
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
