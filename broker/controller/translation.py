"""The one translation between the wire and the controller's operations, both ways.

For each controller API: ``<api>_request(request, version)`` turns the decoded Kafka request
into its ``kraft.controller.requests`` dataclass, and ``<api>_response(request, reply,
version)`` turns the operation's reply (``kraft.controller.results``) into the Kafka response
at the request's version (fields a version lacks are left at their defaults). A reply of
``None`` means this node is not the active controller: every entry of the request gets
NOT_CONTROLLER.
"""

from __future__ import annotations

import uuid
from typing import Any

from broker.protocol.messages import (
    allocate_producer_ids,
    alter_configs,
    alter_partition,
    alter_partition_reassignments,
    assign_replicas_to_dirs,
    broker_heartbeat,
    broker_registration,
    create_partitions,
    create_topics,
    delete_topics,
    elect_leaders,
    incremental_alter_configs,
    list_partition_reassignments,
    unregister_broker,
)
from kraft.codec import ZERO_UUID
from kraft.controller.directories import (
    AssignedDirectory,
    AssignReplicasToDirsReply,
    AssignReplicasToDirsRequest,
)
from kraft.controller.requests import (
    AllocateProducerIdsRequest,
    AlterConfigsRequest,
    AlterConfigsResource,
    AlterPartitionPartition,
    AlterPartitionReassignmentsRequest,
    AlterPartitionRequest,
    AlterPartitionTopic,
    BrokerHeartbeatRequest,
    BrokerRegistrationRequest,
    ConfigOperation,
    ConfigValue,
    CreatableTopic,
    CreatePartitionsRequest,
    CreatePartitionsTopic,
    CreateTopicsRequest,
    DeletableTopic,
    DeleteTopicsRequest,
    ElectLeadersRequest,
    FeatureRange,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResource,
    IsrMember,
    Listener,
    ListPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
    ReplicaAssignment,
    TopicPartitions,
    UnregisterBrokerRequest,
)
from kraft.controller.results import (
    AllocateProducerIdsReply,
    AlterConfigsReply,
    AlterPartitionReassignmentsReply,
    AlterPartitionReply,
    BrokerHeartbeatReply,
    BrokerRegistrationReply,
    CreatePartitionsReply,
    CreateTopicsReply,
    DeleteTopicsReply,
    ElectLeadersReply,
    ListPartitionReassignmentsReply,
    UnregisterBrokerReply,
)
from storage.error_codes import ErrorCode

__all__ = [
    "allocate_producer_ids_request", "allocate_producer_ids_response", "alter_configs_request",
    "alter_configs_response", "alter_partition_reassignments_request",
    "alter_partition_reassignments_response", "alter_partition_request", "alter_partition_response",
    "assign_replicas_to_dirs_request", "assign_replicas_to_dirs_response",
    "broker_heartbeat_request", "broker_heartbeat_response", "broker_registration_request",
    "broker_registration_response", "create_partitions_request", "create_partitions_response",
    "create_topics_request", "create_topics_response", "delete_topics_request",
    "delete_topics_response", "elect_leaders_request", "elect_leaders_response",
    "incremental_alter_configs_request", "incremental_alter_configs_response",
    "list_partition_reassignments_request", "list_partition_reassignments_response",
    "unregister_broker_request", "unregister_broker_response",
]

_NOT_CONTROLLER_MSG = "This is not the correct controller for this cluster."


def _topic_id(u: uuid.UUID | None) -> uuid.UUID | None:
    """The wire's zero UUID means no topic id."""
    return None if u is None or u == ZERO_UUID else u


# -- CreateTopics (19) ----------------------------------------------------------------------

def create_topics_request(request: Any, version: int) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=tuple(CreatableTopic(
            name=t.name, num_partitions=t.num_partitions,
            replication_factor=t.replication_factor,
            assignments=tuple(ReplicaAssignment(a.partition_index, tuple(a.broker_ids))
                              for a in t.assignments or ()),
            configs=tuple(ConfigValue(c.name, c.value) for c in t.configs))
            for t in request.topics),
        validate_only=bool(getattr(request, "validate_only", False)))


