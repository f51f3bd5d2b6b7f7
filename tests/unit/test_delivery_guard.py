"""The worker's guard against offsets faust skipped, and the restart it does when it sees one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streams import faust_fixes

READINGS = TP("pokazy.readings", 0)


@dataclass
class Message:
    tp: TP
    offset: int
    generation_id: int = 1


class Consumer:
    def __init__(self, committed: dict[TP, int]) -> None:
        self._committed_offset = committed


class Restarted(Exception):
    pass


@pytest.fixture
def restarts(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def restart(argv: list[str]) -> None:
        calls.append(argv)
        raise Restarted

    monkeypatch.setattr(faust_fixes, "restart_process", restart)
    return calls


def test_messages_in_order_from_the_committed_offset_pass(restarts: list[Any]) -> None:
    guard = faust_fixes.DeliveryGuard(Consumer({READINGS: 30}))
    for offset in range(30, 40):
        guard.admit(Message(READINGS, offset))
    guard.admit(Message(READINGS, 35))  # a redelivery passes: reprocessing is harmless
    assert restarts == []


REGISTRY = TP("pokazy.registry", 0)


def test_records_beyond_what_the_agent_saw_are_undelivered() -> None:
    guard = faust_fixes.DeliveryGuard(Consumer({READINGS: 30, REGISTRY: 7}))
    for offset in range(30, 35):
        guard.admit(Message(READINGS, offset))
    ends = {READINGS: 40, REGISTRY: 7}
    # readings: the agent saw up to 34 of 39; registry: nothing waits beyond the committed 7.
    assert guard.undelivered([READINGS, REGISTRY], ends.get) == [(READINGS, 35, 40)]
    for offset in range(35, 40):
        guard.admit(Message(READINGS, offset))
    assert guard.undelivered([READINGS, REGISTRY], ends.get) == []


def test_a_partition_never_read_or_without_an_end_is_not_undelivered() -> None:
    guard = faust_fixes.DeliveryGuard(Consumer({}))
    assert guard.undelivered([READINGS], {READINGS: 12}.get) == []  # no committed offset yet
    guard = faust_fixes.DeliveryGuard(Consumer({READINGS: 3}))
    assert guard.undelivered([READINGS], {}.get) == []  # no end offset fetched yet


def test_a_skipped_offset_restarts_the_worker(restarts: list[Any]) -> None:
    guard = faust_fixes.DeliveryGuard(Consumer({READINGS: 30}))
    with pytest.raises(Restarted):
        guard.admit(Message(READINGS, 31))  # offset 30 never arrived
    assert restarts == [[sys.executable, "-m", "streams", "worker"]]


def test_a_new_generation_expects_the_committed_offset_again(restarts: list[Any]) -> None:
    consumer = Consumer({READINGS: 30})
    guard = faust_fixes.DeliveryGuard(consumer)
    for offset in range(30, 35):
        guard.admit(Message(READINGS, offset))
    consumer._committed_offset[READINGS] = 33  # rebalanced: committed up to 33
    guard.admit(Message(READINGS, 33, generation_id=2))
    assert restarts == []


def test_the_restarted_process_holds_none_of_the_old_files(tmp_path: Path) -> None:
    """An exec keeps inheritable descriptors and their locks (seen: chdb's directory lock made
    the restarted worker refuse to start); the restart closes them and reopens chdb."""
    directory = tmp_path / "clickhouse"
    after = textwrap.dedent(
        f"""
        import os, sys
        from streams.clickhouse import ClickHouse
        fd = int(sys.argv[1])
        try:
            os.fstat(fd)
            print("inherited", fd)
        except OSError:
            pass
        ClickHouse("chdb://{directory}", "pokazy").migrate()
        print("reopened")
        """
    )
    before = textwrap.dedent(
        f"""
        import fcntl, os, sys
        from streams.clickhouse import ClickHouse
        from streams.faust_fixes import restart_process
        ClickHouse("chdb://{directory}", "pokazy").migrate()
        fd = os.open("{tmp_path / "lock"}", os.O_CREAT | os.O_RDWR)
        os.set_inheritable(fd, True)
        fcntl.flock(fd, fcntl.LOCK_EX)
        restart_process([sys.executable, "-c", {after!r}, str(fd)])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", before], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["reopened"]
