"""kraft.metadata_records: KRaft metadata records, their framing, and KRaft control records."""

from __future__ import annotations

import dataclasses
import random
import uuid
from typing import Any

import pytest

from kraft.codec import DecodeError, EncodeError, Message, UnsupportedVersionError
from kraft.metadata_records import (
    CONTROL_RECORD_SCHEMAS,
    LATEST_VERSIONS,
    METADATA_RECORD_SCHEMAS,
    AccessControlEntryRecord,
    BrokerRegistrationChangeRecord,
    ClientQuotaRecord,
    ConfigRecord,
    FeatureLevelRecord,
    FenceBrokerRecord,
    KRaftVersionRecord,
    LeaderChangeMessage,
    MetadataRecordType,
    NoOpRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveAccessControlEntryRecord,
    RemoveTopicRecord,
    RemoveUserScramCredentialRecord,
    SnapshotFooterRecord,
    SnapshotHeaderRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
    UserScramCredentialRecord,
    VotersRecord,
    decode_control_record,
    decode_metadata_record,
    encode_control_record,
    encode_metadata_record,
    latest_version,
)
from storage.control_records import ControlRecordType

TOPIC_ID = uuid.UUID("5f3c2a1e-0000-4000-8000-00000000abcd")
DIR_A = uuid.UUID(int=0xA)
DIR_B = uuid.UUID(int=0xB)

# A representative value in every field of every record type (all versions' fields together).
_FULL: dict[Message, Any] = {
    RegisterBrokerRecord: RegisterBrokerRecord(
        broker_id=3, is_migrating_zk_broker=True, incarnation_id=uuid.UUID(int=77),
        broker_epoch=1234,
        end_points=[RegisterBrokerRecord.BrokerEndpoint(
            name="PLAINTEXT", host="node-3", port=9092, security_protocol=0)],
        features=[RegisterBrokerRecord.BrokerFeature(
            name="metadata.version", min_supported_version=1, max_supported_version=21)],
        rack=None, fenced=False, in_controlled_shutdown=True, log_dirs=[DIR_A, DIR_B],
    ),
    UnregisterBrokerRecord: UnregisterBrokerRecord(broker_id=3, broker_epoch=1234),
    TopicRecord: TopicRecord(name="orders", topic_id=TOPIC_ID),
    PartitionRecord: PartitionRecord(
        partition_id=2, topic_id=TOPIC_ID, replicas=[1, 2, 3], isr=[1, 2], removing_replicas=[3],
        adding_replicas=[4], leader=1, leader_recovery_state=1, leader_epoch=5, partition_epoch=9,
        directories=[DIR_A, DIR_B, DIR_A], eligible_leader_replicas=[], last_known_elr=[3],
    ),
    ConfigRecord: ConfigRecord(resource_type=2, resource_name="orders", name="cleanup.policy",
                               value=None),
    PartitionChangeRecord: PartitionChangeRecord(
        partition_id=2, topic_id=TOPIC_ID, isr=[1], leader=-1, replicas=[1, 4],
        removing_replicas=[], adding_replicas=[4], leader_recovery_state=0,
        directories=[DIR_B], eligible_leader_replicas=[2, 3], last_known_elr=[1],
    ),
    FenceBrokerRecord: FenceBrokerRecord(id=3, epoch=1234),
    UnfenceBrokerRecord: UnfenceBrokerRecord(id=3, epoch=1235),
    RemoveTopicRecord: RemoveTopicRecord(topic_id=TOPIC_ID),
    FeatureLevelRecord: FeatureLevelRecord(name="metadata.version", feature_level=21),
    ProducerIdsRecord: ProducerIdsRecord(broker_id=3, broker_epoch=1234, next_producer_id=5000),
    BrokerRegistrationChangeRecord: BrokerRegistrationChangeRecord(
        broker_id=3, broker_epoch=1234, fenced=-1, in_controlled_shutdown=1, log_dirs=[DIR_A]),
    NoOpRecord: NoOpRecord(),
    AccessControlEntryRecord: AccessControlEntryRecord(
        id=uuid.UUID(int=5), resource_type=2, resource_name="orders", pattern_type=4,
        principal="User:alice", host="10.0.0.1", operation=3, permission_type=3),
    RemoveAccessControlEntryRecord: RemoveAccessControlEntryRecord(id=uuid.UUID(int=5)),
    ClientQuotaRecord: ClientQuotaRecord(
        entity=[ClientQuotaRecord.EntityData(entity_type="user", entity_name="alice"),
                ClientQuotaRecord.EntityData(entity_type="client-id", entity_name=None)],
        key="producer_byte_rate", value=1048576.0, remove=True),
    UserScramCredentialRecord: UserScramCredentialRecord(
        name="alice", mechanism=1, salt=b"s" * 32, stored_key=b"k" * 32, server_key=b"v" * 32,
        iterations=4096),
    RemoveUserScramCredentialRecord: RemoveUserScramCredentialRecord(name="alice", mechanism=2),
}


