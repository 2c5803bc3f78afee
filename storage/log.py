"""The partition log: Kafka's ``LocalLog`` + the storage half of ``UnifiedLog``.

A ``PartitionLog`` is a directory of ``LogSegment``s ordered by base offset (a list plus a
``bisect``-able list of base offsets). Appends go to the last ("active") segment; reads are served
as (fd, position, length) slices of a segment file, so the server can ``os.sendfile`` them.

Single-threaded: callers serialize access (one partition = one owner).

Choices (see also ``storage/segment.py`` and ``storage/index.py``):

- **Recovery** (``open``): a segment is recovered (every batch CRC-checked, indexes rebuilt, file
  cut at the first torn/corrupt batch) when it may hold data at or after ``recovery_point`` or
  when an index is missing/corrupt. A cut logs a WARNING (file, position, bytes, reason) and
  deletes every later segment. Recovered segments are fsynced, so afterwards
  ``recovery_point == log_end_offset``.
- **Deletion** (retention, truncation, a moved log start): segment files are unlinked directly, no
  ``.deleted`` rename and delay. A ``FetchSlice`` holds its own ``os.dup`` of the segment fd, so
  a reader keeps reading a deleted segment safely (POSIX keeps the inode alive);
  ``file.delete.delay.ms`` is therefore unused. Leftover ``.deleted``/``.cleaned``/segment
  ``.tmp`` files are removed on open;
  a ``.log.swap`` (a finished compaction output) replaces the segments it covers, as in Kafka.
- **Retention by time** follows Kafka: segments are deleted oldest first while
  ``now - largest_timestamp > retention.ms`` and their data is below the high watermark; if that
  includes the active segment (non-empty), the log rolls first and deletes it too.
  **Retention by size** never deletes the active segment.
- **Truncation** (``truncate_to``) is durable before it returns (file fsynced, directory fsynced)
  so truncated data cannot reappear after a crash. A batch containing the target offset goes
  whole, so ``log_end_offset`` may end up below the target (callers truncate at batch
  boundaries in practice).
- **Durability bookkeeping**: ``flush(up_to)`` fsyncs dirty segments below ``up_to`` and advances
  ``recovery_point``. A roll fsyncs the outgoing segment, creates the new one and fsyncs the
  directory, then moves ``recovery_point`` to the new base offset (Kafka does the same flush
  asynchronously): every inactive segment is durable, so a crash can never keep a later segment
  while losing the tail of an earlier one (a silent hole of offsets), and restart recovery only
  scans the active segment. With a fast disk this is one extra fsync per ``segment.bytes``.
- **Errors**: ``OSError`` from the file system becomes ``LogDirOfflineError`` and the log refuses
  further writes; bad input is ``CorruptRecordError``/``InvalidRecordError``/``RecordTooLargeError``
  and appends nothing.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import random
import struct
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Self

from storage import fsync_journal
from storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogDirOfflineError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from storage.fileutil import fsync_dir, make_dirs
from storage.leader_epoch import LEADER_EPOCH_CHECKPOINT, LeaderEpochFileCache
from storage.log_config import LogConfig
from storage.record_batch import (
    ATTRIBUTES_OFFSET,
    CURRENT_MAGIC,
    HEADER_SIZE,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_MASK,
    crc32c,
    parse_header,
    set_max_timestamp,
    set_partition_leader_epoch,
    validate_batch,
)
from storage.segment import LogSegment
from storage.segment_files import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TMP_SUFFIX,
    parse_segment_base_offset,
    segment_file_name,
)

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4

_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogAppendInfo(NamedTuple):
    """What an append did. A NamedTuple: it is built once per produce, where a frozen
    dataclass's ``__init__`` costs several microseconds on this machine class."""

    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    num_batches: int
    num_records: int  # shallow: sum of the batches' record_count
    valid_bytes: int
    log_start_offset: int = 0


class FetchSlice:
    """Whole batches ``[position, position + length)`` of one segment file.

    ``fd`` is this slice's own duplicate of the segment's fd: it stays valid if retention or
    truncation deletes the segment meanwhile. Close the slice (or use it as a context manager)
    when done; a forgotten slice closes its fd when garbage-collected.
    """

    __slots__ = ("__weakref__", "fd", "first_offset", "length", "next_offset", "position")

    def __init__(
        self, fd: int, position: int, length: int, first_offset: int, next_offset: int
    ) -> None:
        self.fd = fd
        self.position = position
        self.length = length
        self.first_offset = first_offset
        self.next_offset = next_offset  # offset to fetch next (first batch after the slice)

    def read_bytes(self) -> bytes:
        if self.fd < 0:
            raise ValueError("FetchSlice is closed")
        chunks: list[bytes] = []
        got = 0
        while got < self.length:
            chunk = os.pread(self.fd, self.length - got, self.position + got)
            if not chunk:
                raise LogDirOfflineError(
                    f"short read: {got} of {self.length} bytes at {self.position}"
                )
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return (
            f"FetchSlice(position={self.position}, length={self.length}, "
            f"first_offset={self.first_offset}, next_offset={self.next_offset})"
        )


