"""A failed insert: an outage is waited out, rows ClickHouse refuses for good are not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from streams.adapters.clickhouse import InsertRefused, insert_error
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


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (DatabaseError("Code: 60. DB::Exception: Table x does not exist. (UNKNOWN_TABLE)"), True),
        (DatabaseError("Code: 53. DB::Exception: Type mismatch (TYPE_MISMATCH)"), True),
        (DatabaseError("Code: 241. DB::Exception: Memory limit exceeded (MEMORY_LIMIT)"), False),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)"), False),
        (DatabaseError("Code: 243. DB::Exception: Cannot reserve space (NOT_ENOUGH_SPACE)"), False),
        (DatabaseError("a refusal without a code"), False),
        (OperationalError("connection refused"), False),
        (ConnectionResetError("reset by peer"), False),
        (ProgrammingError("Unrecognized column 'x' in table t"), True),
        (ValueError("invalid literal for int()"), True),
        (TypeError("'NoneType' object is not iterable"), True),
        (RuntimeError("something else"), False),
    ],
)
def test_a_failed_insert_is_an_outage_unless_clickhouse_refuses_the_rows_for_good(
    error: Exception, refused: bool
) -> None:
    meant = insert_error(error, "chdb://store", "pokazy.readings_log")
    assert isinstance(meant, InsertRefused if refused else ClickHouseUnavailable)
