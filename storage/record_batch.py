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

Each record (the records section, compressed as a whole when attributes bits 0-2 say so)::

    length          varint   bytes after this field
    attributes      int8     unused, 0
    timestamp_delta varlong  from base_timestamp
    offset_delta    varint   from base_offset
    key             varint length (-1 = null) + bytes
    value           varint length (-1 = null) + bytes
    header_count    varint
    headers         [varint key length + utf-8 key, varint value length (-1 = null) + bytes]

Varints are zig-zag (protobuf sint32/sint64).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import crc32c as _crc32c

from storage.compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    CompressionType,
    compress,
    compression_type,
    decompress,
)
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


# ---------------------------------------------------------------------------------------------
# Records: encoding and decoding. Not on the broker's hot path (tools, compaction, tests).

TIMESTAMP_TYPE_CREATE_TIME = 0
TIMESTAMP_TYPE_LOG_APPEND_TIME = 1

_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_BYTES_LIKE = (bytes, bytearray, memoryview)

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded record, with absolute offset and timestamp.

    In a LogAppendTime batch every record's timestamp is the batch's max_timestamp, as Kafka's
    readers report it.
    """

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class SimpleRecord:
    """A record to write. ``timestamp=None`` takes ``build_batch``'s default (see there)."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None


# A record to write: a SimpleRecord, a decoded Record (its offset is ignored: offsets come from
# ``offset_deltas``), or a tuple (key, value[, headers[, timestamp]]).
RecordInput = (
    SimpleRecord
    | Record
    | tuple[bytes | None, bytes | None]
    | tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]
    | tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]], int | None]
)


# Zig-zag varints of the record format, tuned for the per-record path (a bytearray to append
# to, a length limit, CorruptRecordError). The schema engine has its own in kraft/codec.py,
# which may not be imported from here (storage is the bottom layer).


