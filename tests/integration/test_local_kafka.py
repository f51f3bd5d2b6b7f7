"""The local Kafka broker the project fetches and runs (streams.tools.stack), for real.

Each broker here gets free ports and a temporary data dir, so a broker already running on 9092
is left alone. The jars come from the shared cache; the first run fetches them.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from streams.tools.processes import free_ports
from streams.tools.stack import LocalKafka, LocalKafkaError, kafka_version

pytestmark = pytest.mark.integration


def _new_broker(data_dir: Path, **options: Any) -> LocalKafka:
    port, controller_port = free_ports(2)
    return LocalKafka(data_dir, port=port, controller_port=controller_port, **options)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = _new_broker(tmp_path_factory.mktemp("local-kafka"))
    kafka.up()
    yield kafka
    kafka.down()


def _topic(name: str) -> str:
    return f"test-local-kafka-{name}-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, values: list[bytes], **config: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, **config)
    try:
        for value in values:
            producer.send(topic, key=b"meter-1", value=value).get(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, group: str, count: int, **config: Any) -> list[bytes]:
    """Read `count` messages from the start of `topic` in consumer group `group`, and commit."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
        **config,
    )
    try:
        values = []
        for message in consumer:
            values.append(message.value)
            if len(values) == count:
                break
        consumer.commit()
        return values
    finally:
        consumer.close()


def test_up_is_idempotent_and_status_answers(broker: LocalKafka) -> None:
    before = broker.status()

    again = broker.up()

    assert again == before
    assert again.running and again.answering
    assert again.pid is not None
    assert broker.pid_file.read_text().strip() == str(again.pid)
    assert again.bootstrap == f"127.0.0.1:{broker.port}"
    assert again.version == kafka_version()
    assert again.data_dir == broker.data_dir


def test_kafka_python_round_trip_in_a_consumer_group(broker: LocalKafka) -> None:
    topic, group = _topic("kafka-python"), f"group-{uuid.uuid4().hex[:8]}"
    sent = [b"reading-1", b"reading-2", b"reading-3"]

    _produce(broker.bootstrap, topic, sent)
    received = _consume(broker.bootstrap, topic, group, len(sent))

    assert received == sent
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert committed[TopicPartition(topic, 0)].offset == len(sent)


def test_aiokafka_round_trip_in_a_consumer_group(broker: LocalKafka) -> None:
    topic, group = _topic("aiokafka"), f"group-{uuid.uuid4().hex[:8]}"
    sent = [b"reading-1", b"reading-2", b"reading-3"]

    async def round_trip() -> tuple[list[bytes], int | None]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for value in sent:
                await producer.send_and_wait(topic, key=b"meter-1", value=value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received: list[bytes] = []
            while len(received) < len(sent):
                message = await asyncio.wait_for(consumer.getone(), timeout=30)
                received.append(message.value)
            await consumer.commit()
            committed = await consumer.committed(aiokafka.TopicPartition(topic, 0))
            return received, committed
        finally:
            await consumer.stop()

    received, committed = asyncio.run(round_trip())

    assert received == sent
    assert committed == len(sent)


def test_down_then_up_keeps_the_data(broker: LocalKafka) -> None:
    topic = _topic("restart")
    _produce(broker.bootstrap, topic, [b"before-restart"])
    old_pid = broker.status().pid

    broker.down()
    stopped = broker.status()
    broker.down()  # a second down is a no-op
    restarted = broker.up()

    assert not stopped.running and not stopped.answering and stopped.pid is None
    assert restarted.running and restarted.answering
    assert restarted.pid != old_pid
    assert _consume(broker.bootstrap, topic, f"group-{uuid.uuid4().hex[:8]}", 1) == [
        b"before-restart"
    ]


def test_down_leaves_a_process_that_is_not_our_broker_alone(tmp_path: Path) -> None:
    kafka = _new_broker(tmp_path)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kafka.home.mkdir(parents=True)
        kafka.pid_file.write_text(f"{stranger.pid}\n")

        status = kafka.status()
        kafka.down()

        assert not status.running and status.pid is None
        assert stranger.poll() is None
        assert not kafka.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_up_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (controller_port,) = free_ports(1)
        kafka = LocalKafka(tmp_path, port=port, controller_port=controller_port)

        with pytest.raises(LocalKafkaError, match="already in use"):
            kafka.up()

    assert not kafka.status().running


def test_a_broker_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    kafka = _new_broker(tmp_path, heap="not-a-size")

    with pytest.raises(LocalKafkaError, match="exited during start-up") as failure:
        kafka.up()

    assert "not-a-size" in str(failure.value)  # the JVM's own complaint, from kafka.log
    assert not kafka.status().running


def test_secure_broker_accepts_only_the_right_password(tmp_path: Path) -> None:
    kafka = _new_broker(tmp_path, secure=True, sasl_username="pokazy", sasl_password="s3cret-pw")

    def sasl(password: str) -> dict[str, Any]:
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "pokazy",
            "sasl_plain_password": password,
        }

    kafka.up()
    try:
        topic = _topic("secure")
        _produce(kafka.bootstrap, topic, [b"authenticated"], **sasl("s3cret-pw"))
        received = _consume(kafka.bootstrap, topic, "secure-group", 1, **sasl("s3cret-pw"))
        # kafka-python reports a refused login as a bootstrap timeout (and sometimes sees only
        # the closed socket), so the broker's own log is the witness of why.
        with pytest.raises(KafkaError):
            KafkaAdminClient(
                bootstrap_servers=kafka.bootstrap, bootstrap_timeout_ms=3000, **sasl("wrong")
            )
        with pytest.raises(KafkaError):
            KafkaAdminClient(bootstrap_servers=kafka.bootstrap, bootstrap_timeout_ms=3000)
    finally:
        kafka.down()

    assert received == [b"authenticated"]
    broker_log = kafka.log_file.read_text()
    assert "Failed authentication with /127.0.0.1" in broker_log
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in broker_log
    assert "Unexpected Kafka request of type METADATA during SASL handshake" in broker_log
