"""`pokazy report`: the billing summary a billing team reads after a close, and its chart.

Everything comes from the analyst views (`billing_monthly`, `submissions_daily`,
`rejection_reasons`), through any read-only query function, so the report shows exactly what
an analyst's own `SELECT` would: deduplicated, whatever crashes or replays happened.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from streams.domain.calendar import Period, submission_window

#: A read-only query: SQL in, (column names, rows) out, e.g. `streams.tools.query.run_query`.
Query = Callable[[str], tuple[list[str], list[list[Any]]]]

BASES = ("actual", "calculated", "estimated", "final")
ZONES = ("total", "day", "night", "peak", "half_peak")
CHANNELS = ("viber", "telegram", "web", "other")
# Days shown on each side of the focus period's submission window: wide enough for the
# early (from the 15th) and late (to the 9th) off-window readings to show as the tails.
DAYS_AROUND_WINDOW = 10
# Billed months in the trend, up to and including the focus period.
TREND_MONTHS = 12
TOP_REASONS = 10

# What each reason code means for billing, in one line (the customers' wording is in
# `streams.domain.messages`; this is the back office's).
REASON_MEANINGS = {
    "MALFORMED": "not a readable submission",
    "UNKNOWN_ACCOUNT": "no meter ever installed on the account",
    "UNKNOWN_METER": "names a meter that is not the active one",
    "BEFORE_INSTALLATION": "dated before the meter was installed",
    "FUTURE_TIMESTAMP": "dated in the future",
    "UNKNOWN_REGISTER": "display label not in the DSO's map",
    "REGISTER_ZONE_MISMATCH": "label and zone disagree",
    "TOTAL_NOT_ACCEPTED": "total register sent for a multi-zone meter",
    "ZONE_NOT_ON_METER": "zone the meter does not have",
    "INVALID_VALUE": "not a whole non-negative number",
    "TOO_MANY_DIGITS": "more digits than the display has",
    "PERIOD_CLOSED": "sent after its period was closed",
    "ZONES_SWAPPED": "day and night exchanged",
    "BELOW_PREVIOUS": "below the previous reading, not a rollover",
    "IMPLAUSIBLY_HIGH": "implausibly high (a digit too many?)",
    "INTERNAL_ERROR": "a defect in pokazy; kept for replay",
    "UNAUTHORIZED": "a period close or master data not from billing",
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class BillingCell:
    """One row of `billing_monthly`."""

    period: Period
    zone: str
    basis: str
    accounts: int
    kwh: int


@dataclass(frozen=True, slots=True)
class BasisShare:
    """How much of the billing rests on one basis: registers (account × zone) and kWh."""

    basis: str
    registers: int
    register_share: float
    kwh: int
    kwh_share: float


@dataclass(frozen=True, slots=True)
class DaySubmissions:
    """One row of `submissions_daily`."""

    local_date: date
    channel: str
    submissions: int
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    count: int
    share: float  # of all rejections in the report's period(s)


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of one report; `render_report` and `write_chart` only present them."""

    database: str
    period: Period | None  # as asked; None: every billed period
    periods: tuple[Period, ...]  # the billed periods the billing figures cover
    billing: tuple[BillingCell, ...]  # billing_monthly rows of `periods`
    bases: tuple[BasisShare, ...]  # over `periods`, in BASES order
    focus: Period | None  # the period whose window the daily figures surround
    days: tuple[date, ...]  # every day around the focus window, in order
    daily: tuple[DaySubmissions, ...]  # submissions_daily rows of `days`
    reasons: tuple[ReasonCount, ...]  # every reason in `period` (or ever), most frequent first
    trend: tuple[BillingCell, ...]  # billing_monthly rows of the last TREND_MONTHS to focus

    @property
    def scope(self) -> str:
        """What the billing figures cover, in words: `May 2023`, or every billed period."""
        return month_name(self.period) if self.period is not None else "every billed period"

    @property
    def window(self) -> tuple[date, date] | None:
        """The focus period's submission window (first and last Kyiv local date)."""
        return submission_window(self.focus) if self.focus is not None else None

    @property
    def rejections(self) -> int:
        return sum(r.count for r in self.reasons)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels seen around the window, the known ones first."""
        seen = {d.channel for d in self.daily}
        return (*(c for c in CHANNELS if c in seen), *sorted(seen - set(CHANNELS)))

    @property
    def trend_periods(self) -> tuple[Period, ...]:
        return tuple(sorted({c.period for c in self.trend}))


def build_report(query: Query, database: str, period: Period | None) -> Report:
    """Read the analyst views of `database` and compute the report for `period` (None: all)."""
    if not _IDENTIFIER.match(database):
        raise ValueError(f"{database!r} is not a ClickHouse database name")
    monthly = [
        BillingCell(Period.parse(str(r[0])), str(r[1]), str(r[2]), int(r[3]), int(r[4]))
        for r in _rows(
            query,
            f"SELECT period, zone, basis, accounts, kwh FROM {database}.billing_monthly "
            "ORDER BY period, zone, basis",
        )
    ]
    billed = sorted({c.period for c in monthly})
    periods = (period,) if period is not None else tuple(billed)
    billing = tuple(sorted((c for c in monthly if c.period in periods), key=_cell_order))
    focus = period or (billed[-1] if billed else _latest_submitted(query, database))
    days: tuple[date, ...] = ()
    daily: tuple[DaySubmissions, ...] = ()
    trend: tuple[BillingCell, ...] = ()
    if focus is not None:
        days = _days_around(submission_window(focus))
        daily = tuple(
            DaySubmissions(_date(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in _rows(
                query,
                "SELECT local_date, channel, submissions, accepted, rejected "
                f"FROM {database}.submissions_daily "
                f"WHERE local_date BETWEEN '{days[0]}' AND '{days[-1]}' "
                "ORDER BY local_date, channel",
            )
        )
        oldest = focus.shift(1 - TREND_MONTHS)
        trend = tuple(sorted((c for c in monthly if oldest <= c.period <= focus), key=_cell_order))
    where = f"WHERE period = '{period}'" if period is not None else ""
    counts = [
        (str(r[0]), int(r[1]))
        for r in _rows(
            query,
            f"SELECT reason, sum(count) AS n FROM {database}.rejection_reasons {where} "
            "GROUP BY reason ORDER BY n DESC, reason",
        )
    ]
    rejections = sum(n for _, n in counts)
    return Report(
        database=database,
        period=period,
        periods=periods,
        billing=billing,
        bases=_basis_shares(billing),
        focus=focus,
        days=days,
        daily=daily,
        reasons=tuple(ReasonCount(r, n, n / rejections) for r, n in counts),
        trend=trend,
    )


def _days_around(window: tuple[date, date]) -> tuple[date, ...]:
    first, last = window
    start = first - timedelta(days=DAYS_AROUND_WINDOW)
    count = (last - first).days + 1 + 2 * DAYS_AROUND_WINDOW
    return tuple(start + timedelta(days=i) for i in range(count))


def _rows(query: Query, sql: str) -> list[list[Any]]:
    return query(sql)[1]


def _date(value: Any) -> date:
    # Through the worker's /sql endpoint dates arrive as ISO strings; directly, as dates.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _latest_submitted(query: Query, database: str) -> Period | None:
    """The period of the latest day anything was submitted, when nothing is billed yet."""
    rows = _rows(query, f"SELECT max(local_date), count() FROM {database}.submissions_daily")
    return Period.of(_date(rows[0][0])) if rows and int(rows[0][1]) else None


def _rank(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def _cell_order(cell: BillingCell) -> tuple[Period, tuple[int, str], tuple[int, str]]:
    return cell.period, _rank(cell.zone, ZONES), _rank(cell.basis, BASES)


def _basis_shares(cells: Iterable[BillingCell]) -> tuple[BasisShare, ...]:
    registers: dict[str, int] = defaultdict(int)
    kwh: dict[str, int] = defaultdict(int)
    for cell in cells:
        # `accounts` is distinct per zone, so summed over zones it counts registers.
        registers[cell.basis] += cell.accounts
        kwh[cell.basis] += cell.kwh
    total_registers = sum(registers.values())
    total_kwh = sum(kwh.values())
    return tuple(
        BasisShare(
            basis,
            registers[basis],
            registers[basis] / total_registers if total_registers else 0.0,
            kwh[basis],
            kwh[basis] / total_kwh if total_kwh else 0.0,
        )
        for basis in sorted(registers, key=lambda b: _rank(b, BASES))
    )


# --- Rendering -----------------------------------------------------------------------------

_BASIS_STYLES = {
    "actual": "green",
    "calculated": "yellow",
    "estimated": "dark_orange",
    "final": "cyan",
}


def month_name(period: Period) -> str:
    """`May 2023`."""
    return period.first_day.strftime("%B %Y")


def _kwh(value: int) -> Text:
    return Text(f"{value:,}", style="red" if value < 0 else "")


def _share(value: float) -> str:
    return f"{value:.1%}"


def _bar(share: float, width: int = 16) -> Text:
    filled = round(max(0.0, min(1.0, share)) * width)
    return Text("█" * filled + "·" * (width - filled), style="bright_black")


def _zone_label(zone: str) -> str:
    return zone.replace("_", "-")


def render_report(report: Report, console: Console) -> None:
    """Print the report as tables."""
    scope = report.scope
    console.rule(f"[bold]pokazy billing report[/] · {scope} · database {report.database}")
    if report.billing:
        console.print(_billing_table(report))
        console.print(_basis_table(report))
    else:
        console.print(f"[yellow]No billing rows for {scope}: the period is not closed yet.[/]")
    if len(report.trend_periods) > 1:
        console.print(_trend_table(report))
    if report.focus is not None:
        console.print(_daily_table(report))
    console.print(_reasons_table(report))


def _billing_table(report: Report) -> Table:
    several = len(report.periods) > 1
    table = Table(
        title="Billed consumption by zone and basis",
        caption="accounts: distinct accounts billed in that zone on that basis",
        box=box.SIMPLE_HEAVY,
        title_style="bold",
    )
    if several:
        table.add_column("Period")
    table.add_column("Zone")
    table.add_column("Basis")
    table.add_column("Accounts", justify="right")
    table.add_column("kWh", justify="right")
    table.add_column("Share of kWh", justify="right")
    for period in report.periods:
        cells = [c for c in report.billing if c.period == period]
        total = sum(c.kwh for c in cells)
        for cell in cells:
            row: list[str | Text] = [month_name(period)] if several else []
            row += [
                _zone_label(cell.zone),
                Text(cell.basis, style=_BASIS_STYLES.get(cell.basis, "")),
                f"{cell.accounts:,}",
                _kwh(cell.kwh),
                _share(cell.kwh / total) if total else "",
            ]
            table.add_row(*row)
        total_row: list[str | Text] = [""] if several else []
        total_row += ["", Text("total", style="bold"), "", Text(f"{total:,}", style="bold"), ""]
        table.add_row(*total_row, end_section=True)
    return table


def _basis_table(report: Report) -> Table:
    table = Table(
        title="Basis of the billing",
        caption="registers: billed (account, zone) pairs",
        box=box.SIMPLE_HEAVY,
        title_style="bold",
    )
    table.add_column("Basis")
    table.add_column("Registers", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("kWh", justify="right")
    table.add_column("Share of kWh", justify="right")
    for share in report.bases:
        table.add_row(
            Text(share.basis, style=_BASIS_STYLES.get(share.basis, "")),
            f"{share.registers:,}",
            _share(share.register_share),
            _bar(share.register_share),
            _kwh(share.kwh),
            _share(share.kwh_share),
        )
    return table


def _trend_table(report: Report) -> Table:
    zones = sorted({c.zone for c in report.trend}, key=lambda z: _rank(z, ZONES))
    table = Table(
        title="Billed kWh by month",
        caption="actual: share of billed registers read in the window",
        box=box.SIMPLE_HEAVY,
        title_style="bold",
    )
    table.add_column("Period", no_wrap=True)
    for zone in zones:
        table.add_column(_zone_label(zone), justify="right")
    table.add_column("Total", justify="right", style="bold")
    table.add_column("Actual", justify="right")
    for period in report.trend_periods:
        cells = [c for c in report.trend if c.period == period]
        by_zone = {z: sum(c.kwh for c in cells if c.zone == z) for z in zones}
        registers = sum(c.accounts for c in cells)
        actual = sum(c.accounts for c in cells if c.basis == "actual")
        table.add_row(
            f"{period.first_day:%b %Y}",
            *(_kwh(by_zone[z]) for z in zones),
            f"{sum(by_zone.values()):,}",
            _share(actual / registers) if registers else "",
            style="bold" if period == report.focus and report.period is not None else None,
        )
    return table


def _daily_table(report: Report) -> Table:
    assert report.focus is not None and report.window is not None
    first, last = report.window
    channels = report.channels
    table = Table(
        title=(
            f"Submissions around the window of {month_name(report.focus)}\n"
            f"(▸ the window, {first:%-d %b} – {last:%-d %b}; Kyiv dates)"
        ),
        caption=(
            "channels and total: submissions (distinct events);\n"
            "accepted / rejected: register readings"
        ),
        box=box.SIMPLE_HEAVY,
        title_style="bold",
    )
    table.add_column("Date", no_wrap=True)
    for channel in channels:
        table.add_column(channel, justify="right")
    table.add_column("Total", justify="right", style="bold")
    table.add_column("Accepted", justify="right", style="green")
    table.add_column("Rejected", justify="right", style="red")
    by_day: dict[date, list[DaySubmissions]] = defaultdict(list)
    for row in report.daily:
        by_day[row.local_date].append(row)
    for day in report.days:
        rows = by_day.get(day, [])
        in_window = first <= day <= last
        if not rows and not in_window:
            continue
        per_channel = {r.channel: r.submissions for r in rows}
        table.add_row(
            f"{'▸' if in_window else ' '} {day:%a %-d %b}",
            *(f"{per_channel.get(c, 0):,}" for c in channels),
            f"{sum(r.submissions for r in rows):,}",
            f"{sum(r.accepted for r in rows):,}",
            f"{sum(r.rejected for r in rows):,}",
            style="bold" if in_window else None,
        )
    table.add_row(
        "  total",
        *(f"{sum(r.submissions for r in report.daily if r.channel == c):,}" for c in channels),
        f"{sum(r.submissions for r in report.daily):,}",
        f"{sum(r.accepted for r in report.daily):,}",
        f"{sum(r.rejected for r in report.daily):,}",
        style="bold",
    )
    return table


def _reasons_table(report: Report) -> Table:
    # `rejection_reasons.period` is the month a submission was sent (Kyiv date), not the
    # period it was meant for: the 1st-3rd of the next month are in the month they fall in.
    sent = f"sent in {month_name(report.period)}" if report.period else "all periods"
    table = Table(
        title=f"Top rejection reasons · {sent} ({report.rejections:,} rejections)",
        box=box.SIMPLE_HEAVY,
        title_style="bold",
    )
    table.add_column("#", justify="right")
    table.add_column("Reason")
    table.add_column("Count", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("What it means")
    for rank, reason in enumerate(report.reasons[:TOP_REASONS], 1):
        table.add_row(
            str(rank),
            reason.reason,
            f"{reason.count:,}",
            _share(reason.share),
            REASON_MEANINGS.get(reason.reason, ""),
        )
    if not report.reasons:
        table.add_row("", "none", "0", "", "")
    return table


# --- The chart -----------------------------------------------------------------------------
# Drawn on an Agg canvas through matplotlib's object API (no pyplot): no global backend or
# figure state, safe inside a worker or a test run.

# One hue per zone; the basis shades it (lighter = less measured, hatched = a removed meter).
ZONE_COLOURS = {
    "total": "#2E6DB4",
    "day": "#E8A33D",
    "night": "#4B3F8F",
    "peak": "#C8453B",
    "half_peak": "#3E9A6B",
}
BASIS_LIGHTEN = {"actual": 0.0, "calculated": 0.35, "estimated": 0.62, "final": 0.0}
BASIS_HATCH = {"final": "////", "estimated": "..."}
# The bots' own brand colours, so the panel reads at a glance.
CHANNEL_COLOURS = {
    "viber": "#7360F2",
    "telegram": "#27A5E7",
    "web": "#5F9E6E",
    "other": "#9A9A9A",
}
WINDOW_SHADE = "#FFE9A8"
REJECTED_COLOUR = "#C62828"
_FALLBACK_COLOURS = ("#8C564B", "#E377C2", "#7F7F7F", "#BCBD22", "#17BECF")


def write_chart(report: Report, path: Path) -> None:
    """Write a PNG: billed kWh by month (zone × basis), and submissions per day by channel."""
    figure = Figure(figsize=(13, 9.5), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(
        f"pokazy billing report · {report.scope}", fontsize=16, fontweight="bold", x=0.01, ha="left"
    )
    top, bottom = figure.subplots(2, 1, height_ratios=(1.15, 1))
    _draw_trend(report, top)
    _draw_daily(report, bottom)
    figure.text(
        0.99,
        0.002,
        f"ClickHouse database {report.database}: billing_monthly, submissions_daily",
        ha="right",
        va="bottom",
        fontsize=8,
        color="#888888",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", facecolor="white")


def _style(axes: Axes, title: str, ylabel: str) -> None:
    axes.set_title(title, loc="left", fontsize=13, fontweight="bold", pad=10)
    axes.set_ylabel(ylabel, fontsize=11)
    axes.yaxis.set_major_locator(MaxNLocator(nbins=7, integer=True))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.grid(axis="y", color="#DDDDDD", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.spines["left"].set_color("#999999")
    axes.spines["bottom"].set_color("#999999")
    axes.tick_params(labelsize=10, colors="#333333")


def _empty(axes: Axes, title: str, message: str) -> None:
    _style(axes, title, "")
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#777777",
              transform=axes.transAxes)  # fmt: skip
    axes.set_xticks([])
    axes.set_yticks([])
    for side in ("left", "bottom"):
        axes.spines[side].set_visible(False)


def _lighten(colour: str, amount: float) -> tuple[float, float, float]:
    red, green, blue = to_rgb(colour)
    return (red + (1 - red) * amount, green + (1 - green) * amount, blue + (1 - blue) * amount)


def _colour(name: str, palette: dict[str, str]) -> str:
    """The palette's colour for `name`; a stable fallback for a zone or channel it lacks."""
    if name in palette:
        return palette[name]
    return _FALLBACK_COLOURS[sum(map(ord, name)) % len(_FALLBACK_COLOURS)]


