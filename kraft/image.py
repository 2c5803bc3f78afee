"""The metadata image: an immutable view of the cluster built only by replaying metadata records.

Kafka's ``metadata/image`` shape: ``MetadataImage`` holds features, the cluster (broker
registrations), topics with their partitions, configs and the producer-id cursor. It never
changes; ``kraft.delta.MetadataDelta`` replays records on top of one and ``apply()`` returns the
next image, sharing every unchanged topic and broker with the previous one (copy on write), so
one image per committed batch is cheap even with 100 K partitions.

``MetadataImage.records()`` is the inverse of replay: the records that rebuild the image from
nothing, which is what a snapshot holds.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kraft.acls import AclsImage
from kraft.client_quotas import ClientQuotasImage
from kraft.directories import directory_of, is_dir_online, merged_directories
from kraft.fast_init import fast_frozen_init
from kraft.metadata_records import (
    ConfigRecord,
    FeatureLevelRecord,
    MetadataRecordType,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    TopicRecord,
    UserScramCredentialRecord,
)
from kraft.scram_image import ScramImage

__all__ = [
    "NO_LEADER",
    "BrokerRegistration",
    "ClusterImage",
    "ConfigResourceType",
    "ConfigurationsImage",
    "Endpoint",
    "FeaturesImage",
    "LeaderRecoveryState",
    "MetadataImage",
    "PartitionRegistration",
    "ProducerIdsImage",
    "TopicImage",
    "TopicsImage",
]

NO_LEADER = -1
NO_LEADER_CHANGE = -2  # PartitionChangeRecord.leader default: the leader stays
METADATA_VERSION = "metadata.version"

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class ConfigResourceType(enum.IntEnum):
    """Kafka's ConfigResource.Type ids, as ConfigRecord.resource_type holds them."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


class LeaderRecoveryState(enum.IntEnum):
    RECOVERED = 0
    RECOVERING = 1


_RECOVERY_STATES = {int(s): s for s in LeaderRecoveryState}


def _recovery_state(value: int) -> LeaderRecoveryState:
    """``LeaderRecoveryState(value)`` (ValueError if unknown) without the enum call's cost."""
    got = _RECOVERY_STATES.get(value)
    return LeaderRecoveryState(value) if got is None else got


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int
    security_protocol: int = 0  # PLAINTEXT


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    broker_id: int
    epoch: int
    incarnation_id: uuid.UUID
    listeners: tuple[Endpoint, ...]
    features: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    rack: str | None = None
    fenced: bool = True
    in_controlled_shutdown: bool = False
    # KIP-858: the ids of the broker's online log directories, sorted (empty: not known).
    directories: tuple[uuid.UUID, ...] = ()

    def has_online_dir(self, dir_id: uuid.UUID) -> bool:
        return is_dir_online(dir_id, self.directories)

    def listener(self, name: str) -> Endpoint | None:
        for e in self.listeners:
            if e.name == name:
                return e
        return None

    def to_record(self) -> Any:
        return RegisterBrokerRecord(
            broker_id=self.broker_id,
            incarnation_id=self.incarnation_id,
            broker_epoch=self.epoch,
            end_points=[
                RegisterBrokerRecord.BrokerEndpoint(
                    name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol
                )
                for e in self.listeners
            ],
            features=[
                RegisterBrokerRecord.BrokerFeature(
                    name=n, min_supported_version=lo, max_supported_version=hi
                )
                for n, (lo, hi) in sorted(self.features.items())
            ],
            rack=self.rack,
            fenced=self.fenced,
            in_controlled_shutdown=self.in_controlled_shutdown,
            log_dirs=list(self.directories),
        )

    @staticmethod
    def from_record(r: Any) -> BrokerRegistration:
        return BrokerRegistration(
            broker_id=r.broker_id,
            epoch=r.broker_epoch,
            incarnation_id=r.incarnation_id,
            listeners=tuple(
                Endpoint(e.name, e.host, e.port, e.security_protocol) for e in r.end_points
            ),
            features={
                f.name: (f.min_supported_version, f.max_supported_version) for f in r.features
            },
            rack=r.rack,
            fenced=r.fenced,
            in_controlled_shutdown=r.in_controlled_shutdown,
            directories=tuple(sorted(r.log_dirs)),
        )


