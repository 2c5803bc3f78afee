"""The transaction coordinator on a 3-node cluster: real clients' transactional producers
(confluent-kafka, kafka-python, aiokafka) initialise, commit or abort, and are fenced; EndTxn's answers and the
__transaction_state records, read back through Fetch; DescribeTransactions and
ListTransactions; the broker form of AddPartitionsToTxn (verify_only); a timed-out
transaction aborted by the coordinator; and the failover of a coordinator killed with -9
while its transaction was PrepareCommit: the new leader loads the partition and resumes the
markers.

Until the partition leaders serve WriteTxnMarkers, a PrepareCommit stays prepared (the
markers are retried in the background), so these tests accept both it and CompleteCommit.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.groups.records import partition_for as group_partition_for
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    create_topics,
    describe_transactions,
    end_txn,
    fetch,
    find_coordinator,
    init_producer_id,
    list_transactions,
    metadata,
)
from broker.transactions.records import decode_txn_record, partition_for
from storage.record_batch import iter_batches
from storage.records import decode_batch
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")

REPO = Path(__file__).resolve().parents[2]
TXN_PARTITIONS = 10
TOPIC = "txn-data"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("transactions"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2",
                           "transaction.state.log.num.partitions": str(TXN_PARTITIONS),
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms": "300"})
    c.start()
    try:
        R = create_topics.REQUEST
        resp = send(c, None, ApiKey.CREATE_TOPICS, R.cls(topics=[R.CreatableTopic(
            name=TOPIC, num_partitions=3, replication_factor=3, assignments=[], configs=[])],
            timeout_ms=10000))
        assert resp.topics[0].error_code == 0, resp
        yield c
    finally:
        c.shutdown()


def send(c: ProcCluster, node: int | None, api_key: int, req: Any, version: int | None = None,
         timeout_s: float = 20.0) -> Any:
    address = c.nodes[node].bootstrap if node is not None else next(
        n.bootstrap for n in c.nodes.values() if n.alive())

    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=timeout_s)
        finally:
            await conn.close()

    return asyncio.run(run())


def coordinator(c: ProcCluster, tid: str, timeout: float = 60.0) -> int:
    """The transaction coordinator of ``tid`` (FindCoordinator key type 1, retried)."""
    R = find_coordinator.REQUEST
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = send(c, None, ApiKey.FIND_COORDINATOR,
                        R.cls(key=tid, key_type=1), version=3)
            if resp.error_code == 0 and c.nodes[resp.node_id].alive():
                return int(resp.node_id)
        except (OSError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"no coordinator for {tid}"
        time.sleep(0.2)


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


def describe(c: ProcCluster, tid: str) -> Any:
    R = describe_transactions.REQUEST
    node = coordinator(c, tid)
    return send(c, node, ApiKey.DESCRIBE_TRANSACTIONS,
                R.cls(transactional_ids=[tid])).transaction_states[0]


def init_pid(c: ProcCluster, tid: str, timeout_ms: int = 60000, version: int | None = None
             ) -> Any:
    R = init_producer_id.REQUEST

    def attempt() -> Any:
        resp = send(c, coordinator(c, tid), ApiKey.INIT_PRODUCER_ID, R.cls(
            transactional_id=tid, transaction_timeout_ms=timeout_ms, producer_id=-1,
            producer_epoch=-1), version=version)
        return None if resp.error_code in (ErrorCode.NOT_COORDINATOR,
                                           ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                           ErrorCode.CONCURRENT_TRANSACTIONS) else resp
    return until(f"InitProducerId of {tid}", attempt)


def add_partitions(c: ProcCluster, tid: str, pid: int, epoch: int, parts: list[int],
                   version: int = 3) -> dict[int, int]:
    R = add_partitions_to_txn.REQUEST
    resp = send(c, coordinator(c, tid), ApiKey.ADD_PARTITIONS_TO_TXN, R.cls(
        v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
            R.AddPartitionsToTxnTopic(name=TOPIC, partitions=parts)]), version=version)
    return {p.partition_index: p.partition_error_code
            for t in resp.results_by_topic_v3_and_below for p in t.results_by_partition}


def end(c: ProcCluster, tid: str, pid: int, epoch: int, commit: bool, version: int = 3
        ) -> int:
    R = end_txn.REQUEST
    return int(send(c, coordinator(c, tid), ApiKey.END_TXN, R.cls(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit),
        version=version).error_code)


def state_log(c: ProcCluster, tid: str) -> list[tuple[str, int, int]]:
    """(state, producer id, epoch) of every record of ``tid`` in its __transaction_state
    partition, in log order, read from the coordinator with Fetch."""
    R = fetch.REQUEST
    p = partition_for(tid, TXN_PARTITIONS)
    req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1, topics=[R.FetchTopic(
                    topic="__transaction_state", partitions=[R.FetchPartition(
                        partition=p, current_leader_epoch=-1, fetch_offset=0,
                        log_start_offset=-1, partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id="")
    part = send(c, coordinator(c, tid), ApiKey.FETCH, req, version=12).responses[0].partitions[0]
    assert part.error_code == 0, part
    data = bytes(part.records or b"")
    out = []
    for pos, _ in iter_batches(data):
        for r in decode_batch(data, pos)[1]:
            key, e = decode_txn_record(r.key, r.value)
            if key == tid:
                out.append(("Tombstone", -1, -1) if e is None
                           else (e.state.display, e.producer_id, e.producer_epoch))
    return out


# -- real clients ------------------------------------------------------------------------------


def test_confluent_transactional_producer_commits(cluster: ProcCluster) -> None:
    tid = "ck-commit"
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": tid,
                     "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(6):
        p.produce(TOPIC, value=b"v%d" % i, partition=i % 3)
    assert p.flush(30) == 0
    p.commit_transaction(30)
    st = describe(cluster, tid)
    assert st.error_code == 0
    assert st.transaction_state in ("PrepareCommit", "CompleteCommit"), st
    log = state_log(cluster, tid)
    states = [s for s, _, _ in log]
    assert states[:3] == ["Empty", "Ongoing", "PrepareCommit"], log
    assert {pid for _, pid, _ in log} == {st.producer_id}
    p.purge()


def test_a_second_producer_fences_the_first(cluster: ProcCluster) -> None:
    tid = "ck-fence"
    conf = {"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": tid}
    first = ck.Producer(conf)
    first.init_transactions(60)
    second = ck.Producer(conf)
    second.init_transactions(60)
    st = describe(cluster, tid)
    assert (st.transaction_state, st.producer_epoch) == ("Empty", 1)
    first.begin_transaction()
    first.produce(TOPIC, value=b"late", partition=0)
    with pytest.raises(ck.KafkaException) as err:
        first.flush(20)  # AddPartitionsToTxn is refused: the error is fatal
        first.commit_transaction(20)
    e = err.value.args[0]
    assert e.fatal() and e.code() == ck.KafkaError._FENCED, e
    first.purge()


def test_kafka_python_and_aiokafka_commit(cluster: ProcCluster) -> None:
    kafka = pytest.importorskip("kafka")
    aiokafka = pytest.importorskip("aiokafka")
    p = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap_servers,
                            transactional_id="kp-commit")
    try:
        p.init_transactions()
        assert describe(cluster, "kp-commit").transaction_state == "Empty"
        p.begin_transaction()
        p.send(TOPIC, b"kp", partition=1).get(timeout=20)
        p.commit_transaction()
    finally:
        p.close(timeout=5)
    st = describe(cluster, "kp-commit")
    assert st.transaction_state in ("PrepareCommit", "CompleteCommit"), st

    async def aio() -> None:
        ap = aiokafka.AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers,
                                       transactional_id="aio-abort")
        await ap.start()
        try:
            await ap.begin_transaction()
            await ap.send_and_wait(TOPIC, b"aio", partition=2)
            await ap.abort_transaction()
        finally:
            await ap.stop()

    asyncio.run(asyncio.wait_for(aio(), 60))
    st = describe(cluster, "aio-abort")
    assert st.transaction_state in ("PrepareAbort", "CompleteAbort"), st
    assert [s for s, _, _ in state_log(cluster, "aio-abort")][:3] == [
        "Empty", "Ongoing", "PrepareAbort"]


# -- the wire, through our own client ----------------------------------------------------------


def test_end_txn_and_fencing_errors_per_version(cluster: ProcCluster) -> None:
    tid = "wire-errors"
    r = init_pid(cluster, tid)
    assert r.error_code == 0
    pid, ep = r.producer_id, r.producer_epoch
    assert end(cluster, tid, pid, ep, True) == ErrorCode.INVALID_TXN_STATE  # nothing open
    assert end(cluster, tid, pid + 1, ep, True) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert add_partitions(cluster, tid, pid, ep, [0, 1]) == {0: 0, 1: 0}
    assert add_partitions(cluster, tid, pid, ep, [99]) == {99: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    # A stale epoch: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before (KIP-588).
    assert end(cluster, tid, pid, ep - 1 if ep else 7, True) == ErrorCode.PRODUCER_FENCED
    assert end(cluster, tid, pid, ep + 1, True, version=1) == ErrorCode.INVALID_PRODUCER_EPOCH
    # The broker form (v4+): verify_only answers whether the partitions are in.
    R = add_partitions_to_txn.REQUEST
    resp = send(cluster, coordinator(cluster, tid), ApiKey.ADD_PARTITIONS_TO_TXN, R.cls(
        transactions=[R.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=pid, producer_epoch=ep, verify_only=True,
            topics=[R.AddPartitionsToTxnTopic(name=TOPIC, partitions=[0, 2])])]), version=4)
    got = {p.partition_index: p.partition_error_code
           for t in resp.results_by_transaction[0].topic_results for p in t.results_by_partition}
    assert got == {0: 0, 2: ErrorCode.INVALID_TXN_STATE}
    assert end(cluster, tid, pid, ep, False) == 0
    st = describe(cluster, tid)
    assert st.transaction_state in ("PrepareAbort", "CompleteAbort")
    # A second producer waits for the abort to complete: CONCURRENT_TRANSACTIONS while its
    # markers are being written, a bumped epoch once they are (brokers write them within
    # milliseconds, so either answer can come; the state machine's unit tests pin the first).
    R2 = init_producer_id.REQUEST
    if st.transaction_state == "PrepareAbort":
        resp = send(cluster, coordinator(cluster, tid), ApiKey.INIT_PRODUCER_ID, R2.cls(
            transactional_id=tid, transaction_timeout_ms=1000, producer_id=-1,
            producer_epoch=-1))
        assert resp.error_code == ErrorCode.CONCURRENT_TRANSACTIONS or (
            resp.error_code == 0 and resp.producer_id == pid
            and resp.producer_epoch > ep), resp
    bad = send(cluster, coordinator(cluster, tid), ApiKey.INIT_PRODUCER_ID, R2.cls(
        transactional_id=tid, transaction_timeout_ms=900_001, producer_id=-1,
        producer_epoch=-1))
    assert bad.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_add_offsets_to_txn_adds_the_groups_offsets_partition(cluster: ProcCluster) -> None:
    tid, group = "wire-offsets", "txn-group"
    r = init_pid(cluster, tid)
    R = add_offsets_to_txn.REQUEST

    def add(epoch: int, version: int) -> int:
        return int(send(cluster, coordinator(cluster, tid), ApiKey.ADD_OFFSETS_TO_TXN, R.cls(
            transactional_id=tid, producer_id=r.producer_id, producer_epoch=epoch,
            group_id=group), version=version).error_code)

    assert add(r.producer_epoch + 1, 1) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert add(r.producer_epoch + 1, 2) == ErrorCode.PRODUCER_FENCED
    assert add(r.producer_epoch, 3) == 0
    md = send(cluster, None, ApiKey.METADATA, metadata.REQUEST.cls(topics=[
        metadata.REQUEST.MetadataRequestTopic(name="__consumer_offsets")],
        allow_auto_topic_creation=False))
    t = md.topics[0]
    n = len(t.partitions) if t.error_code == 0 and t.partitions else 50
    st = describe(cluster, tid)
    assert st.transaction_state == "Ongoing"
    assert [(x.topic, list(x.partitions)) for x in st.topics] == [
        ("__consumer_offsets", [group_partition_for(group, n)])]
    assert end(cluster, tid, r.producer_id, r.producer_epoch, False) == 0


def test_list_transactions_and_describe_unknown(cluster: ProcCluster) -> None:
    tid = "wire-list"
    r = init_pid(cluster, tid)
    assert add_partitions(cluster, tid, r.producer_id, r.producer_epoch, [1]) == {1: 0}
    R = list_transactions.REQUEST
    found = []
    for node in cluster.nodes:
        resp = send(cluster, node, ApiKey.LIST_TRANSACTIONS, R.cls(
            state_filters=["Ongoing", "Bogus"], producer_id_filters=[], duration_filter=-1))
        assert resp.unknown_state_filters == ["Bogus"]
        found += [(t.transactional_id, t.producer_id, t.transaction_state)
                  for t in resp.transaction_states]
    assert (tid, r.producer_id, "Ongoing") in found
    assert all(s == "Ongoing" for _, _, s in found)
    st = describe(cluster, tid)
    assert [(t.topic, list(t.partitions)) for t in st.topics] == [(TOPIC, [1])]
    assert describe(cluster, "never-seen").error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    end(cluster, tid, r.producer_id, r.producer_epoch, False)


def test_a_timed_out_transaction_is_aborted(cluster: ProcCluster) -> None:
    tid = "wire-timeout"
    r = init_pid(cluster, tid, timeout_ms=1000)
    assert add_partitions(cluster, tid, r.producer_id, r.producer_epoch, [2]) == {2: 0}
    st = until("the abort of the timed-out transaction",
               lambda: (s := describe(cluster, tid)).transaction_state
               in ("PrepareAbort", "CompleteAbort") and s)
    assert st.producer_epoch == r.producer_epoch + 1
    assert end(cluster, tid, r.producer_id, r.producer_epoch, True) == ErrorCode.PRODUCER_FENCED


def tool(c: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tools.transactions", "--bootstrap-server",
                           c.bootstrap_servers, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60, check=False)


def test_kafka_transactions_tool(cluster: ProcCluster) -> None:
    tid = "tool-open"
    r = init_pid(cluster, tid, timeout_ms=120_000)
    assert add_partitions(cluster, tid, r.producer_id, r.producer_epoch, [0, 2]) == {0: 0, 2: 0}
    out = tool(cluster, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["TransactionalId", "Coordinator", "ProducerId",
                                "TransactionState"]
    node = coordinator(cluster, tid)
    assert [tid, str(node), str(r.producer_id), "Ongoing"] in [ln.split() for ln in lines]
    # Kafka's table: every cell padded to its column and followed by a tab.
    assert all(ln.endswith("\t") for ln in lines)
    out = tool(cluster, "describe", "--transactional-id", tid)
    assert out.returncode == 0, out.stderr
    head, row = (ln.split("\t") for ln in out.stdout.splitlines())
    got = dict(zip((h.strip() for h in head), (v.strip() for v in row), strict=True))
    assert got["CoordinatorId"] == str(node) and got["ProducerId"] == str(r.producer_id)
    assert got["TransactionState"] == "Ongoing" and got["TransactionTimeoutMs"] == "120000"
    assert got["TopicPartitions"] == f"{TOPIC}-0,{TOPIC}-2"
    assert int(got["TransactionDurationMs"]) >= 0
    out = tool(cluster, "describe", "--transactional-id", "no-such-id")
    assert out.returncode == 1 and "TRANSACTIONAL_ID_NOT_FOUND" in out.stderr
    out = tool(cluster, "abort", "--topic", TOPIC, "--partition", "0")
    assert out.returncode == 1 and "--start-offset" in out.stderr
    out = tool(cluster, "find-hanging")
    assert out.returncode == 1 and "--topic or --broker-id" in out.stderr
    # DescribeProducers is the partition leaders' API: a table where they serve it, a
    # one-line error where they do not.
    out = tool(cluster, "describe-producers", "--topic", TOPIC, "--partition", "0")
    if out.returncode == 0:
        assert out.stdout.split()[:6] == ["ProducerId", "ProducerEpoch",
                                          "LatestCoordinatorEpoch", "LastSequence",
                                          "LastTimestamp", "CurrentTransactionStartOffset"]
    else:
        assert out.stderr.startswith("Error: ") and "Traceback" not in out.stderr, out.stderr
    end(cluster, tid, r.producer_id, r.producer_epoch, False)


def test_failover_resumes_a_prepared_commit(cluster: ProcCluster) -> None:
    """kill -9 the coordinator of a PrepareCommit; the new leader of its partition loads it
    and sends the markers again (it ends CompleteCommit once leaders write markers)."""
    tid = "failover"
    r = init_pid(cluster, tid)
    assert add_partitions(cluster, tid, r.producer_id, r.producer_epoch, [0]) == {0: 0}
    assert end(cluster, tid, r.producer_id, r.producer_epoch, True) == 0
    old = coordinator(cluster, tid)
    before = describe(cluster, tid)
    assert before.transaction_state in ("PrepareCommit", "CompleteCommit")
    cluster.nodes[old].kill()
    new = until("a new coordinator", lambda: (n := coordinator(cluster, tid)) != old and n)
    st = until("the loaded transaction",
               lambda: (s := describe(cluster, tid)).error_code == 0 and s)
    assert st.producer_id == r.producer_id and st.producer_epoch == r.producer_epoch
    assert st.transaction_state in ("PrepareCommit", "CompleteCommit")
    assert [(t.topic, list(t.partitions)) for t in st.topics] in (
        [(TOPIC, [0])], [])
    if st.transaction_state == "PrepareCommit":
        p = partition_for(tid, TXN_PARTITIONS)
        text = cluster.nodes[new].log_path.read_text(errors="replace")
        assert re.search(rf"state of __transaction_state-{p} \(epoch \d+\): \d+ ids, \d+ "
                         rf"records, [1-9]\d* transaction\(s\) to complete", text), text[-3000:]


def _produce_txn(c: ProcCluster, tid: str, pid: int, epoch: int, seq: int, value: bytes) -> int:
    """One transactional batch to TOPIC partition 1 through its leader; the error code."""
    from broker.protocol.messages import produce
    from storage.records import SimpleRecord, build_batch

    def leader() -> int | None:
        md = send(c, None, ApiKey.METADATA, metadata.REQUEST.cls(topics=[
            metadata.REQUEST.MetadataRequestTopic(name=TOPIC)], allow_auto_topic_creation=False))
        p = [p for p in md.topics[0].partitions if p.partition_index == 1]
        return p[0].leader_id if p and p[0].leader_id >= 0 else None

    batch = build_batch([SimpleRecord(value)], producer_id=pid, producer_epoch=epoch,
                        base_sequence=seq, is_transactional=True)
    R = produce.REQUEST
    resp = send(c, until("the leader of partition 1", leader), ApiKey.PRODUCE, R.cls(
        transactional_id=tid, acks=-1, timeout_ms=10000, topic_data=[R.TopicProduceData(
            name=TOPIC, partition_data=[R.PartitionProduceData(index=1, records=batch)])]),
        version=8)
    return int(resp.responses[0].partition_responses[0].error_code)


def test_a_late_batch_after_the_abort_is_refused(cluster: ProcCluster) -> None:
    """A produce request delayed in the network past its transaction's abort (clients cut from
    the leader, then healed) must not open a new transaction on the partition: the next commit
    of the same producer id would make the aborted records visible at read_committed (the
    aborted read the transactional fault workload found, partition nemesis, seed 1003). The
    leader asks the coordinator first (KIP-890 part 1, broker/replication/txn_verify.py)."""
    tid = "wire-late-batch"
    r = init_pid(cluster, tid)
    pid, epoch = r.producer_id, r.producer_epoch
    assert add_partitions(cluster, tid, pid, epoch, [1]) == {1: 0}
    assert _produce_txn(cluster, tid, pid, epoch, 0, b"in-txn") == 0
    assert end(cluster, tid, pid, epoch, False) == 0
    until("the abort to complete",
          lambda: describe(cluster, tid).transaction_state == "CompleteAbort")
    # The same batch's successor arrives late: same epoch, next sequence, no AddPartitionsToTxn.
    assert _produce_txn(cluster, tid, pid, epoch, 1, b"late") == ErrorCode.INVALID_TXN_STATE
