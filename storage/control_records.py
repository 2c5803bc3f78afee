"""Control records: transaction markers (ABORT/COMMIT) and KRaft's own control records (leader
change, snapshot header/footer, ...), each the single record of a control batch."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import (
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    BatchHeader,
)
from storage.records import Record, SimpleRecord, build_batch, decode_records


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


def batch_txn_marker(buf: bytes | bytearray | memoryview, pos: int = 0) -> EndTxnMarker | None:
    """The transaction marker of the control batch at ``buf[pos:]``, or None when it holds
    none (an empty or non-marker control batch, or one that does not decode)."""
    try:
        records = decode_records(buf, pos)
        if len(records) != 1:
            return None
        return decode_end_txn_marker(records[0])
    except (CorruptRecordError, InvalidRecordError, ValueError):
        return None


def control_markers(
    buf: bytes | bytearray | memoryview, headers: Sequence[BatchHeader]
) -> dict[int, EndTxnMarker]:
    """Batch index -> transaction marker, for the control batches among ``headers`` (the
    batches of ``buf``, in order)."""
    out: dict[int, EndTxnMarker] = {}
    pos = 0
    for i, header in enumerate(headers):
        if header.is_control:
            marker = batch_txn_marker(buf, pos)
            if marker is not None:
                out[i] = marker
        pos += header.size
    return out
