"""Shared helpers for controller tests: a harness that commits results at once, and builders
of the controller's request dataclasses."""

from __future__ import annotations

import random
import uuid
from typing import Any

from kraft.controller import (
    AllocateProducerIdsRequest,
    AlterPartitionPartition,
    AlterPartitionReassignmentsRequest,
    AlterPartitionRequest,
    AlterPartitionTopic,
    BrokerHeartbeatRequest,
    BrokerRegistrationRequest,
    ConfigOperation,
    ConfigValue,
    ControllerConfig,
    ControllerResult,
    CreatableTopic,
    CreatePartitionsRequest,
    CreatePartitionsTopic,
    CreateTopicsRequest,
    DeletableTopic,
    DeleteTopicsRequest,
    ElectLeadersRequest,
    FeatureRange,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResource,
    IsrMember,
    Listener,
    QuorumController,
    ReassignablePartition,
    ReassignableTopic,
    ReplicaAssignment,
    UnregisterBrokerRequest,
)
from kraft.image import NO_LEADER, MetadataImage

EPOCH = 1


def incarnation(broker_id: int, gen: int = 0) -> uuid.UUID:
    return uuid.UUID(int=(broker_id << 32) + gen + 1)


def reg_request(broker_id: int, gen: int = 0, rack: str | None = None,
                mv_range: tuple[int, int] | None = (1, 25)) -> BrokerRegistrationRequest:
    features = []
    if mv_range is not None:
        features.append(FeatureRange("metadata.version", mv_range[0], mv_range[1]))
    return BrokerRegistrationRequest(
        broker_id=broker_id, cluster_id="c1", incarnation_id=incarnation(broker_id, gen),
        listeners=(Listener("PLAINTEXT", "h", 9092 + broker_id, 0),),
        features=tuple(features), rack=rack)


def hb_request(broker_id: int, epoch: int, offset: int, want_fence: bool = False,
               want_shut_down: bool = False) -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(broker_id=broker_id, broker_epoch=epoch,
                                  current_metadata_offset=offset, want_fence=want_fence,
                                  want_shut_down=want_shut_down)


def topic_request(*topics: tuple[str, int, int], configs: dict[str, str] | None = None,
                  assignments: dict[str, list[list[int]]] | None = None,
                  validate_only: bool = False) -> CreateTopicsRequest:
    out = []
    for name, n, rf in topics:
        a = (assignments or {}).get(name, [])
        out.append(CreatableTopic(
            name=name, num_partitions=n, replication_factor=rf,
            assignments=tuple(ReplicaAssignment(i, tuple(b)) for i, b in enumerate(a)),
            configs=tuple(ConfigValue(k, v) for k, v in (configs or {}).items())))
    return CreateTopicsRequest(tuple(out), validate_only=validate_only)


def alter_request(broker_id: int, broker_epoch: int, topic: Any, partition: int,
                  leader_epoch: int, partition_epoch: int, isr: list[int],
                  version: int = 3, recovery: int = 0,
                  epochs: list[int] | None = None) -> AlterPartitionRequest:
    """``topic``: anything with ``name`` and ``topic_id`` (by id from version 2); ``epochs``:
    the members' broker epochs (default -1, not said)."""
    members = tuple(IsrMember(b) for b in isr) if epochs is None else tuple(
        IsrMember(b, e) for b, e in zip(isr, epochs, strict=True))
    pd = AlterPartitionPartition(partition_index=partition, leader_epoch=leader_epoch,
                                 partition_epoch=partition_epoch,
                                 new_isr=members,
                                 leader_recovery_state=recovery)
    td = (AlterPartitionTopic("", topic.topic_id, (pd,)) if version >= 2
          else AlterPartitionTopic(topic.name, None, (pd,)))
    return AlterPartitionRequest(broker_id=broker_id, broker_epoch=broker_epoch, topics=(td,),
                                 version=version)


class Harness:
    """An active controller whose results are written and committed immediately."""

    def __init__(self, config: ControllerConfig | None = None, seed: int = 0) -> None:
        self.c = QuorumController(config or ControllerConfig(), random.Random(seed))
        self.offset = -1
        self.log: list[tuple[list[Any], int]] = []
        self.now = 0
        self.apply(self.c.become_active(EPOCH, self.now))

    @property
    def image(self) -> MetadataImage:
        return self.c.image

    def apply(self, result: ControllerResult | None) -> Any:
        if result is None:
            return None
        if result.records:
            last = self.offset + len(result.records)
            self.c.record_written(result.records, last, EPOCH)
            self.log.append((list(result.records), last))
            self.offset = last
            self.c.replay_committed(result.records, last, EPOCH)
        return result.response

    def register(self, broker_id: int, gen: int = 0, rack: str | None = None) -> int:
        reply = self.apply(self.c.register_broker(reg_request(broker_id, gen, rack), self.now))
        assert reply.error_code == 0, reply
        return reply.broker_epoch

    def unfence(self, broker_id: int) -> Any:
        epoch = self.image.cluster.brokers[broker_id].epoch
        return self.apply(self.c.broker_heartbeat(hb_request(broker_id, epoch, self.offset),
                                                  self.now))

    def heartbeat(self, broker_id: int, **kw: Any) -> Any:
        epoch = self.image.cluster.brokers[broker_id].epoch
        return self.apply(self.c.broker_heartbeat(hb_request(broker_id, epoch, self.offset, **kw),
                                                  self.now))

    def brokers(self, *ids: int, racks: dict[int, str] | None = None) -> None:
        for b in ids:
            self.register(b, rack=(racks or {}).get(b))
            self.unfence(b)

    def create(self, name: str, n: int = 1, rf: int = 1, **kw: Any) -> Any:
        reply = self.apply(self.c.create_topics(topic_request((name, n, rf), **kw), self.now))
        return reply.topics[0]


