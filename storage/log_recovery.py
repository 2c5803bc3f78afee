"""Opening a partition log directory: leftover cleanup, finished compaction swaps, segment
loading and crash recovery (``PartitionLog.open`` calls ``load_segments``).

- **Leftovers**: ``.deleted``/``.cleaned``/segment ``.tmp`` files are removed; a ``.log.swap``
  (a finished compaction output) replaces the segments it covers, as in Kafka; index files
  without a ``.log`` are dropped.
- **Recovery**: a segment is recovered (every batch CRC-checked, indexes rebuilt, file cut at the
  first torn/corrupt batch) when it may hold data at or after ``recovery_point`` or when an index
  is missing/corrupt. A cut logs a WARNING (file, position, bytes, reason) and deletes every
  later segment. Recovered segments are fsynced.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from storage import fsync_journal
from storage.errors import CorruptRecordError, InvalidRecordError, LogDirOfflineError
from storage.fileutil import fsync_dir, make_dirs
from storage.log_config import LogConfig
from storage.record_batch import parse_header
from storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)
from storage.segment_files import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    SWAP_SUFFIX,
    TMP_SUFFIX,
    parse_segment_base_offset,
)
from storage.txn_index import TXN_INDEX_SUFFIX

# Messages keep the partition log's logger name.
log = logging.getLogger("storage.log")


def load_segments(
    directory: Path,
    config: LogConfig,
    *,
    recovery_point: int,
    log_start_offset: int | None,
    now_ms: int,
) -> list[LogSegment]:
    """Create ``directory`` if needed, clean it up, open its segments (an empty log gets one at
    ``log_start_offset``, default 0) and recover them; the segments, oldest first."""
    try:
        make_dirs(directory)
        changed = clean_leftovers(directory)
        segments = open_segments(directory, config, now_ms)
        if not segments:
            start = log_start_offset if log_start_offset is not None else 0
            segments = [LogSegment.create(directory, start, config)]
            changed = True
        segments, recovered = recover_segments(directory, segments, recovery_point)
        changed = changed or recovered
        if changed:
            fsync_dir(directory)
    except OSError as e:
        raise LogDirOfflineError(f"I/O error opening log {directory}: {e}") from e
    return segments


def _unlink(path: Path) -> None:
    try:
        fsync_journal.unlink(path)
    except FileNotFoundError:
        pass


def clean_leftovers(directory: Path) -> bool:
    """Remove ``.deleted``/``.cleaned``/segment ``.tmp`` files, finish ``.swap`` files, and drop
    index files without a ``.log``. Returns True if anything changed."""
    changed = False
    names = os.listdir(directory)
    for name in names:
        if parse_segment_base_offset(name) is None:
            continue
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, TMP_SUFFIX)):
            log.info("%s: removing leftover %s", directory, name)
            _unlink(directory / name)
            changed = True
        elif name.endswith(SWAP_SUFFIX) and not name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            _unlink(directory / name)  # index swap files: the indexes are rebuilt
            changed = True
    for name in sorted(os.listdir(directory)):
        if name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
            base = parse_segment_base_offset(name)
            assert base is not None
            _complete_swap(directory, base)
            changed = True
    names = os.listdir(directory)
    log_bases = {
        parse_segment_base_offset(n) for n in names if n.endswith(LOG_SUFFIX)
    }
    for name in names:
        if name.endswith((INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)):
            base = parse_segment_base_offset(name)
            if base is not None and base not in log_bases:
                log.info("%s: removing orphan index %s", directory, name)
                _unlink(directory / name)
                changed = True
    return changed


def _complete_swap(directory: Path, base: int) -> None:
    """A ``.log.swap`` is a finished compaction output replacing the segments it covers."""
    swap_path = directory / (segment_file_name(base, LOG_SUFFIX) + SWAP_SUFFIX)
    fd = os.open(swap_path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        next_offset = base
        pos = 0
        while pos < size:
            try:
                header = parse_header(os.pread(fd, 61, pos))
            except Exception:  # noqa: BLE001 - a torn swap file is recovered later
                break
            next_offset = header.next_offset
            pos += header.size
    finally:
        os.close(fd)
    for name in os.listdir(directory):
        other = parse_segment_base_offset(name)
        if other is None or not name.endswith((LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)):
            continue
        if base <= other < max(next_offset, base + 1):
            _unlink(directory / name)
    fsync_journal.rename(swap_path, directory / segment_file_name(base, LOG_SUFFIX))
    log.info("%s: completed swap of segment %d (offsets up to %d)", directory, base, next_offset)


def open_segments(directory: Path, config: LogConfig, now_ms: int) -> list[LogSegment]:
    bases = sorted(
        base
        for name in os.listdir(directory)
        if name.endswith(LOG_SUFFIX) and (base := parse_segment_base_offset(name)) is not None
    )
    segments: list[LogSegment] = []
    try:
        for base in bases:
            segments.append(LogSegment.open(directory, base, config, now_ms=now_ms))
    except BaseException:
        for segment in segments:
            segment.close()
        raise
    return segments


def recover_segments(
    directory: Path, segments: list[LogSegment], recovery_point: int
) -> tuple[list[LogSegment], bool]:
    """Recover the segments that may hold unflushed data; cut the log at the first damage."""
    changed = False
    i = 0
    while i < len(segments):
        segment = segments[i]
        is_last = i == len(segments) - 1
        if segment.needs_recovery:
            need = True
        elif is_last:
            try:
                end = segment.next_offset
                need = end > recovery_point or not segment.indexes_fit(end)
            except (CorruptRecordError, InvalidRecordError):
                need = True
        else:
            end = segments[i + 1].base_offset
            need = end > recovery_point or not segment.indexes_fit(end)
        if need:
            result = segment.recover()
            if result.truncated_bytes:
                changed = True
                log.warning(
                    "%s: recovery truncated %s at position %d, removing %d bytes: %s",
                    directory, segment.log_path.name, result.position, result.truncated_bytes,
                    result.reason,
                )
                later = segments[i + 1 :]
                for other in later:
                    log.warning(
                        "%s: deleting segment %s (%d bytes) after the corruption in %s",
                        directory, other.log_path.name, other.size, segment.log_path.name,
                    )
                    other.delete()
                del segments[i + 1 :]
            elif not is_last and segment.next_offset < segments[i + 1].base_offset:
                # Legitimate after follower appends with offset gaps (or compaction): rolls
                # fsync the old segment, so this is not lost data.
                log.info(
                    "%s: segment %s ends at offset %d but the next segment starts at %d",
                    directory, segment.log_path.name, segment.next_offset,
                    segments[i + 1].base_offset,
                )
        i += 1
    return segments, changed
