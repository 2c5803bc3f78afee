"""The fault suite's disk nemeses against real nodes (jepsen-style/disks.py): each broker's
second log dir is a loop-mounted ext4 image; ``disk-eio`` shuts that filesystem down (every
I/O returns EIO) and ``disk-full`` fills it. The broker takes the dir offline
(DescribeLogDirs through kafka-python says KAFKA_STORAGE_ERROR) and keeps serving; writes
acknowledged through confluent-kafka with acks=all all survive; the heal (stop the node, repair
the disk, start it) brings the dir back and the ISR to full."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ck = pytest.importorskip("confluent_kafka")
kafka_admin = pytest.importorskip("kafka.admin")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from cluster import Cluster, netns_available
from disks import disks_available
from history import History
from nemesis import Fault, Nemesis
from workload import WorkloadConfig, create_topic, wait_healthy

from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.skipif(
    not netns_available() or disks_available() is not None,
    reason="needs root, `ip netns` and loop-mounted ext4 disks")

TOPIC = "disks"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("jepsen-disks"), n=3, fault_disk_mb=64,
                extra={"min.insync.replicas": "2"}, seed=5)
    with c:
        yield c
        # Nothing after the tests looks at how the nodes stop: no clean stop to wait for.
        for node in c.nodes.values():
            node.kill()


def _dir_errors(c: Cluster, broker: int) -> dict[str, int]:
    ka = kafka_admin.KafkaAdminClient(bootstrap_servers=c.bootstrap_servers,
                                      request_timeout_ms=20000)
    try:
        (answer,) = ka.describe_log_dirs(brokers=[broker])
    finally:
        ka.close()
    return {d["log_dir"]: d["error_code"] for d in answer["log_dirs"]}


def _send(cfg: WorkloadConfig, values: range) -> None:
    p = ck.Producer({"bootstrap.servers": cfg.bootstrap, "acks": "all", "log_level": 0,
                     "enable.idempotence": True, "message.timeout.ms": 60000})
    failed: list[object] = []
    for v in values:
        p.produce(TOPIC, str(v).encode(), partition=v % cfg.partitions,
                  on_delivery=lambda err, _m: err is not None and failed.append(err))
        p.poll(0)
    assert p.flush(90) == 0 and not failed, failed


def _read_all(cfg: WorkloadConfig, want: set[int]) -> set[int]:
    c = ck.Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "disks-check",
                     "enable.auto.commit": False, "log_level": 0})
    c.assign([ck.TopicPartition(TOPIC, p, ck.OFFSET_BEGINNING) for p in range(cfg.partitions)])
    got: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while not want <= got and time.monotonic() < deadline:
            got |= {int(m.value()) for m in c.consume(500, 1.0) if m.error() is None}
    finally:
        c.close()
    return got


# disk-full is the same path with ENOSPC (and takes another 16 s): in the slow run only.
@pytest.mark.parametrize("kind", ["disk-eio", pytest.param("disk-full", marks=pytest.mark.slow)])
def test_a_failing_disk_takes_its_dir_offline_and_loses_nothing(cluster: Cluster,
                                                                kind: str) -> None:
    c = cluster
    cfg = WorkloadConfig(bootstrap=c.bootstrap_servers, topic=TOPIC, partitions=4)
    create_topic(cfg)  # (already there for the second case)
    assert wait_healthy(cfg, timeout=60)
    base = 0 if kind == "disk-eio" else 1000
    _send(cfg, range(base, base + 200))
    nemesis = Nemesis(c, History(), cfg)
    nemesis.start(Fault(0.0, 1.0, kind, "broker", pick=3 if kind == "disk-eio" else 4))
    (node,) = nemesis.affected
    disk = c.disks[node]
    # The next writes reach the dir (a follower's append or a leader's): it goes offline.
    _send(cfg, range(base + 200, base + 400))
    deadline = time.monotonic() + 60
    errors: dict[str, int] = {}
    while time.monotonic() < deadline:
        errors = _dir_errors(c, node)
        if errors.get(os.path.abspath(disk.mount)) == ErrorCode.KAFKA_STORAGE_ERROR:
            break
        _send(cfg, range(base + 400, base + 410))
        time.sleep(0.5)
    assert errors[os.path.abspath(disk.mount)] == ErrorCode.KAFKA_STORAGE_ERROR, errors
    assert errors[os.path.abspath(c.nodes[node].data_dir)] == 0, errors
    nemesis.heal()
    assert disk.state == "ok"
    assert wait_healthy(cfg, timeout=90), "the ISR did not fill up again after the heal"
    assert _dir_errors(c, node)[os.path.abspath(disk.mount)] == 0
    acked = set(range(base, base + 400))
    assert acked <= _read_all(cfg, acked)
