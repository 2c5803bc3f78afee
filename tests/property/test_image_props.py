"""Property tests of MetadataImage / MetadataDelta and their snapshots.

Images come from random *valid* record sequences (brokers registering, fencing, unfencing and
unregistering, topics with partitions, partition changes, configs set and deleted, topic
removal and name reuse, feature levels, producer id blocks, ACLs added and removed), drawn step by step against a small
model of what exists so that every record applies.
"""

from __future__ import annotations

import random
import tempfile
import uuid
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.controller.snapshot_files import read_snapshot_file, write_snapshot
from kraft.delta import MetadataDelta, TopicPartition
from kraft.image import ConfigResourceType, MetadataImage
from kraft.messages import SnapshotId
from kraft.metadata_records import (
    AccessControlEntryRecord,
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    FeatureLevelRecord,
    FenceBrokerRecord,
    MetadataRecordType,
    NoOpRecord,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveAccessControlEntryRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
)
from kraft.snapshot import (
    image_snapshot_records,
    load_image,
    read_snapshot,
    snapshot_bytes,
)

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

T = MetadataRecordType
BROKER_IDS = range(6)
TOPIC_NAMES = ["a", "b", "c", "d", "t\u00e9"]
FEATURES = ["metadata.version", "kraft.version", "group.version"]
CONFIG_NAMES = ["retention.ms", "cleanup.policy", "min.insync.replicas"]
text = st.text(alphabet="abcxyz.-_\u00e9", max_size=8)
ids = st.lists(st.sampled_from(BROKER_IDS), unique=True, max_size=4)


class _Model:
    """What exists so far, to draw only records that apply."""

    def __init__(self) -> None:
        self.brokers: dict[int, int] = {}  # id -> registered epoch
        self.next_epoch = 0
        self.topics: dict[uuid.UUID, tuple[str, int]] = {}  # id -> (name, partition count)
        self.used_ids: set[uuid.UUID] = set()
        self.next_producer_id = 0
        self.acls: set[uuid.UUID] = set()


def _subset(data: Any, of: list[int]) -> list[int]:
    return data.draw(st.lists(st.sampled_from(of), unique=True)) if of else []


def _partition_record(data: Any, topic_id: uuid.UUID, pid: int) -> Any:
    replicas = data.draw(ids)
    isr = _subset(data, replicas)
    leader = data.draw(st.sampled_from(isr)) if isr and data.draw(st.booleans()) else -1
    return PartitionRecord(
        partition_id=pid, topic_id=topic_id, replicas=replicas, isr=isr,
        removing_replicas=_subset(data, replicas), adding_replicas=_subset(data, replicas),
        leader=leader, leader_recovery_state=data.draw(st.sampled_from([0, 1])),
        leader_epoch=data.draw(st.integers(0, 50)), partition_epoch=data.draw(st.integers(0, 50)),
        eligible_leader_replicas=data.draw(st.none() | ids),
        last_known_elr=data.draw(st.none() | ids),
    )


def _partition_change(data: Any, topic_id: uuid.UUID, pid: int) -> Any:
    def maybe(strategy: Any) -> Any:
        return data.draw(st.none() | strategy)

    return PartitionChangeRecord(
        partition_id=pid, topic_id=topic_id, isr=maybe(ids),
        leader=data.draw(st.sampled_from([-2, -2, -1, *BROKER_IDS])),
        replicas=maybe(ids), removing_replicas=maybe(ids), adding_replicas=maybe(ids),
        leader_recovery_state=data.draw(st.sampled_from([-1, -1, 0, 1])),
        eligible_leader_replicas=maybe(ids), last_known_elr=maybe(ids),
    )


def _register(data: Any, m: _Model) -> list[tuple[int, Any]]:
    bid = data.draw(st.sampled_from(BROKER_IDS))
    m.next_epoch += data.draw(st.integers(1, 3))
    m.brokers[bid] = m.next_epoch
    names = data.draw(st.lists(st.sampled_from(["PLAINTEXT", "INTERNAL", "SSL"]), unique=True,
                               min_size=1, max_size=2))
    endpoints = [RegisterBrokerRecord.BrokerEndpoint(
        name=n, host=data.draw(text), port=data.draw(st.integers(0, 65535)),
        security_protocol=data.draw(st.sampled_from([0, 1]))) for n in names]
    features = [RegisterBrokerRecord.BrokerFeature(
        name=n, min_supported_version=1, max_supported_version=data.draw(st.integers(1, 20)))
        for n in data.draw(st.lists(st.sampled_from(FEATURES), unique=True))]
    return [(T.REGISTER_BROKER_RECORD, RegisterBrokerRecord(
        broker_id=bid, incarnation_id=data.draw(st.uuids()), broker_epoch=m.next_epoch,
        end_points=endpoints, features=features, rack=data.draw(st.none() | text),
        fenced=data.draw(st.booleans()), in_controlled_shutdown=data.draw(st.booleans())))]


