"""Housekeeping on a real broker: idle producer ids expire after producer.id.expiration.ms;
producer snapshots below the first remaining segment are deleted once retention removed the
segments they belonged to; topic configs and dynamic broker defaults changed at run time
(IncrementalAlterConfigs) apply to the logs already hosted, without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import incremental_alter_configs
from storage.producer_snapshot import snapshot_file_name
from tests.integration.test_data_path import _pid_batch, create_topic, produce_raw, send
from tools.proc_cluster import ProcCluster

EXPIRATION_MS = 1500
CHECK_MS = 300
TOPIC_RESOURCE, BROKER_RESOURCE, SET = 2, 4, 0


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
        c.shutdown()


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


def _first_segment(part: Path) -> int:
    return min(int(p.name.split(".")[0]) for p in part.glob("*.log"))


def _alter(c: ProcCluster, rtype: int, name: str, key: str, value: str) -> None:
    R = incremental_alter_configs.REQUEST
    resp = send(c.nodes[1].bootstrap, ApiKey.INCREMENTAL_ALTER_CONFIGS, R.cls(
        resources=[R.AlterConfigsResource(resource_type=rtype, resource_name=name, configs=[
            R.AlterableConfig(name=key, config_operation=SET, value=value)])],
        validate_only=False))
    assert resp.responses[0].error_code == 0, resp


def _fill_and_wait_for_retention(c: ProcCluster, topic: str, alter: object) -> None:
    for _ in range(30):
        assert produce_raw(c, topic, 0, _pid_batch(-1, -1, -1, b"y" * 300)).error_code == 0
    part = Path(c.nodes[1].dir) / "data" / f"{topic}-0"
    time.sleep(3 * CHECK_MS / 1000)
    assert _first_segment(part) == 0  # no retention limit yet: nothing deleted
    alter()  # type: ignore[operator]
    deadline = time.monotonic() + 15
    while _first_segment(part) == 0:
        assert time.monotonic() < deadline, "the changed retention was not applied"
        time.sleep(0.2)


def test_changed_topic_config_applies_to_the_hosted_log(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "altered", configs={"segment.bytes": "1024"})
    _fill_and_wait_for_retention(c, "altered", lambda: _alter(
        c, TOPIC_RESOURCE, "altered", "retention.bytes", "2048"))


def test_dynamic_broker_default_applies_to_hosted_logs(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "defaulted", configs={"segment.bytes": "1024"})
    try:
        _fill_and_wait_for_retention(c, "defaulted", lambda: _alter(
            c, BROKER_RESOURCE, "", "log.retention.bytes", "4096"))
    finally:
        _alter(c, BROKER_RESOURCE, "", "log.retention.bytes", "-1")
