"""`pokazy …` (also `python -m streams …`): the command line of every user of the pipeline."""

from __future__ import annotations

import csv
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from streams.errors import BrokerUnavailable, PokazyError
from streams.settings import Settings

app = typer.Typer(
    help="pokazy: meter readings from chat-bots into ClickHouse billing.", no_args_is_help=True
)
stack_app = typer.Typer(help="A real local Kafka broker (KRaft, 127.0.0.1).", no_args_is_help=True)
registry_app = typer.Typer(
    help="Billing master data: meters installed and removed.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(registry_app, name="registry")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return Settings.from_env()


def local_kafka(settings: Settings, *, secure: bool = False) -> Any:
    """The local broker that serves `POKAZY_KAFKA_BOOTSTRAP` (its port; controller on port+1)."""
    from streams.stack import LocalKafka

    port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    password = settings.kafka_sasl_password
    return LocalKafka(
        settings.data_dir,
        port=port,
        controller_port=port + 1,
        secure=secure,
        sasl_username=settings.kafka_sasl_username if secure else None,
        sasl_password=password.get_secret_value() if secure and password else None,
    )


@stack_app.command("up")
def stack_up(
    secure: Annotated[
        bool, typer.Option(help="SASL/SCRAM-SHA-256 with POKAZY_KAFKA_SASL_*")
    ] = False,
) -> None:
    """Fetch (once) and start the local broker; returns when it answers."""
    started = time.monotonic()
    status = local_kafka(_settings(), secure=secure).up()
    console.print(
        f"Kafka {status.version} answering on {status.bootstrap} (pid {status.pid}, "
        f"data {status.data_dir}) after {time.monotonic() - started:.1f}s"
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
    from streams.worker import run_worker

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
    from streams.producer import PokazyProducer
    from streams.topics import ensure_topics

    settings = _settings()
    ensure_topics(settings)
    total = sum(1 for line in path.open("rb") if line.strip())
    sent = 0
    with PokazyProducer(settings) as producer, Progress(console=err, transient=True) as bar:
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


def wait_until_idle(settings: Settings, timeout: float) -> None:
    """Block until every message published before the call is processed and in ClickHouse.

    The worker commits an offset only after the rows of every message before it are inserted,
    so a committed offset at the end offset means those messages are queryable.
    """
    from streams.topics import committed_offsets, input_end_offsets

    ends = input_end_offsets(settings)
    deadline = time.monotonic() + timeout
    behind: dict[Any, int] = dict(ends)
    while True:
        try:
            committed = committed_offsets(settings)
            behind = {tp: end for tp, end in ends.items() if committed.get(tp, 0) < end}
        except BrokerUnavailable:
            pass  # e.g. the group coordinator is still being elected: ask again
        if not behind:
            return
        if time.monotonic() > deadline:
            lag = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in behind)
            raise PokazyError(f"not idle after {timeout:.0f}s; behind: {lag}")
        time.sleep(0.25)


@app.command("wait-idle")
def wait_idle(timeout: Annotated[float, typer.Option(help="seconds")] = 300.0) -> None:
    """Return once everything published so far is processed and queryable."""
    started = time.monotonic()
    wait_until_idle(_settings(), timeout)
    console.print(f"idle after {time.monotonic() - started:.1f}s")


def run_query(settings: Settings, query: str) -> tuple[list[str], list[list[Any]]]:
    """A read-only query: through the running worker if there is one, else directly."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.web_port}/sql",
        data=orjson.dumps({"query": query}),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = orjson.loads(response.read())
        return body["columns"], body["rows"]
    except urllib.error.HTTPError as exc:
        raise PokazyError(orjson.loads(exc.read()).get("error", str(exc))) from exc
    except (urllib.error.URLError, ConnectionError):
        pass  # no worker here: open ClickHouse ourselves
    from streams.clickhouse import ClickHouse

    clickhouse = ClickHouse(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        result = clickhouse.query(query, read_only=True)
    finally:
        clickhouse.close()
    return list(result.columns), [list(row) for row in result.rows]


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
    accounts: Annotated[int, typer.Option(help="accounts in the sample")] = 60,
) -> None:
    """The main job end to end on the embedded default: broker, worker, sample month, results."""
    from streams.demo import run_demo

    run_demo(_settings(), accounts=accounts, console=console)


def main() -> None:
    try:
        app()
    except PokazyError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
