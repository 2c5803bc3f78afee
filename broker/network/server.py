"""The Kafka network server: listeners, connections, framing, ordering and backpressure.

One ``asyncio.Protocol`` per connection (no streams: per-request CPU is our first limit). A
connection splits its byte stream into size-prefixed frames, parses the request header, decodes
the body with the API's schema and hands ``(ctx, header, request)`` to the caller's async
``handler``, which returns a response object (encoded here at the request's version) or None
(no response, e.g. Produce with acks=0).

Behaviour, and where it follows Kafka (``SocketServer``, ``RequestContext``, ``ApiVersionManager``):

- **Handlers and pipelining.** ``handler(ctx, header, request)`` returns the response object
  (or None: no response) *or* an awaitable of it. A plain return is the fast path: no task,
  no extra loop iteration (cheap APIs such as Metadata are written that way). An awaitable runs
  in its own ``asyncio.Task``, started in arrival order (eagerly, up to its first suspension, on
  Python >= 3.12). Requests on one connection are thus handled concurrently, while responses
  leave strictly in request order (a per-connection queue of slots). Kafka itself handles one
  request per connection at a time: a handler that needs ordered side effects per connection
  (e.g. idempotent produce) must order them itself before its first ``await``.
- **Backpressure.** At most ``max_in_flight`` requests per connection are parsed and not yet
  answered (cf. ``queued.max.requests``); at the bound the connection stops parsing and calls
  ``transport.pause_reading()``, and resumes once the queue drains below it. It also stops
  while the transport's write buffer is above its high-water mark (``pause_writing``).
- **Limits and malformed input** close only the offending connection, with one WARNING naming
  the peer: a size prefix <= 0 or above ``max_request_bytes`` (``socket.request.max.bytes``),
  a header that cannot be parsed, or a body that does not decode. Trailing bytes after a body
  are ignored, as in Kafka.
- **Unknown or disallowed API keys** (not in ``API_SPECS``, not served on this listener's kind,
  or not advertised on it) and **versions outside the advertised range** close the connection:
  Kafka's ``SocketServer.parseRequestHeader`` throws ``InvalidRequestException`` when
  ``ApiVersionManager.isApiEnabled`` is false, and the processor closes the channel. No error
  response is sent, because Kafka sends none (and a generic one cannot be built for every API).
- **ApiVersions** (key 18) is answered here, never by the handler (KIP-511): every version is
  accepted at the header level (``ApiKeys.isVersionEnabled`` is always true for it); a version
  above our range gets error 35 UNSUPPORTED_VERSION with a v0 body listing our ApiVersions
  range; a v3+ request whose client software name/version breaks Kafka's pattern gets error 42
  INVALID_REQUEST; otherwise the advertised table of *that listener*. Response header always v0.
  The client's software name and version are kept on the connection (``ctx.client_software_*``).
- **Handler failures**: an exception from the handler (the handler layer should have turned it
  into an error code) or a response that does not encode is a bug: logged with its traceback,
  and that connection is closed. The server keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any, Self

from broker.protocol.api_keys import API_SPECS, ApiKey, request_header_version
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import (
    DEFAULT_MAX_REQUEST_BYTES,
    MIN_REQUEST_HEADER_BYTES,
    RequestHeader,
    parse_request_header,
)
from kraft.codec import CodecError, DecodeError, Message

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_WRITE_BUFFER_HIGH",
    "DEFAULT_WRITE_BUFFER_LOW",
    "Handler",
    "KafkaServer",
    "ListenerSpec",
    "RequestContext",
    "ServerStats",
    "install_event_loop_policy",
    "new_event_loop",
    "run",
]

logger = logging.getLogger(__name__)
# Hex dumps of every ApiVersions request (client fingerprints), at DEBUG.
wire_logger = logging.getLogger(__name__ + ".wire")

DEFAULT_MAX_IN_FLIGHT = 100
"""Requests per connection parsed but not yet answered before reading pauses."""
DEFAULT_WRITE_BUFFER_HIGH = 1 << 20
"""Unsent response bytes per connection above which reading pauses (until below the low mark)."""
DEFAULT_WRITE_BUFFER_LOW = 256 << 10
CLOSE_LINGER_S = 5.0
"""A closed connection's unsent responses get this long to drain before the socket is aborted."""

