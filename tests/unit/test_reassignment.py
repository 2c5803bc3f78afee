"""Partition reassignment and auto leader rebalance in the controller (pure): the records of
AlterPartitionReassignments, completion by AlterPartition, cancellation, the error codes, and
the per-broker imbalance rule of the rebalance."""

from __future__ import annotations

from typing import Any

from kraft.controller import (
    AlterPartitionReassignmentsRequest,
    ControllerConfig,
    ElectLeadersRequest,
    ListPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
    TopicPartitions,
)
from kraft.controller.partition_change import maybe_complete
from kraft.controller.reassignment import reassignment_replicas, revert_replicas
from kraft.controller.replication_control import rebalance_leaders
from kraft.image import PartitionRegistration
from storage.error_codes import ErrorCode as E
from tests.unit.test_controller_helpers import Harness, alter_request, check_invariants


def _harness(*brokers: int, config: ControllerConfig | None = None) -> Harness:
    h = Harness(config)
    h.brokers(*brokers)
    return h


def _topic(h: Harness, name: str, assignment: list[list[int]], **kw: Any) -> Any:
    created = h.create(name, -1, -1, assignments={name: assignment}, **kw)
    assert created.error_code == E.NONE, created
    return h.image.topics.by_name[name]


def _part(h: Harness, name: str = "t", pid: int = 0) -> PartitionRegistration:
    return h.image.topics.by_name[name].partitions[pid]


def _reassign(h: Harness, moves: dict[tuple[str, int], list[int] | None],
              allow_rf_change: bool = True) -> dict[tuple[str, int], tuple[int, str | None]]:
    by_topic: dict[str, list[ReassignablePartition]] = {}
    for (t, p), replicas in moves.items():
        by_topic.setdefault(t, []).append(
            ReassignablePartition(p, None if replicas is None else tuple(replicas)))
    req = AlterPartitionReassignmentsRequest(
        tuple(ReassignableTopic(t, tuple(ps)) for t, ps in by_topic.items()),
        allow_replication_factor_change=allow_rf_change)
    reply = h.apply(h.c.alter_partition_reassignments(req, h.now))
    assert reply.error_code == E.NONE
    check_invariants(h.image)
    _check_reassignment_invariants(h)
    return {(t.name, p.partition_index): (p.error_code, p.error_message)
            for t in reply.results for p in t.partitions}


def _listed(h: Harness, topics: tuple[TopicPartitions, ...] | None = None
            ) -> dict[tuple[str, int], tuple[tuple[int, ...], ...]]:
    reply = h.apply(h.c.list_partition_reassignments(
        ListPartitionReassignmentsRequest(topics), h.now))
    return {(t.name, p.partition_index): (p.replicas, p.adding_replicas, p.removing_replicas)
            for t in reply.topics for p in t.partitions}


def _check_reassignment_invariants(h: Harness) -> None:
    for t in h.image.topics.by_id.values():
        for p in t.partitions.values():
            assert set(p.adding_replicas) <= set(p.replicas)
            assert set(p.removing_replicas) <= set(p.replicas)
            assert not set(p.adding_replicas) & set(p.removing_replicas)


def _expand(h: Harness, name: str, pid: int, isr: list[int]) -> Any:
    """The leader's AlterPartition proposing ``isr``; returns the partition's result."""
    topic = h.image.topics.by_name[name]
    p = topic.partitions[pid]
    epoch = h.image.cluster.brokers[p.leader].epoch
    reply = h.apply(h.c.alter_partition(alter_request(
        p.leader, epoch, topic, pid, p.leader_epoch, p.partition_epoch, isr), h.now))
    check_invariants(h.image)
    _check_reassignment_invariants(h)
    return reply.topics[0].partitions[0]


