"""Seeded simulation of KIP-853 voter changes under faults (see ``tests/sim/membership.py``).

Default run: 40 seeds of 3 bootstrap voters + 2 observers, ~4 s of simulated chaos each
(partitions, crashes also mid-fsync, pauses, message loss and duplication) while a nemesis asks
the leader to add caught-up observers and remove voters, itself included; then a heal and the
liveness check (a commit, and every node catches up). The invariants are shown to bite: the
tests at the end plant the two membership bugs of ``tests/mutants/catalogue.toml`` (32, 33) and
require a seed to fail.

Long run: ``MEMBERSHIP_SIM_SEEDS=2000 .venv/bin/python -m pytest -q tests/sim/test_membership_sim.py -k long``;
replay: ``MEMBERSHIP_SIM_SEED=N ... -k replay``.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from kraft.raft import RaftNode
from tests.sim.long_run import run_long as _run_long
from tests.sim.membership import MembershipSim

QUICK_SEEDS = 40


def _run(seeds: range) -> Counter[str]:
    total: Counter[str] = Counter()
    for seed in seeds:
        sim = MembershipSim(seed)
        sim.run()
        total.update(sim.stats)
    return total


def test_membership_sim_quick() -> None:
    total = _run(range(QUICK_SEEDS))
    # Not vacuous: voters were added and removed, and changes were refused while one was
    # pending or the new voter had not caught up.
    assert total["add_0"] > 0 and total["remove_0"] > 0, total
    assert total["add_7"] > 0 and total["remove_7"] > 0, total
    assert total["install_observer"] > 0, total


@pytest.mark.skipif("MEMBERSHIP_SIM_SEEDS" not in os.environ,
                    reason="set MEMBERSHIP_SIM_SEEDS=N")
def test_membership_sim_long() -> None:
    n = int(os.environ["MEMBERSHIP_SIM_SEEDS"])
    _run_long(lambda seed: MembershipSim(seed).run(), range(QUICK_SEEDS, QUICK_SEEDS + n),
              "membership")


@pytest.mark.skipif("MEMBERSHIP_SIM_SEED" not in os.environ, reason="set MEMBERSHIP_SIM_SEED=N")
def test_membership_sim_replay() -> None:
    MembershipSim(int(os.environ["MEMBERSHIP_SIM_SEED"])).run()


def test_membership_sim_is_deterministic() -> None:
    a, b = MembershipSim(7), MembershipSim(7)
    a.run()
    b.run()
    assert (a.steps, a.committed, a.leaders) == (b.steps, b.committed, b.leaders)


def _first_failure(seeds: range) -> str | None:
    for seed in seeds:
        try:
            MembershipSim(seed).run()
        except AssertionError as e:
            return str(e)
    return None


def test_sim_catches_two_changes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader that starts a second change while the first is uncommitted."""
    monkeypatch.setattr(RaftNode, "voter_change_pending", lambda self: False)
    found = _first_failure(range(QUICK_SEEDS))
    assert found is not None, "two voter changes at once went unnoticed"
    assert "more than one change at a time" in found, found


def test_sim_catches_a_removed_leader_that_keeps_leading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RaftNode, "_maybe_leave_after_removal", lambda self, now_ms: False)
    found = _first_failure(range(QUICK_SEEDS))
    assert found is not None, "a removed leader that keeps leading went unnoticed"
    assert "removed leader" in found, found
