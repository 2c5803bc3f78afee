"""HTTP admin routes about the cluster as a whole and about this node: the cluster summary and
its health, the registered brokers (their log directories, asked with DescribeLogDirs, and this
node's shutdown), the Raft quorum (locally on the
Raft leader, otherwise DescribeQuorum sent to the active controller), readiness and liveness,
Prometheus metrics (with the consumer lag of the groups this broker coordinates), and the
OpenAPI document.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from aiohttp import web

from broker.admin.http_common import (
    LATEST_TIMESTAMP,
    READ_TIMEOUT_S,
    HttpError,
    RouteBase,
    json_response,
    kafka_error,
    path_int,
)
from broker.admin.openapi import PROMETHEUS_TEXT, openapi_document
from broker.controller.channel import ControllerUnavailableError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_log_dirs, describe_quorum
from storage.meta_properties import format_uuid

__all__ = ["ClusterRoutes"]

logger = logging.getLogger(__name__)

LAG_REFRESH_TIMEOUT_S = 5.0  # a scrape waits at most this long for ListOffsets answers
QUORUM_TIMEOUT_S = 5.0
HEALTH_QUORUM_TIMEOUT_S = 2.0
METADATA_TOPIC = "__cluster_metadata"
SECURITY_PROTOCOLS = {0: "PLAINTEXT", 1: "SSL", 2: "SASL_PLAINTEXT", 3: "SASL_SSL"}


class ClusterRoutes(RouteBase):
    """GET /v1/cluster, /v1/brokers[/{id}[/log-dirs]], POST /v1/brokers/{id}/shutdown,
    GET /v1/quorum,
    /v1/status/{ready,live}, /metrics, /v1/openapi.json."""

    # -- cluster and brokers ----------------------------------------------------------------

    @staticmethod
    def _broker(b: Any) -> dict[str, Any]:
        return {
            "broker_id": b.broker_id, "epoch": b.epoch, "incarnation_id": str(b.incarnation_id),
            "rack": b.rack, "fenced": b.fenced, "in_controlled_shutdown": b.in_controlled_shutdown,
            "endpoints": [{"name": e.name, "host": e.host, "port": e.port,
                           "security_protocol": SECURITY_PROTOCOLS.get(e.security_protocol,
                                                                       str(e.security_protocol))}
                          for e in b.listeners],
            # KIP-858: the directory ids of the broker's online log dirs (meta.properties).
            "log_dir_ids": [format_uuid(d.bytes) for d in b.directories],
        }

    async def get_cluster(self, request: web.Request) -> web.Response:
        image = self.image
        leader = self._leader_id()
        quorum = await self._quorum_or_none()
        under: list[dict[str, Any]] = []
        leaderless: list[dict[str, Any]] = []
        for t in sorted(image.topics.by_name.values(), key=lambda t: t.name):
            for pid, p in sorted(t.partitions.items()):
                if p.leader < 0:
                    leaderless.append({"topic": t.name, "partition": pid})
                if len(p.isr) < len(p.replicas):
                    under.append({"topic": t.name, "partition": pid})
        down = {b.broker_id for b in image.cluster.brokers.values()
                if b.fenced and not b.in_controlled_shutdown}
        if quorum is not None:
            # A voter the leader has not heard from within the fetch timeout is down.
            fetch_timeout_ms = self.config.get("controller.quorum.fetch.timeout.ms")
            now_ms = int(time.time() * 1000)
            for v in quorum["voters"]:
                if v["replica_id"] != quorum["leader_id"] and (
                        v["last_fetch_timestamp"] < 0
                        or now_ms - v["last_fetch_timestamp"] > fetch_timeout_ms):
                    down.add(v["replica_id"])
        reasons = []
        offline_dirs = self._offline_log_dirs()
        if offline_dirs:
            reasons.append("offline_log_dirs")
        if leader is None or quorum is None:
            reasons.append("no_active_controller")
        if down:
            reasons.append("nodes_down")
        if leaderless:
            reasons.append("leaderless_partitions")
        if under:
            reasons.append("under_replicated_partitions")
        limit = 100  # keep the answer small on big clusters; the counts are exact
        return json_response({
            "cluster_id": self.node.cluster_id,
            "controller_id": -1 if leader is None else leader,
            "node_id": self.node_id,
            "metadata_offset": image.offset,
            "metadata_version": image.features.metadata_version,
            "brokers": [self._broker(b) for _, b in sorted(image.cluster.brokers.items())],
            "controllers": [{"node_id": i, "host": h, "port": p}
                            for i, (h, p) in sorted(self.node.voters.items())],
            "health": {
                "is_healthy": not reasons,
                "unhealthy_reasons": reasons,
                "nodes_down": sorted(down),
                "leaderless_partitions": leaderless[:limit],
                "leaderless_count": len(leaderless),
                "under_replicated_partitions": under[:limit],
                "under_replicated_count": len(under),
                # This node's own offline log dirs (node id -> absolute paths).
                "offline_log_dirs": {str(self.node_id): offline_dirs} if offline_dirs else {},
            },
        })

    async def list_brokers(self, request: web.Request) -> web.Response:
        return json_response({"brokers": [
            self._broker(b) for _, b in sorted(self.image.cluster.brokers.items())]})

    async def get_broker(self, request: web.Request) -> web.Response:
        broker_id = path_int(request, "broker_id")
        image = self.image
        b = image.cluster.brokers.get(broker_id)
        if b is None:
            raise HttpError(404, "BROKER_NOT_AVAILABLE", f"Broker {broker_id} is not registered")
        leader = replicas = 0
        for t in image.topics.by_id.values():
            for p in t.partitions.values():
                if p.leader == broker_id:
                    leader += 1
                if broker_id in p.replicas:
                    replicas += 1
        return json_response({**self._broker(b), "leader_partitions": leader,
                              "replica_partitions": replicas})

    async def get_broker_log_dirs(self, request: web.Request) -> web.Response:
        """The broker's own answer to DescribeLogDirs (every partition), over the Kafka
        protocol: any node can ask any live broker."""
        broker_id = path_int(request, "broker_id")
        b = self.image.cluster.brokers.get(broker_id)
        if b is None:
            raise HttpError(404, "BROKER_NOT_AVAILABLE", f"Broker {broker_id} is not registered")
        if b.fenced:
            raise HttpError(503, "BROKER_NOT_AVAILABLE", f"Broker {broker_id} is fenced")
        resp = await self._kafka_call("DescribeLogDirs", lambda c: c.send_to(
            broker_id, ApiKey.DESCRIBE_LOG_DIRS, describe_log_dirs.REQUEST.cls(topics=None),
            timeout_s=READ_TIMEOUT_S))
        if resp.error_code:
            raise kafka_error(resp.error_code, f"DescribeLogDirs of broker {broker_id}")
        return json_response({"broker_id": broker_id, "log_dirs": [{
            "log_dir": r.log_dir,
            "error_code": _error_name(r.error_code) if r.error_code else None,
            "offline": r.error_code == ErrorCode.KAFKA_STORAGE_ERROR,
            "total_bytes": r.total_bytes if r.total_bytes >= 0 else None,
            "usable_bytes": r.usable_bytes if r.usable_bytes >= 0 else None,
            "partitions": sorted(({"topic": t.name, "partition": p.partition_index,
                                   "size": p.partition_size, "offset_lag": p.offset_lag,
                                   "is_future": p.is_future_key}
                                  for t in r.topics for p in t.partitions),
                                 key=lambda x: (x["topic"], x["partition"])),
        } for r in resp.results]})

    async def shutdown_broker(self, request: web.Request) -> web.Response:
        broker_id = path_int(request, "broker_id")
        if broker_id != self.node_id:
            known = broker_id in self.image.cluster.brokers or broker_id in self.node.voters
            if not known:
                raise HttpError(404, "BROKER_NOT_AVAILABLE", f"Node {broker_id} is unknown")
            raise HttpError(421, "MISDIRECTED_REQUEST",
                            f"This is node {self.node_id}; send the shutdown of node "
                            f"{broker_id} to that node's own admin listener")
        logger.info("Shutdown requested through the admin API")
        # After this response is written: request_shutdown only sets an event.
        asyncio.get_running_loop().call_soon(self.node.request_shutdown, "admin API shutdown")
        return json_response({"broker_id": broker_id, "status": "shutting_down"}, 202)

    # -- quorum -----------------------------------------------------------------------------

    async def _describe_quorum(self, timeout_s: float = QUORUM_TIMEOUT_S) -> dict[str, Any]:
        raft = self.node.raft
        if raft is not None and raft.is_leader():
            try:
                d = raft.describe_quorum()
                rows = [(r, "voter") for r in d.voters] + [(r, "observer") for r in d.observers]
                return _quorum_body(self.node.cluster_id, d.leader_id, d.leader_epoch,
                                    d.high_watermark, rows)
            except Exception as e:  # noqa: BLE001 - leadership moved meanwhile: ask over the wire
                logger.debug("Local describe_quorum failed (%s); asking the controller", e)
        Q = describe_quorum.REQUEST
        req = Q.cls(topics=[Q.TopicData(topic_name=METADATA_TOPIC,
                                        partitions=[Q.PartitionData(partition_index=0)])])

        def retry(resp: Any) -> bool:
            parts = resp.topics[0].partitions if resp.topics else []
            return bool(parts and parts[0].error_code)
        try:
            resp = await self._channel().send(ApiKey.DESCRIBE_QUORUM, req,
                                              timeout_s=timeout_s, retry_on=retry)
        except ControllerUnavailableError as e:
            raise HttpError(503, "NOT_CONTROLLER", f"No active controller: {e}") from None
        if resp.error_code or not resp.topics or not resp.topics[0].partitions:
            raise HttpError(503, "NOT_CONTROLLER", "DescribeQuorum failed: "
                            f"{ErrorCode(resp.error_code).name}")
        p = resp.topics[0].partitions[0]
        rows = [(r, "voter") for r in p.current_voters] + [(r, "observer") for r in p.observers]
        return _quorum_body(self.node.cluster_id, p.leader_id, p.leader_epoch,
                            p.high_watermark, rows)

    async def _quorum_or_none(self) -> dict[str, Any] | None:
        """For the health summary: a short wait, then "no active controller"."""
        try:
            return await self._describe_quorum(HEALTH_QUORUM_TIMEOUT_S)
        except HttpError:
            return None

    async def get_quorum(self, request: web.Request) -> web.Response:
        return json_response(await self._describe_quorum())

    # -- status, metrics, schema ------------------------------------------------------------

    def _offline_log_dirs(self) -> list[str]:
        """This node's offline log dirs (an I/O error took them offline; absolute paths)."""
        rm = getattr(self.node, "replica_manager", None)
        if rm is None:
            return []
        return sorted(os.path.abspath(d) for d in rm.offline_log_dirs())

    def _not_ready_reasons(self) -> list[str]:
        node = self.node
        reasons = []
        offline = self._offline_log_dirs()
        if offline:
            reasons.append(f"offline log dirs: {', '.join(offline)}")
        if node.shutdown_reason is not None:
            reasons.append("shutting down")
        if self._leader_id() is None:
            reasons.append("no active controller known")
        if node.loader.failed is not None:
            reasons.append(f"metadata loading failed: {node.loader.failed}")
        if self.config.is_broker:
            lc = node.lifecycle
            if lc is None or not lc.unfenced.is_set():
                reasons.append("broker not yet unfenced by the controller")
        return reasons

    async def status_ready(self, request: web.Request) -> web.Response:
        reasons = self._not_ready_reasons()
        return json_response({"status": "not_ready" if reasons else "ready",
                              "node_id": self.node_id, "reasons": reasons},
                             503 if reasons else 200)

    async def status_live(self, request: web.Request) -> web.Response:
        return json_response({"status": "live", "node_id": self.node_id, "reasons": []})

    async def get_metrics(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(LAG_REFRESH_TIMEOUT_S):
                self.metrics.collector.consumer_lag = await self._consumer_lag()
        except TimeoutError:
            logger.info("Consumer lag not refreshed within %.0f s: serving the last values",
                        LAG_REFRESH_TIMEOUT_S)
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": PROMETHEUS_TEXT})

    async def _consumer_lag(self) -> dict[tuple[str, str, int], int]:
        """Lag of every committed offset of the groups this broker coordinates: the
        partition's high watermark (ListOffsets to its leader) minus the committed offset."""
        coordinator = getattr(getattr(self.node, "group_coordinator", None), "coordinator", None)
        groups = getattr(coordinator, "groups", None) or {}
        consumer = getattr(coordinator, "consumer_groups", None) or {}  # KIP-848 groups
        if not groups and not consumer:
            return {}
        committed: dict[tuple[str, str, int], int] = {}
        for g in [*groups.values(), *consumer.values()]:
            for (topic, pid), o in list(g.offsets.items()):
                if topic in self.image.topics.by_name:
                    committed[(g.group_id, topic, pid)] = o.offset
        by_topic: dict[str, set[int]] = {}
        for _g, topic, pid in committed:
            by_topic.setdefault(topic, set()).add(pid)
        hws: dict[tuple[str, int], int] = {}
        for topic, pids in by_topic.items():
            try:
                found = await self._list_offsets(topic, sorted(pids), LATEST_TIMESTAMP)
            except HttpError:
                continue
            hws.update(((topic, pid), off) for pid, off in found.items())
        return {key: max(0, hws[key[1:]] - off) for key, off in committed.items()
                if key[1:] in hws}

    async def get_openapi(self, request: web.Request) -> web.Response:
        return json_response(openapi_document(f"{request.scheme}://{request.host}"))


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"KAFKA_ERROR_{code}"


def _quorum_body(cluster_id: str, leader_id: int, leader_epoch: int, high_watermark: int,
                 rows: list[tuple[Any, str]]) -> dict[str, Any]:
    """The ``kafka-metadata-quorum describe`` view: --status fields plus --replication rows."""
    leader_leo = next((r.log_end_offset for r, role in rows
                       if role == "voter" and r.replica_id == leader_id), high_watermark)
    leader_caught = next((r.last_caught_up_timestamp for r, role in rows
                          if role == "voter" and r.replica_id == leader_id), -1)

    def row(r: Any, role: str) -> dict[str, Any]:
        status = "Observer" if role == "observer" else (
            "Leader" if r.replica_id == leader_id else "Follower")
        return {"replica_id": r.replica_id, "log_end_offset": r.log_end_offset,
                "lag": max(0, leader_leo - r.log_end_offset) if r.log_end_offset >= 0
                else leader_leo,
                "last_fetch_timestamp": r.last_fetch_timestamp,
                "last_caught_up_timestamp": r.last_caught_up_timestamp, "status": status}
    voters = [row(r, role) for r, role in rows if role == "voter"]
    observers = [row(r, role) for r, role in rows if role == "observer"]
    lagging = min(voters, key=lambda v: v["log_end_offset"], default=None)
    max_lag = 0 if lagging is None else max(0, leader_leo - lagging["log_end_offset"])
    if lagging is None or lagging["replica_id"] == leader_id:
        lag_time = 0
    elif leader_caught >= 0 and lagging["last_caught_up_timestamp"] >= 0:
        lag_time = leader_caught - lagging["last_caught_up_timestamp"]
    else:
        lag_time = -1
    return {"cluster_id": cluster_id, "leader_id": leader_id, "leader_epoch": leader_epoch,
            "high_watermark": high_watermark, "max_follower_lag": max_lag,
            "max_follower_lag_time_ms": lag_time, "voters": voters, "observers": observers}
