"""Partition reassignment (KIP-455 as Kafka's KRaft controller does it: ReplicationControlManager
with PartitionReassignmentReplicas and PartitionReassignmentRevert).

A reassignment moves a partition to ``target`` replicas in two records:

1. AlterPartitionReassignments writes a PartitionChangeRecord whose replicas are the target
   followed by the replicas being removed, with ``adding_replicas`` (target - current) and
   ``removing_replicas`` (current - target). Brokers in ``adding_replicas`` create the log and
   follow the leader; the leader counts them as followers and adds them to the ISR once they
   caught up (AlterPartition), like any replica.
2. The first partition change whose ISR holds every target replica completes it
   (``partition_change.maybe_complete``, applied by every ``build_partition_change``, most often
   the AlterPartition that adds the last new replica): replicas = target, ISR = ISR minus the
   removed replicas, both lists cleared; a removed leader is replaced by a target replica and a
   removed replica bumps the leader epoch. Brokers no longer in the replicas stop and delete
   the log.

A target that needs no new replica (a reordering, a smaller replica set whose members are all
in the ISR) completes in the first record. Cancelling (``replicas`` None) reverts to the
replicas before the reassignment: the adding replicas leave the replicas and the ISR.

Functions of the image returning a ``ControllerResult``; nothing here changes state.
"""

from __future__ import annotations

from kraft.controller.config import ControllerConfig
from kraft.controller.partition_change import (
    Election,
    RecordBuilder,
    build_partition_change,
    leader_acceptor,
    unclean_enabled,
)
from kraft.controller.requests import (
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
    ReassignablePartition,
)
from kraft.controller.results import (
    AlterPartitionReassignmentsReply,
    ApiError,
    ControllerResult,
    ListPartitionReassignmentsReply,
    OngoingPartitionReassignment,
    OngoingTopicReassignment,
    ReassignablePartitionResult,
    ReassignableTopicResult,
)
from kraft.image import NO_LEADER, MetadataImage, PartitionRegistration, TopicImage
from kraft.metadata_records import MetadataRecordType
from storage.error_codes import ErrorCode

__all__ = [
    "alter_partition_reassignments", "is_reassigning", "list_partition_reassignments",
    "reassignment_replicas", "revert_replicas",
]

NO_REASSIGNMENT_MESSAGE = "No partition reassignment is in progress for this topic partition."


def is_reassigning(part: PartitionRegistration) -> bool:
    return bool(part.adding_replicas or part.removing_replicas)


def reassignment_replicas(current: tuple[int, ...] | list[int], target: tuple[int, ...] | list[int]
                          ) -> tuple[list[int], list[int], list[int]]:
    """(replicas, adding, removing) of a reassignment from ``current`` to ``target``: the
    target followed by the removed replicas; adding and removing sorted, as Kafka does."""
    removing = sorted(set(current) - set(target))
    adding = sorted(set(target) - set(current))
    return [*target, *removing], adding, removing


def revert_replicas(part: PartitionRegistration) -> tuple[list[int], list[int], bool]:
    """(replicas, ISR, unclean) after cancelling ``part``'s reassignment: the adding replicas
    leave both. When the ISR held only adding replicas the first original replica becomes the
    ISR, which is an unclean election (allowed only when the topic allows those)."""
    adding = set(part.adding_replicas)
    replicas = [r for r in part.replicas if r not in adding]
    isr = [r for r in part.isr if r not in adding]
    if not isr:
        return replicas, replicas[:1], True
    return replicas, isr, False


def _validate_target(image: MetadataImage, target: tuple[int, ...]) -> None:
    """Kafka's validateManualPartitionAssignment (INVALID_REPLICA_ASSIGNMENT)."""
    if not target:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "The manual partition assignment includes an empty replica list.")
    seen: set[int] = set()
    for r in sorted(target):
        if r not in image.cluster.brokers:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"The manual partition assignment includes broker {r}, but no such "
                           "broker is registered.")
        if r in seen:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"The manual partition assignment includes the broker {r} more "
                           "than once.")
        seen.add(r)


