"""What every route family of the HTTP admin API shares: JSON error answers (``HttpError``,
Kafka error -> HTTP status), request validation (body, fields, path and query parameters), and
``RouteBase``, the node state and the clients the handlers read and write through (the
metadata image, the channel to the active controller, ``AdminApis`` for writes, a Kafka client
for offsets and consumer groups).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from broker.admin.apis import AdminApis
from broker.admin.metrics import NodeMetrics
from broker.admin.openapi import TOPIC_NAME_PATTERN
from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.controller.channel import ControllerChannel
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import (
    ERRORS_BY_CODE,
    ErrorCode,
    KafkaError,
    UnsupportedVersionError,
)
from broker.protocol.messages import find_coordinator, list_offsets
from kraft.image import MetadataImage, TopicImage

__all__ = [
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_BODY_BYTES",
    "READ_TIMEOUT_S",
    "HttpError",
    "RouteBase",
    "bad_field",
    "check_topic_name",
    "configs_field",
    "int_field",
    "json_response",
    "kafka_error",
    "only_fields",
    "path_int",
    "query_bool",
    "read_body",
]

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 1 << 20
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
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


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def bad_field(field: str, message: str) -> HttpError:
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


async def read_body(request: web.Request, required: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_field("body", "a JSON object is required")
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise bad_field("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_field("body", f"not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise bad_field("body", "must be a JSON object")
    return body


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_field(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def int_field(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    v = body.get(name)
    if v is None:
        if name in body:
            raise bad_field(name, "must be an integer, not null")
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad_field(name, f"must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise bad_field(name, f"must be between {lo} and {hi}, got {v}")
    return v


def configs_field(body: dict[str, Any], name: str, *, allow_null: bool) -> dict[str, str | None]:
    v = body.get(name)
    if v is None:
        if name in body:
            raise bad_field(name, "must be an object, not null")
        return {}
    if not isinstance(v, dict):
        raise bad_field(name, "must be an object of config name -> string value")
    out: dict[str, str | None] = {}
    for k, val in v.items():
        if not k:
            raise bad_field(f"{name}.{k}", "config names must not be empty")
        if val is None and allow_null:
            out[k] = None
        elif isinstance(val, str):
            out[k] = val
        else:
            allowed = "a string or null" if allow_null else "a string"
            raise bad_field(f"{name}.{k}", f"must be {allowed}, got {type(val).__name__}")
    return out


def check_topic_name(value: str, field: str) -> str:
    if not _TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise bad_field(field,
                        "a topic name is 1-249 characters of [a-zA-Z0-9._-], not '.' or '..'")
    return value


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or int(raw) > 2**31 - 1:
        raise bad_field(name, f"must be an integer between 0 and {2**31 - 1}, got {raw!r}")
    return int(raw)


def query_bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise bad_field(name, f"must be true or false, got {raw!r}")



# -- the state and clients the handlers share -------------------------------------------------


class RouteBase:
    """The node behind the routes, and what the route families (``broker.admin.http_*``) use
    to read its state and to reach the controller and the brokers."""

    def __init__(self, node: Any, metrics: NodeMetrics | None = None) -> None:
        self.node = node
        self.config = node.config
        self.node_id: int = node.config.node_id
        self.metrics = metrics if metrics is not None else NodeMetrics(node)
        self._own_channel: ControllerChannel | None = None
        self._admin: AdminApis | None = node.admin
        self._client: KafkaClient | None = None
        self._client_lock = asyncio.Lock()

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
                    api_timeout_s=READ_TIMEOUT_S, request_timeout_s=READ_TIMEOUT_S / 2,
                    security=getattr(self.node.replica_manager, "inter_broker_security", None))
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

    async def _coordinator_of(self, key: str, key_type: int = 0) -> int:
        """The node id of the coordinator of ``key`` (FindCoordinator; ``key_type`` 0 a group,
        1 a transactional id)."""
        FQ = find_coordinator.REQUEST
        client = await self._kafka()
        brokers = sorted(client.cluster.brokers)
        if not brokers:
            raise HttpError(503, "BROKER_NOT_AVAILABLE", "No broker is known")
        ask = self.node_id if self.node_id in brokers else brokers[0]
        fc = await self._send_versioned(
            "FindCoordinator", ask, ApiKey.FIND_COORDINATOR,
            lambda v: FQ.cls(key=key, key_type=key_type) if v < 4
            else FQ.cls(key_type=key_type, coordinator_keys=[key]),
            check=lambda r: (r.coordinators[0].error_code if r.coordinators
                             else r.error_code))
        return int(fc.coordinators[0].node_id if fc.coordinators else fc.node_id)

    def _topic(self, name: str, field: str = "name") -> TopicImage:
        check_topic_name(name, field)
        t = self.image.topics.by_name.get(name)
        if t is None:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION", f"Topic {name!r} does not exist")
        return t

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

