"""DescribeLogDirs without a network: its schema round trips at every version, the answer over
a real ``LogManager`` in temporary directories (sizes, offset lag, the topic filter, an offline
directory), and ``kafka-log-dirs``' JSON."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_log_dirs as dld
from broker.replication.log_dirs import describe_log_dirs, wanted_partitions
from broker.replication.partition import Partition, PartitionState
from storage.log_manager import LogManager
from storage.producer_state import ProducerStateManager
from tests.helpers_batches import make_batch
from tools.log_dirs import log_dirs_json

# -- schemas -----------------------------------------------------------------------------------


def _log_dirs_response(version: int) -> Any:
    R = dld.RESPONSE
    return R.cls(throttle_time_ms=3, error_code=0 if version < 3 else 56, results=[
        R.DescribeLogDirsResult(error_code=0, log_dir="/data/a", topics=[
            R.DescribeLogDirsTopic(name="t", partitions=[
                R.DescribeLogDirsPartition(partition_index=1, partition_size=1 << 40,
                                           offset_lag=0, is_future_key=False)])],
            total_bytes=-1 if version < 4 else 10 << 30,
            usable_bytes=-1 if version < 4 else 3 << 30),
        R.DescribeLogDirsResult(error_code=56, log_dir="/data/b")])


@pytest.mark.parametrize("version", range(5))
def test_describe_log_dirs_schema_round_trips(version: int) -> None:
    Q = dld.REQUEST
    for req in (Q.cls(topics=None), Q.cls(topics=[
            Q.DescribableLogDirTopic(topic="t", partitions=[0, 2])])):
        data = Q.encode(req, version)
        assert Q.decode(data, version) == (req, len(data))
    resp = _log_dirs_response(version)
    data = dld.RESPONSE.encode(resp, version)
    assert dld.RESPONSE.decode(data, version) == (resp, len(data))


def test_describe_log_dirs_versions_differ_where_kafka_says() -> None:
    Q, R = dld.REQUEST, dld.RESPONSE
    req = Q.cls(topics=None)
    assert Q.encode(req, 0) == Q.encode(req, 1) == b"\xff\xff\xff\xff"  # null array
    assert Q.encode(req, 2) == Q.encode(req, 3) == Q.encode(req, 4) == b"\x00\x00"  # compact
    v4 = _log_dirs_response(4)
    # v3 has the top-level error code, v4 the volume sizes: each decodes with them.
    assert R.decode(R.encode(v4, 4), 4)[0].results[0].total_bytes == 10 << 30
    assert R.decode(R.encode(v4, 3), 3)[0].results[0].total_bytes == -1
    assert R.decode(R.encode(v4, 3), 3)[0].error_code == 56
    assert R.decode(R.encode(v4, 2), 2)[0].error_code == 0
    assert R.encode(_log_dirs_response(0), 0) == R.encode(_log_dirs_response(0), 1)


# -- DescribeLogDirs over a real LogManager ---------------------------------------------------


def _statvfs(path: str) -> Any:
    return SimpleNamespace(f_blocks=100, f_bavail=40, f_frsize=4096)


def _hosted(manager: LogManager, tp: tuple[str, int], hw: int) -> Partition:
    log = manager.get_log(*tp)
    assert log is not None
    state = PartitionState(local_id=1)
    state.high_watermark = hw
    return Partition(tp[0], tp[1], uuid.uuid4(), log, state, ProducerStateManager(log.dir))


def _by_dir(results: list[Any]) -> dict[str, dict[tuple[str, int], Any]]:
    return {r.log_dir: {(t.name, p.partition_index): p for t in r.topics for p in t.partitions}
            for r in results}


def test_describe_log_dirs_reports_each_dir_and_its_partitions(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager.open(dirs)
    for p in range(3):
        manager.get_or_create_log("t", p)
    manager.get_or_create_log("u", 0)
    manager.get_log("t", 0).append(make_batch([100] * 5))  # type: ignore[union-attr]
    hosted = {("t", 0): _hosted(manager, ("t", 0), 5), ("t", 1): _hosted(manager, ("t", 1), 0)}

    results = describe_log_dirs(manager, hosted, None, statvfs=_statvfs)
    assert [r.log_dir for r in results] == [os.path.abspath(d) for d in dirs]
    assert all(r.error_code == 0 for r in results)
    assert all((r.total_bytes, r.usable_bytes) == (409600, 163840) for r in results)
    seen = _by_dir(results)
    everything = {tp: p for parts in seen.values() for tp, p in parts.items()}
    assert set(everything) == {("t", 0), ("t", 1), ("t", 2), ("u", 0)}
    for tp, p in everything.items():
        log = manager.get_log(*tp)
        assert log is not None
        assert str(manager.log_dir_of(*tp)) == next(d for d, ps in seen.items() if tp in ps)
        assert p.partition_size == log.size_bytes and not p.is_future_key
    assert everything[("t", 0)].partition_size > 500
    assert everything[("t", 2)].partition_size == 0
    # Hosted replicas are current: no lag. Logs no partition owns (yet) have none to report.
    assert everything[("t", 0)].offset_lag == 0 and everything[("t", 1)].offset_lag == 0
    assert everything[("t", 2)].offset_lag == -1

    only = describe_log_dirs(manager, hosted, wanted_partitions([
        SimpleNamespace(topic="t", partitions=[1, 9]),
        SimpleNamespace(topic="nope", partitions=[0])]), statvfs=_statvfs)
    assert len(only) == 2
    assert {tp for parts in _by_dir(only).values() for tp in parts} == {("t", 1)}
    manager.shutdown()


def test_an_offline_log_dir_is_a_storage_error(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    manager = LogManager.open([good, bad])
    manager.get_or_create_log("t", 0)
    manager.get_or_create_log("t", 1)
    manager.shutdown()
    for f in next(p for p in bad.iterdir() if p.is_dir()).glob("*.log"):
        f.unlink()
        f.mkdir()  # an I/O error when the log is opened: the directory goes offline
    manager = LogManager.open([good, bad])
    results = {r.log_dir: r for r in describe_log_dirs(manager, {}, None, statvfs=_statvfs)}
    assert results[str(bad)].error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert results[str(bad)].topics == []
    assert results[str(good)].error_code == 0
    assert len(results[str(good)].topics[0].partitions) == 1


# -- kafka-log-dirs' JSON ----------------------------------------------------------------------


def test_log_dirs_json_shape() -> None:
    R = dld.RESPONSE
    answers = {2: [R.DescribeLogDirsResult(error_code=0, log_dir="/d", topics=[
        R.DescribeLogDirsTopic(name="t", partitions=[R.DescribeLogDirsPartition(
            partition_index=0, partition_size=12, offset_lag=0, is_future_key=False)]),
        R.DescribeLogDirsTopic(name="u", partitions=[R.DescribeLogDirsPartition(
            partition_index=1, partition_size=3, offset_lag=0, is_future_key=False)])]),
        R.DescribeLogDirsResult(error_code=56, log_dir="/e")]}
    data = json.loads(log_dirs_json(answers, {"t"}))
    assert data == {"brokers": [{"broker": 2, "logDirs": [
        {"partitions": [{"partition": "t-0", "size": 12, "offsetLag": 0, "isFuture": False}],
         "error": None, "logDir": "/d"},
        {"partitions": [], "error": "org.apache.kafka.common.errors.KafkaStorageException",
         "logDir": "/e"}]}], "version": 1}
    assert len(json.loads(log_dirs_json(answers, set()))["brokers"][0]["logDirs"][0][
        "partitions"]) == 2
