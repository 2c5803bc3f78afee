"""Transactional offset commits (KIP-98, KIP-447), the pure rules.

TxnOffsetCommit writes a group's offsets into ``__consumer_offsets`` inside the producer's
transaction. Until the transaction marker reaches that partition they are *pending* per
(producer id, group): invisible to OffsetFetch (OffsetFetch with require_stable answers
UNSTABLE_OFFSET_COMMIT for them), never expired, and they keep their group alive. A COMMIT
marker makes them the committed offsets, an ABORT marker drops them (Kafka's
OffsetMetadataManager.replayEndTransactionMarker). Precedence: of a transactional and a plain
commit of one partition, the record written later in the log wins (``record_offset``), so a plain
commit written after the transactional one stays. A tombstone of a partition (OffsetDelete,
DeleteGroups, a deleted topic) drops its pending offsets too.

``PendingTxnOffsets`` is the store; ``TxnOffsets`` is a base of ``GroupCoordinator`` with the
TxnOffsetCommit checks (Kafka's validateTransactionalOffsetCommit) and marker completion. The I/O
(writing the transactional batch, the marker hook, replaying on load) is in
``broker.groups.txn_offset_apis`` and ``broker.groups.metadata_manager``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.groups.consumer_group import ConsumerGroup
from broker.groups.group import CommittedOffset, Group, GroupState
from broker.protocol.errors import ErrorCode

__all__ = ["Offsets", "PendingTxnOffsets", "TxnOffsets", "newer"]

Offsets = dict[tuple[str, int], CommittedOffset]


def newer(candidate: CommittedOffset, current: CommittedOffset | None) -> bool:
    """Whether ``candidate`` replaces ``current``: it was written later (an unknown record
    offset, -1, always replaces and is always replaced)."""
    return (current is None or candidate.record_offset < 0 or current.record_offset < 0
            or candidate.record_offset > current.record_offset)


class PendingTxnOffsets:
    """Pending transactional offsets: producer id -> group -> partition -> offset."""

    def __init__(self) -> None:
        self.by_producer: dict[int, dict[str, Offsets]] = {}
        self._producers_of: dict[str, set[int]] = {}  # group -> producers with pending offsets

    def add(self, producer_id: int, group_id: str, offsets: Offsets) -> None:
        if not offsets:
            return
        self.by_producer.setdefault(producer_id, {}).setdefault(group_id, {}).update(offsets)
        self._producers_of.setdefault(group_id, set()).add(producer_id)

    def _drop_if_empty(self, producer_id: int, group_id: str) -> None:
        groups = self.by_producer.get(producer_id)
        if groups is not None and not groups.get(group_id, True):
            del groups[group_id]
            pids = self._producers_of.get(group_id)
            if pids is not None:
                pids.discard(producer_id)
                if not pids:
                    del self._producers_of[group_id]
        if groups is not None and not groups:
            del self.by_producer[producer_id]

    def discard(self, producer_id: int, group_id: str, offsets: Offsets) -> None:
        """Forget entries of a failed write (only those still holding these very offsets)."""
        held = self.by_producer.get(producer_id, {}).get(group_id)
        if held is None:
            return
        for tp, o in offsets.items():
            if held.get(tp) is o:
                del held[tp]
        self._drop_if_empty(producer_id, group_id)

    def complete(self, producer_id: int, in_scope: Callable[[str], bool]) -> dict[str, Offsets]:
        """Remove and return the producer's pending offsets of the groups ``in_scope`` (a
        marker completes the groups of its own ``__consumer_offsets`` partition only)."""
        groups = self.by_producer.get(producer_id)
        if not groups:
            return {}
        out = {gid: offs for gid, offs in groups.items() if in_scope(gid)}
        for gid in out:
            del groups[gid]
            pids = self._producers_of.get(gid)
            if pids is not None:
                pids.discard(producer_id)
                if not pids:
                    del self._producers_of[gid]
        if not groups:
            del self.by_producer[producer_id]
        return out

    def has_group(self, group_id: str) -> bool:
        return group_id in self._producers_of

    def groups(self) -> list[str]:
        return list(self._producers_of)

    def partitions_of(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with a pending transactional offset."""
        out: set[tuple[str, int]] = set()
        for pid in self._producers_of.get(group_id, ()):
            out.update(self.by_producer[pid][group_id])
        return out

    def has_pending(self, group_id: str, tp: tuple[str, int]) -> bool:
        return any(tp in self.by_producer[pid][group_id]
                   for pid in self._producers_of.get(group_id, ()))

    def remove_partitions(self, group_id: str, tps: list[tuple[str, int]]) -> None:
        """A tombstone of these partitions drops their pending offsets of every producer."""
        for pid in list(self._producers_of.get(group_id, ())):
            held = self.by_producer[pid][group_id]
            for tp in tps:
                held.pop(tp, None)
            self._drop_if_empty(pid, group_id)

    def remove_group(self, group_id: str) -> None:
        for pid in list(self._producers_of.get(group_id, ())):
            self.by_producer[pid].pop(group_id, None)
            self._drop_if_empty(pid, group_id)
        self._producers_of.pop(group_id, None)


