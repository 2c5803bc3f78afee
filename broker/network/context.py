"""What a request handler is given and what a listener is: ``ListenerSpec`` (one listening
socket and the APIs it serves), ``RequestContext`` (the request's header, raw frame and
connection facts), the ``Handler`` type, and the server's ``ServerStats`` counters. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.protocol.framing import RequestHeader

if TYPE_CHECKING:
    from broker.network.connection import ConnectionInfo

__all__ = ["ApiFeatures", "Handler", "ListenerSpec", "RequestContext", "ServerStats"]


@dataclass(frozen=True, slots=True)
class ApiFeatures:
    """What ApiVersions v3+ tells of features (KIP-584): the levels this node can run
    (name, min, max), the cluster's finalized levels (name, level) and the metadata offset
    they were read at (-1: none yet)."""

    supported: tuple[tuple[str, int, int], ...] = ()
    finalized: tuple[tuple[str, int], ...] = ()
    epoch: int = -1


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listening socket. ``kind`` decides which APIs it serves (``ApiSpec.listeners``);
    ``advertised`` overrides the server-wide advertised version table for this listener, and
    ``handlers`` (API key -> handler) the server-wide handler. ``host`` "" or "0.0.0.0" binds
    every interface; ``port`` 0 picks a free port. ``features`` gives ApiVersions v3+ its
    feature fields."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    kind: str = "broker"
    advertised: Mapping[int, tuple[int, int]] | None = None
    handlers: Mapping[int, Handler] | None = None
    # ApiVersions v3+ features, read for each answer (None: no features).
    features: Callable[[], ApiFeatures] | None = None
    # TLS and SASL (broker/security/listener_security.ListenerSecurity; None: PLAINTEXT).
    security: Any = None


@dataclass(slots=True)
class ServerStats:
    """Counters for tests and metrics (``KafkaServer.stats``)."""

    connections_accepted: int = 0
    connections_closed: int = 0
    protocol_errors: int = 0
    handler_errors: int = 0
    requests: int = 0
    api_versions_requests: int = 0
    max_in_flight_seen: int = 0
    read_pauses: int = 0


class RequestContext:
    """Per-request context handed to the handler.

    ``frame`` is the raw request (header + body, no size prefix) as a memoryview of the received
    bytes; ``bytes(ctx.frame)`` keeps a copy. Connection facts come from ``ctx.connection``.
    """

    __slots__ = ("connection", "frame", "header")

    def __init__(self, connection: ConnectionInfo, header: RequestHeader, frame: Any) -> None:
        self.connection = connection
        self.header = header
        self.frame = frame

    listener_name = property(lambda self: self.connection.listener_name)
    listener_kind = property(lambda self: self.connection.listener_kind)
    peer = property(lambda self: self.connection.peer)
    local_address = property(lambda self: self.connection.local_address)
    connection_id = property(lambda self: self.connection.connection_id)
    client_software_name = property(lambda self: self.connection.client_software_name)
    client_software_version = property(lambda self: self.connection.client_software_version)
    principal = property(lambda self: self.connection.principal)
    api_key = property(lambda self: self.header.api_key)
    api_version = property(lambda self: self.header.api_version)
    client_id = property(lambda self: self.header.client_id)
    correlation_id = property(lambda self: self.header.correlation_id)

    def __repr__(self) -> str:
        return (f"RequestContext({self.listener_name}, {self.connection_id}, "
                f"api_key={self.api_key}, api_version={self.api_version}, "
                f"client_id={self.client_id!r}, correlation_id={self.correlation_id})")


Handler = Callable[[RequestContext, RequestHeader, Any], Any]
"""``handler(ctx, header, request)`` -> response object | None | awaitable of one of those."""
