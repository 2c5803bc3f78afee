"""Request dispatch: API key -> handler method, and the version table we advertise.

A node gives ``ApiDispatcher.handlers`` and ``ApiDispatcher.advertised`` to its broker listeners
(``broker.network.context.ListenerSpec``): the server's per-listener route table then calls each
handler directly. ``handle`` routes by API key, for a server with one handler for everything
(the protocol benchmark, tests). ApiVersions never reaches a handler: the server answers it. A
handler
method takes ``(ctx, header, request)`` and returns a response object, None for no response, or
an awaitable of either: write it as a plain ``def`` when it never waits (no task, no extra loop
iteration: the cheap path), as ``async def`` when it does (the server runs it in a task).

A handler turns failures into error codes itself (per partition or topic); an exception that
escapes it is a bug: for the data-path and coordinator APIs it is logged and answered with an
error code for every partition (``error_responses.py``), for the others the server logs it
before closing that connection. Metadata is answered
here: from the metadata image when ``image`` is given (a node), otherwise as an empty cluster
with this node as its only broker (the protocol benchmark, tests). The broker listener's other
APIs come in ``extra_handlers`` from their rooms (data path, groups, admin; ``broker/node.py``
wires them; the controller listener does not come here).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.network.context import RequestContext
from broker.network.error_responses import guard_handlers
from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import metadata
from kraft.directories import offline_replicas
from kraft.image import MetadataImage

__all__ = ["DEFAULT_ADVERTISED", "ApiDispatcher"]

logger = logging.getLogger(__name__)

# What every real client we test against negotiates down to (docs/clients.md); each room adds
# the APIs it serves.
DEFAULT_ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.METADATA: (0, 13),
}

_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

MethodHandler = Callable[[RequestContext, RequestHeader, Any], Any]


class ApiDispatcher:
    """Maps API keys to handler methods; holds the advertised version table.

    ``advertised_host``/``advertised_port`` name this broker in Metadata responses; when None,
    the address the request arrived on is used (right for tests and single-host clusters).
    """

    def __init__(self, node_id: int, cluster_id: str, *,
                 advertised: Mapping[int, tuple[int, int]] | None = None,
                 advertised_host: str | None = None, advertised_port: int | None = None,
                 rack: str | None = None,
                 image: Callable[[], MetadataImage] | None = None,
                 extra_handlers: Mapping[int, MethodHandler] | None = None,
                 auto_create: Callable[[list[str]], Awaitable[Any]] | None = None) -> None:
        self.node_id = node_id
        self.image = image
        # auto.create.topics.enable: Metadata for an unknown topic starts its creation.
        self.auto_create = auto_create
        self._auto_tasks: set[asyncio.Task[Any]] = set()
        self.cluster_id = cluster_id
        self.advertised_host = advertised_host
        self.advertised_port = advertised_port
        self.rack = rack
        self.advertised: dict[int, tuple[int, int]] = {
            int(k): v for k, v in (DEFAULT_ADVERTISED if advertised is None
                                   else advertised).items()}
        self._handlers: dict[int, MethodHandler] = {
            ApiKey.METADATA: self.handle_metadata,
        }
        if extra_handlers:
            # Data-path and coordinator handlers answer an unexpected failure with an error
            # code rather than a closed connection (error_responses.py).
            self._handlers.update(guard_handlers({int(k): h for k, h in extra_handlers.items()}))
        missing = [API_SPECS[k].name for k in self.advertised
                   if k != ApiKey.API_VERSIONS and k not in self._handlers]
        if missing:
            raise ValueError(f"advertised APIs without a handler: {', '.join(missing)}")

    @property
    def handlers(self) -> Mapping[int, MethodHandler]:
        """API key -> handler: the broker listener's part of the server's route table."""
        return self._handlers

    def handle(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        """The server's entry point: route by API key; returns what the method returns (a
        response, None, or an awaitable)."""
        # The server only routes advertised APIs here, so the lookup cannot miss.
        return self._handlers[header.api_key](ctx, header, request)

    # -- Metadata (key 3) -------------------------------------------------------------------

    def handle_metadata(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        if self.image is not None:
            return self._metadata_from_image(ctx, header, request, self.image())
        resp = metadata.RESPONSE
        host, port = self.advertised_host, self.advertised_port
        if host is None or port is None:
            local = ctx.local_address
            host = host if host is not None else local[0]
            port = port if port is not None else local[1]
        broker = resp.MetadataResponseBroker(node_id=self.node_id, host=host, port=port,
                                             rack=self.rack)
        topics = []
        # v0: an empty list means every topic; v1+: null means every topic. There are none.
        for t in request.topics or ():
            if t.name is None:
                topics.append(resp.MetadataResponseTopic(
                    error_code=ErrorCode.UNKNOWN_TOPIC_ID,
                    name=None if header.api_version >= 12 else "", topic_id=t.topic_id))
            else:
                topics.append(resp.MetadataResponseTopic(
                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=t.name))
        return resp.cls(
            throttle_time_ms=0,
            brokers=[broker],
            cluster_id=self.cluster_id,
            # KRaft brokers report a live broker as "controller": clients send admin requests
            # there and the broker forwards them. Only this node exists.
            controller_id=self.node_id,
            topics=topics,
        )

    def _metadata_from_image(self, ctx: RequestContext, header: RequestHeader, request: Any,
                             image: MetadataImage) -> Any:
        """Brokers: every unfenced broker's endpoint on the listener the request came in on
        (Kafka's KRaftMetadataCache); topics from the image. An unknown topic with a legal name
        starts its creation through ``auto_create`` when that is set (and the request allows
        it), and is answered LEADER_NOT_AVAILABLE meanwhile."""
        resp = metadata.RESPONSE
        listener = ctx.connection.listener_name
        brokers = []
        live: set[int] = set()
        for b in sorted(image.cluster.brokers.values(), key=lambda b: b.broker_id):
            if b.fenced:
                continue
            ep = b.listener(listener)
            if ep is None:
                continue
            live.add(b.broker_id)
            brokers.append(resp.MetadataResponseBroker(
                node_id=b.broker_id, host=ep.host, port=ep.port, rack=b.rack))
        v = header.api_version
        topics_image = image.topics
        wanted = request.topics
        if wanted is None or (v == 0 and not wanted):
            selected: list[tuple[Any, Any]] = [(t.name, t) for t in topics_image.by_name.values()]
        else:
            selected = []
            for t in wanted:
                if t.name is None:
                    selected.append((None, topics_image.by_id.get(t.topic_id)))
                else:
                    selected.append((t.name, topics_image.by_name.get(t.name)))
        topics = []
        missing = [name for name, t in selected if t is None and name is not None]
        creating: set[str] = set()
        if missing and self.auto_create is not None and (
                v < 4 or request.allow_auto_topic_creation):
            creating = {n for n in missing if _LEGAL_TOPIC.fullmatch(n) and n not in (".", "..")}
            if creating:
                task = asyncio.get_running_loop().create_task(self.auto_create(sorted(creating)))
                self._auto_tasks.add(task)
                task.add_done_callback(self._auto_tasks.discard)
        for name, t in selected:
            if t is None:
                if name in creating:
                    # Being created: the client retries until it has a leader (as in Kafka).
                    topics.append(resp.MetadataResponseTopic(
                        error_code=ErrorCode.LEADER_NOT_AVAILABLE, name=name))
                elif self.auto_create is not None and name is not None and (
                        v < 4 or request.allow_auto_topic_creation):
                    topics.append(resp.MetadataResponseTopic(
                        error_code=ErrorCode.INVALID_TOPIC_EXCEPTION, name=name))
                elif name is None:
                    topics.append(resp.MetadataResponseTopic(
                        error_code=ErrorCode.UNKNOWN_TOPIC_ID, name=None if v >= 12 else ""))
                else:
                    topics.append(resp.MetadataResponseTopic(
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name))
                continue
            parts = []
            for pid, p in sorted(t.partitions.items()):
                offline = offline_replicas(image.cluster.brokers, live, p.replicas,
                                           p.directories)
                # A leader without an endpoint here (fenced, or no such listener) is no leader
                # a client can use: it retries after a refresh.
                code = ErrorCode.NONE if p.leader in live else ErrorCode.LEADER_NOT_AVAILABLE
                parts.append(resp.MetadataResponsePartition(
                    error_code=code, partition_index=pid, leader_id=p.leader,
                    leader_epoch=p.leader_epoch, replica_nodes=list(p.replicas),
                    isr_nodes=list(p.isr), offline_replicas=offline))
            topics.append(resp.MetadataResponseTopic(
                error_code=ErrorCode.NONE, name=t.name, topic_id=t.topic_id,
                is_internal=t.name.startswith("__"), partitions=parts))
        controller_id = self.node_id if self.node_id in live else (
            brokers[0].node_id if brokers else -1)
        return resp.cls(throttle_time_ms=0, brokers=brokers, cluster_id=self.cluster_id,
                        controller_id=controller_id, topics=topics)
