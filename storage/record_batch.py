"""Kafka RecordBatch v2 (magic 2): the 61-byte header, CRC32C, and offset rewriting.

On the produce and fetch hot path a batch stays opaque bytes: we parse the header, check the CRC,
and rewrite ``base_offset`` and ``partition_leader_epoch`` (both outside the CRC'd region). Records
are decoded one by one only by tools, compaction and tests.

Layout (big-endian)::

    base_offset            int64   0
    batch_length           int32   8   bytes after this field
    partition_leader_epoch int32  12
    magic                  int8   16   must be 2
    crc                    uint32 17   CRC32C of bytes [21, end)
    attributes             int16  21
    last_offset_delta      int32  23
    base_timestamp         int64  27
    max_timestamp          int64  35
    producer_id            int64  43
    producer_epoch         int16  51
    base_sequence          int32  53
    record_count           int32  57
    records                       61

The records inside a batch are encoded and decoded by ``storage.records``; control records by
``storage.control_records``.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c as _crc32c

from storage.errors import CorruptRecordError, InvalidRecordError

HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER_STRUCT.size  # 61
assert HEADER_SIZE == 61
# base_offset + batch_length: the bytes not counted by batch_length.
LOG_OVERHEAD = 12
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAGIC_OFFSET = 16
PARTITION_LEADER_EPOCH_OFFSET = 12
MAX_TIMESTAMP_OFFSET = 35
CURRENT_MAGIC = 2

# Attributes bits.
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08  # 0 = CreateTime, 1 = LogAppendTime
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli), hardware-accelerated where the CPU allows."""
    return _crc32c.crc32c(data)


class BatchHeader(NamedTuple):
    """The parsed 61-byte header. A NamedTuple: built straight from ``struct.unpack_from`` at
    a fraction of a frozen dataclass's cost, since every produced batch is parsed."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        # Sequences wrap at int32 max, as in Kafka.
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


_make_header = BatchHeader._make


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at ``buf[pos:]``. Checks only that 61 bytes are there and magic is 2."""
    if len(buf) - pos < HEADER_SIZE:
        # A short header may still be an old-format (magic 0/1) message set: say so if it is.
        if len(buf) - pos > MAGIC_OFFSET and buf[pos + MAGIC_OFFSET] in (0, 1):
            raise InvalidRecordError(
                f"message format v{buf[pos + MAGIC_OFFSET]} (magic {buf[pos + MAGIC_OFFSET]}) "
                "is not supported; only RecordBatch v2 (magic 2)"
            )
        raise CorruptRecordError(
            f"record batch header needs {HEADER_SIZE} bytes, only {len(buf) - pos} present"
        )
    header = _make_header(HEADER_STRUCT.unpack_from(buf, pos))
    if header.magic != CURRENT_MAGIC:
        if header.magic in (0, 1):
            raise InvalidRecordError(
                f"message format v{header.magic} (magic {header.magic}) is not supported; "
                "only RecordBatch v2 (magic 2)"
            )
        raise CorruptRecordError(f"unknown record batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"record batch length {header.batch_length} is too small")
    return header


def compute_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC32C of the CRC'd region of the batch at ``buf[pos:pos+size]``."""
    mv = memoryview(buf)
    return crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size])


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse and fully validate (length and CRC32C) the batch at ``buf[pos:]``."""
    header = parse_header(buf, pos)
    if len(buf) - pos < header.size:
        raise CorruptRecordError(
            f"record batch at {pos} declares {header.size} bytes, only {len(buf) - pos} present"
        )
    if header.last_offset_delta < 0:
        raise CorruptRecordError(f"negative last offset delta {header.last_offset_delta}")
    actual = compute_crc(buf, pos, header.size)
    if actual != header.crc:
        raise CorruptRecordError(
            f"record batch CRC mismatch: stored {header.crc:#010x}, computed {actual:#010x}"
        )
    return header


def iter_batches(
    buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each validated batch in ``buf[pos:end]``.

    Raises ``CorruptRecordError``/``InvalidRecordError`` on the first bad batch, including a torn
    (incomplete) batch at the end.
    """
    end = len(buf) if end is None else end
    view = memoryview(buf)[:end]
    while pos < end:
        header = validate_batch(view, pos)
        yield pos, header
        pos += header.size


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Rewrite base_offset in place; it is outside the CRC'd region."""
    _I64.pack_into(buf, pos, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Rewrite partition_leader_epoch in place; it is outside the CRC'd region."""
    _I32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_max_timestamp(buf: bytearray | memoryview, pos: int, size: int, timestamp: int) -> None:
    """Rewrite max_timestamp (for LogAppendTime) and recompute the CRC, which covers it."""
    _I64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp)
    _U32.pack_into(buf, pos + CRC_OFFSET, compute_crc(buf, pos, size))
