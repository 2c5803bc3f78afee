"""The log view a ``RaftNode`` reads and edits in memory; the driver makes it durable.

With KIP-630 snapshots the log may start after a prefix: ``start_offset`` is then the end offset
of the snapshot it starts after (``snapshot_id``), and that snapshot stands in for the entries
below it (its epoch answers ``epoch_at(start_offset - 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # kraft.messages imports LogEntry from here
    from kraft.messages import SnapshotId


@dataclass(frozen=True, slots=True)
class LogEntry:
    offset: int
    epoch: int
    data: bytes
    # Control entries (LeaderChange) are written by the leader at the start of its epoch;
    # with kraft.version 1 also KRaftVersion and Voters records (``kraft/voters.py``).
    control: bool = False
    # Kafka's control record type of a control entry (storage.control_records.ControlRecordType;
    # 2 LeaderChange, 5 KRaftVersion, 6 Voters).
    control_type: int = 2


class RaftLog(Protocol):
    @property
    def end_offset(self) -> int: ...

    @property
    def last_epoch(self) -> int: ...

    @property
    def start_offset(self) -> int: ...

    @property
    def snapshot_id(self) -> SnapshotId | None: ...

    def epoch_at(self, offset: int) -> int: ...

    def entries_from(self, offset: int, max_count: int) -> list[LogEntry]: ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...

    def truncate_to(self, offset: int) -> None: ...

    def append(self, entries: list[LogEntry]) -> None: ...

    def truncate_prefix(self, snapshot_id: SnapshotId) -> None: ...

    def reset_to_snapshot(self, snapshot_id: SnapshotId) -> None: ...


class MemoryRaftLog:
    """A list-backed ``RaftLog``. Epoch 0 means "no entry".

    Without ``snapshot_id`` it starts at offset 0; with one it starts at
    ``snapshot_id.end_offset`` and ``entries`` (if any) must start there.
    """

    __slots__ = ("_entries", "_snapshot_id", "_start")

    def __init__(
        self, entries: list[LogEntry] | None = None, *, snapshot_id: SnapshotId | None = None
    ) -> None:
        self._entries: list[LogEntry] = []
        self._snapshot_id = snapshot_id
        self._start = snapshot_id.end_offset if snapshot_id is not None else 0
        if entries:
            self.append(list(entries))

    @classmethod
    def recover(
        cls, snapshot_id: SnapshotId | None, start_offset: int, entries: list[LogEntry]
    ) -> MemoryRaftLog:
        """The log a restarted replica resumes with, from its latest durable snapshot and its
        durable log (``entries`` start at ``start_offset``).

        A crash can fall between writing an installed snapshot and resetting the log, so the
        log is kept only if it continues the snapshot (it starts exactly at the snapshot's end,
        or holds the snapshot's last entry with the snapshot's epoch; by log matching its prefix
        is then the snapshot's). Otherwise it diverged from (or is behind) committed data and is
        dropped: the replica restarts empty at the snapshot's end.
        """
        assert not entries or entries[0].offset == start_offset, (start_offset, entries[0])
        if snapshot_id is None:
            assert start_offset == 0, f"log starts at {start_offset} without a snapshot"
            return cls(entries)
        end = snapshot_id.end_offset
        assert start_offset <= end, f"log starts at {start_offset} after snapshot {snapshot_id}"
        if start_offset == end:
            return cls(entries, snapshot_id=snapshot_id)
        i = end - 1 - start_offset
        if 0 <= i < len(entries) and entries[i].epoch == snapshot_id.epoch:
            return cls(entries[i + 1 :], snapshot_id=snapshot_id)
        return cls(snapshot_id=snapshot_id)

    @property
    def start_offset(self) -> int:
        return self._start

    @property
    def snapshot_id(self) -> SnapshotId | None:
        return self._snapshot_id

    @property
    def end_offset(self) -> int:
        return self._start + len(self._entries)

    @property
    def last_epoch(self) -> int:
        if self._entries:
            return self._entries[-1].epoch
        return self._snapshot_id.epoch if self._snapshot_id is not None else 0

    def epoch_at(self, offset: int) -> int:
        """Epoch of the entry at ``offset``; the snapshot's epoch for ``start_offset - 1``
        (0 for offset -1, before the log)."""
        if offset >= self._start:
            return self._entries[offset - self._start].epoch
        assert offset == self._start - 1, f"offset {offset} is below the log start {self._start}"
        return self._snapshot_id.epoch if self._snapshot_id is not None else 0

    def entry(self, offset: int) -> LogEntry:
        assert offset >= self._start, f"offset {offset} is below the log start {self._start}"
        return self._entries[offset - self._start]

    def entries_from(self, offset: int, max_count: int) -> list[LogEntry]:
        assert self._start <= offset <= self.end_offset, (offset, self._start, self.end_offset)
        i = offset - self._start
        return self._entries[i : i + max_count]

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """KIP-101: (largest epoch <= ``epoch`` in the log, the offset after its last entry).

        Returns (0, 0) when the log has no entry of an epoch <= ``epoch`` and no snapshot. With a
        snapshot and no such entry, returns (snapshot epoch, log start), also for an epoch below
        the snapshot's (as Kafka's ``KafkaMetadataLog.endOffsetForEpoch`` does).
        """
        entries = self._entries
        # Binary search for the first entry whose epoch > epoch (epochs are non-decreasing).
        lo, hi = 0, len(entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if entries[mid].epoch <= epoch:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0:
            return (entries[lo - 1].epoch, self._start + lo)
        if self._snapshot_id is not None:
            return (self._snapshot_id.epoch, self._start)
        return (0, 0)

    def truncate_to(self, offset: int) -> None:
        assert self._start <= offset <= self.end_offset, (offset, self._start, self.end_offset)
        del self._entries[offset - self._start :]

    def append(self, entries: list[LogEntry]) -> None:
        for e in entries:
            assert e.offset == self.end_offset, (e.offset, self.end_offset)
            assert e.epoch >= self.last_epoch, (e.epoch, self.last_epoch)
            self._entries.append(e)

    def truncate_prefix(self, snapshot_id: SnapshotId) -> None:
        """Drop the entries below ``snapshot_id.end_offset``, which the snapshot now holds.

        The snapshot must match the log (its last entry is here with its epoch); one at or below
        the current start changes nothing.
        """
        end = snapshot_id.end_offset
        if end <= self._start:
            return
        assert end <= self.end_offset, f"snapshot {snapshot_id} beyond log end {self.end_offset}"
        assert self.epoch_at(end - 1) == snapshot_id.epoch, (
            f"snapshot {snapshot_id} does not match the log (epoch {self.epoch_at(end - 1)})"
        )
        del self._entries[: end - self._start]
        self._start = end
        self._snapshot_id = snapshot_id

    def reset_to_snapshot(self, snapshot_id: SnapshotId) -> None:
        """Drop every entry: the log restarts empty right after ``snapshot_id``."""
        self._entries.clear()
        self._start = snapshot_id.end_offset
        self._snapshot_id = snapshot_id
