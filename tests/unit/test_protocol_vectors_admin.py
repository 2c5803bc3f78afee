# mypy: disable-error-code="import-untyped"
"""Admin, transaction and KRaft API schemas vs kafka-python's own encoders, byte for byte.

kafka-python 3 carries two independent implementations of these APIs: hand-written schemas for
the old versions (``kafka.protocol.old``) and classes generated from Kafka's JSON specs by its
own engine (``kafka.protocol.admin`` and friends). For every API and version both sides know,
the same populated values must encode to the same request and response bytes, and what
kafka-python encodes must decode with our schemas to the values it was given.
"""

from __future__ import annotations

import importlib
import random
import uuid
from typing import Any

import pytest

from kraft.codec import (
    BOOL,
    BYTES,
    FLOAT64,
    RECORDS,
    STRING,
    UUID,
    Array,
    Message,
    Primitive,
    Struct,
    Versions,
)

pytest.importorskip("kafka")

from kafka.protocol import admin as kp_admin
from kafka.protocol import producer as kp_producer
from kafka.protocol.consumer import group as kp_group
from kafka.protocol.consumer import offsets as kp_offsets
from kafka.protocol.old import add_offsets_to_txn as old_add_offsets_to_txn
from kafka.protocol.old import add_partitions_to_txn as old_add_partitions_to_txn
from kafka.protocol.old import admin as old_admin
from kafka.protocol.old import end_txn as old_end_txn
from kafka.protocol.old import init_producer_id as old_init_producer_id
from kafka.protocol.old import offset_for_leader_epoch as old_offset_for_leader_epoch
from kafka.protocol.old import txn_offset_commit as old_txn_offset_commit
from kafka.protocol.old.types import TaggedFields


def _module(name: str) -> Any:
    return importlib.import_module(f"broker.protocol.messages.{name}")


# --- sample values --------------------------------------------------------------------------

_INT_EDGES = (0, 1, -1, 7, 300)


def _sample_value(t: Any, version: int, rng: random.Random) -> Any:
    if isinstance(t, Struct):
        return sample(t, version, rng)
    if isinstance(t, Array):
        return [_sample_value(t.elem, version, rng) for _ in range(rng.randint(0, 3))]
    assert isinstance(t, Primitive)
    if t is BOOL:
        return rng.random() < 0.5
    if t is FLOAT64:
        return rng.choice((0.0, 0.5, -2.25, 1e9))
    if t is UUID:
        return uuid.UUID(int=rng.getrandbits(128))
    if t is STRING:
        return "".join(rng.choice("abcxyz-._é") for _ in range(rng.randint(0, 8)))
    if t in (BYTES, RECORDS):
        return rng.randbytes(rng.randint(0, 12))
    assert t.lo is not None and t.hi is not None
    if rng.random() < 0.3:
        return rng.choice((t.lo, t.hi))
    return rng.choice([v for v in _INT_EDGES if t.lo <= v <= t.hi])


def sample(s: Struct, version: int, rng: random.Random) -> Any:
    """An instance of ``s`` with representative values in every field present at ``version``."""
    values: dict[str, Any] = {}
    for f in s.fields:
        if version not in f.versions:
            continue
        if version in f.tagged_versions and rng.random() < 0.3:
            continue  # leave some tagged fields at their default: they are not written
        if version in f.nullable_versions and rng.random() < 0.25:
            values[f.name] = None
            continue
        values[f.name] = _sample_value(f.type, version, rng)
    return s(**values)


def _is_default(f: Any, value: Any) -> bool:
    return bool(value == f.make_default())


# --- kafka-python's JSON-generated classes (kafka.protocol.admin, producer, consumer) -------

def _kp_fields(kp_struct: Any) -> dict[str, Any]:
    # kafka-python names "KRaftVersion" k_raft_version; we name it kraft_version.
    return {f.name.replace("_", ""): f for f in kp_struct._fields}


def _bit_set(value: int) -> set[int]:
    return {i for i in range(32) if value & (1 << i)}


# kafka-python patches its DescribeClusterResponse: this int32 becomes a set of bit numbers.
_KP_BITFIELDS = {"cluster_authorized_operations": "authorized_operations"}


