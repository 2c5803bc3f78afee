"""Transaction verification on the produce path (KIP-890 part 1) and hanging transactions, on a
3-node cluster.

- A raw transactional Produce (the project's client, a producer id from InitProducerId with a
  real transactional id) to a partition the transaction never added is refused with
  INVALID_TXN_STATE; the partition it added is accepted; a stale epoch gets
  INVALID_PRODUCER_EPOCH. The cost of the first batch (one AddPartitionsToTxn verify_only round
  trip to the coordinator) is printed, not asserted.
- confluent-kafka and kafka-python transactional producers still commit, and a read_committed
  consumer reads their records.
- With ``transaction.partition.verification.enable`` turned off (a dynamic broker config), the
  same stray batch is accepted and hangs: the coordinator never lists the partition, so no
  marker will ever end it and the last stable offset stops there. ``kafka-transactions``
  describe-producers shows it, find-hanging lists it, abort writes its marker; the LSO moves
  and read_committed consumers proceed.
- On a compacted topic the cleaner removes an aborted transaction's data, then, once
  ``delete.retention.ms`` has passed, its ABORT marker (the committed transaction's marker
  stays); consumers read the same committed records before and after.
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
import requests
from prometheus_client.parser import text_string_to_metric_families

from broker.client import KafkaClient, KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    add_partitions_to_txn,
    create_topics,
    end_txn,
    fetch,
    find_coordinator,
    incremental_alter_configs,
    init_producer_id,
    list_offsets,
    produce,
)
from storage.record_batch import iter_batches
from storage.records import SimpleRecord, build_batch
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")

REPO = Path(__file__).resolve().parents[2]
TOPIC = "verify-data"
HANG = "hang-data"
BROKER_RESOURCE, SET = 4, 0
VERIFY_KEY = "transaction.partition.verification.enable"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("txn-verification"), controllers=3, combined=True,
                    admin=True,
                    extra={"min.insync.replicas": "2",
                           "transaction.state.log.num.partitions": "5",
                           "log.cleaner.backoff.ms": "200"})
    c.start()
    try:
        R = create_topics.REQUEST
        resp = send(c, ApiKey.CREATE_TOPICS, R.cls(topics=[
            R.CreatableTopic(name=TOPIC, num_partitions=3, replication_factor=3,
                             assignments=[], configs=[]),
            R.CreatableTopic(name=HANG, num_partitions=1, replication_factor=3,
                             assignments=[], configs=[])], timeout_ms=10000))
        assert [t.error_code for t in resp.topics] == [0, 0], resp
        yield c
    finally:
        c.shutdown()


async def _with_client(c: ProcCluster, fn: Any) -> Any:
    client = await KafkaClient.bootstrap(c.bootstrap_servers.split(","))
    try:
        return await fn(client)
    finally:
        await client.close()


def send(c: ProcCluster, api_key: int, req: Any, version: int | None = None,
         node: int | None = None) -> Any:
    address = c.nodes[node].bootstrap if node is not None else next(
        n.bootstrap for n in c.nodes.values() if n.alive())

    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=30.0)
        finally:
            await conn.close()

    return asyncio.run(run())


def until(what: str, fn: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = fn()
        except (OSError, ConnectionError, TimeoutError):
            got = None
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def coordinator(c: ProcCluster, tid: str) -> int:
    R = find_coordinator.REQUEST

    def attempt() -> int | None:
        resp = send(c, ApiKey.FIND_COORDINATOR, R.cls(key=tid, key_type=1), version=3)
        return int(resp.node_id) if resp.error_code == 0 else None
    return int(until(f"the coordinator of {tid}", attempt))


def init_pid(c: ProcCluster, tid: str) -> tuple[int, int]:
    R = init_producer_id.REQUEST

    def attempt() -> Any:
        resp = send(c, ApiKey.INIT_PRODUCER_ID, R.cls(
            transactional_id=tid, transaction_timeout_ms=60000, producer_id=-1,
            producer_epoch=-1), node=coordinator(c, tid))
        return resp if resp.error_code == 0 else None
    resp = until(f"InitProducerId of {tid}", attempt)
    return int(resp.producer_id), int(resp.producer_epoch)


def add_partitions(c: ProcCluster, tid: str, pid: int, epoch: int, parts: list[int]) -> None:
    R = add_partitions_to_txn.REQUEST
    resp = send(c, ApiKey.ADD_PARTITIONS_TO_TXN, R.cls(
        v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
            R.AddPartitionsToTxnTopic(name=TOPIC, partitions=parts)]),
        version=3, node=coordinator(c, tid))
    codes = [p.partition_error_code for t in resp.results_by_topic_v3_and_below
             for p in t.results_by_partition]
    assert codes == [0] * len(parts), resp


def end(c: ProcCluster, tid: str, pid: int, epoch: int, commit: bool) -> int:
    R = end_txn.REQUEST
    return int(send(c, ApiKey.END_TXN, R.cls(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit),
        version=3, node=coordinator(c, tid)).error_code)


def produce_txn(c: ProcCluster, tid: str, pid: int, epoch: int, topic: str, partition: int,
                seq: int, value: str, version: int | None = None, count: int = 1
                ) -> tuple[int, int, float]:
    """Transactional batches (one record each, sequences from ``seq``) through one client to
    the partition's leader, one after the other: (error, base offset, seconds) of the first."""
    return produce_txns(c, tid, pid, epoch, topic, partition, seq, value, version, count)[0]


