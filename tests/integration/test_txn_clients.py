"""Transactions end to end through real clients on a 3-node cluster (every topic and
``__transaction_state`` replicated three times, min.insync.replicas 2).

Transactional producers of confluent-kafka, kafka-python and aiokafka commit, abort, abort and
then commit with the same producer, over several partitions of two topics, and commit consumer
offsets with send_offsets_to_transaction (OffsetFetch sees them after a commit, never after an
abort); kafkajs's transactional producer commits and aborts too. read_committed consumers of
confluent-kafka, kafka-python, aiokafka, kcat and kafkajs then see exactly the committed records
and stop before an open transaction; read_uncommitted sees everything. A zombie producer is
fenced. Last, the transaction coordinator is killed with -9: after a commit was answered but
before every marker was written (the new coordinator completes it), and with a transaction open
(the next producer of the id fences and aborts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import create_topics, describe_transactions
from tests.helpers_kafkajs import run_driver, why_not_installed
from tests.integration.test_transactions import coordinator, describe, send, until
from tools import metadata_quorum
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
aiokafka = pytest.importorskip("aiokafka")
from aiokafka.errors import ProducerFenced
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.errors import ProducerFencedError

A, B = "txc-a", "txc-b"
PARTS = [(A, 0), (A, 1), (A, 2), (B, 0), (B, 1)]
SOURCE = "txc-source"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(Path(tmp_path_factory.mktemp("txn-clients")), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2",
                           "default.replication.factor": "3",
                           "transaction.state.log.replication.factor": "3",
                           "transaction.state.log.min.isr": "2",
                           "transaction.state.log.num.partitions": "5",
                           "offsets.topic.replication.factor": "3",
                           "offsets.topic.num.partitions": "3",
                           "group.initial.rebalance.delay.ms": "0"})
    c.start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
        futures = admin.create_topics([NewTopic(A, 3, 3), NewTopic(B, 2, 3),
                                       NewTopic(SOURCE, 1, 3)])
        for f in futures.values():
            f.result(30)
        yield c
    finally:
        c.shutdown()


# -- the three transactional producers behind one shape ----------------------------------------


class CkTxn:
    def __init__(self, c: ProcCluster, tid: str) -> None:
        self.p = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "transactional.id": tid,
                              "transaction.timeout.ms": 60000})
        self.c = c
        self.p.init_transactions(60)

    def begin(self) -> None:
        self.p.begin_transaction()

    def send(self, topic: str, partition: int, value: str) -> None:
        self.p.produce(topic, value=value.encode(), partition=partition)

    def offsets(self, group: str, topic: str, partition: int, offset: int) -> None:
        consumer = ck.Consumer({"bootstrap.servers": self.c.bootstrap_servers,
                                "group.id": group})
        try:
            self.p.send_offsets_to_transaction([ck.TopicPartition(topic, partition, offset)],
                                               consumer.consumer_group_metadata(), 30)
        finally:
            consumer.close()

    def flush(self) -> None:
        assert self.p.flush(30) == 0

    def commit(self) -> None:
        self.p.commit_transaction(60)

    def abort(self) -> None:
        self.p.abort_transaction(60)

    def close(self) -> None:
        self.p.purge()


class KpTxn:
    def __init__(self, c: ProcCluster, tid: str) -> None:
        self.p = kafka.KafkaProducer(bootstrap_servers=c.bootstrap_servers, transactional_id=tid)
        self.p.init_transactions()

    def begin(self) -> None:
        self.p.begin_transaction()

    def send(self, topic: str, partition: int, value: str) -> None:
        self.p.send(topic, value.encode(), partition=partition)

    def offsets(self, group: str, topic: str, partition: int, offset: int) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition
        self.p.send_offsets_to_transaction(
            {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)}, group)

    def flush(self) -> None:
        self.p.flush(30)

    def commit(self) -> None:
        self.p.commit_transaction()

    def abort(self) -> None:
        self.p.abort_transaction()

    def close(self) -> None:
        self.p.close(timeout=5)


class AioTxn:
    def __init__(self, c: ProcCluster, tid: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.pending: list[Any] = []

        async def start() -> Any:
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=c.bootstrap_servers,
                                          transactional_id=tid)
            await p.start()
            return p
        self.p = self.run(start())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

    def begin(self) -> None:
        self.run(self.p.begin_transaction())

    def send(self, topic: str, partition: int, value: str) -> None:
        self.pending.append(self.run(self.p.send(topic, value.encode(), partition=partition)))

    def offsets(self, group: str, topic: str, partition: int, offset: int) -> None:
        tp = aiokafka.TopicPartition(topic, partition)
        self.run(self.p.send_offsets_to_transaction({tp: offset}, group))

    def flush(self) -> None:
        async def wait(futures: list[Any]) -> None:
            await asyncio.gather(*futures)
        self.run(wait(self.pending))
        self.pending = []

    def commit(self) -> None:
        self.flush()
        self.run(self.p.commit_transaction())

    def abort(self) -> None:
        self.flush()
        self.run(self.p.abort_transaction())

    def close(self) -> None:
        self.run(self.p.stop())
        self.loop.close()


PRODUCERS: dict[str, Callable[[ProcCluster, str], Any]] = {
    "confluent": CkTxn, "kafka-python": KpTxn, "aiokafka": AioTxn}


def write(p: Any, label: str, parts: list[tuple[str, int]] = PARTS) -> list[str]:
    values = [f"{label}-{t}-{n}" for t, n in parts]
    for (t, n), v in zip(parts, values, strict=True):
        p.send(t, n, v)
    p.flush()
    return values


# -- the readers ---------------------------------------------------------------------------------


def read_confluent(c: ProcCluster, committed: bool, parts: list[tuple[str, int]] = PARTS
                   ) -> list[str]:
    """Everything up to the end (the last stable offset when read_committed)."""
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "unused",
                            "enable.partition.eof": True, "enable.auto.commit": False,
                            "isolation.level": "read_committed" if committed
                            else "read_uncommitted"})
    consumer.assign([ck.TopicPartition(t, n, ck.OFFSET_BEGINNING) for t, n in parts])
    out: list[str] = []
    eof: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 60
    try:
        while eof != set(parts):
            assert time.monotonic() < deadline, f"confluent read stuck at {eof}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == ck.KafkaError._PARTITION_EOF, m.error()
                eof.add((m.topic(), m.partition()))
            else:
                out.append(m.value().decode())
    finally:
        consumer.close()
    return out


def read_kafka_python(c: ProcCluster, parts: list[tuple[str, int]] = PARTS
                      ) -> tuple[list[str], dict[tuple[str, int], int]]:
    """read_committed up to the end offsets ListOffsets gives that isolation level, and those
    end offsets."""
    from kafka.structs import TopicPartition
    consumer = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap_servers,
                                   isolation_level="read_committed", enable_auto_commit=False)
    tps = [TopicPartition(t, n) for t, n in parts]
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        out: list[str] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "kafka-python read stuck"
            for records in consumer.poll(500).values():
                out.extend(r.value.decode() for r in records)
        for records in consumer.poll(500).values():  # nothing beyond the end
            out.extend(r.value.decode() for r in records)
        return out, {(tp.topic, tp.partition): ends[tp] for tp in tps}
    finally:
        consumer.close()


def read_aiokafka(c: ProcCluster, parts: list[tuple[str, int]] = PARTS) -> list[str]:
    async def run() -> list[str]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=c.bootstrap_servers,
                                             isolation_level="read_committed",
                                             enable_auto_commit=False)
        tps = [aiokafka.TopicPartition(t, n) for t, n in parts]
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning()
            ends = await consumer.end_offsets(tps)
            out: list[str] = []
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(r.value.decode() for r in records)
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(r.value.decode() for r in records)
            return out
        finally:
            await consumer.stop()
    return asyncio.run(asyncio.wait_for(run(), 60))


def read_kcat(c: ProcCluster, parts: list[tuple[str, int]] = PARTS) -> list[str]:
    out: list[str] = []
    for topic in sorted({t for t, _ in parts}):
        r = subprocess.run(["kcat", "-C", "-b", c.bootstrap_servers, "-t", topic, "-o",
                            "beginning", "-e", "-q", "-f", "%s\\n",
                            "-X", "isolation.level=read_committed"],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        out.extend(line for line in r.stdout.splitlines() if line)
    return out


def read_kafkajs(c: ProcCluster, n: int) -> list[str]:
    events = run_driver(c.bootstrap_servers, "txnread", topics=[A, B], n=n, idleMs=1500,
                        groupId=f"kjs-{uuid.uuid4().hex[:6]}")
    return next(e["values"] for e in events if e["event"] == "records")


def committed_offset(c: ProcCluster, group: str, topic: str, partition: int) -> int:
    """OffsetFetch (require_stable false) of one partition; -1001 when there is none."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    fut = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [ck.TopicPartition(topic, partition)])])
    res = next(iter(fut.values())).result(30)
    return int(res.topic_partitions[0].offset)


