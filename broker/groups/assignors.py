"""Server-side assignors of consumer groups of the new protocol (KIP-848): given the members'
subscriptions, the subscribed topics' partition counts and the current target assignment,
compute the next target assignment. Pure functions; ``ASSIGNORS`` maps the names of
``group.consumer.assignors`` (and the ``server_assignor`` a member asks for) to them.

- ``uniform``: every partition of the subscribed topics goes to one subscribed member, the
  members' partition counts differ by at most one among the members that could take the
  partition, and a partition stays with its current owner whenever balance allows (sticky).
- ``range``: per topic, the subscribed members sorted by member id get contiguous ranges of
  partitions, the first ``partitions % members`` one more (co-partitioned topics line up).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "ASSIGNORS",
    "DEFAULT_ASSIGNORS",
    "AssignmentSpec",
    "MemberSpec",
    "TargetAssignment",
    "assignor_name",
    "range_assign",
    "uniform_assign",
]

# member id -> topic id -> partitions
TargetAssignment = dict[str, dict[uuid.UUID, set[int]]]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A member as the assignor sees it: the topic ids it subscribes to and its current target
    assignment (what it is moving towards)."""

    topics: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, frozenset[int] | set[int]]


@dataclass(frozen=True, slots=True)
class AssignmentSpec:
    members: Mapping[str, MemberSpec]
    # topic id -> (topic name, partition count) of every subscribed topic that exists
    topics: Mapping[uuid.UUID, tuple[str, int]]


def _empty(spec: AssignmentSpec) -> TargetAssignment:
    return {mid: {} for mid in spec.members}


def _add(out: TargetAssignment, mid: str, tid: uuid.UUID, p: int) -> None:
    out[mid].setdefault(tid, set()).add(p)


def uniform_assign(spec: AssignmentSpec) -> TargetAssignment:
    out = _empty(spec)
    if not spec.members:
        return out
    count = dict.fromkeys(spec.members, 0)
    owner: dict[tuple[uuid.UUID, int], str] = {}
    eligible: dict[uuid.UUID, list[str]] = {
        tid: sorted(m for m, ms in spec.members.items() if tid in ms.topics)
        for tid in spec.topics}
    # 1. Sticky: every member keeps the partitions it still subscribes to and that exist.
    for mid in sorted(spec.members):
        ms = spec.members[mid]
        for tid, parts in ms.current.items():
            if tid not in ms.topics or tid not in spec.topics:
                continue
            n = spec.topics[tid][1]
            for p in sorted(parts):
                if p < n and (tid, p) not in owner:
                    owner[(tid, p)] = mid
                    count[mid] += 1
    # 2. Unowned partitions go to the least loaded member that subscribes to their topic.
    for tid in sorted(spec.topics, key=lambda t: (spec.topics[t][0], str(t))):
        cands = eligible[tid]
        if not cands:
            continue
        for p in range(spec.topics[tid][1]):
            if (tid, p) in owner:
                continue
            mid = min(cands, key=lambda m: (count[m], m))
            owner[(tid, p)] = mid
            count[mid] += 1
    # 3. Balance: move partitions from a member to an eligible one with two or more fewer.
    moved = True
    while moved:
        moved = False
        for tp in sorted(owner, key=lambda tp: (spec.topics[tp[0]][0], tp[1])):
            src = owner[tp]
            dst = min(eligible[tp[0]], key=lambda m: (count[m], m))
            if count[src] - count[dst] > 1:
                owner[tp] = dst
                count[src] -= 1
                count[dst] += 1
                moved = True
    for (tid, p), mid in owner.items():
        _add(out, mid, tid, p)
    return out


def range_assign(spec: AssignmentSpec) -> TargetAssignment:
    out = _empty(spec)
    for tid, (_name, n) in spec.topics.items():
        members = sorted(m for m, ms in spec.members.items() if tid in ms.topics)
        if not members:
            continue
        quota, extra = divmod(n, len(members))
        start = 0
        for i, mid in enumerate(members):
            size = quota + (1 if i < extra else 0)
            for p in range(start, start + size):
                _add(out, mid, tid, p)
            start += size
    return out


ASSIGNORS: dict[str, Callable[[AssignmentSpec], TargetAssignment]] = {
    "uniform": uniform_assign,
    "range": range_assign,
}

# Kafka's group.consumer.assignors default names these two (the first is the default).
DEFAULT_ASSIGNORS = ("uniform", "range")


def assignor_name(configured: str) -> str | None:
    """The assignor a group.consumer.assignors entry names: a short name or Kafka's class name
    (``org.apache.kafka.coordinator.group.assignor.UniformAssignor``); None if unknown."""
    short = configured.rsplit(".", 1)[-1].lower()
    short = short.removesuffix("assignor") or short
    return short if short in ASSIGNORS else None
