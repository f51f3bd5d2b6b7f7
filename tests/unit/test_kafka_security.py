"""Kafka security settings and client options; the broker's own answers are integration tests."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import faust
import pytest

from streams.adapters.kafka_security import aiokafka_options, check_login, faust_credentials
from streams.errors import ConfigError
from streams.settings import Settings


def _from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_empty_security_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _from_env(
        monkeypatch,
        POKAZY_KAFKA_SECURITY_PROTOCOL="SSL",
        POKAZY_KAFKA_SSL_CAFILE="",
        POKAZY_KAFKA_SASL_MECHANISM="",
    )

    assert settings.kafka_ssl_cafile is None
    assert settings.kafka_sasl_mechanism is None


def test_sasl_without_a_password_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"needs POKAZY_KAFKA_SASL_USERNAME and .*PASSWORD"):
        _from_env(
            monkeypatch,
            POKAZY_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
            POKAZY_KAFKA_SASL_USERNAME="billing",
        )


def test_the_password_stays_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _from_env(
        monkeypatch,
        POKAZY_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        POKAZY_KAFKA_SASL_USERNAME="billing",
        POKAZY_KAFKA_SASL_PASSWORD="Very-secret-1",
    )

    assert "Very-secret-1" not in repr(settings)
    assert settings.kafka_client_options()["sasl_plain_password"] == "Very-secret-1"


def test_aiokafka_and_faust_get_the_same_sasl_ssl_settings() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="billing",
        kafka_sasl_password="pw",  # type: ignore[arg-type]
    )

    options = aiokafka_options(settings)
    credentials = faust_credentials(settings)

    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].check_hostname
    assert not any(key.startswith("ssl_") and key != "ssl_context" for key in options)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "billing" and credentials.mechanism.value == "SCRAM-SHA-256"


def test_plaintext_has_no_credentials() -> None:
    settings = Settings()

    assert faust_credentials(settings) is None
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT", "ssl_context": None}


def test_a_missing_ca_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "none.pem")

    with pytest.raises(ConfigError, match=r"POKAZY_KAFKA_SSL_CAFILE=.*none\.pem"):
        aiokafka_options(settings)


def test_the_login_check_leaves_an_unreachable_broker_to_the_client() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="billing",
        kafka_sasl_password="pw",  # type: ignore[arg-type]
    )

    check_login(settings, timeout=5)  # no ConfigError: unavailability is not a config problem