def _record(schema: Message, version: int) -> Any:
    """The representative record, with fields that do not exist at ``version`` at default."""
    absent = {f.name: f.make_default() for f in schema.fields if version not in f.versions}
    return dataclasses.replace(_FULL[schema], **absent)


def _cases() -> list[Any]:
    return [pytest.param(t, schema, v, id=f"{schema.name}-v{v}")
            for t, schema in METADATA_RECORD_SCHEMAS.items()
            for v in range(schema.valid_versions.lowest, schema.valid_versions.highest + 1)]


def test_every_record_type_has_a_schema_and_values() -> None:
    assert set(METADATA_RECORD_SCHEMAS) == set(MetadataRecordType)
    assert set(_FULL) == set(METADATA_RECORD_SCHEMAS.values())
    for t, schema in METADATA_RECORD_SCHEMAS.items():
        assert schema.api_key == t
        defaults = schema()
        for f in schema.fields:  # every field is exercised with a non-default value
            assert getattr(_FULL[schema], f.name) != getattr(defaults, f.name), f.name


@pytest.mark.parametrize(("record_type", "schema", "version"), _cases())
def test_round_trip_every_type_and_version(record_type: MetadataRecordType, schema: Message,
                                           version: int) -> None:
    record = _record(schema, version)
    data = encode_metadata_record(record_type, version, record)
    assert data[:3] == bytes((1, record_type, version))
    got_type, got_version, got = decode_metadata_record(data)
    assert (got_type, got_version, got) == (record_type, version, record)
    assert type(got_type) is MetadataRecordType
    assert decode_metadata_record(memoryview(data))[2] == record


def test_kafka_record_type_ids_and_latest_versions() -> None:
    assert {t.name: t.value for t in MetadataRecordType} == {
        "REGISTER_BROKER_RECORD": 0, "UNREGISTER_BROKER_RECORD": 1, "TOPIC_RECORD": 2,
        "PARTITION_RECORD": 3, "CONFIG_RECORD": 4, "PARTITION_CHANGE_RECORD": 5,
        "FENCE_BROKER_RECORD": 7, "UNFENCE_BROKER_RECORD": 8, "REMOVE_TOPIC_RECORD": 9,
        "FEATURE_LEVEL_RECORD": 12, "CLIENT_QUOTA_RECORD": 14, "PRODUCER_IDS_RECORD": 15,
        "BROKER_REGISTRATION_CHANGE_RECORD": 17, "ACCESS_CONTROL_ENTRY_RECORD": 18,
        "REMOVE_ACCESS_CONTROL_ENTRY_RECORD": 19, "NO_OP_RECORD": 20,
        "USER_SCRAM_CREDENTIAL_RECORD": 11, "REMOVE_USER_SCRAM_CREDENTIAL_RECORD": 22,
    }
    assert LATEST_VERSIONS[MetadataRecordType.REGISTER_BROKER_RECORD] == 3
    assert LATEST_VERSIONS[MetadataRecordType.PARTITION_RECORD] == 2
    assert LATEST_VERSIONS[MetadataRecordType.PARTITION_CHANGE_RECORD] == 2
    assert LATEST_VERSIONS[MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD] == 2
    assert latest_version(MetadataRecordType.TOPIC_RECORD) == 0
    assert latest_version(3) == 2


