"""`pokazy demo`: the main job end to end on the embedded default.

Simulates a few thousand households over several months, runs them through the local broker
and one worker into embedded ClickHouse, closes each period once its window is over, prints
the billing report and writes its chart. It starts what is not running and stops only what it
started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from rich.console import Console
from rich.progress import Progress

from streams.adapters.kafka_security import kafka_python_client
from streams.adapters.topics import ensure_topics, wait_until_idle
from streams.domain.calendar import Period, kyiv_date, submission_window
from streams.errors import PokazyError
from streams.sdk.producer import PokazyProducer
from streams.settings import Settings
from streams.tools.query import run_query
from streams.tools.report import build_report, render_report, write_chart
from streams.tools.simulate import simulate, write_simulation
from streams.tools.stack import local_kafka

DEMO_START = Period(2023, 3)  # March to May 2023: the window of the press release, 30 May - 3 June


def run_demo(settings: Settings, *, accounts: int, months: int, console: Console) -> None:
    out = settings.data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("simulating households", total=accounts)
        sim = simulate(
            accounts, months, seed=2023, start=DEMO_START, progress=lambda n: bar.advance(task, n)
        )
    files = write_simulation(sim, out)
    console.print(
        f"simulated {accounts} households over {months} months: {len(sim.submissions)} "
        f"submissions, {len(sim.malformed)} malformed messages ({files.submissions.parent})"
    )
    broker = local_kafka(settings)
    started_broker = not broker.status().answering
    if started_broker:
        console.print("starting the local Kafka broker (the first run fetches its jars)…")
    console.print(f"Kafka {broker.up().version} on {settings.kafka_bootstrap}")
    ensure_topics(settings)
    worker, log_path = _start_worker(settings)
    try:
        _wait_for_worker(settings, worker, log_path)
        console.print(f"worker running (pid {worker.pid}, log {log_path})")
        started = time.monotonic()
        with PokazyProducer(settings) as producer:
            for line in sim.registry:
                producer.publish_registry(orjson.loads(line), wait=False)
        # Master data first: a reading judged before its meter is known is UNKNOWN_ACCOUNT.
        wait_until_idle(settings, timeout=600)
        submissions = [orjson.loads(line) for line in sim.submissions]
        for period in sim.closes:
            due = [s for s in submissions if _local_date(s) <= submission_window(period)[1]]
            submissions = submissions[len(due) :]
            with PokazyProducer(settings) as producer:
                for submission in due:
                    producer.submit(submission, wait=False)
            wait_until_idle(settings, timeout=600)
            with PokazyProducer(settings) as producer:
                producer.request_period_close(period, "demo")
            wait_until_idle(settings, timeout=600)
            console.print(f"{period}: {len(due)} submissions processed, period closed")
        _publish_malformed(settings, sim.malformed)
        wait_until_idle(settings, timeout=600)
        console.print(f"all of it queryable in ClickHouse after {time.monotonic() - started:.1f}s")
        report = build_report(
            lambda sql: run_query(settings, sql), settings.clickhouse_database, None
        )
        render_report(report, console)
        chart = out / "pokazy-report.png"
        write_chart(report, chart)
    finally:
        _stop(worker)
        if started_broker:
            broker.down()
    console.print(
        f"\nThe chart is {chart}. The data stays in {settings.clickhouse_display}; "
        "query it with, for example:\n"
        f'  pokazy sql "SELECT * FROM {settings.clickhouse_database}.billing_monthly"\n'
        f"  pokazy report --period {sim.closes[-1]} --png report.png"
    )


def _local_date(submission: dict[str, Any]) -> Any:
    return kyiv_date(datetime.fromisoformat(str(submission["submitted_at"]).replace("Z", "+00:00")))


def _publish_malformed(settings: Settings, lines: list[bytes]) -> None:
    """What a buggy or hostile client sends: raw bytes the SDK would refuse."""
    producer = kafka_python_client(KafkaProducer, settings)
    try:
        for line in lines:
            message = orjson.loads(line)
            key = message.get("key")
            producer.send(
                settings.topic("readings"),
                key=key.encode() if key else None,
                value=bytes.fromhex(message["value_hex"]),
            )
        producer.flush()
    finally:
        producer.close()


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
