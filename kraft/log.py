"""The log view a ``RaftNode`` reads and edits in memory; the driver makes it durable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LogEntry:
    offset: int
    epoch: int
    data: bytes
    # Control entries (LeaderChange) are written by the leader at the start of its epoch.
    control: bool = False


class RaftLog(Protocol):
    @property
    def end_offset(self) -> int: ...

    @property
    def last_epoch(self) -> int: ...

    def entries_from(self, offset: int, max_count: int) -> list[LogEntry]: ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...

    def truncate_to(self, offset: int) -> None: ...

    def append(self, entries: list[LogEntry]) -> None: ...


class MemoryRaftLog:
    """A list-backed ``RaftLog`` starting at offset 0 (no snapshots). Epoch 0 means "no entry"."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[LogEntry] | None = None) -> None:
        self._entries: list[LogEntry] = []
        if entries:
            self.append(list(entries))

    @property
    def end_offset(self) -> int:
        return len(self._entries)

    @property
    def last_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else 0

    def epoch_at(self, offset: int) -> int:
        """Epoch of the entry at ``offset``; 0 for offset -1 (before the log)."""
        return self._entries[offset].epoch if offset >= 0 else 0

    def entry(self, offset: int) -> LogEntry:
        return self._entries[offset]

    def entries_from(self, offset: int, max_count: int) -> list[LogEntry]:
        assert 0 <= offset <= len(self._entries), (offset, len(self._entries))
        return self._entries[offset : offset + max_count]

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """KIP-101: (largest epoch <= ``epoch`` in the log, the offset after its last entry).

        Returns (0, 0) when the log has no entry of an epoch <= ``epoch``.
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
        if lo == 0:
            return (0, 0)
        return (entries[lo - 1].epoch, lo)

    def truncate_to(self, offset: int) -> None:
        assert 0 <= offset <= len(self._entries), (offset, len(self._entries))
        del self._entries[offset:]

    def append(self, entries: list[LogEntry]) -> None:
        for e in entries:
            assert e.offset == len(self._entries), (e.offset, len(self._entries))
            assert e.epoch >= self.last_epoch, (e.epoch, self.last_epoch)
            self._entries.append(e)