def check_invariants(image: MetadataImage) -> None:
    for t in image.topics.by_id.values():
        for pid, p in t.partitions.items():
            assert p.isr, (t.name, pid, p)
            assert set(p.isr) <= set(p.replicas), (t.name, pid, p)
            assert len(set(p.isr)) == len(p.isr)
            assert set(p.adding_replicas) <= set(p.replicas), (t.name, pid, p)
            assert set(p.removing_replicas) <= set(p.replicas), (t.name, pid, p)
            assert not set(p.adding_replicas) & set(p.removing_replicas), (t.name, pid, p)
            if p.leader != NO_LEADER:
                assert p.leader in p.isr, (t.name, pid, p)
                b = image.cluster.brokers.get(p.leader)
                assert b is not None and not b.fenced, (t.name, pid, p, b)


def random_step(h: Harness, rng: random.Random, max_broker: int = 5) -> None:
    """One random operation (time advances a little), applied through the harness."""
    h.now += rng.choice([0, 100, 1000, 3000, 10_000])
    img = h.image
    brokers = sorted(img.cluster.brokers)
    topics = sorted(img.topics.by_name)
    kind = rng.randrange(13)
    if kind == 0 or not brokers:
        b = rng.randint(1, max_broker)
        h.apply(h.c.register_broker(reg_request(b, gen=rng.randrange(2)), h.now))
    elif kind in (1, 2):
        b = rng.choice(brokers)
        reg = img.cluster.brokers[b]
        h.apply(h.c.broker_heartbeat(hb_request(
            b, reg.epoch, h.offset, want_fence=rng.random() < 0.05,
            want_shut_down=rng.random() < 0.1), h.now))
    elif kind == 3:
        name = rng.choice(["a", "b", "c", "d.e", "d_e"])
        h.apply(h.c.create_topics(topic_request(
            (name, rng.randint(1, 4), rng.randint(1, 3)),
            configs=rng.choice([{}, {"unclean.leader.election.enable": "true"}])), h.now))
    elif kind == 4 and topics:
        h.apply(h.c.delete_topics(DeleteTopicsRequest((DeletableTopic(rng.choice(topics)),)),
                                  h.now))
    elif kind == 5 and topics:
        t = rng.choice(topics)
        n = len(img.topics.by_name[t].partitions) + rng.randint(0, 2)
        h.apply(h.c.create_partitions(CreatePartitionsRequest((CreatePartitionsTopic(t, n),)),
                                      h.now))
    elif kind == 6 and topics:
        topic = img.topics.by_name[rng.choice(topics)]
        pid = rng.choice(sorted(topic.partitions))
        p = topic.partitions[pid]
        if p.leader >= 0:
            isr = [p.leader] + [r for r in p.replicas if r != p.leader and rng.random() < 0.6]
            reg = img.cluster.brokers.get(p.leader)
            epoch = reg.epoch if reg is not None else -1
            version = rng.randrange(4)
            h.apply(h.c.alter_partition(alter_request(
                p.leader, epoch, topic, pid, p.leader_epoch, p.partition_epoch, isr, version),
                h.now))
    elif kind == 7 and topics:
        h.apply(h.c.elect_leaders(ElectLeadersRequest(election_type=rng.randrange(2)), h.now))
    elif kind == 8 and brokers:
        b = rng.choice(brokers)
        h.apply(h.c.allocate_producer_ids(AllocateProducerIdsRequest(
            b, img.cluster.brokers[b].epoch), h.now))
    elif kind == 9 and topics:
        h.apply(h.c.incremental_alter_configs(IncrementalAlterConfigsRequest((
            IncrementalAlterConfigsResource(2, rng.choice(topics), (ConfigOperation(
                "unclean.leader.election.enable", rng.choice([0, 1]),
                rng.choice(["true", "false"])),)),)), h.now))
    elif kind == 10 and brokers and rng.random() < 0.3:
        h.apply(h.c.unregister_broker(UnregisterBrokerRequest(rng.choice(brokers)), h.now))
    elif kind == 11 and topics and brokers:
        topic = img.topics.by_name[rng.choice(topics)]
        pid = rng.choice(sorted(topic.partitions))
        target = None if rng.random() < 0.3 else tuple(
            rng.sample(brokers, rng.randint(1, min(3, len(brokers)))))
        h.apply(h.c.alter_partition_reassignments(AlterPartitionReassignmentsRequest(
            (ReassignableTopic(topic.name, (ReassignablePartition(pid, target),)),)), h.now))
    else:
        h.apply(h.c.tick(h.now))
