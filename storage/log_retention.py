"""Deleting a partition log's oldest segments: retention by time and size, and segments wholly
below a log start offset that moved forward.

- **Deletion**: segment files are unlinked directly, no ``.deleted`` rename and delay. A
  ``FetchSlice`` holds its own ``os.dup`` of the segment fd, so a reader keeps reading a deleted
  segment safely (POSIX keeps the inode alive); ``file.delete.delay.ms`` is therefore unused.
- **Retention by time** follows Kafka: segments are deleted oldest first while
  ``now - largest_timestamp > retention.ms`` and their data is below the high watermark; if that
  includes the active segment (non-empty), the log rolls first and deletes it too.
  **Retention by size** never deletes the active segment.

``LogRetentionMixin`` is one of the parts ``storage.log.PartitionLog`` is made of: its methods
work on the log's segments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from storage.errors import OffsetOutOfRangeError
from storage.segment import LogSegment

# Messages keep the partition log's logger name.
log = logging.getLogger("storage.log")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogRetentionMixin:
    """Log start moves and retention of ``PartitionLog``."""

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
