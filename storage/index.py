"""Sparse per-segment indexes: Kafka's ``OffsetIndex`` (``.index``) and ``TimeIndex``
(``.timeindex``).

On-disk formats are Kafka's (big-endian):

- ``.index``: entries of ``int32 relative_offset, int32 position`` (8 bytes). ``relative_offset``
  is the *last* offset of a batch minus the segment base offset, ``position`` the file position
  where that batch starts. Both strictly increase.
- ``.timeindex``: entries of ``int64 timestamp, int32 relative_offset`` (12 bytes): the largest
  timestamp seen in the segment so far and the (last) offset of the batch carrying it. Timestamps
  strictly increase, offsets never decrease.

Design choice: the files are **append-only and grown as needed** (``os.pwrite`` at the end), not
preallocated to ``segment.index.bytes`` and memory-mapped as in Kafka. So the file length is always
exactly the number of entries times the entry size; there is nothing to trim on close and nothing
to guess after a crash. ``segment.index.bytes`` still bounds the number of entries
(``max_entries``): ``is_full`` makes the log roll, as in Kafka.

All entries are also kept in memory (``array``), so lookups are a ``bisect`` with no I/O. Memory
is ~ 20 bytes per ``index.interval.bytes`` of log (0.5% of the log size with the defaults).

Opening runs a sanity check (size a multiple of the entry size, entries monotonic, offsets not
negative); on failure it raises ``CorruptIndexError`` and the caller rebuilds the index from the
log (``LogSegment.recover``). Index I/O errors surface as ``OSError``; the segment turns them into
``LogDirOfflineError``.

Durability: ``flush`` fsyncs and records ``flushed_size`` (the file length as of the last fsync),
which a fault-injection harness may truncate the file to in order to simulate lost writes.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path
from typing import Self

from storage import fsync_journal
from storage.errors import StorageError

OFFSET_INDEX_ENTRY_SIZE = 8
TIME_INDEX_ENTRY_SIZE = 12
INT32_MAX = 2**31 - 1

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class CorruptIndexError(StorageError):
    """An index file failed its sanity check; rebuild it from the log segment."""


def _pwrite_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    position = 0
    while position < size:
        chunk = os.pread(fd, min(size - position, 1 << 20), position)
        if not chunk:
            break
        chunks.append(chunk)
        position += len(chunk)
    return b"".join(chunks)


class _IndexFile:
    """Shared file handling: an fd, an entry count, fsync bookkeeping."""

    ENTRY_SIZE = 0

    def __init__(self, path: Path, base_offset: int, max_entries: int, fd: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self._fd = fd
        self.flushed_size = 0
        # Entries are written to the file lazily (at flush, roll and close), not on every append:
        # an index is rebuilt from the log on recovery anyway, and a syscall per append would
        # cost as much as the append's own write (Kafka's mmapped index behaves the same way).
        self._persisted_entries = 0
        self._pending: list[bytes] = []

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def size_bytes(self) -> int:
        return len(self) * self.ENTRY_SIZE

    @property
    def is_full(self) -> bool:
        return len(self) >= self.max_entries

    @property
    def dirty(self) -> bool:
        return self.flushed_size != self.size_bytes

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def open(cls, path: str | os.PathLike[str], base_offset: int, max_entries: int) -> Self:
        """Open (creating if absent) and sanity-check. Raises ``CorruptIndexError``.

        On ``CorruptIndexError`` the file is left as is; open it with ``open_empty`` to rebuild.
        """
        path = Path(path)
        fd, data = cls._open_fd(path)
        index = cls(path, base_offset, max_entries, fd)
        try:
            index._load(data)
        except CorruptIndexError:
            os.close(fd)
            raise
        index.flushed_size = len(data)
        index._persisted_entries = len(index)
        return index

    @classmethod
    def open_empty(
        cls, path: str | os.PathLike[str], base_offset: int, max_entries: int
    ) -> Self:
        """Open and truncate to empty (the caller rebuilds it)."""
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        return cls(path, base_offset, max_entries, fd)

    def _load(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def _open_fd(cls, path: Path) -> tuple[int, bytes]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            data = _read_all(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return fd, data

    def _write_entry(self, data: bytes, index: int) -> None:
        assert index == self._persisted_entries + len(self._pending), (index, self.path)
        self._pending.append(data)

    def write_pending(self) -> None:
        """Write entries appended since the last write to the file (page cache, no fsync)."""
        if self._pending:
            _pwrite_all(
                self._fd, b"".join(self._pending), self._persisted_entries * self.ENTRY_SIZE
            )
            self._persisted_entries += len(self._pending)
            self._pending.clear()

    def _truncate_file(self, entries: int) -> None:
        if entries < self._persisted_entries:
            os.ftruncate(self._fd, entries * self.ENTRY_SIZE)
            self._persisted_entries = entries
            self._pending.clear()
        else:
            del self._pending[entries - self._persisted_entries :]
        self.flushed_size = min(self.flushed_size, entries * self.ENTRY_SIZE)

    def flush(self) -> None:
        self.write_pending()
        if self.dirty:
            fsync_journal.fsync(self._fd)
            self.flushed_size = self.size_bytes

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.write_pending()
            finally:
                os.close(self._fd)
                self._fd = -1

    def delete(self) -> None:
        self._pending.clear()
        self.close()
        try:
            fsync_journal.unlink(self.path)
        except FileNotFoundError:
            pass

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        self.truncate_to_entries(0)

    def truncate_to_entries(self, n: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class OffsetIndex(_IndexFile):
    """Relative offset -> file position, sparse, strictly increasing in both."""

    ENTRY_SIZE = OFFSET_INDEX_ENTRY_SIZE

    def __init__(self, path: Path, base_offset: int, max_entries: int, fd: int) -> None:
        super().__init__(path, base_offset, max_entries, fd)
        self._offsets = array("i")  # relative offsets
        self._positions = array("i")

    def _load(self, data: bytes) -> None:
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(
                f"{self.path}: size {len(data)} is not a multiple of {self.ENTRY_SIZE}"
            )
        prev_offset = prev_position = -1
        for relative, position in _OFFSET_ENTRY.iter_unpack(data):
            if relative <= prev_offset or position <= prev_position or relative < 0:
                raise CorruptIndexError(
                    f"{self.path}: entry {len(self._offsets)} ({relative}, {position}) does not "
                    f"increase after ({prev_offset}, {prev_position})"
                )
            self._offsets.append(relative)
            self._positions.append(position)
            prev_offset, prev_position = relative, position

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(absolute offset, position) of the newest entry."""
        if not self._offsets:
            return None
        return self.base_offset + self._offsets[-1], self._positions[-1]

    def entry(self, i: int) -> tuple[int, int]:
        return self.base_offset + self._offsets[i], self._positions[i]

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        offsets = self._offsets
        # Fast path (one check for the usual case): runs once per appended batch.
        if (
            offsets
            and offsets[-1] < relative <= INT32_MAX
            and self._positions[-1] < position
            and len(offsets) < self.max_entries
        ):
            self._pending.append(_OFFSET_ENTRY.pack(relative, position))
            offsets.append(relative)
            self._positions.append(position)
            return
        if not 0 <= relative <= INT32_MAX:
            raise ValueError(f"offset {offset} does not fit segment base {self.base_offset}")
        if self._offsets and (relative <= self._offsets[-1] or position <= self._positions[-1]):
            raise ValueError(
                f"index entry ({offset}, {position}) is not after {self.last_entry}"
            )
        if self.is_full:
            raise ValueError(f"{self.path} is full ({self.max_entries} entries)")
        self._write_entry(_OFFSET_ENTRY.pack(relative, position), len(self._offsets))
        self._offsets.append(relative)
        self._positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry with offset <= ``offset``, else (base, 0)."""
        relative = offset - self.base_offset
        relative = min(relative, INT32_MAX)
        i = bisect_right(self._offsets, relative) - 1 if relative >= 0 else -1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[i], self._positions[i]

    def lookup_position(self, position: int) -> tuple[int, int] | None:
        """(offset, position) of the largest entry with position <= ``position``, if any."""
        i = bisect_right(self._positions, position) - 1
        if i < 0:
            return None
        return self.base_offset + self._offsets[i], self._positions[i]

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with offset >= ``offset``."""
        relative = offset - self.base_offset
        n = 0 if relative <= 0 else bisect_right(self._offsets, relative - 1)
        self.truncate_to_entries(n)

    def truncate_to_position(self, position: int) -> None:
        """Remove every entry pointing at ``position`` or later."""
        self.truncate_to_entries(bisect_right(self._positions, position - 1))

    def truncate_to_entries(self, n: int) -> None:
        if n < len(self._offsets):
            del self._offsets[n:]
            del self._positions[n:]
            self._truncate_file(n)
        elif n == 0:
            self._truncate_file(0)

    def entries(self) -> list[tuple[int, int]]:
        return [(self.base_offset + o, p) for o, p in zip(self._offsets, self._positions)]


