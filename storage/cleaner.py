"""Log compaction for ``cleanup.policy=compact`` (and ``compact,delete``): Kafka's ``LogCleaner``.

One cleaning of a partition log, as in Kafka:

1. **Range.** The *dirty section* is ``[first_dirty, first_uncleanable)``. ``first_dirty`` comes
   from the caller's ``cleaner-offset-checkpoint`` (reset to the log start when missing, below the
   log start or past the log end). ``first_uncleanable`` is the smallest of: the active segment's
   base offset (never touched), the base of the segment containing ``last_stable_offset`` (the
   caller passes min(high watermark, first unstable offset): data that may still be truncated must
   not make older data disappear), and the base of the first dirty segment whose largest timestamp
   is newer than ``now - min.compaction.lag.ms``.
2. **Offset map.** key -> last offset of that key over the dirty section, built in offset order
   from non-control, non-transactional batches. It is bounded (``dedupe_buffer_size`` bytes,
   Kafka's ``log.cleaner.dedupe.buffer.size``, counting ``len(key) + 100`` per entry); when full,
   the cleaned range stops at a batch boundary and the next cleaning carries on from there.
   ``end`` (the end of the cleaned range, checkpointed by the caller as the next first dirty
   offset) is where the map stopped, else ``first_uncleanable``.
3. **Rewrite** every segment with base offset < ``end``, from the first one, in groups of
   consecutive segments whose total size fits ``segment.bytes`` (and whose offsets fit one
   segment); each group becomes one new segment with the group's first base offset. Per record:

   - offset >= ``end`` (tail of the last segment when the map filled): kept, batch copied as is;
   - control batches and transactional batches: kept whole, copied as is (no abort tracking:
     aborted transactional data and transaction markers are never removed, and transactional
     records are neither removed nor used to supersede older records -- safe for both isolation
     levels, less compact than Kafka);
   - keyless records: kept (Kafka rejects them at produce time on compacted topics and its
     cleaner drops them; we never lose data silently);
   - a keyed record is removed if the map holds a later offset for its key;
   - a tombstone (null value) that is the latest for its key is kept until its delete horizon
     passes (KIP-534): the first cleaning that keeps it rewrites its batch with the
     delete-horizon attribute and ``base_timestamp = now + delete.retention.ms``; a later
     cleaning with ``now >= horizon`` removes it.

   Offsets are preserved: a rewritten batch keeps its base offset and ``last_offset_delta`` (so
   its last offset and last sequence survive, as Kafka does for producer state), its producer id,
   epoch and base sequence, partition leader epoch, timestamp type, and its compression codec
   (retained records are recompressed with the batch's own codec, default level). A batch whose
   records all stay (and needs no new horizon) is copied byte for byte, never recompressed.
   A batch left with no records is dropped, except (a) the last batch of each group, kept as an
   empty batch (no records, same offset range) so the new segment ends at exactly the offset the
   old group ended at -- ``PartitionLog.open`` finishes an interrupted swap by deleting the old
   segments in ``[swap base, swap end)``, so the swap must cover the whole group -- and (b) the
   last batch of a producer id within the rewritten range (Kafka keeps it for producer state; we
   cannot see later batches in the uncleanable range, so this may keep a few more than Kafka).
   A group that changes nothing (a single segment, every batch copied) is not swapped.

Phases and threads:

- ``log_to_clean(log, ...)`` -- on the log's owner (event loop), cheap: computes the range and
  duplicates the fds of the segments to read (``os.dup``: later deletion or retention of those
  segments cannot pull the file from under the cleaner).
- ``prepare_clean(to_clean, ...)`` -- the heavy part, safe in a worker thread: it reads only its
  own fds of immutable (non-active) segments and writes ``<base>.log.cleaned`` / ``.index.cleaned``
  / ``.timeindex.cleaned`` files (fsynced). It never touches the ``PartitionLog``.
- ``commit_clean(log, plan)`` -- on the owner, short: checks that the segments it replaces are
  still the same (same objects, same sizes, not the active segment; a prefix of whole groups
  deleted meanwhile by retention is tolerated and skipped), else deletes the plan's files and
  raises ``CleanAbortedError``. Then swaps (below). Cost: a few renames and 2 + groups dir fsyncs.
- ``clean_log`` runs all three. One cleaning per log directory at a time (enforced).

Crash safety (Kafka's ``.cleaned``/``.swap`` protocol, which ``PartitionLog.open`` recovers:
``.cleaned`` and index ``.swap`` files are deleted, a ``.log.swap`` replaces the segments in its
offset range). For each group in offset order: rename its index files ``.cleaned -> .swap``, then
its log ``.cleaned -> .swap`` (the group's commit point), fsync the directory. Then delete every
old segment, fsync the directory; then rename every ``.swap`` to its final name, fsync the
directory. A crash before a group's ``.log.swap`` exists leaves that group old (its files are
leftovers); from then on recovery completes its swap, deleting whatever old files remain in its
range (the fsync before deleting the old segments makes sure a new ``.log`` can never coexist
with a resurrected old segment). The ``.cleaned`` files are fsynced before any rename.

So after a crash each group is old or new, and the new groups are a prefix. That mixed state
loses nothing: a record is removed from a group only because of a later record of its key in the
same or a later group (still present: a later group is old, or new and keeps it), or because it
is an expired tombstone -- whose older records were removed by the cleaning that set its horizon.
The caller's checkpoint is only written after ``commit_clean`` returns, so the next cleaning
redoes the same range.

``Throttler`` bounds the cleaner's I/O (read and written bytes), Kafka's
``log.cleaner.io.max.bytes.per.second``; one instance can be shared by several cleaner threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from storage import fsync_journal
from storage.errors import CorruptRecordError, LogDirOfflineError, StorageError
from storage.fileutil import fsync_dir
from storage.index import OffsetIndex, TimeIndex
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.record_batch import (
    HEADER_SIZE,
    NO_PRODUCER_ID,
    BatchHeader,
    parse_header,
    validate_batch,
)
from storage.records import (
    TIMESTAMP_TYPE_CREATE_TIME,
    TIMESTAMP_TYPE_LOG_APPEND_TIME,
    Record,
    build_batch,
    decode_batch,
)
from storage.segment import (
    CLEANED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# Kafka's log.cleaner.dedupe.buffer.size and log.cleaner.io.buffer.size defaults.
DEFAULT_DEDUPE_BUFFER_SIZE = 128 * 1024 * 1024
DEFAULT_IO_BUFFER_SIZE = 512 * 1024
# Approximate bytes of one offset-map entry besides its key (dict slot, bytes and int objects).
MAP_ENTRY_OVERHEAD = 100

_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX)  # rename order: the .log last


class CleanAbortedError(StorageError):
    """The cleaning was abandoned (the log changed meanwhile, or another cleaning of the same
    log is in progress). Nothing changed; try again later."""


# -- I/O throttling -------------------------------------------------------------------------


class Throttler:
    """Sleep to keep a byte rate under ``bytes_per_second`` (Kafka's ``Throttler``).

    Call ``maybe_throttle(n)`` after each read or write of ``n`` bytes. Every ``check_interval_s``
    of clock time (or as soon as the bytes seen would take that long at the desired rate) it
    compares the bytes seen with the time spent and sleeps off the difference, then starts a new
    period -- so bursts are bounded by one interval's worth and idle time is not banked.
    Thread-safe; a shared instance bounds the sum over its users (the sleeping thread holds the
    lock, as in Kafka). ``clock`` returns seconds; ``sleep`` takes seconds.
    """

    def __init__(
        self,
        bytes_per_second: float,
        *,
        check_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not bytes_per_second > 0:
            raise ValueError(f"bytes_per_second must be positive, not {bytes_per_second}")
        self.bytes_per_second = float(bytes_per_second)
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._period_start = clock()
        self._observed = 0.0
        self.total_bytes = 0
        self.total_sleep_s = 0.0

    def maybe_throttle(self, observed: int) -> None:
        if observed <= 0:
            return
        with self._lock:
            self.total_bytes += observed
            if self.bytes_per_second == float("inf"):
                return
            self._observed += observed
            elapsed = self._clock() - self._period_start
            due = self._observed / self.bytes_per_second  # seconds the bytes should have taken
            if elapsed > self.check_interval_s or due > self.check_interval_s:
                if due > elapsed:
                    self._sleep(due - elapsed)
                    self.total_sleep_s += due - elapsed
                self._period_start = self._clock()
                self._observed = 0.0

    __call__ = maybe_throttle


def _no_throttle(_n: int) -> None:
    pass


# -- one cleaning per directory ---------------------------------------------------------------

_in_progress: set[str] = set()
_in_progress_lock = threading.Lock()


class _Lease:
    """Marks a log directory as being cleaned (Kafka's LogCleanerManager in-progress state)."""

    def __init__(self, directory: Path) -> None:
        self.key = os.path.realpath(directory)
        with _in_progress_lock:
            if self.key in _in_progress:
                raise CleanAbortedError(f"a cleaning of {directory} is already in progress")
            _in_progress.add(self.key)
        self.released = False

    def release(self) -> None:
        with _in_progress_lock:
            if not self.released:
                _in_progress.discard(self.key)
                self.released = True


# -- the cleanable range ----------------------------------------------------------------------


def cleanable_offsets(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    now_ms: int,
    *,
    last_stable_offset: int | None = None,
) -> tuple[int, int]:
    """``(first_dirty, first_uncleanable)``, as Kafka's ``LogCleanerManager.cleanableOffsets``.

    ``first_dirty`` is the checkpoint, or the log start when it is missing, below the log start
    or past the log end. ``first_uncleanable`` is always a segment base offset (see module doc);
    it may be below ``first_dirty`` (then there is nothing dirty to clean).
    """
    start = log_.log_start_offset
    leo = log_.log_end_offset
    first_dirty = first_dirty_offset
    if first_dirty is None or first_dirty < start or first_dirty > leo:
        if first_dirty is not None:
            log.warning(
                "%s: cleaner checkpoint %d is outside [%d, %d]; cleaning from the log start",
                log_.dir, first_dirty, start, leo,
            )
        first_dirty = start
    segments = log_.segments
    uncleanable = segments[-1].base_offset
    if last_stable_offset is not None and last_stable_offset < uncleanable:
        # The segment containing the last stable offset is not cleaned either (as in Kafka).
        uncleanable = segments[0].base_offset
        for segment in segments:
            if segment.base_offset <= last_stable_offset:
                uncleanable = segment.base_offset
            else:
                break
    lag = log_.config.min_compaction_lag_ms
    if lag > 0:
        for i, segment in enumerate(segments[:-1]):
            if segment.base_offset >= uncleanable:
                break
            if segments[i + 1].base_offset <= first_dirty:
                continue  # wholly clean
            if segment.largest_timestamp > now_ms - lag:
                uncleanable = segment.base_offset
                break
    return first_dirty, uncleanable


def _clean_and_dirty_bytes(
    log_: PartitionLog, first_dirty: int, uncleanable: int
) -> tuple[int, int, list[LogSegment]]:
    segments = log_.segments
    clean = dirty = 0
    dirty_segments: list[LogSegment] = []
    for i, segment in enumerate(segments[:-1]):
        if segment.base_offset >= uncleanable:
            break
        if segments[i + 1].base_offset <= first_dirty:
            clean += segment.size
        else:
            dirty += segment.size
            dirty_segments.append(segment)
    return clean, dirty, dirty_segments


def dirty_ratio(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    *,
    now_ms: int | None = None,
    last_stable_offset: int | None = None,
) -> float:
    """Cleanable (dirty) bytes / (clean + cleanable bytes), by whole segments, as Kafka's
    ``LogToClean.cleanableRatio``. 0.0 when there is nothing below the uncleanable offset."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    first_dirty, uncleanable = cleanable_offsets(
        log_, first_dirty_offset, now, last_stable_offset=last_stable_offset
    )
    clean, dirty, _ = _clean_and_dirty_bytes(log_, first_dirty, uncleanable)
    total = clean + dirty
    return dirty / total if total else 0.0


def needs_cleaning(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    now_ms: int,
    *,
    last_stable_offset: int | None = None,
    earliest_delete_horizon_ms: int | None = None,
) -> bool:
    """Should the cleaner pick this log now (Kafka's ``grabFilthiestCompactedLog`` filter)?

    True for a compacted log with dirty bytes and either ``dirty_ratio >=
    min.cleanable.dirty.ratio`` or a dirty segment whose first batch is older than
    ``max.compaction.lag.ms``; or when a tombstone's delete horizon has passed (KIP-534).
    ``earliest_delete_horizon_ms``: the value from the last ``CleanResult`` for this log; when
    None the cleanable segments' batch headers are scanned for it (one small read per batch).
    """
    config = log_.config
    if not config.compact_enabled:
        return False
    first_dirty, uncleanable = cleanable_offsets(
        log_, first_dirty_offset, now_ms, last_stable_offset=last_stable_offset
    )
    clean, dirty, dirty_segments = _clean_and_dirty_bytes(log_, first_dirty, uncleanable)
    if dirty > 0:
        if dirty / (clean + dirty) >= config.min_cleanable_dirty_ratio:
            return True
        if config.max_compaction_lag_ms < INT64_MAX:
            for segment in dirty_segments:
                for _, header in segment.iter_headers():
                    ts = header.max_timestamp
                    if ts > 0 and now_ms - ts > config.max_compaction_lag_ms:
                        return True
                    break
    horizon = earliest_delete_horizon_ms
    if horizon is None:
        horizon = earliest_delete_horizon(log_, uncleanable)
    return horizon is not None and now_ms >= horizon


def earliest_delete_horizon(log_: PartitionLog, below_offset: int | None = None) -> int | None:
    """The earliest delete horizon of a (non-control) batch in non-active segments with base
    offset < ``below_offset``; None if no batch has one. Header reads only."""
    segments = log_.segments[:-1]
    best: int | None = None
    for segment in segments:
        if below_offset is not None and segment.base_offset >= below_offset:
            break
        for _, header in segment.iter_headers():
            if (
                header.has_delete_horizon
                and not header.is_control
                and (best is None or header.base_timestamp < best)
            ):
                best = header.base_timestamp
    return best


# -- phase 1: what to clean (owner thread) ---------------------------------------------------


@dataclass(slots=True)
class _SegmentRef:
    segment: LogSegment  # only for the identity check at commit; never used off the owner
    base_offset: int
    size: int
    upper_offset: int  # the next segment's base: every offset here is below it
    fd: int  # our own os.dup of the segment's fd
    mtime_ns: int
    name: str


class LogToClean:
    """What one cleaning will read: the range and duplicated fds of the non-active segments
    below the uncleanable offset. Made by ``log_to_clean`` on the log's owner; consumed by
    ``prepare_clean`` (which closes it). ``close()`` it if you do not prepare."""

    def __init__(
        self,
        log_: PartitionLog,
        directory: Path,
        config: LogConfig,
        now_ms: int,
        first_dirty_offset: int,
        first_uncleanable_offset: int,
        refs: list[_SegmentRef],
        dirty_index: int,
        dirty_position: int,
        lease: _Lease,
    ) -> None:
        self.log = log_
        self.dir = directory
        self.config = config
        self.now_ms = now_ms
        self.first_dirty_offset = first_dirty_offset
        self.first_uncleanable_offset = first_uncleanable_offset
        self.refs = refs
        self.dirty_index = dirty_index  # first ref holding dirty data
        self.dirty_position = dirty_position  # position of the first dirty batch in it
        self.lease: _Lease | None = lease

    def close(self) -> None:
        for ref in self.refs:
            if ref.fd >= 0:
                os.close(ref.fd)
                ref.fd = -1
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_to_clean(
    log_: PartitionLog,
    *,
    now_ms: int,
    first_dirty_offset: int | None = None,
    last_stable_offset: int | None = None,
) -> LogToClean:
    """Phase 1 (on the log's owner): choose the range and take private fds of its segments."""
    if not log_.config.compact_enabled:
        raise ValueError(f"{log_.dir}: cleanup.policy {sorted(log_.config.cleanup_policy)} "
                         "does not include compact")
    log_._check_writable()
    first_dirty, uncleanable = cleanable_offsets(
        log_, first_dirty_offset, now_ms, last_stable_offset=last_stable_offset
    )
    lease = _Lease(log_.dir)
    refs: list[_SegmentRef] = []
    try:
        segments = log_.segments
        dirty_index = dirty_position = -1
        with log_._io("starting a cleaning"):
            for i, segment in enumerate(segments[:-1]):
                if segment.base_offset >= uncleanable:
                    break
                upper = segments[i + 1].base_offset
                fd = os.dup(segment.fd)
                refs.append(
                    _SegmentRef(
                        segment, segment.base_offset, segment.size, upper, fd,
                        os.fstat(fd).st_mtime_ns, segment.log_path.name,
                    )
                )
                if dirty_index < 0 and upper > first_dirty:
                    dirty_index = len(refs) - 1
                    found = segment.translate_offset(first_dirty)
                    dirty_position = segment.size if found is None else found[0]
    except BaseException:
        for ref in refs:
            os.close(ref.fd)
        lease.release()
        raise
    if dirty_index < 0:
        dirty_index, dirty_position = len(refs), 0
    return LogToClean(
        log_, Path(log_.dir), log_.config, now_ms, first_dirty, uncleanable, refs,
        dirty_index, dirty_position, lease,
    )


# -- phase 2: read, map, write .cleaned files (any thread) --------------------------------------


@dataclass(slots=True)
class CleanStats:
    bytes_read: int = 0
    bytes_written: int = 0
    batches_read: int = 0
    records_read: int = 0  # records decoded in the rewrite pass
    records_removed: int = 0
    tombstones_removed: int = 0
    batches_removed: int = 0
    empty_batches_kept: int = 0
    horizons_set: int = 0  # batches given a delete horizon
    map_entries: int = 0


@dataclass(slots=True)
class _Group:
    refs: list[_SegmentRef]
    base_offset: int
    # None when the group changed nothing and is not swapped.
    paths: dict[str, Path] | None = None
    size: int = 0


@dataclass(slots=True)
class CleanPlan:
    """The result of ``prepare_clean``: written ``.cleaned`` segments waiting for
    ``commit_clean`` (or ``abort()``)."""

    log: PartitionLog
    dir: Path
    now_ms: int
    first_dirty_offset: int
    next_dirty_offset: int
    first_uncleanable_offset: int
    end_offset: int  # records at/after it were copied as they were
    groups: list[_Group]
    stats: CleanStats
    earliest_delete_horizon_ms: int | None
    lease: _Lease | None
    elapsed_s: float = 0.0
    done: bool = field(default=False)

    @property
    def changed(self) -> bool:
        return any(g.paths is not None for g in self.groups)

    def abort(self) -> None:
        """Delete the plan's files and end the cleaning (idempotent)."""
        for group in self.groups:
            if group.paths is not None:
                for path in group.paths.values():
                    _unlink(path)
                group.paths = None
        self._finish()

    def _finish(self) -> None:
        self.done = True
        if self.lease is not None:
            self.lease.release()
            self.lease = None


def _unlink(path: Path) -> None:
    try:
        fsync_journal.unlink(path)
    except FileNotFoundError:
        pass


def _pread_exact(fd: int, size: int, position: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.pread(fd, size - got, position + got)
        if not chunk:
            raise CleanAbortedError(
                f"short read at {position + got}: the segment shrank during cleaning"
            )
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _iter_batches(
    ref: _SegmentRef,
    start: int,
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
) -> Iterator[tuple[BatchHeader, memoryview]]:
    """(header, whole batch bytes) of each batch of ``ref`` from position ``start``, read in
    ``io_buffer_size`` chunks. The view stays valid after the next item (buffers are not reused).
    Lengths and magic are checked here; CRCs by the caller (``validate_batch``/``decode_batch``).
    """
    end = ref.size
    pos = start
    buf = b""
    buf_start = pos
    chunk = max(io_buffer_size, HEADER_SIZE)
    while pos < end:
        rel = pos - buf_start
        if rel + HEADER_SIZE > len(buf):
            if end - pos < HEADER_SIZE:
                raise CorruptRecordError(f"{ref.name}: torn batch header at position {pos}")
            buf = _pread_exact(ref.fd, min(chunk, end - pos), pos)
            buf_start, rel = pos, 0
            stats.bytes_read += len(buf)
            throttle(len(buf))
        header = parse_header(buf, rel)
        if rel + header.size > len(buf):
            if pos + header.size > end:
                raise CorruptRecordError(
                    f"{ref.name}: batch at position {pos} declares {header.size} bytes, only "
                    f"{end - pos} present"
                )
            buf = _pread_exact(ref.fd, min(max(header.size, chunk), end - pos), pos)
            buf_start, rel = pos, 0
            stats.bytes_read += len(buf)
            throttle(len(buf))
        stats.batches_read += 1
        yield header, memoryview(buf)[rel : rel + header.size]
        pos += header.size


def _iter_headers(
    ref: _SegmentRef, throttle: Callable[[int], None], stats: CleanStats
) -> Iterator[BatchHeader]:
    """Batch headers only (one small read each)."""
    pos = 0
    while pos < ref.size:
        data = os.pread(ref.fd, HEADER_SIZE, pos)
        stats.bytes_read += len(data)
        throttle(len(data))
        header = parse_header(data)
        yield header
        pos += header.size


class _CleanedSegmentWriter:
    """Writes one new segment as ``<base>.log.cleaned`` + ``.index.cleaned`` +
    ``.timeindex.cleaned``, through a ``LogSegment`` so indexes are built exactly as appends
    build them."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        io_buffer_size: int,
        throttle: Callable[[int], None],
        stats: CleanStats,
    ) -> None:
        self.paths = {
            suffix: directory / (segment_file_name(base_offset, suffix) + CLEANED_SUFFIX)
            for suffix in _SUFFIXES
        }
        for path in self.paths.values():
            _unlink(path)  # a leftover of an earlier, failed attempt in this process
        self._throttle = throttle
        self._stats = stats
        self._flush_at = max(io_buffer_size, 1)
        self._buf = bytearray()
        self._headers: list[tuple[int, BatchHeader]] = []
        self._last_offset = base_offset
        self.batches = 0
        fd = os.open(self.paths[LOG_SUFFIX], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        offset_index: OffsetIndex | None = None
        try:
            offset_index = OffsetIndex.open_empty(
                self.paths[INDEX_SUFFIX], base_offset, config.max_index_entries
            )
            time_index = TimeIndex.open_empty(
                self.paths[TIME_INDEX_SUFFIX], base_offset, config.max_time_index_entries
            )
        except BaseException:
            if offset_index is not None:
                offset_index.close()
            os.close(fd)
            self.discard()
            raise
        self.segment = LogSegment(
            directory, base_offset, config, fd, offset_index, time_index, 0, None
        )

    def write(self, header: BatchHeader, data: bytes | memoryview) -> None:
        self._headers.append((len(self._buf), header))
        self._buf += data
        self._last_offset = header.last_offset
        self.batches += 1
        if len(self._buf) >= self._flush_at:
            self._flush_buffer()

    def _flush_buffer(self) -> None:
        if not self._buf:
            return
        self.segment.append(self._last_offset, -1, -1, self._buf, headers=self._headers)
        self._stats.bytes_written += len(self._buf)
        self._throttle(len(self._buf))
        self._buf = bytearray()
        self._headers = []

    def finish(self, mtime_ns: int) -> int:
        """Write out, keep the old segment's mtime (retention of timestamp-less data goes by
        it, as in Kafka), fsync, close. Returns the file size."""
        self._flush_buffer()
        os.utime(self.paths[LOG_SUFFIX], ns=(mtime_ns, mtime_ns))
        self.segment.flush()
        size = self.segment.size
        self.segment.close()
        return size

    def discard(self) -> None:
        segment = getattr(self, "segment", None)
        if segment is not None and not segment.closed:
            try:
                segment.close()
            except OSError:
                pass
        for path in self.paths.values():
            _unlink(path)


def _group_segments(refs: Sequence[_SegmentRef], max_size: int) -> list[list[_SegmentRef]]:
    """Kafka's ``groupSegmentsBySize``: consecutive segments whose sizes add up to at most
    ``segment.bytes`` and whose offsets fit one segment (relative offsets are int32)."""
    groups: list[list[_SegmentRef]] = []
    i = 0
    while i < len(refs):
        group = [refs[i]]
        size = refs[i].size
        i += 1
        while (
            i < len(refs)
            and size + refs[i].size <= max_size
            and refs[i].upper_offset - 1 - group[0].base_offset <= INT32_MAX
        ):
            group.append(refs[i])
            size += refs[i].size
            i += 1
        groups.append(group)
    return groups


def _build_offset_map(
    to_clean: LogToClean,
    dedupe_buffer_size: int,
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
    producer_last: dict[int, int],
) -> tuple[dict[bytes, int], int]:
    """Kafka's ``buildOffsetMap``: key -> last offset over the dirty section. Returns the map
    and ``end``, the first offset not covered (a batch boundary)."""
    first_dirty = to_clean.first_dirty_offset
    uncleanable = to_clean.first_uncleanable_offset
    offset_map: dict[bytes, int] = {}
    map_bytes = 0
    for index in range(to_clean.dirty_index, len(to_clean.refs)):
        ref = to_clean.refs[index]
        start = to_clean.dirty_position if index == to_clean.dirty_index else 0
        for header, view in _iter_batches(ref, start, io_buffer_size, throttle, stats):
            if header.last_offset < first_dirty:
                continue
            if header.last_offset >= uncleanable:
                return offset_map, header.base_offset  # defensive: segments end below it
            if header.is_control or header.is_transactional:
                validate_batch(view)
            else:
                _, records = decode_batch(view)
                new_keys: dict[bytes, int] = {}
                cost = 0
                for record in records:
                    key = record.key
                    if key is None or record.offset < first_dirty:
                        continue
                    if key not in offset_map and key not in new_keys:
                        cost += len(key) + MAP_ENTRY_OVERHEAD
                    new_keys[key] = record.offset
                if offset_map and map_bytes + cost > dedupe_buffer_size:
                    log.info(
                        "%s: offset map full (%d entries) at offset %d; cleaning up to it",
                        to_clean.dir, len(offset_map), header.base_offset,
                    )
                    return offset_map, header.base_offset
                offset_map.update(new_keys)
                map_bytes += cost
            if header.producer_id != NO_PRODUCER_ID:
                producer_last[header.producer_id] = header.base_offset
    return offset_map, uncleanable


def _scan_clean_producers(
    to_clean: LogToClean,
    throttle: Callable[[int], None],
    stats: CleanStats,
    producer_last: dict[int, int],
) -> None:
    """Last batch of each producer id in the clean section (below the first dirty batch)."""
    for index in range(min(to_clean.dirty_index + 1, len(to_clean.refs))):
        ref = to_clean.refs[index]
        for header in _iter_headers(ref, throttle, stats):
            if header.last_offset >= to_clean.first_dirty_offset:
                break
            if header.producer_id != NO_PRODUCER_ID:
                producer_last[header.producer_id] = header.base_offset


class _GroupCleaner:
    """The per-record decisions of one cleaning (Kafka's ``cleanInto`` / ``filterTo``)."""

    def __init__(
        self,
        offset_map: dict[bytes, int],
        end: int,
        now_ms: int,
        delete_retention_ms: int,
        producer_last: dict[int, int],
        stats: CleanStats,
    ) -> None:
        self.offset_map = offset_map
        self.end = end
        self.now_ms = now_ms
        self.new_horizon = now_ms + delete_retention_ms
        self.producer_last = producer_last
        self.stats = stats
        self.earliest_horizon: int | None = None

    def _note_horizon(self, header: BatchHeader) -> None:
        if header.has_delete_horizon and not header.is_control:
            h = header.base_timestamp
            if self.earliest_horizon is None or h < self.earliest_horizon:
                self.earliest_horizon = h

    def clean_batch(
        self, header: BatchHeader, view: memoryview, is_last: bool
    ) -> tuple[BatchHeader, bytes | memoryview, bool] | None:
        """The batch to write (header, bytes, copied-as-is) or None to drop it."""
        if header.base_offset >= self.end or header.is_control or header.is_transactional:
            validate_batch(view)
            self._note_horizon(header)
            return header, view, True
        _, records = decode_batch(view)
        self.stats.records_read += len(records)
        retained: list[Record] = []
        keeps_tombstone = False
        has_horizon = header.has_delete_horizon
        horizon_passed = has_horizon and self.now_ms >= header.base_timestamp
        offset_map = self.offset_map
        for record in records:
            key = record.key
            if key is not None:
                latest = offset_map.get(key)
                if latest is not None and record.offset < latest:
                    self.stats.records_removed += 1
                    continue
                if record.value is None:
                    if horizon_passed:
                        self.stats.records_removed += 1
                        self.stats.tombstones_removed += 1
                        continue
                    keeps_tombstone = True
            retained.append(record)
        if not retained:
            keep_empty = is_last or (
                header.producer_id != NO_PRODUCER_ID
                and self.producer_last.get(header.producer_id) == header.base_offset
            )
            if not keep_empty:
                self.stats.batches_removed += 1
                return None
            if header.record_count == 0:
                return header, view, True
            self.stats.empty_batches_kept += 1
            data = build_batch(
                [],
                base_offset=header.base_offset,
                last_offset_delta=header.last_offset_delta,
                base_timestamp=header.base_timestamp,
                max_timestamp=header.max_timestamp,
                producer_id=header.producer_id,
                producer_epoch=header.producer_epoch,
                base_sequence=header.base_sequence,
                partition_leader_epoch=header.partition_leader_epoch,
                timestamp_type=_timestamp_type(header),
            )
            return parse_header(data), data, False
        if len(retained) == len(records) and (not keeps_tombstone or has_horizon):
            self._note_horizon(header)
            return header, view, True
        horizon: int | None = None
        if keeps_tombstone:
            if has_horizon:
                horizon = header.base_timestamp
            else:
                horizon = self.new_horizon
                self.stats.horizons_set += 1
        data = build_batch(
            retained,
            base_offset=header.base_offset,
            offset_deltas=[r.offset - header.base_offset for r in retained],
            last_offset_delta=header.last_offset_delta,
            compression=header.compression,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            partition_leader_epoch=header.partition_leader_epoch,
            timestamp_type=_timestamp_type(header),
            max_timestamp=header.max_timestamp if header.is_log_append_time else None,
            delete_horizon_ms=horizon,
        )
        new_header = parse_header(data)
        self._note_horizon(new_header)
        return new_header, data, False


def _timestamp_type(header: BatchHeader) -> int:
    if header.is_log_append_time:
        return TIMESTAMP_TYPE_LOG_APPEND_TIME
    return TIMESTAMP_TYPE_CREATE_TIME


def _group_batches(
    refs: Sequence[_SegmentRef],
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
) -> Iterator[tuple[BatchHeader, memoryview, bool]]:
    """Every batch of the group, with ``is_last`` (one batch of look-ahead)."""
    it = (
        item
        for ref in refs
        for item in _iter_batches(ref, 0, io_buffer_size, throttle, stats)
    )
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        yield current[0], current[1], following is None
        current = following


def prepare_clean(
    to_clean: LogToClean,
    *,
    io_budget: Throttler | None = None,
    dedupe_buffer_size: int = DEFAULT_DEDUPE_BUFFER_SIZE,
    io_buffer_size: int = DEFAULT_IO_BUFFER_SIZE,
) -> CleanPlan:
    """Phase 2 (any thread): build the offset map and write the cleaned segments.

    Consumes ``to_clean`` (its fds are closed). Raises ``CorruptRecordError`` if a batch in the
    range is corrupt (Kafka then marks the partition uncleanable), ``LogDirOfflineError`` on an
    I/O error, ``CleanAbortedError`` if a segment shrank meanwhile; no files are left behind.
    """
    started = time.monotonic()
    throttle: Callable[[int], None] = io_budget.maybe_throttle if io_budget else _no_throttle
    stats = CleanStats()
    lease = to_clean.lease
    if lease is None:
        raise ValueError("this LogToClean was already used or closed")
    to_clean.lease = None  # handed over to the plan
    writers: list[_CleanedSegmentWriter] = []
    groups: list[_Group] = []
    try:
        config = to_clean.config
        first_dirty = to_clean.first_dirty_offset
        producer_last: dict[int, int] = {}
        _scan_clean_producers(to_clean, throttle, stats, producer_last)
        if first_dirty < to_clean.first_uncleanable_offset:
            offset_map, end = _build_offset_map(
                to_clean, dedupe_buffer_size, io_buffer_size, throttle, stats, producer_last
            )
        else:
            offset_map, end = {}, to_clean.first_uncleanable_offset
        stats.map_entries = len(offset_map)
        rewrite = [ref for ref in to_clean.refs if ref.base_offset < end]
        cleaner = _GroupCleaner(
            offset_map, end, to_clean.now_ms, config.delete_retention_ms, producer_last, stats
        )
        for refs in _group_segments(rewrite, config.segment_bytes):
            group = _Group(refs, refs[0].base_offset)
            groups.append(group)
            writer = _CleanedSegmentWriter(
                to_clean.dir, group.base_offset, config, io_buffer_size, throttle, stats
            )
            writers.append(writer)
            changed = len(refs) > 1
            for header, view, is_last in _group_batches(refs, io_buffer_size, throttle, stats):
                out = cleaner.clean_batch(header, view, is_last)
                if out is None:
                    changed = True
                    continue
                new_header, data, as_is = out
                changed = changed or not as_is
                writer.write(new_header, data)
            if changed:
                group.size = writer.finish(refs[-1].mtime_ns)
                group.paths = writer.paths
            else:
                writer.discard()
            writers.remove(writer)
    except OSError as e:
        for writer in writers:
            writer.discard()
        _discard_groups(groups)
        lease.release()
        raise LogDirOfflineError(f"I/O error while cleaning {to_clean.dir}: {e}") from e
    except BaseException:
        for writer in writers:
            writer.discard()
        _discard_groups(groups)
        lease.release()
        raise
    finally:
        to_clean.close()
    return CleanPlan(
        log=to_clean.log,
        dir=to_clean.dir,
        now_ms=to_clean.now_ms,
        first_dirty_offset=first_dirty,
        next_dirty_offset=max(first_dirty, end),
        first_uncleanable_offset=to_clean.first_uncleanable_offset,
        end_offset=end,
        groups=groups,
        stats=stats,
        earliest_delete_horizon_ms=cleaner.earliest_horizon,
        lease=lease,
        elapsed_s=time.monotonic() - started,
    )


def _discard_groups(groups: list[_Group]) -> None:
    for group in groups:
        if group.paths is not None:
            for path in group.paths.values():
                _unlink(path)
            group.paths = None


# -- phase 3: swap (owner thread) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanResult:
    first_dirty_offset: int
    next_dirty_offset: int  # checkpoint this in cleaner-offset-checkpoint
    first_uncleanable_offset: int
    end_offset: int  # the offset map covered [first_dirty, end); later records were kept as is
    segments_replaced: int
    segments_written: int
    stats: CleanStats
    # Earliest delete horizon among the cleaned section's batches (for needs_cleaning).
    earliest_delete_horizon_ms: int | None
    elapsed_s: float


def _live_groups(log_: PartitionLog, plan: CleanPlan) -> list[_Group]:
    """The plan's groups still to swap, or raise CleanAbortedError if the log moved on in a way
    the plan cannot survive (see module doc)."""
    if log_ is not plan.log or log_.closed or log_.offline:
        raise CleanAbortedError(f"{plan.dir}: the log was closed, replaced or went offline")
    live = log_._segments
    where = {id(s): i for i, s in enumerate(live)}
    first_present: int | None = None
    for gi, group in enumerate(plan.groups):
        present = [
            id(ref.segment) in where and live[where[id(ref.segment)]] is ref.segment
            for ref in group.refs
        ]
        if first_present is None:
            if not any(present):
                continue  # deleted by retention meanwhile: its data is gone either way
            if not all(present):
                raise CleanAbortedError(f"{plan.dir}: segments of the cleaned range were deleted")
            first_present = gi
        elif not all(present):
            raise CleanAbortedError(f"{plan.dir}: segments of the cleaned range were removed")
    if first_present is None:
        return []
    position = 0
    for group in plan.groups[first_present:]:
        for ref in group.refs:
            segment = ref.segment
            if where[id(segment)] != position or segment.size != ref.size or segment.closed:
                raise CleanAbortedError(
                    f"{plan.dir}: segment {ref.name} changed during cleaning"
                )
            position += 1
    if position >= len(live):
        raise CleanAbortedError(f"{plan.dir}: the cleaned range reaches the active segment")
    return plan.groups[first_present:]


def commit_clean(
    log_: PartitionLog,
    plan: CleanPlan,
    *,
    _fault_hook: Callable[[str], None] | None = None,
) -> CleanResult:
    """Phase 3 (on the log's owner): swap the cleaned segments in (see module doc).

    Raises ``CleanAbortedError`` (plan files deleted, log unchanged) if the log changed in a way
    the plan cannot survive. An I/O error during the swap takes the log offline; the directory
    is then recovered by the next ``PartitionLog.open``. ``_fault_hook(step)`` is for tests: it
    is called after each file operation and may raise to simulate a crash there.
    """
    if plan.done:
        raise ValueError("this CleanPlan was already committed or aborted")
    hook = _fault_hook if _fault_hook is not None else (lambda _step: None)
    try:
        groups = _live_groups(log_, plan)
        _discard_groups(plan.groups[: len(plan.groups) - len(groups)])
        swap = [g for g in groups if g.paths is not None]
        for group in swap:
            assert group.paths is not None
            if not all(p.exists() for p in group.paths.values()):
                raise CleanAbortedError(f"{plan.dir}: cleaned files vanished before the swap")
    except CleanAbortedError:
        plan.abort()
        raise
    replaced = sum(len(g.refs) for g in swap)
    directory = plan.dir
    swapping = False
    try:
        with log_._io("swapping in cleaned segments"):
            for group in swap:
                assert group.paths is not None
                for suffix in _SUFFIXES:  # the .log last: it is the group's commit point
                    cleaned = group.paths[suffix]
                    target = cleaned.with_name(segment_file_name(group.base_offset, suffix)
                                               + SWAP_SUFFIX)
                    fsync_journal.rename(cleaned, target)
                    group.paths[suffix] = target
                    swapping = True
                    hook(f"rename {cleaned.name} -> {target.name}")
                fsync_dir(directory)
                hook(f"fsync dir after swap of {group.base_offset}")
            for group in swap:
                for ref in group.refs:
                    ref.segment.delete()
                    hook(f"delete {ref.name}")
            fsync_dir(directory)
            hook("fsync dir after deleting old segments")
            for group in swap:
                assert group.paths is not None
                for suffix in _SUFFIXES:
                    target = directory / segment_file_name(group.base_offset, suffix)
                    fsync_journal.rename(group.paths[suffix], target)
                    hook(f"rename {group.paths[suffix].name} -> {target.name}")
                    group.paths[suffix] = target
            if swap:
                fsync_dir(directory)
                hook("fsync dir after final renames")
            new_segments = {
                id(group.refs[0].segment): LogSegment.open(
                    directory, group.base_offset, log_.config, now_ms=plan.now_ms
                )
                for group in swap
            }
            gone = {id(ref.segment) for group in swap for ref in group.refs}
            segments: list[LogSegment] = []
            for segment in log_._segments:
                replacement = new_segments.get(id(segment))
                if replacement is not None:
                    segments.append(replacement)
                elif id(segment) not in gone:
                    segments.append(segment)
            log_.install_segments(segments)
    except BaseException:
        if swapping and not log_.offline:
            # The in-memory segment list no longer matches the files; reopening recovers.
            log_._offline = True
            log.error("%s: cleaning swap interrupted; taking the log offline", directory)
        plan._finish()
        raise
    for group in plan.groups:
        group.paths = None
    plan._finish()
    stats = plan.stats
    result = CleanResult(
        first_dirty_offset=plan.first_dirty_offset,
        next_dirty_offset=plan.next_dirty_offset,
        first_uncleanable_offset=plan.first_uncleanable_offset,
        end_offset=plan.end_offset,
        segments_replaced=replaced,
        segments_written=len(swap),
        stats=stats,
        earliest_delete_horizon_ms=plan.earliest_delete_horizon_ms,
        elapsed_s=plan.elapsed_s,
    )
    log.info(
        "%s: cleaned offsets [%d, %d): %d segments -> %d, read %d bytes, wrote %d, removed %d "
        "records (%d tombstones), map %d keys, %.3f s",
        directory, plan.first_dirty_offset, plan.end_offset, replaced, len(swap),
        stats.bytes_read, stats.bytes_written, stats.records_removed, stats.tombstones_removed,
        stats.map_entries, plan.elapsed_s,
    )
    return result


def clean_log(
    log_: PartitionLog,
    *,
    now_ms: int,
    first_dirty_offset: int | None = None,
    io_budget: Throttler | None = None,
    last_stable_offset: int | None = None,
    dedupe_buffer_size: int = DEFAULT_DEDUPE_BUFFER_SIZE,
    io_buffer_size: int = DEFAULT_IO_BUFFER_SIZE,
) -> CleanResult:
    """Clean ``log_`` once, synchronously: ``log_to_clean`` + ``prepare_clean`` +
    ``commit_clean``. The caller must not use the log concurrently (run the phases separately
    to do the heavy part in a worker thread), then checkpoint ``result.next_dirty_offset``."""
    to_clean = log_to_clean(
        log_, now_ms=now_ms, first_dirty_offset=first_dirty_offset,
        last_stable_offset=last_stable_offset,
    )
    plan = prepare_clean(
        to_clean, io_budget=io_budget, dedupe_buffer_size=dedupe_buffer_size,
        io_buffer_size=io_buffer_size,
    )
    return commit_clean(log_, plan)
