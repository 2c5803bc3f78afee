"""HTTP admin routes for topics and partitions: list, describe (with every config and its
overrides), create, alter (configs, more partitions) and delete topics; partitions with their
leaders, ISR and offsets (from the local log when this node leads the partition, otherwise
ListOffsets to the leader); leader elections. Writes go through ``AdminApis`` to the active
controller and answer once this node's image shows them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from broker.admin.configs import describe_topic_configs
from broker.admin.http_common import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    HttpError,
    RouteBase,
    bad_field,
    check_topic_name,
    configs_field,
    int_field,
    json_response,
    kafka_error,
    only_fields,
    path_int,
    query_bool,
    read_body,
)
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    create_partitions,
    create_topics,
    delete_topics,
    elect_leaders,
    incremental_alter_configs,
)
from kraft.image import ConfigResourceType, TopicImage

__all__ = ["TopicRoutes"]

logger = logging.getLogger(__name__)

WRITE_TIMEOUT_MS = 30_000
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def _topic_summary(t: TopicImage) -> dict[str, Any]:
    rf = max((len(p.replicas) for p in t.partitions.values()), default=0)
    return {"name": t.name, "topic_id": str(t.topic_id), "partitions_count": len(t.partitions),
            "replication_factor": rf, "internal": t.name in INTERNAL_TOPICS}


class TopicRoutes(RouteBase):
    """/v1/topics[/{name}[/partitions]] and POST /v1/partitions/{topic}/{partition}/elect-leader."""

    async def list_topics(self, request: web.Request) -> web.Response:
        include_internal = query_bool(request, "include_internal")
        topics = [_topic_summary(t) for t in sorted(self.image.topics.by_name.values(),
                                                    key=lambda t: t.name)
                  if include_internal or t.name not in INTERNAL_TOPICS]
        return json_response({"topics": topics})

    def _topic_body(self, t: TopicImage) -> dict[str, Any]:
        image = self.image
        entries = describe_topic_configs(self.config, image, self.node_id, t.name)
        configs = {e.name: None if e.value is None else str(e.value) for e in entries}
        return {**_topic_summary(t), "configs": configs,
                "overrides": dict(image.configs.topic_config(t.name))}

    async def get_topic(self, request: web.Request) -> web.Response:
        return json_response(self._topic_body(self._topic(request.match_info["name"])))

    async def create_topic(self, request: web.Request) -> web.Response:
        body = await read_body(request, True)
        only_fields(body, {"name", "partitions", "replication_factor", "configs"})
        name = body.get("name")
        if not isinstance(name, str):
            raise bad_field("name", "a topic name (string) is required")
        check_topic_name(name, "name")
        partitions = int_field(body, "partitions", 1, 10_000)
        rf = int_field(body, "replication_factor", 1, 32767)
        configs = configs_field(body, "configs", allow_null=False)
        Q = create_topics.REQUEST
        req = Q.cls(topics=[Q.CreatableTopic(
            name=name, num_partitions=-1 if partitions is None else partitions,
            replication_factor=-1 if rf is None else rf, assignments=[],
            configs=[Q.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])],
            timeout_ms=WRITE_TIMEOUT_MS, validate_only=False)
        resp = await self._admin_apis().create_topics(req, 7)
        r = resp.topics[0]
        if r.error_code:
            field = {ErrorCode.INVALID_PARTITIONS: "partitions",
                     ErrorCode.INVALID_REPLICATION_FACTOR: "replication_factor",
                     ErrorCode.INVALID_CONFIG: "configs",
                     ErrorCode.INVALID_TOPIC_EXCEPTION: "name"}.get(r.error_code, "body")
            raise kafka_error(r.error_code, r.error_message, field)
        t = self.image.topics.by_name.get(name)
        if t is None:
            raise HttpError(504, "REQUEST_TIMED_OUT", f"Topic {name!r} was created but is not "
                            "yet visible on this node")
        return json_response(self._topic_body(t), 201)

    async def update_topic(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._topic(name)
        body = await read_body(request, True)
        only_fields(body, {"configs", "partitions_count"})
        configs = configs_field(body, "configs", allow_null=True)
        count = int_field(body, "partitions_count", 1, 10_000)
        admin = self._admin_apis()
        if count is not None:
            current = len(self.image.topics.by_name[name].partitions)
            if count < current:
                raise bad_field("partitions_count", f"topic {name!r} has {current} "
                                "partitions; partitions can only be added")
            if count > current:
                Q = create_partitions.REQUEST
                req = Q.cls(topics=[Q.CreatePartitionsTopic(name=name, count=count,
                                                             assignments=None)],
                            timeout_ms=WRITE_TIMEOUT_MS, validate_only=False)
                resp = await admin.create_partitions(req, 3)
                r = resp.results[0]
                if r.error_code:
                    raise kafka_error(r.error_code, r.error_message, "partitions_count")
        if configs:
            Q2 = incremental_alter_configs.REQUEST
            req2 = Q2.cls(resources=[Q2.AlterConfigsResource(
                resource_type=int(ConfigResourceType.TOPIC), resource_name=name,
                configs=[Q2.AlterableConfig(name=k, config_operation=0 if v is not None else 1,
                                            value=v) for k, v in configs.items()])],
                validate_only=False)
            resp2 = await admin.incremental_alter_configs(req2, 1)
            r2 = resp2.responses[0]
            if r2.error_code:
                raise kafka_error(r2.error_code, r2.error_message, "configs")
        return json_response(self._topic_body(self._topic(name)))

    async def delete_topic(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._topic(name)
        Q = delete_topics.REQUEST
        req = Q.cls(topics=[Q.DeleteTopicState(name=name, topic_id=uuid.UUID(int=0))],
                    topic_names=[], timeout_ms=WRITE_TIMEOUT_MS)
        resp = await self._admin_apis().delete_topics(req, 6)
        r = resp.responses[0]
        if r.error_code:
            raise kafka_error(r.error_code, getattr(r, "error_message", None))
        return json_response({"name": name, "deleted": True})

    async def list_partitions(self, request: web.Request) -> web.Response:
        t = self._topic(request.match_info["name"])
        rows: dict[int, dict[str, Any]] = {
            pid: {"partition": pid, "leader": p.leader, "leader_epoch": p.leader_epoch,
                  "partition_epoch": p.partition_epoch, "replicas": list(p.replicas),
                  "isr": list(p.isr), "log_start_offset": None, "log_end_offset": None,
                  "high_watermark": None, "offsets_source": "unavailable"}
            for pid, p in sorted(t.partitions.items())}
        remote: list[int] = []
        rm = self.node.replica_manager
        for pid, row in rows.items():
            hp = rm.partitions.get((t.name, pid)) if rm is not None else None
            if hp is not None and hp.state.is_leader:
                row.update(log_start_offset=hp.log.log_start_offset,
                           log_end_offset=hp.log.log_end_offset,
                           high_watermark=hp.state.high_watermark, offsets_source="local")
            elif row["leader"] >= 0:
                remote.append(pid)
        if remote:
            try:
                start = await self._list_offsets(t.name, remote, EARLIEST_TIMESTAMP)
                end = await self._list_offsets(t.name, remote, LATEST_TIMESTAMP)
            except HttpError as e:
                logger.info("Partition offsets of %s unavailable: %s", t.name, e.message)
                start, end = {}, {}
            for pid in remote:
                if pid in start and pid in end:
                    rows[pid].update(log_start_offset=start[pid], high_watermark=end[pid],
                                     offsets_source="list_offsets")
        return json_response({"topic": t.name, "partitions": list(rows.values())})
    async def elect_leader(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        check_topic_name(topic, "topic")
        partition = path_int(request, "partition")
        body = await read_body(request, False)
        only_fields(body, {"election_type"})
        kind = body.get("election_type", "preferred")
        if kind not in ("preferred", "unclean"):
            raise bad_field("election_type", f"must be 'preferred' or 'unclean', got {kind!r}")
        t = self._topic(topic, "topic")
        if partition not in t.partitions:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION",
                            f"Partition {topic}-{partition} does not exist")
        Q = elect_leaders.REQUEST
        req = Q.cls(election_type=0 if kind == "preferred" else 1, timeout_ms=WRITE_TIMEOUT_MS,
                    topic_partitions=[Q.TopicPartitions(topic=topic, partitions=[partition])])
        resp = await self._admin_apis().elect_leaders(req, 2)
        code, message = resp.error_code, None
        for rt in resp.replica_election_results:
            for rp in rt.partition_result:
                if rp.partition_id == partition and rp.error_code:
                    code, message = rp.error_code, rp.error_message
        result = "elected"
        if code == ErrorCode.ELECTION_NOT_NEEDED:
            result = "not_needed"
        elif code:
            raise kafka_error(code, message)
        p = self.image.topics.by_name[topic].partitions.get(partition) \
            if topic in self.image.topics.by_name else None
        return json_response({"topic": topic, "partition": partition,
                              "leader": p.leader if p is not None else -1, "result": result})
