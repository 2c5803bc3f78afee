"""A consumer group's data (Kafka's GroupMetadata and MemberMetadata): its state, members and
committed offsets, the coordinator's settings, and the answers handed to parked JoinGroup and
SyncGroup calls. Plain data with the questions a group answers about itself (common protocols,
the protocol vote, subscribed topics, its ``__consumer_offsets`` metadata record); the protocol
that changes it is ``broker.groups.coordinator``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.groups.records import (
    GroupMetadataRecord,
    MemberRecord,
    decode_consumer_subscription,
)
from broker.protocol.errors import ErrorCode
from kraft.codec import DecodeError

__all__ = [
    "CommittedOffset",
    "CoordinatorConfig",
    "Group",
    "GroupState",
    "JoinCallback",
    "JoinResult",
    "Member",
    "StoreFn",
    "SyncCallback",
    "SyncResult",
]



class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    initial_rebalance_delay_ms: int = 3000
    max_size: int = 2**31 - 1
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    # (member id, group instance id, metadata): only for the leader.
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


JoinCallback = Callable[[JoinResult], None]
SyncCallback = Callable[[SyncResult], None]
StoreFn = Callable[[str, GroupMetadataRecord, Callable[[ErrorCode], None]], None]


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    # Offset of the record in ``__consumer_offsets`` (-1: unknown). Of a transactional and a
    # plain commit of the same partition, the one written later wins (broker.groups.txn_offsets).
    record_offset: int = field(default=-1, compare=False)


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_callback: JoinCallback | None = None
    sync_callback: SyncCallback | None = None
    heartbeat_deadline_ms: int = 0
    is_new: bool = False

    def metadata_for(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""

    @property
    def awaiting_join(self) -> bool:
        return self.join_callback is not None


@dataclass(slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # member id -> deadline
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    state_timestamp_ms: int = -1
    # Join phase: when it completes at the latest, and (initial delay) the next check.
    join_deadline_ms: int | None = None
    initial_delay_end_ms: int | None = None
    new_member_added: bool = False

    def is_(self, *states: GroupState) -> bool:
        return self.state in states

    def all_joined(self) -> bool:
        return (not self.pending_members
                and all(m.awaiting_join for m in self.members.values()))

    def candidate_protocols(self) -> list[str]:
        sets = [{p for p, _ in m.protocols} for m in self.members.values()]
        if not sets:
            return []
        common = set.intersection(*sets)
        first = next(iter(self.members.values()))
        return [p for p, _ in first.protocols if p in common]

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        return (protocol_type == self.protocol_type
                and bool(set(self.candidate_protocols()) & {p for p, _ in protocols}))

    def select_protocol(self) -> str:
        candidates = self.candidate_protocols()
        assert candidates, "select_protocol on a group without a common protocol"
        votes: dict[str, int] = dict.fromkeys(candidates, 0)
        for m in self.members.values():
            for p, _ in m.protocols:
                if p in votes:
                    votes[p] += 1
                    break
        # Most votes; ties go to the first member's preference order.
        return max(candidates, key=lambda p: (votes[p], -candidates.index(p)))

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol), None when unknown."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            try:
                topics.update(decode_consumer_subscription(
                    m.metadata_for(self.protocol_name)).topics)
            except DecodeError:
                return None
        return topics

    def metadata_record(self, now_ms: int) -> GroupMetadataRecord:
        proto = self.protocol_name
        members = tuple(MemberRecord(
            m.member_id, m.group_instance_id, m.client_id, m.client_host,
            m.rebalance_timeout_ms, m.session_timeout_ms,
            m.metadata_for(proto) if proto else b"", m.assignment)
            for m in self.members.values())
        return GroupMetadataRecord(
            self.group_id, self.protocol_type or "", self.generation_id, proto,
            self.leader_id, self.state_timestamp_ms if self.state_timestamp_ms >= 0 else now_ms,
            members)
