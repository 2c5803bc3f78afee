"""One log segment: Kafka's ``LogSegment`` (a ``.log`` file plus its ``.index`` and ``.timeindex``).

Files are named after the segment's base offset, ``<base_offset:020d>.log`` / ``.index`` /
``.timeindex``. The ``.log`` file is a plain concatenation of RecordBatch v2 batches with absolute
offsets, exactly as Kafka stores them (so ``kafka-dump-log`` style tools can read it).

I/O is raw file descriptors (``os.pwrite``/``os.pread``/``os.fsync``); no buffered file objects.
Batches stay opaque: reads and scans parse only the 61-byte headers (one ``os.pread`` each);
``recover`` is the one place that reads whole batches, to check their CRC.

Index entries are added per batch, as in Kafka 3.x: whenever more than ``index.interval.bytes``
have been appended since the last entry, the batch being appended gets an offset-index entry
``(batch last offset, batch position)`` and the time index gets ``(max timestamp so far, its
offset)``. When an index is full we simply stop adding entries (the log rolls on its next append).

``segment.ms`` is measured from ``rolling_base_ms``: the ``now_ms`` of the first append in this
process, or, for a segment that already had data when it was opened, the first batch's max
timestamp (Kafka's ``rollingBasedTimestamp``), falling back to the open time.

File names and the raw-descriptor I/O are ``storage.segment_files``; opening the indexes and the
recovery scan are ``storage.segment_recovery``.

Methods raise ``OSError`` on I/O failures; ``PartitionLog`` turns them into ``LogDirOfflineError``.
Not thread-safe: the owning ``PartitionLog`` serializes access.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage import fsync_journal
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.index import OffsetIndex, TimeIndex
from storage.log_config import LogConfig
from storage.record_batch import HEADER_SIZE, BatchHeader, parse_header
from storage.records import decode_records
from storage.segment_files import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    pread_exact,
    pwrite_all,
    segment_file_name,
)
from storage.segment_recovery import RecoveryResult, open_indexes, scan_segment
from storage.txn_index import TransactionIndex

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
_BATCH_AFTER_MAX = 4096  # recent batch positions remembered for tail reads


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class SegmentSlice:
    """Whole batches ``[position, position + length)`` of a segment file."""

    position: int
    length: int
    first_offset: int  # base offset of the first batch in the slice
    next_offset: int  # offset to fetch next: the first batch after the slice (or segment end)


class LogSegment:
    """A ``.log`` file and its two sparse indexes. See the module docstring."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        fd: int,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        size: int,
        rolling_base_ms: int | None,
    ) -> None:
        self.dir = directory
        self.base_offset = base_offset
        self.config = config
        self._fd = fd
        self.offset_index = offset_index
        self.time_index = time_index
        self.size = size
        # File length as of the last fsync (a fault injector may truncate the file to it).
        self.flushed_size = size
        self.rolling_base_ms = rolling_base_ms
        self.roll_jitter_ms = 0  # set by the log on roll (segment.jitter.ms)
        # True when an index was missing or failed its sanity check: call recover().
        self.needs_recovery = False
        self._bytes_since_last_index_entry = self._bytes_after_last_index_entry()
        self._next_offset: int | None = base_offset if size == 0 else None
        # (max timestamp, offset of its batch's last offset); None = not yet computed.
        self._max_ts: tuple[int, int] | None = (-1, -1) if size == 0 else None
        self.last_recovery: RecoveryResult | None = None
        # The aborted-transaction index (``<base>.txnindex``); its file exists once an ABORT
        # marker lands in this segment.
        self.txn_index = TransactionIndex.for_segment(directory, base_offset)
        # Offset -> position of the batch that starts after offset - 1, for recent appends:
        # readers at the tail (followers and consumers fetch from where the last batch
        # ended) find their batch without a header scan from the last index entry.
        self._batch_after: dict[int, int] = {}

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def paths(directory: Path, base_offset: int) -> tuple[Path, Path, Path]:
        return (
            directory / segment_file_name(base_offset, LOG_SUFFIX),
            directory / segment_file_name(base_offset, INDEX_SUFFIX),
            directory / segment_file_name(base_offset, TIME_INDEX_SUFFIX),
        )

    @classmethod
    def create(
        cls, directory: str | os.PathLike[str], base_offset: int, config: LogConfig
    ) -> LogSegment:
        """Create a new, empty segment (its files must not exist yet)."""
        directory = Path(directory)
        log_path, index_path, time_path = cls.paths(directory, base_offset)
        fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            offset_index = OffsetIndex.open_empty(index_path, base_offset, config.max_index_entries)
            time_index = TimeIndex.open_empty(time_path, base_offset, config.max_time_index_entries)
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, base_offset, config, fd, offset_index, time_index, 0, None)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        base_offset: int,
        config: LogConfig,
        *,
        now_ms: int | None = None,
    ) -> LogSegment:
        """Open an existing segment. Missing or corrupt indexes are emptied and
        ``needs_recovery`` is set; the caller must then run ``recover()``."""
        directory = Path(directory)
        log_path, index_path, time_path = cls.paths(directory, base_offset)
        fd = os.open(log_path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            offset_index, time_index, needs_recovery = open_indexes(
                log_path, index_path, time_path, size, base_offset, config
            )
        except BaseException:
            os.close(fd)
            raise
        segment = cls(directory, base_offset, config, fd, offset_index, time_index, size, None)
        segment.needs_recovery = needs_recovery
        if size > 0 and not needs_recovery:
            segment.rolling_base_ms = segment._first_batch_timestamp(now_ms)
        return segment

    def indexes_fit(self, end_offset: int) -> bool:
        """Sanity check against the log: no index entry names an offset >= ``end_offset``."""
        last = self.offset_index.last_entry
        last_time = self.time_index.last_entry
        bad = (last is not None and last[0] >= end_offset) or (
            last_time is not None and last_time[1] >= end_offset
        )
        if bad:
            log.warning(
                "%s: index entries %s / %s go beyond the segment end offset %d; rebuilding",
                self.log_path, last, last_time, end_offset,
            )
        return not bad

    def _bytes_after_last_index_entry(self) -> int:
        # What an uninterrupted append (or a rebuild) would have counted, so that the index
        # does not depend on when the segment was reopened.
        last = self.offset_index.last_entry
        return self.size - (0 if last is None else last[1])

    def _first_batch_timestamp(self, now_ms: int | None) -> int:
        try:
            header = self._read_header(0)
        except (CorruptRecordError, InvalidRecordError):
            header = None
        if header is not None and header.max_timestamp >= 0:
            return header.max_timestamp
        return _now_ms() if now_ms is None else now_ms

    # -- properties -------------------------------------------------------------------------

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def log_path(self) -> Path:
        return self.dir / segment_file_name(self.base_offset, LOG_SUFFIX)

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def dirty(self) -> bool:
        return (
            self.flushed_size != self.size or self.offset_index.dirty or self.time_index.dirty
        )

    @property
    def next_offset(self) -> int:
        """One past the last offset in this segment (base offset if empty)."""
        if self._next_offset is None:
            self._next_offset = self._read_next_offset()
        return self._next_offset

    def _read_next_offset(self) -> int:
        last = self.offset_index.last_entry
        position = 0 if last is None else last[1]
        next_offset = self.base_offset
        for _, header in self.iter_headers(position):
            next_offset = header.next_offset
        return next_offset

    @property
    def max_timestamp_and_offset(self) -> tuple[int, int]:
        """(largest batch max timestamp, last offset of the batch carrying it); (-1, -1) if none."""
        if self._max_ts is None:
            self._max_ts = self._read_max_timestamp()
        return self._max_ts

    @property
    def max_timestamp(self) -> int:
        return self.max_timestamp_and_offset[0]

    @property
    def largest_timestamp(self) -> int:
        """Kafka's ``largestTimestamp``: max record timestamp, else the file's mtime (ms)."""
        ts = self.max_timestamp
        if ts >= 0:
            return ts
        return int(os.fstat(self._fd).st_mtime * 1000)

    def _read_max_timestamp(self) -> tuple[int, int]:
        # Time-index entries hold the running max; batches after the last one may be larger.
        last = self.time_index.last_entry
        if last is None:
            best = (-1, -1)
            position = 0
        else:
            best = last
            position = self.offset_index.lookup(last[1])[1]
        for _, header in self.iter_headers(position):
            if header.max_timestamp > best[0]:
                best = (header.max_timestamp, header.last_offset)
        return best

    # -- scanning ---------------------------------------------------------------------------

    def _read_header(self, position: int) -> BatchHeader:
        data = os.pread(self._fd, HEADER_SIZE, position)
        header = parse_header(data)
        if position + header.size > self.size:
            raise CorruptRecordError(
                f"{self.log_path}: batch at {position} declares {header.size} bytes, "
                f"only {self.size - position} present"
            )
        return header

    def iter_headers(
        self, position: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, BatchHeader]]:
        """Yield (position, header) of each batch from ``position`` (a batch start) to ``end``."""
        end = self.size if end is None else end
        while position < end:
            header = self._read_header(position)
            yield position, header
            position += header.size

    def translate_offset(
        self, offset: int, start_position: int = 0
    ) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset >= ``offset``, or None."""
        known = self._batch_after.get(offset)
        if known is not None and known >= start_position:
            return None if known >= self.size else (known, self._read_header(known))
        position = max(self.offset_index.lookup(offset)[1], start_position)
        for pos, header in self.iter_headers(position):
            if header.last_offset >= offset:
                return pos, header
        return None

    # -- append / read ----------------------------------------------------------------------

    def append(
        self,
        largest_offset: int,
        largest_timestamp: int,
        offset_of_max_timestamp: int,
        buffer: bytes | bytearray | memoryview,
        *,
        headers: Sequence[tuple[int, BatchHeader]] | None = None,
        batches: Sequence[tuple[int, int, int, int]] | None = None,
        now_ms: int | None = None,
    ) -> int:
        """Append validated batches (absolute offsets assigned); returns the file position.

        Describe the batches either as ``batches``, ``(position in buffer, last offset, max
        timestamp, size)`` each (the cheap form the log's append builds), or as ``headers``,
        ``(position in buffer, header)``; with neither, the headers are parsed here.
        ``largest_timestamp``/``offset_of_max_timestamp`` describe the whole buffer.
        """
        if not buffer:
            return self.size
        relative = largest_offset - self.base_offset
        assert 0 <= relative <= INT32_MAX, (largest_offset, self.base_offset)
        if batches is None:
            if headers is None:
                headers = []
                pos = 0
                while pos < len(buffer):
                    header = parse_header(buffer, pos)
                    headers.append((pos, header))
                    pos += header.size
            batches = [
                (pos, h.base_offset + h.last_offset_delta, h.max_timestamp, h.size)
                for pos, h in headers
            ]
        physical = self.size
        if physical == 0:
            self.rolling_base_ms = _now_ms() if now_ms is None else now_ms
        written = os.pwrite(self._fd, buffer, physical)
        if written != len(buffer):
            pwrite_all(self._fd, memoryview(buffer)[written:], physical + written)
        self.size = physical + len(buffer)
        max_ts, max_ts_offset = self.max_timestamp_and_offset
        interval = self.config.index_interval_bytes
        since_last = self._bytes_since_last_index_entry
        offset_index, time_index = self.offset_index, self.time_index
        # Room left in each index, counted once per request rather than per batch.
        oi_room = offset_index.max_entries - len(offset_index)
        ti_room = time_index.max_entries - len(time_index)
        after = self._batch_after
        if len(after) > _BATCH_AFTER_MAX:
            after.clear()
        for pos, last_offset, batch_max_ts, size in batches:
            after[last_offset + 1] = physical + pos + size
            if batch_max_ts > max_ts:
                max_ts, max_ts_offset = batch_max_ts, last_offset
            if since_last > interval:
                if oi_room > 0:
                    offset_index.append(last_offset, physical + pos)
                    oi_room -= 1
                if ti_room > 0 and time_index.maybe_append(max_ts, max_ts_offset, skip_full_check=True):
                    ti_room -= 1
                since_last = 0
            since_last += size
        self._bytes_since_last_index_entry = since_last
        if largest_timestamp > max_ts:
            max_ts, max_ts_offset = largest_timestamp, offset_of_max_timestamp
        self._max_ts = (max_ts, max_ts_offset)
        self._next_offset = largest_offset + 1
        return physical

    def read(
        self,
        start_offset: int,
        max_size: int,
        *,
        max_position: int | None = None,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> SegmentSlice | None:
        """Whole batches from the one containing ``start_offset``, at most ``max_size`` bytes
        (but the first batch whole if ``min_one_batch``), ending before ``max_position`` and
        before the batch containing ``max_offset``. None if there is nothing to return."""
        found = self.translate_offset(start_offset)
        if found is None:
            return None
        start_pos, first = found
        end_limit = self.size
        end_next = self.next_offset
        if max_offset is not None and max_offset < end_next:
            stop = self.translate_offset(max_offset, start_pos)
            if stop is not None:
                end_limit, end_next = stop[0], stop[1].base_offset
        if max_position is not None and max_position < end_limit:
            # A position must be a batch boundary; resolve its offset lazily below.
            end_limit, end_next = max_position, -1
        if start_pos >= end_limit:
            return None
        limit = start_pos + max(max_size, 0)
        if limit >= end_limit:
            end, next_offset = end_limit, end_next
        else:
            # Jump close to the limit through the index, then walk headers.
            end, next_offset = start_pos, first.base_offset
            entry = self.offset_index.lookup_position(limit)
            scan_from = start_pos if entry is None or entry[1] <= start_pos else entry[1]
            for pos, header in self.iter_headers(scan_from, end_limit):
                if pos + header.size > limit:
                    end, next_offset = pos, header.base_offset
                    break
                end, next_offset = pos + header.size, header.next_offset
            if end == start_pos:
                if not min_one_batch:
                    return None
                end, next_offset = start_pos + first.size, first.next_offset
        if next_offset < 0:
            next_offset = self._offset_at_position(end)
        return SegmentSlice(start_pos, end - start_pos, first.base_offset, next_offset)

    def _offset_at_position(self, position: int) -> int:
        if position >= self.size:
            return self.next_offset
        return self._read_header(position).base_offset

    def read_bytes(self, position: int, length: int) -> bytes:
        return pread_exact(self._fd, length, position)

    # -- timestamps -------------------------------------------------------------------------

    def find_offset_by_timestamp(
        self, timestamp: int, starting_offset: int = 0
    ) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ``timestamp`` and offset >=
        ``starting_offset``, or None.

        The batch is found from the time index plus a header scan (batch max timestamps); only
        that one batch is decoded to find the exact record, as Kafka does. (If it cannot be
        decoded the answer is batch-level: its first offset >= ``starting_offset`` and its max
        timestamp.)
        """
        _, ts_offset = self.time_index.lookup(timestamp)
        position = self.offset_index.lookup(max(ts_offset, starting_offset))[1]
        for pos, header in self.iter_headers(position):
            if header.max_timestamp >= timestamp and header.last_offset >= starting_offset:
                exact = self._search_batch(pos, header, timestamp, starting_offset)
                if exact is not None:
                    return exact
        return None

    def _search_batch(
        self, position: int, header: BatchHeader, timestamp: int, starting_offset: int
    ) -> tuple[int, int] | None:
        if header.is_log_append_time:
            return max(header.base_offset, starting_offset), header.max_timestamp
        try:
            records = decode_records(self.read_bytes(position, header.size))
        except (CorruptRecordError, InvalidRecordError):
            return max(header.base_offset, starting_offset), header.max_timestamp
        for record in records:
            if record.timestamp >= timestamp and record.offset >= starting_offset:
                return record.offset, record.timestamp
        return None

    # -- recovery / truncation --------------------------------------------------------------

    def recover(self) -> RecoveryResult:
        """Validate every batch (length, CRC, offsets) from the start, rebuild both indexes,
        truncate the file at the first invalid or torn batch, and fsync. Returns what was cut."""
        self.offset_index.reset()
        self.time_index.reset()
        self._batch_after.clear()
        self._bytes_since_last_index_entry = 0
        file_size = os.fstat(self._fd).st_size
        self.size = file_size  # so header reads see the whole file
        scan = scan_segment(
            self._fd, file_size, self.base_offset, self.config.index_interval_bytes,
            self.offset_index, self.time_index,
        )
        self._bytes_since_last_index_entry = scan.bytes_since_last_index_entry
        position, max_ts, first_ts = scan.valid_bytes, scan.max_ts, scan.first_ts
        truncated = file_size - position
        if truncated:
            os.ftruncate(self._fd, position)
        self.size = position
        self._next_offset = scan.next_offset
        self._max_ts = max_ts
        if max_ts[0] >= 0:
            self.time_index.maybe_append(max_ts[0], max_ts[1], skip_full_check=True)
        if position == 0:
            self.rolling_base_ms = None
        elif self.rolling_base_ms is None:
            self.rolling_base_ms = first_ts if first_ts is not None and first_ts >= 0 else _now_ms()
        # Make the validated state durable: it may be unsynced data from a crashed process.
        fsync_journal.fsync(self._fd)
        self.flushed_size = position
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.truncate_to(scan.next_offset)
        self.needs_recovery = False
        result = RecoveryResult(position, truncated, position, scan.reason)
        self.last_recovery = result
        return result

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset >= ``offset`` (a batch containing ``offset`` goes
        whole). Durable (fsynced). Returns the number of bytes removed."""
        found = self.translate_offset(offset)
        if found is None:
            return 0
        self._batch_after.clear()
        position, header = found
        self.offset_index.truncate_to_position(position)
        self.time_index.truncate_to(header.base_offset)
        self.txn_index.truncate_to(header.base_offset)
        removed = self.size - position
        os.ftruncate(self._fd, position)
        fsync_journal.fsync(self._fd)
        self.size = position
        self.flushed_size = position
        self.offset_index.flush()
        self.time_index.flush()
        self._bytes_since_last_index_entry = self._bytes_after_last_index_entry()
        if position == 0:
            self._next_offset = self.base_offset
            self._max_ts = (-1, -1)
            self.rolling_base_ms = None
        else:
            self._next_offset = None
            self._max_ts = None
        return removed

    # -- durability / lifecycle -------------------------------------------------------------

    def on_become_inactive(self) -> None:
        """Called on roll: make the time index carry the segment's final max timestamp."""
        ts, offset = self.max_timestamp_and_offset
        if ts >= 0:
            self.time_index.maybe_append(ts, offset, skip_full_check=True)

    def flush_fds(self) -> tuple[int, int, int]:
        """The descriptors a flush must fsync: log, offset index, time index."""
        return self._fd, self.offset_index.fd, self.time_index.fd

    def flush(self) -> None:
        """fsync the log and both indexes (the time index gets its final entry first)."""
        self.on_become_inactive()
        if self.flushed_size != self.size:
            fsync_journal.fsync(self._fd)
            self.flushed_size = self.size
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.on_become_inactive()
        finally:
            self.offset_index.close()
            self.time_index.close()
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def delete(self, *, keep_txn_index: bool = False) -> None:
        """Close and unlink the files. Readers holding a dup'ed fd keep reading (POSIX).
        ``keep_txn_index``: leave the ``.txnindex`` (a cleaned segment replacing this one
        took it over)."""
        if self._fd >= 0:
            self.offset_index.close()
            self.time_index.close()
            os.close(self._fd)
            self._fd = -1
        for path in self.paths(self.dir, self.base_offset):
            try:
                fsync_journal.unlink(path)
            except FileNotFoundError:
                pass
        if not keep_txn_index:
            self.txn_index.delete()

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size}, dir={self.dir})"
