"""Fetch responses sent from the segment files (``broker/network/sendfile.py``), with real
clients on real processes: three nodes, RF 3, a partition holding a few MiB, so that consumer
fetches and the followers' fetches read regions of at least ``SENDFILE_MIN_BYTES`` and the
leader sends them with ``os.sendfile``. confluent-kafka, kcat and kafka-python read every record
back byte for byte, and the followers' segment files end up identical to the leader's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.network.sendfile import SENDFILE_MIN_BYTES
from tools.testing import TestCluster, cluster

TOPIC = "zero-copy"
COUNT = 4000
TIMEOUT_S = 90.0


def _value(i: int) -> bytes:
    # 1 KiB, different per record, every byte value: mangling or misplaced bytes show.
    seed = hashlib.sha256(b"%d" % i).digest()
    return (seed * 32)[: 1024 - 8] + b"%08d" % i


@pytest.fixture(scope="module")
def rf3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    with cluster(3, root=tmp_path_factory.mktemp("zero-copy")) as c:
        c.create_topic(TOPIC, partitions=1, replication_factor=3)
        import confluent_kafka as ck

        p = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                         "linger.ms": 20, "batch.size": 262144, "compression.type": "none"})
        errors: list[object] = []
        for i in range(COUNT):
            p.produce(TOPIC, _value(i), key=b"%d" % i,
                      on_delivery=lambda e, _m: errors.append(e) if e else None)
            p.poll(0)
        assert p.flush(60) == 0
        assert not errors
        yield c


def _segment_bytes(root: Path) -> dict[str, bytes]:
    """Node directory -> the partition's .log bytes (all segments, in order)."""
    out = {}
    for part in sorted(root.glob(f"**/{TOPIC}-0")):
        out[str(part)] = b"".join(f.read_bytes() for f in sorted(part.glob("*.log")))
    return out


def test_consumers_read_every_record_back(rf3: TestCluster) -> None:
    import confluent_kafka as ck

    assert COUNT * 1024 > 4 * SENDFILE_MIN_BYTES  # fetches of whole regions happen
    c = ck.Consumer({"bootstrap.servers": rf3.bootstrap_servers, "group.id": "zc",
                     "enable.auto.commit": False, "fetch.max.bytes": 8 << 20,
                     "max.partition.fetch.bytes": 4 << 20})
    c.assign([ck.TopicPartition(TOPIC, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < COUNT and time.monotonic() < deadline:
        for m in c.consume(1000, 1.0):
            assert m.error() is None, m.error()
            assert m.key() == b"%d" % len(got)
            got.append(m.value())
    c.close()
    assert got == [_value(i) for i in range(COUNT)]

    from kafka import KafkaConsumer, TopicPartition

    kc = KafkaConsumer(bootstrap_servers=rf3.bootstrap_servers, enable_auto_commit=False,
                       max_partition_fetch_bytes=4 << 20, fetch_max_bytes=8 << 20,
                       consumer_timeout_ms=10_000)
    tp = TopicPartition(TOPIC, 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    values = []
    for m in kc:
        values.append(m.value)
        if len(values) == COUNT:
            break
    kc.close()
    assert values == [_value(i) for i in range(COUNT)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_reads_every_record_back(rf3: TestCluster) -> None:
    r = subprocess.run(["kcat", "-C", "-b", rf3.bootstrap_servers, "-t", TOPIC, "-p", "0",
                        "-o", "beginning", "-c", str(COUNT), "-e", "-q", "-f", "%s\n",
                        "-X", "max.partition.fetch.bytes=4194304"],
                       capture_output=True, timeout=TIMEOUT_S, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    # kcat prints the values as they are (binary), each followed by a newline.
    assert r.stdout == b"".join(_value(i) + b"\n" for i in range(COUNT))


def test_followers_hold_the_same_bytes(rf3: TestCluster) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        logs = _segment_bytes(rf3.data_dir)
        assert len(logs) == 3, sorted(logs)
        sizes = {len(b) for b in logs.values()}
        if len(set(logs.values())) == 1 and sizes.pop() >= COUNT * 1024:
            return
        assert time.monotonic() < deadline, {k: len(v) for k, v in logs.items()}
        time.sleep(0.2)
