"""`pokazy bench --core-only`: the worker's own path, in process, measured on real traffic."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console

from streams.settings import Settings
from streams.tools.bench import BenchOptions, Traffic, run_core_bench
from streams.tools.core_cost import measure_core


def test_core_only_reports_cpu_per_submission(tmp_path: Path) -> None:
    output, json_path = io.StringIO(), tmp_path / "core.json"
    core = run_core_bench(
        Settings(data_dir=tmp_path),
        BenchOptions(accounts=60, submissions=150),
        console=Console(file=output, width=160),
        json_path=json_path,
    )
    assert orjson.loads(json_path.read_bytes()) == {"core": core.__dict__}
    assert (core.submissions, core.registry_events) == (150, 60)
    assert core.readings >= core.submissions
    assert core.us_per_submission > 0 and core.registry_us_per_event > 0
    assert "µs/submission" in output.getvalue()


def test_the_measured_path_judges_like_the_worker(tmp_path: Path) -> None:
    """Accepted and rejected readings both occur: the measurement is not of a worker that
    rejects everything cheaply (say, every account unknown)."""
    traffic = Traffic(40, 80, seed=3)
    submissions = traffic.submissions(80)
    core = measure_core(Settings(data_dir=tmp_path), traffic.registry, submissions)
    assert core.submissions == 80
    assert core.accepted_rows > core.rejected_rows > 0
