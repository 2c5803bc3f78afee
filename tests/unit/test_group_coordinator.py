"""The classic group protocol state machine (broker/groups/coordinator.py), driven by hand with
explicit times: joins, leader election, protocol selection, sync, heartbeats, session and
rebalance timeouts, the initial delay, static membership, offset commit rules, retention,
loading, and a seeded random walk checking invariants after every step."""

from __future__ import annotations

import random
from typing import Any

import pytest

from broker.groups.coordinator import GroupCoordinator
from broker.groups.group import (
    CommittedOffset,
    CoordinatorConfig,
    GroupState,
    JoinResult,
    SyncResult,
)
from broker.groups.records import GroupMetadataRecord, MemberRecord
from broker.protocol.errors import ErrorCode

SESSION = 10_000
REBALANCE = 20_000
PROTOCOLS = [("range", b"r"), ("roundrobin", b"rr")]


class Box:
    """Collects what a parked call is eventually answered with."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    def __call__(self, result: Any) -> None:
        self.results.append(result)

    @property
    def one(self) -> Any:
        assert len(self.results) == 1, self.results
        return self.results[0]

    @property
    def done(self) -> bool:
        return bool(self.results)


def make(delay_ms: int = 0, **kw: Any) -> tuple[GroupCoordinator, list[Any]]:
    stored: list[Any] = []

    def store(gid: str, rec: GroupMetadataRecord, done: Any) -> None:
        stored.append(rec)
        done(ErrorCode.NONE)

    cfg = CoordinatorConfig(min_session_timeout_ms=1000, initial_rebalance_delay_ms=delay_ms,
                            **kw)
    return GroupCoordinator(cfg, store=store), stored


def join(gc: GroupCoordinator, member_id: str = "", now: int = 0, *, group: str = "g",
         instance: str | None = None, protocols: list[tuple[str, bytes]] | None = None,
         require_known: bool = False, session: int = SESSION,
         rebalance: int = REBALANCE) -> Box:
    box = Box()
    gc.join_group(group, member_id, instance, "client", "/127.0.0.1", session, rebalance,
                  "consumer", protocols or PROTOCOLS, require_known, now, box)
    return box


def sync(gc: GroupCoordinator, member_id: str, generation: int, now: int = 0,
         assignments: dict[str, bytes] | None = None, instance: str | None = None) -> Box:
    box = Box()
    gc.sync_group("g", generation, member_id, instance, None, None, assignments or {}, now,
                  box)
    return box


def stable_pair(gc: GroupCoordinator) -> tuple[str, str, int]:
    """Two members in a Stable group; returns (leader, follower, generation)."""
    a = join(gc)
    a_id = a.one.member_id
    gen1 = a.one.generation_id
    sync(gc, a_id, gen1, assignments={a_id: b"all"})
    b = join(gc, now=1)  # a new member: rebalance; a must rejoin
    assert not b.done
    a2 = join(gc, a_id, now=2)
    r_a, r_b = a2.one, b.one
    assert r_a.generation_id == r_b.generation_id == gen1 + 1
    b_id = r_b.member_id
    assert r_a.leader_id == a_id == r_b.leader_id
    sa = sync(gc, a_id, r_a.generation_id, 3, {a_id: b"A", b_id: b"B"})
    sb = sync(gc, b_id, r_b.generation_id, 3)
    assert sa.one == SyncResult(ErrorCode.NONE, b"A", "consumer", "range")
    assert sb.one.assignment == b"B"
    assert gc.groups["g"].state is GroupState.STABLE
    return a_id, b_id, r_a.generation_id


def test_first_member_becomes_leader_and_gets_member_metadata() -> None:
    gc, stored = make()
    r = join(gc).one
    assert r.error == ErrorCode.NONE and r.generation_id == 1
    assert r.leader_id == r.member_id and r.protocol_name == "range"
    assert r.members == ((r.member_id, None, b"r"),)
    assert gc.groups["g"].state is GroupState.COMPLETING_REBALANCE
    s = sync(gc, r.member_id, 1, assignments={r.member_id: b"x"}).one
    assert s.assignment == b"x" and gc.groups["g"].state is GroupState.STABLE
    assert stored[-1].generation == 1 and stored[-1].members[0].assignment == b"x"


def test_member_id_required_then_join() -> None:
    gc, _ = make()
    first = join(gc, require_known=True).one
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED and first.member_id
    assert gc.groups["g"].pending_members
    r = join(gc, first.member_id, require_known=True).one
    assert r.error == ErrorCode.NONE and r.member_id == first.member_id


def test_pending_member_expires() -> None:
    gc, _ = make()
    first = join(gc, require_known=True, session=5000).one
    gc.tick(6000)
    assert not gc.groups["g"].pending_members
    assert join(gc, first.member_id).one.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_followers_get_no_member_list_and_protocol_votes() -> None:
    gc, _ = make()
    a_id, b_id, _gen = stable_pair(gc)
    # Both prefer range: c prefers roundrobin but supports range; the majority wins.
    c = join(gc, now=10, protocols=[("roundrobin", b"x"), ("range", b"y")])
    ra = join(gc, a_id, now=11)
    rb = join(gc, b_id, now=11)
    assert {x.one.protocol_name for x in (ra, rb, c)} == {"range"}
    assert ra.one.members and not rb.one.members and not c.one.members
    assert {m: meta for m, _, meta in ra.one.members}[c.one.member_id] == b"y"


def test_inconsistent_protocols_and_bad_session_timeout() -> None:
    gc, _ = make()
    stable_pair(gc)
    assert join(gc, protocols=[("sticky", b"")]).one.error == \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(gc, session=10).one.error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert join(gc, group="").one.error == ErrorCode.INVALID_GROUP_ID
    assert join(gc, "nobody", group="fresh").one.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_sync_and_heartbeat_errors() -> None:
    gc, _ = make()
    a_id, b_id, gen = stable_pair(gc)
    assert sync(gc, a_id, gen - 1).one.error == ErrorCode.ILLEGAL_GENERATION
    assert sync(gc, "ghost", gen).one.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert gc.heartbeat("g", a_id, None, gen, 5) == ErrorCode.NONE
    assert gc.heartbeat("g", a_id, None, gen + 1, 5) == ErrorCode.ILLEGAL_GENERATION
    assert gc.heartbeat("g", "ghost", None, gen, 5) == ErrorCode.UNKNOWN_MEMBER_ID
    assert gc.heartbeat("nope", a_id, None, gen, 5) == ErrorCode.UNKNOWN_MEMBER_ID
    # A third member starts a rebalance: heartbeats say so, syncs too.
    c = join(gc, now=6)
    assert not c.done
    assert gc.heartbeat("g", b_id, None, gen, 7) == ErrorCode.REBALANCE_IN_PROGRESS
    assert sync(gc, b_id, gen, 7).one.error == ErrorCode.REBALANCE_IN_PROGRESS


def test_leave_rebalances_the_rest() -> None:
    gc, _ = make()
    a_id, b_id, gen = stable_pair(gc)
    err, results = gc.leave_group("g", [(b_id, None)], 10)
    assert err == ErrorCode.NONE and results == [(b_id, None, ErrorCode.NONE)]
    assert gc.groups["g"].state is GroupState.PREPARING_REBALANCE
    r = join(gc, a_id, now=11).one
    assert r.generation_id == gen + 1 and [m for m, _, _ in r.members] == [a_id]
    _, again = gc.leave_group("g", [(b_id, None)], 12)
    assert again == [(b_id, None, ErrorCode.UNKNOWN_MEMBER_ID)]


def test_leader_leaving_hands_leadership_over() -> None:
    gc, _ = make()
    a_id, b_id, _gen = stable_pair(gc)
    gc.leave_group("g", [(a_id, None)], 10)
    r = join(gc, b_id, now=11).one
    assert r.leader_id == b_id and r.members


def test_session_timeout_removes_a_silent_member() -> None:
    gc, stored = make()
    a_id, b_id, gen = stable_pair(gc)
    for t in range(1000, SESSION + 3, 1000):
        assert gc.heartbeat("g", a_id, None, gen, t) == ErrorCode.NONE
        gc.tick(t)
    expired = gc.tick(SESSION + 5)
    assert expired == [("g", b_id)]
    group = gc.groups["g"]
    assert b_id not in group.members and group.state is GroupState.PREPARING_REBALANCE
    r = join(gc, a_id, now=SESSION + 6).one
    assert r.generation_id == gen + 1
    # The last member goes too: the group is Empty, and that is stored.
    gc.tick(SESSION + 6 + 2 * SESSION)
    assert group.state is GroupState.EMPTY and not group.members
    assert stored[-1].members == () and stored[-1].protocol is None


def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    """max.poll.interval.ms: a member busy processing (still heartbeating) that does not
    rejoin within the rebalance timeout is removed when the join phase completes."""
    gc, _ = make()
    a_id, b_id, gen = stable_pair(gc)
    c = join(gc, now=100)
    ra = join(gc, a_id, now=200)
    assert not c.done and not ra.done
    t = 200
    while t + 1000 < 100 + REBALANCE:
        t += 1000
        gc.heartbeat("g", b_id, None, gen, t)  # b heartbeats but never rejoins
        gc.tick(t)
        assert not ra.done
    gc.tick(100 + REBALANCE)
    assert ra.one.generation_id == gen + 1
    assert b_id not in gc.groups["g"].members
    assert {m for m, _, _ in ra.one.members} == {a_id, c.one.member_id}


def test_initial_rebalance_delay_waits_for_more_members() -> None:
    gc, _ = make(delay_ms=3000)
    a = join(gc, now=0)
    b = join(gc, now=1000)
    gc.tick(2999)
    assert not a.done and not b.done
    gc.tick(3000)  # b joined during the first delay: one more delay
    assert not a.done
    gc.tick(6000)
    assert a.one.generation_id == b.one.generation_id == 1
    assert len(a.one.members) + len(b.one.members) == 2


def test_initial_delay_is_bounded_by_the_rebalance_timeout() -> None:
    gc, _ = make(delay_ms=3000)
    a = join(gc, now=0, rebalance=5000)
    t = 0
    while not a.done:
        t += 1000
        assert t <= 9000
        join(gc, now=t, rebalance=5000)
        gc.tick(t)
    assert a.one.generation_id == 1


def test_static_member_rejoins_without_rebalance() -> None:
    gc, stored = make()
    a = join(gc, instance="i-a")
    a_id = a.one.member_id
    b = join(gc, instance="i-b", now=1)
    join(gc, a_id, now=2, instance="i-a")
    gen = b.one.generation_id
    b_id = b.one.member_id
    sync(gc, a_id, gen, 3, {a_id: b"A", b_id: b"B"}, instance="i-a")
    sync(gc, b_id, gen, 3, instance="i-b")
    assert gc.groups["g"].state is GroupState.STABLE
    # b restarts: a new join with its instance id and no member id.
    again = join(gc, now=10, instance="i-b").one
    assert again.error == ErrorCode.NONE and again.generation_id == gen
    assert again.member_id != b_id and again.leader_id == a_id and not again.members
    assert gc.groups["g"].state is GroupState.STABLE
    assert sync(gc, again.member_id, gen, 11, instance="i-b").one.assignment == b"B"
    assert stored[-1].generation == gen
    # The old incarnation is fenced.
    assert gc.heartbeat("g", b_id, "i-b", gen, 12) == ErrorCode.FENCED_INSTANCE_ID
    assert gc.heartbeat("g", again.member_id, "i-b", gen, 12) == ErrorCode.NONE
    # LeaveGroup by instance id only (v3+ batched form).
    _, res = gc.leave_group("g", [("", "i-b")], 13)
    assert res == [("", "i-b", ErrorCode.NONE)]
    assert gc.groups["g"].state is GroupState.PREPARING_REBALANCE


def test_static_leader_rejoin_keeps_old_leader_id() -> None:
    gc, _ = make()
    a = join(gc, instance="i-a").one
    sync(gc, a.member_id, a.generation_id, 1, {a.member_id: b"A"}, instance="i-a")
    again = join(gc, now=5, instance="i-a").one
    # The new incarnation is the leader now, but is told the old id: no reassignment.
    assert again.leader_id == a.member_id and again.member_id != a.member_id
    assert gc.groups["g"].leader_id == again.member_id
    assert sync(gc, again.member_id, a.generation_id, 6, instance="i-a").one.assignment == b"A"


def test_store_failure_on_sync_restarts_the_rebalance() -> None:
    fail = {"on": False}

    def store(gid: str, rec: GroupMetadataRecord, done: Any) -> None:
        done(ErrorCode.COORDINATOR_NOT_AVAILABLE if fail["on"] else ErrorCode.NONE)

    gc = GroupCoordinator(CoordinatorConfig(min_session_timeout_ms=1000,
                                            initial_rebalance_delay_ms=0), store=store)
    r = join(gc).one
    fail["on"] = True
    s = sync(gc, r.member_id, r.generation_id, 1, {r.member_id: b"x"})
    assert s.one.error == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert gc.groups["g"].state is GroupState.PREPARING_REBALANCE


def test_a_failed_store_is_never_retried_by_the_coordinator_itself() -> None:
    """Every write follows a client request (or a timeout): a failed one is answered and the
    group waits for its members, whatever the store answers and however late."""
    pending: list[Any] = []
    stored: list[GroupMetadataRecord] = []

    def store(gid: str, rec: GroupMetadataRecord, done: Any) -> None:
        stored.append(rec)
        pending.append(done)

    def settle() -> None:  # each write fails, later (the metadata manager answers async)
        while pending:
            pending.pop(0)(ErrorCode.COORDINATOR_NOT_AVAILABLE)

    gc = GroupCoordinator(CoordinatorConfig(min_session_timeout_ms=1000,
                                            initial_rebalance_delay_ms=0), store=store)
    # SyncGroup of a one-member group: one write, then the member must rejoin.
    r = join(gc, instance="i-a").one
    s = sync(gc, r.member_id, r.generation_id, 1, {r.member_id: b"x"}, instance="i-a")
    settle()
    assert len(stored) == 1 and s.one.error == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert gc.groups["g"].state is GroupState.PREPARING_REBALANCE
    for now in range(2, SESSION - 500, 500):
        gc.tick(now)
        settle()
    assert len(stored) == 1
    # It rejoins and syncs again: one more write per SyncGroup, no more.
    r = join(gc, r.member_id, SESSION, instance="i-a").one
    sync(gc, r.member_id, r.generation_id, SESSION, {r.member_id: b"x"}, instance="i-a")
    settle()
    assert len(stored) == 2
    # The member never comes back: its session ends, the group is Empty, written once.
    for now in range(SESSION, 3 * SESSION + REBALANCE, 500):
        gc.tick(now)
        settle()
    assert len(stored) == 3 and stored[-1].members == ()
    assert gc.groups["g"].state is GroupState.EMPTY
    # A static member's replacement in a Stable group: one write, undone when it fails.
    gc2 = GroupCoordinator(CoordinatorConfig(min_session_timeout_ms=1000,
                                             initial_rebalance_delay_ms=0))
    a = join(gc2, instance="i-a").one
    sync(gc2, a.member_id, a.generation_id, 1, {a.member_id: b"A"}, instance="i-a")
    gc2.store = store
    again = join(gc2, now=5, instance="i-a")
    settle()
    assert len(stored) == 4 and again.one.error == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert list(gc2.groups["g"].members) == [a.member_id]
    for now in range(6, SESSION, 500):
        gc2.tick(now)
        settle()
    assert len(stored) == 4


def test_offset_commit_rules() -> None:
    gc, _ = make()
    # Outside group management (generation -1): allowed, creates an Empty group.
    assert gc.validate_offset_commit("simple", "", None, -1, 0) == ErrorCode.NONE
    assert gc.groups["simple"].state is GroupState.EMPTY
    assert gc.validate_offset_commit("other", "m", None, 3, 0) == ErrorCode.ILLEGAL_GENERATION
    a_id, b_id, gen = stable_pair(gc)
    assert gc.validate_offset_commit("g", a_id, None, gen, 5) == ErrorCode.NONE
    assert gc.validate_offset_commit("g", a_id, None, gen - 1, 5) == \
        ErrorCode.ILLEGAL_GENERATION
    assert gc.validate_offset_commit("g", "x", None, gen, 5) == ErrorCode.UNKNOWN_MEMBER_ID
    assert gc.validate_offset_commit("g", "", None, -1, 5) == ErrorCode.UNKNOWN_MEMBER_ID
    join(gc, now=6)  # PreparingRebalance: commits of the current generation still go
    assert gc.validate_offset_commit("g", a_id, None, gen, 7) == ErrorCode.NONE
    join(gc, a_id, now=8)
    join(gc, b_id, now=8)
    assert gc.groups["g"].state is GroupState.COMPLETING_REBALANCE
    assert gc.validate_offset_commit("g", a_id, None, gen + 1, 9) == \
        ErrorCode.REBALANCE_IN_PROGRESS
    gc.apply_offsets("g", {("t", 0): CommittedOffset(5, -1, "m", 9)})
    assert gc.fetch_offsets("g", [("t", 0), ("t", 1)]) == {
        ("t", 0): CommittedOffset(5, -1, "m", 9), ("t", 1): None}
    assert gc.fetch_offsets("unknown", None) == {}


def test_offset_retention_and_delete_checks() -> None:
    gc, _ = make(offsets_retention_ms=1000)
    a = join(gc).one
    sync(gc, a.member_id, a.generation_id, 0, {a.member_id: b""})
    gc.apply_offsets("g", {("t", 0): CommittedOffset(1, -1, "", 0)})
    assert gc.delete_check("g") == ErrorCode.NON_EMPTY_GROUP
    assert gc.expired_offsets(10_000) == {}  # active groups keep their offsets
    gc.leave_group("g", [(a.member_id, None)], 100)
    assert gc.groups["g"].state is GroupState.EMPTY
    assert gc.expired_offsets(1000) == {}
    assert gc.expired_offsets(1100) == {"g": [("t", 0)]}
    assert gc.delete_check("g") == ErrorCode.NONE
    assert gc.delete_check("nope") == ErrorCode.GROUP_ID_NOT_FOUND
    # Without group management: by commit time.
    gc.validate_offset_commit("s", "", None, -1, 0)
    gc.apply_offsets("s", {("t", 0): CommittedOffset(1, -1, "", 0),
                           ("t", 1): CommittedOffset(1, -1, "", 900)})
    assert gc.expired_offsets(1500)["s"] == [("t", 0)]


def test_a_stable_group_expires_offsets_of_topics_it_no_longer_subscribes_to() -> None:
    from broker.groups.records import ConsumerSubscription, encode_consumer_subscription
    gc, _ = make()
    sub = encode_consumer_subscription(ConsumerSubscription(("t1",)))
    a = join(gc, protocols=[("range", sub)]).one
    sync(gc, a.member_id, a.generation_id, 0)
    assert gc.groups["g"].state is GroupState.STABLE
    gc.apply_offsets("g", {("t1", 0): CommittedOffset(1, -1, "", 0),
                           ("t2", 0): CommittedOffset(1, -1, "", 0),
                           ("t2", 1): CommittedOffset(1, -1, "", 500)})
    retention = gc.config.offsets_retention_ms
    assert gc.expired_offsets(retention - 1) == {}
    # By commit time, and only for topics no member subscribes to.
    assert gc.expired_offsets(retention) == {"g": [("t2", 0)]}
    assert gc.expired_offsets(retention + 500) == {"g": [("t2", 0), ("t2", 1)]}


def test_offset_delete_respects_subscriptions() -> None:
    from broker.groups.records import ConsumerSubscription, encode_consumer_subscription
    gc, _ = make()
    sub = encode_consumer_subscription(ConsumerSubscription(("t1",)))
    a = join(gc, protocols=[("range", sub)]).one
    sync(gc, a.member_id, a.generation_id, 0)
    assert gc.offset_delete_check("g", {"t1", "t2"}) == (ErrorCode.NONE, {"t1"})
    assert gc.offset_delete_check("x", {"t1"})[0] == ErrorCode.GROUP_ID_NOT_FOUND


def test_load_restores_a_stable_group_with_its_members() -> None:
    gc, _ = make()
    rec = GroupMetadataRecord("g", "consumer", 4, "range", "m1", 50, (
        MemberRecord("m1", None, "c", "/h", 20000, SESSION, b"sub", b"asg"),
        MemberRecord("m2", "i2", "c", "/h", 20000, SESSION, b"sub2", b"asg2")))
    gc.load({"g": rec}, {"g": {("t", 0): CommittedOffset(3, 1, "x", 7)}}, 1000)
    g = gc.groups["g"]
    assert g.state is GroupState.STABLE and g.generation_id == 4 and g.leader_id == "m1"
    assert g.static_members == {"i2": "m2"}
    assert gc.heartbeat("g", "m2", "i2", 4, 1001) == ErrorCode.NONE
    assert sync(gc, "m2", 4, 1001, instance="i2").one.assignment == b"asg2"
    assert gc.fetch_offsets("g", None) == {("t", 0): CommittedOffset(3, 1, "x", 7)}
    # An empty group record loads as Empty with its generation.
    gc.load({"e": GroupMetadataRecord("e", "consumer", 9, None, None, 5, ())}, {}, 1000)
    assert gc.groups["e"].state is GroupState.EMPTY and gc.groups["e"].generation_id == 9


def test_remove_group_answers_parked_calls() -> None:
    gc, _ = make()
    _a_id, _, _gen = stable_pair(gc)
    parked = join(gc, now=5)
    assert not parked.done
    gc.remove_group("g", ErrorCode.NOT_COORDINATOR)
    assert parked.one.error == ErrorCode.NOT_COORDINATOR
    assert "g" not in gc.groups


@pytest.mark.parametrize("seed", range(40))
def test_random_walk_keeps_invariants(seed: int) -> None:
    """Random joins, syncs, heartbeats, leaves and time; after every step: Empty iff no
    members, the leader is a member, generations never go back, a parked join is answered at
    most once, and a Stable group's members all hold the latest generation's assignment."""
    rng = random.Random(seed)
    gc, _ = make(delay_ms=rng.choice([0, 500]))
    now = 0
    known: dict[str, int] = {}  # member id -> generation it last learned
    instances = ["s1", "s2", None, None]
    boxes: list[Box] = []
    last_gen = 0

    def on_join(box: Box) -> None:
        for r in box.results:
            if isinstance(r, JoinResult) and r.error == ErrorCode.NONE:
                known[r.member_id] = r.generation_id

    for _ in range(300):
        now += rng.choice([1, 10, 100, 1000, 4000])
        op = rng.random()
        members = list(known)
        if op < 0.25:
            box = join(gc, "", now, instance=rng.choice(instances),
                       require_known=rng.random() < 0.3, session=3000, rebalance=3000)
            boxes.append(box)
            if box.done and box.one.error == ErrorCode.MEMBER_ID_REQUIRED:
                boxes.append(join(gc, box.one.member_id, now, session=3000, rebalance=3000))
        elif op < 0.45 and members:
            boxes.append(join(gc, rng.choice(members), now, session=3000, rebalance=3000))
        elif op < 0.6 and members:
            m = rng.choice(members)
            g = gc.groups.get("g")
            assignments = {x: x.encode() for x in g.members} if g else {}
            sync(gc, m, known[m], now, assignments)
        elif op < 0.85 and members:
            m = rng.choice(members)
            gc.heartbeat("g", m, None, known[m], now)
        elif op < 0.9 and members:
            gc.leave_group("g", [(rng.choice(members), None)], now)
        gc.tick(now)
        for b in boxes:
            assert len(b.results) <= 1
            on_join(b)
        g = gc.groups.get("g")
        if g is None:
            continue
        assert (g.state is GroupState.EMPTY) == (not g.members) or \
            g.state is GroupState.PREPARING_REBALANCE
        if g.members:
            assert g.leader_id in g.members
        assert g.generation_id >= last_gen
        last_gen = g.generation_id
        if g.state is GroupState.STABLE:
            for mid, m in g.members.items():
                assert m.assignment in (mid.encode(), b"") or m.group_instance_id


def test_a_member_waiting_in_sync_group_is_kept_alive_until_the_leader_assigns() -> None:
    # Some clients (kafka-python) stop heartbeating while they wait for their SyncGroup answer;
    # Kafka keeps such a member (MemberMetadata.shouldKeepAlive) and so do we. Its session
    # starts again when the assignment arrives.
    gc, _ = make()
    a = join(gc)
    a_id = a.one.member_id
    sync(gc, a_id, a.one.generation_id, assignments={a_id: b"all"})
    b = join(gc, now=1)
    a2 = join(gc, a_id, now=2)
    b_id, gen = b.one.member_id, b.one.generation_id
    sb = sync(gc, b_id, gen, now=3)  # the follower waits for the leader's assignment
    assert not sb.done
    # The leader heartbeats meanwhile (computing the assignment); the follower does not.
    assert gc.heartbeat("g", a_id, None, gen, 3 + SESSION - 1) == ErrorCode.NONE
    gc.tick(3 + SESSION + 1)
    assert b_id in gc.groups["g"].members, "the waiting follower was expired"
    later = 3 + SESSION + 2
    sa = sync(gc, a_id, gen, later, {a_id: b"A", b_id: b"B"})
    assert sa.one.error == ErrorCode.NONE and sb.one.assignment == b"B"
    gc.tick(later + SESSION - 1)
    assert b_id in gc.groups["g"].members  # a fresh session from the assignment
    gc.tick(later + SESSION + 1)
    assert b_id not in gc.groups["g"].members  # and it does end
    assert a2.done
