"""Settings: secrets stay out of reprs, messages and logs; production refuses development keys.

The commands run as real `python -m streams …` processes, as an operator runs them; they point
at ports where nothing answers (or where the test listens), so they need nothing running.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.sdk.producer import BillingProducer, PokazyProducer
from streams.settings import BillingSettings, KafkaSettings, Settings, mask_url
from tests.commands import pokazy

PASSWORD = "S3cret-Pw_9"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://billing:S3cret-Pw_9@ch.internal:8123", "http://billing:***@ch.internal:8123"),
        (
            "https://billing@ch.internal:8443/?password=S3cret-Pw_9&compress=lz4",
            "https://billing@ch.internal:8443/?password=***&compress=lz4",
        ),
        (
            "https://billing:S3cret-Pw_9@ch.internal/?PASSWORD=S3cret-Pw_9",
            "https://billing:***@ch.internal/?PASSWORD=***",
        ),
        ("http://ch.internal/?access_token=S3cret-Pw_9", "http://ch.internal/?access_token=***"),
        ("http://ch.internal/?pass%77ord=S3cret-Pw_9#x", "http://ch.internal/?pass%77ord=***#x"),
        # Unescaped `/`, `#` and `@` in the password: a URL parser would call part of it the host.
        ("http://billing:S3c/r#t@x@[::1]:8123/db", "http://billing:***@[::1]:8123/db"),
        ("http://:S3cret-Pw_9@ch.internal", "http://:***@ch.internal"),
    ],
)
def test_a_clickhouse_url_is_shown_without_its_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "chdb:///var/lib/pokazy/clickhouse",
        "http://billing@ch.internal:8123/pokazy?compress=lz4&user=billing",
        "https://ch.internal",
    ],
)
def test_a_url_without_a_password_is_shown_as_written(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        f"http://billing:{PASSWORD}@ch.internal:8123",
        f"https://billing@ch.internal:8443/?password={PASSWORD}",
    ],
)
def test_the_clickhouse_password_stays_out_of_the_settings(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("POKAZY_CLICKHOUSE_URL", url)
    settings = Settings.from_env()

    assert settings.clickhouse_dsn == url  # the client still gets it
    for shown in (repr(settings), str(settings), settings.clickhouse_display):
        assert PASSWORD not in shown
    assert "***" in settings.clickhouse_display


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port that accepts connections and remembers them (nothing answers on it)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.setblocking(False)
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("POKAZY_")},
        "POKAZY_DATA_DIR": str(tmp_path / "data"),
        "POKAZY_WEB_PORT": str(_closed_port()),  # no worker: commands open ClickHouse themselves
        **extra,
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://billing:{PASSWORD}@127.0.0.1:{{port}}/", "http://billing:***@127.0.0.1:{port}/"),
        (
            f"http://billing@127.0.0.1:{{port}}/?password={PASSWORD}",
            "http://billing@127.0.0.1:{port}/?password=***",
        ),
    ],
    ids=["user-password", "query-password"],
)
def test_a_command_failing_on_clickhouse_names_the_url_without_the_password(
    tmp_path: Path, url: str, shown: str
) -> None:
    port = _closed_port()
    env = _base_env(tmp_path, POKAZY_CLICKHOUSE_URL=url.format(port=port))

    result = pokazy(env, "sql", "SELECT 1")

    assert result.returncode == 1
    assert PASSWORD not in result.stdout + result.stderr
    # clickhouse-connect may log a line of its own before pokazy's error, which ends stderr.
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot ")
    assert shown.format(port=port) in error


def test_production_with_the_development_keys_refuses_to_start_before_connecting(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    env = _base_env(
        tmp_path,
        POKAZY_ENVIRONMENT="production",
        POKAZY_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        POKAZY_CLICKHOUSE_URL=f"http://billing:{PASSWORD}@127.0.0.1:{port}/",
    )

    started = time.monotonic()
    result = pokazy(env, "worker")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: in production, POKAZY_SENDER_HASH_KEY must be set")
    assert "POKAZY_CONTROL_KEY must be set" in lines[0]
    # Before anything else: no connection to Kafka or ClickHouse, no state on disk, no wait.
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert not (tmp_path / "data").exists()
    assert time.monotonic() - started < 30


def test_production_names_only_the_key_still_missing(
    tmp_path: Path, listener: socket.socket
) -> None:
    env = _base_env(
        tmp_path,
        POKAZY_ENVIRONMENT="production",
        POKAZY_KAFKA_BOOTSTRAP=f"127.0.0.1:{listener.getsockname()[1]}",
        POKAZY_SENDER_HASH_KEY="a-real-hmac-key",
    )

    result = pokazy(env, "worker")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: in production, POKAZY_CONTROL_KEY must be set: with the development key anyone "
        "could close a billing period"
    ]
    with pytest.raises(BlockingIOError):
        listener.accept()


@pytest.mark.parametrize("drill", ["fault_clickhouse_flag", "fault_clickhouse_hold"])
def test_production_refuses_a_fault_drill(drill: str) -> None:
    settings = Settings(
        environment="production",
        sender_hash_key=SecretStr("a-real-sender-key"),
        control_key=SecretStr("a-real-control-key"),
        **{drill: Path("/tmp/drill")},
    )
    with pytest.raises(ConfigError, match="fault drills and must not be set"):
        settings.check_production()
    Settings(
        environment="production",
        sender_hash_key=SecretStr("a-real-sender-key"),
        control_key=SecretStr("a-real-control-key"),
    ).check_production()  # without the drill it starts


def test_a_bots_settings_are_kafkas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POKAZY_KAFKA_BOOTSTRAP", "kafka-1:9093,kafka-2:9093")
    monkeypatch.setenv("POKAZY_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("POKAZY_CLICKHOUSE_DATABASE", "not a database name")  # not a bot's business
    monkeypatch.setenv("POKAZY_CONTROL_KEY", "billing-only")
    kafka = KafkaSettings.from_env()
    assert kafka.kafka_bootstrap == "kafka-1:9093,kafka-2:9093"
    assert kafka.topic("readings") == "prod.readings"
    assert {name for name in KafkaSettings.model_fields if not name.startswith("kafka_")} == {
        "topic_prefix"
    }
    assert BillingSettings.from_env().control_key.get_secret_value() == "billing-only"
    with pytest.raises(ConfigError, match="POKAZY_CLICKHOUSE_DATABASE"):
        Settings.from_env()


def test_a_bots_settings_refuse_sasl_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POKAZY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="POKAZY_KAFKA_SASL_USERNAME"):
        KafkaSettings.from_env()


def test_only_billings_producer_publishes_master_data_closes_and_replays() -> None:
    billing_only = {"publish_registry", "request_period_close", "republish"}
    assert not billing_only & set(dir(PokazyProducer))
    assert billing_only <= set(dir(BillingProducer))
