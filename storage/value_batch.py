"""Value batches: RecordBatch v2 batches whose records are bare values (null key, no headers, one
timestamp for the batch), which is what a KRaft snapshot's data batches hold.

``build_value_batch`` writes such a batch and ``decode_batch_values`` reads the values back, both
several times cheaper than the general ``storage.records`` codec they agree with byte for byte:

- ``build_value_batch(values, base_offset=b, partition_leader_epoch=e, timestamp=t)`` is
  ``build_batch([(None, v) for v in values], base_offset=b, partition_leader_epoch=e,
  base_timestamp=t)``;
- ``decode_batch_values(buf)`` is ``decode_batch(buf)`` with each record reduced to its value.
  Its fast path takes the records exactly as ``build_value_batch`` lays them out; any other
  layout (control batch, compression, a key, headers, a timestamp delta, a varint past two
  bytes) and any anomaly go to ``decode_batch``, which accepts or raises as it always does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from storage.record_batch import (
    CRC_OFFSET,
    CURRENT_MAGIC,
    HEADER_SIZE,
    HEADER_STRUCT,
    LOG_OVERHEAD,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    BatchHeader,
    compute_crc,
    validate_batch,
)
from storage.records import _U32, decode_batch
from storage.varint import append_zigzag

__all__ = ["build_value_batch", "decode_batch_values"]

# Zig-zag varints of 0 .. _TABLE-1: record lengths, offset deltas and value lengths of a batch
# of small values are looked up, not computed.
_TABLE = 4096


def _zigzag_bytes(value: int) -> bytes:
    out = bytearray()
    append_zigzag(out, value)
    return bytes(out)


_ZZ = [_zigzag_bytes(i) for i in range(_TABLE)]
# attributes 0, timestamp delta 0, offset delta i, key null (zig-zag -1)
_PREFIX = [b"\x00\x00" + _ZZ[i] + b"\x01" for i in range(_TABLE)]
_INT32_MAX = (1 << 31) - 1


def build_value_batch(
    values: Sequence[bytes], *, base_offset: int, partition_leader_epoch: int, timestamp: int
) -> bytes:
    """A RecordBatch v2 (CreateTime, uncompressed, no producer) of records with a null key, no
    headers and ``timestamp``, whose values are ``values`` (bytes-like, not None)."""
    n = len(values)
    zz, prefix = _ZZ, _PREFIX
    parts: list[bytes] = [bytes(HEADER_SIZE)]
    ap = parts.append
    for i, v in enumerate(values):
        size = len(v)
        if size < _TABLE and i < _TABLE:
            pre = prefix[i]
            vlen = zz[size]
        else:
            pre = b"\x00\x00" + _zigzag_bytes(i) + b"\x01"
            vlen = _zigzag_bytes(size)
        length = len(pre) + len(vlen) + size + 1  # + header count 0
        ap(zz[length] if length < _TABLE else _zigzag_bytes(length))
        ap(pre)
        ap(vlen)
        ap(v)
        ap(b"\x00")
    out = bytearray(b"".join(parts))
    last_delta = n - 1 if n else 0
    if last_delta > _INT32_MAX:
        raise ValueError(f"last_offset_delta {last_delta} out of range")
    try:
        HEADER_STRUCT.pack_into(
            out, 0, base_offset, len(out) - LOG_OVERHEAD, partition_leader_epoch, CURRENT_MAGIC,
            0, 0, last_delta, timestamp, timestamp if n else NO_TIMESTAMP, NO_PRODUCER_ID,
            NO_PRODUCER_EPOCH, NO_SEQUENCE, n,
        )
    except struct.error as e:
        raise ValueError(f"record batch header field out of range: {e}") from e
    _U32.pack_into(out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


def decode_batch_values(
    buf: bytes | bytearray | memoryview, pos: int = 0
) -> tuple[BatchHeader, list[bytes | None]]:
    """Validate (length, CRC32C) and decode the batch at ``buf[pos:]``: its header and the
    values of its records, in order (see the module docstring)."""
    header = validate_batch(buf, pos)
    values = None
    if header.attributes == 0 and header.record_count >= 0:
        values = _values(bytes(memoryview(buf)[pos + HEADER_SIZE: pos + header.size]), header)
    if values is None:
        header, records = decode_batch(buf, pos)
        values = [r.value for r in records]
    return header, values


def _values(data: bytes, header: BatchHeader) -> list[bytes | None] | None:
    """The values of the records in ``data`` laid out as ``build_value_batch`` writes them;
    None for anything else (the general decoder then decides)."""
    count = header.record_count
    end = len(data)
    out: list[bytes | None] = []
    ap = out.append
    pos = 0
    prev = -1
    try:
        for _ in range(count):
            b = data[pos]
            if b < 0x80:
                z = b
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 >= 0x80:
                    return None
                z = (b & 0x7F) | (b2 << 7)
                pos += 2
            record_end = pos + (z >> 1)
            # Odd zig-zag = negative length; attributes and timestamp delta must be 0.
            if z & 1 or record_end > end or data[pos] or data[pos + 1]:
                return None
            b = data[pos + 2]
            if b < 0x80:
                z = b
                pos += 3
            else:
                b2 = data[pos + 3]
                if b2 >= 0x80:
                    return None
                z = (b & 0x7F) | (b2 << 7)
                pos += 4
            delta = z >> 1
            if z & 1 or delta <= prev or data[pos] != 1:  # key must be null
                return None
            prev = delta
            b = data[pos + 1]
            if b < 0x80:
                z = b
                pos += 2
            else:
                b2 = data[pos + 2]
                if b2 >= 0x80:
                    return None
                z = (b & 0x7F) | (b2 << 7)
                pos += 3
            size = z >> 1
            if z & 1 or pos + size + 1 != record_end or data[pos + size]:  # no headers
                return None
            ap(data[pos: pos + size])
            pos = record_end
    except IndexError:
        return None
    if pos != end or (count and prev > header.last_offset_delta):
        return None
    return out

