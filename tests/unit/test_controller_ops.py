"""Unit tests of QuorumController operations and their error paths."""

from __future__ import annotations

import dataclasses
import random
import uuid
from types import SimpleNamespace

import pytest

from broker.config import KafkaConfig
from kraft.controller import (
    AllocateProducerIdsRequest,
    AlterConfigsRequest,
    AlterConfigsResource,
    ConfigOperation,
    ConfigValue,
    ControllerConfig,
    CreatableTopic,
    CreatePartitionsRequest,
    CreatePartitionsTopic,
    CreateTopicsRequest,
    DeletableTopic,
    DeleteTopicsRequest,
    ElectLeadersRequest,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResource,
    NotController,
    QuorumController,
    ReplicaAssignment,
    TopicPartitions,
    UnregisterBrokerRequest,
)
from kraft.image import NO_LEADER, ConfigResourceType, LeaderRecoveryState
from kraft.metadata_records import MetadataRecordType as T
from storage.error_codes import ErrorCode as E
from tests.unit.test_controller_helpers import (
    Harness,
    alter_request,
    check_invariants,
    hb_request,
    reg_request,
    topic_request,
)

# ---------------------------------------------------------------------------- lifecycle


def test_become_active_bootstraps_metadata_version() -> None:
    h = Harness()
    assert h.image.features.metadata_version == 21
    # A second activation on a bootstrapped image writes nothing.
    assert h.c.become_active(2, 0).records == []


def test_standby_refuses_operations() -> None:
    c = QuorumController(ControllerConfig(), random.Random(0))
    with pytest.raises(NotController):
        c.create_topics(topic_request(("a", 1, 1)), 0)
    assert c.tick(0) is None


def test_from_kafka_config() -> None:
    cfg = KafkaConfig({
        "node.id": "1", "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": "1@localhost:9093",
        "num.partitions": "3", "default.replication.factor": "2",
        "broker.session.timeout.ms": "5000", "leader.imbalance.check.interval.seconds": "7",
        "unclean.leader.election.enable": "true",
    })
    cc = ControllerConfig.from_kafka_config(cfg)
    assert cc.num_partitions == 3 and cc.default_replication_factor == 2
    assert cc.broker_session_timeout_ms == 5000
    assert cc.leader_imbalance_check_interval_ms == 7000
    assert cc.unclean_leader_election_enable is True
    assert cc.controller_ids == frozenset({1})


# ---------------------------------------------------------------------------- registration


def test_register_new_broker_is_fenced_with_offset_epoch() -> None:
    h = Harness()
    next_offset = h.offset + 1
    epoch = h.register(1)
    assert epoch == next_offset
    b = h.image.cluster.brokers[1]
    assert b.fenced and b.epoch == epoch and b.listeners[0].port == 9093
    assert h.c.register_offsets[1] == next_offset


def test_same_incarnation_keeps_epoch_and_state() -> None:
    h = Harness()
    h.brokers(1)
    epoch = h.image.cluster.brokers[1].epoch
    assert h.register(1) == epoch
    assert not h.image.cluster.brokers[1].fenced


def test_duplicate_registration_while_session_live() -> None:
    h = Harness()
    h.brokers(1)
    h.now = 1000
    r = h.c.register_broker(reg_request(1, gen=1), h.now)
    assert r.response.error_code == E.DUPLICATE_BROKER_REGISTRATION and r.records == []
    # After the session expired, the new incarnation registers with a new epoch.
    h.now = 1000 + 9001
    old = h.image.cluster.brokers[1].epoch
    new = h.register(1, gen=1)
    assert new > old and h.image.cluster.brokers[1].fenced


def test_new_incarnation_moves_leadership_away() -> None:
    h = Harness()
    h.brokers(1, 2)
    h.create("t", 2, 2)
    h.now = 20_000
    h.heartbeat(2)  # keep 2 alive
    h.register(1, gen=1)
    check_invariants(h.image)
    for p in h.image.topics.by_name["t"].partitions.values():
        assert p.leader == 2


def test_registration_errors() -> None:
    h = Harness(ControllerConfig(cluster_id="c1"))
    r = h.c.register_broker(reg_request(1, mv_range=(1, 5)), 0)
    assert r.response.error_code == E.UNSUPPORTED_VERSION
    req = dataclasses.replace(reg_request(1), cluster_id="other")
    assert h.c.register_broker(req, 0).response.error_code == E.INCONSISTENT_CLUSTER_ID


