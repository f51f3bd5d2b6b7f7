"""The analyst views of migration 0003 and `pokazy report` on a hand-made embedded database.

One chdb directory per process (chdb refuses a second path), so everything that opens the
store runs in a fresh spawned process and hands back plain data: the pytest process stays free
for the integration tests' own stores. The rows below are written straight into the *_log
tables, some twice (a replay), and every expected figure is worked out by hand beside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from matplotlib.image import imread

from streams.domain.calendar import Period, kyiv_date
from streams.tools.processes import free_port
from streams.tools.report import Report

T = TypeVar("T")
DATABASE = "pokazy_report"
NOW = datetime(2023, 6, 10, 12, 0, tzinfo=UTC)
MAY, APRIL, JUNE = Period(2023, 5), Period(2023, 4), Period(2023, 6)


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a new interpreter, which may open a chdb directory of its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result(timeout=300)


# --- The data ----------------------------------------------------------------------------------

BILLING_COLUMNS = ("account_id", "meter_id", "period", "zone", "basis", "start_reading",
                   "end_reading", "kwh", "days", "flags", "closed_at")  # fmt: skip


def _bill(
    account: str, meter: str, period: Period, zone: str, basis: str, kwh: int
) -> tuple[Any, ...]:
    flags = ["estimate_correction"] if kwh < 0 else []
    return (account, meter, str(period), zone, basis, 1000, 1000 + kwh, kwh, 30, flags, NOW)


BILLING = [
    # April: 200 + 120 + 80 + 150 = 550 kWh.
    _bill("A1", "M1", APRIL, "total", "actual", 200),
    _bill("A2", "M2", APRIL, "day", "actual", 120),
    _bill("A2", "M2", APRIL, "night", "actual", 80),
    _bill("A3", "M3", APRIL, "total", "estimated", 150),
    # May. total/actual: A1 210, A3 -30 (the catch-up after April's estimate), A4's new meter
    # 25 -> 3 accounts, 205 kWh. A4's old meter: total/final 40. A5: total/estimated 12,345.
    # A2: day/calculated 100, night/calculated 60. The May total is 12,750 kWh.
    _bill("A1", "M1", MAY, "total", "actual", 210),
    _bill("A3", "M3", MAY, "total", "actual", -30),
    _bill("A4", "M4a", MAY, "total", "final", 40),
    _bill("A4", "M4b", MAY, "total", "actual", 25),
    _bill("A5", "M5", MAY, "total", "estimated", 12_345),
    _bill("A2", "M2", MAY, "day", "calculated", 100),
    _bill("A2", "M2", MAY, "night", "calculated", 60),
]
BILLING_REPLAYED = [BILLING[4], BILLING[8]]  # re-sent after a crash: must not count twice

READING_COLUMNS = ("event_id", "account_id", "meter_id", "zone", "register", "value", "kind",
                   "period", "local_date", "submitted_at", "channel", "sender_hash", "kwh",
                   "flags", "ingested_at")  # fmt: skip


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _read(event: str, account: str, zone: str, day: date, at: str, channel: str) -> tuple[Any, ...]:
    return (event, account, f"M-{account}", zone, None, 1234, "in_window", "2023-05", day,
            _utc(at), channel, "h", 10, [], NOW)  # fmt: skip


READINGS = [
    # e1: viber, 21:00 Kyiv on 30 May.
    _read("e1", "A1", "total", date(2023, 5, 30), "2023-05-30T18:00:00", "viber"),
    # e7: telegram, 30 May: day accepted (its night reading is rejected below).
    _read("e7", "A2", "day", date(2023, 5, 30), "2023-05-30T14:00:00", "telegram"),
    # e2: telegram, 21:30 UTC on 31 May is 00:30 on 1 June in Kyiv (UTC+3 in summer).
    _read("e2", "A2", "day", date(2023, 6, 1), "2023-05-31T21:30:00", "telegram"),
    _read("e2", "A2", "night", date(2023, 6, 1), "2023-05-31T21:30:00", "telegram"),
    # e3: viber, 1 June.
    _read("e3", "A3", "total", date(2023, 6, 1), "2023-06-01T08:00:00", "viber"),
]
READINGS_REPLAYED = [READINGS[4]]

REJECTION_COLUMNS = ("row_key", "event_id", "account_id", "zone", "register", "value", "reason",
                     "detail", "channel", "sender_hash", "submitted_at", "period", "payload",
                     "rejected_at")  # fmt: skip


def _reject(
    event: str, position: int, account: str, reason: str, at: str, channel: str
) -> tuple[Any, ...]:
    period = str(Period.of(kyiv_date(_utc(at))))  # the Kyiv month it was sent, as the sink
    return (f"{event}:{position}", event, account, None, None, 1, reason, "", channel, "h",
            _utc(at), period, b"payload", NOW)  # fmt: skip


GARBAGE = b"\x00not avro"
REJECTIONS = [
    _reject("e7", 1, "A2", "BELOW_PREVIOUS", "2023-05-30T14:00:00", "telegram"),
    # e4: both zones of a swapped submission, sent at 00:30 Kyiv on 1 June.
    _reject("e4", 0, "A2", "ZONES_SWAPPED", "2023-05-31T21:30:00", "telegram"),
    _reject("e4", 1, "A2", "ZONES_SWAPPED", "2023-05-31T21:30:00", "telegram"),
    # e5: an account number with a typo, from the `other` channel.
    _reject("e5", 0, "A9", "UNKNOWN_ACCOUNT", "2023-05-30T10:00:00", "other"),
    # Bytes that decode to nothing: no event id, channel or time.
    (
        f"sha256:{hashlib.sha256(GARBAGE).hexdigest()}",
        "",
        "",
        None,
        None,
        None,
        "MALFORMED",
        "not Avro",
        "",
        "",
        None,
        "",
        GARBAGE,
        NOW,
    ),
]
REJECTIONS_REPLAYED = [REJECTIONS[4], REJECTIONS[1]]

EXPECTED_BILLING_MONTHLY = {
    ("2023-04", "total", "actual", 1, 200),
    ("2023-04", "day", "actual", 1, 120),
    ("2023-04", "night", "actual", 1, 80),
    ("2023-04", "total", "estimated", 1, 150),
    ("2023-05", "total", "actual", 3, 205),
    ("2023-05", "total", "final", 1, 40),
    ("2023-05", "total", "estimated", 1, 12_345),
    ("2023-05", "day", "calculated", 1, 100),
    ("2023-05", "night", "calculated", 1, 60),
}
EXPECTED_SUBMISSIONS_DAILY = {
    (date(2023, 5, 30), "viber", 1, 1, 0),  # e1
    (date(2023, 5, 30), "telegram", 1, 1, 1),  # e7: one submission, one of each
    (date(2023, 5, 30), "other", 1, 0, 1),  # e5
    (date(2023, 6, 1), "telegram", 2, 2, 2),  # e2 (2 accepted) and e4 (2 rejected)
    (date(2023, 6, 1), "viber", 1, 1, 0),  # e3, replayed, once
}
EXPECTED_REJECTION_REASONS = {
    ("2023-05", "BELOW_PREVIOUS", 1),
    ("2023-05", "UNKNOWN_ACCOUNT", 1),
    ("2023-06", "ZONES_SWAPPED", 2),
    ("", "MALFORMED", 1),
}


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def fill(store: Any, migrations: Any = None) -> None:
    """Migrate and write the rows above (the replayed ones twice, in separate inserts)."""
    store.migrate(migrations)
    for table, names, rows in (
        ("billing_log", BILLING_COLUMNS, BILLING),
        ("billing_log", BILLING_COLUMNS, BILLING_REPLAYED),
        ("readings_log", READING_COLUMNS, READINGS),
        ("readings_log", READING_COLUMNS, READINGS_REPLAYED),
        ("rejections_log", REJECTION_COLUMNS, REJECTIONS),
        ("rejections_log", REJECTION_COLUMNS, REJECTIONS_REPLAYED),
    ):
        store.insert(table, _columns(rows, len(names)), names)


# --- What runs in the fresh process --------------------------------------------------------------


def _views_and_reports(path: str, chart_dir: str) -> dict[str, Any]:
    from rich.console import Console

    from streams.adapters.clickhouse import ClickHouse
    from streams.tools.report import build_report, render_report, write_chart

    store = ClickHouse(f"chdb://{path}", DATABASE)
    fill(store)

    def query(sql: str) -> tuple[list[str], list[list[Any]]]:
        result = store.query(sql, read_only=True)
        return list(result.columns), [list(row) for row in result.rows]

    def through_worker(sql: str) -> tuple[list[str], list[list[Any]]]:
        # What `run_query` returns through a worker's /sql endpoint: JSON, dates as strings.
        columns, rows = query(sql)
        return columns, orjson.loads(orjson.dumps(rows, default=str))

    views = {
        name: [tuple(row) for row in query(f"SELECT * FROM {DATABASE}.{name}")[1]]
        for name in ("billing_monthly", "submissions_daily", "rejection_reasons")
    }
    out: dict[str, Any] = {"views": views, "reports": {}, "text": {}, "json_equal": {}}
    for label, period in (("may", MAY), ("all", None), ("june", JUNE)):
        report = build_report(query, DATABASE, period)
        out["reports"][label] = report
        out["json_equal"][label] = build_report(through_worker, DATABASE, period) == report
        console = Console(record=True, width=140, color_system=None)
        render_report(report, console)
        out["text"][label] = console.export_text()
        write_chart(report, Path(chart_dir) / f"{label}.png")
    return out


def _upgrade(path: str) -> tuple[list[str], list[str], list[str], list[tuple[Any, ...]], str]:
    from streams.adapters.clickhouse import ClickHouse, load_migrations

    store = ClickHouse(f"chdb://{path}", DATABASE)
    fill(store, load_migrations()[:2])  # a database made before 0003 existed, with data
    first = store.migrate()
    again = store.migrate()
    tables = [r[0] for r in store.query(f"SHOW TABLES FROM {DATABASE}").rows]
    rows = list(store.query(f"SELECT * FROM {DATABASE}.billing_monthly").rows)
    rows += store.query(f"SELECT count() FROM {DATABASE}.rejections").rows
    [(days,)] = store.query(
        "SELECT comment FROM system.columns "
        f"WHERE database = '{DATABASE}' AND table = 'billing_log' AND name = 'days'"
    ).rows
    return first, again, tables, rows, str(days)


def _empty_report(path: str, chart: str) -> tuple[Report, str]:
    from rich.console import Console

    from streams.adapters.clickhouse import ClickHouse
    from streams.tools.report import build_report, render_report, write_chart

    store = ClickHouse(f"chdb://{path}", DATABASE)
    store.migrate()

    def query(sql: str) -> tuple[list[str], list[list[Any]]]:
        result = store.query(sql, read_only=True)
        return list(result.columns), [list(row) for row in result.rows]

    report = build_report(query, DATABASE, None)
    console = Console(record=True, width=120, color_system=None)
    render_report(report, console)
    write_chart(report, Path(chart))
    return report, console.export_text()


def _command(path: str, port: int, args: list[str]) -> tuple[int, str]:
    import typer
    from typer.testing import CliRunner

    from streams.adapters.clickhouse import ClickHouse
    from streams.cli.report import report_command

    store = ClickHouse(f"chdb://{path}", DATABASE)
    fill(store)
    store.close()
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)  # two commands, so `report` is a subcommand as in pokazy
    env = {
        "POKAZY_CLICKHOUSE_URL": f"chdb://{path}",
        "POKAZY_CLICKHOUSE_DATABASE": DATABASE,
        "POKAZY_WEB_PORT": str(port),  # nothing listens there: the store is opened directly
        "COLUMNS": "140",
    }
    result = CliRunner().invoke(app, ["report", *args], env=env)
    return result.exit_code, result.output


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/pokazy.json"
# What Grafana substitutes before the ClickHouse plugin runs a query: the period variable and
# the time-range macros (the plugin expands these to DateTime64 instants).
GRAFANA_SUBSTITUTIONS = {
    "${period}": "2023-05",
    "$__fromTime": "toDateTime64('2023-05-01 00:00:00', 3)",
    "$__toTime": "toDateTime64('2023-06-30 00:00:00', 3)",
}


def _dashboard_results(path: str) -> dict[str, list[tuple[Any, ...]]]:
    from streams.adapters.clickhouse import ClickHouse

    store = ClickHouse(f"chdb://{path}", DATABASE)
    fill(store)
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    queries = {p["title"]: t["rawSql"] for p in dashboard["panels"] for t in p["targets"]}
    queries |= {v["name"]: v["query"]["rawSql"] for v in dashboard["templating"]["list"]}
    results = {}
    for title, sql in queries.items():
        for placeholder, value in GRAFANA_SUBSTITUTIONS.items():
            sql = sql.replace(placeholder, value)
        # The dashboard names the compose stack's database, `pokazy`.
        sql = sql.replace("pokazy.", f"{DATABASE}.")
        results[title] = [tuple(row) for row in store.query(sql, read_only=True).rows]
    return results


# --- The tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    result = in_fresh_process(_views_and_reports, str(root / "clickhouse"), str(root))
    result["charts"] = root
    return result


def test_billing_monthly_sums_the_deduplicated_billing(produced: dict[str, Any]) -> None:
    assert set(produced["views"]["billing_monthly"]) == EXPECTED_BILLING_MONTHLY
    assert len(produced["views"]["billing_monthly"]) == len(EXPECTED_BILLING_MONTHLY)


def test_submissions_daily_counts_by_kyiv_date_and_channel(produced: dict[str, Any]) -> None:
    assert set(produced["views"]["submissions_daily"]) == EXPECTED_SUBMISSIONS_DAILY
    assert len(produced["views"]["submissions_daily"]) == len(EXPECTED_SUBMISSIONS_DAILY)


def test_rejection_reasons_counts_per_month_sent(produced: dict[str, Any]) -> None:
    assert set(produced["views"]["rejection_reasons"]) == EXPECTED_REJECTION_REASONS
    assert len(produced["views"]["rejection_reasons"]) == len(EXPECTED_REJECTION_REASONS)


def test_a_database_made_before_0003_gets_the_views_on_the_next_migrate(tmp_path: Path) -> None:
    first, again, tables, rows, days = in_fresh_process(_upgrade, str(tmp_path / "clickhouse"))
    assert first == ["0003_analyst_views", "0004_rejection_retractions", "0005_billing_days"]
    assert days.startswith("days the line covers")
    assert again == []
    assert {"billing_monthly", "submissions_daily", "rejection_reasons"} <= set(tables)
    # Over the rows written before the upgrade: billing, and rejections none of them retracted.
    *billing, (rejections,) = rows
    assert set(billing) == EXPECTED_BILLING_MONTHLY
    assert rejections == len({row[0] for row in REJECTIONS + REJECTIONS_REPLAYED})


def test_the_report_figures_of_one_period(produced: dict[str, Any]) -> None:
    report: Report = produced["reports"]["may"]
    assert report.periods == (MAY,) and report.focus == MAY
    assert {(c.zone, c.basis, c.accounts, c.kwh) for c in report.billing} == {
        (zone, basis, accounts, kwh)
        for period, zone, basis, accounts, kwh in EXPECTED_BILLING_MONTHLY
        if period == "2023-05"
    }
    shares = {b.basis: (b.registers, round(b.register_share, 3), b.kwh) for b in report.bases}
    # Registers: actual 3, calculated 2 (A2 day and night), estimated 1, final 1 = 7.
    assert shares == {
        "actual": (3, 0.429, 205),
        "calculated": (2, 0.286, 160),
        "estimated": (1, 0.143, 12_345),
        "final": (1, 0.143, 40),
    }
    assert [b.basis for b in report.bases] == ["actual", "calculated", "estimated", "final"]
    assert [(r.reason, r.count) for r in report.reasons] == [
        ("BELOW_PREVIOUS", 1),
        ("UNKNOWN_ACCOUNT", 1),
    ]
    assert report.window == (date(2023, 5, 30), date(2023, 6, 3))
    assert report.days[0] == date(2023, 5, 20) and report.days[-1] == date(2023, 6, 13)
    daily = {(d.local_date, d.channel, d.submissions, d.accepted, d.rejected) for d in report.daily}
    assert daily == EXPECTED_SUBMISSIONS_DAILY
    assert report.channels == ("viber", "telegram", "other")
    assert report.trend_periods == (APRIL, MAY)


def test_the_report_reads_the_same_through_a_worker(produced: dict[str, Any]) -> None:
    assert produced["json_equal"] == {"may": True, "all": True, "june": True}


def test_without_a_period_the_report_covers_every_billed_period(produced: dict[str, Any]) -> None:
    report: Report = produced["reports"]["all"]
    assert report.periods == (APRIL, MAY) and report.focus == MAY
    assert sum(c.kwh for c in report.billing) == 550 + 12_750
    assert [(r.reason, r.count) for r in report.reasons] == [
        ("ZONES_SWAPPED", 2),
        ("BELOW_PREVIOUS", 1),
        ("MALFORMED", 1),
        ("UNKNOWN_ACCOUNT", 1),
    ]
    assert produced["reports"]["june"].billing == ()


def _rows_of(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_the_rendered_tables_show_the_figures(produced: dict[str, Any]) -> None:
    text: str = produced["text"]["may"]
    rows = _rows_of(text)
    assert "pokazy billing report · May 2023" in text
    # Billing: zone, basis, accounts, kWh, share of the period's kWh (12,345 / 12,750).
    assert ["total", "estimated", "1", "12,345", "96.8%"] in rows
    assert ["total", "actual", "3", "205", "1.6%"] in rows
    assert ["day", "calculated", "1", "100", "0.8%"] in rows
    assert ["total", "12,750"] in rows
    # Basis mix: registers, share, a bar, kWh, share of kWh.
    assert any(r[:3] == ["actual", "3", "42.9%"] and r[-2:] == ["205", "1.6%"] for r in rows)
    # Trend: April and May by zone (total, day, night), the total and the actual share.
    assert ["Apr", "2023", "350", "120", "80", "550", "75.0%"] in rows
    assert ["May", "2023", "12,590", "100", "60", "12,750", "42.9%"] in rows
    # Daily: ▸ marks window days; viber, telegram, other, total, accepted, rejected.
    assert ["▸", "Thu", "1", "Jun", "1", "2", "0", "3", "3", "2"] in rows
    assert ["▸", "Tue", "30", "May", "1", "1", "1", "3", "2", "2"] in rows
    assert ["total", "2", "3", "1", "6", "5", "4"] in rows
    # Reasons sent in May.
    assert "Top rejection reasons · sent in May 2023 (2 rejections)" in text
    assert rows[_index(rows, "BELOW_PREVIOUS")][:4] == ["1", "BELOW_PREVIOUS", "1", "50.0%"]


def _index(rows: list[list[str]], token: str) -> int:
    return next(i for i, row in enumerate(rows) if token in row)


@pytest.mark.parametrize("label", ["may", "all", "june"])
def test_the_chart_is_a_real_png(produced: dict[str, Any], label: str) -> None:
    path: Path = produced["charts"] / f"{label}.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 40_000  # two drawn panels, not a blank canvas
    image = imread(path)
    height, width = image.shape[:2]
    assert width >= 1500 and height >= 1000
    # Not one flat colour: bars, text and the window shading are drawn.
    assert len({tuple(p) for p in image[::25, ::25].reshape(-1, image.shape[2])}) > 20


def test_an_empty_database_still_reports(tmp_path: Path) -> None:
    chart = tmp_path / "empty.png"
    report, text = in_fresh_process(_empty_report, str(tmp_path / "ch"), str(chart))
    assert report.billing == () and report.focus is None and report.reasons == ()
    assert "not closed yet" in text
    assert imread(chart).shape[1] >= 1500


def test_the_report_command(tmp_path: Path) -> None:
    chart = tmp_path / "out" / "may.png"
    code, output = in_fresh_process(
        _command, str(tmp_path / "ch"), free_port(), ["--period", "2023-05", "--png", str(chart)]
    )
    assert code == 0, output
    assert ["total", "estimated", "1", "12,345", "96.8%"] in _rows_of(output)
    assert "chart written to" in output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_command_refuses_a_bad_period(tmp_path: Path) -> None:
    code, output = in_fresh_process(
        _command, str(tmp_path / "ch"), free_port(), ["--period", "2023-13"]
    )
    assert code == 2
    assert "not a billing period: 2023-13" in output


def test_every_grafana_panel_query_runs_on_the_views(tmp_path: Path) -> None:
    results = in_fresh_process(_dashboard_results, str(tmp_path / "ch"))
    assert results["period"] == [("2023-05",), ("2023-04",)]  # the latest period first
    assert results["Billed kWh · ${period}"] == [(12_750,)]
    assert results["Rejections sent in ${period}"] == [(2,)]
    assert results["Billed kWh by month and basis"] == [
        ("2023-04", 400, 0, 150, 0),  # actual, calculated, estimated, final
        ("2023-05", 205, 160, 12_345, 40),
    ]
    # day, viber, telegram, web, other
    assert results["Submissions per day around the window of ${period}"] == [
        ("2023-05-30", 1, 1, 0, 1),
        ("2023-06-01", 1, 2, 0, 0),
    ]
    assert all(isinstance(rows, list) for rows in results.values())
    assert len(results) == 12  # 11 panels and the period variable