# --- exact bytes ----------------------------------------------------------------------------

def test_fence_broker_record_exact_bytes() -> None:
    data = encode_metadata_record(MetadataRecordType.FENCE_BROKER_RECORD, 0,
                                  FenceBrokerRecord(id=1, epoch=42))
    assert data == (
        b"\x01"  # frame version
        b"\x07"  # type: FenceBrokerRecord
        b"\x00"  # record version
        b"\x00\x00\x00\x01"  # id
        b"\x00\x00\x00\x00\x00\x00\x00\x2a"  # epoch
        b"\x00"  # no tagged fields
    )


def test_topic_record_exact_bytes() -> None:
    data = encode_metadata_record(MetadataRecordType.TOPIC_RECORD, 0,
                                  TopicRecord(name="foo", topic_id=TOPIC_ID))
    assert data == b"\x01\x02\x00" + b"\x04foo" + TOPIC_ID.bytes + b"\x00"


def test_partition_change_record_writes_only_changed_fields_as_tags() -> None:
    record = PartitionChangeRecord(partition_id=0, topic_id=TOPIC_ID, leader=5)
    data = encode_metadata_record(MetadataRecordType.PARTITION_CHANGE_RECORD, 0, record)
    # leader is tag 1, default -2 ("no change"); int32 5 in a 4-byte tagged field
    assert data == (b"\x01\x05\x00" + b"\x00\x00\x00\x00" + TOPIC_ID.bytes
                    + b"\x01" + b"\x01\x04" + b"\x00\x00\x00\x05")
    assert PartitionChangeRecord().leader == -2 and PartitionChangeRecord().isr is None


def test_large_type_and_version_varints() -> None:
    # frame version 1, a two-byte type varint (200), version 0: unknown type, not a crash
    with pytest.raises(DecodeError, match="unknown metadata record type 200"):
        decode_metadata_record(b"\x01\xc8\x01\x00")


# --- junk -----------------------------------------------------------------------------------

_FENCE = encode_metadata_record(MetadataRecordType.FENCE_BROKER_RECORD, 0,
                                FenceBrokerRecord(id=1, epoch=42))


