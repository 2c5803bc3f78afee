"""Clients that connect the moment the nodes start: each creates a topic right away, through
an unmodified client, and it succeeds within seconds.

As in Kafka, a broker's client listener accepts connections only once the broker has caught up
with the metadata and been unfenced (broker/node.py); before that, connections are refused and
clients retry them, instead of reading Metadata that shows no brokers and no controller (which
made confluent-kafka's AdminClient wait its whole timeout "for controller").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.proc_cluster import ProcCluster

confluent_admin = pytest.importorskip("confluent_kafka.admin")
kafka_admin = pytest.importorskip("kafka.admin")
aiokafka_admin = pytest.importorskip("aiokafka.admin")
aiokafka_errors = pytest.importorskip("aiokafka.errors")

# Well under librdkafka's 60 s default request timeout, which the old behaviour ran into.
WITHIN_S = 30.0
# Replication factor 1: the first broker to be unfenced takes client connections while the
# others may still be registering; a topic needing three brokers would then be refused with
# INVALID_REPLICATION_FACTOR, as Kafka refuses it.
RF = 1


@pytest.fixture
def just_started(tmp_path: Path) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path, controllers=3, combined=True)
    c.start(wait=False)  # no waiting for "started": the clients go first
    try:
        yield c
    finally:
        c.shutdown()


def _topic_count(c: ProcCluster, name: str) -> int:
    """The topic's partition count once every broker's metadata shows it (0 if none does)."""
    admin = confluent_admin.AdminClient({"bootstrap.servers": c.bootstrap_servers})
    deadline = time.monotonic() + 20
    while True:
        topic = admin.list_topics(name, timeout=20).topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            return len(topic.partitions)
        if time.monotonic() > deadline:
            return 0
        time.sleep(0.2)


def test_confluent_admin_creates_a_topic_on_a_cluster_just_started(
        just_started: ProcCluster) -> None:
    t0 = time.monotonic()
    admin = confluent_admin.AdminClient({"bootstrap.servers": just_started.bootstrap_servers})
    futures = admin.create_topics([confluent_admin.NewTopic("early-ck", 3, RF)])
    futures["early-ck"].result(WITHIN_S)
    assert time.monotonic() - t0 < WITHIN_S
    assert _topic_count(just_started, "early-ck") == 3


def test_kafka_python_admin_creates_a_topic_on_a_cluster_just_started(
        just_started: ProcCluster) -> None:
    t0 = time.monotonic()
    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=just_started.bootstrap_servers,
                                         request_timeout_ms=int(WITHIN_S * 1000))
    try:
        admin.create_topics([kafka_admin.NewTopic("early-kp", 3, RF)])
    finally:
        admin.close()
    assert time.monotonic() - t0 < WITHIN_S
    assert _topic_count(just_started, "early-kp") == 3


def test_aiokafka_admin_creates_a_topic_on_a_cluster_just_started(
        just_started: ProcCluster) -> None:
    async def create() -> None:
        # aiokafka gives up at once when no bootstrap server accepts a connection (against a
        # Kafka broker still starting as well), so the caller retries its start.
        deadline = time.monotonic() + WITHIN_S
        while True:
            admin = aiokafka_admin.AIOKafkaAdminClient(
                bootstrap_servers=just_started.bootstrap_servers)
            try:
                await admin.start()
                break
            except aiokafka_errors.KafkaConnectionError:
                await admin.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            await admin.create_topics([aiokafka_admin.NewTopic("early-ak", 3, RF)])
        finally:
            await admin.close()

    t0 = time.monotonic()
    asyncio.run(create())
    assert time.monotonic() - t0 < WITHIN_S
    assert _topic_count(just_started, "early-ak") == 3
