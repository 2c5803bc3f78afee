"""Broker-listener admin APIs: forwarded to the active controller, or answered from the image.

- CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs, AlterConfigs,
  ElectLeaders and AlterPartitionReassignments are forwarded to the active controller (Kafka's ForwardingManager; here the
  request is re-encoded by the ``ControllerChannel`` at the highest version both sides speak and
  the answer is sent back at the client's version) through ``broker.admin.forwarding``: a
  controller that cannot be reached before the deadline gives REQUEST_TIMED_OUT for every
  topic/resource, and after a successful answer the broker waits (bounded by the request's
  timeout) until its own metadata image shows the change, so the client's next
  Metadata/DescribeConfigs to this broker sees it. Each handler here says only what differs:
  where the answer's per-entry errors are, the timed-out answer, what to wait for.
- ListPartitionReassignments is forwarded too (the controller answers from its committed
  image, as Kafka's does), with nothing to wait for.
- DescribeConfigs is answered locally (``broker.admin.configs``).
- InitProducerId for idempotent producers (``broker.admin.producer_ids``), from blocks of ids
  the controller hands out (AllocateProducerIds, forwarded here).
- ``auto_create(names)``: CreateTopics with the broker defaults, for Metadata's
  ``allow_auto_topic_creation``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.admin.configs import describe_configs_response
from broker.admin.forwarding import (
    DEFAULT_FORWARD_TIMEOUT_S,
    TIMED_OUT_MESSAGE,
    ControllerForwarder,
    ImageWait,
)
from broker.admin.producer_ids import ProducerIdManager, init_producer_id_response
from broker.config import KafkaConfig
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    allocate_producer_ids,
    alter_configs,
    alter_partition_reassignments,
    create_partitions,
    create_topics,
    delete_topics,
    elect_leaders,
    incremental_alter_configs,
    list_partition_reassignments,
)
from kraft.controller.configuration_control import APPEND, DELETE, SET, SUBTRACT, list_operation
from kraft.image import ConfigResourceType, MetadataImage

__all__ = ["AdminApis"]

ZERO_UUID = uuid.UUID(int=0)

_MethodHandler = Callable[[Any, Any, Any], Awaitable[Any]]


def _has_error(code: int) -> bool:
    return code != ErrorCode.NONE


class AdminApis:
    """``handlers``: ApiKey -> ``async handler(ctx, header, request)`` for a broker listener.
    The operations the HTTP admin API also needs (create/delete topics, create partitions,
    incremental alter configs, elect leaders) are methods taking the request data and its
    version."""

    def __init__(self, node_id: int, cluster_id: str, config: KafkaConfig, channel: Any,
                 loader: Any, *, broker_epoch: Callable[[], int] = lambda: -1) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.config = config
        self.channel = channel
        self.loader = loader
        self._broker_epoch = broker_epoch
        self.forwarder = ControllerForwarder(channel, loader)
        self.producer_ids = ProducerIdManager(self._allocate_producer_ids)
        self._auto_creating: dict[str, asyncio.Future[int]] = {}
        self.handlers: dict[int, _MethodHandler] = {
            ApiKey.CREATE_TOPICS: self._wire(self.create_topics),
            ApiKey.DELETE_TOPICS: self._wire(self.delete_topics),
            ApiKey.CREATE_PARTITIONS: self._wire(self.create_partitions),
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self._wire(self.incremental_alter_configs),
            ApiKey.ALTER_CONFIGS: self.handle_alter_configs,
            ApiKey.ELECT_LEADERS: self._wire(self.elect_leaders),
            ApiKey.ALTER_PARTITION_REASSIGNMENTS: self._wire(self.alter_partition_reassignments),
            ApiKey.LIST_PARTITION_REASSIGNMENTS: self._wire(self.list_partition_reassignments),
            ApiKey.DESCRIBE_CONFIGS: self.handle_describe_configs,
            ApiKey.INIT_PRODUCER_ID: self.handle_init_producer_id,
        }

    @staticmethod
    def _wire(op: Callable[[Any, int], Awaitable[Any]]) -> _MethodHandler:
        """The broker-listener handler of an admin operation: it needs the request and its
        version only (the HTTP admin API calls the operations directly)."""

        def handle(ctx: Any, header: Any, request: Any) -> Awaitable[Any]:
            return op(request, header.api_version)

        return handle

    # -- CreateTopics (19) -----------------------------------------------------------------

    async def create_topics(self, request: Any, version: int) -> Any:
        R = create_topics.RESPONSE

        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, topics=[R.CreatableTopicResult(
                name=t.name, error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message=TIMED_OUT_MESSAGE) for t in request.topics])

        def shown(resp: Any) -> ImageWait:
            created = [(t.name, getattr(t, "topic_id", None), t.num_partitions)
                       for t in resp.topics if not _has_error(t.error_code)]
            if not (created and not request.validate_only and request.timeout_ms > 0):
                return None

            def visible(image: MetadataImage) -> bool:
                for name, tid, n in created:
                    t = image.topics.by_name.get(name)
                    if t is None or (tid not in (None, ZERO_UUID) and t.topic_id != tid):
                        return False
                    if n > 0 and len(t.partitions) < n:
                        return False
                return True
            return "created topics", visible

        return await self.forwarder.forward(
            ApiKey.CREATE_TOPICS, request, timeout_ms=request.timeout_ms, timed_out=timed_out,
            errors_in="topics", shown=shown)

    # -- DeleteTopics (20) -----------------------------------------------------------------

    async def delete_topics(self, request: Any, version: int) -> Any:
        R = delete_topics.RESPONSE
        Q = delete_topics.REQUEST
        v = version
        # The channel speaks v6+, where topics are listed as (name, id) pairs.
        entries = [Q.DeleteTopicState(name=n, topic_id=ZERO_UUID)
                   for n in request.topic_names or ()]
        entries += list(request.topics or ())
        fwd = Q.cls(topics=entries, topic_names=[], timeout_ms=request.timeout_ms)

        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, responses=[R.DeletableTopicResult(
                name=e.name if v >= 6 else (e.name or ""),
                topic_id=e.topic_id if e.topic_id is not None else ZERO_UUID,
                error_code=ErrorCode.REQUEST_TIMED_OUT) for e in entries])

        def shown(resp: Any) -> ImageWait:
            deleted = [(r.name, r.topic_id) for r in resp.responses
                       if not _has_error(r.error_code)]
            if not (deleted and request.timeout_ms > 0):
                return None

            def gone(image: MetadataImage) -> bool:
                for name, tid in deleted:
                    if tid not in (None, ZERO_UUID):
                        if tid in image.topics.by_id:
                            return False
                    elif name in image.topics.by_name:
                        return False
                return True
            return "deleted topics", gone

        resp = await self.forwarder.forward(
            ApiKey.DELETE_TOPICS, fwd, timeout_ms=request.timeout_ms, timed_out=timed_out,
            errors_in="responses", shown=shown)
        if v < 6:
            for r in resp.responses:
                if r.name is None:
                    r.name = ""
        return resp

    # -- CreatePartitions (37) -------------------------------------------------------------

    async def create_partitions(self, request: Any, version: int) -> Any:
        R = create_partitions.RESPONSE

        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, results=[R.CreatePartitionsTopicResult(
                name=t.name, error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message=TIMED_OUT_MESSAGE) for t in request.topics])

        def shown(resp: Any) -> ImageWait:
            counts = {t.name: t.count for t in request.topics}
            grown = [(r.name, counts.get(r.name, 0)) for r in resp.results
                     if not _has_error(r.error_code)]
            if not (grown and not request.validate_only and request.timeout_ms > 0):
                return None

            def visible(image: MetadataImage) -> bool:
                for name, n in grown:
                    t = image.topics.by_name.get(name)
                    if t is None or len(t.partitions) < n:
                        return False
                return True
            return "new partitions", visible

        return await self.forwarder.forward(
            ApiKey.CREATE_PARTITIONS, request, timeout_ms=request.timeout_ms,
            timed_out=timed_out, errors_in="results", shown=shown)

    # -- IncrementalAlterConfigs (44) / AlterConfigs (33) ----------------------------------

    @staticmethod
    def _config_of(image: MetadataImage, rtype: int, name: str) -> Mapping[str, str] | None:
        if rtype == ConfigResourceType.TOPIC:
            return image.configs.topic_config(name)
        if rtype == ConfigResourceType.BROKER:
            return image.configs.broker_config(name)
        return None

    async def _alter_configs(self, api_key: int, R: Any, request: Any,
                             expected: Callable[[Any], dict[str, str | None]]) -> Any:
        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, responses=[R.AlterConfigsResourceResponse(
                error_code=ErrorCode.REQUEST_TIMED_OUT, error_message=TIMED_OUT_MESSAGE,
                resource_type=r.resource_type, resource_name=r.resource_name)
                for r in request.resources])

        def shown(resp: Any) -> ImageWait:
            ok = {(int(x.resource_type), x.resource_name) for x in resp.responses
                  if not _has_error(x.error_code)}
            wanted = [((int(r.resource_type), r.resource_name), expected(r))
                      for r in request.resources
                      if (int(r.resource_type), r.resource_name) in ok]
            if not (wanted and not request.validate_only):
                return None

            def visible(image: MetadataImage) -> bool:
                for (rtype, name), values in wanted:
                    current = self._config_of(image, rtype, name)
                    if current is None:
                        continue
                    for k, val in values.items():
                        if current.get(k) != val:
                            return False
                return True
            return "altered configs", visible

        # These requests carry no timeout: the default forwarding deadline applies.
        return await self.forwarder.forward(
            api_key, request, timeout_ms=None, timed_out=timed_out, errors_in="responses",
            shown=shown)

    async def incremental_alter_configs(self, request: Any, version: int) -> Any:
        def expected(res: Any) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            rtype, name = int(res.resource_type), res.resource_name
            own = self._config_of(self.loader.image, rtype, name) or {}
            for c in res.configs:
                if c.config_operation == SET:
                    out[c.name] = c.value
                elif c.config_operation == DELETE:
                    out[c.name] = None
                elif c.config_operation in (APPEND, SUBTRACT):
                    # Computed on the image before or after the change alike: adding or
                    # removing list items is idempotent.
                    out[c.name] = list_operation(rtype, c.name, own.get(c.name),
                                                 c.config_operation, c.value)
            return out
        return await self._alter_configs(ApiKey.INCREMENTAL_ALTER_CONFIGS,
                                         incremental_alter_configs.RESPONSE, request, expected)

    async def handle_alter_configs(self, ctx: Any, header: Any, request: Any) -> Any:
        def expected(res: Any) -> dict[str, str | None]:
            return {c.name: c.value for c in res.configs}
        return await self._alter_configs(ApiKey.ALTER_CONFIGS, alter_configs.RESPONSE,
                                         request, expected)


    # -- ElectLeaders (43) -----------------------------------------------------------------

    async def elect_leaders(self, request: Any, version: int) -> Any:
        R = elect_leaders.RESPONSE
        v = version

        def timed_out() -> Any:
            if request.topic_partitions is None:
                wanted = [(t.name, sorted(t.partitions))
                          for t in self.loader.image.topics.by_name.values()]
            else:
                wanted = [(tp.topic, list(tp.partitions)) for tp in request.topic_partitions]
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.REQUEST_TIMED_OUT,
                         replica_election_results=[R.ReplicaElectionResult(
                             topic=t, partition_result=[R.PartitionResult(
                                 partition_id=p, error_code=ErrorCode.REQUEST_TIMED_OUT,
                                 error_message=TIMED_OUT_MESSAGE)
                                 for p in ps]) for t, ps in wanted])

        def shown(resp: Any) -> ImageWait:
            preferred = (request.election_type or 0) == 0
            elected = [(t.topic, p.partition_id) for t in resp.replica_election_results
                       for p in t.partition_result if not _has_error(p.error_code)]
            if not (elected and request.timeout_ms > 0):
                return None

            def visible(image: MetadataImage) -> bool:
                for topic, pid in elected:
                    t = image.topics.by_name.get(topic)
                    p = t.partitions.get(pid) if t is not None else None
                    if p is None:
                        continue
                    if preferred and (not p.replicas or p.leader != p.replicas[0]):
                        return False
                    if not preferred and p.leader < 0:
                        return False
                return True
            return "elected leaders", visible

        # Per-partition errors are the election's outcome: only a top-level NOT_CONTROLLER
        # is retried.
        resp = await self.forwarder.forward(
            ApiKey.ELECT_LEADERS, request, timeout_ms=request.timeout_ms, timed_out=timed_out,
            errors_in=None, shown=shown)
        if v == 0 and resp.error_code:
            # v0 has no top-level error: every partition carries it.
            for t in resp.replica_election_results:
                for p in t.partition_result:
                    if not p.error_code:
                        p.error_code = resp.error_code
            resp.error_code = 0
        return resp

    # -- AlterPartitionReassignments (45), ListPartitionReassignments (46) -------------------

    async def alter_partition_reassignments(self, request: Any, version: int) -> Any:
        R = alter_partition_reassignments.RESPONSE

        def timed_out() -> Any:
            return R.cls(
                throttle_time_ms=0, error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message=TIMED_OUT_MESSAGE, responses=[R.ReassignableTopicResponse(
                    name=t.name, partitions=[R.ReassignablePartitionResponse(
                        partition_index=p.partition_index,
                        error_code=ErrorCode.REQUEST_TIMED_OUT,
                        error_message=TIMED_OUT_MESSAGE) for p in t.partitions])
                    for t in request.topics])

        def shown(resp: Any) -> ImageWait:
            ok = {(t.name, p.partition_index) for t in resp.responses for p in t.partitions
                  if not _has_error(p.error_code)}
            wanted = [(t.name, p.partition_index, p.replicas) for t in request.topics
                      for p in t.partitions if (t.name, p.partition_index) in ok]
            if resp.error_code or not wanted:
                return None

            def visible(image: MetadataImage) -> bool:
                # A move shows as its target among the replicas (in flight or done), a
                # cancellation as no reassignment in flight.
                for topic, pid, replicas in wanted:
                    t = image.topics.by_name.get(topic)
                    p = t.partitions.get(pid) if t is not None else None
                    if p is None:
                        continue
                    if replicas is None:
                        if p.adding_replicas or p.removing_replicas:
                            return False
                    elif not set(replicas) <= set(p.replicas):
                        return False
                return True
            return "partition reassignments", visible

        return await self.forwarder.forward(
            ApiKey.ALTER_PARTITION_REASSIGNMENTS, request, timeout_ms=request.timeout_ms,
            timed_out=timed_out, errors_in=None, shown=shown)

    async def list_partition_reassignments(self, request: Any, version: int) -> Any:
        R = list_partition_reassignments.RESPONSE

        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.REQUEST_TIMED_OUT,
                         error_message=TIMED_OUT_MESSAGE, topics=[])

        return await self.forwarder.forward(
            ApiKey.LIST_PARTITION_REASSIGNMENTS, request, timeout_ms=request.timeout_ms,
            timed_out=timed_out, errors_in=None, shown=lambda resp: None)

    # -- DescribeConfigs (32) --------------------------------------------------------------

    def handle_describe_configs(self, ctx: Any, header: Any, request: Any) -> Any:
        return describe_configs_response(self.config, self.loader.image, self.node_id, request,
                                         header.api_version)

    # -- InitProducerId (22) ---------------------------------------------------------------

    async def _allocate_producer_ids(self) -> tuple[int, int, int]:
        Q = allocate_producer_ids.REQUEST
        req = Q.cls(broker_id=self.node_id, broker_epoch=self._broker_epoch())
        resp = await self.forwarder.send(ApiKey.ALLOCATE_PRODUCER_IDS, req,
                                         DEFAULT_FORWARD_TIMEOUT_S, timed_out=lambda: None)
        if resp is None:
            return int(ErrorCode.REQUEST_TIMED_OUT), -1, 0
        return int(resp.error_code), resp.producer_id_start, resp.producer_id_len

    async def handle_init_producer_id(self, ctx: Any, header: Any, request: Any) -> Any:
        return await init_producer_id_response(self.producer_ids, request)

    # -- auto topic creation ---------------------------------------------------------------

    async def auto_create(self, names: list[str], *, timeout_s: float = 10.0,
                          wait_for_image: bool = True) -> dict[str, int]:
        """Create ``names`` with the broker defaults (num.partitions, default.replication.factor;
        the internal topics with their own settings); name -> error code (0: created and, with
        ``wait_for_image``, visible in this broker's image; TOPIC_ALREADY_EXISTS; ...;
        UNKNOWN_TOPIC_OR_PARTITION when auto.create.topics.enable is off, REQUEST_TIMED_OUT
        when no controller answered). Concurrent calls for one name share one request."""
        cfg = self.config
        out: dict[str, int] = {}
        if not names:
            return out
        internal = {"__consumer_offsets", "__transaction_state"}
        if not cfg.get("auto.create.topics.enable"):
            for n in names:
                if n not in internal:
                    out[n] = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        todo = [n for n in dict.fromkeys(names) if n not in out]
        waiting = {n: self._auto_creating[n] for n in todo if n in self._auto_creating}
        mine = [n for n in todo if n not in waiting]
        loop = asyncio.get_running_loop()
        futs = {n: loop.create_future() for n in mine}
        self._auto_creating.update(futs)
        try:
            if mine:
                Q = create_topics.REQUEST
                topics = [self._auto_topic(Q, n) for n in mine]
                req = Q.cls(topics=topics, timeout_ms=int(timeout_s * 1000), validate_only=False)
                resp = await self.forwarder.send(ApiKey.CREATE_TOPICS, req, timeout_s,
                                                 timed_out=lambda: None, errors_in="topics")
                codes = ({n: int(ErrorCode.REQUEST_TIMED_OUT) for n in mine} if resp is None
                         else {t.name: int(t.error_code) for t in resp.topics})
                ok = [n for n in mine if codes.get(n) == ErrorCode.NONE]
                if ok and wait_for_image:
                    await self.forwarder.await_image(
                        "auto-created topics",
                        lambda image: all(n in image.topics.by_name for n in ok),
                        time.monotonic() + timeout_s)
                for n in mine:
                    out[n] = codes.get(n, int(ErrorCode.UNKNOWN_SERVER_ERROR))
                    futs[n].set_result(out[n])
            for n, fut in waiting.items():
                out[n] = await asyncio.shield(fut)
        finally:
            for n, fut in futs.items():
                if not fut.done():
                    fut.set_result(int(ErrorCode.UNKNOWN_SERVER_ERROR))
                if self._auto_creating.get(n) is fut:
                    del self._auto_creating[n]
        return out

    def _auto_topic(self, Q: Any, name: str) -> Any:
        cfg = self.config
        configs = []
        if name == "__consumer_offsets":
            partitions = cfg.get("offsets.topic.num.partitions")
            rf = cfg.get("offsets.topic.replication.factor")
            configs = [("cleanup.policy", "compact"), ("compression.type", "producer"),
                       ("segment.bytes", str(cfg.get("offsets.topic.segment.bytes")))]
        elif name == "__transaction_state":
            partitions = cfg.get("transaction.state.log.num.partitions")
            rf = cfg.get("transaction.state.log.replication.factor")
            configs = [("cleanup.policy", "compact"), ("compression.type", "uncompressed"),
                       ("min.insync.replicas", str(cfg.get("transaction.state.log.min.isr"))),
                       ("segment.bytes",
                        str(cfg.get("transaction.state.log.segment.bytes")))]
        else:
            partitions = cfg.get("num.partitions")
            rf = cfg.get("default.replication.factor")
        return Q.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=rf, assignments=[],
            configs=[Q.CreatableTopicConfig(name=k, value=v) for k, v in configs])
