"""The analyst contract (SPEC §3.4) on simulated traffic through the real broker and a worker.

Three simulated months of 300 accounts (with the customers' mistakes, the bots' retries and
messages that are not submissions at all) go through a real worker the way billing runs a
month: the registry, then each month's submissions, the close of the month; then the last
month is sent again, as a replay. Every view is then
compared with figures recomputed here from the domain core's own outputs (`ViewsReference`),
row for row for the tables and cell for cell for the aggregates: no duplicates, nothing lost.
Last, `pokazy sql` must refuse to write, through the worker and on the embedded store itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.avro import default_codec
from streams.adapters.decode import READING_SUBMITTED, decode_inbound
from streams.adapters.topics import publish_raw
from streams.domain.calendar import Period, kyiv_date
from streams.domain.model import Rules, Submission
from streams.domain.validation import apply_submission
from streams.errors import DecodeError
from streams.sdk.producer import BillingProducer
from streams.settings import DEVELOPMENT_SENDER_HASH_KEY
from streams.tools.query import run_query
from streams.tools.report import build_report, write_chart
from streams.tools.simulate import Simulation, simulate
from tests.commands import pokazy
from tests.integration.conftest import Pipeline, new_pipeline
from tests.integration.expected import BILLING_SQL, ReferenceRun, actual_billing

Row = tuple[Any, ...]
ACCOUNTS = 300
MONTHS = 3
SEED = 20230501


@dataclass
class ViewsReference(ReferenceRun):
    """`ReferenceRun` that keeps every column the views show, keyed as ClickHouse keys rows.

    A row written twice (a bot's retry re-emits its first outcome) lands on the same key, as it
    does in the ReplacingMergeTree tables, so the dicts hold exactly what the views must show.
    Messages are judged as the worker judges them: undecodable bytes, or a key that is not the
    message's account, are one MALFORMED row keyed by the payload's hash.
    """

    sender_key: bytes = DEVELOPMENT_SENDER_HASH_KEY.encode()
    # (account_id, event_id, zone) -> the `readings` row
    reading_rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    # "<event_id>:<position>" or "sha256:<payload>" -> the `rejections` row
    rejection_keys: dict[str, Row] = field(default_factory=dict)

    def submit(self, submissions: Iterable[Mapping[str, Any]]) -> None:
        codec = default_codec()
        for obj in submissions:
            payload = codec.encode(READING_SUBMITTED, codec.from_json(READING_SUBMITTED, obj))
            self.message(str(obj["account_id"]).encode(), payload)

    def message(self, key: bytes | None, payload: bytes) -> None:
        """One message on the readings topic, as the worker processes it."""
        try:
            submission = decode_inbound(payload)
        except DecodeError:
            self._unjudgeable(payload)
            return
        assert isinstance(submission, Submission)
        if key != submission.account_id.encode():
            self._unjudgeable(payload)
            return
        account = submission.account_id
        state, outcome, _ = apply_submission(
            self.states.get(account), submission, now=self.now, rules=Rules()
        )
        if state is not None:
            self.states[account] = state
        sender = self._sender_hash(submission.channel, submission.sender_id)
        at_ms = _milliseconds(submission.submitted_at)
        for r in outcome.accepted:
            self.reading_rows[(account, submission.event_id, str(r.zone))] = (
                submission.event_id, account, r.meter_id, str(r.zone), r.register, r.value,
                str(r.kind), str(r.period), r.local_date, at_ms, submission.channel, sender,
                r.kwh, tuple(r.flags),
            )  # fmt: skip
        sent_in = str(Period.of(kyiv_date(submission.submitted_at)))
        for r in outcome.rejected:
            self.rejection_keys[f"{submission.event_id}:{r.position}"] = (
                submission.event_id, account, None if r.zone is None else str(r.zone),
                r.register, r.value, str(r.reason), submission.channel, sender, at_ms, sent_in,
                payload.hex().upper(),
            )  # fmt: skip

    def _unjudgeable(self, payload: bytes) -> None:
        self.rejection_keys[f"sha256:{hashlib.sha256(payload).hexdigest()}"] = (
            "", "", None, None, None, "MALFORMED", "", "", None, "", payload.hex().upper(),
        )  # fmt: skip

    def _sender_hash(self, channel: str, sender_id: str) -> str:
        # SPEC §3.4: HMAC-SHA256 with the configured key of channel + sender_id.
        return hmac.new(self.sender_key, f"{channel}:{sender_id}".encode(), "sha256").hexdigest()

    # --- The aggregates, from the rows above and the core's billing lines ------------------

    def billing_monthly(self) -> set[Row]:
        accounts: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        kwh: Counter[tuple[str, str, str]] = Counter()
        for account, _, period, zone, basis, _, _, line_kwh, _ in self.billing:
            accounts[(period, zone, basis)].add(account)
            kwh[(period, zone, basis)] += line_kwh
        return {(*cell, len(accounts[cell]), kwh[cell]) for cell in accounts}

    def submissions_daily(self) -> set[Row]:
        events: dict[tuple[date, str], set[str]] = defaultdict(set)
        accepted: Counter[tuple[date, str]] = Counter()
        rejected: Counter[tuple[date, str]] = Counter()
        for row in self.reading_rows.values():
            day = (row[8], row[10])
            events[day].add(row[0])
            accepted[day] += 1
        for row in self.rejection_keys.values():
            if row[8] is None:
                continue  # no submission time: not a day's submission
            day = (kyiv_date(datetime.fromtimestamp(row[8] / 1000, tz=UTC)), row[6])
            events[day].add(row[0])
            rejected[day] += 1
        return {(d, c, len(e), accepted[(d, c)], rejected[(d, c)]) for (d, c), e in events.items()}

    def rejection_reasons(self) -> set[Row]:
        counts = Counter((row[9], row[5]) for row in self.rejection_keys.values())
        return {(period, reason, n) for (period, reason), n in counts.items()}


def _milliseconds(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


# --- The run -------------------------------------------------------------------------------------


@dataclass
class Run:
    pipeline: Pipeline
    expected: ViewsReference
    simulation: Simulation


@pytest.fixture(scope="module")
def run(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    pipeline = new_pipeline(broker, tmp_path_factory.mktemp("views"))
    sim = simulate(ACCOUNTS, MONTHS, seed=SEED)
    expected = ViewsReference()
    registry = sim.registry_events()
    expected.registry(registry)
    pipeline.worker()
    try:
        with BillingProducer(pipeline.settings) as producer:
            for event in registry:
                producer.publish_registry(event, wait=False)
        pipeline.wait_idle()
        batches, after_last_window = sim.by_close()
        for period, submissions in batches:
            expected.submit(submissions)
            with BillingProducer(pipeline.settings) as producer:
                for submission in submissions:
                    producer.submit(submission, wait=False)
            pipeline.wait_idle()
            expected.close(period)
            with BillingProducer(pipeline.settings) as producer:
                producer.request_period_close(period, "test")
            pipeline.wait_idle()
        # The late readings of the last period: off-window readings of a period still open.
        expected.submit(after_last_window)
        with BillingProducer(pipeline.settings) as producer:
            for submission in after_last_window:
                producer.submit(submission, wait=False)
        _publish_malformed(pipeline, sim, expected)
        pipeline.wait_idle()
        # A front end re-sends the last month after its close (a replay): every submission is
        # a duplicate whose rows are written again, and the views must not show them twice.
        replayed = batches[-1][1]
        expected.submit(replayed)
        with BillingProducer(pipeline.settings) as producer:
            for submission in replayed:
                producer.submit(submission, wait=False)
        pipeline.wait_idle()
        yield Run(pipeline, expected, sim)
    finally:
        for worker in pipeline.workers:
            worker.stop()


def _publish_malformed(pipeline: Pipeline, sim: Simulation, expected: ViewsReference) -> None:
    """What a broken front end puts on the readings topic, byte for byte, keyed as it was."""
    messages = sim.malformed_messages()
    for key, value in messages:
        expected.message(key, value)
    publish_raw(pipeline.settings, "readings", messages)


# --- One test per view ---------------------------------------------------------------------------

READINGS_VIEW_SQL = (
    "SELECT event_id, account_id, meter_id, zone, register, value, kind, period, "
    "toString(local_date) AS day, toUnixTimestamp64Milli(submitted_at) AS at_ms, channel, "
    "sender_hash, kwh, flags FROM {db}.readings"
)
REJECTIONS_VIEW_SQL = (
    "SELECT event_id, account_id, zone, register, value, reason, channel, sender_hash, "
    "toUnixTimestamp64Milli(submitted_at) AS at_ms, period, hex(payload) AS payload_hex "
    "FROM {db}.rejections"
)


def _values(rows: list[dict[str, Any]]) -> list[Row]:
    return [tuple(tuple(v) if isinstance(v, list) else v for v in row.values()) for row in rows]


def test_the_simulation_covers_what_the_views_summarise(run: Run) -> None:
    expected = run.expected
    reasons = {row[5] for row in expected.rejection_keys.values()}
    assert {"MALFORMED", "UNKNOWN_ACCOUNT", "ZONES_SWAPPED", "TOTAL_NOT_ACCEPTED"} <= reasons
    assert {row[4] for row in expected.billing} >= {"actual", "calculated", "estimated"}
    assert {row[10] for row in expected.reading_rows.values()} >= {"viber", "telegram"}
    assert len(expected.reading_rows) > 2 * ACCOUNTS


def test_readings_shows_each_accepted_reading_once(run: Run) -> None:
    rows = _values(run.pipeline.query(READINGS_VIEW_SQL))
    expected = [(*row[:8], str(row[8]), *row[9:]) for row in run.expected.reading_rows.values()]
    assert len(rows) == len(expected)
    assert set(rows) == set(expected)


def test_rejections_shows_each_rejection_once_with_its_payload(run: Run) -> None:
    rows = _values(run.pipeline.query(REJECTIONS_VIEW_SQL))
    assert len(rows) == len(run.expected.rejection_keys)
    assert set(rows) == set(run.expected.rejection_keys.values())


def test_billing_equals_the_core(run: Run) -> None:
    rows = run.pipeline.query(BILLING_SQL)
    assert len(rows) == len(run.expected.billing)
    assert actual_billing(rows) == run.expected.billing


def test_billing_monthly_equals_the_core(run: Run) -> None:
    rows = _values(
        run.pipeline.query("SELECT period, zone, basis, accounts, kwh FROM {db}.billing_monthly")
    )
    expected = run.expected.billing_monthly()
    assert len(rows) == len(expected)
    assert set(rows) == expected
    periods = {row[0] for row in rows}
    assert {str(p) for p in run.simulation.closes} <= periods


def test_submissions_daily_equals_the_core(run: Run) -> None:
    rows = [
        (date.fromisoformat(str(r["local_date"])), r["channel"], r["submissions"],
         r["accepted"], r["rejected"])
        for r in run.pipeline.query("SELECT * FROM {db}.submissions_daily")
    ]  # fmt: skip
    expected = run.expected.submissions_daily()
    assert len(rows) == len(expected)
    assert set(rows) == expected
    # The bots' retries are in the traffic and counted once.
    assert sum(r[2] for r in rows) < len(run.simulation.submissions)


def test_rejection_reasons_equals_the_core(run: Run) -> None:
    rows = _values(run.pipeline.query("SELECT period, reason, count FROM {db}.rejection_reasons"))
    expected = run.expected.rejection_reasons()
    assert len(rows) == len(expected)
    assert set(rows) == expected
    assert ("", "MALFORMED") in {(p, r) for p, r, _ in rows}  # undecodable bytes: no period


def test_the_report_through_the_worker_shows_the_core_figures(run: Run, tmp_path: Path) -> None:
    settings = run.pipeline.settings
    last = run.simulation.closes[-1]
    report = build_report(lambda sql: run_query(settings, sql), settings.clickhouse_database, last)
    cells = {(str(c.period), c.zone, c.basis, c.accounts, c.kwh) for c in report.billing}
    assert cells == {row for row in run.expected.billing_monthly() if row[0] == str(last)}
    reasons = {(str(last), r.reason, r.count) for r in report.reasons}
    assert reasons == {row for row in run.expected.rejection_reasons() if row[0] == str(last)}
    window_days = {d.local_date for d in report.daily}
    assert window_days and window_days <= set(report.days)
    write_chart(report, tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- `pokazy sql` is read-only -------------------------------------------------------------------

WRITES = (
    "INSERT INTO {db}.billing_log (account_id, meter_id, period, zone) "
    "VALUES ('x', 'x', '2023-01', 'total')",
    "DROP TABLE {db}.billing_log",
    "DROP VIEW {db}.billing_monthly",
)


def _sql(pipeline: Pipeline, query: str) -> subprocess.CompletedProcess[str]:
    return pokazy(pipeline.env, "sql", query.replace("{db}", pipeline.database), "--format", "json")


def _assert_refused(pipeline: Pipeline) -> None:
    for query in WRITES:
        result = _sql(pipeline, query)
        assert result.returncode != 0, f"{query!r} was not refused: {result.stdout}"
        assert re.search(r"read-?only", result.stderr, re.IGNORECASE), result.stderr


def test_sql_refuses_writes_through_the_worker(run: Run) -> None:
    before = run.pipeline.query("SELECT count() AS n FROM {db}.billing")
    _assert_refused(run.pipeline)
    assert run.pipeline.query("SELECT count() AS n FROM {db}.billing") == before


def test_sql_refuses_writes_on_the_embedded_store(run: Run) -> None:
    """With no worker running, `pokazy sql` opens the chdb directory itself, read-only."""
    pipeline = run.pipeline
    for worker in pipeline.workers:
        worker.stop()
    try:
        _assert_refused(pipeline)
        counted = _sql(pipeline, "SELECT count() AS n FROM {db}.billing")
        assert orjson.loads(counted.stdout) == {"n": len(run.expected.billing)}
        tables = _sql(pipeline, "SELECT count() AS n FROM {db}.billing_monthly")
        assert orjson.loads(tables.stdout)["n"] == len(run.expected.billing_monthly())
    finally:
        pipeline.workers[-1].run()