def test_replicas_of_a_reassignment_are_target_then_removed() -> None:
    assert reassignment_replicas((1, 2), (2, 3)) == ([2, 3, 1], [3], [1])
    assert reassignment_replicas((1, 2, 3), (6, 5, 4)) == ([6, 5, 4, 1, 2, 3], [4, 5, 6],
                                                           [1, 2, 3])
    assert reassignment_replicas((1, 2), (2, 1)) == ([2, 1], [], [])


def test_move_completes_when_the_new_replica_joins_the_isr() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2]])
    before = _part(h)
    assert _reassign(h, {("t", 0): [2, 3]}) == {("t", 0): (E.NONE, None)}
    p = _part(h)
    # Stage 1: target then removed replicas, the leader and its epoch unchanged.
    assert p.replicas == (2, 3, 1) and p.adding_replicas == (3,) and p.removing_replicas == (1,)
    assert p.isr == (1, 2) and p.leader == 1 and p.leader_epoch == before.leader_epoch
    assert _listed(h) == {("t", 0): ((2, 3, 1), (3,), (1,))}
    assert _listed(h, (TopicPartitions("t", (0, 7)), TopicPartitions("nope", (0,)))) == {
        ("t", 0): ((2, 3, 1), (3,), (1,))}
    # An ISR change that leaves the new replica out does not complete it.
    assert _expand(h, "t", 0, [1]).error_code == E.NONE
    assert _part(h).removing_replicas == (1,)
    assert _expand(h, "t", 0, [1, 2]).error_code == E.NONE
    # The new replica caught up: replicas = target, ISR without the removed leader, a
    # target replica leads at a new epoch; the old leader hears so.
    result = _expand(h, "t", 0, [1, 2, 3])
    assert result.error_code == E.NEW_LEADER_ELECTED
    p = _part(h)
    assert p.replicas == (2, 3) and p.isr == (2, 3) and p.leader == 2
    assert p.adding_replicas == () and p.removing_replicas == ()
    assert p.leader_epoch == before.leader_epoch + 1
    assert _listed(h) == {}


def test_cancel_reverts_to_the_original_replicas() -> None:
    h = _harness(1, 2, 3, 4)
    _topic(h, "t", [[1, 2]])
    assert _reassign(h, {("t", 0): [3, 4]})[("t", 0)][0] == E.NONE
    assert _part(h).replicas == (3, 4, 1, 2)
    assert _expand(h, "t", 0, [1, 2, 3]).error_code == E.NONE  # 3 in, 4 not yet
    assert _reassign(h, {("t", 0): None})[("t", 0)][0] == E.NONE
    p = _part(h)
    assert set(p.replicas) == {1, 2} and p.isr == (1, 2) and p.leader == 1
    assert p.adding_replicas == () and p.removing_replicas == ()
    assert _listed(h) == {}
    code, message = _reassign(h, {("t", 0): None})[("t", 0)]
    assert code == E.NO_REASSIGNMENT_IN_PROGRESS and message


def test_cancel_needing_an_unclean_election_is_refused_unless_the_topic_allows_it() -> None:
    part = PartitionRegistration(replicas=(3, 1), isr=(3,), leader=3, leader_epoch=4,
                                 partition_epoch=9, adding_replicas=(3,),
                                 removing_replicas=(1,))
    assert revert_replicas(part) == ([1], [1], True)
    h = _harness(1, 2, 3, 4)
    _topic(h, "t", [[1, 2]])
    _reassign(h, {("t", 0): [3, 4]})
    _expand(h, "t", 0, [1, 2, 3])  # 4 not yet: still in flight
    h.heartbeat(1, want_fence=True)
    h.heartbeat(2, want_fence=True)
    p = _part(h)
    assert p.isr == (3,) and p.leader == 3 and p.adding_replicas == (3, 4)
    code, message = _reassign(h, {("t", 0): None})[("t", 0)]
    assert code == E.INVALID_REPLICA_ASSIGNMENT and "unclean" in (message or "")
    assert _part(h) == p


