"""Topics, partitions, ISR changes and elections (Kafka's ReplicationControlManager), plus
producer-id blocks (ProducerIdControlManager). Functions of the current image that return a
``ControllerResult``; nothing here changes state."""

from __future__ import annotations

import base64
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from kraft.codec import ZERO_UUID
from kraft.controller.cluster_control import check_broker_epoch
from kraft.controller.config import ControllerConfig
from kraft.controller.configuration_control import SET, incremental_changes
from kraft.controller.directories import partition_directories
from kraft.controller.partition_change import (
    Election,
    build_partition_change,
    is_active,
    leader_acceptor,
    replica_dir_online,
    unclean_enabled,
)
from kraft.controller.placement import UsableBroker, place_replicas
from kraft.controller.requests import (
    AllocateProducerIdsRequest,
    AlterPartitionPartition,
    AlterPartitionRequest,
    CreatableTopic,
    CreatePartitionsRequest,
    CreatePartitionsTopic,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    ElectLeadersRequest,
)
from kraft.controller.results import (
    AllocateProducerIdsReply,
    AlterPartitionPartitionResult,
    AlterPartitionReply,
    AlterPartitionTopicResult,
    ApiError,
    ControllerResult,
    CreatableTopicResult,
    CreatePartitionsReply,
    CreatePartitionsTopicResult,
    CreateTopicsReply,
    DeletableTopicResult,
    DeleteTopicsReply,
    ElectLeadersPartitionResult,
    ElectLeadersReply,
    ElectLeadersTopicResult,
    Record,
    TopicConfigEntry,
)
from kraft.image import (
    NO_LEADER,
    ConfigResourceType,
    LeaderRecoveryState,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
)
from kraft.metadata_records import (
    MetadataRecordType,
    ProducerIdsRecord,
    RemoveTopicRecord,
    TopicRecord,
)
from storage.error_codes import ErrorCode
from storage.log_config import LogConfig

__all__ = [
    "ELECTION_PREFERRED", "ELECTION_UNCLEAN", "MAX_TOPIC_NAME_LENGTH", "allocate_producer_ids",
    "alter_partition", "create_partitions", "create_topics", "delete_topics", "elect_leaders",
    "rebalance_leaders", "validate_topic_name",
]

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
ELECTION_PREFERRED, ELECTION_UNCLEAN = 0, 1
INT64_MAX = 2**63 - 1


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate; raises ApiError(INVALID_TOPIC_EXCEPTION)."""
    if not name:
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                       "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                       f"Topic name is illegal, it can't be longer than "
                       f"{MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                       f"Topic name \"{name}\" is illegal, it contains a character other than "
                       "ASCII alphanumerics, '.', '_' and '-'")


def _unify(name: str) -> str:
    return name.replace(".", "_")


def new_topic_id(image: MetadataImage, rng: random.Random) -> uuid.UUID:
    """A random topic id (Kafka's Uuid.randomUuid: never zero, never base64 starting '-')."""
    while True:
        u = uuid.UUID(int=rng.getrandbits(128))
        if u == ZERO_UUID or u in image.topics.by_id:
            continue
        if base64.urlsafe_b64encode(u.bytes).startswith(b"-"):
            continue
        return u


def _usable_brokers(image: MetadataImage) -> list[UsableBroker]:
    return [UsableBroker(b.broker_id, b.rack) for b in image.cluster.brokers.values()
            if not b.fenced and not b.in_controlled_shutdown]


def _registration(image: MetadataImage, replicas: Sequence[int]) -> PartitionRegistration:
    isr = tuple(r for r in replicas if is_active(image, r))
    if not isr:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       "Unable to replicate the partition: All brokers are currently fenced "
                       "or in controlled shutdown.")
    return PartitionRegistration(replicas=tuple(replicas), isr=isr, leader=isr[0],
                                 leader_epoch=0, partition_epoch=0,
                                 directories=partition_directories(image, replicas))


def _validate_manual(image: MetadataImage, replicas: Sequence[int], rf: int | None) -> None:
    if not replicas:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "The manual partition assignment includes an empty replica list.")
    if len(set(replicas)) != len(replicas):
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       f"The manual partition assignment includes duplicate replicas: "
                       f"{list(replicas)}")
    for r in replicas:
        if r not in image.cluster.brokers:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"The manual partition assignment includes broker {r}, but no such "
                           "broker is registered.")
    if rf is not None and len(replicas) != rf:
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       f"The manual partition assignment includes a partition with "
                       f"{len(replicas)} replica(s), but this is not consistent with previous "
                       f"partitions, which have {rf} replica(s).")
    if not any(is_active(image, r) for r in replicas):
        raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                       "All brokers specified in the manual partition assignment are fenced or "
                       "in controlled shutdown.")


