"""Leader-side replication state of one partition: follower progress, ISR and high watermark.

Pure logic, no I/O and no clock: callers pass ``now_ms`` and the leader's log end offset, and
act on what the methods return (an ISR change to send with AlterPartition, a high watermark that
moved). This is the state-machine half of Kafka's ``Partition`` (``updateFollowerFetchState``,
``maybeIncrementLeaderHW``, ``maybeExpandIsr``, ``maybeShrinkIsr``, ``PendingExpandIsr`` /
``PendingShrinkIsr``); ``broker.replica_manager`` owns the log and the network.

ISR changes follow Kafka (KIP-497/KIP-841):

- The committed ISR (``isr``) changes only when the controller answers an AlterPartition (or
  a metadata publish brings a newer partition epoch). While a request is in flight only one is
  outstanding, and the high watermark and ``acks=all`` use the *maximal* ISR: the committed ISR
  plus a replica being added (expansion), or the old, larger ISR during a shrink. So the HW can
  never advance past what a replica that may already be in the committed ISR has.
- ``min.insync.replicas`` before an ``acks=all`` append is checked against the committed ISR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["IsrChange", "PartitionState", "ReplicaState"]

UNKNOWN_OFFSET = -1
NEVER_MS = -(1 << 62)  # "never caught up", whatever clock the caller uses


@dataclass(slots=True)
class ReplicaState:
    """What the leader knows about one follower (Kafka's ``Replica``)."""

    broker_id: int
    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_ms: int = NEVER_MS
    last_fetch_ms: int = NEVER_MS
    # The leader's log end offset when this follower last fetched: fetching at or beyond it
    # later means the follower was caught up at that earlier fetch.
    last_fetch_leader_leo: int = UNKNOWN_OFFSET

    def is_caught_up(self, leader_leo: int, now_ms: int, max_lag_ms: int) -> bool:
        return self.log_end_offset == leader_leo or now_ms - self.last_caught_up_ms <= max_lag_ms


@dataclass(frozen=True, slots=True)
class IsrChange:
    """An AlterPartition proposal: the new ISR at the given leader and partition epochs."""

    new_isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int
    expanding: bool


@dataclass(slots=True)
class PartitionState:
    """Replication state of a partition on this broker, as leader or follower."""

    local_id: int
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    leader: int = -1
    leader_epoch: int = -1
    partition_epoch: int = -1
    high_watermark: int = 0
    # Offset at which the current leader epoch started on this leader (KIP-101).
    leader_epoch_start_offset: int = 0
    followers: dict[int, ReplicaState] = field(default_factory=dict)
    pending: IsrChange | None = None

    # -- roles --------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader == self.local_id

    def update(self, replicas: Iterable[int], isr: Iterable[int], leader: int,
               leader_epoch: int, partition_epoch: int, *, log_end_offset: int,
               now_ms: int) -> bool:
        """Apply a partition registration from metadata. Returns True if this is a new leader
        epoch (or a new role), i.e. followers must be reset / a follower must truncate.

        A registration that is not newer than what we hold (a stale publish after an
        AlterPartition answer) is ignored."""
        if leader_epoch < self.leader_epoch or (
                leader_epoch == self.leader_epoch and partition_epoch <= self.partition_epoch):
            return False
        new_epoch = leader_epoch != self.leader_epoch or leader != self.leader
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.leader = leader
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.pending = None  # the committed state wins over any in-flight proposal
        if self.is_leader:
            if new_epoch:
                self.leader_epoch_start_offset = log_end_offset
                # Kafka resets every follower; ISR members count as caught up now, so they are
                # not shrunk before they had a chance to fetch from the new leader.
                self.followers = {
                    r: ReplicaState(r, last_caught_up_ms=now_ms if r in self.isr else NEVER_MS)
                    for r in self.replicas if r != self.local_id}
            else:
                for r in self.replicas:
                    if r != self.local_id and r not in self.followers:
                        self.followers[r] = ReplicaState(r)
                for r in list(self.followers):
                    if r not in self.replicas:
                        del self.followers[r]
        else:
            self.followers = {}
        return new_epoch

    # -- ISR ----------------------------------------------------------------------------------

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The ISR the HW and acks=all go by: committed, widened by an in-flight change."""
        p = self.pending
        if p is None:
            return self.isr
        if p.expanding:
            return tuple(sorted(set(self.isr) | set(p.new_isr)))
        return self.isr  # shrinking: the old, larger set until the controller commits

    def under_min_isr(self, min_insync_replicas: int) -> bool:
        return len(self.isr) < min_insync_replicas

    def update_follower(self, replica_id: int, fetch_offset: int, leader_leo: int,
                        now_ms: int) -> bool:
        """A follower fetched at ``fetch_offset`` (= its log end offset). Returns False if the
        replica is not a follower of this partition."""
        r = self.followers.get(replica_id)
        if r is None:
            return False
        if fetch_offset >= leader_leo:
            r.last_caught_up_ms = now_ms
        elif fetch_offset >= r.last_fetch_leader_leo >= 0:
            r.last_caught_up_ms = max(r.last_caught_up_ms, r.last_fetch_ms)
        r.log_end_offset = fetch_offset
        r.last_fetch_leader_leo = leader_leo
        r.last_fetch_ms = now_ms
        return True

    def idle_fetch(self, replica_id: int, fetch_offset: int, leader_leo: int,
                   now_ms: int) -> bool:
        """The cheap path of ``update_follower`` for the common idle case: an in-sync
        follower fetching at the log end it already had, with the HW there too. Only its
        clocks move; neither the HW nor the ISR can change. False (nothing recorded) for any
        other fetch, which then takes the full path."""
        r = self.followers.get(replica_id)
        if (r is None or fetch_offset != leader_leo or r.log_end_offset != fetch_offset
                or self.high_watermark != leader_leo or replica_id not in self.isr):
            return False
        r.last_caught_up_ms = r.last_fetch_ms = now_ms
        r.last_fetch_leader_leo = leader_leo
        return True

    def maybe_increment_hw(self, leader_leo: int, now_ms: int, max_lag_ms: int) -> bool:
        """HW = min log end offset of the maximal ISR (and of caught-up replicas about to
        join it). Never moves backwards. True if it moved."""
        if not self.is_leader:
            return False
        new_hw = leader_leo
        isr = self.maximal_isr
        for r in self.followers.values():
            if r.log_end_offset < new_hw and (
                    r.broker_id in isr or r.is_caught_up(leader_leo, now_ms, max_lag_ms)):
                new_hw = r.log_end_offset
        if new_hw > self.high_watermark:
            self.high_watermark = new_hw
            return True
        return False

    def expand_candidate(self, replica_id: int, eligible: bool) -> IsrChange | None:
        """The AlterPartition proposal adding ``replica_id`` if it has caught up (to the HW
        and to the start of this leader's epoch) and ``eligible`` (registered, not fenced,
        not shutting down)."""
        if not self.is_leader or self.pending is not None or replica_id in self.isr:
            return None
        r = self.followers.get(replica_id)
        if r is None or not eligible:
            return None
        if r.log_end_offset < self.high_watermark or (
                r.log_end_offset < self.leader_epoch_start_offset):
            return None
        new_isr = tuple(sorted((*self.isr, replica_id)))
        return IsrChange(new_isr, self.leader_epoch, self.partition_epoch, expanding=True)

    def shrink_candidate(self, leader_leo: int, now_ms: int, max_lag_ms: int
                         ) -> IsrChange | None:
        """The AlterPartition proposal removing ISR followers that have not caught up within
        ``max_lag_ms``."""
        if not self.is_leader or self.pending is not None:
            return None
        out = {r for r in self.isr if r != self.local_id and (
            (st := self.followers.get(r)) is None
            or not st.is_caught_up(leader_leo, now_ms, max_lag_ms))}
        if not out:
            return None
        new_isr = tuple(r for r in self.isr if r not in out)
        return IsrChange(new_isr, self.leader_epoch, self.partition_epoch, expanding=False)

    def begin_isr_change(self, change: IsrChange) -> None:
        assert self.pending is None, "one AlterPartition in flight per partition"
        self.pending = change

    def complete_isr_change(self, change: IsrChange, *, leader_epoch: int, isr: Iterable[int],
                            partition_epoch: int) -> bool:
        """The controller accepted ``change``: adopt its ISR and partition epoch (unless a
        metadata publish already brought something newer). True if applied."""
        if self.pending is change:
            self.pending = None
        if leader_epoch != self.leader_epoch or partition_epoch <= self.partition_epoch:
            return False
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        return True

    def fail_isr_change(self, change: IsrChange) -> None:
        """The controller refused or did not answer: back to the committed state (the next
        check proposes again if it is still needed)."""
        if self.pending is change:
            self.pending = None
