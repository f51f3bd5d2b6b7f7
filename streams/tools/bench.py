"""`pokazy bench`: how fast the pipeline is, measured against real processes (SPEC §4, "Fast").

One run, in this order, on its own topics (a unique prefix), ClickHouse database and data dirs:

0. **Prepare.** A registry of N meters and M bot submissions are simulated
   (`streams.tools.simulate`, as `pokazy simulate` and the demo do: periods of every account,
   with the customers' usual mistakes, corrections, retries, exchanges and unknown accounts).
   Before any broker or worker shares the cores, the worker's own path is timed on them in
   process (`streams.tools.core_cost`: CPU per submission with no Kafka, ClickHouse or faust).
   The producer SDK's own rate is measured by publishing both to a scratch topic that nothing
   reads, so no worker competes with it for CPU.
1. **Throughput.** K worker processes are started; the registry is published and processed
   (`wait_until_idle`), so the timed phase judges submissions only. The M submissions are
   encoded by the SDK first, then published at once (in bulk, each on its key's partition) once
   every worker owns its partitions (`wait_until_assigned`): the publisher takes almost no CPU
   from the workers, and K workers share the load from the first record (started on a backlog
   instead, the first worker to join takes every partition and the second's join rebalances
   mid-backlog). The figure is register readings (not submissions) per second from the first
   submission judged (the earliest `ingested_at`/`rejected_at`) to the moment every submission
   is queryable (polled through the workers' /sql); the time from the publish, and until
   `wait_until_idle` returns (offsets committed), is reported beside it, with the workers' CPU
   over that span. A worker started on a backlog (what faust-streaming 0.15.3 handled worst)
   is the fault tests' business (`tests/integration/test_faults.py`).
2. **Latency.** With the workers running and idle, submissions are published at a steady rate
   of readings/s; each one's publish time (when the bot calls `submit`) is compared with the
   time its first row is seen through /sql. Visibility is observed, not inferred from
   `ingested_at` (set when the row is built, before the insert lands); the figure is an upper
   bound, coarse by the poll interval, and the polls share the worker's ClickHouse thread.
   The same submissions' replies are read from the replies topic (from its end, by a consumer
   started before the first publish) and matched by event_id: publish to reply is what a bot
   waits before it answers its customer.
3. **Memory and state.** Peak RSS (`VmHWM`) of each worker; the accounts table's changelog:
   messages, bytes, bytes on the broker's disk, and the live state per account (latest value
   per key).
4. **Recovery.** The worker is stopped (SIGTERM) and started again, then killed (SIGKILL) and
   started again: the seconds until /health answers and until a submission published right
   after that is queryable. With the memory store the whole changelog is replayed at every
   start; after a SIGKILL the group also waits for the dead member's session to time out. A
   probe that is not queryable within `PROBE_TIMEOUT` is reported as a stall, not waited for.
5. **Raw baseline.** A plain aiokafka consumer (its own process and group) reads the same
   phase-1 submissions, decodes them with the same codec, builds one `readings` row per
   register reading with no validation or state, and inserts them in batches through the same
   sink into a ClickHouse of its own (same DDL). Our throughput is reported as a ratio to it.
6. **Registry.** On a fresh pipeline (its own topics, database and K workers, so the close
   below covers exactly its accounts), N MeterInstalled events for new accounts are published
   (N = `--close-accounts`, by default `--accounts`), then K workers start: events/s from the
   moment they own every input partition until their committed offsets reach the topic's end.
7. **Period close.** A signed close of the accounts' installation month is requested on every
   partition, as billing does (`pokazy close-period`): accounts/s from the request until
   every one of the N accounts has a billing row. The target is a close of 1,000,000
   accounts on `rocksdb://` in 5 minutes: `POKAZY_TABLE_STORE=rocksdb:// pokazy bench
   --close-accounts 1000000` (phase 6 then loads the million meters first).

Embedded chdb lets one process open a path, so with K > 1 every worker has its own embedded
ClickHouse (its own data dir) and rows are summed across them: that measures the pipeline's
scaling, not a shared ClickHouse's. With a ClickHouse server configured, the workers share it.
Timings are wall-clock on a shared machine: other processes, the broker and the benchmark
itself take CPU from the workers, so figures are indicative, not a guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from streams.adapters.avro import default_codec
from streams.adapters.clickhouse import ClickHouse
from streams.adapters.kafka_security import aiokafka_options, kafka_python_client
from streams.adapters.topics import (
    ensure_topics,
    input_end_offsets,
    wait_until_assigned,
    wait_until_idle,
)
from streams.domain.calendar import Period
from streams.errors import DecodeError, PokazyError
from streams.pipeline.outbox import Outbox, account_partition
from streams.pipeline.sink import ClickHouseSink, Row, sender_hash
from streams.sdk.producer import BillingProducer
from streams.settings import Settings
from streams.tools.core_cost import CoreFigures, core_rows, measure_core
from streams.tools.processes import (
    WorkerProcess,
    child_env,
    cpu_seconds,
    free_port,
    peak_rss_mib,
)
from streams.tools.simulate import simulate
from streams.tools.stack import kafka_version, local_kafka

# The simulator sends about 0.95 submissions per account and period (some never read, some
# correct a typo or retry); fewer is assumed when choosing how many periods to simulate.
SUBMISSIONS_PER_ACCOUNT_MONTH = 0.8
MAX_TRAFFIC_MONTHS = 12

POLL_INTERVAL = 0.1  # seconds between visibility polls in the latency phase
THROUGHPUT_POLL_INTERVAL = 0.25
CLOSE_POLL_INTERVAL = 0.25
# Phases 6 and 7 wait `timeout` plus a second per this many events or accounts: a run sized
# for a million accounts is not cut short, and a stuck one still ends.
SLOWEST_RATE = 500.0
PACE_TICK = 0.005  # the latency phase's publisher wakes this often
PROBE_TIMEOUT = 90.0  # seconds a restarted worker gets to make a new submission queryable
PACKAGES = (
    "faust-streaming", "aiokafka", "mode-streaming", "kafka-python", "fastavro",
    "clickhouse-connect", "chdb", "orjson", "lz4", "cramjam",
)  # fmt: skip


@dataclass(frozen=True)
class BenchOptions:
    """What to run; the defaults finish in a few minutes on a 2-core machine."""

    accounts: int = 20_000
    submissions: int | None = None  # throughput-phase submissions; default one per account
    workers: int = 1
    latency_rate: float = 1000.0  # register readings per second
    latency_seconds: float = 20.0
    seed: int = 7
    timeout: float = 600.0  # for any one wait (plus time for the work of phases 6 and 7)
    close_accounts: int | None = None  # phases 6 and 7: accounts registered, then closed
    profile: Path | None = None  # the first worker's pyinstrument profiles: <stem>-<start>.txt

    @property
    def throughput_submissions(self) -> int:
        return self.submissions if self.submissions is not None else self.accounts

    @property
    def accounts_to_close(self) -> int:
        return self.close_accounts if self.close_accounts is not None else self.accounts


# --------------------------------------------------------------------------------------------
# Figures (the JSON report is these dataclasses, as dicts)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishFigures:
    """The producer SDK's rate (validate, encode, send with acks=all) to a topic nobody reads."""

    registry_events: int
    registry_msgs_per_s: float
    submissions: int
    readings: int
    seconds: float
    msgs_per_s: float


