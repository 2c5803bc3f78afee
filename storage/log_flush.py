"""A partition log's durability bookkeeping: ``flush(up_to)`` fsyncs dirty segments below
``up_to`` and advances ``recovery_point``; ``begin_flush`` hands the fsyncs to another thread
(group commit) as a ``LogFlushJob``; ``flush.ms`` and ``flush.messages``; the segment file sizes
as of their last fsync (for fault injection).

``LogFlushMixin`` is one of the parts ``storage.log.PartitionLog`` is made of: its methods work
on the log's segments.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storage import fsync_journal
from storage.fileutil import fsync_dir
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
