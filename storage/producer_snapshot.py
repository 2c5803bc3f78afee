"""The producer state snapshot file: its name and its bytes.

Snapshots are ``<offset:020d>.snapshot`` files in the partition directory, as in Kafka, holding the
state of every producer for the log prefix below ``offset``. The format is ours (Kafka's stores
only the last batch per producer; we store all retained ones, so a restarted leader still
deduplicates retries of any of the last 5 batches, and snapshot + replay equals a full replay)::

    version                   int16   1
    crc                       uint32  CRC32C of everything after this field
    producer_count            int32
    per producer (sorted by producer id):
      producer_id             int64
      producer_epoch          int16
      coordinator_epoch       int32
      last_timestamp          int64
      current_txn_first_offset int64  -1 = none
      batch_count             int8    0..5
      per batch: first_seq int32, last_seq int32, first_offset int64, last_offset int64,
                 max_timestamp int64

Equal states encode to equal bytes. ``storage.producer_state.ProducerStateManager`` writes, lists,
loads and deletes the files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from storage.errors import StorageError
from storage.producer_entry import NUM_BATCHES_TO_RETAIN, BatchMetadata, ProducerStateEntry
from storage.record_batch import crc32c

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1

_FILE_HEADER = struct.Struct(">hI")  # version, crc
_COUNT = struct.Struct(">i")
_ENTRY = struct.Struct(">qhiqqb")
_BATCH = struct.Struct(">iiqqq")
_CRC_START = _FILE_HEADER.size


def snapshot_file_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_offset(name: str) -> int | None:
    if not name.endswith(SNAPSHOT_SUFFIX):
        return None
    stem = name[: -len(SNAPSHOT_SUFFIX)]
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class CorruptSnapshotError(StorageError):
    """A producer state snapshot does not decode (bad version, CRC, length)."""


def encode_snapshot(entries: Iterable[ProducerStateEntry]) -> bytes:
    """The snapshot file bytes for ``entries`` (sorted by producer id: equal states, equal
    bytes)."""
    body = bytearray()
    ordered = sorted(entries, key=lambda e: e.producer_id)
    body += _COUNT.pack(len(ordered))
    for e in ordered:
        body += _ENTRY.pack(
            e.producer_id, e.producer_epoch, e.coordinator_epoch, e.last_timestamp,
            e.current_txn_first_offset, len(e.batches),
        )
        for b in e.batches:
            body += _BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset,
                                b.max_timestamp)
    return _FILE_HEADER.pack(SNAPSHOT_VERSION, crc32c(body)) + bytes(body)


def decode_snapshot(data: bytes) -> list[ProducerStateEntry]:
    """Parse snapshot bytes; ``CorruptSnapshotError`` on any deviation."""
    if len(data) < _FILE_HEADER.size + _COUNT.size:
        raise CorruptSnapshotError(f"snapshot too short ({len(data)} bytes)")
    version, crc = _FILE_HEADER.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"unknown snapshot version {version}")
    actual = crc32c(memoryview(data)[_CRC_START:])
    if actual != crc:
        raise CorruptSnapshotError(f"CRC mismatch: stored {crc:#010x}, computed {actual:#010x}")
    pos = _CRC_START
    (count,) = _COUNT.unpack_from(data, pos)
    pos += _COUNT.size
    if count < 0 or count * _ENTRY.size > len(data) - pos:
        raise CorruptSnapshotError(f"bad producer count {count}")
    entries: list[ProducerStateEntry] = []
    seen: set[int] = set()
    try:
        for _ in range(count):
            pid, epoch, coord_epoch, last_ts, txn_first, n = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            if pid < 0 or pid in seen or not 0 <= n <= NUM_BATCHES_TO_RETAIN:
                raise CorruptSnapshotError(f"bad producer entry (id {pid}, {n} batches)")
            seen.add(pid)
            entry = ProducerStateEntry(pid, epoch, coord_epoch, last_ts, txn_first)
            for _ in range(n):
                entry.batches.append(BatchMetadata(*_BATCH.unpack_from(data, pos)))
                pos += _BATCH.size
            entries.append(entry)
    except struct.error as e:
        raise CorruptSnapshotError(f"snapshot truncated: {e}") from None
    if pos != len(data):
        raise CorruptSnapshotError(f"{len(data) - pos} bytes left after {count} producers")
    return entries
