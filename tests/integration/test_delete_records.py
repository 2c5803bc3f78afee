"""DeleteRecords on three nodes with replication factor 3, through real clients
(confluent-kafka's and kafka-python's admin clients), the wire, and ``kafka-delete-records``:
the leader's log start moves, consumers start there and a fetch below it is out of range, the
followers' log starts follow (seen once one of them leads), the start survives restarts, and the
per-partition errors Kafka answers with.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics, delete_records, fetch, list_offsets, metadata
from storage.checkpoint import LOG_START_OFFSET_CHECKPOINT
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parents[2]
EARLIEST = -2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("delete-records"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def send(address: str, api_key: int, req: Any, timeout_s: float = 20.0,
         version: int | None = None) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=timeout_s)
        finally:
            await conn.close()

    return asyncio.run(run())


def any_node(c: ProcCluster) -> str:
    for n in c.nodes.values():
        if n.alive():
            return n.bootstrap
    raise AssertionError("no node is running")


def partition_md(c: ProcCluster, topic: str, partition: int = 0) -> Any:
    R = metadata.REQUEST
    md = send(any_node(c), ApiKey.METADATA, R.cls(topics=[R.MetadataRequestTopic(name=topic)]))
    t = md.topics[0]
    assert t.error_code == 0, t
    return next(p for p in t.partitions if p.partition_index == partition)


def wait_in_sync(c: ProcCluster, topic: str, isr: int = 3, timeout: float = 30.0) -> int:
    """Until the partition has a leader and ``isr`` in-sync replicas; returns the leader."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p = partition_md(c, topic)
            if p.leader_id >= 0 and len(p.isr_nodes) >= isr \
                    and c.nodes[p.leader_id].alive():
                return int(p.leader_id)
        except (AssertionError, OSError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{topic}: no leader with an ISR of {isr}"
        time.sleep(0.1)


def create_topic(c: ProcCluster, name: str, configs: dict[str, str] | None = None) -> int:
    R = create_topics.REQUEST
    req = R.cls(topics=[R.CreatableTopic(
        name=name, num_partitions=1, replication_factor=3, assignments=[],
        configs=[R.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])],
        timeout_ms=10000)
    resp = send(any_node(c), ApiKey.CREATE_TOPICS, req)
    assert resp.topics[0].error_code == 0, resp
    return wait_in_sync(c, name)


def produce(c: ProcCluster, topic: str, n: int, start: int = 0) -> None:
    p = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                     "linger.ms": 0})
    for i in range(start, start + n):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
        p.poll(0)
    assert p.flush(20) == 0


def raw_delete(c: ProcCluster, node: int, topic: str, offset: int, partition: int = 0,
               timeout_ms: int = 10000) -> Any:
    R = delete_records.REQUEST
    req = R.cls(topics=[R.DeleteRecordsTopic(name=topic, partitions=[
        R.DeleteRecordsPartition(partition_index=partition, offset=offset)])],
        timeout_ms=timeout_ms)
    resp = send(c.nodes[node].bootstrap, ApiKey.DELETE_RECORDS, req)
    return resp.topics[0].partitions[0]


def earliest(c: ProcCluster, node: int, topic: str) -> tuple[int, int]:
    """(error, earliest offset) as ``node`` answers ListOffsets."""
    R = list_offsets.REQUEST
    req = R.cls(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(
        name=topic, partitions=[R.ListOffsetsPartition(partition_index=0,
                                                       timestamp=EARLIEST)])])
    p = send(c.nodes[node].bootstrap, ApiKey.LIST_OFFSETS, req).topics[0].partitions[0]
    return p.error_code, p.offset