@fast_frozen_init  # built once per partition on every snapshot load
@dataclass(frozen=True, slots=True)
class PartitionRegistration:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: LeaderRecoveryState = LeaderRecoveryState.RECOVERED
    # KIP-966: replicas that were in the ISR when it shrank below min.insync.replicas.
    elr: tuple[int, ...] = ()
    last_known_elr: tuple[int, ...] = ()
    # KIP-858: the directory id of each replica, parallel to ``replicas`` (empty: not known).
    directories: tuple[uuid.UUID, ...] = ()

    @property
    def has_leader(self) -> bool:
        return self.leader != NO_LEADER

    def directory(self, broker_id: int) -> uuid.UUID:
        """The directory ``broker_id``'s replica lives in (``kraft.directories``)."""
        return directory_of(self.replicas, self.directories, broker_id)

    def merge(self, change: Any) -> PartitionRegistration:
        """Apply a PartitionChangeRecord (Kafka's PartitionRegistration.merge): a changed
        leader bumps the leader epoch; every change bumps the partition epoch."""
        if change.leader == NO_LEADER_CHANGE:
            leader, leader_epoch = self.leader, self.leader_epoch
        else:
            leader, leader_epoch = change.leader, self.leader_epoch + 1
        recovery = self.leader_recovery_state
        if change.leader_recovery_state != -1:
            recovery = LeaderRecoveryState(change.leader_recovery_state)
        replicas = self.replicas if change.replicas is None else tuple(change.replicas)
        if change.directories is not None and len(change.directories) == len(replicas):
            directories = tuple(change.directories)
        elif replicas != self.replicas:
            directories = merged_directories(self.replicas, self.directories, replicas)
        else:
            directories = self.directories
        return PartitionRegistration(
            replicas=replicas,
            isr=self.isr if change.isr is None else tuple(change.isr),
            leader=leader,
            leader_epoch=leader_epoch,
            partition_epoch=self.partition_epoch + 1,
            removing_replicas=(
                self.removing_replicas
                if change.removing_replicas is None
                else tuple(change.removing_replicas)
            ),
            adding_replicas=(
                self.adding_replicas
                if change.adding_replicas is None
                else tuple(change.adding_replicas)
            ),
            leader_recovery_state=recovery,
            elr=self.elr if change.eligible_leader_replicas is None
            else tuple(change.eligible_leader_replicas),
            last_known_elr=self.last_known_elr if change.last_known_elr is None
            else tuple(change.last_known_elr),
            directories=directories,
        )

    @staticmethod
    def from_record(r: Any) -> PartitionRegistration:
        return PartitionRegistration(
            replicas=tuple(r.replicas),
            isr=tuple(r.isr),
            leader=r.leader,
            leader_epoch=r.leader_epoch,
            partition_epoch=r.partition_epoch,
            removing_replicas=tuple(r.removing_replicas),
            adding_replicas=tuple(r.adding_replicas),
            leader_recovery_state=_recovery_state(r.leader_recovery_state),
            elr=tuple(r.eligible_leader_replicas or ()),
            last_known_elr=tuple(r.last_known_elr or ()),
            directories=(tuple(r.directories) if len(r.directories) == len(r.replicas)
                         else ()),
        )

    def to_record(self, topic_id: uuid.UUID, partition_id: int) -> Any:
        return PartitionRecord.cls(  # the class itself: Message.__call__ repacks kwargs
            partition_id=partition_id,
            topic_id=topic_id,
            replicas=list(self.replicas),
            isr=list(self.isr),
            removing_replicas=list(self.removing_replicas),
            adding_replicas=list(self.adding_replicas),
            leader=self.leader,
            leader_recovery_state=int(self.leader_recovery_state),
            leader_epoch=self.leader_epoch,
            partition_epoch=self.partition_epoch,
            eligible_leader_replicas=list(self.elr) if self.elr else None,
            last_known_elr=list(self.last_known_elr) if self.last_known_elr else None,
            directories=list(self.directories),
        )