@dataclass(frozen=True)
class ThroughputFigures:
    workers: int
    submissions: int
    distinct_events: int
    readings: int  # register readings in the published submissions (duplicates included)
    accepted_rows: int  # in the `readings` view
    rejected_rows: int  # in the `rejections` view
    processing_seconds: float  # first submission judged -> every submission queryable
    readings_per_s: float  # the headline: readings / processing_seconds
    publish_seconds: float  # the encoded submissions sent and acknowledged, all of them
    seconds_from_publish: float  # the publish began -> every submission queryable
    idle_seconds_from_publish: float  # the publish began -> `wait_until_idle` returned
    worker_cpu_seconds: float  # user + system, all workers, the publish began -> queryable
    worker_cpu_per_reading_us: float  # worker CPU per register reading, the cost that scales
    # worker CPU / (wall x workers), same span: 1.0 = a full core each; a worker can exceed it,
    # as its consumer and embedded ClickHouse threads run beside the event loop.
    worker_busy_share: float
    broker_cpu_seconds: float | None  # the local broker's, same span; None for a remote one
    poll_interval_s: float


@dataclass(frozen=True)
class LatencyFigures:
    """Publish (the bot's `submit` call) to queryable (first row seen through /sql), and to
    its reply (the `SubmissionOutcome` read from the replies topic by the benchmark)."""

    target_readings_per_s: float
    achieved_readings_per_s: float
    seconds: float
    submissions: int
    readings: int
    measured: int  # first publications of an event id (retries are published, not measured)
    unseen: int  # measured submissions never seen before the timeout
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    poll_interval_ms: float
    reply_unseen: int  # measured submissions whose reply never came before the timeout
    reply_p50_ms: float | None
    reply_p90_ms: float | None
    reply_p99_ms: float | None
    reply_max_ms: float | None


@dataclass(frozen=True)
class MemoryFigures:
    peak_rss_mib: list[float]  # VmHWM per worker after phases 1 and 2
    peak_rss_mib_after_restart: float  # VmHWM of the worker restarted in phase 4
    baseline_peak_rss_mib: float


@dataclass(frozen=True)
class StateFigures:
    """The accounts table as its changelog topic holds it."""

    store: str
    changelog_topic: str
    changelog_messages: int
    changelog_bytes: int  # keys + values of every message, before compaction
    changelog_disk_bytes: int | None  # on the brokers' disks (DescribeLogDirs)
    accounts_with_state: int  # live keys
    submissions_per_account: float  # published so far (phases 1 and 2); state remembers them
    live_state_bytes: int  # latest key + value per account
    bytes_per_account: float


@dataclass(frozen=True)
class RecoveryFigures:
    stop: str  # "SIGTERM" (graceful) or "SIGKILL" (crash)
    health_seconds: float  # start -> /health answers
    # start -> a submission published once /health answers is queryable; None if it stalled
    first_message_seconds: float | None
    stalled: bool  # the probe was not queryable within PROBE_TIMEOUT
    changelog_messages: int  # what the memory store replays on start
    session_timeout_s: float


@dataclass(frozen=True)
class RegistryFigures:
    """MeterInstalled events for new accounts, waiting on the topic, applied by the workers."""

    workers: int
    events: int
    publish_seconds: float  # first publish -> the last one acknowledged by the broker
    seconds: float  # the workers own the partitions -> their offsets reach the topic's end
    events_per_s: float
    commit_interval_s: float  # the span ends at a commit, so it includes up to one of these


@dataclass(frozen=True)
class CloseFigures:
    """A period close of every account: the signed request to a `billing` row for each."""

    workers: int
    store: str
    period: str
    partitions: int  # the request went to each
    accounts: int
    seconds: float  # request published -> every account has a billing row for the period
    accounts_per_s: float
    billing_rows: int  # lines in the `billing` view for the period (a two-zone meter has two)
    poll_interval_s: float
    peak_rss_mib: list[float]  # per worker, after registering and closing `accounts`
    rss_bytes_per_account: float  # the workers' peak RSS summed, per account


@dataclass(frozen=True)
class BaselineFigures:
    """aiokafka + codec + rows + batched inserts: no validation, no state, no replies."""

    readings: int
    rows: int
    processing_seconds: float  # first message fetched -> last batch inserted
    readings_per_s: float
    seconds_from_start: float  # process start -> last batch inserted
    cpu_seconds: float
    batch_rows: int


@dataclass(frozen=True)
class MachineFigures:
    cores: int | None
    cpu_model: str
    platform: str
    python: str
    packages: dict[str, str]
    kafka_version: str  # the local broker's release (pom.xml), or what the broker reports
    kafka_bootstrap: str
    clickhouse: str
    load_average_before: list[float]
    load_average_after: list[float]


@dataclass(frozen=True)
class BenchReport:
    started_at: str
    options: dict[str, Any]
    machine: MachineFigures
    publish: PublishFigures
    throughput: ThroughputFigures
    latency: LatencyFigures
    memory: MemoryFigures
    state: StateFigures
    recovery: list[RecoveryFigures]
    registry: RegistryFigures
    close: CloseFigures
    baseline: BaselineFigures
    ratio_to_baseline: float  # our readings/s over the baseline's (processing windows)
    core: CoreFigures  # the worker's own path in process, without Kafka or ClickHouse
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        # `default=str`: the options' paths (`--profile`) as their text.
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2, default=str)


# --------------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------------


class Traffic:
    """The simulator's bot traffic (`streams.tools.simulate`) for the run's accounts.

    Enough periods for `submissions` (at most `MAX_TRAFFIC_MONTHS`), ending before the current
    month so nothing is judged as coming from the future. Submissions are handed out in time
    order, the throughput phase's first; past the last, the traffic starts over with new event
    ids (the customers send their readings again), so a long latency phase never runs dry.
    """

    def __init__(self, accounts: int, submissions: int, seed: int) -> None:
        months = math.ceil(submissions / (SUBMISSIONS_PER_ACCOUNT_MONTH * accounts)) + 1
        months = min(months, MAX_TRAFFIC_MONTHS)
        self.first_period = Period.of(datetime.now(UTC).date()).shift(-(months + 1))
        sim = simulate(accounts, months, seed=seed, start=self.first_period)
        self.registry = sim.registry_events()
        self._simulated = sim.submission_events()
        self._next = iter(self._simulated)
        self._rounds = 0

    def submissions(self, count: int) -> list[dict[str, Any]]:
        return [self.submission() for _ in range(count)]

    def submission(self) -> dict[str, Any]:
        submission = next(self._next, None)
        if submission is None:
            self._rounds += 1
            self._next = (
                {**s, "event_id": str(uuid.UUID(int=self._rounds << 64 | n, version=4))}
                for n, s in enumerate(self._simulated)
            )
            submission = next(self._next)
        return submission