def to_kp(obj: Any, s: Struct, kp_cls: Any, version: int) -> Any:
    """The kafka-python object holding the same values as our ``obj``."""
    fields = _kp_fields(kp_cls._struct)
    kwargs: dict[str, Any] = {}
    for f in s.fields:
        if version not in f.versions:
            continue
        value = getattr(obj, f.name)
        if version in f.tagged_versions and _is_default(f, value):
            continue
        if f.name in _KP_BITFIELDS and _KP_BITFIELDS[f.name] in kp_cls._struct.fields:
            kwargs[_KP_BITFIELDS[f.name]] = _bit_set(value)
            continue
        kf = fields[f.name.replace("_", "")]
        t = f.type
        if value is not None and isinstance(t, Struct):
            value = to_kp(value, t, getattr(kp_cls, t.name), version)
        elif value is not None and isinstance(t, Array) and isinstance(t.elem, Struct):
            sub = getattr(kp_cls, t.elem.name)
            value = [to_kp(x, t.elem, sub, version) for x in value]
        kwargs[kf.name] = value
    return kp_cls(version=version, **kwargs)


_KP_PAIRS: dict[str, tuple[Any, str]] = {
    # our module: (kafka-python module, class name prefix)
    "create_topics": (kp_admin, "CreateTopics"),
    "delete_topics": (kp_admin, "DeleteTopics"),
    "init_producer_id": (kp_producer, "InitProducerId"),
    "offset_for_leader_epoch": (kp_offsets, "OffsetForLeaderEpoch"),
    "add_partitions_to_txn": (kp_producer, "AddPartitionsToTxn"),
    "add_offsets_to_txn": (kp_producer, "AddOffsetsToTxn"),
    "end_txn": (kp_producer, "EndTxn"),
    "write_txn_markers": (kp_producer, "WriteTxnMarkers"),
    "txn_offset_commit": (kp_producer, "TxnOffsetCommit"),
    "describe_configs": (kp_admin, "DescribeConfigs"),
    "alter_configs": (kp_admin, "AlterConfigs"),
    "create_partitions": (kp_admin, "CreatePartitions"),
    "delete_groups": (kp_admin, "DeleteGroups"),
    "elect_leaders": (kp_admin, "ElectLeaders"),
    "alter_partition_reassignments": (kp_admin, "AlterPartitionReassignments"),
    "list_partition_reassignments": (kp_admin, "ListPartitionReassignments"),
    "incremental_alter_configs": (kp_admin, "IncrementalAlterConfigs"),
    "offset_delete": (kp_group, "OffsetDelete"),
    "describe_quorum": (kp_admin, "DescribeQuorum"),
    "describe_cluster": (kp_admin, "DescribeCluster"),
    "describe_producers": (kp_admin, "DescribeProducers"),
    "describe_log_dirs": (kp_admin, "DescribeLogDirs"),
    "describe_topic_partitions": (kp_admin, "DescribeTopicPartitions"),
    "describe_transactions": (kp_admin, "DescribeTransactions"),
    "list_transactions": (kp_admin, "ListTransactions"),
}


def _kp_cases() -> list[Any]:
    cases = []
    for name, (kp_mod, prefix) in _KP_PAIRS.items():
        ours = _module(name)
        for side, msg in (("Request", ours.REQUEST), ("Response", ours.RESPONSE)):
            kp_cls = getattr(kp_mod, prefix + side)
            theirs = Versions.parse(kp_cls.json["validVersions"])
            common = msg.valid_versions.intersect(theirs)
            for v in range(common.lowest, common.highest + 1):
                cases.append(pytest.param(msg, kp_cls, v, id=f"{prefix}{side}-v{v}"))
    return cases


def test_kafka_python_json_classes_found() -> None:
    assert len(_kp_cases()) > 100


@pytest.mark.parametrize(("msg", "kp_cls", "version"), _kp_cases())
def test_same_bytes_as_kafka_python(msg: Message, kp_cls: Any, version: int) -> None:
    rng = random.Random(f"{msg.name}-{version}")
    for _ in range(12):
        obj = sample(msg, version, rng)
        ours = msg.encode(obj, version)
        theirs = bytes(to_kp(obj, msg, kp_cls, version).encode(version=version))
        assert ours == theirs, obj
        back, end = msg.decode(theirs, version)
        assert end == len(theirs)
        assert back == obj