# -- the tests -----------------------------------------------------------------------------------

COMMITTED: list[str] = []
EVERYTHING: list[str] = []


@pytest.mark.parametrize("kind", list(PRODUCERS))
def test_commit_abort_then_commit(cluster: ProcCluster, kind: str) -> None:
    """Commit; abort; commit again with the same producer: five partitions of two topics in
    each transaction."""
    p = PRODUCERS[kind](cluster, f"tx-{kind}")
    try:
        for label, commit in ((f"{kind}-c1", True), (f"{kind}-a1", False),
                              (f"{kind}-c2", True)):
            p.begin()
            values = write(p, label)
            p.commit() if commit else p.abort()
            EVERYTHING.extend(values)
            if commit:
                COMMITTED.extend(values)
    finally:
        p.close()


@pytest.mark.skipif(why_not_installed() is not None, reason=str(why_not_installed()))
def test_kafkajs_commit_abort_then_commit(cluster: ProcCluster) -> None:
    """Also with offsets (sendOffsets): 5 in the aborted transaction, 7 in the last one."""
    batches = [{"label": f"kafkajs-{label}", "commit": commit, "parts": PARTS,
                "offsets": offset and {"group": "g-kafkajs", "topic": SOURCE, "partition": 0,
                                       "offset": offset}}
               for label, commit, offset in (("c1", True, 0), ("a1", False, 5),
                                             ("c2", True, 7))]
    events = run_driver(cluster.bootstrap_servers, "txnwrite", transactionalId="tx-kafkajs",
                        batches=batches)
    ends = [e for e in events if e["event"] in ("committed", "aborted")]
    assert [e["event"] for e in ends] == ["committed", "aborted", "committed"], events
    for e in ends:
        EVERYTHING.extend(e["values"])
        if e["event"] == "committed":
            COMMITTED.extend(e["values"])
    until("the committed offset",
          lambda: committed_offset(cluster, "g-kafkajs", SOURCE, 0) == 7, timeout=30)


