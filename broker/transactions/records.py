"""The records of ``__transaction_state``, byte for byte as Kafka writes them
(``TransactionLogKey`` v0 and ``TransactionLogValue`` v0-1 of Kafka's
transaction-coordinator message schemas): ``key = int16 version + transactional_id``,
``value = int16 version + the id's state``. A null value (tombstone) deletes the id;
compaction keeps the last record per key, so replaying a partition rebuilds every id.
"""

from __future__ import annotations

import struct

# A transactional id's partition is Kafka's abs(hashCode) % partitions, as a group id's.
from broker.groups.records import decode_versioned, partition_for, records_batch
from broker.transactions.state import TxnEntry, TxnState
from kraft.codec import (
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    Array,
    DecodeError,
    Field,
    Message,
    Struct,
)

__all__ = [
    "TRANSACTION_LOG_KEY",
    "TRANSACTION_LOG_VALUE",
    "decode_txn_record",
    "partition_for",
    "records_batch",
    "txn_key",
    "txn_value",
]

_I16 = struct.Struct(">h")
KEY_VERSION = 0
# Version 0 (not flexible) is what Kafka writes for clients of transaction version 1.
VALUE_VERSION = 0

TRANSACTION_LOG_KEY = Message("TransactionLogKey", valid_versions="0", fields=[
    Field("transactional_id", STRING),
])

TRANSACTION_LOG_VALUE = Message(
    "TransactionLogValue", valid_versions="0-1", flexible_versions="1+", fields=[
        Field("producer_id", INT64),
        Field("previous_producer_id", INT64, "1+", tag=0, default=-1, ignorable=True),
        Field("next_producer_id", INT64, "1+", tag=1, default=-1, ignorable=True),
        Field("producer_epoch", INT16),
        Field("transaction_timeout_ms", INT32),
        Field("transaction_status", INT8),
        Field("transaction_partitions", Array(Struct("PartitionsSchema", [
            Field("topic", STRING),
            Field("partition_ids", Array(INT32)),
        ])), nullable_versions="0+"),
        Field("transaction_last_update_timestamp_ms", INT64),
        Field("transaction_start_timestamp_ms", INT64),
        Field("client_transaction_version", INT16, "1+", tag=2, default=0, ignorable=True),
    ])


def txn_key(transactional_id: str) -> bytes:
    return _I16.pack(KEY_VERSION) + TRANSACTION_LOG_KEY.encode(
        TRANSACTION_LOG_KEY.cls(transactional_id=transactional_id), KEY_VERSION)


def txn_value(e: TxnEntry, version: int = VALUE_VERSION) -> bytes:
    V = TRANSACTION_LOG_VALUE
    by_topic: dict[str, list[int]] = {}
    for t, p in sorted(e.partitions):
        by_topic.setdefault(t, []).append(p)
    obj = V.cls(
        producer_id=e.producer_id, previous_producer_id=e.previous_producer_id,
        next_producer_id=-1, producer_epoch=e.producer_epoch,
        transaction_timeout_ms=e.timeout_ms, transaction_status=int(e.state),
        transaction_partitions=[V.PartitionsSchema(topic=t, partition_ids=ps)
                                for t, ps in by_topic.items()],
        transaction_last_update_timestamp_ms=e.last_update_ms,
        transaction_start_timestamp_ms=e.txn_start_ms, client_transaction_version=0)
    return _I16.pack(version) + V.encode(obj, version)


def decode_txn_record(key: bytes | None, value: bytes | None
                      ) -> tuple[str, TxnEntry | None]:
    """(transactional id, its entry or None for a tombstone); DecodeError when malformed."""
    if key is None:
        raise DecodeError("__transaction_state record without a key")
    k = decode_versioned(TRANSACTION_LOG_KEY, key)
    tid: str = k.transactional_id  # type: ignore[attr-defined]
    if value is None:
        return tid, None
    v = decode_versioned(TRANSACTION_LOG_VALUE, value)
    try:
        state = TxnState(v.transaction_status)  # type: ignore[attr-defined]
    except ValueError as e:
        raise DecodeError(f"unknown transaction status of {tid!r}") from e
    parts = frozenset((tp.topic, p) for tp in v.transaction_partitions or ()  # type: ignore
                      for p in tp.partition_ids)
    return tid, TxnEntry(
        transactional_id=tid, producer_id=v.producer_id,  # type: ignore[attr-defined]
        producer_epoch=v.producer_epoch, timeout_ms=v.transaction_timeout_ms,  # type: ignore
        state=state, partitions=parts,
        txn_start_ms=v.transaction_start_timestamp_ms,  # type: ignore[attr-defined]
        last_update_ms=v.transaction_last_update_timestamp_ms,  # type: ignore[attr-defined]
        previous_producer_id=v.previous_producer_id)  # type: ignore[attr-defined]