# --- kafka-python's hand-written schemas for the old versions (kafka.protocol.old) ----------

def to_old(obj: Any, s: Struct, version: int) -> list[Any]:
    """Our object as kafka-python's old positional values (tagged fields left empty)."""
    out: list[Any] = []
    for f in s.fields:
        if version not in f.versions or version in f.tagged_versions:
            continue
        value = getattr(obj, f.name)
        t = f.type
        if value is not None and isinstance(t, Struct):
            value = to_old(value, t, version)
        elif value is not None and isinstance(t, Array) and isinstance(t.elem, Struct):
            value = [to_old(x, t.elem, version) for x in value]
        out.append(value)
    return out


def _has_tags(old_cls: Any) -> bool:
    return any(t is TaggedFields for t in old_cls.SCHEMA.fields)


_OLD: dict[str, tuple[Any, str, range]] = {
    "create_topics": (old_admin, "CreateTopics", range(4)),
    "delete_topics": (old_admin, "DeleteTopics", range(4)),
    "describe_configs": (old_admin, "DescribeConfigs", range(3)),
    "alter_configs": (old_admin, "AlterConfigs", range(2)),
    "create_partitions": (old_admin, "CreatePartitions", range(2)),
    "delete_groups": (old_admin, "DeleteGroups", range(2)),
    "elect_leaders": (old_admin, "ElectLeaders", range(2)),
    "init_producer_id": (old_init_producer_id, "InitProducerId", range(2)),
    "offset_for_leader_epoch": (old_offset_for_leader_epoch, "OffsetForLeaderEpoch", range(5)),
    "add_partitions_to_txn": (old_add_partitions_to_txn, "AddPartitionsToTxn", range(3)),
    "add_offsets_to_txn": (old_add_offsets_to_txn, "AddOffsetsToTxn", range(3)),
    "end_txn": (old_end_txn, "EndTxn", range(3)),
    "txn_offset_commit": (old_txn_offset_commit, "TxnOffsetCommit", range(3)),
}


def _old_cases() -> list[Any]:
    cases = []
    for name, (old_mod, prefix, versions) in _OLD.items():
        ours = _module(name)
        for side, msg in (("Request", ours.REQUEST), ("Response", ours.RESPONSE)):
            for v in versions:
                old_cls = getattr(old_mod, f"{prefix}{side}_v{v}")
                cases.append(pytest.param(msg, old_cls, v, id=f"{prefix}{side}-v{v}"))
    return cases


@pytest.mark.parametrize(("msg", "old_cls", "version"), _old_cases())
def test_same_bytes_as_kafka_python_old_schemas(msg: Message, old_cls: Any, version: int) -> None:
    assert old_cls.API_KEY == msg.api_key and old_cls.API_VERSION == version
    rng = random.Random(f"old-{msg.name}-{version}")
    for _ in range(12):
        obj = sample(msg, version, rng)
        ours = msg.encode(obj, version)
        values = to_old(obj, msg, version)
        if msg.name == "CreatePartitionsRequest":
            # kafka-python nests (count, assignments) and flattens each assignment to its ids
            values[0] = [(name, (count, None if assignments is None else [a[0] for a in assignments]))
                         for name, count, assignments in values[0]]
        if _has_tags(old_cls):
            values.append({})
        theirs = old_cls(*values).encode()
        assert ours == theirs, obj
        back, end = msg.decode(theirs, version)
        assert end == len(theirs)
        assert back == obj


# --- a few vectors written out, as kafka-python's admin client sends them -------------------

def test_create_topics_v3_request_vector() -> None:
    create_topics = _module("create_topics")
    req = create_topics.REQUEST(
        topics=[create_topics.REQUEST.CreatableTopic(
            name="t", num_partitions=3, replication_factor=1,
            configs=[create_topics.REQUEST.CreatableTopicConfig(name="cleanup.policy",
                                                                value="compact")])],
        timeout_ms=30000, validate_only=False,
    )
    theirs = old_admin.CreateTopicsRequest_v3(
        create_topic_requests=[("t", 3, 1, [], [("cleanup.policy", "compact")])],
        timeout=30000, validate_only=False,
    ).encode()
    assert create_topics.REQUEST.encode(req, 3) == theirs
    assert theirs[:11] == b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x03"


