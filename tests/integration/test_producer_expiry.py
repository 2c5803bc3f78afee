"""Producer state housekeeping on a real broker: idle producer ids expire after
producer.id.expiration.ms, and producer snapshots below the first remaining segment are deleted
once retention removed the segments they belonged to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.protocol.errors import ErrorCode
from storage.producer_state import snapshot_file_name
from tests.integration.test_data_path import _pid_batch, create_topic, produce_raw
from tools.proc_cluster import ProcCluster

EXPIRATION_MS = 1500
CHECK_MS = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("producer-expiry"), controllers=1, brokers=1,
                    combined=True, extra={
                        "producer.id.expiration.ms": str(EXPIRATION_MS),
                        "producer.id.expiration.check.interval.ms": str(CHECK_MS),
                        "log.retention.check.interval.ms": str(CHECK_MS)})
    c.start()
    try:
        yield c
    finally:
        c.stop_all()
        c.kill_all()


def test_idle_producer_id_expires(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "expiring")
    pid = 777
    assert produce_raw(c, "expiring", 0, _pid_batch(pid, 0, 0, b"a")).error_code == 0
    # Known producer: a sequence gap is refused.
    assert produce_raw(c, "expiring", 0, _pid_batch(pid, 0, 40, b"gap")).error_code == \
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    time.sleep((EXPIRATION_MS + 3 * CHECK_MS) / 1000)
    # Forgotten: like a producer whose data retention deleted, it may go on at any sequence.
    assert produce_raw(c, "expiring", 0, _pid_batch(pid, 0, 40, b"gap")).error_code == 0
    assert "expired 1 idle producer id(s)" in c.nodes[1].output()


def test_snapshots_below_the_first_segment_are_deleted(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "retained", configs={"segment.bytes": "1024", "retention.bytes": "2048"})
    pid = 888
    for seq in range(40):
        r = produce_raw(c, "retained", 0, _pid_batch(pid, 0, seq, b"x" * 300))
        assert r.error_code == 0
    part = Path(c.nodes[1].dir) / "data" / "retained-0"

    def state() -> tuple[int, list[int]]:
        first = min(int(p.name.split(".")[0]) for p in part.glob("*.log"))
        snaps = sorted(int(p.name.split(".")[0]) for p in part.glob("*.snapshot"))
        return first, snaps

    deadline = time.monotonic() + 15
    while True:
        first, snaps = state()
        if first > 0 and snaps and snaps[0] >= first:
            break
        assert time.monotonic() < deadline, (first, snaps)
        time.sleep(0.2)
    assert first > 0  # retention deleted segments
    assert (part / snapshot_file_name(first)).exists() or snaps[0] > first
    # The producer is still known (its last batches are in the remaining segments).
    assert produce_raw(c, "retained", 0, _pid_batch(pid, 0, 99, b"gap")).error_code == \
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
