"""__transaction_state records (broker/transactions/records.py): Kafka's TransactionLogKey
v0 and TransactionLogValue v0/v1 bytes, tombstones, and the partition of an id."""

from __future__ import annotations

import struct

import pytest

from broker.transactions.records import (
    TRANSACTION_LOG_VALUE,
    decode_txn_record,
    partition_for,
    txn_key,
    txn_value,
)
from broker.transactions.state import TxnEntry, TxnState
from kraft.codec import DecodeError

ENTRY = TxnEntry("my-txn", 4000, 3, 60_000, TxnState.ONGOING,
                 frozenset({("orders", 0), ("orders", 2), ("audit", 1)}), 1700, 1800)


def test_key_bytes_are_kafkas() -> None:
    # int16 version 0, then an int16-length string.
    assert txn_key("my-txn") == b"\x00\x00\x00\x06my-txn"


def test_value_v0_layout() -> None:
    v = txn_value(ENTRY)
    assert v[:2] == b"\x00\x00"
    pid, epoch, timeout, status = struct.unpack_from(">qhib", v, 2)
    assert (pid, epoch, timeout, status) == (4000, 3, 60_000, 1)
    # The two timestamps close the value: last update, then start.
    assert struct.unpack(">qq", v[-16:]) == (1800, 1700)


@pytest.mark.parametrize("version", [0, 1])
def test_round_trip(version: int) -> None:
    assert decode_txn_record(txn_key("my-txn"), txn_value(ENTRY, version)) == ("my-txn", ENTRY)


def test_v1_keeps_the_previous_producer_id() -> None:
    e = ENTRY.replace(previous_producer_id=77)
    assert decode_txn_record(txn_key("my-txn"), txn_value(e, 1))[1] == e
    # v0 has no such field: it reads back as -1.
    assert decode_txn_record(txn_key("my-txn"), txn_value(e, 0))[1] == ENTRY


def test_tombstone_and_bad_records() -> None:
    assert decode_txn_record(txn_key("x"), None) == ("x", None)
    with pytest.raises(DecodeError):
        decode_txn_record(None, b"")
    with pytest.raises(DecodeError):
        decode_txn_record(txn_key("x"), b"\x00\x09")
    V = TRANSACTION_LOG_VALUE
    bad = b"\x00\x00" + V.encode(V.cls(
        producer_id=1, previous_producer_id=-1, next_producer_id=-1, producer_epoch=0,
        transaction_timeout_ms=1, transaction_status=42, transaction_partitions=None,
        transaction_last_update_timestamp_ms=0, transaction_start_timestamp_ms=0,
        client_transaction_version=0), 0)
    with pytest.raises(DecodeError):
        decode_txn_record(txn_key("x"), bad)


def test_partition_for_is_javas_hash() -> None:
    # Java's String.hashCode: h = 31 * h + char, in 32-bit two's complement.
    h = 0
    for ch in "my-txn":
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    assert partition_for("my-txn", 50) == abs(h) % 50
    assert all(0 <= partition_for(f"id-{i}", 7) < 7 for i in range(100))