# ---------------------------------------------------------------------------- heartbeats


def test_heartbeat_unfences_only_when_caught_up() -> None:
    h = Harness()
    epoch = h.register(1)
    r = h.c.broker_heartbeat(hb_request(1, epoch, epoch - 1), 0)
    assert r.records == [] and r.response.is_fenced and not r.response.is_caught_up
    r = h.c.broker_heartbeat(hb_request(1, epoch, epoch, want_fence=True), 0)
    assert r.records == [] and r.response.is_fenced and r.response.is_caught_up
    reply = h.apply(h.c.broker_heartbeat(hb_request(1, epoch, epoch), 0))
    assert not reply.is_fenced and reply.is_caught_up and not reply.should_shut_down
    assert not h.image.cluster.brokers[1].fenced


def test_heartbeat_stale_epoch_and_unregistered() -> None:
    h = Harness()
    epoch = h.register(1)
    assert h.c.broker_heartbeat(hb_request(1, epoch + 5, 0), 0).response.error_code == (
        E.STALE_BROKER_EPOCH)
    assert h.c.broker_heartbeat(hb_request(9, 0, 0), 0).response.error_code == (
        E.STALE_BROKER_EPOCH)


def test_session_timeout_fences_and_moves_leaders() -> None:
    h = Harness()
    h.brokers(1, 2, 3)
    h.create("t", 3, 3)
    assert h.c.tick(8000) is None
    h.now = 8000
    h.heartbeat(2)
    h.heartbeat(3)
    result = h.c.tick(9001)
    assert result is not None
    types = [t for t, _ in result.records]
    assert types[-1] == T.BROKER_REGISTRATION_CHANGE_RECORD
    before = {pid: p for pid, p in h.image.topics.by_name["t"].partitions.items()}
    h.apply(result)
    assert h.image.cluster.brokers[1].fenced
    for pid, p in h.image.topics.by_name["t"].partitions.items():
        assert 1 not in p.isr and p.leader != 1
        if before[pid].leader == 1:
            assert p.leader_epoch == before[pid].leader_epoch + 1
        assert p.partition_epoch == before[pid].partition_epoch + 1
    check_invariants(h.image)


def test_last_isr_member_keeps_isr_and_partition_goes_leaderless() -> None:
    h = Harness()
    h.brokers(1)
    h.create("t", 1, 1)
    h.apply(h.c.tick(10_000))
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == NO_LEADER and p.isr == (1,) and p.leader_epoch == 1
    # When it comes back it leads again (it holds every committed record).
    h.now = 10_000
    h.unfence(1)
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 1 and p.leader_epoch == 2


def test_unclean_election_on_fence_when_topic_enables_it() -> None:
    h = Harness()
    h.brokers(1, 2)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2]]},
                                            configs={"unclean.leader.election.enable": "true"}),
                              0))
    # Shrink ISR to [1] via AlterPartition, then fence 1: 2 is elected uncleanly.
    p = h.image.topics.by_name["t"].partitions[0]
    topic = h.image.topics.by_name["t"]
    e1 = h.image.cluster.brokers[1].epoch
    reply = h.apply(h.c.alter_partition(
        alter_request(1, e1, topic, 0, p.leader_epoch, p.partition_epoch, [1]), 0))
    assert reply.topics[0].partitions[0].isr == (1,)
    h.now = 5000
    h.heartbeat(2)
    h.apply(h.c.tick(9001))
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 2 and p.isr == (2,)
    assert p.leader_recovery_state == LeaderRecoveryState.RECOVERING
    check_invariants(h.image)


def test_controlled_shutdown() -> None:
    h = Harness()
    h.brokers(1, 2)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2], [2, 1]]}),
                              0))
    reply = h.heartbeat(1, want_shut_down=True)
    assert not reply.should_shut_down and not reply.is_fenced and reply.in_controlled_shutdown
    b = h.image.cluster.brokers[1]
    assert b.in_controlled_shutdown
    for p in h.image.topics.by_name["t"].partitions.values():
        assert p.leader == 2 and 1 not in p.isr
    reply = h.heartbeat(1, want_shut_down=True)
    assert reply.should_shut_down and reply.is_fenced
    assert h.image.cluster.brokers[1].fenced
    check_invariants(h.image)


