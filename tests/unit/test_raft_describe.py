"""Leader-side replica tracking for DescribeQuorum (``RaftNode.describe_quorum``), with Kafka's
``lastCaughtUpTimestamp`` rule: caught up at a fetch that reaches the leader's log end, or, as of
the previous fetch, at one that reaches the leader's log end as of that previous fetch."""

from __future__ import annotations

import random

import pytest

from kraft.log import MemoryRaftLog
from kraft.messages import (
    FetchRequest,
    QuorumDescription,
    ReplicaDescription,
    VoteRequest,
    VoteResponse,
)
from kraft.quorum_state import ElectionState
from kraft.raft import OBSERVER_SESSION_TIMEOUT_MS, NotLeader, RaftNode


def make_leader() -> RaftNode:
    """Node 1 leads epoch 1 of {1, 2, 3}; its log is the LeaderChange at offset 0."""
    node = RaftNode(
        1,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        election_timeout_ms=50,
        fetch_timeout_ms=10_000_000,
        log=MemoryRaftLog(),
        election_state=ElectionState(0),
    )
    t = 0
    while not node.is_leader():
        t += 10
        node.tick(t)
        r = node.poll()
        for _, m in r.messages_to_send:
            if isinstance(m, VoteRequest):
                node.step(VoteResponse(2, node.epoch, m.candidate_epoch, True, m.pre_vote), t)
        node.advance(r, t)
        assert t < 1000
    node.advance(node.poll(), t)
    assert node.epoch == 1 and node.log.end_offset == 1
    return node


def fetch(node: RaftNode, sender: int, offset: int, now_ms: int) -> None:
    node.step(FetchRequest(sender, node.epoch, offset, 1 if offset else 0), now_ms)
    node.advance(node.poll(), now_ms)


def row(d: QuorumDescription, rid: int) -> ReplicaDescription:
    [r] = [r for r in d.voters + d.observers if r.replica_id == rid]
    return r


def test_describe_quorum_not_leader() -> None:
    node = RaftNode(
        2,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        log=MemoryRaftLog(),
        election_state=ElectionState(3, None, 1),
    )
    with pytest.raises(NotLeader) as info:
        node.describe_quorum(0)
    assert (info.value.epoch, info.value.leader_id) == (3, 1)


def test_describe_quorum_voters_and_caught_up_times() -> None:
    node = make_leader()
    d = node.describe_quorum(50)
    assert (d.leader_id, d.leader_epoch, d.high_watermark) == (1, 1, 0)
    assert d.voters == (
        ReplicaDescription(1, 1, 50, 50),
        ReplicaDescription(2),
        ReplicaDescription(3),
    )
    assert d.observers == ()

    fetch(node, 2, 0, 100)  # behind the leader's end (1)
    assert row(node.describe_quorum(100), 2) == ReplicaDescription(2, 0, 100, -1)
    fetch(node, 2, 1, 200)  # at the leader's end: caught up now
    assert row(node.describe_quorum(200), 2) == ReplicaDescription(2, 1, 200, 200)
    node.append([b"a", b"b", b"c"])  # leader's end: 4
    fetch(node, 2, 1, 300)  # reached the end as of its previous fetch (1): caught up then
    assert row(node.describe_quorum(300), 2) == ReplicaDescription(2, 1, 300, 200)
    fetch(node, 2, 4, 400)
    assert row(node.describe_quorum(400), 2) == ReplicaDescription(2, 4, 400, 400)
    node.append([b"d", b"e"])  # end 6
    fetch(node, 2, 5, 500)  # >= 4, the end at its fetch at 400
    assert row(node.describe_quorum(500), 2) == ReplicaDescription(2, 5, 500, 400)
    node.append([b"f", b"g", b"h"])  # end 9
    fetch(node, 2, 5, 600)  # < 6, the end at its fetch at 500: not caught up
    assert row(node.describe_quorum(600), 2) == ReplicaDescription(2, 5, 600, 400)
    fetch(node, 2, 6, 700)  # not >= 9 (the end at 600): still not
    assert row(node.describe_quorum(700), 2) == ReplicaDescription(2, 6, 700, 400)
    fetch(node, 2, 9, 800)
    d = node.describe_quorum(800)
    assert row(d, 2) == ReplicaDescription(2, 9, 800, 800)
    assert row(d, 1) == ReplicaDescription(1, 9, 800, 800)
    assert row(d, 3) == ReplicaDescription(3)
    assert d.high_watermark == 9  # 1 and 2 of 3 voters hold offsets 0-8


def test_describe_quorum_observers_tracked_and_forgotten() -> None:
    node = make_leader()
    fetch(node, 7, 0, 100)
    fetch(node, 5, 1, 150)
    d = node.describe_quorum(200)
    assert d.observers == (
        ReplicaDescription(5, 1, 150, 150),
        ReplicaDescription(7, 0, 100, -1),
    )
    assert [v.replica_id for v in d.voters] == [1, 2, 3]
    assert d.high_watermark == 0  # observers never count
    later = 100 + OBSERVER_SESSION_TIMEOUT_MS
    fetch(node, 5, 1, later - 1)
    d = node.describe_quorum(later)
    assert [o.replica_id for o in d.observers] == [5]  # 7 was idle for the session timeout
    node.tick(later + OBSERVER_SESSION_TIMEOUT_MS)  # the leader forgets idle ones on its own
    assert node.describe_quorum(later + OBSERVER_SESSION_TIMEOUT_MS).observers == ()


def test_describe_quorum_ignores_stale_epoch_fetches() -> None:
    node = make_leader()
    node.step(FetchRequest(2, 0, 0, 0), 100)  # fenced: not a valid fetch
    node.advance(node.poll(), 100)
    assert row(node.describe_quorum(100), 2) == ReplicaDescription(2)