@pytest.mark.parametrize("kind", list(PRODUCERS))
def test_offsets_in_a_transaction(cluster: ProcCluster, kind: str) -> None:
    """send_offsets_to_transaction: pending until the commit, dropped by an abort."""
    group = f"g-{kind}"
    p = PRODUCERS[kind](cluster, f"tx-offsets-{kind}")
    try:
        p.begin()
        p.send(SOURCE, 0, f"{kind}-offsets-a")
        p.offsets(group, SOURCE, 0, 5)
        p.abort()
        p.begin()
        p.send(SOURCE, 0, f"{kind}-offsets-c")
        p.offsets(group, SOURCE, 0, 7)
        p.flush()
        assert committed_offset(cluster, group, SOURCE, 0) < 0  # pending: not yet
        p.commit()
    finally:
        p.close()
    until("the committed offset", lambda: committed_offset(cluster, group, SOURCE, 0) == 7,
          timeout=30)


# How each client says it was fenced: confluent-kafka's fatal _FENCED error, kafka-python's
# ProducerFencedError, aiokafka's ProducerFenced.
FENCED: dict[str, Callable[[BaseException], bool]] = {
    "confluent": lambda e: isinstance(e, ck.KafkaException) and e.args[0].fatal()
    and e.args[0].code() == ck.KafkaError._FENCED,
    "kafka-python": lambda e: isinstance(e, ProducerFencedError),
    "aiokafka": lambda e: isinstance(e, ProducerFenced),
}


