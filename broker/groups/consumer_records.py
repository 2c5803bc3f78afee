"""The ``__consumer_offsets`` records of consumer groups of the new protocol (KIP-848), byte
for byte as Kafka's group coordinator writes them (``group-coordinator/.../message/
ConsumerGroup*.json``): key = int16 version + key struct, value = int16 version (0) + a flexible
value struct. Key versions:

  3 ConsumerGroupMetadata (group epoch)          6 ConsumerGroupTargetAssignmentMetadata
  4 ConsumerGroupPartitionMetadata (topics)      7 ConsumerGroupTargetAssignmentMember
  5 ConsumerGroupMemberMetadata (subscription)   8 ConsumerGroupCurrentMemberAssignment

``drain_records`` turns what a group marked as changed into records (tombstones for removed
members); ``ConsumerGroupLoader`` replays them into groups when a coordinator loads its
partition (the last record per key wins, a tombstone removes it).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from broker.groups.consumer_group import (
    Assignment,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kraft.codec import INT8, INT32, STRING, UUID, Array, DecodeError, Field, Message, Struct

__all__ = [
    "CONSUMER_KEY_VERSIONS",
    "ConsumerGroupLoader",
    "drain_records",
    "group_tombstones",
    "mark_unwritten",
]

_I16 = struct.Struct(">h")
CONSUMER_KEY_VERSIONS = range(3, 9)


def _key(name: str, version: int, member: bool) -> Message:
    fields = [Field("group_id", STRING, str(version))]
    if member:
        fields.append(Field("member_id", STRING, str(version)))
    return Message(name, valid_versions=str(version), fields=fields)


def _value(name: str, fields: list[Field]) -> Message:
    return Message(name, valid_versions="0", flexible_versions="0+", fields=fields)


_TPS = Array(Struct("TopicPartitions", [
    Field("topic_id", UUID),
    Field("partitions", Array(INT32)),
]))

KEYS = {
    3: _key("ConsumerGroupMetadataKey", 3, False),
    4: _key("ConsumerGroupPartitionMetadataKey", 4, False),
    5: _key("ConsumerGroupMemberMetadataKey", 5, True),
    6: _key("ConsumerGroupTargetAssignmentMetadataKey", 6, False),
    7: _key("ConsumerGroupTargetAssignmentMemberKey", 7, True),
    8: _key("ConsumerGroupCurrentMemberAssignmentKey", 8, True),
}
VALUES = {
    3: _value("ConsumerGroupMetadataValue", [Field("epoch", INT32)]),
    4: _value("ConsumerGroupPartitionMetadataValue", [
        Field("topics", Array(Struct("TopicMetadata", [
            Field("topic_id", UUID),
            Field("topic_name", STRING),
            Field("num_partitions", INT32),
            Field("partition_metadata", Array(Struct("PartitionMetadata", [
                Field("partition", INT32),
                Field("racks", Array(STRING)),
            ]))),
        ]))),
    ]),
    5: _value("ConsumerGroupMemberMetadataValue", [
        Field("instance_id", STRING, nullable_versions="0+"),
        Field("rack_id", STRING, nullable_versions="0+"),
        Field("client_id", STRING),
        Field("client_host", STRING),
        Field("subscribed_topic_names", Array(STRING)),
        Field("subscribed_topic_regex", STRING, nullable_versions="0+"),
        Field("rebalance_timeout_ms", INT32, default=-1),
        Field("server_assignor", STRING, nullable_versions="0+"),
    ]),
    6: _value("ConsumerGroupTargetAssignmentMetadataValue", [
        Field("assignment_epoch", INT32)]),
    7: _value("ConsumerGroupTargetAssignmentMemberValue", [Field("topic_partitions", _TPS)]),
    8: _value("ConsumerGroupCurrentMemberAssignmentValue", [
        Field("member_epoch", INT32),
        Field("previous_member_epoch", INT32),
        Field("state", INT8),
        Field("assigned_partitions", _TPS),
        Field("partitions_pending_revocation", _TPS),
    ]),
}


def _enc_key(version: int, group_id: str, member_id: str | None = None) -> bytes:
    msg = KEYS[version]
    obj = msg.cls(group_id=group_id) if member_id is None else msg.cls(
        group_id=group_id, member_id=member_id)
    return _I16.pack(version) + msg.encode(obj, version)


def _enc_value(version: int, **kw: Any) -> bytes:
    msg = VALUES[version]
    return _I16.pack(0) + msg.encode(msg.cls(**kw), 0)


def _tps(version: int, a: Assignment) -> list[Any]:
    S = VALUES[version].TopicPartitions
    return [S(topic_id=t, partitions=sorted(ps)) for t, ps in sorted(
        a.items(), key=lambda kv: str(kv[0])) if ps]


def _member_value(g: ConsumerGroup, m: ConsumerMember) -> bytes:
    return _enc_value(5, instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id,
                      client_host=m.client_host,
                      subscribed_topic_names=list(m.subscribed_topic_names),
                      subscribed_topic_regex=m.subscribed_topic_regex,
                      rebalance_timeout_ms=m.rebalance_timeout_ms,
                      server_assignor=m.server_assignor)


def drain_records(g: ConsumerGroup) -> list[tuple[bytes, bytes | None]]:
    """Records of what changed in ``g`` since the last call, in Kafka's order; clears the
    marks."""
    gid = g.group_id
    out: list[tuple[bytes, bytes | None]] = []
    for mid in sorted(g.removed_members):
        out += [(_enc_key(8, gid, mid), None), (_enc_key(7, gid, mid), None),
                (_enc_key(5, gid, mid), None)]
    for mid in sorted(g.dirty_members):
        if mid in g.members:
            out.append((_enc_key(5, gid, mid), _member_value(g, g.members[mid])))
    if g.dirty_partition_metadata:
        P = VALUES[4]
        out.append((_enc_key(4, gid), _enc_value(4, topics=[
            P.TopicMetadata(topic_id=tid, topic_name=name, num_partitions=n,
                            partition_metadata=[])
            for name, (tid, n) in sorted(g.subscription_metadata.items())])))
    if g.dirty_group:
        out.append((_enc_key(3, gid), _enc_value(3, epoch=g.group_epoch)))
    for mid in sorted(g.dirty_target):
        if mid in g.members:
            out.append((_enc_key(7, gid, mid),
                        _enc_value(7, topic_partitions=_tps(7, g.target.get(mid, {})))))
    if g.dirty_group or g.dirty_target:
        out.append((_enc_key(6, gid), _enc_value(6, assignment_epoch=g.assignment_epoch)))
    for mid in sorted(g.dirty_current):
        m = g.members.get(mid)
        if m is not None:
            out.append((_enc_key(8, gid, mid), _enc_value(
                8, member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch,
                state=int(m.state), assigned_partitions=_tps(8, m.assigned),
                partitions_pending_revocation=_tps(8, m.pending_revocation))))
    g.dirty_group = g.dirty_partition_metadata = False
    g.dirty_members.clear()
    g.dirty_target.clear()
    g.dirty_current.clear()
    g.removed_members.clear()
    return out


def mark_unwritten(g: ConsumerGroup, records: list[tuple[bytes, bytes | None]]) -> None:
    """Writing ``records`` (from ``drain_records``) failed: the next write carries the whole
    group (and the removals it had), so the log ends up with the state in memory whatever
    happened to this write."""
    for key, value in records:
        if value is None and _I16.unpack_from(key)[0] == 5:
            mid = KEYS[5].decode(key, 5, 2)[0].member_id
            if mid not in g.members:
                g.removed_members.add(mid)
    g.dirty_group = g.dirty_partition_metadata = True
    g.dirty_members.update(g.members)
    g.dirty_target.update(g.members)
    g.dirty_current.update(g.members)


def group_tombstones(g: ConsumerGroup) -> list[tuple[bytes, bytes | None]]:
    """Every record of the group as a tombstone (the group is deleted or goes classic)."""
    gid = g.group_id
    out: list[tuple[bytes, bytes | None]] = []
    for mid in sorted(set(g.members) | set(g.target) | g.removed_members):
        out += [(_enc_key(8, gid, mid), None), (_enc_key(7, gid, mid), None),
                (_enc_key(5, gid, mid), None)]
    out += [(_enc_key(6, gid), None), (_enc_key(4, gid), None), (_enc_key(3, gid), None)]
    return out


def _assignment(tps: Any) -> Assignment:
    return {tp.topic_id: set(tp.partitions) for tp in tps if tp.partitions}


@dataclass
class _Loading:
    epoch: int | None = None
    assignment_epoch: int = 0
    topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    members: dict[str, Any] = field(default_factory=dict)   # member id -> metadata value
    target: dict[str, Assignment] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)   # member id -> current value


class ConsumerGroupLoader:
    """Replays consumer group records of a ``__consumer_offsets`` partition."""

    def __init__(self) -> None:
        self.groups: dict[str, _Loading] = {}

    def replay(self, key: bytes, value: bytes | None) -> None:
        """One record whose key version is in ``CONSUMER_KEY_VERSIONS``; DecodeError if
        malformed."""
        version = _I16.unpack_from(key)[0]
        k, end = KEYS[version].decode(key, version, 2)
        if end != len(key):
            raise DecodeError(f"{KEYS[version].name}: trailing bytes")
        v = None
        if value is not None:
            if len(value) < 2 or _I16.unpack_from(value)[0] != 0:
                raise DecodeError(f"{VALUES[version].name}: unknown value version")
            v, _ = VALUES[version].decode(value, 0, 2)
        if version == 3 and v is None:
            self.groups.pop(k.group_id, None)  # the group's last tombstone
            return
        g = self.groups.setdefault(k.group_id, _Loading())
        if version == 3:
            g.epoch = v.epoch
        elif version == 4:
            g.topics = {} if v is None else {
                t.topic_name: (t.topic_id, t.num_partitions) for t in v.topics}
        elif version == 6:
            g.assignment_epoch = 0 if v is None else v.assignment_epoch
        else:
            table = {5: g.members, 7: g.target, 8: g.current}[version]
            if v is None:
                table.pop(k.member_id, None)
            else:
                table[k.member_id] = _assignment(v.topic_partitions) if version == 7 else v

    def build(self, now_ms: int, session_timeout_ms: int) -> dict[str, ConsumerGroup]:
        out = {}
        for gid, lg in self.groups.items():
            if lg.epoch is None:
                continue
            g = ConsumerGroup(gid, group_epoch=lg.epoch, assignment_epoch=lg.assignment_epoch,
                              subscription_metadata=dict(lg.topics), state_timestamp_ms=now_ms)
            for mid, mv in lg.members.items():
                m = ConsumerMember(
                    mid, instance_id=mv.instance_id, rack_id=mv.rack_id,
                    client_id=mv.client_id, client_host=mv.client_host,
                    subscribed_topic_names=tuple(mv.subscribed_topic_names),
                    subscribed_topic_regex=mv.subscribed_topic_regex,
                    server_assignor=mv.server_assignor,
                    rebalance_timeout_ms=mv.rebalance_timeout_ms,
                    session_deadline_ms=now_ms + session_timeout_ms)
                cur = lg.current.get(mid)
                if cur is not None:
                    m.member_epoch = cur.member_epoch
                    m.previous_member_epoch = cur.previous_member_epoch
                    try:
                        m.state = MemberState(cur.state)
                    except ValueError:
                        m.state = MemberState.UNKNOWN
                    m.assigned = _assignment(cur.assigned_partitions)
                    m.pending_revocation = _assignment(cur.partitions_pending_revocation)
                    if m.state == MemberState.UNREVOKED_PARTITIONS:
                        m.revocation_deadline_ms = now_ms + max(m.rebalance_timeout_ms, 0)
                g.update_member(m)
                g.target[mid] = lg.target.get(mid, {})
            out[gid] = g
        return out
