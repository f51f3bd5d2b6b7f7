"""A worker that starts while a reader holds the embedded ClickHouse directory waits for it.

A reader (`pokazy sql` when no worker answers) opens the directory for one query, which is also
the moment a worker is restarting: before, the worker exited "Cannot lock file ... Another server
instance in same directory is already running". Both sides run in processes of their own: chdb
locks its directory per process, and this test's process must not hold it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streams.errors import PokazyError
from streams.settings import Settings
from streams.tools.query import run_query
from tests.commands import ROOT

HOLD = """
import sys, time
from streams.adapters.clickhouse import ClickHouse
store = ClickHouse(f"chdb://{sys.argv[1]}", "pokazy")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
"""

OPEN = """
import sys
from streams.adapters.clickhouse import ClickHouse
store = ClickHouse.open_when_free(f"chdb://{sys.argv[1]}", "pokazy", wait=float(sys.argv[2]))
store.migrate()
print("opened", flush=True)
store.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(path), str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _open(path: Path, wait: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OPEN), str(path), str(wait)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_starting_worker_waits_for_a_reader_to_let_go(tmp_path: Path) -> None:
    holder = _hold(tmp_path / "clickhouse", 3)
    opened = _open(tmp_path / "clickhouse", wait=60)
    holder.wait(30)
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert opened.stdout.strip() == "opened"
    assert "is held by another process; waiting for it" in opened.stderr


def test_a_directory_held_past_the_wait_is_an_error(tmp_path: Path) -> None:
    holder = _hold(tmp_path / "clickhouse", 20)
    try:
        opened = _open(tmp_path / "clickhouse", wait=1)
    finally:
        holder.kill()
        holder.wait(30)
    assert opened.returncode != 0
    assert "Cannot lock file" in opened.stderr


def test_a_query_through_the_worker_never_opens_its_store(tmp_path: Path) -> None:
    """The benchmark and the tests watch a worker that may be restarted: while its web port
    does not answer, they wait for it rather than take its embedded store."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = Settings(data_dir=tmp_path, web_port=port)
    with pytest.raises(PokazyError, match="does not answer"):
        run_query(settings, "SELECT 1", wait=1, through_worker=True)
    assert not (tmp_path / "clickhouse").exists()