@pytest.mark.parametrize("kind", list(PRODUCERS))
def test_a_zombie_is_fenced(cluster: ProcCluster, kind: str) -> None:
    """A second producer with the same transactional id: the first one's transaction is
    aborted and its commit fails fenced; its records never reach read_committed."""
    tid = f"tx-zombie-{kind}"
    old = PRODUCERS[kind](cluster, tid)
    old.begin()
    zombie = write(old, f"zombie-{kind}", [(B, 0)])
    new = PRODUCERS[kind](cluster, tid)  # fences the old one, aborting its transaction
    new.begin()
    fresh = write(new, f"fresh-{kind}", [(B, 1)])
    new.commit()
    with pytest.raises(Exception) as err:
        old.send(B, 0, "late")
        old.commit()
    assert FENCED[kind](err.value), repr(err.value)
    with contextlib.suppress(Exception):
        old.close()
    new.close()
    EVERYTHING.extend(zombie + fresh)
    COMMITTED.extend(fresh)


def test_read_committed_in_every_client(cluster: ProcCluster) -> None:
    """An open transaction, then plain records after it: read_committed sees the committed
    transactions only and stops before the open one; read_uncommitted sees everything; after
    the commit read_committed sees the rest."""
    assert COMMITTED, "runs after the producer tests"
    open_txn = CkTxn(cluster, "tx-open")
    open_txn.begin()
    opened = write(open_txn, "open")
    plain = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers})
    after = [f"after-{t}-{n}" for t, n in PARTS]
    for (t, n), v in zip(PARTS, after, strict=True):
        plain.produce(t, value=v.encode(), partition=n)
    assert plain.flush(30) == 0

    want = sorted(COMMITTED)
    assert sorted(read_confluent(cluster, committed=True)) == want
    got, ends = read_kafka_python(cluster)
    assert sorted(got) == want
    assert sorted(read_aiokafka(cluster)) == want
    assert sorted(read_kcat(cluster)) == want
    if why_not_installed() is None:
        assert sorted(read_kafkajs(cluster, len(want))) == want
    assert sorted(read_confluent(cluster, committed=False)) == sorted(
        EVERYTHING + opened + after)

    open_txn.commit()
    open_txn.close()
    until("the whole log read_committed", lambda: sorted(read_confluent(
        cluster, committed=True)) == sorted(COMMITTED + opened + after), timeout=30)
    # The last stable offset stood at the open transaction's first record (then come the plain
    # record and the commit marker).
    _, ends_after = read_kafka_python(cluster)
    assert all(ends_after[tp] == ends[tp] + 3 for tp in PARTS), (ends, ends_after)


# -- the coordinator killed with -9 ----------------------------------------------------------------


def end_offsets(c: ProcCluster, committed: bool, parts: list[tuple[str, int]] = PARTS
                ) -> dict[tuple[str, int], int]:
    """ListOffsets latest: the last stable offset when ``committed``, else the high
    watermark."""
    from kafka.structs import TopicPartition
    consumer = kafka.KafkaConsumer(bootstrap_servers=c.bootstrap_servers,
                                   isolation_level="read_committed" if committed
                                   else "read_uncommitted")
    try:
        ends = consumer.end_offsets([TopicPartition(t, n) for t, n in parts])
        return {(tp.topic, tp.partition): o for tp, o in ends.items()}
    finally:
        consumer.close()


