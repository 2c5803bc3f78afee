"""Log directories in the controller (KIP-858, Kafka's ``ReplicationControlManager``
``handleDirectoriesOffline`` and ``handleAssignReplicasToDirs``, ``ClusterControlManager``
``defaultDir``).

- A broker registers the ids of its online log directories; the registration is refused
  (INVALID_REGISTRATION) for a reserved or duplicate id, or one another broker registered.
- A replica is an acceptable leader only if its broker is active and the directory the replica
  lives in is one of the broker's online directories (Kafka's ``LeaderAcceptor``).
- A heartbeat (or a registration) naming a directory offline moves leadership away from the
  replicas of that broker in that directory and drops the broker from their ISR (never to an
  empty ISR: ``kraft.controller.partition_change``), then records the directories that remain
  online (``BrokerRegistrationChangeRecord.LogDirs``).
- A broker tells the controller which directory each of its replicas lives in
  (AssignReplicasToDirs); the partition's ``Directories`` follow.
- A new replica on a broker with a single directory is assigned to it, otherwise UNASSIGNED
  until its broker says (Kafka's ``defaultDir``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kraft.controller.config import ControllerConfig
from kraft.controller.partition_change import (
    Election,
    RecordBuilder,
    build_partition_change,
    is_active,
    leader_acceptor,
    replica_dir_online,
    unclean_enabled,
)
from kraft.controller.results import ApiError, ControllerResult, Record
from kraft.directories import DIR_MIGRATING, DIR_UNASSIGNED, is_reserved_dir
from kraft.image import MetadataImage, PartitionRegistration
from kraft.metadata_records import (
    BrokerRegistrationChangeRecord,
    MetadataRecordType,
    PartitionChangeRecord,
)
from storage.error_codes import ErrorCode

__all__ = [
    "AssignReplicasToDirsReply",
    "AssignReplicasToDirsRequest",
    "AssignedDirectory",
    "AssignedPartitionResult",
    "all_dirs_offline",
    "assign_replicas_to_dirs",
    "default_dir",
    "directories_offline_records",
    "leader_acceptor",
    "offline_replica_updates",
    "partition_directories",
    "replica_dir_online",
    "validate_log_dirs",
]


# -- requests and replies of AssignReplicasToDirs (key 73) -------------------------------------

@dataclass(frozen=True, slots=True)
class AssignedDirectory:
    """One directory of the request: the (topic id, partition) pairs now living in it."""

    dir_id: uuid.UUID
    partitions: tuple[tuple[uuid.UUID, int], ...]


@dataclass(frozen=True, slots=True)
class AssignReplicasToDirsRequest:
    broker_id: int
    broker_epoch: int
    directories: tuple[AssignedDirectory, ...] = ()


@dataclass(frozen=True, slots=True)
class AssignedPartitionResult:
    dir_id: uuid.UUID
    topic_id: uuid.UUID
    partition_index: int
    error_code: ErrorCode


@dataclass(frozen=True, slots=True)
class AssignReplicasToDirsReply:
    error_code: ErrorCode = ErrorCode.NONE
    results: tuple[AssignedPartitionResult, ...] = ()
    error_message: str | None = None


# -- directories of brokers and replicas --------------------------------------------------------

def all_dirs_offline(image: MetadataImage, broker_id: int,
                     offline_dirs: Iterable[uuid.UUID]) -> bool:
    """Every directory the broker registered is in ``offline_dirs``. Kafka's broker halts then;
    here the controller fences it (no leadership, no ISR membership, no new replica) until it
    registers again with a directory online."""
    reg = image.cluster.brokers.get(broker_id)
    return reg is not None and bool(reg.directories) and set(reg.directories) <= set(offline_dirs)


def default_dir(image: MetadataImage, broker_id: int) -> uuid.UUID:
    """Kafka's ``defaultDir``: a broker's only directory, else UNASSIGNED (the broker picks
    and says); MIGRATING for a broker that registered no directories."""
    reg = image.cluster.brokers.get(broker_id)
    if reg is None:
        return DIR_UNASSIGNED
    if not reg.directories:
        return DIR_MIGRATING
    if len(reg.directories) == 1:
        return reg.directories[0]
    return DIR_UNASSIGNED


def partition_directories(image: MetadataImage, replicas: Sequence[int]) -> tuple[uuid.UUID, ...]:
    """``Directories`` of a new partition: each replica's default directory."""
    return tuple(default_dir(image, r) for r in replicas)


def validate_log_dirs(image: MetadataImage, broker_id: int,
                      log_dirs: Sequence[uuid.UUID]) -> None:
    """Kafka's checks of BrokerRegistration.LogDirs; raises ApiError(INVALID_REGISTRATION).
    An empty list is accepted (a broker that does not report directories)."""
    if any(is_reserved_dir(d) for d in log_dirs):
        raise ApiError(ErrorCode.INVALID_REGISTRATION, "Reserved directory ID in request")
    if len(set(log_dirs)) != len(log_dirs):
        raise ApiError(ErrorCode.INVALID_REGISTRATION, "Duplicate directory ID in request")
    wanted = set(log_dirs)
    for other in image.cluster.brokers.values():
        if other.broker_id == broker_id:
            continue
        clash = wanted & set(other.directories)
        if clash:
            raise ApiError(ErrorCode.INVALID_REGISTRATION,
                           f"Broker {other.broker_id} is already registered with directory "
                           f"{min(clash)}")


