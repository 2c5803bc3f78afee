"""KRaft metadata records and control records (KIP-631, KIP-595, KIP-853) and their framing."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from kraft.codec import (
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT16,
    UUID,
    Array,
    DecodeError,
    EncodeError,
    Field,
    Message,
    Struct,
    read_uvarint,
    write_uvarint,
)
from storage.control_records import ControlRecordType

__all__ = [
    "CONTROL_RECORD_SCHEMAS", "CONTROL_RECORD_VERSIONS", "LATEST_VERSIONS",
    "METADATA_RECORD_FRAME_VERSION", "METADATA_RECORD_SCHEMAS",
    "AccessControlEntryRecord", "BrokerRegistrationChangeRecord", "ClientQuotaRecord",
    "ConfigRecord", "FeatureLevelRecord", "FenceBrokerRecord", "KRaftVersionRecord",
    "LeaderChangeMessage", "MetadataRecordType",
    "NoOpRecord", "PartitionChangeRecord", "PartitionRecord", "ProducerIdsRecord",
    "RegisterBrokerRecord", "RemoveAccessControlEntryRecord", "RemoveTopicRecord",
    "RemoveUserScramCredentialRecord", "SnapshotFooterRecord", "SnapshotHeaderRecord",
    "TopicRecord", "UnfenceBrokerRecord", "UnregisterBrokerRecord", "UserScramCredentialRecord",
    "VotersRecord",
    "decode_control_record", "decode_metadata_record", "encode_control_record",
    "encode_metadata_record", "latest_version",
]


class MetadataRecordType(IntEnum):
    """Kafka's metadata record type ids (the ``apiKey`` of each metadata record spec).

    Ids this module has no schema for (delegation tokens, ZK migration,
    controller registration, metadata transactions) are not listed: decoding rejects them.
    """

    REGISTER_BROKER_RECORD = 0
    UNREGISTER_BROKER_RECORD = 1
    TOPIC_RECORD = 2
    PARTITION_RECORD = 3
    CONFIG_RECORD = 4
    PARTITION_CHANGE_RECORD = 5
    FENCE_BROKER_RECORD = 7
    UNFENCE_BROKER_RECORD = 8
    REMOVE_TOPIC_RECORD = 9
    USER_SCRAM_CREDENTIAL_RECORD = 11
    FEATURE_LEVEL_RECORD = 12
    CLIENT_QUOTA_RECORD = 14
    PRODUCER_IDS_RECORD = 15
    BROKER_REGISTRATION_CHANGE_RECORD = 17
    ACCESS_CONTROL_ENTRY_RECORD = 18
    REMOVE_ACCESS_CONTROL_ENTRY_RECORD = 19
    NO_OP_RECORD = 20
    REMOVE_USER_SCRAM_CREDENTIAL_RECORD = 22


RegisterBrokerRecord = Message(
    "RegisterBrokerRecord", api_key=MetadataRecordType.REGISTER_BROKER_RECORD,
    valid_versions="0-3", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("is_migrating_zk_broker", BOOL, "2+", default=False),
        Field("incarnation_id", UUID),
        Field("broker_epoch", INT64),
        Field("end_points", Array(Struct("BrokerEndpoint", [
            Field("name", STRING),
            Field("host", STRING),
            Field("port", UINT16),
            Field("security_protocol", INT16),
        ]))),
        Field("features", Array(Struct("BrokerFeature", [
            Field("name", STRING),
            Field("min_supported_version", INT16),
            Field("max_supported_version", INT16),
        ]))),
        Field("rack", STRING, nullable_versions="0+"),
        Field("fenced", BOOL, default=True),
        Field("in_controlled_shutdown", BOOL, "1+", default=False),
        Field("log_dirs", Array(UUID), "3+", tag=0),
    ],
)

UnregisterBrokerRecord = Message(
    "UnregisterBrokerRecord", api_key=MetadataRecordType.UNREGISTER_BROKER_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64),
    ],
)

TopicRecord = Message(
    "TopicRecord", api_key=MetadataRecordType.TOPIC_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("name", STRING),
        Field("topic_id", UUID),
    ],
)

PartitionRecord = Message(
    "PartitionRecord", api_key=MetadataRecordType.PARTITION_RECORD,
    valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("partition_id", INT32, default=-1),
        Field("topic_id", UUID),
        Field("replicas", Array(INT32)),
        Field("isr", Array(INT32)),
        Field("removing_replicas", Array(INT32)),
        Field("adding_replicas", Array(INT32)),
        Field("leader", INT32, default=-1),
        Field("leader_recovery_state", INT8, tag=0, default=0),
        Field("leader_epoch", INT32, default=-1),
        Field("partition_epoch", INT32, default=-1),
        Field("directories", Array(UUID), "1+"),
        Field("eligible_leader_replicas", Array(INT32), "2+", nullable_versions="2+", tag=1,
              default=None),
        Field("last_known_elr", Array(INT32), "2+", nullable_versions="2+", tag=2, default=None),
    ],
)

ConfigRecord = Message(
    "ConfigRecord", api_key=MetadataRecordType.CONFIG_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("resource_type", INT8),
        Field("resource_name", STRING),
        Field("name", STRING),
        Field("value", STRING, nullable_versions="0+"),
    ],
)

PartitionChangeRecord = Message(
    "PartitionChangeRecord", api_key=MetadataRecordType.PARTITION_CHANGE_RECORD,
    valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("partition_id", INT32, default=-1),
        Field("topic_id", UUID),
        Field("isr", Array(INT32), nullable_versions="0+", tag=0, default=None),
        Field("leader", INT32, tag=1, default=-2),
        Field("replicas", Array(INT32), nullable_versions="0+", tag=2, default=None),
        Field("removing_replicas", Array(INT32), nullable_versions="0+", tag=3, default=None),
        Field("adding_replicas", Array(INT32), nullable_versions="0+", tag=4, default=None),
        Field("leader_recovery_state", INT8, tag=5, default=-1),
        Field("directories", Array(UUID), "1+", nullable_versions="1+", tag=8, default=None),
        Field("eligible_leader_replicas", Array(INT32), "2+", nullable_versions="2+", tag=6,
              default=None),
        Field("last_known_elr", Array(INT32), "2+", nullable_versions="2+", tag=7, default=None),
    ],
)

FenceBrokerRecord = Message(
    "FenceBrokerRecord", api_key=MetadataRecordType.FENCE_BROKER_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("id", INT32),
        Field("epoch", INT64),
    ],
)

UnfenceBrokerRecord = Message(
    "UnfenceBrokerRecord", api_key=MetadataRecordType.UNFENCE_BROKER_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("id", INT32),
        Field("epoch", INT64),
    ],
)

RemoveTopicRecord = Message(
    "RemoveTopicRecord", api_key=MetadataRecordType.REMOVE_TOPIC_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("topic_id", UUID),
    ],
)

FeatureLevelRecord = Message(
    "FeatureLevelRecord", api_key=MetadataRecordType.FEATURE_LEVEL_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("name", STRING),
        Field("feature_level", INT16),
    ],
)

ClientQuotaRecord = Message(
    "ClientQuotaRecord", api_key=MetadataRecordType.CLIENT_QUOTA_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("entity", Array(Struct("EntityData", [
            Field("entity_type", STRING),
            Field("entity_name", STRING, nullable_versions="0+"),
        ]))),
        Field("key", STRING),
        Field("value", FLOAT64),
        Field("remove", BOOL),
    ],
)

ProducerIdsRecord = Message(
    "ProducerIdsRecord", api_key=MetadataRecordType.PRODUCER_IDS_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64, default=-1),
        Field("next_producer_id", INT64),
    ],
)

BrokerRegistrationChangeRecord = Message(
    "BrokerRegistrationChangeRecord", api_key=MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD,
    valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64),
        Field("fenced", INT8, tag=0),
        Field("in_controlled_shutdown", INT8, "1+", tag=1),
        Field("log_dirs", Array(UUID), "2+", tag=2),
    ],
)

UserScramCredentialRecord = Message(
    "UserScramCredentialRecord", api_key=MetadataRecordType.USER_SCRAM_CREDENTIAL_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("name", STRING),
        Field("mechanism", INT8),
        Field("salt", BYTES),
        Field("stored_key", BYTES),
        Field("server_key", BYTES),
        Field("iterations", INT32),
    ],
)

RemoveUserScramCredentialRecord = Message(
    "RemoveUserScramCredentialRecord",
    api_key=MetadataRecordType.REMOVE_USER_SCRAM_CREDENTIAL_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("name", STRING),
        Field("mechanism", INT8),
    ],
)

NoOpRecord = Message(
    "NoOpRecord", api_key=MetadataRecordType.NO_OP_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[],
)


AccessControlEntryRecord = Message(
    "AccessControlEntryRecord", api_key=MetadataRecordType.ACCESS_CONTROL_ENTRY_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("id", UUID),
        Field("resource_type", INT8),
        Field("resource_name", STRING),
        Field("pattern_type", INT8),
        Field("principal", STRING),
        Field("host", STRING),
        Field("operation", INT8),
        Field("permission_type", INT8),
    ],
)

RemoveAccessControlEntryRecord = Message(
    "RemoveAccessControlEntryRecord",
    api_key=MetadataRecordType.REMOVE_ACCESS_CONTROL_ENTRY_RECORD,
    valid_versions="0", flexible_versions="0+",
    fields=[
        Field("id", UUID),
    ],
)


def _by_type(*records: Message) -> dict[MetadataRecordType, Message]:
    table: dict[MetadataRecordType, Message] = {}
    for record in records:
        assert record.api_key is not None
        table[MetadataRecordType(record.api_key)] = record
    return table


METADATA_RECORD_SCHEMAS = _by_type(
    RegisterBrokerRecord, UnregisterBrokerRecord, TopicRecord, PartitionRecord, ConfigRecord,
    PartitionChangeRecord, FenceBrokerRecord, UnfenceBrokerRecord, RemoveTopicRecord,
    FeatureLevelRecord, ProducerIdsRecord, BrokerRegistrationChangeRecord, NoOpRecord,
    ClientQuotaRecord, AccessControlEntryRecord, RemoveAccessControlEntryRecord,
    UserScramCredentialRecord, RemoveUserScramCredentialRecord,
)
LATEST_VERSIONS: dict[MetadataRecordType, int] = {
    t: msg.valid_versions.highest for t, msg in METADATA_RECORD_SCHEMAS.items()
}
assert set(METADATA_RECORD_SCHEMAS) == set(MetadataRecordType)


def latest_version(record_type: int) -> int:
    """The highest version of ``record_type`` we can write (Kafka's ``highestSupportedVersion``)."""
    return LATEST_VERSIONS[MetadataRecordType(record_type)]


# ---------------------------------------------------------------------------------------------
# Metadata record framing (Kafka's AbstractApiMessageSerde): the value of each record in the
# metadata log is uvarint frame version (1), uvarint record type, uvarint record version, body.

METADATA_RECORD_FRAME_VERSION = 1
_SHORT_MAX = 0x7FFF


# The frame prefix of each (record type, version) written so far, and the record type, version
# and schema of each one-byte-each frame prefix, looked up by ``type << 8 | version`` (all three
# fields are uvarints, single bytes below 128): framing costs a dict lookup, not three varints.
_FRAME_PREFIXES: dict[tuple[int, int], bytes] = {}
_ONE_BYTE_FRAMES: dict[int, tuple[MetadataRecordType, int, Message]] = {
    t << 8 | v: (t, v, msg)
    for t, msg in METADATA_RECORD_SCHEMAS.items() if t < 0x80
    for v in range(msg.valid_versions.lowest, min(msg.valid_versions.highest, 0x7F) + 1)
}


def encode_metadata_record(record_type: int, version: int, obj: Any) -> bytes:
    """Frame and serialize ``obj`` (an instance of the record type's class) at ``version``."""
    schema = METADATA_RECORD_SCHEMAS.get(record_type)  # type: ignore[call-overload]
    if schema is None or isinstance(record_type, bool):
        raise EncodeError(f"unknown metadata record type {record_type}")
    prefix = _FRAME_PREFIXES.get((record_type, version))
    out: list[Any] = [prefix or b""]
    schema.encode_to(obj, version, out)
    if prefix is None:  # the version is valid: the encode went through
        out[0] = _FRAME_PREFIXES[(int(record_type), version)] = (
            write_uvarint(METADATA_RECORD_FRAME_VERSION) + write_uvarint(record_type)
            + write_uvarint(version))
    return b"".join(out)


def _read_short_uvarint(buf: Any, pos: int, what: str) -> tuple[int, int]:
    value, pos = read_uvarint(buf, pos)
    if value > _SHORT_MAX:
        raise DecodeError(f"metadata record {what} {value} is too large")
    return value, pos


def decode_metadata_record(buf: Any) -> tuple[MetadataRecordType, int, Any]:
    """Parse one framed metadata record value; return (record type, version, record).

    The whole of ``buf`` must be the record: trailing bytes are an error, as in Kafka.
    Raises ``DecodeError`` on a bad frame version, an unknown type or version, or a bad body.
    """
    if len(buf) >= 3 and buf[0] == METADATA_RECORD_FRAME_VERSION and buf[1] < 0x80 \
            and buf[2] < 0x80:
        frame = _ONE_BYTE_FRAMES.get(buf[1] << 8 | buf[2])
        if frame is not None:
            record_type, version, schema = frame
            pos = 3
        else:
            record_type, version, schema, pos = _decode_frame(buf)
    else:
        record_type, version, schema, pos = _decode_frame(buf)
    obj, end = schema.decode(buf, version, pos)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} byte(s) of garbage after {schema.name} v{version}")
    return record_type, version, obj


