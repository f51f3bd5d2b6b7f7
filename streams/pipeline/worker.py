"""The faust worker: decode → validate (domain core) → state (table) → sink (ClickHouse) + reply.

The readings and registry topics (both keyed by account, with equal partition counts) reach the
pipeline one fetched partition batch at a time (`streams.pipeline.delivery`), so an account's
events are judged in the order they were published, and its state lives in one table entry on
the same partition.

The delivery order, per batch, and what a crash at each step costs:

1. decode and judge each record in order (pure, in memory); each account's state is decoded
   once and kept decoded for the rest of the batch — crash: the batch is read again.
2. write each changed account's new state once to the table's store and queue it for the
   changelog; send the changelog records and the replies to the producer in bulk (see
   `streams.pipeline.outbox`) — crash: the changelog may be ahead of the committed offset; on
   replay the account remembers the submission and re-emits the *same* outcome and rows, so
   nothing is judged twice.
3. add the rows to the sink buffer; the batch stays unacknowledged.
4. the sink writes (enough rows, or the oldest waited `sink_flush_interval`), retrying until
   ClickHouse has the rows; then the changelog records and replies of the batches it carries
   are awaited until the broker has them, and only then are those batches acknowledged, in
   offset order.
5. faust commits acknowledged offsets every `commit_interval`, after flushing its producer.
   A crash before the commit costs a replay, never a loss.

Nothing raised while judging one record escapes the pipeline: it becomes an INTERNAL_ERROR
rejection, and the partition goes on. A failure to produce (the broker never took a batch's
records) stops the worker instead, with the batch unacknowledged.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP
from faust.web import Request, Response, View

from streams.adapters.avro import AvroCodec, default_codec
from streams.adapters.clickhouse import ClickHouse, InsertRefused, QueryRejected
from streams.adapters.decode import PERIOD_CLOSE_REQUESTED, SUBMISSION_OUTCOME, PeriodCloseRequested
from streams.adapters.kafka_security import faust_credentials
from streams.adapters.signing import is_authentic_replay
from streams.domain.account import AccountState
from streams.domain.calendar import kyiv_date, latest_closable_period
from streams.domain.closing import close_period
from streams.domain.messages import reading_message, reply_status, submission_message
from streams.domain.model import (
    MeterInstalled,
    MeterRemoved,
    Reason,
    Rules,
    Submission,
    SubmissionOutcome,
)
from streams.domain.validation import apply_registry_event, apply_submission
from streams.errors import PokazyError
from streams.pipeline import delivery, faust_fixes
from streams.pipeline.admission import (
    Refused,
    Source,
    admit,
)
from streams.pipeline.metrics import CONTENT_TYPE
from streams.pipeline.outbox import AccountTable, Outbox, Sent, account_partition
from streams.pipeline.sink import (
    Batch,
    ClickHouseSink,
    billing_rows,
    retraction_rows,
    sender_hash,
    submission_rows,
    undecodable_row,
)
from streams.pipeline.state import decode_state, encode_state
from streams.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# An idle pipeline with records on the broker this long was never given them (`watch_delivery`).
STARVATION_AFTER = 15.0
STARVATION_CHECK = 5.0

# How long a starting worker waits for a reader (`pokazy sql` while no worker answered) to let
# go of the embedded ClickHouse directory; a reader holds it for one query.
STORE_BUSY_WAIT = 60.0

# Allocations between two young-generation collections (`throughput_gc`; Python's is 700).
GC_YOUNG = 50_000

# The producer's batch size: a batch's replies and changelog records go out in few requests.
PRODUCE_BATCH_BYTES = 512 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pipeline:
    """What the worker does with each batch of records; holds no business rule of its own."""

    settings: Settings
    sink: ClickHouseSink
    accounts: AccountTable  # account id (bytes) -> encoded AccountState
    outbox: Outbox  # the changelog records and replies of the batches not yet acknowledged
    codec: AvroCodec = field(default_factory=default_codec)
    rules: Rules = field(default_factory=Rules)
    clock: Clock = utc_now
    # Acknowledges a partition up to an offset for a consumer generation
    # (`streams.pipeline.delivery`).
    acknowledge: Callable[[TP, int, int], bool] | None = None
    # Stops the worker when a record cannot reach the broker (faust's `App.crash`).
    crash: Callable[[BaseException], Awaitable[None]] | None = None
    _acks: list[tuple[TP, int, int]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _oldest_pending: float | None = None
    _writing: asyncio.Future[None] | None = None
    _last_message: float = field(default_factory=time.monotonic)
    # The accounts the batch being judged changed: decoded state, written once at its end.
    _changed: dict[bytes, AccountState] = field(default_factory=dict)
    # Set when a write failed for good (its records never reached Kafka, or ClickHouse refuses
    # its rows): nothing after it may be acknowledged.
    _failed: BaseException | None = None
    # Messages and readings judged since the last batch ended, by metric labels.
    _messages: Counter[str] = field(default_factory=Counter)
    _readings: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # What every record needs from the settings, read once.
        self._control_key = self.settings.control_key.get_secret_value().encode()
        self._sender_key = self.settings.sender_hash_key.get_secret_value().encode()
        self._sources = {
            self.settings.topic("readings"): Source.READINGS,
            self.settings.topic("registry"): Source.REGISTRY,
        }
        self._replies = self.settings.topic("replies")
        self._reply_partitions = 0

    async def handle_batch(self, tp: TP, records: Sequence[Any], generation: int) -> None:
        """Judge a partition's fetched records in order; acknowledged once durable.

        Each account's state is decoded once and written once per batch; the batch's changelog
        records and replies go to the producer in bulk; its rows join the sink's buffer, and
        the batch is acknowledged after the write that carries them (`_write_then_ack`).
        """
        async with self._lock:
            if self._failed is not None:
                raise PokazyError("an earlier write failed for good") from self._failed
            self._last_message = time.monotonic()
            topic, partition = tp.topic, tp.partition
            source = self._sources.get(topic, Source.READINGS)
            self._reply_partitions = await self.outbox.partitions(self._replies)
            # A batch cancelled half-way (the worker stopping) stored none of these: drop them.
            self._changed.clear()
            try:
                with self.accounts.on_partition(partition):
                    for record in records:
                        payload = record.value or b""
                        replayed = bool(record.headers) and is_authentic_replay(
                            record.headers, payload, self._control_key
                        )
                        close = self.handle(record.key, payload, source, partition, replayed)
                        if close is not None:
                            await self.carry_out(close, payload, partition)
                    self._store_changed(partition)
            finally:
                self._count()
            await self.outbox.send_queued()
            self._acks.append((tp, records[-1].offset + 1, generation))
            if self._oldest_pending is None:
                self._oldest_pending = asyncio.get_running_loop().time()
            if self._write_due():
                await self._write_batch()

    def handle(
        self,
        key: bytes | None,
        payload: bytes,
        source: Source,
        partition: int,
        replayed: bool = False,
    ) -> PeriodCloseRequested | None:
        """Judge one record and buffer what it writes; a close request is the caller's to carry
        out (`carry_out`). Sending and acknowledging are the batch's.

        Nothing raised here escapes: it is a defect judging this record, which becomes an
        INTERNAL_ERROR rejection, and the partition goes on. Judging sends nothing, so no
        failure to produce can be mistaken for one.
        """
        try:
            return self.process(key, payload, source, partition, replayed)
        except Exception as exc:
            self._internal_error(payload, exc, source, partition)
            return None

    async def carry_out(
        self, request: PeriodCloseRequested, payload: bytes, partition: int
    ) -> None:
        """Close a period on this partition; only a failure to produce, or billing rows
        ClickHouse refuses for good, escape (and stop the worker); anything else is an
        INTERNAL_ERROR rejection of the request."""
        try:
            await self._close(request, partition)
        except KafkaError:
            raise  # records of this batch were lost: it must not be acknowledged
        except InsertRefused as exc:
            log.critical("ClickHouse refuses a close's billing rows for good; stopping: %s", exc)
            # The refused flush took the rows of the batches still waiting for a write too:
            # no later write may acknowledge them, nor this one.
            self._failed = exc
            raise
        except Exception as exc:
            self._internal_error(payload, exc, Source.READINGS, partition)

    def _internal_error(
        self, payload: bytes, exc: Exception, source: Source, partition: int
    ) -> None:
        # A defect, not bad input (bad input is a rejection with a reason code). The message
        # is kept in `rejections` as INTERNAL_ERROR with its payload, to be replayed once
        # fixed, and the stream goes on rather than stall every account on the partition.
        log.exception("unexpected error on %s[%s]", source, partition, exc_info=exc)
        self.sink.add(
            rejections=[
                undecodable_row(
                    payload,
                    f"internal error: {exc!r}",
                    self.clock(),
                    reason=Reason.INTERNAL_ERROR,
                    max_payload=self.settings.max_message_bytes,
                )
            ]
        )

    def _count(self) -> None:
        """Add what the batch judged to the metrics, once per label set."""
        metrics = self.sink.metrics
        for kind, n in self._messages.items():
            metrics.count_message(kind, n)
        for (verdict, reason), n in self._readings.items():
            metrics.count_reading(verdict, reason, n)
        self._messages.clear()
        self._readings.clear()

    def idle_for(self, seconds: float) -> bool:
        """Nothing handled, pending or being written, and no message for `seconds`."""
        return (
            not self._lock.locked()
            and not self._acks
            and (self._writing is None or self._writing.done())
            and time.monotonic() - self._last_message >= seconds
        )

    def _write_due(self) -> bool:
        """Write when enough rows wait, or the oldest waited `sink_flush_interval`."""
        if self.sink.pending_rows >= self.settings.sink_batch_rows:
            return True
        return (
            self._oldest_pending is not None
            and asyncio.get_running_loop().time() - self._oldest_pending
            >= self.settings.sink_flush_interval
        )

    async def flush_if_due(self) -> None:
        """Called by a timer: write what has waited `sink_flush_interval`."""
        async with self._lock:
            if self._acks and self._write_due():
                await self._write_batch()

    async def finish(self) -> None:
        """Write and acknowledge everything judged so far (before a rebalance or a stop)."""
        async with self._lock:
            await self.outbox.send_queued()  # what a batch cancelled at a stop left queued
            if self._acks:
                await self._write_batch()
            await self._written()

    async def _written(self) -> None:
        """Wait for the write in flight, if any. Shielded: whoever waits may be cancelled (a
        bounded finish, a stopping fetcher); the write itself goes on and acknowledges."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_batch(self) -> None:
        """Hand the buffered rows and their batches to a background write, then go on.

        Records are judged while the previous write is being inserted (chdb and the network
        work off the event loop). At most one write is in flight: the next one waits for it,
        so acknowledgements stay in offset order and memory stays bounded by two writes.
        """
        rows, sent = self.sink.take(), self.outbox.take()
        acks, self._acks, self._oldest_pending = self._acks, [], None
        await self._written()
        self._writing = asyncio.ensure_future(self._write_then_ack(rows, sent, acks))

    async def _write_then_ack(
        self, rows: Batch, sent: Sent, acks: list[tuple[TP, int, int]]
    ) -> None:
        try:
            await self.sink.write(rows)  # retries while ClickHouse is unavailable
        except InsertRefused as exc:
            # ClickHouse will never take these rows as they are; acknowledging would lose
            # them, waiting would stall the partition for good. Stopping leaves them to be
            # read again once the table is fixed (README, "Operating it").
            await self._stop(exc, f"ClickHouse refuses a batch's rows for good; stopping: {exc}")
            return
        try:
            offsets = await Outbox.settle(sent)
        except Exception as exc:
            # The producer retried for `producer_request_timeout` already. Acknowledging now
            # would let faust commit past state or replies the broker never got; stopping
            # leaves these records to be read again by the next worker.
            await self._stop(
                exc, f"a changelog record or reply never reached Kafka; stopping: {exc!r}"
            )
            return
        self.accounts.persisted(offsets)
        if self.acknowledge is not None and self._failed is None:
            for tp, offset, generation in acks:
                self.acknowledge(tp, offset, generation)
        self.sink.metrics.progressed()

    async def _stop(self, exc: BaseException, why: str) -> None:
        """Stop the worker with this write's batches, and every later one, unacknowledged."""
        log.critical("%s", why)
        self._failed = exc  # a later write must not acknowledge past these records
        if self.crash is None:
            raise exc
        await self.crash(exc)

    def process(
        self,
        key: bytes | None,
        raw: bytes,
        source: Source,
        partition: int,
        replayed: bool = False,
    ) -> PeriodCloseRequested | None:
        """Judge one record and buffer what it writes; a close request is returned, not done."""
        now = self.clock()
        inbound = admit(
            raw,
            key,
            source,
            control_key=self._control_key,
            codec=self.codec,
            max_bytes=self.settings.max_message_bytes,
        )
        if isinstance(inbound, Refused):
            kind = "unauthorized" if inbound.reason == Reason.UNAUTHORIZED else "undecodable"
            self._messages[kind] += 1
            if inbound.reason == Reason.UNAUTHORIZED:
                log.warning("refused on %s[%d]: %s", source, partition, inbound.detail)
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
            return None
        self._messages[type(inbound).__name__] += 1
        if isinstance(inbound, Submission):
            self._submission(inbound, raw, now, replayed)
        elif isinstance(inbound, MeterInstalled | MeterRemoved):
            state = self._state(inbound.account_id)
            new = apply_registry_event(state, inbound)
            if new != state:  # a redelivered event changes nothing
                self._changed[inbound.account_id.encode()] = new
            if replayed:  # kept as INTERNAL_ERROR by an earlier pass, applied now
                self.sink.add(rejections=retraction_rows("", inbound.account_id, (), raw, now))
        else:
            return inbound
        return None

    async def _close(self, request: PeriodCloseRequested, partition: int) -> None:
        """Close the period for every account on this partition, in order with its events.

        The request arrives on every partition of the readings topic; each worker closes the
        accounts whose state lives on the request's partition (a table write goes to the
        changelog partition of the current event, so only those keys may be written here).
        Rows and states are sent as they pile up; the request itself is acknowledged only after
        the last of them is written, so a crash mid-close replays the request, which re-emits
        the closes already made and finishes the rest.
        """
        started = asyncio.get_running_loop().time()
        accounts = lines = 0
        self._store_changed(partition)  # the close reads states from the table
        for key, raw in self.accounts.items_on(partition, self.settings.partitions):
            state = decode_state(raw)
            closed, billing = close_period(state, request.period)
            if closed is not None and closed != state:
                self.accounts.put(key, encode_state(closed), partition)
            self.sink.add(billing=billing_rows(billing, request.requested_at))
            accounts += 1
            lines += len(billing)
            self.sink.metrics.billing_lines.inc(len(billing))
            if self.sink.pending_rows >= self.settings.sink_batch_rows:
                await self.outbox.send_queued()
                await self._written()  # one write at a time: rows land in offset order
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

    def _submission(
        self, submission: Submission, raw: bytes, now: datetime, replayed: bool
    ) -> None:
        key = submission.account_id.encode()
        state = self._state(submission.account_id)
        new_state, outcome, duplicate = apply_submission(
            state, submission, now=now, rules=self.rules, replayed=replayed
        )
        if new_state is not state and new_state is not None:  # a new state, or a duplicate's
            self._changed[key] = new_state
        hashed = sender_hash(self._sender_key, submission.channel, submission.sender_id)
        # A redelivered duplicate re-emits its first outcome's rows (see `submission_rows`).
        readings, rejections = submission_rows(
            submission, outcome, duplicate, hashed, raw, now, replayed=replayed
        )
        self.sink.add(readings=readings, rejections=rejections)
        for reading in outcome.readings:
            verdict = "duplicate" if duplicate else "accepted" if reading.accepted else "rejected"
            self._readings[(verdict, reading.reason or "")] += 1
        # The reply, partitioned as the producer's default partitioner would (murmur2 of the
        # key), as bots expect.
        payload = self.codec.encode(
            SUBMISSION_OUTCOME, reply_datum(outcome, duplicate, now), trusted=True
        )
        self.outbox.add(self._replies, account_partition(key, self._reply_partitions), key, payload)

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
        key = account_id.encode()
        changed = self._changed.get(key)
        if changed is not None:
            return changed
        raw = self.accounts.get(key)
        return decode_state(raw) if raw is not None else None

    def _store_changed(self, partition: int) -> None:
        """Write each account the batch changed, once: its encoded state, to the table."""
        for key, state in self._changed.items():
            self.accounts.put(key, encode_state(state), partition)
        self._changed.clear()