# -- directories going offline -----------------------------------------------------------------

def offline_replica_updates(
    image: MetadataImage,
    config: ControllerConfig,
    broker_id: int,
    is_offline: Callable[[uuid.UUID], bool],
) -> list[Record]:
    """For every partition whose replica on ``broker_id`` lives in a directory ``is_offline``
    says is offline: drop the broker from the ISR and elect a leader among the other acceptable
    replicas (Kafka's ``generateLeaderAndIsrUpdates`` with the broker to remove)."""
    out: list[Record] = []
    for name in sorted(image.topics.by_name):
        topic = image.topics.by_name[name]
        election = Election.UNCLEAN if unclean_enabled(image, config, name) else Election.ONLINE
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            if broker_id not in p.replicas or not is_offline(p.directory(broker_id)):
                continue
            acceptable = leader_acceptor(
                image, p, lambda r: r != broker_id and is_active(image, r))
            rec = build_partition_change(
                topic.topic_id, pid, p, acceptable,
                target_isr=[r for r in p.isr if r != broker_id], election=election)
            if rec is not None:
                out.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
    return out


def directories_offline_records(
    image: MetadataImage,
    config: ControllerConfig,
    broker_id: int,
    broker_epoch: int,
    offline_dirs: Iterable[uuid.UUID],
) -> list[Record]:
    """Kafka's ``handleDirectoriesOffline``: nothing unless some of ``offline_dirs`` are
    registered online; then the leadership and ISR updates of the replicas in them and the
    BrokerRegistrationChangeRecord with the directories that remain online."""
    reg = image.cluster.brokers.get(broker_id)
    if reg is None:
        return []
    newly = {d for d in offline_dirs if d in set(reg.directories)}
    if not newly:
        return []
    records = offline_replica_updates(image, config, broker_id, lambda d: d in newly)
    remaining = [d for d in reg.directories if d not in newly]
    if remaining:
        # An empty LogDirs would mean "no change" on replay (Kafka's rule): a broker with every
        # directory offline is fenced instead (``all_dirs_offline``).
        records.append((MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD,
                        BrokerRegistrationChangeRecord(
                            broker_id=broker_id, broker_epoch=broker_epoch, log_dirs=remaining)))
    return records


# -- AssignReplicasToDirs -----------------------------------------------------------------------

def assign_replicas_to_dirs(image: MetadataImage, config: ControllerConfig,
                            request: AssignReplicasToDirsRequest) -> ControllerResult:
    """Kafka's ``handleAssignReplicasToDirs``: per partition, a PartitionChangeRecord with the
    broker's replica in its new directory; a replica placed in an offline directory then loses
    leadership and its ISR membership like any replica on an offline directory."""
    broker_id = request.broker_id
    reg = image.cluster.brokers.get(broker_id)
    if reg is None:
        return ControllerResult([], AssignReplicasToDirsReply(
            ErrorCode.BROKER_ID_NOT_REGISTERED,
            error_message=f"Broker ID {broker_id} is not currently registered"))
    if reg.epoch != request.broker_epoch:
        return ControllerResult([], AssignReplicasToDirsReply(
            ErrorCode.STALE_BROKER_EPOCH,
            error_message=f"Expected broker epoch {reg.epoch}, but got broker epoch "
                          f"{request.broker_epoch}"))
    records: list[Record] = []
    results: list[AssignedPartitionResult] = []
    changed: dict[tuple[uuid.UUID, int], PartitionRegistration] = {}
    offline_targets: set[tuple[uuid.UUID, int]] = set()
    for d in request.directories:
        for topic_id, pid in d.partitions:
            topic = image.topics.by_id.get(topic_id)
            part = None if topic is None else changed.get((topic_id, pid),
                                                          topic.partitions.get(pid))
            if topic is None:
                code = ErrorCode.UNKNOWN_TOPIC_ID
            elif part is None:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif broker_id not in part.replicas:
                code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            else:
                code = ErrorCode.NONE
                dirs = list(part.directories) or [DIR_MIGRATING] * len(part.replicas)
                dirs[part.replicas.index(broker_id)] = d.dir_id
                if tuple(dirs) != part.directories:
                    rec = PartitionChangeRecord(partition_id=pid, topic_id=topic_id,
                                                directories=dirs)
                    records.append((MetadataRecordType.PARTITION_CHANGE_RECORD, rec))
                    changed[(topic_id, pid)] = part.merge(rec)
                if not reg.has_online_dir(d.dir_id):
                    offline_targets.add((topic_id, pid))
            results.append(AssignedPartitionResult(d.dir_id, topic_id, pid, code))
    if offline_targets:
        b = RecordBuilder(image)
        b.extend(records)
        records = list(b.records)
        updates = offline_replica_updates(b.image, config, broker_id,
                                          lambda d: not reg.has_online_dir(d))
        records.extend(
            (t, r) for t, r in updates if (r.topic_id, r.partition_id) in offline_targets)
    return ControllerResult(records, AssignReplicasToDirsReply(ErrorCode.NONE, tuple(results)))
