"""The voter set as data in the log (KIP-853): ``kraft.voters`` and ``kraft.raft_membership``.

Quiet runs of the membership simulation (tests/sim/membership.py, no faults) give a real
leader; single nodes stepped by hand check truncation and restarts."""

from __future__ import annotations

import random
import uuid

from broker.controller.raft_voters import snapshot_voters
from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import DivergingEpoch, FetchResponse, SnapshotId
from kraft.quorum_state import ElectionState
from kraft.raft import RaftNode
from kraft.raft_membership import (
    DUPLICATE_VOTER,
    REQUEST_TIMED_OUT,
    UNSUPPORTED_VERSION,
    VOTER_NOT_FOUND,
)
from kraft.snapshot import SnapshotReader, snapshot_bytes
from kraft.voters import (
    KRAFT_VERSION_TYPE,
    VOTERS_TYPE,
    Endpoint,
    VoterHistory,
    VoterNode,
    VoterSet,
    encode_kraft_version,
    encode_voters,
)
from tests.sim.cluster import Sim, SimConfig
from tests.sim.membership import MembershipSim, directory_of


def quiet(sim: Sim, until_ms: int = 3000) -> RaftNode:
    sim.run_until(until_ms)
    leader = sim.leader()
    assert leader is not None
    return leader


def vs(*ids: int) -> VoterSet:
    return VoterSet.of([VoterNode(i, directory_of(i)) for i in ids])


def test_first_leader_writes_the_bootstrap_set_and_every_node_follows_it() -> None:
    sim = MembershipSim(1)
    leader = quiet(sim)
    assert leader.kraft_version == 1
    entries = leader.log.entries_from(0, leader.log.end_offset)
    kinds = [e.control_type for e in entries if e.control]
    assert kinds[:3] == [2, KRAFT_VERSION_TYPE, VOTERS_TYPE]  # LeaderChange, then the set
    for sn in sim.nodes.values():
        assert sn.node is not None and sn.node.voters == {1, 2, 3}
        assert sn.node.is_voter == (sn.node_id in (1, 2, 3))


def test_changes_one_at_a_time_and_refusals() -> None:
    sim = MembershipSim(2)
    leader = quiet(sim)
    now = sim.now
    err, _, _ = leader.add_voter(VoterNode(2, directory_of(2)), now)
    assert err == DUPLICATE_VOTER
    err, _, _ = leader.remove_voter(5, directory_of(5), now)
    assert err == VOTER_NOT_FOUND
    err, _, _ = leader.remove_voter(2, uuid.uuid4(), now)  # the wrong directory: not the voter
    assert err == VOTER_NOT_FOUND
    # An observer fetching with another directory id is not the voter being added.
    err, msg, _ = leader.add_voter(VoterNode(4, uuid.uuid4()), now)
    assert err == REQUEST_TIMED_OUT and "caught up" in (msg or "")
    err, _, off = leader.add_voter(VoterNode(4, directory_of(4)), now)
    assert err == 0 and leader.voters == {1, 2, 3, 4}  # in use at once, not yet committed
    err, msg, _ = leader.remove_voter(3, directory_of(3), now)
    assert err == REQUEST_TIMED_OUT and "previous voter change" in (msg or "")
    sim._drive(sim.nodes[leader.node_id])
    sim.run_until(sim.now + 500)
    assert leader.high_watermark > off
    err, _, _ = leader.remove_voter(3, directory_of(3), sim.now)
    assert err == 0 and leader.voters == {1, 2, 4}
    sim._drive(sim.nodes[leader.node_id])
    sim.run_until(sim.now + 500)
    assert all(sn.node.voters == {1, 2, 4} for sn in sim.nodes.values() if sn.node)
    assert not sim.nodes[3].node.is_voter  # type: ignore[union-attr]


def test_static_quorum_refuses_changes() -> None:
    sim = Sim(3, SimConfig(voters=3, observers=1))
    leader = quiet(sim)
    err, msg, _ = leader.add_voter(VoterNode(4, directory_of(4)), sim.now)
    assert err == UNSUPPORTED_VERSION and "kraft.version" in (msg or "")


def _voters_entry(offset: int, epoch: int, voters: VoterSet) -> LogEntry:
    return LogEntry(offset, epoch, encode_voters(voters), control=True, control_type=VOTERS_TYPE)


def test_uncommitted_set_in_use_and_reverted_on_truncation() -> None:
    log = MemoryRaftLog([
        LogEntry(0, 1, b"LeaderChange", control=True),
        LogEntry(1, 1, encode_kraft_version(1), control=True, control_type=KRAFT_VERSION_TYPE),
        _voters_entry(2, 1, vs(1, 2, 3)),
        _voters_entry(3, 1, vs(1, 2, 3, 4)),  # appended by the old leader, never committed
    ])
    node = RaftNode(2, vs(1, 2, 3), random=random.Random(0), log=log,
                    election_state=ElectionState(2, None, 1), kraft_version=1,
                    directory_id=directory_of(2))
    assert node.voters == {1, 2, 3, 4}  # the latest in the log, committed or not
    node.tick(0)
    node.poll()
    node.step(FetchResponse(1, 2, 1, 4, 1, high_watermark=3,
                            diverging_epoch=DivergingEpoch(1, 3)), 1)
    assert node.log.end_offset == 3
    assert node.voters == {1, 2, 3}


def test_snapshot_carries_the_voter_set() -> None:
    voters = VoterSet.of([VoterNode(1, directory_of(1), (Endpoint("CONTROLLER", "h", 9),))])
    data = snapshot_bytes(SnapshotId(10, 2), [], last_contained_log_timestamp_ms=5,
                          control_records=[(KRAFT_VERSION_TYPE, encode_kraft_version(1)),
                                           (VOTERS_TYPE, encode_voters(voters))])
    assert snapshot_voters(data) == voters
    assert list(SnapshotReader(data)) == []  # readers of the metadata skip them


def test_history_truncate_and_compact() -> None:
    h = VoterHistory(vs(1), kraft_version=1)
    h.append(5, vs(1, 2))
    h.append(9, vs(1, 2, 3))
    assert h.at(7) == vs(1, 2) and h.latest == vs(1, 2, 3)
    h.truncate(9)
    assert h.latest == vs(1, 2)
    h.compact(8)
    assert len(h) == 1 and h.latest == vs(1, 2)
    h.truncate(0)  # the oldest set is never dropped
    assert h.latest == vs(1, 2)


def test_update_voter_replaces_endpoints_only_for_the_same_voter() -> None:
    sim = MembershipSim(4)
    leader = quiet(sim)
    now = sim.now
    moved = VoterNode(2, directory_of(2), (Endpoint("CONTROLLER", "h2", 19093),))
    assert leader.update_voter(VoterNode(2, uuid.uuid4()), now)[0] == VOTER_NOT_FOUND
    too_new = VoterNode(2, directory_of(2), moved.endpoints, 2, 3)
    assert leader.update_voter(too_new, now)[0] == 42  # INVALID_REQUEST: kraft.version 1 unsupported
    err, _, off = leader.update_voter(moved, now)
    assert err == 0 and leader.voter_set.get(2) == moved and leader.voters == {1, 2, 3}
    sim._drive(sim.nodes[leader.node_id])
    sim.run_until(sim.now + 500)
    assert leader.high_watermark > off
    assert all(sn.node.voter_set.get(2) == moved for sn in sim.nodes.values() if sn.node)
