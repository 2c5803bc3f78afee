"""Phase 3 of a cleaning (on the log's owner): ``commit_clean`` checks the log did not move on
and swaps the cleaned segments in with the crash-safe ``.cleaned``/``.swap`` protocol; and
``clean_log``, the three phases in a row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from storage import fsync_journal
from storage.cleaner.plan import (
    _SUFFIXES,
    CleanAbortedError,
    CleanPlan,
    CleanStats,
    _discard_groups,
    _Group,
    log_to_clean,
)
from storage.cleaner.rewrite import (
    DEFAULT_DEDUPE_BUFFER_SIZE,
    DEFAULT_IO_BUFFER_SIZE,
    prepare_clean,
)
from storage.cleaner.throttler import Throttler
from storage.fileutil import fsync_dir
from storage.log import PartitionLog
from storage.segment import LogSegment
from storage.segment_files import SWAP_SUFFIX, segment_file_name

log = logging.getLogger(__package__)  # "storage.cleaner": log lines keep their logger name


# -- phase 3: swap (owner thread) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanResult:
    first_dirty_offset: int
    next_dirty_offset: int  # checkpoint this in cleaner-offset-checkpoint
    first_uncleanable_offset: int
    end_offset: int  # the offset map covered [first_dirty, end); later records were kept as is
    segments_replaced: int
    segments_written: int
    stats: CleanStats
    # Earliest delete horizon among the cleaned section's batches (for needs_cleaning).
    earliest_delete_horizon_ms: int | None
    elapsed_s: float


def _live_groups(log_: PartitionLog, plan: CleanPlan) -> list[_Group]:
    """The plan's groups still to swap, or raise CleanAbortedError if the log moved on in a way
    the plan cannot survive (see the package doc)."""
    if log_ is not plan.log or log_.closed or log_.offline:
        raise CleanAbortedError(f"{plan.dir}: the log was closed, replaced or went offline")
    live = log_._segments
    where = {id(s): i for i, s in enumerate(live)}
    first_present: int | None = None
    for gi, group in enumerate(plan.groups):
        present = [
            id(ref.segment) in where and live[where[id(ref.segment)]] is ref.segment
            for ref in group.refs
        ]
        if first_present is None:
            if not any(present):
                continue  # deleted by retention meanwhile: its data is gone either way
            if not all(present):
                raise CleanAbortedError(f"{plan.dir}: segments of the cleaned range were deleted")
            first_present = gi
        elif not all(present):
            raise CleanAbortedError(f"{plan.dir}: segments of the cleaned range were removed")
    if first_present is None:
        return []
    position = 0
    for group in plan.groups[first_present:]:
        for ref in group.refs:
            segment = ref.segment
            if where[id(segment)] != position or segment.size != ref.size or segment.closed:
                raise CleanAbortedError(
                    f"{plan.dir}: segment {ref.name} changed during cleaning"
                )
            position += 1
    if position >= len(live):
        raise CleanAbortedError(f"{plan.dir}: the cleaned range reaches the active segment")
    return plan.groups[first_present:]


def _merge_txn_indexes(group: _Group, removed: frozenset[tuple[int, int]]) -> None:
    """The new segment's aborted-transaction index is the union of the group's, less the
    entries of the ABORT markers the cleaning removed (``removed``: producer id and marker
    offset): the later segments' entries are appended (durably) to the first one's
    ``.txnindex``, which has the new segment's name, before anything is swapped. Should the
    swap be rolled back by a crash, the first segment merely lists some aborted transactions
    twice (harmless to consumers), or misses the entry of a removed marker whose transaction
    has no data left (a marker is removed only after a committed cleaning removed its data
    and gave it its delete horizon), which is harmless as well."""
    first = group.refs[0].segment.txn_index
    if removed and any((e.producer_id, e.last_offset) in removed
                       for ref in group.refs for e in ref.segment.txn_index.entries):
        keep = [e for ref in group.refs for e in ref.segment.txn_index.entries
                if (e.producer_id, e.last_offset) not in removed]
        first._rewrite(keep)
        first._entries = keep
        return
    for ref in group.refs[1:]:
        for entry in ref.segment.txn_index.entries:
            first.append(entry)
    first.flush()


def commit_clean(
    log_: PartitionLog,
    plan: CleanPlan,
    *,
    _fault_hook: Callable[[str], None] | None = None,
) -> CleanResult:
    """Phase 3 (on the log's owner): swap the cleaned segments in (see the package doc).

    Raises ``CleanAbortedError`` (plan files deleted, log unchanged) if the log changed in a way
    the plan cannot survive. An I/O error during the swap takes the log offline; the directory
    is then recovered by the next ``PartitionLog.open``. ``_fault_hook(step)`` is for tests: it
    is called after each file operation and may raise to simulate a crash there.
    """
    if plan.done:
        raise ValueError("this CleanPlan was already committed or aborted")
    hook = _fault_hook if _fault_hook is not None else (lambda _step: None)
    try:
        groups = _live_groups(log_, plan)
        _discard_groups(plan.groups[: len(plan.groups) - len(groups)])
        swap = [g for g in groups if g.paths is not None]
        for group in swap:
            assert group.paths is not None
            if not all(p.exists() for p in group.paths.values()):
                raise CleanAbortedError(f"{plan.dir}: cleaned files vanished before the swap")
    except CleanAbortedError:
        plan.abort()
        raise
    replaced = sum(len(g.refs) for g in swap)
    directory = plan.dir
    swapping = False
    try:
        with log_._io("swapping in cleaned segments"):
            for group in swap:
                _merge_txn_indexes(group, plan.removed_aborts)
            for group in swap:
                assert group.paths is not None
                for suffix in _SUFFIXES:  # the .log last: it is the group's commit point
                    cleaned = group.paths[suffix]
                    target = cleaned.with_name(segment_file_name(group.base_offset, suffix)
                                               + SWAP_SUFFIX)
                    fsync_journal.rename(cleaned, target)
                    group.paths[suffix] = target
                    swapping = True
                    hook(f"rename {cleaned.name} -> {target.name}")
                fsync_dir(directory)
                hook(f"fsync dir after swap of {group.base_offset}")
            for group in swap:
                for i, ref in enumerate(group.refs):
                    # The group's first segment's .txnindex is the new segment's (merged).
                    ref.segment.delete(keep_txn_index=i == 0)
                    hook(f"delete {ref.name}")
            fsync_dir(directory)
            hook("fsync dir after deleting old segments")
            for group in swap:
                assert group.paths is not None
                for suffix in _SUFFIXES:
                    target = directory / segment_file_name(group.base_offset, suffix)
                    fsync_journal.rename(group.paths[suffix], target)
                    hook(f"rename {group.paths[suffix].name} -> {target.name}")
                    group.paths[suffix] = target
            if swap:
                fsync_dir(directory)
                hook("fsync dir after final renames")
            new_segments = {
                id(group.refs[0].segment): LogSegment.open(
                    directory, group.base_offset, log_.config, now_ms=plan.now_ms
                )
                for group in swap
            }
            gone = {id(ref.segment) for group in swap for ref in group.refs}
            segments: list[LogSegment] = []
            for segment in log_._segments:
                replacement = new_segments.get(id(segment))
                if replacement is not None:
                    segments.append(replacement)
                elif id(segment) not in gone:
                    segments.append(segment)
            log_.install_segments(segments)
    except BaseException:
        if swapping and not log_.offline:
            # The in-memory segment list no longer matches the files; reopening recovers.
            log_._offline = True
            log.error("%s: cleaning swap interrupted; taking the log offline", directory)
        plan._finish()
        raise
    for group in plan.groups:
        group.paths = None
    plan._finish()
    stats = plan.stats
    result = CleanResult(
        first_dirty_offset=plan.first_dirty_offset,
        next_dirty_offset=plan.next_dirty_offset,
        first_uncleanable_offset=plan.first_uncleanable_offset,
        end_offset=plan.end_offset,
        segments_replaced=replaced,
        segments_written=len(swap),
        stats=stats,
        earliest_delete_horizon_ms=plan.earliest_delete_horizon_ms,
        elapsed_s=plan.elapsed_s,
    )
    log.info(
        "%s: cleaned offsets [%d, %d): %d segments -> %d, read %d bytes, wrote %d, removed %d "
        "records (%d tombstones), map %d keys, %.3f s",
        directory, plan.first_dirty_offset, plan.end_offset, replaced, len(swap),
        stats.bytes_read, stats.bytes_written, stats.records_removed, stats.tombstones_removed,
        stats.map_entries, plan.elapsed_s,
    )
    return result


def clean_log(
    log_: PartitionLog,
    *,
    now_ms: int,
    first_dirty_offset: int | None = None,
    io_budget: Throttler | None = None,
    last_stable_offset: int | None = None,
    dedupe_buffer_size: int = DEFAULT_DEDUPE_BUFFER_SIZE,
    io_buffer_size: int = DEFAULT_IO_BUFFER_SIZE,
) -> CleanResult:
    """Clean ``log_`` once, synchronously: ``log_to_clean`` + ``prepare_clean`` +
    ``commit_clean``. The caller must not use the log concurrently (run the phases separately
    to do the heavy part in a worker thread), then checkpoint ``result.next_dirty_offset``."""
    to_clean = log_to_clean(
        log_, now_ms=now_ms, first_dirty_offset=first_dirty_offset,
        last_stable_offset=last_stable_offset,
    )
    plan = prepare_clean(
        to_clean, io_budget=io_budget, dedupe_buffer_size=dedupe_buffer_size,
        io_buffer_size=io_buffer_size,
    )
    return commit_clean(log_, plan)
