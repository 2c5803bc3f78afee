"""Seeded deterministic simulation of the KRaft quorum (see ``tests/sim/cluster.py``).

Default run: a few hundred seeds across 3 voters + 1 observer and 5 voters + 2 observers
(about 10-15 s). Each seed: ~2 s of simulated chaos (message delay/drop/duplicate/reorder,
majority/minority splits and isolated nodes, crashes incl. in the middle of an fsync, kill -9 of the
leader with a quick restart, graceful resigns, client appends at the leader), then a heal and a
liveness check: a client append commits and every node learns it within 3 s of simulated time.

Invariants checked after every step (on every Ready): at most one leader per epoch; log matching
((offset, epoch) identifies the entry and its prefix); an entry below any node's reported high
watermark never changes on any node; the high watermark is monotonic within a node incarnation and
never beyond its log end; leader completeness (a new leader holds every entry committed in an
earlier epoch); epoch and vote are durable before any message depending on them is sent.
Nodes' own safety asserts (e.g. never truncating below the high watermark) also fail the seed.

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

from tests.sim.cluster import Sim, SimConfig

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
    ):
        assert total[key] > 0, (key, total)


@pytest.mark.skipif("RAFT_SIM_SEEDS" not in os.environ, reason="set RAFT_SIM_SEEDS=N")
@pytest.mark.parametrize("voters", [3, 5])
def test_sim_long(voters: int) -> None:
    n = int(os.environ["RAFT_SIM_SEEDS"])
    start = QUICK_SEEDS[voters]
    _run_seeds(voters, range(start, start + n))


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


def test_sim_detects_a_violation() -> None:
    """The checker is not vacuous: a forged second leader of an epoch is reported with the seed."""
    sim = Sim(7, _config(3))
    sim.run_until(500)
    leader = sim.leader()
    assert leader is not None
    sim.leaders[leader.epoch + 1] = -1  # pretend someone else led the next epoch
    leader.resign(sim.now)
    with pytest.raises(AssertionError, match="seed=7"):
        sim.run_until(5000)
