"""`pokazy …` (also `python -m streams …`): the command line of every user of the pipeline."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from streams.adapters.topics import ensure_topics, wait_until_idle
from streams.cli.report import report_command
from streams.cli.simulate import simulate_command
from streams.domain.calendar import Period, is_closable, kyiv_date, submission_window
from streams.domain.model import Reason
from streams.errors import PokazyError
from streams.sdk.producer import BillingProducer
from streams.settings import Settings
from streams.tools.query import run_query
from streams.tools.replay import Replayed, replay_targets
from streams.tools.stack import local_kafka

# The worker (faust), the demo (matplotlib) and the benchmark are imported by their own
# commands: every other command would pay for them when `pokazy` starts.

app = typer.Typer(
    help="pokazy: meter readings from chat-bots into ClickHouse billing.", no_args_is_help=True
)
stack_app = typer.Typer(help="A real local Kafka broker (KRaft, 127.0.0.1).", no_args_is_help=True)
registry_app = typer.Typer(
    help="Billing master data: meters installed and removed.", no_args_is_help=True
)
rejections_app = typer.Typer(
    help="Rejected submissions, kept with their payloads.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(registry_app, name="registry")
app.add_typer(rejections_app, name="rejections")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return Settings.from_env()


@stack_app.command("up")
def stack_up(
    secure: Annotated[
        bool, typer.Option(help="SASL/SCRAM-SHA-256 with POKAZY_KAFKA_SASL_USERNAME/_PASSWORD")
    ] = False,
    tls: Annotated[
        bool, typer.Option(help="TLS with a CA made for the data dir (SASL_SSL with --secure)")
    ] = False,
) -> None:
    """Fetch (once) and start the local broker; returns when it answers."""
    started = time.monotonic()
    kafka = local_kafka(_settings(), secure=secure, tls=tls)
    status = kafka.up()
    console.print(
        f"Kafka {status.version} answering on {status.bootstrap} (pid {status.pid}, "
        f"data {status.data_dir}) after {time.monotonic() - started:.1f}s"
    )
    if secure or tls:
        console.print(
            f"clients: POKAZY_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol}"
            + (f" POKAZY_KAFKA_SSL_CAFILE={kafka.ca_file}" if tls else ""),
            soft_wrap=True,
        )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local broker this data dir started (keeps its data)."""
    local_kafka(_settings()).down()
    console.print("Kafka stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Whether the local broker runs and answers (exit 1 if not)."""
    status = local_kafka(_settings()).status()
    state = "answering" if status.answering else ("running" if status.running else "stopped")
    console.print(f"Kafka {status.version} on {status.bootstrap}: {state} (pid {status.pid})")
    if not status.answering:
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run the faust worker in the foreground (several form one consumer group)."""
    from streams.pipeline.worker import run_worker

    run_worker(_settings())


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise typer.BadParameter(f"{path}:{number}: not JSON: {exc}") from exc


def _publish(path: Path, kind: str) -> None:
    settings = _settings()
    ensure_topics(settings)
    total = sum(1 for line in path.open("rb") if line.strip())
    sent = 0
    with BillingProducer(settings) as producer, Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"publishing {path.name}", total=total)
        for number, obj in _json_lines(path):
            try:
                if kind == "registry":
                    producer.publish_registry(obj, wait=False)
                else:
                    producer.submit(obj, wait=False)
            except PokazyError as exc:
                raise typer.BadParameter(f"{path}:{number}: {exc}") from exc
            sent += 1
            bar.advance(task)
    console.print(f"published {sent} {kind} events from {path}")


@registry_app.command("load")
def registry_load(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Publish MeterInstalled/MeterRemoved JSON lines to the registry topic."""
    _publish(file, "registry")


@app.command()
def publish(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Publish ReadingSubmitted JSON lines to the readings topic."""
    _publish(file, "readings")


@app.command("close-period")
def close_period_command(
    period: Annotated[str, typer.Argument(help="YYYY-MM")],
    force: Annotated[
        bool, typer.Option(help="close even though the period's window is still open")
    ] = False,
    requested_by: Annotated[str, typer.Option(help="who asks (kept in the log)")] = "cli",
) -> None:
    """Close a billing period on every partition (billing only; idempotent)."""
    try:
        target = Period.parse(period)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not is_closable(target, kyiv_date(datetime.now(UTC))) and not force:
        raise PokazyError(
            f"the window of {target} is open until {submission_window(target)[1]} (Kyiv); "
            "closing now would estimate readings customers may still send (--force to close)"
        )
    settings = _settings()
    ensure_topics(settings)
    with BillingProducer(settings) as producer:
        partitions = producer.request_period_close(target, requested_by)
    console.print(f"close of {target} requested on {partitions} partitions")


@rejections_app.command("replay")
def rejections_replay(
    reason: Annotated[str | None, typer.Option(help="only this reason code")] = None,
    period: Annotated[str | None, typer.Option(help="only this period, YYYY-MM")] = None,
) -> None:
    """Re-publish rejected submissions as they were received (e.g. after late master data).

    Each submission goes back once, however many of its readings were rejected, with its own
    event_id and a replay header signed with POKAZY_CONTROL_KEY: the worker judges a wholly
    rejected submission again, while one that had any reading accepted stays a duplicate, so
    replaying twice is harmless.
    Messages kept as INTERNAL_ERROR (a defect of the worker, fixed since) go back to the topic
    they came from; a period close among them is not re-sent: run `close-period` again.
    """
    settings = _settings()
    if reason is not None and reason not in Reason.__members__:
        raise typer.BadParameter(f"unknown reason {reason!r}")
    try:
        wanted_period = Period.parse(period) if period is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = settings.clickhouse_database
    messages: list[Replayed] = []
    if reason != Reason.INTERNAL_ERROR:
        conditions = ["account_id != ''", "event_id != ''", f"reason != '{Reason.INTERNAL_ERROR}'"]
        if reason is not None:
            conditions.append(f"reason = '{reason}'")
        if wanted_period is not None:
            conditions.append(f"period = '{wanted_period}'")
        _, rows = run_query(
            settings,
            "SELECT event_id, any(account_id), any(hex(payload)) "
            f"FROM {db}.rejections WHERE {' AND '.join(conditions)} "
            "GROUP BY event_id ORDER BY min(submitted_at), event_id",
        )
        messages += [
            Replayed("readings", str(account).encode(), bytes.fromhex(str(payload)))
            for _, account, payload in rows
        ]
    if reason in (None, Reason.INTERNAL_ERROR):
        _, rows = run_query(
            settings,
            f"SELECT hex(payload) FROM {db}.rejections WHERE reason = '{Reason.INTERNAL_ERROR}' "
            "ORDER BY rejected_at",
        )
        found, skipped = replay_targets([bytes.fromhex(str(r[0])) for r in rows], wanted_period)
        messages += found
        if skipped:
            err.print(f"{skipped} INTERNAL_ERROR messages are not submissions or master data")
    with BillingProducer(settings) as producer:
        for message in messages:
            producer.republish(message.key.decode(), message.payload, topic=message.topic)
    console.print(f"re-published {len(messages)} rejected messages")


@app.command("wait-idle")
def wait_idle(timeout: Annotated[float, typer.Option(help="seconds")] = 300.0) -> None:
    """Return once everything published so far is processed and queryable."""
    started = time.monotonic()
    wait_until_idle(_settings(), timeout)
    console.print(f"idle after {time.monotonic() - started:.1f}s")


@app.command()
def sql(
    query: str,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | csv")] = "table",
) -> None:
    """Run a read-only query on pokazy's ClickHouse (works while a worker holds it)."""
    columns, rows = run_query(_settings(), query)
    if format == "json":
        for row in rows:
            sys.stdout.buffer.write(
                orjson.dumps(dict(zip(columns, row, strict=True)), default=str) + b"\n"
            )
    elif format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif format == "table":
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
    else:
        raise typer.BadParameter("format is table, json or csv")


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="simulated households")] = 3000,
    months: Annotated[int, typer.Option(help="simulated months, from March 2023")] = 3,
) -> None:
    """The main job end to end on the embedded default: simulate, process, close, report."""
    from streams.tools.demo import run_demo

    run_demo(_settings(), accounts=accounts, months=months, console=console)


