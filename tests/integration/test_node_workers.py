"""One node with two worker processes (``node.worker.processes=2``, tools/node_workers.py),
through confluent-kafka: both workers are brokers of the node's rack, partitions are led by
both, records produced to every partition are consumed back; a ``kill -9`` of the node takes
its worker with it, a restart brings both back with their records, a clean stop stops the
worker first, and a worker dying alone is reported by the node."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.launcher import pid_alive
from tools.proc_cluster import ProcCluster, _port_free

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "spread"
PARTITIONS = 4
RECORDS = 400


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    root = tmp_path_factory.mktemp("node-workers")
    for attempt in range(20):
        offset = random.randrange(50, 2000)
        c = ProcCluster(root / f"try-{attempt}", controllers=1, combined=True,
                        extra={"node.worker.processes": "2",
                               "node.worker.port.offset": str(offset)})
        port = c.nodes[1].broker_port
        assert port is not None
        if port + offset < 65536 and _port_free(port + offset):
            break
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def brokers(c: ProcCluster, want: int, timeout: float = 60.0) -> dict[int, object]:
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    deadline = time.monotonic() + timeout
    found: dict[int, object] = {}
    while time.monotonic() < deadline:
        try:
            found = dict(admin.list_topics(timeout=10).brokers)
        except ck.KafkaException:
            found = {}
        if len(found) >= want:
            return found
        time.sleep(0.3)
    raise AssertionError(f"brokers {sorted(found)} after {timeout}s, wanted {want}")


def consume_all(bootstrap: str) -> dict[int, list[bytes]]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "workers-test",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got: dict[int, list[bytes]] = {}
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, got.values())) < RECORDS and time.monotonic() < deadline:
            for m in consumer.consume(500, 1.0):
                if m.error() is None:
                    got.setdefault(m.partition(), []).append(m.value())
    finally:
        consumer.close()
    return got


def test_both_workers_lead_partitions_and_serve_every_record(cluster: ProcCluster) -> None:
    found = brokers(cluster, 2)
    assert sorted(found) == [1, 1001]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    deadline = time.monotonic() + 30
    leaders: set[int] = set()
    while time.monotonic() < deadline:
        meta = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
        leaders = {p.leader for p in meta.partitions.values()}
        if len(meta.partitions) == PARTITIONS and -1 not in leaders:
            break
        time.sleep(0.3)
    assert leaders == {1, 1001}, "the controller spreads the partitions over both workers"

    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                            "linger.ms": 2})
    errors: list[object] = []
    for i in range(RECORDS):
        producer.produce(TOPIC, f"r{i}".encode(), partition=i % PARTITIONS,
                         on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors
    got = consume_all(cluster.bootstrap_servers)
    assert {p: len(v) for p, v in got.items()} == {p: RECORDS // PARTITIONS
                                                   for p in range(PARTITIONS)}
    assert got[1][:2] == [b"r1", b"r5"]


def _worker_pid(node_pid: int) -> int:
    children = Path(f"/proc/{node_pid}/task/{node_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_kill_takes_the_worker_along_and_a_restart_keeps_the_records(
        cluster: ProcCluster) -> None:
    node = cluster.nodes[1]
    assert node.proc is not None
    worker = _worker_pid(node.proc.pid)
    node.kill()
    deadline = time.monotonic() + 20
    while pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(worker), "the worker dies with its node"
    cluster.start()
    brokers(cluster, 2)
    got = consume_all(cluster.bootstrap_servers)
    assert sum(map(len, got.values())) == RECORDS


def test_a_clean_stop_stops_the_worker_first(cluster: ProcCluster) -> None:
    node = cluster.nodes[1]
    brokers(cluster, 2)
    assert node.proc is not None
    worker = _worker_pid(node.proc.pid)
    assert node.stop() == 0
    out = node.output()
    assert "[node.id=1001] Kafka Server shut down cleanly" in out
    assert out.index("Worker 1 exited with 0") < out.index(
        "[node.id=1] Kafka Server shut down cleanly")
    assert not pid_alive(worker)
    assert os.path.isdir(str(node.data_dir) + ".worker-1")


def test_a_worker_that_dies_alone_is_reported(cluster: ProcCluster) -> None:
    node = cluster.nodes[1]
    cluster.start()
    brokers(cluster, 2)
    assert node.proc is not None
    os.kill(_worker_pid(node.proc.pid), signal.SIGKILL)
    node.wait_for("Worker 1 (node.id=1001) exited with -9 while the node runs", timeout=30)
    assert node.alive()
