"""Random operation sequences against the controller keep its invariants: leader in ISR
(or -1), ISR non-empty and within replicas, no fenced broker leads, epochs never go back,
and a standby replaying the log rebuilds the same image."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kraft.controller import ControllerConfig, QuorumController
from tests.unit.test_controller_helpers import EPOCH, Harness, check_invariants, random_step


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), steps=st.integers(1, 120),
       unclean=st.booleans())
def test_random_operations_keep_invariants(rng: random.Random, steps: int,
                                           unclean: bool) -> None:
    h = Harness(ControllerConfig(unclean_leader_election_enable=unclean,
                                 leader_imbalance_check_interval_ms=5000),
                seed=rng.randrange(1 << 30))
    epochs: dict[tuple[object, int], tuple[int, int]] = {}
    broker_epochs: dict[int, int] = {}
    for _ in range(steps):
        random_step(h, rng)
        img = h.image
        check_invariants(img)
        for t in img.topics.by_id.values():
            for pid, p in t.partitions.items():
                prev = epochs.get((t.topic_id, pid))
                if prev is not None:
                    assert p.leader_epoch >= prev[0] and p.partition_epoch >= prev[1]
                epochs[(t.topic_id, pid)] = (p.leader_epoch, p.partition_epoch)
        for b, reg in img.cluster.brokers.items():
            assert reg.epoch >= broker_epochs.get(b, -1)
            broker_epochs[b] = reg.epoch
    standby = QuorumController(ControllerConfig(), random.Random(0))
    for records, last in h.log:
        standby.replay_committed(records, last, EPOCH)
    assert standby.image == h.image