def register_readings(submissions: Sequence[dict[str, Any]]) -> int:
    return sum(len(s["readings"]) for s in submissions)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class BenchRun:
    """One benchmark run's isolated pipeline: settings, workers and the figures so far."""

    settings: Settings  # the run's: its own topic prefix, database and data dir
    options: BenchOptions
    console: Console
    workers: list[WorkerProcess] = field(default_factory=list)
    broker_pid: int | None = None
    kafka_version: str = "unknown"

    @property
    def database(self) -> str:
        return self.settings.clickhouse_database

    @property
    def shared_clickhouse(self) -> bool:
        return not self.settings.embedded_clickhouse

    def worker_settings(self, index: int) -> Settings:
        update: dict[str, Any] = {
            "data_dir": self.settings.data_dir / f"worker-{index}",
            "web_port": free_port(),
        }
        if self.settings.embedded_clickhouse:
            update["clickhouse_url"] = None  # each worker's own chdb, under its data dir
        return self.settings.model_copy(update=update)

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}")

    def start_workers(self, count: int) -> list[WorkerProcess]:
        while len(self.workers) < count:
            index = len(self.workers)
            profile = self.options.profile if index == 0 else None
            self.workers.append(WorkerProcess(self.worker_settings(index), profile=profile))
        started = self.workers[:count]
        for worker in started:
            worker.start()
        for worker in started:
            worker.wait_healthy(self.options.timeout)
        return started

    def sum_over_workers(self, workers: Sequence[WorkerProcess], sql: str) -> int:
        """A count summed over the workers' ClickHouses (one query if they share a server)."""
        asked = workers[:1] if self.shared_clickhouse else workers
        return sum(int(w.query(sql)[0][0] or 0) for w in asked)

    def visible_events_sql(self) -> str:
        db = self.database
        return (
            f"SELECT uniqExact(event_id) FROM (SELECT event_id FROM {db}.readings_log "
            f"UNION ALL SELECT event_id FROM {db}.rejections_log)"
        )


def run_bench(
    settings: Settings,
    options: BenchOptions,
    *,
    console: Console | None = None,
    json_path: Path | None = None,
) -> BenchReport:
    """Run every phase on an isolated pipeline, print the figures and write them as JSON."""
    console = console or Console()
    if options.workers < 1 or options.workers > settings.partitions:
        raise PokazyError(f"--workers must be 1..{settings.partitions} (POKAZY_PARTITIONS)")
    if min(options.accounts, options.throughput_submissions, options.accounts_to_close) < 1:
        raise PokazyError("--accounts, --submissions and --close-accounts must be at least 1")
    tag = uuid.uuid4().hex[:8]
    run_settings = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}bench{tag}.",
            "clickhouse_database": f"bench_{tag}",
            "data_dir": (settings.data_dir / "bench" / tag).resolve(),
        }
    )
    run_settings.data_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = list(os.getloadavg())
    traffic, submissions = _traffic(options)
    # In process and first, before a broker or a worker starts to share the cores with it.
    console.print(f"the worker's own path in process: {len(submissions)} submissions")
    core = measure_core(run_settings, traffic.registry, submissions)
    broker, started_broker = _broker(settings, console)
    run = BenchRun(
        run_settings, options, console, broker_pid=broker, kafka_version=_kafka_version(settings)
    )
    try:
        report = _run_phases(run, traffic, submissions, core, started_at, load_before)
        _print_report(report, console)
        if json_path is not None:
            json_path.write_bytes(report.to_json())
            console.print(f"figures written to {json_path}")
        _clean_up(run)
    finally:
        for worker in run.workers:
            worker.stop()
        if started_broker:
            local_kafka(settings).down()
    return report


def run_core_bench(
    settings: Settings,
    options: BenchOptions,
    *,
    console: Console | None = None,
    json_path: Path | None = None,
) -> CoreFigures:
    """Only the in-process phase (`streams.tools.core_cost`): nothing is started or needed."""
    console = console or Console()
    traffic, submissions = _traffic(options)
    core = measure_core(settings, traffic.registry, submissions)
    table = Table(title="pokazy bench --core-only")
    for column in ("figure", "value", "how"):
        table.add_column(column)
    for row in core_rows(core):
        table.add_row(*row)
    console.print(table)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps({"core": asdict(core)}, option=orjson.OPT_INDENT_2))
    return core


def _traffic(options: BenchOptions) -> tuple[Traffic, list[dict[str, Any]]]:
    """The run's traffic (enough rounds for the latency phase too) and its throughput phase's
    submissions: the same for `--core-only` as for a whole run, so their figures compare."""
    latency_budget = math.ceil(options.latency_rate * options.latency_seconds) + 10
    traffic = Traffic(
        options.accounts, options.throughput_submissions + latency_budget, options.seed
    )
    return traffic, traffic.submissions(options.throughput_submissions)


def _broker(settings: Settings, console: Console) -> tuple[int | None, bool]:
    """The local broker's pid if it is ours (started now if needed), and whether we started it."""
    host = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        return None, False
    kafka = local_kafka(settings)
    status = kafka.status()
    if status.answering:
        return status.pid, False
    if _answers(settings.kafka_bootstrap):
        return None, False  # a local broker that is not this data dir's (e.g. compose)
    console.print("starting the local Kafka broker…")
    return kafka.up().pid, True


def _answers(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=2):
        return True
    return False


