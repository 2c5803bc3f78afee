"""Leader-side replication state of one partition: follower progress, ISR and high watermark.

Pure logic, no I/O and no clock: callers pass ``now_ms`` and the leader's log end offset, and
act on what the methods return (an ISR change to send with AlterPartition, a high watermark that
moved). This is the state-machine half of Kafka's ``Partition`` (``updateFollowerFetchState``,
``maybeIncrementLeaderHW``, ``maybeExpandIsr``, ``maybeShrinkIsr``, ``PendingExpandIsr`` /
``PendingShrinkIsr``); ``broker.replication.replica_manager`` owns the log and the network.

ISR changes follow Kafka (KIP-497/KIP-841):

- The committed ISR (``isr``) changes only when the controller answers an AlterPartition (or
  a metadata publish brings a newer partition epoch). While a request is in flight only one is
  outstanding, and the high watermark and ``acks=all`` use the *maximal* ISR: the committed ISR
  plus a replica being added (expansion), or the old, larger ISR during a shrink. So the HW can
  never advance past what a replica that may already be in the committed ISR has.
- ``min.insync.replicas`` before an ``acks=all`` append is checked against the committed ISR.

``Partition`` is one replica on this broker: its log (with the leader-epoch cache), its
idempotent-producer state and its ``PartitionState``. The replica manager and the fetcher
change a replica only through it.

The same module holds the rest of the replication decisions, so that the seeded data-plane
simulation (tests/sim/replication.py) runs them as the broker does: becoming leader or follower
(the leader-epoch cache entry of a new epoch), produce admission and ``acks=all`` completion,
what a fetch may read (offset range, KIP-101 divergence, follower progress), and on the follower
the KIP-101/KIP-279 truncation point, its high watermark and what to do when its fetch offset is
out of the leader's range. Logs are seen through ``ReplicaLog`` (``storage.log.PartitionLog``
in the broker, an in-memory log in the simulation); whoever calls these functions does the I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from storage.control_records import control_markers
from storage.error_codes import ErrorCode
from storage.leader_epoch import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
from storage.log import PartitionLog
from storage.log_append import LogAppendInfo
from storage.producer_state import ProducerStateManager, batch_headers, txn_index_writer
from storage.record_batch import CONTROL_MASK, BatchHeader

__all__ = [
    "EpochCache", "FetchPosition", "IsrChange", "OutOfRange", "Partition", "PartitionState",
    "ReplicaLog",
    "ReplicaState", "follower_high_watermark", "out_of_range_action", "truncation_point",
]

UNKNOWN_OFFSET = -1
NEVER_MS = -(1 << 62)  # "never caught up", whatever clock the caller uses
# AlterPartition answers (``PartitionState.isr_change_failed``): the change was not applied;
# newer partition metadata will come and settle it.
_NOT_APPLIED = frozenset({ErrorCode.OPERATION_NOT_ATTEMPTED, ErrorCode.INELIGIBLE_REPLICA})
_AWAIT_METADATA = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID,
    ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.INVALID_UPDATE_VERSION, ErrorCode.INVALID_REQUEST,
    ErrorCode.NEW_LEADER_ELECTED,
})


class EpochCache(Protocol):
    """The leader-epoch cache (``storage.leader_epoch.LeaderEpochFileCache``)."""

    @property
    def latest_epoch(self) -> int | None: ...

    def assign(self, epoch: int, start_offset: int) -> None: ...

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]: ...


class ReplicaLog(Protocol):
    """What the replication decisions read of a partition's log."""

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    @property
    def leader_epoch_cache(self) -> EpochCache | None: ...


