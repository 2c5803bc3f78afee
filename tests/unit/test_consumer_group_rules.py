"""The consumer group protocol of KIP-848, pure: the uniform and range assignors, a member's
reconciliation (a partition goes to its new owner only after the old one revoked it), the
heartbeat's errors and epochs, timeouts, offset commits with member epochs, and the records
of ``__consumer_offsets`` read back into the same group; the group.consumer.* keys."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import pytest

from broker.config import KafkaConfig
from broker.groups.assignors import (
    AssignmentSpec,
    MemberSpec,
    assignor_name,
    range_assign,
    uniform_assign,
)
from broker.groups.consumer_coordinator import ConsumerGroupConfig, HeartbeatRequest
from broker.groups.consumer_group import ConsumerGroupState, MemberState
from broker.groups.consumer_records import ConsumerGroupLoader, drain_records, mark_unwritten
from broker.groups.coordinator import GroupCoordinator
from broker.groups.group import CoordinatorConfig
from broker.protocol.errors import ErrorCode
from storage.errors import ConfigError

T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)


@dataclass
class Topic:
    topic_id: uuid.UUID
    partitions: dict[int, None] = field(default_factory=dict)


def topics(**counts: int) -> dict[str, Topic]:
    ids = {"a": T1, "b": T2}
    return {n: Topic(ids.get(n, uuid.uuid5(uuid.NAMESPACE_DNS, n)), dict.fromkeys(range(c)))
            for n, c in counts.items()}


def coordinator(**kw: object) -> GroupCoordinator:
    return GroupCoordinator(CoordinatorConfig(initial_rebalance_delay_ms=0),
                            consumer_config=ConsumerGroupConfig(**kw))  # type: ignore[arg-type]


def flat(a: dict[uuid.UUID, set[int]] | None) -> set[tuple[uuid.UUID, int]]:
    return {(t, p) for t, ps in (a or {}).items() for p in ps}


# -- assignors --------------------------------------------------------------------------------


def test_uniform_balances_and_keeps_what_it_can() -> None:
    spec = AssignmentSpec({m: MemberSpec(frozenset({T1}), {}) for m in "xyz"}, {T1: ("a", 8)})
    first = uniform_assign(spec)
    counts = sorted(len(first[m].get(T1, ())) for m in "xyz")
    assert counts == [2, 3, 3]
    assert set().union(*(first[m][T1] for m in "xyz")) == set(range(8))
    # A fourth member: the others give up only what balance requires.
    spec2 = AssignmentSpec(
        {**{m: MemberSpec(frozenset({T1}), first[m]) for m in "xyz"},
         "w": MemberSpec(frozenset({T1}), {})}, {T1: ("a", 8)})
    second = uniform_assign(spec2)
    assert sorted(len(second[m].get(T1, ())) for m in "wxyz") == [2, 2, 2, 2]
    for m in "xyz":
        assert second[m][T1] <= first[m][T1]


def test_uniform_heterogeneous_subscriptions() -> None:
    spec = AssignmentSpec({"x": MemberSpec(frozenset({T1, T2}), {}),
                           "y": MemberSpec(frozenset({T2}), {})},
                          {T1: ("a", 3), T2: ("b", 3)})
    out = uniform_assign(spec)
    assert out["y"].get(T1) is None
    assert out["x"][T1] == {0, 1, 2}
    assert len(out["y"][T2]) >= 2
    assert out["x"].get(T2, set()) | out["y"][T2] == {0, 1, 2}


def test_range_gives_contiguous_ranges_by_member_id() -> None:
    spec = AssignmentSpec({m: MemberSpec(frozenset({T1, T2}), {}) for m in ("m2", "m1")},
                          {T1: ("a", 5), T2: ("b", 5)})
    out = range_assign(spec)
    assert out["m1"] == {T1: {0, 1, 2}, T2: {0, 1, 2}}
    assert out["m2"] == {T1: {3, 4}, T2: {3, 4}}


# -- the heartbeat and reconciliation ---------------------------------------------------------


class Client:
    """A member that does what the coordinator tells it, as librdkafka does."""

    def __init__(self, coord: GroupCoordinator, mid: str, subs: tuple[str, ...] = ("a",),
                 assignor: str | None = None) -> None:
        self.coord, self.mid, self.subs, self.assignor = coord, mid, subs, assignor
        self.epoch = 0
        self.owned: dict[uuid.UUID, set[int]] = {}

    def beat(self, tps: dict[str, Topic], now: int = 0, group: str = "g") -> ErrorCode:
        joining = self.epoch == 0
        r = self.coord.consumer_heartbeat(HeartbeatRequest(
            group, self.mid, self.epoch, rebalance_timeout_ms=30000 if joining else -1,
            subscribed_topic_names=self.subs if joining else None,
            server_assignor=self.assignor if joining else None,
            owned={t: set(p) for t, p in self.owned.items()}), tps, now)
        if r.error:
            return r.error
        self.epoch = r.member_epoch
        if r.assignment is not None:
            self.owned = {t: set(p) for t, p in r.assignment.items()}
        return ErrorCode.NONE


def test_two_members_split_and_no_partition_is_owned_twice() -> None:
    coord = coordinator()
    tps = topics(a=6)
    rng = random.Random(7)
    clients = [Client(coord, "m1"), Client(coord, "m2"), Client(coord, "m3")]
    active = [clients[0]]
    for step in range(120):
        if step == 5:
            active.append(clients[1])
        if step == 30:
            active.append(clients[2])
        c = rng.choice(active)
        assert c.beat(tps, step) == ErrorCode.NONE
        owned = [flat(x.owned) for x in active]
        assert sum(len(o) for o in owned) == len(set().union(*owned)), "owned twice"
    g = coord.consumer_groups["g"]
    assert g.state == ConsumerGroupState.STABLE
    assert sorted(len(flat(c.owned)) for c in clients) == [2, 2, 2]
    assert all(c.epoch == g.group_epoch == g.assignment_epoch for c in clients)


def test_a_partition_waits_until_its_owner_revoked_it() -> None:
    coord = coordinator()
    tps = topics(a=2)
    one, two = Client(coord, "m1"), Client(coord, "m2")
    one.beat(tps)
    assert flat(one.owned) == {(T1, 0), (T1, 1)}
    two.beat(tps)  # the target gives it one partition, still owned by m1
    g = coord.consumer_groups["g"]
    assert two.owned == {} and g.members["m2"].state == MemberState.UNRELEASED_PARTITIONS
    one.beat(tps)  # told to revoke: it keeps only its share
    assert len(flat(one.owned)) == 1
    assert g.members["m1"].state == MemberState.UNREVOKED_PARTITIONS
    two.beat(tps)  # m1 has not reported the revocation yet
    assert two.owned == {}
    one.beat(tps)  # reports it: released
    two.beat(tps)
    assert len(flat(two.owned)) == 1 and flat(one.owned).isdisjoint(flat(two.owned))


def test_leave_session_timeout_and_revocation_timeout() -> None:
    coord = coordinator(session_timeout_ms=1000)
    tps = topics(a=4)
    one, two = Client(coord, "m1"), Client(coord, "m2")
    one.beat(tps)
    two.beat(tps)
    one.beat(tps)
    r = coord.consumer_heartbeat(HeartbeatRequest("g", "m2", -1), tps, 10)
    assert (r.error, r.member_epoch) == (ErrorCode.NONE, -1)
    one.beat(tps, 20)
    one.beat(tps, 30)
    assert len(flat(one.owned)) == 4
    # Its session runs out.
    assert coord.consumer_tick(2000) == [("g", "m1", "session timeout")]
    assert coord.consumer_groups["g"].state == ConsumerGroupState.EMPTY
    # A member that never revokes is fenced after its rebalance timeout.
    coord = coordinator()
    a, b = Client(coord, "a"), Client(coord, "b")
    a.beat(tps)
    b.beat(tps)
    r = coord.consumer_heartbeat(HeartbeatRequest("g", "a", a.epoch, owned=None), tps, 100)
    assert coord.consumer_groups["g"].members["a"].revocation_deadline_ms == 30100
    assert ("g", "a", "partitions not revoked in time") in coord.consumer_tick(30200)


def test_new_partitions_are_a_new_group_epoch() -> None:
    coord = coordinator()
    c = Client(coord, "m1")
    c.beat(topics(a=2))
    epoch = coord.consumer_groups["g"].group_epoch
    c.beat(topics(a=3))
    assert coord.consumer_groups["g"].group_epoch == epoch + 1
    assert flat(c.owned) == {(T1, 0), (T1, 1), (T1, 2)}


def test_heartbeat_errors() -> None:
    coord = coordinator(max_size=2)
    tps = topics(a=2)
    c = Client(coord, "m1")
    c.beat(tps)

    def hb(**kw: object) -> ErrorCode:
        base: dict[str, object] = {"group_id": "g", "member_id": "m1", "member_epoch": c.epoch}
        base.update(kw)
        return coord.consumer_heartbeat(HeartbeatRequest(**base), tps, 0).error  # type: ignore[arg-type]

    assert hb(member_epoch=c.epoch + 1) == ErrorCode.FENCED_MEMBER_EPOCH
    assert hb(member_id="nobody") == ErrorCode.UNKNOWN_MEMBER_ID
    assert hb(server_assignor="sticky") == ErrorCode.UNSUPPORTED_ASSIGNOR
    assert hb(member_epoch=0, owned={}) == ErrorCode.INVALID_REQUEST  # no rebalance timeout
    assert hb(group_id="other", member_epoch=3) == ErrorCode.UNKNOWN_MEMBER_ID
    assert hb(subscribed_topic_regex="(") == ErrorCode.INVALID_REGULAR_EXPRESSION
    Client(coord, "m2").beat(tps)
    assert hb(member_id="m3", member_epoch=0, rebalance_timeout_ms=1, owned={},
              subscribed_topic_names=("a",)) == ErrorCode.GROUP_MAX_SIZE_REACHED
    # A classic group with members is not a consumer group, and the other way round.
    results = []
    coord.join_group("classic", "", None, "c", "/h", 10000, 10000, "consumer",
                     [("range", b"")], False, 0, results.append)
    coord.tick(1)
    assert coord.groups["classic"].members
    assert hb(group_id="classic", member_epoch=0, rebalance_timeout_ms=1, owned={},
              subscribed_topic_names=("a",)) == ErrorCode.GROUP_ID_NOT_FOUND
    coord.join_group("g", "", None, "c", "/h", 10000, 10000, "consumer", [("range", b"")],
                     False, 0, results.append)
    assert results[-1].error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_offset_commit_with_member_epochs() -> None:
    coord = coordinator()
    c = Client(coord, "m1")
    c.beat(topics(a=2))
    v = coord.validate_offset_commit
    assert v("g", "m1", None, c.epoch, 0, 9) == ErrorCode.NONE
    assert v("g", "m1", None, c.epoch - 1, 0, 9) == ErrorCode.STALE_MEMBER_EPOCH
    assert v("g", "zz", None, c.epoch, 0, 9) == ErrorCode.UNKNOWN_MEMBER_ID
    assert v("g", "m1", None, c.epoch, 0, 8) == ErrorCode.UNSUPPORTED_VERSION
    assert coord.validate_consumer_fetch("g", "m1", c.epoch) == ErrorCode.NONE
    assert coord.validate_consumer_fetch("g", "m1", 99) == ErrorCode.STALE_MEMBER_EPOCH
    assert coord.validate_consumer_fetch("g", None, -1) == ErrorCode.NONE


def test_records_bring_back_the_same_group() -> None:
    coord = coordinator()
    tps = topics(a=4, b=2)
    one, two = Client(coord, "m1", ("a", "b"), "range"), Client(coord, "m2", ("a",))
    loader = ConsumerGroupLoader()
    g = coord.consumer_groups.get
    for c in (one, two, one, two, one):
        c.beat(tps)
        for k, val in drain_records(g("g")):  # type: ignore[arg-type]
            loader.replay(k, val)
    coord.consumer_heartbeat(HeartbeatRequest("g", "m2", -1), tps, 0)
    for k, val in drain_records(g("g")):  # type: ignore[arg-type]
        loader.replay(k, val)
    back = loader.build(0, 45000)["g"]
    live = g("g")
    assert live is not None
    assert (back.group_epoch, back.assignment_epoch) == (live.group_epoch, live.assignment_epoch)
    assert back.subscription_metadata == live.subscription_metadata
    assert set(back.members) == {"m1"}
    m, lm = back.members["m1"], live.members["m1"]
    assert (m.member_epoch, m.state, m.assigned, m.subscribed_topic_names, m.server_assignor) \
        == (lm.member_epoch, lm.state, lm.assigned, lm.subscribed_topic_names, lm.server_assignor)
    assert back.target["m1"] == live.target["m1"] and back.owners == live.owners


def test_static_member_leaves_for_a_while_and_comes_back_without_a_rebalance() -> None:
    coord = coordinator()
    tps = topics(a=4)

    def join(mid: str, inst: str) -> object:
        return coord.consumer_heartbeat(HeartbeatRequest(
            "g", mid, 0, instance_id=inst, rebalance_timeout_ms=30000,
            subscribed_topic_names=("a",), owned={}), tps, 0)

    one, two = Client(coord, "m1"), Client(coord, "s1")
    one.beat(tps)
    r = join("s1", "i1")
    two.epoch, two.owned = r.member_epoch, dict(r.assignment)  # type: ignore[attr-defined]
    for _ in range(3):
        one.beat(tps)
        two.beat(tps)
    g = coord.consumer_groups["g"]
    epoch, kept = g.group_epoch, flat(two.owned)
    assert len(kept) == 2
    r = coord.consumer_heartbeat(HeartbeatRequest("g", "s1", -2, instance_id="i1"), tps, 0)
    assert r.member_epoch == -2 and g.members["s1"].member_epoch == -2
    # Another member may not take the instance id while it is held ...
    assert join("s3", "i2").error == ErrorCode.NONE  # type: ignore[attr-defined]
    assert join("s4", "i2").error == ErrorCode.UNRELEASED_INSTANCE_ID  # type: ignore[attr-defined]
    coord.consumer_heartbeat(HeartbeatRequest("g", "s3", -1, instance_id="i2"), tps, 0)
    epoch = g.group_epoch
    # ... and the static member comes back under a new member id, to the same partitions.
    r = join("s2", "i1")
    assert r.error == ErrorCode.NONE and flat(r.assignment) == kept  # type: ignore[attr-defined]
    assert g.group_epoch == epoch and "s1" not in g.members
    assert {g.owners[tp] for tp in kept} == {"s2"}


def test_a_failed_write_is_covered_by_the_next_one() -> None:
    coord = coordinator()
    tps = topics(a=4)
    one, two = Client(coord, "m1"), Client(coord, "m2")
    g = coord.consumer_groups.get
    loader = ConsumerGroupLoader()
    one.beat(tps)
    two.beat(tps)
    for k, val in drain_records(g("g")):  # type: ignore[arg-type]
        loader.replay(k, val)
    one.beat(tps)
    coord.consumer_heartbeat(HeartbeatRequest("g", "m2", -1), tps, 0)
    lost = drain_records(g("g"))  # type: ignore[arg-type]
    mark_unwritten(g("g"), lost)  # type: ignore[arg-type]
    one.beat(tps)
    for k, val in drain_records(g("g")):  # type: ignore[arg-type]
        loader.replay(k, val)
    back, live = loader.build(0, 45000)["g"], g("g")
    assert live is not None and set(back.members) == {"m1"}
    assert (back.group_epoch, back.members["m1"].assigned, back.members["m1"].member_epoch) \
        == (live.group_epoch, live.members["m1"].assigned, live.members["m1"].member_epoch)


def test_the_group_consumer_keys() -> None:
    base = {"node.id": "1", "process.roles": "broker,controller",
            "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": "1@127.0.0.1:9093"}
    cfg = KafkaConfig.from_properties(base)
    assert (cfg.get("group.consumer.heartbeat.interval.ms"),
            cfg.get("group.consumer.session.timeout.ms"),
            cfg.get("group.consumer.assignors")) == (5000, 45000, ["uniform", "range"])
    kafka_names = ("org.apache.kafka.coordinator.group.assignor.RangeAssignor,"
                   "org.apache.kafka.coordinator.group.assignor.UniformAssignor")
    cfg = KafkaConfig.from_properties({**base, "group.consumer.assignors": kafka_names})
    assert [assignor_name(a) for a in cfg.get("group.consumer.assignors")] == ["range",
                                                                               "uniform"]
    for key, value in (("group.consumer.assignors", "sticky"),
                       ("group.consumer.heartbeat.interval.ms", "100"),
                       ("group.consumer.session.timeout.ms", "90000")):
        with pytest.raises(ConfigError) as info:
            KafkaConfig.from_properties({**base, key: value})
        assert info.value.key == key


def test_member_ids_v0_from_the_coordinator_v1_from_the_client() -> None:
    coord = coordinator()
    tps = topics(a=1)
    def join(version: int) -> HeartbeatRequest:
        return HeartbeatRequest("g", "", 0, rebalance_timeout_ms=1000, owned={},
                                subscribed_topic_names=("a",), version=version)

    v1 = coord.consumer_heartbeat(join(1), tps, 0)
    assert v1.error == ErrorCode.INVALID_REQUEST
    v0 = coord.consumer_heartbeat(join(0), tps, 0)
    assert v0.error == ErrorCode.NONE and v0.member_id is not None
    assert uuid.UUID(v0.member_id) and v0.member_id in coord.consumer_groups["g"].members
    assert v0.member_epoch == 1 and flat(v0.assignment) == {(T1, 0)}
