"""``QuorumController``: the controller state machine, pure (no sockets, no clocks).

State is the metadata image and nothing else that matters for correctness: every operation
computes records and a reply from ``image`` and changes nothing; the image changes only by
replaying records, so a standby (``replay_committed``) and a restarted controller rebuild the
same state. Heartbeat sessions and the rebalance timer are volatile, active-only state.

Driving it (the node's job):

- standby: ``replay_committed(records, last_offset, epoch)`` for every committed batch.
- becoming active (after every record before the new epoch's start offset is replayed):
  ``become_active(epoch, now_ms)``; write its records.
- per request: ``result = op(request, now_ms)`` with the operation's request dataclass
  (``kraft.controller.requests``); hand ``result.records`` to Raft, then
  ``record_written(result.records, last_offset, epoch)``; reply once they are committed.
  When Raft commits, ``replay_committed`` with those records (or just the offset) advances
  ``committed_image``.
- ``tick(now_ms)`` periodically; ``become_standby()`` on losing leadership.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from kraft.acls import AclFilter, StandardAcl
from kraft.controller import (
    acl_control,
    client_quota_control,
    cluster_control,
    configuration_control,
    directories,
    feature_control,
    reassignment,
    replication_control,
    scram_control,
)
from kraft.controller.cluster_control import BrokerHeartbeatManager
from kraft.controller.config import ControllerConfig
from kraft.controller.directories import AssignReplicasToDirsRequest
from kraft.controller.partition_change import RecordBuilder
from kraft.controller.requests import (
    AllocateProducerIdsRequest,
    AlterConfigsRequest,
    AlterPartitionReassignmentsRequest,
    AlterPartitionRequest,
    BrokerHeartbeatRequest,
    BrokerRegistrationRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    ElectLeadersRequest,
    IncrementalAlterConfigsRequest,
    ListPartitionReassignmentsRequest,
    UnregisterBrokerRequest,
)
from kraft.controller.results import ControllerResult, NotController, Record
from kraft.controller.scram_control import AlterScramRequest
from kraft.delta import MetadataDelta
from kraft.image import METADATA_VERSION, MetadataImage
from kraft.metadata_records import FeatureLevelRecord, MetadataRecordType

__all__ = ["QuorumController"]

_EMPTY: Mapping[int, int] = MappingProxyType({})


def _replay(image: MetadataImage, reg_offsets: Mapping[int, int],
            records: Sequence[tuple[int, Any]], last_offset: int,
            epoch: int) -> tuple[MetadataImage, Mapping[int, int]]:
    delta = MetadataDelta(image)
    first = last_offset - len(records) + 1
    new_offsets: dict[int, int] | None = None
    for i, (t, r) in enumerate(records):
        delta.replay(t, r)
        if t == MetadataRecordType.REGISTER_BROKER_RECORD:
            if new_offsets is None:
                new_offsets = dict(reg_offsets)
            new_offsets[r.broker_id] = first + i
        elif t == MetadataRecordType.UNREGISTER_BROKER_RECORD:
            if new_offsets is None:
                new_offsets = dict(reg_offsets)
            new_offsets.pop(r.broker_id, None)
    delta.set_provenance(last_offset, epoch)
    return delta.apply(), (reg_offsets if new_offsets is None else MappingProxyType(new_offsets))


class QuorumController:
    def __init__(self, config: ControllerConfig, rng: random.Random,
                 image: MetadataImage | None = None) -> None:
        self.config = config
        self.rng = rng
        self.image: MetadataImage = image if image is not None else MetadataImage()
        self.committed_image: MetadataImage = self.image
        # Offset of each broker's latest RegisterBrokerRecord (the heartbeat "caught up"
        # bar); rebuilt by replay; a broker loaded from a snapshot falls back to its epoch.
        self._reg_offsets: Mapping[int, int] = _EMPTY
        self._committed_reg_offsets: Mapping[int, int] = _EMPTY
        # Active controller's written-but-uncommitted batches: (end offset, image, offsets).
        self._pending: list[tuple[int, MetadataImage, Mapping[int, int]]] = []
        self.active = False
        self.epoch = -1
        self.heartbeats = BrokerHeartbeatManager(config.broker_session_timeout_ms)
        self._next_rebalance_ms = 0
        self._log_end_offset = 0

    @property
    def next_write_offset(self) -> int:
        """The offset the next written record will get, as far as this controller knows: past
        every record it replayed or wrote, and past the log end the driver last reported
        (``note_log_end_offset``; Raft control records take offsets too)."""
        return max(self.image.offset + 1, self._log_end_offset)

    def note_log_end_offset(self, offset: int) -> None:
        self._log_end_offset = max(self._log_end_offset, offset)

    # ------------------------------------------------------------------ log side

    def load_snapshot(self, image: MetadataImage) -> None:
        """Start over from a snapshot's image (standby only)."""
        assert not self.active
        self.image = self.committed_image = image
        self._reg_offsets = self._committed_reg_offsets = _EMPTY
        self._pending.clear()

    def replay_committed(self, records: Sequence[tuple[int, Any]], last_offset: int,
                         epoch: int) -> None:
        """Records up to ``last_offset`` are committed. As active, batches this controller
        wrote are already in ``image``: only ``committed_image`` advances."""
        if self._pending:
            assert last_offset <= self._pending[-1][0], (
                "foreign records committed while our own writes are pending")
            while self._pending and self._pending[0][0] <= last_offset:
                _, self.committed_image, self._committed_reg_offsets = self._pending.pop(0)
            return
        if last_offset <= self.committed_image.offset:
            return  # already replayed (our own write, committed before we tracked it)
        self.committed_image, self._committed_reg_offsets = _replay(
            self.committed_image, self._committed_reg_offsets, records, last_offset, epoch)
        self.image, self._reg_offsets = self.committed_image, self._committed_reg_offsets

    def record_written(self, records: Sequence[tuple[int, Any]], last_offset: int,
                       epoch: int) -> None:
        """The active controller handed ``records`` to Raft; they end at ``last_offset``."""
        if not records:
            return
        assert self.active
        self.image, self._reg_offsets = _replay(
            self.image, self._reg_offsets, records, last_offset, epoch)
        self._pending.append((last_offset, self.image, self._reg_offsets))

    def become_active(self, epoch: int, now_ms: int) -> ControllerResult:
        """Claim leadership. Every registered broker gets a full session. Bootstraps
        metadata.version on an empty log."""
        self.active = True
        self.epoch = epoch
        self._pending.clear()
        self.image, self._reg_offsets = self.committed_image, self._committed_reg_offsets
        self.heartbeats.reset(self.image.cluster.brokers, now_ms)
        self._next_rebalance_ms = now_ms + self.config.leader_imbalance_check_interval_ms
        records: list[Record] = []
        if self.image.features.metadata_version == 0:
            records.append((MetadataRecordType.FEATURE_LEVEL_RECORD, FeatureLevelRecord(
                name=METADATA_VERSION, feature_level=self.config.metadata_version)))
            records.extend(self.config.bootstrap_records)
        return ControllerResult(records, None)

    def become_standby(self) -> None:
        """Lost leadership: uncommitted writes may never commit; forget them."""
        self.active = False
        self._pending.clear()
        self.image, self._reg_offsets = self.committed_image, self._committed_reg_offsets
        self.heartbeats.reset((), 0)

    @property
    def register_offsets(self) -> Mapping[int, int]:
        return self._reg_offsets

    def _check_active(self) -> None:
        if not self.active:
            raise NotController("this controller is not active")

    # ------------------------------------------------------------------ brokers

    def register_broker(self, request: BrokerRegistrationRequest, now_ms: int,
                        next_offset: int | None = None) -> ControllerResult:
        """``next_offset``: where the records will land (the new broker epoch); default
        ``next_write_offset``."""
        self._check_active()
        if next_offset is None:
            next_offset = self.next_write_offset
        return cluster_control.register_broker(self.image, self.config, self.heartbeats,
                                               request, now_ms, next_offset)

    def broker_heartbeat(self, request: BrokerHeartbeatRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return cluster_control.broker_heartbeat(self.image, self.config, self.heartbeats,
                                                self._reg_offsets, request, now_ms)

    def unregister_broker(self, request: UnregisterBrokerRequest,
                          now_ms: int) -> ControllerResult:
        self._check_active()
        return cluster_control.unregister_broker(self.image, self.config, self.heartbeats,
                                                 request.broker_id)

    def assign_replicas_to_dirs(self, request: AssignReplicasToDirsRequest,
                                now_ms: int) -> ControllerResult:
        self._check_active()
        return directories.assign_replicas_to_dirs(self.image, self.config, request)

    # ------------------------------------------------------------------ topics

    def create_topics(self, request: CreateTopicsRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.create_topics(self.image, self.config, self.rng, request)

    def delete_topics(self, request: DeleteTopicsRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.delete_topics(self.image, request)

    def create_partitions(self, request: CreatePartitionsRequest,
                          now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.create_partitions(self.image, self.rng, request)

    def alter_partition(self, request: AlterPartitionRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.alter_partition(self.image, self.config, request)

    def elect_leaders(self, request: ElectLeadersRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.elect_leaders(self.image, request)

    def alter_partition_reassignments(self, request: AlterPartitionReassignmentsRequest,
                                      now_ms: int) -> ControllerResult:
        self._check_active()
        return reassignment.alter_partition_reassignments(self.image, self.config, request)

    def list_partition_reassignments(self, request: ListPartitionReassignmentsRequest,
                                     now_ms: int) -> ControllerResult:
        """Read only, from the committed image (Kafka answers at the last committed offset)."""
        self._check_active()
        return ControllerResult([], reassignment.list_partition_reassignments(
            self.committed_image, request))

    def allocate_producer_ids(self, request: AllocateProducerIdsRequest,
                              now_ms: int) -> ControllerResult:
        self._check_active()
        return replication_control.allocate_producer_ids(self.image, self.config, request)

    # ------------------------------------------------------------------ configs

    def incremental_alter_configs(self, request: IncrementalAlterConfigsRequest,
                                  now_ms: int) -> ControllerResult:
        self._check_active()
        return configuration_control.incremental_alter_configs(
            self.image, self.config.controller_ids, request)

    def alter_configs(self, request: AlterConfigsRequest, now_ms: int) -> ControllerResult:
        self._check_active()
        return configuration_control.alter_configs(self.image, self.config.controller_ids,
                                                   request)

    # ------------------------------------------------------------------ ACLs

    def create_acls(self, acls: Sequence[StandardAcl], now_ms: int) -> ControllerResult:
        self._check_active()
        return acl_control.create_acls(self.image, self.rng, acls)

    def delete_acls(self, filters: Sequence[AclFilter], now_ms: int) -> ControllerResult:
        self._check_active()
        return acl_control.delete_acls(self.image, filters)
    def alter_client_quotas(self, request: client_quota_control.AlterClientQuotasRequest,
                            now_ms: int) -> ControllerResult:
        self._check_active()
        return client_quota_control.alter_client_quotas(self.image, request)

    def update_features(self, request: feature_control.UpdateFeaturesRequest,
                        now_ms: int) -> ControllerResult:
        self._check_active()
        return feature_control.update_features(
            self.image, request, node_id=self.config.node_id,
            default_metadata_version=self.config.metadata_version,
            kraft_version=self.config.kraft_version)

    # ------------------------------------------------------------------ periodic

    def alter_user_scram_credentials(self, request: AlterScramRequest,
                                     now_ms: int) -> ControllerResult:
        self._check_active()
        return scram_control.alter_user_scram_credentials(self.image, request)

    def tick(self, now_ms: int) -> ControllerResult | None:
        """Fence brokers whose session timed out (each fence sees the previous one's effect),
        then, when due, move leaders back to preferred replicas."""
        if not self.active:
            return None
        b = RecordBuilder(self.image)
        for broker_id in cluster_control.stale_brokers(self.image, self.heartbeats, now_ms):
            reg = b.image.cluster.brokers.get(broker_id)
            if reg is None or reg.fenced:
                continue
            b.extend(cluster_control.fence_broker_records(b.image, self.config, broker_id))
        if self.config.auto_leader_rebalance_enable and now_ms >= self._next_rebalance_ms:
            records, more = replication_control.rebalance_leaders(
                b.image, self.config.leader_imbalance_per_broker_percentage)
            b.extend(records)
            self._next_rebalance_ms = now_ms + (
                0 if more else self.config.leader_imbalance_check_interval_ms)
        if not b.records:
            return None
        return ControllerResult(b.records, None)

    def describe_pending(self) -> Iterable[int]:
        """End offsets of written, not yet committed batches."""
        return [end for end, _, _ in self._pending]