class Registration(Protocol):
    """A partition's registration in the metadata (``kraft.image.PartitionRegistration``)."""

    @property
    def replicas(self) -> tuple[int, ...]: ...

    @property
    def isr(self) -> tuple[int, ...]: ...

    @property
    def leader(self) -> int: ...

    @property
    def leader_epoch(self) -> int: ...

    @property
    def partition_epoch(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FetchPosition:
    """What the leader may answer a fetch at some offset with (``PartitionState.fetch_position``).

    ``error`` NONE with ``diverging_epoch`` set: the fetcher's log diverged; tell it where our
    epoch ends and send nothing. Else read from the fetch offset up to ``max_offset`` (None:
    the log end, for a follower) unless ``read`` is False (nothing readable yet)."""

    error: ErrorCode
    diverging_epoch: tuple[int, int] | None = None
    max_offset: int | None = None
    read: bool = False
    hw_moved: bool = False  # the fetch moved the high watermark: wake produce waiters
    # A follower's new position was recorded: the caller considers an ISR expansion.
    progress: bool = False


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
    # The follower's log start offset, as its last fetch reported it (the low watermark).
    log_start_offset: int = UNKNOWN_OFFSET

    def is_caught_up(self, leader_leo: int, now_ms: int, max_lag_ms: int) -> bool:
        return self.log_end_offset == leader_leo or now_ms - self.last_caught_up_ms <= max_lag_ms


@dataclass(frozen=True, slots=True)
class IsrChange:
    """An AlterPartition proposal: the new ISR at the given leader and partition epochs.

    ``broker_epochs``: each member's broker epoch (-1: unknown) as the leader knew it when it
    proposed the change, sent unchanged with every retry (KIP-903, Kafka's
    ``PendingExpandIsr``): the controller then refuses to add a replica that has restarted
    since, whose log may have lost unflushed records the leader counted. Epochs read again at
    each retry would name the new incarnation and let it in with the old one's progress."""

    new_isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int
    expanding: bool
    broker_epochs: tuple[int, ...] = ()

    def isr_with_epochs(self) -> list[tuple[int, int]]:
        """(broker id, broker epoch or -1) for each member of the proposed ISR."""
        epochs = self.broker_epochs or (-1,) * len(self.new_isr)
        return list(zip(self.new_isr, epochs, strict=True))


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

    def become_leader(self, reg: Registration, log: ReplicaLog, now_ms: int) -> bool:
        """Apply a registration that names us leader. A new leader epoch starts at our log end
        in the leader-epoch cache (so OffsetsForLeaderEpoch answers the previous epoch with the
        offset where this one starts). True if it is a new epoch or role."""
        new_epoch = self.update(reg.replicas, reg.isr, reg.leader, reg.leader_epoch,
                                reg.partition_epoch, log_end_offset=log.log_end_offset,
                                now_ms=now_ms)
        if new_epoch:
            cache = log.leader_epoch_cache
            if cache is not None and (cache.latest_epoch is None
                                      or cache.latest_epoch < reg.leader_epoch):
                cache.assign(reg.leader_epoch, log.log_end_offset)
        return new_epoch

    def become_follower(self, reg: Registration, log: ReplicaLog, now_ms: int) -> bool:
        """Apply a registration that names another leader (or none). True if it is a new
        epoch or role: the fetcher must truncate (KIP-101) before fetching again."""
        new_epoch = self.update(reg.replicas, reg.isr, reg.leader, reg.leader_epoch,
                                reg.partition_epoch, log_end_offset=log.log_end_offset,
                                now_ms=now_ms)
        self.high_watermark = min(self.high_watermark, log.log_end_offset)
        return new_epoch

    # -- produce ------------------------------------------------------------------------------

    def check_leader_epoch(self, current_leader_epoch: int) -> ErrorCode:
        """A request's view of the leader epoch against ours (-1: the client does not say)."""
        if current_leader_epoch < 0 or current_leader_epoch == self.leader_epoch:
            return ErrorCode.NONE
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    def produce_admission(self, acks: int, min_insync_replicas: int) -> ErrorCode:
        """May a produce with ``acks`` be appended here now? ``acks=all`` needs at least
        ``min.insync.replicas`` in the committed ISR (Kafka checks before the append)."""
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if acks == -1 and self.under_min_isr(min_insync_replicas):
            return ErrorCode.NOT_ENOUGH_REPLICAS
        return ErrorCode.NONE

    def produce_status(self, leader_epoch: int, last_offset: int,
                       min_insync_replicas: int) -> ErrorCode | None:
        """``acks=all``: None while waiting for the high watermark to pass ``last_offset``
        (appended at ``leader_epoch``), else the answer."""
        if not self.is_leader or self.leader_epoch != leader_epoch:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.high_watermark > last_offset:
            if len(self.maximal_isr) < min_insync_replicas:
                return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
            return ErrorCode.NONE
        return None

    # -- fetch --------------------------------------------------------------------------------

    def fetch_position(self, log: ReplicaLog, *, fetch_offset: int, last_fetched_epoch: int,
                       replica_id: int, now_ms: int, max_lag_ms: int,
                       eligible: Callable[[int], bool] | None = None) -> FetchPosition:
        """A fetch of this partition (we lead it): consumers may read up to the high
        watermark, followers up to the log end. A follower's fetch offset is its log end:
        record it, which may move the high watermark (the caller then considers an ISR
        expansion with ``expand_candidate``)."""
        leo = log.log_end_offset
        if fetch_offset < log.log_start_offset or fetch_offset > leo:
            return FetchPosition(ErrorCode.OFFSET_OUT_OF_RANGE)
        cache = log.leader_epoch_cache
        if last_fetched_epoch >= 0 and fetch_offset > 0 and cache is not None:
            epoch, end = cache.end_offset_for(last_fetched_epoch, leo)
            if end >= 0 and (epoch < last_fetched_epoch or end < fetch_offset):
                # The fetcher's log diverged from ours: tell it where our epoch ends.
                return FetchPosition(ErrorCode.NONE, diverging_epoch=(epoch, end))
        hw_moved = False
        if replica_id >= 0:
            if self.idle_fetch(replica_id, fetch_offset, leo, now_ms):
                return FetchPosition(ErrorCode.NONE)
            if not self.update_follower(replica_id, fetch_offset, leo, now_ms):
                return FetchPosition(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            hw_moved = self.maybe_increment_hw(leo, now_ms, max_lag_ms, eligible)
            max_offset = None
        else:
            max_offset = self.high_watermark
        end = leo if max_offset is None else max_offset
        return FetchPosition(ErrorCode.NONE, max_offset=max_offset, read=fetch_offset < end,
                             hw_moved=hw_moved, progress=replica_id >= 0)

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

    def maybe_increment_hw(self, leader_leo: int, now_ms: int, max_lag_ms: int,
                           eligible: Callable[[int], bool] | None = None) -> bool:
        """HW = min log end offset of the maximal ISR (and of caught-up replicas about to
        join it, if ``eligible`` to: registered, not fenced, not shutting down, as in Kafka's
        maybeIncrementLeaderHW; None: every replica is). Never moves backwards. True if it
        moved. A broker fenced after it died was caught up until then: without the
        eligibility check it would hold acks=all produces for ``max_lag_ms`` after the
        controller took it out of the ISR."""
        if not self.is_leader:
            return False
        new_hw = leader_leo
        isr = self.maximal_isr
        for r in self.followers.values():
            if r.log_end_offset < new_hw and (r.broker_id in isr or (
                    r.is_caught_up(leader_leo, now_ms, max_lag_ms)
                    and (eligible is None or eligible(r.broker_id)))):
                new_hw = r.log_end_offset
        if new_hw > self.high_watermark:
            self.high_watermark = new_hw
            return True
        return False

    def expand_candidate(self, replica_id: int, eligible: bool,
                         broker_epoch: Callable[[int], int] | None = None
                         ) -> IsrChange | None:
        """The AlterPartition proposal adding ``replica_id`` if it has caught up (to the HW
        and to the start of this leader's epoch) and ``eligible`` (registered, not fenced,
        not shutting down). ``broker_epoch``: a broker's epoch as the leader knows it now,
        recorded in the proposal (``IsrChange.broker_epochs``)."""
        if not self.is_leader or self.pending is not None or replica_id in self.isr:
            return None
        r = self.followers.get(replica_id)
        if r is None or not eligible:
            return None
        if r.log_end_offset < self.high_watermark or (
                r.log_end_offset < self.leader_epoch_start_offset):
            return None
        new_isr = tuple(sorted((*self.isr, replica_id)))
        return IsrChange(new_isr, self.leader_epoch, self.partition_epoch, expanding=True,
                         broker_epochs=_epochs(new_isr, broker_epoch))

    def shrink_candidate(self, leader_leo: int, now_ms: int, max_lag_ms: int,
                         broker_epoch: Callable[[int], int] | None = None
                         ) -> IsrChange | None:
        """The AlterPartition proposal removing ISR followers that have not caught up within
        ``max_lag_ms`` (``broker_epoch`` as for ``expand_candidate``)."""
        if not self.is_leader or self.pending is not None:
            return None
        out = {r for r in self.isr if r != self.local_id and (
            (st := self.followers.get(r)) is None
            or not st.is_caught_up(leader_leo, now_ms, max_lag_ms))}
        if not out:
            return None
        new_isr = tuple(r for r in self.isr if r not in out)
        return IsrChange(new_isr, self.leader_epoch, self.partition_epoch, expanding=False,
                         broker_epochs=_epochs(new_isr, broker_epoch))

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

    def isr_change_failed(self, change: IsrChange, error: ErrorCode | None) -> bool:
        """The controller refused ``change`` with ``error``, or did not answer (``error`` None:
        a timeout, a lost connection). Returns True if the request must be sent again.

        Kafka's Partition.handleAlterPartitionError: the proposal may have been applied even
        when no answer came, so the leader keeps it pending, and the high watermark on its
        maximal ISR, until it knows. Falling back to the committed ISR after an expansion
        that the controller did apply would let the high watermark pass the added replica's
        log end while the controller counts it in the ISR, and elect it later without those
        records. Only when the controller says the request was not applied (and could not be,
        by any controller) does the leader fall back; when the answer means newer metadata is
        on its way (another leader or partition epoch, an unknown partition), it waits for
        that metadata, which clears the proposal (``update``)."""
        if self.pending is not change:
            return False
        if error in _NOT_APPLIED:
            self.pending = None
            return False
        return error not in _AWAIT_METADATA


def _epochs(isr: tuple[int, ...], broker_epoch: Callable[[int], int] | None
            ) -> tuple[int, ...]:
    return () if broker_epoch is None else tuple(broker_epoch(b) for b in isr)


# -- follower -------------------------------------------------------------------------------


def truncation_point(log: ReplicaLog, high_watermark: int, leader_epoch: int,
                     leader_end: int) -> tuple[int | None, bool]:
    """Where a follower truncates, given the leader's OffsetsForLeaderEpoch answer
    (``leader_epoch``, ``leader_end``) for our latest epoch (KIP-101, KIP-279).

    Returns (offset to truncate to, or None for no truncation; done). ``done`` False: we do not
    have the leader's epoch, so cut to the end of our largest epoch below it and ask again with
    our (now smaller) latest epoch."""
    leo = log.log_end_offset
    if leader_end == UNDEFINED_EPOCH_OFFSET:
        # The leader knows nothing at or below our epoch: fall back to our HW (Kafka).
        return high_watermark, True
    if leader_epoch == UNDEFINED_EPOCH:
        return min(leader_end, leo), True
    cache = log.leader_epoch_cache
    ours = None if cache is None else cache.end_offset_for(leader_epoch, leo)
    if ours is None or ours[0] == UNDEFINED_EPOCH:
        return min(leader_end, leo), True
    if ours[0] != leader_epoch:
        return min(ours[1], leo), False
    return min(ours[1], leader_end, leo), True


def follower_high_watermark(leader_high_watermark: int, log: ReplicaLog) -> int:
    """A follower's high watermark after a fetch: the leader's, capped by what we hold."""
    return max(min(leader_high_watermark, log.log_end_offset), log.log_start_offset)


@dataclass(frozen=True, slots=True)
class OutOfRange:
    """What a follower does when its fetch offset is outside the leader's log: ``truncate`` to
    ``offset`` (the leader is behind us: only after an unclean election), ``restart`` the log
    empty at ``offset`` (we are below the leader's log start), or neither (back off)."""

    truncate: int | None = None
    restart: int | None = None


def out_of_range_action(log: ReplicaLog, leader_start: int, leader_end: int) -> OutOfRange:
    leo = log.log_end_offset
    if leader_end < leo:
        return OutOfRange(truncate=leader_end)
    if leo < leader_start:
        return OutOfRange(restart=leader_start)
    return OutOfRange()


# -- one replica -----------------------------------------------------------------------------


def batch_flags(headers: Iterable[BatchHeader]) -> tuple[bool, bool]:
    """(any batch from an idempotent or transactional producer, any control batch), in one
    pass: only those requests touch the producer state."""
    producers = control = False
    for h in headers:
        if h.producer_id >= 0:
            producers = True
        if h.attributes & CONTROL_MASK:
            control = True
    return producers, control



class Partition:
    """One partition replica on this broker: its log (which snapshots the producer state at
    every segment roll, before the new segment's first batch), its idempotent-producer state
    and its replication state. Times come in as arguments."""

    __slots__ = ("log", "partition", "producers", "state", "topic", "topic_id")

    def __init__(self, topic: str, partition: int, topic_id: uuid.UUID, log: PartitionLog,
                 state: PartitionState, producers: ProducerStateManager) -> None:
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.log = log
        self.state = state
        self.producers = producers
        log.on_roll = producers.take_snapshot
        # Appends the flush policy wants fsynced are group-committed off the event loop and
        # answered once durable (``PartitionLog.flush_wait``, storage/log_flush.py).
        log.defer_flush = True

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def append(self, records: Any, headers: list[BatchHeader], *, assign_offsets: bool,
               leader_epoch: int | None = None,
               flags: tuple[bool, bool] | None = None) -> LogAppendInfo:
        """Append to the log (as leader: ``assign_offsets`` at ``leader_epoch``), then apply
        the batches to the producer state. ``flags``: ``batch_flags(headers)`` if the caller
        already has them."""
        kwargs: dict[str, Any] = {"assign_offsets": assign_offsets}
        if leader_epoch is not None:
            kwargs["leader_epoch"] = leader_epoch
        info = self.log.append(records, headers=headers, **kwargs)
        producers, control = batch_flags(headers) if flags is None else flags
        if producers:
            markers = None
            if control:
                markers = control_markers(records, headers)
            self.producers.on_append(
                headers, first_offset=info.first_offset if assign_offsets else None,
                log_append_time_ms=info.log_append_time_ms, markers=markers,
                on_completed=txn_index_writer(self.log) if markers else None)
        return info

    def last_stable_offset(self) -> int:
        """Kafka's LSO: the high watermark, held back by undecided transactions."""
        hw = self.state.high_watermark
        lso = self.producers.last_stable_offset(hw)
        # Kafka: never below the log start (DeleteRecords may pass an open transaction).
        return lso if lso >= self.log.log_start_offset else min(self.log.log_start_offset, hw)

    def append_fetched(self, records: Any, leader_high_watermark: int,
                       leader_log_start: int) -> Coroutine[Any, Any, None] | None:
        """A follower's fetch answer: append the leader's batches (with its offsets), take the
        leader's high watermark as far as we hold it, and follow its log start. Errors of the
        append (``StorageError``, ``OSError``) propagate; a failed log-start move does not
        stop replication and is only reported (``StorageError``/``OSError`` again).

        Returns the wait for the fsync the flush policy asks for (``PartitionLog.flush_wait``),
        or None: the follower awaits it before its next fetch reports the new log end."""
        log = self.log
        durable = None
        if records is not None and len(records) > 0:
            info = self.append(records, batch_headers(records), assign_offsets=False)
            durable = log.flush_wait(info.last_offset + 1)
        self.state.high_watermark = follower_high_watermark(leader_high_watermark, log)
        if leader_log_start > log.log_start_offset:
            try:
                log.maybe_increment_log_start_offset(min(leader_log_start, log.log_end_offset))
            except BaseException:
                if durable is not None:
                    durable.close()
                raise
        return durable

    def delete_records_before(self, offset: int) -> bool:
        """DeleteRecords on the leader: move the log start to ``offset`` (deleting the segments
        wholly below it) and drop producer state below it. True if the start moved."""
        if not self.log.maybe_increment_log_start_offset(offset):
            return False
        self.producers.on_log_start_offset_incremented(self.log.log_start_offset)
        return True

    def truncate(self, offset: int, now_ms: int) -> None:
        """Truncate the log to ``offset``, or restart it empty there when ``offset`` is outside
        it (below its start, or past its end: behind the leader's log start); the producer
        state follows, and the high watermark stays within the log."""
        log = self.log
        if offset < log.log_start_offset or offset > log.log_end_offset:
            log.truncate_fully_and_start_at(offset)
            self.producers.truncate_fully_and_start_at(offset)
        elif log.truncate_to(offset):
            self.producers.rebuild_from_log(log, now_ms)
        self.state.high_watermark = min(self.state.high_watermark, log.log_end_offset)

    def restart_at(self, offset: int, now_ms: int) -> None:
        """Start the log over, empty, at ``offset`` (the leader's log start, above our log
        end): everything below it is committed on the leader."""
        self.truncate(offset, now_ms)
        self.state.high_watermark = offset

    def __repr__(self) -> str:
        s = self.state
        return (f"Partition({self.topic}-{self.partition}, leader={s.leader}, "
                f"epoch={s.leader_epoch}, isr={s.isr}, hw={s.high_watermark}, "
                f"leo={self.log.log_end_offset})")
