"""Targeted scenarios for the sans-IO Raft core (``kraft.raft``), driven by a tiny synchronous
network: each ``flush`` persists every node's Ready, then delivers its messages, until quiet."""

from __future__ import annotations

import random

import pytest

from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import Message, VoteRequest, VoteResponse
from kraft.quorum_state import (
    Candidate,
    ElectionState,
    Follower,
    Leader,
    Prospective,
    Resigned,
    StateKind,
    Unattached,
    check_transition,
)
from kraft.raft import NotLeader, RaftNode


def entries(*epochs: int) -> list[LogEntry]:
    return [LogEntry(i, ep, f"e{i}-{ep}".encode()) for i, ep in enumerate(epochs)]


class Net:
    def __init__(
        self,
        voters: set[int],
        observers: set[int] = frozenset(),  # type: ignore[assignment]
        *,
        logs: dict[int, list[LogEntry]] | None = None,
        epoch: int = 0,
        timeouts: dict[int, int] | None = None,
        max_fetch_entries: int = 64,
    ) -> None:
        self.now = 0
        self.isolated: set[int] = set()
        self.blocked: set[tuple[int, int]] = set()  # one-way (src, dest) links that drop
        self.nodes: dict[int, RaftNode] = {}
        self.disk_election: dict[int, ElectionState] = {}
        self.truncations: dict[int, list[int]] = {}
        self.hw_seen: dict[int, list[int]] = {}
        self.applied: dict[int, list[LogEntry]] = {}
        for i in sorted(voters | set(observers)):
            self.nodes[i] = RaftNode(
                i,
                frozenset(voters),
                random=random.Random(i),
                election_timeout_ms=(timeouts or {}).get(i, 100),
                fetch_timeout_ms=200,
                fetch_backoff_ms=10,
                max_fetch_entries=max_fetch_entries,
                log=MemoryRaftLog((logs or {}).get(i, [])),
                election_state=ElectionState(epoch),
            )
            self.truncations[i], self.hw_seen[i], self.applied[i] = [], [], []

    def flush(self) -> None:
        for _ in range(1000):
            queued: list[tuple[int, int, Message]] = []
            busy = False
            for i, node in self.nodes.items():
                ready = node.poll()
                busy = busy or not ready.is_empty()
                if ready.election_state_to_persist is not None:
                    self.disk_election[i] = ready.election_state_to_persist
                if ready.truncate_to is not None:
                    self.truncations[i].append(ready.truncate_to)
                self.hw_seen[i].append(ready.high_watermark)
                self.applied[i].extend(ready.committed)
                queued += [(i, d, m) for d, m in ready.messages_to_send]
                node.advance(ready, self.now)
            if not busy:
                return
            for src, dest, msg in queued:
                if (
                    src not in self.isolated
                    and dest not in self.isolated
                    and (src, dest) not in self.blocked
                ):
                    self.nodes[dest].step(msg, self.now)
        raise AssertionError("network never went quiet")

    def run(self, ms: int, step: int = 5) -> None:
        end = self.now + ms
        while self.now < end:
            self.now += step
            for node in self.nodes.values():
                node.tick(self.now)
            self.flush()

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.is_leader()]

    def run_until_leader(self, ms: int = 2000) -> int:
        end = self.now + ms
        while self.now < end:
            self.run(5)
            live = [i for i in self.leaders() if i not in self.isolated]
            if live:
                return live[0]
        raise AssertionError("no leader elected")

    def log_of(self, i: int) -> list[LogEntry]:
        log = self.nodes[i].log
        return log.entries_from(0, log.end_offset)


def test_single_voter_elects_itself_and_commits() -> None:
    net = Net({1})
    assert net.run_until_leader() == 1
    node = net.nodes[1]
    assert node.epoch == 1
    off = node.append([b"a", b"b"])
    assert off == 1  # offset 0 is the LeaderChange control entry
    net.run(5)
    assert node.high_watermark == 3
    assert [e.data for e in net.applied[1] if not e.control] == [b"a", b"b"]
    assert net.disk_election[1] == ElectionState(1, 1, 1)


def test_three_voters_elect_and_replicate_to_observer() -> None:
    net = Net({1, 2, 3}, {4})
    leader = net.run_until_leader()
    assert net.leaders() == [leader]
    base = net.nodes[leader].append([b"x", b"y"])
    net.run(100)
    for i, node in net.nodes.items():
        assert node.high_watermark == base + 2, i
        assert net.log_of(i) == net.log_of(leader)
        assert node.leader_id == leader
    assert not net.nodes[4].is_voter
    with pytest.raises(NotLeader):
        net.nodes[4].append([b"z"])


