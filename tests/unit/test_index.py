"""OffsetIndex / TimeIndex: append, lookup, truncate, reopen, sanity checks."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from storage.index import (
    OFFSET_INDEX_ENTRY_SIZE,
    TIME_INDEX_ENTRY_SIZE,
    CorruptIndexError,
    OffsetIndex,
    TimeIndex,
)


def test_offset_index_append_lookup_and_file_format(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000100.index"
    index = OffsetIndex.open(path, 100, max_entries=10)
    assert len(index) == 0
    assert index.lookup(150) == (100, 0)  # no entry: search from the segment start
    index.append(105, 400)
    index.append(110, 900)
    index.append(130, 1500)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(104) == (100, 0)
    assert index.lookup(105) == (105, 400)
    assert index.lookup(109) == (105, 400)
    assert index.lookup(110) == (110, 900)
    assert index.lookup(10**12) == (130, 1500)
    assert index.last_entry == (130, 1500)
    assert index.lookup_position(899) == (105, 400)
    assert index.lookup_position(900) == (110, 900)
    assert index.lookup_position(10) is None
    # Entries reach the file at flush/close, not on every append.
    assert path.read_bytes() == b""
    index.flush()
    # On disk: big-endian int32 relative offset + int32 position, no preallocation.
    data = path.read_bytes()
    assert len(data) == 3 * OFFSET_INDEX_ENTRY_SIZE
    assert list(struct.iter_unpack(">ii", data)) == [(5, 400), (10, 900), (30, 1500)]
    index.close()


def test_offset_index_rejects_non_increasing_and_full(tmp_path: Path) -> None:
    index = OffsetIndex.open(tmp_path / "0.index", 0, max_entries=2)
    index.append(5, 100)
    with pytest.raises(ValueError):
        index.append(5, 200)
    with pytest.raises(ValueError):
        index.append(6, 100)
    index.append(6, 200)
    assert index.is_full
    with pytest.raises(ValueError):
        index.append(7, 300)
    index.close()


def test_offset_index_truncate_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "i.index"
    index = OffsetIndex.open(path, 0, max_entries=100)
    for i in range(1, 11):
        index.append(i * 10, i * 1000)
    index.truncate_to(55)  # entries with offset >= 55 go
    assert index.last_entry == (50, 5000)
    index.truncate_to_position(3000)  # entries at position >= 3000 go
    assert index.last_entry == (20, 2000)
    index.flush()
    assert path.stat().st_size == 2 * OFFSET_INDEX_ENTRY_SIZE
    assert index.flushed_size == 2 * OFFSET_INDEX_ENTRY_SIZE
    index.close()
    reopened = OffsetIndex.open(path, 0, max_entries=100)
    assert reopened.entries() == [(10, 1000), (20, 2000)]
    reopened.truncate_to(0)
    assert len(reopened) == 0 and path.stat().st_size == 0
    reopened.close()


def test_offset_index_sanity_check(tmp_path: Path) -> None:
    path = tmp_path / "bad.index"
    path.write_bytes(b"\x00" * 7)
    with pytest.raises(CorruptIndexError):
        OffsetIndex.open(path, 0, 100)
    path.write_bytes(struct.pack(">iiii", 5, 100, 4, 200))  # offsets decrease
    with pytest.raises(CorruptIndexError):
        OffsetIndex.open(path, 0, 100)
    path.write_bytes(struct.pack(">iiii", 5, 100, 6, 100))  # positions do not increase
    with pytest.raises(CorruptIndexError):
        OffsetIndex.open(path, 0, 100)
    path.write_bytes(struct.pack(">ii", -1, 100))
    with pytest.raises(CorruptIndexError):
        OffsetIndex.open(path, 0, 100)
    index = OffsetIndex.open_empty(path, 0, 100)
    assert len(index) == 0 and path.stat().st_size == 0
    index.close()


def test_time_index_maybe_append_lookup_truncate(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000100.timeindex"
    index = TimeIndex.open(path, 100, max_entries=10)
    assert index.lookup(5000) == (-1, 100)
    assert index.maybe_append(1000, 103)
    assert not index.maybe_append(1000, 104)  # timestamp must grow
    assert not index.maybe_append(900, 105)
    assert not index.maybe_append(-1, 106)
    assert index.maybe_append(2000, 110)
    assert index.maybe_append(3000, 110)
    assert index.lookup(999) == (-1, 100)
    assert index.lookup(1000) == (1000, 103)
    assert index.lookup(2500) == (2000, 110)
    assert index.lookup(10**15) == (3000, 110)
    index.flush()
    assert list(struct.iter_unpack(">qi", path.read_bytes())) == [
        (1000, 3), (2000, 10), (3000, 10)
    ]
    index.truncate_to(110)
    assert index.entries() == [(1000, 103)]
    assert path.stat().st_size == TIME_INDEX_ENTRY_SIZE
    index.close()
    reopened = TimeIndex.open(path, 100, max_entries=10)
    assert reopened.last_entry == (1000, 103)
    reopened.close()


def test_time_index_full_and_sanity(tmp_path: Path) -> None:
    path = tmp_path / "t.timeindex"
    index = TimeIndex.open(path, 0, max_entries=1)
    index.maybe_append(10, 1)
    assert index.is_full
    with pytest.raises(ValueError):
        index.maybe_append(20, 2)
    assert index.maybe_append(20, 2, skip_full_check=True)  # the final entry on roll
    index.close()
    path.write_bytes(struct.pack(">qiqi", 20, 1, 10, 2))  # timestamps decrease
    with pytest.raises(CorruptIndexError):
        TimeIndex.open(path, 0, 10)
    path.write_bytes(struct.pack(">qiqi", 10, 5, 20, 2))  # offsets decrease
    with pytest.raises(CorruptIndexError):
        TimeIndex.open(path, 0, 10)
    path.write_bytes(b"\x01" * 13)
    with pytest.raises(CorruptIndexError):
        TimeIndex.open(path, 0, 10)


def test_index_fd_closed_on_corrupt_open(tmp_path: Path) -> None:
    path = tmp_path / "x.index"
    path.write_bytes(b"\x00" * 3)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(CorruptIndexError):
            OffsetIndex.open(path, 0, 10)
    assert len(os.listdir("/proc/self/fd")) <= before