def _write_varint(out: bytearray, n: int) -> None:
    """Append zig-zag varint/varlong ``n`` (caller checks its range)."""
    z = (n << 1) ^ (n >> 63)
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _read_varint(data: bytes, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Read a zig-zag varint (``max_bytes`` 5) or varlong (10) at ``pos``; return (value, end).

    IndexError if the data ends inside it; CorruptRecordError if it is too long or out of range.
    """
    b = data[pos]
    if b < 0x80:  # one byte: the common case for lengths, deltas and counts
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    limit = pos + max_bytes
    pos += 1
    while True:
        if pos >= limit:
            raise CorruptRecordError(f"varint longer than {max_bytes} bytes")
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if z >> (32 if max_bytes == 5 else 64):  # a 5-byte varint holds 35 bits, int32 needs 32
        raise CorruptRecordError(f"varint value {z:#x} out of range")
    return (z >> 1) ^ -(z & 1), pos


def _check_int(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} out of range [{lo}, {hi}]")


def _record_parts(
    rec: RecordInput,
) -> tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]], int | None]:
    if isinstance(rec, (SimpleRecord, Record)):
        return rec.key, rec.value, rec.headers, rec.timestamp
    if isinstance(rec, tuple) and 2 <= len(rec) <= 4:
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else ()  # type: ignore[misc]
        timestamp = rec[3] if len(rec) > 3 else None  # type: ignore[misc]
        return key, value, headers, timestamp
    raise TypeError(f"not a record: {rec!r}")


def _encode_record(
    out: bytearray,
    scratch: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> None:
    body = scratch
    del body[:]
    body.append(0)  # attributes
    _write_varint(body, timestamp_delta)
    _write_varint(body, offset_delta)
    for field in (key, value):
        if field is None:
            body.append(1)  # zig-zag -1
        elif isinstance(field, _BYTES_LIKE):
            _write_varint(body, len(field))
            body += field
        else:
            raise TypeError(f"record key/value must be bytes or None, not {type(field).__name__}")
    _write_varint(body, len(headers))
    for h_key, h_value in headers:
        if not isinstance(h_key, str):
            raise TypeError(f"header key must be str, not {type(h_key).__name__}")
        raw_key = h_key.encode("utf-8")
        _write_varint(body, len(raw_key))
        body += raw_key
        if h_value is None:
            body.append(1)
        elif isinstance(h_value, _BYTES_LIKE):
            _write_varint(body, len(h_value))
            body += h_value
        else:
            raise TypeError(f"header value must be bytes or None, not {type(h_value).__name__}")
    _write_varint(out, len(body))
    out += body


def build_batch(
    records: Sequence[RecordInput],
    *,
    base_offset: int = 0,
    compression: int = CompressionType.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    is_transactional: bool = False,
    is_control: bool = False,
    timestamp_type: int = TIMESTAMP_TYPE_CREATE_TIME,
    base_timestamp: int | None = None,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
    max_timestamp: int | None = None,
    delete_horizon_ms: int | None = None,
    compression_level: int | None = None,
) -> bytes:
    """Encode a complete RecordBatch v2 (valid CRC32C) holding ``records``.

    - Offsets: record i gets ``base_offset + offset_deltas[i]``; deltas default to 0..n-1 and must
      be strictly increasing and >= 0 (compaction writes gaps). ``last_offset_delta`` defaults to
      the last delta (0 for no records) and may be larger (a compacted batch keeps its range).
    - Timestamps: a record without one takes ``base_timestamp`` if given, else the wall clock
      (read once per batch). ``base_timestamp`` defaults to the first record's timestamp (-1 for no
      records), ``max_timestamp`` to the largest record timestamp (-1 for no records).
    - ``delete_horizon_ms`` (KIP-534, set by the log cleaner) becomes the base timestamp and sets
      the delete-horizon attribute bit.
    - Bad arguments (types, ranges, non-increasing offsets) raise TypeError/ValueError: they are
      bugs of the caller, not bad input from the wire.
    """
    codec = compression_type(compression)
    n = len(records)
    parts = [_record_parts(r) for r in records]

    if offset_deltas is None:
        deltas: Sequence[int] = range(n)
    else:
        deltas = offset_deltas
        if len(deltas) != n:
            raise ValueError(f"{len(deltas)} offset deltas for {n} records")
        prev = -1
        for d in deltas:
            if d <= prev:
                raise ValueError(f"offset deltas must be >= 0 and strictly increasing: {d}")
            prev = d
    last_delta = deltas[-1] if n else 0
    if last_offset_delta is None:
        last_offset_delta = last_delta
    elif last_offset_delta < last_delta:
        raise ValueError(f"last_offset_delta {last_offset_delta} < last record's delta {last_delta}")
    _check_int("last_offset_delta", last_offset_delta, 0, _INT32_MAX)

    if delete_horizon_ms is not None:
        if base_timestamp is not None and base_timestamp != delete_horizon_ms:
            raise ValueError("base_timestamp and delete_horizon_ms differ")
        base_timestamp = delete_horizon_ms
    default_ts = base_timestamp
    timestamps: list[int] = []
    for _key, _value, _headers, ts in parts:
        if ts is None:
            if default_ts is None:
                default_ts = int(time.time() * 1000)
            ts = default_ts
        _check_int("timestamp", ts, _INT64_MIN, _INT64_MAX)
        timestamps.append(ts)
    if base_timestamp is None:
        base_timestamp = timestamps[0] if n else NO_TIMESTAMP
    if max_timestamp is None:
        max_timestamp = max(timestamps) if n else NO_TIMESTAMP

    attributes = codec.value
    if timestamp_type == TIMESTAMP_TYPE_LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    elif timestamp_type != TIMESTAMP_TYPE_CREATE_TIME:
        raise ValueError(f"unknown timestamp type {timestamp_type}")
    if is_transactional:
        attributes |= TRANSACTIONAL_MASK
    if is_control:
        attributes |= CONTROL_MASK
    if delete_horizon_ms is not None:
        attributes |= DELETE_HORIZON_MASK

    section = bytearray()
    scratch = bytearray()
    for (key, value, headers, _ts), delta, ts in zip(parts, deltas, timestamps, strict=True):
        _check_int("offset delta", delta, 0, _INT32_MAX)
        ts_delta = ts - base_timestamp
        _check_int("timestamp delta", ts_delta, _INT64_MIN, _INT64_MAX)
        _encode_record(section, scratch, delta, ts_delta, key, value, headers)
    payload = (
        section if codec is CompressionType.NONE
        else compress(codec, section, level=compression_level)
    )

    out = bytearray(HEADER_SIZE)
    out += payload
    try:
        HEADER_STRUCT.pack_into(
            out, 0,
            base_offset,
            len(out) - LOG_OVERHEAD,
            partition_leader_epoch,
            CURRENT_MAGIC,
            0,  # crc, below
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            n,
        )
    except struct.error as e:
        raise ValueError(f"record batch header field out of range: {e}") from e
    _U32.pack_into(out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


def _records_payload(
    buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader, max_size: int
) -> bytes:
    section = memoryview(buf)[pos + HEADER_SIZE : pos + header.size]
    codec = compression_type(header.compression)
    if codec is CompressionType.NONE:
        return bytes(section)
    if header.record_count == 0 and len(section) == 0:
        return b""  # an empty batch (kept by compaction for producer state) has nothing to inflate
    return decompress(codec, section, max_size=max_size)


def decode_batch(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> tuple[BatchHeader, list[Record]]:
    """Validate (length, CRC32C) and decode the batch at ``buf[pos:]``: its header and records.

    Raises CorruptRecordError for anything undecodable (bad varints, lengths, UTF-8, compressed
    data, record count, bytes left over); InvalidRecordError for a decodable batch that breaks a
    rule (magic 0/1, unknown codec, offset deltas not increasing or past last_offset_delta).
    """
    header = validate_batch(buf, pos)
    count = header.record_count
    if count < 0:
        raise CorruptRecordError(f"negative record count {count}")
    data = _records_payload(buf, pos, header, max_decompressed_size)
    return header, _decode_records_section(data, header)


def decode_records(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> list[Record]:
    """The records of the batch at ``buf[pos:]`` (see ``decode_batch``)."""
    return decode_batch(buf, pos, max_decompressed_size=max_decompressed_size)[1]


def _decode_records_section(data: bytes, header: BatchHeader) -> list[Record]:
    read = _read_varint
    count = header.record_count
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    append_time = header.max_timestamp if header.is_log_append_time else None
    last_offset_delta = header.last_offset_delta
    end = len(data)
    records: list[Record] = []
    pos = 0
    prev_delta = -1
    try:
        for i in range(count):
            if pos >= end:
                raise CorruptRecordError(f"batch declares {count} records, only {i} present")
            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                length, pos = read(data, pos)
            record_end = pos + length
            if length < 0 or record_end > end:
                raise CorruptRecordError(f"record {i}: length {length} past the end of the batch")
            pos += 1  # attributes: unused
            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                ts_delta, pos = read(data, pos, 10)
            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                offset_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                offset_delta, pos = read(data, pos)
            if offset_delta <= prev_delta:
                raise InvalidRecordError(
                    f"record {i}: offset delta {offset_delta} does not follow {prev_delta}"
                )
            prev_delta = offset_delta

            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                size = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                size, pos = read(data, pos)
            if size == -1:
                key = None
            elif 0 <= size <= record_end - pos:
                key = data[pos : pos + size]
                pos += size
            else:
                raise CorruptRecordError(f"record {i}: bad key length {size}")

            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                size = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                size, pos = read(data, pos)
            if size == -1:
                value = None
            elif 0 <= size <= record_end - pos:
                value = data[pos : pos + size]
                pos += size
            else:
                raise CorruptRecordError(f"record {i}: bad value length {size}")

            b = data[pos]
            if b < 0x80:  # inlined one-byte fast path of _read_varint
                header_count = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                header_count, pos = read(data, pos)
            if header_count < 0:
                raise CorruptRecordError(f"record {i}: negative header count {header_count}")
            headers: list[tuple[str, bytes | None]] = []
            for _ in range(header_count):
                if pos >= record_end:
                    raise CorruptRecordError(f"record {i}: headers past the end of the record")
                b = data[pos]
                if b < 0x80:  # inlined one-byte fast path of _read_varint
                    size = (b >> 1) ^ -(b & 1)
                    pos += 1
                else:
                    size, pos = read(data, pos)
                if not 0 <= size <= record_end - pos:
                    raise CorruptRecordError(f"record {i}: bad header key length {size}")
                h_key = data[pos : pos + size].decode("utf-8")
                pos += size
                b = data[pos]
                if b < 0x80:  # inlined one-byte fast path of _read_varint
                    size = (b >> 1) ^ -(b & 1)
                    pos += 1
                else:
                    size, pos = read(data, pos)
                if size == -1:
                    h_value = None
                elif 0 <= size <= record_end - pos:
                    h_value = data[pos : pos + size]
                    pos += size
                else:
                    raise CorruptRecordError(f"record {i}: bad header value length {size}")
                headers.append((h_key, h_value))

            if pos != record_end:
                raise CorruptRecordError(
                    f"record {i}: length {length} but {length + pos - record_end} bytes read"
                )
            records.append(
                Record(
                    base_offset + offset_delta,
                    base_timestamp + ts_delta if append_time is None else append_time,
                    key,
                    value,
                    tuple(headers) if headers else (),
                )
            )
    except IndexError:
        raise CorruptRecordError("record truncated inside a field") from None
    except UnicodeDecodeError as e:
        raise CorruptRecordError(f"header key is not UTF-8: {e}") from None
    if pos != end:
        raise CorruptRecordError(f"{end - pos} bytes left after the batch's {count} records")
    if count and prev_delta > last_offset_delta:
        raise InvalidRecordError(
            f"record offset delta {prev_delta} past the batch's last offset delta "
            f"{last_offset_delta}"
        )
    return records


# ---------------------------------------------------------------------------------------------
# Control records: transaction markers (ABORT/COMMIT) and KRaft's own control records.


class ControlRecordType(IntEnum):
    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6


CONTROL_RECORD_KEY_VERSION = 0
END_TXN_MARKER_VERSION = 0
_CONTROL_KEY = struct.Struct(">hh")  # version, type
_END_TXN_VALUE = struct.Struct(">hi")  # version, coordinator_epoch


def control_record_key(control_type: int, version: int = CONTROL_RECORD_KEY_VERSION) -> bytes:
    return _CONTROL_KEY.pack(version, control_type)


def parse_control_record_key(key: bytes | None) -> tuple[int, int]:
    """``(version, type)`` of a control record key. A newer version's longer key is accepted."""
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError(f"control record key too short: {key!r}")
    version, control_type = _CONTROL_KEY.unpack_from(key)
    if version < 0:
        raise CorruptRecordError(f"negative control record key version {version}")
    return version, control_type


