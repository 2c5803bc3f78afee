"""Phase 2 of a cleaning (any thread): ``prepare_clean`` builds the offset map, groups the
segments and rewrites each group into ``.cleaned`` files, deciding record by record what stays
(``_GroupCleaner``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from storage.cleaner.offset_map import _build_offset_map, _scan_clean_producers
from storage.cleaner.plan import (
    CleanPlan,
    CleanStats,
    LogToClean,
    _discard_groups,
    _Group,
    _SegmentRef,
)
from storage.cleaner.segment_io import _CleanedSegmentWriter, _iter_batches
from storage.cleaner.throttler import Throttler, _no_throttle
from storage.control_records import batch_txn_marker
from storage.errors import LogDirOfflineError
from storage.record_batch import NO_PRODUCER_ID, BatchHeader, parse_header, validate_batch
from storage.records import (
    TIMESTAMP_TYPE_CREATE_TIME,
    TIMESTAMP_TYPE_LOG_APPEND_TIME,
    Record,
    build_batch,
    decode_batch,
)
from storage.txn_index import AbortedTxn

INT32_MAX = 2**31 - 1

# Kafka's log.cleaner.dedupe.buffer.size and log.cleaner.io.buffer.size defaults.
DEFAULT_DEDUPE_BUFFER_SIZE = 128 * 1024 * 1024
DEFAULT_IO_BUFFER_SIZE = 512 * 1024


def _group_segments(refs: Sequence[_SegmentRef], max_size: int) -> list[list[_SegmentRef]]:
    """Kafka's ``groupSegmentsBySize``: consecutive segments whose sizes add up to at most
    ``segment.bytes`` and whose offsets fit one segment (relative offsets are int32)."""
    groups: list[list[_SegmentRef]] = []
    i = 0
    while i < len(refs):
        group = [refs[i]]
        size = refs[i].size
        i += 1
        while (
            i < len(refs)
            and size + refs[i].size <= max_size
            and refs[i].upper_offset - 1 - group[0].base_offset <= INT32_MAX
        ):
            group.append(refs[i])
            size += refs[i].size
            i += 1
        groups.append(group)
    return groups


class _GroupCleaner:
    """The per-record decisions of one cleaning (Kafka's ``cleanInto`` / ``filterTo``)."""

    def __init__(
        self,
        offset_map: dict[bytes, int],
        end: int,
        now_ms: int,
        delete_retention_ms: int,
        producer_last: dict[int, int],
        stats: CleanStats,
        aborted_txns: Sequence[AbortedTxn] = (),
    ) -> None:
        self.offset_map = offset_map
        self.end = end
        self.now_ms = now_ms
        self.new_horizon = now_ms + delete_retention_ms
        self.producer_last = producer_last
        self.stats = stats
        self.earliest_horizon: int | None = None
        # Aborted transactions of the range (from the aborted-transaction index), by first
        # offset; the producers whose aborted transaction is open at the current batch.
        self._pending = sorted(aborted_txns, key=lambda t: t.first_offset)
        self._next_pending = 0
        self._aborted_pids: set[int] = set()
        # producer id -> whether the data of its transaction open at the current batch is
        # still in the log (some record kept); a transaction without any is absent or False.
        self._txn_has_data: dict[int, bool] = {}
        # (producer id, offset) of the ABORT markers removed: their aborted-transaction index
        # entries go with them (``swap._merge_txn_indexes``).
        self.removed_aborts: set[tuple[int, int]] = set()

    def _in_aborted_txn(self, header: BatchHeader, view: memoryview) -> bool:
        """Whether ``header``'s batch is data of an aborted transaction (the read_committed
        consumer's rule: from the transaction's first offset to its ABORT marker)."""
        pid = header.producer_id
        if pid == NO_PRODUCER_ID:
            return False
        pending = self._pending
        while (self._next_pending < len(pending)
               and pending[self._next_pending].first_offset <= header.last_offset):
            self._aborted_pids.add(pending[self._next_pending].producer_id)
            self._next_pending += 1
        if pid not in self._aborted_pids:
            return False
        if header.is_control:
            marker = batch_txn_marker(view)
            if marker is not None and not marker.is_commit:
                self._aborted_pids.discard(pid)
            return False
        return header.is_transactional

    def _note_horizon(self, header: BatchHeader) -> None:
        if header.has_delete_horizon:
            h = header.base_timestamp
            if self.earliest_horizon is None or h < self.earliest_horizon:
                self.earliest_horizon = h

    def clean_batch(
        self, header: BatchHeader, view: memoryview, is_last: bool
    ) -> tuple[BatchHeader, bytes | memoryview, bool] | None:
        """The batch to write (header, bytes, copied-as-is) or None to drop it."""
        if self._pending and header.base_offset < self.end and self._in_aborted_txn(
                header, view):
            validate_batch(view)
            self.stats.records_read += header.record_count
            self.stats.records_removed += header.record_count
            self._txn_has_data.setdefault(header.producer_id, False)
            return self._empty_or_drop(header, view, is_last)
        if header.base_offset < self.end and header.is_control:
            return self._clean_marker(header, view, is_last)
        if (header.base_offset < self.end and header.is_transactional
                and header.record_count > 0):
            self._txn_has_data[header.producer_id] = True
        if header.base_offset >= self.end or header.is_control or header.is_transactional:
            validate_batch(view)
            self._note_horizon(header)
            return header, view, True
        _, records = decode_batch(view)
        self.stats.records_read += len(records)
        retained: list[Record] = []
        keeps_tombstone = False
        has_horizon = header.has_delete_horizon
        horizon_passed = has_horizon and self.now_ms >= header.base_timestamp
        offset_map = self.offset_map
        for record in records:
            key = record.key
            if key is not None:
                latest = offset_map.get(key)
                if latest is not None and record.offset < latest:
                    self.stats.records_removed += 1
                    continue
                if record.value is None:
                    if horizon_passed:
                        self.stats.records_removed += 1
                        self.stats.tombstones_removed += 1
                        continue
                    keeps_tombstone = True
            retained.append(record)
        if not retained:
            return self._empty_or_drop(header, view, is_last)
        if len(retained) == len(records) and (not keeps_tombstone or has_horizon):
            self._note_horizon(header)
            return header, view, True
        horizon: int | None = None
        if keeps_tombstone:
            if has_horizon:
                horizon = header.base_timestamp
            else:
                horizon = self.new_horizon
                self.stats.horizons_set += 1
        data = build_batch(
            retained,
            base_offset=header.base_offset,
            offset_deltas=[r.offset - header.base_offset for r in retained],
            last_offset_delta=header.last_offset_delta,
            compression=header.compression,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            partition_leader_epoch=header.partition_leader_epoch,
            timestamp_type=_timestamp_type(header),
            max_timestamp=header.max_timestamp if header.is_log_append_time else None,
            delete_horizon_ms=horizon,
        )
        new_header = parse_header(data)
        self._note_horizon(new_header)
        return new_header, data, False


    def _clean_marker(
        self, header: BatchHeader, view: memoryview, is_last: bool
    ) -> tuple[BatchHeader, bytes | memoryview, bool] | None:
        """A transaction marker (Kafka's ``LogCleaner`` with ``CleanedTransactionMetadata``):
        once no record of its transaction is left in the log, the first cleaning gives it a
        delete horizon (``now + delete.retention.ms``), and the first cleaning after the
        horizon removes it, with its aborted-transaction index entry -- unless it is its
        producer's last batch (kept for the producer state) or ends its group."""
        validate_batch(view)
        pid = header.producer_id
        marker = batch_txn_marker(view)
        has_data = self._txn_has_data.pop(pid, False)
        keep = (marker is None or has_data or is_last
                or self.producer_last.get(pid) == header.base_offset)
        if keep:
            if header.has_delete_horizon:
                # Kept after all (its group or producer ends with it now): without the
                # horizon, which would otherwise ask for a cleaning at every pass.
                return self._rebuild_marker(header, view, None)
            return header, view, True
        if header.has_delete_horizon and self.now_ms < header.base_timestamp:
            self._note_horizon(header)
            return header, view, True
        if header.has_delete_horizon:
            self.stats.batches_removed += 1
            self.stats.markers_removed += 1
            if not marker.is_commit:
                self.removed_aborts.add((pid, header.base_offset))
            return None
        self.stats.horizons_set += 1
        out = self._rebuild_marker(header, view, self.new_horizon)
        self._note_horizon(out[0])
        return out

    @staticmethod
    def _rebuild_marker(header: BatchHeader, view: memoryview, horizon: int | None
                        ) -> tuple[BatchHeader, bytes | memoryview, bool]:
        """The same marker with delete horizon ``horizon`` (None: none)."""
        _, records = decode_batch(view)
        data = build_batch(
            records,
            base_offset=header.base_offset,
            offset_deltas=[r.offset - header.base_offset for r in records],
            last_offset_delta=header.last_offset_delta,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            partition_leader_epoch=header.partition_leader_epoch,
            timestamp_type=_timestamp_type(header),
            max_timestamp=header.max_timestamp if header.is_log_append_time else None,
            is_transactional=True,
            is_control=True,
            delete_horizon_ms=horizon,
        )
        return parse_header(data), data, False

    def _empty_or_drop(
        self, header: BatchHeader, view: memoryview, is_last: bool
    ) -> tuple[BatchHeader, bytes | memoryview, bool] | None:
        """A batch left with no records: dropped, or kept empty (same offset range and
        producer fields) when it ends its group or is its producer's last."""
        keep_empty = is_last or (
            header.producer_id != NO_PRODUCER_ID
            and self.producer_last.get(header.producer_id) == header.base_offset
        )
        if not keep_empty:
            self.stats.batches_removed += 1
            return None
        if header.record_count == 0:
            return header, view, True
        self.stats.empty_batches_kept += 1
        data = build_batch(
            [],
            base_offset=header.base_offset,
            last_offset_delta=header.last_offset_delta,
            base_timestamp=header.base_timestamp,
            max_timestamp=header.max_timestamp,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            partition_leader_epoch=header.partition_leader_epoch,
            timestamp_type=_timestamp_type(header),
            is_transactional=header.is_transactional,
        )
        return parse_header(data), data, False


def _timestamp_type(header: BatchHeader) -> int:
    if header.is_log_append_time:
        return TIMESTAMP_TYPE_LOG_APPEND_TIME
    return TIMESTAMP_TYPE_CREATE_TIME


def _group_batches(
    refs: Sequence[_SegmentRef],
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
) -> Iterator[tuple[BatchHeader, memoryview, bool]]:
    """Every batch of the group, with ``is_last`` (one batch of look-ahead)."""
    it = (
        item
        for ref in refs
        for item in _iter_batches(ref, 0, io_buffer_size, throttle, stats)
    )
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        yield current[0], current[1], following is None
        current = following


def prepare_clean(
    to_clean: LogToClean,
    *,
    io_budget: Throttler | None = None,
    dedupe_buffer_size: int = DEFAULT_DEDUPE_BUFFER_SIZE,
    io_buffer_size: int = DEFAULT_IO_BUFFER_SIZE,
) -> CleanPlan:
    """Phase 2 (any thread): build the offset map and write the cleaned segments.

    Consumes ``to_clean`` (its fds are closed). Raises ``CorruptRecordError`` if a batch in the
    range is corrupt (Kafka then marks the partition uncleanable), ``LogDirOfflineError`` on an
    I/O error, ``CleanAbortedError`` if a segment shrank meanwhile; no files are left behind.
    """
    started = time.monotonic()
    throttle: Callable[[int], None] = io_budget.maybe_throttle if io_budget else _no_throttle
    stats = CleanStats()
    lease = to_clean.lease
    if lease is None:
        raise ValueError("this LogToClean was already used or closed")
    to_clean.lease = None  # handed over to the plan
    writers: list[_CleanedSegmentWriter] = []
    groups: list[_Group] = []
    try:
        config = to_clean.config
        first_dirty = to_clean.first_dirty_offset
        producer_last: dict[int, int] = {}
        _scan_clean_producers(to_clean, throttle, stats, producer_last)
        if first_dirty < to_clean.first_uncleanable_offset:
            offset_map, end = _build_offset_map(
                to_clean, dedupe_buffer_size, io_buffer_size, throttle, stats, producer_last
            )
        else:
            offset_map, end = {}, to_clean.first_uncleanable_offset
        stats.map_entries = len(offset_map)
        rewrite = [ref for ref in to_clean.refs if ref.base_offset < end]
        cleaner = _GroupCleaner(
            offset_map, end, to_clean.now_ms, config.delete_retention_ms, producer_last, stats,
            to_clean.aborted_txns,
        )
        for refs in _group_segments(rewrite, config.segment_bytes):
            group = _Group(refs, refs[0].base_offset)
            groups.append(group)
            writer = _CleanedSegmentWriter(
                to_clean.dir, group.base_offset, config, io_buffer_size, throttle, stats
            )
            writers.append(writer)
            changed = len(refs) > 1
            for header, view, is_last in _group_batches(refs, io_buffer_size, throttle, stats):
                out = cleaner.clean_batch(header, view, is_last)
                if out is None:
                    changed = True
                    continue
                new_header, data, as_is = out
                changed = changed or not as_is
                writer.write(new_header, data)
            if changed:
                group.size = writer.finish(refs[-1].mtime_ns)
                group.paths = writer.paths
            else:
                writer.discard()
            writers.remove(writer)
    except OSError as e:
        for writer in writers:
            writer.discard()
        _discard_groups(groups)
        lease.release()
        raise LogDirOfflineError(f"I/O error while cleaning {to_clean.dir}: {e}") from e
    except BaseException:
        for writer in writers:
            writer.discard()
        _discard_groups(groups)
        lease.release()
        raise
    finally:
        to_clean.close()
    return CleanPlan(
        log=to_clean.log,
        dir=to_clean.dir,
        now_ms=to_clean.now_ms,
        first_dirty_offset=first_dirty,
        next_dirty_offset=max(first_dirty, end),
        first_uncleanable_offset=to_clean.first_uncleanable_offset,
        end_offset=end,
        groups=groups,
        stats=stats,
        earliest_delete_horizon_ms=cleaner.earliest_horizon,
        removed_aborts=frozenset(cleaner.removed_aborts),
        lease=lease,
        elapsed_s=time.monotonic() - started,
    )
