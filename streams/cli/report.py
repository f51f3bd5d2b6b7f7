"""`pokazy report [--period YYYY-MM] [--png FILE]`: the billing summary, and its chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streams.domain.calendar import Period
from streams.settings import Settings
from streams.tools.query import run_query


def report_command(
    period: Annotated[
        str | None, typer.Option("--period", help="YYYY-MM; default: every billed period")
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option("--png", dir_okay=False, help="also write the chart to this PNG file"),
    ] = None,
) -> None:
    """Billing summary: kWh by zone and basis, submissions per day, rejection reasons."""
    # Imported here: the report pulls in matplotlib, which only this command should pay for
    # when `pokazy` starts.
    from streams.tools.report import build_report, render_report, write_chart

    target = None
    if period is not None:
        try:
            target = Period.parse(period)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--period") from exc
    settings = Settings.from_env()
    report = build_report(
        lambda sql: run_query(settings, sql), settings.clickhouse_database, target
    )
    console = Console()
    render_report(report, console)
    if png is not None:
        write_chart(report, png)
        console.print(f"chart written to {png}")