# Kafka's ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN
_SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")

_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")
_HEAD_V1 = struct.Struct(">hhih")  # + client_id length
_MIN_HEADER_V1_BYTES = _HEAD_V1.size
_SIZE_CID = struct.Struct(">ii")
_SIZE_CID_TAGS = struct.Struct(">iiB")
_API_VERSIONS = int(ApiKey.API_VERSIONS)
_PENDING: Any = object()  # a response slot whose handler has not finished
# Responses produced while processing one read are written together (one syscall), or as soon
# as they reach this size, so that write backpressure can stop the batch.
_OUT_BATCH_BYTES = 256 << 10


if sys.version_info >= (3, 12):
    def _new_task(loop: asyncio.AbstractEventLoop,
                  coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # Eager: runs up to the first suspension now, as the current task (so asyncio.timeout
        # and current_task() work); one that never suspends is done without a loop iteration.
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
else:
    def _new_task(loop: asyncio.AbstractEventLoop,
                  coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return loop.create_task(coro)


def install_event_loop_policy() -> bool:
    """Use uvloop for new event loops if it is importable; return whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop if uvloop is importable, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` on ``new_event_loop()`` (uvloop when available)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listening socket. ``kind`` decides which APIs it serves (``ApiSpec.listeners``);
    ``advertised`` overrides the server-wide advertised version table for this listener, and
    ``handlers`` (API key -> handler) the server-wide handler. ``host`` "" or "0.0.0.0" binds
    every interface; ``port`` 0 picks a free port."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    kind: str = "broker"
    advertised: Mapping[int, tuple[int, int]] | None = None
    handlers: Mapping[int, Handler] | None = None


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


class ConnectionInfo:
    """What a request's context knows about its connection."""

    __slots__ = ("client_software_name", "client_software_version", "connection_id",
                 "listener_kind", "listener_name", "local_address", "peer")

    def __init__(self, listener_name: str, listener_kind: str, peer: Any, local_address: Any,
                 connection_id: str) -> None:
        self.listener_name = listener_name
        self.listener_kind = listener_kind
        self.peer = peer
        self.local_address = local_address
        self.connection_id = connection_id
        self.client_software_name = ""
        self.client_software_version = ""


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


class _Listener:
    """A listener's resolved tables: what is served, at which versions, with which schemas."""

    def __init__(self, spec: ListenerSpec, advertised: Mapping[int, tuple[int, int]],
                 handler: Handler | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        table: dict[int, tuple[int, int]] = {}
        for key, (lo, hi) in advertised.items():
            api = API_SPECS.get(key)
            if api is None:
                raise ValueError(f"advertised API key {key} has no schema in API_SPECS")
            if spec.kind not in api.listeners:
                continue  # served by the other listener kind
            if not (lo <= hi and lo in api.valid_versions and hi in api.valid_versions):
                raise ValueError(f"advertised {api.name} {lo}-{hi} is outside the schema's "
                                 f"versions {api.valid_versions}")
            table[int(key)] = (lo, hi)
        av = API_SPECS[_API_VERSIONS]
        table.setdefault(_API_VERSIONS, (av.valid_versions.lowest, av.valid_versions.highest))
        self.advertised: dict[int, tuple[int, int]] = dict(sorted(table.items()))
        # The one route table: (api_key << 16 | version) -> (request schema, request header
        # version, response schema, response header version, handler); one dict lookup per
        # request resolves all of it. ApiVersions is answered by the server itself.
        self.routes: dict[int, tuple[Message, int, Message, int, Handler]] = {}
        for key, (lo, hi) in self.advertised.items():
            api = API_SPECS[key]
            h = spec.handlers.get(key) if spec.handlers is not None else handler
            if h is None and key != _API_VERSIONS:
                raise ValueError(f"listener {spec.name}: {api.name} is advertised without a "
                                 "handler")
            for v in range(lo, hi + 1):
                resp_hv = 0 if key == _API_VERSIONS else (
                    1 if v in api.response.flexible_versions else 0)
                self.routes[(key << 16) | v] = (api.request, request_header_version(key, v),
                                                api.response, resp_hv, h)  # type: ignore[arg-type]
        self.api_versions_lo, self.api_versions_hi = self.advertised[_API_VERSIONS]
        resp = av.response
        entries = [resp.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                   for k, (lo, hi) in self.advertised.items()]
        # The answer never changes: encode each version once.
        self.api_versions_bodies: dict[int, bytes] = {
            v: resp.encode(resp.cls(error_code=0, api_keys=entries), v)
            for v in range(self.api_versions_lo, self.api_versions_hi + 1)
        }
        self.api_versions_unsupported = resp.encode(resp.cls(
            error_code=ErrorCode.UNSUPPORTED_VERSION,
            api_keys=[resp.ApiVersion(api_key=_API_VERSIONS, min_version=self.api_versions_lo,
                                      max_version=self.api_versions_hi)]), 0)
        self.api_versions_invalid = {
            v: resp.encode(resp.cls(error_code=ErrorCode.INVALID_REQUEST), v)
            for v in range(self.api_versions_lo, self.api_versions_hi + 1)
        }


class _Connection(asyncio.Protocol):
    """One client connection (see the module docstring for the behaviour)."""

    def __init__(self, server: KafkaServer, listener: _Listener) -> None:
        self._server = server
        self._listener = listener
        self._routes = listener.routes
        self._max_request_bytes = server.max_request_bytes
        self._max_in_flight = server.max_in_flight
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.info: ConnectionInfo | None = None
        self._stash = bytearray()  # bytes received but not yet processed
        self._need = 4  # process the stash once it holds this many bytes
        self._out: list[Any] = []  # response bytes to write at the end of this batch
        self._out_bytes = 0
        self._pending: deque[list[Any]] = deque()  # response slots, in request order
        self._tasks: set[asyncio.Task[Any]] = set()
        self._write_paused = False
        self._reading_paused = False
        self._blocked = False  # stop parsing frames (in-flight bound or write backpressure)
        self._processing = False
        self.closed = False
        self._stats = server.stats
        self._last_software: tuple[str, str] | None = None
        self._client_id_raw = b""
        self._client_id = ""
        self._flush_scheduled = False

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not subclass asyncio.Transport, hence no isinstance check)
        tr: Any = transport
        self._transport = tr
        server = self._server
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        server._next_connection_id += 1
        conn_id = f"{_addr(local)}-{_addr(peer)}-{server._next_connection_id}"
        self.info = ConnectionInfo(self._listener.name, self._listener.kind, peer, local, conn_id)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        tr.set_write_buffer_limits(server.write_buffer_high, server.write_buffer_low)
        server._connections.add(self)
        server.stats.connections_accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self._server
        if self in server._connections:
            server._connections.discard(self)
            server.stats.connections_closed += 1
        self._pending.clear()
        self._stash = bytearray()
        # Running handlers finish on their own (their responses are dropped); the server keeps
        # them so that stop() can still cancel them.
        for task in self._tasks:
            if not task.done():
                server._orphaned_tasks.add(task)
                task.add_done_callback(server._orphaned_tasks.discard)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_blocked()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_blocked()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._stash:
            self._stash += data
            if len(self._stash) < self._need or self._blocked:
                return
            data = bytes(self._stash)
            self._stash = bytearray()
        elif self._blocked:
            self._stash += data
            return
        self._process(data)

    def eof_received(self) -> bool | None:
        return None  # close our side too (Kafka does not do half-closed connections)

    # -- frames -------------------------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        """Handle every complete frame in ``data`` (or up to the in-flight bound); stash the
        rest."""
        self._processing = True
        try:
            n = len(data)
            pos = 0
            mv = memoryview(data)
            limit = self._max_request_bytes
            unpack = _I32.unpack_from
            while n - pos >= 4 and not self._blocked:
                (size,) = unpack(data, pos)
                if size <= 0 or size > limit:
                    self._protocol_error(f"request size {size} is outside 1..{limit} bytes")
                    return
                end = pos + 4 + size
                if end > n:
                    break
                self._on_frame(mv[pos + 4:end])
                pos = end
                if self.closed:
                    return
            if pos < n:
                self._stash = bytearray(mv[pos:])
                if n - pos >= 4:
                    self._need = 4 + unpack(data, pos)[0]
                    # Fail an oversized frame now, not after buffering it.
                    if not 0 < self._need - 4 <= limit:
                        self._protocol_error(f"request size {self._need - 4} is outside "
                                             f"1..{limit} bytes")
                        return
                else:
                    self._need = 4
            else:
                self._need = 4
        finally:
            self._processing = False
            if self._out and not self.closed:
                self._write_out()

    def _on_frame(self, frame: memoryview) -> None:
        self._stats.requests += 1
        if len(frame) < _MIN_HEADER_V1_BYTES:
            self._short_frame(frame)
            return
        api_key, api_version, correlation_id, n = _HEAD_V1.unpack_from(frame, 0)
        route = self._routes.get((api_key << 16) | (api_version & 0xFFFF))
        if route is None:
            self._unroutable(frame, api_key, api_version, correlation_id)
            return
        request_schema, header_version, response_schema, response_header_version, handler = route
        # Header v1/v2 inline (every routed API uses one of them): client_id is nearly always
        # the same bytes on a connection, so decode it once; v2's tagged fields are nearly
        # always empty. Anything else takes the general parser.
        body_at = 10 + n
        if n >= 0 and (body_at <= len(frame) if header_version == 1
                       else body_at < len(frame) and frame[body_at] == 0):
            raw = frame[10:body_at]
            if raw == self._client_id_raw:
                client_id = self._client_id
            else:
                try:
                    client_id = str(raw, "utf-8")
                except UnicodeDecodeError:
                    self._protocol_error(f"client_id is not UTF-8 (correlation id "
                                         f"{correlation_id})")
                    return
                self._client_id_raw, self._client_id = bytes(raw), client_id
            header = RequestHeader(api_key, api_version, correlation_id, client_id,
                                   header_version)
            if header_version == 2:
                body_at += 1
        else:
            try:
                header, body_at = parse_request_header(frame, header_version)
            except DecodeError as e:
                self._protocol_error(f"cannot parse the request header (api_key {api_key} "
                                     f"v{api_version}, correlation id {correlation_id}): {e}")
                return
        try:
            request, _end = request_schema.decode(frame, api_version, body_at)
        except DecodeError as e:
            self._protocol_error(f"cannot parse {request_schema.name} v{api_version} "
                                 f"(correlation id {correlation_id}): {e}")
            return
        if api_key == _API_VERSIONS:
            self._answer_api_versions(header, request, frame)
            return
        started = perf_counter()
        try:
            result = handler(RequestContext(self.info, header, frame), header, request)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - any handler bug closes only this connection
            self._handler_failed(header)
            return
        if not hasattr(result, "__await__"):  # answered synchronously: the fast path
            self._complete(result, response_schema, api_version, correlation_id,
                           response_header_version, None, started, len(frame))
            return
        # An awaitable: run it in a task, answer in order.
        slot: list[Any] = [_PENDING, None]
        self._pending.append(slot)
        self._note_in_flight()
        task = _new_task(self._loop, self._finish(
            result, slot, header, response_schema, response_header_version, started,
            len(frame)))
        if not task.done():
            slot[1] = task
            self._tasks.add(task)

    def _short_frame(self, frame: memoryview) -> None:
        """A frame too short for header v1: only a header-v0 request (api_key, api_version,
        correlation_id) fits, and none of those is routed, so this is always an error."""
        if len(frame) < MIN_REQUEST_HEADER_BYTES:
            self._protocol_error(f"request of {len(frame)} bytes is shorter than a header")
            return
        api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
        if api_key == _API_VERSIONS or (api_key << 16 | (api_version & 0xFFFF)) in self._routes:
            self._protocol_error(f"request of {len(frame)} bytes is shorter than its header")
        else:
            self._unroutable(frame, api_key, api_version, correlation_id)

    async def _finish(self, awaitable: Awaitable[Any], slot: list[Any],
                      header: RequestHeader, schema: Message, header_version: int,
                      started: float = 0.0, bytes_in: int = 0) -> None:
        """Await a handler's result, then send every response now at the head of the queue."""
        try:
            try:
                response = await awaitable
            except asyncio.CancelledError:
                # stop() cancels on purpose; otherwise the slot would block the connection
                if not self.closed:
                    self._handler_failed(header, cancelled=True)
                raise
            except Exception as exc:  # noqa: BLE001 - a handler bug closes only this connection
                if not self.closed:
                    self._handler_failed(header, exc)
                return
            if self.closed:
                return
            self._complete(response, schema, header.api_version, header.correlation_id,
                           header_version, slot, started, bytes_in)
            if self.closed:
                return
            pending = self._pending
            if pending[0] is not slot:
                return  # an earlier request is still running: it will send this one
            out = self._out
            while pending and pending[0][0] is not _PENDING:
                data = pending.popleft()[0]
                if data is not None:
                    out.append(data)
                    self._out_bytes += len(data)
            if out:
                # Several handlers usually finish in one loop iteration: write once for all.
                if self._out_bytes >= _OUT_BATCH_BYTES:
                    self._write_out()
                elif not self._flush_scheduled:
                    self._flush_scheduled = True
                    self._loop.call_soon(self._flush)
            if self._blocked:
                self._update_blocked()
        finally:
            if slot[1] is not None:
                self._tasks.discard(slot[1])

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.closed:
            self._write_out()

    def _unroutable(self, frame: memoryview, api_key: int, api_version: int,
                    correlation_id: int) -> None:
        listener = self._listener
        if api_key == _API_VERSIONS:
            # Any version is accepted (Kafka's ApiKeys.isVersionEnabled): answer error 35 with
            # a v0 body naming our range; the header is parsed per that version's rules.
            try:
                parse_request_header(frame, request_header_version(api_key, api_version))
            except DecodeError as e:
                self._protocol_error(f"cannot parse ApiVersions v{api_version} header: {e}")
                return
            self._server.stats.api_versions_requests += 1
            self._log_api_versions(frame, api_version)
            self._respond_bytes(_SIZE_CID.pack(4 + len(listener.api_versions_unsupported),
                                               correlation_id)
                                + listener.api_versions_unsupported)
            return
        api = API_SPECS.get(api_key)
        if api is None:
            why = f"unknown API key {api_key}"
        elif api_key not in listener.advertised:
            why = f"{api.name} (key {api_key}) is not served on {listener.kind} listener " \
                  f"{listener.name}"
        else:
            lo, hi = listener.advertised[api_key]
            why = f"{api.name} v{api_version} is outside the supported versions {lo}-{hi}"
        self._protocol_error(f"{why} (correlation id {correlation_id})")

    def _answer_api_versions(self, header: RequestHeader, request: Any, frame: memoryview) -> None:
        listener = self._listener
        version = header.api_version
        self._server.stats.api_versions_requests += 1
        self._log_api_versions(frame, version)
        body = listener.api_versions_bodies[version]
        if version >= 3:
            software = (request.client_software_name, request.client_software_version)
            if software != self._last_software:
                if _SOFTWARE_RE.fullmatch(software[0]) and _SOFTWARE_RE.fullmatch(software[1]):
                    self._last_software = software
                    info = self.info
                    assert info is not None
                    info.client_software_name, info.client_software_version = software
                else:
                    body = listener.api_versions_invalid[version]
        self._respond_bytes(_SIZE_CID.pack(4 + len(body), header.correlation_id) + body)

    def _log_api_versions(self, frame: memoryview, version: int) -> None:
        if wire_logger.isEnabledFor(logging.DEBUG):
            info = self.info
            assert info is not None
            wire_logger.debug("ApiVersions v%d request from %s on %s: %s", version,
                              _addr(info.peer), info.listener_name, bytes(frame).hex())

    # -- responses ----------------------------------------------------------------------------

    def _complete(self, response: Any, schema: Message, version: int, correlation_id: int,
                  header_version: int, slot: list[Any] | None, started: float = 0.0,
                  bytes_in: int = 0) -> None:
        """Encode a handler's response into its slot (or straight out if nothing is ahead);
        then tell ``KafkaServer.request_observer`` (metrics), if any."""
        if response is None:
            data = None
        else:
            try:
                out: list[Any] = [b""]
                schema.encode_to(response, version, out)
            except CodecError:
                logger.exception("Cannot encode %s v%d (correlation id %d) for %s; closing the "
                                 "connection", schema.name, version, correlation_id,
                                 self._peer_str())
                self._server.stats.handler_errors += 1
                self._close()
                return
            size = sum(map(len, out))
            if header_version == 0:
                out[0] = _SIZE_CID.pack(size + 4, correlation_id)
            else:
                out[0] = _SIZE_CID_TAGS.pack(size + 5, correlation_id, 0)
            data = b"".join(out)
        observe = self._server.request_observer
        if observe is not None:
            observe(schema.api_key, getattr(response, "error_code", 0),
                    perf_counter() - started, bytes_in, 0 if data is None else len(data))
        if slot is not None:
            slot[0] = data
        elif self._pending:
            self._pending.append([data])
            self._note_in_flight()
        elif data is not None:
            self._out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= _OUT_BATCH_BYTES:
                self._write_out()

    def _respond_bytes(self, data: bytes) -> None:
        """Queue a complete response frame behind any unanswered requests."""
        if self._pending:
            self._pending.append([data])
            self._note_in_flight()
        else:
            self._out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= _OUT_BATCH_BYTES:
                self._write_out()

    def _write_out(self) -> None:
        out = self._out
        transport = self._transport
        assert transport is not None
        if len(out) == 1:
            transport.write(out[0])
        else:
            transport.write(b"".join(out))
        out.clear()
        self._out_bytes = 0

    # -- backpressure -------------------------------------------------------------------------

    def _note_in_flight(self) -> None:
        n = len(self._pending)
        stats = self._server.stats
        stats.max_in_flight_seen = max(stats.max_in_flight_seen, n)
        if n >= self._max_in_flight and not self._blocked:
            self._update_blocked()

    def _update_blocked(self) -> None:
        if self.closed:
            return
        blocked = self._write_paused or len(self._pending) >= self._max_in_flight
        self._blocked = blocked
        transport = self._transport
        assert transport is not None
        if blocked and not self._reading_paused:
            self._reading_paused = True
            self._server.stats.read_pauses += 1
            transport.pause_reading()
        elif not blocked and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
            if self._stash and len(self._stash) >= self._need and not self._processing:
                data = bytes(self._stash)
                self._stash = bytearray()
                self._process(data)

    # -- failures -----------------------------------------------------------------------------

    def _protocol_error(self, reason: str) -> None:
        """Malformed or disallowed input: one WARNING, close this connection only."""
        if self.closed:
            return
        self._server.stats.protocol_errors += 1
        info = self.info
        listener = info.listener_name if info else "?"
        logger.warning("Closing connection from %s on listener %s: %s", self._peer_str(),
                       listener, reason)
        self._close()

    def _handler_failed(self, header: RequestHeader, exc: BaseException | None = None,
                        cancelled: bool = False) -> None:
        if self.closed:
            return
        self._server.stats.handler_errors += 1
        what = f"api_key={header.api_key} v{header.api_version} correlation id " \
               f"{header.correlation_id} from {self._peer_str()}"
        if cancelled:
            logger.warning("Handler for %s was cancelled; closing the connection", what)
        elif exc is None:
            logger.exception("Handler for %s failed; closing the connection", what)
        else:
            logger.error("Handler for %s failed; closing the connection", what, exc_info=exc)
        self._close()

    def _peer_str(self) -> str:
        return _addr(self.info.peer) if self.info else "?"

    def _close(self) -> None:
        """Stop reading, drop unanswered requests, let written responses drain (bounded)."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        transport = self._transport
        if transport is None:
            return
        if self._out:  # answers to the requests before the bad one still go out
            transport.write(b"".join(self._out))
            self._out.clear()
            self._out_bytes = 0
        if transport.get_write_buffer_size():
            transport.close()
            self._loop.call_later(CLOSE_LINGER_S, transport.abort)
        else:
            transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


def _addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in str(host) else f"{host}:{addr[1]}"
    return str(addr)


@dataclass
class _Bound:
    listener: _Listener
    server: asyncio.AbstractServer | None = None
    addresses: list[tuple[str, int]] = field(default_factory=list)


class KafkaServer:
    """Kafka listeners in front of request handlers: per listener, ``ListenerSpec.handlers``
    (API key -> handler) and ``ListenerSpec.advertised``, or else the server-wide ``handler``
    (one callable for every API) and ``advertised``.

    ``advertised`` is the API -> (min, max) version table announced through ApiVersions; each
    listener serves the subset allowed on its kind (``API_SPECS[key].listeners``), ApiVersions
    always included. ``await start()`` binds every listener (port 0 picks a free one, see
    ``port(name)``); ``await stop()`` closes listeners and connections and cancels handlers
    still running.
    """

    def __init__(self, listeners: Sequence[ListenerSpec], handler: Handler | None = None, *,
                 advertised: Mapping[int, tuple[int, int]] | None = None,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 write_buffer_high: int = DEFAULT_WRITE_BUFFER_HIGH,
                 write_buffer_low: int = DEFAULT_WRITE_BUFFER_LOW,
                 backlog: int = 128) -> None:
        if not listeners:
            raise ValueError("at least one listener is required")
        names = [spec.name for spec in listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate listener names in {names}")
        if max_request_bytes < MIN_REQUEST_HEADER_BYTES:
            raise ValueError("max_request_bytes is too small")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not 0 <= write_buffer_low <= write_buffer_high:
            raise ValueError("need 0 <= write_buffer_low <= write_buffer_high")
        for spec in listeners:
            if spec.kind not in ("broker", "controller"):
                raise ValueError(f"listener {spec.name}: kind must be broker or controller")
        self.max_request_bytes = max_request_bytes
        self.max_in_flight = max_in_flight
        self.write_buffer_high = write_buffer_high
        self.write_buffer_low = write_buffer_low
        self.backlog = backlog
        for spec in listeners:
            if (spec.advertised or advertised) is None:
                raise ValueError(f"listener {spec.name}: no advertised version table")
            if spec.handlers is None and handler is None:
                raise ValueError(f"listener {spec.name}: no handlers")
        self._bound = {spec.name: _Bound(_Listener(spec, spec.advertised or advertised or {},
                                                   handler))
                       for spec in listeners}
        self._connections: set[_Connection] = set()
        # Handlers still running for connections that have closed (see connection_lost).
        self._orphaned_tasks: set[asyncio.Task[Any]] = set()
        self._next_connection_id = 0
        self.stats = ServerStats()
        # observer(api_key, top-level error code, seconds, bytes in, bytes out) per answered
        # request (broker.admin.metrics); None: no per-request accounting.
        self.request_observer: Callable[[int | None, int, float, int, int], None] | None = None
        self._started = False

    def advertised_for(self, listener_name: str) -> dict[int, tuple[int, int]]:
        """The version table ApiVersions announces on that listener."""
        return dict(self._bound[listener_name].listener.advertised)

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        loop = asyncio.get_running_loop()
        try:
            for bound in self._bound.values():
                spec = bound.listener.spec
                host = None if spec.host in ("", "0.0.0.0", "::") else spec.host
                bound.server = await loop.create_server(
                    partial(_Connection, self, bound.listener), host, spec.port,
                    backlog=self.backlog, reuse_address=True)
                bound.addresses = [s.getsockname()[:2] for s in bound.server.sockets]
                logger.info("Listening on %s (%s) at %s", spec.name, spec.kind,
                            ", ".join(_addr(a) for a in bound.addresses))
        except BaseException:
            await self.stop()
            raise

    def port(self, listener_name: str) -> int:
        """The bound port of a started listener (the real one when it was configured as 0)."""
        return self._bound[listener_name].addresses[0][1]

    def address(self, listener_name: str) -> tuple[str, int]:
        host, port = self._bound[listener_name].addresses[0]
        return host, port

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def in_flight(self) -> int:
        """Requests parsed and not yet answered, over all connections."""
        return sum(len(c._pending) for c in list(self._connections))

    async def stop(self) -> None:
        """Stop accepting, close every connection, cancel running handlers and wait for them."""
        servers = [b.server for b in self._bound.values() if b.server is not None]
        for srv in servers:
            srv.close()
        connections = list(self._connections)
        tasks: list[asyncio.Task[Any]] = list(self._orphaned_tasks)
        for conn in connections:
            tasks.extend(conn._tasks)
            conn.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for srv in servers:
            await srv.wait_closed()
        for b in self._bound.values():
            b.server = None
        # Let the transports deliver connection_lost before we return.
        await asyncio.sleep(0)
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def listener_names(self) -> Iterable[str]:
        return self._bound.keys()
