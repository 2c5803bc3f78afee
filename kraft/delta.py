"""``MetadataDelta``: replay metadata records on top of an image, then ``apply()`` the next image.

A delta remembers what changed (brokers, topics and partitions, configs, features), which is
what a broker acts on: ``local_changes(broker_id)`` says which partitions this broker must now
lead, follow or delete (Kafka's ``TopicsDelta.localChanges``).

Replay checks what Kafka checks (a partition of an unknown topic, a fence for a broker epoch
that is not registered): such a record means the log and the image disagree, which is a bug or
corruption, so it raises ``MetadataReplayError`` rather than guessing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from kraft.acls import AclsImage, StandardAcl
from kraft.client_quotas import ClientQuotasDelta
from kraft.image import (
    BrokerRegistration,
    ClusterImage,
    ConfigResourceType,
    ConfigurationsImage,
    FeaturesImage,
    MetadataImage,
    PartitionRegistration,
    ProducerIdsImage,
    TopicImage,
    TopicsImage,
)
from kraft.metadata_records import MetadataRecordType
from kraft.scram_image import ScramCredentialData, apply_scram_changes

__all__ = ["LocalReplicaChanges", "MetadataDelta", "MetadataReplayError", "TopicPartition"]

# BrokerRegistrationChangeRecord field values (Kafka's BrokerRegistrationFencingChange and
# BrokerRegistrationInControlledShutdownChange).
FENCING_CHANGE_FENCE = 1
FENCING_CHANGE_UNFENCE = -1
CONTROLLED_SHUTDOWN_CHANGE_IN = 1


class MetadataReplayError(Exception):
    """A record that cannot apply to the image it was replayed on."""


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(slots=True)
class LocalReplicaChanges:
    """What one broker must do after a delta (topic id in the values for the replica manager)."""

    deletes: set[TopicPartition] = field(default_factory=set)
    leaders: dict[TopicPartition, tuple[uuid.UUID, PartitionRegistration]] = field(
        default_factory=dict
    )
    followers: dict[TopicPartition, tuple[uuid.UUID, PartitionRegistration]] = field(
        default_factory=dict
    )

    def is_empty(self) -> bool:
        return not (self.deletes or self.leaders or self.followers)


class _TopicDelta:
    __slots__ = ("image", "name", "partition_changes", "topic_id")

    def __init__(self, image: TopicImage | None, name: str, topic_id: uuid.UUID) -> None:
        self.image = image
        self.name = name
        self.topic_id = topic_id
        self.partition_changes: dict[int, PartitionRegistration] = {}

    def get(self, partition: int) -> PartitionRegistration | None:
        p = self.partition_changes.get(partition)
        if p is None and self.image is not None:
            p = self.image.partitions.get(partition)
        return p

    def apply(self) -> TopicImage:
        if self.image is None:
            parts = dict(self.partition_changes)
        elif not self.partition_changes:
            return self.image
        else:
            parts = dict(self.image.partitions)
            parts.update(self.partition_changes)
        return TopicImage(self.name, self.topic_id, MappingProxyType(parts))


class MetadataDelta:
    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.offset = image.offset
        self.epoch = image.epoch
        self._features: dict[str, int | None] = {}
        self._brokers: dict[int, BrokerRegistration | None] = {}
        self._topics: dict[uuid.UUID, _TopicDelta] = {}
        self._deleted_topics: dict[uuid.UUID, TopicImage] = {}
        self._configs: dict[tuple[int, str], dict[str, str | None]] = {}
        self._deleted_config_resources: set[tuple[int, str]] = set()
        self._next_producer_id: int | None = None
        self._acls: dict[uuid.UUID, StandardAcl | None] = {}
        self._quotas = ClientQuotasDelta(image.client_quotas)
        self._scram: dict[tuple[str, int], ScramCredentialData | None] = {}
        self._dispatch = {
            MetadataRecordType.REGISTER_BROKER_RECORD: self._register_broker,
            MetadataRecordType.UNREGISTER_BROKER_RECORD: self._unregister_broker,
            MetadataRecordType.FENCE_BROKER_RECORD: self._fence_broker,
            MetadataRecordType.UNFENCE_BROKER_RECORD: self._unfence_broker,
            MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD: self._broker_change,
            MetadataRecordType.TOPIC_RECORD: self._topic,
            MetadataRecordType.PARTITION_RECORD: self._partition,
            MetadataRecordType.PARTITION_CHANGE_RECORD: self._partition_change,
            MetadataRecordType.REMOVE_TOPIC_RECORD: self._remove_topic,
            MetadataRecordType.CONFIG_RECORD: self._config,
            MetadataRecordType.FEATURE_LEVEL_RECORD: self._feature_level,
            MetadataRecordType.PRODUCER_IDS_RECORD: self._producer_ids,
            MetadataRecordType.NO_OP_RECORD: lambda _r: None,
            MetadataRecordType.ACCESS_CONTROL_ENTRY_RECORD: self._acl,
            MetadataRecordType.REMOVE_ACCESS_CONTROL_ENTRY_RECORD: self._remove_acl,
            MetadataRecordType.CLIENT_QUOTA_RECORD: self._quotas.replay,
            MetadataRecordType.USER_SCRAM_CREDENTIAL_RECORD: self._scram_credential,
            MetadataRecordType.REMOVE_USER_SCRAM_CREDENTIAL_RECORD: self._remove_scram,
        }

    # ------------------------------------------------------------------ replay

    def replay(self, record_type: int, record: Any) -> None:
        handler = self._dispatch.get(record_type)  # type: ignore[call-overload]
        if handler is None:
            handler = self._dispatch[MetadataRecordType(record_type)]  # ValueError if unknown
        handler(record)

    def replay_all(self, records: Iterable[tuple[int, Any]]) -> None:
        replay = self.replay
        for t, r in records:
            replay(t, r)

    def set_provenance(self, offset: int, epoch: int) -> None:
        """The offset and epoch of the last record replayed (recorded in the next image)."""
        self.offset = offset
        self.epoch = epoch

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        if broker_id in self._brokers:
            return self._brokers[broker_id]
        return self.image.cluster.brokers.get(broker_id)

    def _require_broker(self, broker_id: int, epoch: int, what: str) -> BrokerRegistration:
        b = self.broker(broker_id)
        if b is None or b.epoch != epoch:
            raise MetadataReplayError(
                f"{what}: broker {broker_id} epoch {epoch} is not registered "
                f"(registered: {None if b is None else b.epoch})"
            )
        return b

    def _register_broker(self, r: Any) -> None:
        self._brokers[r.broker_id] = BrokerRegistration.from_record(r)

    def _unregister_broker(self, r: Any) -> None:
        self._require_broker(r.broker_id, r.broker_epoch, "UnregisterBrokerRecord")
        self._brokers[r.broker_id] = None

    def _fence_broker(self, r: Any) -> None:
        b = self._require_broker(r.id, r.epoch, "FenceBrokerRecord")
        self._brokers[r.id] = replace(b, fenced=True)

    def _unfence_broker(self, r: Any) -> None:
        b = self._require_broker(r.id, r.epoch, "UnfenceBrokerRecord")
        self._brokers[r.id] = replace(b, fenced=False)

    def _broker_change(self, r: Any) -> None:
        b = self._require_broker(r.broker_id, r.broker_epoch, "BrokerRegistrationChangeRecord")
        fenced = b.fenced
        if r.fenced == FENCING_CHANGE_FENCE:
            fenced = True
        elif r.fenced == FENCING_CHANGE_UNFENCE:
            fenced = False
        shutdown = b.in_controlled_shutdown or r.in_controlled_shutdown == (
            CONTROLLED_SHUTDOWN_CHANGE_IN
        )
        # Kafka's ClusterControlManager: an empty LogDirs means no change of directories.
        dirs = tuple(sorted(r.log_dirs)) if r.log_dirs else b.directories
        self._brokers[r.broker_id] = replace(b, fenced=fenced, in_controlled_shutdown=shutdown,
                                             directories=dirs)

    def _topic_delta(self, topic_id: uuid.UUID, what: str) -> _TopicDelta:
        td = self._topics.get(topic_id)
        if td is None:
            image = self.image.topics.by_id.get(topic_id)
            if image is None or topic_id in self._deleted_topics:
                raise MetadataReplayError(f"{what}: unknown topic id {topic_id}")
            td = self._topics[topic_id] = _TopicDelta(image, image.name, topic_id)
        return td

    def _topic(self, r: Any) -> None:
        if r.topic_id in self._topics or (
            r.topic_id in self.image.topics.by_id and r.topic_id not in self._deleted_topics
        ):
            raise MetadataReplayError(f"TopicRecord: topic id {r.topic_id} already exists")
        self._topics[r.topic_id] = _TopicDelta(None, r.name, r.topic_id)

    def _partition(self, r: Any) -> None:
        td = self._topic_delta(r.topic_id, "PartitionRecord")
        td.partition_changes[r.partition_id] = PartitionRegistration.from_record(r)

    def _partition_change(self, r: Any) -> None:
        td = self._topic_delta(r.topic_id, "PartitionChangeRecord")
        current = td.get(r.partition_id)
        if current is None:
            raise MetadataReplayError(
                f"PartitionChangeRecord: unknown partition {td.name}-{r.partition_id}"
            )
        td.partition_changes[r.partition_id] = current.merge(r)

    def _remove_topic(self, r: Any) -> None:
        td = self._topics.pop(r.topic_id, None)
        image = self.image.topics.by_id.get(r.topic_id)
        if td is None and (image is None or r.topic_id in self._deleted_topics):
            raise MetadataReplayError(f"RemoveTopicRecord: unknown topic id {r.topic_id}")
        name = td.name if td is not None else image.name  # type: ignore[union-attr]
        if image is not None:
            self._deleted_topics[r.topic_id] = image
        # A topic's configs go with it (Kafka's ConfigurationsDelta does the same).
        key = (int(ConfigResourceType.TOPIC), name)
        self._configs.pop(key, None)
        self._deleted_config_resources.add(key)

    def _config(self, r: Any) -> None:
        key = (r.resource_type, r.resource_name)
        self._configs.setdefault(key, {})[r.name] = r.value

    def _feature_level(self, r: Any) -> None:
        self._features[r.name] = r.feature_level or None

    def _producer_ids(self, r: Any) -> None:
        current = (
            self._next_producer_id
            if self._next_producer_id is not None
            else self.image.producer_ids.next_producer_id
        )
        if r.next_producer_id < current:
            raise MetadataReplayError(
                f"ProducerIdsRecord: next producer id {r.next_producer_id} < {current}"
            )
        self._next_producer_id = r.next_producer_id

    def _scram_credential(self, r: Any) -> None:
        self._scram[(r.name, r.mechanism)] = ScramCredentialData(
            bytes(r.salt), bytes(r.stored_key), bytes(r.server_key), r.iterations)

    def _remove_scram(self, r: Any) -> None:
        self._scram[(r.name, r.mechanism)] = None

    def _acl(self, r: Any) -> None:
        self._acls[r.id] = StandardAcl.from_record(r)

    def _remove_acl(self, r: Any) -> None:
        known = self._acls[r.id] if r.id in self._acls else self.image.acls.by_id.get(r.id)
        if known is None:
            raise MetadataReplayError(f"RemoveAccessControlEntryRecord: no ACL with id {r.id}")
        self._acls[r.id] = None

    @property
    def acls_changed(self) -> bool:
        return bool(self._acls)

    # ------------------------------------------------------------------ apply

    def apply(self) -> MetadataImage:
        img = self.image
        features = img.features
        if self._features:
            levels = dict(features.levels)
            for k, v in self._features.items():
                if v is None:
                    levels.pop(k, None)
                else:
                    levels[k] = v
            features = FeaturesImage(MappingProxyType(levels))
        cluster = img.cluster
        if self._brokers:
            brokers = dict(cluster.brokers)
            for bid, b in self._brokers.items():
                if b is None:
                    brokers.pop(bid, None)
                else:
                    brokers[bid] = b
            cluster = ClusterImage(MappingProxyType(brokers))
        topics = img.topics
        if self._topics or self._deleted_topics:
            by_id = dict(topics.by_id)
            by_name = dict(topics.by_name)
            for tid, old in self._deleted_topics.items():
                by_id.pop(tid, None)
                if by_name.get(old.name) is old:
                    del by_name[old.name]
            for tid, td in self._topics.items():
                t = td.apply()
                by_id[tid] = t
                by_name[t.name] = t
            topics = TopicsImage(MappingProxyType(by_id), MappingProxyType(by_name))
        configs = img.configs
        if self._configs or self._deleted_config_resources:
            resources = dict(configs.resources)
            for key in self._deleted_config_resources:
                resources.pop(key, None)
            for key, changes in self._configs.items():
                values = dict(resources.get(key, {}))
                for k, v in changes.items():
                    if v is None:
                        values.pop(k, None)
                    else:
                        values[k] = v
                if values:
                    resources[key] = MappingProxyType(values)
                else:
                    resources.pop(key, None)
            configs = ConfigurationsImage(MappingProxyType(resources))
        producer_ids = img.producer_ids
        if self._next_producer_id is not None:
            producer_ids = ProducerIdsImage(self._next_producer_id)
        acls = img.acls
        if self._acls:
            by_id = dict(acls.by_id)
            for acl_id, acl in self._acls.items():
                if acl is None:
                    by_id.pop(acl_id, None)
                else:
                    by_id[acl_id] = acl
            acls = AclsImage(MappingProxyType(by_id))
        return MetadataImage(
            offset=self.offset,
            epoch=self.epoch,
            features=features,
            cluster=cluster,
            topics=topics,
            configs=configs,
            producer_ids=producer_ids,
            acls=acls,
            client_quotas=self._quotas.apply(),
            scram=apply_scram_changes(img.scram, self._scram),
        )

    # ------------------------------------------------------------------ what changed

    @property
    def deleted_topics(self) -> Mapping[uuid.UUID, TopicImage]:
        return self._deleted_topics

    def client_quotas_changed(self) -> bool:
        return self._quotas.changed()

    def changed_config_resources(self) -> set[tuple[int, str]]:
        return set(self._configs) | self._deleted_config_resources

    def local_changes(self, broker_id: int) -> LocalReplicaChanges:
        """Partitions ``broker_id`` must now lead, follow, or delete (it left the replicas or
        the topic is gone). A partition whose registration changed in any way is listed again,
        so the replica manager sees every new leader epoch and ISR."""
        out = LocalReplicaChanges()
        for old in self._deleted_topics.values():
            for pid, p in old.partitions.items():
                if broker_id in p.replicas:
                    out.deletes.add(TopicPartition(old.name, pid))
        for tid, td in self._topics.items():
            old_image = td.image
            for pid, p in td.partition_changes.items():
                tp = TopicPartition(td.name, pid)
                if broker_id in p.replicas:
                    if p.leader == broker_id:
                        out.leaders[tp] = (tid, p)
                    else:
                        out.followers[tp] = (tid, p)
                else:
                    before = old_image.partitions.get(pid) if old_image is not None else None
                    if before is not None and broker_id in before.replicas:
                        out.deletes.add(tp)
        return out
