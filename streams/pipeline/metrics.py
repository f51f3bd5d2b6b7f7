"""Prometheus metrics of one worker, and the stall detector behind its health endpoint.

A Kafka-to-ClickHouse sink that silently stops (consumer alive, nothing written, lag growing)
is the failure operators miss; `stalled()` names it: input waiting, and no message completed
for longer than the stall timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain"  # the Prometheus text format (aiohttp adds the charset)


class Metrics:
    """Every metric the worker exports, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings = Counter(
            "pokazy_readings_total",
            "Register readings judged, by outcome (accepted, rejected, duplicate) and reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.messages = Counter(
            "pokazy_messages_total", "Messages handled, by kind", ["kind"], registry=r
        )
        self.billing_lines = Counter(
            "pokazy_billing_lines_total", "Billing lines written by period closes", registry=r
        )
        self.sink_batch_rows = Histogram(
            "pokazy_sink_batch_rows",
            "Rows per ClickHouse insert",
            buckets=(1, 10, 100, 1_000, 5_000, 20_000, 100_000),
            registry=r,
        )
        self.sink_insert_seconds = Histogram(
            "pokazy_sink_insert_seconds", "Duration of a successful ClickHouse insert", registry=r
        )
        self.sink_retries = Counter(
            "pokazy_sink_retries_total", "Failed ClickHouse inserts that were retried", registry=r
        )
        self.sink_last_insert = Gauge(
            "pokazy_sink_last_insert_timestamp_seconds",
            "When the last ClickHouse insert succeeded (Unix time)",
            registry=r,
        )
        self.sink_pending_rows = Gauge(
            "pokazy_sink_pending_rows", "Rows waiting for the next insert", registry=r
        )
        self.consumer_lag = Gauge(
            "pokazy_consumer_lag",
            "Messages on an input partition not yet committed (highwater - committed offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.last_progress = Gauge(
            "pokazy_last_progress_timestamp_seconds",
            "When messages were last completed: written and acknowledged (Unix time)",
            registry=r,
        )
        self.last_progress_at = time.time()
        self.last_progress.set(self.last_progress_at)
        self.lag: dict[tuple[str, int], int] = {}
        # Labelled children by (counter, label values): `labels()` takes a lock and builds a key
        # on every call, and these two are counted for every message.
        self._children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def count_reading(self, outcome: str, reason: str, n: int = 1) -> None:
        """Count `n` judged register readings."""
        self._child(self.readings, outcome, reason).inc(n)

    def count_message(self, kind: str, n: int = 1) -> None:
        """Count `n` handled messages of a kind."""
        self._child(self.messages, kind).inc(n)

    def _child(self, counter: Counter, *labels: str) -> Counter:
        child = self._children.get((counter, labels))
        if child is None:
            child = self._children[(counter, labels)] = counter.labels(*labels)
        return child

    def progressed(self) -> None:
        self.last_progress_at = time.time()
        self.last_progress.set(self.last_progress_at)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        self.lag = dict(lags)
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)

    def stalled(self, timeout: float, now: float | None = None) -> bool:
        """Input is waiting and nothing was completed for `timeout` seconds."""
        idle = (now or time.time()) - self.last_progress_at
        return sum(self.lag.values()) > 0 and idle > timeout

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