def _effective_configs(config: ControllerConfig,
                       overrides: dict[str, str]) -> tuple[TopicConfigEntry, ...]:
    base = LogConfig(min_insync_replicas=config.min_insync_replicas,
                     unclean_leader_election_enable=config.unclean_leader_election_enable)
    effective = LogConfig.from_topic_configs(overrides, base, ignore_unknown=True)
    out = []
    for k, v in sorted(effective.to_topic_configs().items()):
        if k in overrides:
            out.append(TopicConfigEntry(k, overrides[k], config_source=1))
        else:
            out.append(TopicConfigEntry(k, v, config_source=5))
    for k in sorted(set(overrides) - {e.name for e in out}):
        out.append(TopicConfigEntry(k, overrides[k], config_source=1))
    return tuple(sorted(out, key=lambda e: e.name))


def create_topics(image: MetadataImage, config: ControllerConfig, rng: random.Random,
                  request: CreateTopicsRequest) -> ControllerResult:
    topics = list(request.topics)
    errors: dict[str, ApiError] = {}
    counts: dict[str, int] = {}
    for t in topics:
        counts[t.name] = counts.get(t.name, 0) + 1
    existing_unified = {_unify(n): n for n in image.topics.by_name}
    for t in topics:
        if counts[t.name] > 1:
            errors[t.name] = ApiError(ErrorCode.INVALID_REQUEST, "Duplicate topic name.")
            continue
        try:
            validate_topic_name(t.name)
        except ApiError as e:
            errors[t.name] = e
            continue
        if t.name in image.topics.by_name:
            errors[t.name] = ApiError(ErrorCode.TOPIC_ALREADY_EXISTS,
                                      f"Topic '{t.name}' already exists.")
        elif _unify(t.name) in existing_unified:
            errors[t.name] = ApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"Topic '{t.name}' collides with existing topic: "
                f"{existing_unified[_unify(t.name)]}")
    records: list[Record] = []
    results: list[CreatableTopicResult] = []
    for t in topics:
        if t.name in errors:
            e = errors[t.name]
            results.append(CreatableTopicResult(t.name, e.code, e.message))
            continue
        try:
            result, recs = _create_topic(image, config, rng, t)
        except ApiError as e:
            results.append(CreatableTopicResult(t.name, e.code, e.message))
            continue
        records.extend(recs)
        results.append(result)
    if request.validate_only:
        records = []
    return ControllerResult(records, CreateTopicsReply(tuple(results)))


def _create_topic(image: MetadataImage, config: ControllerConfig, rng: random.Random,
                  t: CreatableTopic) -> tuple[CreatableTopicResult, list[Record]]:
    overrides: dict[str, str] = {}
    for c in t.configs:
        if c.value is None:
            raise ApiError(ErrorCode.INVALID_CONFIG,
                           f"Null value not supported for topic configs: {c.name}")
        overrides[c.name] = c.value
    config_records = incremental_changes(
        image, ConfigResourceType.TOPIC, t.name,
        [(k, SET, v) for k, v in overrides.items()])
    parts: dict[int, PartitionRegistration] = {}
    if t.assignments:
        if t.replication_factor != -1:
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           "A manual partition assignment was specified, but replication "
                           "factor was not set to -1.")
        if t.num_partitions != -1:
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           "A manual partition assignment was specified, but numPartitions "
                           "was not set to -1.")
        rf: int | None = None
        for a in t.assignments:
            if a.partition_index in parts:
                raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               f"Found multiple manual partition assignments for partition "
                               f"{a.partition_index}")
            replicas = list(a.broker_ids)
            _validate_manual(image, replicas, rf)
            rf = len(replicas)
            parts[a.partition_index] = _registration(image, replicas)
        for i in range(len(parts)):
            if i not in parts:
                raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               "partitions should be a consecutive 0-based integer sequence")
    elif t.replication_factor < -1 or t.replication_factor == 0:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       "Replication factor must be larger than 0, or -1 to use the default "
                       "value.")
    elif t.num_partitions < -1 or t.num_partitions == 0:
        raise ApiError(ErrorCode.INVALID_PARTITIONS,
                       "Number of partitions was set to an invalid non-positive value.")
    else:
        n = config.num_partitions if t.num_partitions == -1 else t.num_partitions
        rf = (config.default_replication_factor if t.replication_factor == -1
              else t.replication_factor)
        for pid, replicas in enumerate(place_replicas(n, rf, _usable_brokers(image), rng)):
            parts[pid] = _registration(image, replicas)
    topic_id = new_topic_id(image, rng)
    records: list[Record] = [(MetadataRecordType.TOPIC_RECORD,
                              TopicRecord(name=t.name, topic_id=topic_id))]
    records.extend((MetadataRecordType.CONFIG_RECORD, r) for r in config_records)
    for pid in sorted(parts):
        records.append((MetadataRecordType.PARTITION_RECORD,
                        parts[pid].to_record(topic_id, pid)))
    result = CreatableTopicResult(
        name=t.name, topic_id=topic_id, num_partitions=len(parts),
        replication_factor=len(parts[0].replicas),
        configs=_effective_configs(config, overrides))
    return result, records


