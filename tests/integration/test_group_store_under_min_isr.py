"""A consumer group while ``__consumer_offsets`` is under min.insync.replicas, on a real node
with confluent-kafka (librdkafka): one combined node, the offsets topic with replication factor
1 and min.insync.replicas=2, so every group metadata write is refused.

librdkafka rejoins at once after a failed SyncGroup; the coordinator now holds each write up to
offsets.commit.timeout.ms waiting for the ISR (broker/groups/metadata_manager.py
``_store_group``), so the JoinGroup/SyncGroup cycle runs once per timeout instead of thousands
of times a second. Once min.insync.replicas is lowered the next SyncGroup succeeds and the
member consumes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tools.proc_cluster import ProcCluster

COMMIT_TIMEOUT_MS = 1000
FAILED = "Storing metadata of group g-min-isr failed"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("group-min-isr"), controllers=1, brokers=1,
                    combined=True, extra={
                        "offsets.topic.replication.factor": "1",
                        "offsets.topic.num.partitions": "1",
                        "group.initial.rebalance.delay.ms": "0",
                        "group.min.session.timeout.ms": "1000",
                        "min.insync.replicas": "2",
                        "offsets.commit.timeout.ms": str(COMMIT_TIMEOUT_MS)})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def failed_stores(c: ProcCluster) -> int:
    return sum(n.log_path.read_text(errors="replace").count(FAILED) for n in c.nodes.values())


def test_a_refused_group_write_is_not_retried_in_a_tight_loop(cluster: ProcCluster) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
    )
    bootstrap = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("min-isr", 1, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": 1})
    p.produce("min-isr", b"hello")
    assert p.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-min-isr",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe(["min-isr"])
        deadline = time.monotonic() + 60
        while failed_stores(cluster) == 0:  # the first SyncGroup reached the coordinator
            assert time.monotonic() < deadline, "no group write was attempted"
            assert consumer.poll(0.2) is None
        started = time.monotonic()
        first = failed_stores(cluster)
        while time.monotonic() - started < 4:
            assert consumer.poll(0.2) is None  # no assignment while writes are refused
        failed = failed_stores(cluster) - first
        # One refused write per offsets.commit.timeout.ms at most (librdkafka rejoins at once);
        # answered at once, the same four seconds held thousands.
        assert 1 <= failed <= 4 * 1000 // COMMIT_TIMEOUT_MS + 2, failed
        # The ISR is enough again (here: the requirement is lowered): the member gets its
        # partition and reads.
        res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets",
                             incremental_configs=[ConfigEntry(
                                 "min.insync.replicas", "1",
                                 incremental_operation=AlterConfigOpType.SET)])
        for f in admin.incremental_alter_configs([res]).values():
            f.result(30)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the member never got its assignment"
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                assert msg.value() == b"hello"
                break
    finally:
        consumer.close()
