"""MetadataDelta replay/apply and local_changes, on hand-written record sequences."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kraft.delta import MetadataDelta, MetadataReplayError, TopicPartition
from kraft.image import ConfigResourceType, LeaderRecoveryState, MetadataImage
from kraft.metadata_records import (
    BrokerRegistrationChangeRecord,
    ConfigRecord,
    FeatureLevelRecord,
    FenceBrokerRecord,
    MetadataRecordType,
    PartitionChangeRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
)

T = MetadataRecordType
FOO = uuid.UUID(int=1)
FOO2 = uuid.UUID(int=2)
BAR = uuid.UUID(int=3)


def register(broker_id: int, epoch: int, *, fenced: bool = True) -> tuple[int, Any]:
    return T.REGISTER_BROKER_RECORD, RegisterBrokerRecord(
        broker_id=broker_id, incarnation_id=uuid.UUID(int=100 + broker_id), broker_epoch=epoch,
        end_points=[RegisterBrokerRecord.BrokerEndpoint(
            name="PLAINTEXT", host="localhost", port=9092 + broker_id, security_protocol=0)],
        features=[], rack=None, fenced=fenced)


def topic(name: str, topic_id: uuid.UUID) -> tuple[int, Any]:
    return T.TOPIC_RECORD, TopicRecord(name=name, topic_id=topic_id)


def partition(topic_id: uuid.UUID, pid: int, replicas: list[int], leader: int,
              isr: list[int] | None = None) -> tuple[int, Any]:
    return T.PARTITION_RECORD, PartitionRecord(
        partition_id=pid, topic_id=topic_id, replicas=replicas,
        isr=replicas if isr is None else isr, removing_replicas=[], adding_replicas=[],
        leader=leader, leader_epoch=0, partition_epoch=0)


def change(topic_id: uuid.UUID, pid: int, **fields: Any) -> tuple[int, Any]:
    return T.PARTITION_CHANGE_RECORD, PartitionChangeRecord(
        partition_id=pid, topic_id=topic_id, **fields)


def remove(topic_id: uuid.UUID) -> tuple[int, Any]:
    return T.REMOVE_TOPIC_RECORD, RemoveTopicRecord(topic_id=topic_id)


def config(rtype: int, rname: str, name: str, value: str | None) -> tuple[int, Any]:
    return T.CONFIG_RECORD, ConfigRecord(
        resource_type=int(rtype), resource_name=rname, name=name, value=value)


def build(records: list[tuple[int, Any]], image: MetadataImage | None = None) -> MetadataImage:
    delta = MetadataDelta(image or MetadataImage())
    delta.replay_all(records)
    return delta.apply()


BASE = [
    register(0, 10, fenced=False), register(1, 11, fenced=False), register(2, 12, fenced=False),
    topic("foo", FOO),
    partition(FOO, 0, [0, 1, 2], leader=0),
    partition(FOO, 1, [1, 2, 0], leader=1),
    topic("bar", BAR),
    partition(BAR, 0, [2, 1], leader=2),
    config(ConfigResourceType.TOPIC, "foo", "retention.ms", "1000"),
]


def test_one_delta_equals_a_delta_per_record() -> None:
    records = [
        *BASE,
        (T.FENCE_BROKER_RECORD, FenceBrokerRecord(id=1, epoch=11)),
        change(FOO, 0, leader=1, isr=[1, 2]),
        change(FOO, 0, leader=-2, isr=[0, 1, 2]),
        remove(BAR),
        topic("bar", FOO2),
        partition(FOO2, 0, [0], leader=0),
        config(ConfigResourceType.TOPIC, "foo", "retention.ms", None),
        config(ConfigResourceType.BROKER, "", "log.retention.ms", "5"),
        (T.FEATURE_LEVEL_RECORD, FeatureLevelRecord(name="metadata.version", feature_level=7)),
        (T.PRODUCER_IDS_RECORD, ProducerIdsRecord(broker_id=0, broker_epoch=10,
                                                  next_producer_id=1000)),
    ]
    one = build(records)
    image = MetadataImage()
    for r in records:
        image = build([r], image)
    assert image == one
    assert one.topics.by_name["bar"].topic_id == FOO2
    assert BAR not in one.topics.by_id
    assert one.cluster.brokers[1].fenced
    p = one.topics.get_partition(FOO, 0)
    assert p is not None and (p.leader, p.leader_epoch, p.partition_epoch) == (1, 1, 2)
    assert p.isr == (0, 1, 2)
    assert one.configs.topic_config("foo") == {}
    assert one.configs.broker_config("") == {"log.retention.ms": "5"}
    assert one.features.metadata_version == 7
    assert one.producer_ids.next_producer_id == 1000


def test_apply_leaves_the_old_image_alone_and_shares_unchanged_topics() -> None:
    old = build(BASE)
    new = build([change(FOO, 0, isr=[0, 1])], old)
    assert old.topics.get_partition(FOO, 0).isr == (0, 1, 2)  # type: ignore[union-attr]
    assert new.topics.get_partition(FOO, 0).isr == (0, 1)  # type: ignore[union-attr]
    assert new.topics.by_id[BAR] is old.topics.by_id[BAR]
    assert new.cluster is old.cluster and new.configs is old.configs


def test_partition_change_merge_rules() -> None:
    img = build([*BASE, change(FOO, 0, leader=-1, isr=[], leader_recovery_state=1)])
    p = img.topics.get_partition(FOO, 0)
    assert p is not None
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (-1, 1, 1)
    assert p.leader_recovery_state is LeaderRecoveryState.RECOVERING
    img = build([change(FOO, 0, replicas=[0, 1], eligible_leader_replicas=[2])], img)
    p = img.topics.get_partition(FOO, 0)
    assert p is not None
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (-1, 1, 2)  # no leader change
    assert p.replicas == (0, 1) and p.elr == (2,)
    assert p.leader_recovery_state is LeaderRecoveryState.RECOVERING


def test_broker_registration_changes() -> None:
    img = build(BASE)
    img = build([
        (T.BROKER_REGISTRATION_CHANGE_RECORD, BrokerRegistrationChangeRecord(
            broker_id=0, broker_epoch=10, fenced=1, in_controlled_shutdown=1)),
    ], img)
    assert img.cluster.brokers[0].fenced and img.cluster.brokers[0].in_controlled_shutdown
    img = build([(T.UNFENCE_BROKER_RECORD, UnfenceBrokerRecord(id=0, epoch=10))], img)
    assert not img.cluster.brokers[0].fenced
    img = build([register(0, 20)], img)  # re-registration replaces, new epoch
    assert img.cluster.brokers[0].epoch == 20 and img.cluster.brokers[0].fenced
    img = build([(T.UNREGISTER_BROKER_RECORD,
                  UnregisterBrokerRecord(broker_id=0, broker_epoch=20))], img)
    assert 0 not in img.cluster.brokers
    assert [b.broker_id for b in img.cluster.unfenced_brokers()] == [1, 2]


def test_feature_level_zero_removes_the_feature() -> None:
    rec = (T.FEATURE_LEVEL_RECORD, FeatureLevelRecord(name="group.version", feature_level=1))
    img = build([rec])
    assert img.features.levels == {"group.version": 1}
    img = build([(T.FEATURE_LEVEL_RECORD,
                  FeatureLevelRecord(name="group.version", feature_level=0))], img)
    assert img.features.levels == {}
    assert img.is_empty()


def test_removing_a_topic_drops_its_configs() -> None:
    img = build(BASE)
    assert img.configs.topic_config("foo") == {"retention.ms": "1000"}
    img = build([remove(FOO)], img)
    assert img.configs.topic_config("foo") == {}
    assert "foo" not in img.topics.by_name


# ------------------------------------------------------------------------------- local_changes


def test_local_changes_leader_and_follower() -> None:
    delta = MetadataDelta(MetadataImage())
    delta.replay_all(BASE)
    c0 = delta.local_changes(0)
    assert set(c0.leaders) == {TopicPartition("foo", 0)}
    assert set(c0.followers) == {TopicPartition("foo", 1)}
    assert not c0.deletes
    assert c0.leaders[TopicPartition("foo", 0)][0] == FOO
    c2 = delta.local_changes(2)
    assert set(c2.leaders) == {TopicPartition("bar", 0)}
    assert set(c2.followers) == {TopicPartition("foo", 0), TopicPartition("foo", 1)}
    assert delta.local_changes(7).is_empty()


def test_local_changes_only_lists_changed_partitions() -> None:
    old = build(BASE)
    delta = MetadataDelta(old)
    delta.replay(*change(FOO, 1, leader=0))
    c0 = delta.local_changes(0)
    assert set(c0.leaders) == {TopicPartition("foo", 1)}
    assert not c0.followers and not c0.deletes
    c1 = delta.local_changes(1)
    p = c1.followers[TopicPartition("foo", 1)][1]
    assert (p.leader, p.leader_epoch) == (0, 1)
    assert delta.local_changes(2).leaders == {}


def test_local_changes_replica_moved_away_is_deleted() -> None:
    old = build(BASE)
    delta = MetadataDelta(old)
    delta.replay(*change(BAR, 0, replicas=[2, 0], isr=[2, 0]))
    assert delta.local_changes(1).deletes == {TopicPartition("bar", 0)}
    assert set(delta.local_changes(0).followers) == {TopicPartition("bar", 0)}
    assert set(delta.local_changes(2).leaders) == {TopicPartition("bar", 0)}


def test_local_changes_topic_deleted() -> None:
    old = build(BASE)
    delta = MetadataDelta(old)
    delta.replay(*remove(FOO))
    assert delta.local_changes(0).deletes == {TopicPartition("foo", 0), TopicPartition("foo", 1)}
    assert delta.local_changes(0).leaders == {}
    assert delta.local_changes(2).deletes == {TopicPartition("foo", 0), TopicPartition("foo", 1)}


def test_local_changes_topic_created_and_deleted_in_one_delta_is_nothing() -> None:
    delta = MetadataDelta(build(BASE))
    delta.replay_all([topic("new", FOO2), partition(FOO2, 0, [0], leader=0), remove(FOO2)])
    assert delta.local_changes(0).is_empty()
    assert "new" not in delta.apply().topics.by_name


def test_local_changes_topic_deleted_and_recreated_with_a_new_id() -> None:
    """Kafka's order: the replica manager applies deletes first, then the new partitions."""
    old = build(BASE)
    delta = MetadataDelta(old)
    delta.replay_all([remove(FOO), topic("foo", FOO2), partition(FOO2, 0, [1, 0], leader=1)])
    c0 = delta.local_changes(0)
    assert c0.deletes == {TopicPartition("foo", 0), TopicPartition("foo", 1)}
    assert c0.followers == {TopicPartition("foo", 0): (FOO2, delta.apply().topics.get_partition(
        FOO2, 0))}
    new = delta.apply()
    assert new.topics.by_name["foo"].topic_id == FOO2 and FOO not in new.topics.by_id