def _broker_op(data: Any, m: _Model) -> list[tuple[int, Any]]:
    bid = data.draw(st.sampled_from(sorted(m.brokers)))
    epoch = m.brokers[bid]
    kind = data.draw(st.sampled_from(["fence", "unfence", "change", "unregister"]))
    if kind == "fence":
        return [(T.FENCE_BROKER_RECORD, FenceBrokerRecord(id=bid, epoch=epoch))]
    if kind == "unfence":
        return [(T.UNFENCE_BROKER_RECORD, UnfenceBrokerRecord(id=bid, epoch=epoch))]
    if kind == "change":
        return [(T.BROKER_REGISTRATION_CHANGE_RECORD, BrokerRegistrationChangeRecord(
            broker_id=bid, broker_epoch=epoch, fenced=data.draw(st.sampled_from([-1, 0, 1])),
            in_controlled_shutdown=data.draw(st.sampled_from([0, 1]))))]
    del m.brokers[bid]
    return [(T.UNREGISTER_BROKER_RECORD, UnregisterBrokerRecord(broker_id=bid, broker_epoch=epoch))]


def _create_topic(data: Any, m: _Model) -> list[tuple[int, Any]]:
    live = {name for name, _ in m.topics.values()}
    free = [n for n in TOPIC_NAMES if n not in live]
    if not free:
        return []
    name = data.draw(st.sampled_from(free))
    topic_id = data.draw(st.uuids().filter(lambda u: u not in m.used_ids))
    m.used_ids.add(topic_id)
    count = data.draw(st.integers(0, 4))
    m.topics[topic_id] = (name, count)
    return [(T.TOPIC_RECORD, TopicRecord(name=name, topic_id=topic_id))] + [
        (T.PARTITION_RECORD, _partition_record(data, topic_id, p)) for p in range(count)
    ]


def _topic_op(data: Any, m: _Model) -> list[tuple[int, Any]]:
    topic_id = data.draw(st.sampled_from(sorted(m.topics)))
    name, count = m.topics[topic_id]
    kind = data.draw(st.sampled_from(["add", "change", "change", "remove"]))
    if kind == "change" and count:
        pid = data.draw(st.integers(0, count - 1))
        return [(T.PARTITION_CHANGE_RECORD, _partition_change(data, topic_id, pid))]
    if kind == "remove":
        del m.topics[topic_id]
        return [(T.REMOVE_TOPIC_RECORD, RemoveTopicRecord(topic_id=topic_id))]
    m.topics[topic_id] = (name, count + 1)
    return [(T.PARTITION_RECORD, _partition_record(data, topic_id, count))]


def _config(data: Any, m: _Model) -> list[tuple[int, Any]]:
    if data.draw(st.booleans()):
        rtype, rname = ConfigResourceType.TOPIC, data.draw(st.sampled_from(TOPIC_NAMES))
    else:
        rtype = ConfigResourceType.BROKER
        rname = data.draw(st.sampled_from(["", *map(str, BROKER_IDS)]))
    return [(T.CONFIG_RECORD, ConfigRecord(
        resource_type=int(rtype), resource_name=rname,
        name=data.draw(st.sampled_from(CONFIG_NAMES)), value=data.draw(st.none() | text)))]


def _other(data: Any, m: _Model) -> list[tuple[int, Any]]:
    kind = data.draw(st.sampled_from(["feature", "producer_ids", "noop"]))
    if kind == "feature":
        return [(T.FEATURE_LEVEL_RECORD, FeatureLevelRecord(
            name=data.draw(st.sampled_from(FEATURES)), feature_level=data.draw(st.integers(0, 5))))]
    if kind == "producer_ids":
        m.next_producer_id += data.draw(st.integers(0, 5000))
        return [(T.PRODUCER_IDS_RECORD, ProducerIdsRecord(
            broker_id=data.draw(st.sampled_from(BROKER_IDS)), broker_epoch=-1,
            next_producer_id=m.next_producer_id))]
    return [(T.NO_OP_RECORD, NoOpRecord())]


def _acl_op(data: Any, m: _Model) -> list[tuple[int, Any]]:
    if m.acls and data.draw(st.booleans()):
        acl_id = data.draw(st.sampled_from(sorted(m.acls)))
        m.acls.discard(acl_id)
        return [(T.REMOVE_ACCESS_CONTROL_ENTRY_RECORD, RemoveAccessControlEntryRecord(id=acl_id))]
    acl_id = uuid.UUID(int=data.draw(st.integers(1, 2**64)))
    m.acls.add(acl_id)
    return [(T.ACCESS_CONTROL_ENTRY_RECORD, AccessControlEntryRecord(
        id=acl_id, resource_type=data.draw(st.sampled_from([2, 3, 4, 5])),
        resource_name=data.draw(st.sampled_from(TOPIC_NAMES + ["*", "kafka-cluster"])),
        pattern_type=data.draw(st.sampled_from([3, 4])),
        principal=data.draw(st.sampled_from(["User:alice", "User:*"])),
        host=data.draw(st.sampled_from(["*", "10.0.0.1"])),
        operation=data.draw(st.integers(2, 12)), permission_type=data.draw(st.sampled_from([2, 3]))))]