def delete_topics(image: MetadataImage, request: DeleteTopicsRequest) -> ControllerResult:
    """Each topic by id when it has one, else by name."""
    records: list[Record] = []
    results: list[DeletableTopicResult] = []
    deleted: set[uuid.UUID] = set()
    entries: list[tuple[str | None, uuid.UUID | None]] = [
        (t.name if t.topic_id is None else None, t.topic_id) for t in request.topics]
    for name, tid in entries:
        if tid is None:
            topic = image.topics.by_name.get(name) if name is not None else None
            if topic is None:
                results.append(DeletableTopicResult(
                    name, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition."))
                continue
        else:
            topic = image.topics.by_id.get(tid)
            if topic is None:
                results.append(DeletableTopicResult(
                    None, tid, ErrorCode.UNKNOWN_TOPIC_ID, "This server does not host this topic ID."))
                continue
        if topic.topic_id not in deleted:
            deleted.add(topic.topic_id)
            records.append((MetadataRecordType.REMOVE_TOPIC_RECORD,
                            RemoveTopicRecord(topic_id=topic.topic_id)))
        results.append(DeletableTopicResult(topic.name, topic.topic_id))
    return ControllerResult(records, DeleteTopicsReply(tuple(results)))


def create_partitions(image: MetadataImage, rng: random.Random,
                      request: CreatePartitionsRequest) -> ControllerResult:
    records: list[Record] = []
    results: list[CreatePartitionsTopicResult] = []
    seen: dict[str, int] = {}
    for t in request.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
    for t in request.topics:
        try:
            if seen[t.name] > 1:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Duplicate topic name.")
            records.extend(_create_partitions(image, rng, t))
        except ApiError as e:
            results.append(CreatePartitionsTopicResult(t.name, e.code, e.message))
            continue
        results.append(CreatePartitionsTopicResult(t.name))
    if request.validate_only:
        records = []
    return ControllerResult(records, CreatePartitionsReply(tuple(results)))


def _create_partitions(image: MetadataImage, rng: random.Random,
                       t: CreatePartitionsTopic) -> list[Record]:
    topic = image.topics.by_name.get(t.name)
    if topic is None:
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                       "This server does not host this topic-partition.")
    current = len(topic.partitions)
    if t.count == current:
        raise ApiError(ErrorCode.INVALID_PARTITIONS,
                       f"Topic already has {current} partition(s).")
    if t.count < current:
        raise ApiError(ErrorCode.INVALID_PARTITIONS,
                       f"The topic {t.name} currently has {current} partition(s); {t.count} "
                       "would not be an increase.")
    additional = t.count - current
    rf = len(next(iter(topic.partitions.values())).replicas)
    if t.assignments is not None:
        if len(t.assignments) != additional:
            raise ApiError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                           f"Attempted to add {additional} additional partition(s), but only "
                           f"{len(t.assignments)} assignment(s) were specified.")
        assignments = [list(a) for a in t.assignments]
        for a in assignments:
            _validate_manual(image, a, rf)
    else:
        assignments = place_replicas(additional, rf, _usable_brokers(image), rng)
    return [(MetadataRecordType.PARTITION_RECORD,
             _registration(image, a).to_record(topic.topic_id, current + i))
            for i, a in enumerate(assignments)]


