"""The faust worker: decode → validate (domain core) → state (table) → sink (ClickHouse) + reply.

One agent reads the readings and registry topics together (both keyed by account, with equal
partition counts), one stream per partition (`concurrency=1`), so an account's events are judged
in the order they were published, and its state lives in one table entry on the same partition.

The delivery order, per message, and what a crash at each step costs:

1. decode and judge (pure, in memory) — crash: the message is read again.
2. send the account's new state to the table's changelog and the reply to the replies topic
   (the producer batches them; see `streams.outbox`), and keep the state in the table's store —
   crash: the changelog may be ahead of the committed offset; on replay the account remembers
   the submission and re-emits the *same* outcome and rows, so nothing is judged twice.
3. add the rows to the sink buffer; the message stays unacknowledged.
4. the sink flushes (batch full, or every `sink_flush_interval`), retrying until ClickHouse has
   the rows; then the batch's changelog records and replies are awaited until the broker has
   them, and only then are its messages acknowledged, in order.
5. faust commits acknowledged offsets every `commit_interval`, after flushing its producer.
   A crash before the commit costs a replay, never a loss.

Nothing raised while handling one message may escape the agent: faust would ack and drop it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from kafka.partitioner.default import murmur2

from streams import faust_fixes
from streams.admission import (
    INTERNAL_ERROR,
    UNAUTHORIZED,
    Refused,
    Source,
    admit,
    is_authentic_replay,
)
from streams.clickhouse import ClickHouse, QueryRejected
from streams.codec import AvroCodec, default_codec
from streams.decode import PERIOD_CLOSE_REQUESTED, SUBMISSION_OUTCOME, PeriodCloseRequested
from streams.domain.account import AccountState
from streams.domain.calendar import kyiv_date, latest_closable_period
from streams.domain.closing import close_period
from streams.domain.messages import reading_message, submission_message
from streams.domain.model import (
    MeterInstalled,
    MeterRemoved,
    OutcomeStatus,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.validation import apply_registry_event, apply_submission
from streams.errors import PokazyError
from streams.kafka_security import faust_credentials
from streams.metrics import CONTENT_TYPE
from streams.outbox import AccountTable, Outbox, Sent
from streams.settings import Settings
from streams.sink import (
    Batch,
    ClickHouseSink,
    billing_rows,
    retraction_rows,
    sender_hash,
    submission_rows,
    undecodable_row,
)
from streams.state import decode_state, encode_state

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# An idle agent with records waiting for it this long was starved by faust (`watch_delivery`).
STARVATION_AFTER = 15.0
STARVATION_CHECK = 5.0

# How long a starting worker waits for a reader (`pokazy sql` while no worker answered) to let
# go of the embedded ClickHouse directory; a reader holds it for one query.
STORE_BUSY_WAIT = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pipeline:
    """What the agent does with each message; holds no business rule of its own."""

    settings: Settings
    sink: ClickHouseSink
    accounts: AccountTable  # account id (bytes) -> encoded AccountState
    outbox: Outbox  # the changelog records and replies of the messages not yet acknowledged
    codec: AvroCodec = field(default_factory=default_codec)
    rules: Rules = field(default_factory=Rules)
    clock: Clock = utc_now
    guard: faust_fixes.DeliveryGuard | None = None
    # Stops the worker when a record cannot reach the broker (faust's `App.crash`).
    crash: Callable[[BaseException], Awaitable[None]] | None = None
    _pending: list[tuple[Any, Any]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _oldest_pending: float | None = None
    _writing: asyncio.Future[None] | None = None
    _last_message: float = field(default_factory=time.monotonic)

    async def handle(self, stream: Any, event: Any) -> None:
        """Process one message; never raises (an escaping error would drop the message)."""
        async with self._lock:
            self._last_message = time.monotonic()
            if self.guard is not None:
                self.guard.admit(event.message)
            try:
                message = event.message
                replayed = is_authentic_replay(
                    message.headers,
                    event.value or b"",
                    self.settings.control_key.get_secret_value().encode(),
                )
                await self.process(
                    event.key, event.value, message.topic, message.partition, replayed
                )
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
                            max_payload=self.settings.max_message_bytes,
                        )
                    ]
                )
            self._pending.append((stream, event))
            if self._oldest_pending is None:
                self._oldest_pending = asyncio.get_running_loop().time()
            if self.sink.pending_rows >= self.settings.sink_batch_rows:
                await self._write_batch()

    def idle_for(self, seconds: float) -> bool:
        """Nothing handled, pending or being written, and no message for `seconds`."""
        return (
            not self._lock.locked()
            and not self._pending
            and (self._writing is None or self._writing.done())
            and time.monotonic() - self._last_message >= seconds
        )

    async def flush_if_due(self) -> None:
        """Called by a timer: write a batch that has waited `sink_flush_interval`."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if (
                self._pending
                and self._oldest_pending is not None
                and (loop.time() - self._oldest_pending >= self.settings.sink_flush_interval)
            ):
                await self._write_batch()

    async def _write_batch(self) -> None:
        """Hand the buffered rows and their messages to a background write, then go on.

        Messages are judged while the previous batch is being inserted (chdb and the network
        work off the event loop). At most one batch is in flight: the next one waits for it,
        so acknowledgements stay in offset order and memory stays bounded by two batches.
        """
        batch, sent = self.sink.take(), self.outbox.take()
        events, self._pending, self._oldest_pending = self._pending, [], None
        if self._writing is not None:
            await self._writing
        self._writing = asyncio.ensure_future(self._write_then_ack(batch, sent, events))

    async def _write_then_ack(
        self, batch: Batch, sent: Sent, events: list[tuple[Any, Any]]
    ) -> None:
        await self.sink.write(batch)  # retries until ClickHouse has every row
        try:
            offsets = await Outbox.settle(sent)
        except Exception as exc:
            # The producer retried for `producer_request_timeout` already. Acknowledging now
            # would let faust commit past state or replies the broker never got; stopping
            # leaves these messages to be read again by the next worker.
            log.critical("a changelog record or reply never reached Kafka; stopping: %r", exc)
            if self.crash is None:
                raise
            await self.crash(exc)
            return
        self.accounts.persisted(offsets)
        for stream, event in events:
            await stream.ack(event)
        self.sink.metrics.progressed()

    async def process(
        self,
        key: bytes | None,
        payload: bytes | None,
        topic: str,
        partition: int,
        replayed: bool = False,
    ) -> None:
        """Judge one message and buffer what it writes; acknowledging it is the caller's."""
        now = self.clock()
        raw = payload or b""
        source = Source.REGISTRY if topic == self.settings.topic("registry") else Source.READINGS
        inbound = admit(
            raw,
            key,
            source,
            control_key=self.settings.control_key.get_secret_value().encode(),
            codec=self.codec,
            max_bytes=self.settings.max_message_bytes,
        )
        if isinstance(inbound, Refused):
            kind = "unauthorized" if inbound.reason == UNAUTHORIZED else "undecodable"
            self.sink.metrics.count_message(kind)
            if inbound.reason == UNAUTHORIZED:
                log.warning("refused on %s[%d]: %s", topic, partition, inbound.detail)
            self.sink.add(
                rejections=[
                    undecodable_row(
                        raw,
                        inbound.detail,
                        now,
                        reason=inbound.reason,
                        max_payload=self.settings.max_message_bytes,
                    )
                ]
            )
            return
        self.sink.metrics.count_message(type(inbound).__name__)
        if isinstance(inbound, Submission):
            await self._submission(inbound, raw, now, replayed, partition)
        elif isinstance(inbound, MeterInstalled | MeterRemoved):
            state = self._state(inbound.account_id)
            await self._store(
                inbound.account_id, state, apply_registry_event(state, inbound), partition
            )
            if replayed:  # kept as INTERNAL_ERROR by an earlier pass, applied now
                self.sink.add(rejections=retraction_rows("", inbound.account_id, (), raw, now))
        else:
            await self._close(inbound, partition)

    async def _close(self, request: PeriodCloseRequested, partition: int) -> None:
        """Close the period for every account on this partition, in order with its events.

        The request arrives on every partition of the readings topic; each worker closes the
        accounts whose state lives on the request's partition (a table write goes to the
        changelog partition of the current event, so only those keys may be written here).
        Rows are flushed as they pile up; the request itself is acknowledged only after the
        last of them is written, so a crash mid-close replays the request, which re-emits the
        closes already made and finishes the rest.
        """
        started = asyncio.get_running_loop().time()
        accounts = lines = 0
        for key, raw in self.accounts.items():
            if account_partition(key, self.settings.partitions) != partition:
                continue
            state = decode_state(raw)
            closed, billing = close_period(state, request.period)
            await self._store(state.account_id, state, closed, partition)
            self.sink.add(billing=billing_rows(billing, request.requested_at))
            accounts += 1
            lines += len(billing)
            self.sink.metrics.billing_lines.inc(len(billing))
            if self.sink.pending_rows >= self.settings.sink_batch_rows:
                await self.sink.flush()
        log.info(
            "closed %s on partition %d: %d accounts, %d billing lines in %.1fs (requested by %s)",
            request.period,
            partition,
            accounts,
            lines,
            asyncio.get_running_loop().time() - started,
            request.requested_by,
        )

    async def _submission(
        self, submission: Submission, raw: bytes, now: datetime, replayed: bool, partition: int
    ) -> None:
        state = self._state(submission.account_id)
        new_state, outcome, duplicate = apply_submission(
            state, submission, now=now, rules=self.rules, replayed=replayed
        )
        await self._store(submission.account_id, state, new_state, partition)
        hashed = sender_hash(
            self.settings.sender_hash_key.get_secret_value().encode(),
            submission.channel,
            submission.sender_id,
        )
        # A redelivered duplicate re-emits its first outcome's rows (see `submission_rows`).
        readings, rejections = submission_rows(
            submission, outcome, duplicate, hashed, raw, now, replayed=replayed
        )
        self.sink.add(readings=readings, rejections=rejections)
        for reading in outcome.readings:
            verdict = "duplicate" if duplicate else "accepted" if reading.accepted else "rejected"
            self.sink.metrics.count_reading(verdict, reading.reason or "")
        await self._reply(outcome, duplicate, now)

    async def _reply(self, outcome: SubmissionOutcome, duplicate: bool, now: datetime) -> None:
        record = reply_datum(outcome, duplicate, now)
        payload = self.codec.encode(SUBMISSION_OUTCOME, record, trusted=True)
        # Partitioned by the producer's default partitioner (murmur2 of the key), as bots expect.
        await self.outbox.send(
            self.settings.topic("replies"), outcome.account_id.encode(), payload, None
        )

    async def close_due_period(self, readings: Any) -> None:
        """Request the close of the latest period whose window has ended, unless billed.

        Runs on the leader only. Whether the period is billed is read from ClickHouse, so a
        restarted leader does not ask twice; asking twice would still change nothing.
        """
        period = latest_closable_period(kyiv_date(self.clock()))
        database = self.settings.clickhouse_database
        billed = await self.sink.call(
            lambda: self.sink.clickhouse.query(
                f"SELECT count() FROM {database}.billing_log WHERE period = '{period}'"
            )
        )
        if billed.rows[0][0]:
            return
        now = self.clock().replace(microsecond=0)
        request = PeriodCloseRequested(period, now, "auto-close")
        payload = self.codec.encode(
            PERIOD_CLOSE_REQUESTED,
            {
                "period": str(period),
                "requested_at": now,
                "requested_by": request.requested_by,
                "signature": request.sign(self.settings.control_key.get_secret_value().encode()),
            },
        )
        for partition in range(self.settings.partitions):
            await readings.send(value=payload, partition=partition)
        log.info("requested the automatic close of %s", period)

    def _state(self, account_id: str) -> AccountState | None:
        raw = self.accounts.get(account_id.encode())
        return decode_state(raw) if raw is not None else None

    async def _store(
        self, account_id: str, old: AccountState | None, new: AccountState | None, partition: int
    ) -> None:
        if new is not None and new != old:
            await self.accounts.put(account_id.encode(), encode_state(new), partition)