def draw_records(data: Any, max_ops: int = 40) -> list[tuple[int, Any]]:
    """A random valid sequence of metadata records."""
    m = _Model()
    out: list[tuple[int, Any]] = []
    for _ in range(data.draw(st.integers(0, max_ops))):
        ops = [_register, _create_topic, _config, _other, _acl_op]
        if m.brokers:
            ops.append(_broker_op)
        if m.topics:
            ops += [_topic_op, _topic_op]
        out += data.draw(st.sampled_from(ops))(data, m)
    return out


def replay_one_delta(records: list[tuple[int, Any]], image: MetadataImage | None = None,
                     offset: int = 0) -> MetadataImage:
    delta = MetadataDelta(image or MetadataImage())
    delta.replay_all(records)
    if records:
        delta.set_provenance(offset + len(records) - 1, 1)
    return delta.apply()


# ------------------------------------------------------------------------------------ tests


@SETTINGS
@given(st.data())
def test_image_to_snapshot_to_image(data: Any) -> None:
    image = replay_one_delta(draw_records(data))
    sid = SnapshotId(image.offset + 1, 1)
    snap = snapshot_bytes(sid, image_snapshot_records(image), last_contained_log_timestamp_ms=7)
    loaded = load_image(read_snapshot(snap), image.offset, image.epoch)
    assert loaded == image
    # ... and the snapshot of the loaded image is the same bytes.
    again = snapshot_bytes(sid, image_snapshot_records(loaded), last_contained_log_timestamp_ms=7)
    assert again == snap


@settings(SETTINGS, max_examples=25)
@given(st.data())
def test_image_to_snapshot_file_to_image(data: Any) -> None:
    image = replay_one_delta(draw_records(data))
    with tempfile.TemporaryDirectory() as d:
        path = write_snapshot(d, SnapshotId(image.offset + 1, 1), image_snapshot_records(image),
                              last_contained_log_timestamp_ms=0)
        assert load_image(read_snapshot_file(path), image.offset, image.epoch) == image


def _shuffled_snapshot_records(image: MetadataImage, rng: random.Random) -> list[tuple[int, Any]]:
    """image.records() in another valid order: groups shuffled, partitions shuffled in a topic."""
    groups: list[list[tuple[int, Any]]] = []
    for rtype, rec in image.records():
        if rtype == T.PARTITION_RECORD:
            groups[-1].append((rtype, rec))
        else:
            groups.append([(rtype, rec)])
    for g in groups:
        tail = g[1:]
        rng.shuffle(tail)
        g[1:] = tail
    rng.shuffle(groups)
    return [r for g in groups for r in g]


@SETTINGS
@given(st.data(), st.randoms(use_true_random=False))
def test_equal_images_give_identical_snapshot_bytes(data: Any, rng: random.Random) -> None:
    a = replay_one_delta(draw_records(data))
    b = replace(replay_one_delta(_shuffled_snapshot_records(a, rng)), offset=a.offset,
                epoch=a.epoch)
    assert b == a
    sid = SnapshotId(a.offset + 1, 1)
    assert snapshot_bytes(sid, image_snapshot_records(a), last_contained_log_timestamp_ms=3) == (
        snapshot_bytes(sid, image_snapshot_records(b), last_contained_log_timestamp_ms=3))


@SETTINGS
@given(st.data())
def test_one_delta_equals_a_delta_per_record_and_any_chunking(data: Any) -> None:
    records = draw_records(data)
    one = replay_one_delta(records)
    image = MetadataImage()
    for i, rec in enumerate(records):
        image = replay_one_delta([rec], image, offset=i)
    assert image == one
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=5)))
    image = MetadataImage()
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        if hi > lo:
            image = replay_one_delta(records[lo:hi], image, offset=lo)
    assert image == one


@SETTINGS
@given(st.data())
def test_local_changes_match_the_image_difference(data: Any) -> None:
    records = draw_records(data, max_ops=60)
    split = data.draw(st.integers(0, len(records)))
    old = replay_one_delta(records[:split])
    delta = MetadataDelta(old)
    delta.replay_all(records[split:])
    new = delta.apply()
    for broker in BROKER_IDS:
        changes = delta.local_changes(broker)
        leaders: dict[TopicPartition, Any] = {}
        followers: dict[TopicPartition, Any] = {}
        deletes: set[TopicPartition] = set()
        for tid, topic in new.topics.by_id.items():
            before = old.topics.by_id.get(tid)
            for pid, p in topic.partitions.items():
                if before is not None and before.partitions.get(pid) == p:
                    continue
                if broker in p.replicas:
                    (leaders if p.leader == broker else followers)[
                        TopicPartition(topic.name, pid)] = (tid, p)
        for tid, topic in old.topics.by_id.items():
            after = new.topics.by_id.get(tid)
            for pid, p in topic.partitions.items():
                if broker not in p.replicas:
                    continue
                if after is None or broker not in after.partitions[pid].replicas:
                    deletes.add(TopicPartition(topic.name, pid))
        assert changes.leaders == leaders
        assert changes.followers == followers
        assert changes.deletes == deletes
