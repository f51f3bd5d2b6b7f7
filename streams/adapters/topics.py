"""The Kafka topics pokazy owns, created with the configured partition count, and their offsets.

Also the one way to put raw bytes on a topic (`publish_raw`): what a broken front end sends,
which the SDK would refuse, for the demo and the tests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.adapters.kafka_security import kafka_python_client
from streams.errors import BrokerUnavailable, PokazyError
from streams.settings import Settings

INPUT_TOPICS = ("readings", "registry")
ALL_TOPICS = (*INPUT_TOPICS, "replies")


def _admin(settings: Settings) -> KafkaAdminClient:
    return kafka_python_client(
        KafkaAdminClient, settings, client_id="pokazy-admin", request_timeout_ms=15000
    )


def ensure_topics(settings: Settings) -> None:
    """Create readings, registry and replies with equal partition counts if they are missing.

    The input topics must be co-partitioned: an account's state lives on the partition its key
    hashes to, in both of them.
    """
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.topic(name), settings.partitions, settings.topic_replication)
            for name in ALL_TOPICS
            if settings.topic(name) not in existing
        ]
        if wanted:
            # Another process may create them at the same moment, with the same settings.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
    finally:
        admin.close()


def publish_raw(
    settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> None:
    """Put (key, value) messages on one of pokazy's topics byte for byte, and wait for them."""
    producer = kafka_python_client(KafkaProducer, settings, acks="all")
    try:
        for key, value in messages:
            producer.send(settings.topic(topic), key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def input_end_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """The current end offset of every partition of the input topics."""
    consumer = kafka_python_client(KafkaConsumer, settings, client_id="pokazy-offsets")
    try:
        partitions = [
            TopicPartition(settings.topic(name), p)
            for name in INPUT_TOPICS
            for p in sorted(consumer.partitions_for_topic(settings.topic(name)) or ())
        ]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """The worker group's committed offsets on the input topics."""
    admin = _admin(settings)
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot read the offsets of {settings.app_id}: {exc}") from exc
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def wait_until_assigned(settings: Settings, members: int, timeout: float) -> None:
    """Block until the workers' group is stable, with its `members`, and owns every partition
    of the input topics.

    A worker's /health answers once its web server is up, a second or so before faust has
    joined the group and recovered its table.
    """
    wanted = set(input_end_offsets(settings))
    admin = _admin(settings)
    deadline = time.monotonic() + timeout
    try:
        while True:
            group = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
            owned = {
                TopicPartition(assigned["topic"], partition)
                for member in group.get("members") or ()
                for assigned in (member.get("member_assignment") or {}).get(
                    "assigned_partitions", ()
                )
                for partition in assigned["partitions"]
            }
            joined = len(group.get("members") or ())
            if group.get("group_state") == "Stable" and joined == members and wanted <= owned:
                return
            if time.monotonic() > deadline:
                raise PokazyError(
                    f"{settings.app_id}: {members} workers do not own every input partition "
                    f"after {timeout:.0f}s"
                )
            time.sleep(0.1)
    finally:
        admin.close()


def wait_until_idle(settings: Settings, timeout: float) -> None:
    """Block until every message published before the call is processed and in ClickHouse.

    The worker commits an offset only after the rows of every message before it are inserted,
    so a committed offset at the end offset means those messages are queryable.
    """
    ends = input_end_offsets(settings)
    deadline = time.monotonic() + timeout
    behind: dict[TopicPartition, int] = dict(ends)
    while True:
        try:
            committed = committed_offsets(settings)
            behind = {tp: end for tp, end in ends.items() if committed.get(tp, 0) < end}
        except BrokerUnavailable:
            pass  # e.g. the group coordinator is still being elected: ask again
        if not behind:
            return
        if time.monotonic() > deadline:
            lag = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in behind)
            raise PokazyError(f"not idle after {timeout:.0f}s; behind: {lag}")
        time.sleep(0.25)
