"""The sink's insert: an outage is waited out, rows refused for good are not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from streams.adapters.clickhouse import InsertRefused
from streams.errors import ClickHouseUnavailable
from streams.pipeline.sink import Batch, ClickHouseSink

ROW = ("event", "0000000001")


class FlakyClickHouse:
    """Fails each insert with the next of `failures`, then takes the rows."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.attempts = 0
        self.inserted: list[tuple[str, list[Sequence[Any]]]] = []

    def insert(self, table: str, columns: Sequence[Sequence[Any]], names: Sequence[str]) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.inserted.append((table, list(columns)))

    def close(self) -> None:
        pass


def write(clickhouse: FlakyClickHouse) -> None:
    sink = ClickHouseSink(clickhouse)  # type: ignore[arg-type]
    try:
        asyncio.run(sink.write(Batch([ROW + (None,) * 13], [], [])))
    finally:
        sink.close()


def test_an_outage_is_retried_until_clickhouse_takes_the_rows() -> None:
    clickhouse = FlakyClickHouse(ClickHouseUnavailable("down"), ClickHouseUnavailable("down"))
    write(clickhouse)
    assert clickhouse.attempts == 3 and [t for t, _ in clickhouse.inserted] == ["readings_log"]


def test_rows_refused_for_good_are_raised_at_once() -> None:
    clickhouse = FlakyClickHouse(InsertRefused("readings_log refuses the rows", code=16))
    with pytest.raises(InsertRefused):
        write(clickhouse)
    assert clickhouse.attempts == 1 and clickhouse.inserted == []
