"""The HTTP admin API of a node (aiohttp + orjson), on every ``admin.listeners`` endpoint.

Routes and their OpenAPI description come from one table (``broker.admin.openapi.ROUTES``); each
route's ``operation_id`` is the name of its handler method here. Every node, broker or
controller, serves every route:

- **Reads** come from this node's metadata image (brokers, topics, partitions, ISR, configs),
  its Raft manager (the quorum: locally on the Raft leader, otherwise DescribeQuorum sent to
  the active controller) and, for partition offsets, the leader's log when this node leads the
  partition, otherwise ListOffsets to the leader over the Kafka protocol.
- **Writes** (create / delete / alter topics, new partitions, leader elections) reuse the
  broker-side forwarding of ``AdminApis``: the request goes to the active controller (retried
  on another controller while leadership moves, up to the deadline) and is answered only once
  the controller committed it and this node's image shows it. A controller-only node builds
  its own ``ControllerChannel`` + ``AdminApis`` for that.
- **Consumer groups** are read over the Kafka wire protocol (FindCoordinator, ListGroups,
  DescribeGroups, OffsetFetch, ListOffsets) from the brokers in the image, so this module
  does not depend on the group coordinator's internals.
- ``POST /v1/brokers/{id}/shutdown`` stops *this* node (controlled shutdown first on a broker);
  another id gets 421 Misdirected Request: send it to that node's own admin listener.

Errors are JSON ``{"error_code", "message"[, "field"]}``: 400 for bad input naming the field,
404 unknown resource, 409 conflict, 421 wrong node, 503 no controller / broker reachable, 504
the controller did not answer in time; Kafka error names are kept as ``error_code``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from broker.admin.apis import AdminApis
from broker.admin.configs import describe_topic_configs
from broker.admin.metrics import NodeMetrics
from broker.admin.openapi import PROMETHEUS_TEXT, ROUTES, TOPIC_NAME_PATTERN, openapi_document
from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.controller.channel import ControllerChannel, ControllerUnavailableError
from broker.groups.records import decode_consumer_assignment, decode_consumer_subscription
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import (
    ERRORS_BY_CODE,
    ErrorCode,
    KafkaError,
    UnsupportedVersionError,
)
from broker.protocol.messages import (
    create_partitions,
    create_topics,
    delete_topics,
    describe_groups,
    describe_quorum,
    elect_leaders,
    find_coordinator,
    incremental_alter_configs,
    list_groups,
    list_offsets,
    offset_fetch,
)
from kraft.image import ConfigResourceType, MetadataImage, TopicImage

__all__ = ["AdminHttpServer", "HttpError"]

logger = logging.getLogger(__name__)

LAG_REFRESH_TIMEOUT_S = 5.0  # a scrape waits at most this long for ListOffsets answers

WRITE_TIMEOUT_MS = 30_000
READ_TIMEOUT_S = 10.0
QUORUM_TIMEOUT_S = 5.0
HEALTH_QUORUM_TIMEOUT_S = 2.0
MAX_BODY_BYTES = 1 << 20
METADATA_TOPIC = "__cluster_metadata"
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
SECURITY_PROTOCOLS = {0: "PLAINTEXT", 1: "SSL", 2: "SASL_PLAINTEXT", 3: "SASL_SSL"}
_TOPIC_RE = re.compile(TOPIC_NAME_PATTERN)


class HttpError(Exception):
    def __init__(self, status: int, error_code: str, message: str,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _bad(field: str, message: str) -> HttpError:
    return HttpError(400, "INVALID_REQUEST", f"{field}: {message}", field)


# Kafka error -> HTTP status for the write routes.
_STATUS_BY_ERROR = {
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.UNKNOWN_TOPIC_ID: 404,
    ErrorCode.REQUEST_TIMED_OUT: 504,
    ErrorCode.NOT_CONTROLLER: 503,
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: 409,
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: 409,
    ErrorCode.UNKNOWN_SERVER_ERROR: 500,
}


def kafka_error(code: int, message: str | None, field: str | None = None) -> HttpError:
    """An HttpError for a Kafka error code in a write's answer."""
    try:
        ec = ErrorCode(code)
    except ValueError:
        return HttpError(500, f"KAFKA_ERROR_{code}", message or f"Kafka error {code}")
    cls = ERRORS_BY_CODE.get(ec)
    status = _STATUS_BY_ERROR.get(ec)
    if status is None:
        status = 503 if cls is not None and cls.retriable else 400
    text = message or (cls.message if cls is not None else ec.name)
    if status == 400 and field is not None:
        return HttpError(status, ec.name, f"{field}: {text}", field)
    return HttpError(status, ec.name, text)


