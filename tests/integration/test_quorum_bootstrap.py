"""A broker that knows the controllers only by ``controller.quorum.bootstrap.servers`` (KIP-853;
broker/controller/quorum_bootstrap.py): started before any controller is up, it finds the
voters through them, registers, is unfenced and serves confluent-kafka, and keeps working when
the active controller changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from storage.properties import parse_properties
from tools.launcher import render_properties
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("quorum-bootstrap"), controllers=3, brokers=1)
    broker = c.nodes[c.broker_ids[0]]
    props = parse_properties(broker.config.read_text())
    props.pop("controller.quorum.voters")
    props["controller.quorum.bootstrap.servers"] = c.bootstrap_controllers
    broker.config.write_text(render_properties(props))
    try:
        broker.start()  # first: it asks the bootstrap servers until the controllers answer
        time.sleep(1.0)
        assert broker.alive(), broker.output()
        c.start(c.controller_ids)
        broker.wait_for("Kafka Server started", timeout=60)
        yield c
    finally:
        c.shutdown()


def test_broker_finds_the_quorum_through_bootstrap_servers(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    out = broker.output()
    assert "No controller.quorum.bootstrap.servers reported the quorum yet" in out
    assert "Controller quorum voters from bootstrap server" in out
    for i in cluster.controller_ids:
        assert f"{i}@{cluster.nodes[i].controller_address}" in out
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("boot", 1, 1)])["boot"].result(30)
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce("boot", f"v{i}".encode())
    assert p.flush(30) == 0
    assert consume(broker.bootstrap, "boot", 10) == [f"v{i}".encode() for i in range(10)]


def test_broker_follows_a_new_active_controller(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    leader = active_controller(admin)
    cluster.nodes[leader].kill()
    try:
        deadline = time.monotonic() + 60
        while True:  # topic creation goes through the broker's channel to the new leader
            try:
                admin.create_topics([NewTopic("after-failover", 1, 1)])[
                    "after-failover"].result(20)
                break
            except ck.KafkaException as e:
                if time.monotonic() > deadline:
                    raise
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    break
                time.sleep(0.5)
        assert active_controller(admin) != leader
        assert "after-failover" in admin.list_topics(timeout=20).topics
    finally:
        cluster.nodes[leader].start()
        cluster.nodes[leader].wait_for("Kafka Server started")


def active_controller(admin: AdminClient) -> int:
    """The Raft leader, as the broker's DescribeQuorum (forwarded) reports it."""
    import asyncio

    from tools.metadata_quorum import describe
    md = admin.list_topics(timeout=20)
    server = next(f"{b.host}:{b.port}" for b in md.brokers.values())
    return asyncio.run(describe([server], timeout_s=30)).leader_id


def consume(bootstrap: str, topic: str, n: int) -> list[bytes]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])  # one broker: no group
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got
