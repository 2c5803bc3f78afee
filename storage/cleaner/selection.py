"""What is worth cleaning: the cleanable range of a log (``cleanable_offsets``), its dirty ratio,
``needs_cleaning`` and the earliest delete horizon still pending."""

from __future__ import annotations

import logging
import time

from storage.log import PartitionLog
from storage.segment import LogSegment

log = logging.getLogger(__package__)  # "storage.cleaner": log lines keep their logger name


INT64_MAX = 2**63 - 1


def cleanable_offsets(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    now_ms: int,
    *,
    last_stable_offset: int | None = None,
) -> tuple[int, int]:
    """``(first_dirty, first_uncleanable)``, as Kafka's ``LogCleanerManager.cleanableOffsets``.

    ``first_dirty`` is the checkpoint, or the log start when it is missing, below the log start
    or past the log end. ``first_uncleanable`` is always a segment base offset (see the package
    doc); it may be below ``first_dirty`` (then there is nothing dirty to clean).
    """
    start = log_.log_start_offset
    leo = log_.log_end_offset
    first_dirty = first_dirty_offset
    if first_dirty is None or first_dirty < start or first_dirty > leo:
        if first_dirty is not None:
            log.warning(
                "%s: cleaner checkpoint %d is outside [%d, %d]; cleaning from the log start",
                log_.dir, first_dirty, start, leo,
            )
        first_dirty = start
    segments = log_.segments
    uncleanable = segments[-1].base_offset
    if last_stable_offset is not None and last_stable_offset < uncleanable:
        # The segment containing the last stable offset is not cleaned either (as in Kafka).
        uncleanable = segments[0].base_offset
        for segment in segments:
            if segment.base_offset <= last_stable_offset:
                uncleanable = segment.base_offset
            else:
                break
    lag = log_.config.min_compaction_lag_ms
    if lag > 0:
        for i, segment in enumerate(segments[:-1]):
            if segment.base_offset >= uncleanable:
                break
            if segments[i + 1].base_offset <= first_dirty:
                continue  # wholly clean
            if segment.largest_timestamp > now_ms - lag:
                uncleanable = segment.base_offset
                break
    return first_dirty, uncleanable


def _clean_and_dirty_bytes(
    log_: PartitionLog, first_dirty: int, uncleanable: int
) -> tuple[int, int, list[LogSegment]]:
    segments = log_.segments
    clean = dirty = 0
    dirty_segments: list[LogSegment] = []
    for i, segment in enumerate(segments[:-1]):
        if segment.base_offset >= uncleanable:
            break
        if segments[i + 1].base_offset <= first_dirty:
            clean += segment.size
        else:
            dirty += segment.size
            dirty_segments.append(segment)
    return clean, dirty, dirty_segments


def dirty_ratio(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    *,
    now_ms: int | None = None,
    last_stable_offset: int | None = None,
) -> float:
    """Cleanable (dirty) bytes / (clean + cleanable bytes), by whole segments, as Kafka's
    ``LogToClean.cleanableRatio``. 0.0 when there is nothing below the uncleanable offset."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    first_dirty, uncleanable = cleanable_offsets(
        log_, first_dirty_offset, now, last_stable_offset=last_stable_offset
    )
    clean, dirty, _ = _clean_and_dirty_bytes(log_, first_dirty, uncleanable)
    total = clean + dirty
    return dirty / total if total else 0.0


def needs_cleaning(
    log_: PartitionLog,
    first_dirty_offset: int | None,
    now_ms: int,
    *,
    last_stable_offset: int | None = None,
    earliest_delete_horizon_ms: int | None = None,
) -> bool:
    """Should the cleaner pick this log now (Kafka's ``grabFilthiestCompactedLog`` filter)?

    True for a compacted log with dirty bytes and either ``dirty_ratio >=
    min.cleanable.dirty.ratio`` or a dirty segment whose first batch is older than
    ``max.compaction.lag.ms``; or when a tombstone's delete horizon has passed (KIP-534).
    ``earliest_delete_horizon_ms``: the value from the last ``CleanResult`` for this log; when
    None the cleanable segments' batch headers are scanned for it (one small read per batch).
    """
    config = log_.config
    if not config.compact_enabled:
        return False
    first_dirty, uncleanable = cleanable_offsets(
        log_, first_dirty_offset, now_ms, last_stable_offset=last_stable_offset
    )
    clean, dirty, dirty_segments = _clean_and_dirty_bytes(log_, first_dirty, uncleanable)
    if dirty > 0:
        if dirty / (clean + dirty) >= config.min_cleanable_dirty_ratio:
            return True
        if config.max_compaction_lag_ms < INT64_MAX:
            for segment in dirty_segments:
                for _, header in segment.iter_headers():
                    ts = header.max_timestamp
                    if ts > 0 and now_ms - ts > config.max_compaction_lag_ms:
                        return True
                    break
    horizon = earliest_delete_horizon_ms
    if horizon is None:
        horizon = earliest_delete_horizon(log_, uncleanable)
    return horizon is not None and now_ms >= horizon


def earliest_delete_horizon(log_: PartitionLog, below_offset: int | None = None) -> int | None:
    """The earliest delete horizon of a batch (a tombstone's, or a transaction marker's) in
    non-active segments with base offset < ``below_offset``; None if no batch has one. Header
    reads only."""
    segments = log_.segments[:-1]
    best: int | None = None
    for segment in segments:
        if below_offset is not None and segment.base_offset >= below_offset:
            break
        for _, header in segment.iter_headers():
            if (
                header.has_delete_horizon
                and (best is None or header.base_timestamp < best)
            ):
                best = header.base_timestamp
    return best
