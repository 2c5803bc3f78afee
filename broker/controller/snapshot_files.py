"""Snapshot files of the metadata log on disk (KIP-630): writing them durably, opening them,
and the file-backed ``SnapshotStore`` the Raft node serves FetchSnapshot from. The format is
``kraft.snapshot``'s.

A file is written as ``<name>.part``, fsynced, renamed, and the directory fsynced: a crash never
leaves a half-written snapshot under its final name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from kraft.messages import SnapshotId
from kraft.snapshot import (
    DELETED_SUFFIX,
    PARTIAL_SUFFIX,
    SNAPSHOT_SUFFIX,
    SnapshotReader,
    parse_snapshot_file_name,
    read_snapshot,
    snapshot_batches,
    snapshot_file_name,
)
from storage import fsync_journal
from storage.fileutil import fsync_dir, make_dirs

__all__ = ["FileSnapshotStore", "open_snapshot", "read_snapshot_file", "write_snapshot"]

logger = logging.getLogger(__name__)

_WRITE_BUFFER_BYTES = 1 << 20


def open_snapshot(path: str | os.PathLike[str]) -> SnapshotReader:
    """A reader of the snapshot file at ``path`` (it closes the file)."""
    return SnapshotReader(open(path, "rb", buffering=_WRITE_BUFFER_BYTES))


def read_snapshot_file(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The metadata record values of the snapshot file at ``path``, in order (see
    ``kraft.snapshot.read_snapshot``)."""
    return open_snapshot(path).records()


def _write_durably(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``path.part``, fsync, rename to ``path``, fsync the directory.

    On any error the ``.part`` file is removed and ``path`` is untouched.
    """
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            buf = bytearray()
            for chunk in chunks:
                buf += chunk
                if len(buf) >= _WRITE_BUFFER_BYTES:
                    _write_all(fd, buf)
                    buf.clear()
            _write_all(fd, buf)
            fsync_journal.fsync(fd)
        finally:
            os.close(fd)
        fsync_journal.replace(part, path)
    except BaseException:
        try:
            fsync_journal.unlink(part)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_snapshot(
    directory: str | os.PathLike[str],
    snapshot_id: SnapshotId,
    records: Iterable[bytes],
    *,
    last_contained_log_timestamp_ms: int,
    control_records: Sequence[tuple[int, bytes]] = (),
) -> Path:
    """Write a snapshot of ``records`` (after ``control_records``: the KRaftVersion and
    Voters records) durably into ``directory``; return its path.

    An existing file of the same name is replaced (atomically).
    """
    path = Path(directory) / snapshot_file_name(snapshot_id)
    _write_durably(path, snapshot_batches(
        snapshot_id, records, last_contained_log_timestamp_ms=last_contained_log_timestamp_ms,
        control_records=control_records,
    ))
    return path


class FileSnapshotStore:
    """The snapshots in a metadata partition directory (implements ``SnapshotStore``).

    Snapshot files are immutable once installed: writing an id the store already holds keeps
    the existing file. Every other file in the directory (log segments, indexes, checkpoints)
    is none of the store's business and is left alone.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        make_dirs(self.directory)
        self._sizes: dict[SnapshotId, int] = {}
        removed = False
        for entry in os.scandir(self.directory):
            name = entry.name
            if name.endswith((PARTIAL_SUFFIX, DELETED_SUFFIX)):
                # A write or delete cut short by a crash.
                logger.info("Removing incomplete snapshot file %s", entry.path)
                fsync_journal.unlink(entry.path)
                removed = True
                continue
            if not name.endswith(SNAPSHOT_SUFFIX) or not entry.is_file():
                continue
            snapshot_id = parse_snapshot_file_name(name)
            if snapshot_id is None:
                logger.warning("Skipping file %s: not a snapshot file name", entry.path)
                continue
            self._sizes[snapshot_id] = entry.stat().st_size
        if removed:
            fsync_dir(self.directory)

    def path(self, snapshot_id: SnapshotId) -> Path:
        return self.directory / snapshot_file_name(snapshot_id)

    def snapshot_ids(self) -> list[SnapshotId]:
        return sorted(self._sizes)

    def latest(self) -> SnapshotId | None:
        return max(self._sizes) if self._sizes else None

    def size(self, snapshot_id: SnapshotId) -> int | None:
        return self._sizes.get(snapshot_id)

    def read(self, snapshot_id: SnapshotId, position: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` from ``position``; KeyError if the store does not hold it."""
        size = self._sizes[snapshot_id]
        assert 0 <= position <= size and max_bytes >= 0, (position, size, max_bytes)
        want = min(max_bytes, size - position)
        fd = os.open(self.path(snapshot_id), os.O_RDONLY)
        try:
            chunks = []
            while want > 0:
                chunk = os.pread(fd, want, position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
                want -= len(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks)

    def write(self, snapshot_id: SnapshotId, data: bytes) -> Path:
        """Install a whole snapshot (fetched from the leader) atomically, after checking that it
        parses (CRCs, header, footer); ``CorruptSnapshotError`` if not, and nothing is written."""
        path = self.path(snapshot_id)
        if snapshot_id in self._sizes:
            return path
        for _ in read_snapshot(data):
            pass
        _write_durably(path, (data,))
        self._sizes[snapshot_id] = len(data)
        return path

    def write_records(
        self,
        snapshot_id: SnapshotId,
        records: Iterable[bytes],
        last_contained_log_timestamp_ms: int,
        control_records: Sequence[tuple[int, bytes]] = (),
    ) -> Path:
        """Write a snapshot of ``records`` (framed metadata record values) atomically."""
        path = self.path(snapshot_id)
        if snapshot_id in self._sizes:
            return path
        write_snapshot(self.directory, snapshot_id, records,
                       last_contained_log_timestamp_ms=last_contained_log_timestamp_ms,
                       control_records=control_records)
        self._sizes[snapshot_id] = path.stat().st_size
        return path

    def delete_before(self, snapshot_id: SnapshotId) -> list[SnapshotId]:
        """Delete every snapshot older than ``snapshot_id``; return the ids deleted."""
        doomed = [s for s in sorted(self._sizes) if s < snapshot_id]
        for s in doomed:
            try:
                fsync_journal.unlink(self.path(s))
            except FileNotFoundError:
                pass
            del self._sizes[s]
        if doomed:
            fsync_dir(self.directory)
        return doomed