def _run_phases(
    run: BenchRun,
    traffic: Traffic,
    submissions: list[dict[str, Any]],
    core: CoreFigures,
    started_at: str,
    load_before: list[float],
) -> BenchReport:
    options, settings = run.options, run.settings
    ensure_topics(settings)
    notes = [
        "Wall-clock figures on a shared machine: the broker, the benchmark process and anything "
        "else running take CPU from the workers, so they are indicative and noisy.",
    ]
    run.say(f"SDK publish rate: {len(submissions)} submissions to a scratch topic")
    publish = _publish_rates(settings, traffic.registry, submissions)
    with BillingProducer(settings) as producer:
        run.say(f"loading {len(traffic.registry)} meters into {options.workers} worker(s)")
        run.start_workers(options.workers)
        for event in traffic.registry:
            producer.publish_registry(event, wait=False)
        producer.flush()
        wait_until_idle(settings, options.timeout)
        run.say(f"phase 1: {publish.readings} readings")
        throughput = _throughput(run, producer, submissions)
        phase1_ends = {
            tp.partition: end
            for tp, end in input_end_offsets(settings).items()
            if tp.topic == settings.topic("readings")
        }
        run.say(f"phase 2: {options.latency_rate:.0f} readings/s for {options.latency_seconds}s")
        latency = _latency(run, producer, traffic)
        rss = [peak_rss_mib(w.pid) for w in run.workers[: options.workers]]
        state = _state(settings, publish.submissions + latency.submissions, options.accounts)
        run.say("phase 4: restarts")
        recovery, rss_after_restart = _recovery(run, producer, traffic, state.changelog_messages)
    for worker in run.workers:
        worker.stop()
    run.say("phase 5: the raw baseline")
    baseline, baseline_rss = _baseline(run, phase1_ends, publish.readings)
    registry, close = _registry_and_close(run, traffic)
    if any(r.stalled for r in recovery):
        notes.append(
            f"A restarted worker did not make a new submission queryable in {PROBE_TIMEOUT:.0f}s "
            "(stalled): a defect of the worker, to investigate with its log."
        )
    if options.workers > 1 and settings.embedded_clickhouse:
        notes.append(
            "Embedded chdb allows one process per path: each worker wrote to its own ClickHouse "
            "and rows were summed across them (scaling of the pipeline, not of one ClickHouse)."
        )
    return BenchReport(
        started_at=started_at,
        options=asdict(options),
        machine=_machine(run, load_before),
        publish=publish,
        throughput=throughput,
        latency=latency,
        memory=MemoryFigures(rss, rss_after_restart, baseline_rss),
        state=state,
        recovery=recovery,
        registry=registry,
        close=close,
        baseline=baseline,
        ratio_to_baseline=_ratio(throughput.readings_per_s, baseline.readings_per_s),
        core=core,
        notes=notes,
    )


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else 0.0


def _publish_rates(
    settings: Settings, registry: Sequence[dict[str, Any]], submissions: Sequence[dict[str, Any]]
) -> PublishFigures:
    """The SDK's rate on scratch topics of the run (no consumer), registry and submissions."""
    scratch = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}sdk."})
    ensure_topics(scratch)
    with BillingProducer(scratch) as producer:
        started = time.perf_counter()
        for event in registry:
            producer.publish_registry(event, wait=False)
        producer.flush()
        registry_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for submission in submissions:
            producer.submit(submission, wait=False)
        producer.flush()
        seconds = time.perf_counter() - started
    return PublishFigures(
        registry_events=len(registry),
        registry_msgs_per_s=_rate(len(registry), registry_seconds),
        submissions=len(submissions),
        readings=register_readings(submissions),
        seconds=seconds,
        msgs_per_s=_rate(len(submissions), seconds),
    )


def _throughput(
    run: BenchRun, producer: BillingProducer, submissions: Sequence[dict[str, Any]]
) -> ThroughputFigures:
    options, db = run.options, run.database
    workers = run.workers[: options.workers]
    expected = len({s["event_id"] for s in submissions})
    readings = register_readings(submissions)
    # Encoded by the SDK before the clock runs, then published at once: the publisher takes
    # (almost) no CPU from the workers, which already own their partitions.
    records = [producer.encode_submission(s) for s in submissions]
    wait_until_assigned(run.settings, options.workers, options.timeout)
    broker_cpu_before = _cpu_or_none(run.broker_pid)
    worker_cpu_before = sum(cpu_seconds(w.pid) for w in workers)
    started = time.time()
    publish_at_once(
        run.settings,
        run.settings.topic("readings"),
        [(account.encode(), payload) for _event, account, payload in records],
    )
    published = time.time()
    deadline = time.monotonic() + options.timeout
    while run.sum_over_workers(workers, run.visible_events_sql()) < expected:
        if time.monotonic() > deadline:
            raise PokazyError(f"phase 1: not every submission queryable in {options.timeout}s")
        time.sleep(THROUGHPUT_POLL_INTERVAL)
    queryable = time.time()
    worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - worker_cpu_before
    broker_cpu_after = _cpu_or_none(run.broker_pid)
    wait_until_idle(run.settings, options.timeout)
    idle = time.time()
    first = min(
        _first_judged(w, db, since=started)
        for w in (workers[:1] if run.shared_clickhouse else workers)
    )
    processing = queryable - first
    return ThroughputFigures(
        workers=options.workers,
        submissions=len(submissions),
        distinct_events=expected,
        readings=readings,
        accepted_rows=run.sum_over_workers(workers, f"SELECT count() FROM {db}.readings"),
        rejected_rows=run.sum_over_workers(workers, f"SELECT count() FROM {db}.rejections"),
        processing_seconds=processing,
        readings_per_s=_rate(readings, processing),
        publish_seconds=published - started,
        seconds_from_publish=queryable - started,
        idle_seconds_from_publish=idle - started,
        worker_cpu_seconds=worker_cpu,
        worker_cpu_per_reading_us=worker_cpu / max(readings, 1) * 1e6,
        worker_busy_share=worker_cpu / max(queryable - started, 1e-9) / options.workers,
        broker_cpu_seconds=(
            broker_cpu_after - broker_cpu_before
            if broker_cpu_before is not None and broker_cpu_after is not None
            else None
        ),
        poll_interval_s=THROUGHPUT_POLL_INTERVAL,
    )


def publish_at_once(settings: Settings, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Publish encoded (key, value) records as fast as aiokafka sends them: in bulk, each on the
    partition the SDK's default partitioner gives its key, all acknowledged before returning."""

    async def publish() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            acks="all",
            linger_ms=20,
            max_batch_size=512 * 1024,
            **aiokafka_options(settings),
        )
        await producer.start()
        try:
            outbox = Outbox(lambda: producer)
            partitions = await outbox.partitions(topic)
            for key, value in records:
                outbox.add(topic, account_partition(key, partitions), key, value)
            await outbox.send_queued()
            await Outbox.settle(outbox.take())
        finally:
            await producer.stop()

    asyncio.run(publish())