def reply_datum(outcome: SubmissionOutcome, duplicate: bool, now: datetime) -> dict[str, Any]:
    """The `SubmissionOutcome` reply a bot gets for a submission, as an Avro datum."""
    status = reply_status(outcome, duplicate)
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


def create_app(settings: Settings, clickhouse: ClickHouse | None = None) -> faust.App:
    """The faust app, its topics, table, agent, flush timer and web views."""
    delivery.register()
    app = faust.App(
        settings.app_id,
        # `pokazy://` is faust's aiokafka transport delivering the input topics per batch.
        broker=[
            f"{delivery.SCHEME}://{host.strip()}" for host in settings.kafka_bootstrap.split(",")
        ],
        broker_credentials=faust_credentials(settings),
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        # Changelog writes and replies go out in batches rather than a request each.
        producer_linger=0.02,
        producer_max_batch_size=PRODUCE_BATCH_BYTES,
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
    inputs = {settings.topic("readings"), settings.topic("registry")}
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
        key_type=bytes,  # bytes keys and values: faust stores them raw (see streams.pipeline.state)
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
    # The replies topic is created by `streams.adapters.topics.ensure_topics` with the input topics.
    # The aiokafka producer faust starts, for `send_batch`.
    outbox = Outbox(cast(Any, app.producer)._ensure_producer)
    consumer = app.consumer
    assert isinstance(consumer, delivery.BatchConsumer), "the broker URL selects the transport"
    pipeline = Pipeline(
        settings,
        sink,
        AccountTable(table, outbox),
        outbox,
        acknowledge=consumer.ack_through,
        crash=app.crash,
    )
    # The input topics are subscribed, and reach the pipeline per partition batch, in the
    # order they were fetched; one handler call at a time (`streams.pipeline.delivery`).
    app.topics.add(inbox)
    consumer.route(inputs, pipeline.handle_batch, pipeline.finish)

    @app.timer(settings.sink_flush_interval / 2)
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

    @app.timer(STARVATION_CHECK)
    async def watch_delivery() -> None:
        # Records on the broker that an idle pipeline was never given mean a delivery defect
        # (`streams.pipeline.delivery` seeks back to whatever it does not deliver): say so, loudly,
        # and read them again.
        if app.rebalancing or app.in_recovery or not pipeline.idle_for(STARVATION_AFTER):
            return
        for tp in consumer.assignment():
            expected = consumer.positions.expected(tp)
            end = consumer.highwater(tp)
            if tp.topic in inputs and expected is not None and end is not None and end > expected:
                log.error(
                    "%s[%d]: offsets %d-%d are on the broker but were never delivered; "
                    "reading them again", tp.topic, tp.partition, expected, end - 1,
                )  # fmt: skip
                consumer.gaps += 1
                await consumer.rewind(tp, expected)

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
    from streams.adapters.topics import ensure_topics

    # Also the login check: a refused password ends the worker here with a one-line error,
    # before faust would retry it into a bootstrap failure.
    ensure_topics(settings)
    app = create_app(settings)
    with throughput_gc():
        quiet_worker(app, settings.log_level).execute_from_commandline()


@contextmanager
def throughput_gc() -> Iterator[None]:
    """The garbage collector tuned for judging batches, restored on the way out.

    Judging allocates many short-lived objects and no cycles worth chasing (frozen dataclasses,
    freed by reference counting), so at Python's default threshold a collection runs every 700
    allocations and walks the young objects of a whole batch for nothing; and every full
    collection walks the imported modules and faust's long-lived services. Collections run
    every `GC_YOUNG` allocations instead, and what exists when the worker starts (the modules,
    the app) is frozen out of them.
    Measured in process (`pokazy bench --core-only`, three alternating runs): 136 → 109 µs per
    submission.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def quiet_worker(app: faust.App, log_level: str) -> faust.Worker:
    """A faust worker without its terminal spinner.

    At `warning` and `error` faust sets the root logger to DEBUG so that every log call turns
    its spinner: aiokafka then builds a debug record for every message it sends (a fifth of a
    worker's CPU in a profile), only to drop it below the handler's level.
    """
    worker = faust.Worker(app, loglevel=log_level)
    worker.spinner = None
    return worker