def restart(c: ProcCluster, node: int) -> None:
    c.start([node])
    until(f"node {node} back in every ISR", lambda: all(
        len(p.isrs) == 3 for t in AdminClient({"bootstrap.servers": c.bootstrap_servers})
        .list_topics(timeout=10).topics.values() if not t.topic.startswith("txc-one")
        for p in t.partitions.values()), timeout=60)


def test_coordinator_killed_after_commit_before_markers(cluster: ProcCluster) -> None:
    """The commit is answered while one partition's only replica is paused, so its marker
    cannot be written; the coordinator is then killed with -9. The next coordinator loads the
    PrepareCommit and finishes it: read_committed sees every record."""
    # Neither the coordinator nor the paused node is the active controller, so pausing leaves
    # the quorum and the coordinator alone.
    controller = asyncio.run(metadata_quorum.describe(
        [n.controller_address for n in cluster.nodes.values()])).leader_id
    tid, old = next((t, n) for i in range(100)
                    if (n := coordinator(cluster, t := f"tx-failover-commit-{i}")) != controller)
    stuck = next(n for n in cluster.nodes if n not in (old, controller))
    R = create_topics.REQUEST
    resp = send(cluster, None, ApiKey.CREATE_TOPICS, R.cls(topics=[R.CreatableTopic(
        name="txc-one", num_partitions=-1, replication_factor=-1, assignments=[
            R.CreatableReplicaAssignment(partition_index=0, broker_ids=[stuck])],
        configs=[R.CreatableTopicConfig(name="min.insync.replicas", value="1")])],
        timeout_ms=10000))
    assert resp.topics[0].error_code == 0, resp
    parts = [(A, 0), (A, 1), (A, 2), ("txc-one", 0)]
    p = CkTxn(cluster, tid)
    p.begin()
    values = write(p, "failover-commit", parts)
    cluster.nodes[stuck].pause()
    try:
        p.commit()  # answered once PrepareCommit is written (the paused node left the ISRs)
        # Asked of the coordinator itself: the helpers' first live node may be the paused one.
        R = describe_transactions.REQUEST
        st = send(cluster, old, ApiKey.DESCRIBE_TRANSACTIONS,
                  R.cls(transactional_ids=[tid])).transaction_states[0]
        assert st.transaction_state == "PrepareCommit", st
        cluster.nodes[old].kill()
    finally:
        cluster.nodes[stuck].resume()
    p.close()
    assert until("a new coordinator", lambda: coordinator(cluster, tid) != old)
    until("the commit completed by the new coordinator",
          lambda: describe(cluster, tid).transaction_state == "CompleteCommit")
    until("every record read_committed", lambda: set(values) <= set(
        read_confluent(cluster, committed=True, parts=parts)))
    restart(cluster, old)


def test_coordinator_killed_with_a_transaction_open(cluster: ProcCluster) -> None:
    """Records written in a transaction, then its coordinator killed with -9: the next
    producer of the id fences and aborts it; read_committed never sees those records and the
    last stable offset moves up to the high watermark."""
    tid = "tx-failover-open"
    old = coordinator(cluster, tid)
    p = CkTxn(cluster, tid)
    p.begin()
    doomed = write(p, "doomed")
    assert all(end_offsets(cluster, True)[tp] < hw
               for tp, hw in end_offsets(cluster, False).items())
    cluster.nodes[old].kill()
    p.close()
    heir = CkTxn(cluster, tid)
    until("the last stable offset at the high watermark",
          lambda: end_offsets(cluster, True) == end_offsets(cluster, False))
    assert describe(cluster, tid).transaction_state in ("Empty", "CompleteAbort")
    seen = read_confluent(cluster, committed=True)
    assert not set(doomed) & set(seen)
    heir.begin()
    after = write(heir, "heir")
    heir.commit()
    heir.close()
    until("the heir's records", lambda: set(after) <= set(read_confluent(cluster, True)))
    # The module's last test: the killed node stays down.
