"""Phase 1 of a cleaning (on the log's owner): ``log_to_clean`` picks the range and takes
private fds of its segments; plus what the phases hand each other (``LogToClean``,
``CleanPlan``, ``CleanStats``), the one-cleaning-per-directory lease and ``CleanAbortedError``."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from storage import fsync_journal
from storage.cleaner.selection import cleanable_offsets
from storage.errors import StorageError
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.segment import LogSegment
from storage.segment_files import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX
from storage.txn_index import AbortedTxn

_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX)  # rename order: the .log last


class CleanAbortedError(StorageError):
    """The cleaning was abandoned (the log changed meanwhile, or another cleaning of the same
    log is in progress). Nothing changed; try again later."""


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
        # The aborted transactions with data in the range (their data is removed).
        self.aborted_txns: list[AbortedTxn] = []

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
    to_clean = LogToClean(
        log_, Path(log_.dir), log_.config, now_ms, first_dirty, uncleanable, refs,
        dirty_index, dirty_position, lease,
    )
    if refs:
        try:
            to_clean.aborted_txns = log_.collect_aborted_txns(refs[0].base_offset, uncleanable)
        except BaseException:
            to_clean.close()
            raise
    return to_clean


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
    markers_removed: int = 0  # transaction markers past their delete horizon
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
    # (producer id, offset) of the ABORT markers the cleaning removed.
    removed_aborts: frozenset[tuple[int, int]] = frozenset()

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


def _discard_groups(groups: list[_Group]) -> None:
    for group in groups:
        if group.paths is not None:
            for path in group.paths.values():
                _unlink(path)
            group.paths = None