# -- request body validation ------------------------------------------------------------------


async def _read_body(request: web.Request, required: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise _bad("body", "a JSON object is required")
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise _bad("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _bad("body", f"not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise _bad("body", "must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise _bad(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _int_field(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    v = body.get(name)
    if v is None:
        if name in body:
            raise _bad(name, "must be an integer, not null")
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(name, f"must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _bad(name, f"must be between {lo} and {hi}, got {v}")
    return v


def _configs_field(body: dict[str, Any], name: str, *, allow_null: bool) -> dict[str, str | None]:
    v = body.get(name)
    if v is None:
        if name in body:
            raise _bad(name, "must be an object, not null")
        return {}
    if not isinstance(v, dict):
        raise _bad(name, "must be an object of config name -> string value")
    out: dict[str, str | None] = {}
    for k, val in v.items():
        if not k:
            raise _bad(f"{name}.{k}", "config names must not be empty")
        if val is None and allow_null:
            out[k] = None
        elif isinstance(val, str):
            out[k] = val
        else:
            allowed = "a string or null" if allow_null else "a string"
            raise _bad(f"{name}.{k}", f"must be {allowed}, got {type(val).__name__}")
    return out


def _topic_name(value: str, field: str) -> str:
    if not _TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise _bad(field, "a topic name is 1-249 characters of [a-zA-Z0-9._-], not '.' or '..'")
    return value


def _path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or int(raw) > 2**31 - 1:
        raise _bad(name, f"must be an integer between 0 and {2**31 - 1}, got {raw!r}")
    return int(raw)


def _query_bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _bad(name, f"must be true or false, got {raw!r}")


# -- small helpers ----------------------------------------------------------------------------


def _topic_summary(t: TopicImage) -> dict[str, Any]:
    rf = max((len(p.replicas) for p in t.partitions.values()), default=0)
    return {"name": t.name, "topic_id": str(t.topic_id), "partitions_count": len(t.partitions),
            "replication_factor": rf, "internal": t.name in INTERNAL_TOPICS}


def _consumer_assignment(data: bytes | None) -> list[dict[str, Any]]:
    """A member's ConsumerProtocolAssignment as JSON; [] when it does not decode."""
    try:
        assignment = decode_consumer_assignment(data or b"")
    except ValueError:
        return []
    return [{"topic": topic, "partitions": sorted(parts)}
            for topic, parts in assignment.partitions]


def _consumer_subscription(data: bytes | None) -> list[str] | None:
    """A member's subscribed topics (ConsumerProtocolSubscription); None when it does not
    decode."""
    try:
        return list(decode_consumer_subscription(data or b"").topics)
    except ValueError:
        return None


# -- the server -------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminHttpServer:
    """``await start()`` binds every ``admin.listeners`` endpoint; ``await stop()`` closes."""

    def __init__(self, node: Any, metrics: NodeMetrics | None = None) -> None:
        self.node = node
        self.config = node.config
        self.node_id: int = node.config.node_id
        self.metrics = metrics if metrics is not None else NodeMetrics(node)
        self.app = self.build_app()
        self._runner: web.AppRunner | None = None
        self.addresses: list[tuple[str, int]] = []
        self._own_channel: ControllerChannel | None = None
        self._admin: AdminApis | None = node.admin
        self._client: KafkaClient | None = None
        self._client_lock = asyncio.Lock()

    # -- application ------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._logged, self._errors],
                              client_max_size=MAX_BODY_BYTES)
        for route in ROUTES:
            app.router.add_route(route.method, route.path, getattr(self, route.operation_id),
                                 name=route.operation_id)
        return app

    @web.middleware
    async def _logged(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Writes are logged at INFO (who changed what, and the outcome); reads at DEBUG."""
        started = time.monotonic()
        resp = await handler(request)
        level = logging.DEBUG if request.method == "GET" else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(level, "Admin API %s %s from %s: %d in %.0f ms", request.method,
                       request.path_qs, request.remote, resp.status,
                       (time.monotonic() - started) * 1000)
        return resp

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as e:
            return _json(e.body(), e.status)
        except web.HTTPException as e:
            # aiohttp's own answers (unknown path, method not allowed, body too large): JSON.
            if e.status < 400:
                raise
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    413: "REQUEST_ENTITY_TOO_LARGE"}.get(e.status, "HTTP_ERROR")
            resp = _json({"error_code": code, "message": e.reason
                          + (f": {request.method} {request.path}" if e.status in (404, 405)
                             else "")}, e.status)
            allow = e.headers.get("Allow")
            if allow:
                resp.headers["Allow"] = allow
            return resp
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as e:
            logger.exception("Admin API %s %s failed", request.method, request.path)
            return _json({"error_code": "UNKNOWN_SERVER_ERROR",
                          "message": f"{type(e).__name__}: {e}"}, 500)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        for e in self.config.admin_listeners:
            site = web.TCPSite(self._runner, e.host or None, e.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                await self.stop()
                raise OSError(exc.errno, f"cannot listen on admin.listeners entry "
                              f"http://{e.host}:{e.port}: {exc.strerror or exc}") from exc
        for addr in self._runner.addresses:
            self.addresses.append((addr[0], addr[1]))
            logger.info("Admin API listening on http://%s:%d", addr[0], addr[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._own_channel is not None:
            await self._own_channel.close()
            self._own_channel = None

    # -- what the handlers share ------------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        return self.node.loader.image  # type: ignore[no-any-return]

    def _leader_id(self) -> int | None:
        raft = self.node.raft
        return None if raft is None else raft.leader_and_epoch.leader_id

    def _channel(self) -> ControllerChannel:
        if self.node.channel is not None:
            return self.node.channel  # type: ignore[no-any-return]
        if self._own_channel is None:
            self._own_channel = ControllerChannel(
                self.node_id, self.node.voters, self._leader_id,
                client_id=f"node-{self.node_id}-admin-http")
        return self._own_channel

    def _admin_apis(self) -> AdminApis:
        if self._admin is None:
            self._admin = self.node.admin or AdminApis(
                self.node_id, self.node.cluster_id, self.config, self._channel(),
                self.node.loader)
        return self._admin

    async def _kafka(self) -> KafkaClient:
        """A client for the brokers in the image (for offsets and consumer groups)."""
        async with self._client_lock:
            if self._client is not None:
                return self._client
            servers = self._broker_addresses()
            if not servers:
                raise HttpError(503, "BROKER_NOT_AVAILABLE", "No unfenced broker is registered")
            try:
                self._client = await KafkaClient.bootstrap(
                    servers, client_id=f"node-{self.node_id}-admin-http",
                    api_timeout_s=READ_TIMEOUT_S, request_timeout_s=READ_TIMEOUT_S / 2)
            except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
                raise HttpError(503, "BROKER_NOT_AVAILABLE",
                                f"No broker answered: {e}") from None
            return self._client

    def _broker_addresses(self) -> list[str]:
        listener = None
        if self.config.is_broker:
            listener = self.config.inter_broker_listener_name
        out = []
        for b in sorted(self.image.cluster.unfenced_brokers(), key=lambda b: b.broker_id):
            ep = (b.listener(listener) if listener else None) or (
                b.listeners[0] if b.listeners else None)
            if ep is not None:
                out.append(f"{ep.host}:{ep.port}")
        return out

    async def _kafka_call(self, what: str, coro: Callable[[KafkaClient], Awaitable[Any]]) -> Any:
        client = await self._kafka()
        try:
            return await coro(client)
        except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
            raise HttpError(503, "BROKER_NOT_AVAILABLE", f"{what}: {e}") from None
        except UnsupportedVersionError as e:
            raise HttpError(503, "UNSUPPORTED_VERSION", f"{what}: the brokers do not "
                            f"serve it ({e.message})") from None
        except KafkaError as e:
            raise kafka_error(e.code, f"{what}: {e.message}") from None

    async def _send_versioned(self, what: str, node: int, api_key: int,
                              build: Callable[[int], Any],
                              check: Callable[[Any], int | None] | None = None) -> Any:
        """Send to ``node`` a request built for the version that node's connection speaks
        (fields differ between versions, e.g. FindCoordinator v4's batched keys)."""
        async def go(c: KafkaClient) -> Any:
            version = (await c.connection(node)).version_for(api_key)
            return await c.send_to(node, api_key, build(version), version, check=check,
                                   timeout_s=READ_TIMEOUT_S)
        return await self._kafka_call(what, go)

    def _topic(self, name: str, field: str = "name") -> TopicImage:
        _topic_name(name, field)
        t = self.image.topics.by_name.get(name)
        if t is None:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION", f"Topic {name!r} does not exist")
        return t

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
        if leader is None or quorum is None:
            reasons.append("no_active_controller")
        if down:
            reasons.append("nodes_down")
        if leaderless:
            reasons.append("leaderless_partitions")
        if under:
            reasons.append("under_replicated_partitions")
        limit = 100  # keep the answer small on big clusters; the counts are exact
        return _json({
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
            },
        })

    async def list_brokers(self, request: web.Request) -> web.Response:
        return _json({"brokers": [self._broker(b)
                                  for _, b in sorted(self.image.cluster.brokers.items())]})

    async def get_broker(self, request: web.Request) -> web.Response:
        broker_id = _path_int(request, "broker_id")
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
        return _json({**self._broker(b), "leader_partitions": leader,
                      "replica_partitions": replicas})

    async def shutdown_broker(self, request: web.Request) -> web.Response:
        broker_id = _path_int(request, "broker_id")
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
        return _json({"broker_id": broker_id, "status": "shutting_down"}, 202)

    # -- topics -----------------------------------------------------------------------------

    async def list_topics(self, request: web.Request) -> web.Response:
        include_internal = _query_bool(request, "include_internal")
        topics = [_topic_summary(t) for t in sorted(self.image.topics.by_name.values(),
                                                    key=lambda t: t.name)
                  if include_internal or t.name not in INTERNAL_TOPICS]
        return _json({"topics": topics})

    def _topic_body(self, t: TopicImage) -> dict[str, Any]:
        image = self.image
        entries = describe_topic_configs(self.config, image, self.node_id, t.name)
        configs = {e.name: None if e.value is None else str(e.value) for e in entries}
        return {**_topic_summary(t), "configs": configs,
                "overrides": dict(image.configs.topic_config(t.name))}

    async def get_topic(self, request: web.Request) -> web.Response:
        return _json(self._topic_body(self._topic(request.match_info["name"])))

    async def create_topic(self, request: web.Request) -> web.Response:
        body = await _read_body(request, True)
        _only(body, {"name", "partitions", "replication_factor", "configs"})
        name = body.get("name")
        if not isinstance(name, str):
            raise _bad("name", "a topic name (string) is required")
        _topic_name(name, "name")
        partitions = _int_field(body, "partitions", 1, 10_000)
        rf = _int_field(body, "replication_factor", 1, 32767)
        configs = _configs_field(body, "configs", allow_null=False)
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
        return _json(self._topic_body(t), 201)

    async def update_topic(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._topic(name)
        body = await _read_body(request, True)
        _only(body, {"configs", "partitions_count"})
        configs = _configs_field(body, "configs", allow_null=True)
        count = _int_field(body, "partitions_count", 1, 10_000)
        admin = self._admin_apis()
        if count is not None:
            current = len(self.image.topics.by_name[name].partitions)
            if count < current:
                raise _bad("partitions_count", f"topic {name!r} has {current} partitions; "
                           "partitions can only be added")
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
        return _json(self._topic_body(self._topic(name)))

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
        return _json({"name": name, "deleted": True})

    async def list_partitions(self, request: web.Request) -> web.Response:
        t = self._topic(request.match_info["name"])
        rows: dict[int, dict[str, Any]] = {pid: {"partition": pid, "leader": p.leader, "leader_epoch": p.leader_epoch,
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
        return _json({"topic": t.name, "partitions": list(rows.values())})

    async def _list_offsets(self, topic: str, partitions: list[int],
                            timestamp: int) -> dict[int, int]:
        """partition -> offset for ``timestamp`` (-2 log start, -1 high watermark), asking
        each partition's leader; partitions that fail are left out."""
        Q = list_offsets.REQUEST
        client = await self._kafka()
        await self._kafka_call("Metadata", lambda c: c.metadata([topic]))
        by_leader: dict[int, list[int]] = {}
        for pid in partitions:
            by_leader.setdefault(client.leader_for(topic, pid), []).append(pid)
        out: dict[int, int] = {}

        async def ask(leader: int, pids: list[int]) -> None:
            if leader < 0:
                return
            req = Q.cls(replica_id=-1, isolation_level=0, timeout_ms=int(READ_TIMEOUT_S * 1000),
                        topics=[Q.ListOffsetsTopic(name=topic, partitions=[
                            Q.ListOffsetsPartition(partition_index=p, current_leader_epoch=-1,
                                                   timestamp=timestamp, max_num_offsets=1)
                            for p in pids])])
            try:
                resp = await client.send_to(leader, ApiKey.LIST_OFFSETS, req,
                                            timeout_s=READ_TIMEOUT_S)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                logger.info("ListOffsets to broker %d failed: %s", leader, e)
                return
            for rt in resp.topics:
                for rp in rt.partitions:
                    if not rp.error_code:
                        out[rp.partition_index] = rp.offset
        await asyncio.gather(*(ask(lead, pids) for lead, pids in by_leader.items()))
        return out

    async def elect_leader(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        _topic_name(topic, "topic")
        partition = _path_int(request, "partition")
        body = await _read_body(request, False)
        _only(body, {"election_type"})
        kind = body.get("election_type", "preferred")
        if kind not in ("preferred", "unclean"):
            raise _bad("election_type", f"must be 'preferred' or 'unclean', got {kind!r}")
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
        return _json({"topic": topic, "partition": partition,
                      "leader": p.leader if p is not None else -1, "result": result})

    # -- consumer groups --------------------------------------------------------------------

    async def list_groups(self, request: web.Request) -> web.Response:
        client = await self._kafka()
        await self._kafka_call("Metadata", lambda c: c.metadata())
        groups: dict[str, dict[str, Any]] = {}
        errors: list[str] = []

        async def ask(broker_id: int) -> None:
            try:
                resp = await client.send_to(broker_id, ApiKey.LIST_GROUPS,
                                            list_groups.REQUEST.cls(states_filter=[],
                                                                    types_filter=[]),
                                            timeout_s=READ_TIMEOUT_S)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                errors.append(f"broker {broker_id}: {e}")
                return
            if resp.error_code:
                errors.append(f"broker {broker_id}: {ErrorCode(resp.error_code).name}")
                return
            for g in resp.groups:
                groups[g.group_id] = {"group_id": g.group_id, "protocol_type": g.protocol_type,
                                      "state": getattr(g, "group_state", None) or None,
                                      "coordinator_id": broker_id}
        brokers = sorted(client.cluster.brokers)
        await asyncio.gather(*(ask(b) for b in brokers))
        if errors and not groups and len(errors) == len(brokers):
            raise HttpError(503, "COORDINATOR_NOT_AVAILABLE",
                            "No broker listed its groups: " + "; ".join(errors))
        return _json({"groups": [groups[g] for g in sorted(groups)]})

    async def get_group(self, request: web.Request) -> web.Response:
        group_id = request.match_info["group_id"]
        if not group_id or len(group_id) > 249:
            raise _bad("group_id", "must be 1-249 characters")
        FQ = find_coordinator.REQUEST
        client = await self._kafka()
        brokers = sorted(client.cluster.brokers)
        if not brokers:
            raise HttpError(503, "BROKER_NOT_AVAILABLE", "No broker is known")
        ask = self.node_id if self.node_id in brokers else brokers[0]
        fc = await self._send_versioned(
            "FindCoordinator", ask, ApiKey.FIND_COORDINATOR,
            lambda v: FQ.cls(key=group_id, key_type=0) if v < 4
            else FQ.cls(key_type=0, coordinator_keys=[group_id]),
            check=lambda r: (r.coordinators[0].error_code if r.coordinators
                             else r.error_code))
        coordinator = fc.coordinators[0].node_id if fc.coordinators else fc.node_id
        await self._kafka_call("Metadata", lambda c: c.metadata())
        dg = await self._kafka_call("DescribeGroups", lambda c: c.send_to(
            coordinator, ApiKey.DESCRIBE_GROUPS, describe_groups.REQUEST.cls(
                groups=[group_id], include_authorized_operations=False),
            timeout_s=READ_TIMEOUT_S))
        g = dg.groups[0]
        if g.error_code:
            raise kafka_error(g.error_code, None)
        OQ = offset_fetch.REQUEST
        # Filled for every version: v0-7 read group_id/topics, v8+ the groups list.
        of = await self._send_versioned(
            "OffsetFetch", coordinator, ApiKey.OFFSET_FETCH,
            lambda v: OQ.cls(group_id=group_id, topics=None, require_stable=False) if v < 8
            else OQ.cls(require_stable=False, groups=[
                OQ.OffsetFetchRequestGroup(group_id=group_id, topics=None)]))
        topics = of.topics
        code = getattr(of, "error_code", 0)
        if of.groups:
            topics, code = of.groups[0].topics, of.groups[0].error_code
        if code:
            raise kafka_error(code, None)
        if g.group_state in ("Dead", "") and not g.members and not topics:
            raise HttpError(404, "GROUP_ID_NOT_FOUND", f"Group {group_id!r} does not exist")
        committed: dict[tuple[str, int], tuple[int, str | None]] = {}
        for t in topics or ():
            for p in t.partitions:
                if not p.error_code and p.committed_offset >= 0:
                    committed[(t.name, p.partition_index)] = (p.committed_offset, p.metadata)
        hws: dict[tuple[str, int], int] = {}
        by_topic: dict[str, list[int]] = {}
        for topic, pid in committed:
            by_topic.setdefault(topic, []).append(pid)
        for topic, pids in by_topic.items():
            if topic in self.image.topics.by_name:
                for pid, off in (await self._list_offsets(topic, pids, LATEST_TIMESTAMP)).items():
                    hws[(topic, pid)] = off
        offsets = []
        total = 0
        for (topic, pid), (off, meta) in sorted(committed.items()):
            hw = hws.get((topic, pid))
            lag = None if hw is None else max(0, hw - off)
            total += lag or 0
            offsets.append({"topic": topic, "partition": pid, "committed_offset": off,
                            "metadata": meta, "high_watermark": hw, "lag": lag})
        members = [{
            "member_id": m.member_id, "group_instance_id": getattr(m, "group_instance_id", None),
            "client_id": m.client_id, "client_host": m.client_host,
            "subscription": _consumer_subscription(m.member_metadata)
            if g.protocol_type == "consumer" else None,
            "assignment": _consumer_assignment(m.member_assignment)
            if g.protocol_type == "consumer" else [],
        } for m in g.members]
        return _json({"group_id": group_id, "state": g.group_state,
                      "protocol_type": g.protocol_type, "protocol": g.protocol_data,
                      "coordinator_id": coordinator, "members": members, "offsets": offsets,
                      "total_lag": total})

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
        return _json(await self._describe_quorum())

    # -- status, metrics, schema ------------------------------------------------------------

    def _not_ready_reasons(self) -> list[str]:
        node = self.node
        reasons = []
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
        return _json({"status": "not_ready" if reasons else "ready", "node_id": self.node_id,
                      "reasons": reasons}, 503 if reasons else 200)

    async def status_live(self, request: web.Request) -> web.Response:
        return _json({"status": "live", "node_id": self.node_id, "reasons": []})

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
        groups = getattr(coordinator, "groups", None)
        if not groups:
            return {}
        committed: dict[tuple[str, str, int], int] = {}
        for g in list(groups.values()):
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
        return _json(openapi_document(f"{request.scheme}://{request.host}"))


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
