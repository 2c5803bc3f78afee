"""The classic consumer-group protocol as a pure state machine (Kafka's GroupCoordinator): no
sockets, no clocks; every call is handed ``now_ms``.

Groups move through Empty -> PreparingRebalance -> CompletingRebalance -> Stable (and Dead when
deleted or unloaded). A JoinGroup parks its member until the join phase completes (all known
members rejoined, or the rebalance timeout passed, or the initial delay of a new group ran
out); SyncGroup parks followers until the leader hands in the assignment. Parked calls are
answered through the callbacks their callers passed in, possibly synchronously.

Persistence is the caller's: ``store(group_id, record, done)`` is called when the group's
metadata must be written (a generation completed, the group emptied, a static member was
replaced); ``done(error)`` continues the protocol once the write settled, as Kafka's
``storeGroup`` does. The I/O layer calls ``tick(now_ms)`` to expire sessions and complete
delayed joins.

The groups' data is ``broker.groups.group``; the offset rules are ``broker.groups.offsets``
(a base of ``GroupCoordinator``).
"""

from __future__ import annotations

import uuid

from broker.groups.consumer_coordinator import ConsumerGroupConfig, ConsumerGroups
from broker.groups.consumer_group import ConsumerGroup
from broker.groups.group import (
    CommittedOffset,
    CoordinatorConfig,
    Group,
    GroupState,
    JoinCallback,
    JoinResult,
    Member,
    StoreFn,
    SyncCallback,
    SyncResult,
)
from broker.groups.offsets import GroupOffsets
from broker.groups.records import GroupMetadataRecord
from broker.groups.txn_offsets import PendingTxnOffsets, TxnOffsets
from broker.protocol.errors import ErrorCode

__all__ = ["GroupCoordinator"]


