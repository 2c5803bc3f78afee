"""Seeded deterministic simulation of the KRaft quorum (see ``tests/sim/cluster.py``).

Default run: a few hundred seeds across 3 voters + 1 observer and 5 voters + 2 observers
(about 15 s). Each seed: ~4 s of simulated chaos, then a heal and a liveness check: a client
append commits and every node learns it within 3 s of simulated time. Half the seeds draw
random faults (message delay/drop/duplicate/reorder, majority/minority splits, isolated nodes
(mostly the leader) that rejoin one at a time, SIGSTOP/SIGCONT pauses, crashes incl. in the
middle of an fsync, kill -9 of the leader with a quick restart, graceful resigns); the other
half run the leader-churn program, which times its faults to build Raft's Figure-8 schedules
(leaders that change while their logs hold uncommitted entries of earlier epochs). Client
appends go to the leader throughout.

Invariants checked after every step (on every Ready): at most one leader per epoch; log matching
((offset, epoch) identifies the entry and its prefix); an entry below any node's reported high
watermark never changes on any node; the high watermark is monotonic within a node incarnation and
never beyond its log end; leader completeness (a new leader holds every entry committed in an
earlier epoch); epoch and vote are durable before any message depending on them is sent;
check-quorum (a leader no majority could reach for twice the fetch timeout no longer leads).
Nodes' own safety asserts (e.g. never truncating below the high watermark) also fail the seed.
The invariants are shown to bite: the tests at the end plant real Raft bugs (the Figure-8 commit
rule, a vote for a shorter log, no check-quorum) and require a seed of the default run to fail.

Snapshots (KIP-630): most seeds snapshot the applied state every few entries and drop the log
prefix, so lagging voters, restarted nodes and observers catch up through FetchSnapshot (in small
chunks; SNAPSHOT_NOT_FOUND when the leader moved on to a newer one). Also checked: a snapshot,
loaded at restart or installed from the leader, is exactly the committed prefix of its length;
applied entries are contiguous and committed; a node never deletes its log prefix before a
durable snapshot covers it; a crash between writing a fetched snapshot and resetting the log
recovers (``MemoryRaftLog.recover``).

Long run (not in the default suite):

    RAFT_SIM_SEEDS=20000 .venv/bin/python -m pytest -q tests/sim/test_raft_sim.py -k long

Replay one failing seed (the failure message prints seed, step and the recent events):

    RAFT_SIM_SEED=1234 RAFT_SIM_VOTERS=5 .venv/bin/python -m pytest -q tests/sim -k replay
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from kraft.quorum_state import Leader
from kraft.raft import RaftNode
from tests.sim.cluster import Sim, SimConfig
from tests.sim.long_run import run_long as _run_long

QUICK_SEEDS = {3: 200, 5: 120}


def _config(voters: int) -> SimConfig:
    return SimConfig(voters=voters, observers=1 if voters == 3 else 2)


def _run_seeds(voters: int, seeds: range) -> Counter[str]:
    total: Counter[str] = Counter()
    for seed in seeds:
        sim = Sim(seed * 10 + voters, _config(voters))
        sim.run()
        total.update(sim.stats)
    return total


@pytest.mark.parametrize("voters", [3, 5])
def test_sim_quick(voters: int) -> None:
    total = _run_seeds(voters, range(QUICK_SEEDS[voters]))
    # The snapshot paths are not vacuous: voters, observers and restarted nodes install
    # snapshots, and a leader answers FetchSnapshot for one it has deleted since.
    for key in (
        "snapshot_taken",
        "fetch_snapshot_needed",
        "install",
        "install_observer",
        "install_after_restart",
        "fetch_snapshot_snapshot_not_found",
        "churn_catch_up",
        "pause",
    ):
        assert total[key] > 0, (key, total)


@pytest.mark.skipif("RAFT_SIM_SEEDS" not in os.environ, reason="set RAFT_SIM_SEEDS=N")
@pytest.mark.parametrize("voters", [3, 5])
def test_sim_long(voters: int) -> None:
    n = int(os.environ["RAFT_SIM_SEEDS"])
    start = QUICK_SEEDS[voters]
    _run_long(lambda seed: Sim(seed * 10 + voters, _config(voters)).run(),
              range(start, start + n), f"{voters} voters")


@pytest.mark.skipif("RAFT_SIM_SEED" not in os.environ, reason="set RAFT_SIM_SEED=N")
def test_sim_replay() -> None:
    voters = int(os.environ.get("RAFT_SIM_VOTERS", "3"))
    Sim(int(os.environ["RAFT_SIM_SEED"]), _config(voters)).run()


def test_sim_is_deterministic() -> None:
    a, b = Sim(42, _config(3)), Sim(42, _config(3))
    a.run()
    b.run()
    assert (a.steps, a.now, a.committed, a.leaders) == (b.steps, b.now, b.committed, b.leaders)
    assert len(a.committed) > 0


def _first_failure(voters: int, seeds: range) -> tuple[int, str] | None:
    for seed in seeds:
        try:
            Sim(seed * 10 + voters, _config(voters)).run()
        except AssertionError as e:
            return seed, str(e)
    return None


def _commit_without_own_epoch(self: RaftNode, st: Leader) -> None:
    """The Figure-8 bug: commit whatever a majority holds, without waiting for an entry of
    the leader's own epoch (the rule kraft.raft._update_high_watermark keeps)."""
    ends = [self._durable_end] + [rs.end_offset for rs in st.voter_states.values()]
    ends.sort(reverse=True)
    candidate = ends[len(self.voters) // 2]
    self.high_watermark = max(self.high_watermark, candidate)


@pytest.mark.parametrize("voters", [3, 5])
def test_sim_catches_the_figure8_bug(voters: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default schedules reach Raft's Figure 8: a leader that commits entries of earlier
    epochs before one of its own loses a committed entry, and the seed says which."""
    monkeypatch.setattr(RaftNode, "_update_high_watermark", _commit_without_own_epoch)
    found = _first_failure(voters, range(QUICK_SEEDS[voters]))
    assert found is not None, "the Figure-8 bug went unnoticed"
    seed, message = found
    assert f"seed={seed * 10 + voters}" in message
    assert "committed" in message, message


def test_sim_catches_a_vote_for_a_shorter_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A voter that grants its vote (and PreVote) without comparing logs elects a leader that
    lacks committed entries."""
    monkeypatch.setattr(RaftNode, "_log_up_to_date",
                        lambda self, last_epoch, end_offset: True)
    found = _first_failure(3, range(QUICK_SEEDS[3]))
    assert found is not None, "a vote for a shorter log went unnoticed"
    assert "committed" in found[1], found[1]


def test_sim_catches_a_leader_that_ignores_check_quorum(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader cut off from a majority must resign within the fetch timeout (check-quorum);
    one that never does is reported by the sim's own check."""
    monkeypatch.setattr(RaftNode, "_tick_leader",
                        lambda self, st, now_ms: self._send_begin_quorum_epoch(now_ms)
                        if now_ms >= self._next_begin_epoch_ms else None)
    found = _first_failure(3, range(QUICK_SEEDS[3]))
    assert found is not None, "a leader without check-quorum went unnoticed"
    assert "check-quorum" in found[1], found[1]
