"""Where a ``RaftNode`` reads snapshots from (KIP-630), to serve FetchSnapshot.

The node only reads. The application writes the snapshots it takes (then calls
``RaftNode.snapshot_taken``), and the driver writes the ones the node fetched from the leader
(``Ready.snapshot_to_install``). A file-backed store lives in ``kraft/snapshot.py``.
"""

from __future__ import annotations

from typing import Protocol

from kraft.messages import SnapshotId


class SnapshotStore(Protocol):
    def latest(self) -> SnapshotId | None:
        """The newest complete snapshot, or None."""
        ...

    def size(self, snapshot_id: SnapshotId) -> int | None:
        """Its size in bytes, or None if the store does not hold it."""
        ...

    def read(self, snapshot_id: SnapshotId, position: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` from ``position`` (0 <= position <= size)."""
        ...


class MemorySnapshotStore:
    """A dict-backed ``SnapshotStore`` for simulations and tests."""

    __slots__ = ("_snapshots",)

    def __init__(self, snapshots: dict[SnapshotId, bytes] | None = None) -> None:
        self._snapshots: dict[SnapshotId, bytes] = dict(snapshots or {})

    def add(self, snapshot_id: SnapshotId, data: bytes) -> None:
        old = self._snapshots.setdefault(snapshot_id, bytes(data))
        assert old == data, f"snapshot {snapshot_id} rewritten with different bytes"

    def delete(self, snapshot_id: SnapshotId) -> None:
        self._snapshots.pop(snapshot_id, None)

    def ids(self) -> list[SnapshotId]:
        return sorted(self._snapshots)

    def get(self, snapshot_id: SnapshotId) -> bytes | None:
        return self._snapshots.get(snapshot_id)

    def latest(self) -> SnapshotId | None:
        return max(self._snapshots) if self._snapshots else None

    def size(self, snapshot_id: SnapshotId) -> int | None:
        data = self._snapshots.get(snapshot_id)
        return None if data is None else len(data)

    def read(self, snapshot_id: SnapshotId, position: int, max_bytes: int) -> bytes:
        data = self._snapshots[snapshot_id]
        assert 0 <= position <= len(data), (position, len(data))
        return data[position : position + max_bytes]