def create_topics_response(request: Any, reply: CreateTopicsReply | None, version: int) -> Any:
    R = create_topics.RESPONSE
    topics = []
    if reply is None:
        for t in request.topics:
            topics.append(R.CreatableTopicResult(
                name=t.name, error_code=ErrorCode.NOT_CONTROLLER,
                error_message=_NOT_CONTROLLER_MSG))
    else:
        for r in reply.topics:
            out = R.CreatableTopicResult(name=r.name, error_code=int(r.error_code),
                                         error_message=r.error_message)
            if r.error_code == ErrorCode.NONE:
                if r.topic_id is not None:
                    out.topic_id = r.topic_id
                out.num_partitions = r.num_partitions
                out.replication_factor = r.replication_factor
                if r.configs is not None and version >= 5:
                    out.configs = [R.CreatableTopicConfigs(
                        name=e.name, value=e.value, read_only=e.read_only,
                        config_source=e.config_source, is_sensitive=e.is_sensitive)
                        for e in r.configs]
            topics.append(out)
    return R.cls(throttle_time_ms=0, topics=topics)


# -- DeleteTopics (20) ----------------------------------------------------------------------

def delete_topics_request(request: Any, version: int) -> DeleteTopicsRequest:
    """By name (``topic_names``, v0-5), then by id or name (``topics``, v6+)."""
    topics = [DeletableTopic(name=n) for n in getattr(request, "topic_names", None) or ()]
    for t in getattr(request, "topics", None) or ():
        tid = _topic_id(t.topic_id)
        topics.append(DeletableTopic(name=t.name if tid is None else None, topic_id=tid))
    return DeleteTopicsRequest(tuple(topics))


def delete_topics_response(request: Any, reply: DeleteTopicsReply | None, version: int) -> Any:
    R = delete_topics.RESPONSE
    v = version
    out = []
    if reply is None:
        for n in request.topic_names or ():
            out.append(R.DeletableTopicResult(name=n, error_code=ErrorCode.NOT_CONTROLLER))
        for t in request.topics or ():
            out.append(R.DeletableTopicResult(
                name=t.name if v >= 6 else (t.name or ""), topic_id=t.topic_id,
                error_code=ErrorCode.NOT_CONTROLLER))
    else:
        for r in reply.results:
            res = R.DeletableTopicResult(
                name=r.name if v >= 6 else (r.name or ""), error_code=int(r.error_code),
                error_message=r.error_message if r.error_code else None)
            if r.topic_id is not None:
                res.topic_id = r.topic_id
            out.append(res)
    return R.cls(throttle_time_ms=0, responses=out)


# -- CreatePartitions (37) ------------------------------------------------------------------

def create_partitions_request(request: Any, version: int) -> CreatePartitionsRequest:
    return CreatePartitionsRequest(
        topics=tuple(CreatePartitionsTopic(
            name=t.name, count=t.count,
            assignments=None if t.assignments is None else tuple(
                tuple(a.broker_ids) for a in t.assignments))
            for t in request.topics),
        validate_only=bool(getattr(request, "validate_only", False)))


def create_partitions_response(request: Any, reply: CreatePartitionsReply | None,
                               version: int) -> Any:
    R = create_partitions.RESPONSE
    if reply is None:
        results = [R.CreatePartitionsTopicResult(
            name=t.name, error_code=ErrorCode.NOT_CONTROLLER,
            error_message=_NOT_CONTROLLER_MSG) for t in request.topics]
    else:
        results = [R.CreatePartitionsTopicResult(
            name=r.name, error_code=int(r.error_code), error_message=r.error_message)
            for r in reply.results]
    return R.cls(throttle_time_ms=0, results=results)


# -- BrokerRegistration (62) / BrokerHeartbeat (63) / UnregisterBroker (64) -----------------