def _change(image: MetadataImage, config: ControllerConfig, topic: TopicImage,
            target: ReassignablePartition, allow_rf_change: bool) -> object | None:
    """The PartitionChangeRecord of one partition's reassignment or cancellation (None: no
    change needed); raises ApiError."""
    pid = target.partition_index
    part = topic.partitions.get(pid)
    if part is None:
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                       f"Unable to find partition {topic.name}:{pid}.")

    acceptable = leader_acceptor(image, part)

    if target.replicas is None:
        if not is_reassigning(part):
            raise ApiError(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, NO_REASSIGNMENT_MESSAGE)
        replicas, isr, unclean = revert_replicas(part)
        allow_unclean = unclean_enabled(image, config, topic.name)
        if unclean and not allow_unclean:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Unable to revert partition assignment for {topic.name}:{pid} "
                           "because it would require an unclean leader election.")
        rec = build_partition_change(
            topic.topic_id, pid, part, acceptable, target_isr=isr,
            election=Election.UNCLEAN if allow_unclean else Election.ONLINE,
            target_replicas=replicas, target_adding=(), target_removing=())
    else:
        wanted = tuple(target.replicas)
        _validate_target(image, wanted)
        original = [r for r in part.replicas if r not in set(part.adding_replicas)]
        if not allow_rf_change and len(wanted) != len(original):
            raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                           f"The replication factor is changed from {len(original)} to "
                           f"{len(wanted)} but allowReplicationFactorChange is false.")
        replicas, adding, removing = reassignment_replicas(part.replicas, wanted)
        rec = build_partition_change(
            topic.topic_id, pid, part, acceptable, target_replicas=replicas,
            target_adding=adding, target_removing=removing)
    if rec is not None and part.leader != NO_LEADER and rec.leader == NO_LEADER:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       f"Unable to change the replicas of {topic.name}:{pid}: no replica of "
                       "the result could lead it.")
    return rec


def alter_partition_reassignments(image: MetadataImage, config: ControllerConfig,
                                  request: AlterPartitionReassignmentsRequest
                                  ) -> ControllerResult:
    """Each partition succeeds or fails on its own; the records of the successful ones are
    written together."""
    b = RecordBuilder(image)
    results: list[ReassignableTopicResult] = []
    seen: set[tuple[str, int]] = set()
    for t in request.topics:
        parts: list[ReassignablePartitionResult] = []
        for p in t.partitions:
            topic = image.topics.by_name.get(t.name)
            try:
                if topic is None:
                    raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                   f"Unable to find a topic named {t.name}.")
                # The same partition twice in one request: the second sees the first.
                now = image
                if (t.name, p.partition_index) in seen:
                    now = b.image
                    topic = now.topics.by_name[t.name]
                seen.add((t.name, p.partition_index))
                rec = _change(now, config, topic, p, request.allow_replication_factor_change)
            except ApiError as e:
                parts.append(ReassignablePartitionResult(p.partition_index, e.code, e.message))
                continue
            if rec is not None:
                b.add(MetadataRecordType.PARTITION_CHANGE_RECORD, rec)
            parts.append(ReassignablePartitionResult(p.partition_index))
        results.append(ReassignableTopicResult(t.name, tuple(parts)))
    return ControllerResult(b.records, AlterPartitionReassignmentsReply(results=tuple(results)))


def _ongoing(topic: TopicImage, pids: list[int]) -> OngoingTopicReassignment | None:
    out = []
    for pid in pids:
        p = topic.partitions.get(pid)
        if p is not None and is_reassigning(p):
            out.append(OngoingPartitionReassignment(pid, p.replicas, p.adding_replicas,
                                                    p.removing_replicas))
    return OngoingTopicReassignment(topic.name, tuple(out)) if out else None


def list_partition_reassignments(image: MetadataImage,
                                 request: ListPartitionReassignmentsRequest
                                 ) -> ListPartitionReassignmentsReply:
    """The reassignments in flight (of the named partitions; unknown ones are left out, as in
    Kafka)."""
    wanted: list[tuple[TopicImage, list[int]]] = []
    if request.topics is None:
        wanted = [(t, sorted(t.partitions)) for _, t in sorted(image.topics.by_name.items())]
    else:
        for tp in request.topics:
            topic = image.topics.by_name.get(tp.topic)
            if topic is not None:
                wanted.append((topic, list(tp.partitions)))
    topics = [o for t, pids in wanted if (o := _ongoing(t, pids)) is not None]
    return ListPartitionReassignmentsReply(topics=tuple(topics))