@pytest.mark.parametrize(("data", "match"), [
    (b"", "truncated"),
    (b"\x01", "truncated"),
    (b"\x01\x07", "truncated"),
    (b"\x00\x07\x00", "frame version 0"),
    (b"\x0f", "frame version 15"),
    (b"\x80\x80\x80\x80\x80\x80", "32 bits"),  # malformed frame version varint
    (b"\x01\x80\x80\x80\x80\x80\x80", "32 bits"),  # malformed type varint
    (b"\x01\x80\x80\x02\x00", "too large"),  # type 32768 > Short.MAX_VALUE
    (b"\x01\x06\x00", "unknown metadata record type 6"),  # a Kafka id we do not model
    (b"\x01\x63\x00", "unknown metadata record type 99"),
    (b"\x01\x07\x01" + _FENCE[3:], "unsupported FenceBrokerRecord version 1"),
    (_FENCE[:-1], "malformed|exceeds|truncated"),
    (_FENCE[:5], "malformed|exceeds|truncated"),
    (_FENCE + b"\x00", "garbage"),
])
def test_junk_raises_decode_error(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_metadata_record(data)


def test_random_junk_only_ever_raises_decode_error() -> None:
    rng = random.Random(7)
    valid = [encode_metadata_record(t, v, _record(s, v)) for t, s, v in
             (p.values for p in _cases())]
    for _ in range(3000):
        base = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        data = bytes(base[:rng.randint(0, len(base))]) if rng.random() < 0.3 else bytes(base)
        try:
            decode_metadata_record(data)
        except DecodeError:
            pass


def test_encode_rejects_unknown_types_and_wrong_records() -> None:
    with pytest.raises(EncodeError, match="unknown metadata record type 6"):
        encode_metadata_record(6, 0, NoOpRecord())
    with pytest.raises(EncodeError, match="expected a FenceBrokerRecord"):
        encode_metadata_record(MetadataRecordType.FENCE_BROKER_RECORD, 0, UnfenceBrokerRecord())
    with pytest.raises(UnsupportedVersionError):
        encode_metadata_record(MetadataRecordType.TOPIC_RECORD, 1, TopicRecord())
    with pytest.raises(UnsupportedVersionError, match="directories"):  # not ignorable
        encode_metadata_record(MetadataRecordType.PARTITION_RECORD, 0,
                               PartitionRecord(directories=[DIR_A]))


# --- KRaft control records ------------------------------------------------------------------

def test_control_record_round_trips() -> None:
    voter = LeaderChangeMessage.Voter
    records: dict[int, Any] = {
        ControlRecordType.LEADER_CHANGE: LeaderChangeMessage(
            version=0, leader_id=1, voters=[voter(voter_id=1), voter(voter_id=2)],
            granting_voters=[voter(voter_id=2)]),
        ControlRecordType.SNAPSHOT_HEADER: SnapshotHeaderRecord(
            version=0, last_contained_log_timestamp=1_700_000_000_000),
        ControlRecordType.SNAPSHOT_FOOTER: SnapshotFooterRecord(version=0),
        ControlRecordType.KRAFT_VERSION: KRaftVersionRecord(version=0, kraft_version=1),
        ControlRecordType.KRAFT_VOTERS: VotersRecord(version=0, voters=[VotersRecord.Voter(
            voter_id=1, voter_directory_id=DIR_A,
            endpoints=[VotersRecord.Endpoint(name="CONTROLLER", host="c1", port=9093)],
            kraft_version_feature=VotersRecord.KRaftVersionFeature(
                min_supported_version=0, max_supported_version=1))]),
    }
    assert set(records) == set(CONTROL_RECORD_SCHEMAS)
    for control_type, record in records.items():
        value = encode_control_record(control_type, record)
        assert decode_control_record(control_type, value) == record


def test_control_record_exact_bytes() -> None:
    value = encode_control_record(ControlRecordType.SNAPSHOT_HEADER,
                                  SnapshotHeaderRecord(version=0, last_contained_log_timestamp=5))
    assert value == b"\x00\x00" + (5).to_bytes(8, "big") + b"\x00"
    leader_change = LeaderChangeMessage(version=1, leader_id=2, voters=[
        LeaderChangeMessage.Voter(voter_id=2, voter_directory_id=DIR_B)])
    value = encode_control_record(ControlRecordType.LEADER_CHANGE, leader_change, 1)
    assert value == (b"\x00\x01" + b"\x00\x00\x00\x02" + b"\x02" + b"\x00\x00\x00\x02"
                     + DIR_B.bytes + b"\x00" + b"\x01" + b"\x00")
    assert decode_control_record(ControlRecordType.LEADER_CHANGE, value, 1) == leader_change


def test_control_record_junk() -> None:
    with pytest.raises(DecodeError):
        decode_control_record(ControlRecordType.SNAPSHOT_HEADER, b"\x00\x00\x01")
    with pytest.raises(DecodeError, match="no schema"):
        decode_control_record(ControlRecordType.COMMIT, b"\x00\x00\x00\x00\x00\x00")
    with pytest.raises(DecodeError, match="no schema"):
        decode_control_record(42, b"")
    with pytest.raises(EncodeError, match="no schema"):
        encode_control_record(ControlRecordType.ABORT, SnapshotFooterRecord())