def produce_txns(c: ProcCluster, tid: str, pid: int, epoch: int, topic: str, partition: int,
                 seq: int, value: str, version: int | None = None, count: int = 1
                 ) -> list[tuple[int, int, float]]:
    R = produce.REQUEST

    async def run(client: KafkaClient) -> list[tuple[int, int, float]]:
        await client.metadata([topic])
        await client.connection(client.leader_for(topic, partition))  # not in the timings
        out = []
        for i in range(count):
            batch = build_batch([SimpleRecord(f"{value}{i}".encode())], producer_id=pid,
                                producer_epoch=epoch, base_sequence=seq + i,
                                is_transactional=True)
            req = R.cls(transactional_id=tid, acks=-1, timeout_ms=10000, topic_data=[
                R.TopicProduceData(name=topic, partition_data=[
                    R.PartitionProduceData(index=partition, records=batch)])])
            started = time.perf_counter()
            resp = await client.send_to_leader(topic, partition, ApiKey.PRODUCE, req, version)
            took = time.perf_counter() - started
            pr = resp.responses[0].partition_responses[0]
            out.append((int(pr.error_code), int(pr.base_offset), took))
        return out
    return list(asyncio.run(_with_client(c, run)))


def verifications(c: ProcCluster, node: int) -> float:
    """``pykraft_txn_verifications_total`` of a node: round trips its leaders made."""
    text = requests.get(c.nodes[node].admin_url + "/metrics", timeout=30).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "pykraft_txn_verifications_total")


def leader_of(c: ProcCluster, topic: str, partition: int) -> int:
    async def run(client: KafkaClient) -> int:
        await client.metadata([topic])
        return client.leader_for(topic, partition)
    return int(asyncio.run(_with_client(c, run)))


def set_verification(c: ProcCluster, enabled: bool) -> None:
    R = incremental_alter_configs.REQUEST
    resp = send(c, ApiKey.INCREMENTAL_ALTER_CONFIGS, R.cls(resources=[R.AlterConfigsResource(
        resource_type=BROKER_RESOURCE, resource_name="", configs=[R.AlterableConfig(
            name=VERIFY_KEY, config_operation=SET, value=str(enabled).lower())])],
        validate_only=False))
    assert resp.responses[0].error_code == 0, resp


def last_offset(c: ProcCluster, topic: str, isolation: int) -> int:
    R = list_offsets.REQUEST
    req = R.cls(replica_id=-1, isolation_level=isolation, topics=[R.ListOffsetsTopic(
        name=topic, partitions=[R.ListOffsetsPartition(partition_index=0, timestamp=-1)])])

    async def run(client: KafkaClient) -> int:
        resp = await client.send_to_leader(topic, 0, ApiKey.LIST_OFFSETS, req, 5)
        p = resp.topics[0].partitions[0]
        assert p.error_code == 0, p
        return int(p.offset)
    return int(asyncio.run(_with_client(c, run)))


def tool(c: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tools.transactions", "--bootstrap-server",
                           c.bootstrap_servers, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60, check=False)


def rows(out: str) -> list[dict[str, str]]:
    head, *body = (ln.split("\t") for ln in out.splitlines())
    names = [h.strip() for h in head]
    return [dict(zip(names, (v.strip() for v in row), strict=True)) for row in body]


# -- verification -------------------------------------------------------------------------------


