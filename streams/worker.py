"""The faust worker: decode → validate (domain core) → state (table) → sink (ClickHouse) + reply.

One agent reads the readings and registry topics together (both keyed by account, with equal
partition counts), one stream per partition (`concurrency=1`), so an account's events are judged
in the order they were published, and its state lives in one table entry on the same partition.

The delivery order, per message, and what a crash at each step costs:

1. decode and judge (pure, in memory) — crash: the message is read again.
2. write the account's new state to the table (its changelog send is buffered) and send the
   reply — crash: the changelog may be ahead of the committed offset; on replay the account
   remembers the submission and re-emits the *same* outcome and rows, so nothing is judged twice.
3. add the rows to the sink buffer; the message stays unacknowledged.
4. the sink flushes (batch full, or every `sink_flush_interval`), retrying until ClickHouse has
   the rows; then the buffered messages are acknowledged, in order.
5. faust commits acknowledged offsets every `commit_interval`, after flushing its producer
   (changelog and replies). A crash before the commit costs a replay, never a loss.

Nothing raised while handling one message may escape the agent: faust would ack and drop it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from streams.clickhouse import ClickHouse, QueryRejected
from streams.codec import AvroCodec, default_codec
from streams.decode import (
    SUBMISSION_OUTCOME,
    Inbound,
    PeriodCloseRequested,
    decode_inbound,
)
from streams.domain.messages import reading_message, submission_message
from streams.domain.model import (
    AccountState,
    MeterInstalled,
    MeterRemoved,
    OutcomeStatus,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.validation import apply_registry_event, apply_submission
from streams.errors import DecodeError, PokazyError
from streams.settings import Settings
from streams.sink import (
    ClickHouseSink,
    reading_rows,
    rejection_rows,
    sender_hash,
    undecodable_row,
)
from streams.state import decode_state, encode_state

log = logging.getLogger(__name__)

# Not a domain reason: the worker failed on a message because of a defect of its own.
INTERNAL_ERROR = "INTERNAL_ERROR"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pipeline:
    """What the agent does with each message; holds no business rule of its own."""

    settings: Settings
    sink: ClickHouseSink
    accounts: Any  # the faust table: account id (bytes) -> encoded AccountState
    replies: Any  # the faust replies topic
    codec: AvroCodec = field(default_factory=default_codec)
    rules: Rules = field(default_factory=Rules)
    clock: Clock = utc_now
    _pending: list[tuple[Any, Any]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _oldest_pending: float | None = None

    async def handle(self, stream: Any, event: Any) -> None:
        """Process one message; never raises (an escaping error would drop the message)."""
        async with self._lock:
            try:
                await self._process(event.key, event.value)
            except Exception as exc:
                # A defect, not bad input (bad input is a rejection with a reason code). The
                # message is kept in `rejections` as INTERNAL_ERROR with its payload, to be
                # replayed once fixed, and the stream goes on rather than stall every account
                # on the partition.
                log.exception("unexpected error on %s[%s]@%s", *_where(event))
                self.sink.add(
                    rejections=[
                        undecodable_row(
                            event.value or b"",
                            f"internal error: {exc!r}",
                            self.clock(),
                            reason=INTERNAL_ERROR,
                        )
                    ]
                )
            self._pending.append((stream, event))
            if self._oldest_pending is None:
                self._oldest_pending = asyncio.get_running_loop().time()
            if self.sink.pending_rows >= self.settings.sink_batch_rows:
                await self._flush_and_ack()

    async def flush_if_due(self) -> None:
        """Called by a timer: flush a batch that has waited `sink_flush_interval`."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if (
                self._pending
                and self._oldest_pending is not None
                and (loop.time() - self._oldest_pending >= self.settings.sink_flush_interval)
            ):
                await self._flush_and_ack()

    async def _flush_and_ack(self) -> None:
        await self.sink.flush()
        pending, self._pending, self._oldest_pending = self._pending, [], None
        for stream, event in pending:
            await stream.ack(event)

    async def _process(self, key: bytes | None, payload: bytes | None) -> None:
        now = self.clock()
        raw = payload or b""
        try:
            inbound = decode_inbound(raw, self.codec)
        except DecodeError as exc:
            self.sink.add(rejections=[undecodable_row(raw, str(exc), now)])
            return
        if _account_of(inbound) is not None and key != _account_of(inbound).encode():  # type: ignore[union-attr]
            # State lives on the partition of the message key; a message keyed by anything but
            # its account would judge (and write) outside that account's state.
            self.sink.add(
                rejections=[undecodable_row(raw, "message key is not its account_id", now)]
            )
            return
        if isinstance(inbound, Submission):
            await self._submission(inbound, raw, now)
        elif isinstance(inbound, MeterInstalled | MeterRemoved):
            state = self._state(inbound.account_id)
            self._store(inbound.account_id, state, apply_registry_event(state, inbound))
        elif isinstance(inbound, PeriodCloseRequested):
            log.info("period close %s requested by %s", inbound.period, inbound.requested_by)

    async def _submission(self, submission: Submission, raw: bytes, now: datetime) -> None:
        state = self._state(submission.account_id)
        new_state, outcome, duplicate = apply_submission(
            state, submission, now=now, rules=self.rules
        )
        self._store(submission.account_id, state, new_state)
        hashed = sender_hash(
            self.settings.sender_hash_key.get_secret_value().encode(),
            submission.channel,
            submission.sender_id,
        )
        # A duplicate re-emits the rows of its first outcome: if the first pass crashed after
        # its state was saved but before its rows were written, this is how they get written.
        self.sink.add(
            readings=reading_rows(submission, outcome, hashed, now),
            rejections=rejection_rows(submission, outcome, hashed, raw, now),
        )
        await self._reply(outcome, duplicate, now)

    async def _reply(self, outcome: SubmissionOutcome, duplicate: bool, now: datetime) -> None:
        status = OutcomeStatus.DUPLICATE if duplicate else outcome.status
        today = now.date()
        summary_uk, summary_en = submission_message(outcome, status)
        readings = []
        for r in outcome.readings:
            # Dated by the reading, not the clock: a replayed reply says the same thing.
            uk, en = reading_message(r, r.local_date or today)
            readings.append(
                {
                    "zone": r.zone,
                    "register": r.register,
                    "value": r.value,
                    "accepted": r.accepted,
                    "reason": r.reason,
                    "kind": r.kind,
                    "period": str(r.period) if r.period else None,
                    "kwh": r.kwh,
                    "message_uk": uk,
                    "message_en": en,
                }
            )
        payload = self.codec.encode(
            SUBMISSION_OUTCOME,
            {
                "event_id": outcome.event_id,
                "account_id": outcome.account_id,
                "status": str(status),
                "readings": readings,
                "message_uk": summary_uk,
                "message_en": summary_en,
                "processed_at": now,
            },
        )
        await self.replies.send(key=outcome.account_id.encode(), value=payload)

    def _state(self, account_id: str) -> AccountState | None:
        raw = self.accounts.get(account_id.encode())
        return decode_state(raw) if raw is not None else None

    def _store(self, account_id: str, old: AccountState | None, new: AccountState | None) -> None:
        if new is not None and new != old:
            self.accounts[account_id.encode()] = encode_state(new)