def test_shutdown_without_leaderships_is_immediate() -> None:
    h = Harness()
    h.brokers(1)
    reply = h.heartbeat(1, want_shut_down=True)
    assert reply.should_shut_down and h.image.cluster.brokers[1].fenced


def test_unregister() -> None:
    h = Harness()
    req = UnregisterBrokerRequest(broker_id=5)
    assert h.c.unregister_broker(req, 0).response.error_code == E.BROKER_ID_NOT_REGISTERED
    h.brokers(1, 2)
    h.create("t", 1, 2)
    reply = h.apply(h.c.unregister_broker(UnregisterBrokerRequest(broker_id=1), 0))
    assert reply.error_code == E.NONE and 1 not in h.image.cluster.brokers
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.isr == (2,) and p.leader == 2


# ---------------------------------------------------------------------------- topics


def test_create_topic_records_and_reply() -> None:
    h = Harness()
    h.brokers(1, 2, 3)
    result = h.c.create_topics(topic_request(("t", 3, 2), configs={"retention.ms": "1000"}), 0)
    types = [t for t, _ in result.records]
    assert types == [T.TOPIC_RECORD, T.CONFIG_RECORD] + [T.PARTITION_RECORD] * 3
    r = h.apply(result).topics[0]
    assert r.error_code == E.NONE and r.num_partitions == 3 and r.replication_factor == 2
    assert r.topic_id == h.image.topics.by_name["t"].topic_id
    assert {c.name: c.value for c in r.configs}["retention.ms"] == "1000"
    for p in h.image.topics.by_name["t"].partitions.values():
        assert p.leader == p.replicas[0] and p.isr == p.replicas
        assert p.leader_epoch == 0 and p.partition_epoch == 0
    leaders = sorted(p.leader for p in h.image.topics.by_name["t"].partitions.values())
    assert leaders == [1, 2, 3]
    assert h.image.configs.topic_config("t") == {"retention.ms": "1000"}


def test_create_topic_defaults() -> None:
    h = Harness(ControllerConfig(num_partitions=4, default_replication_factor=2))
    h.brokers(1, 2)
    r = h.create("t", -1, -1)
    assert r.num_partitions == 4 and r.replication_factor == 2


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "a b", "x/y"])
def test_create_topic_bad_names(name: str) -> None:
    h = Harness()
    h.brokers(1)
    assert h.create(name).error_code == E.INVALID_TOPIC_EXCEPTION


def test_create_topic_exists_and_collision() -> None:
    h = Harness()
    h.brokers(1)
    assert h.create("a.b").error_code == E.NONE
    assert h.create("a.b").error_code == E.TOPIC_ALREADY_EXISTS
    assert h.create("a_b").error_code == E.INVALID_TOPIC_EXCEPTION
    assert h.create("a" * 249).error_code == E.NONE
    reply = h.c.create_topics(topic_request(("d", 1, 1), ("d", 1, 1)), 0).response
    assert [t.error_code for t in reply.topics] == [E.INVALID_REQUEST] * 2


def test_create_topic_sizes() -> None:
    h = Harness()
    h.brokers(1, 2)
    assert h.create("t", 1, 3).error_code == E.INVALID_REPLICATION_FACTOR
    assert h.create("t", 0, 1).error_code == E.INVALID_PARTITIONS
    assert h.create("t", 1, 0).error_code == E.INVALID_REPLICATION_FACTOR
    h2 = Harness()
    h2.register(1)  # fenced only
    assert h2.create("t", 1, 1).error_code == E.INVALID_REPLICATION_FACTOR


def test_create_topic_manual_assignments() -> None:
    h = Harness()
    h.brokers(1, 2, 3)

    def create(a: list[list[int]], n: int = -1, rf: int = -1) -> int:
        req = topic_request(("t", n, rf), assignments={"t": a})
        return h.c.create_topics(req, 0).response.topics[0].error_code

    assert create([[1, 2]], n=1) == E.INVALID_REQUEST
    assert create([[1, 2]], rf=2) == E.INVALID_REQUEST
    assert create([[1, 1]]) == E.INVALID_REPLICA_ASSIGNMENT
    assert create([[1, 9]]) == E.INVALID_REPLICA_ASSIGNMENT
    assert create([[1, 2], [3]]) == E.INVALID_REPLICA_ASSIGNMENT
    assert create([[]]) == E.INVALID_REPLICA_ASSIGNMENT
    req = CreateTopicsRequest((CreatableTopic("t", assignments=(
        ReplicaAssignment(0, (1, 2)), ReplicaAssignment(5, (2, 3)))),))
    assert h.c.create_topics(req, 0).response.topics[0].error_code == (
        E.INVALID_REPLICA_ASSIGNMENT)
    reply = h.apply(h.c.create_topics(
        topic_request(("t", -1, -1), assignments={"t": [[3, 1], [2, 3]]}), 0))
    assert reply.topics[0].error_code == E.NONE
    parts = h.image.topics.by_name["t"].partitions
    assert parts[0].replicas == (3, 1) and parts[0].leader == 3


