"""Integration fixtures: the real local Kafka broker, and workers as real processes.

Every test gets its own topic prefix, ClickHouse database and data dir (so its own embedded
ClickHouse), and its workers run as `python -m streams worker` subprocesses that a test can
SIGKILL (`streams.tools.processes.WorkerProcess`, the harness bench and demo use too). Nothing
here skips: without a broker the tests fail, loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from streams.adapters.topics import ensure_topics, wait_until_idle
from streams.sdk.producer import BillingProducer, PokazyProducer
from streams.settings import Settings
from streams.tools.processes import WorkerProcess, free_port
from streams.tools.query import run_query
from streams.tools.stack import local_kafka

ROOT = Path(__file__).resolve().parents[2]
# Not 9092: a developer's `make demo` broker may be running there.
TEST_BOOTSTRAP = os.environ.get("POKAZY_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> str:
    """The shared test broker, started if `make test` has not started it already."""
    settings = Settings(kafka_bootstrap=TEST_BOOTSTRAP, data_dir=ROOT / ".pokazy" / "test")
    status = local_kafka(settings).up()
    assert status.answering, f"the test broker on {TEST_BOOTSTRAP} does not answer"
    return TEST_BOOTSTRAP


@dataclass
class Pipeline:
    """One isolated pipeline: its settings, its environment, and its workers."""

    settings: Settings
    env: dict[str, str]  # the POKAZY_* environment of its workers and `pokazy` commands
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, **env: str) -> WorkerProcess:
        """Start a worker and wait until it serves; keyword arguments override its POKAZY_*
        environment."""
        worker = WorkerProcess(
            self.settings, overrides={**self.env, **env}, log_name=f"worker-{len(self.workers)}.log"
        )
        self.workers.append(worker)
        worker.run()
        return worker

    def publish(
        self, registry: Sequence[dict[str, Any]], submissions: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Billing's registry events, waited for until processed (a reading judged before its
        meter is known is UNKNOWN_ACCOUNT), then the bots' submissions, sent."""
        with BillingProducer(self.settings) as billing:
            for event in registry:
                billing.publish_registry(event, wait=False)
        self.wait_idle()
        with PokazyProducer(self.settings) as bot:
            for submission in submissions:
                bot.submit(submission, wait=False)

    def wait_idle(self, timeout: float = 180) -> None:
        wait_until_idle(self.settings, timeout)

    def messages(self, topic: str, idle_timeout: float = 10) -> Iterator[Any]:
        """One of its topics from the start, until nothing more comes for `idle_timeout` s."""
        consumer = KafkaConsumer(
            self.settings.topic(topic),
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=int(idle_timeout * 1000),
        )
        try:
            yield from consumer
        finally:
            consumer.close()

    def query(self, sql: str) -> list[dict[str, Any]]:
        columns, rows = run_query(self.settings, sql.replace("{db}", self.database))
        return [dict(zip(columns, row, strict=True)) for row in rows]

    @property
    def database(self) -> str:
        return self.settings.clickhouse_database


def new_pipeline(bootstrap: str, data_dir: Path, **security: str) -> Pipeline:
    """An isolated pipeline on `bootstrap`; `security` holds POKAZY_KAFKA_* variables, if any.

    Its topics are created, so the first worker does not race a publisher to create them.
    """
    tag = uuid.uuid4().hex[:10]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POKAZY_")},
        "POKAZY_KAFKA_BOOTSTRAP": bootstrap,
        "POKAZY_TOPIC_PREFIX": f"t{tag}.",
        "POKAZY_PARTITIONS": "2",
        "POKAZY_DATA_DIR": str(data_dir),
        "POKAZY_CLICKHOUSE_DATABASE": f"t_{tag}",
        "POKAZY_WEB_PORT": str(free_port()),
        "POKAZY_SINK_FLUSH_INTERVAL": "0.2",
        "POKAZY_COMMIT_INTERVAL": "0.5",
        "POKAZY_KAFKA_SESSION_TIMEOUT": "6",
        "POKAZY_LOG_LEVEL": os.environ.get("POKAZY_TEST_LOG_LEVEL", "info"),
        **security,
    }
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=env["POKAZY_TOPIC_PREFIX"],
        partitions=2,
        data_dir=data_dir,
        clickhouse_database=env["POKAZY_CLICKHOUSE_DATABASE"],
        web_port=int(env["POKAZY_WEB_PORT"]),
        **{name.removeprefix("POKAZY_").lower(): value for name, value in security.items()},
    )
    ensure_topics(settings)
    return Pipeline(settings, env)


@pytest.fixture
def pipeline(broker: str, tmp_path: Path) -> Iterator[Pipeline]:
    handle = new_pipeline(broker, tmp_path)
    yield handle
    for worker in handle.workers:
        worker.stop()