class GroupCoordinator(GroupOffsets, TxnOffsets, ConsumerGroups):
    """All groups of this broker's coordinator partitions: the classic ones here, the consumer
    groups of KIP-848 in ``ConsumerGroups`` (``consumer_groups``)."""

    def __init__(self, config: CoordinatorConfig, store: StoreFn | None = None,
                 consumer_config: ConsumerGroupConfig | None = None) -> None:
        ConsumerGroups.__init__(self, consumer_config or ConsumerGroupConfig())
        self.config = config
        self.groups: dict[str, Group] = {}
        self.pending_txn = PendingTxnOffsets()  # transactional offsets (``txn_offsets``)
        self.store: StoreFn = store or (lambda _g, _r, done: done(ErrorCode.NONE))
        self.rebalances = 0  # rebalances started (the pykraft_group_rebalances metric)

    # -- helpers ------------------------------------------------------------------------------

    def _transition(self, group: Group, state: GroupState, now_ms: int) -> None:
        group.state = state
        group.state_timestamp_ms = now_ms

    def _schedule_heartbeat(self, member: Member, now_ms: int) -> None:
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    def _add_member(self, group: Group, member: Member, now_ms: int) -> None:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        if group.leader_id is None:
            group.leader_id = member.member_id
        group.pending_members.pop(member.member_id, None)

    def _remove_member(self, group: Group, member_id: str) -> None:
        m = group.members.pop(member_id, None)
        if m is None:
            return
        if m.group_instance_id is not None and \
                group.static_members.get(m.group_instance_id) == member_id:
            del group.static_members[m.group_instance_id]
        if group.leader_id == member_id:
            group.leader_id = next((mid for mid, mm in group.members.items()
                                    if mm.awaiting_join), next(iter(group.members), None))

    def _fenced(self, group: Group, instance_id: str | None, member_id: str) -> bool:
        if instance_id is None:
            return False
        known = group.static_members.get(instance_id)
        return known is not None and known != member_id

    def _join_result_for(self, group: Group, member: Member) -> JoinResult:
        proto = group.protocol_name
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == group.leader_id and proto is not None:
            members = tuple((m.member_id, m.group_instance_id, m.metadata_for(proto))
                            for m in group.members.values())
        return JoinResult(ErrorCode.NONE, member.member_id, group.generation_id,
                          group.protocol_type, proto, group.leader_id or "", members)

    @staticmethod
    def _answer_join(member: Member, result: JoinResult) -> None:
        cb, member.join_callback = member.join_callback, None
        member.is_new = False
        if cb is not None:
            cb(result)

    @staticmethod
    def _answer_sync(member: Member, result: SyncResult) -> None:
        cb, member.sync_callback = member.sync_callback, None
        if cb is not None:
            cb(result)

    # -- JoinGroup ----------------------------------------------------------------------------

    def join_group(self, group_id: str, member_id: str, group_instance_id: str | None,
                   client_id: str, client_host: str, session_timeout_ms: int,
                   rebalance_timeout_ms: int, protocol_type: str,
                   protocols: list[tuple[str, bytes]], require_known_member_id: bool,
                   now_ms: int, callback: JoinCallback) -> None:
        cfg = self.config
        if not group_id:
            return callback(JoinResult(ErrorCode.INVALID_GROUP_ID, member_id))
        if not cfg.min_session_timeout_ms <= session_timeout_ms <= cfg.max_session_timeout_ms:
            return callback(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id))
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has none: the session timeout
            rebalance_timeout_ms = session_timeout_ms
        if self.classic_blocked(group_id):
            return callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
            group = self.groups[group_id] = Group(group_id, state_timestamp_ms=now_ms)
        if group.is_(GroupState.DEAD):
            return callback(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
        known = member_id in group.members or member_id in group.pending_members
        if (not known or not member_id) and len(group.members) + len(
                group.pending_members) >= cfg.max_size and not (
                group_instance_id is not None and group_instance_id in group.static_members):
            return callback(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id))
        if not group.supports(protocol_type, protocols):
            return callback(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
        args = (client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                protocol_type, protocols)
        if not member_id:
            new_id = f"{group_instance_id or client_id}-{uuid.uuid4()}"
            if group_instance_id is not None:
                old = group.static_members.get(group_instance_id)
                if old is not None and old in group.members:
                    return self._replace_static_member(group, group_instance_id, old, new_id,
                                                       args, now_ms, callback)
                return self._add_member_and_rebalance(group, new_id, group_instance_id, args,
                                                      now_ms, callback)
            if require_known_member_id:
                # KIP-394: hand out the id first; the member joins with it next.
                group.pending_members[new_id] = now_ms + session_timeout_ms
                return callback(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id))
            return self._add_member_and_rebalance(group, new_id, None, args, now_ms, callback)
        if member_id in group.pending_members:
            return self._add_member_and_rebalance(group, member_id, group_instance_id, args,
                                                  now_ms, callback)
        member = group.members.get(member_id)
        if self._fenced(group, group_instance_id, member_id):
            return callback(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id))
        if member is None:
            return callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        changed = member.protocols != protocols
        self._update_member(member, args, callback)
        self._schedule_heartbeat(member, now_ms)
        if group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group, now_ms)
        elif group.is_(GroupState.COMPLETING_REBALANCE):
            if changed:
                self._prepare_rebalance(group, now_ms)
            else:
                self._answer_join(member, self._join_result_for(group, member))
        elif group.is_(GroupState.STABLE):
            if member_id == group.leader_id or changed:
                self._prepare_rebalance(group, now_ms)
            else:
                self._answer_join(member, self._join_result_for(group, member))
        else:  # Empty with a known member cannot happen
            member.join_callback = None
            callback(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        return None

    @staticmethod
    def _update_member(member: Member, args: tuple, callback: JoinCallback) -> None:
        (member.client_id, member.client_host, member.session_timeout_ms,
         member.rebalance_timeout_ms, member.protocol_type, member.protocols) = args
        if member.join_callback is not None and member.join_callback is not callback:
            # A second join from the same member: the first one is superseded.
            old, member.join_callback = member.join_callback, None
            old(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_callback = callback

    def _add_member_and_rebalance(self, group: Group, member_id: str,
                                  instance_id: str | None, args: tuple, now_ms: int,
                                  callback: JoinCallback) -> None:
        client_id, client_host, session, rebalance, ptype, protocols = args
        member = Member(member_id, instance_id, client_id, client_host, rebalance, session,
                        ptype, list(protocols), join_callback=callback, is_new=True)
        self._add_member(group, member, now_ms)
        self._schedule_heartbeat(member, now_ms)
        group.new_member_added = True
        if group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group, now_ms)
        else:
            self._prepare_rebalance(group, now_ms)

    def _replace_static_member(self, group: Group, instance_id: str, old_id: str, new_id: str,
                               args: tuple, now_ms: int, callback: JoinCallback) -> None:
        """A static member came back under a new member id: it takes over the old member's
        place (and assignment) without a rebalance when nothing it offers changed."""
        old = group.members.pop(old_id)
        if old.join_callback is not None:
            self._answer_join(old, JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        if old.sync_callback is not None:
            self._answer_sync(old, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        current_leader = group.leader_id
        old_protocols = old.protocols
        old.member_id = new_id
        group.members[new_id] = old
        group.static_members[instance_id] = new_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        self._update_member(old, args, callback)
        self._schedule_heartbeat(old, now_ms)
        if group.is_(GroupState.STABLE):
            if group.select_protocol() == group.protocol_name:
                def stored(error: ErrorCode) -> None:
                    if error:
                        # Undo: the old id stays the member (Kafka reverts the same way).
                        group.members.pop(new_id, None)
                        old.member_id = old_id
                        old.protocols = old_protocols
                        group.members[old_id] = old
                        group.static_members[instance_id] = old_id
                        if group.leader_id == new_id:
                            group.leader_id = old_id
                        self._answer_join(old, JoinResult(error, new_id))
                        return
                    # The old leader id keeps the current leader from reassigning a stable
                    # group; the member gets its kept assignment through SyncGroup.
                    self._answer_join(old, JoinResult(
                        ErrorCode.NONE, new_id, group.generation_id, group.protocol_type,
                        group.protocol_name, current_leader or "", ()))
                self.store(group.group_id, group.metadata_record(now_ms), stored)
            else:
                self._prepare_rebalance(group, now_ms)
        elif group.is_(GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        else:  # PreparingRebalance: answered when the join phase completes
            self._try_complete_join(group, now_ms)

    def _prepare_rebalance(self, group: Group, now_ms: int) -> None:
        if group.is_(GroupState.COMPLETING_REBALANCE):
            for m in group.members.values():
                m.assignment = b""
                self._answer_sync(m, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        was_empty = group.is_(GroupState.EMPTY)
        self.rebalances += 1
        self._transition(group, GroupState.PREPARING_REBALANCE, now_ms)
        if was_empty and self.config.initial_rebalance_delay_ms > 0:
            # A new group waits a little for more members (InitialDelayedJoin), at most the
            # rebalance timeout in all.
            group.new_member_added = False
            group.initial_delay_end_ms = now_ms + self.config.initial_rebalance_delay_ms
            group.join_deadline_ms = now_ms + max(group.max_rebalance_timeout_ms(),
                                                  self.config.initial_rebalance_delay_ms)
        else:
            group.initial_delay_end_ms = None
            group.join_deadline_ms = now_ms + group.max_rebalance_timeout_ms()
            self._try_complete_join(group, now_ms)

    def _try_complete_join(self, group: Group, now_ms: int) -> None:
        if not group.is_(GroupState.PREPARING_REBALANCE):
            return
        if group.initial_delay_end_ms is not None:
            return  # the initial delay decides (tick)
        if group.all_joined():
            self._complete_join(group, now_ms)

    def _complete_join(self, group: Group, now_ms: int) -> None:
        group.join_deadline_ms = None
        group.initial_delay_end_ms = None
        # Members that did not rejoin within the rebalance timeout are out (this is how
        # max.poll.interval.ms takes effect).
        for mid in [mid for mid, m in group.members.items() if not m.awaiting_join]:
            self._remove_member(group, mid)
        group.pending_members.clear()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            self._transition(group, GroupState.EMPTY, now_ms)
            group.leader_id = None
            self.store(group.group_id, group.metadata_record(now_ms), lambda _e: None)
            return
        group.protocol_name = group.select_protocol()
        self._transition(group, GroupState.COMPLETING_REBALANCE, now_ms)
        for m in list(group.members.values()):
            self._schedule_heartbeat(m, now_ms)
            self._answer_join(m, self._join_result_for(group, m))

    # -- SyncGroup ----------------------------------------------------------------------------

    def sync_group(self, group_id: str, generation_id: int, member_id: str,
                   group_instance_id: str | None, protocol_type: str | None,
                   protocol_name: str | None, assignments: dict[str, bytes], now_ms: int,
                   callback: SyncCallback) -> None:
        group = self.groups.get(group_id)
        if group is None or group.is_(GroupState.EMPTY):
            return callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        if group.is_(GroupState.DEAD):
            return callback(SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        if self._fenced(group, group_instance_id, member_id):
            return callback(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        member = group.members.get(member_id)
        if member is None:
            return callback(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        if generation_id != group.generation_id:
            return callback(SyncResult(ErrorCode.ILLEGAL_GENERATION))
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
                protocol_name is not None and protocol_name != group.protocol_name):
            return callback(SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
        if group.is_(GroupState.PREPARING_REBALANCE):
            return callback(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        self._schedule_heartbeat(member, now_ms)
        if group.is_(GroupState.STABLE):
            return callback(SyncResult(ErrorCode.NONE, member.assignment, group.protocol_type,
                                       group.protocol_name))
        # CompletingRebalance: wait for the leader's assignment.
        member.sync_callback = callback
        if member_id != group.leader_id:
            return None
        generation = group.generation_id
        for m in group.members.values():
            m.assignment = assignments.get(m.member_id, b"")

        def stored(error: ErrorCode) -> None:
            if not (group.is_(GroupState.COMPLETING_REBALANCE)
                    and group.generation_id == generation):
                return  # a rebalance started meanwhile: members were told already
            if error:
                for m in group.members.values():
                    m.assignment = b""
                    self._answer_sync(m, SyncResult(error))
                self._prepare_rebalance(group, now_ms)
                return
            self._transition(group, GroupState.STABLE, now_ms)
            for m in group.members.values():
                if m.sync_callback is not None:
                    self._schedule_heartbeat(m, now_ms)  # its session starts again now
                self._answer_sync(m, SyncResult(ErrorCode.NONE, m.assignment,
                                                group.protocol_type, group.protocol_name))

        self.store(group_id, group.metadata_record(now_ms), stored)
        return None

    # -- Heartbeat / LeaveGroup ---------------------------------------------------------------

    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int, now_ms: int) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._fenced(group, group_instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None or group.is_(GroupState.EMPTY):
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self._schedule_heartbeat(member, now_ms)
        if group.is_(GroupState.PREPARING_REBALANCE):
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave_group(self, group_id: str, members: list[tuple[str, str | None]], now_ms: int
                    ) -> tuple[ErrorCode, list[tuple[str, str | None, ErrorCode]]]:
        """(group error, per member (member id, instance id, error)). An empty member id with
        an instance id names the static member by its instance id."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [(m, i, ErrorCode.UNKNOWN_MEMBER_ID) for m, i in members]
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        out = []
        for member_id, instance_id in members:
            target = member_id
            if not member_id and instance_id is not None:
                target = group.static_members.get(instance_id, "")
            elif self._fenced(group, instance_id, member_id):
                out.append((member_id, instance_id, ErrorCode.FENCED_INSTANCE_ID))
                continue
            if target in group.pending_members:
                del group.pending_members[target]
                self._try_complete_join(group, now_ms)
                out.append((member_id, instance_id, ErrorCode.NONE))
                continue
            if target not in group.members:
                out.append((member_id, instance_id, ErrorCode.UNKNOWN_MEMBER_ID))
                continue
            self._member_gone(group, target, now_ms)
            out.append((member_id, instance_id, ErrorCode.NONE))
        return ErrorCode.NONE, out

    def _member_gone(self, group: Group, member_id: str, now_ms: int) -> None:
        member = group.members[member_id]
        self._answer_join(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        self._answer_sync(member, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._remove_member(group, member_id)
        if group.is_(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        elif group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group, now_ms)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[tuple[str, str]]:
        """Expire sessions and pending members, complete delayed joins; returns the
        (group, member) pairs whose session expired."""
        expired = []
        for group in list(self.groups.values()):
            if group.is_(GroupState.DEAD):
                continue
            for mid, deadline in list(group.pending_members.items()):
                if deadline <= now_ms:
                    del group.pending_members[mid]
                    self._try_complete_join(group, now_ms)
            for mid, m in list(group.members.items()):
                # A member parked in JoinGroup or SyncGroup is not expected to heartbeat (some
                # clients stop their heartbeats meanwhile): the rebalance timeout, or the
                # leader's own session, covers it (Kafka's MemberMetadata.shouldKeepAlive).
                if mid in group.members and not m.awaiting_join and \
                        m.sync_callback is None and m.heartbeat_deadline_ms <= now_ms:
                    expired.append((group.group_id, mid))
                    self._member_gone(group, mid, now_ms)
            if group.is_(GroupState.PREPARING_REBALANCE):
                if group.initial_delay_end_ms is not None and \
                        group.initial_delay_end_ms <= now_ms:
                    if group.new_member_added and group.join_deadline_ms is not None and \
                            now_ms < group.join_deadline_ms:
                        # Someone joined during the delay: wait another delay (bounded).
                        group.new_member_added = False
                        group.initial_delay_end_ms = min(
                            now_ms + self.config.initial_rebalance_delay_ms,
                            group.join_deadline_ms)
                    else:
                        group.initial_delay_end_ms = None
                        self._complete_join(group, now_ms)
                        continue
                if group.initial_delay_end_ms is None and group.join_deadline_ms is not None \
                        and (group.join_deadline_ms <= now_ms or group.all_joined()):
                    self._complete_join(group, now_ms)
        return expired

    # -- whole groups ---------------------------------------------------------------------------

    def delete_check(self, group_id: str) -> ErrorCode:
        cg = self.consumer_groups.get(group_id)
        if cg is not None:
            return ErrorCode.NON_EMPTY_GROUP if cg.members else ErrorCode.NONE
        group = self.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            return ErrorCode.GROUP_ID_NOT_FOUND
        if not group.is_(GroupState.EMPTY):
            return ErrorCode.NON_EMPTY_GROUP
        return ErrorCode.NONE

    def remove_group(self, group_id: str, error: ErrorCode = ErrorCode.NOT_COORDINATOR) -> None:
        """Forget a group (deleted, or its partition moved away): parked calls get ``error``."""
        self.remove_consumer_group(group_id)
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        group.state = GroupState.DEAD
        for m in group.members.values():
            self._answer_join(m, JoinResult(error, m.member_id))
            self._answer_sync(m, SyncResult(error))

    def load(self, groups: dict[str, GroupMetadataRecord],
             offsets: dict[str, dict[tuple[str, int], CommittedOffset]], now_ms: int,
             consumer_groups: dict[str, ConsumerGroup] | None = None) -> None:
        """Install groups read back from ``__consumer_offsets`` (coordinator failover)."""
        for gid, cg in (consumer_groups or {}).items():
            cg.offsets = offsets.pop(gid, {})
            groups.pop(gid, None)
            self.remove_group(gid)
            self.consumer_groups[gid] = cg
        for gid in set(groups) | set(offsets):
            rec = groups.get(gid)
            group = Group(gid, state_timestamp_ms=now_ms)
            if rec is not None:
                group.generation_id = rec.generation
                group.protocol_type = rec.protocol_type or None
                group.protocol_name = rec.protocol
                group.leader_id = rec.leader
                if rec.current_state_timestamp >= 0:
                    group.state_timestamp_ms = rec.current_state_timestamp
                for mr in rec.members:
                    m = Member(mr.member_id, mr.group_instance_id, mr.client_id,
                               mr.client_host,
                               mr.rebalance_timeout if mr.rebalance_timeout >= 0
                               else mr.session_timeout, mr.session_timeout,
                               rec.protocol_type, [(rec.protocol or "", mr.subscription)],
                               assignment=mr.assignment)
                    self._schedule_heartbeat(m, now_ms)
                    group.members[m.member_id] = m
                    if m.group_instance_id is not None:
                        group.static_members[m.group_instance_id] = m.member_id
                if group.members:
                    group.state = GroupState.STABLE
                    group.state_timestamp_ms = now_ms
                else:
                    group.leader_id = None
            group.offsets = offsets.get(gid, {})
            old = self.groups.get(gid)
            if old is not None:
                self.remove_group(gid)
            self.groups[gid] = group