def _draw_trend(report: Report, axes: Axes) -> None:
    title = "Billed consumption by month, kWh by zone and basis"
    periods = report.trend_periods
    if not periods:
        _empty(axes, title, "No billed periods yet: close a period to see its billing here.")
        return
    _style(axes, title, "kWh")
    x = list(range(len(periods)))
    index = {p: i for i, p in enumerate(periods)}
    zones = sorted({c.zone for c in report.trend}, key=lambda z: _rank(z, ZONES))
    bases = sorted({c.basis for c in report.trend}, key=lambda b: _rank(b, BASES))
    up = [0.0] * len(periods)
    down = [0.0] * len(periods)
    for zone in zones:
        for basis in bases:
            values = [0.0] * len(periods)
            for cell in report.trend:
                if cell.zone == zone and cell.basis == basis:
                    values[index[cell.period]] += cell.kwh
            if not any(values):
                continue
            # Stack positives upwards and negatives (catch-ups) downwards from zero.
            bottoms = [up[i] if v >= 0 else down[i] for i, v in enumerate(values)]
            axes.bar(
                x,
                values,
                bottom=bottoms,
                width=0.68,
                color=_lighten(_colour(zone, ZONE_COLOURS), BASIS_LIGHTEN.get(basis, 0.5)),
                hatch=BASIS_HATCH.get(basis),
                edgecolor="white",
                linewidth=0.6,
            )
            for i, value in enumerate(values):
                if value >= 0:
                    up[i] += value
                else:
                    down[i] += value
    totals = [sum(c.kwh for c in report.trend if c.period == p) for p in periods]
    for i, total in enumerate(totals):
        axes.annotate(
            f"{total:,}",
            (i, up[i]),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
            fontweight="bold",
            color="#333333",
        )
    axes.set_ylim(min(0.0, *down) * 1.1, max(up) * 1.12 or 1.0)
    if min(down) < 0:
        axes.axhline(0, color="#666666", linewidth=0.8)
    axes.set_xticks(x, [f"{p.first_day:%b}\n{p.year}" for p in periods])
    for label, period in zip(axes.get_xticklabels(), periods, strict=True):
        if period == report.focus:
            label.set_fontweight("bold")
    axes.set_xlim(-0.6, len(periods) - 0.4)
    zone_legend = axes.legend(
        handles=[Patch(facecolor=_colour(z, ZONE_COLOURS), label=_zone_label(z)) for z in zones],
        title="Zone",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=10,
        title_fontproperties={"weight": "bold", "size": 10},
    )
    axes.add_artist(zone_legend)
    axes.legend(
        handles=[
            Patch(
                facecolor=_lighten("#555555", BASIS_LIGHTEN.get(b, 0.5)),
                hatch=BASIS_HATCH.get(b),
                edgecolor="white",
                label=b,
            )
            for b in bases
        ],
        title="Basis",
        loc="upper left",
        bbox_to_anchor=(1.01, 0.55),
        frameon=False,
        fontsize=10,
        title_fontproperties={"weight": "bold", "size": 10},
    )