app.command("simulate")(simulate_command)
app.command("report")(report_command)


@app.command()
def bench(
    accounts: Annotated[int, typer.Option(help="meters in the registry")] = 20_000,
    submissions: Annotated[
        int | None, typer.Option(help="throughput-phase submissions (default: one per account)")
    ] = None,
    workers: Annotated[int, typer.Option(help="worker processes in the throughput phase")] = 1,
    latency_rate: Annotated[float, typer.Option(help="readings/s in the latency phase")] = 1000.0,
    latency_seconds: Annotated[float, typer.Option(help="length of the latency phase, s")] = 20.0,
    close_accounts: Annotated[
        int | None,
        typer.Option(help="accounts registered, then closed in one period (default: --accounts)"),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="also write every figure here")
    ] = None,
    core_only: Annotated[
        bool, typer.Option(help="only the worker's own cost per submission, in process")
    ] = False,
    profile: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="run the first worker under pyinstrument; its profiles go to FILE-<start>.txt "
            "(slows it: for profiles, not figures)",
        ),
    ] = None,
) -> None:
    """The benchmark: throughput, latency, memory, state, restarts, registry and period close,
    against a raw baseline."""
    from streams.tools.bench import BenchOptions, run_bench, run_core_bench

    options = BenchOptions(
        accounts=accounts,
        submissions=submissions,
        workers=workers,
        latency_rate=latency_rate,
        latency_seconds=latency_seconds,
        close_accounts=close_accounts,
        profile=profile,
    )
    if core_only:
        run_core_bench(_settings(), options, console=console, json_path=json_file)
        return
    run_bench(_settings(), options, console=console, json_path=json_file)


def main() -> None:
    try:
        app()
    except PokazyError as exc:
        # One line whatever the terminal's width, and the message is text, not rich markup.
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)
