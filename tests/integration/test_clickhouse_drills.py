"""The ClickHouse client against real embedded chdb: the fault drills (an outage flag and a hold
flag), the rows it refuses for good, and its repr without the password.

Each check runs the client in a fresh process (chdb allows one directory per process).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from streams.adapters.clickhouse import InsertRefused
from streams.errors import ClickHouseUnavailable

DATABASE = "pokazy_drills"
PASSWORD = "S3cret-Pw_9"


def _drill(path: str, outage: str, hold: str) -> dict[str, Any]:
    from streams.adapters.clickhouse import ClickHouse

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


def _refusals(path: str) -> dict[str, Any]:
    from streams.adapters.clickhouse import ClickHouse

    store = ClickHouse(f"chdb://{path}", DATABASE)
    store.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    store.command(f"CREATE TABLE {DATABASE}.t (n UInt32) ENGINE = MergeTree ORDER BY n")
    out: dict[str, Any] = {}
    for case, table, columns, names in [
        ("value", "t", [["not a number"]], ["n"]),
        ("column", "t", [[1]], ["gone"]),
        ("table", "missing", [[1]], ["n"]),
    ]:
        try:
            store.insert(table, columns, names)
        except InsertRefused as exc:
            out[case] = (exc.code, str(exc))
    out["rows"] = int(store.query(f"SELECT count() FROM {DATABASE}.t").rows[0][0])
    store.close()
    return out


def test_rows_clickhouse_will_never_take_are_refused_not_taken_for_an_outage(
    tmp_path: Path,
) -> None:
    """A schema out of date or a value that does not fit: `InsertRefused`, which the worker
    does not retry (a `ClickHouseUnavailable` would be retried forever)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        out = pool.submit(_refusals, str(tmp_path / "ch")).result(300)

    assert set(out) == {"value", "column", "table", "rows"}
    assert out["value"][0] is None and "pokazy_drills.t" in out["value"][1]
    assert out["column"][0] is None and "gone" in out["column"][1]
    assert out["table"][0] == 60 and "UNKNOWN_TABLE" in out["table"][1]
    assert out["rows"] == 0


def _clickhouse_repr(path: str) -> str:
    from streams.adapters.clickhouse import ClickHouse

    store = ClickHouse(f"chdb://{path}?password={PASSWORD}", "pokazy_masked")
    try:
        return repr(store)
    finally:
        store.close()


def test_the_clickhouse_client_repr_masks_the_password(tmp_path: Path) -> None:
    # A fresh interpreter: one chdb directory per process, and pytest's may hold another.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        shown = pool.submit(_clickhouse_repr, str(tmp_path / "clickhouse")).result(timeout=120)

    assert shown == f"ClickHouse(chdb://{tmp_path}/clickhouse?password=***, database=pokazy_masked)"
