"""Segment recovery: opening a segment's indexes, with the sanity checks that decide whether it
needs recovering, and the scan that validates every batch of a ``.log`` file from its start
(length, CRC32C, increasing offsets that fit the segment) and re-adds the index entries an
uninterrupted run of appends would have added. ``LogSegment.recover`` runs it, then truncates
the file at the first invalid or torn batch and makes the result durable."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from storage.errors import CorruptRecordError, InvalidRecordError
from storage.index import CorruptIndexError, OffsetIndex, TimeIndex
from storage.log_config import LogConfig
from storage.record_batch import HEADER_SIZE, parse_header, validate_batch
from storage.segment_files import pread_exact

log = logging.getLogger("storage.segment")  # the segment's log lines keep their logger name

INT32_MAX = 2**31 - 1
_RECOVERY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    valid_bytes: int
    truncated_bytes: int
    position: int  # where the file was cut (== valid_bytes)
    reason: str | None  # why, if something was cut


def open_indexes(
    log_path: Path,
    index_path: Path,
    time_path: Path,
    size: int,
    base_offset: int,
    config: LogConfig,
) -> tuple[OffsetIndex, TimeIndex, bool]:
    """Open the indexes of a segment whose ``.log`` holds ``size`` bytes: ``(offset index, time
    index, needs_recovery)``. A missing or corrupt index is emptied and needs_recovery is set."""
    needs_recovery = False
    opened: list[OffsetIndex | TimeIndex] = []
    try:
        had_index = index_path.exists()
        had_time_index = time_path.exists()
        offset_index: OffsetIndex
        time_index: TimeIndex
        try:
            offset_index = OffsetIndex.open(index_path, base_offset, config.max_index_entries)
            last = offset_index.last_entry
            if last is not None and last[1] >= size:
                offset_index.close()
                raise CorruptIndexError(
                    f"{index_path}: last entry {last} points past the log end {size}"
                )
        except CorruptIndexError as e:
            log.warning("%s; rebuilding it", e)
            offset_index = OffsetIndex.open_empty(
                index_path, base_offset, config.max_index_entries
            )
            needs_recovery = True
        opened.append(offset_index)
        try:
            time_index = TimeIndex.open(time_path, base_offset, config.max_time_index_entries)
        except CorruptIndexError as e:
            log.warning("%s; rebuilding it", e)
            time_index = TimeIndex.open_empty(
                time_path, base_offset, config.max_time_index_entries
            )
            needs_recovery = True
        opened.append(time_index)
        if size > 0 and not (had_index and had_time_index):
            log.warning(
                "%s: %s missing; rebuilding the indexes",
                log_path,
                "offset index" if not had_index else "time index",
            )
            needs_recovery = True
    except BaseException:
        for index in opened:
            index.close()
        raise
    return offset_index, time_index, needs_recovery


@dataclass(frozen=True, slots=True)
class RecoveryScan:
    """What ``scan_segment`` found: the valid prefix and the state an append would resume from."""

    valid_bytes: int  # where the first invalid or torn batch starts (or the file size)
    next_offset: int  # one past the last valid batch (the base offset if none)
    max_ts: tuple[int, int]  # (largest max timestamp, last offset of its batch); (-1, -1)
    first_ts: int | None  # max timestamp of the first batch
    bytes_since_last_index_entry: int
    reason: str | None  # why the scan stopped early


def scan_segment(
    fd: int,
    file_size: int,
    base_offset: int,
    index_interval_bytes: int,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
) -> RecoveryScan:
    """Validate the batches of the ``.log`` at ``fd`` (``file_size`` bytes) in order, adding
    entries to the (reset) indexes as appends do, up to the first invalid or torn batch."""
    bytes_since_last_index_entry = 0
    position = 0
    expected = base_offset
    max_ts = (-1, -1)
    reason: str | None = None
    buf = b""
    buf_start = 0
    first_ts: int | None = None
    while position < file_size:
        rel = position - buf_start
        if rel + HEADER_SIZE > len(buf):
            buf = pread_exact(fd, min(_RECOVERY_CHUNK, file_size - position), position)
            buf_start, rel = position, 0
        try:
            header = parse_header(buf, rel)
            if rel + header.size > len(buf):
                if position + header.size > file_size:
                    raise CorruptRecordError(
                        f"torn batch: declares {header.size} bytes, only "
                        f"{file_size - position} present"
                    )
                buf = pread_exact(
                    fd, max(header.size, min(_RECOVERY_CHUNK, file_size - position)),
                    position,
                )
                buf_start, rel = position, 0
            validate_batch(buf, rel)
            if header.base_offset < expected:
                raise CorruptRecordError(
                    f"batch base offset {header.base_offset} is below the expected "
                    f"{expected} (offsets must increase)"
                )
            if header.last_offset - base_offset > INT32_MAX:
                raise CorruptRecordError(
                    f"batch last offset {header.last_offset} does not fit segment base "
                    f"{base_offset}"
                )
        except (CorruptRecordError, InvalidRecordError) as e:
            reason = str(e)
            break
        if first_ts is None:
            first_ts = header.max_timestamp
        if header.max_timestamp > max_ts[0]:
            max_ts = (header.max_timestamp, header.last_offset)
        if bytes_since_last_index_entry > index_interval_bytes:
            if not offset_index.is_full:
                offset_index.append(header.last_offset, position)
            if not time_index.is_full:
                time_index.maybe_append(max_ts[0], max_ts[1])
            bytes_since_last_index_entry = 0
        bytes_since_last_index_entry += header.size
        position += header.size
        expected = header.next_offset
    return RecoveryScan(position, expected, max_ts, first_ts, bytes_since_last_index_entry, reason)
