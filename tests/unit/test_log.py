"""PartitionLog and LogSegment on real files: append, read, roll, truncate, retention, reopen."""

from __future__ import annotations

import itertools
import logging
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from storage.errors import (
    ConfigError,
    CorruptRecordError,
    InvalidRecordError,
    LogDirOfflineError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.log_read import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP
from storage.record_batch import iter_batches, parse_header
from storage.records import decode_records
from storage.segment import LogSegment, segment_file_name
from tests.helpers_batches import (
    batch_last_offset,
    make_batch,
    with_base_offset,
    with_leader_epoch,
)

SMALL = LogConfig(segment_bytes=600, index_interval_bytes=100)


def open_log(path: Path, config: LogConfig = SMALL, **kwargs: object) -> PartitionLog:
    return PartitionLog.open(path, config, **kwargs)  # type: ignore[arg-type]


def headers(data: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of each batch in ``data``."""
    return [(h.base_offset, h.last_offset) for _, h in iter_batches(data)]


def all_data(log: PartitionLog) -> bytes:
    return log.read_batches(log.log_start_offset)


def fill(log: PartitionLog, n: int, records: int = 3, size: int = 20, **kw: object) -> list[bytes]:
    """Append ``n`` batches; return what the log should hold for each (offsets assigned)."""
    out = []
    for i in range(n):
        batch = make_batch([size] * records, seed=i, base_timestamp=1000 + 10 * i)
        info = log.append(batch, **kw)  # type: ignore[arg-type]
        out.append(with_base_offset(batch, info.first_offset))
    return out


# -- append / read ---------------------------------------------------------------------------


def test_append_assigns_offsets_and_reads_back(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    b1 = make_batch([10, 20, 30], base_offset=777, base_timestamp=5000)
    info = log.append(b1, now_ms=1)
    assert (info.first_offset, info.last_offset) == (0, 2)
    assert info.num_batches == 1 and info.num_records == 3
    assert info.valid_bytes == len(b1)
    assert info.max_timestamp == 5002 and info.offset_of_max_timestamp == 2
    assert info.log_append_time_ms == -1
    b2 = make_batch([5], seed=1)
    info2 = log.append(b2, now_ms=2)
    assert (info2.first_offset, info2.last_offset) == (3, 3)
    assert log.log_end_offset == 4
    sl = log.read(0, 10_000)
    assert sl is not None
    with sl:
        data = sl.read_bytes()
        assert (sl.first_offset, sl.next_offset, sl.position) == (0, 4, 0)
    assert data == with_base_offset(b1, 0) + with_base_offset(b2, 3)
    assert [r.offset for r in decode_records(data)] == [0, 1, 2]
    log.close()


def test_append_multiple_batches_in_one_buffer(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.append(make_batch([1]))
    buf = make_batch([1, 2], seed=1) + make_batch([3, 4, 5], seed=2) + make_batch([6], seed=3)
    info = log.append(buf, leader_epoch=7)
    assert (info.first_offset, info.last_offset, info.num_batches, info.num_records) == (
        1, 6, 3, 6
    )
    got = headers(all_data(log))
    assert got == [(0, 0), (1, 2), (3, 5), (6, 6)]
    epochs = [h.partition_leader_epoch for _, h in iter_batches(all_data(log))]
    assert epochs == [-1, 7, 7, 7]
    log.close()


def test_read_mid_batch_returns_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    expected = fill(log, 4)
    for offset in range(12):
        sl = log.read(offset, 1)  # max_bytes too small: min_one_batch gives one batch
        assert sl is not None
        with sl:
            assert sl.read_bytes() == expected[offset // 3]
            assert sl.first_offset == (offset // 3) * 3
    assert log.read(5, 1, min_one_batch=False) is None
    log.close()


def test_read_bounded_by_max_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(index_interval_bytes=100))
    expected = fill(log, 20)
    size = len(expected[0])
    for n in range(1, 8):
        sl = log.read(0, size * n + size // 2)
        assert sl is not None
        with sl:
            assert sl.read_bytes() == b"".join(expected[:n])
            assert sl.next_offset == 3 * n
    sl = log.read(30, size * 2)
    assert sl is not None and sl.read_bytes() == b"".join(expected[10:12])
    sl.close()
    log.close()


def test_read_bounded_by_max_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig())
    expected = fill(log, 5)  # offsets 0..14
    sl = log.read(0, 1 << 20, max_offset=9)  # batches wholly below 9: [0-2], [3-5], [6-8]
    assert sl is not None and sl.read_bytes() == b"".join(expected[:3])
    assert sl.next_offset == 9
    sl.close()
    sl = log.read(0, 1 << 20, max_offset=8)  # batch 6-8 straddles the HW: excluded
    assert sl is not None and sl.read_bytes() == b"".join(expected[:2])
    sl.close()
    assert log.read(6, 1 << 20, max_offset=8) is None
    assert log.read(9, 1 << 20, max_offset=9) is None
    log.close()


def test_read_offsets_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    fill(log, 2)
    assert log.read(6, 100) is None  # log end offset: nothing yet
    with pytest.raises(OffsetOutOfRangeError):
        log.read(7, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    log.maybe_increment_log_start_offset(4)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 100)
    sl = log.read(4, 100)  # the batch holding 4 starts at 3
    assert sl is not None and sl.first_offset == 3
    sl.close()
    log.close()


def test_read_spans_to_next_segment_and_fd_survives_deletion(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    expected = fill(log, 12)
    assert len(log.segments) > 2
    first = log.segments[0]
    sl = log.read(0, 1 << 20)
    assert sl is not None
    # A read never crosses a segment boundary.
    assert sl.next_offset == log.segments[1].base_offset
    log.maybe_increment_log_start_offset(log.segments[2].base_offset)
    assert not first.log_path.exists()
    n = len(headers(sl.read_bytes()))
    assert sl.read_bytes() == b"".join(expected[:n])  # still readable through its own fd
    sl.close()
    log.close()


# -- rolling ---------------------------------------------------------------------------------


def test_roll_by_size(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=500))
    expected = fill(log, 10)
    size = len(expected[0])
    per_segment = 500 // size
    assert [s.base_offset for s in log.segments] == [
        3 * per_segment * i for i in range((10 + per_segment - 1) // per_segment)
    ]
    assert all(s.size <= 500 for s in log.segments)
    assert all_data(log) == b"".join(expected)
    names = sorted(os.listdir(tmp_path / "t-0"))
    assert segment_file_name(0, ".log") in names
    assert segment_file_name(0, ".index") in names
    assert segment_file_name(0, ".timeindex") in names
    log.close()


def test_batch_larger_than_segment_bytes_goes_alone(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=100))
    log.append(make_batch([300]))
    log.append(make_batch([300]))
    assert [s.base_offset for s in log.segments] == [0, 1]
    log.close()


def test_roll_by_time(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_ms=1000))
    log.append(make_batch([1]), now_ms=10_000)
    log.append(make_batch([1]), now_ms=10_500)
    log.append(make_batch([1]), now_ms=11_000)  # exactly segment.ms: not yet
    assert len(log.segments) == 1
    log.append(make_batch([1]), now_ms=11_001)
    assert [s.base_offset for s in log.segments] == [0, 3]
    log.append(make_batch([1]), now_ms=11_500)
    assert len(log.segments) == 2
    log.append(make_batch([1]), now_ms=12_002)
    assert [s.base_offset for s in log.segments] == [0, 3, 5]
    log.close()


def test_roll_when_index_full(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=0, segment_index_bytes=24)  # 3 offset entries
    log = open_log(tmp_path / "t-0", config)
    for _ in range(10):
        log.append(make_batch([1]))
    for segment in log.segments[:-1]:
        assert segment.offset_index.is_full or segment.time_index.is_full
    assert len(log.segments) > 2
    assert headers(all_data(log)) == [(i, i) for i in range(10)]
    log.close()


def test_explicit_roll_and_empty_roll_is_noop(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    fill(log, 1)
    seg = log.roll()
    assert seg.base_offset == 3 and log.active_segment is seg
    assert log.roll() is seg
    assert [s.base_offset for s in log.segments] == [0, 3]
    log.close()


def test_index_entries_are_added_every_interval(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(index_interval_bytes=200))
    expected = fill(log, 20)
    size = len(expected[0])
    entries = log.active_segment.offset_index.entries()
    assert entries, "expected index entries"
    # Each entry is (last offset of a batch, position of that batch).
    for offset, position in entries:
        assert position % size == 0 and offset == (position // size) * 3 + 2
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(entries)]
    assert all(g > 200 for g in gaps)
    log.close()


# -- timestamps ------------------------------------------------------------------------------


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=400, index_interval_bytes=50))
    ts = [100, 200, 150, 300, 300, 500]
    for i, t in enumerate(ts):
        log.append(make_batch([10, 10], timestamps=[t - 5, t], seed=i))
    # offsets: batch i holds 2i (ts t-5) and 2i+1 (ts t)
    assert log.offset_for_timestamp(0) == (0, 95)
    assert log.offset_for_timestamp(95) == (0, 95)
    assert log.offset_for_timestamp(96) == (1, 100)
    assert log.offset_for_timestamp(160) == (2, 195)
    assert log.offset_for_timestamp(296) == (7, 300)
    assert log.offset_for_timestamp(500) == (11, 500)
    assert log.offset_for_timestamp(501) is None
    assert log.offset_for_timestamp(LATEST_TIMESTAMP) == (12, -1)
    assert log.offset_for_timestamp(EARLIEST_TIMESTAMP) == (0, -1)
    assert log.offset_for_timestamp(MAX_TIMESTAMP) == (11, 500)
    log.maybe_increment_log_start_offset(3)
    assert log.offset_for_timestamp(0) == (3, 200)
    assert log.offset_for_timestamp(EARLIEST_TIMESTAMP) == (3, -1)
    log.close()


def test_log_append_time(tmp_path: Path) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime")
    log = open_log(tmp_path / "t-0", config)
    info = log.append(make_batch([1, 2], base_timestamp=5), now_ms=123_456)
    assert info.log_append_time_ms == 123_456 and info.max_timestamp == 123_456
    data = all_data(log)
    header = parse_header(data)
    assert header.is_log_append_time and header.max_timestamp == 123_456
    assert [r.timestamp for r in decode_records(data)] == [123_456, 123_456]
    assert log.offset_for_timestamp(100_000) == (0, 123_456)
    log.close()
    reopened = open_log(tmp_path / "t-0", config)  # CRC still valid after the rewrite
    assert reopened.log_end_offset == 2 and all_data(reopened) == data
    reopened.close()


# -- validation ------------------------------------------------------------------------------


def test_oversized_batch_rejected(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(max_message_bytes=200))
    log.append(make_batch([50]))
    with pytest.raises(RecordTooLargeError):
        log.append(make_batch([10]) + make_batch([300]))
    assert log.log_end_offset == 1 and log.size_bytes == len(make_batch([50]))
    log.close()


@pytest.mark.parametrize("damage", ["crc", "torn", "magic1", "trailing", "empty", "count"])
def test_corrupt_input_appends_nothing(tmp_path: Path, damage: str) -> None:
    log = open_log(tmp_path / "t-0")
    good = make_batch([10, 10])
    log.append(good)
    bad = bytearray(make_batch([10, 10], seed=5))
    if damage == "crc":
        bad[-1] ^= 0xFF
    elif damage == "torn":
        bad = bad[:-3]
    elif damage == "magic1":
        bad[16] = 1
    elif damage == "trailing":
        bad = bad + b"\x00\x01"
    elif damage == "empty":
        bad = bytearray()
    elif damage == "count":
        struct.pack_into(">i", bad, 57, 5)  # record_count no longer matches the offset range
    size_before = log.size_bytes
    buf = bytes(bad) if damage == "empty" else make_batch([1], seed=9) + bytes(bad)
    with pytest.raises((CorruptRecordError, InvalidRecordError)):
        log.append(buf)
    assert log.log_end_offset == 2 and log.size_bytes == size_before
    assert all_data(log) == good
    log.close()


def test_follower_append_keeps_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    b1 = make_batch([1, 1], base_offset=0, partition_leader_epoch=3)
    b2 = make_batch([1], base_offset=10, partition_leader_epoch=4)  # a gap (compaction)
    info = log.append(b1 + b2, assign_offsets=False, leader_epoch=99)
    assert (info.first_offset, info.last_offset) == (0, 10)
    assert log.log_end_offset == 11
    assert all_data(log) == b1 + b2  # bytes untouched, leader_epoch ignored
    with pytest.raises(InvalidRecordError):
        log.append(make_batch([1], base_offset=10), assign_offsets=False)  # below the LEO
    with pytest.raises(InvalidRecordError):  # not increasing within the buffer
        log.append(
            make_batch([1, 1], base_offset=11) + make_batch([1], base_offset=12),
            assign_offsets=False,
        )
    assert log.log_end_offset == 11
    log.append(make_batch([1], base_offset=11), assign_offsets=False)
    assert log.log_end_offset == 12
    sl = log.read(5, 1000)  # 5 falls in the gap: served from the next batch
    assert sl is not None and sl.first_offset == 10
    sl.close()
    log.close()


def test_follower_append_roll_keeps_gap_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(segment_bytes=100))
    log.append(make_batch([50], base_offset=0), assign_offsets=False)
    log.append(make_batch([50], base_offset=50), assign_offsets=False)
    assert [s.base_offset for s in log.segments] == [0, 50]
    sl = log.read(1, 1000)  # offset 1 is in the gap at the end of segment 0
    assert sl is not None and sl.first_offset == 50
    sl.close()
    log.close()


# -- truncation / log start ------------------------------------------------------------------


def test_truncate_to(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    expected = fill(log, 12)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 3
    assert not log.truncate_to(36)  # at the log end: nothing to do
    target = bases[1] + 3  # a batch boundary inside the second segment
    assert log.truncate_to(target)
    assert log.log_end_offset == target
    assert [s.base_offset for s in log.segments] == bases[:2]
    assert all_data(log) == b"".join(expected[: target // 3])
    assert log.truncate_to(target - 2)  # mid-batch: the batch goes whole
    assert log.log_end_offset == target - 3
    log.append(make_batch([20] * 3, seed=99))
    assert log.log_end_offset == target
    log.flush()
    log.close()
    reopened = open_log(tmp_path / "t-0", recovery_point=target)
    assert reopened.log_end_offset == target
    assert headers(all_data(reopened))[-1] == (target - 3, target - 1)
    reopened.close()


def test_truncate_below_first_segment_and_fully(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    fill(log, 6)
    log.maybe_increment_log_start_offset(9)
    first_base = log.segments[0].base_offset
    log.truncate_to(first_base)
    assert (log.log_start_offset, log.log_end_offset) == (first_base, first_base)
    assert len(log.segments) == 1
    log.truncate_fully_and_start_at(1000)
    assert (log.log_start_offset, log.log_end_offset, log.recovery_point) == (1000, 1000, 1000)
    assert [s.base_offset for s in log.segments] == [1000]
    assert os.listdir(tmp_path / "t-0").count(segment_file_name(1000, ".log")) == 1
    log.append(make_batch([1]))
    assert log.log_end_offset == 1001
    log.close()
    reopened = open_log(tmp_path / "t-0", log_start_offset=1000)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (1000, 1001)
    reopened.close()


def test_log_start_offset_increment(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    expected = fill(log, 12)
    bases = [s.base_offset for s in log.segments]
    assert not log.maybe_increment_log_start_offset(0)
    assert log.maybe_increment_log_start_offset(bases[1] + 1)
    assert log.log_start_offset == bases[1] + 1
    assert [s.base_offset for s in log.segments] == bases[1:]
    with pytest.raises(OffsetOutOfRangeError):
        log.maybe_increment_log_start_offset(37)
    # Never deletes the active segment.
    log.maybe_increment_log_start_offset(36)
    assert [s.base_offset for s in log.segments] == bases[-1:]
    assert log.read(36, 100) is None
    log.close()
    reopened = open_log(tmp_path / "t-0", log_start_offset=36, recovery_point=36)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (36, 36)
    reopened.close()
    reopened = open_log(tmp_path / "t-0")  # no checkpoint: the first segment's base
    assert reopened.log_start_offset == bases[-1]
    assert all_data(reopened) == b"".join(expected[bases[-1] // 3 :])
    reopened.close()


# -- retention -------------------------------------------------------------------------------


def test_retention_by_time(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=300, retention_ms=1000)
    log = open_log(tmp_path / "t-0", config)
    for i in range(9):  # batch i has max timestamp 10_000 + 100 * i
        log.append(make_batch([20, 20], timestamps=[0, 10_000 + 100 * i], seed=i))
    segments = log.segments
    assert len(segments) >= 3
    assert log.delete_retention_segments(now_ms=10_000) == 0
    # Expire the segments whose largest timestamp is < now - 1000.
    cutoff_segment = segments[1]
    now = cutoff_segment.largest_timestamp + 1001
    deleted = log.delete_retention_segments(now_ms=now)
    assert deleted == 2
    assert log.log_start_offset == segments[2].base_offset
    # The high watermark holds back deletion of unreplicated data.
    later = log.log_end_offset + 10**9
    hw = log.segments[0].base_offset
    assert log.delete_retention_segments(now_ms=later, high_watermark=hw) == 0
    # Everything expired, including the active segment: Kafka rolls and deletes it.
    leo = log.log_end_offset
    assert log.delete_retention_segments(now_ms=later) == len(segments) - 2
    assert [s.base_offset for s in log.segments] == [leo]
    assert (log.log_start_offset, log.log_end_offset) == (leo, leo)
    assert log.delete_retention_segments(now_ms=later) == 0  # empty active segment stays
    log.close()


def test_retention_by_size_keeps_active(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=300, retention_bytes=0, retention_ms=-1)
    log = open_log(tmp_path / "t-0", config)
    fill(log, 9)
    n = len(log.segments)
    active = log.active_segment
    assert log.delete_retention_segments(now_ms=0) == n - 1
    assert log.segments == [active]
    assert log.log_start_offset == active.base_offset
    log.close()


def test_retention_by_size_partial(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=300, retention_ms=-1)
    log = open_log(tmp_path / "t-0", config)
    fill(log, 12)
    sizes = [s.size for s in log.segments]
    keep = sizes[-1] + sizes[-2] + 1  # room for two segments and a bit
    log.update_config(config.replace(retention_bytes=keep))
    # Kafka's rule: delete the oldest segments while the log stays >= retention.bytes without
    # them, so up to one segment's worth above retention.bytes remains.
    assert log.delete_retention_segments(now_ms=0) == len(sizes) - 3
    assert keep <= log.size_bytes < keep + sizes[0]
    log.close()


def test_compact_policy_does_not_delete_by_retention(tmp_path: Path) -> None:
    config = LogConfig(
        segment_bytes=300, retention_ms=0, retention_bytes=0, cleanup_policy=frozenset({"compact"})
    )
    log = open_log(tmp_path / "t-0", config)
    fill(log, 9)
    n = len(log.segments)
    assert log.delete_retention_segments(now_ms=10**12) == 0
    assert len(log.segments) == n
    log.close()


# -- durability / reopen ---------------------------------------------------------------------


def test_reopen_preserves_everything(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    expected = fill(log, 15, leader_epoch=2)
    log.maybe_increment_log_start_offset(4)
    # Rolls fsync the outgoing segment: only the active segment is unflushed.
    assert log.recovery_point == log.active_segment.base_offset
    assert log.unflushed_messages == 45 - log.active_segment.base_offset
    log.flush()
    assert log.recovery_point == 45 and log.unflushed_messages == 0
    bases = [s.base_offset for s in log.segments]
    log.close()
    reopened = open_log(path, recovery_point=45, log_start_offset=4)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (4, 45)
    assert [s.base_offset for s in reopened.segments] == bases
    assert all_data(reopened) == b"".join(with_leader_epoch(b, 2) for b in expected[1:])
    assert reopened.leader_epoch_cache is not None
    assert [(e.epoch, e.start_offset) for e in reopened.leader_epoch_cache.entries] == [(2, 4)]
    for offset in range(4, 45):
        sl = reopened.read(offset, 1)
        assert sl is not None and sl.first_offset == offset - offset % 3
        sl.close()
    reopened.append(make_batch([1]))
    assert reopened.log_end_offset == 46
    reopened.close()


def test_reopen_without_flush_recovers_unflushed_segments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    expected = fill(log, 10)
    active_base = log.active_segment.base_offset
    assert active_base > 3 and log.recovery_point == active_base  # rolls flush
    log.flush(up_to_offset=active_base + 1)  # a partial flush of the active segment
    assert log.recovery_point == active_base + 1
    log.append(make_batch([1]))
    log.close()
    for rp in (0, active_base + 1):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            reopened = open_log(path, recovery_point=rp)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert reopened.read_batches(0) == b"".join(expected) + make_batch([1], base_offset=30)
        assert reopened.recovery_point == reopened.log_end_offset == 31
        reopened.close()


def test_roll_flushes_outgoing_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    fill(log, 3)
    assert log.active_segment.dirty and log.recovery_point == 0
    old = log.active_segment
    log.roll()
    assert not old.dirty and old.flushed_size == old.size
    assert log.recovery_point == 9 and log.unflushed_messages == 0
    log.close()


def test_flush_messages_auto_flush_and_flush_if_due(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", LogConfig(flush_messages=5, flush_ms=1000), now_ms=0)
    log.append(make_batch([1, 1]), now_ms=1)
    assert log.recovery_point == 0 and log.unflushed_messages == 2
    log.append(make_batch([1, 1, 1]), now_ms=2)
    assert log.recovery_point == 5 and not log.active_segment.dirty
    log.append(make_batch([1]), now_ms=10)
    assert not log.flush_if_due(now_ms=500)
    assert log.flush_if_due(now_ms=100_000)
    assert log.recovery_point == 6
    log.close()


def test_empty_directory_starts_at_log_start_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-3", log_start_offset=500)
    assert (log.log_start_offset, log.log_end_offset) == (500, 500)
    assert log.active_segment.base_offset == 500
    log.close()


def test_log_start_checkpoint_beyond_end_starts_fresh(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    fill(log, 2)
    log.close()
    reopened = open_log(tmp_path / "t-0", log_start_offset=100)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (100, 100)
    reopened.close()


def test_leftover_files_are_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    expected = fill(log, 6)
    bases = [s.base_offset for s in log.segments]
    log.flush()
    log.close()
    (path / (segment_file_name(900, ".log") + ".deleted")).write_bytes(b"x")
    (path / (segment_file_name(901, ".log") + ".cleaned")).write_bytes(b"x")
    (path / (segment_file_name(902, ".index") + ".tmp")).write_bytes(b"x")
    (path / segment_file_name(903, ".index")).write_bytes(b"")  # orphan index
    (path / segment_file_name(903, ".timeindex")).write_bytes(b"")
    (path / "partition.metadata").write_text("version: 0\n")  # not ours: untouched
    reopened = open_log(path, recovery_point=18)
    assert [s.base_offset for s in reopened.segments] == bases
    assert all_data(reopened) == b"".join(expected)
    names = set(os.listdir(path))
    assert not any(n.startswith(("0000000000000000090",)) for n in names)
    assert "partition.metadata" in names
    reopened.close()


def test_swap_file_replaces_covered_segments(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    fill(log, 9)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 3
    log.flush()
    log.close()
    # A "compacted" replacement for the first two segments: one batch at offset bases[1]-1.
    replacement = make_batch([7], base_offset=bases[2] - 1, seed=42)
    (path / (segment_file_name(0, ".log") + ".swap")).write_bytes(replacement)
    reopened = open_log(path, recovery_point=27)
    assert [s.base_offset for s in reopened.segments] == [0] + bases[2:]
    data = reopened.read_batches(0)
    assert data.startswith(replacement)
    assert reopened.log_end_offset == 27
    reopened.close()


def test_io_error_takes_log_offline(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.append(make_batch([1]))
    segment = log.active_segment
    good_fd = segment._fd
    segment._fd = os.open(segment.log_path, os.O_RDONLY)  # writes now fail with EBADF
    with pytest.raises(LogDirOfflineError):
        log.append(make_batch([1]))
    assert log.offline
    with pytest.raises(LogDirOfflineError):
        log.append(make_batch([1]))
    os.close(segment._fd)
    segment._fd = good_fd
    log.close()


# -- leader epochs ---------------------------------------------------------------------------


def test_leader_epoch_cache_follows_the_log(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    cache = log.leader_epoch_cache
    assert cache is not None
    log.append(make_batch([1, 1]), leader_epoch=1)  # 0-1
    assert (path / "leader-epoch-checkpoint").exists()
    log.append(make_batch([1]), leader_epoch=1)  # 2
    log.append(make_batch([1, 1]), leader_epoch=3)  # 3-4
    log.append(make_batch([1]))  # no epoch stamped: the producer's -1, ignored
    follower_batch = make_batch([1], base_offset=6, partition_leader_epoch=5)
    log.append(follower_batch, assign_offsets=False)  # 6
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0), (3, 3), (5, 6)]
    assert log.latest_epoch == 5
    assert cache.end_offset_for(3, log.log_end_offset) == (3, 6)
    log.truncate_to(5)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0), (3, 3)]
    log.truncate_to(3)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0)]
    log.append(make_batch([1, 1]), leader_epoch=4)  # 3-4
    log.maybe_increment_log_start_offset(4)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(4, 4)]
    log.close()
    reopened = open_log(path, log_start_offset=4)
    assert reopened.leader_epoch_cache is not None
    assert [(e.epoch, e.start_offset) for e in reopened.leader_epoch_cache.entries] == [(4, 4)]
    reopened.truncate_fully_and_start_at(50)
    assert reopened.leader_epoch_cache.entries == []
    reopened.close()


def test_truncating_at_the_log_end_drops_an_epoch_opened_without_records(
        tmp_path: Path) -> None:
    """A replica that became leader opens its epoch at its log end (ReplicaManager); demoted
    before writing in it, its follower truncation lands on the log end. The empty epoch must
    go, or the fetcher asks the new leader for it again and again (KIP-279) and never fetches."""
    log = open_log(tmp_path / "t-0")
    cache = log.leader_epoch_cache
    assert cache is not None
    log.append(make_batch([1, 1]), leader_epoch=3)  # 0-1
    cache.assign(5, log.log_end_offset)  # leader of epoch 5 at offset 2, nothing written
    assert log.latest_epoch == 5
    assert log.truncate_to(log.log_end_offset) is False  # no records go
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(3, 0)]
    assert log.log_end_offset == 2
    log.close()


def test_epoch_cache_truncated_to_recovered_end_on_open(tmp_path: Path) -> None:
    path = tmp_path / "t-0"
    log = open_log(path)
    log.append(make_batch([1]), leader_epoch=1)
    log.append(make_batch([1]), leader_epoch=2)
    log.close()
    seg = path / segment_file_name(0, ".log")
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 5])  # tear the epoch-2 batch
    reopened = open_log(path)
    assert reopened.log_end_offset == 1
    assert reopened.leader_epoch_cache is not None
    assert [(e.epoch, e.start_offset) for e in reopened.leader_epoch_cache.entries] == [(1, 0)]
    reopened.close()


# -- segment-level ---------------------------------------------------------------------------


def test_segment_read_and_translate(tmp_path: Path) -> None:
    seg = LogSegment.create(tmp_path, 100, LogConfig(index_interval_bytes=1))
    batches = [make_batch([10, 10], base_offset=100 + 2 * i, seed=i) for i in range(5)]
    for b in batches:
        seg.append(batch_last_offset(b), 1000, batch_last_offset(b), b, now_ms=0)
    size = len(batches[0])
    assert seg.next_offset == 110 and seg.size == 5 * size
    found = seg.translate_offset(105)
    assert found is not None and found[0] == 2 * size and found[1].base_offset == 104
    sl = seg.read(103, 2 * size)
    assert sl is not None and (sl.position, sl.length, sl.first_offset) == (size, 2 * size, 102)
    assert seg.read_bytes(sl.position, sl.length) == batches[1] + batches[2]
    assert seg.read(110, 100) is None
    sl = seg.read(100, 1 << 20, max_position=3 * size)
    assert sl is not None and sl.length == 3 * size and sl.next_offset == 106
    seg.flush()
    assert seg.flushed_size == seg.size
    removed = seg.truncate_to(104)
    assert removed == 3 * size and seg.next_offset == 104
    seg.close()
    reopened = LogSegment.open(tmp_path, 100, LogConfig(index_interval_bytes=1))
    assert not reopened.needs_recovery and reopened.next_offset == 104
    reopened.close()


def test_log_config_from_topic_configs() -> None:
    config = LogConfig.from_topic_configs(
        {
            "segment.bytes": "1048576",
            "retention.ms": "-1",
            "cleanup.policy": "compact,delete",
            "message.timestamp.type": "LogAppendTime",
            "min.cleanable.dirty.ratio": "0.1",
            "unclean.leader.election.enable": "true",
            "preallocate": "true",
        }
    )
    assert config.segment_bytes == 1048576 and config.retention_ms == -1
    assert config.cleanup_policy == frozenset({"compact", "delete"})
    assert config.log_append_time and config.unclean_leader_election_enable
    assert config.max_message_bytes == 1048588  # untouched default
    assert LogConfig.from_topic_configs(config.to_topic_configs()) == config
    base = LogConfig(segment_bytes=1000)
    assert LogConfig.from_topic_configs({"retention.bytes": "5"}, base).segment_bytes == 1000
    bad = [
        ("segment.bytes", "10"),
        ("segment.bytes", "abc"),
        ("retention.ms", "-2"),
        ("cleanup.policy", "delete,bogus"),
        ("message.timestamp.type", "Now"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("flush.messages", "0"),
        ("no.such.config", "1"),
        ("unclean.leader.election.enable", "maybe"),
    ]
    for key, value in bad:
        with pytest.raises(ConfigError) as err:
            LogConfig.from_topic_configs({key: value})
        assert err.value.key == key
    policy: Any = "compact"
    assert LogConfig(cleanup_policy=policy).cleanup_policy == frozenset({"compact"})
    with pytest.raises(ConfigError):
        LogConfig(segment_index_bytes=4)


def test_tail_reads_use_remembered_batch_positions(tmp_path: Path) -> None:
    """A segment remembers where the batches it appended start, by the offset before them:
    a read at any batch boundary answers what a header scan from the index finds, also
    after a truncation and a re-append at the same offsets."""
    config = LogConfig(segment_bytes=1 << 20, index_interval_bytes=4096)
    log = open_log(tmp_path / "t-0", config)
    batches = fill(log, 60, records=2)
    seg = log.segments[-1]
    assert seg._batch_after

    def scanned(offset: int) -> Any:
        remembered, seg._batch_after = seg._batch_after, {}
        try:
            return seg.translate_offset(offset)
        finally:
            seg._batch_after = remembered

    for offset in range(log.log_end_offset + 2):
        assert seg.translate_offset(offset) == scanned(offset), offset
    assert log.read_batches(40) == b"".join(batches[20:])
    log.truncate_to(50)
    assert not seg._batch_after
    again = fill(log, 5, records=3, size=7)
    for offset in range(log.log_end_offset + 2):
        assert seg.translate_offset(offset) == scanned(offset), offset
    assert log.read_batches(50) == b"".join(again)
