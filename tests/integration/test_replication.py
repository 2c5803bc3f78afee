"""Replication across 3 brokers (real processes): RF 3, min.insync.replicas=2.

1. Divergence: the followers are paused (SIGSTOP) while the leader takes acks=1 records they
   never fetch, then the leader is killed (-9). A follower becomes leader; the old leader comes
   back, truncates its unreplicated tail with OffsetsForLeaderEpoch (KIP-101), catches up and
   rejoins the ISR.
2. Failover under acks=all: confluent-kafka produces with retries; the leader is killed -9
   halfway; the producer carries on against the new leader. Every acknowledged record is
   present exactly once and in order, the lost acks=1 records are nowhere, and once everyone
   has caught up the three replicas hold byte-identical logs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import metadata, produce
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.records import SimpleRecord, build_batch
from tests.integration.test_data_path import send
from tests.integration.test_kraft_cluster import create_topic
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")

TOPIC = "replicated"
BROKERS = [2, 3, 4]
LAG_MS = 2000  # replica.lag.time.max.ms: ISR shrink well within the 4 s broker session


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path, controllers=1, brokers=3, extra={
        "min.insync.replicas": "2", "replica.lag.time.max.ms": str(LAG_MS)})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def partition_state(c: ProcCluster) -> Any | None:
    for b in BROKERS:
        if not c.nodes[b].alive():
            continue
        try:
            md = send(c.nodes[b].bootstrap, ApiKey.METADATA, metadata.REQUEST.cls(
                topics=[metadata.REQUEST.MetadataRequestTopic(name=TOPIC)]))
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            continue  # a broker that is going down: ask the next
        t = md.topics[0]
        if t.error_code == 0 and t.partitions:
            return t.partitions[0]
    return None


def wait_until(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def wait_leader(c: ProcCluster, *, not_id: int | None = None, isr: int = 1) -> Any:
    return wait_until(lambda: (p := partition_state(c)) and p.leader_id in BROKERS
                      and p.leader_id != not_id and c.nodes[p.leader_id].alive()
                      and len(p.isr_nodes) >= isr and p, 30,
                      f"a leader other than {not_id} with ISR >= {isr}")


def produce_acks1(c: ProcCluster, leader: int, values: list[bytes]) -> None:
    R = produce.REQUEST
    for v in values:
        req = R.cls(acks=1, timeout_ms=5000, topic_data=[R.TopicProduceData(
            name=TOPIC, partition_data=[R.PartitionProduceData(
                index=0, records=build_batch([SimpleRecord(v)]))])])
        r = send(c.nodes[leader].bootstrap, ApiKey.PRODUCE, req)
        assert r.responses[0].partition_responses[0].error_code == 0


def consume_all(c: ProcCluster, expected: int) -> list[bytes]:
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "check",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(TOPIC, 0, ck.OFFSET_BEGINNING)])
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    idle = 0
    while time.monotonic() < deadline and (len(got) < expected or idle < 2):
        msgs = consumer.consume(num_messages=1000, timeout=0.5)
        idle = 0 if msgs else idle + 1
        for m in msgs:
            if m.error() is None:
                got.append(m.value())
    consumer.close()
    return got


def test_failover_keeps_acknowledged_records_and_truncates_divergence(
        cluster: ProcCluster) -> None:
    c = cluster
    assert create_topic(c, TOPIC, partitions=1, rf=3).error_code == 0
    first = wait_leader(c, isr=3)
    leader = first.leader_id
    followers = [b for b in BROKERS if b != leader]

    # -- 0. a stalled follower leaves the ISR after replica.lag.time.max.ms, and rejoins ---
    stalled = followers[0]
    os.kill(c.nodes[stalled].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        # An idle follower at the log end stays in sync (as in Kafka): give it something
        # to fall behind on.
        produce_acks1(c, leader, [b"committed-before-pause"])
        c.nodes[leader].wait_for("Shrinking ISR of replicated-0", timeout=LAG_MS / 1000 + 2)
        wait_until(lambda: stalled not in partition_state(c).isr_nodes, 5, "ISR shrink")
    finally:
        os.kill(c.nodes[stalled].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    c.nodes[leader].wait_for("Expanding ISR of replicated-0", timeout=10)

    # -- 1. divergence: the leader appends records its followers never fetch --------------
    wait_until(lambda: len(partition_state(c).isr_nodes) == 3, 10, "ISR of 3")
    time.sleep(0.5)  # let followers fetch it
    for f in followers:
        os.kill(c.nodes[f].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    time.sleep(0.8)  # the followers' pending long polls are answered (empty) and buffered
    lost = [b"lost-%d" % i for i in range(5)]
    produce_acks1(c, leader, lost)
    c.nodes[leader].kill()
    for f in followers:
        os.kill(c.nodes[f].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    second = wait_leader(c, not_id=leader)
    assert second.leader_epoch > first.leader_epoch
    c.start([leader])  # the old leader is now a follower with a divergent tail
    c.nodes[leader].wait_for("Truncating replicated-0", timeout=30)
    wait_until(lambda: (p := partition_state(c)) and len(p.isr_nodes) == 3, 30,
               "the old leader back in the ISR")

    # -- 2. acks=all with retries; kill -9 the leader halfway ------------------------------
    acked: list[bytes] = []
    failed: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked.append(msg.value())
        else:
            failed.append(err)

    producer = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                            "retries": 1000, "retry.backoff.ms": 100,
                            "message.timeout.ms": 45000,
                            "max.in.flight.requests.per.connection": 1, "linger.ms": 2})
    values = [b"acked-%04d" % i for i in range(400)]
    killed = None
    for i, v in enumerate(values):
        producer.produce(TOPIC, value=v, partition=0, on_delivery=on_delivery)
        producer.poll(0)
        if i % 50 == 49:
            assert producer.flush(60) == 0
        if i == 199:
            killed = wait_leader(c).leader_id
            c.nodes[killed].kill()
    assert producer.flush(60) == 0
    assert not failed, failed
    assert acked == values
    third = partition_state(c)
    assert third is not None and third.leader_id != killed

    # The killed broker comes back and catches up; everyone agrees.
    assert killed is not None
    c.start([killed])
    wait_until(lambda: (p := partition_state(c)) and len(p.isr_nodes) == 3, 30,
               "all three replicas in the ISR")

    got = consume_all(c, 1 + len(values))
    assert got == [b"committed-before-pause", *values]
    assert not set(lost) & set(got)

    # Byte-identical replicas once everyone has caught up (clean stop of the brokers).
    time.sleep(1.0)
    for b in BROKERS:
        c.nodes[b].stop()
    logs = []
    for b in BROKERS:
        with PartitionLog.open(c.nodes[b].dir / "data" / f"{TOPIC}-0", LogConfig()) as log:
            logs.append(log.read_batches(log.log_start_offset))
    assert logs[0] and logs[0] == logs[1] == logs[2]
    for lost_value in lost:
        assert lost_value not in logs[0]


def produce_acks(c: ProcCluster, leader: int, values: list[bytes], acks: int) -> None:
    R = produce.REQUEST
    for v in values:
        req = R.cls(acks=acks, timeout_ms=10000, topic_data=[R.TopicProduceData(
            name=TOPIC, partition_data=[R.PartitionProduceData(
                index=0, records=build_batch([SimpleRecord(v)]))])])
        r = send(c.nodes[leader].bootstrap, ApiKey.PRODUCE, req)
        assert r.responses[0].partition_responses[0].error_code == 0, r


def pause(c: ProcCluster, ids: list[int], on: bool) -> None:
    for i in ids:
        os.kill(c.nodes[i].proc.pid, signal.SIGSTOP if on else signal.SIGCONT)  # type: ignore[union-attr]


def replica_logs(c: ProcCluster) -> list[list[Any]]:
    logs = []
    for b in BROKERS:
        with PartitionLog.open(c.nodes[b].dir / "data" / f"{TOPIC}-0", LogConfig()) as log:
            logs.append(log.read_batches(log.log_start_offset))
    return logs


def test_kip101_double_failover(cluster: ProcCluster) -> None:
    """KIP-101 / KIP-279: two leader changes in a row, each old leader with an unreplicated tail.

    A leads at epoch e0 and takes acks=1 records its followers never fetch (they are paused),
    then dies. B leads at e1, takes acks=all records (C has them) and then acks=1 records C
    never fetches, then dies. C leads at e2. When A and B come back, A (last epoch e0, which C
    knows ends where e1 starts) and B (last epoch e1) must each truncate their own tail by asking
    the leader where their last epoch ends, not by trusting their high watermark: afterwards all
    three logs are byte-identical and hold exactly the acks=all records."""
    c = cluster
    assert create_topic(c, TOPIC, partitions=1, rf=3).error_code == 0
    e0 = wait_leader(c, isr=3)
    a = e0.leader_id
    base = [b"base-%d" % i for i in range(20)]
    produce_acks(c, a, base, acks=-1)
    time.sleep(0.5)  # the followers' next fetch carries the HW
    others = [b for b in BROKERS if b != a]
    pause(c, others, True)
    time.sleep(0.8)  # pending long polls answered (empty) while the followers are stopped
    tail_a = [b"tail-a-%d" % i for i in range(5)]
    produce_acks(c, a, tail_a, acks=1)
    c.nodes[a].kill()
    pause(c, others, False)

    e1 = wait_leader(c, not_id=a, isr=2)
    assert e1.leader_epoch > e0.leader_epoch
    b = e1.leader_id
    (c3,) = [x for x in others if x != b]
    middle = [b"middle-%d" % i for i in range(10)]
    produce_acks(c, b, middle, acks=-1)  # min.insync.replicas=2: C has them all
    time.sleep(0.5)
    pause(c, [c3], True)
    time.sleep(0.8)
    tail_b = [b"tail-b-%d" % i for i in range(5)]
    produce_acks(c, b, tail_b, acks=1)
    c.nodes[b].kill()
    pause(c, [c3], False)

    e2 = wait_leader(c, not_id=b)
    assert e2.leader_id == c3 and e2.leader_epoch > e1.leader_epoch
    c.start([a, b])
    c.nodes[a].wait_for("Truncating replicated-0", timeout=30)
    c.nodes[b].wait_for("Truncating replicated-0", timeout=30)
    wait_until(lambda: (p := partition_state(c)) and len(p.isr_nodes) == 3, 30,
               "both old leaders back in the ISR")
    after = [b"after-%d" % i for i in range(5)]
    produce_acks(c, c3, after, acks=-1)

    expected = [*base, *middle, *after]
    assert consume_all(c, len(expected)) == expected
    time.sleep(1.0)
    for x in BROKERS:
        c.nodes[x].stop()
    logs = replica_logs(c)
    assert logs[0] and logs[0] == logs[1] == logs[2]
    for lost_value in [*tail_a, *tail_b]:
        assert lost_value not in logs[0]


def test_two_of_three_killed_then_restarted(cluster: ProcCluster) -> None:
    """RF 3, min.insync.replicas=2, an acks=all producer with retries: kill -9 two of the three
    brokers (the leader among them) while it writes, restart them; every acknowledged record is
    present exactly once and in order, and writes resume once two replicas are back."""
    c = cluster
    assert create_topic(c, TOPIC, partitions=1, rf=3).error_code == 0
    first = wait_leader(c, isr=3)
    acked: list[bytes] = []
    failed: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        (failed if err is not None else acked).append(err or msg.value())

    producer = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                            "enable.idempotence": True, "retry.backoff.ms": 100,
                            "message.timeout.ms": 90000, "linger.ms": 2})
    values = [b"v-%04d" % i for i in range(300)]
    victims = [first.leader_id, next(b for b in BROKERS if b != first.leader_id)]
    for i, v in enumerate(values):
        producer.produce(TOPIC, value=v, partition=0, on_delivery=on_delivery)
        producer.poll(0)
        if i % 50 == 49:
            producer.flush(1)
        if i == 99:
            assert producer.flush(60) == 0
            for victim in victims:
                c.nodes[victim].kill()
        if i == 149:
            # One replica left: below min.insync.replicas, so nothing more is acknowledged.
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                producer.poll(0.1)
            assert len(acked) == 100 and not failed
            c.start(victims, wait=False)
    assert producer.flush(90) == 0
    assert not failed, failed
    assert acked == values
    wait_until(lambda: (p := partition_state(c)) and len(p.isr_nodes) == 3, 30,
               "all three replicas back in the ISR")
    assert consume_all(c, len(values)) == values


def test_last_replica_standing_waits_for_the_last_isr_member(cluster: ProcCluster) -> None:
    """The "last replica standing" case, with unclean leader election off (the default).

    Two followers die; the leader shrinks the ISR to itself (acks=all is then refused with
    NOT_ENOUGH_REPLICAS under min.insync.replicas=2, acks=1 still works). Then the leader, the
    last ISR member, dies too. A stale follower that comes back is not in the ISR, so the
    controller leaves the partition without a leader rather than electing it and losing the
    records only the last leader has. When the last ISR member returns it leads again and
    nothing acknowledged is lost; the stale follower catches up from it."""
    c = cluster
    assert create_topic(c, TOPIC, partitions=1, rf=3).error_code == 0
    first = wait_leader(c, isr=3)
    leader = first.leader_id
    followers = [b for b in BROKERS if b != leader]
    committed = [b"c-%d" % i for i in range(10)]
    produce_acks(c, leader, committed, acks=-1)
    for f in followers:
        c.nodes[f].kill()
    wait_until(lambda: (p := partition_state(c)) and list(p.isr_nodes) == [leader], 30,
               "ISR shrunk to the leader")
    R = produce.REQUEST
    refused = send(c.nodes[leader].bootstrap, ApiKey.PRODUCE, R.cls(
        acks=-1, timeout_ms=5000, topic_data=[R.TopicProduceData(
            name=TOPIC, partition_data=[R.PartitionProduceData(
                index=0, records=build_batch([SimpleRecord(b"refused")]))])]))
    assert refused.responses[0].partition_responses[0].error_code == \
        ErrorCode.NOT_ENOUGH_REPLICAS
    alone = [b"alone-%d" % i for i in range(5)]
    produce_acks(c, leader, alone, acks=1)  # acknowledged by the last ISR member only
    c.nodes[leader].kill()
    c.start([followers[0]])
    # The stale replica is back but not in the ISR: no leader (unclean election is off).
    time.sleep(6.0)  # longer than the broker session timeout (4 s)
    p = wait_until(lambda: partition_state(c), 10, "metadata from the stale follower")
    assert p.leader_id == -1
    assert list(p.isr_nodes) == [leader]
    c.start([leader])
    back = wait_leader(c, isr=2)
    assert back.leader_id == leader
    c.start([followers[1]])
    wait_until(lambda: (p := partition_state(c)) and len(p.isr_nodes) == 3, 30,
               "all three replicas back in the ISR")
    assert consume_all(c, 15) == [*committed, *alone]
