"""Kafka's leader-epoch cache (KIP-101, KIP-279): which leader epoch started at which offset.

A partition replica keeps, per leader epoch, the offset of the first record written in that
epoch. A follower whose leader changed asks the new leader ``OffsetsForLeaderEpoch(epoch)`` and
truncates to the answer instead of to its high watermark, which is what stops a log from diverging
after back-to-back leader changes.

Semantics are Kafka's ``LeaderEpochFileCache`` (storage/.../epoch/LeaderEpochFileCache.java, read
from apache/kafka trunk, with its unit test LeaderEpochFileCacheTest):

- ``assign(epoch, start_offset)`` is a no-op if the cache's latest entry has the same epoch and a
  start offset <= the new one. Otherwise, walking back from the newest entry, every entry whose
  epoch >= ``epoch`` or whose start offset >= ``start_offset`` is removed (a warning is logged
  unless only one entry with the same start offset went), and the new entry is appended. So a new
  larger epoch appends; a *smaller* epoch, or the same epoch at an earlier offset, rewrites the
  tail, because the log that is being appended to is the source of truth.
- Entries are therefore always strictly increasing in both epoch and start offset.
- ``end_offset_for`` / ``truncate_from_end`` / ``truncate_from_start`` / ``epoch_for_offset``:
  see each method.

Every mutation that changes the entries is persisted before it returns (``atomic_write``: temp
file, fsync, rename, fsync dir). Kafka flushes the truncations asynchronously; we do not need to.

File format (Kafka's ``leader-epoch-checkpoint``)::

    0
    <count>
    <epoch> <start_offset>
    ...

A malformed file raises ``CorruptCheckpointError`` (a ``storage.errors.StorageError``, defined in
``storage.checkpoint`` and re-exported here) naming the file and line; Kafka treats this as a
log-directory failure. An I/O error raises ``LogDirOfflineError``. Loading replays the file's
entries through ``assign`` (as Kafka does), so a non-monotonic file is normalised in memory.

Thread-safe (one lock), although the broker is expected to use it from one thread.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from storage.checkpoint import (
    LEADER_EPOCH_CHECKPOINT,
    CheckpointFile,
    CorruptCheckpointError,
    parse_int,
)

__all__ = [
    "LEADER_EPOCH_CHECKPOINT",
    "LEADER_EPOCH_CHECKPOINT_VERSION",
    "UNDEFINED_EPOCH",
    "UNDEFINED_EPOCH_OFFSET",
    "CorruptCheckpointError",
    "EpochEntry",
    "LeaderEpochFileCache",
]

log = logging.getLogger(__name__)

# OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1

LEADER_EPOCH_CHECKPOINT_VERSION = 0

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class EpochEntry:
    epoch: int
    start_offset: int


def _entry_to_line(entry: EpochEntry) -> str:
    return f"{entry.epoch} {entry.start_offset}"


def _entry_from_line(line: str) -> EpochEntry:
    fields = line.split()
    if len(fields) != 2:
        raise ValueError(f"expected '<epoch> <start_offset>', got {len(fields)} fields")
    return EpochEntry(parse_int(fields[0], 0, _INT32_MAX), parse_int(fields[1], 0, _INT64_MAX))


class LeaderEpochFileCache:
    """(leader epoch -> start offset) for one replica, persisted at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._checkpoint: CheckpointFile[EpochEntry] = CheckpointFile(
            self.path, version=LEADER_EPOCH_CHECKPOINT_VERSION,
            to_line=_entry_to_line, from_line=_entry_from_line,
        )
        self._lock = threading.RLock()
        self._entries: list[EpochEntry] = []  # strictly increasing in epoch and start_offset
        for entry in self._checkpoint.read():
            self._assign(entry)

    # -- queries ----------------------------------------------------------------------------

    @property
    def entries(self) -> list[EpochEntry]:
        """A copy of the entries, oldest first."""
        with self._lock:
            return list(self._entries)

    @property
    def latest_entry(self) -> EpochEntry | None:
        with self._lock:
            return self._entries[-1] if self._entries else None

    @property
    def earliest_entry(self) -> EpochEntry | None:
        with self._lock:
            return self._entries[0] if self._entries else None

    @property
    def latest_epoch(self) -> int | None:
        """The epoch of the newest entry: the current leader epoch of the data in the log.
        Read once per append: without the lock, as one read of the list is atomic."""
        try:
            return self._entries[-1].epoch
        except IndexError:
            return None

    def previous_epoch(self, epoch: int | None = None) -> int | None:
        """The largest cached epoch below ``epoch`` (default: below the latest epoch)."""
        with self._lock:
            if epoch is None:
                if not self._entries:
                    return None
                epoch = self._entries[-1].epoch
            found = None
            for entry in self._entries:
                if entry.epoch >= epoch:
                    break
                found = entry.epoch
            return found

    def next_epoch(self, epoch: int) -> int | None:
        """The smallest cached epoch above ``epoch``."""
        with self._lock:
            return next((e.epoch for e in self._entries if e.epoch > epoch), None)

    def epoch_entry(self, epoch: int) -> EpochEntry | None:
        with self._lock:
            return next((e for e in self._entries if e.epoch == epoch), None)

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch the record at ``offset`` was written in, or ``None`` if before every entry.

        Kafka's ``epochForOffset``: the epoch of the last entry with start offset <= ``offset``.
        """
        with self._lock:
            found = None
            for entry in self._entries:
                if entry.start_offset > offset:
                    break
                found = entry.epoch
            return found

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Answer ``OffsetsForLeaderEpoch``: ``(epoch, end_offset)`` for ``requested_epoch``.

        Kafka's ``endOffsetFor``, case by case:

        - ``requested_epoch == UNDEFINED_EPOCH`` -> ``(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)``.
        - ``requested_epoch`` is the latest epoch -> ``(requested_epoch, log_end_offset)``.
        - no entry has an epoch > ``requested_epoch`` (the cache is empty, or the epoch is newer
          than every entry) -> ``(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)``.
        - ``requested_epoch`` is below every entry -> ``(requested_epoch, earliest start_offset)``:
          the data before that is gone, so the follower truncates to where the leader's log
          starts (KIP-279; older Kafka returned UNDEFINED here).
        - otherwise -> ``(largest epoch <= requested_epoch, start offset of the first entry with
          a larger epoch)``.
        """
        with self._lock:
            if requested_epoch == UNDEFINED_EPOCH:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            if self._entries and self._entries[-1].epoch == requested_epoch:
                return requested_epoch, log_end_offset
            floor: EpochEntry | None = None
            higher: EpochEntry | None = None
            for entry in self._entries:
                if entry.epoch > requested_epoch:
                    higher = entry
                    break
                floor = entry
            if higher is None:
                return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
            if floor is None:
                return requested_epoch, higher.start_offset
            return floor.epoch, higher.start_offset

    # -- mutations ----------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` started at ``start_offset`` (see the module docstring).

        Raises ``ValueError`` on a negative epoch or offset (Kafka: IllegalArgumentException).
        """
        with self._lock:
            if self._assign(EpochEntry(epoch, start_offset)):
                log.debug("%s: appended epoch entry (%d, %d), now %d entries",
                          self.path, epoch, start_offset, len(self._entries))
                self._persist()

    def truncate_from_end(self, end_offset: int) -> None:
        """Remove every entry with start offset >= ``end_offset`` (the log was truncated there).

        A negative ``end_offset`` (e.g. UNDEFINED_EPOCH_OFFSET) does nothing, as in Kafka.
        """
        with self._lock:
            if end_offset < 0 or not self._entries or self._entries[-1].start_offset < end_offset:
                return
            removed: list[EpochEntry] = []
            while self._entries and self._entries[-1].start_offset >= end_offset:
                removed.append(self._entries.pop())
            log.debug("%s: removed %s after truncating to end offset %d",
                      self.path, removed[::-1], end_offset)
            self._persist()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log start moved to ``start_offset``: drop entries wholly before it.

        Kafka's ``truncateFromStart``: remove every entry with start offset <= ``start_offset``
        and re-insert the last one removed with its start offset moved to ``start_offset``, so
        the epoch that contains ``start_offset`` is kept (and an entry starting exactly at
        ``start_offset`` stays unchanged). ``start_offset`` before every entry does nothing.
        """
        with self._lock:
            removed: list[EpochEntry] = []
            while self._entries and self._entries[0].start_offset <= start_offset:
                removed.append(self._entries.pop(0))
            if not removed:
                return
            updated = EpochEntry(removed[-1].epoch, start_offset)
            self._entries.insert(0, updated)
            if removed != [updated]:
                log.debug("%s: removed %s and rewrote first entry as %s after truncating to "
                          "start offset %d", self.path, removed, updated, start_offset)
                self._persist()

    def clear(self) -> None:
        """Delete every entry and persist the empty file (Kafka's ``clearAndFlush``)."""
        with self._lock:
            self._entries.clear()
            self._persist()

    def flush(self) -> None:
        """Write the current entries to the checkpoint file now."""
        with self._lock:
            self._persist()

    # -- internals ----------------------------------------------------------------------------

    def _assign(self, entry: EpochEntry) -> bool:
        if entry.epoch < 0 or entry.start_offset < 0:
            raise ValueError(f"Received invalid partition leader epoch entry {entry}")
        if self._entries:
            latest = self._entries[-1]
            if entry.epoch == latest.epoch and entry.start_offset >= latest.start_offset:
                return False
        # Keep epochs and start offsets strictly increasing: drop the conflicting tail.
        removed: list[EpochEntry] = []  # newest first, like Kafka's descending iteration
        while self._entries and (self._entries[-1].epoch >= entry.epoch
                                 or self._entries[-1].start_offset >= entry.start_offset):
            removed.append(self._entries.pop())
        if len(removed) > 1 or (removed and removed[0].start_offset != entry.start_offset):
            # One removed entry at the same start offset just means no data was written in it.
            log.warning("%s: new epoch entry %s caused truncation of conflicting entries %s; "
                        "cache now contains %d entries", self.path, entry, removed,
                        len(self._entries))
        self._entries.append(entry)
        return True

    def _persist(self) -> None:
        self._checkpoint.write(self._entries)
