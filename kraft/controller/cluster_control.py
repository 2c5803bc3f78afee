"""Broker registration, heartbeats and fencing (Kafka's ClusterControlManager,
BrokerHeartbeatManager and the broker parts of ReplicationControlManager).

Registrations live in the image (records); heartbeat sessions are volatile state of the active
controller only (``BrokerHeartbeatManager``): a newly active controller gives every registered
broker a full session, as Kafka does.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kraft.controller.config import ControllerConfig
from kraft.controller.directories import (
    all_dirs_offline,
    directories_offline_records,
    offline_replica_updates,
    validate_log_dirs,
)
from kraft.controller.partition_change import RecordBuilder, leadership_updates
from kraft.controller.requests import BrokerHeartbeatRequest, BrokerRegistrationRequest
from kraft.controller.results import (
    ApiError,
    BrokerHeartbeatReply,
    BrokerRegistrationReply,
    ControllerResult,
    UnregisterBrokerReply,
)
from kraft.delta import CONTROLLED_SHUTDOWN_CHANGE_IN, FENCING_CHANGE_FENCE, FENCING_CHANGE_UNFENCE
from kraft.image import METADATA_VERSION, BrokerRegistration, MetadataImage
from kraft.metadata_records import (
    BrokerRegistrationChangeRecord,
    MetadataRecordType,
    RegisterBrokerRecord,
    UnregisterBrokerRecord,
)
from storage.error_codes import ErrorCode

__all__ = [
    "BrokerControlState", "BrokerHeartbeatManager", "broker_heartbeat", "check_broker_epoch",
    "fence_broker_records", "register_broker", "stale_brokers", "unregister_broker",
]


class BrokerControlState(enum.Enum):
    FENCED = 0
    UNFENCED = 1
    CONTROLLED_SHUTDOWN = 2
    SHUTDOWN_NOW = 3


@dataclass(slots=True)
class _Session:
    last_contact_ms: int
    metadata_offset: int = -1


class BrokerHeartbeatManager:
    """Last contact time per broker (volatile; only the active controller has one)."""

    def __init__(self, session_timeout_ms: int) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.sessions: dict[int, _Session] = {}

    def reset(self, broker_ids: Any, now_ms: int) -> None:
        self.sessions = {b: _Session(now_ms) for b in broker_ids}

    def touch(self, broker_id: int, now_ms: int, metadata_offset: int = -1) -> None:
        s = self.sessions.get(broker_id)
        if s is None:
            self.sessions[broker_id] = _Session(now_ms, metadata_offset)
        else:
            s.last_contact_ms = now_ms
            if metadata_offset >= 0:
                s.metadata_offset = metadata_offset

    def remove(self, broker_id: int) -> None:
        self.sessions.pop(broker_id, None)

    def session_valid(self, broker_id: int, now_ms: int) -> bool:
        s = self.sessions.get(broker_id)
        return s is not None and s.last_contact_ms + self.session_timeout_ms >= now_ms


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> None:
    reg = image.cluster.brokers.get(broker_id)
    if reg is None:
        raise ApiError(ErrorCode.STALE_BROKER_EPOCH,
                       f"No broker registration found for broker id {broker_id}")
    if reg.epoch != broker_epoch:
        raise ApiError(ErrorCode.STALE_BROKER_EPOCH,
                       f"Expected broker epoch {reg.epoch}, but got broker epoch {broker_epoch}")


def register_broker(
    image: MetadataImage,
    config: ControllerConfig,
    heartbeats: BrokerHeartbeatManager,
    request: BrokerRegistrationRequest,
    now_ms: int,
    next_offset: int,
) -> ControllerResult:
    """BrokerRegistration: a new incarnation gets broker epoch ``next_offset`` (the offset its
    RegisterBrokerRecord lands at, the first record of the batch) and starts fenced; the same
    incarnation re-registering keeps its epoch and state."""
    broker_id = request.broker_id
    try:
        if config.cluster_id is not None and request.cluster_id != config.cluster_id:
            raise ApiError(ErrorCode.INCONSISTENT_CLUSTER_ID,
                           f"Expected cluster ID {config.cluster_id}, but got cluster ID "
                           f"{request.cluster_id}")
        if request.is_migrating_zk_broker:
            raise ApiError(ErrorCode.BROKER_ID_NOT_REGISTERED,
                           "Controller does not support registering ZK brokers.")
        existing = image.cluster.brokers.get(broker_id)
        incarnation: uuid.UUID = request.incarnation_id
        if (existing is not None and not existing.fenced
                and heartbeats.session_valid(broker_id, now_ms)
                and existing.incarnation_id != incarnation):
            raise ApiError(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                           "Another broker is registered with that broker id.")
        mv = image.features.metadata_version or config.metadata_version
        features = []
        for f in request.features:
            if f.name == METADATA_VERSION and not (
                    f.min_supported_version <= mv <= f.max_supported_version):
                raise ApiError(ErrorCode.UNSUPPORTED_VERSION,
                               f"Unable to register because the broker does not support "
                               f"version {mv} of {METADATA_VERSION}. It wants a version "
                               f"between {f.min_supported_version} and "
                               f"{f.max_supported_version}, inclusive.")
            features.append(RegisterBrokerRecord.BrokerFeature(
                name=f.name, min_supported_version=f.min_supported_version,
                max_supported_version=f.max_supported_version))
        validate_log_dirs(image, broker_id, request.log_dirs)
    except ApiError as e:
        return ControllerResult([], BrokerRegistrationReply(e.code, -1, e.message))

    same = existing is not None and existing.incarnation_id == incarnation
    record = RegisterBrokerRecord(
        broker_id=broker_id,
        incarnation_id=incarnation,
        broker_epoch=existing.epoch if same and existing is not None else next_offset,
        end_points=[
            RegisterBrokerRecord.BrokerEndpoint(
                name=lst.name, host=lst.host, port=lst.port,
                security_protocol=lst.security_protocol)
            for lst in request.listeners
        ],
        features=features,
        rack=request.rack,
        fenced=existing.fenced if same and existing is not None else True,
        in_controlled_shutdown=(existing.in_controlled_shutdown
                                if same and existing is not None else False),
        log_dirs=list(request.log_dirs),
    )
    b = RecordBuilder(image)
    b.add(MetadataRecordType.REGISTER_BROKER_RECORD, record)
    if existing is not None and not same and not existing.fenced:
        # The old incarnation is gone (its session expired, not yet fenced): move leadership
        # and ISR membership away from it, as fencing would, so no partition keeps a leader
        # that is now fenced.
        b.extend(leadership_updates(image, config, remove=broker_id))
    if request.log_dirs:
        # Replicas in a directory the broker no longer registers (it failed at start-up, or
        # was removed from log.dirs) cannot lead and leave the ISR (KIP-858).
        online = set(request.log_dirs)
        b.extend(offline_replica_updates(b.image, config, broker_id,
                                         lambda d: d.int >= 100 and d not in online))
    if not same:
        heartbeats.remove(broker_id)
    heartbeats.touch(broker_id, now_ms)
    return ControllerResult(b.records, BrokerRegistrationReply(ErrorCode.NONE, record.broker_epoch))


def fence_broker_records(
    image: MetadataImage, config: ControllerConfig, broker_id: int
) -> list[Any]:
    """Kafka's handleBrokerFenced: new leaders/ISRs without the broker, then the fence."""
    reg = image.cluster.brokers[broker_id]
    records = leadership_updates(image, config, remove=broker_id)
    records.append((MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD,
                    BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=reg.epoch,
                                                   fenced=FENCING_CHANGE_FENCE)))
    return records


