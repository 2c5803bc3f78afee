"""The fault suite's cluster control and nemeses against real nodes: a partition really blocks
traffic (and healing restores it), and the lose-unsynced nemesis's power loss (files cut back
to their fsynced length, directory changes not made durable undone: storage/fsync_journal.py)
after which the node recovers and the data survives on the replicas."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ck = pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from cluster import Cluster, netns_available
from nemesis import active_controller
from workload import WorkloadConfig, create_topic, wait_healthy

from storage.fsync_journal import lose_unsynced, read_journal

pytestmark = pytest.mark.skipif(not netns_available(),
                                reason="needs root and `ip netns` for per-node networks")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("jepsen-nemesis"), n=3,
                extra={"min.insync.replicas": "2"}, seed=3)
    with c:
        yield c
        # Nothing after the tests looks at how the nodes stop: no clean stop to wait for.
        for node in c.nodes.values():
            node.kill()


def test_partition_blocks_traffic_both_ways_and_heal_restores_it(cluster: Cluster) -> None:
    assert cluster.can_connect(1, 2) and cluster.can_connect(None, 3)
    cluster.partition([[1], [2, 3]])
    try:
        assert not cluster.can_connect(1, 2)
        assert not cluster.can_connect(2, 1)
        assert not cluster.can_connect(3, 1)
        assert cluster.can_connect(2, 3)
        assert cluster.can_connect(None, 1)  # clients still reach every node
        cluster.block(None, 2)
        assert not cluster.can_connect(None, 2)
        assert cluster.can_connect(None, 3)
    finally:
        cluster.heal()
    for a, b in [(1, 2), (2, 1), (3, 1), (None, 2)]:
        assert cluster.can_connect(a, b), (a, b)


def test_active_controller_is_found_and_pausing_it_moves_it(cluster: Cluster) -> None:
    leader = active_controller(cluster)
    assert leader in cluster.nodes
    cluster.nodes[leader].pause()
    try:
        deadline = time.monotonic() + 30
        new = -1
        while time.monotonic() < deadline and new in (-1, leader):
            time.sleep(0.5)
            new = active_controller(cluster)
        assert new in cluster.nodes and new != leader
    finally:
        cluster.nodes[leader].resume()


def test_lose_unsynced_cuts_unsynced_data_and_the_node_recovers(cluster: Cluster) -> None:
    cfg = WorkloadConfig(bootstrap=cluster.bootstrap_servers, topic="unsynced", partitions=1)
    create_topic(cfg)
    producer = ck.Producer({"bootstrap.servers": cfg.bootstrap, "acks": "all",
                            "linger.ms": 0, "log_level": 0})
    for i in range(200):
        producer.produce("unsynced", value=str(i).encode(), partition=0)
    assert producer.flush(30) == 0
    node = cluster.nodes[1]
    assert node.journal is not None and read_journal(node.journal), "no fsync journal written"
    node.kill()
    cuts = lose_unsynced(node.journal, [node.data_dir])
    # The default flush policy never fsyncs the active segment: its records are cut.
    assert any(c.path.endswith(".log") and c.size_before > c.size_after for c in cuts), cuts
    # Every file the node removed or overwrote went through the journal's wrappers.
    assert not [c for c in cuts if c.change == "unrestorable"], cuts
    node.start()
    node.wait_for("Kafka Server started", 90)
    assert wait_healthy(cfg, timeout=60), "node 1 did not rejoin the ISR"
    consumer = ck.Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "unsynced-check",
                            "enable.auto.commit": False, "log_level": 0})
    consumer.assign([ck.TopicPartition("unsynced", 0, ck.OFFSET_BEGINNING)])
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < 200 and time.monotonic() < deadline:
        got += [int(m.value()) for m in consumer.consume(200, 1.0) if m.error() is None]
    consumer.close()
    assert got == list(range(200))
