"""Read-only SQL on the pipeline's ClickHouse, for operators, the benchmark, the demo and tests.

With a worker running, the query goes through its `/sql` page: embedded chdb lets one process
open its directory, and the worker holds it. With none, the store is opened here.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson
import tenacity

from streams.adapters.clickhouse import ClickHouse
from streams.errors import ClickHouseUnavailable, PokazyError
from streams.settings import Settings


class _StoreBusy(PokazyError):
    """The embedded store is locked by a worker whose web port does not answer (yet)."""


def run_query(
    settings: Settings, query: str, *, wait: float = 60, through_worker: bool = False
) -> tuple[list[str], list[list[Any]]]:
    """A read-only query: through the running worker if there is one, else directly.

    A worker that is starting already holds the chdb directory before its
    web port answers; the query then waits up to `wait` seconds for one of the two to open.
    `through_worker` never opens the store here: for a long-lived caller (the benchmark, a test)
    that watches a running worker, which must not find its directory taken if it restarts.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_StoreBusy),
        stop=tenacity.stop_after_delay(wait),
        wait=tenacity.wait_fixed(0.5),
        reraise=True,
    )
    return retrying(_run_query_once, settings, query, through_worker)


def _run_query_once(
    settings: Settings, query: str, through_worker: bool
) -> tuple[list[str], list[list[Any]]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.web_port}/sql",
        data=orjson.dumps({"query": query}),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = orjson.loads(response.read())
        return body["columns"], body["rows"]
    except urllib.error.HTTPError as exc:
        raise PokazyError(orjson.loads(exc.read()).get("error", str(exc))) from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        if through_worker:
            raise _StoreBusy(f"the worker's web port {settings.web_port} does not answer") from exc
        # no worker here: open ClickHouse ourselves
    try:
        clickhouse = ClickHouse(settings.clickhouse_dsn, settings.clickhouse_database)
    except ClickHouseUnavailable as exc:
        if settings.embedded_clickhouse:
            raise _StoreBusy(
                f"{exc}; is a worker starting? its web port {settings.web_port} does not answer"
            ) from exc
        raise
    try:
        result = clickhouse.query(query, read_only=True)
    finally:
        clickhouse.close()
    return list(result.columns), [list(row) for row in result.rows]
