"""SPEC §4 on the real broker: faults that must leave the analyst views as an undisturbed run.

The undisturbed run is the domain core's own run over the same input (`ReferenceRun`); the
billing tests show that a worker left alone produces exactly it. Each test injects its faults
and compares `readings`, `rejections` and `billing` with it, row for row.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.topics import wait_until_assigned
from streams.domain.calendar import Period
from streams.errors import PokazyError
from streams.sdk.producer import BillingProducer
from streams.settings import Settings
from streams.tools.processes import WorkerProcess, free_port
from streams.tools.query import run_query
from streams.tools.stack import local_kafka
from tests.builders import simulated_month
from tests.commands import pokazy
from tests.integration.conftest import ROOT, TEST_BOOTSTRAP, Pipeline
from tests.integration.expected import (
    BILLING_SQL,
    READINGS_SQL,
    ReferenceRun,
    actual_billing,
    actual_readings,
)

PERIOD = Period(2023, 5)


def _month(accounts: int, seed: int) -> tuple[Any, ReferenceRun]:
    month = simulated_month(accounts, PERIOD, seed=seed)
    expected = ReferenceRun()
    expected.registry(month.registry)
    expected.submit(month.submissions)
    expected.close(PERIOD)
    return month, expected


def _publish(pipeline: Pipeline, events: list[dict[str, Any]], kind: str) -> None:
    with BillingProducer(pipeline.settings) as producer:
        for event in events:
            if kind == "registry":
                producer.publish_registry(event, wait=False)
            else:
                producer.submit(event, wait=False)


def _close(pipeline: Pipeline) -> None:
    with BillingProducer(pipeline.settings) as producer:
        producer.request_period_close(PERIOD, "test")


def _assert_views(rows: dict[str, list[dict[str, Any]]], expected: ReferenceRun) -> None:
    assert actual_readings(rows["readings"]) == expected.readings
    assert len(rows["readings"]) == len(expected.readings)
    assert {(r["event_id"], r["reason"]) for r in rows["rejections"]} == expected.rejections
    assert len(rows["rejections"]) == expected.rejection_rows
    assert actual_billing(rows["billing"]) == expected.billing
    assert len(rows["billing"]) == len(expected.billing)


# A row per rejected reading: two readings of one submission rejected for the same reason are
# two rows, told apart by their register (what `_distinct` keeps across two stores).
REJECTIONS_SQL = "SELECT event_id, reason, zone, register, value FROM {db}.rejections"


def _views(pipeline: Pipeline) -> dict[str, list[dict[str, Any]]]:
    return {
        "readings": pipeline.query(READINGS_SQL),
        "rejections": pipeline.query(REJECTIONS_SQL),
        "billing": pipeline.query(BILLING_SQL),
    }


def _get(port: str, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, bytes(exc.read())


def test_clickhouse_outage_is_retried_without_loss_and_reported(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    flag = tmp_path / "clickhouse-down"
    worker = pipeline.worker(POKAZY_FAULT_CLICKHOUSE_FLAG=str(flag), POKAZY_STALL_TIMEOUT="3")
    month, expected = _month(300, seed=21)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    flag.touch()
    _publish(pipeline, month.submissions, "readings")
    port = pipeline.env["POKAZY_WEB_PORT"]
    deadline = time.monotonic() + 60
    while (status := _get(port, "/health"))[0] != 503:
        assert time.monotonic() < deadline, f"never reported the outage: {status}"
        time.sleep(0.5)
    assert orjson.loads(status[1])["status"] == "stalled"
    metrics = _get(port, "/metrics")[1].decode()
    retries = [
        line for line in metrics.splitlines() if line.startswith("pokazy_sink_retries_total")
    ]
    assert retries and float(retries[0].split()[-1]) > 0
    with pytest.raises(PokazyError, match="not idle"):
        pipeline.wait_idle(timeout=3)  # nothing is committed past the unwritten rows
    assert worker.process is not None and worker.process.poll() is None
    assert "ClickHouse insert failed" in worker.log_path.read_text()

    flag.unlink()
    pipeline.wait_idle()
    _close(pipeline)
    pipeline.wait_idle()
    assert _get(port, "/health")[0] == 200
    _assert_views(_views(pipeline), expected)


def _alter(pipeline: Pipeline, statement: str) -> None:
    """Change a table by hand, as an operator would, while no worker holds the store (from a
    process of its own: chdb allows one directory per process)."""
    script = (
        "import sys; from streams.adapters.clickhouse import ClickHouse; "
        "store = ClickHouse(sys.argv[1], sys.argv[2]); store.command(sys.argv[3]); store.close()"
    )
    dsn, database = pipeline.settings.clickhouse_dsn, pipeline.database
    subprocess.run(
        [sys.executable, "-c", script, dsn, database, statement.replace("{db}", database)],
        cwd=ROOT, env=pipeline.env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_rows_clickhouse_refuses_for_good_stop_the_worker_until_the_table_is_fixed(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker()
    month, expected = _month(300, seed=27)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    worker.stop()
    # A column renamed by hand: no readings row fits the table any more.
    _alter(pipeline, "ALTER TABLE {db}.readings_log RENAME COLUMN kwh TO kwh_by_hand")
    worker = pipeline.worker()
    _publish(pipeline, month.submissions, "readings")
    assert worker.process is not None
    try:
        worker.process.wait(120)  # stops by itself, rather than retry for ever
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker kept running; log:\n{worker.log_tail()}") from None
    assert "ClickHouse refuses a batch's rows for good" in worker.log_path.read_text()
    with pytest.raises(PokazyError, match="not idle"):
        pipeline.wait_idle(timeout=3)  # nothing committed past the refused rows

    _alter(pipeline, "ALTER TABLE {db}.readings_log RENAME COLUMN kwh_by_hand TO kwh")
    pipeline.worker()
    pipeline.wait_idle()
    _close(pipeline)
    pipeline.wait_idle()
    _assert_views(_views(pipeline), expected)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "http://billing:S3cret-Pw_9@127.0.0.1:{port}/",
            "error: cannot open ClickHouse at http://billing:***@127.0.0.1:{port}/: ",
        ),
        (
            "http://billing@127.0.0.1:{port}/?password=S3cret-Pw_9",
            "error: cannot use the ClickHouse URL http://billing@127.0.0.1:{port}/?password=***: ",
        ),
    ],
    ids=["user-password", "query-password"],
)
def test_a_worker_that_cannot_use_clickhouse_names_it_without_the_password(
    pipeline: Pipeline, url: str, error: str
) -> None:
    port = free_port()  # nothing listens there
    result = pokazy({**pipeline.env, "POKAZY_CLICKHOUSE_URL": url.format(port=port)}, "worker")

    assert result.returncode == 1
    assert "S3cret-Pw_9" not in result.stdout + result.stderr
    # clickhouse-connect may log a line of its own before pokazy's error, which ends stderr.
    assert result.stderr.strip().splitlines()[-1].startswith(error.format(port=port))


def test_broker_restart_mid_stream_is_survived(pipeline: Pipeline) -> None:
    pipeline.worker()
    month, expected = _month(600, seed=22)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    half = len(month.submissions) // 2
    _publish(pipeline, month.submissions[:half], "readings")
    broker = local_kafka(
        Settings(kafka_bootstrap=TEST_BOOTSTRAP, data_dir=ROOT / ".pokazy" / "test")
    )
    broker.down()
    time.sleep(3)
    broker.up()
    _publish(pipeline, month.submissions[half:], "readings")
    pipeline.wait_idle(timeout=300)
    _close(pipeline)
    pipeline.wait_idle()
    _assert_views(_views(pipeline), expected)


def test_the_same_input_and_close_published_twice_change_nothing(pipeline: Pipeline) -> None:
    """The whole month, its close included, published a second time after the first landed."""
    pipeline.worker()
    month, expected = _month(600, seed=26)
    for _ in range(2):
        _publish(pipeline, month.registry, "registry")
        pipeline.wait_idle()
        _publish(pipeline, month.submissions, "readings")
        pipeline.wait_idle()
        _close(pipeline)
        pipeline.wait_idle()
        _assert_views(_views(pipeline), expected)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_worker_killed_three_times_including_mid_insert_and_mid_close(
    pipeline: Pipeline, store: str, tmp_path: Path
) -> None:
    # memory:// rebuilds the table from the changelog on every start; rocksdb:// reopens its
    # files and replays only the changelog's tail, so it is the one state ahead of its offsets.
    # While `hold` exists, an insert is written and then does not return
    # (streams.adapters.clickhouse).
    # Batches of 500 rows make the close write its billing in several inserts, so one kill can
    # come between them.
    hold = tmp_path / "hold-inserts"
    worker = pipeline.worker(
        POKAZY_TABLE_STORE=store,
        POKAZY_FAULT_CLICKHOUSE_HOLD=str(hold),
        POKAZY_SINK_BATCH_ROWS="500",
    )
    month, expected = _month(3000, seed=23)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    # 1: inside an insert: ClickHouse has the first rows of the file, the worker has not heard
    # back, and nothing of the file is acknowledged.
    hold.touch()
    _publish(pipeline, month.submissions, "readings")
    held = _wait_until_held(worker, hold)
    worker.kill()
    hold.unlink()
    landed = _landed(pipeline)
    assert landed[held] > 0, f"the held insert into {held} did not land"
    assert landed["readings_log"] < len(expected.readings), "the whole file was already written"
    worker.run()
    # 2: at a random moment of the rest of the file.
    time.sleep(random.uniform(0.5, 3.0))
    worker.kill()
    worker.run()
    pipeline.wait_idle(timeout=300)
    # 3: inside the period close, between its billing inserts.
    hold.touch()
    _close(pipeline)
    assert _wait_until_held(worker, hold) == "billing_log"
    worker.kill()
    hold.unlink()
    billed = _landed(pipeline)["billing_log"]
    assert 0 < billed < len(expected.billing), f"{billed} of {len(expected.billing)} billed"
    worker.run()
    pipeline.wait_idle(timeout=300)
    _assert_views(_views(pipeline), expected)


def _wait_until_held(worker: WorkerProcess, hold: Path, timeout: float = 120) -> str:
    """The table whose insert the worker is held in, once it is (it writes it into `hold`)."""
    deadline = time.monotonic() + timeout
    while not (held := hold.read_text()).endswith("\n"):
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"no insert held within {timeout}s"
        time.sleep(0.05)
    return held.strip()


def _landed(pipeline: Pipeline) -> dict[str, int]:
    """Rows in each log table, counted by a `pokazy sql` process while no worker runs.

    That process opens the embedded store itself; the test process must not (chdb allows one
    directory per process, and the test's other pipelines need theirs).
    """
    query = ", ".join(
        f"(SELECT count() FROM {pipeline.database}.{table}) AS {table}"
        for table in ("readings_log", "rejections_log", "billing_log")
    )
    result = pokazy(pipeline.env, "sql", f"SELECT {query}", "--format", "json", check=True)
    return {table: int(n) for table, n in orjson.loads(result.stdout).items()}


def test_a_second_worker_joining_and_leaving_moves_partitions_and_state(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    first = pipeline.worker()
    month, expected = _month(3000, seed=24)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    # The second worker has its own embedded ClickHouse (one process per chdb directory), so
    # the views are the union of both stores; with a ClickHouse server they would share one.
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second_settings = pipeline.settings.model_copy(
        update={"data_dir": second_dir, "web_port": free_port()}
    )
    second = pipeline.worker(
        POKAZY_DATA_DIR=str(second_dir), POKAZY_WEB_PORT=str(second_settings.web_port)
    )
    # Both own partitions before the readings come: one worker alone judges the month in
    # about a second, and would leave the second nothing to do.
    wait_until_assigned(pipeline.settings, 2, timeout=120)
    _publish(pipeline, month.submissions, "readings")
    # Joined: it processes the partitions it was given, with the registry state it recovered
    # from their changelog (otherwise its readings would all be UNKNOWN_ACCOUNT).
    deadline = time.monotonic() + 120
    while not _count(second_settings, pipeline.database, "readings_log"):
        assert time.monotonic() < deadline, "the second worker never processed a reading"
        time.sleep(0.2)
    second.stop()  # leaves: its partitions, and their table state, move back to the first
    pipeline.wait_idle(timeout=300)
    _close(pipeline)
    pipeline.wait_idle()
    assert first.process is not None and first.process.poll() is None

    views = _views(pipeline)
    for name, sql in (
        ("readings", READINGS_SQL),
        ("rejections", REJECTIONS_SQL),
        ("billing", BILLING_SQL),
    ):
        columns, rows = run_query(second_settings, sql.replace("{db}", pipeline.database))
        views[name] = _distinct(views[name] + [dict(zip(columns, r, strict=True)) for r in rows])
    _assert_views(views, expected)


def _count(settings: Settings, database: str, table: str) -> int:
    # Through the running worker only: a worker restarted must find its store free.
    _, rows = run_query(settings, f"SELECT count() FROM {database}.{table}", through_worker=True)
    return int(rows[0][0])


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[bytes, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(orjson.dumps(row, default=str, option=orjson.OPT_SORT_KEYS), row)
    return list(seen.values())


def test_a_worker_started_on_a_backlog_processes_all_of_it(pipeline: Pipeline) -> None:
    # faust's start-up seek races its fetcher and can skip fetched offsets
    # (streams/pipeline/faust_fixes.py).
    worker = pipeline.worker()
    month, expected = _month(1500, seed=25)
    _publish(pipeline, month.registry, "registry")
    pipeline.wait_idle()
    worker.stop()
    _publish(pipeline, month.submissions, "readings")
    _close(pipeline)
    worker.run()
    pipeline.wait_idle(timeout=120)
    _assert_views(_views(pipeline), expected)