def broker_registration_request(request: Any, version: int) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=int(request.broker_id), cluster_id=request.cluster_id,
        incarnation_id=request.incarnation_id,
        listeners=tuple(Listener(lst.name, lst.host, lst.port, lst.security_protocol)
                        for lst in request.listeners),
        features=tuple(FeatureRange(f.name, f.min_supported_version, f.max_supported_version)
                       for f in request.features),
        rack=request.rack,
        is_migrating_zk_broker=bool(getattr(request, "is_migrating_zk_broker", False)),
        log_dirs=tuple(request.log_dirs or ()))


def broker_registration_response(request: Any, reply: BrokerRegistrationReply | None,
                                 version: int) -> Any:
    R = broker_registration.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER, broker_epoch=-1)
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                 broker_epoch=reply.broker_epoch)


def broker_heartbeat_request(request: Any, version: int) -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(
        broker_id=int(request.broker_id), broker_epoch=request.broker_epoch,
        current_metadata_offset=request.current_metadata_offset,
        want_fence=request.want_fence, want_shut_down=request.want_shut_down,
        offline_log_dirs=tuple(request.offline_log_dirs or ()))


def broker_heartbeat_response(request: Any, reply: BrokerHeartbeatReply | None,
                              version: int) -> Any:
    R = broker_heartbeat.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                     is_caught_up=False, is_fenced=True, should_shut_down=False)
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                 is_caught_up=reply.is_caught_up, is_fenced=reply.is_fenced,
                 should_shut_down=reply.should_shut_down)


def unregister_broker_request(request: Any, version: int) -> UnregisterBrokerRequest:
    return UnregisterBrokerRequest(request.broker_id)


def unregister_broker_response(request: Any, reply: UnregisterBrokerReply | None,
                               version: int) -> Any:
    R = unregister_broker.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                     error_message=_NOT_CONTROLLER_MSG)
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                 error_message=reply.error_message)


# -- AlterPartition (56) --------------------------------------------------------------------

def _new_isr(pd: Any, version: int) -> tuple[IsrMember, ...]:
    if version >= 3:
        return tuple(IsrMember(s.broker_id, s.broker_epoch) for s in pd.new_isr_with_epochs)
    return tuple(IsrMember(b) for b in pd.new_isr)


def alter_partition_request(request: Any, version: int) -> AlterPartitionRequest:
    """Topics by name (v0-1) or id (v2+); the new ISR without broker epochs before v3."""
    return AlterPartitionRequest(
        broker_id=request.broker_id, broker_epoch=request.broker_epoch, version=version,
        topics=tuple(AlterPartitionTopic(
            topic_name=(getattr(td, "topic_name", "") or "") if version <= 1 else "",
            topic_id=_topic_id(getattr(td, "topic_id", None)) if version >= 2 else None,
            partitions=tuple(AlterPartitionPartition(
                partition_index=pd.partition_index, leader_epoch=pd.leader_epoch,
                partition_epoch=pd.partition_epoch, new_isr=_new_isr(pd, version),
                leader_recovery_state=int(getattr(pd, "leader_recovery_state", 0)))
                for pd in td.partitions))
            for td in request.topics))


def alter_partition_response(request: Any, reply: AlterPartitionReply | None,
                             version: int) -> Any:
    R = alter_partition.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER, topics=[])
    topics = []
    for t in reply.topics:
        td = R.TopicData(partitions=[
            R.PartitionData(partition_index=p.partition_index, error_code=int(p.error_code),
                            leader_id=p.leader_id, leader_epoch=p.leader_epoch,
                            isr=list(p.isr), leader_recovery_state=p.leader_recovery_state,
                            partition_epoch=p.partition_epoch)
            for p in t.partitions])
        if version <= 1:
            td.topic_name = t.topic_name
        elif t.topic_id is not None:
            td.topic_id = t.topic_id
        topics.append(td)
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code), topics=topics)


# -- AllocateProducerIds (67) ---------------------------------------------------------------

def allocate_producer_ids_request(request: Any, version: int) -> AllocateProducerIdsRequest:
    return AllocateProducerIdsRequest(request.broker_id, request.broker_epoch)