def _cpu_or_none(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def _first_judged(worker: WorkerProcess, db: str, since: float) -> float:
    """When the worker judged its first submission after `since`: its earliest row time."""
    bound = f"fromUnixTimestamp64Milli(toInt64({int(since * 1000)}), 'UTC')"
    rows = worker.query(
        f"SELECT toUnixTimestamp64Milli(min(at)) FROM (SELECT ingested_at AS at FROM "
        f"{db}.readings_log WHERE at >= {bound} UNION ALL SELECT rejected_at AS at FROM "
        f"{db}.rejections_log WHERE at >= {bound})"
    )
    millis = int(rows[0][0] or 0)
    return millis / 1000 if millis > 0 else math.inf  # no rows: this worker judged nothing


class VisibilityPoller:
    """Polls the workers' /sql for the event ids of published submissions; records when seen.

    A row seen in a poll became visible at the latest when that poll's answer came back: the
    time recorded is that upper bound. Only rows built after the oldest submission still
    unseen (minus a margin) are asked for, so a poll stays small while the workers keep up.
    """

    def __init__(self, run: BenchRun, workers: Sequence[WorkerProcess]) -> None:
        self.run = run
        self.workers = list(workers) if not run.shared_clickhouse else list(workers[:1])
        self.published: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="visibility", daemon=True)
        self.errors = 0

    def __enter__(self) -> VisibilityPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def published_at(self, event_id: str, at: float) -> None:
        with self._lock:
            if event_id not in self.published:
                self.published[event_id] = at
                self._pending[event_id] = at

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _loop(self) -> None:
        db = self.run.database
        while not self._stop.wait(POLL_INTERVAL):
            with self._lock:
                if not self._pending:
                    continue
                since = min(self._pending.values()) - 2.0
                # Only the submissions not seen yet: an answer carries each row once, so the
                # poll costs the worker (which serves it) little even while it lags.
                wanted = ",".join(f"'{event_id}'" for event_id in self._pending)
            millis = int(since * 1000)
            sql = (
                f"SELECT event_id FROM {db}.readings_log WHERE ingested_at >= "
                f"fromUnixTimestamp64Milli(toInt64({millis}), 'UTC') "
                f"AND event_id IN ({wanted}) UNION ALL "
                f"SELECT event_id FROM {db}.rejections_log WHERE rejected_at >= "
                f"fromUnixTimestamp64Milli(toInt64({millis}), 'UTC') AND event_id IN ({wanted})"
            )
            found: set[str] = set()
            try:
                for worker in self.workers:
                    found.update(str(row[0]) for row in worker.query(sql))
            except PokazyError:
                self.errors += 1
                continue
            answered = time.time()
            with self._lock:
                for event_id in found & self._pending.keys():
                    del self._pending[event_id]
                    self.seen[event_id] = answered


class ReplyListener:
    """Reads the replies topic in a thread, from its end; records when each event's first reply
    reached the benchmark (the moment `poll` handed it over), whatever its status.

    The end is resolved before `__enter__` returns, so every reply to a submission published
    after it is read, and none that came before.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: dict[str, float] = {}
        self.undecodable = 0
        self._codec = default_codec()
        self._consumer = kafka_python_client(
            KafkaConsumer, settings, client_id="pokazy-bench-replies", enable_auto_commit=False
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replies", daemon=True)

    def __enter__(self) -> ReplyListener:
        topic = self.settings.topic("replies")
        partitions = [
            KafkaTopicPartition(topic, p)
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            self._consumer.position(tp)  # seek_to_end is lazy: fix the start now
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def missing(self, event_ids: Iterable[str]) -> int:
        """How many of `event_ids` have no reply yet."""
        with self._lock:
            return sum(1 for event_id in event_ids if event_id not in self.received)

    def _loop(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=100)
            received = time.time()
            event_ids = []
            for records in batches.values():
                for record in records:
                    try:
                        _, datum = self._codec.decode(record.value or b"")
                    except DecodeError:
                        self.undecodable += 1
                        continue
                    event_ids.append(str(datum["event_id"]))
            with self._lock:
                for event_id in event_ids:
                    self.received.setdefault(event_id, received)


def _latency(run: BenchRun, producer: BillingProducer, traffic: Traffic) -> LatencyFigures:
    options = run.options
    workers = run.workers[: options.workers]
    sent_submissions = sent_readings = 0
    with ReplyListener(run.settings) as replies, VisibilityPoller(run, workers) as poller:
        started = time.monotonic()
        finish = started + options.latency_seconds
        while (now := time.monotonic()) < finish:
            while sent_readings < options.latency_rate * (now - started):
                submission = traffic.submission()
                published = time.time()
                producer.submit(submission, wait=False)
                poller.published_at(submission["event_id"], published)
                sent_submissions += 1
                sent_readings += len(submission["readings"])
            time.sleep(PACE_TICK)
        seconds = time.monotonic() - started
        producer.flush()
        deadline = time.monotonic() + options.timeout
        while (poller.pending or replies.missing(poller.published)) and (
            time.monotonic() < deadline
        ):
            time.sleep(POLL_INTERVAL)
    latencies = _latencies_ms(poller.published, poller.seen)
    reply_latencies = _latencies_ms(poller.published, replies.received)
    if replies.undecodable:
        run.say(f"[red]{replies.undecodable} replies could not be decoded[/]")
    return LatencyFigures(
        target_readings_per_s=options.latency_rate,
        achieved_readings_per_s=_rate(sent_readings, seconds),
        seconds=seconds,
        submissions=sent_submissions,
        readings=sent_readings,
        measured=len(poller.published),
        unseen=len(poller.published) - len(poller.seen),
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else None,
        poll_interval_ms=POLL_INTERVAL * 1000,
        reply_unseen=len(poller.published) - len(reply_latencies),
        reply_p50_ms=percentile(reply_latencies, 50),
        reply_p90_ms=percentile(reply_latencies, 90),
        reply_p99_ms=percentile(reply_latencies, 99),
        reply_max_ms=reply_latencies[-1] if reply_latencies else None,
    )


def _latencies_ms(published: dict[str, float], seen: dict[str, float]) -> list[float]:
    """Publication to sighting of each published event seen, in ms, ascending."""
    return sorted((seen[e] - at) * 1000 for e, at in published.items() if e in seen)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence (None if it is empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _state(settings: Settings, submissions: int, accounts: int) -> StateFigures:
    """Read the accounts table's changelog from the beginning: size, and live state per key."""
    topic = f"{settings.app_id}-accounts-changelog"
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    live: dict[bytes, int] = {}
    messages = total = 0
    try:
        partitions = [
            KafkaTopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    size = len(record.key or b"") + len(record.value or b"")
                    messages += 1
                    total += size
                    if record.value is None:
                        live.pop(record.key, None)
                    else:
                        live[record.key] = size
    finally:
        consumer.close()
    disk: int | None = None
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","), **settings.kafka_client_options()
    )
    try:
        disk = sum(
            partition["partition_size"]
            for broker in admin.describe_log_dirs([topic])
            for log_dir in broker["log_dirs"]
            for described in log_dir["topics"]
            if described["name"] == topic
            for partition in described["partitions"]
        )
    except Exception:  # DescribeLogDirs needs a cluster ACL a production user may lack
        disk = None
    finally:
        admin.close()
    live_bytes = sum(live.values())
    return StateFigures(
        store=settings.table_store,
        changelog_topic=topic,
        changelog_messages=messages,
        changelog_bytes=total,
        changelog_disk_bytes=disk,
        accounts_with_state=len(live),
        submissions_per_account=_rate(submissions, accounts),
        live_state_bytes=live_bytes,
        bytes_per_account=_rate(live_bytes, len(live)),
    )


