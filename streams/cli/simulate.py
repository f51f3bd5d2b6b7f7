"""`pokazy simulate`: write realistic bot traffic to a directory, with a progress bar.

The generator lives in `streams.tools.simulate`; this is its command line: parse the options, show
progress on long runs, write the files and print what the manifest counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streams.domain.calendar import Period

if TYPE_CHECKING:
    from streams.tools.simulate import Simulation, SimulationFiles

console = Console()
err = Console(stderr=True)


def simulate_command(
    *,
    accounts: Annotated[int, typer.Option(min=1, help="accounts, each with a meter")],
    months: Annotated[int, typer.Option(min=1, help="billing periods to simulate")],
    seed: Annotated[int, typer.Option(help="the same seed writes byte-identical files")] = 1,
    out: Annotated[Path, typer.Option(file_okay=False, help="directory to write the files to")],
    start: Annotated[
        str | None, typer.Option(help="the first period, YYYY-MM (default 2023-01)")
    ] = None,
) -> None:
    """Realistic bot traffic for N accounts over M months, with typical customer mistakes.

    Writes {registry,submissions,truth,malformed}.jsonl, closes.txt and manifest.json to --out.
    """
    # Imported when run: the generator loads the Avro codec, which `pokazy --help` need not.
    from streams.tools.simulate import DEFAULT_START, simulate, write_simulation

    try:
        first = Period.parse(start) if start is not None else DEFAULT_START
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--start'") from exc
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"simulating {months} period(s)", total=accounts)
        try:
            sim = simulate(
                accounts,
                months,
                seed=seed,
                start=first,
                progress=lambda done: bar.advance(task, done),
            )
        except ValueError as exc:  # the months would reach past today
            raise typer.BadParameter(str(exc), param_hint="'--start' / '--months'") from exc
        bar.update(task, description="writing files")
        files = write_simulation(sim, out)
    console.print(summary_table(sim))
    console.print(_written(files))


def summary_table(sim: Simulation) -> Table:
    """The manifest's counts: behaviours per account-month with their shares, then events."""
    manifest = sim.manifest
    table = Table(
        "",
        "count",
        "share",
        title=(
            f"{manifest['accounts']:,} accounts × {len(manifest['periods'])} period(s) "
            f"from {manifest['periods'][0]}, seed {manifest['seed']}"
        ),
    )
    account_months = manifest["account_months"]
    for behaviour, count in manifest["behaviours"].items():
        table.add_row(behaviour, f"{count:,}", f"{count / account_months:.1%}")
    table.add_section()
    submissions = max(1, sum(manifest["channels"].values()))  # retries not counted twice
    for channel, count in manifest["channels"].items():
        table.add_row(f"via {channel}", f"{count:,}", f"{count / submissions:.1%}")
    table.add_section()
    for event, count in manifest["events"].items():
        table.add_row(event.replace("_", " "), f"{count:,}", "")
    return table


def _written(files: SimulationFiles) -> str:
    return (
        f"wrote {files.registry.parent}/: load {files.registry.name} first, then publish "
        f"{files.submissions.name}; close the periods in {files.closes.name} in order"
    )
