"""Transactions on the partition side, on three nodes with replication factor 3: transactional
batches (sent with the project's own client) hold the last stable offset back, WriteTxnMarkers
ends them, read_committed fetches stop at the LSO and carry the aborted transactions, and real
clients (confluent-kafka, whose default is read_committed; kafka-python and aiokafka with
isolation_level='read_committed') see committed data only; DescribeProducers lists the
producers; stale markers are refused as Kafka refuses them.
"""

from __future__ import annotations

import asyncio
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
from broker.protocol.messages import (
    create_topics,
    describe_producers,
    fetch,
    init_producer_id,
    list_offsets,
    metadata,
    produce,
    write_txn_markers,
)
from storage.control_records import ControlRecordType, build_control_batch
from storage.records import SimpleRecord, build_batch, decode_batch
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
aiokafka = pytest.importorskip("aiokafka")

REPO = Path(__file__).resolve().parents[2]
TOPIC = "txn-part"
LATEST = -1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("txn-partition"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2",
                           # hand-made transactions, no coordinator behind them
                           "transaction.partition.verification.enable": "false"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def send(address: str, api_key: int, req: Any, version: int | None = None,
         timeout_s: float = 30.0) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=timeout_s)
        finally:
            await conn.close()

    return asyncio.run(run())


def any_node(c: ProcCluster) -> str:
    return next(n.bootstrap for n in c.nodes.values() if n.alive())


def leader_of(c: ProcCluster, topic: str, isr: int = 3, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    R = metadata.REQUEST
    while True:
        try:
            md = send(any_node(c), ApiKey.METADATA,
                      R.cls(topics=[R.MetadataRequestTopic(name=topic)]))
            p = md.topics[0].partitions[0]
            if md.topics[0].error_code == 0 and p.leader_id >= 0 and len(p.isr_nodes) >= isr:
                return int(p.leader_id)
        except (IndexError, OSError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{topic}: no leader with an ISR of {isr}"
        time.sleep(0.1)


def new_producer_id(c: ProcCluster) -> tuple[int, int]:
    R = init_producer_id.REQUEST
    resp = send(any_node(c), ApiKey.INIT_PRODUCER_ID,
                R.cls(transactional_id=None, transaction_timeout_ms=60000))
    assert resp.error_code == 0, resp
    return resp.producer_id, resp.producer_epoch


class Txn:
    """A transactional producer's partition-side traffic, by hand: transactional batches by
    Produce, the end by WriteTxnMarkers (as a coordinator sends it)."""

    def __init__(self, c: ProcCluster, leader: int) -> None:
        self.c, self.leader = c, leader
        self.pid, self.epoch = new_producer_id(c)
        self.seq = 0

    def send(self, *values: str, transactional: bool = True) -> int:
        batch = build_batch([SimpleRecord(v.encode()) for v in values], producer_id=self.pid,
                            producer_epoch=self.epoch, base_sequence=self.seq,
                            is_transactional=transactional)
        self.seq += len(values)
        return produce_raw(self.c, self.leader, batch,
                           txn_id=f"t{self.pid}" if transactional else None)

    def end(self, commit: bool, *, node: int | None = None, epoch: int | None = None,
            coordinator_epoch: int = 5, topic: str = TOPIC) -> int:
        R = write_txn_markers.REQUEST
        req = R.cls(markers=[R.WritableTxnMarker(
            producer_id=self.pid, producer_epoch=self.epoch if epoch is None else epoch,
            transaction_result=commit, coordinator_epoch=coordinator_epoch,
            topics=[R.WritableTxnMarkerTopic(name=topic, partition_indexes=[0])])])
        node = self.leader if node is None else node
        resp = send(self.c.nodes[node].bootstrap, ApiKey.WRITE_TXN_MARKERS, req)
        assert resp.markers[0].producer_id == self.pid
        return int(resp.markers[0].topics[0].partitions[0].error_code)


def produce_raw(c: ProcCluster, leader: int, batch: bytes, error: int = 0,
                txn_id: str | None = None) -> int:
    R = produce.REQUEST
    req = R.cls(transactional_id=txn_id, acks=-1, timeout_ms=10000, topic_data=[
        R.TopicProduceData(name=TOPIC, partition_data=[
            R.PartitionProduceData(index=0, records=batch)])])
    resp = send(c.nodes[leader].bootstrap, ApiKey.PRODUCE, req, version=8)
    pr = resp.responses[0].partition_responses[0]
    assert pr.error_code == error, pr
    return int(pr.base_offset)


def fetch_raw(c: ProcCluster, leader: int, isolation: int, offset: int = 0) -> Any:
    R = fetch.REQUEST
    req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                isolation_level=isolation, topics=[R.FetchTopic(topic=TOPIC, partitions=[
                    R.FetchPartition(partition=0, fetch_offset=offset,
                                     partition_max_bytes=1 << 20)])])
    resp = send(c.nodes[leader].bootstrap, ApiKey.FETCH, req, version=11)
    return resp.responses[0].partitions[0]


def latest(c: ProcCluster, leader: int, isolation: int) -> int:
    R = list_offsets.REQUEST
    req = R.cls(replica_id=-1, isolation_level=isolation, topics=[R.ListOffsetsTopic(
        name=TOPIC, partitions=[R.ListOffsetsPartition(partition_index=0, timestamp=LATEST)])])
    resp = send(c.nodes[leader].bootstrap, ApiKey.LIST_OFFSETS, req, version=5)
    return int(resp.topics[0].partitions[0].offset)


def values_of(records: bytes) -> list[str]:
    out, pos = [], 0
    while pos < len(records):
        header, recs = decode_batch(records, pos)
        if not header.is_control:
            out.extend(r.value.decode() for r in recs if r.value is not None)
        pos += header.size
    return out


def wait_for(what: str, fn: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- real clients ---------------------------------------------------------------------------


def consume_confluent(c: ProcCluster, until: str, timeout: float = 30.0,
                      **conf: Any) -> list[str]:
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "g",
                            "enable.auto.commit": False, "auto.offset.reset": "earliest",
                            **conf})
    consumer.assign([ck.TopicPartition(TOPIC, 0, 0)])
    got: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while until not in got:
            assert time.monotonic() < deadline, f"confluent-kafka saw only {got}"
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
    finally:
        consumer.close()
    return got