def fetch_at(c: ProcCluster, node: int, topic: str, offset: int) -> Any:
    R = fetch.REQUEST
    req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1, topics=[R.FetchTopic(
                    topic=topic, partitions=[R.FetchPartition(
                        partition=0, current_leader_epoch=-1, fetch_offset=offset,
                        log_start_offset=-1, partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id="")
    # v12: the last version that names topics (v13+ by id).
    return send(c.nodes[node].bootstrap, ApiKey.FETCH, req,
                version=12).responses[0].partitions[0]


def consume_all(c: ProcCluster, topic: str, expect: int) -> list[int]:
    """Offsets a new confluent-kafka consumer reads from the beginning."""
    cons = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": f"g-{time.time()}",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while len(offsets) < expect and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            offsets.append(m.offset())
    finally:
        cons.close()
    return offsets


def test_delete_records_with_real_clients(cluster: ProcCluster) -> None:
    c = cluster
    leader = create_topic(c, "dr")
    produce(c, "dr", 30)

    # confluent-kafka (librdkafka) admin client: the answer carries the low watermark, which
    # needs every follower to have followed the leader's log start.
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    futures = admin.delete_records([ck.TopicPartition("dr", 0, 10)], operation_timeout=20)
    (fut,) = futures.values()
    assert fut.result(30).low_watermark == 10
    assert earliest(c, leader, "dr") == (0, 10)
    assert consume_all(c, "dr", 20) == list(range(10, 30))
    r = fetch_at(c, leader, "dr", 5)
    assert r.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert r.log_start_offset == 10

    # A consumer that must not reset sees the offset out of range.
    cons = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "g-none",
                        "auto.offset.reset": "error", "enable.auto.commit": False})
    cons.assign([ck.TopicPartition("dr", 0, 5)])
    try:
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is not None:
                err = m.error()
        assert err is not None and err.code() == ck.KafkaError._AUTO_OFFSET_RESET, err
    finally:
        cons.close()

    # kafka-python's admin client.
    kafka_admin = pytest.importorskip("kafka.admin")
    from kafka.structs import TopicPartition as KTP

    ka = kafka_admin.KafkaAdminClient(bootstrap_servers=c.bootstrap_servers)
    try:
        if hasattr(ka, "delete_records"):
            out = ka.delete_records({KTP("dr", 0): 20}, timeout_ms=20000)
            assert out[KTP("dr", 0)]["low_watermark"] == 20, out
        else:  # older kafka-python: the same request on the wire
            assert raw_delete(c, leader, "dr", 20).low_watermark == 20
    finally:
        ka.close()
    assert earliest(c, leader, "dr") == (0, 20)

    # Errors, as Kafka answers them.
    follower = next(n for n in c.broker_ids if n != leader)
    assert raw_delete(c, follower, "dr", 25).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    bad = raw_delete(c, leader, "dr", 31)  # above the high watermark (30)
    assert (bad.error_code, bad.low_watermark) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert raw_delete(c, leader, "nope", 1).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    same = raw_delete(c, leader, "dr", 15)  # below the log start: nothing to do
    assert (same.error_code, same.low_watermark) == (0, 20)
    compacted = create_topic(c, "dr-compact", {"cleanup.policy": "compact"})
    produce(c, "dr-compact", 3)
    assert raw_delete(c, compacted, "dr-compact", 1).error_code == ErrorCode.POLICY_VIOLATION

    # The followers moved their log start too: stop the leader and ask the new one.
    c.nodes[leader].stop()
    new_leader = wait_in_sync(c, "dr", isr=2)
    assert new_leader != leader
    assert earliest(c, new_leader, "dr") == (0, 20)
    c.start([leader])
    wait_in_sync(c, "dr", isr=3)

    # -1 deletes up to the high watermark.
    produce(c, "dr", 5, start=30)
    lead = wait_in_sync(c, "dr")
    assert raw_delete(c, lead, "dr", -1).low_watermark == 35
    assert earliest(c, lead, "dr") == (0, 35)

    # The log start offset is checkpointed and survives a restart of every node.
    c.stop_all()
    for n in c.nodes.values():
        entries = (n.data_dir / LOG_START_OFFSET_CHECKPOINT).read_text().splitlines()
        assert "dr 0 35" in entries, (n.node_id, entries)
    c.start()
    lead = wait_in_sync(c, "dr")
    assert earliest(c, lead, "dr") == (0, 35)
    assert fetch_at(c, lead, "dr", 34).error_code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_delete_records_waits_for_the_low_watermark(cluster: ProcCluster) -> None:
    """A follower that does not fetch holds the answer back until the request times out
    (REQUEST_TIMED_OUT); the leader's log start has moved all the same."""
    c = cluster
    leader = create_topic(c, "dr-wait")
    produce(c, "dr-wait", 10)
    follower = next(n for n in c.broker_ids if n != leader)
    c.nodes[follower].pause()
    try:
        r = raw_delete(c, leader, "dr-wait", 4, timeout_ms=300)
        assert r.error_code == ErrorCode.REQUEST_TIMED_OUT, r
        assert earliest(c, leader, "dr-wait") == (0, 4)
    finally:
        c.nodes[follower].resume()
    deadline = time.monotonic() + 30
    while True:
        r = raw_delete(c, leader, "dr-wait", 4)
        if r.error_code == 0:
            break
        assert time.monotonic() < deadline, r
    assert r.low_watermark == 4


def test_kafka_delete_records_tool(cluster: ProcCluster, tmp_path: Path) -> None:
    c = cluster
    create_topic(c, "dr-cli")
    produce(c, "dr-cli", 10)
    f = tmp_path / "offsets.json"
    f.write_text(json.dumps({"partitions": [{"topic": "dr-cli", "partition": 0, "offset": 4},
                                            {"topic": "dr-cli", "partition": 7, "offset": 1}],
                             "version": 1}))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "tools.delete_records", "--bootstrap-server",
                        c.bootstrap_servers, "--offset-json-file", str(f)],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["Executing records delete operation",
                         "Records delete operation completed:",
                         "partition: dr-cli-0\tlow_watermark: 4"], r.stdout
    assert lines[3].startswith("partition: dr-cli-7\terror: UNKNOWN_TOPIC_OR_PARTITION"), lines
    assert consume_all(c, "dr-cli", 6) == list(range(4, 10))

    f.write_text('{"partitions": [{"topic": "dr-cli", "partition": 0, "offset": 1},'
                 ' {"topic": "dr-cli", "partition": 0, "offset": 2}]}')
    r = subprocess.run([sys.executable, "-m", "tools.delete_records", "--bootstrap-server",
                        c.bootstrap_servers, "--offset-json-file", str(f)],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
                       check=False)
    assert r.returncode == 1
    assert "duplicate topic partitions: dr-cli-0" in r.stderr
