"""Replica placement: a striped, rack-aware placer (the idea of Kafka's StripedReplicaPlacer).

Brokers are interleaved across racks (rack A's first broker, rack B's first, ..., rack A's
second, ...), both orders shuffled once per call with the controller's seeded random. Partition
``p`` starts at position ``start + p`` of that ring, so leaders (first replicas) go round-robin
over every broker; the other replicas are the next brokers on the ring whose rack is not used
yet by this partition, and once every rack is used, the next unused brokers. With racks, the
replicas of one partition thus sit on distinct racks whenever there are at least RF racks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from kraft.controller.results import ApiError
from storage.error_codes import ErrorCode

__all__ = ["UsableBroker", "place_replicas"]


@dataclass(frozen=True, slots=True)
class UsableBroker:
    broker_id: int
    rack: str | None


def _ring(brokers: Sequence[UsableBroker], rng: random.Random) -> list[UsableBroker]:
    by_rack: dict[str | None, list[UsableBroker]] = {}
    for b in sorted(brokers, key=lambda b: b.broker_id):
        by_rack.setdefault(b.rack, []).append(b)
    racks = sorted(by_rack, key=lambda r: (r is None, r or ""))
    rng.shuffle(racks)
    for r in racks:
        rng.shuffle(by_rack[r])
    ring: list[UsableBroker] = []
    depth = max(len(v) for v in by_rack.values())
    for i in range(depth):
        for r in racks:
            members = by_rack[r]
            if i < len(members):
                ring.append(members[i])
    return ring


def place_replicas(
    num_partitions: int,
    replication_factor: int,
    brokers: Sequence[UsableBroker],
    rng: random.Random,
) -> list[list[int]]:
    """Replica lists for ``num_partitions`` new partitions over ``brokers`` (the unfenced
    ones). Raises ``ApiError(INVALID_REPLICATION_FACTOR)`` when there are too few brokers."""
    if replication_factor <= 0:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       "Replication factor must be larger than 0.")
    if num_partitions <= 0:
        raise ApiError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be positive.")
    if not brokers:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       "All brokers are currently fenced.")
    if replication_factor > len(brokers):
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       f"The target replication factor of {replication_factor} cannot be "
                       f"reached because only {len(brokers)} broker(s) are registered.")
    ring = _ring(brokers, rng)
    n = len(ring)
    num_racks = len({b.rack for b in ring})
    start = rng.randrange(n)
    out: list[list[int]] = []
    for p in range(num_partitions):
        first = (start + p) % n
        chosen = [ring[first]]
        used_racks = {ring[first].rack}
        used = {ring[first].broker_id}
        # Distinct racks first, then fill with any unused broker, in ring order.
        for pass_racks in (True, False):
            i = first
            while len(chosen) < replication_factor:
                i = (i + 1) % n
                if i == first:
                    break
                b = ring[i]
                if b.broker_id in used:
                    continue
                if pass_racks and (b.rack in used_racks) and len(used_racks) < num_racks:
                    continue
                chosen.append(b)
                used.add(b.broker_id)
                used_racks.add(b.rack)
        out.append([b.broker_id for b in chosen])
    return out