def _draw_daily(report: Report, axes: Axes) -> None:
    if report.focus is None or report.window is None:
        _empty(axes, "Submissions per day", "No submissions yet.")
        return
    first, last = report.window
    title = f"Submissions per day around the window of {month_name(report.focus)} (Kyiv dates)"
    _style(axes, title, "submissions")
    days = report.days
    x = list(range(len(days)))
    index = {d: i for i, d in enumerate(days)}
    start, end = index[first], index[last]
    axes.axvspan(start - 0.5, end + 0.5, color=WINDOW_SHADE, zorder=0, linewidth=0)
    bottoms = [0.0] * len(days)
    for channel in report.channels:
        values = [0.0] * len(days)
        for row in report.daily:
            if row.channel == channel:
                values[index[row.local_date]] += row.submissions
        colour = _colour(channel, CHANNEL_COLOURS)
        axes.bar(x, values, bottom=bottoms, width=0.75, color=colour, label=channel, zorder=2)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    rejected = [0.0] * len(days)
    for row in report.daily:
        rejected[index[row.local_date]] += row.rejected
    axes.plot(x, rejected, color=REJECTED_COLOUR, marker="o", markersize=3.5, linewidth=1.4,
              label="rejected readings", zorder=3)  # fmt: skip
    handles, labels = axes.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "rejected readings")
    if not report.daily:
        axes.text(0.5, 0.5, "No submissions on these days.", ha="center", va="center",
                  fontsize=12, color="#777777", transform=axes.transAxes)  # fmt: skip
    peak = max(5.0, *bottoms)
    axes.set_ylim(0, peak * 1.18)
    axes.text(
        (start + end) / 2,
        peak * 1.12,
        f"submission window\n{first:%-d %b} – {last:%-d %b}",
        ha="center",
        va="top",
        fontsize=10,
        color="#8A6100",
        fontweight="bold",
        zorder=4,
    )
    axes.set_xticks(x, [_day_label(d, d == days[0] or d.day == 1) for d in days], fontsize=9)
    axes.set_xlim(-0.6, len(days) - 0.4)
    axes.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title="Channel",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=10,
        title_fontproperties={"weight": "bold", "size": 10},
    )


def _day_label(day: date, with_month: bool) -> str:
    return f"{day:%a}\n{day.day}" + (f"\n{day:%b}" if with_month else "")
