"""ClickHouse access: one client per process, versioned migrations, inserts and read-only queries.

The embedded default is chdb (`chdb://<path>`); an `http(s)://` URL selects a server. Both get
the same DDL from `schemas/clickhouse/`. chdb is in-process and blocking, and only one process
may open its directory, so the worker owns it and runs every call on one thread.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.exceptions import (
    ClickHouseError,
    DatabaseError,
    OperationalError,
    ProgrammingError,
)

from streams.errors import ClickHouseUnavailable, ConfigError, PermanentError, PokazyError
from streams.settings import mask_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Statements end with ';' at the end of a line (a ';' inside a COMMENT string does not end one).
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


class QueryRejected(PermanentError):
    """ClickHouse refused a query (syntax, unknown table, or a write on the read-only path)."""


class InsertRefused(PermanentError):
    """ClickHouse will never take these rows as they are: the table or its columns are not what
    the rows are (a schema out of date), or a value does not fit its column's type. Retrying
    the same rows cannot succeed; `code` is ClickHouse's error code when it gave one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


# ClickHouse's error codes that refuse an insert for good: the database, table or a column is
# missing or of another type, or a value cannot be read as its column's type. Any other
# refusal (too many parts, memory, a timeout, a read-only replica, no space on the disk, ...)
# is taken as an outage, retried until it passes.
PERMANENT_INSERT_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    16,  # NO_SUCH_COLUMN_IN_TABLE
    20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    43,  # ILLEGAL_TYPE_OF_ARGUMENT
    47,  # UNKNOWN_IDENTIFIER
    53,  # TYPE_MISMATCH
    60,  # UNKNOWN_TABLE
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    81,  # UNKNOWN_DATABASE
    117,  # INCORRECT_DATA
    164,  # READONLY
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    497,  # ACCESS_DENIED
})  # fmt: skip
_ERROR_CODE = re.compile(r"\bCode: (\d+)\b")


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    """Every `NNNN_name.sql` file in version order, split into statements."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        body = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        statements = tuple(s.strip() for s in _STATEMENT_END.split(body) if s.strip())
        migrations.append(Migration(int(match.group(1)), path.stem, statements))
    return tuple(migrations)


def _wait_until_unlocked(status: Path, wait: float, dsn: str) -> None:
    """Return once no process holds embedded ClickHouse's lock on `status` (a `flock`, as
    ClickHouse takes it), or `wait` seconds have passed (opening will then say who holds it)."""
    if not status.exists():
        return
    deadline = time.monotonic() + wait
    with status.open("rb") as handle:
        for attempt in itertools.count():
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                if attempt == 0:
                    log.warning("%s is held by another process; waiting for it", mask_url(dsn))
                time.sleep(0.5)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return


class ClickHouse:
    """A connected client bound to pokazy's database."""

    def __init__(
        self,
        dsn: str,
        database: str,
        *,
        fault_flag: Path | None = None,
        hold_flag: Path | None = None,
    ) -> None:
        self.database = database
        self.display = mask_url(dsn)
        # Outage drills: while this file exists, every insert fails as if ClickHouse were down.
        self.fault_flag = fault_flag
        # Crash drills: while this file exists, every insert is written and then held (`_hold`).
        self.hold_flag = hold_flag
        try:
            self._client = clickhouse_connect.get_client(dsn=dsn)
        except ClickHouseError as exc:
            raise ClickHouseUnavailable(f"cannot open ClickHouse at {self.display}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            # clickhouse-connect refuses some URLs outright (e.g. `?password=`, which clashes with
            # its own password argument): one line naming the masked URL, not a traceback.
            raise ConfigError(f"cannot use the ClickHouse URL {self.display}: {exc}") from exc
        # clickhouse-connect imports pandas (which chdb brings) on its first insert: half a
        # second holding the GIL. Pay it here, not in the middle of the first batch.
        _ = clickhouse_options.pd

    @classmethod
    def open_when_free(cls, dsn: str, database: str, *, wait: float, **drills: Any) -> ClickHouse:
        """Open ClickHouse, waiting up to `wait` seconds while another process holds the
        embedded directory.

        A reader (`pokazy sql`, `pokazy report`) opens the directory for one query when no
        worker answers, which is also the moment a worker is restarting: the worker waits for
        it instead of exiting. The wait happens before chdb is touched: chdb cannot be opened
        again in a process where opening it failed once.
        """
        if dsn.startswith("chdb://"):
            _wait_until_unlocked(Path(dsn.removeprefix("chdb://")) / "status", wait, dsn)
        return cls(dsn, database, **drills)

    def __repr__(self) -> str:
        return f"ClickHouse({self.display}, database={self.database})"

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[str]:
        """Apply the migrations this database has not seen yet; returns their names."""
        db = self.database
        self.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
        done = {row[0] for row in self.query(f"SELECT version FROM {db}.schema_migrations").rows}
        applied = []
        for migration in migrations if migrations is not None else load_migrations():
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.command(statement.replace("{database}", db))
            self.insert(
                "schema_migrations", [[migration.version], [migration.name]], ["version", "name"]
            )
            applied.append(migration.name)
            log.info("applied ClickHouse migration %s to %s", migration.name, db)
        return applied

    def command(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL)."""
        with _translated_errors(self.display):
            self._client.command(sql)

    def insert(self, table: str, columns: Sequence[Sequence[Any]], names: Sequence[str]) -> None:
        """Insert column-oriented data into a table of pokazy's database."""
        if self.fault_flag is not None and self.fault_flag.exists():
            raise ClickHouseUnavailable(f"injected outage ({self.fault_flag} exists)")
        try:
            self._client.insert(
                table,
                list(columns),
                column_names=list(names),
                database=self.database,
                column_oriented=True,
            )
        except Exception as exc:
            raise insert_error(exc, self.display, f"{self.database}.{table}") from exc
        if self.hold_flag is not None and self.hold_flag.exists():
            _hold(self.hold_flag, table)

    def query(self, sql: str, *, read_only: bool = False) -> QueryResult:
        """Run a SELECT; with `read_only`, ClickHouse itself refuses anything that writes."""
        settings = {"readonly": 1} if read_only else None
        with _translated_errors(self.display, read_only=read_only):
            result = self._client.query(sql, settings=settings)
        return QueryResult(tuple(result.column_names), tuple(map(tuple, result.result_rows)))

    def close(self) -> None:
        self._client.close()


def _hold(flag: Path, table: str) -> None:
    """Block, after an insert into `table` was written, until `flag` is removed.

    The rows are in ClickHouse and the worker has not heard back: a crash here is the one a
    replay must absorb without doubling anything, and SIGKILL drills aim for it. The table's
    name, written into the flag file first, tells the drill that the worker is held here. The
    caller is the ClickHouse thread, so the worker's event loop (and /health) keeps running.
    """
    try:
        # Without O_CREAT: a flag removed meanwhile is not brought back to hold forever.
        descriptor = os.open(flag, os.O_WRONLY | os.O_TRUNC)
    except FileNotFoundError:
        return
    with os.fdopen(descriptor, "w") as held:
        held.write(f"{table}\n")
    log.warning("injected hold: an insert into %s is written but held while %s exists", table, flag)
    while flag.exists():
        time.sleep(0.05)


def insert_error(exc: Exception, display: str, table: str) -> PokazyError:
    """What a failed insert means: ClickHouse unavailable (retry), or the rows refused for good.

    clickhouse-connect serializes the columns before sending: a value that does not fit its
    column's type fails there (`ValueError`, `TypeError`), as a column the table lacks does
    (`ProgrammingError`). A server's refusal carries its code (`PERMANENT_INSERT_CODES`).
    """
    if isinstance(exc, OperationalError | OSError):
        return ClickHouseUnavailable(f"ClickHouse at {display} is unavailable: {exc}")
    message = str(exc).strip()
    if isinstance(exc, ProgrammingError | ValueError | TypeError):
        return InsertRefused(f"rows for {table} do not fit it: {message}")
    if isinstance(exc, DatabaseError):
        found = _ERROR_CODE.search(message)
        code = int(found.group(1)) if found else None
        if code in PERMANENT_INSERT_CODES:
            return InsertRefused(f"{table} refuses the rows: {message}", code=code)
        return ClickHouseUnavailable(f"ClickHouse at {display} refused an insert: {message}")
    return ClickHouseUnavailable(f"an insert into {table} at {display} failed: {exc!r}")


# ClickHouse's answer to a write under `readonly = 1` (error code 164, READONLY).
_READONLY_REFUSAL = re.compile(r"\bCode: 164\b|\bREADONLY\b|in readonly mode")


@contextmanager
def _translated_errors(display: str, *, read_only: bool = False) -> Iterator[None]:
    """Turn clickhouse-connect's errors into pokazy's retryable / permanent ones, with cause."""
    try:
        yield
    except (OperationalError, OSError) as exc:
        raise ClickHouseUnavailable(f"ClickHouse at {display} is unavailable: {exc}") from exc
    except DatabaseError as exc:
        message = str(exc).strip()
        if read_only and _READONLY_REFUSAL.search(message):
            raise QueryRejected(
                "refused: queries here are read-only (SELECT, SHOW, DESCRIBE, EXPLAIN); "
                "data changes only through the worker"
            ) from exc
        raise QueryRejected(message) from exc