def end_txn_marker_value(coordinator_epoch: int, version: int = END_TXN_MARKER_VERSION) -> bytes:
    return _END_TXN_VALUE.pack(version, coordinator_epoch)


@dataclass(frozen=True, slots=True)
class EndTxnMarker:
    control_type: ControlRecordType  # ABORT or COMMIT
    coordinator_epoch: int

    @property
    def is_commit(self) -> bool:
        return self.control_type is ControlRecordType.COMMIT


def decode_end_txn_marker(record: Record) -> EndTxnMarker:
    """The transaction marker held by ``record`` (a record of a control batch)."""
    _version, control_type = parse_control_record_key(record.key)
    if control_type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        raise InvalidRecordError(f"control record type {control_type} is not a transaction marker")
    value = record.value
    if value is None or len(value) < _END_TXN_VALUE.size:
        raise CorruptRecordError(f"transaction marker value too short: {value!r}")
    version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    if version < 0:
        raise CorruptRecordError(f"negative transaction marker version {version}")
    return EndTxnMarker(ControlRecordType(control_type), coordinator_epoch)


def build_control_batch(
    control_type: int,
    *,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    coordinator_epoch: int = 0,
    value: bytes | None = None,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp: int | None = None,
    is_transactional: bool | None = None,
) -> bytes:
    """A control batch of one control record.

    For ABORT/COMMIT the value defaults to the end-transaction marker for ``coordinator_epoch``,
    the batch is transactional and needs a producer id. Other types (KRaft's LeaderChange,
    snapshot header/footer, ...) take their schema-encoded ``value`` from the caller.
    """
    is_marker = control_type in (ControlRecordType.ABORT, ControlRecordType.COMMIT)
    if is_marker:
        if producer_id < 0:
            raise ValueError("a transaction marker needs a producer id")
        if value is None:
            value = end_txn_marker_value(coordinator_epoch)
    return build_batch(
        [SimpleRecord(value, key=control_record_key(control_type), timestamp=timestamp)],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        partition_leader_epoch=partition_leader_epoch,
        is_transactional=is_marker if is_transactional is None else is_transactional,
        is_control=True,
    )
