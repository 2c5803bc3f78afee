"""A log dir failing under a running broker, through a fault-injecting file layer in the node
process (``tests/faultfs.py``: EIO on every file operation under the dir) and real clients.

One node (combined roles) with two log dirs: the first is also the metadata log dir.

- The second dir fails at run time: the partition that lived there answers KAFKA_STORAGE_ERROR
  to confluent-kafka's producer and to every data API over one connection (Produce, Fetch,
  ListOffsets, OffsetForLeaderEpoch, DeleteRecords, DescribeProducers, WriteTxnMarkers), which
  stays open; the group and transaction coordinators of partitions there answer
  NOT_COORDINATOR (OffsetCommit, InitProducerId); the partition in the good dir keeps working; a topic created after the failure
  is placed only in the good dir and takes writes; DescribeLogDirs (kafka-python) and the HTTP
  admin API (readiness, the cluster's health, the broker's log dirs) show the dir offline.
- Restarted with that dir still failing, the broker does not create the partition anew and
  empty in the good dir: it is offline (KAFKA_STORAGE_ERROR).
- Healed and restarted, the records written before the failure are all there.
- The metadata log dir failing stops the node (exit code 1) with Kafka's message.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.groups.records import partition_for
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    create_topics,
    delete_records,
    describe_producers,
    fetch,
    find_coordinator,
    init_producer_id,
    list_offsets,
    metadata,
    offset_commit,
    offset_for_leader_epoch,
    produce,
    write_txn_markers,
)
from tests.faultfs import node_env, set_faults
from tests.helpers_batches import make_batch
from tools.proc_cluster import ProcCluster

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka_admin = pytest.importorskip("kafka.admin")

STORAGE = ErrorCode.KAFKA_STORAGE_ERROR


def until(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (AssertionError, OSError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Node:
    """The one node, its two dirs and the fault layer's control file."""

    def __init__(self, root: Path) -> None:
        self.good = root / "node-1" / "data"  # the metadata log dir too
        self.bad = root / "second-dir"
        self.control = root / "faults"
        self.c = ProcCluster(root, controllers=1, combined=True, admin=True,
                             extra={"log.dirs": f"{self.good},{self.bad}",
                                    "log.flush.offset.checkpoint.interval.ms": "500",
                                    "offsets.topic.replication.factor": "1",
                                    "offsets.topic.num.partitions": "2",
                                    "transaction.state.log.replication.factor": "1",
                                    "transaction.state.log.min.isr": "1",
                                    "transaction.state.log.num.partitions": "2"})
        self.proc = self.c.nodes[1]
        self.proc.env_overrides.update(node_env(self.control))
        self.bootstrap = self.c.bootstrap_servers

    def http(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.proc.admin_url + path, timeout=20) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def where(self, topic: str) -> dict[int, Path]:
        """partition -> the dir holding its log directory."""
        out = {}
        for d in (self.good, self.bad):
            for child in d.iterdir():
                name, _, p = child.name.rpartition("-")
                if name == topic and p.isdigit():
                    out[int(p)] = d
        return out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("log-dir-failure"))
    n.c.start()
    try:
        yield n
    finally:
        set_faults(n.control, {}, wait_s=None)
        n.c.shutdown()


async def _call(conn: KafkaConnection, key: int, req: Any, version: int | None = None) -> Any:
    return await conn.send(key, req, version, timeout_s=20.0)


