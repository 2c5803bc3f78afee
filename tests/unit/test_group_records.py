"""``__consumer_offsets`` record formats: exact bytes (written out by hand from Kafka's JSON
schemas), round trips, tombstones, the group -> partition mapping, and the consumer protocol's
subscription/assignment blobs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.groups.records import (
    ConsumerAssignment,
    ConsumerSubscription,
    GroupMetadataRecord,
    MemberRecord,
    OffsetRecord,
    decode_consumer_assignment,
    decode_consumer_subscription,
    decode_record,
    encode_consumer_assignment,
    encode_consumer_subscription,
    group_metadata_key,
    group_metadata_value,
    java_string_hashcode,
    offset_commit_key,
    offset_commit_value,
    partition_for,
    records_batch,
)
from kraft.codec import DecodeError
from storage.records import decode_batch


def s16(text: str) -> bytes:
    b = text.encode()
    return struct.pack(">h", len(b)) + b


def test_offset_commit_key_v1_bytes() -> None:
    # version int16, group string, topic string, partition int32
    assert offset_commit_key("g", "t", 3) == (
        struct.pack(">h", 1) + s16("g") + s16("t") + struct.pack(">i", 3))


def test_offset_commit_value_v3_bytes() -> None:
    # version, offset int64, leaderEpoch int32 (v3+), metadata string, commitTimestamp int64
    assert offset_commit_value(42, "meta", 1000, leader_epoch=5) == (
        struct.pack(">hqi", 3, 42, 5) + s16("meta") + struct.pack(">q", 1000))


def test_group_metadata_key_and_value_v3_bytes() -> None:
    assert group_metadata_key("grp") == struct.pack(">h", 2) + s16("grp")
    rec = GroupMetadataRecord("grp", "consumer", 7, "range", "m1", 99, (
        MemberRecord("m1", "i1", "c1", "/127.0.0.1", 30000, 10000, b"sub", b"asg"),))
    expected = (struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 7) + s16("range")
                + s16("m1") + struct.pack(">q", 99) + struct.pack(">i", 1)
                + s16("m1") + s16("i1") + s16("c1") + s16("/127.0.0.1")
                + struct.pack(">ii", 30000, 10000)
                + struct.pack(">i", 3) + b"sub" + struct.pack(">i", 3) + b"asg")
    assert group_metadata_value(rec) == expected
    assert decode_record(group_metadata_key("grp"), expected) == rec


def test_null_protocol_and_leader_of_an_empty_group() -> None:
    rec = GroupMetadataRecord("g", "consumer", 3, None, None, 5, ())
    value = group_metadata_value(rec)
    assert value == (struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 3)
                     + struct.pack(">hh", -1, -1) + struct.pack(">qi", 5, 0))
    assert decode_record(group_metadata_key("g"), value) == rec


def test_tombstones() -> None:
    assert decode_record(offset_commit_key("g", "t", 0), None) == OffsetRecord(
        "g", "t", 0, tombstone=True)
    assert decode_record(group_metadata_key("g"), None) == GroupMetadataRecord(
        "g", tombstone=True)


def test_older_value_versions_are_read() -> None:
    # OffsetCommitValue v1 (with expireTimestamp), as Kafka 2.0 wrote it.
    v1 = struct.pack(">hq", 1, 9) + s16("") + struct.pack(">qq", 5, 77)
    rec = decode_record(offset_commit_key("g", "t", 1), v1)
    assert rec == OffsetRecord("g", "t", 1, 9, -1, "", 5, 77)


def test_bad_bytes_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        decode_record(offset_commit_key("g", "t", 1), b"\x00\x03\x00")
    with pytest.raises(DecodeError):
        decode_record(None, b"")
    with pytest.raises(DecodeError):
        decode_record(offset_commit_key("g", "t", 1), struct.pack(">h", 99))
    # Unknown key versions (newer coordinators' record types) are skipped, not errors.
    assert decode_record(struct.pack(">h", 11) + b"xx", b"") is None


@given(group=st.text(max_size=30), topic=st.text(min_size=1, max_size=30),
       partition=st.integers(0, 2**31 - 1), offset=st.integers(-1, 2**63 - 1),
       epoch=st.integers(-1, 2**31 - 1), meta=st.text(max_size=50),
       ts=st.integers(-1, 2**62))
def test_offset_round_trip(group: str, topic: str, partition: int, offset: int, epoch: int,
                           meta: str, ts: int) -> None:
    rec = decode_record(offset_commit_key(group, topic, partition),
                        offset_commit_value(offset, meta, ts, epoch))
    assert rec == OffsetRecord(group, topic, partition, offset, epoch, meta, ts)


def test_records_batch_holds_the_records() -> None:
    recs = [(offset_commit_key("g", "t", 0), offset_commit_value(1, "", 5)),
            (group_metadata_key("g"), None)]
    header, decoded = decode_batch(records_batch(recs, 1234))
    assert header.record_count == 2
    assert [(r.key, r.value) for r in decoded] == recs
    assert all(r.timestamp == 1234 for r in decoded)


def test_java_string_hashcode_and_partition() -> None:
    assert java_string_hashcode("") == 0
    assert java_string_hashcode("test") == 3556498
    assert java_string_hashcode("hello world") == 1794106052
    assert java_string_hashcode("polygenelubricants") == -(2**31)
    # Kafka's Utils.abs maps Integer.MIN_VALUE to 0.
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("test", 50) == 3556498 % 50
    # Negative hash codes use the absolute value (not Python's modulo of a negative).
    h = java_string_hashcode("my-group")
    assert h < 0 and partition_for("my-group", 50) == (-h) % 50
    # Non-BMP characters count as two UTF-16 units, as in Java.
    assert java_string_hashcode("\U0001F600") == 0xD83D * 31 + 0xDE00


def test_consumer_protocol_round_trip_and_newer_versions() -> None:
    sub = ConsumerSubscription(("a", "b"), b"ud")
    assert decode_consumer_subscription(encode_consumer_subscription(sub)) == sub
    asg = ConsumerAssignment((("a", (0, 2)), ("b", (1,))), None)
    assert decode_consumer_assignment(encode_consumer_assignment(asg)) == asg
    assert decode_consumer_assignment(b"") == ConsumerAssignment(())
    # A v1 subscription (owned partitions after user data) reads by its v0 prefix.
    v1 = (struct.pack(">hi", 1, 1) + s16("a") + struct.pack(">i", -1)
          + struct.pack(">i", 1) + s16("a") + struct.pack(">ii", 1, 0))
    assert decode_consumer_subscription(v1) == ConsumerSubscription(("a",), None)
    with pytest.raises(DecodeError):
        decode_consumer_assignment(struct.pack(">hi", 0, 5))
    with pytest.raises(DecodeError):
        decode_consumer_subscription(b"\x00\x00\x00\x00\x00\x05\x00")


def test_consumer_protocol_v0_bytes() -> None:
    # What the CLI's group member sends: v0, null user data.
    sub = encode_consumer_subscription(ConsumerSubscription(("a", "b")))
    assert sub == struct.pack(">hi", 0, 2) + s16("a") + s16("b") + struct.pack(">i", -1)
    asg = encode_consumer_assignment(ConsumerAssignment((("t", (0, 2)), ("u", (1,)))))
    assert asg == (struct.pack(">hi", 0, 2) + s16("t") + struct.pack(">iii", 2, 0, 2)
                   + s16("u") + struct.pack(">ii", 1, 1) + struct.pack(">i", -1))


def test_a_topic_name_that_is_not_utf8_is_a_decode_error() -> None:
    # The coordinator, the HTTP API and the CLI catch DecodeError for a malformed blob; a
    # UnicodeDecodeError escaping them failed every offset-expiry pass of that group.
    blob = struct.pack(">hih", 0, 1, 2) + b"\xff\xfe" + struct.pack(">i", -1)
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_consumer_subscription(blob)
