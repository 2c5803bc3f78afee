"""A real KRaft cluster from the CLI: 3 controllers + 2 brokers as separate processes.

Checks the quorum and controller end to end: election, broker registration and unfencing,
topic creation through the active controller, kill -9 of the leader controller (a new leader,
metadata writes resume, nothing committed lost), fencing of a killed broker (its partitions
get a new leader within the session timeout), and a full restart (the metadata survives).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics, describe_quorum, metadata
from storage.meta_properties import read_meta_properties
from tools.proc_cluster import REPO, ProcCluster, env

SESSION_TIMEOUT_S = 4.0  # broker.session.timeout.ms in ProcCluster


async def _request(address: str, api_key: int, request: Any, timeout_s: float = 5.0) -> Any:
    host, port = parse_address(address)
    conn = await KafkaConnection.connect(host, port, timeout_s=timeout_s)
    try:
        return await conn.send(api_key, request, timeout_s=timeout_s)
    finally:
        await conn.close()


def request(address: str, api_key: int, req: Any, timeout_s: float = 5.0) -> Any:
    return asyncio.run(_request(address, api_key, req, timeout_s))


def describe(cluster: ProcCluster, ids: list[int] | None = None) -> Any | None:
    """The leader's DescribeQuorum partition answer, or None if no controller leads."""
    req = describe_quorum.REQUEST.cls(topics=[describe_quorum.REQUEST.TopicData(
        topic_name="__cluster_metadata",
        partitions=[describe_quorum.REQUEST.PartitionData(partition_index=0)])])
    for i in ids or cluster.controller_ids:
        node = cluster.nodes[i]
        if not node.alive():
            continue
        try:
            resp = request(node.controller_address, ApiKey.DESCRIBE_QUORUM, req, 2.0)
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            continue
        p = resp.topics[0].partitions[0] if resp.topics else None
        if resp.error_code == 0 and p is not None and p.error_code == 0:
            return p
    return None


def wait_leader(cluster: ProcCluster, ids: list[int] | None = None,
                timeout: float = 30.0, not_id: int | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = describe(cluster, ids)
        if p is not None and p.leader_id != not_id:
            return p
        time.sleep(0.05)
    raise AssertionError("no controller became leader")


def create_topic(cluster: ProcCluster, name: str, partitions: int, rf: int,
                 timeout: float = 30.0) -> Any:
    req = create_topics.REQUEST.cls(topics=[create_topics.REQUEST.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=rf, assignments=[],
        configs=[])], timeout_ms=10000)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for i in cluster.controller_ids:
            node = cluster.nodes[i]
            if not node.alive():
                continue
            try:
                resp = request(node.controller_address, ApiKey.CREATE_TOPICS, req, 15.0)
            except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
                last = e
                continue
            t = resp.topics[0]
            if t.error_code in (ErrorCode.NOT_CONTROLLER, ErrorCode.REQUEST_TIMED_OUT):
                last = ErrorCode(t.error_code)
                continue
            return t
        time.sleep(0.1)
    raise AssertionError(f"CreateTopics {name} did not succeed: {last}")


def topic_state(cluster: ProcCluster, broker_id: int, names: list[str] | None = None) -> Any:
    req = metadata.REQUEST.cls(topics=None if names is None else [
        metadata.REQUEST.MetadataRequestTopic(name=n) for n in names])
    return request(cluster.nodes[broker_id].bootstrap, ApiKey.METADATA, req)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def quorum_tool(cluster: ProcCluster, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "tools.metadata_quorum", *args],
                         check=False, cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = ProcCluster(tmp_path, controllers=3, brokers=2)
    c.start(c.controller_ids, wait=True)
    c.start(c.broker_ids, wait=True)
    yield c
    c.shutdown()


