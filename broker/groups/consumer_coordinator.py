"""The consumer group protocol of KIP-848 (Kafka's GroupMetadataManager.consumerGroupHeartbeat)
as a pure state machine next to the classic one: ConsumerGroupHeartbeat joins, heartbeats,
leaves, reports owned partitions and answers the member's next assignment; sessions and
revocations time out in ``tick``. No I/O: the caller passes the topics of the metadata image
and ``now_ms``, and writes the records of what changed (``broker.groups.consumer_records``)
before it answers.

``ConsumerGroups`` is a base of ``broker.groups.coordinator.GroupCoordinator``: it shares the
group id space with the classic groups (``groups``). A heartbeat on the id of an empty classic
group (one that only has committed offsets) turns it into a consumer group with its offsets; on
a classic group with members it gets GROUP_ID_NOT_FOUND, as with Kafka.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.groups.assignors import ASSIGNORS, DEFAULT_ASSIGNORS, AssignmentSpec, MemberSpec
from broker.groups.consumer_group import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    Assignment,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    reconcile,
)
from broker.groups.group import Group, GroupState
from broker.protocol.errors import ErrorCode

__all__ = ["ConsumerGroupConfig", "ConsumerGroups", "HeartbeatRequest", "HeartbeatResult"]

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    heartbeat_interval_ms: int = 5000   # group.consumer.heartbeat.interval.ms
    session_timeout_ms: int = 45000     # group.consumer.session.timeout.ms
    assignors: tuple[str, ...] = DEFAULT_ASSIGNORS  # group.consumer.assignors
    max_size: int = 2**31 - 1           # group.consumer.max.size


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Assignment | None = None
    client_id: str = ""
    client_host: str = ""
    version: int = 1


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


def _fail(error: ErrorCode, message: str) -> HeartbeatResult:
    return HeartbeatResult(error, message)


class ConsumerGroups:
    """Consumer groups of the new protocol; ``topics`` is the image's topics by name (objects
    with ``topic_id`` and ``partitions``)."""

    groups: dict[str, Group]
    rebalances: int

    def __init__(self, consumer_config: ConsumerGroupConfig) -> None:
        self.consumer_config = consumer_config
        self.consumer_groups: dict[str, ConsumerGroup] = {}

    if TYPE_CHECKING:
        def remove_group(self, group_id: str, error: ErrorCode = ...) -> None: ...

    # -- validation ----------------------------------------------------------------------------

    def _invalid(self, r: HeartbeatRequest) -> HeartbeatResult | None:
        """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid."""
        bad = ErrorCode.INVALID_REQUEST
        if not r.group_id:
            return _fail(bad, "GroupId can't be empty.")
        if r.instance_id == "":
            return _fail(bad, "InstanceId can't be empty.")
        if r.rack_id == "":
            return _fail(bad, "RackId can't be empty.")
        if r.member_epoch > 0 or r.member_epoch == LEAVE_EPOCH:
            if not r.member_id:
                return _fail(bad, "MemberId can't be empty.")
        elif r.member_epoch == 0:
            if r.version >= 1 and not r.member_id:
                return _fail(bad, "MemberId can't be empty.")
            if r.rebalance_timeout_ms == -1:
                return _fail(bad, "RebalanceTimeoutMs must be provided in first request.")
            if r.owned is None or r.owned:
                return _fail(bad, "TopicPartitions must be empty when (re-)joining.")
            if r.subscribed_topic_names is None and r.subscribed_topic_regex is None:
                return _fail(bad, "SubscribedTopicNames or SubscribedTopicRegex must be set "
                                  "in first request.")
        elif r.member_epoch == STATIC_LEAVE_EPOCH:
            if not r.member_id:
                return _fail(bad, "MemberId can't be empty.")
            if r.instance_id is None:
                return _fail(bad, "InstanceId can't be null.")
        else:
            return _fail(bad, "MemberEpoch is invalid.")
        if r.subscribed_topic_regex:
            try:
                re.compile(r.subscribed_topic_regex)
            except re.error as e:
                return _fail(ErrorCode.INVALID_REGULAR_EXPRESSION,
                             f"SubscribedTopicRegex {r.subscribed_topic_regex} is invalid: {e}")
        if r.server_assignor is not None and r.server_assignor not in self._assignor_names():
            return _fail(ErrorCode.UNSUPPORTED_ASSIGNOR,
                         f"ServerAssignor {r.server_assignor} is not supported. Supported "
                         f"assignors: {', '.join(self._assignor_names())}.")
        return None

    def _assignor_names(self) -> tuple[str, ...]:
        return tuple(a for a in self.consumer_config.assignors if a in ASSIGNORS)

    # -- ConsumerGroupHeartbeat ------------------------------------------------------------------

    def consumer_heartbeat(self, r: HeartbeatRequest, topics: Mapping[str, Any],
                           now_ms: int) -> HeartbeatResult:
        bad = self._invalid(r)
        if bad is not None:
            return bad
        cfg = self.consumer_config
        if r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(r, now_ms)
        group = self.consumer_groups.get(r.group_id)
        if group is None:
            classic = self.groups.get(r.group_id)
            if classic is not None and not (classic.is_(GroupState.EMPTY)
                                            and not classic.members):
                return _fail(ErrorCode.GROUP_ID_NOT_FOUND,
                             f"Group {r.group_id} is not a consumer group.")
            if r.member_epoch != 0:
                return _fail(ErrorCode.UNKNOWN_MEMBER_ID, f"Group {r.group_id} not found.")
            group = ConsumerGroup(r.group_id, state_timestamp_ms=now_ms, dirty_group=True)
            if classic is not None:  # an empty classic group: its offsets carry over
                group.offsets = dict(classic.offsets)
                self.groups.pop(r.group_id, None)
            self.consumer_groups[r.group_id] = group
        if len(group.members) >= cfg.max_size and r.member_id not in group.members and not (
                r.instance_id is not None and r.instance_id in group.static_members):
            return _fail(ErrorCode.GROUP_MAX_SIZE_REACHED,
                         f"The consumer group has reached its maximum capacity of "
                         f"{cfg.max_size} members.")
        member_id = r.member_id or str(uuid.uuid4())  # v0: the coordinator names the member
        got = self._member_for(group, r, member_id)
        if isinstance(got, HeartbeatResult):
            return got
        member, is_new = got
        before = member
        updated = member.copy()
        updated.instance_id = r.instance_id if r.instance_id is not None else member.instance_id
        if r.rack_id is not None:
            updated.rack_id = r.rack_id
        if r.rebalance_timeout_ms != -1:
            updated.rebalance_timeout_ms = r.rebalance_timeout_ms
        if r.server_assignor is not None:
            updated.server_assignor = r.server_assignor
        if r.subscribed_topic_names is not None:
            updated.subscribed_topic_names = tuple(r.subscribed_topic_names)
        if r.subscribed_topic_regex is not None:
            updated.subscribed_topic_regex = r.subscribed_topic_regex or None
        updated.client_id, updated.client_host = r.client_id, r.client_host
        bump = is_new or (
            updated.subscribed_topic_names != member.subscribed_topic_names
            or updated.subscribed_topic_regex != member.subscribed_topic_regex
            or updated.server_assignor != member.server_assignor)
        if is_new or bump or updated.rack_id != member.rack_id or \
                updated.client_id != member.client_id or \
                updated.rebalance_timeout_ms != member.rebalance_timeout_ms:
            group.dirty_members.add(member_id)
        group.update_member(updated)
        if self._refresh_metadata(group, topics):
            bump = True
        if bump:
            self._bump(group)
        if group.group_epoch > group.assignment_epoch:
            self._assign(group, topics)
        new = reconcile(updated, group.assignment_epoch, group.target.get(member_id, {}),
                        group, r.owned)
        if new is not updated:
            group.update_member(new)
            group.dirty_current.add(member_id)
        if new.state == MemberState.UNREVOKED_PARTITIONS:
            if new.revocation_deadline_ms is None:
                new.revocation_deadline_ms = now_ms + max(new.rebalance_timeout_ms, 0)
        else:
            new.revocation_deadline_ms = None
        new.session_deadline_ms = now_ms + cfg.session_timeout_ms
        full = r.member_epoch == 0 or (r.rebalance_timeout_ms != -1 and
                                       r.subscribed_topic_names is not None and
                                       r.owned is not None)
        changed = new.assigned != before.assigned or is_new
        return HeartbeatResult(
            ErrorCode.NONE, None, member_id, new.member_epoch, cfg.heartbeat_interval_ms,
            {t: set(ps) for t, ps in new.assigned.items()} if full or changed else None)

    def _member_for(self, group: ConsumerGroup, r: HeartbeatRequest, member_id: str
                    ) -> tuple[ConsumerMember, bool] | HeartbeatResult:
        """The member the heartbeat is for, and whether it is (re)joining afresh."""
        if r.instance_id is not None:
            known = group.static_members.get(r.instance_id)
            if r.member_epoch == 0:
                if known is None:
                    return ConsumerMember(member_id), True
                old = group.members[known]
                if old.member_epoch != STATIC_LEAVE_EPOCH and known != member_id:
                    return _fail(ErrorCode.UNRELEASED_INSTANCE_ID,
                                 f"Static member {known} with instance id {r.instance_id} "
                                 f"is not released yet.")
                # The static member comes back (under a new member id): it takes over the
                # old member's assignment and target, so without a subscription change
                # there is no new group epoch (no rebalance), as with Kafka.
                target = group.target.get(known, {})
                group.remove_member(known)
                m = old.copy()
                m.member_id, m.member_epoch, m.previous_member_epoch = member_id, 0, 0
                m.state = MemberState.STABLE
                m.assigned = {t: ps | m.pending_revocation.get(t, set())
                              for t, ps in m.assigned.items()}
                m.pending_revocation = {}
                group.removed_members.discard(member_id)
                group.target[member_id] = target
                group.dirty_target.add(member_id)
                group.dirty_members.add(member_id)
                group.dirty_current.add(member_id)
                return m, False
            if known is None:
                return _fail(ErrorCode.UNKNOWN_MEMBER_ID,
                             f"Instance id {r.instance_id} is unknown.")
            if known != member_id:
                return _fail(ErrorCode.FENCED_INSTANCE_ID,
                             f"Instance id {r.instance_id} belongs to another member.")
        member = group.members.get(member_id)
        if member is None:
            if r.member_epoch != 0:
                return _fail(ErrorCode.UNKNOWN_MEMBER_ID,
                             f"Member {member_id} is not a member of group {group.group_id}.")
            return ConsumerMember(member_id), True
        if r.member_epoch == 0:
            # Rejoining with epoch 0 means it gave up everything it owned: start afresh.
            return ConsumerMember(member_id), True
        if r.member_epoch > member.member_epoch:
            return _fail(ErrorCode.FENCED_MEMBER_EPOCH,
                         f"The consumer group member has a greater member epoch "
                         f"({r.member_epoch}) than the one known by the group coordinator "
                         f"({member.member_epoch}). The member must abandon all its "
                         f"partitions and rejoin.")
        if r.member_epoch < member.member_epoch and not (
                r.member_epoch == member.previous_member_epoch
                and _is_subset(r.owned, member.assigned)):
            # The previous epoch with a subset of the assignment is fine: our answer with
            # the new epoch may have been lost.
            return _fail(ErrorCode.FENCED_MEMBER_EPOCH,
                         f"The consumer group member has a smaller member epoch "
                         f"({r.member_epoch}) than the one known by the group coordinator "
                         f"({member.member_epoch}). The member must abandon all its "
                         f"partitions and rejoin.")
        return member, False

    def _leave(self, r: HeartbeatRequest, now_ms: int) -> HeartbeatResult:
        group = self.consumer_groups.get(r.group_id)
        member = group.members.get(r.member_id) if group is not None else None
        if group is None or member is None:
            return _fail(ErrorCode.UNKNOWN_MEMBER_ID,
                         f"Member {r.member_id} is not a member of group {r.group_id}.")
        if r.instance_id is not None and member.instance_id not in (None, r.instance_id):
            return _fail(ErrorCode.FENCED_INSTANCE_ID,
                         f"Instance id {r.instance_id} belongs to another member.")
        if r.member_epoch == STATIC_LEAVE_EPOCH:
            # A static member leaves for now: it keeps its place (and partitions) until its
            # session ends, and comes back with the same instance id.
            m = member.copy()
            m.member_epoch = STATIC_LEAVE_EPOCH
            group.update_member(m)
            group.dirty_current.add(m.member_id)
            return HeartbeatResult(ErrorCode.NONE, None, r.member_id, STATIC_LEAVE_EPOCH,
                                   self.consumer_config.heartbeat_interval_ms)
        self._fence(group, r.member_id)
        return HeartbeatResult(ErrorCode.NONE, None, r.member_id, LEAVE_EPOCH,
                               self.consumer_config.heartbeat_interval_ms)

    # -- group epoch and target assignment --------------------------------------------------------

    def _bump(self, group: ConsumerGroup) -> None:
        group.group_epoch += 1
        group.dirty_group = True
        self.rebalances += 1

    def _fence(self, group: ConsumerGroup, member_id: str) -> None:
        """Remove a member (left, session expired, did not revoke in time): its partitions
        are free at once and the group epoch goes up."""
        group.remove_member(member_id)
        self._bump(group)

    def _subscribed(self, m: ConsumerMember, topics: Mapping[str, Any]) -> set[str]:
        names = set(m.subscribed_topic_names)
        if m.subscribed_topic_regex:
            try:
                rx = re.compile(m.subscribed_topic_regex)
            except re.error:
                return names
            names.update(t for t in topics if t not in INTERNAL_TOPICS and rx.fullmatch(t))
        return names

    def _refresh_metadata(self, group: ConsumerGroup, topics: Mapping[str, Any]) -> bool:
        """Recompute the subscribed topics' ids and partition counts; True when they changed
        (new partitions, a topic created or deleted): that is a new group epoch."""
        names: set[str] = set()
        for m in group.members.values():
            names |= self._subscribed(m, topics)
        meta = {}
        for n in names:
            t = topics.get(n)
            if t is not None and t.partitions:
                meta[n] = (t.topic_id, len(t.partitions))
        if meta == group.subscription_metadata:
            return False
        group.subscription_metadata = meta
        group.dirty_partition_metadata = True
        return True

    def preferred_assignor(self, group: ConsumerGroup) -> str:
        """The assignor most members ask for; the first of group.consumer.assignors else."""
        names = self._assignor_names() or DEFAULT_ASSIGNORS
        votes = Counter(m.server_assignor for m in group.members.values()
                        if m.server_assignor in names)
        if not votes:
            return names[0]
        return max(votes, key=lambda a: (votes[a], -names.index(a)))  # type: ignore[arg-type]

    def _assign(self, group: ConsumerGroup, topics: Mapping[str, Any]) -> None:
        meta = group.subscription_metadata
        spec = AssignmentSpec(
            members={mid: MemberSpec(
                frozenset(meta[n][0] for n in self._subscribed(m, topics) if n in meta),
                group.target.get(mid, {})) for mid, m in group.members.items()},
            topics={tid: (name, n) for name, (tid, n) in meta.items()})
        new = ASSIGNORS[self.preferred_assignor(group)](spec)
        for mid in group.members:
            a = {t: ps for t, ps in new.get(mid, {}).items() if ps}
            if a != group.target.get(mid):
                group.target[mid] = a
                group.dirty_target.add(mid)
        group.assignment_epoch = group.group_epoch
        group.dirty_group = True

    # -- time ---------------------------------------------------------------------------------

    def consumer_tick(self, now_ms: int) -> list[tuple[str, str, str]]:
        """Fence members whose session expired or who did not revoke partitions within their
        rebalance timeout; returns (group, member, why)."""
        out = []
        for group in self.consumer_groups.values():
            for mid, m in list(group.members.items()):
                if m.session_deadline_ms <= now_ms:
                    out.append((group.group_id, mid, "session timeout"))
                    self._fence(group, mid)
                elif m.revocation_deadline_ms is not None and \
                        m.revocation_deadline_ms <= now_ms:
                    out.append((group.group_id, mid, "partitions not revoked in time"))
                    self._fence(group, mid)
        return out

    # -- offsets and whole groups ------------------------------------------------------------------

    def validate_consumer_commit(self, group: ConsumerGroup, member_id: str, member_epoch: int,
                                 api_version: int) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetCommit."""
        if member_epoch < 0 and not group.members:
            return ErrorCode.NONE  # a commit from outside the group (admin, simple consumer)
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if api_version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_consumer_fetch(self, group_id: str, member_id: str | None,
                                member_epoch: int) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetFetch (OffsetFetch v9 names the member)."""
        group = self.consumer_groups.get(group_id)
        if group is None or (member_epoch < 0 and member_id is None):
            return ErrorCode.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def remove_consumer_group(self, group_id: str) -> None:
        group = self.consumer_groups.pop(group_id, None)
        if group is not None:
            group.dead = True

    def classic_blocked(self, group_id: str) -> ErrorCode:
        """For a classic JoinGroup: INCONSISTENT_GROUP_PROTOCOL on a consumer group with
        members; an empty one goes back to classic (its offsets with it)."""
        group = self.consumer_groups.get(group_id)
        if group is None:
            return ErrorCode.NONE
        if group.members:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        self.consumer_groups.pop(group_id)
        self.groups[group_id] = Group(group_id, offsets=dict(group.offsets),
                                      state_timestamp_ms=group.state_timestamp_ms)
        return ErrorCode.NONE


def _is_subset(owned: Assignment | None, assigned: Assignment) -> bool:
    if owned is None:
        return False
    return all(p in assigned.get(t, ()) for t, ps in owned.items() for p in ps)
