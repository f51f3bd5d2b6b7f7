"""The producer SDK for bot front ends and billing: validate, encode, publish (kafka-python).

A bot needs Kafka's address, login and the topics' prefix (`KafkaSettings`, from
`POKAZY_KAFKA_*` and `POKAZY_TOPIC_PREFIX`), and nothing of the worker:

    with PokazyProducer(KafkaSettings.from_env()) as producer:
        event_id = producer.submit({"account_id": "0123456789", "channel": "viber", ...})

Billing publishes master data and signed close requests and replays with `BillingProducer`,
which also needs the control key (`BillingSettings`, `POKAZY_CONTROL_KEY`); bots do not have it.

Every event is validated against the schema and the structural rules before it is sent
(`InvalidEvent` names the field), keyed by account, and sent with `acks=all` and idempotence:
`submit` returns once the broker has it, or raises; nothing is dropped in silence.
`encode_submission` and `encode_registry` are the validation and encoding alone, no broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.adapters.avro import AvroCodec, default_codec
from streams.adapters.decode import (
    METER_INSTALLED,
    METER_REMOVED,
    PERIOD_CLOSE_REQUESTED,
    READING_SUBMITTED,
    PeriodCloseRequested,
    submission_from_datum,
)
from streams.adapters.kafka_security import kafka_python_client
from streams.adapters.signing import REPLAY_HEADER, replay_signature
from streams.domain.calendar import Period
from streams.domain.model import Rules
from streams.domain.validation import malformation
from streams.errors import BrokerUnavailable, InvalidEvent
from streams.settings import BillingSettings, KafkaSettings

_REGISTRY_TYPES = {"MeterInstalled": METER_INSTALLED, "MeterRemoved": METER_REMOVED}


def encode_submission(
    submission: Mapping[str, Any], codec: AvroCodec | None = None
) -> tuple[str, str, bytes]:
    """Validate a submission's JSON form; returns (event_id, account_id, Avro bytes).

    A missing `event_id` gets a new UUID: the bot should keep it to retry idempotently.
    """
    codec = codec or default_codec()
    obj = dict(submission)
    obj.setdefault("event_id", str(uuid.uuid4()))
    datum = codec.from_json(READING_SUBMITTED, obj)
    payload = codec.encode(READING_SUBMITTED, datum)
    problem = malformation(submission_from_datum(datum), Rules())
    if problem is not None:
        raise InvalidEvent(problem)
    return datum["event_id"], datum["account_id"], payload


def encode_registry(event: Mapping[str, Any], codec: AvroCodec | None = None) -> tuple[str, bytes]:
    """Validate a MeterInstalled or MeterRemoved event's JSON form (with `type`); returns
    (account_id, Avro bytes)."""
    codec = codec or default_codec()
    name = _REGISTRY_TYPES.get(str(event.get("type")))
    if name is None:
        raise InvalidEvent("must be MeterInstalled or MeterRemoved", field="type")
    datum = codec.from_json(name, {k: v for k, v in event.items() if k != "type"})
    return datum["account_id"], codec.encode(name, datum)


class PokazyProducer:
    """Publishes a bot's submissions."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        codec: AvroCodec | None = None,
        send_timeout: float = 30.0,
        **producer_options: Any,
    ) -> None:
        self.settings = settings
        self.codec = codec or default_codec()
        self.send_timeout = send_timeout
        self._in_flight: list[Any] = []
        # Raises ConfigError at once for a refused login, BrokerUnavailable if unreachable.
        self._producer = kafka_python_client(
            KafkaProducer,
            settings,
            client_id="pokazy-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type="lz4",
            **producer_options,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def encode_submission(self, submission: Mapping[str, Any]) -> tuple[str, str, bytes]:
        """Validate a submission's JSON form; returns (event_id, account_id, Avro bytes)."""
        return encode_submission(submission, self.codec)

    def submit(self, submission: Mapping[str, Any], *, wait: bool = True) -> str:
        """Publish a submission (its JSON form, SPEC §3.1); returns its event_id.

        With `wait=False` the send is only queued: call `flush()` to learn whether it landed.
        """
        event_id, account_id, payload = self.encode_submission(submission)
        self._send(self.settings.topic("readings"), account_id, payload, wait=wait)
        return event_id

    def _send(
        self,
        topic: str,
        account_id: str,
        payload: bytes,
        *,
        wait: bool,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        try:
            future = self._producer.send(
                topic, key=account_id.encode(), value=payload, headers=headers
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot send to {topic}: {exc}") from exc
        if wait:
            self._result(future)
        else:
            self._track(future)

    def _track(self, future: Any) -> None:
        self._in_flight.append(future)
        if len(self._in_flight) >= 10_000:
            self.flush()

    def _result(self, future: Any) -> None:
        try:
            future.get(timeout=self.send_timeout)
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge a send: {exc}") from exc

    def flush(self) -> None:
        """Wait for every queued send; raises `BrokerUnavailable` if any failed."""
        self._producer.flush(timeout=self.send_timeout)
        in_flight, self._in_flight = self._in_flight, []
        for future in in_flight:
            self._result(future)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=self.send_timeout)


class BillingProducer(PokazyProducer):
    """Publishes billing's master data, period closes and replays, signed with the control key
    (and submissions, as a bot's producer does)."""

    settings: BillingSettings

    def __init__(self, settings: BillingSettings, **options: Any) -> None:
        super().__init__(settings, **options)

    def publish_registry(self, event: Mapping[str, Any], *, wait: bool = True) -> None:
        """Publish a MeterInstalled or MeterRemoved event (its JSON form with `type`)."""
        account_id, payload = encode_registry(event, self.codec)
        self._send(self.settings.topic("registry"), account_id, payload, wait=wait)

    def request_period_close(self, period: Period, requested_by: str) -> int:
        """Ask every partition's worker to close `period`; returns the number of partitions.

        The request goes to every partition of the readings topic, so each account's close is
        in order with its readings; it is signed with the control key, which bots do not have,
        and workers obey only signed requests.
        """
        topic = self.settings.topic("readings")
        now = datetime.now(UTC)
        # Avro keeps milliseconds: sign exactly what the worker will read back.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        request = PeriodCloseRequested(period, now, requested_by)
        signature = request.sign(self.settings.control_key.get_secret_value().encode())
        payload = self.codec.encode(
            PERIOD_CLOSE_REQUESTED,
            {
                "period": str(period),
                "requested_at": request.requested_at,
                "requested_by": requested_by,
                "signature": signature,
            },
        )
        partitions = sorted(self._producer.partitions_for(topic))
        for partition in partitions:
            self._track(self._producer.send(topic, value=payload, partition=partition))
        self.flush()
        return len(partitions)

    def republish(self, account_id: str, payload: bytes, *, topic: str = "readings") -> None:
        """Send a stored message again, byte for byte, as a signed replay; queued only.

        For `rejections replay`: the payload is what the worker once received, so it is not
        validated again here (the worker judges it, and may reject it again). The replay header
        carries the payload's HMAC with the control key, which the worker checks before it
        judges a rejected submission again. `topic` is the unprefixed input topic it came from.
        """
        signature = replay_signature(payload, self.settings.control_key.get_secret_value().encode())
        self._send(
            self.settings.topic(topic),
            account_id,
            payload,
            wait=False,
            headers=[(REPLAY_HEADER, signature)],
        )