@dataclass(frozen=True, slots=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    partitions: Mapping[int, PartitionRegistration]


@dataclass(frozen=True, slots=True)
class TopicsImage:
    by_id: Mapping[uuid.UUID, TopicImage] = field(default_factory=lambda: _EMPTY)
    by_name: Mapping[str, TopicImage] = field(default_factory=lambda: _EMPTY)

    def get_partition(self, topic_id: uuid.UUID, partition: int) -> PartitionRegistration | None:
        t = self.by_id.get(topic_id)
        return None if t is None else t.partitions.get(partition)

    def partition_count(self) -> int:
        return sum(len(t.partitions) for t in self.by_id.values())


@dataclass(frozen=True, slots=True)
class ClusterImage:
    brokers: Mapping[int, BrokerRegistration] = field(default_factory=lambda: _EMPTY)

    def unfenced_brokers(self) -> list[BrokerRegistration]:
        return [b for b in self.brokers.values() if not b.fenced]


@dataclass(frozen=True, slots=True)
class ConfigurationsImage:
    """(resource type, resource name) -> {config name: value}; only explicitly set keys."""

    resources: Mapping[tuple[int, str], Mapping[str, str]] = field(default_factory=lambda: _EMPTY)

    def topic_config(self, topic: str) -> Mapping[str, str]:
        return self.resources.get((ConfigResourceType.TOPIC, topic), _EMPTY)

    def broker_config(self, broker: str) -> Mapping[str, str]:
        """``broker`` is a broker id as a string, or "" for the cluster-wide default."""
        return self.resources.get((ConfigResourceType.BROKER, broker), _EMPTY)


@dataclass(frozen=True, slots=True)
class FeaturesImage:
    levels: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    @property
    def metadata_version(self) -> int:
        return self.levels.get(METADATA_VERSION, 0)


@dataclass(frozen=True, slots=True)
class ProducerIdsImage:
    """The first producer id no block has handed out yet."""

    next_producer_id: int = 0


@dataclass(frozen=True, slots=True)
class MetadataImage:
    # Offset and epoch of the last record replayed into this image (-1: nothing yet).
    offset: int = -1
    epoch: int = -1
    features: FeaturesImage = FeaturesImage()
    cluster: ClusterImage = ClusterImage()
    topics: TopicsImage = TopicsImage()
    configs: ConfigurationsImage = ConfigurationsImage()
    producer_ids: ProducerIdsImage = ProducerIdsImage()
    acls: AclsImage = field(default_factory=AclsImage)
    client_quotas: ClientQuotasImage = ClientQuotasImage()  # noqa: RUF009 (immutable)
    scram: ScramImage = field(default_factory=ScramImage)

    def is_empty(self) -> bool:
        return (
            not self.features.levels
            and not self.cluster.brokers
            and not self.topics.by_id
            and not self.configs.resources
            and self.producer_ids.next_producer_id == 0
            and not self.acls.by_id
            and not self.client_quotas.entities
            and not self.scram.credentials
        )

    def records(self) -> Iterator[tuple[MetadataRecordType, Any]]:
        """Records that rebuild this image from an empty one (a snapshot's content).

        Deterministic order (features, brokers, topics with their partitions, configs, producer
        ids, client quotas), so equal images give byte-identical snapshots.
        """
        for name, level in sorted(self.features.levels.items()):
            yield MetadataRecordType.FEATURE_LEVEL_RECORD, FeatureLevelRecord(
                name=name, feature_level=level
            )
        for _, b in sorted(self.cluster.brokers.items()):
            yield MetadataRecordType.REGISTER_BROKER_RECORD, b.to_record()
        # By id, not name: a name is unique only as far as the controller checked it.
        for t in sorted(self.topics.by_id.values(), key=lambda t: (t.name, t.topic_id)):
            yield MetadataRecordType.TOPIC_RECORD, TopicRecord(name=t.name, topic_id=t.topic_id)
            for pid, p in sorted(t.partitions.items()):
                yield MetadataRecordType.PARTITION_RECORD, p.to_record(t.topic_id, pid)
        for (rtype, rname), values in sorted(self.configs.resources.items()):
            for k, v in sorted(values.items()):
                yield MetadataRecordType.CONFIG_RECORD, ConfigRecord(
                    resource_type=rtype, resource_name=rname, name=k, value=v
                )
        if self.producer_ids.next_producer_id:
            yield MetadataRecordType.PRODUCER_IDS_RECORD, ProducerIdsRecord(
                broker_id=-1, broker_epoch=-1, next_producer_id=self.producer_ids.next_producer_id
            )
        for acl_id, acl in sorted(self.acls.by_id.items()):
            yield MetadataRecordType.ACCESS_CONTROL_ENTRY_RECORD, acl.to_record(acl_id)
        yield from self.client_quotas.records()
        for r in self.scram.records(UserScramCredentialRecord):
            yield MetadataRecordType.USER_SCRAM_CREDENTIAL_RECORD, r