def alter_partition(image: MetadataImage, config: ControllerConfig,
                    request: AlterPartitionRequest) -> ControllerResult:
    """AlterPartition v0-3, with Kafka's validation order and error codes."""
    version = request.version
    try:
        check_broker_epoch(image, request.broker_id, request.broker_epoch)
    except ApiError as e:
        return ControllerResult([], AlterPartitionReply(e.code))
    records: list[Record] = []
    topics_out: list[AlterPartitionTopicResult] = []
    for td in request.topics:
        name, tid = td.topic_name, td.topic_id
        topic = (image.topics.by_id.get(tid) if version > 1 and tid is not None
                 else image.topics.by_name.get(name) if version <= 1 else None)
        parts_out: list[AlterPartitionPartitionResult] = []
        if topic is None:
            err = ErrorCode.UNKNOWN_TOPIC_ID if version > 1 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            parts_out = [AlterPartitionPartitionResult(p.partition_index, err)
                         for p in td.partitions]
            topics_out.append(AlterPartitionTopicResult(name, tid, tuple(parts_out)))
            continue
        unclean = Election.UNCLEAN if unclean_enabled(image, config, topic.name) else Election.ONLINE
        for pd in td.partitions:
            pid = pd.partition_index
            part = topic.partitions.get(pid)
            new_isr = [(m.broker_id, m.broker_epoch) for m in pd.new_isr]
            recovery = pd.leader_recovery_state
            err = _validate_alter(image, request.broker_id, part, pd, new_isr, recovery, version)
            if err is not ErrorCode.NONE or part is None:
                parts_out.append(AlterPartitionPartitionResult(pid, err))
                continue
            rec = build_partition_change(
                topic.topic_id, pid, part, leader_acceptor(image, part),
                target_isr=[b for b, _ in new_isr], election=unclean,
                target_recovery=LeaderRecoveryState(recovery))
            if rec is not None:
                records.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
                part = part.merge(rec)
                if rec.leader != request.broker_id and rec.leader != -2:
                    err = (ErrorCode.NEW_LEADER_ELECTED if version > 1
                           else ErrorCode.FENCED_LEADER_EPOCH)
                    parts_out.append(AlterPartitionPartitionResult(pid, err))
                    continue
            parts_out.append(AlterPartitionPartitionResult(
                pid, ErrorCode.NONE, leader_id=part.leader, leader_epoch=part.leader_epoch,
                isr=part.isr, leader_recovery_state=int(part.leader_recovery_state),
                partition_epoch=part.partition_epoch))
        topics_out.append(AlterPartitionTopicResult(name, tid, tuple(parts_out)))
    return ControllerResult(records, AlterPartitionReply(ErrorCode.NONE, tuple(topics_out)))


def _validate_alter(image: MetadataImage, broker_id: int, part: PartitionRegistration | None,
                    pd: AlterPartitionPartition, new_isr: list[tuple[int, int]], recovery: int,
                    version: int) -> ErrorCode:
    if part is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # A leader ahead of us means we are probably no longer the active controller.
    if pd.leader_epoch > part.leader_epoch or pd.partition_epoch > part.partition_epoch:
        return ErrorCode.NOT_CONTROLLER
    if pd.leader_epoch < part.leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if broker_id != part.leader:
        return ErrorCode.INVALID_REQUEST
    if pd.partition_epoch < part.partition_epoch:
        return ErrorCode.INVALID_UPDATE_VERSION
    ids = [b for b, _ in new_isr]
    if len(set(ids)) != len(ids) or any(b not in part.replicas for b in ids):
        return ErrorCode.INVALID_REQUEST
    if part.leader not in ids:
        return ErrorCode.INVALID_REQUEST
    if recovery == LeaderRecoveryState.RECOVERING and len(ids) > 1:
        return ErrorCode.INVALID_REQUEST
    if (part.leader_recovery_state == LeaderRecoveryState.RECOVERED
            and recovery == LeaderRecoveryState.RECOVERING):
        return ErrorCode.INVALID_REQUEST
    for b, epoch in new_isr:
        reg = image.cluster.brokers.get(b)
        if (reg is None or reg.in_controlled_shutdown or reg.fenced
                or (epoch != -1 and reg.epoch != epoch)
                # KIP-858: a replica whose log dir is offline does not rejoin the ISR.
                or (b not in part.isr and not replica_dir_online(image, part, b))):
            return (ErrorCode.INELIGIBLE_REPLICA if version > 1
                    else ErrorCode.OPERATION_NOT_ATTEMPTED)
    return ErrorCode.NONE