def _has_leaderships(image: MetadataImage, broker_id: int) -> bool:
    return any(p.leader == broker_id for t in image.topics.by_id.values()
               for p in t.partitions.values())


def _current_state(reg: BrokerRegistration) -> BrokerControlState:
    if reg.fenced:
        return BrokerControlState.FENCED
    if reg.in_controlled_shutdown:
        return BrokerControlState.CONTROLLED_SHUTDOWN
    return BrokerControlState.UNFENCED


def _next_state(image: MetadataImage, reg: BrokerRegistration,
                request: BrokerHeartbeatRequest, register_offset: int) -> BrokerControlState:
    """Kafka's BrokerHeartbeatManager.calculateNextBrokerState."""
    state = _current_state(reg)
    S = BrokerControlState
    if state is S.FENCED:
        if request.want_shut_down:
            return S.SHUTDOWN_NOW
        if not request.want_fence and request.current_metadata_offset >= register_offset:
            return S.UNFENCED
        return S.FENCED
    if state is S.UNFENCED:
        if request.want_fence:
            return S.SHUTDOWN_NOW if request.want_shut_down else S.FENCED
        if request.want_shut_down:
            return (S.CONTROLLED_SHUTDOWN if _has_leaderships(image, reg.broker_id)
                    else S.SHUTDOWN_NOW)
        return S.UNFENCED
    # CONTROLLED_SHUTDOWN: done once every leadership has moved away.
    if _has_leaderships(image, reg.broker_id):
        return S.CONTROLLED_SHUTDOWN
    return S.SHUTDOWN_NOW


