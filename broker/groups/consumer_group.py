"""A consumer group of the new protocol (KIP-848): its epochs, members, target assignment and
which member owns each partition, and the reconciliation of one member towards its target
(Kafka's CurrentAssignmentBuilder). Plain data and pure functions; the heartbeat protocol that
changes them is ``broker.groups.consumer_coordinator``.

Three epochs: the group epoch goes up whenever the group's members or their subscriptions (or
the subscribed topics' partitions) change; the assignment epoch is the group epoch the target
assignment was computed for; a member's epoch is the assignment epoch it has reconciled to. A
member moving to a new target first revokes what it must give up (UNREVOKED_PARTITIONS, its
epoch unchanged); it gets a partition only once no other member owns it (a partition another
member still owns leaves it in UNRELEASED_PARTITIONS until that member's heartbeat shows it
gave it up). So no partition is ever owned by two members at once.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass, field

from broker.groups.group import CommittedOffset

__all__ = [
    "LEAVE_EPOCH",
    "STATIC_LEAVE_EPOCH",
    "Assignment",
    "ConsumerGroup",
    "ConsumerGroupState",
    "ConsumerMember",
    "MemberState",
    "copy_assignment",
    "reconcile",
]

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

# topic id -> partitions
Assignment = dict[uuid.UUID, set[int]]
TopicPartition = tuple[uuid.UUID, int]


class MemberState(enum.IntEnum):
    """Kafka's MemberState (its byte is stored in ConsumerGroupCurrentMemberAssignmentValue)."""

    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


def copy_assignment(a: dict[uuid.UUID, set[int]] | None) -> Assignment:
    return {t: set(ps) for t, ps in (a or {}).items() if ps}


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = -1
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_deadline_ms: int = 0
    # Set while the member has partitions to revoke: it is fenced if it has not by then.
    revocation_deadline_ms: int | None = None

    def copy(self) -> ConsumerMember:
        return dataclasses.replace(self, assigned=copy_assignment(self.assigned),
                                   pending_revocation=copy_assignment(self.pending_revocation))


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    target: dict[str, Assignment] = field(default_factory=dict)
    # (topic id, partition) -> member id owning it (assigned or pending revocation)
    owners: dict[TopicPartition, str] = field(default_factory=dict)
    # Subscribed topics as last seen: name -> (topic id, partitions)
    subscription_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    state_timestamp_ms: int = -1
    dead: bool = False
    # What changed since the records were last written (``consumer_records.drain_records``).
    dirty_group: bool = False
    dirty_partition_metadata: bool = False
    dirty_target: set[str] = field(default_factory=set)
    dirty_current: set[str] = field(default_factory=set)
    dirty_members: set[str] = field(default_factory=set)
    removed_members: set[str] = field(default_factory=set)

    @property
    def state(self) -> ConsumerGroupState:
        if self.dead:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE
               for m in self.members.values()):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def partition_owner(self, tid: uuid.UUID, p: int) -> str | None:
        return self.owners.get((tid, p))

    def update_member(self, new: ConsumerMember) -> None:
        """Install ``new`` (replacing the member of the same id) and its partition ownership."""
        old = self.members.get(new.member_id)
        if old is not None:
            self._release(old)
        self.members[new.member_id] = new
        if new.instance_id is not None:
            self.static_members[new.instance_id] = new.member_id
        for a in (new.assigned, new.pending_revocation):
            for tid, ps in a.items():
                for p in ps:
                    self.owners[(tid, p)] = new.member_id

    def remove_member(self, member_id: str) -> ConsumerMember | None:
        m = self.members.pop(member_id, None)
        if m is None:
            return None
        self._release(m)
        self.target.pop(member_id, None)
        if m.instance_id is not None and self.static_members.get(m.instance_id) == member_id:
            del self.static_members[m.instance_id]
        self.dirty_members.discard(member_id)
        self.dirty_current.discard(member_id)
        self.dirty_target.discard(member_id)
        self.removed_members.add(member_id)
        return m

    def _release(self, m: ConsumerMember) -> None:
        for a in (m.assigned, m.pending_revocation):
            for tid, ps in a.items():
                for p in ps:
                    if self.owners.get((tid, p)) == m.member_id:
                        del self.owners[(tid, p)]

    def subscribed_topic_names(self) -> set[str]:
        return {t for m in self.members.values() for t in m.subscribed_topic_names}


def _owns_any(owned: dict[uuid.UUID, set[int]] | None, revoking: Assignment) -> bool:
    """Whether the member (by the partitions its heartbeat reports) still owns any of
    ``revoking``; an unreported set (null: unchanged) counts as still owning them."""
    if owned is None:
        return True
    return any(p in revoking.get(tid, ()) for tid, ps in owned.items() for p in ps)


def reconcile(member: ConsumerMember, target_epoch: int, target: Assignment,
              group: ConsumerGroup, owned: dict[uuid.UUID, set[int]] | None
              ) -> ConsumerMember:
    """The member's next state towards ``target`` (Kafka's CurrentAssignmentBuilder.build);
    ``owned`` is what its heartbeat reports (None: not reported). Returns ``member`` itself
    when nothing changes, else a new member."""
    if member.state == MemberState.STABLE:
        if member.member_epoch == target_epoch:
            return member
        return _next(member, member.member_epoch, target_epoch, target, group, owned)
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        if _owns_any(owned, member.pending_revocation):
            return member
        return _next(member, member.member_epoch + 1, target_epoch, target, group, owned)
    if member.state == MemberState.UNRELEASED_PARTITIONS:
        return _next(member, member.member_epoch, target_epoch, target, group, owned)
    return _next(member, target_epoch, target_epoch, target, group, owned)


def _next(member: ConsumerMember, epoch: int, target_epoch: int, target: Assignment,
          group: ConsumerGroup, owned: dict[uuid.UUID, set[int]] | None) -> ConsumerMember:
    unreleased = False
    assigned: Assignment = {}
    revoking: Assignment = {}
    pending: Assignment = {}
    for tid in set(target) | set(member.assigned):
        want = target.get(tid, set())
        have = member.assigned.get(tid, set())
        keep = have & want
        give = have - keep
        add = want - keep
        # A partition still owned by anyone (this member too, while revoking it) waits.
        free = {p for p in add if group.partition_owner(tid, p) is None}
        if free != add:
            unreleased = True
        if keep:
            assigned[tid] = keep
        if give:
            revoking[tid] = give
        if free:
            pending[tid] = free
    new = member.copy()
    if revoking and _owns_any(owned, revoking):
        new.state = MemberState.UNREVOKED_PARTITIONS
        _set_epoch(new, epoch)
        new.assigned = assigned
        new.pending_revocation = revoking
        return new
    for tid, ps in pending.items():
        assigned.setdefault(tid, set()).update(ps)
    new.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    _set_epoch(new, target_epoch)
    new.assigned = assigned
    new.pending_revocation = {}
    return new


def _set_epoch(m: ConsumerMember, epoch: int) -> None:
    if epoch != m.member_epoch:
        m.previous_member_epoch = m.member_epoch
        m.member_epoch = epoch
