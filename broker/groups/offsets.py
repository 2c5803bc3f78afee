"""The offsets half of the group coordinator (Kafka's offset rules of GroupCoordinator and
GroupMetadataManager): whether a commit may be written now, installing written commits, fetching,
deleting, and which offsets retention expires. Pure like the rest of the coordinator: every call
is handed ``now_ms``; the I/O layer writes ``__consumer_offsets`` before ``apply_offsets``.

``GroupOffsets`` is a base of ``GroupCoordinator``: it works on the coordinator's ``groups`` and
``config`` and uses its ``_fenced`` and ``_schedule_heartbeat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.groups.consumer_group import ConsumerGroup
from broker.groups.group import CommittedOffset, CoordinatorConfig, Group, GroupState, Member
from broker.groups.txn_offsets import PendingTxnOffsets, newer
from broker.protocol.errors import ErrorCode

__all__ = ["GroupOffsets"]


class GroupOffsets:
    """Committed offsets of the coordinator's groups."""

    groups: dict[str, Group]
    consumer_groups: dict[str, ConsumerGroup]
    config: CoordinatorConfig
    pending_txn: PendingTxnOffsets

    if TYPE_CHECKING:
        def validate_consumer_commit(self, group: ConsumerGroup, member_id: str,
                                     member_epoch: int, api_version: int) -> ErrorCode: ...

        def _fenced(self, group: Group, instance_id: str | None, member_id: str) -> bool: ...

        def _schedule_heartbeat(self, member: Member, now_ms: int) -> None: ...

    def validate_offset_commit(self, group_id: str, member_id: str,
                               group_instance_id: str | None, generation_id: int, now_ms: int,
                               api_version: int = 9) -> ErrorCode:
        """Whether a commit may be written now (Kafka's doCommitOffsets checks); a commit
        outside group management (generation < 0) creates an Empty group. For a consumer
        group ``generation_id`` is the member epoch."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        cg = self.consumer_groups.get(group_id)
        if cg is not None:
            return self.validate_consumer_commit(cg, member_id, generation_id, api_version)
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return ErrorCode.ILLEGAL_GENERATION
            self.groups[group_id] = Group(group_id, state_timestamp_ms=now_ms)
            return ErrorCode.NONE
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._fenced(group, group_instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if generation_id < 0 and group.is_(GroupState.EMPTY):
            return ErrorCode.NONE
        if group.is_(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.REBALANCE_IN_PROGRESS
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self._schedule_heartbeat(member, now_ms)
        return ErrorCode.NONE

    def offsets_of(self, group_id: str) -> dict[tuple[str, int], CommittedOffset] | None:
        """The committed offsets of a live group of either kind (None: no such group)."""
        cg = self.consumer_groups.get(group_id)
        if cg is not None:
            return cg.offsets
        group = self.groups.get(group_id)
        return None if group is None or group.is_(GroupState.DEAD) else group.offsets

    def apply_offsets(self, group_id: str,
                      offsets: dict[tuple[str, int], CommittedOffset]) -> None:
        """Install written commits; of two commits of a partition the record written later
        in the log wins (a commit and a transaction's marker may complete out of order)."""
        held = self.offsets_of(group_id)
        if held is not None:
            for tp, o in offsets.items():
                if newer(o, held.get(tp)):
                    held[tp] = o

    def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None
                      ) -> dict[tuple[str, int], CommittedOffset | None]:
        """The committed offsets (pending transactional ones are not visible)."""
        offsets = self.offsets_of(group_id) or {}
        if partitions is None:
            return dict(offsets)
        return {tp: offsets.get(tp) for tp in partitions}

    def offset_delete_check(self, group_id: str, topics: set[str]
                            ) -> tuple[ErrorCode, set[str]]:
        """(group error, topics the group still subscribes to)."""
        cg = self.consumer_groups.get(group_id)
        if cg is not None:
            return ErrorCode.NONE, topics & set(cg.subscription_metadata)
        group = self.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            return ErrorCode.GROUP_ID_NOT_FOUND, set()
        if group.is_(GroupState.EMPTY):
            return ErrorCode.NONE, set()
        subscribed = group.subscribed_topics()
        if subscribed is None:
            return ErrorCode.NON_EMPTY_GROUP, set()
        return ErrorCode.NONE, topics & subscribed

    def remove_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        held = self.offsets_of(group_id)
        if held is not None:
            for tp in partitions:
                held.pop(tp, None)
        # Their tombstones drop pending transactional offsets too (Kafka's replay of an
        # offset tombstone).
        self.pending_txn.remove_partitions(group_id, partitions)

    def expired_offsets(self, now_ms: int) -> dict[str, list[tuple[str, int]]]:
        """Offsets due for removal (Kafka 2.1+ rules): all of a group's offsets once it has
        been Empty for the retention time; offsets of a group without group management by
        their commit time; in a Stable consumer group, by their commit time, the offsets of
        topics no member subscribes to any more. A partition with a pending transactional
        offset does not expire."""
        out = self._expired_offsets(now_ms)
        pending = self.pending_txn
        for gid in [g for g in out if pending.has_group(g)]:
            tps = pending.partitions_of(gid)
            out[gid] = [tp for tp in out[gid] if tp not in tps]
            if not out[gid]:
                del out[gid]
        return out

    def _expired_offsets(self, now_ms: int) -> dict[str, list[tuple[str, int]]]:
        retention = self.config.offsets_retention_ms
        out: dict[str, list[tuple[str, int]]] = {}
        for cg in self.consumer_groups.values():
            # Consumer groups: by commit time, offsets of topics no member subscribes to.
            subscribed = set(cg.subscription_metadata) if cg.members else set()
            due = [tp for tp, o in cg.offsets.items() if tp[0] not in subscribed
                   and now_ms - o.commit_timestamp >= retention]
            if due:
                out[cg.group_id] = due
        for g in self.groups.values():
            if not g.offsets:
                continue
            if g.is_(GroupState.STABLE) and g.protocol_type == "consumer":
                subscribed = g.subscribed_topics()
                if subscribed is None:
                    continue
                due = [tp for tp, o in g.offsets.items() if tp[0] not in subscribed
                       and now_ms - o.commit_timestamp >= retention]
                if due:
                    out[g.group_id] = due
                continue
            if not g.is_(GroupState.EMPTY):
                continue
            if g.protocol_type:
                if now_ms - g.state_timestamp_ms >= retention:
                    out[g.group_id] = list(g.offsets)
            else:
                due = [tp for tp, o in g.offsets.items()
                       if now_ms - o.commit_timestamp >= retention]
                if due:
                    out[g.group_id] = due
        return out