def test_delete_topics_v1_request_vector() -> None:
    delete_topics = _module("delete_topics")
    req = delete_topics.REQUEST(topic_names=["a", "bc"], timeout_ms=5000)
    expected = b"\x00\x00\x00\x02\x00\x01a\x00\x02bc\x00\x00\x13\x88"
    assert delete_topics.REQUEST.encode(req, 1) == expected
    assert old_admin.DeleteTopicsRequest_v1(["a", "bc"], 5000).encode() == expected


def test_init_producer_id_response_v1_decodes() -> None:
    init_producer_id = _module("init_producer_id")
    data = old_init_producer_id.InitProducerIdResponse_v1(
        throttle_time_ms=0, error_code=0, producer_id=4242, producer_epoch=7).encode()
    resp, end = init_producer_id.RESPONSE.decode(data, 1)
    assert end == len(data)
    assert (resp.error_code, resp.producer_id, resp.producer_epoch) == (0, 4242, 7)


def test_describe_cluster_v1_response_decodes() -> None:
    describe_cluster = _module("describe_cluster")
    kp = kp_admin.DescribeClusterResponse
    data = kp(version=1, throttle_time_ms=0, error_code=0, error_message=None, endpoint_type=1,
              cluster_id="c1", controller_id=2,
              brokers=[kp.DescribeClusterBroker(version=1, broker_id=2, host="h", port=9092,
                                                rack=None)],
              authorized_operations={3, 4}).encode(version=1)
    resp, end = describe_cluster.RESPONSE.decode(data, 1)
    assert end == len(data)
    assert resp.cluster_id == "c1" and resp.controller_id == 2 and resp.endpoint_type == 1
    assert resp.cluster_authorized_operations == 0b11000
    assert [(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers] == [(2, "h", 9092, None)]


# --- KRaft and controller APIs kafka-python does not implement: vectors from Kafka's specs --

def test_vote_v0_request_vector() -> None:
    vote = _module("vote")
    req = vote.REQUEST(cluster_id="c", topics=[vote.REQUEST.TopicData(
        topic_name="__cluster_metadata", partitions=[vote.REQUEST.PartitionData(
            partition_index=0, candidate_epoch=5, candidate_id=1, last_offset_epoch=4,
            last_offset=100)])])
    expected = (
        b"\x02c"  # compact nullable string
        + b"\x02" + b"\x13__cluster_metadata"  # 1 topic, compact string
        + b"\x02"  # 1 partition
        + (0).to_bytes(4, "big") + (5).to_bytes(4, "big") + (1).to_bytes(4, "big")
        + (4).to_bytes(4, "big") + (100).to_bytes(8, "big")
        + b"\x00\x00\x00"  # tagged fields of partition, topic, request
    )
    assert vote.REQUEST.encode(req, 0) == expected
    assert vote.REQUEST.decode(expected, 0) == (req, len(expected))
    req.voter_id = 3  # v1+ and ignorable: dropped at v0, as Kafka does
    assert vote.REQUEST.encode(req, 0) == expected


def test_broker_heartbeat_v1_tagged_offline_log_dirs() -> None:
    broker_heartbeat = _module("broker_heartbeat")
    log_dir = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    req = broker_heartbeat.REQUEST(broker_id=1, broker_epoch=10, current_metadata_offset=99,
                                   offline_log_dirs=[log_dir])
    body = (1).to_bytes(4, "big") + (10).to_bytes(8, "big") + (99).to_bytes(8, "big") + b"\x00\x00"
    tagged = b"\x01" + b"\x00" + b"\x11" + b"\x02" + log_dir.bytes  # 1 field: tag 0, 17 bytes
    assert broker_heartbeat.REQUEST.encode(req, 1) == body + tagged
    assert broker_heartbeat.REQUEST.encode(broker_heartbeat.REQUEST(broker_id=1, broker_epoch=10,
                                                                    current_metadata_offset=99),
                                           0) == body + b"\x00"
    resp, _ = broker_heartbeat.RESPONSE.decode(b"\x00" * 6 + b"\x00\x01\x00\x00", 0)
    assert (resp.is_caught_up, resp.is_fenced, resp.should_shut_down) == (False, True, False)
