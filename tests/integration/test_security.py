"""Kafka with SASL/SCRAM (and TLS) on the real broker: the pipeline works with the right
credentials from the environment, and every client refuses wrong ones at once and says why.

The module starts its own brokers on free ports (POKAZY_TEST_SECURE_KAFKA_PORTS, e.g.
`29100-29199`, keeps them within a range) with their own data dirs, and stops them at the end.
The shared test broker is not involved.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from streams.domain.calendar import Period
from streams.errors import ConfigError
from streams.sdk.producer import BillingProducer
from streams.tools.processes import free_ports
from streams.tools.stack import LocalKafka
from tests.builders import simulated_month
from tests.commands import pokazy
from tests.integration.conftest import Pipeline, new_pipeline
from tests.integration.expected import (
    BILLING_SQL,
    READINGS_SQL,
    ReferenceRun,
    actual_billing,
    actual_readings,
)

USER = "pokazy-billing"
PASSWORD = "Right-pw.2023"
WRONG_PASSWORD = "wrong-pw.2023"
PERIOD = Period(2023, 5)


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different; within POKAZY_TEST_SECURE_KAFKA_PORTS if set."""
    span = os.environ.get("POKAZY_TEST_SECURE_KAFKA_PORTS")
    if span is None:
        return free_ports(count)
    low, high = (int(end) for end in span.split("-"))
    candidates = list(range(low, high + 1))
    random.shuffle(candidates)
    free = []
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        free.append(port)
        if len(free) == count:
            return free
    raise AssertionError(f"fewer than {count} free ports in {span}")


def _start_broker(data_dir: Path, *, tls: bool) -> LocalKafka:
    port, controller_port = _free_ports(2)
    kafka = LocalKafka(
        data_dir,
        port=port,
        controller_port=controller_port,
        secure=True,
        tls=tls,
        sasl_username=USER,
        sasl_password=PASSWORD,
    )
    status = kafka.up()
    assert status.answering, f"the secure broker on {kafka.bootstrap} does not answer"
    return kafka


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = _start_broker(tmp_path_factory.mktemp("sasl-kafka"), tls=False)
    yield kafka
    kafka.down()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = _start_broker(tmp_path_factory.mktemp("sasl-ssl-kafka"), tls=True)
    yield kafka
    kafka.down()


def _credentials(kafka: LocalKafka, password: str = PASSWORD) -> dict[str, str]:
    """The POKAZY_KAFKA_* variables a client of `kafka` sets."""
    env = {
        "POKAZY_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "POKAZY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "POKAZY_KAFKA_SASL_USERNAME": USER,
        "POKAZY_KAFKA_SASL_PASSWORD": password,
    }
    if kafka.tls:
        env["POKAZY_KAFKA_SSL_CAFILE"] = str(kafka.ca_file)
    return env


@pytest.fixture
def sasl_pipeline(sasl_broker: LocalKafka, tmp_path: Path) -> Iterator[Pipeline]:
    handle = new_pipeline(sasl_broker.bootstrap, tmp_path, **_credentials(sasl_broker))
    yield handle
    for worker in handle.workers:
        worker.stop()


@pytest.fixture
def tls_pipeline(tls_broker: LocalKafka, tmp_path: Path) -> Iterator[Pipeline]:
    handle = new_pipeline(tls_broker.bootstrap, tmp_path, **_credentials(tls_broker))
    yield handle
    for worker in handle.workers:
        worker.stop()


def _json_lines(path: Path, objects: list[dict[str, Any]]) -> Path:
    # Zones are StrEnum members: orjson writes them as their string values.
    lines = (orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) + b"\n" for obj in objects)
    path.write_bytes(b"".join(lines))
    return path


def _views(pipeline: Pipeline) -> dict[str, list[dict[str, Any]]]:
    return {
        "readings": pipeline.query(READINGS_SQL),
        "rejections": pipeline.query("SELECT event_id, reason FROM {db}.rejections"),
        "billing": pipeline.query(BILLING_SQL),
    }


def _assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit code 1 and one line on stderr naming the problem; no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_the_pipeline_runs_on_sasl_scram_with_credentials_from_the_environment(
    sasl_pipeline: Pipeline, tmp_path: Path
) -> None:
    month = simulated_month(40, PERIOD, seed=31)
    expected = ReferenceRun()
    expected.registry(month.registry)
    expected.submit(month.submissions)
    expected.close(PERIOD)
    env = sasl_pipeline.env
    half = len(month.submissions) // 2

    loaded = pokazy(env, "registry", "load", str(_json_lines(tmp_path / "meters.jsonl",
                                                              month.registry)))  # fmt: skip
    sasl_pipeline.worker()
    sasl_pipeline.wait_idle()
    with BillingProducer(sasl_pipeline.settings) as producer:  # the SDK, as a bot uses it
        for submission in month.submissions[:half]:
            producer.submit(submission, wait=False)
    published = pokazy(env, "publish", str(_json_lines(tmp_path / "readings.jsonl",
                                                        month.submissions[half:])))  # fmt: skip
    idle = pokazy(env, "wait-idle", "--timeout", "180")
    closed = pokazy(env, "close-period", str(PERIOD))
    sasl_pipeline.wait_idle()

    for result in (loaded, published, idle, closed):
        assert result.returncode == 0, result.stderr
    views = _views(sasl_pipeline)
    assert actual_readings(views["readings"]) == expected.readings
    assert len(views["readings"]) == len(expected.readings)
    assert {(r["event_id"], r["reason"]) for r in views["rejections"]} == expected.rejections
    assert len(views["rejections"]) == expected.rejection_rows
    assert actual_billing(views["billing"]) == expected.billing
    assert len(views["billing"]) == len(expected.billing)
    assert expected.rejections and expected.billing  # the month exercises both


