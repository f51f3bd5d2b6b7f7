"""`pokazy demo`: the main job end to end on the embedded default.

Simulates a few thousand households over several months, runs them through the local broker
and one worker into embedded ClickHouse, closes each period once its window is over, prints
the billing report and writes its chart. It starts what is not running and stops only what it
started.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress

from streams.adapters.topics import ensure_topics, publish_raw, wait_until_idle
from streams.domain.calendar import Period
from streams.sdk.producer import BillingProducer, PokazyProducer
from streams.settings import Settings
from streams.tools.processes import WorkerProcess
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
    worker = WorkerProcess(settings)
    try:
        worker.run()
        console.print(f"worker running (pid {worker.pid}, log {worker.log_path})")
        started = time.monotonic()
        with BillingProducer(settings) as billing:
            for event in sim.registry_events():
                billing.publish_registry(event, wait=False)
        # Master data first: a reading judged before its meter is known is UNKNOWN_ACCOUNT.
        wait_until_idle(settings, timeout=600)
        batches, late = sim.by_close()
        for period, due in batches:
            with PokazyProducer(settings) as producer:
                for submission in due:
                    producer.submit(submission, wait=False)
            wait_until_idle(settings, timeout=600)
            with BillingProducer(settings) as billing:
                billing.request_period_close(period, "demo")
            wait_until_idle(settings, timeout=600)
            console.print(f"{period}: {len(due)} submissions processed, period closed")
        with PokazyProducer(settings) as producer:
            for submission in late:
                producer.submit(submission, wait=False)
        publish_raw(settings, "readings", sim.malformed_messages())
        wait_until_idle(settings, timeout=600)
        console.print(
            f"{len(late)} late readings of {sim.closes[-1]} and {len(sim.malformed)} malformed "
            f"messages processed; all of it queryable in ClickHouse after "
            f"{time.monotonic() - started:.1f}s"
        )
        report = build_report(
            lambda sql: run_query(settings, sql), settings.clickhouse_database, None
        )
        render_report(report, console)
        chart = out / "pokazy-report.png"
        write_chart(report, chart)
    finally:
        worker.stop(timeout=30)
        if started_broker:
            broker.down()
    console.print(
        f"\nThe chart is {chart}. The data stays in {settings.clickhouse_display}; "
        "query it with, for example:\n"
        f'  pokazy sql "SELECT * FROM {settings.clickhouse_database}.billing_monthly"\n'
        f"  pokazy report --period {sim.closes[-1]} --png report.png"
    )
