"""Leader election and ISR changes as ``PartitionChangeRecord``s (Kafka's PartitionChangeBuilder,
for metadata.version 3.9: no ELR), with the completion of a partition reassignment in flight.

The rules that keep committed data safe:

- A clean election only picks a member of the (target) ISR that is an acceptable leader
  (registered, unfenced, not in controlled shutdown). The current leader is kept when it is
  still acceptable, so an ISR change alone never moves leadership.
- **The ISR never shrinks to empty.** Removing a broker that is the last ISR member leaves the
  ISR as it was and the partition leaderless (leader -1). That last member is the only replica
  known to hold every committed record ("last replica standing"); keeping it in the ISR means
  that when it comes back (is unfenced) it is elected again, instead of some out-of-sync replica
  that would silently truncate committed data. Only an unclean election (off by default, per
  topic ``unclean.leader.election.enable``) may pick a replica outside the ISR; it then sets the
  ISR to just that leader and marks the leader as RECOVERING.
- Every leader change is a ``leader`` field in the record, which bumps the leader epoch on
  replay; every record bumps the partition epoch (``PartitionRegistration.merge``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kraft.controller.config import ControllerConfig
from kraft.controller.results import Record
from kraft.delta import MetadataDelta
from kraft.image import (
    NO_LEADER,
    NO_LEADER_CHANGE,
    LeaderRecoveryState,
    MetadataImage,
    PartitionRegistration,
)
from kraft.metadata_records import MetadataRecordType, PartitionChangeRecord

__all__ = [
    "Election", "RecordBuilder", "build_partition_change", "is_active", "leader_acceptor",
    "leadership_updates", "maybe_complete", "replica_dir_online", "unclean_enabled",
]

UNCLEAN_KEY = "unclean.leader.election.enable"


class Election(enum.Enum):
    ONLINE = 0  # keep an acceptable leader, else the first acceptable ISR member
    PREFERRED = 1  # the first replica if it is an acceptable ISR member
    UNCLEAN = 2  # as ONLINE, falling back to any acceptable replica


def is_active(image: MetadataImage, broker_id: int) -> bool:
    """Kafka's ClusterControlManager.isActive: registered, unfenced, not shutting down."""
    b = image.cluster.brokers.get(broker_id)
    return b is not None and not b.fenced and not b.in_controlled_shutdown


def replica_dir_online(image: MetadataImage, part: PartitionRegistration, broker_id: int) -> bool:
    """Kafka's ``ClusterControlManager.hasOnlineDir`` for ``broker_id``'s replica of ``part``."""
    reg = image.cluster.brokers.get(broker_id)
    return reg is not None and reg.has_online_dir(part.directory(broker_id))


def leader_acceptor(image: MetadataImage, part: PartitionRegistration,
                    base: Callable[[int], bool] | None = None) -> Callable[[int], bool]:
    """Kafka's ``LeaderAcceptor``: ``base`` (default: the broker is active) and the replica's
    directory is online on its broker."""
    def acceptable(r: int) -> bool:
        ok = base(r) if base is not None else is_active(image, r)
        return ok and replica_dir_online(image, part, r)
    return acceptable


def unclean_enabled(image: MetadataImage, config: ControllerConfig, topic: str) -> bool:
    """Topic override, else the cluster-wide dynamic default, else the static default."""
    for values in (image.configs.topic_config(topic), image.configs.broker_config("")):
        raw = values.get(UNCLEAN_KEY)
        if raw is not None:
            return str(raw).strip().lower() == "true"
    return config.unclean_leader_election_enable