def _decode_frame(buf: Any) -> tuple[MetadataRecordType, int, Message, int]:
    frame_version, pos = _read_short_uvarint(buf, 0, "frame version")
    if frame_version != METADATA_RECORD_FRAME_VERSION:
        raise DecodeError(f"unsupported metadata record frame version {frame_version} "
                          f"(only {METADATA_RECORD_FRAME_VERSION} is supported)")
    type_id, pos = _read_short_uvarint(buf, pos, "type")
    version, pos = _read_short_uvarint(buf, pos, "version")
    try:
        record_type = MetadataRecordType(type_id)
    except ValueError:
        raise DecodeError(f"unknown metadata record type {type_id}") from None
    schema = METADATA_RECORD_SCHEMAS[record_type]
    if version not in schema.valid_versions:
        raise DecodeError(f"unsupported {schema.name} version {version} "
                          f"(valid: {schema.valid_versions})")
    return record_type, version, schema, pos


# ---------------------------------------------------------------------------------------------
# KRaft control records (Kafka's ControlRecordUtils): the value of a record in a control batch
# whose key names the type (``storage.control_records.ControlRecordType``). Unlike metadata records
# the value is not framed: it is read at the type's current version whatever it says inside.


_LEADER_CHANGE_VOTER = Struct("Voter", [
    Field("voter_id", INT32),
    Field("voter_directory_id", UUID, "1+"),
])