@pytest.mark.parametrize(
    "command",
    [
        ["registry", "load", "meters.jsonl"],
        ["publish", "readings.jsonl"],
        ["close-period", "2023-05"],
        ["wait-idle", "--timeout", "30"],
        ["rejections", "replay"],
    ],
    ids=lambda command: command[0],
)
def test_a_wrong_password_stops_every_command_with_one_clear_line(
    sasl_pipeline: Pipeline, tmp_path: Path, command: list[str]
) -> None:
    month = simulated_month(2, PERIOD, seed=32)
    _json_lines(tmp_path / "meters.jsonl", month.registry)
    _json_lines(tmp_path / "readings.jsonl", month.submissions)
    env = {**sasl_pipeline.env, "POKAZY_KAFKA_SASL_PASSWORD": WRONG_PASSWORD}
    if command[0] == "rejections":
        sasl_pipeline.worker()  # the replay reads the rejections through it before publishing

    result = pokazy(
        env, *(str(tmp_path / arg) if arg.endswith(".jsonl") else arg for arg in command)
    )

    _assert_refused(
        result, f"refused the login of user '{USER}'", "authentication failed", "PASSWORD"
    )
    assert WRONG_PASSWORD not in result.stderr + result.stdout


def test_a_wrong_password_stops_the_sdk_with_a_config_error(sasl_pipeline: Pipeline) -> None:
    wrong = sasl_pipeline.settings.model_copy(
        update={"kafka_sasl_password": SecretStr(WRONG_PASSWORD)}
    )

    with pytest.raises(ConfigError, match="authentication failed") as refused:
        BillingProducer(wrong)

    assert WRONG_PASSWORD not in str(refused.value)


def test_a_worker_with_a_wrong_password_exits_with_one_clear_line(
    sasl_pipeline: Pipeline,
) -> None:
    env = {**sasl_pipeline.env, "POKAZY_KAFKA_SASL_PASSWORD": WRONG_PASSWORD}

    result = pokazy(env, "worker")

    _assert_refused(result, "refused the login", "authentication failed")


def test_a_plaintext_client_is_told_the_listener_requires_authentication(
    sasl_broker: LocalKafka, sasl_pipeline: Pipeline, tmp_path: Path
) -> None:
    meters = _json_lines(tmp_path / "meters.jsonl", simulated_month(2, PERIOD, seed=33).registry)
    security = _credentials(sasl_broker)
    # No security protocol and no credentials: PLAINTEXT, the default.
    env = {k: v for k, v in sasl_pipeline.env.items() if k not in security}

    result = pokazy(env, "registry", "load", str(meters))

    _assert_refused(result, "requires authentication", "POKAZY_KAFKA_SECURITY_PROTOCOL=PLAINTEXT")


def test_the_pipeline_runs_on_sasl_ssl_with_the_local_ca(tls_pipeline: Pipeline) -> None:
    month = simulated_month(12, PERIOD, seed=34)
    expected = ReferenceRun()
    expected.registry(month.registry)
    expected.submit(month.submissions)

    tls_pipeline.worker()
    with BillingProducer(tls_pipeline.settings) as producer:
        for event in month.registry:
            producer.publish_registry(event, wait=False)
    tls_pipeline.wait_idle()
    with BillingProducer(tls_pipeline.settings) as producer:
        for submission in month.submissions:
            producer.submit(submission, wait=False)
    tls_pipeline.wait_idle()

    readings = tls_pipeline.query(READINGS_SQL)
    assert actual_readings(readings) == expected.readings
    assert len(readings) == len(expected.readings)


def test_a_client_without_the_ca_refuses_the_broker_certificate(
    tls_pipeline: Pipeline, tmp_path: Path
) -> None:
    meters = _json_lines(tmp_path / "meters.jsonl", simulated_month(2, PERIOD, seed=35).registry)
    env = {**tls_pipeline.env, "POKAZY_KAFKA_SSL_CAFILE": ""}  # the system's CAs only
    untrusting = tls_pipeline.settings.model_copy(update={"kafka_ssl_cafile": None})

    result = pokazy(env, "registry", "load", str(meters))
    with pytest.raises(ConfigError, match="does not trust") as refused:
        BillingProducer(untrusting)

    _assert_refused(result, "TLS certificate", "does not trust", "POKAZY_KAFKA_SSL_CAFILE")
    assert "self-signed certificate in certificate chain" in str(refused.value)