def create(n: Node, topic: str, partitions: int) -> None:
    R = create_topics.REQUEST
    req = R.cls(topics=[R.CreatableTopic(name=topic, num_partitions=partitions,
                                         replication_factor=1, assignments=[], configs=[])],
                timeout_ms=10000)

    async def go() -> Any:
        host, port = parse_address(n.bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await _call(conn, ApiKey.CREATE_TOPICS, req)
        finally:
            await conn.close()
    assert asyncio.run(go()).topics[0].error_code == 0


def produce_confluent(n: Node, topic: str, partition: int, values: list[bytes]
                      ) -> list[Any]:
    """Each value's delivery error (None: written), no retries: the broker's own answer."""
    p = confluent_kafka.Producer({"bootstrap.servers": n.bootstrap, "retries": 0,
                                  "enable.idempotence": False, "acks": "all",
                                  "message.timeout.ms": 20000})
    errors: list[Any] = []
    for v in values:
        p.produce(topic, v, partition=partition,
                  on_delivery=lambda err, _msg: errors.append(err))
    assert p.flush(30) == 0
    return errors


def consume_all(n: Node, topic: str, partition: int, count: int) -> list[bytes]:
    c = confluent_kafka.Consumer({"bootstrap.servers": n.bootstrap, "group.id": f"g-{topic}",
                                  "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition(topic, partition, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


def sweep(n: Node, topic: str, partition: int) -> dict[str, int]:
    """The error code of every data API for ``topic``/``partition``, all over one connection,
    and a Metadata request after them on it (the connection is still open)."""
    records = make_batch([1])

    async def go() -> dict[str, int]:
        host, port = parse_address(n.bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        out: dict[str, int] = {}
        try:
            P = produce.REQUEST
            r = await _call(conn, ApiKey.PRODUCE, P.cls(acks=-1, timeout_ms=5000, topic_data=[
                P.TopicProduceData(name=topic, partition_data=[
                    P.PartitionProduceData(index=partition, records=records)])]))
            out["produce"] = r.responses[0].partition_responses[0].error_code
            F = fetch.REQUEST
            r = await _call(conn, ApiKey.FETCH, F.cls(
                replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1, topics=[F.FetchTopic(
                    topic=topic, partitions=[F.FetchPartition(
                        partition=partition, fetch_offset=0, log_start_offset=-1,
                        partition_max_bytes=1 << 20, current_leader_epoch=-1)])],
                forgotten_topics_data=[], rack_id=""), 12)
            out["fetch"] = r.responses[0].partitions[0].error_code
            L = list_offsets.REQUEST
            r = await _call(conn, ApiKey.LIST_OFFSETS, L.cls(
                replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
                    name=topic, partitions=[L.ListOffsetsPartition(partition_index=partition,
                                                                   timestamp=-1)])]))
            out["list_offsets"] = r.topics[0].partitions[0].error_code
            O = offset_for_leader_epoch.REQUEST
            r = await _call(conn, ApiKey.OFFSET_FOR_LEADER_EPOCH, O.cls(
                replica_id=-1, topics=[O.OffsetForLeaderTopic(topic=topic, partitions=[
                    O.OffsetForLeaderPartition(partition=partition, current_leader_epoch=-1,
                                               leader_epoch=0)])]))
            out["offset_for_leader_epoch"] = r.topics[0].partitions[0].error_code
            D = delete_records.REQUEST
            r = await _call(conn, ApiKey.DELETE_RECORDS, D.cls(topics=[D.DeleteRecordsTopic(
                name=topic, partitions=[D.DeleteRecordsPartition(partition_index=partition,
                                                                 offset=1)])],
                timeout_ms=5000))
            out["delete_records"] = r.topics[0].partitions[0].error_code
            DP = describe_producers.REQUEST
            r = await _call(conn, ApiKey.DESCRIBE_PRODUCERS, DP.cls(topics=[
                DP.TopicRequest(name=topic, partition_indexes=[partition])]))
            out["describe_producers"] = r.topics[0].partitions[0].error_code
            W = write_txn_markers.REQUEST
            r = await _call(conn, ApiKey.WRITE_TXN_MARKERS, W.cls(markers=[W.WritableTxnMarker(
                producer_id=1000, producer_epoch=0, transaction_result=False,
                coordinator_epoch=0,
                topics=[W.WritableTxnMarkerTopic(name=topic, partition_indexes=[partition])])]))
            out["write_txn_markers"] = r.markers[0].topics[0].partitions[0].error_code
            M = metadata.REQUEST
            r = await _call(conn, ApiKey.METADATA, M.cls(topics=[M.MetadataRequestTopic(
                name=topic)], allow_auto_topic_creation=False), 12)
            out["metadata"] = r.topics[0].error_code
            assert not conn.closed
        finally:
            await conn.close()
        return out

    return asyncio.run(go())


VALUES = [f"v{i}".encode() for i in range(20)]


def init_producer(n: Node, transactional_id: str) -> int:
    """FindCoordinator key_type 1 (which creates __transaction_state), then InitProducerId for
    ``transactional_id`` (a write to __transaction_state); its error code."""
    async def go() -> int:
        host, port = parse_address(n.bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            F = find_coordinator.REQUEST
            await _call(conn, ApiKey.FIND_COORDINATOR,
                        F.cls(key=transactional_id, key_type=1), 3)
            r = await _call(conn, ApiKey.INIT_PRODUCER_ID, init_producer_id.REQUEST.cls(
                transactional_id=transactional_id, transaction_timeout_ms=60000), 4)
            assert not conn.closed
            return int(r.error_code)
        finally:
            await conn.close()
    return asyncio.run(go())


def commit_offset(n: Node, group: str) -> int:
    """FindCoordinator (which creates __consumer_offsets), then a simple OffsetCommit of
    "before"-0 for ``group``; the commit's error code."""
    async def go() -> int:
        host, port = parse_address(n.bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            F = find_coordinator.REQUEST
            await _call(conn, ApiKey.FIND_COORDINATOR, F.cls(key=group, key_type=0), 3)
            C = offset_commit.REQUEST
            r = await _call(conn, ApiKey.OFFSET_COMMIT, C.cls(
                group_id=group, generation_id_or_member_epoch=-1, member_id="",
                group_instance_id=None, topics=[C.OffsetCommitRequestTopic(
                    name="before", partitions=[C.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                        committed_metadata="")])]), 8)
            assert not conn.closed
            return int(r.topics[0].partitions[0].error_code)
        finally:
            await conn.close()
    return asyncio.run(go())


def test_runtime_failure_of_a_log_dir(node: Node) -> None:
    n = node
    create(n, "before", 2)
    placed = until("a partition in each dir", lambda: (
        w := n.where("before")) and set(w.values()) == {n.good, n.bad} and w)
    bad_p = next(p for p, d in placed.items() if d == n.bad)
    good_p = 1 - bad_p
    assert produce_confluent(n, "before", bad_p, VALUES) == [None] * len(VALUES)
    assert produce_confluent(n, "before", good_p, VALUES) == [None] * len(VALUES)
    # A group whose __consumer_offsets partition is in the dir that will fail.
    commit_offset(n, "g")
    offsets = until("__consumer_offsets in both dirs", lambda: (
        w := n.where("__consumer_offsets")) and len(w) == 2 and w)
    bad_offsets = next(p for p, d in offsets.items() if d == n.bad)
    group = next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 2) == bad_offsets)
    until("the group's offsets committed", lambda: commit_offset(n, group) == 0)
    # And a transactional id whose __transaction_state partition is there.
    init_producer(n, "tx")
    states = until("__transaction_state in both dirs", lambda: (
        w := n.where("__transaction_state")) and len(w) == 2 and w)
    bad_state = next(p for p, d in states.items() if d == n.bad)
    tid = next(t for t in (f"tx{i}" for i in range(100)) if partition_for(t, 2) == bad_state)
    until("the transactional id initialised", lambda: init_producer(n, tid) == 0)

    set_faults(n.control, {n.bad: "EIO"})
    # The first write to the failing dir is refused and takes the dir offline.
    errors = produce_confluent(n, "before", bad_p, [b"lost"])
    assert errors[0] is not None and errors[0].code() == confluent_kafka.KafkaError.KAFKA_STORAGE_ERROR
    codes = until("every data API answering KAFKA_STORAGE_ERROR",
                  lambda: (s := sweep(n, "before", bad_p))["fetch"] == STORAGE and s)
    assert codes == {"produce": STORAGE, "fetch": STORAGE, "list_offsets": STORAGE,
                     "offset_for_leader_epoch": STORAGE, "delete_records": STORAGE,
                     "describe_producers": STORAGE, "write_txn_markers": STORAGE,
                     "metadata": 0}, codes
    # The group coordinator's partition is offline: its clients look the coordinator up again.
    assert commit_offset(n, group) == ErrorCode.NOT_COORDINATOR
    assert init_producer(n, tid) == ErrorCode.NOT_COORDINATOR
    # The other dir's partition is untouched.
    assert produce_confluent(n, "before", good_p, [b"more"]) == [None]
    assert consume_all(n, "before", good_p, 21) == [*VALUES, b"more"]

    # A topic created now goes only to the good dir and takes writes (it used to be placed
    # in the offline dir, and its produce closed the connection).
    create(n, "after", 3)
    assert until("the new topic's logs", lambda: len(w := n.where("after")) == 3 and w) == {
        0: n.good, 1: n.good, 2: n.good}
    for p in range(3):
        assert produce_confluent(n, "after", p, [b"a", b"b"]) == [None, None]
    assert consume_all(n, "after", 1, 2) == [b"a", b"b"]

    # DescribeLogDirs through kafka-python.
    ka = kafka_admin.KafkaAdminClient(bootstrap_servers=n.bootstrap)
    try:
        dirs = {d["log_dir"]: d["error_code"] for d in ka.describe_log_dirs()[0]["log_dirs"]}
    finally:
        ka.close()
    assert dirs == {os.path.abspath(n.good): 0, os.path.abspath(n.bad): STORAGE}

    # The HTTP admin API: not ready, unhealthy, the dir offline.
    status, body = n.http("/v1/status/ready")
    assert status == 503 and any("offline log dir" in r for r in body["reasons"]), body
    status, body = n.http("/v1/cluster")
    assert status == 200 and "offline_log_dirs" in body["health"]["unhealthy_reasons"], body
    assert body["health"]["offline_log_dirs"] == {"1": [os.path.abspath(n.bad)]}, body
    status, body = n.http("/v1/brokers/1/log-dirs")
    assert status == 200
    assert {d["log_dir"]: d["error_code"] for d in body["log_dirs"]} == {
        os.path.abspath(n.good): None, os.path.abspath(n.bad): "KAFKA_STORAGE_ERROR"}


def test_restart_with_the_dir_still_failing(node: Node) -> None:
    """The partition whose data is in the failing dir is offline, not created empty."""
    n = node
    bad_p = next(p for p, d in n.where("before").items() if d == n.bad)
    n.proc.stop()
    n.c.start()
    # Once the broker has applied the metadata, the partition answers: not with a new, empty
    # log, but as offline.
    codes = until("the partition's state applied", lambda: (
        s := sweep(n, "before", bad_p))["produce"] in (0, STORAGE) and s)
    assert codes["produce"] == STORAGE, codes
    assert codes["fetch"] == STORAGE and codes["list_offsets"] == STORAGE
    assert not (n.good / f"before-{bad_p}").exists()
    assert produce_confluent(n, "before", 1 - bad_p, [b"after-restart"]) == [None]


def test_healed_dir_keeps_its_records_and_metadata_dir_failure_stops_the_node(
        node: Node) -> None:
    n = node
    bad_p = next(p for p, d in n.where("before").items() if d == n.bad)
    n.proc.stop()
    set_faults(n.control, {}, wait_s=None)  # read by the node at its start
    n.c.start()
    assert consume_all(n, "before", bad_p, len(VALUES)) == VALUES

    set_faults(n.control, {n.good: "EIO"})
    produce_confluent(n, "before", 1 - bad_p, [b"x"])  # fails, or the checkpoint does
    code = until("the node to exit", lambda: n.proc.proc is not None and n.proc.proc.poll())
    assert code == 1
    assert "Shutdown broker because the metadata log dir" in n.proc.output()