def test_a_partition_not_in_the_transaction_is_refused(cluster: ProcCluster) -> None:
    tid = "verify-raw"
    pid, epoch = init_pid(cluster, tid)
    # Nothing added: the coordinator's transaction is Empty.
    code, _, _ = produce_txn(cluster, tid, pid, epoch, TOPIC, 1, 0, "stray")
    assert code == ErrorCode.INVALID_TXN_STATE
    add_partitions(cluster, tid, pid, epoch, [0])
    # Partition 1 is still not in it, for old and new Produce versions alike.
    for version in (3, 8, 12):
        code, _, _ = produce_txn(cluster, tid, pid, epoch, TOPIC, 1, 0, "stray", version)
        assert code == ErrorCode.INVALID_TXN_STATE, version
    # The first batch waits for the coordinator's answer; then the open transaction on the
    # partition stands for the verification: one round trip for six batches.
    leader = leader_of(cluster, TOPIC, 0)
    before = verifications(cluster, leader)
    results = produce_txns(cluster, tid, pid, epoch, TOPIC, 0, 0, "a", count=6)
    assert verifications(cluster, leader) == before + 1
    assert [r[0] for r in results] == [ErrorCode.NONE] * 6, results
    offsets = [r[1] for r in results]
    assert offsets == sorted(offsets) and len(set(offsets)) == 6
    first_s, timings = results[0][2], [r[2] for r in results[1:]]
    print(f"\ntransactional produce, acks=all, 3 replicas: first batch of the transaction on "
          f"the partition (verified with the coordinator) {first_s * 1000:.1f} ms; next "
          f"batches median {sorted(timings)[len(timings) // 2] * 1000:.1f} ms")
    assert end(cluster, tid, pid, epoch, False) == 0
    # Once the abort marker ends it there, the next batch asks again, and the transaction is
    # over: refused.
    until("the refusal after the abort", lambda: produce_txn(
        cluster, tid, pid, epoch, TOPIC, 0, 6, "late")[0] == ErrorCode.INVALID_TXN_STATE)
    # A newer epoch fences the old one: the coordinator's PRODUCER_FENCED reaches the producer
    # as INVALID_PRODUCER_EPOCH, as Kafka's.
    new_pid, new_epoch = init_pid(cluster, tid)
    assert (new_pid, new_epoch) != (pid, epoch)
    code, _, _ = produce_txn(cluster, tid, pid, epoch, TOPIC, 2, 0, "fenced")
    assert code == ErrorCode.INVALID_PRODUCER_EPOCH