def test_create_topic_manual_assignment_isr_skips_fenced() -> None:
    h = Harness()
    h.brokers(1)
    h.register(2)  # fenced
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[2, 1]]}), 0))
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.replicas == (2, 1) and p.isr == (1,) and p.leader == 1
    r = h.c.create_topics(topic_request(("u", -1, -1), assignments={"u": [[2]]}), 0)
    assert r.response.topics[0].error_code == E.INVALID_REPLICA_ASSIGNMENT


def test_create_topic_config_validation() -> None:
    h = Harness()
    h.brokers(1)
    r = h.create("t", configs={"no.such.key": "1"})
    assert r.error_code == E.INVALID_CONFIG and "no.such.key" in r.error_message
    r = h.create("t", configs={"retention.ms": "abc"})
    assert r.error_code == E.INVALID_CONFIG and "retention.ms" in r.error_message
    assert "t" not in h.image.topics.by_name


def test_create_topic_validate_only() -> None:
    h = Harness()
    h.brokers(1)
    result = h.c.create_topics(topic_request(("t", 2, 1), validate_only=True), 0)
    assert result.records == [] and result.response.topics[0].error_code == E.NONE


def test_rack_aware_placement() -> None:
    h = Harness(seed=3)
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    h.brokers(*racks, racks=racks)
    h.create("t", 12, 3)
    leaders: dict[int, int] = {}
    for p in h.image.topics.by_name["t"].partitions.values():
        assert len({racks[r] for r in p.replicas}) == 3
        leaders[p.leader] = leaders.get(p.leader, 0) + 1
    assert sorted(leaders.values()) == [2] * 6