def _elect_one(image: MetadataImage, topic_name: str, pid: int, election_type: int
               ) -> tuple[ErrorCode, str | None, Any | None]:
    topic = image.topics.by_name.get(topic_name)
    if topic is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {topic_name}", None
    part = topic.partitions.get(pid)
    if part is None:
        return (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"No such partition as {topic_name}-{pid}", None)
    if election_type == ELECTION_PREFERRED:
        if part.replicas and part.leader == part.replicas[0]:
            return ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition", None
        election = Election.PREFERRED
    elif election_type == ELECTION_UNCLEAN:
        if part.leader != NO_LEADER:
            return ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition", None
        election = Election.UNCLEAN
    else:
        return ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}", None
    rec = build_partition_change(topic.topic_id, pid, part, leader_acceptor(image, part),
                                 election=election)
    if rec is None:
        if election_type == ELECTION_PREFERRED:
            return (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                    (f"Failed to elect leader for partition {topic_name}-{pid} under strategy "
                    "PreferredReplicaPartitionLeaderElectionStrategy"), None)
        return (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                (f"Failed to elect leader for partition {topic_name}-{pid} under strategy "
                "UncleanLeaderElectionStrategy"), None)
    return ErrorCode.NONE, None, rec


def elect_leaders(image: MetadataImage, request: ElectLeadersRequest) -> ControllerResult:
    election_type = request.election_type
    records: list[Record] = []
    results: list[ElectLeadersTopicResult] = []
    wanted: Iterable[tuple[str, list[int]]]
    everything = request.topic_partitions is None
    if everything:
        wanted = [(n, sorted(t.partitions)) for n, t in sorted(image.topics.by_name.items())]
    else:
        merged: dict[str, list[int]] = {}
        for tp in request.topic_partitions:
            lst = merged.setdefault(tp.topic, [])
            lst.extend(p for p in tp.partitions if p not in lst)
        wanted = merged.items()
    for name, pids in wanted:
        parts = []
        for pid in pids:
            code, msg, rec = _elect_one(image, name, pid, election_type)
            if rec is not None:
                records.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
            if everything and code is ErrorCode.ELECTION_NOT_NEEDED:
                continue
            parts.append(ElectLeadersPartitionResult(pid, code, msg))
        if parts or not everything:
            results.append(ElectLeadersTopicResult(name, tuple(parts)))
    return ControllerResult(records, ElectLeadersReply(ErrorCode.NONE, tuple(results)))


MAX_ELECTIONS_PER_REBALANCE = 1000  # Kafka's QuorumController maxElectionsPerImbalance


def rebalance_leaders(image: MetadataImage, imbalance_percentage: int = 10,
                      max_elections: int = MAX_ELECTIONS_PER_REBALANCE
                      ) -> tuple[list[Record], bool]:
    """Auto leader rebalance: for each broker whose share of the partitions it is the
    preferred replica (first in the replicas) of but does not lead exceeds
    ``leader.imbalance.per.broker.percentage``, move those leaderships back to it where it is
    an active ISR member. At most ``max_elections`` per round; True when some are left for the
    next round (Kafka's maybeBalancePartitionLeaders reschedules itself at once then)."""
    preferred: dict[int, int] = {}
    not_led: dict[int, list[tuple[TopicImage, int, PartitionRegistration]]] = {}
    for name in sorted(image.topics.by_name):
        topic = image.topics.by_name[name]
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            if not p.replicas:
                continue
            pref = p.replicas[0]
            preferred[pref] = preferred.get(pref, 0) + 1
            if p.leader != pref:
                not_led.setdefault(pref, []).append((topic, pid, p))
    out: list[Record] = []
    for broker in sorted(not_led):
        if len(not_led[broker]) * 100 <= imbalance_percentage * preferred[broker]:
            continue
        if not is_active(image, broker):
            continue
        for topic, pid, p in not_led[broker]:
            if broker not in p.isr:
                continue
            if len(out) >= max_elections:
                return out, True
            rec = build_partition_change(topic.topic_id, pid, p, leader_acceptor(image, p),
                                         election=Election.PREFERRED)
            if rec is not None:
                out.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
    return out, False


def allocate_producer_ids(image: MetadataImage, config: ControllerConfig,
                          request: AllocateProducerIdsRequest) -> ControllerResult:
    try:
        check_broker_epoch(image, request.broker_id, request.broker_epoch)
        start = image.producer_ids.next_producer_id
        if start > INT64_MAX - config.producer_id_block_size:
            raise ApiError(ErrorCode.UNKNOWN_SERVER_ERROR,
                           "Exhausted all producerIds as the next block's end producerId has "
                           "exceeded the int64 type limit")
    except ApiError as e:
        return ControllerResult([], AllocateProducerIdsReply(e.code, -1, 0))
    rec = ProducerIdsRecord(broker_id=request.broker_id, broker_epoch=request.broker_epoch,
                            next_producer_id=start + config.producer_id_block_size)
    return ControllerResult([(MetadataRecordType.PRODUCER_IDS_RECORD, rec)],
                            AllocateProducerIdsReply(ErrorCode.NONE, start,
                                                     config.producer_id_block_size))