class TimeIndex(_IndexFile):
    """Max timestamp so far -> offset, sparse, timestamps strictly increasing."""

    ENTRY_SIZE = TIME_INDEX_ENTRY_SIZE

    def __init__(self, path: Path, base_offset: int, max_entries: int, fd: int) -> None:
        super().__init__(path, base_offset, max_entries, fd)
        self._timestamps = array("q")
        self._offsets = array("i")

    def _load(self, data: bytes) -> None:
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(
                f"{self.path}: size {len(data)} is not a multiple of {self.ENTRY_SIZE}"
            )
        prev_ts, prev_offset = -(2**63), 0
        for timestamp, relative in _TIME_ENTRY.iter_unpack(data):
            if timestamp <= prev_ts or relative < prev_offset or timestamp < 0:
                raise CorruptIndexError(
                    f"{self.path}: entry {len(self._offsets)} ({timestamp}, {relative}) does "
                    f"not increase after ({prev_ts}, {prev_offset})"
                )
            self._timestamps.append(timestamp)
            self._offsets.append(relative)
            prev_ts, prev_offset = timestamp, relative

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, absolute offset) of the newest entry."""
        if not self._offsets:
            return None
        return self._timestamps[-1], self.base_offset + self._offsets[-1]

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> bool:
        """Append (timestamp, offset) if ``timestamp`` is larger than the last entry's."""
        if timestamp < 0:
            return False
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return False
        relative = offset - self.base_offset
        if not 0 <= relative <= INT32_MAX:
            raise ValueError(f"offset {offset} does not fit segment base {self.base_offset}")
        if self._offsets and relative < self._offsets[-1]:
            raise ValueError(f"time index offset {offset} goes backwards")
        if self.is_full and not skip_full_check:
            raise ValueError(f"{self.path} is full ({self.max_entries} entries)")
        self._write_entry(_TIME_ENTRY.pack(timestamp, relative), len(self._offsets))
        self._timestamps.append(timestamp)
        self._offsets.append(relative)
        return True

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the largest entry with timestamp <= ``timestamp``.

        Without one, ``(-1, base_offset)``: search from the start of the segment.
        """
        i = bisect_right(self._timestamps, timestamp) - 1
        if i < 0:
            return -1, self.base_offset
        return self._timestamps[i], self.base_offset + self._offsets[i]

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with offset >= ``offset``."""
        relative = offset - self.base_offset
        n = 0 if relative <= 0 else bisect_right(self._offsets, relative - 1)
        self.truncate_to_entries(n)

    def truncate_to_entries(self, n: int) -> None:
        if n < len(self._offsets):
            del self._timestamps[n:]
            del self._offsets[n:]
            self._truncate_file(n)
        elif n == 0:
            self._truncate_file(0)

    def entries(self) -> list[tuple[int, int]]:
        return [(t, self.base_offset + o) for t, o in zip(self._timestamps, self._offsets)]
