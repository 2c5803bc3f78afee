"""The offset map (Kafka's ``buildOffsetMap``): key -> last offset over the dirty section, bounded
by the dedupe buffer; and the last batch of each producer id, kept for producer state."""

from __future__ import annotations

import logging
from collections.abc import Callable

from storage.cleaner.plan import CleanStats, LogToClean
from storage.cleaner.segment_io import _iter_batches, _iter_headers
from storage.record_batch import NO_PRODUCER_ID, validate_batch
from storage.records import decode_batch

log = logging.getLogger(__package__)  # "storage.cleaner": log lines keep their logger name


# Approximate bytes of one offset-map entry besides its key (dict slot, bytes and int objects).
MAP_ENTRY_OVERHEAD = 100


def _build_offset_map(
    to_clean: LogToClean,
    dedupe_buffer_size: int,
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
    producer_last: dict[int, int],
) -> tuple[dict[bytes, int], int]:
    """Kafka's ``buildOffsetMap``: key -> last offset over the dirty section. Returns the map
    and ``end``, the first offset not covered (a batch boundary)."""
    first_dirty = to_clean.first_dirty_offset
    uncleanable = to_clean.first_uncleanable_offset
    offset_map: dict[bytes, int] = {}
    map_bytes = 0
    for index in range(to_clean.dirty_index, len(to_clean.refs)):
        ref = to_clean.refs[index]
        start = to_clean.dirty_position if index == to_clean.dirty_index else 0
        for header, view in _iter_batches(ref, start, io_buffer_size, throttle, stats):
            if header.last_offset < first_dirty:
                continue
            if header.last_offset >= uncleanable:
                return offset_map, header.base_offset  # defensive: segments end below it
            if header.is_control or header.is_transactional:
                validate_batch(view)
            else:
                _, records = decode_batch(view)
                new_keys: dict[bytes, int] = {}
                cost = 0
                for record in records:
                    key = record.key
                    if key is None or record.offset < first_dirty:
                        continue
                    if key not in offset_map and key not in new_keys:
                        cost += len(key) + MAP_ENTRY_OVERHEAD
                    new_keys[key] = record.offset
                if offset_map and map_bytes + cost > dedupe_buffer_size:
                    log.info(
                        "%s: offset map full (%d entries) at offset %d; cleaning up to it",
                        to_clean.dir, len(offset_map), header.base_offset,
                    )
                    return offset_map, header.base_offset
                offset_map.update(new_keys)
                map_bytes += cost
            if header.producer_id != NO_PRODUCER_ID:
                producer_last[header.producer_id] = header.base_offset
    return offset_map, uncleanable


def _scan_clean_producers(
    to_clean: LogToClean,
    throttle: Callable[[int], None],
    stats: CleanStats,
    producer_last: dict[int, int],
) -> None:
    """Last batch of each producer id in the clean section (below the first dirty batch)."""
    for index in range(min(to_clean.dirty_index + 1, len(to_clean.refs))):
        ref = to_clean.refs[index]
        for header in _iter_headers(ref, throttle, stats):
            if header.last_offset >= to_clean.first_dirty_offset:
                break
            if header.producer_id != NO_PRODUCER_ID:
                producer_last[header.producer_id] = header.base_offset