LeaderChangeMessage = Message(
    "LeaderChangeMessage", valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("version", INT16),
        Field("leader_id", INT32),
        Field("voters", Array(_LEADER_CHANGE_VOTER)),
        Field("granting_voters", Array(_LEADER_CHANGE_VOTER)),
    ],
)

SnapshotHeaderRecord = Message(
    "SnapshotHeaderRecord", valid_versions="0", flexible_versions="0+",
    fields=[
        Field("version", INT16),
        Field("last_contained_log_timestamp", INT64),
    ],
)

SnapshotFooterRecord = Message(
    "SnapshotFooterRecord", valid_versions="0", flexible_versions="0+",
    fields=[
        Field("version", INT16),
    ],
)

VotersRecord = Message(
    "VotersRecord", valid_versions="0", flexible_versions="0+",
    fields=[
        Field("version", INT16),
        Field("voters", Array(Struct("Voter", [
            Field("voter_id", INT32),
            Field("voter_directory_id", UUID),
            Field("endpoints", Array(Struct("Endpoint", [
                Field("name", STRING),
                Field("host", STRING),
                Field("port", UINT16),
            ]))),
            Field("kraft_version_feature", Struct("KRaftVersionFeature", [
                Field("min_supported_version", INT16),
                Field("max_supported_version", INT16),
            ])),
        ]))),
    ],
)

