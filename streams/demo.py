"""`pokazy demo`: the whole path on the embedded default, from a bot's submission to ClickHouse.

Starts what is not running (the local broker, one worker), publishes a sample registry and a
month of submissions, waits until all of it is queryable, prints what landed, and stops only
what it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from streams.domain.calendar import Period
from streams.errors import PokazyError
from streams.sample import sample_month
from streams.settings import Settings

DEMO_PERIOD = Period(2023, 5)  # the month of the press release: window 30 May - 3 June 2023

SUMMARY_QUERIES = {
    "Accepted readings by period, kind and zone": """
        SELECT period, kind, zone, count() AS readings, uniqExact(account_id) AS accounts
        FROM {db}.readings GROUP BY period, kind, zone ORDER BY period, kind, zone""",
    "Rejections by reason": """
        SELECT reason, count() AS rejections FROM {db}.rejections
        GROUP BY reason ORDER BY rejections DESC, reason""",
    "Submissions per local day and channel": """
        SELECT local_date, channel, uniqExact(event_id) AS submissions
        FROM {db}.readings GROUP BY local_date, channel ORDER BY local_date, channel""",
}


def run_demo(settings: Settings, *, accounts: int, console: Console) -> None:
    from streams.cli import local_kafka, run_query, wait_until_idle
    from streams.producer import PokazyProducer
    from streams.topics import ensure_topics

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = local_kafka(settings)
    started_broker = not broker.status().answering
    if started_broker:
        console.print("starting the local Kafka broker (the first run fetches its jars)…")
    status = broker.up()
    console.print(f"Kafka {status.version} on {status.bootstrap}")
    ensure_topics(settings)
    worker, log_path = _start_worker(settings)
    try:
        _wait_for_worker(settings, worker, log_path)
        console.print(f"worker running (pid {worker.pid}, log {log_path})")
        month = sample_month(accounts, DEMO_PERIOD)
        with PokazyProducer(settings) as producer:
            for event in month.registry:
                producer.publish_registry(event, wait=False)
            producer.flush()
            # Master data first: a reading judged before its meter is known is UNKNOWN_ACCOUNT.
            wait_until_idle(settings, timeout=300)
            for submission in month.submissions:
                producer.submit(submission, wait=False)
        console.print(
            f"published {len(month.registry)} meters and {len(month.submissions)} submissions "
            f"for {DEMO_PERIOD}"
        )
        started = time.monotonic()
        wait_until_idle(settings, timeout=300)
        console.print(f"all of it queryable in ClickHouse after {time.monotonic() - started:.1f}s")
        for title, query in SUMMARY_QUERIES.items():
            columns, rows = run_query(settings, query.format(db=settings.clickhouse_database))
            table = Table(*columns, title=title)
            for row in rows:
                table.add_row(*(str(v) for v in row))
            console.print(table)
    finally:
        _stop(worker)
        if started_broker:
            broker.down()
    console.print(
        f"\nThe data stays in {settings.clickhouse_display}. Query it with, for example:\n"
        f'  pokazy sql "SELECT * FROM {settings.clickhouse_database}.rejections LIMIT 10"'
    )


def _start_worker(settings: Settings) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = settings.data_dir / "worker.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POKAZY_DATA_DIR": str(settings.data_dir)},
        )
    return process, log_path


def _wait_for_worker(
    settings: Settings, worker: subprocess.Popen[bytes], log_path: Path, timeout: float = 90
) -> None:
    """Until the worker's web endpoint answers (it starts after the ClickHouse migrations)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise PokazyError(f"the worker exited with {worker.returncode}; see {log_path}")
        try:
            url = f"http://127.0.0.1:{settings.web_port}/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                if orjson.loads(response.read()).get("status") == "ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise PokazyError(f"the worker did not start within {timeout:.0f}s; see {log_path}")


def _stop(worker: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
