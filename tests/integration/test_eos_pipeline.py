"""examples/eos_pipeline.py as a subprocess on a 3-node cluster (RF 3, min.insync.replicas 2):
killed with -9 halfway through its input and restarted, it leaves every input record
transformed exactly once in the output as read_committed sees it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.proc_cluster import REPO, ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic

N = 300
IN, OUT = "eos-in", "eos-out"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(Path(tmp_path_factory.mktemp("eos")), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2",
                           "transaction.state.log.replication.factor": "3",
                           "transaction.state.log.min.isr": "2",
                           "transaction.state.log.num.partitions": "3",
                           "offsets.topic.replication.factor": "3",
                           "offsets.topic.num.partitions": "3"})
    c.start()
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
        for f in admin.create_topics([NewTopic(IN, 3, 3), NewTopic(OUT, 3, 3)]).values():
            f.result(30)
        yield c
    finally:
        c.shutdown()


def pipeline(c: ProcCluster, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "eos_pipeline.py"), "--bootstrap-server",
         c.bootstrap_servers, "--input", IN, "--output", OUT, "--group", "eos",
         "--transactional-id", "eos-1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_output(c: ProcCluster, committed: bool = True) -> list[str]:
    """The output topic read_committed (up to its last stable offsets) or read_uncommitted."""
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "reader",
                            "enable.partition.eof": True, "enable.auto.commit": False,
                            "isolation.level": "read_committed" if committed
                            else "read_uncommitted"})
    consumer.assign([ck.TopicPartition(OUT, p, ck.OFFSET_BEGINNING) for p in range(3)])
    out: list[str] = []
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(eof) < 3:
            assert time.monotonic() < deadline, f"output read stuck at {eof}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == ck.KafkaError._PARTITION_EOF, m.error()
                eof.add(m.partition())
            else:
                out.append(m.value().decode())
    finally:
        consumer.close()
    return out


def test_killed_halfway_and_restarted_transforms_each_record_once(cluster: ProcCluster
                                                                  ) -> None:
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(N):
        p.produce(IN, key=b"k%d" % i, value=b"record-%d" % i, partition=i % 3)
    assert p.flush(30) == 0
    want = sorted(f"RECORD-{i}" for i in range(N))

    # Batches of 50 that each stay open a second: three of six committed, then kill -9 inside
    # the fourth, its records written.
    first = pipeline(cluster, "--batch", "50", "--work-ms", "1000")
    try:
        assert first.stdout is not None
        for _ in range(3):
            line = first.stdout.readline()
            assert line.startswith("committed batch"), (line, first.stderr and
                                                        first.stderr.read())
        time.sleep(0.4)
    finally:
        first.kill()
        first.wait(10)
    halfway = read_output(cluster)
    assert len(halfway) == 150 and len(set(halfway)) == len(halfway)
    assert len(read_output(cluster, committed=False)) > len(halfway)  # the open transaction

    second = pipeline(cluster, "--batch", "10", "--idle-exit-s", "3")
    try:
        _, err = second.communicate(timeout=120)
    finally:
        second.kill()
    assert second.returncode == 0, err
    got = read_output(cluster)
    assert [v for v, n in Counter(got).items() if n > 1] == []
    assert sorted(got) == want
