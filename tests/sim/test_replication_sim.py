"""Seeded simulation of partition replication (see ``tests/sim/replication.py``).

Default run: 100 seeds of 3 brokers (2 partitions, RF 3, min.insync.replicas 2) and 60 of
5 brokers (RF 5, min.insync.replicas 3); the slow run (``make test-all``) adds seeds 100-299 of
3 brokers (the 300 the default run had before). Each seed: 5 s of simulated faults with a
client producing (mostly ``acks=all``), then a heal and a settle check. Every planted bug below
and in tests/mutants/ that the simulation catches fails within the first 100 seeds.

The invariants are shown to bite: the tests at the end plant real bugs in the product's
replication decisions (with monkeypatch, nothing in the product) and require a seed of the
default run to fail.

Long run (not in the default suite): ``REPL_SIM_SEEDS=N`` with ``-k long``; replay one failing
seed: ``REPL_SIM_SEED=N REPL_SIM_BROKERS=5 .venv/bin/python -m pytest -q tests/sim -k replay``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import tests.sim.replication as sim_module
from broker.replication.partition import IsrChange, PartitionState
from kraft.controller import cluster_control
from storage.error_codes import ErrorCode
from tests.sim.long_run import run_long as _run_long
from tests.sim.replication import InvariantViolation, ReplicationSim, ReplSimConfig

QUICK_SEEDS = {3: 100, 5: 60}
# The slow run's seeds go on from QUICK_SEEDS up to these; long runs start past them.
BROAD_SEEDS = {3: 300, 5: 60}


def _config(brokers: int) -> ReplSimConfig:
    return ReplSimConfig(brokers=brokers, min_insync=brokers // 2 + 1)


def _run_seeds(brokers: int, seeds: range) -> Counter[str]:
    total: Counter[str] = Counter()
    for seed in seeds:
        sim = ReplicationSim(seed * 10 + brokers, _config(brokers))
        sim.run()
        total.update(sim.stats)
    return total


@pytest.mark.parametrize("brokers", [3, 5])
def test_replication_sim_quick(brokers: int) -> None:
    total = _run_seeds(brokers, range(QUICK_SEEDS[brokers]))
    assert total["settled"] == QUICK_SEEDS[brokers]
    # The paths are not vacuous: acks=all records acknowledged and refused, power losses that
    # took committed records from replicas, crashes, pauses (the controller's too).
    for key in ("acked", "produce_not_enough_replicas_after_append", "produce_refused",
                "power_loss", "power_loss_committed", "crash", "pause", "controller_pause"):
        assert total[key] > 0, (key, total)


@pytest.mark.slow
def test_replication_sim_broad() -> None:
    brokers = 3
    seeds = range(QUICK_SEEDS[brokers], BROAD_SEEDS[brokers])
    assert _run_seeds(brokers, seeds)["settled"] == len(seeds)


@pytest.mark.skipif("REPL_SIM_SEEDS" not in os.environ, reason="set REPL_SIM_SEEDS=N")
@pytest.mark.parametrize("brokers", [3, 5])
def test_replication_sim_long(brokers: int) -> None:
    n = int(os.environ["REPL_SIM_SEEDS"])
    start = BROAD_SEEDS[brokers]
    _run_long(lambda seed: ReplicationSim(seed * 10 + brokers, _config(brokers)).run(),
              range(start, start + n), f"{brokers} brokers")


@pytest.mark.skipif("REPL_SIM_SEED" not in os.environ, reason="set REPL_SIM_SEED=N")
def test_replication_sim_replay() -> None:
    brokers = int(os.environ.get("REPL_SIM_BROKERS", "3"))
    ReplicationSim(int(os.environ["REPL_SIM_SEED"]), _config(brokers)).run()


def test_replication_sim_is_deterministic() -> None:
    a, b = ReplicationSim(42, _config(3)), ReplicationSim(42, _config(3))
    a.run()
    b.run()
    assert (a.steps, a.now, a.acked, a.committed) == (b.steps, b.now, b.acked, b.committed)
    assert a.acked


# -- planted bugs ----------------------------------------------------------------------------


def _first_failure(brokers: int = 3) -> str:
    for seed in range(QUICK_SEEDS[brokers]):
        try:
            ReplicationSim(seed * 10 + brokers, _config(brokers)).run()
        except InvariantViolation as e:
            assert f"seed={seed * 10 + brokers}" in str(e)
            return str(e).splitlines()[0]
    pytest.fail("the planted bug went unnoticed by the default seeds")


def _hw_ignores_lagging_isr(self: PartitionState, leader_leo: int, now_ms: int,
                            max_lag_ms: int, eligible: Callable[[int], bool] | None = None
                            ) -> bool:
    """The HW rule without ISR membership: only caught-up followers hold it back."""
    if not self.is_leader:
        return False
    new_hw = leader_leo
    for r in self.followers.values():
        if r.log_end_offset < new_hw and r.is_caught_up(leader_leo, now_ms, max_lag_ms):
            new_hw = r.log_end_offset
    if new_hw > self.high_watermark:
        self.high_watermark = new_hw
        return True
    return False


def _acks_all_without_min_isr(self: PartitionState, leader_epoch: int, last_offset: int,
                              min_insync_replicas: int) -> ErrorCode | None:
    """acks=all answered once the HW passes, whatever the ISR has shrunk to."""
    if not self.is_leader or self.leader_epoch != leader_epoch:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    return ErrorCode.NONE if self.high_watermark > last_offset else None


def _truncate_to_high_watermark(log: Any, high_watermark: int, leader_epoch: int,
                                leader_end: int) -> tuple[int | None, bool]:
    """The pre-KIP-101 follower: truncate to its own high watermark."""
    return high_watermark, True


def _revert_on_any_failure(self: PartitionState, change: IsrChange,
                           error: ErrorCode | None) -> bool:
    """A failed or unanswered AlterPartition falls back to the committed ISR."""
    if self.pending is change:
        self.pending = None
    return False


def _register_without_isr_removal() -> Callable[..., Any]:
    """The controller accepts a restarted broker's new registration but leaves it in the
    ISRs of its old incarnation (which may have lost unflushed records)."""
    src = inspect.getsource(cluster_control.register_broker)
    keep = src.replace(
        "        b.extend(leadership_updates(image, config, remove=broker_id))\n", "        pass\n")
    assert keep != src
    namespace = dict(vars(cluster_control))
    exec(keep, namespace)  # noqa: S102 - a test-only copy of the product function
    return namespace["register_broker"]  # type: ignore[no-any-return]


PLANTED: dict[str, tuple[Any, str, Callable[[], Any]]] = {
    "hw-ignores-lagging-isr-member": (
        PartitionState, "maybe_increment_hw", lambda: _hw_ignores_lagging_isr),
    "acks-all-below-min-isr": (
        PartitionState, "produce_status", lambda: _acks_all_without_min_isr),
    "follower-truncates-to-high-watermark": (
        sim_module, "truncation_point", lambda: _truncate_to_high_watermark),
    "alter-partition-timeout-reverts-isr": (
        PartitionState, "isr_change_failed", lambda: _revert_on_any_failure),
    "restarted-broker-keeps-isr-membership": (
        cluster_control, "register_broker", _register_without_isr_removal),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_replication_sim_catches(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target, name, make = PLANTED[bug]
    monkeypatch.setattr(target, name, make())
    _first_failure()


def test_replication_sim_catches_unclean_election_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = sim_module.controller_config
    monkeypatch.setattr(sim_module, "controller_config", lambda cfg: dataclasses.replace(
        real(cfg), unclean_leader_election_enable=True))
    _first_failure()