def test_delete_topics() -> None:
    h = Harness()
    h.brokers(1)
    tid = h.create("a").topic_id
    h.create("b")
    reply = h.apply(h.c.delete_topics(DeleteTopicsRequest((
        DeletableTopic("a"), DeletableTopic("zz"))), 0))
    assert [(r.name, r.error_code) for r in reply.results] == [
        ("a", E.NONE), ("zz", E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert "a" not in h.image.topics.by_name and tid not in h.image.topics.by_id
    bid = h.image.topics.by_name["b"].topic_id
    reply = h.apply(h.c.delete_topics(DeleteTopicsRequest((
        DeletableTopic(topic_id=bid), DeletableTopic(topic_id=uuid.uuid4()),
        DeletableTopic(name="nope"))), 0))
    assert [r.error_code for r in reply.results] == [
        E.NONE, E.UNKNOWN_TOPIC_ID, E.UNKNOWN_TOPIC_OR_PARTITION]
    assert reply.results[0].name == "b"
    assert not h.image.topics.by_id


def test_create_partitions() -> None:
    h = Harness()
    h.brokers(1, 2)
    h.create("t", 2, 2)

    def run(count: int, assignments: list[list[int]] | None = None, name: str = "t",
            validate_only: bool = False) -> int:
        a = None if assignments is None else tuple(tuple(b) for b in assignments)
        req = CreatePartitionsRequest((CreatePartitionsTopic(name, count, a),),
                                      validate_only=validate_only)
        return h.apply(h.c.create_partitions(req, 0)).results[0].error_code

    assert run(2) == E.INVALID_PARTITIONS
    assert run(1) == E.INVALID_PARTITIONS
    assert run(3, name="x") == E.UNKNOWN_TOPIC_OR_PARTITION
    assert run(4, [[1, 2]]) == E.INVALID_REPLICA_ASSIGNMENT
    assert run(3, [[1]]) == E.INVALID_REPLICA_ASSIGNMENT
    assert run(3, validate_only=True) == E.NONE
    assert len(h.image.topics.by_name["t"].partitions) == 2
    assert run(3, [[2, 1]]) == E.NONE
    assert h.image.topics.by_name["t"].partitions[2].replicas == (2, 1)
    assert run(5) == E.NONE
    assert len(h.image.topics.by_name["t"].partitions) == 5
    check_invariants(h.image)


# ---------------------------------------------------------------------------- AlterPartition


def _setup_alter() -> tuple[Harness, object]:
    h = Harness()
    h.brokers(1, 2, 3)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2, 3]]}), 0))
    return h, h.image.topics.by_name["t"]


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_alter_partition_shrink_and_expand(version: int) -> None:
    h, topic = _setup_alter()
    e1 = h.image.cluster.brokers[1].epoch
    p = topic.partitions[0]
    reply = h.apply(h.c.alter_partition(
        alter_request(1, e1, topic, 0, p.leader_epoch, p.partition_epoch, [1, 2], version),
        0))
    r = reply.topics[0].partitions[0]
    assert r.error_code == E.NONE and r.isr == (1, 2) and r.leader_id == 1
    assert r.partition_epoch == 1 and r.leader_epoch == 0
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.isr == (1, 2) and p.partition_epoch == 1
    reply = h.apply(h.c.alter_partition(
        alter_request(1, e1, topic, 0, 0, 1, [1, 2, 3], version), 0))
    assert reply.topics[0].partitions[0].isr == (1, 2, 3)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_alter_partition_errors(version: int) -> None:
    h, topic = _setup_alter()
    e1 = h.image.cluster.brokers[1].epoch
    e2 = h.image.cluster.brokers[2].epoch

    def code(broker: int, epoch: int, le: int, pe: int, isr: list[int], part: int = 0) -> int:
        reply = h.c.alter_partition(
            alter_request(broker, epoch, topic, part, le, pe, isr, version), 0).response
        if reply.error_code:
            return reply.error_code
        return reply.topics[0].partitions[0].error_code

    assert code(1, e1 + 1, 0, 0, [1]) == E.STALE_BROKER_EPOCH
    assert code(1, e1, 0, 0, [1], part=7) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert code(1, e1, 1, 0, [1]) == E.NOT_CONTROLLER
    assert code(1, e1, 0, 3, [1]) == E.NOT_CONTROLLER
    assert code(2, e2, 0, 0, [1, 2]) == E.INVALID_REQUEST  # not the leader
    assert code(1, e1, 0, 0, [1, 9]) == E.INVALID_REQUEST  # not a replica
    assert code(1, e1, 0, 0, [2, 3]) == E.INVALID_REQUEST  # leader missing
    assert code(1, e1, 0, 0, [1, 1]) == E.INVALID_REQUEST
    # Move the partition epoch on, then an old one is INVALID_UPDATE_VERSION.
    h.apply(h.c.alter_partition(alter_request(1, e1, topic, 0, 0, 0, [1, 2], version), 0))
    assert code(1, e1, 0, 0, [1]) == E.INVALID_UPDATE_VERSION
    # Fence 3: adding it back is refused.
    h.now = 5000
    h.heartbeat(1)
    h.heartbeat(2)
    h.apply(h.c.tick(9001))
    assert h.image.cluster.brokers[3].fenced
    want = E.INELIGIBLE_REPLICA if version > 1 else E.OPERATION_NOT_ATTEMPTED
    assert code(1, e1, 0, 1, [1, 2, 3]) == want
    # A leader epoch bump (elect 2 by fencing 1) makes the old one FENCED_LEADER_EPOCH.
    h.now = 20_000
    h.heartbeat(2)
    h.apply(h.c.tick(20_000))
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 2
    assert code(2, e2, 0, p.partition_epoch, [2]) == E.FENCED_LEADER_EPOCH


def test_alter_partition_unknown_topic() -> None:
    h, _ = _setup_alter()
    e1 = h.image.cluster.brokers[1].epoch
    unknown = SimpleNamespace(name="nope", topic_id=uuid.uuid4())
    r = h.c.alter_partition(alter_request(1, e1, unknown, 0, 0, 0, [1], 2), 0).response
    assert r.topics[0].partitions[0].error_code == E.UNKNOWN_TOPIC_ID
    r = h.c.alter_partition(alter_request(1, e1, unknown, 0, 0, 0, [1], 1), 0).response
    assert r.topics[0].partitions[0].error_code == E.UNKNOWN_TOPIC_OR_PARTITION