def _recovery(
    run: BenchRun, producer: BillingProducer, traffic: Traffic, changelog_messages: int
) -> tuple[list[RecoveryFigures], float]:
    """Stop every worker, start one, time it; then SIGKILL it and time the next start."""
    for worker in run.workers:
        worker.stop()
    worker = run.workers[0]
    figures = [_restart(run, worker, producer, traffic, "SIGTERM", changelog_messages)]
    worker.kill()
    figures.append(_restart(run, worker, producer, traffic, "SIGKILL", changelog_messages))
    return figures, peak_rss_mib(worker.pid)


def _restart(
    run: BenchRun,
    worker: WorkerProcess,
    producer: BillingProducer,
    traffic: Traffic,
    stop: str,
    changelog_messages: int,
) -> RecoveryFigures:
    worker.start()
    healthy = worker.wait_healthy(run.options.timeout)
    probe = _known_account_submission(traffic)
    producer.submit(probe)
    sql = (
        f"SELECT count() FROM (SELECT event_id FROM {run.database}.readings_log UNION ALL "
        f"SELECT event_id FROM {run.database}.rejections_log) WHERE event_id = "
        f"'{probe['event_id']}'"
    )
    deadline = time.monotonic() + min(PROBE_TIMEOUT, run.options.timeout)
    seen: float | None = None
    while seen is None and time.monotonic() < deadline:
        if int(worker.query(sql)[0][0]):
            seen = time.time()
        else:
            time.sleep(POLL_INTERVAL)
    if seen is None:
        run.say(f"[red]after {stop}: the probe is not queryable; see {worker.log_path}[/]")
    return RecoveryFigures(
        stop=stop,
        health_seconds=healthy - worker.started_at,
        first_message_seconds=None if seen is None else seen - worker.started_at,
        stalled=seen is None,
        changelog_messages=changelog_messages,
        session_timeout_s=run.settings.kafka_session_timeout,
    )


def _known_account_submission(traffic: Traffic) -> dict[str, Any]:
    """The next submission of the traffic that is new and names a registered account."""
    known = {m["account_id"] for m in traffic.registry}
    while True:
        submission = traffic.submission()
        if submission["account_id"] in known:
            return {**submission, "event_id": str(uuid.uuid4())}


# --------------------------------------------------------------------------------------------
# Registry and period close: a pipeline of their own, so the close covers their accounts only
# --------------------------------------------------------------------------------------------


def _registry_and_close(run: BenchRun, traffic: Traffic) -> tuple[RegistryFigures, CloseFigures]:
    """Phases 6 and 7 on fresh topics, database and workers (under the run's prefix and dir)."""
    options, count = run.options, run.options.accounts_to_close
    if options.profile is not None:  # its own files, not the first run's
        stem = options.profile.with_name(f"{options.profile.stem}-close{options.profile.suffix}")
        options = dataclasses.replace(options, profile=stem)
    fresh = BenchRun(
        run.settings.model_copy(
            update={
                "topic_prefix": f"{run.settings.topic_prefix}close.",
                "clickhouse_database": f"{run.database}_close",
                "data_dir": run.settings.data_dir / "close",
            }
        ),
        options,
        run.console,
        broker_pid=run.broker_pid,
        kafka_version=run.kafka_version,
    )
    ensure_topics(fresh.settings)
    try:
        with BillingProducer(fresh.settings) as producer:
            run.say(f"phase 6: {count} registry events, published, then applied")
            started = time.time()
            for event in _new_meters(traffic, count):
                producer.publish_registry(event, wait=False)
            producer.flush()
            published = time.time() - started
            workers = fresh.start_workers(options.workers)
            registry = _registry(fresh, count, published)
            run.say(f"phase 7: a period close of {count} accounts")
            close = _close(fresh, producer, workers, traffic.first_period, count)
    finally:
        for worker in fresh.workers:
            worker.stop()
    return registry, close


def _new_meters(traffic: Traffic, count: int) -> Iterator[dict[str, Any]]:
    """`count` MeterInstalled events shaped as the traffic's registry, on accounts of their own.

    Installed on the first day of the traffic's first period: closing that period bills each
    account once, for its installation month (an estimate, as no reading came).
    """
    meters = [e for e in traffic.registry if e["type"] == "MeterInstalled"]
    installed_on = str(traffic.first_period.first_day)
    for n in range(count):
        yield {
            **meters[n % len(meters)],
            "account_id": f"{2_000_000_000 + n:010d}",
            "meter_id": f"N-{n:07d}",
            "installed_on": installed_on,
        }


def _work_timeout(options: BenchOptions, items: int) -> float:
    """A wait for `items` events or accounts: the run's timeout, plus time for a large run."""
    return options.timeout + items / SLOWEST_RATE


def _registry(run: BenchRun, count: int, publish_seconds: float) -> RegistryFigures:
    """Time the workers applying `count` registry events waiting for them on the topic.

    The span starts when the workers own every input partition (`wait_until_assigned`), so it
    leaves out their start-up and the publishing (the SDK validates and encodes each event,
    slower than the worker applies it), and ends when their committed offsets on the registry
    topic reach its end offsets (`wait_until_idle`): a worker commits an event only after the
    account's new state is in the table's changelog, so a committed event survives any crash.
    The workers' /metrics count an event when it is judged, before that, so they would flatter
    the figure. The span ends at a commit, so it includes up to one `commit_interval` (and a
    poll) of waiting.
    """
    wait_until_assigned(run.settings, run.options.workers, run.options.timeout)
    started = time.time()
    wait_until_idle(run.settings, _work_timeout(run.options, count))
    applied = time.time()
    return RegistryFigures(
        workers=run.options.workers,
        events=count,
        publish_seconds=publish_seconds,
        seconds=applied - started,
        events_per_s=_rate(count, applied - started),
        commit_interval_s=run.settings.commit_interval,
    )