def test_follower_truncates_divergent_entries_via_hint() -> None:
    # Node 2 holds uncommitted epoch-2 entries; nodes 1 and 3 moved on to epoch 3.
    logs = {1: entries(1, 1, 3, 3), 2: entries(1, 1, 2, 2, 2), 3: entries(1, 1, 3, 3)}
    net = Net({1, 2, 3}, logs=logs, epoch=3, timeouts={2: 10_000, 3: 10_000})
    assert net.run_until_leader() == 1
    net.run(100)
    assert net.nodes[1].epoch == 4
    assert net.truncations[2] == [2]  # min(leader's end of epoch 1, own end of epoch 1)
    assert net.log_of(2) == net.log_of(1)
    assert [e.epoch for e in net.log_of(2)] == [1, 1, 3, 3, 4]
    assert net.nodes[2].high_watermark == 5


def test_end_offset_for_epoch_kip101() -> None:
    log = MemoryRaftLog(entries(1, 1, 3, 3, 5))
    assert log.end_offset_for_epoch(0) == (0, 0)
    assert log.end_offset_for_epoch(1) == (1, 2)
    assert log.end_offset_for_epoch(2) == (1, 2)
    assert log.end_offset_for_epoch(3) == (3, 4)
    assert log.end_offset_for_epoch(9) == (5, 5)


def test_candidate_with_stale_log_is_refused() -> None:
    logs = {1: entries(1, 1), 2: entries(1, 1), 3: entries(1)}
    net = Net({1, 2, 3}, logs=logs, epoch=1, timeouts={1: 10_000, 2: 10_000, 3: 50})
    net.run(400)
    assert net.leaders() == []
    assert isinstance(net.nodes[3].state, Prospective)
    assert net.nodes[3].epoch == 1  # PreVote failed, so no epoch was burnt
    # A real Vote (bypassing PreVote) with a stale log is refused too, though the epoch moves.
    net.nodes[1].step(VoteRequest(3, 2, last_epoch=1, end_offset=1), net.now)
    ready = net.nodes[1].poll()
    [(dest, resp)] = ready.messages_to_send
    assert dest == 3 and isinstance(resp, VoteResponse) and not resp.granted
    assert ready.election_state_to_persist == ElectionState(2)


def test_vote_granted_once_per_epoch_and_persisted_first() -> None:
    node = RaftNode(
        1,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        log=MemoryRaftLog(),
        election_state=ElectionState(0),
    )
    node.step(VoteRequest(2, 1, 0, 0), 0)
    node.step(VoteRequest(3, 1, 0, 0), 0)
    node.step(VoteRequest(2, 1, 0, 0), 0)  # duplicate: same answer
    ready = node.poll()
    assert ready.election_state_to_persist == ElectionState(1, 2)
    grants = [(d, m.granted) for d, m in ready.messages_to_send if isinstance(m, VoteResponse)]
    assert grants == [(2, True), (3, False), (2, True)]


def test_check_quorum_leader_resigns_when_isolated() -> None:
    net = Net({1, 2, 3})
    old = net.run_until_leader()
    old_epoch = net.nodes[old].epoch
    net.isolated = {old}
    net.run(250)  # > fetch_timeout_ms
    assert not net.nodes[old].is_leader()
    assert isinstance(net.nodes[old].state, (Resigned, Prospective))
    new = net.run_until_leader()
    assert new != old and net.nodes[new].epoch > old_epoch
    net.isolated = set()
    net.run(300)
    assert net.nodes[old].leader_id == new
    assert net.nodes[old].epoch == net.nodes[new].epoch


def test_prevote_keeps_epoch_and_rejoining_node_does_not_disrupt() -> None:
    net = Net({1, 2, 3})
    leader = net.run_until_leader()
    epoch = net.nodes[leader].epoch
    victim = next(i for i in net.nodes if i != leader)
    net.isolated = {victim}
    net.run(2000)  # many election timeouts on the isolated node
    assert net.nodes[victim].epoch == epoch  # PreVote never bumped it
    assert net.leaders() == [leader]
    net.isolated = set()
    net.nodes[leader].append([b"after"])
    net.run(300)
    assert net.leaders() == [leader] and net.nodes[leader].epoch == epoch
    assert net.nodes[victim].leader_id == leader
    assert net.log_of(victim) == net.log_of(leader)