def consume_kafka_python(c: ProcCluster, until: str, isolation: str,
                         timeout: float = 30.0) -> list[str]:
    consumer = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap_servers.split(","),
                                   isolation_level=isolation, enable_auto_commit=False,
                                   auto_offset_reset="earliest")
    tp = kafka.TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while until not in got:
            assert time.monotonic() < deadline, f"kafka-python saw only {got}"
            for msgs in consumer.poll(timeout_ms=500).values():
                got.extend(m.value.decode() for m in msgs)
    finally:
        consumer.close()
    return got


def consume_aiokafka(c: ProcCluster, until: str, timeout: float = 30.0) -> list[str]:
    async def run() -> list[str]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=c.bootstrap_servers,
                                             isolation_level="read_committed",
                                             enable_auto_commit=False,
                                             auto_offset_reset="earliest")
        await consumer.start()
        tp = aiokafka.TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while until not in got:
                assert time.monotonic() < deadline, f"aiokafka saw only {got}"
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(m.value.decode() for m in msgs)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


def console_consumer(c: ProcCluster, isolation: str, n: int) -> list[str]:
    code = "import sys; from tools.console_consumer import main; sys.exit(main())"
    r = subprocess.run(
        [sys.executable, "-c", code, "--bootstrap-server", c.bootstrap_servers,
         "--topic", TOPIC, "--from-beginning", "--max-messages", str(n),
         "--timeout-ms", "20000", "--isolation-level", isolation],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


# -- the scenario ---------------------------------------------------------------------------


def test_read_committed_stops_at_the_lso_and_skips_aborted_data(cluster: ProcCluster) -> None:
    c = cluster
    R = create_topics.REQUEST
    resp = send(any_node(c), ApiKey.CREATE_TOPICS, R.cls(topics=[
        R.CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=3, assignments=[],
                         configs=[])], timeout_ms=10000))
    assert resp.topics[0].error_code == 0, resp
    leader = leader_of(c, TOPIC)
    a, b = Txn(c, leader), Txn(c, leader)
    plain = Txn(c, leader)

    assert a.send("a0", "a1") == 0          # 0-1: transaction of a
    assert plain.send("p0", transactional=False) == 2
    assert b.send("b0") == 3                # 3: transaction of b
    r = fetch_raw(c, leader, 1)
    assert (r.high_watermark, r.last_stable_offset, r.records or b"") == (4, 0, b"")
    r0 = fetch_raw(c, leader, 0)
    assert r0.last_stable_offset == 0 and values_of(r0.records) == ["a0", "a1", "p0", "b0"]
    assert r0.aborted_transactions is None
    assert (latest(c, leader, 1), latest(c, leader, 0)) == (0, 4)

    assert a.end(commit=True) == 0          # 4: commit a
    r = fetch_raw(c, leader, 1)
    assert (r.high_watermark, r.last_stable_offset) == (5, 3)
    assert values_of(r.records) == ["a0", "a1", "p0"]
    assert latest(c, leader, 1) == 3
    # A stopped read_committed consumer is at the LSO: b's open transaction.
    assert consume_confluent(c, "p0") == ["a0", "a1", "p0"]
    assert consume_kafka_python(c, "p0", "read_committed") == ["a0", "a1", "p0"]
    assert consume_aiokafka(c, "p0") == ["a0", "a1", "p0"]
    assert console_consumer(c, "read_committed", 3) == ["a0", "a1", "p0"]

    assert b.end(commit=False) == 0         # 5: abort b
    assert plain.send("q0", transactional=False) == 6
    r = fetch_raw(c, leader, 1)
    assert (r.high_watermark, r.last_stable_offset) == (7, 7)
    assert [(t.producer_id, t.first_offset) for t in r.aborted_transactions] == [(b.pid, 3)]
    assert fetch_raw(c, leader, 1, offset=6).aborted_transactions == []
    assert latest(c, leader, 1) == 7

    committed = ["a0", "a1", "p0", "q0"]
    assert consume_confluent(c, "q0") == committed
    assert consume_kafka_python(c, "q0", "read_committed") == committed
    assert consume_aiokafka(c, "q0") == committed
    assert consume_kafka_python(c, "q0", "read_uncommitted") == ["a0", "a1", "p0", "b0", "q0"]
    assert consume_confluent(c, "q0", **{"isolation.level": "read_uncommitted"}) == [
        "a0", "a1", "p0", "b0", "q0"]
    # The project's kafka-console-consumer, both ways.
    assert console_consumer(c, "read_committed", 4) == committed
    assert console_consumer(c, "read_uncommitted", 5) == ["a0", "a1", "p0", "b0", "q0"]

    # DescribeProducers: every producer of the partition, with its coordinator epoch.
    D = describe_producers.REQUEST
    resp = send(c.nodes[leader].bootstrap, ApiKey.DESCRIBE_PRODUCERS, D.cls(topics=[
        D.TopicRequest(name=TOPIC, partition_indexes=[0])]))
    part = resp.topics[0].partitions[0]
    assert part.error_code == 0
    by_id = {p.producer_id: p for p in part.active_producers}
    assert set(by_id) == {a.pid, b.pid, plain.pid}
    assert (by_id[a.pid].coordinator_epoch, by_id[a.pid].current_txn_start_offset) == (5, -1)
    assert by_id[a.pid].last_sequence == 1 and by_id[plain.pid].last_sequence == 1

    # An open transaction shows its start offset; the followers track it too: after the
    # leader stops, the new leader holds the LSO at the same place.
    assert a.send("a2") == 7
    resp = send(c.nodes[leader].bootstrap, ApiKey.DESCRIBE_PRODUCERS, D.cls(topics=[
        D.TopicRequest(name=TOPIC, partition_indexes=[0])]))
    txn_starts = {p.producer_id: p.current_txn_start_offset
                  for p in resp.topics[0].partitions[0].active_producers}
    assert txn_starts[a.pid] == 7

    # Refusals, as Kafka's: a stale coordinator, not the leader, an unknown partition.
    assert a.end(commit=True, coordinator_epoch=4) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    follower = next(n for n in c.nodes if n != leader)
    assert a.end(commit=True, node=follower) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert a.end(commit=True, topic="no-such-topic") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # Transactional records need the request's transactional id (Kafka's produce handler).
    lone = build_batch([SimpleRecord(b"x")], producer_id=a.pid, producer_epoch=a.epoch,
                       base_sequence=a.seq, is_transactional=True)
    produce_raw(c, leader, lone, error=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    # Clients may not write markers themselves (Kafka's LogValidator).
    forged = build_control_batch(ControlRecordType.COMMIT, producer_id=a.pid,
                                 producer_epoch=a.epoch, coordinator_epoch=9)
    produce_raw(c, leader, forged, error=ErrorCode.INVALID_RECORD, txn_id="t")
    assert fetch_raw(c, leader, 1).last_stable_offset == 7

    c.nodes[leader].stop()
    try:
        new_leader = wait_for("a new leader", lambda: (
            (n := leader_of(c, TOPIC, isr=1)) != leader and n))
        r = wait_for("the new leader's fetch answer", lambda: (
            (x := fetch_raw(c, new_leader, 1)).error_code == 0 and x.high_watermark == 8 and x))
        assert r.last_stable_offset == 7
        # A new producer epoch in a marker is taken (Kafka bumps the producer's epoch).
        a.leader = new_leader
        assert a.end(commit=True, epoch=a.epoch + 1, coordinator_epoch=6) == 0
        r = fetch_raw(c, new_leader, 1)
        assert r.last_stable_offset == r.high_watermark == 9
        # ... after which the old epoch is stale.
        assert a.end(commit=False, coordinator_epoch=6) == ErrorCode.INVALID_PRODUCER_EPOCH
    finally:
        c.start([leader])
    assert consume_aiokafka(c, "a2") == [*committed, "a2"]
