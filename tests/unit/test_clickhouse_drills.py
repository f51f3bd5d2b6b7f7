"""The fault drills at the ClickHouse client boundary: an outage flag and a hold flag.

The client runs on embedded chdb in a fresh process (chdb allows one directory per process).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

DATABASE = "pokazy_drills"


def _drill(path: str, outage: str, hold: str) -> dict[str, Any]:
    from streams.adapters.clickhouse import ClickHouse
    from streams.errors import ClickHouseUnavailable

    store = ClickHouse(f"chdb://{path}", DATABASE, fault_flag=Path(outage), hold_flag=Path(hold))
    store.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    store.command(f"CREATE TABLE {DATABASE}.t (n UInt32) ENGINE = MergeTree ORDER BY n")

    def count() -> int:
        return int(store.query(f"SELECT count() FROM {DATABASE}.t").rows[0][0])

    out: dict[str, Any] = {}
    Path(outage).touch()
    try:
        store.insert("t", [[1, 2, 3]], ["n"])
    except ClickHouseUnavailable as exc:
        out["outage"] = str(exc)
    out["rows_after_outage"] = count()
    Path(outage).unlink()

    Path(hold).touch()
    insert = threading.Thread(target=store.insert, args=("t", [[1, 2, 3]], ["n"]))
    insert.start()
    deadline = time.monotonic() + 60
    while Path(hold).read_text() != "t\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    out["held_table"] = Path(hold).read_text()
    time.sleep(0.5)
    out["blocked_while_flag_exists"] = insert.is_alive()
    out["rows_while_held"] = count()  # the held thread sleeps outside chdb: safe to query
    Path(hold).unlink()
    insert.join(30)
    out["returned_once_removed"] = not insert.is_alive()
    out["rows_after_hold"] = count()
    out["flag_left_removed"] = not Path(hold).exists()
    store.close()
    return out


def test_an_outage_flag_fails_inserts_and_a_hold_flag_holds_a_written_insert(
    tmp_path: Path,
) -> None:
    outage, hold = tmp_path / "clickhouse-down", tmp_path / "hold-inserts"
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        out = pool.submit(_drill, str(tmp_path / "ch"), str(outage), str(hold)).result(300)

    assert out["outage"] == f"injected outage ({outage} exists)"
    assert out["rows_after_outage"] == 0
    # Held: the rows are already in ClickHouse and the call has not returned; the file names
    # the table, which is how a drill knows the worker is inside the insert.
    assert out["held_table"] == "t\n"
    assert out["blocked_while_flag_exists"]
    assert out["rows_while_held"] == 3
    assert out["returned_once_removed"]
    assert out["rows_after_hold"] == 3
    assert out["flag_left_removed"]
