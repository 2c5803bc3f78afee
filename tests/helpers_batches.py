"""Self-contained RecordBatch v2 builder for storage tests (independent of storage.records'
own encoder, so the log tests do not depend on it).

``make_batch`` builds one valid batch (correct CRC32C) with one record per entry of
``value_sizes``; values are deterministic bytes so contents can be compared.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from storage.record_batch import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")


def _varint(n: int) -> bytes:
    raw = (n << 1) ^ (n >> 63)  # zig-zag
    out = bytearray()
    while True:
        byte = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _record(offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes) -> bytes:
    body = bytearray()
    body.append(0)  # attributes
    body += _varint(timestamp_delta)
    body += _varint(offset_delta)
    if key is None:
        body += _varint(-1)
    else:
        body += _varint(len(key)) + key
    body += _varint(len(value)) + value
    body += _varint(0)  # no headers
    return _varint(len(body)) + bytes(body)


def value_bytes(seed: int, size: int) -> bytes:
    pattern = f"<{seed}>".encode()
    return (pattern * (size // len(pattern) + 1))[:size]


def make_batch(
    value_sizes: Sequence[int] = (10,),
    *,
    base_offset: int = 0,
    base_timestamp: int = 1_000,
    timestamps: Sequence[int] | None = None,
    partition_leader_epoch: int = -1,
    seed: int = 0,
    attributes: int = 0,
    producer_id: int = -1,
) -> bytes:
    """A valid v2 batch. Record i has timestamp ``timestamps[i]`` (default ``base_timestamp``+i)
    and value ``value_bytes(seed * 1000 + i, value_sizes[i])``."""
    n = len(value_sizes)
    if timestamps is None:
        timestamps = [base_timestamp + i for i in range(n)]
    assert len(timestamps) == n
    first_ts = timestamps[0] if n else base_timestamp
    records = b"".join(
        _record(i, timestamps[i] - first_ts, None, value_bytes(seed * 1000 + i, size))
        for i, size in enumerate(value_sizes)
    )
    max_ts = max(timestamps) if n else -1
    header = bytearray(
        _HEADER.pack(
            base_offset,
            0,  # batch_length, patched below
            partition_leader_epoch,
            2,
            0,  # crc, patched below
            attributes,
            max(n - 1, 0),
            first_ts,
            max_ts,
            producer_id,
            -1,
            -1,
            n,
        )
    )
    batch = header + records
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, 17, crc32c(memoryview(batch)[21:]))
    return bytes(batch)


def batch_base_offset(batch: bytes) -> int:
    return struct.unpack_from(">q", batch, 0)[0]


def batch_last_offset(batch: bytes) -> int:
    return struct.unpack_from(">q", batch, 0)[0] + struct.unpack_from(">i", batch, 23)[0]


def with_base_offset(batch: bytes, base_offset: int) -> bytes:
    out = bytearray(batch)
    struct.pack_into(">q", out, 0, base_offset)
    return bytes(out)


def with_leader_epoch(batch: bytes, epoch: int) -> bytes:
    out = bytearray(batch)
    struct.pack_into(">i", out, 12, epoch)
    return bytes(out)