def build_partition_change(
    topic_id: uuid.UUID,
    partition_id: int,
    part: PartitionRegistration,
    acceptable: Callable[[int], bool],
    *,
    target_isr: Sequence[int] | None = None,
    election: Election = Election.ONLINE,
    target_recovery: LeaderRecoveryState | None = None,
    target_replicas: Sequence[int] | None = None,
    target_adding: Sequence[int] | None = None,
    target_removing: Sequence[int] | None = None,
) -> Any | None:
    """The PartitionChangeRecord moving ``part`` to ``target_isr`` (and, for a reassignment,
    to ``target_replicas`` with ``target_adding`` and ``target_removing``) with a leader
    elected by ``election`` among ``acceptable`` brokers, or None when nothing would change.
    A reassignment in flight completes here once the target ISR holds every target replica
    (``kraft.controller.reassignment.maybe_complete``), whatever the change was for."""
    isr = list(part.isr) if target_isr is None else list(target_isr)
    replicas = list(part.replicas) if target_replicas is None else list(target_replicas)
    adding = list(part.adding_replicas) if target_adding is None else list(target_adding)
    removing = list(part.removing_replicas) if target_removing is None else list(target_removing)
    done = maybe_complete(replicas, adding, removing, isr, acceptable)
    if done is not None:
        replicas, isr = done
        adding, removing = [], []
    record = PartitionChangeRecord(partition_id=partition_id, topic_id=topic_id)

    def valid(r: int) -> bool:
        return r in isr and acceptable(r)

    leader, unclean = NO_LEADER, False
    if election is Election.PREFERRED and replicas and valid(replicas[0]):
        leader = replicas[0]
    elif part.leader != NO_LEADER and part.leader in replicas and valid(part.leader):
        leader = part.leader
    else:
        candidates = replicas[1:] if election is Election.PREFERRED else replicas
        leader = next((r for r in candidates if valid(r)), NO_LEADER)
        if leader == NO_LEADER and election is Election.UNCLEAN:
            leader = next((r for r in replicas if acceptable(r)), NO_LEADER)
            unclean = leader != NO_LEADER
    if leader != part.leader:
        record.leader = leader
        if unclean:
            # Data loss is possible: the new leader's log is the truth from now on.
            record.isr = [leader]
            if part.leader_recovery_state != LeaderRecoveryState.RECOVERING:
                record.leader_recovery_state = int(LeaderRecoveryState.RECOVERING)
    elif not set(part.replicas) <= set(replicas):
        # A replica leaves the partition: a new leader epoch fences it (Kafka's
        # PartitionChangeBuilder bumps it the same way).
        record.leader = part.leader
    if record.isr is None and isr and isr != list(part.isr):
        record.isr = isr
    if replicas != list(part.replicas):
        record.replicas = replicas
    if adding != list(part.adding_replicas):
        record.adding_replicas = adding
    if removing != list(part.removing_replicas):
        record.removing_replicas = removing
    if (target_recovery is not None and record.leader_recovery_state == -1
            and target_recovery != part.leader_recovery_state):
        record.leader_recovery_state = int(target_recovery)
    if (record.leader == NO_LEADER_CHANGE and record.isr is None
            and record.leader_recovery_state == -1 and record.replicas is None
            and record.adding_replicas is None and record.removing_replicas is None):
        return None
    return record


def maybe_complete(replicas: Sequence[int], adding: Sequence[int], removing: Sequence[int],
                   isr: Sequence[int], acceptable: Callable[[int], bool]
                   ) -> tuple[list[int], list[int]] | None:
    """Kafka's PartitionReassignmentReplicas.maybeCompleteReassignment: a reassignment in
    flight completes when the ISR without the removed replicas is not empty and holds every
    target replica; then (target replicas, that ISR), else None. The ISR after completion is
    the whole target, so it never shrinks below ``min.insync.replicas`` unless the target is
    smaller. One more rule keeps the partition led: some member of that ISR must be an
    acceptable leader."""
    if not adding and not removing:
        return None
    gone = set(removing)
    new_isr = [r for r in isr if r not in gone]
    new_replicas = [r for r in replicas if r not in gone]
    if not new_isr or not new_replicas or not set(new_replicas) <= set(new_isr):
        return None
    if not any(acceptable(r) for r in new_isr):
        return None
    return new_replicas, new_isr


def leadership_updates(
    image: MetadataImage,
    config: ControllerConfig,
    *,
    remove: int = NO_LEADER,
    add: int = NO_LEADER,
    only_leaderless: bool = False,
) -> list[Record]:
    """Kafka's generateLeaderAndIsrUpdates: for every partition with ``remove`` in its ISR (or,
    with ``only_leaderless``, every leaderless partition) drop ``remove`` from the ISR (never to
    empty) and elect a leader among active brokers other than ``remove``, counting ``add`` as
    active even while the image still shows it fenced."""

    def acceptable(r: int) -> bool:
        return r != remove and (r == add or is_active(image, r))

    out: list[Record] = []
    for name in sorted(image.topics.by_name):
        topic = image.topics.by_name[name]
        election = Election.UNCLEAN if unclean_enabled(image, config, name) else Election.ONLINE
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            if only_leaderless:
                if p.leader != NO_LEADER:
                    continue
            elif remove not in p.isr:
                continue
            target = [r for r in p.isr if r != remove]
            rec = build_partition_change(topic.topic_id, pid, p,
                                         leader_acceptor(image, p, acceptable),
                                         target_isr=target, election=election)
            if rec is not None:
                out.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
    return out


class RecordBuilder:
    """Records of one operation, with the image they lead to (for steps that must see the
    effect of earlier steps, e.g. fencing two brokers one after the other)."""

    def __init__(self, image: MetadataImage) -> None:
        self.base = image
        self.records: list[Record] = []
        self._image: MetadataImage | None = image

    def add(self, record_type: MetadataRecordType, record: Any) -> None:
        self.records.append((record_type, record))
        self._image = None

    def extend(self, records: Iterable[Record]) -> None:
        for t, r in records:
            self.add(t, r)

    @property
    def image(self) -> MetadataImage:
        if self._image is None:
            delta = MetadataDelta(self.base)
            delta.replay_all(self.records)
            self._image = delta.apply()
        return self._image
