"""KIP-858 in the controller: log directories in registrations, heartbeats and partitions."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from kraft.controller import ElectLeadersRequest, TopicPartitions
from kraft.controller.directories import (
    AssignedDirectory,
    AssignReplicasToDirsRequest,
    default_dir,
)
from kraft.delta import MetadataDelta
from kraft.directories import DIR_LOST, DIR_MIGRATING, DIR_UNASSIGNED, is_dir_online
from kraft.image import NO_LEADER, MetadataImage
from kraft.metadata_records import MetadataRecordType as T
from kraft.metadata_records import PartitionChangeRecord
from storage.error_codes import ErrorCode as E
from tests.unit.test_controller_helpers import (
    Harness,
    alter_request,
    check_invariants,
    hb_request,
    reg_request,
)


def d(broker_id: int, n: int) -> uuid.UUID:
    """Directory ``n`` of ``broker_id`` (a non-reserved id)."""
    return uuid.UUID(int=(broker_id << 64) + 1000 + n)


def register(h: Harness, broker_id: int, dirs: list[uuid.UUID], gen: int = 0) -> Any:
    req = dataclasses.replace(reg_request(broker_id, gen), log_dirs=tuple(dirs))
    return h.apply(h.c.register_broker(req, h.now))


def heartbeat(h: Harness, broker_id: int, offline: list[uuid.UUID] | None = None) -> Any:
    epoch = h.image.cluster.brokers[broker_id].epoch
    req = dataclasses.replace(hb_request(broker_id, epoch, h.offset),
                              offline_log_dirs=tuple(offline or ()))
    return h.apply(h.c.broker_heartbeat(req, h.now))


def assign(h: Harness, broker_id: int, dir_id: uuid.UUID,
           partitions: list[tuple[uuid.UUID, int]], epoch: int | None = None) -> Any:
    if epoch is None:
        epoch = h.image.cluster.brokers[broker_id].epoch
    req = AssignReplicasToDirsRequest(broker_id, epoch,
                                      (AssignedDirectory(dir_id, tuple(partitions)),))
    return h.apply(h.c.assign_replicas_to_dirs(req, h.now))


def cluster(dirs_per_broker: int = 2) -> Harness:
    h = Harness()
    for b in (1, 2, 3):
        assert register(h, b, [d(b, n) for n in range(dirs_per_broker)]).error_code == 0
        heartbeat(h, b)
    assert all(not r.fenced for r in h.image.cluster.brokers.values())
    return h


def last_records(h: Harness) -> list[tuple[int, Any]]:
    return h.log[-1][0]


def snapshot_round_trip(image: MetadataImage) -> MetadataImage:
    delta = MetadataDelta(MetadataImage())
    delta.replay_all(image.records())
    return delta.apply()


# ------------------------------------------------------------------------------ registration


def test_registration_records_the_log_dirs_sorted_and_a_snapshot_keeps_them() -> None:
    h = Harness()
    register(h, 1, [d(1, 2), d(1, 0), d(1, 1)])
    reg = h.image.cluster.brokers[1]
    assert reg.directories == (d(1, 0), d(1, 1), d(1, 2))
    assert snapshot_round_trip(h.image).cluster.brokers[1].directories == reg.directories


def test_registration_refuses_reserved_duplicate_and_foreign_dirs() -> None:
    h = Harness()
    assert register(h, 1, [d(1, 0)]).error_code == 0
    assert register(h, 2, [DIR_UNASSIGNED]).error_code == E.INVALID_REGISTRATION
    assert register(h, 2, [d(2, 0), d(2, 0)]).error_code == E.INVALID_REGISTRATION
    assert register(h, 2, [d(2, 0), d(1, 0)]).error_code == E.INVALID_REGISTRATION
    assert 2 not in h.image.cluster.brokers
    assert register(h, 2, [d(2, 0)]).error_code == 0


def test_is_dir_online_follows_kafka_rules() -> None:
    online = [d(1, 0)]
    assert is_dir_online(d(1, 0), online)
    assert not is_dir_online(d(1, 1), online)
    assert is_dir_online(DIR_UNASSIGNED, online) and is_dir_online(DIR_MIGRATING, online)
    assert not is_dir_online(DIR_LOST, online)
    assert is_dir_online(d(1, 1), [])  # a broker that registered no dirs


# ------------------------------------------------------------------------------ partitions


def test_new_partitions_get_the_only_dir_or_unassigned() -> None:
    h = cluster(dirs_per_broker=1)
    h.create("one", 2, 3)
    for p in h.image.topics.by_name["one"].partitions.values():
        assert p.directories == tuple(d(r, 0) for r in p.replicas)
    h2 = cluster(dirs_per_broker=2)
    h2.create("two", 1, 3)
    assert h2.image.topics.by_name["two"].partitions[0].directories == (DIR_UNASSIGNED,) * 3
    assert default_dir(h2.image, 99) == DIR_UNASSIGNED
    assert snapshot_round_trip(h.image).topics.by_name["one"].partitions[0].directories == (
        h.image.topics.by_name["one"].partitions[0].directories)


def test_assign_replicas_to_dirs_sets_the_replica_directory() -> None:
    h = cluster()
    h.create("t", 2, 3)
    topic = h.image.topics.by_name["t"]
    reply = assign(h, 2, d(2, 1), [(topic.topic_id, 0), (topic.topic_id, 1)])
    assert reply.error_code == E.NONE
    assert [r.error_code for r in reply.results] == [E.NONE, E.NONE]
    for pid in (0, 1):
        p = h.image.topics.by_name["t"].partitions[pid]
        assert p.directory(2) == d(2, 1)
        assert p.directory(1) == DIR_UNASSIGNED
    # Saying it again changes nothing.
    before = h.offset
    assign(h, 2, d(2, 1), [(topic.topic_id, 0)])
    assert h.offset == before
    # Errors per partition, and for the broker.
    unknown = uuid.UUID(int=12345)
    reply = assign(h, 2, d(2, 1), [(unknown, 0), (topic.topic_id, 7)])
    assert [r.error_code for r in reply.results] == [E.UNKNOWN_TOPIC_ID,
                                                     E.UNKNOWN_TOPIC_OR_PARTITION]
    assert assign(h, 2, d(2, 1), [], epoch=12345).error_code == E.STALE_BROKER_EPOCH


def test_a_replica_leaving_keeps_the_others_directories() -> None:
    h = cluster()
    h.create("t", 1, 3)
    topic = h.image.topics.by_name["t"]
    for b in (1, 2, 3):
        assign(h, b, d(b, 0), [(topic.topic_id, 0)])
    p = h.image.topics.by_name["t"].partitions[0]
    keep = [r for r in p.replicas if r != 3]
    merged = p.merge(PartitionChangeRecord(partition_id=0, topic_id=topic.topic_id,
                                           replicas=keep + [4]))
    assert merged.directories == (*(d(r, 0) for r in keep), DIR_UNASSIGNED)


# ------------------------------------------------------------------------------ offline dirs


def _place_all_on(h: Harness, broker_id: int, dir_id: uuid.UUID, topic: str) -> None:
    t = h.image.topics.by_name[topic]
    assign(h, broker_id, dir_id, [(t.topic_id, pid) for pid in t.partitions])


def test_heartbeat_with_an_offline_dir_moves_leadership_and_isr_away() -> None:
    h = cluster()
    h.create("bad", 3, 3)
    h.create("good", 3, 3)
    _place_all_on(h, 1, d(1, 0), "bad")
    _place_all_on(h, 1, d(1, 1), "good")
    led_by_1 = [pid for pid, p in h.image.topics.by_name["bad"].partitions.items()
                if p.leader == 1]
    assert led_by_1, "the placement gives broker 1 at least one leadership"
    good_before = dict(h.image.topics.by_name["good"].partitions)

    reply = heartbeat(h, 1, offline=[d(1, 0)])
    assert reply.error_code == E.NONE and not reply.is_fenced
    for p in h.image.topics.by_name["bad"].partitions.values():
        assert 1 not in p.isr and p.leader not in (1, NO_LEADER)
        assert p.leader in p.isr
    # The other dir's partitions did not change at all.
    assert dict(h.image.topics.by_name["good"].partitions) == good_before
    reg = h.image.cluster.brokers[1]
    assert reg.directories == (d(1, 1),) and not reg.fenced
    types = [t for t, _ in last_records(h)]
    assert types[-1] == T.BROKER_REGISTRATION_CHANGE_RECORD
    check_invariants(h.image)

    # Said again: nothing new.
    before = h.offset
    heartbeat(h, 1, offline=[d(1, 0)])
    assert h.offset == before
    # Broker 1's replica there can no longer lead, even as the preferred replica.
    pid = led_by_1[0]
    result = h.apply(h.c.elect_leaders(ElectLeadersRequest(
        0, (TopicPartitions("bad", (pid,)),)), h.now))
    assert h.image.topics.by_name["bad"].partitions[pid].leader != 1, result


def test_the_last_isr_member_on_an_offline_dir_leaves_the_partition_leaderless() -> None:
    h = cluster()
    h.create("solo", -1, -1, assignments={"solo": [[1]]})
    _place_all_on(h, 1, d(1, 0), "solo")
    heartbeat(h, 1, offline=[d(1, 0)])
    p = h.image.topics.by_name["solo"].partitions[0]
    assert p.leader == NO_LEADER and p.isr == (1,)  # never an empty ISR
    check_invariants(h.image)


def test_every_dir_offline_fences_the_broker_and_placement_avoids_it() -> None:
    h = cluster()
    h.create("t", 2, 3)
    reply = heartbeat(h, 3, offline=[d(3, 0), d(3, 1)])
    assert reply.is_fenced
    assert h.image.cluster.brokers[3].fenced
    for p in h.image.topics.by_name["t"].partitions.values():
        assert 3 not in p.isr and p.leader != 3
    # It stays fenced while it keeps reporting them offline.
    assert heartbeat(h, 3, offline=[d(3, 0), d(3, 1)]).is_fenced
    h.create("new", 4, 2)
    for p in h.image.topics.by_name["new"].partitions.values():
        assert 3 not in p.replicas
    check_invariants(h.image)


def test_a_new_topic_avoids_nothing_while_a_broker_still_has_an_online_dir() -> None:
    h = cluster()
    heartbeat(h, 3, offline=[d(3, 0)])
    h.create("new", 3, 3)
    for p in h.image.topics.by_name["new"].partitions.values():
        assert sorted(p.replicas) == [1, 2, 3]
        # Broker 3 has a single online dir left: the new replicas go there.
        assert p.directory(3) == d(3, 1)


def test_a_replica_whose_dir_failed_at_start_up_is_not_elected_on_unfence() -> None:
    h = cluster()
    h.create("lost", -1, -1, assignments={"lost": [[2]]})
    h.create("kept", -1, -1, assignments={"kept": [[2]]})
    _place_all_on(h, 2, d(2, 0), "lost")
    _place_all_on(h, 2, d(2, 1), "kept")
    # Broker 2 stops: both partitions go leaderless, keeping their last ISR member.
    heartbeat_req = dataclasses.replace(
        hb_request(2, h.image.cluster.brokers[2].epoch, h.offset), want_fence=True)
    h.apply(h.c.broker_heartbeat(heartbeat_req, h.now))
    assert h.image.topics.by_name["lost"].partitions[0].leader == NO_LEADER
    # It comes back (a new incarnation) with dir 0 failed at start-up: only dir 1 registered.
    assert register(h, 2, [d(2, 1)], gen=1).error_code == 0
    assert not heartbeat(h, 2).is_fenced
    kept = h.image.topics.by_name["kept"].partitions[0]
    lost = h.image.topics.by_name["lost"].partitions[0]
    assert kept.leader == 2
    # Electing it would serve an empty log in place of the committed data.
    assert lost.leader == NO_LEADER and lost.isr == (2,)
    check_invariants(h.image)


def test_registering_again_without_a_dir_takes_its_replicas_out_of_the_isr() -> None:
    h = cluster()
    h.create("t", 3, 3)
    _place_all_on(h, 2, d(2, 0), "t")
    before = dict(h.image.topics.by_name["t"].partitions)
    # The same incarnation registers again, without dir 0 (Kafka keeps the epoch).
    assert register(h, 2, [d(2, 1)]).error_code == 0
    for pid, p in h.image.topics.by_name["t"].partitions.items():
        assert 2 not in p.isr and p.leader != 2
        if before[pid].leader != 2:
            assert p.leader == before[pid].leader
    check_invariants(h.image)


def test_alter_partition_cannot_put_a_replica_on_an_offline_dir_back_in_the_isr() -> None:
    """A leader that saw a fetch sent before the dir failed must not re-add that replica:
    it would never fetch again and hold every acks=all produce."""
    h = cluster()
    h.create("t", -1, -1, assignments={"t": [[2, 1, 3]]})
    topic = h.image.topics.by_name["t"]
    _place_all_on(h, 1, d(1, 0), "t")
    heartbeat(h, 1, offline=[d(1, 0)])
    p = h.image.topics.by_name["t"].partitions[0]
    assert p.leader == 2 and p.isr == (2, 3)
    epoch = h.image.cluster.brokers[2].epoch
    reply = h.apply(h.c.alter_partition(alter_request(
        2, epoch, topic, 0, p.leader_epoch, p.partition_epoch, [2, 3, 1]), h.now))
    assert reply.topics[0].partitions[0].error_code == E.INELIGIBLE_REPLICA
    assert h.image.topics.by_name["t"].partitions[0].isr == (2, 3)
    # Shrinking (or keeping) the ISR is still accepted.
    reply = h.apply(h.c.alter_partition(alter_request(
        2, epoch, topic, 0, p.leader_epoch, p.partition_epoch, [2]), h.now))
    assert reply.topics[0].partitions[0].error_code == E.NONE
