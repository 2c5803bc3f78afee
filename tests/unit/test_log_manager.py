"""LogManager: loading, recovery after unclean shutdown, checkpoints, placement, offline dirs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from storage.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_OFFSET_CHECKPOINT,
    OffsetCheckpointFile,
)
from storage.log_config import LogConfig
from storage.log_manager import CLEAN_SHUTDOWN_FILE, LogManager, parse_partition_dir
from tests.helpers_batches import make_batch


def _contents(manager: LogManager, topic: str, partition: int) -> bytes:
    partition_log = manager.get_log(topic, partition)
    assert partition_log is not None
    return partition_log.read_batches(partition_log.log_start_offset)


def test_parse_partition_dir() -> None:
    assert parse_partition_dir("orders-3") == ("orders", 3)
    assert parse_partition_dir("my-topic-12") == ("my-topic", 12)
    assert parse_partition_dir("orders") is None
    assert parse_partition_dir("orders-x") is None
    assert parse_partition_dir("bad topic-1") is None


def test_clean_shutdown_round_trip(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager.open(dirs)
    for p in range(4):
        manager.get_or_create_log("orders", p).append(make_batch([10] * (p + 1)))
    placed = {manager.log_dir_of("orders", p) for p in range(4)}
    assert placed == set(dirs)  # spread over both dirs
    before = {p: _contents(manager, "orders", p) for p in range(4)}
    manager.shutdown()
    assert all((d / CLEAN_SHUTDOWN_FILE).exists() for d in dirs)
    recovery = OffsetCheckpointFile(dirs[0] / RECOVERY_POINT_OFFSET_CHECKPOINT).read()
    assert recovery and all(offset > 0 for offset in recovery.values())
    assert (dirs[0] / LOG_START_OFFSET_CHECKPOINT).exists()

    reopened = LogManager.open(dirs)
    assert not any((d / CLEAN_SHUTDOWN_FILE).exists() for d in dirs)  # live again
    assert {p: _contents(reopened, "orders", p) for p in range(4)} == before
    for p in range(4):
        partition_log = reopened.get_log("orders", p)
        assert partition_log is not None and partition_log.log_end_offset == p + 1
    reopened.shutdown()


def test_unclean_shutdown_truncates_torn_tail_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = LogManager.open([tmp_path])
    partition_log = manager.get_or_create_log("t", 0)
    partition_log.append(make_batch([100, 100]))
    partition_log.flush()
    manager.checkpoint()
    partition_log.append(make_batch([100, 100, 100]))
    segment_file = partition_log.active_segment.log_path
    partition_log.close()  # a crash: no shutdown, no marker
    size = segment_file.stat().st_size
    os.truncate(segment_file, size - 7)  # tear the last batch

    with caplog.at_level(logging.WARNING):
        recovered = LogManager.open([tmp_path])
    partition_log = recovered.get_log("t", 0)
    assert partition_log is not None
    assert partition_log.log_end_offset == 2  # the torn batch is gone, the first one kept
    assert any("t-0" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    recovered.shutdown()


def test_high_watermark_checkpoint_and_delete(tmp_path: Path) -> None:
    manager = LogManager.open([tmp_path], LogConfig(segment_bytes=1 << 20))
    manager.get_or_create_log("a", 0).append(make_batch([5] * 3))
    manager.get_or_create_log("b", 1).append(make_batch([5]))
    manager.checkpoint(high_watermarks={("a", 0): 2, ("b", 1): 1})
    assert manager.read_high_watermarks() == {("a", 0): 2, ("b", 1): 1}
    assert manager.delete_log("b", 1)
    assert not (tmp_path / "b-1").exists()
    assert manager.get_log("b", 1) is None
    assert not manager.delete_log("b", 1)
    manager.shutdown()
    assert set(LogManager.open([tmp_path]).all_logs()) == {("a", 0)}


def test_metadata_log_and_stray_entries_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "__cluster_metadata-0").mkdir()
    (tmp_path / "not-a-partition").mkdir()
    (tmp_path / "meta.properties").write_text("version=1\n")
    manager = LogManager.open([tmp_path])
    assert manager.all_logs() == {}
    with pytest.raises(ValueError):
        manager.get_or_create_log("__cluster_metadata", 0)


def test_a_broken_log_dir_goes_offline_and_the_others_keep_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    manager = LogManager.open([good, bad])
    manager.get_or_create_log("t", 0)
    manager.get_or_create_log("t", 1)
    manager.shutdown()
    bad_log_dir = next(p for p in bad.iterdir() if p.is_dir())
    # A segment file that cannot be opened as a file: an I/O error on load.
    for f in bad_log_dir.glob("*.log"):
        f.unlink()
        f.mkdir()

    with caplog.at_level(logging.ERROR):
        manager = LogManager.open([good, bad])
    assert manager.offline_dirs == {bad}
    assert any("offline" in r.getMessage() for r in caplog.records)
    assert len(manager.all_logs()) == 1
    created = manager.get_or_create_log("u", 0)
    assert manager.log_dir_of("u", 0) == good
    created.append(make_batch([1]))
    manager.shutdown()


def _latest_values(manager: LogManager, topic: str, partition: int) -> dict[bytes, bytes | None]:
    from storage.record_batch import iter_batches
    from storage.records import decode_batch

    partition_log = manager.get_log(topic, partition)
    assert partition_log is not None
    latest: dict[bytes, bytes | None] = {}
    data = partition_log.read_batches(partition_log.log_start_offset)
    for pos, _header in iter_batches(data):
        for record in decode_batch(data, pos)[1]:
            assert record.key is not None
            latest[record.key] = record.value
    return latest


def test_compaction_through_the_log_manager_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from storage.checkpoint import CLEANER_OFFSET_CHECKPOINT
    from storage.records import SimpleRecord, build_batch

    compacted = LogConfig(cleanup_policy="compact", segment_bytes=600, index_interval_bytes=64)
    manager = LogManager.open([tmp_path], LogConfig(segment_bytes=600))
    partition_log = manager.get_or_create_log("state", 0, compacted)
    manager.get_or_create_log("plain", 0).append(make_batch([50] * 20))  # delete policy
    for i in range(60):
        key = b"k%d" % (i % 5)
        partition_log.append(build_batch([SimpleRecord(b"v%d" % i, key=key, timestamp=1)]))
    size_before = partition_log.size_bytes
    end_before = partition_log.log_end_offset

    results = manager.clean_all(now_ms=10_000)
    assert len(results) == 1  # only the compacted log
    assert partition_log.size_bytes < size_before
    assert partition_log.log_end_offset == end_before  # offsets preserved
    latest = _latest_values(manager, "state", 0)
    assert latest == {b"k%d" % k: b"v%d" % (55 + k) for k in range(5)}
    checkpoint = OffsetCheckpointFile(tmp_path / CLEANER_OFFSET_CHECKPOINT).read()
    assert checkpoint[("state", 0)] == results[0].next_dirty_offset > 0
    assert manager.clean_all(now_ms=10_000) == []  # nothing dirty enough any more
    manager.shutdown()

    reopened = LogManager.open([tmp_path], LogConfig(segment_bytes=600),
                               topic_configs={"state": compacted})
    assert _latest_values(reopened, "state", 0) == latest
    assert reopened.clean_all(now_ms=10_000) == []  # resumes from the checkpoint
    reopened.shutdown()


def _fail_writes_under(monkeypatch: pytest.MonkeyPatch, directory: Path, code: int) -> None:
    """os.pwrite fails with ``code`` for files under ``directory`` (a failing disk)."""
    real = os.pwrite

    def pwrite(fd: int, data: object, offset: int) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(directory) + "/"):
            raise OSError(code, os.strerror(code))
        return real(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", pwrite)


def test_an_io_error_at_run_time_takes_the_whole_dir_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One log's failed append: every log of its dir refuses writes at once, the owner is
    told (and closes them when it says so), new logs go to the other dir."""
    import errno

    from storage.errors import LogDirOfflineError
    a, b = tmp_path / "a", tmp_path / "b"
    manager = LogManager.open([a, b])
    for p in range(4):
        manager.get_or_create_log("t", p).append(make_batch([10]))
    in_b = [p for p in range(4) if manager.log_dir_of("t", p) == b]
    assert len(in_b) == 2
    told: list[Path] = []
    manager.on_dir_offline = told.append
    _fail_writes_under(monkeypatch, b, errno.ENOSPC)
    with pytest.raises(LogDirOfflineError):
        manager.get_log("t", in_b[0]).append(make_batch([10]))  # type: ignore[union-attr]
    assert manager.offline_dirs == {b} and told == [b]
    other = manager.get_log("t", in_b[1])
    assert other is not None and other.offline
    with pytest.raises(LogDirOfflineError):
        other.append(make_batch([10]))
    # A new log never lands in the offline dir.
    manager.get_or_create_log("new", 0)
    assert manager.log_dir_of("new", 0) == a
    # The owner closes the dir's logs: a late reader gets a storage error, not ValueError.
    assert sorted(manager.close_offline_dir(b)) == [("t", p) for p in in_b]
    with pytest.raises(LogDirOfflineError):
        other.read(0, 100)
    # Periodic work skips the closed dir; a clean shutdown writes no marker there.
    manager.checkpoint({})
    manager.flush_due(1 << 60)
    manager.shutdown({})
    assert (a / CLEAN_SHUTDOWN_FILE).exists() and not (b / CLEAN_SHUTDOWN_FILE).exists()


def test_a_new_log_tries_the_next_dir_and_says_when_every_dir_is_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from storage.errors import LogDirOfflineError
    from storage.log_manager import fatal_log_dir_failure
    a, b = tmp_path / "a", tmp_path / "b"
    manager = LogManager.open([a, b])
    real_mkdir = os.mkdir

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if str(path).startswith(str(a) + "/"):
            raise OSError(errno.EIO, "Input/output error")
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)
    manager.get_or_create_log("t", 0)  # a (fewest logs, first) fails: b takes it
    assert manager.log_dir_of("t", 0) == b and manager.offline_dirs == {a}
    assert fatal_log_dir_failure(a, manager) == f"the metadata log dir {a} has failed"
    assert fatal_log_dir_failure(tmp_path / "meta", manager) is None
    manager.fail_dir(b, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(LogDirOfflineError, match="every log dir is offline"):
        manager.get_or_create_log("t", 1)
    assert "all log dirs in" in (fatal_log_dir_failure(tmp_path / "meta", manager) or "")