def test_quorum_controller_failover_fencing_and_restart(cluster: ProcCluster) -> None:
    c = cluster
    leader = wait_leader(c)
    assert sorted(v.replica_id for v in leader.current_voters) == c.controller_ids
    wait_for(lambda: sorted(o.replica_id for o in (describe(c) or leader).observers)
             == c.broker_ids, 10, "both brokers to fetch as observers")

    # The operator's view, as Kafka's tool prints it, through a controller and a broker.
    status = quorum_tool(c, "--bootstrap-controller", c.bootstrap_controllers,
                         "describe", "--status")
    assert f"ClusterId:              {c.cluster_id}" in status
    assert "LeaderId:" in status and "HighWatermark:" in status
    # Observers fetch with their metadata log dir's directory id (Fetch v17, KIP-853).
    meta = read_meta_properties(c.nodes[4].data_dir)
    assert meta is not None
    assert f'{{"id": 4, "directoryId": "{meta.directory_id}"}}' in \
        status.split("CurrentObservers:")[1]
    # Through any single controller, a follower included: the tool finds the leader.
    for one in c.bootstrap_controllers.split(","):
        alone = quorum_tool(c, "--bootstrap-controller", one, "describe", "--status")
        assert f"LeaderId:               {leader.leader_id}" in alone, alone
    repl = quorum_tool(c, "--bootstrap-server", c.bootstrap_servers, "describe",
                       "--replication")
    rows = [line.split("\t") for line in repl.splitlines()]
    assert [r.strip() for r in rows[0][:7]] == [
        "NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
        "LastCaughtUpTimestamp", "Status"]
    statuses = sorted(r[6].strip() for r in rows[1:])
    assert statuses == ["Follower", "Follower", "Leader", "Observer", "Observer"]
    now_ms = time.time() * 1000
    assert all(abs(now_ms - int(r[4])) < 60_000 for r in rows[1:]), repl

    # Both brokers are registered and unfenced: they show up in Metadata.
    md = wait_for(lambda: (m := topic_state(c, 4)) and len(m.brokers) == 2 and m,
                  10, "two live brokers")
    assert sorted(b.node_id for b in md.brokers) == c.broker_ids

    t = create_topic(c, "orders", partitions=6, rf=2)
    assert t.error_code == 0, t
    md = wait_for(lambda: (m := topic_state(c, 5, ["orders"])) and m.topics[0].error_code == 0
                  and m, 10, "orders in broker 5's metadata")
    parts = md.topics[0].partitions
    assert len(parts) == 6
    assert all(sorted(p.replica_nodes) == [4, 5] and p.leader_id in (4, 5) for p in parts)
    leaders = [p.leader_id for p in parts]
    assert leaders.count(4) == 3 and leaders.count(5) == 3, leaders  # spread evenly
    topic_id = md.topics[0].topic_id

    # kill -9 the leader controller: a new leader, writes resume, nothing committed lost.
    old = leader.leader_id
    hw_before = leader.high_watermark
    killed_at = time.monotonic()
    c.nodes[old].kill()
    others = [i for i in c.controller_ids if i != old]
    new = wait_leader(c, others, timeout=20, not_id=old)
    election_s = time.monotonic() - killed_at
    print(f"\nnew leader {new.leader_id} elected {election_s * 1000:.0f} ms after kill -9 of "
          f"{old}")
    assert new.leader_id != old and new.leader_epoch > leader.leader_epoch
    assert new.high_watermark >= hw_before
    assert create_topic(c, "after-failover", partitions=2, rf=2).error_code == 0
    # Brokers (observers) find the new leader and fetch the new records.
    md = wait_for(lambda: (m := topic_state(c, 4, ["orders", "after-failover"])) and [
        t.error_code for t in m.topics] == [0, 0] and m, 10, "brokers to see the new topic")
    assert md.topics[0].topic_id == topic_id

    # The killed controller comes back as a follower and catches up.
    c.start([old])
    wait_for(lambda: (p := describe(c)) and any(
        v.replica_id == old and v.log_end_offset == p.high_watermark for v in p.current_voters),
        20, "restarted controller to catch up")

    # kill -9 broker 4: it is fenced after the session timeout; its partitions move to 5.
    c.nodes[4].kill()
    killed_at = time.monotonic()

    def moved() -> bool:
        m = topic_state(c, 5, ["orders"])
        return all(p.leader_id == 5 and p.isr_nodes == [5] for p in m.topics[0].partitions)

    wait_for(moved, SESSION_TIMEOUT_S + 6, "broker 4's partitions to move to broker 5")
    fence_s = time.monotonic() - killed_at
    print(f"partitions moved {fence_s * 1000:.0f} ms after kill -9 of broker 4 "
          f"(session timeout {SESSION_TIMEOUT_S * 1000:.0f} ms)")
    after = {p.partition_index: p for p in topic_state(c, 5, ["orders"]).topics[0].partitions}
    before = {p.partition_index: p for p in parts}
    for i, p in after.items():
        if before[i].leader_id == 4:
            assert p.leader_epoch > before[i].leader_epoch
    assert sorted(b.node_id for b in topic_state(c, 5).brokers) == [5]
    c.start([4])
    wait_for(lambda: len(topic_state(c, 5).brokers) == 2, 20, "broker 4 to be unfenced again")

    # Full restart: everything committed is still there, the same on every broker.
    snapshot = {t.name: (t.topic_id, sorted((p.partition_index, tuple(p.replica_nodes))
                                            for p in t.partitions))
                for t in topic_state(c, 5).topics}
    epochs = {p.partition_index: p.leader_epoch
              for p in topic_state(c, 5, ["orders"]).topics[0].partitions}
    c.stop_all()
    for n in c.nodes.values():
        assert not n.alive()
        assert "Kafka Server shut down cleanly" in n.output()
        # A metadata fsync still running at shutdown is waited for, not taken for an I/O
        # error that would leave the metadata log offline and unflushed.
        assert "I/O error" not in n.output()
        # Requests cancelled at shutdown leave no failed future behind for asyncio to report.
        assert "Future exception was never retrieved" not in n.output()
    c.start(c.controller_ids)
    c.start(c.broker_ids)
    for b in c.broker_ids:
        state = {t.name: (t.topic_id, sorted((p.partition_index, tuple(p.replica_nodes))
                                             for p in t.partitions))
                 for t in topic_state(c, b).topics}
        assert state == snapshot
    for p in topic_state(c, 4, ["orders"]).topics[0].partitions:
        assert p.leader_epoch >= epochs[p.partition_index]