def allocate_producer_ids_response(request: Any, reply: AllocateProducerIdsReply | None,
                                   version: int) -> Any:
    R = allocate_producer_ids.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                     producer_id_start=-1, producer_id_len=0)
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                 producer_id_start=reply.producer_id_start,
                 producer_id_len=reply.producer_id_len)


# -- IncrementalAlterConfigs (44) / AlterConfigs (33) ---------------------------------------

def incremental_alter_configs_request(request: Any,
                                      version: int) -> IncrementalAlterConfigsRequest:
    return IncrementalAlterConfigsRequest(
        resources=tuple(IncrementalAlterConfigsResource(
            int(res.resource_type), res.resource_name,
            tuple(ConfigOperation(c.name, int(c.config_operation), c.value)
                  for c in res.configs))
            for res in request.resources),
        validate_only=request.validate_only)


def alter_configs_request(request: Any, version: int) -> AlterConfigsRequest:
    return AlterConfigsRequest(
        resources=tuple(AlterConfigsResource(
            int(res.resource_type), res.resource_name,
            tuple(ConfigValue(c.name, c.value) for c in res.configs))
            for res in request.resources),
        validate_only=request.validate_only)


def _config_responses(R: Any, request: Any, reply: AlterConfigsReply | None) -> list[Any]:
    if reply is None:
        return [R.AlterConfigsResourceResponse(
            error_code=ErrorCode.NOT_CONTROLLER, error_message=_NOT_CONTROLLER_MSG,
            resource_type=r.resource_type, resource_name=r.resource_name)
            for r in request.resources]
    return [R.AlterConfigsResourceResponse(
        error_code=int(r.error_code), error_message=r.error_message,
        resource_type=r.resource_type, resource_name=r.resource_name)
        for r in reply.results]


def incremental_alter_configs_response(request: Any, reply: AlterConfigsReply | None,
                                       version: int) -> Any:
    R = incremental_alter_configs.RESPONSE
    return R.cls(throttle_time_ms=0, responses=_config_responses(R, request, reply))


def alter_configs_response(request: Any, reply: AlterConfigsReply | None, version: int) -> Any:
    R = alter_configs.RESPONSE
    return R.cls(throttle_time_ms=0, responses=_config_responses(R, request, reply))


# -- ElectLeaders (43) ----------------------------------------------------------------------

def elect_leaders_request(request: Any, version: int) -> ElectLeadersRequest:
    """v0 has no election type: preferred."""
    return ElectLeadersRequest(
        election_type=int(getattr(request, "election_type", 0)) if version >= 1 else 0,
        topic_partitions=None if request.topic_partitions is None else tuple(
            TopicPartitions(tp.topic, tuple(tp.partitions)) for tp in request.topic_partitions))


def elect_leaders_response(request: Any, reply: ElectLeadersReply | None, version: int) -> Any:
    R = elect_leaders.RESPONSE
    results = []
    if reply is None:
        # v0 has no top-level error code: every requested partition carries it.
        for tp in request.topic_partitions or ():
            results.append(R.ReplicaElectionResult(topic=tp.topic, partition_result=[
                R.PartitionResult(partition_id=p, error_code=ErrorCode.NOT_CONTROLLER,
                                  error_message=_NOT_CONTROLLER_MSG)
                for p in tp.partitions]))
        resp = R.cls(throttle_time_ms=0, replica_election_results=results)
        if version >= 1:
            resp.error_code = ErrorCode.NOT_CONTROLLER
        return resp
    for t in reply.results:
        results.append(R.ReplicaElectionResult(topic=t.topic, partition_result=[
            R.PartitionResult(partition_id=p.partition_id, error_code=int(p.error_code),
                              error_message=p.error_message)
            for p in t.partitions]))
    resp = R.cls(throttle_time_ms=0, replica_election_results=results)
    if version >= 1:
        resp.error_code = int(reply.error_code)
    return resp


# -- AlterPartitionReassignments (45) -------------------------------------------------------