KRaftVersionRecord = Message(
    "KRaftVersionRecord", valid_versions="0", flexible_versions="0+",
    fields=[
        Field("version", INT16),
        Field("kraft_version", INT16),
    ],
)


CONTROL_RECORD_SCHEMAS: dict[int, Message] = {
    ControlRecordType.LEADER_CHANGE: LeaderChangeMessage,
    ControlRecordType.SNAPSHOT_HEADER: SnapshotHeaderRecord,
    ControlRecordType.SNAPSHOT_FOOTER: SnapshotFooterRecord,
    ControlRecordType.KRAFT_VERSION: KRaftVersionRecord,
    ControlRecordType.KRAFT_VOTERS: VotersRecord,
}
# The version Kafka writes and reads each control record at (ControlRecordUtils.*_CURRENT_VERSION).
CONTROL_RECORD_VERSIONS: dict[int, int] = dict.fromkeys(CONTROL_RECORD_SCHEMAS, 0)


def encode_control_record(control_type: int, obj: Any, version: int | None = None) -> bytes:
    """Serialize a KRaft control record value (default: the type's current version)."""
    schema = CONTROL_RECORD_SCHEMAS.get(control_type)
    if schema is None:
        raise EncodeError(f"no schema for control record type {control_type}")
    if version is None:
        version = CONTROL_RECORD_VERSIONS[control_type]
    return schema.encode(obj, version)


def decode_control_record(control_type: int, value: Any, version: int | None = None) -> Any:
    """Parse a KRaft control record value; trailing bytes are ignored, as in Kafka.

    Raises ``DecodeError`` for a type without a schema here (transaction markers, or a type from
    a newer version, which Kafka skips) and for a malformed value.
    """
    schema = CONTROL_RECORD_SCHEMAS.get(control_type)
    if schema is None:
        raise DecodeError(f"no schema for control record type {control_type}")
    if version is None:
        version = CONTROL_RECORD_VERSIONS[control_type]
    obj, _ = schema.decode(value, version)
    return obj
