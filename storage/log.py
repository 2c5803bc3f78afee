"""The partition log: Kafka's ``LocalLog`` + the storage half of ``UnifiedLog``.

A ``PartitionLog`` is a directory of ``LogSegment``s ordered by base offset (a list plus a
``bisect``-able list of base offsets). Appends go to the last ("active") segment; reads are served
as (fd, position, length) slices of a segment file, so the server can ``os.sendfile`` them.

Single-threaded: callers serialize access (one partition = one owner).

The log is made of parts, one concern each (see also ``storage/segment.py`` and
``storage/index.py``):

- ``storage/log_recovery.py``: opening a directory, leftovers, crash **recovery**. After
  ``open``, ``recovery_point == log_end_offset``.
- ``storage/log_append.py``: appends and segment rolls (a roll makes the outgoing segment
  durable).
- ``storage/log_read.py``: reads (``FetchSlice``) and offsets by timestamp.
- ``storage/log_retention.py``: **deletion** of old segments (retention, a moved log start).
- ``storage/log_flush.py``: **durability bookkeeping** (flush, group-commit flush jobs).

Here: the segment list, truncation, lifecycle and I/O error handling.

- **Truncation** (``truncate_to``) is durable before it returns (file fsynced, directory fsynced)
  so truncated data cannot reappear after a crash. A batch containing the target offset goes
  whole, so ``log_end_offset`` may end up below the target (callers truncate at batch
  boundaries in practice).
- **Errors**: ``OSError`` from the file system becomes ``LogDirOfflineError`` and the log refuses
  further writes; bad input is ``CorruptRecordError``/``InvalidRecordError``/``RecordTooLargeError``
  and appends nothing.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from storage import fsync_journal
from storage.errors import LogDirOfflineError
from storage.fileutil import fsync_dir
from storage.group_commit import GroupCommit
from storage.leader_epoch import LEADER_EPOCH_CHECKPOINT, LeaderEpochFileCache
from storage.log_append import LogAppendMixin
from storage.log_config import LogConfig
from storage.log_flush import LogFlushMixin
from storage.log_read import LogReadMixin
from storage.log_recovery import load_segments
from storage.log_retention import LogRetentionMixin
from storage.segment import LogSegment
from storage.txn_index import AbortedTxn

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class PartitionLog(LogAppendMixin, LogReadMixin, LogRetentionMixin, LogFlushMixin):
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
        # Called once with the log and the error when an I/O error takes the log offline (the
        # log manager takes the whole log dir offline then: ``storage/log_manager.py``).
        self.on_offline: Callable[[PartitionLog, BaseException], None] | None = None
        self._dir_dirty = False
        self._offline = False
        self._closed = False
        self.last_flush_ms = now_ms
        self._random = random.Random()
        # Bumped by every truncation: a flush job started before one must not mark the
        # (since rewritten) tail as durable.
        self._truncations = 0
        # Group commit (storage/log_flush.py): with ``defer_flush`` an append the flush
        # policy wants fsynced does not fsync inline; its caller awaits ``flush_wait``.
        self.defer_flush = False
        self._group_commit: GroupCommit | None = None
        self._group_commit_truncations = 0

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
        segments = load_segments(
            directory,
            config,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            now_ms=now,
        )
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

    def mark_offline(self) -> None:
        """Refuse every further write: the log dir holding this log failed."""
        self._offline = True

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs (new values apply to future appends and rolls)."""
        self.config = config
        for segment in self._segments:
            segment.config = config

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

    def install_segments(self, segments: list[LogSegment]) -> None:
        """Replace the segment list after compaction swapped files in. The active segment and
        the offsets covered stay the same; only inactive segments change."""
        assert segments and segments[-1] is self._segments[-1], "the active segment must stay"
        assert all(a.base_offset < b.base_offset for a, b in itertools.pairwise(segments))
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    # -- aborted transactions (``storage/txn_index.py``) -------------------------------------

    def append_aborted_txn(self, txn: AbortedTxn) -> None:
        """Record an aborted transaction in the index of the segment holding its marker
        (idempotent: a replayed marker is not recorded twice)."""
        i = bisect.bisect_right(self._bases, txn.last_offset) - 1
        if i < 0:
            return
        with self._io("writing the aborted-transaction index"):
            self._segments[i].txn_index.append(txn)

    def collect_aborted_txns(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping ``[fetch_offset, upper_bound)``: those whose
        marker is at or after ``fetch_offset`` (in the segment holding it or a later one) and
        that started before ``upper_bound`` (Kafka's ``collectAbortedTransactions``: the search
        stops at an entry whose last stable offset reaches ``upper_bound``)."""
        i = max(bisect.bisect_right(self._bases, fetch_offset) - 1, 0)
        out: list[AbortedTxn] = []
        with self._io("reading the aborted-transaction index"):
            for segment in self._segments[i:]:
                found, complete = segment.txn_index.collect(fetch_offset, upper_bound)
                out.extend(found)
                if complete:
                    break
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
            if self._offline:  # closed because its log dir failed: a storage error still
                raise LogDirOfflineError(f"log {self.dir} is offline after an I/O error")
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
        err = LogDirOfflineError(f"I/O error while {what} in {self.dir}: {e}")
        if not self._offline:
            self._offline = True
            log.error("%s: I/O error while %s: %s; taking the log offline", self.dir, what, e)
            if self.on_offline is not None:
                self.on_offline(self, err)
        return err