def alter_partition_reassignments_request(request: Any,
                                          version: int) -> AlterPartitionReassignmentsRequest:
    """v0 has no ``allow_replication_factor_change``: allowed."""
    return AlterPartitionReassignmentsRequest(
        topics=tuple(ReassignableTopic(t.name, tuple(
            ReassignablePartition(p.partition_index,
                                  None if p.replicas is None else tuple(p.replicas))
            for p in t.partitions)) for t in request.topics),
        allow_replication_factor_change=(
            bool(request.allow_replication_factor_change) if version >= 1 else True))


def alter_partition_reassignments_response(request: Any,
                                           reply: AlterPartitionReassignmentsReply | None,
                                           version: int) -> Any:
    R = alter_partition_reassignments.RESPONSE
    resp = R.cls(throttle_time_ms=0, error_code=0, error_message=None, responses=[])
    if version >= 1:
        resp.allow_replication_factor_change = (
            bool(request.allow_replication_factor_change))
    if reply is None:
        resp.error_code = ErrorCode.NOT_CONTROLLER
        resp.error_message = _NOT_CONTROLLER_MSG
        resp.responses = [R.ReassignableTopicResponse(name=t.name, partitions=[
            R.ReassignablePartitionResponse(partition_index=p.partition_index,
                                            error_code=ErrorCode.NOT_CONTROLLER,
                                            error_message=_NOT_CONTROLLER_MSG)
            for p in t.partitions]) for t in request.topics]
        return resp
    resp.error_code = int(reply.error_code)
    resp.error_message = reply.error_message
    resp.responses = [R.ReassignableTopicResponse(name=t.name, partitions=[
        R.ReassignablePartitionResponse(partition_index=p.partition_index,
                                        error_code=int(p.error_code),
                                        error_message=p.error_message)
        for p in t.partitions]) for t in reply.results]
    return resp


# -- ListPartitionReassignments (46) --------------------------------------------------------

def list_partition_reassignments_request(request: Any,
                                         version: int) -> ListPartitionReassignmentsRequest:
    return ListPartitionReassignmentsRequest(
        topics=None if request.topics is None else tuple(
            TopicPartitions(t.name, tuple(t.partition_indexes)) for t in request.topics))


def list_partition_reassignments_response(request: Any,
                                          reply: ListPartitionReassignmentsReply | None,
                                          version: int) -> Any:
    R = list_partition_reassignments.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                     error_message=_NOT_CONTROLLER_MSG, topics=[])
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                 error_message=reply.error_message, topics=[
                     R.OngoingTopicReassignment(name=t.name, partitions=[
                         R.OngoingPartitionReassignment(
                             partition_index=p.partition_index, replicas=list(p.replicas),
                             adding_replicas=list(p.adding_replicas),
                             removing_replicas=list(p.removing_replicas))
                         for p in t.partitions]) for t in reply.topics])


# -- AssignReplicasToDirs (73) -------------------------------------------------------------

def assign_replicas_to_dirs_request(request: Any, version: int) -> AssignReplicasToDirsRequest:
    return AssignReplicasToDirsRequest(
        broker_id=int(request.broker_id), broker_epoch=request.broker_epoch,
        directories=tuple(
            AssignedDirectory(d.id, tuple((t.topic_id, p.partition_index)
                                          for t in d.topics for p in t.partitions))
            for d in request.directories))


def assign_replicas_to_dirs_response(request: Any, reply: AssignReplicasToDirsReply | None,
                                     version: int) -> Any:
    R = assign_replicas_to_dirs.RESPONSE
    if reply is None:
        return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER, directories=[])
    by_dir: dict[uuid.UUID, dict[uuid.UUID, list[Any]]] = {}
    for r in reply.results:
        by_dir.setdefault(r.dir_id, {}).setdefault(r.topic_id, []).append(
            R.PartitionData(partition_index=r.partition_index, error_code=int(r.error_code)))
    return R.cls(throttle_time_ms=0, error_code=int(reply.error_code), directories=[
        R.DirectoryData(id=dir_id, topics=[
            R.TopicData(topic_id=tid, partitions=parts) for tid, parts in topics.items()])
        for dir_id, topics in by_dir.items()])