def reply_datum(outcome: SubmissionOutcome, duplicate: bool, now: datetime) -> dict[str, Any]:
    """The `SubmissionOutcome` reply a bot gets for a submission, as an Avro datum."""
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
    return {
        "event_id": outcome.event_id,
        "account_id": outcome.account_id,
        "status": str(status),
        "readings": readings,
        "message_uk": summary_uk,
        "message_en": summary_en,
        "processed_at": now,
    }


def account_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the SDK uses) gives a key."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def _where(event: Any) -> tuple[str, int, int]:
    message = event.message
    return message.topic, message.partition, message.offset


def create_app(settings: Settings, clickhouse: ClickHouse | None = None) -> faust.App:
    """The faust app, its topics, table, agent, flush timer and web views."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        # Changelog writes and replies go out in batches rather than a request each.
        producer_linger=0.02,
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
    table = app.Table(
        "accounts",
        default=None,
        key_type=bytes,  # bytes keys and values: faust stores them raw (see streams.state)
        value_type=bytes,
        partitions=settings.partitions,
    )
    store = clickhouse or ClickHouse.open_when_free(
        settings.clickhouse_dsn,
        settings.clickhouse_database,
        wait=STORE_BUSY_WAIT,
        fault_flag=settings.fault_clickhouse_flag,
        hold_flag=settings.fault_clickhouse_hold,
    )
    store.migrate()
    sink = ClickHouseSink(store)
    faust_fixes.apply()
    # The replies topic is created by `streams.topics.ensure_topics` with the input topics.
    outbox = Outbox(app.producer)
    pipeline = Pipeline(settings, sink, AccountTable(table, outbox), outbox, crash=app.crash)

    @app.agent(inbox, concurrency=1, name="process")
    async def process(stream: Any) -> None:
        pipeline.guard = faust_fixes.DeliveryGuard(app.consumer)
        manual = stream.noack()
        async for event in manual.events():
            await pipeline.handle(manual, event)

    @app.timer(settings.sink_flush_interval)
    async def flush_sink() -> None:
        await pipeline.flush_if_due()

    if settings.auto_close:
        readings = app.topic(
            settings.topic("readings"), key_serializer="raw", value_serializer="raw"
        )

        @app.timer(settings.auto_close_check_interval, on_leader=True)
        async def auto_close() -> None:
            try:
                await pipeline.close_due_period(readings)
            except Exception:
                log.exception("automatic period close failed; will try again")

    inputs = {settings.topic("readings"), settings.topic("registry")}

    @app.timer(STARVATION_CHECK)
    async def watch_delivery() -> None:
        # faust's start-up race can drop a partition's last fetched records, with no later
        # offset to reveal the gap: nothing is committed past them (`faust_fixes`), and a
        # fresh process reads them again.
        guard = pipeline.guard
        if guard is None or app.rebalancing or app.in_recovery:
            return
        if not pipeline.idle_for(STARVATION_AFTER):
            return
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
        stuck = guard.undelivered(assigned, app.consumer.highwater)
        if stuck:
            tp, expected, end = stuck[0]
            log.error(
                "%s[%d]: offsets %d-%d were fetched but never delivered; restarting the worker",
                tp.topic, tp.partition, expected, end - 1,
            )  # fmt: skip
            faust_fixes.restart_process([sys.executable, "-m", "streams", "worker"])

    def observe_lag() -> None:
        committed = app.monitor.tp_committed_offsets
        lags = {}
        for tp in app.consumer.assignment():
            if tp.topic in inputs:
                lags[(tp.topic, tp.partition)] = max(
                    0, app.consumer.highwater(tp) - (committed.get(tp) or 0)
                )
        sink.metrics.set_lag(lags)

    @app.page("/health")
    class Health(View):
        """200 while the worker makes progress; 503 when input waits and nothing completes."""

        async def get(self, request: Request) -> Response:
            observe_lag()
            stalled = sink.metrics.stalled(settings.stall_timeout)
            body = {
                "status": "stalled" if stalled else "ok",
                "lag": sum(sink.metrics.lag.values()),
                "pending_rows": sink.pending_rows,
                "seconds_since_progress": round(time.time() - sink.metrics.last_progress_at, 1),
            }
            return self.json(body, status=503 if stalled else 200)

    @app.page("/metrics")
    class Prometheus(View):
        async def get(self, request: Request) -> Response:
            observe_lag()
            return self.bytes(sink.metrics.exposition(), content_type=CONTENT_TYPE)

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


def run_worker(settings: Settings) -> None:
    """Run the worker in the foreground until stopped."""
    from streams.topics import ensure_topics

    # Also the login check: a refused password ends the worker here with a one-line error,
    # before faust would retry it into a bootstrap failure.
    ensure_topics(settings)
    quiet_worker(create_app(settings), settings.log_level).execute_from_commandline()


def quiet_worker(app: faust.App, log_level: str) -> faust.Worker:
    """A faust worker without its terminal spinner.

    At `warning` and `error` faust sets the root logger to DEBUG so that every log call turns
    its spinner: aiokafka then builds a debug record for every message it sends (a fifth of a
    worker's CPU in a profile), only to drop it below the handler's level.
    """
    worker = faust.Worker(app, loglevel=log_level)
    worker.spinner = None
    return worker
