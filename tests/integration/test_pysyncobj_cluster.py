"""The metadata quorum on pysyncobj (controller.quorum.engine=pysyncobj) end to end: 3
controllers and 2 brokers as real processes, brokers following the controllers' derived
metadata log as KRaft observers, driven by confluent-kafka: topics created, records produced
and consumed, the active controller killed -9 and another taking over in a new epoch (metadata
writes resume, brokers follow the new leader, nothing committed lost), and the killed
controller restarted catching up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import describe_quorum, metadata
from tools.proc_cluster import STARTED, ProcCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Small snapshot threshold: the metadata loader snapshots the derived log often and the
    # engine drops the log below each snapshot (a restarted controller loads one).
    c = ProcCluster(Path(tmp_path_factory.mktemp("pysyncobj")), controllers=3, brokers=2,
                    quorum_engine="pysyncobj",
                    extra={"metadata.log.max.record.bytes.between.snapshots": "300"})
    try:
        c.start()
        yield c
    finally:
        c.shutdown()


async def _describe(address: str) -> Any:
    req = describe_quorum.REQUEST.cls(topics=[describe_quorum.REQUEST.TopicData(
        topic_name="__cluster_metadata",
        partitions=[describe_quorum.REQUEST.PartitionData(partition_index=0)])])
    return await _request(address, ApiKey.DESCRIBE_QUORUM, req)


def describe(cluster: ProcCluster) -> Any | None:
    """The active controller's DescribeQuorum partition, or None if none answers as leader."""
    for i in cluster.controller_ids:
        node = cluster.nodes[i]
        if not node.alive():
            continue
        try:
            resp = asyncio.run(_describe(node.controller_address))
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            continue
        p = resp.topics[0].partitions[0] if resp.topics else None
        if resp.error_code == 0 and p is not None and p.error_code == 0:
            return p
    return None


def wait_for(what: str, fn: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def create_topic(cluster: ProcCluster, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(name, 2, 2)], request_timeout=30)[name].result(timeout=60)


def produce_and_consume(cluster: ProcCluster, topic: str, n: int = 50) -> list[bytes]:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                  "enable.idempotence": True})
    errors: list[Any] = []
    for i in range(n):
        p.produce(topic, value=b"%s-%d" % (topic.encode(), i),
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{topic}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(2)])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return sorted(got)


def expected(topic: str, n: int = 50) -> list[bytes]:
    return sorted(b"%s-%d" % (topic.encode(), i) for i in range(n))


async def _request(address: str, api_key: int, req: Any) -> Any:
    host, port = parse_address(address)
    conn = await KafkaConnection.connect(host, port, timeout_s=2.0)
    try:
        return await conn.send(api_key, req, timeout_s=5.0)
    finally:
        await conn.close()


def broker_topics(cluster: ProcCluster, broker_id: int) -> set[str]:
    """The topics in this broker's own metadata image (Metadata asked of it alone)."""
    resp = asyncio.run(_request(cluster.nodes[broker_id].bootstrap, ApiKey.METADATA,
                                metadata.REQUEST.cls(topics=None)))
    return {t.name for t in resp.topics}


def test_topics_records_and_the_quorum_on_pysyncobj(cluster: ProcCluster) -> None:
    create_topic(cluster, "pso-a")
    assert produce_and_consume(cluster, "pso-a") == expected("pso-a")
    p = wait_for("a leader", lambda: describe(cluster))
    assert p.leader_id in cluster.controller_ids and p.leader_epoch >= 1
    assert sorted(v.replica_id for v in p.current_voters) == cluster.controller_ids
    # Both brokers fetch the metadata log from the active controller as observers.
    assert wait_for("the brokers as observers", lambda: {
        o.replica_id for o in (describe(cluster) or p).observers} >= set(cluster.broker_ids))
    for b in cluster.broker_ids:
        assert "pso-a" in broker_topics(cluster, b)


def test_killing_the_active_controller_moves_the_metadata_quorum(cluster: ProcCluster) -> None:
    create_topic(cluster, "pso-before")
    before = wait_for("a leader", lambda: describe(cluster))
    old = before.leader_id
    cluster.nodes[old].kill()
    def new_leader() -> Any:
        d = describe(cluster)
        return d if d is not None and d.leader_id != old else None

    after = wait_for("a new leader", new_leader)
    assert after.leader_epoch > before.leader_epoch
    # Metadata writes resume through the new controller; brokers follow it.
    create_topic(cluster, "pso-after")
    assert produce_and_consume(cluster, "pso-after") == expected("pso-after")
    for b in cluster.broker_ids:
        assert wait_for("the new topic on every broker",
                        lambda b=b: {"pso-a", "pso-before", "pso-after"}
                        <= broker_topics(cluster, b))
    assert produce_and_consume(cluster, "pso-a", 0) == []  # still served
    # The killed controller comes back and catches up with the derived log.
    cluster.nodes[old].start()
    cluster.nodes[old].wait_for(STARTED)

    def caught_up() -> bool:
        d = describe(cluster)
        return d is not None and any(
            v.replica_id == old and v.log_end_offset == d.high_watermark
            for v in d.current_voters)

    wait_for("the restarted controller to catch up", caught_up)
    # It resumed from its own snapshot (the derived log below it was dropped).
    assert "Loaded metadata snapshot" in cluster.nodes[old].output()


def partition_state(cluster: ProcCluster, broker_id: int, topic: str) -> list[tuple[int, list[int]]]:
    """(leader, ISR) of each partition of ``topic`` in this broker's metadata."""
    resp = asyncio.run(_request(cluster.nodes[broker_id].bootstrap, ApiKey.METADATA,
                                metadata.REQUEST.cls(topics=[
                                    metadata.REQUEST.MetadataRequestTopic(name=topic)])))
    [t] = resp.topics
    return sorted((p.leader_id, sorted(p.isr_nodes)) for p in t.partitions)


def test_leaders_and_isr_follow_a_broker_failure(cluster: ProcCluster) -> None:
    """A killed broker is fenced by the controller: its partitions get the other broker as
    leader and leave its ISR (PartitionChangeRecords through pysyncobj); back, it rejoins
    the ISR (AlterPartition from the leader)."""
    create_topic(cluster, "pso-isr")
    first, second = cluster.broker_ids
    both = sorted(cluster.broker_ids)
    wait_for("both brokers in the ISR", lambda: all(
        isr == both for _, isr in partition_state(cluster, first, "pso-isr")))
    cluster.nodes[second].kill()
    wait_for("leadership and ISR without the killed broker", lambda: partition_state(
        cluster, first, "pso-isr") == [(first, [first]), (first, [first])])
    assert produce_and_consume(cluster, "pso-isr") == expected("pso-isr")
    cluster.nodes[second].start()
    cluster.nodes[second].wait_for(STARTED)
    wait_for("the restarted broker back in the ISR", lambda: all(
        isr == both for _, isr in partition_state(cluster, first, "pso-isr")))


def test_a_stopping_active_controller_hands_the_quorum_over(cluster: ProcCluster) -> None:
    before = wait_for("a leader", lambda: describe(cluster))
    old = before.leader_id
    cluster.nodes[old].stop()
    assert "handed the pysyncobj leadership over" in cluster.nodes[old].output()

    def new_leader() -> Any:
        d = describe(cluster)
        return d if d is not None and d.leader_id != old else None

    assert wait_for("a new leader", new_leader).leader_epoch > before.leader_epoch
    create_topic(cluster, "pso-handed-over")