def _account_of(inbound: Inbound) -> str | None:
    return None if isinstance(inbound, PeriodCloseRequested) else inbound.account_id


def _where(event: Any) -> tuple[str, int, int]:
    message = event.message
    return message.topic, message.partition, message.offset


def create_app(settings: Settings, clickhouse: ClickHouse | None = None) -> faust.App:
    """The faust app, its topics, table, agent, flush timer and web views."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=_broker_credentials(settings),
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=settings.kafka_session_timeout / 5,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_in_thread=False,
        autodiscover=False,
        table_standby_replicas=0,
    )
    inbox = app.topic(
        settings.topic("readings"),
        settings.topic("registry"),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    replies = app.topic(
        settings.topic("replies"),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    accounts = app.Table(
        "accounts",
        default=None,
        key_type=bytes,  # bytes keys and values: faust stores them raw (see streams.state)
        value_type=bytes,
        partitions=settings.partitions,
    )
    store = clickhouse or ClickHouse(settings.clickhouse_dsn, settings.clickhouse_database)
    store.migrate()
    sink = ClickHouseSink(store)
    pipeline = Pipeline(settings, sink, accounts, replies)

    @app.agent(inbox, concurrency=1, name="process")
    async def process(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await pipeline.handle(manual, event)

    @app.timer(settings.sink_flush_interval)
    async def flush_sink() -> None:
        await pipeline.flush_if_due()

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "pending_rows": sink.pending_rows})

    @app.page("/sql")
    class Sql(View):
        """Read-only queries on the worker's ClickHouse (the only way into embedded chdb)."""

        async def post(self, request: Request) -> Response:
            body = await request.json()
            try:
                result = await sink.call(lambda: store.query(str(body["query"]), read_only=True))
            except (QueryRejected, PokazyError) as exc:
                return self.bytes(
                    orjson.dumps({"error": str(exc)}), status=400, content_type="application/json"
                )
            content = orjson.dumps({"columns": result.columns, "rows": result.rows}, default=str)
            return self.bytes(content, content_type="application/json")

    app.pokazy_pipeline = pipeline  # type: ignore[attr-defined]
    return app


def _broker_credentials(settings: Settings) -> Any:
    """faust's credentials object for the configured security protocol (None for plaintext)."""
    protocol = settings.kafka_security_protocol
    ssl_context = None
    if protocol.endswith("SSL"):
        ssl_context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            ssl_context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.kafka_sasl_mechanism or "SCRAM-SHA-256",
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def run_worker(settings: Settings) -> None:
    """Run the worker in the foreground until stopped."""
    from streams.topics import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level)
    worker.execute_from_commandline()