# ---------------------------------------------------------------------------- producer ids


def test_allocate_producer_ids() -> None:
    h = Harness(ControllerConfig(producer_id_block_size=100))
    h.brokers(1)
    e = h.image.cluster.brokers[1].epoch
    a = h.apply(h.c.allocate_producer_ids(AllocateProducerIdsRequest(1, e), 0))
    b = h.apply(h.c.allocate_producer_ids(AllocateProducerIdsRequest(1, e), 0))
    assert (a.producer_id_start, a.producer_id_len) == (0, 100)
    assert b.producer_id_start == 100
    assert h.image.producer_ids.next_producer_id == 200
    bad = h.c.allocate_producer_ids(AllocateProducerIdsRequest(1, e + 1), 0)
    assert bad.response.error_code == E.STALE_BROKER_EPOCH and bad.records == []


# ---------------------------------------------------------------------------- configs


def _iac(resources: list[tuple[int, str, list[tuple[str, int, str | None]]]],
         validate_only: bool = False) -> IncrementalAlterConfigsRequest:
    return IncrementalAlterConfigsRequest(tuple(
        IncrementalAlterConfigsResource(t, n, tuple(ConfigOperation(k, op, v)
                                                    for k, op, v in cfgs))
        for t, n, cfgs in resources), validate_only=validate_only)


def test_incremental_alter_configs() -> None:
    h = Harness()
    h.brokers(1)
    h.create("t")
    TOPIC, BROKER = ConfigResourceType.TOPIC, ConfigResourceType.BROKER
    reply = h.apply(h.c.incremental_alter_configs(_iac([
        (TOPIC, "t", [("retention.ms", 0, "100"), ("cleanup.policy", 2, "compact")]),
        (TOPIC, "nope", [("retention.ms", 0, "1")]),
        (TOPIC, "t", [("retention.ms", 2, "1")]),
        (BROKER, "", [("log.retention.ms", 0, "5")]),
        (BROKER, "7", [("x", 0, "1")]),
        (BROKER, "x", [("x", 0, "1")]),
        (99, "t", []),
    ]), 0))
    assert [r.error_code for r in reply.results] == [
        E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION, E.INVALID_CONFIG, E.NONE,
        E.BROKER_ID_NOT_REGISTERED, E.INVALID_REQUEST, E.INVALID_REQUEST]
    # APPEND starts from the default (``delete``) when the topic has no value of its own.
    assert h.image.configs.topic_config("t") == {"retention.ms": "100",
                                                 "cleanup.policy": "delete,compact"}
    assert h.image.configs.broker_config("") == {"log.retention.ms": "5"}
    h.apply(h.c.incremental_alter_configs(_iac([
        (TOPIC, "t", [("cleanup.policy", 2, "delete"), ("retention.ms", 1, None)])]), 0))
    assert h.image.configs.topic_config("t") == {"cleanup.policy": "delete,compact"}
    h.apply(h.c.incremental_alter_configs(_iac([
        (TOPIC, "t", [("cleanup.policy", 3, "compact")])]), 0))
    assert h.image.configs.topic_config("t") == {"cleanup.policy": "delete"}
    # SUBTRACT from the default: the empty list, as a value of the topic's own.
    h.create("u")
    h.apply(h.c.incremental_alter_configs(_iac([
        (TOPIC, "u", [("cleanup.policy", 3, "delete")])]), 0))
    assert h.image.configs.topic_config("u") == {"cleanup.policy": ""}
    # A broker LIST key starts from its static default too.
    h.apply(h.c.incremental_alter_configs(_iac([
        (BROKER, "", [("log.cleanup.policy", 2, "compact")])]), 0))
    assert h.image.configs.broker_config("")["log.cleanup.policy"] == "delete,compact"
    bad = h.c.incremental_alter_configs(_iac([(TOPIC, "t", [("retention.ms", 0, "x")])]), 0)
    assert bad.response.results[0].error_code == E.INVALID_CONFIG and bad.records == []
    vo = h.c.incremental_alter_configs(_iac([(TOPIC, "t", [("retention.ms", 0, "9")])], True), 0)
    assert vo.records == [] and vo.response.results[0].error_code == E.NONE


