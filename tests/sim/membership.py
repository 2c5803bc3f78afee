"""The seeded KRaft simulation with a dynamic voter set (KIP-853), on ``tests/sim/cluster.py``.

The quorum starts as kraft.version 1 with the bootstrap voters 1..N (each with its directory
id); the other nodes are observers that fetch with their directory ids. Besides the random
faults of ``Sim`` (partitions, crashes also mid-fsync so unsynced writes are lost, pauses,
message loss), a membership nemesis asks the leader, now and then, to add a caught-up observer
or to remove a voter (itself included), through ``RaftNode.add_voter`` / ``remove_voter``.

Invariants, on top of ``Sim``'s (one leader per epoch, committed entries never lost, log
matching, leader completeness, ...), checked on every Ready:

- one change at a time: every node's latest voter set differs by at most one voter from the
  newest committed voter set, so any majority a node may use for an election or a commit
  overlaps a majority of the committed set (and of every other node's set);
- a removed leader stops leading: a leader whose removal is committed (its high watermark is past
  the VotersRecord without it) resigns within a bound;
- the voter set a node uses is the latest in its log, committed or not, and goes back on
  truncation: checked by replaying the node's log.
"""

from __future__ import annotations

import uuid
from typing import Any

from kraft.log import LogEntry
from kraft.raft import RaftNode, Ready
from kraft.voters import VOTERS_TYPE, VoterNode, VoterSet, decode_voters
from tests.sim.cluster import Sim, SimConfig, SimNode, decode_state

# How long a leader whose removal committed may still lead (a tick or two, plus a pause).
REMOVED_LEADER_BOUND_MS = 100


def directory_of(node_id: int) -> uuid.UUID:
    return uuid.UUID(int=(0xD1 << 120) | node_id)


def snapshot_voters(data: bytes) -> VoterSet | None:
    """The voter set a sim snapshot holds: its last VotersRecord, if any."""
    for e in reversed(decode_state(data)):
        if e.control and e.control_type == VOTERS_TYPE:
            return decode_voters(e.data)
    return None


class MembershipSim(Sim):
    def __init__(self, seed: int, config: SimConfig | None = None,
                 change_interval_ms: int = 120) -> None:
        cfg = config or SimConfig(voters=3, observers=2)
        self.bootstrap = VoterSet.of([VoterNode(i, directory_of(i))
                                      for i in range(1, cfg.voters + 1)])
        self.change_interval_ms = change_interval_ms
        self.committed_voters: VoterSet = self.bootstrap
        self._committed_scan = 0
        self.removed_since: dict[tuple[int, int], int] = {}
        super().__init__(seed, cfg)
        self.churn = None  # membership changes instead of the leader-churn program
        self._schedule(self.rng.randint(1, change_interval_ms), "change", None)

    # ------------------------------------------------------------------ hooks into Sim

    def _initial_voters(self) -> Any:
        return self.bootstrap

    def _node_kwargs(self, sn: SimNode) -> dict[str, Any]:
        return {"kraft_version": 1, "directory_id": directory_of(sn.node_id),
                "snapshot_voters": snapshot_voters}

    def _voters_of(self, node: RaftNode) -> frozenset[int]:
        return node.voters

    def _check_ready(self, sn: SimNode, node: RaftNode, ready: Ready) -> None:
        super()._check_ready(sn, node, ready)
        self._scan_committed()
        self._check_voter_sets(sn, node)

    # ------------------------------------------------------------------ invariants

    def _scan_committed(self) -> None:
        for e in self.committed[self._committed_scan:]:
            if e.control and e.control_type == VOTERS_TYPE:
                new = decode_voters(e.data)
                if not self.committed_voters.overlaps_majority(new):
                    self.fail(f"committed voter sets {self.committed_voters.ids} -> {new.ids} "
                              "differ by more than one voter")
                self.committed_voters = new
        self._committed_scan = len(self.committed)

    def _check_voter_sets(self, sn: SimNode, node: RaftNode) -> None:
        nid = sn.node_id
        # One change at a time: at most one VotersRecord of a log is not (yet) committed, so
        # the set a node uses is the committed one or one change past it.
        log = node.log
        uncommitted = []
        for off in range(log.start_offset, log.end_offset):
            e: LogEntry = log.entry(off)  # type: ignore[attr-defined]
            if not (e.control and e.control_type == VOTERS_TYPE):
                continue
            c = self.committed[off] if off < len(self.committed) else None
            if c is None or (c.epoch, c.data) != (e.epoch, e.data):
                uncommitted.append((off, e.epoch, sorted(decode_voters(e.data).ids)))
        if len(uncommitted) > 1:
            self.fail(f"node {nid} holds {len(uncommitted)} uncommitted voter sets "
                      f"{uncommitted}: more than one change at a time, majorities may not "
                      "overlap")
        # The set in use is the latest in the node's own log (or snapshot / bootstrap).
        latest = node.voter_set
        expected = self._latest_in_log(sn, node)
        if expected is not None and expected != latest:
            self.fail(f"node {nid} uses voters {sorted(latest.ids)} but its log says "
                      f"{sorted(expected.ids)}")
        key = (nid, node.epoch)
        if node.is_leader() and not node.is_voter and node.high_watermark > \
                node._history.latest_offset:
            since = self.removed_since.setdefault(key, self.now)
            if self.now - since > REMOVED_LEADER_BOUND_MS + self.cfg.tick_ms:
                self.fail(f"removed leader {nid} still leads epoch {node.epoch} "
                          f"{self.now - since}ms after its removal committed")

    def _latest_in_log(self, sn: SimNode, node: RaftNode) -> VoterSet | None:
        log = node.log
        for off in range(log.end_offset - 1, log.start_offset - 1, -1):
            e: LogEntry = log.entry(off)  # type: ignore[attr-defined]
            if e.control and e.control_type == VOTERS_TYPE:
                return decode_voters(e.data)
        return None  # from the snapshot or the bootstrap: not checked here

    # ------------------------------------------------------------------ the nemesis

    def _change(self) -> None:
        leader = self.leader()
        if leader is None:
            return
        sn = self.nodes[leader.node_id]
        latest = leader.voter_set
        r = self.rng.random()
        outsiders = sorted(set(self.nodes) - latest.ids)
        if (r < 0.55 and outsiders) or len(latest.ids) <= 1:
            if not outsiders:
                return
            nid = self.rng.choice(outsiders)
            err, _msg, _off = leader.add_voter(VoterNode(nid, directory_of(nid)), self.now)
            what = f"add {nid}"
        else:
            nid = self.rng.choice(sorted(latest.ids))
            err, _msg, _off = leader.remove_voter(nid, directory_of(nid), self.now)
            what = f"remove {nid}"
        self.history.append(f"t={self.now} leader {leader.node_id} {what}: error {err}")
        self.stats[f"{what.split()[0]}_{err}"] += 1
        if err:
            self.stats[f"why:{(_msg or '')[:60]}"] += 1
        if err == 0:
            self._drive(sn)

    def _dispatch_extra(self, kind: str, arg: Any) -> None:
        if kind == "change" and self.faults:
            self._change()
            self._schedule(self.rng.randint(1, 2 * self.change_interval_ms), "change", None)