class LogFlushJob:
    """One group-commit flush of a ``PartitionLog``; see ``PartitionLog.begin_flush``."""

    __slots__ = ("_fds", "_log", "marks", "target", "truncations")

    def __init__(
        self,
        log: PartitionLog,
        target: int,
        fds: list[int],
        marks: list[tuple[LogSegment, int, int, int]],
        truncations: int,
    ) -> None:
        self._log = log
        self.target = target  # every offset below this is durable once run() returns
        self._fds = fds
        self.marks = marks
        self.truncations = truncations

    def run(self) -> int:
        """fsync (any thread). Returns the offset below which everything is now durable."""
        for fd in self._fds:
            fsync_journal.fsync(fd)
        return self.target

    def finish(self, ok: bool) -> None:
        """Back on the log's thread: record the result and release the descriptors."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
        self._log._finish_flush(self, ok)


class PartitionLog:
    """A segmented partition log. Create with ``PartitionLog.open``."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
        leader_epoch_cache: LeaderEpochFileCache | None,
        now_ms: int,
    ) -> None:
        assert segments, "a log always has an active segment"
        self.dir = directory
        self.config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._log_start_offset = log_start_offset
        self._recovery_point = recovery_point
        self.leader_epoch_cache = leader_epoch_cache
        # Called with the new segment's base offset at every roll, before the new segment's
        # first batch is written (the partition snapshots its producer state there).
        self.on_roll: Callable[[int], None] | None = None
        self._dir_dirty = False
        self._offline = False
        self._closed = False
        self.last_flush_ms = now_ms
        self._random = random.Random()
        # Bumped by every truncation: a flush job started before one must not mark the
        # (since rewritten) tail as durable.
        self._truncations = 0

    # -- opening / recovery -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        dir_path: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        recovery_point: int = 0,
        log_start_offset: int | None = None,
        now_ms: int | None = None,
        leader_epoch_cache: LeaderEpochFileCache | None = None,
        use_leader_epoch_cache: bool = True,
    ) -> PartitionLog:
        """Open (creating if needed) the log in ``dir_path`` and recover it; see module doc.

        ``recovery_point``: the checkpointed offset below which everything was fsynced.
        ``log_start_offset``: the checkpointed log start (default: first segment's base offset).
        ``leader_epoch_cache``: default ``LeaderEpochFileCache(dir/leader-epoch-checkpoint)``
        unless ``use_leader_epoch_cache`` is False.
        """
        config = config if config is not None else LogConfig()
        now = _now_ms() if now_ms is None else now_ms
        directory = Path(dir_path)
        try:
            make_dirs(directory)
            changed = _clean_leftovers(directory)
            segments = _open_segments(directory, config, now)
            if not segments:
                start = log_start_offset if log_start_offset is not None else 0
                segments = [LogSegment.create(directory, start, config)]
                changed = True
            segments, recovered = _recover_segments(directory, segments, recovery_point)
            changed = changed or recovered
            if changed:
                fsync_dir(directory)
        except OSError as e:
            raise LogDirOfflineError(f"I/O error opening log {directory}: {e}") from e
        if leader_epoch_cache is None and use_leader_epoch_cache:
            leader_epoch_cache = LeaderEpochFileCache(directory / LEADER_EPOCH_CHECKPOINT)
        first_base = segments[0].base_offset
        start = first_base if log_start_offset is None else max(log_start_offset, first_base)
        self = cls(directory, config, segments, start, 0, leader_epoch_cache, now)
        leo = self.log_end_offset
        with self._io("opening"):
            if start > leo:
                log.warning(
                    "%s: log start offset %d is beyond the log end offset %d; "
                    "truncating fully and starting at %d", directory, start, leo, start,
                )
                self.truncate_fully_and_start_at(start)
            else:
                self._delete_segments(self._log_start_breached_segments(), "log start offset")
            self._recovery_point = self.log_end_offset
            if self.leader_epoch_cache is not None:
                self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
                self.leader_epoch_cache.truncate_from_start(self._log_start_offset)
        return self

    # -- properties -------------------------------------------------------------------------

    @property
    def segments(self) -> list[LogSegment]:
        """The segments, oldest first (a copy)."""
        return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def unflushed_messages(self) -> int:
        return self.log_end_offset - self._recovery_point

    @property
    def latest_epoch(self) -> int | None:
        return None if self.leader_epoch_cache is None else self.leader_epoch_cache.latest_epoch

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def offline(self) -> bool:
        return self._offline

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs (new values apply to future appends and rolls)."""
        self.config = config
        for segment in self._segments:
            segment.config = config

    # -- append -----------------------------------------------------------------------------

    def append(
        self,
        buf: bytes | bytearray | memoryview,
        *,
        assign_offsets: bool = True,
        leader_epoch: int | None = None,
        now_ms: int | None = None,
    ) -> LogAppendInfo:
        """Append one or more complete v2 batches, all or nothing.

        Leader path (``assign_offsets``): offsets are rewritten from the log end offset,
        ``partition_leader_epoch`` is stamped when ``leader_epoch`` is given, and LogAppendTime
        topics get ``max_timestamp = now``. Follower/Raft path: offsets are kept and must be
        increasing and >= ``log_end_offset`` (``leader_epoch`` is ignored).
        """
        self._check_writable()
        now = _now_ms() if now_ms is None else now_ms
        view = memoryview(buf)
        size = len(view)
        if size == 0:
            raise InvalidRecordError("append of an empty buffer: no record batches")
        leo = self._segments[-1].next_offset
        log_append_time = now if self.config.log_append_time else -1
        rewrite = assign_offsets and (leader_epoch is not None or log_append_time >= 0)
        # Validate everything first (all or nothing), then rewrite headers. The leader path
        # copies the buffer once so base offsets can be patched in place (outside the CRC).
        data: bytes | bytearray | memoryview = bytearray(view) if assign_offsets else buf
        # (position, last offset, max timestamp, size) per batch: all the segment needs.
        batches: list[tuple[int, int, int, int]] = []
        epochs: list[tuple[int, int]] = []  # (partition leader epoch, base offset)
        pos = 0
        offset = leo
        max_bytes = self.config.max_message_bytes
        max_ts, offset_of_max_ts = -1, leo
        num_records = 0
        unpack = HEADER_STRUCT.unpack_from
        while pos < size:
            # validate_batch, inlined: this loop runs once per produced batch.
            if size - pos < HEADER_SIZE:
                validate_batch(view, pos)  # raises the precise error
            (
                base_offset, batch_length, epoch, magic, crc, _attributes, last_delta,
                _base_ts, batch_max_ts, _pid, _pepoch, _seq, record_count,
            ) = unpack(view, pos)
            batch_size = batch_length + LOG_OVERHEAD
            if (
                magic != CURRENT_MAGIC
                or batch_length < HEADER_SIZE - LOG_OVERHEAD
                or batch_size > size - pos
                or last_delta < 0
                or crc32c(view[pos + ATTRIBUTES_OFFSET : pos + batch_size]) != crc
            ):
                validate_batch(view, pos)  # raises the precise error
                raise CorruptRecordError(f"invalid record batch at position {pos}")
            if batch_size > max_bytes:
                raise RecordTooLargeError(
                    f"record batch of {batch_size} bytes exceeds max.message.bytes {max_bytes}"
                )
            if assign_offsets:
                if record_count <= 0 or record_count != last_delta + 1:
                    raise InvalidRecordError(
                        f"batch record count {record_count} does not match its offset "
                        f"range (last offset delta {last_delta})"
                    )
                base_offset = offset
                _I64.pack_into(data, pos, offset)  # type: ignore[arg-type]
                if rewrite:
                    batch_max_ts, epoch = self._stamp(
                        data, pos, batch_size, leader_epoch, log_append_time, batch_max_ts, epoch
                    )
            elif base_offset < offset:
                raise InvalidRecordError(
                    f"batch base offset {base_offset} is below the expected "
                    f"{offset} (log end offset {leo}): offsets must be increasing"
                )
            offset = base_offset + last_delta + 1
            batches.append((pos, offset - 1, batch_max_ts, batch_size))
            epochs.append((epoch, base_offset))
            num_records += record_count
            if batch_max_ts > max_ts:
                max_ts, offset_of_max_ts = batch_max_ts, offset - 1
            pos += batch_size
        first_offset = epochs[0][1]
        last_offset = offset - 1
        if last_offset - first_offset > INT32_MAX:
            raise InvalidRecordError(
                f"append spans offsets {first_offset}..{last_offset}, more than one segment holds"
            )
        try:
            if self._should_roll(size, last_offset, now):
                self._roll(first_offset, now)
            self._segments[-1].append(
                last_offset, max_ts, offset_of_max_ts, data, batches=batches, now_ms=now
            )
        except OSError as e:
            err = self._io_error("appending", e)
            if err is e:
                raise
            raise err from e
        cache = self.leader_epoch_cache
        if cache is not None:
            latest = cache.latest_epoch
            for epoch, base_offset in epochs:
                if epoch >= 0 and (latest is None or epoch > latest):
                    cache.assign(epoch, base_offset)
                    latest = epoch
        if offset - self._recovery_point >= self.config.flush_messages:
            self.flush(now_ms=now)
        return LogAppendInfo(
            first_offset,
            last_offset,
            max_ts,
            offset_of_max_ts,
            log_append_time,
            len(batches),
            num_records,
            size,
            self._log_start_offset,
        )

    @staticmethod
    def _stamp(
        data: bytearray,
        pos: int,
        batch_size: int,
        leader_epoch: int | None,
        log_append_time: int,
        max_timestamp: int,
        epoch: int,
    ) -> tuple[int, int]:
        """Stamp the leader epoch and, for LogAppendTime topics, the append time (which is
        inside the CRC, so the CRC is recomputed). Returns (max timestamp, epoch) as stamped."""
        if leader_epoch is not None:
            set_partition_leader_epoch(data, pos, leader_epoch)
            epoch = leader_epoch
        if log_append_time >= 0:
            attributes = _I16.unpack_from(data, pos + ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_MASK
            _I16.pack_into(data, pos + ATTRIBUTES_OFFSET, attributes)
            set_max_timestamp(data, pos, batch_size, log_append_time)
            max_timestamp = log_append_time
        return max_timestamp, epoch

    def _should_roll(self, message_size: int, last_offset: int, now_ms: int) -> bool:
        segment = self._segments[-1]
        config = self.config
        rolling_base = segment.rolling_base_ms
        if (
            0 < segment.size <= config.segment_bytes - message_size
            and rolling_base is not None
            and now_ms - rolling_base <= config.segment_ms - segment.roll_jitter_ms
            and len(segment.offset_index) < segment.offset_index.max_entries
            and len(segment.time_index) < segment.time_index.max_entries
            and last_offset - segment.base_offset <= INT32_MAX
        ):
            return False  # the usual case, decided in one test
        if segment.size == 0:
            # An empty segment is reused unless the offsets cannot fit its base.
            return last_offset - segment.base_offset > INT32_MAX
        if segment.size > self.config.segment_bytes - message_size:
            return True
        rolling_base = segment.rolling_base_ms
        if rolling_base is not None and (
            now_ms - rolling_base > self.config.segment_ms - segment.roll_jitter_ms
        ):
            return True
        if segment.offset_index.is_full or segment.time_index.is_full:
            return True
        return last_offset - segment.base_offset > INT32_MAX

    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the active one is empty)."""
        self._check_writable()
        with self._io("rolling"):
            return self._roll(self.log_end_offset, _now_ms() if now_ms is None else now_ms)

    def _roll(self, new_base: int, now_ms: int) -> LogSegment:
        new_base = max(new_base, self.log_end_offset)
        active = self.active_segment
        if active.size == 0:
            if active.base_offset == new_base:
                return active
            # Replace a useless empty active segment rather than keep a zero-length one.
            self._segments.pop()
            self._bases.pop()
            active.delete()
        else:
            active.on_become_inactive()
            # Every inactive segment is durable: a crash can then never keep a newer segment
            # while losing the tail of an older one (a silent hole of offsets). Kafka flushes
            # on roll too (asynchronously).
            active.flush()
        segment = LogSegment.create(self.dir, new_base, self.config)
        jitter = self.config.segment_jitter_ms
        segment.roll_jitter_ms = self._random.randrange(jitter) if jitter > 0 else 0
        self._segments.append(segment)
        self._bases.append(new_base)
        self._dir_dirty = True
        self._sync_dir()
        self._recovery_point = max(self._recovery_point, new_base)
        log.debug("%s: rolled new segment at offset %d", self.dir, new_base)
        if self.on_roll is not None:
            self.on_roll(new_base)
        return segment

    # -- read -------------------------------------------------------------------------------

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> FetchSlice | None:
        """Whole batches from the one containing ``start_offset``, within one segment.

        At most ``max_bytes`` (at least the first batch if ``min_one_batch``), only batches whose
        last offset is below ``max_offset`` (the high watermark for consumers). None when there
        is nothing to return; ``OffsetOutOfRangeError`` outside [log start, log end].
        """
        self._check_open()
        leo = self.log_end_offset
        if start_offset < self._log_start_offset or start_offset > leo:
            raise OffsetOutOfRangeError(start_offset, self._log_start_offset, leo)
        if start_offset == leo or (max_offset is not None and start_offset >= max_offset):
            return None
        with self._io("reading"):
            i = max(bisect_right(self._bases, start_offset) - 1, 0)
            while i < len(self._segments):
                segment = self._segments[i]
                found = segment.read(
                    start_offset, max_bytes, max_offset=max_offset, min_one_batch=min_one_batch
                )
                if found is not None:
                    return FetchSlice(
                        os.dup(segment.fd),
                        found.position,
                        found.length,
                        found.first_offset,
                        found.next_offset,
                    )
                if start_offset < segment.next_offset:
                    return None
                i += 1
        return None

    def read_batches(self, start_offset: int, max_offset: int | None = None) -> bytes:
        """All batches from the one containing ``start_offset`` to the end (or ``max_offset``),
        across segments. A convenience for tools and tests; brokers use ``read``."""
        out: list[bytes] = []
        offset = start_offset
        while True:
            sl = self.read(offset, 1 << 62, max_offset=max_offset)
            if sl is None:
                break
            with sl:
                out.append(sl.read_bytes())
            if sl.next_offset <= offset:
                break
            offset = sl.next_offset
            if offset >= self.log_end_offset:
                break
        return b"".join(out)

    # -- offsets by timestamp ---------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """ListOffsets: ``(offset, timestamp)``.

        ``timestamp >= 0``: the first record with timestamp >= it (None if none).
        ``LATEST_TIMESTAMP`` (-1): ``(log_end_offset, -1)`` (callers cap at the high watermark).
        ``EARLIEST_TIMESTAMP`` (-2) / ``EARLIEST_LOCAL_TIMESTAMP`` (-4): ``(log_start_offset, -1)``.
        ``MAX_TIMESTAMP`` (-3): the record with the largest timestamp (None if no timestamps).
        """
        self._check_open()
        with self._io("searching by timestamp"):
            if timestamp == LATEST_TIMESTAMP:
                return self.log_end_offset, -1
            if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
                return self._log_start_offset, -1
            if timestamp == MAX_TIMESTAMP:
                best: LogSegment | None = None
                for segment in self._segments:
                    if segment.max_timestamp >= 0 and (
                        best is None or segment.max_timestamp > best.max_timestamp
                    ):
                        best = segment
                if best is None:
                    return None
                return best.find_offset_by_timestamp(best.max_timestamp, self._log_start_offset)
            if timestamp < 0:
                raise ValueError(f"unsupported ListOffsets timestamp {timestamp}")
            for segment in self._segments:
                if segment.max_timestamp >= timestamp:
                    found = segment.find_offset_by_timestamp(timestamp, self._log_start_offset)
                    if found is not None:
                        return found
            return None

    # -- truncation / log start -------------------------------------------------------------

    def truncate_to(self, offset: int) -> bool:
        """Follower truncation: remove everything at ``offset`` and after (durably).

        Returns True if anything was removed. A batch containing ``offset`` goes whole.
        """
        self._check_writable()
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        if offset >= self.log_end_offset:
            # No records go, but an epoch this replica opened as leader without writing to it
            # sits at the log end and must: a follower that keeps it asks the next leader for
            # it again and again (KIP-279), and never fetches. Kafka's UnifiedLog.truncateTo
            # does the same.
            if self.leader_epoch_cache is not None:
                self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
            return False
        if offset <= self._segments[0].base_offset:
            self.truncate_fully_and_start_at(offset)
            return True
        with self._io("truncating"):
            while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
                segment = self._segments.pop()
                self._bases.pop()
                segment.delete()
                self._dir_dirty = True
            self.active_segment.truncate_to(offset)
            if self._dir_dirty:
                self._sync_dir()
        self._truncations += 1
        leo = self.log_end_offset
        self._log_start_offset = min(self._log_start_offset, leo)
        self._recovery_point = min(self._recovery_point, leo)
        if self.leader_epoch_cache is not None:
            self.leader_epoch_cache.truncate_from_end(leo)
        log.info("%s: truncated to offset %d (log end offset now %d)", self.dir, offset, leo)
        return True

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and start an empty log at ``offset``."""
        self._check_writable()
        if offset < 0:
            raise ValueError(f"cannot start a log at negative offset {offset}")
        with self._io("truncating fully"):
            for segment in reversed(self._segments):
                segment.delete()
            self._segments = [LogSegment.create(self.dir, offset, self.config)]
            self._bases = [offset]
            fsync_dir(self.dir)
            self._dir_dirty = False
        self._truncations += 1
        self._log_start_offset = offset
        self._recovery_point = offset
        if self.leader_epoch_cache is not None:
            self.leader_epoch_cache.clear()
        log.info("%s: truncated fully, log now starts at offset %d", self.dir, offset)

    def maybe_increment_log_start_offset(self, offset: int) -> bool:
        """Move the log start forward to ``offset`` (<= log end offset) and delete the segments
        wholly below it (never the active one). True if it moved. (A follower after its
        leader's log start; the metadata log below its snapshot.)"""
        self._check_writable()
        leo = self.log_end_offset
        if offset > leo:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, leo)
        if offset <= self._log_start_offset:
            return False
        self._log_start_offset = offset
        if self.leader_epoch_cache is not None:
            self.leader_epoch_cache.truncate_from_start(offset)
        with self._io("deleting segments below the log start offset"):
            self._delete_segments(self._log_start_breached_segments(), "log start offset")
        return True

    # -- retention --------------------------------------------------------------------------

    def delete_retention_segments(
        self, now_ms: int | None = None, *, high_watermark: int | None = None
    ) -> int:
        """Delete segments breaching the log start offset, and, for cleanup.policy=delete,
        retention.ms and retention.bytes. Only data below ``high_watermark`` (default: log end)
        is deleted. Returns the number of segments deleted."""
        self._check_writable()
        now = _now_ms() if now_ms is None else now_ms
        leo = self.log_end_offset
        hw = leo if high_watermark is None else min(high_watermark, leo)
        deleted = 0
        with self._io("deleting retention segments"):
            deleted += self._delete_segments(
                self._log_start_breached_segments(), "log start offset"
            )
            if self.config.delete_enabled:
                if self.config.retention_ms >= 0:
                    retention_ms = self.config.retention_ms
                    deleted += self._delete_segments(
                        self._deletable_segments(
                            lambda s: now - s.largest_timestamp > retention_ms, hw, True
                        ),
                        f"retention.ms {retention_ms}",
                        now,
                    )
                if self.config.retention_bytes >= 0:
                    diff = self.size_bytes - self.config.retention_bytes

                    def over_size(segment: LogSegment) -> bool:
                        nonlocal diff
                        if diff - segment.size >= 0:
                            diff -= segment.size
                            return True
                        return False

                    deleted += self._delete_segments(
                        self._deletable_segments(over_size, hw, False),
                        f"retention.bytes {self.config.retention_bytes}",
                        now,
                    )
        return deleted

    def _deletable_segments(
        self, predicate: Callable[[LogSegment], bool], high_watermark: int, allow_active: bool
    ) -> list[LogSegment]:
        result: list[LogSegment] = []
        for i, segment in enumerate(self._segments):
            is_last = i == len(self._segments) - 1
            if is_last and (not allow_active or segment.size == 0):
                break
            upper = self.log_end_offset if is_last else self._segments[i + 1].base_offset
            if upper > high_watermark or not predicate(segment):
                break
            result.append(segment)
        return result

    def _log_start_breached_segments(self) -> list[LogSegment]:
        result: list[LogSegment] = []
        for i in range(len(self._segments) - 1):
            if self._segments[i + 1].base_offset <= self._log_start_offset:
                result.append(self._segments[i])
            else:
                break
        return result

    def _delete_segments(
        self, segments: list[LogSegment], reason: str, now_ms: int | None = None
    ) -> int:
        if not segments:
            return 0
        if len(segments) == len(self._segments):
            # Kafka: roll first so the log keeps an active segment.
            self._roll(self.log_end_offset, _now_ms() if now_ms is None else now_ms)
        for segment in segments:
            assert segment is self._segments[0]
            self._segments.pop(0)
            self._bases.pop(0)
            log.info(
                "%s: deleting segment %d (%d bytes) due to %s",
                self.dir, segment.base_offset, segment.size, reason,
            )
            segment.delete()
        # No directory fsync: a deleted segment that reappears after a crash is deleted again.
        new_start = max(self._log_start_offset, self._segments[0].base_offset)
        if new_start != self._log_start_offset:
            self._log_start_offset = new_start
            if self.leader_epoch_cache is not None:
                self.leader_epoch_cache.truncate_from_start(new_start)
        return len(segments)

    # -- durability -------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None, *, now_ms: int | None = None) -> None:
        """fsync every segment with unflushed data below ``up_to_offset`` (default: log end)
        and advance ``recovery_point`` to it."""
        self._check_writable()
        leo = self.log_end_offset
        target = leo if up_to_offset is None else min(up_to_offset, leo)
        with self._io("flushing"):
            for segment in self._segments:
                if segment.base_offset >= target:
                    break
                if segment.dirty:
                    segment.flush()
            if self._dir_dirty:
                self._sync_dir()
        self._recovery_point = max(self._recovery_point, target)
        self.last_flush_ms = _now_ms() if now_ms is None else now_ms

    def begin_flush(self) -> LogFlushJob:
        """Start a flush whose fsyncs can run in another thread (group commit).

        Call on the log's own thread; run ``job.run()`` anywhere (it only fsyncs duplicated
        descriptors, so appends, rolls and retention may go on meanwhile), then call
        ``job.finish(ok)`` on the log's thread again to advance ``recovery_point``.
        """
        self._check_writable()
        target = self.log_end_offset
        fds: list[int] = []
        marks: list[tuple[LogSegment, int, int, int]] = []
        try:
            for segment in self._segments:
                if segment.base_offset >= target:
                    break
                if not segment.dirty:
                    continue
                segment.offset_index.write_pending()
                segment.time_index.write_pending()
                fds.extend(os.dup(fd) for fd in segment.flush_fds())
                marks.append(
                    (
                        segment,
                        segment.size,
                        segment.offset_index.size_bytes,
                        segment.time_index.size_bytes,
                    )
                )
        except OSError as e:
            for fd in fds:
                os.close(fd)
            err = self._io_error("flushing", e)
            if err is e:
                raise
            raise err from e
        return LogFlushJob(self, target, fds, marks, self._truncations)

    def _finish_flush(self, job: LogFlushJob, ok: bool) -> None:
        if not ok:
            self._io_error("flushing", OSError(errno.EIO, "fsync failed"))
            return
        if job.truncations != self._truncations or self._closed:
            return  # the log changed under the job: claim nothing
        for segment, log_size, oi_size, ti_size in job.marks:
            segment.flushed_size = max(segment.flushed_size, log_size)
            segment.offset_index.flushed_size = max(segment.offset_index.flushed_size, oi_size)
            segment.time_index.flushed_size = max(segment.time_index.flushed_size, ti_size)
        self._recovery_point = max(self._recovery_point, job.target)
        self.last_flush_ms = _now_ms()

    def install_segments(self, segments: list[LogSegment]) -> None:
        """Replace the segment list after compaction swapped files in. The active segment and
        the offsets covered stay the same; only inactive segments change."""
        assert segments and segments[-1] is self._segments[-1], "the active segment must stay"
        assert all(a.base_offset < b.base_offset for a, b in itertools.pairwise(segments))
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    def flush_if_due(self, now_ms: int | None = None) -> bool:
        """Apply flush.ms: flush if that long has passed since the last flush."""
        now = _now_ms() if now_ms is None else now_ms
        if now - self.last_flush_ms >= self.config.flush_ms and self.unflushed_messages > 0:
            self.flush(now_ms=now)
            return True
        return False

    def _sync_dir(self) -> None:
        # Never make a newer segment's directory entry durable while an older segment still
        # has unsynced data: a crash would then keep the newer one and leave a hole.
        for segment in self._segments[:-1]:
            if segment.dirty:
                segment.flush()
        fsync_dir(self.dir)
        self._dir_dirty = False

    def durable_file_sizes(self) -> dict[Path, int]:
        """For fault injection: each segment file and its length as of its last fsync.

        Truncating every file to this length simulates losing unsynced writes. Every segment
        file's directory entry is already durable (segment creation fsyncs the directory).
        """
        out: dict[Path, int] = {}
        for segment in self._segments:
            out[segment.log_path] = segment.flushed_size
            out[segment.offset_index.path] = segment.offset_index.flushed_size
            out[segment.time_index.path] = segment.time_index.flushed_size
        return out

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every file. Does not fsync: call ``flush()`` first for a clean shutdown."""
        if self._closed:
            return
        self._closed = True
        errors: list[OSError] = []
        for segment in self._segments:
            try:
                segment.close()
            except OSError as e:
                errors.append(e)
        if errors:
            raise LogDirOfflineError(f"I/O error closing log {self.dir}: {errors[0]}")

    def delete(self) -> None:
        """Close and remove the whole log directory."""
        for segment in self._segments:
            try:
                segment.delete()
            except OSError:
                pass
        self._closed = True
        try:
            fsync_journal.rmtree(self.dir)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise LogDirOfflineError(f"I/O error deleting log {self.dir}: {e}") from e

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.dir}, start={self._log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self._segments)})"
        )

    # -- helpers ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"log {self.dir} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._offline:
            raise LogDirOfflineError(f"log {self.dir} is offline after an earlier I/O error")

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            err = self._io_error(what, e)
            if err is e:
                raise
            raise err from e

    def _io_error(self, what: str, e: OSError) -> OSError | LogDirOfflineError:
        """The error to raise for an I/O failure; takes the log offline unless it is only a
        shortage of file descriptors."""
        if e.errno in (errno.EMFILE, errno.ENFILE):
            return e
        self._offline = True
        log.error("%s: I/O error while %s: %s; taking the log offline", self.dir, what, e)
        return LogDirOfflineError(f"I/O error while {what} in {self.dir}: {e}")


# -- opening helpers ------------------------------------------------------------------------


def _unlink(path: Path) -> None:
    try:
        fsync_journal.unlink(path)
    except FileNotFoundError:
        pass


def _clean_leftovers(directory: Path) -> bool:
    """Remove ``.deleted``/``.cleaned``/segment ``.tmp`` files, finish ``.swap`` files, and drop
    index files without a ``.log``. Returns True if anything changed."""
    changed = False
    names = os.listdir(directory)
    for name in names:
        if parse_segment_base_offset(name) is None:
            continue
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, TMP_SUFFIX)):
            log.info("%s: removing leftover %s", directory, name)
            _unlink(directory / name)
            changed = True
        elif name.endswith(SWAP_SUFFIX) and not name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            _unlink(directory / name)  # index swap files: the indexes are rebuilt
            changed = True
    for name in sorted(os.listdir(directory)):
        if name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            base = parse_segment_base_offset(name)
            assert base is not None
            _complete_swap(directory, base)
            changed = True
    names = os.listdir(directory)
    log_bases = {
        parse_segment_base_offset(n) for n in names if n.endswith(LOG_SUFFIX)
    }
    for name in names:
        if name.endswith((INDEX_SUFFIX, TIME_INDEX_SUFFIX)):
            base = parse_segment_base_offset(name)
            if base is not None and base not in log_bases:
                log.info("%s: removing orphan index %s", directory, name)
                _unlink(directory / name)
                changed = True
    return changed


def _complete_swap(directory: Path, base: int) -> None:
    """A ``.log.swap`` is a finished compaction output replacing the segments it covers."""
    swap_path = directory / (segment_file_name(base, LOG_SUFFIX) + SWAP_SUFFIX)
    fd = os.open(swap_path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        next_offset = base
        pos = 0
        while pos < size:
            try:
                header = parse_header(os.pread(fd, 61, pos))
            except Exception:  # noqa: BLE001 - a torn swap file is recovered later
                break
            next_offset = header.next_offset
            pos += header.size
    finally:
        os.close(fd)
    for name in os.listdir(directory):
        other = parse_segment_base_offset(name)
        if other is None or not name.endswith((LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)):
            continue
        if base <= other < max(next_offset, base + 1):
            _unlink(directory / name)
    fsync_journal.rename(swap_path, directory / segment_file_name(base, LOG_SUFFIX))
    log.info("%s: completed swap of segment %d (offsets up to %d)", directory, base, next_offset)


def _open_segments(directory: Path, config: LogConfig, now_ms: int) -> list[LogSegment]:
    bases = sorted(
        base
        for name in os.listdir(directory)
        if name.endswith(LOG_SUFFIX) and (base := parse_segment_base_offset(name)) is not None
    )
    segments: list[LogSegment] = []
    try:
        for base in bases:
            segments.append(LogSegment.open(directory, base, config, now_ms=now_ms))
    except BaseException:
        for segment in segments:
            segment.close()
        raise
    return segments


def _recover_segments(
    directory: Path, segments: list[LogSegment], recovery_point: int
) -> tuple[list[LogSegment], bool]:
    """Recover the segments that may hold unflushed data; cut the log at the first damage."""
    changed = False
    i = 0
    while i < len(segments):
        segment = segments[i]
        is_last = i == len(segments) - 1
        if segment.needs_recovery:
            need = True
        elif is_last:
            try:
                end = segment.next_offset
                need = end > recovery_point or not segment.indexes_fit(end)
            except (CorruptRecordError, InvalidRecordError):
                need = True
        else:
            end = segments[i + 1].base_offset
            need = end > recovery_point or not segment.indexes_fit(end)
        if need:
            result = segment.recover()
            if result.truncated_bytes:
                changed = True
                log.warning(
                    "%s: recovery truncated %s at position %d, removing %d bytes: %s",
                    directory, segment.log_path.name, result.position, result.truncated_bytes,
                    result.reason,
                )
                later = segments[i + 1 :]
                for other in later:
                    log.warning(
                        "%s: deleting segment %s (%d bytes) after the corruption in %s",
                        directory, other.log_path.name, other.size, segment.log_path.name,
                    )
                    other.delete()
                del segments[i + 1 :]
            elif not is_last and segment.next_offset < segments[i + 1].base_offset:
                # Legitimate after follower appends with offset gaps (or compaction): rolls
                # fsync the old segment, so this is not lost data.
                log.info(
                    "%s: segment %s ends at offset %d but the next segment starts at %d",
                    directory, segment.log_path.name, segment.next_offset,
                    segments[i + 1].base_offset,
                )
        i += 1
    return segments, changed