def _close(
    run: BenchRun,
    producer: BillingProducer,
    workers: Sequence[WorkerProcess],
    period: Period,
    accounts: int,
) -> CloseFigures:
    """Request the close of `period` as billing does; time until each account has a row.

    The polls read `billing_log`, which holds a row as soon as it is inserted: an account
    with a row there has one in the `billing` view (FINAL only collapses a replayed twin),
    and the log costs the worker's ClickHouse thread, which also writes the close, less.
    """
    db = run.database
    billed = f"SELECT uniqExact(account_id) FROM {db}.billing_log WHERE period = '{period}'"
    started = time.time()
    partitions = producer.request_period_close(period, "pokazy bench")
    deadline = time.monotonic() + _work_timeout(run.options, accounts)
    while run.sum_over_workers(workers, billed) < accounts:
        if time.monotonic() > deadline:
            raise PokazyError(f"phase 7: not every account billed for {period} in time")
        time.sleep(CLOSE_POLL_INTERVAL)
    queryable = time.time()
    peak = [round(peak_rss_mib(w.pid), 1) for w in workers]
    return CloseFigures(
        workers=run.options.workers,
        store=run.settings.table_store,
        period=str(period),
        partitions=partitions,
        accounts=accounts,
        seconds=queryable - started,
        accounts_per_s=_rate(accounts, queryable - started),
        billing_rows=run.sum_over_workers(
            workers, f"SELECT count() FROM {db}.billing WHERE period = '{period}'"
        ),
        poll_interval_s=CLOSE_POLL_INTERVAL,
        peak_rss_mib=peak,
        rss_bytes_per_account=round(sum(peak) * 2**20 / max(1, accounts), 1),
    )


# --------------------------------------------------------------------------------------------
# The raw baseline: its own process, like a worker, so it pays the same process costs
# --------------------------------------------------------------------------------------------


def _baseline(run: BenchRun, ends: dict[int, int], readings: int) -> tuple[BaselineFigures, float]:
    settings = run.settings
    if settings.embedded_clickhouse:
        raw = settings.model_copy(
            update={
                "clickhouse_url": SecretStr(f"chdb://{settings.data_dir / 'raw' / 'clickhouse'}"),
                "clickhouse_database": f"{settings.clickhouse_database}_raw",
            }
        )
    else:
        raw = settings.model_copy(
            update={"clickhouse_database": f"{settings.clickhouse_database}_raw"}
        )
    (settings.data_dir / "raw").mkdir(parents=True, exist_ok=True)
    started = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.tools.bench",
            "raw-baseline",
            orjson.dumps({str(p): e for p, e in ends.items()}).decode(),
        ],
        env=child_env(raw),
        capture_output=True,
        timeout=run.options.timeout,
        check=False,
    )
    if result.returncode != 0:
        raise PokazyError(
            "the raw baseline failed:\n" + result.stderr.decode(errors="replace")[-3000:]
        )
    done = orjson.loads(result.stdout.splitlines()[-1])
    processing = done["done"] - done["first"]
    return (
        BaselineFigures(
            readings=done["readings"],
            rows=done["rows"],
            processing_seconds=processing,
            readings_per_s=_rate(readings, processing),
            seconds_from_start=done["done"] - started,
            cpu_seconds=done["cpu_seconds"],
            batch_rows=settings.sink_batch_rows,
        ),
        done["peak_rss_mib"],
    )


def raw_rows(datum: dict[str, Any], key: bytes, now: datetime) -> list[Row]:
    """`readings` rows straight from a decoded submission: every reading, unjudged."""
    hashed = sender_hash(key, datum["channel"], datum["sender_id"])
    at: datetime = datum["submitted_at"]
    event_id, account_id, channel = datum["event_id"], datum["account_id"], datum["channel"]
    meter_id = datum.get("meter_id") or ""
    # The columns of READING_COLUMNS; kind, period and kwh are what judging would add.
    return [
        (event_id, account_id, meter_id, r.get("zone") or "", r.get("register"),
         max(0, r["value"]), "", "", at.date(), at, channel, hashed, None, [], now)
        for r in datum["readings"]
    ]  # fmt: skip


async def _raw_consume(settings: Settings, ends: dict[int, int]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topic("readings")
    clickhouse = ClickHouse(settings.clickhouse_dsn, settings.clickhouse_database)
    clickhouse.migrate()
    sink = ClickHouseSink(clickhouse)
    codec = default_codec()
    key = settings.sender_hash_key.get_secret_value().encode()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=f"{settings.topic_prefix}raw-baseline",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_options(settings),
    )
    partitions = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
    position = {p: 0 for p in ends}
    first: float | None = None
    readings = rows = 0
    oldest: float | None = None
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while any(position[p] < end for p, end in ends.items()):
            batches = await consumer.getmany(timeout_ms=100)
            now = datetime.now(UTC)
            for tp, messages in batches.items():
                position[tp.partition] = await consumer.position(tp)
                for message in messages:
                    if message.offset >= ends[tp.partition]:
                        continue  # published after phase 1: not the baseline's work
                    first = first or time.time()
                    oldest = oldest or time.monotonic()
                    try:
                        _, datum = codec.decode(message.value or b"")
                    except DecodeError:
                        continue
                    built = raw_rows(datum, key, now)
                    readings += len(datum["readings"])
                    rows += len(built)
                    sink.add(readings=built)
            due = oldest is not None and time.monotonic() - oldest >= settings.sink_flush_interval
            if sink.pending_rows >= settings.sink_batch_rows or due:
                await sink.flush()
                await consumer.commit()
                oldest = None
        await sink.flush()
        await consumer.commit()
    finally:
        await consumer.stop()
        sink.close()
    return {
        "first": first or time.time(),
        "done": time.time(),
        "readings": readings,
        "rows": rows,
        "cpu_seconds": sum(os.times()[:2]),
        "peak_rss_mib": peak_rss_mib(os.getpid()),
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _machine(run: BenchRun, load_before: list[float]) -> MachineFigures:
    settings = run.settings
    packages = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    return MachineFigures(
        cores=os.cpu_count(),
        cpu_model=_cpu_model(),
        platform=platform.platform(),
        python=platform.python_version(),
        packages=packages,
        kafka_version=run.kafka_version,
        kafka_bootstrap=settings.kafka_bootstrap,
        clickhouse=(
            f"chdb {packages.get('chdb', '?')} (embedded)"
            if settings.embedded_clickhouse
            else settings.clickhouse_display
        ),
        load_average_before=load_before,
        load_average_after=list(os.getloadavg()),
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _kafka_version(settings: Settings) -> str:
    """The local broker's release from pom.xml, else the version the broker's APIs suggest."""
    if local_kafka(settings).status().answering:
        return kafka_version()
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","), **settings.kafka_client_options()
    )
    try:
        node = admin.describe_cluster()["brokers"][0]["broker_id"]
        version = admin.get_broker_version_data(node).broker_version
        return ">= " + ".".join(map(str, version)) + " (from its API versions)"
    except Exception:
        return "unknown"
    finally:
        admin.close()