def test_a_target_already_in_the_isr_completes_at_once() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2, 3]])
    epoch = _part(h).leader_epoch
    _reassign(h, {("t", 0): [2, 1, 3]})  # reordering: no leader change, no epoch bump
    p = _part(h)
    assert p.replicas == (2, 1, 3) and p.leader == 1 and p.leader_epoch == epoch
    _reassign(h, {("t", 0): [2, 3]})  # shrinking: 1 leaves, 2 leads at a new epoch
    p = _part(h)
    assert p.replicas == (2, 3) and p.isr == (2, 3) and p.leader == 2
    assert p.leader_epoch == epoch + 1 and not p.adding_replicas and not p.removing_replicas
    _reassign(h, {("t", 0): [2, 3]})  # the same replicas: nothing to write
    assert _part(h) == p


def test_removed_replica_bumps_the_leader_epoch_even_when_the_leader_stays() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2, 3]])
    epoch = _part(h).leader_epoch
    _reassign(h, {("t", 0): [1, 2]})
    p = _part(h)
    assert p.replicas == (1, 2) and p.leader == 1 and p.leader_epoch == epoch + 1


def test_errors_per_partition() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2], [2, 3]])
    results = _reassign(h, {("t", 0): [], ("t", 1): [2, 2], ("t", 5): [1],
                            ("u", 0): [1]})
    assert results[("t", 0)][0] == E.INVALID_REPLICA_ASSIGNMENT
    assert results[("t", 1)][0] == E.INVALID_REPLICA_ASSIGNMENT
    assert results[("t", 5)][0] == E.UNKNOWN_TOPIC_OR_PARTITION
    assert results[("u", 0)][0] == E.UNKNOWN_TOPIC_OR_PARTITION
    assert _reassign(h, {("t", 0): [1, 9]})[("t", 0)][0] == E.INVALID_REPLICA_ASSIGNMENT
    assert _listed(h) == {}
    # One bad partition does not stop the others.
    results = _reassign(h, {("t", 0): [1, 3], ("t", 1): [7]})
    assert results == {("t", 0): (E.NONE, None), ("t", 1): results[("t", 1)]}
    assert results[("t", 1)][0] == E.INVALID_REPLICA_ASSIGNMENT
    assert set(_listed(h)) == {("t", 0)}


def test_replication_factor_change_refused_when_not_allowed() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2]])
    code, message = _reassign(h, {("t", 0): [1, 2, 3]}, allow_rf_change=False)[("t", 0)]
    assert code == E.INVALID_REPLICATION_FACTOR and "2 to 3" in (message or "")
    assert _reassign(h, {("t", 0): [2, 3]}, allow_rf_change=False)[("t", 0)][0] == E.NONE
    assert _part(h).adding_replicas == (3,)
    # A target that is the replicas in flight adds nothing (Kafka computes from them).
    assert _reassign(h, {("t", 0): [1, 2, 3]})[("t", 0)][0] == E.NONE
    assert _part(h).replicas == (1, 2, 3) and _part(h).adding_replicas == ()


def test_completion_needs_the_whole_target_in_the_isr_and_a_leader() -> None:
    def yes(r: int) -> bool:
        return True

    assert maybe_complete([2, 3, 1], [3], [1], [1, 2, 3], yes) == ([2, 3], [2, 3])
    assert maybe_complete([2, 3, 1], [3], [1], [1, 3], yes) is None  # 2 out of the ISR
    assert maybe_complete([2, 3, 1], [3], [1], [1, 2], yes) is None
    assert maybe_complete([2, 1], [], [1], [1], yes) is None  # ISR would be empty
    assert maybe_complete([2, 3, 1], [3], [1], [1, 2, 3], lambda r: r == 1) is None
    assert maybe_complete([1, 2], [], [], [1, 2], yes) is None  # nothing in flight


