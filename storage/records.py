"""Records inside a RecordBatch v2: ``Record``/``SimpleRecord``, ``build_batch`` (encode a whole
batch, compressed or not) and ``decode_batch``/``decode_records``. Not on the broker's hot path
(tools, compaction, tests); the batch header itself is ``storage.record_batch``.

Each record (the records section, compressed as a whole when attributes bits 0-2 say so)::

    length          varint   bytes after this field
    attributes      int8     unused, 0
    timestamp_delta varlong  from base_timestamp
    offset_delta    varint   from base_offset
    key             varint length (-1 = null) + bytes
    value           varint length (-1 = null) + bytes
    header_count    varint
    headers         [varint key length + utf-8 key, varint value length (-1 = null) + bytes]

Varints are zig-zag (protobuf sint32/sint64), ``storage.varint``'s.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from storage.compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    CompressionType,
    compress,
    compression_type,
    decompress,
)
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import (
    CONTROL_MASK,
    CRC_OFFSET,
    CURRENT_MAGIC,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    compute_crc,
    validate_batch,
)
from storage.varint import append_zigzag, varint_codec

_U32 = struct.Struct(">I")


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


# The record format's varints: bad bytes are a corrupt batch. Writing appends to the batch's
# bytearray (``append_zigzag``; callers check ranges first).
_varints = varint_codec(CorruptRecordError, ValueError)
_read_varint = _varints.read_varint
_read_varlong = _varints.read_varlong


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
    append_zigzag(body, timestamp_delta)
    append_zigzag(body, offset_delta)
    for field in (key, value):
        if field is None:
            body.append(1)  # zig-zag -1
        elif isinstance(field, _BYTES_LIKE):
            append_zigzag(body, len(field))
            body += field
        else:
            raise TypeError(f"record key/value must be bytes or None, not {type(field).__name__}")
    append_zigzag(body, len(headers))
    for h_key, h_value in headers:
        if not isinstance(h_key, str):
            raise TypeError(f"header key must be str, not {type(h_key).__name__}")
        raw_key = h_key.encode("utf-8")
        append_zigzag(body, len(raw_key))
        body += raw_key
        if h_value is None:
            body.append(1)
        elif isinstance(h_value, _BYTES_LIKE):
            append_zigzag(body, len(h_value))
            body += h_value
        else:
            raise TypeError(f"header value must be bytes or None, not {type(h_value).__name__}")
    append_zigzag(out, len(body))
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
                ts_delta, pos = _read_varlong(data, pos)
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
