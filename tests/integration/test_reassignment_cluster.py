"""Partition reassignment and the auto leader rebalance on three real nodes, through real
clients: kafka-python's admin client (alter_partition_reassignments,
list_partition_reassignments), a confluent-kafka producer with acks=all writing during the
move, a confluent-kafka consumer reading afterwards, and ``kafka-reassign-partitions``
(generate, execute with a throttle, verify, list, cancel).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import list_partition_reassignments
from tools.proc_cluster import REPO, ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("reassign"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2",
                           "leader.imbalance.check.interval.seconds": "1"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def admin(cluster: ProcCluster) -> Iterator[KafkaAdminClient]:
    a = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        yield a
    finally:
        a.close()


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (kafka.errors.KafkaError, OSError, StopIteration) as e:
            # a node restarting, metadata not there yet
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def partition(admin: KafkaAdminClient, topic: str, pid: int = 0) -> dict[str, Any]:
    [t] = admin.describe_topics([topic])
    return next(p for p in t["partitions"] if p["partition_index"] == pid)


def create(admin: KafkaAdminClient, topic: str, assignment: dict[int, list[int]]) -> None:
    admin.create_topics([NewTopic(topic, replica_assignments=assignment)])
    until(f"{topic} led", lambda: all(
        partition(admin, topic, p)["leader_id"] >= 0
        and len(partition(admin, topic, p)["isr_nodes"]) == len(r)
        for p, r in assignment.items()))


def log_dirs_of(c: ProcCluster, node: int, topic: str, pid: int = 0) -> list[Path]:
    return list(c.nodes[node].data_dir.rglob(f"{topic}-{pid}"))


def produce(c: ProcCluster, topic: str, n: int, size: int = 100) -> None:
    p = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                     "linger.ms": 0, "batch.num.messages": 1})
    for i in range(n):
        p.produce(topic, value=(b"%06d" % i).ljust(size, b"."), partition=0)
        p.poll(0)
    assert p.flush(60) == 0


def consume(c: ProcCluster, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": f"g-{topic}",
                            "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                out.append(m.value())
    finally:
        consumer.close()
    return out


def throttles(admin: KafkaAdminClient, topic: str, broker: int) -> dict[str, str]:
    """The throttle configs set on ``topic`` and on ``broker`` (kafka-python lists only the
    ones not at their defaults)."""
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic),
                                  ConfigResource(ConfigResourceType.BROKER, str(broker))])
    return {k: c["value"] for by_name in res.values() for configs in by_name.values()
            for k, c in configs.items() if "throttled" in k}


def list_on_controller(address: str) -> tuple[int, list[Any]]:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            R = list_partition_reassignments.REQUEST
            return await conn.send(ApiKey.LIST_PARTITION_REASSIGNMENTS,
                                   R.cls(timeout_ms=5000, topics=None), 0, timeout_s=10.0)
        finally:
            await conn.close()

    resp = asyncio.run(run())
    return resp.error_code, [(t.name, p.partition_index, p.replicas, p.adding_replicas,
                              p.removing_replicas) for t in resp.topics for p in t.partitions]


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tools.reassign_partitions", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                          check=False)


def test_move_while_producing_keeps_every_acknowledged_record(
        cluster: ProcCluster, admin: KafkaAdminClient) -> None:
    create(admin, "mv", {0: [1, 2]})
    acked: list[bytes] = []
    errors: list[str] = []
    stop = threading.Event()

    def write() -> None:
        p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                         "linger.ms": 2, "enable.idempotence": True})

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                acked.append(msg.value())
            else:
                errors.append(str(err))

        i = 0
        while not stop.is_set():
            p.produce("mv", value=b"v%07d" % i, partition=0, on_delivery=delivered)
            i += 1
            p.poll(0.002)
        p.flush(60)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        until("records acknowledged", lambda: len(acked) > 200)
        tp = TopicPartition("mv", 0)
        assert admin.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
        until("the move done", lambda: not admin.list_partition_reassignments()
              and sorted(partition(admin, "mv")["replica_nodes"]) == [2, 3])
        moved_at = len(acked)
        until("records acknowledged by the new replicas", lambda: len(acked) > moved_at + 200)
    finally:
        stop.set()
        writer.join(90)
    assert not writer.is_alive()
    p = partition(admin, "mv")
    assert p["replica_nodes"] == [2, 3] and sorted(p["isr_nodes"]) == [2, 3], p
    assert p["leader_id"] in (2, 3)
    got = consume(cluster, "mv", len(acked))
    assert set(acked) <= set(got), (len(acked), len(got), errors[:5])
    until("broker 1 deleted its replica", lambda: not log_dirs_of(cluster, 1, "mv"))
    assert log_dirs_of(cluster, 3, "mv")


def test_throttled_move_is_listed_in_progress_and_cancel_reverts(
        cluster: ProcCluster, admin: KafkaAdminClient, tmp_path: Path) -> None:
    create(admin, "th", {0: [1, 2]})
    produce(cluster, "th", 50)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "th", "partition": 0, "replicas": [2, 3]}]}))
    # 1 byte/s: broker 3 gets one batch, then waits on the throttle.
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--execute",
             "--reassignment-json-file", str(plan), "--throttle", "1")
    assert r.returncode == 0, r.stderr
    assert "The inter-broker throttle limit was set to 1 B/s" in r.stdout
    assert "Successfully started partition reassignments for th-0" in r.stdout
    assert throttles(admin, "th", 3) == {
        "leader.replication.throttled.replicas": "0:1,0:2",
        "follower.replication.throttled.replicas": "0:3",
        "leader.replication.throttled.rate": "1", "follower.replication.throttled.rate": "1"}
    tp = TopicPartition("th", 0)
    expected = {tp: {"replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1]}}
    for _ in range(10):  # still held after a while
        assert admin.list_partition_reassignments() == expected
        time.sleep(0.3)
    assert admin.list_partition_reassignments({"th": [0]}) == expected
    assert admin.list_partition_reassignments({"th": [1], "nope": [0]}) == {}
    # On the controller listeners: the active controller lists it, the others redirect.
    answers = sorted(list_on_controller(cluster.nodes[n].controller_address)
                     for n in cluster.controller_ids)
    assert answers == [(0, [("th", 0, [2, 3, 1], [3], [1])])] + [
        (ErrorCode.NOT_CONTROLLER, [])] * 2, answers
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--list")
    assert r.stdout.splitlines() == ["Current partition reassignments:",
                                     "th-0: replicas: 2,3,1. adding: 3. removing: 1."], r.stdout
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--verify",
             "--reassignment-json-file", str(plan))
    assert "Reassignment of partition th-0 is still in progress." in r.stdout, r.stdout
    assert "Clearing" not in r.stdout
    # Cancel: back to the replicas before the move; broker 3 drops what it had fetched.
    assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
    assert admin.list_partition_reassignments() == {}
    p = partition(admin, "th")
    assert sorted(p["replica_nodes"]) == [1, 2] and sorted(p["isr_nodes"]) == [1, 2], p
    err = admin.alter_partition_reassignments({tp: None})[tp]
    assert err is kafka.errors.NoReassignmentInProgressError
    err = admin.alter_partition_reassignments({tp: [1, 42]})[tp]
    assert err is kafka.errors.InvalidReplicationAssignmentError
    err = admin.alter_partition_reassignments({TopicPartition("th", 9): [1, 2]})
    assert err[TopicPartition("th", 9)] is kafka.errors.UnknownTopicOrPartitionError
    until("broker 3 deleted its partial replica", lambda: not log_dirs_of(cluster, 3, "th"))
    assert len(consume(cluster, "th", 50)) == 50
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--cancel",
             "--reassignment-json-file", str(plan))
    assert r.returncode == 0, r.stderr
    assert "None of the specified partition reassignments are active." in r.stdout
    assert "Clearing broker-level throttles on brokers 1,2,3" in r.stdout, r.stdout
    assert throttles(admin, "th", 3) == {}


def test_tool_generate_execute_verify(cluster: ProcCluster, admin: KafkaAdminClient,
                                      tmp_path: Path) -> None:
    create(admin, "gen", {0: [1, 2], 1: [2, 1]})
    produce(cluster, "gen", 20)
    topics = tmp_path / "topics.json"
    topics.write_text('{"topics": [{"topic": "gen"}], "version": 1}')
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--generate",
             "--topics-to-move-json-file", str(topics), "--broker-list", "2,3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment"
    assert json.loads(lines[1]) == {"version": 1, "partitions": [
        {"topic": "gen", "partition": 0, "replicas": [1, 2], "log_dirs": ["any", "any"]},
        {"topic": "gen", "partition": 1, "replicas": [2, 1], "log_dirs": ["any", "any"]}]}
    assert lines[3] == "Proposed partition reassignment configuration"
    proposed = json.loads(lines[4])
    assert [sorted(p["replicas"]) for p in proposed["partitions"]] == [[2, 3], [2, 3]]
    plan = tmp_path / "plan.json"
    plan.write_text(lines[4])
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--execute",
             "--reassignment-json-file", str(plan), "--throttle", "10000000")
    assert r.returncode == 0, r.stderr
    assert "Save this to use as the --reassignment-json-file option during rollback" \
        in r.stdout
    assert "Successfully started partition reassignments for gen-0,gen-1" in r.stdout

    def verified() -> str | None:
        out = tool("--bootstrap-server", cluster.bootstrap_servers, "--verify",
                   "--reassignment-json-file", str(plan)).stdout
        return out if "Clearing broker-level throttles" in out else None

    out = until("the reassignment verified", verified)
    assert "Reassignment of partition gen-0 is completed." in out
    assert "Reassignment of partition gen-1 is completed." in out
    assert "Clearing topic-level throttles on topic gen" in out
    for p in proposed["partitions"]:
        assert partition(admin, "gen", p["partition"])["replica_nodes"] == p["replicas"]
    assert throttles(admin, "gen", 3) == {}
    # A bad plan is refused before anything is sent.
    plan.write_text('{"version": 1, "partitions": [{"topic": "gen", "partition": 0, '
                    '"replicas": [2, 2]}]}')
    r = tool("--bootstrap-server", cluster.bootstrap_servers, "--execute",
             "--reassignment-json-file", str(plan))
    assert r.returncode == 1 and "Duplicate replica assignment" in r.stderr


def test_auto_rebalance_gives_a_restarted_broker_its_leaderships_back(
        cluster: ProcCluster, admin: KafkaAdminClient) -> None:
    create(admin, "rb", {0: [1, 2], 1: [2, 3], 2: [3, 1]})
    assert [partition(admin, "rb", p)["leader_id"] for p in range(3)] == [1, 2, 3]
    cluster.nodes[3].kill()
    until("3's leadership moved", lambda: partition(admin, "rb", 2)["leader_id"] == 1)
    cluster.start([3])
    until("3 back in the ISR", lambda: 3 in partition(admin, "rb", 2)["isr_nodes"]
          and 3 in partition(admin, "rb", 1)["isr_nodes"])
    until("3 leads its preferred partition again",
          lambda: [partition(admin, "rb", p)["leader_id"] for p in range(3)] == [1, 2, 3])