def _print_report(report: BenchReport, console: Console) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} ms"

    t, p, lat, b = report.throughput, report.publish, report.latency, report.baseline
    table = Table(title="pokazy bench", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("how", style="dim")
    rows: list[tuple[str, str, str]] = [
        ("end-to-end throughput", f"{t.readings_per_s:,.0f} readings/s",
         f"{t.readings:,} readings ({t.submissions:,} submissions), {t.workers} worker(s), "
         f"first judged → all queryable in {t.processing_seconds:.1f}s"),
        ("  publish", f"{t.publish_seconds:.1f} s",
         f"encoded first, sent in bulk to workers owning their partitions; all queryable "
         f"{t.seconds_from_publish:.1f}s after it began, idle (offsets committed) after "
         f"{t.idle_seconds_from_publish:.1f}s"),
        ("  worker CPU", f"{t.worker_cpu_per_reading_us:,.0f} µs/reading",
         f"{t.worker_cpu_seconds:.1f} s from the publish to all queryable, "
         f"{t.worker_busy_share:.0%} of a core per worker"
         + (f"; broker {t.broker_cpu_seconds:.1f} s" if t.broker_cpu_seconds is not None else "")),
        ("raw baseline", f"{b.readings_per_s:,.0f} readings/s",
         f"aiokafka + codec + rows + inserts, {b.processing_seconds:.1f}s, "
         f"{b.cpu_seconds:.1f} s CPU"),
        ("ratio to the baseline", f"{report.ratio_to_baseline:.2f}", "ours / raw"),
        *core_rows(report.core),
        ("latency p50", ms(lat.p50_ms),
         f"publish → queryable, {lat.measured:,} submissions at "
         f"{lat.achieved_readings_per_s:,.0f} readings/s for {lat.seconds:.0f}s"),
        ("latency p99", ms(lat.p99_ms),
         f"p90 {ms(lat.p90_ms)}, max {ms(lat.max_ms)}, unseen {lat.unseen}, "
         f"poll every {lat.poll_interval_ms:.0f} ms"),
        ("reply latency p50", ms(lat.reply_p50_ms),
         "publish → its SubmissionOutcome read from the replies topic, same submissions"),
        ("reply latency p99", ms(lat.reply_p99_ms),
         f"p90 {ms(lat.reply_p90_ms)}, max {ms(lat.reply_max_ms)}, unseen {lat.reply_unseen}"),
        ("SDK publish", f"{p.msgs_per_s:,.0f} msgs/s",
         f"{p.submissions:,} submissions in {p.seconds:.1f}s; registry "
         f"{p.registry_msgs_per_s:,.0f} msgs/s"),
        ("peak RSS", f"{max(report.memory.peak_rss_mib):,.0f} MiB",
         "VmHWM per worker: " + ", ".join(f"{v:,.0f}" for v in report.memory.peak_rss_mib)
         + f"; after restart {report.memory.peak_rss_mib_after_restart:,.0f}; "
         f"baseline {report.memory.baseline_peak_rss_mib:,.0f}"),
        ("state per account", f"{report.state.bytes_per_account:,.0f} B",
         f"{report.state.accounts_with_state:,} accounts, changelog "
         f"{report.state.changelog_messages:,} msgs / {report.state.changelog_bytes:,} B"
         + (f" ({report.state.changelog_disk_bytes:,} B on disk)"
            if report.state.changelog_disk_bytes is not None else "")
         + f", store {report.state.store}"),
    ]  # fmt: skip
    for r in report.recovery:
        # memory:// rebuilds from the whole changelog; rocksdb:// reopens its files and reads
        # only the changelog written since its last flush.
        rebuild = (
            f"replays {r.changelog_messages:,} changelog msgs"
            if report.state.store.startswith("memory")
            else f"reopens its store, then the tail of {r.changelog_messages:,} changelog msgs"
        )
        rows.append(
            (
                f"restart after {r.stop}",
                "stalled"
                if r.first_message_seconds is None
                else f"{r.first_message_seconds:.1f} s",
                f"/health after {r.health_seconds:.1f}s; {rebuild}; "
                f"session timeout {r.session_timeout_s:.0f}s",
            )
        )
    reg, close = report.registry, report.close
    rows += [
        ("registry events", f"{reg.events_per_s:,.0f} events/s",
         f"{reg.events:,} MeterInstalled waiting for {reg.workers} worker(s): partitions owned "
         f"→ offsets committed in {reg.seconds:.1f}s (published before, in "
         f"{reg.publish_seconds:.1f}s; commits every {reg.commit_interval_s:g}s)"),
        ("period close", f"{close.accounts_per_s:,.0f} accounts/s",
         f"{close.accounts:,} accounts, {close.period}: request → a billing row for each in "
         f"{close.seconds:.1f}s ({close.billing_rows:,} lines), {close.workers} worker(s), "
         f"store {close.store}; peak RSS {close.rss_bytes_per_account:,.0f} B/account "
         f"({sum(close.peak_rss_mib):,.0f} MiB)"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    m = report.machine
    console.print(
        f"[dim]{m.cores} cores, {m.cpu_model}, Python {m.python}, Kafka {m.kafka_version}, "
        f"{m.clickhouse}; load {m.load_average_before[0]:.2f} → {m.load_average_after[0]:.2f}[/]"
    )
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


def _clean_up(run: BenchRun) -> None:
    """Delete the run's topics and data (kept when the run failed, to look at its logs)."""
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(
            bootstrap_servers=run.settings.kafka_bootstrap.split(","),
            **run.settings.kafka_client_options(),
        )
        try:
            ours = [t for t in admin.list_topics() if t.startswith(run.settings.topic_prefix)]
            if ours:
                admin.delete_topics(ours)
        finally:
            admin.close()
    if run.shared_clickhouse:
        with contextlib.suppress(PokazyError):
            clickhouse = ClickHouse(run.settings.clickhouse_dsn, run.database)
            for name in (run.database, f"{run.database}_raw", f"{run.database}_close"):
                clickhouse.command(f"DROP DATABASE IF EXISTS {name}")
            clickhouse.close()
    shutil.rmtree(run.settings.data_dir, ignore_errors=True)


def _raw_baseline_main(argv: list[str]) -> None:
    """`python -m streams.tools.bench raw-baseline '{"0": end, ...}'`: prints figures as JSON."""
    ends = {int(p): int(end) for p, end in orjson.loads(argv[0]).items()}
    figures = asyncio.run(_raw_consume(Settings.from_env(), ends))
    sys.stdout.buffer.write(orjson.dumps(figures) + b"\n")


if __name__ == "__main__":
    if sys.argv[1:2] != ["raw-baseline"]:
        raise SystemExit("usage: python -m streams.tools.bench raw-baseline ENDS_JSON")
    _raw_baseline_main(sys.argv[2:])
