"""Controller-listener handlers: wire requests -> ``QuorumController`` ops -> wire responses.

``submit(op)`` is provided by the node: it runs ``op(controller, now_ms)`` on the active
controller, writes the result's records to Raft, waits until they are committed and returns
``result.response``, or raises ``kraft.controller.NotController`` (mapped to NOT_CONTROLLER
here). Replies are version-independent dataclasses; this module builds the response at the
request's version (fields a version lacks are left at their defaults).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    allocate_producer_ids,
    alter_configs,
    alter_partition,
    broker_heartbeat,
    broker_registration,
    create_partitions,
    create_topics,
    delete_topics,
    elect_leaders,
    incremental_alter_configs,
    unregister_broker,
)
from kraft.controller import ControllerResult, NotController, QuorumController
from storage.error_codes import ErrorCode

__all__ = ["ControllerApis", "Submit"]

Op = Callable[[QuorumController, int], ControllerResult]
Submit = Callable[[Op], Awaitable[Any]]
_NOT_CONTROLLER_MSG = "This is not the correct controller for this cluster."


class ControllerApis:
    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self.handlers: dict[int, Callable[[Any, RequestHeader, Any], Awaitable[Any]]] = {
            ApiKey.CREATE_TOPICS: self.handle_create_topics,
            ApiKey.DELETE_TOPICS: self.handle_delete_topics,
            ApiKey.CREATE_PARTITIONS: self.handle_create_partitions,
            ApiKey.BROKER_REGISTRATION: self.handle_broker_registration,
            ApiKey.BROKER_HEARTBEAT: self.handle_broker_heartbeat,
            ApiKey.UNREGISTER_BROKER: self.handle_unregister_broker,
            ApiKey.ALTER_PARTITION: self.handle_alter_partition,
            ApiKey.ALLOCATE_PRODUCER_IDS: self.handle_allocate_producer_ids,
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self.handle_incremental_alter_configs,
            ApiKey.ALTER_CONFIGS: self.handle_alter_configs,
            ApiKey.ELECT_LEADERS: self.handle_elect_leaders,
        }

    async def _run(self, op: Op) -> Any:
        """The reply, or None when this node is not the active controller."""
        try:
            return await self._submit(op)
        except NotController:
            return None

    # -- CreateTopics (19) ------------------------------------------------------------------

    async def handle_create_topics(self, ctx: Any, header: RequestHeader, request: Any) -> Any:
        R = create_topics.RESPONSE
        v = header.api_version
        reply = await self._run(lambda c, now: c.create_topics(request, now))
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
                    if r.configs is not None and v >= 5:
                        out.configs = [R.CreatableTopicConfigs(
                            name=e.name, value=e.value, read_only=e.read_only,
                            config_source=e.config_source, is_sensitive=e.is_sensitive)
                            for e in r.configs]
                topics.append(out)
        return R.cls(throttle_time_ms=0, topics=topics)

    # -- DeleteTopics (20) ------------------------------------------------------------------

    async def handle_delete_topics(self, ctx: Any, header: RequestHeader, request: Any) -> Any:
        R = delete_topics.RESPONSE
        v = header.api_version
        reply = await self._run(lambda c, now: c.delete_topics(request, now))
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

    # -- CreatePartitions (37) --------------------------------------------------------------

    async def handle_create_partitions(self, ctx: Any, header: RequestHeader,
                                       request: Any) -> Any:
        R = create_partitions.RESPONSE
        reply = await self._run(lambda c, now: c.create_partitions(request, now))
        if reply is None:
            results = [R.CreatePartitionsTopicResult(
                name=t.name, error_code=ErrorCode.NOT_CONTROLLER,
                error_message=_NOT_CONTROLLER_MSG) for t in request.topics]
        else:
            results = [R.CreatePartitionsTopicResult(
                name=r.name, error_code=int(r.error_code), error_message=r.error_message)
                for r in reply.results]
        return R.cls(throttle_time_ms=0, results=results)

    # -- BrokerRegistration (62) / BrokerHeartbeat (63) / UnregisterBroker (64) ---------------

    async def handle_broker_registration(self, ctx: Any, header: RequestHeader,
                                         request: Any) -> Any:
        R = broker_registration.RESPONSE
        reply = await self._run(lambda c, now: c.register_broker(request, now))
        if reply is None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER, broker_epoch=-1)
        return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                     broker_epoch=reply.broker_epoch)

    async def handle_broker_heartbeat(self, ctx: Any, header: RequestHeader,
                                      request: Any) -> Any:
        R = broker_heartbeat.RESPONSE
        reply = await self._run(lambda c, now: c.broker_heartbeat(request, now))
        if reply is None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                         is_caught_up=False, is_fenced=True, should_shut_down=False)
        return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                     is_caught_up=reply.is_caught_up, is_fenced=reply.is_fenced,
                     should_shut_down=reply.should_shut_down)

    async def handle_unregister_broker(self, ctx: Any, header: RequestHeader,
                                       request: Any) -> Any:
        R = unregister_broker.RESPONSE
        reply = await self._run(lambda c, now: c.unregister_broker(request, now))
        if reply is None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                         error_message=_NOT_CONTROLLER_MSG)
        return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                     error_message=reply.error_message)

    # -- AlterPartition (56) ----------------------------------------------------------------

    async def handle_alter_partition(self, ctx: Any, header: RequestHeader,
                                     request: Any) -> Any:
        R = alter_partition.RESPONSE
        v = header.api_version
        reply = await self._run(lambda c, now: c.alter_partition(request, now, v))
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
            if v <= 1:
                td.topic_name = t.topic_name
            elif t.topic_id is not None:
                td.topic_id = t.topic_id
            topics.append(td)
        return R.cls(throttle_time_ms=0, error_code=int(reply.error_code), topics=topics)

    # -- AllocateProducerIds (67) -----------------------------------------------------------

    async def handle_allocate_producer_ids(self, ctx: Any, header: RequestHeader,
                                           request: Any) -> Any:
        R = allocate_producer_ids.RESPONSE
        reply = await self._run(lambda c, now: c.allocate_producer_ids(request, now))
        if reply is None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                         producer_id_start=-1, producer_id_len=0)
        return R.cls(throttle_time_ms=0, error_code=int(reply.error_code),
                     producer_id_start=reply.producer_id_start,
                     producer_id_len=reply.producer_id_len)

    # -- IncrementalAlterConfigs (44) / AlterConfigs (33) -------------------------------------

    def _config_responses(self, R: Any, request: Any, reply: Any) -> list[Any]:
        if reply is None:
            return [R.AlterConfigsResourceResponse(
                error_code=ErrorCode.NOT_CONTROLLER, error_message=_NOT_CONTROLLER_MSG,
                resource_type=r.resource_type, resource_name=r.resource_name)
                for r in request.resources]
        return [R.AlterConfigsResourceResponse(
            error_code=int(r.error_code), error_message=r.error_message,
            resource_type=r.resource_type, resource_name=r.resource_name)
            for r in reply.results]

    async def handle_incremental_alter_configs(self, ctx: Any, header: RequestHeader,
                                               request: Any) -> Any:
        R = incremental_alter_configs.RESPONSE
        reply = await self._run(lambda c, now: c.incremental_alter_configs(request, now))
        return R.cls(throttle_time_ms=0, responses=self._config_responses(R, request, reply))

    async def handle_alter_configs(self, ctx: Any, header: RequestHeader, request: Any) -> Any:
        R = alter_configs.RESPONSE
        reply = await self._run(lambda c, now: c.alter_configs(request, now))
        return R.cls(throttle_time_ms=0, responses=self._config_responses(R, request, reply))

    # -- ElectLeaders (43) ------------------------------------------------------------------

    async def handle_elect_leaders(self, ctx: Any, header: RequestHeader, request: Any) -> Any:
        R = elect_leaders.RESPONSE
        v = header.api_version
        reply = await self._run(lambda c, now: c.elect_leaders(request, now, v))
        results = []
        if reply is None:
            # v0 has no top-level error code: every requested partition carries it.
            for tp in request.topic_partitions or ():
                results.append(R.ReplicaElectionResult(topic=tp.topic, partition_result=[
                    R.PartitionResult(partition_id=p, error_code=ErrorCode.NOT_CONTROLLER,
                                      error_message=_NOT_CONTROLLER_MSG)
                    for p in tp.partitions]))
            resp = R.cls(throttle_time_ms=0, replica_election_results=results)
            if v >= 1:
                resp.error_code = ErrorCode.NOT_CONTROLLER
            return resp
        for t in reply.results:
            results.append(R.ReplicaElectionResult(topic=t.topic, partition_result=[
                R.PartitionResult(partition_id=p.partition_id, error_code=int(p.error_code),
                                  error_message=p.error_message)
                for p in t.partitions]))
        resp = R.cls(throttle_time_ms=0, replica_election_results=results)
        if v >= 1:
            resp.error_code = int(reply.error_code)
        return resp