def test_alter_configs_replaces() -> None:
    h = Harness()
    h.brokers(1)
    h.create("t", configs={"retention.ms": "100", "segment.ms": "5000"})

    def req(name: str) -> AlterConfigsRequest:
        return AlterConfigsRequest((AlterConfigsResource(
            ConfigResourceType.TOPIC, "t", (ConfigValue(name, "200"),)),))

    reply = h.apply(h.c.alter_configs(req("retention.ms"), 0))
    assert reply.results[0].error_code == E.NONE
    assert h.image.configs.topic_config("t") == {"retention.ms": "200"}
    assert h.c.alter_configs(req("bogus"), 0).response.results[0].error_code == E.INVALID_CONFIG


# ---------------------------------------------------------------------------- elections


def _elect(h: Harness, etype: int, tps: dict[str, list[int]] | None) -> object:
    req = ElectLeadersRequest(etype, None if tps is None else tuple(
        TopicPartitions(t, tuple(p)) for t, p in tps.items()))
    return h.apply(h.c.elect_leaders(req, 0))


def test_preferred_election() -> None:
    h = Harness(ControllerConfig(auto_leader_rebalance_enable=False))
    h.brokers(1, 2)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2]]}), 0))
    r = _elect(h, 0, {"t": [0, 5], "x": [0]})
    codes = [(t.topic, [p.error_code for p in t.partitions]) for t in r.results]
    assert codes == [("t", [E.ELECTION_NOT_NEEDED, E.UNKNOWN_TOPIC_OR_PARTITION]),
                     ("x", [E.UNKNOWN_TOPIC_OR_PARTITION])]
    h.heartbeat(1, want_shut_down=True)  # moves leadership to 2
    r = _elect(h, 0, {"t": [0]})
    assert r.results[0].partitions[0].error_code == E.PREFERRED_LEADER_NOT_AVAILABLE
    assert h.heartbeat(1, want_shut_down=True).should_shut_down
    # 1 comes back (new incarnation, unfenced), is re-added to the ISR, then elected.
    h.now = 100
    h.register(1, gen=1)
    h.unfence(1)
    topic = h.image.topics.by_name["t"]
    p = topic.partitions[0]
    e2 = h.image.cluster.brokers[2].epoch
    h.apply(h.c.alter_partition(
        alter_request(2, e2, topic, 0, p.leader_epoch, p.partition_epoch, [2, 1]), 0))
    assert _elect(h, 0, None).results[0].partitions[0].error_code == E.NONE
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 1
    assert _elect(h, 0, None).results == ()


def test_unclean_election_request() -> None:
    h = Harness()
    h.brokers(1, 2)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2]]}), 0))
    topic = h.image.topics.by_name["t"]
    e1 = h.image.cluster.brokers[1].epoch
    h.apply(h.c.alter_partition(alter_request(1, e1, topic, 0, 0, 0, [1]), 0))
    assert _elect(h, 1, {"t": [0]}).results[0].partitions[0].error_code == E.ELECTION_NOT_NEEDED
    h.now = 5000
    h.heartbeat(2)
    h.apply(h.c.tick(9001))
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == NO_LEADER and p.isr == (1,)
    r = _elect(h, 1, {"t": [0]})
    assert r.results[0].partitions[0].error_code == E.NONE
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 2 and p.isr == (2,)
    check_invariants(h.image)


def test_auto_leader_rebalance() -> None:
    h = Harness(ControllerConfig(leader_imbalance_check_interval_ms=1000))
    h.brokers(1, 2)
    h.apply(h.c.create_topics(topic_request(("t", -1, -1), assignments={"t": [[1, 2]]}), 0))
    topic = h.image.topics.by_name["t"]
    # Elect 2 by hand: unclean-free way is controlled shutdown of 1 + new incarnation.
    h.heartbeat(1, want_shut_down=True)
    h.heartbeat(1, want_shut_down=True)
    h.register(1, gen=1)
    h.unfence(1)
    p = h.image.topics.by_name["t"].partitions[0]
    e2 = h.image.cluster.brokers[2].epoch
    h.apply(h.c.alter_partition(
        alter_request(2, e2, topic, 0, p.leader_epoch, p.partition_epoch, [2, 1]), 0))
    assert h.image.topics.by_name["t"].partitions[0].leader == 2
    h.apply(h.c.tick(1000))
    assert h.image.topics.by_name["t"].partitions[0].leader == 1