def test_fencing_a_removed_replica_keeps_the_reassignment_going() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2]])
    _reassign(h, {("t", 0): [2, 3]})
    h.heartbeat(1, want_fence=True)
    p = _part(h)
    assert p.leader == 2 and p.isr == (2,) and p.removing_replicas == (1,)
    check_invariants(h.image)
    _expand(h, "t", 0, [2, 3])
    p = _part(h)
    assert p.replicas == (2, 3) and p.isr == (2, 3) and p.leader == 2
    assert not p.adding_replicas and not p.removing_replicas


def test_a_new_target_replaces_the_one_in_flight() -> None:
    h = _harness(1, 2, 3, 4)
    _topic(h, "t", [[1, 2]])
    _reassign(h, {("t", 0): [2, 3]})
    _reassign(h, {("t", 0): [2, 4]})
    p = _part(h)
    # The replica being added (3) is now one to remove.
    assert p.replicas == (2, 4, 1, 3) and p.adding_replicas == (4,)
    assert p.removing_replicas == (1, 3)
    _expand(h, "t", 0, [1, 2, 4])
    p = _part(h)
    assert p.replicas == (2, 4) and p.isr == (2, 4)


# ------------------------------------------------------------------ auto leader rebalance


def _led_elsewhere(h: Harness, name: str, pids: list[int], leader: int) -> None:
    """Make ``leader`` (an ISR member) lead the given partitions, by a preferred election
    after reordering the replicas, and then put the replicas back."""
    for pid in pids:
        p = _part(h, name, pid)
        order = [leader, *[r for r in p.replicas if r != leader]]
        _reassign(h, {(name, pid): order})
        h.apply(h.c.elect_leaders(
            ElectLeadersRequest(0, (TopicPartitions(name, (pid,)),)), h.now))
        _reassign(h, {(name, pid): list(p.replicas)})
        assert _part(h, name, pid).leader == leader


def test_rebalance_only_past_the_imbalance_percentage_and_in_batches() -> None:
    h = _harness(1, 2)
    _topic(h, "t", [[1, 2]] * 20)
    _led_elsewhere(h, "t", [0], 2)
    # 1 of the 20 partitions broker 1 prefers is led elsewhere: 5% <= 10%.
    assert rebalance_leaders(h.image, 10) == ([], False)
    _led_elsewhere(h, "t", [1, 2], 2)  # 3 of 20: 15%
    records, more = rebalance_leaders(h.image, 10, max_elections=2)
    assert len(records) == 2 and more
    records, more = rebalance_leaders(h.image, 10)
    assert len(records) == 3 and not more
    assert rebalance_leaders(h.image, 20) == ([], False)


def test_tick_rebalances_at_the_interval_and_again_at_once_when_batches_remain() -> None:
    h = _harness(1, 2, config=ControllerConfig(leader_imbalance_check_interval_ms=1000))
    _topic(h, "t", [[1, 2]] * 4)
    _led_elsewhere(h, "t", [0, 1, 2], 2)
    h.apply(h.c.tick(500))
    assert [_part(h, "t", i).leader for i in range(4)] == [2, 2, 2, 1]
    h.apply(h.c.tick(1000))
    assert [_part(h, "t", i).leader for i in range(4)] == [1, 1, 1, 1]
    check_invariants(h.image)


def test_the_same_partition_twice_in_one_request_sees_the_first() -> None:
    h = _harness(1, 2, 3)
    _topic(h, "t", [[1, 2]])
    req = AlterPartitionReassignmentsRequest((ReassignableTopic("t", (
        ReassignablePartition(0, (2, 3)), ReassignablePartition(0, None))),))
    reply = h.apply(h.c.alter_partition_reassignments(req, h.now))
    assert [p.error_code for p in reply.results[0].partitions] == [E.NONE, E.NONE]
    p = _part(h)
    assert set(p.replicas) == {1, 2} and not p.adding_replicas and not p.removing_replicas