def broker_heartbeat(
    image: MetadataImage,
    config: ControllerConfig,
    heartbeats: BrokerHeartbeatManager,
    register_offsets: Mapping[int, int],
    request: BrokerHeartbeatRequest,
    now_ms: int,
) -> ControllerResult:
    broker_id = request.broker_id
    try:
        check_broker_epoch(image, broker_id, request.broker_epoch)
    except ApiError as e:
        return ControllerResult([], BrokerHeartbeatReply(
            e.code, is_caught_up=False, is_fenced=True, error_message=e.message))
    reg = image.cluster.brokers[broker_id]
    register_offset = register_offsets.get(broker_id, reg.epoch)
    current = _current_state(reg)
    if not request.want_fence and all_dirs_offline(image, broker_id, request.offline_log_dirs):
        # Every log dir of the broker is offline: it can host nothing, so it is fenced.
        request = dataclasses.replace(request, want_fence=True)
    nxt = _next_state(image, reg, request, register_offset)
    S = BrokerControlState
    records: list[Any] = []
    if nxt is not current:
        if nxt in (S.FENCED, S.SHUTDOWN_NOW):
            if not reg.fenced:
                records = fence_broker_records(image, config, broker_id)
        elif nxt is S.UNFENCED:
            records.append((MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD,
                            BrokerRegistrationChangeRecord(
                                broker_id=broker_id, broker_epoch=reg.epoch,
                                fenced=FENCING_CHANGE_UNFENCE)))
            records.extend(leadership_updates(image, config, add=broker_id,
                                              only_leaderless=True))
        elif nxt is S.CONTROLLED_SHUTDOWN:
            records.append((MetadataRecordType.BROKER_REGISTRATION_CHANGE_RECORD,
                            BrokerRegistrationChangeRecord(
                                broker_id=broker_id, broker_epoch=reg.epoch,
                                in_controlled_shutdown=CONTROLLED_SHUTDOWN_CHANGE_IN)))
            records.extend(leadership_updates(image, config, remove=broker_id))
    if request.offline_log_dirs:
        b = RecordBuilder(image)
        b.extend(records)
        b.extend(directories_offline_records(b.image, config, broker_id, reg.epoch,
                                             request.offline_log_dirs))
        records = b.records
    heartbeats.touch(broker_id, now_ms, request.current_metadata_offset)
    reply = BrokerHeartbeatReply(
        ErrorCode.NONE,
        is_caught_up=request.current_metadata_offset >= register_offset,
        is_fenced=nxt in (S.FENCED, S.SHUTDOWN_NOW),
        in_controlled_shutdown=nxt is S.CONTROLLED_SHUTDOWN,
        should_shut_down=nxt is S.SHUTDOWN_NOW,
    )
    return ControllerResult(records, reply)


def unregister_broker(
    image: MetadataImage,
    config: ControllerConfig,
    heartbeats: BrokerHeartbeatManager,
    broker_id: int,
) -> ControllerResult:
    reg = image.cluster.brokers.get(broker_id)
    if reg is None:
        return ControllerResult([], UnregisterBrokerReply(
            ErrorCode.BROKER_ID_NOT_REGISTERED,
            f"Broker ID {broker_id} is not currently registered"))
    records = leadership_updates(image, config, remove=broker_id)
    records.append((MetadataRecordType.UNREGISTER_BROKER_RECORD,
                    UnregisterBrokerRecord(broker_id=broker_id, broker_epoch=reg.epoch)))
    heartbeats.remove(broker_id)
    return ControllerResult(records, UnregisterBrokerReply(ErrorCode.NONE, None))


def stale_brokers(image: MetadataImage, heartbeats: BrokerHeartbeatManager,
                  now_ms: int) -> list[int]:
    """Unfenced brokers whose session timed out (a missing session counts as fresh: it is
    started now, e.g. for a registration replayed from another controller's term)."""
    out = []
    for bid in sorted(image.cluster.brokers):
        if image.cluster.brokers[bid].fenced:
            continue
        if bid not in heartbeats.sessions:
            heartbeats.touch(bid, now_ms)
            continue
        if not heartbeats.session_valid(bid, now_ms):
            out.append(bid)
    return out
