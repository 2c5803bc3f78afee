"""Appending to a partition log: batch validation (all or nothing), offset assignment and
header stamping on the leader, offset checks on followers, and segment rolls.

A roll fsyncs the outgoing segment, creates the new one and fsyncs the directory, then moves
``recovery_point`` to the new base offset (Kafka does the same flush asynchronously): every
inactive segment is durable, so a crash can never keep a later segment while losing the tail of
an earlier one (a silent hole of offsets), and restart recovery only scans the active segment.
With a fast disk this is one extra fsync per ``segment.bytes``.

``LogAppendMixin`` is one of the parts ``storage.log.PartitionLog`` is made of: its methods work
on the log's segments.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Sequence
from typing import NamedTuple

from storage.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from storage.record_batch import (
    ATTRIBUTES_OFFSET,
    CURRENT_MAGIC,
    HEADER_SIZE,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    PARTITION_LEADER_EPOCH_OFFSET,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
    crc32c,
    set_max_timestamp,
    set_partition_leader_epoch,
    validate_batch,
)
from storage.segment import LogSegment

# Messages keep the partition log's logger name.
log = logging.getLogger("storage.log")

INT32_MAX = 2**31 - 1

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogAppendInfo(NamedTuple):
    """What an append did. A NamedTuple: it is built once per produce, where a frozen
    dataclass's ``__init__`` costs several microseconds on this machine class."""

    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    num_batches: int
    num_records: int  # shallow: sum of the batches' record_count
    valid_bytes: int
    log_start_offset: int = 0