def consume_committed(c: ProcCluster, topic: str, n: int, partitions: int,
                      timeout: float = 60.0) -> list[str]:
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": f"v-{topic}",
                            "enable.auto.commit": False, "auto.offset.reset": "earliest",
                            "isolation.level": "read_committed"})
    consumer.assign([ck.TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n:
            assert time.monotonic() < deadline, f"read_committed saw only {got}"
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
    finally:
        consumer.close()
    return got


def test_real_transactional_producers_still_commit(cluster: ProcCluster) -> None:
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                     "transactional.id": "verify-ck", "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(6):
        p.produce(TOPIC, value=b"ck%d" % i, partition=i % 3)
    assert p.flush(30) == 0
    p.commit_transaction(30)
    kp = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap_servers,
                             transactional_id="verify-kp")
    try:
        kp.init_transactions()
        kp.begin_transaction()
        for i in range(6):
            kp.send(TOPIC, value=b"kp%d" % i, partition=i % 3)
        kp.commit_transaction()
    finally:
        kp.close(timeout=10)
    got = consume_committed(cluster, TOPIC, 12, 3)
    assert sorted(got) == sorted([f"ck{i}" for i in range(6)] + [f"kp{i}" for i in range(6)])


# -- hanging transactions -----------------------------------------------------------------------


def test_a_hanging_transaction_is_found_and_aborted(cluster: ProcCluster) -> None:
    tid = "hang-raw"
    pid, epoch = init_pid(cluster, tid)
    set_verification(cluster, False)
    try:
        # Unverified, a stray batch opens a transaction the coordinator does not know of.
        _, hang_at, took = until("the unverified append", lambda: (r := produce_txn(
            cluster, tid, pid, epoch, HANG, 0, 0, "hanging"))[0] == ErrorCode.NONE and r)
        print(f"\nfirst transactional batch on a fresh partition, verification off: "
              f"{took * 1000:.1f} ms (one sample, for comparison)")
    finally:
        set_verification(cluster, True)
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                     "transactional.id": "hang-ok", "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(HANG, value=b"after", partition=0)
    assert p.flush(30) == 0
    p.commit_transaction(30)
    end_offset = last_offset(cluster, HANG, 0)
    assert end_offset > hang_at + 1
    # Nothing will end it: the last stable offset stays at its first offset.
    assert last_offset(cluster, HANG, 1) == hang_at
    out = tool(cluster, "describe-producers", "--topic", HANG, "--partition", "0")
    assert out.returncode == 0, out.stderr
    mine = [r for r in rows(out.stdout) if r["ProducerId"] == str(pid)]
    assert mine and mine[0]["CurrentTransactionStartOffset"] == str(hang_at), out.stdout
    assert mine[0]["ProducerEpoch"] == str(epoch)
    out = tool(cluster, "find-hanging", "--topic", HANG, "--max-transaction-timeout", "0")
    assert out.returncode == 0, out.stderr
    found = rows(out.stdout)
    assert [(r["Topic"], r["Partition"], r["ProducerId"], r["StartOffset"]) for r in found] == [
        (HANG, "0", str(pid), str(hang_at))], out.stdout
    # The committed producer's transaction is complete: not listed as hanging.
    out = tool(cluster, "abort", "--topic", HANG, "--partition", "0",
               "--start-offset", str(hang_at))
    assert out.returncode == 0, out.stderr
    until("the last stable offset past the aborted transaction",
          lambda: last_offset(cluster, HANG, 1) >= end_offset)
    got = consume_committed(cluster, HANG, 1, 1)
    assert got == ["after"]
    out = tool(cluster, "find-hanging", "--topic", HANG, "--max-transaction-timeout", "0")
    assert out.returncode == 0 and rows(out.stdout) == [], out.stdout


# -- compaction ---------------------------------------------------------------------------------


def control_offsets(c: ProcCluster, topic: str) -> list[int]:
    """Offsets of the transaction markers in the leader's log (Fetch, read_uncommitted, one
    segment per answer, to the high watermark)."""
    R = fetch.REQUEST

    async def run(client: KafkaClient) -> list[int]:
        found: list[int] = []
        offset = 0
        while True:
            req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                        isolation_level=0, topics=[R.FetchTopic(topic=topic, partitions=[
                            R.FetchPartition(partition=0, fetch_offset=offset,
                                             partition_max_bytes=1 << 20)])])
            resp = await client.send_to_leader(topic, 0, ApiKey.FETCH, req, 11)
            part = resp.responses[0].partitions[0]
            assert part.error_code == 0, part
            headers = [h for _, h in iter_batches(bytes(part.records or b""))]
            if not headers:
                return found
            found += [h.base_offset for h in headers if h.is_control]
            offset = headers[-1].base_offset + headers[-1].last_offset_delta + 1
            if offset >= part.high_watermark:
                return found
    return list(asyncio.run(_with_client(c, run)))


def test_compaction_removes_the_marker_of_an_aborted_transaction(cluster: ProcCluster) -> None:
    topic = "txn-compact"
    R = create_topics.REQUEST
    configs = {"cleanup.policy": "compact", "segment.bytes": "300",
               "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.01",
               "min.compaction.lag.ms": "0"}
    resp = send(cluster, ApiKey.CREATE_TOPICS, R.cls(topics=[R.CreatableTopic(
        name=topic, num_partitions=1, replication_factor=3, assignments=[], configs=[
            R.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])],
        timeout_ms=10000))
    assert resp.topics[0].error_code == 0, resp
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                     "transactional.id": "compact-txn", "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, key=b"g%d" % i, value=b"gone-%d" % i, partition=0)
    assert p.flush(30) == 0
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, key=b"k%d" % i, value=b"kept-%d" % i, partition=0)
    assert p.flush(30) == 0
    p.commit_transaction(30)
    def two_markers() -> list[int] | None:
        found = control_offsets(cluster, topic)
        return found if len(found) == 2 else None

    abort_at, commit_at = until("both markers", two_markers)
    # Later records roll the segments, so the markers become cleanable.
    plain = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for i in range(6):
        plain.produce(topic, key=b"f%d" % i, value=b"filler-%d" % i, partition=0)
        assert plain.flush(30) == 0  # a batch each
    until("the ABORT marker removed by the cleaner",
          lambda: control_offsets(cluster, topic) == [commit_at], timeout=90)
    assert abort_at < commit_at
    got = consume_committed(cluster, topic, 9, 1)
    assert sorted(v for v in got if v.startswith("kept")) == ["kept-0", "kept-1", "kept-2"]
    assert len(got) == 9 and not any(v.startswith("gone") for v in got)