def test_local_changes_topic_deleted_and_recreated_with_the_same_id() -> None:
    old = build(BASE)
    delta = MetadataDelta(old)
    delta.replay_all([remove(FOO), topic("foo", FOO), partition(FOO, 0, [0, 1], leader=0)])
    c2 = delta.local_changes(2)
    assert TopicPartition("foo", 1) in c2.deletes
    assert TopicPartition("foo", 0) in c2.deletes


# ------------------------------------------------------------------------------- replay errors


@pytest.mark.parametrize("records, match", [
    ([partition(FOO, 0, [0], leader=0)], "PartitionRecord: unknown topic"),
    ([change(FOO, 0, leader=0)], "PartitionChangeRecord: unknown topic"),
    ([topic("foo", FOO), change(FOO, 3, leader=0)], "unknown partition foo-3"),
    ([remove(FOO)], "RemoveTopicRecord: unknown topic"),
    ([topic("foo", FOO), remove(FOO), remove(FOO)], "RemoveTopicRecord: unknown topic"),
    ([topic("foo", FOO), topic("foo2", FOO)], "already exists"),
    ([register(0, 5), (T.FENCE_BROKER_RECORD, FenceBrokerRecord(id=0, epoch=4))],
     "FenceBrokerRecord: broker 0 epoch 4 is not registered"),
    ([(T.UNFENCE_BROKER_RECORD, UnfenceBrokerRecord(id=3, epoch=1))], "UnfenceBrokerRecord"),
    ([register(0, 5), (T.UNREGISTER_BROKER_RECORD,
                       UnregisterBrokerRecord(broker_id=0, broker_epoch=6))], "Unregister"),
    ([register(0, 5), (T.UNREGISTER_BROKER_RECORD,
                       UnregisterBrokerRecord(broker_id=0, broker_epoch=5)),
      (T.FENCE_BROKER_RECORD, FenceBrokerRecord(id=0, epoch=5))], "FenceBrokerRecord"),
    ([(T.BROKER_REGISTRATION_CHANGE_RECORD,
       BrokerRegistrationChangeRecord(broker_id=9, broker_epoch=1, fenced=1))],
     "BrokerRegistrationChangeRecord"),
    ([(T.PRODUCER_IDS_RECORD, ProducerIdsRecord(broker_id=0, next_producer_id=100)),
      (T.PRODUCER_IDS_RECORD, ProducerIdsRecord(broker_id=0, next_producer_id=99))],
     "ProducerIdsRecord"),
])
def test_replay_errors(records: list[tuple[int, Any]], match: str) -> None:
    delta = MetadataDelta(MetadataImage())
    with pytest.raises(MetadataReplayError, match=match):
        delta.replay_all(records)


def test_replay_errors_against_the_image_too() -> None:
    old = build([*BASE, remove(BAR)])
    with pytest.raises(MetadataReplayError, match="unknown topic"):
        build([partition(BAR, 1, [0], leader=0)], old)
    with pytest.raises(MetadataReplayError, match="already exists"):
        build([topic("again", FOO)], old)
    with pytest.raises(MetadataReplayError, match="epoch 99"):
        build([(T.FENCE_BROKER_RECORD, FenceBrokerRecord(id=0, epoch=99))], old)


def test_partition_registration_fast_init_keeps_dataclass_semantics() -> None:
    import dataclasses

    from kraft.image import LeaderRecoveryState, PartitionRegistration
    p = PartitionRegistration((1, 2), (1,), 1, 3, 4)
    assert p == PartitionRegistration(replicas=(1, 2), isr=(1,), leader=1, leader_epoch=3,
                                      partition_epoch=4, removing_replicas=(),
                                      leader_recovery_state=LeaderRecoveryState.RECOVERED)
    assert hash(p) == hash(dataclasses.replace(p))
    assert p.adding_replicas == () and p.elr == () and p.last_known_elr == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.leader = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        PartitionRegistration((1,), (1,))  # type: ignore[call-arg]