class TxnOffsets:
    """TxnOffsetCommit checks and marker completion over the coordinator's groups."""

    groups: dict[str, Group]
    consumer_groups: dict[str, ConsumerGroup]
    pending_txn: PendingTxnOffsets

    if TYPE_CHECKING:
        def offsets_of(self, group_id: str) -> Offsets | None: ...

        def apply_offsets(self, group_id: str, offsets: Offsets) -> None: ...

    def validate_txn_offset_commit(self, group_id: str, member_id: str,
                                   group_instance_id: str | None, generation_id: int,
                                   now_ms: int) -> ErrorCode:
        """Kafka's validateTransactionalOffsetCommit: the member fields are optional (v0-2
        send none); when given they must name the current member and generation."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        cg = self.consumer_groups.get(group_id)
        if cg is not None:
            if generation_id < 0 and not cg.members:
                return ErrorCode.NONE
            if generation_id == -1 and not member_id and group_instance_id is None:
                return ErrorCode.NONE
            member = cg.members.get(member_id)
            if member is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if generation_id > member.member_epoch:
                return ErrorCode.FENCED_MEMBER_EPOCH
            if generation_id < member.member_epoch:
                # TxnOffsetCommit has no STALE_MEMBER_EPOCH: Kafka answers ILLEGAL_GENERATION.
                return ErrorCode.ILLEGAL_GENERATION
            return ErrorCode.NONE
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return ErrorCode.ILLEGAL_GENERATION
            self.groups[group_id] = Group(group_id, state_timestamp_ms=now_ms)
            return ErrorCode.NONE
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.is_(GroupState.EMPTY):
            return ErrorCode.NONE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            if group_instance_id is not None:
                known = group.static_members.get(group_instance_id)
                if known is None:
                    return ErrorCode.UNKNOWN_MEMBER_ID
                if known != member_id:
                    return ErrorCode.FENCED_INSTANCE_ID
            elif member_id not in group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if generation_id != group.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def complete_txn(self, producer_id: int, committed: bool, in_scope: Callable[[str], bool],
                     now_ms: int) -> int:
        """A marker of ``producer_id`` reached a partition: its pending offsets of the groups
        ``in_scope`` are applied (COMMIT) or dropped (ABORT). Returns how many were applied."""
        done = self.pending_txn.complete(producer_id, in_scope)
        if not committed:
            return 0
        n = 0
        for gid, offsets in done.items():
            if self.offsets_of(gid) is None:
                # Kafka creates a simple group for offsets of a group it does not hold.
                self.groups[gid] = Group(gid, state_timestamp_ms=now_ms)
            self.apply_offsets(gid, offsets)
            held = self.offsets_of(gid) or {}
            n += sum(1 for tp, o in offsets.items() if held.get(tp) is o)
        return n
