"""The records of ``__consumer_offsets``, byte for byte as Kafka writes them, and the consumer
protocol's subscription/assignment blobs, the one codec for them (used by the coordinator, the
HTTP admin API and the CLI tools).

Each record is ``key = int16 version + key struct`` and ``value = int16 version + value struct``
(Kafka's ``group-coordinator/.../message/*.json``): committed offsets under ``OffsetCommitKey``
v1 with ``OffsetCommitValue`` v3, group metadata under ``GroupMetadataKey`` v2 with
``GroupMetadataValue`` v3. A null value (tombstone) deletes the key; compaction keeps the last
record per key, so replaying the partition from its start rebuilds every group and offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kraft.codec import (
    BYTES,
    INT32,
    INT64,
    STRING,
    Array,
    DecodeError,
    Field,
    Message,
    Struct,
)
from storage.records import SimpleRecord, build_batch

__all__ = [
    "GROUP_METADATA_KEY",
    "GROUP_METADATA_VALUE",
    "OFFSET_COMMIT_KEY",
    "OFFSET_COMMIT_VALUE",
    "ConsumerAssignment",
    "ConsumerSubscription",
    "GroupMetadataRecord",
    "MemberRecord",
    "OffsetRecord",
    "decode_consumer_assignment",
    "decode_consumer_subscription",
    "decode_record",
    "encode_consumer_assignment",
    "encode_consumer_subscription",
    "group_metadata_key",
    "group_metadata_value",
    "java_string_hashcode",
    "offset_commit_key",
    "offset_commit_value",
    "partition_for",
    "records_batch",
]

OFFSET_COMMIT_KEY_VERSION = 1
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_KEY_VERSION = 2
GROUP_METADATA_VALUE_VERSION = 3

OFFSET_COMMIT_KEY = Message("OffsetCommitKey", valid_versions="0-1", fields=[
    Field("group", STRING),
    Field("topic", STRING),
    Field("partition", INT32),
])

OFFSET_COMMIT_VALUE = Message(
    "OffsetCommitValue", valid_versions="0-4", flexible_versions="4+", fields=[
        Field("offset", INT64),
        Field("leader_epoch", INT32, "3+", default=-1, ignorable=True),
        Field("metadata", STRING),
        Field("commit_timestamp", INT64),
        Field("expire_timestamp", INT64, "1", default=-1, ignorable=True),
    ])

GROUP_METADATA_KEY = Message("GroupMetadataKey", valid_versions="2", fields=[
    Field("group", STRING, "2"),
])

GROUP_METADATA_VALUE = Message(
    "GroupMetadataValue", valid_versions="0-4", flexible_versions="4+", fields=[
        Field("protocol_type", STRING),
        Field("generation", INT32),
        Field("protocol", STRING, nullable_versions="0+"),
        Field("leader", STRING, nullable_versions="0+"),
        Field("current_state_timestamp", INT64, "2+", default=-1, ignorable=True),
        Field("members", Array(Struct("MemberMetadata", [
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "3+", nullable_versions="3+", default=None,
                  ignorable=True),
            Field("client_id", STRING),
            Field("client_host", STRING),
            Field("rebalance_timeout", INT32, "1+", default=-1, ignorable=True),
            Field("session_timeout", INT32),
            Field("subscription", BYTES),
            Field("assignment", BYTES),
        ]))),
    ])

_I16 = struct.Struct(">h")


def java_string_hashcode(s: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit overflow), signed."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode) % partitions`` (abs(MIN_VALUE) is 0 there)."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


# -- record values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetRecord:
    """A committed offset (``value`` None: a tombstone)."""

    group: str
    topic: str
    partition: int
    offset: int = -1
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1
    tombstone: bool = False


@dataclass(frozen=True, slots=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataRecord:
    """A group's metadata (``tombstone``: the group was deleted)."""

    group: str
    protocol_type: str = ""
    generation: int = 0
    protocol: str | None = None
    leader: str | None = None
    current_state_timestamp: int = -1
    members: tuple[MemberRecord, ...] = ()
    tombstone: bool = False


def _versioned(msg: Message, obj: Any, version: int) -> bytes:
    return _I16.pack(version) + msg.encode(obj, version)


def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    return _versioned(OFFSET_COMMIT_KEY, OFFSET_COMMIT_KEY.cls(
        group=group, topic=topic, partition=partition), OFFSET_COMMIT_KEY_VERSION)


def offset_commit_value(offset: int, metadata: str, commit_timestamp: int,
                        leader_epoch: int = -1) -> bytes:
    return _versioned(OFFSET_COMMIT_VALUE, OFFSET_COMMIT_VALUE.cls(
        offset=offset, leader_epoch=leader_epoch, metadata=metadata,
        commit_timestamp=commit_timestamp), OFFSET_COMMIT_VALUE_VERSION)


def group_metadata_key(group: str) -> bytes:
    return _versioned(GROUP_METADATA_KEY, GROUP_METADATA_KEY.cls(group=group),
                      GROUP_METADATA_KEY_VERSION)


def group_metadata_value(rec: GroupMetadataRecord) -> bytes:
    M = GROUP_METADATA_VALUE
    members = [M.MemberMetadata(
        member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
        client_host=m.client_host, rebalance_timeout=m.rebalance_timeout,
        session_timeout=m.session_timeout, subscription=m.subscription,
        assignment=m.assignment) for m in rec.members]
    return _versioned(M, M.cls(
        protocol_type=rec.protocol_type, generation=rec.generation, protocol=rec.protocol,
        leader=rec.leader, current_state_timestamp=rec.current_state_timestamp,
        members=members), GROUP_METADATA_VALUE_VERSION)