class LogAppendMixin:
    """Appends and rolls of ``PartitionLog``."""

    def append(
        self,
        buf: bytes | bytearray | memoryview,
        *,
        assign_offsets: bool = True,
        leader_epoch: int | None = None,
        now_ms: int | None = None,
        headers: Sequence[BatchHeader] | None = None,
    ) -> LogAppendInfo:
        """Append one or more complete v2 batches, all or nothing.

        Leader path (``assign_offsets``): offsets are rewritten from the log end offset,
        ``partition_leader_epoch`` is stamped when ``leader_epoch`` is given, and LogAppendTime
        topics get ``max_timestamp = now``. Follower/Raft path: offsets are kept and must be
        increasing and >= ``log_end_offset`` (``leader_epoch`` is ignored).

        ``headers``: the batches' headers as the caller already parsed them from ``buf``
        (``storage.producer_state.batch_headers``, one per batch, in order), so they are not
        parsed twice; the CRC and every other check are still done here.

        With ``defer_flush`` an append that ``flush.messages`` wants fsynced is not flushed
        here: the caller awaits ``flush_wait`` (storage/log_flush.py).
        """
        self._check_writable()
        now = _now_ms() if now_ms is None else now_ms
        view = memoryview(buf)
        size = len(view)
        if size == 0:
            raise InvalidRecordError("append of an empty buffer: no record batches")
        leo = self._segments[-1].next_offset
        log_append_time = now if self.config.log_append_time else -1
        rewrite = assign_offsets and (leader_epoch is not None or log_append_time >= 0)
        stamp_epoch_only = rewrite and log_append_time < 0
        # Validate everything first (all or nothing), then rewrite headers. The leader path
        # copies the buffer once so base offsets can be patched in place (outside the CRC).
        data: bytes | bytearray | memoryview = bytearray(view) if assign_offsets else buf
        # (position, last offset, max timestamp, size) per batch: all the segment needs.
        batches: list[tuple[int, int, int, int]] = []
        # (partition leader epoch, base offset) where the epoch changes from batch to batch.
        epochs: list[tuple[int, int]] = []
        last_epoch: int | None = None
        first_offset = leo
        pos = 0
        offset = leo
        max_bytes = self.config.max_message_bytes
        max_ts, offset_of_max_ts = -1, leo
        num_records = 0
        unpack = HEADER_STRUCT.unpack_from
        parsed = iter(headers) if headers is not None else None
        while pos < size:
            # validate_batch, inlined: this loop runs once per produced batch.
            if parsed is not None:
                fields = next(parsed, None)
                if fields is None:
                    raise InvalidRecordError(f"no parsed header for the batch at {pos}")
            else:
                if size - pos < HEADER_SIZE:
                    validate_batch(view, pos)  # raises the precise error
                fields = unpack(view, pos)
            (
                base_offset, batch_length, epoch, magic, crc, _attributes, last_delta,
                _base_ts, batch_max_ts, _pid, _pepoch, _seq, record_count,
            ) = fields
            batch_size = batch_length + LOG_OVERHEAD
            if (
                magic != CURRENT_MAGIC
                or batch_length < HEADER_SIZE - LOG_OVERHEAD
                or batch_size > size - pos
                or last_delta < 0
                or crc32c(view[pos + ATTRIBUTES_OFFSET : pos + batch_size]) != crc
            ):
                validate_batch(view, pos)  # raises the precise error
                raise CorruptRecordError(f"invalid record batch at position {pos}")
            if batch_size > max_bytes:
                raise RecordTooLargeError(
                    f"record batch of {batch_size} bytes exceeds max.message.bytes {max_bytes}"
                )
            if assign_offsets:
                if record_count <= 0 or record_count != last_delta + 1:
                    raise InvalidRecordError(
                        f"batch record count {record_count} does not match its offset "
                        f"range (last offset delta {last_delta})"
                    )
                base_offset = offset
                _I64.pack_into(data, pos, offset)  # type: ignore[arg-type]
                if stamp_epoch_only:
                    # The usual leader append: the epoch sits outside the CRC.
                    _I32.pack_into(data, pos + PARTITION_LEADER_EPOCH_OFFSET, leader_epoch)  # type: ignore[arg-type]
                    epoch = leader_epoch
                elif rewrite:
                    batch_max_ts, epoch = self._stamp(
                        data, pos, batch_size, leader_epoch, log_append_time, batch_max_ts, epoch
                    )
            elif base_offset < offset:
                raise InvalidRecordError(
                    f"batch base offset {base_offset} is below the expected "
                    f"{offset} (log end offset {leo}): offsets must be increasing"
                )
            if pos == 0:
                first_offset = base_offset
            offset = base_offset + last_delta + 1
            batches.append((pos, offset - 1, batch_max_ts, batch_size))
            if epoch != last_epoch:  # the leader-epoch cache needs each epoch's first offset
                epochs.append((epoch, base_offset))
                last_epoch = epoch
            num_records += record_count
            if batch_max_ts > max_ts:
                max_ts, offset_of_max_ts = batch_max_ts, offset - 1
            pos += batch_size
        last_offset = offset - 1
        if last_offset - first_offset > INT32_MAX:
            raise InvalidRecordError(
                f"append spans offsets {first_offset}..{last_offset}, more than one segment holds"
            )
        try:
            if self._should_roll(size, last_offset, now):
                self._roll(first_offset, now)
            self._segments[-1].append(
                last_offset, max_ts, offset_of_max_ts, data, batches=batches, now_ms=now
            )
        except OSError as e:
            err = self._io_error("appending", e)
            if err is e:
                raise
            raise err from e
        cache = self.leader_epoch_cache
        if cache is not None:
            latest = cache.latest_epoch
            for epoch, base_offset in epochs:
                if epoch >= 0 and (latest is None or epoch > latest):
                    cache.assign(epoch, base_offset)
                    latest = epoch
        if offset - self._recovery_point >= self.config.flush_messages and not self.defer_flush:
            self.flush(now_ms=now)
        return LogAppendInfo(
            first_offset,
            last_offset,
            max_ts,
            offset_of_max_ts,
            log_append_time,
            len(batches),
            num_records,
            size,
            self._log_start_offset,
        )

    @staticmethod
    def _stamp(
        data: bytearray,
        pos: int,
        batch_size: int,
        leader_epoch: int | None,
        log_append_time: int,
        max_timestamp: int,
        epoch: int,
    ) -> tuple[int, int]:
        """Stamp the leader epoch and, for LogAppendTime topics, the append time (which is
        inside the CRC, so the CRC is recomputed). Returns (max timestamp, epoch) as stamped."""
        if leader_epoch is not None:
            set_partition_leader_epoch(data, pos, leader_epoch)
            epoch = leader_epoch
        if log_append_time >= 0:
            attributes = _I16.unpack_from(data, pos + ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_MASK
            _I16.pack_into(data, pos + ATTRIBUTES_OFFSET, attributes)
            set_max_timestamp(data, pos, batch_size, log_append_time)
            max_timestamp = log_append_time
        return max_timestamp, epoch

    def _should_roll(self, message_size: int, last_offset: int, now_ms: int) -> bool:
        segment = self._segments[-1]
        config = self.config
        rolling_base = segment.rolling_base_ms
        if (
            0 < segment.size <= config.segment_bytes - message_size
            and rolling_base is not None
            and now_ms - rolling_base <= config.segment_ms - segment.roll_jitter_ms
            and len(segment.offset_index) < segment.offset_index.max_entries
            and len(segment.time_index) < segment.time_index.max_entries
            and last_offset - segment.base_offset <= INT32_MAX
        ):
            return False  # the usual case, decided in one test
        if segment.size == 0:
            # An empty segment is reused unless the offsets cannot fit its base.
            return last_offset - segment.base_offset > INT32_MAX
        if segment.size > self.config.segment_bytes - message_size:
            return True
        rolling_base = segment.rolling_base_ms
        if rolling_base is not None and (
            now_ms - rolling_base > self.config.segment_ms - segment.roll_jitter_ms
        ):
            return True
        if segment.offset_index.is_full or segment.time_index.is_full:
            return True
        return last_offset - segment.base_offset > INT32_MAX

    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the active one is empty)."""
        self._check_writable()
        with self._io("rolling"):
            return self._roll(self.log_end_offset, _now_ms() if now_ms is None else now_ms)

    def _roll(self, new_base: int, now_ms: int) -> LogSegment:
        new_base = max(new_base, self.log_end_offset)
        active = self.active_segment
        if active.size == 0:
            if active.base_offset == new_base:
                return active
            # Replace a useless empty active segment rather than keep a zero-length one.
            self._segments.pop()
            self._bases.pop()
            active.delete()
        else:
            active.on_become_inactive()
            # Every inactive segment is durable: a crash can then never keep a newer segment
            # while losing the tail of an older one (a silent hole of offsets). Kafka flushes
            # on roll too (asynchronously).
            active.flush()
        segment = LogSegment.create(self.dir, new_base, self.config)
        jitter = self.config.segment_jitter_ms
        segment.roll_jitter_ms = self._random.randrange(jitter) if jitter > 0 else 0
        self._segments.append(segment)
        self._bases.append(new_base)
        self._dir_dirty = True
        self._sync_dir()
        self._recovery_point = max(self._recovery_point, new_base)
        log.debug("%s: rolled new segment at offset %d", self.dir, new_base)
        if self.on_roll is not None:
            self.on_roll(new_base)
        return segment