def test_a_voter_stranded_in_a_later_epoch_rejoins() -> None:
    """A voter that became a candidate where nobody heard it sits in a later epoch than the
    leader's: it ignores the leader's older epoch, and the others refuse its PreVotes while
    they have a leader. Its PreVote moves them to its epoch (the leader steps down), or it would
    be lost to the quorum for good (found by the simulation, seed 320473)."""
    net = Net({1, 2, 3})
    leader = net.run_until_leader()
    epoch = net.nodes[leader].epoch
    victim = next(i for i in net.nodes if i != leader)
    net.isolated = {victim}
    # Its Vote requests were lost: it holds a later epoch than anyone else.
    node = net.nodes[victim]
    node._become_prospective(net.now)
    node._become_candidate(net.now)
    net.flush()
    assert node.epoch == epoch + 1
    net.run(500)  # it keeps trying PreVotes for epoch + 2, in vain
    assert net.nodes[leader].is_leader() and net.nodes[leader].epoch == epoch
    net.isolated = set()
    new = net.run_until_leader()
    net.nodes[new].append([b"rejoined"])
    net.run(500)
    assert net.nodes[new].epoch > epoch + 1
    assert node.leader_id == new and node.epoch == net.nodes[new].epoch
    assert net.log_of(victim) == net.log_of(new)


def test_graceful_resign_hands_over_quickly() -> None:
    net = Net({1, 2, 3})
    old = net.run_until_leader()
    net.nodes[old].resign(net.now)
    net.flush()
    assert isinstance(net.nodes[old].state, Resigned)
    new = net.run_until_leader(ms=300)
    assert net.nodes[new].epoch == net.nodes[old].epoch


def test_leader_commits_old_epoch_entries_only_with_its_own() -> None:
    """Raft Figure 8: offsets 1-2 (epoch 2) reach a majority before the new leader's epoch-4
    LeaderChange at offset 3 does; the high watermark must not cover them until it does."""
    logs = {1: entries(1, 2, 2), 2: entries(1), 3: entries(1)}
    net = Net({1, 2, 3}, logs=logs, epoch=3, timeouts={2: 10_000, 3: 10_000}, max_fetch_entries=1)
    net.isolated = {3}
    assert net.run_until_leader() == 1
    net.run(100)
    hws = sorted(set(net.hw_seen[1]))
    assert hws[0] == 0 and hws[-1] == 4
    assert not set(hws) & {1, 2, 3}, hws  # jumped from 0 straight past its own entry
    assert [e.epoch for e in net.log_of(2)] == [1, 2, 2, 4]


def test_transition_checks() -> None:
    check_transition(Unattached(1), Prospective(1))
    check_transition(Prospective(1), Candidate(2))
    check_transition(Candidate(2), Leader(2, 0))
    check_transition(Leader(2, 0), Resigned(2))
    check_transition(Unattached(1), Follower(1, 3))
    with pytest.raises(AssertionError):
        check_transition(Unattached(1), Leader(1, 0))
    with pytest.raises(AssertionError):
        check_transition(Leader(2, 0), Follower(2, 3))
    with pytest.raises(AssertionError):
        check_transition(Follower(2, 3), Follower(2, 1))
    with pytest.raises(AssertionError):
        check_transition(Unattached(2, 1), Unattached(2, 3))
    with pytest.raises(AssertionError):
        check_transition(Follower(3, 1), Unattached(2))
    assert Leader(1, 0).kind is StateKind.LEADER


def test_observer_fetches_but_never_counts_toward_majority() -> None:
    net = Net({1, 2, 3}, {4, 5})
    leader = net.run_until_leader()
    net.run(50)
    hw = net.nodes[leader].high_watermark
    others = {1, 2, 3} - {leader}
    # Cut the leader off from the other voters only (observers still fetch from it).
    net.isolated = set()
    blocked = {(leader, o) for o in others} | {(o, leader) for o in others}
    net.blocked = blocked
    net.nodes[leader].append([b"lonely"])
    net.run(150)  # < fetch timeout: still leader, observers have the entry, nothing commits
    assert net.nodes[leader].is_leader()
    assert net.nodes[4].log.end_offset == net.nodes[leader].log.end_offset
    assert net.nodes[leader].high_watermark == hw
    assert all(net.nodes[o].high_watermark == hw for o in (4, 5))