def decode_versioned(msg: Message, data: bytes) -> Any:
    """A record key or value of an internal topic: an int16 version, then ``msg`` at it."""
    if len(data) < 2:
        raise DecodeError(f"{msg.name}: {len(data)} bytes, no version")
    version = _I16.unpack_from(data)[0]
    if version not in msg.valid_versions:
        raise DecodeError(f"{msg.name}: unknown version {version}")
    obj, end = msg.decode(data, version, 2)
    if end != len(data):
        raise DecodeError(f"{msg.name} v{version}: {len(data) - end} trailing bytes")
    return obj


def decode_record(key: bytes | None, value: bytes | None
                  ) -> OffsetRecord | GroupMetadataRecord | None:
    """One ``__consumer_offsets`` record; None for key versions we do not know (Kafka skips
    those too, e.g. a newer consumer-protocol record). DecodeError for malformed bytes."""
    if key is None or len(key) < 2:
        raise DecodeError("__consumer_offsets record without a key")
    key_version = _I16.unpack_from(key)[0]
    if key_version in (0, 1):
        k = decode_versioned(OFFSET_COMMIT_KEY, key)
        if value is None:
            return OffsetRecord(k.group, k.topic, k.partition, tombstone=True)
        v = decode_versioned(OFFSET_COMMIT_VALUE, value)
        return OffsetRecord(k.group, k.topic, k.partition, v.offset, v.leader_epoch,
                            v.metadata, v.commit_timestamp, v.expire_timestamp)
    if key_version == 2:
        k = decode_versioned(GROUP_METADATA_KEY, key)
        if value is None:
            return GroupMetadataRecord(k.group, tombstone=True)
        v = decode_versioned(GROUP_METADATA_VALUE, value)
        return GroupMetadataRecord(
            k.group, v.protocol_type, v.generation, v.protocol, v.leader,
            v.current_state_timestamp,
            tuple(MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                               m.rebalance_timeout, m.session_timeout, bytes(m.subscription),
                               bytes(m.assignment)) for m in v.members))
    return None


def records_batch(records: list[tuple[bytes, bytes | None]], timestamp_ms: int) -> bytes:
    """One uncompressed RecordBatch of (key, value) records."""
    return build_batch([SimpleRecord(value=v, key=k, timestamp=timestamp_ms)
                        for k, v in records], base_timestamp=timestamp_ms)


# -- the consumer protocol's embedded formats (ConsumerProtocolSubscription/Assignment) -------
# Encoded as v0. Decoding reads the v0 prefix of any version (later versions only append
# fields); a malformed blob raises ``DecodeError`` (``UnicodeDecodeError`` for a topic name that
# is not UTF-8); a null topic name reads as "".


@dataclass(frozen=True, slots=True)
class ConsumerSubscription:
    topics: tuple[str, ...]
    user_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class ConsumerAssignment:
    partitions: tuple[tuple[str, tuple[int, ...]], ...]
    user_data: bytes | None = None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        s = struct.Struct(fmt)
        if self.pos + s.size > len(self.data):
            raise DecodeError("consumer protocol data ends early")
        (v,) = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return int(v)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise DecodeError("consumer protocol string ends early")
        try:
            s = self.data[self.pos:self.pos + n].decode()
        except UnicodeDecodeError:
            # Malformed like any other bad blob: callers catch DecodeError only.
            raise DecodeError("consumer protocol string is not UTF-8") from None
        self.pos += n
        return s

    def bytes_(self) -> bytes | None:
        n = self.take(">i")
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise DecodeError("consumer protocol bytes end early")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def count(self) -> int:
        n = self.take(">i")
        if n < 0 or n > len(self.data):
            raise DecodeError(f"bad array length {n}")
        return n


def decode_consumer_subscription(data: bytes) -> ConsumerSubscription:
    """Every version starts with (version, topics, user_data); later fields are ignored, as
    Kafka's consumers are told to do for versions newer than theirs."""
    r = _Reader(bytes(data))
    r.take(">h")
    topics = tuple(t or "" for t in (r.string() for _ in range(r.count())))
    user_data = r.bytes_() if r.pos < len(r.data) else None
    return ConsumerSubscription(topics, user_data)


def decode_consumer_assignment(data: bytes) -> ConsumerAssignment:
    if not data:
        return ConsumerAssignment(())
    r = _Reader(bytes(data))
    r.take(">h")
    parts = []
    for _ in range(r.count()):
        topic = r.string() or ""
        parts.append((topic, tuple(r.take(">i") for _ in range(r.count()))))
    user_data = r.bytes_() if r.pos < len(r.data) else None
    return ConsumerAssignment(tuple(parts), user_data)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def encode_consumer_subscription(sub: ConsumerSubscription) -> bytes:
    return (struct.pack(">hi", 0, len(sub.topics)) + b"".join(_str(t) for t in sub.topics)
            + _bytes(sub.user_data))


def encode_consumer_assignment(a: ConsumerAssignment) -> bytes:
    out = [struct.pack(">hi", 0, len(a.partitions))]
    for topic, parts in a.partitions:
        out.append(_str(topic) + struct.pack(">i", len(parts))
                   + b"".join(struct.pack(">i", p) for p in parts))
    out.append(_bytes(a.user_data))
    return b"".join(out)
