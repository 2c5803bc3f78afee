"""Under ``flush.messages=1`` an acknowledged record has been fsynced: on the leader before
acks=1 is answered, on an in-sync follower before its fetch reports the offset (so before
acks=all is answered). The fsyncs run as a group commit off the event loop
(storage/log_flush.py ``flush_wait``); here they are made slow on purpose.

Real processes (1 controller + 2 brokers) with the fsync journal (storage/fsync_journal.py)
and a planted slow disk for one partition directory per broker (``PYKRAFT_FSYNC_DELAY``):
every fsync of that partition's files sleeps ``DELAY_S`` first. A real client
(confluent-kafka) must then wait at least that long for its acknowledgement; and right after
the acknowledgement the broker is killed -9 and loses every write it had not fsynced
(``lose_unsynced``): the acknowledged records must all still be in its log. An ack sent before
its fsync fails both checks (the kill lands while the fsync still sleeps).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from storage import fsync_journal
from storage.log import PartitionLog
from storage.record_batch import iter_batches
from storage.records import decode_batch
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka_admin = pytest.importorskip("kafka.admin")
KafkaAdminClient, NewTopic = kafka_admin.KafkaAdminClient, kafka_admin.NewTopic

DELAY_S = 1.5
LEADER_TOPIC = "durable-leader"  # RF 1 on broker 2, acks=1
FOLLOWER_TOPIC = "durable-follower"  # leader 2, follower 3, acks=all
SLOW_MS = "60000"  # ISR shrink and broker session: not within the test


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("flush-group-commit"), controllers=1, brokers=2,
                    extra={"replica.lag.time.max.ms": SLOW_MS,
                           "broker.session.timeout.ms": SLOW_MS})
    # Broker 2's fsyncs of the leader-only partition, broker 3's of the replicated one (where
    # it is the follower) are slow.
    for node_id, topic in ((2, LEADER_TOPIC), (3, FOLLOWER_TOPIC)):
        node = c.nodes[node_id]
        journal = node.dir / "fsync.journal"
        node.env_overrides[fsync_journal.ENV_VAR] = str(journal)
        node.env_overrides[fsync_journal.DELAY_ENV_VAR] = f"{DELAY_S}:/{topic}-0/"
        fsync_journal.baseline(journal, [node.data_dir])
    c.start()
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap_servers)
    try:
        admin.create_topics([
            NewTopic(LEADER_TOPIC, -1, -1, replica_assignments={0: [2]},
                     topic_configs={"flush.messages": "1"}),
            NewTopic(FOLLOWER_TOPIC, -1, -1, replica_assignments={0: [2, 3]},
                     topic_configs={"flush.messages": "1", "min.insync.replicas": "2"}),
        ], timeout_ms=30000)
    finally:
        admin.close()
    try:
        yield c
    finally:
        c.shutdown()


def _producer(c: ProcCluster, acks: str) -> ck.Producer:
    return ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": acks,
                        "linger.ms": 0, "enable.idempotence": False, "retries": 0,
                        "message.timeout.ms": 60000, "log_level": 0})


def _send(producer: ck.Producer, topic: str, values: list[int]) -> list[int]:
    """Produce ``values``; return the acknowledged ones once every delivery is reported."""
    acked: list[int] = []

    def done(err: object, msg: ck.Message) -> None:
        if err is None:
            acked.append(int(msg.value()))

    for v in values:
        producer.produce(topic, value=str(v).encode(), partition=0, on_delivery=done)
    assert producer.flush(90) == 0, "deliveries still pending"
    return acked


def _first_ack_waits_for_the_slow_fsync(producer: ck.Producer, topic: str) -> None:
    start = time.monotonic()
    assert _send(producer, topic, [0]) == [0]
    elapsed = time.monotonic() - start
    assert elapsed >= DELAY_S * 0.9, f"acknowledged after {elapsed:.2f}s, before its fsync"


def _values_on_disk(c: ProcCluster, node_id: int, topic: str) -> list[int]:
    """Kill -9, lose every unsynced write, and read the partition's log as recovery finds it."""
    node = c.nodes[node_id]
    node.kill()
    fsync_journal.lose_unsynced(node.dir / "fsync.journal", [node.data_dir])
    with PartitionLog.open(node.data_dir / f"{topic}-0") as log:
        data = log.read_batches(log.log_start_offset)
    return [int(r.value) for pos, _ in iter_batches(data) for r in decode_batch(data, pos)[1]]


def test_follower_fsyncs_before_its_fetch_acknowledges_acks_all(cluster: ProcCluster) -> None:
    producer = _producer(cluster, "all")
    _first_ack_waits_for_the_slow_fsync(producer, FOLLOWER_TOPIC)
    acked = _send(producer, FOLLOWER_TOPIC, list(range(1, 21)))
    assert acked, "nothing acknowledged"
    on_disk = _values_on_disk(cluster, 3, FOLLOWER_TOPIC)  # the follower
    missing = {0, *acked} - set(on_disk)
    assert not missing, f"acknowledged records lost by the follower: {sorted(missing)}"


def test_leader_fsyncs_before_acks_1_and_acknowledged_records_survive_power_loss(
        cluster: ProcCluster) -> None:
    producer = _producer(cluster, "1")
    _first_ack_waits_for_the_slow_fsync(producer, LEADER_TOPIC)
    acked = _send(producer, LEADER_TOPIC, list(range(1, 21)))
    assert acked == list(range(1, 21))
    on_disk = _values_on_disk(cluster, 2, LEADER_TOPIC)
    missing = {0, *acked} - set(on_disk)
    assert not missing, f"acknowledged records lost: {sorted(missing)}"