def test_snapshots_bound_the_log_and_catch_up_a_lagging_broker(tmp_path: Path) -> None:
    """Snapshots every ~4 KB of records: every node writes them, the log start moves past
    them, a broker that was down while the log moved on catches up by fetching a snapshot, and
    a full restart loads the snapshot plus the log tail."""
    c = ProcCluster(tmp_path, controllers=3, brokers=2,
                    extra={"metadata.log.max.record.bytes.between.snapshots": "4000"})
    try:
        c.start(c.controller_ids)
        c.start(c.broker_ids)
        c.nodes[5].stop()
        for i in range(12):
            assert create_topic(c, f"t{i}", partitions=8, rf=1).error_code == 0
        # Each node writes its snapshot once it has applied the records (a busy broker a
        # little after the controllers have answered).
        for i in c.controller_ids + [4]:
            wait_for(lambda i=i: sorted((c.nodes[i].dir / "data" / "__cluster_metadata-0").glob(
                "*.checkpoint")), 20, f"node {i} to write a snapshot")
        # The leader dropped its log prefix: broker 5 (far behind) must fetch a snapshot.
        c.start([5])
        c.nodes[5].wait_for("Loaded metadata snapshot", 30)
        md = wait_for(lambda: (m := topic_state(c, 5)) and len(m.topics) == 12 and m, 20,
                      "broker 5 to see all 12 topics")
        assert sorted(t.name for t in md.topics) == sorted(f"t{i}" for i in range(12))
        before = {t.name: t.topic_id for t in md.topics}
        c.stop_all()
        c.start(c.controller_ids)
        c.start(c.broker_ids)
        for i in c.controller_ids:
            assert "loaded snapshot" in c.nodes[i].output()
        for b in c.broker_ids:
            state = {t.name: t.topic_id for t in topic_state(c, b).topics}
            assert state == before
    finally:
        c.shutdown()


def test_single_node_restart_replays_the_log_before_acting(tmp_path: Path) -> None:
    """A restarted single-voter controller commits its whole log at once; it must replay it
    before it acts, or it would answer from an empty image. Its partitions (leaderless after
    the controlled shutdown) get their only replica back as leader once it is unfenced."""
    c = ProcCluster(tmp_path, controllers=1, combined=True)
    try:
        c.start()
        t = create_topic(c, "solo", partitions=2, rf=1)
        assert t.error_code == 0
        c.stop_all()
        c.start()
        line = c.nodes[1].wait_for("is active in epoch 2")
        assert "committed offset -1" not in line, line
        md = wait_for(lambda: (m := topic_state(c, 1, ["solo"])) and all(
            p.leader_id == 1 for p in m.topics[0].partitions) and m, 15, "leaders back")
        assert md.topics[0].topic_id == t.topic_id
        assert create_topic(c, "solo", partitions=2, rf=1).error_code == (
            ErrorCode.TOPIC_ALREADY_EXISTS)
    finally:
        c.shutdown()
