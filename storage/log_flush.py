"""A partition log's durability bookkeeping: ``flush(up_to)`` fsyncs dirty segments below
``up_to`` and advances ``recovery_point``; ``begin_flush`` hands the fsyncs to another thread
(group commit) as a ``LogFlushJob``; ``flush.ms`` and ``flush.messages``; the segment file sizes
as of their last fsync (for fault injection).

Group commit on the write path (``defer_flush``, set by the broker for its partition logs):
an append that ``flush.messages`` wants fsynced does not fsync on the caller's thread; the
caller awaits ``flush_wait(next offset)`` (the log's ``GroupCommit``, storage/group_commit.py:
one fsync in a worker thread covers every append waiting at that moment) and answers only
then. Without ``defer_flush`` (the metadata log, tools) the append fsyncs inline as before.

``LogFlushMixin`` is one of the parts ``storage.log.PartitionLog`` is made of: its methods work
on the log's segments.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import fsync_journal
from storage.fileutil import fsync_dir
from storage.group_commit import FLUSH_NEVER, GroupCommit
from storage.segment import LogSegment

if TYPE_CHECKING:
    from storage.log import PartitionLog


def _now_ms() -> int:
    return int(time.time() * 1000)


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


class LogFlushMixin:
    """Flushes of ``PartitionLog``."""

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

    @property
    def group_commit(self) -> GroupCommit:
        """The log's group commit; positions are offsets (``LogFlushJob.run`` returns the log
        end it covered). A truncation starts a new one: offsets the old one reported durable
        may since have been rewritten."""
        gc = self._group_commit
        if gc is None or self._group_commit_truncations != self._truncations:
            gc = GroupCommit(begin=self._begin_data_flush, durable_position=self._recovery_point)
            self._group_commit = gc
            self._group_commit_truncations = self._truncations
        return gc

    def _begin_data_flush(self) -> LogFlushJob:
        return self.begin_flush(indexes=False)

    def flush_wait(self, next_offset: int) -> Coroutine[Any, Any, None] | None:
        """After an append that ended at ``next_offset`` (its last offset + 1), with
        ``defer_flush``: None if nothing need be awaited, else the wait for the group commit
        that makes every offset below ``next_offset`` durable (it raises what the fsync
        raised). A wait is due when ``flush.messages`` says so (unflushed messages not yet
        covered by a requested fsync reach it), or when an fsync covering ``next_offset`` is
        already requested but not done (a retried batch is not answered before its original)."""
        if not self.defer_flush:
            return None
        gc = self._group_commit
        if gc is None and self.config.flush_messages >= FLUSH_NEVER:
            return None  # the default policy: nothing is ever waited for
        gc = self.group_commit
        if next_offset <= gc.durable_position or next_offset <= self._recovery_point:
            return None
        requested = gc.written_position
        if next_offset <= requested or (
            next_offset - max(self._recovery_point, requested) >= self.config.flush_messages
        ):
            return gc.wait_durable(next_offset)
        return None

    def begin_flush(self, *, indexes: bool = True) -> LogFlushJob:
        """Start a flush whose fsyncs can run in another thread (group commit).

        Call on the log's own thread; run ``job.run()`` anywhere (it only fsyncs duplicated
        descriptors, so appends, rolls and retention may go on meanwhile), then call
        ``job.finish(ok)`` on the log's thread again to advance ``recovery_point``.

        ``indexes=False`` (the write path's group commit) fsyncs only the active segment's
        ``.log`` file, not its two indexes: the records are what an acknowledgement promises,
        and an index that lost its unsynced tail is still a valid sparse index (or fails its
        sanity check on open and is rebuilt, storage/segment_recovery.py). Inactive segments
        are always flushed whole (a roll already did it), and so is everything at the next
        full ``flush`` (roll, ``flush.ms``, shutdown).
        """
        self._check_writable()
        target = self.log_end_offset
        fds: list[int] = []
        marks: list[tuple[LogSegment, int, int, int]] = []
        active = self._segments[-1]
        try:
            for segment in self._segments:
                if segment.base_offset >= target:
                    break
                oi, ti = segment.offset_index, segment.time_index
                if not indexes and segment is active:
                    if segment.flushed_size != segment.size:
                        fds.append(os.dup(segment.flush_fds()[0]))
                        marks.append((segment, segment.size, oi.flushed_size, ti.flushed_size))
                    continue
                if not segment.dirty:
                    continue
                oi.write_pending()
                ti.write_pending()
                fds.extend(os.dup(fd) for fd in segment.flush_fds())
                marks.append((segment, segment.size, oi.size_bytes, ti.size_bytes))
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

    def flush_if_due(self, now_ms: int | None = None) -> bool:
        """Apply flush.ms: flush if that long has passed since the last flush."""
        now = _now_ms() if now_ms is None else now_ms
        if now - self.last_flush_ms >= self.config.flush_ms and self.unflushed_messages > 0:
            self.flush(now_ms=now)
            return True
        return False

    def sync_dir(self) -> None:
        """Make the directory entries durable now: files created and removed so far stand
        after a power loss."""
        self._check_writable()
        with self._io("syncing the log directory"):
            self._sync_dir()

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
