"""The Kafka network server: listeners, connections, framing, ordering and backpressure.

One ``asyncio.Protocol`` per connection (no streams: per-request CPU is our first limit). A
connection splits its byte stream into size-prefixed frames, parses the request header, decodes
the body with the API's schema and hands ``(ctx, header, request)`` to the caller's async
``handler``, which returns a response object (encoded here at the request's version) or None
(no response, e.g. Produce with acks=0). Framing, decoding, the in-order response queue and
the backpressure decisions live in the sans-IO ``broker.network.connection.ServerConnection``;
the protocol here is its shell: it feeds bytes in, runs handlers and writes what it is given.

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
  while the transport's write buffer is above its high-water mark (``pause_writing``), while
  the request memory pool has no bytes for its partial frame, and at ``queued.max.requests``
  (``broker.network.limits``).
- **Connection limits**: listeners accept through ``broker.network.acceptor`` within the
  quotas of ``broker.network.limits`` (Kafka's ``ConnectionQuotas``); idle connections and,
  past ``max.connections``, the least recently active one are closed
  (``broker.network.expiry``).
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
- **Closing on purpose**: a handler that returns ``CLOSE`` sends no response and has the
  connection closed once the responses of the requests before it are written; nothing after
  it is parsed (Kafka's ``RequestChannel.closeConnection``: a Produce with acks=0 that failed).
- **Quotas** (broker/quotas/enforce.py): a handler that sets ``ctx.connection.mute_until`` (a
  ``time.monotonic()`` deadline) has the connection not read again, once that request is
  answered, until then (KIP-219's muting). ``request_quota``, when set, gets each request's
  result and handler time (the synchronous part) and may give it a throttle time.
- **Handler failures**: an exception from the handler (the handler layer should have turned it
  into an error code) or a response that does not encode is a bug: logged with its traceback,
  and that connection is closed. The server keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from time import monotonic as _monotonic
from time import perf_counter
from typing import Any, Self

from broker.network.acceptor import Acceptor, bind_sockets
from broker.network.chunks import CHUNKED_BYTES, ResponseChunks
from broker.network.connection import (
    BLOCK,
    CLOSE,
    OUT_BATCH_BYTES,
    PAUSE,
    RESUME,
    WRITE,
    ConnectionInfo,
    FrameSizeError,
    ListenerRoutes,
    ProtocolError,
    ServerConnection,
    addr,
)
from broker.network.context import Handler, ListenerSpec, RequestContext, ServerStats
from broker.network.eventloop import new_task
from broker.network.expiry import close_idle_connections, least_recently_active
from broker.network.limits import LimitsConfig, NetworkLimits
from broker.network.secure import secure_connection
from broker.network.sendfile import SendfileWrites, SocketSender, has_regions, materialize
from broker.protocol.framing import (
    DEFAULT_MAX_REQUEST_BYTES,
    MIN_REQUEST_HEADER_BYTES,
    RequestHeader,
)
from kraft.codec import CodecError, Message

__all__ = [
    "CLOSE",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_WRITE_BUFFER_HIGH",
    "DEFAULT_WRITE_BUFFER_LOW",
    "KafkaServer",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 100
"""Requests per connection parsed but not yet answered before reading pauses."""
DEFAULT_WRITE_BUFFER_HIGH = 1 << 20
"""Unsent response bytes per connection above which reading pauses (until below the low mark)."""
DEFAULT_WRITE_BUFFER_LOW = 256 << 10
CLOSE_LINGER_S = 5.0
"""A closed connection's unsent responses get this long to drain before the socket is aborted."""

_SIZE_CID = struct.Struct(">ii")
_SIZE_CID_TAGS = struct.Struct(">iiB")




class _Connection(SendfileWrites, asyncio.Protocol):
    """One client connection: the asyncio shell around a ``ServerConnection``, which frames,
    decodes, orders and decides backpressure; this class feeds it, runs the handlers and
    writes (see the module docstring for the behaviour)."""

    def __init__(self, server: KafkaServer, listener: ListenerRoutes, ip: str = "") -> None:
        self._server = server
        self._listener = self.listener = listener
        self.ip = ip  # counted in the kind's connection quotas until connection_lost
        self.limits = server.limits[listener.kind]
        self.core = ServerConnection(listener, server.stats,
                                     max_request_bytes=server.max_request_bytes,
                                     max_in_flight=server.max_in_flight, limits=self.limits)
        self.core.hooks = self
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.info: ConnectionInfo | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flush_scheduled = False
        self._unmute: asyncio.TimerHandle | None = None
        self._muted_until = 0.0
        # Zero-copy Fetch responses (broker/network/sendfile.py): the socket's fd on a
        # plaintext listener (-1: regions are read instead), the sender while one is writing.
        self._sock_fd = -1
        self._sender: SocketSender | None = None
        self._transport_paused = False
        self._close_when_sent = False

    @property
    def closed(self) -> bool:
        return self.core.closed

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not subclass asyncio.Transport, hence no isinstance check)
        tr: Any = transport
        self._transport = tr
        server = self._server
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        server._next_connection_id += 1
        conn_id = f"{addr(local)}-{addr(peer)}-{server._next_connection_id}"
        self.info = self.core.info = ConnectionInfo(self._listener.name, self._listener.kind,
                                                    peer, local, conn_id)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        tr.set_write_buffer_limits(server.write_buffer_high, server.write_buffer_low)
        if sock is not None and self._listener.spec.security is None and server.sendfile:
            self._sock_fd = sock.fileno()
        if self._listener.spec.security is not None and not secure_connection(
                self, self._listener, self.core, self.info, tr, self._close):
            tr.abort()
            return
        server._connections.add(self)
        server.stats.connections_accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        core = self.core
        core.closed = True
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        server = self._server
        if self in server._connections:
            server._connections.discard(self)
            server.stats.connections_closed += 1
            self.limits.quotas.dec(self._listener.name, self.ip)
        core.drop_pending()
        core.stash = bytearray()
        core.held = None
        if self._unmute is not None:
            self._unmute.cancel()
            self._unmute = None
        # Running handlers finish on their own (their responses are dropped); the server keeps
        # them so that stop() can still cancel them.
        for task in self._tasks:
            if not task.done():
                server._orphaned_tasks.add(task)
                task.add_done_callback(server._orphaned_tasks.discard)

    def pause_writing(self) -> None:
        self._transport_paused = True
        self.core.write_paused = True
        self._update_blocked()

    def resume_writing(self) -> None:
        self._transport_paused = False
        self.core.write_paused = self._sender is not None
        self._update_blocked()

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core.closed or core.closing:
            return
        core.last_active = _monotonic()
        ready = core.receive(data)
        if ready is not None:
            self._process(ready)

    def eof_received(self) -> bool | None:
        return None  # close our side too (Kafka does not do half-closed connections)

    # -- requests -----------------------------------------------------------------------------

    def _process(self, data: bytes | memoryview, write_later: bool = False) -> None:
        """Handle every complete frame in ``data`` (or up to the in-flight bound); the
        connection keeps the rest. The responses ready at the end are written now, or with
        ``write_later`` (a resume after an answered request) at the end of this loop
        iteration, together with those of the other requests answered in it."""
        core = self.core
        if core.closing:
            return
        core.processing = True
        try:
            for frame in core.frames(data):
                self._on_frame(frame)
                if core.closed or core.closing:
                    return
        except FrameSizeError as e:
            self._protocol_error(str(e))
        finally:
            core.processing = False
            if core.out and not core.closed:
                if not write_later or core.out_bytes >= OUT_BATCH_BYTES:
                    self._write_out()
                elif not self._flush_scheduled:
                    self._flush_scheduled = True
                    self._loop.call_soon(self._flush)

    def _on_frame(self, frame: memoryview) -> None:
        decoded = self.core.decode(frame)
        if decoded.__class__ is not tuple:
            if isinstance(decoded, ProtocolError):
                self._protocol_error(decoded)
            else:
                self._respond_bytes(decoded)
            return
        header, request, route = decoded
        _, _, response_schema, response_header_version, handler = route
        api_version = header.api_version
        started = perf_counter()
        ctx = RequestContext(self.info, header, frame)  # type: ignore[arg-type]
        try:
            result = handler(ctx, header, request)
        except Exception:  # noqa: BLE001 - any handler bug closes only this connection
            self._handler_failed(header)
            return
        request_quota = self._server.request_quota
        if request_quota is not None:
            result = request_quota(ctx, header, request, result, perf_counter() - started)
        if not hasattr(result, "__await__"):  # answered synchronously: the fast path
            self._complete(result, response_schema, api_version, header.correlation_id,
                           response_header_version, None, started, len(frame))
            return
        # An awaitable: run it in a task, answer in order.
        slot = self.core.push_pending()
        self._note_in_flight()
        task = new_task(self._loop, self._finish(
            result, slot, header, response_schema, response_header_version, started,
            len(frame)))
        if not task.done():
            slot[1] = task
            self._tasks.add(task)

    async def _finish(self, awaitable: Awaitable[Any], slot: list[Any],
                      header: RequestHeader, schema: Message, header_version: int,
                      started: float = 0.0, bytes_in: int = 0) -> None:
        """Await a handler's result, then send every response now at the head of the queue."""
        core = self.core
        try:
            try:
                response = await awaitable
            except asyncio.CancelledError:
                # stop() cancels on purpose; otherwise the slot would block the connection
                if not core.closed:
                    self._handler_failed(header, cancelled=True)
                raise
            except Exception as exc:  # noqa: BLE001 - a handler bug closes only this connection
                if not core.closed:
                    self._handler_failed(header, exc)
                return
            if core.closed:
                return
            self._complete(response, schema, header.api_version, header.correlation_id,
                           header_version, slot, started, bytes_in)
            if core.closed:
                return
            if core.pending[0] is not slot:
                return  # an earlier request is still running: it will send this one
            if core.release_head():
                self._close()
                return
            if core.out:
                # Several handlers usually finish in one loop iteration: write once for all.
                if core.out_bytes >= OUT_BATCH_BYTES:
                    self._write_out()
                elif not self._flush_scheduled:
                    self._flush_scheduled = True
                    self._loop.call_soon(self._flush)
            if core.blocked:
                self._update_blocked()
        finally:
            if slot[1] is not None:
                self._tasks.discard(slot[1])

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.core.out and not self.core.closed:
            self._write_out()

    # -- responses ----------------------------------------------------------------------------

    def _complete(self, response: Any, schema: Message, version: int, correlation_id: int,
                  header_version: int, slot: list[Any] | None, started: float = 0.0,
                  bytes_in: int = 0) -> None:
        """Encode a handler's response into its slot (or straight out if nothing is ahead);
        then tell ``KafkaServer.request_observer`` (metrics), if any."""
        if response is CLOSE:
            self._close_when_due(slot)
            return
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
            if size < CHUNKED_BYTES:
                data = b"".join(out)
            else:  # a large Fetch response: its record chunks are written uncopied
                data = ResponseChunks(out, size + len(out[0]))
        if self.info.mute_until:  # type: ignore[union-attr]
            self._mute()
        observe = self._server.request_observer
        if observe is not None:
            observe(schema.api_key, getattr(response, "error_code", 0),
                    perf_counter() - started, bytes_in, 0 if data is None else len(data))
        if slot is not None:
            slot[0] = data
        elif action := self.core.queue_response(data):
            self._act(action)

    def _mute(self) -> None:
        """Stop reading until ``info.mute_until`` (a quota's throttle time)."""
        info = self.info
        assert info is not None
        until, info.mute_until = info.mute_until, 0.0
        if until <= self._muted_until:
            return
        self._muted_until = until
        if self._unmute is not None:
            self._unmute.cancel()
        self._unmute = self._loop.call_later(max(0.0, until - time.monotonic()), self._end_mute)
        if not self.core.throttled:
            self.core.throttled = True
            self._update_blocked()

    def _end_mute(self) -> None:
        self._unmute = None
        self._muted_until = 0.0
        self.core.throttled = False
        self._update_blocked()

    def _close_when_due(self, slot: list[Any] | None) -> None:
        """A handler answered ``CLOSE``: parse nothing more; close now if no earlier request
        is unanswered, else once the responses before this one have been written."""
        core = self.core
        core.closing = True
        if slot is not None:
            slot[0] = CLOSE  # _finish closes when it reaches the head of the queue
        elif core.pending:
            core.append_pending([CLOSE])
        else:
            self._close()

    def _respond_bytes(self, data: bytes) -> None:
        """Queue a complete response frame behind any unanswered requests."""
        if action := self.core.queue_response(data):
            self._act(action)

    def _act(self, action: int) -> None:
        """What ``queue_response`` asked for: write the full batch, or recheck the bound."""
        if action == WRITE:
            self._write_out()
        elif action == BLOCK:
            self._update_blocked()

    def _write_out(self) -> None:
        if self._sender is not None:
            return  # the sender owns the socket: the responses wait in ``out`` until it ends
        transport = self._transport
        assert transport is not None
        data = self.core.take_out()
        if data.__class__ is list:
            if has_regions(data):  # type: ignore[arg-type]
                if self._sock_fd >= 0:
                    self._start_sender(data)  # type: ignore[arg-type]
                    return
                data = materialize(data)  # type: ignore[arg-type]
            transport.writelines(data)
        else:
            transport.write(data)

    # -- backpressure -------------------------------------------------------------------------

    def _note_in_flight(self) -> None:
        if self.core.note_in_flight():
            self._update_blocked()

    def memory_wait(self) -> None:
        """The memory pool refused this connection's partial frame: stop reading until the
        pool has bytes again (``broker.network.limits``)."""
        self._update_blocked()
        self.limits.pool.wait(self._memory_resume)

    def _memory_resume(self) -> None:
        if self.core.closed or not self.core.mem_wait:
            return
        if self.core.retry_memory():
            self._update_blocked()
        else:
            self.limits.pool.wait(self._memory_resume)

    def queue_resume(self) -> None:
        """The kind's waiting requests are below ``queued.max.requests`` again."""
        self.core.queue_wait = False
        self._update_blocked()

    def _update_blocked(self) -> None:
        core = self.core
        if core.closed:
            return
        action = core.update_blocked()
        transport = self._transport
        assert transport is not None
        if action == PAUSE:
            transport.pause_reading()
        elif action == RESUME:
            transport.resume_reading()
            data = core.ready_stash()
            if data is not None:
                self._process(data, write_later=True)

    # -- failures -----------------------------------------------------------------------------

    def _protocol_error(self, reason: str) -> None:
        """Malformed or disallowed input: one WARNING, close this connection only."""
        if self.core.closed:
            return
        self._server.stats.protocol_errors += 1
        info = self.info
        listener = info.listener_name if info else "?"
        logger.warning("Closing connection from %s on listener %s: %s", self._peer_str(),
                       listener, reason)
        self._close()

    def _handler_failed(self, header: RequestHeader, exc: BaseException | None = None,
                        cancelled: bool = False) -> None:
        if self.core.closed:
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
        return addr(self.info.peer) if self.info else "?"

    peer_str = _peer_str

    def unsent(self) -> int:
        """Response bytes written and not yet sent."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def _close(self) -> None:
        """Stop reading, drop unanswered requests, let written responses drain (bounded)."""
        core = self.core
        if core.closed:
            return
        transport = self._transport
        if transport is None:
            core.closed = True
            core.drop_pending()
            return
        if self._sender is not None:
            # A response is half sent: close once it is out (the responses before the close
            # still go), or abort if the client does not take it within the linger time.
            core.closing = True
            if not self._close_when_sent:
                self._close_when_sent = True
                self._loop.call_later(CLOSE_LINGER_S, self._abort_send)
            return
        rest = core.close()
        if rest is not None:  # answers to the requests before the bad one still go out
            if rest.__class__ is list:
                transport.writelines(materialize(rest))  # type: ignore[arg-type]
            else:
                transport.write(rest)
        if transport.get_write_buffer_size():
            transport.close()
            self._loop.call_later(CLOSE_LINGER_S, transport.abort)
        else:
            transport.close()

    close = _close

    def abort(self) -> None:
        self.core.closed = True
        if self._transport is not None:
            self._transport.abort()


@dataclass
class _Bound:
    listener: ListenerRoutes
    acceptor: Acceptor | None = None
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
                 backlog: int = 128, limits: LimitsConfig | None = None) -> None:
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
        # Fetch responses' file regions (broker/network/sendfile.py) go out with os.sendfile on
        # plaintext listeners; False reads them into memory first, as on TLS listeners.
        self.sendfile = True
        for spec in listeners:
            if (spec.advertised or advertised) is None:
                raise ValueError(f"listener {spec.name}: no advertised version table")
            if spec.handlers is None and handler is None:
                raise ValueError(f"listener {spec.name}: no handlers")
        self._bound = {spec.name: _Bound(ListenerRoutes(spec, spec.advertised or advertised or {},
                                                   handler))
                       for spec in listeners}
        # One set of limits per listener kind (broker.network.limits).
        self.limits_config = limits = limits or LimitsConfig()
        if 0 < limits.queued_max_request_bytes < max_request_bytes:
            raise ValueError("queued.max.request.bytes must be at least socket.request.max.bytes")
        self.limits: dict[str, NetworkLimits] = {
            kind: NetworkLimits([s.name for s in listeners if s.kind == kind], limits)
            for kind in ("broker", "controller")}
        self._idle_task: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        # Handlers still running for connections that have closed (see connection_lost).
        self._orphaned_tasks: set[asyncio.Task[Any]] = set()
        self._next_connection_id = 0
        self.stats = ServerStats()
        # observer(api_key, top-level error code, seconds, bytes in, bytes out) per answered
        # request (broker.admin.metrics); None: no per-request accounting.
        self.request_observer: Callable[[int | None, int, float, int, int], None] | None = None
        # request_quota(ctx, header, request, result, handler seconds) -> result; None: no
        # request_percentage quota exists, nothing is measured.
        self.request_quota: Callable[[Any, Any, Any, Any, float], Any] | None = None
        self._started = False

    def advertised_for(self, listener_name: str) -> dict[int, tuple[int, int]]:
        """The version table ApiVersions announces on that listener."""
        return dict(self._bound[listener_name].listener.advertised)

    async def start(self, deferred_kinds: frozenset[str] = frozenset()) -> None:
        """Bind every listener. Those of a kind in ``deferred_kinds`` are bound (their ports
        are known) but do not listen until ``start_serving(kind)``: a client connecting
        meanwhile is refused and retries, as with Kafka's broker before it is unfenced."""
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        loop = asyncio.get_running_loop()
        for limits in self.limits.values():
            limits.set_scheduler(loop.call_soon)
        try:
            for bound in self._bound.values():
                spec = bound.listener.spec
                host = None if spec.host in ("", "0.0.0.0", "::") else spec.host
                serve = spec.kind not in deferred_kinds
                sockets = bind_sockets(host, spec.port)
                quotas = self.limits[spec.kind].quotas
                bound.acceptor = Acceptor(
                    loop, spec.name, sockets, quotas,
                    partial(partial, _Connection, self, bound.listener),
                    partial(self._close_lru, spec.kind, quotas.protected), self.backlog,
                    ssl_context=None if spec.security is None else spec.security.ssl_context)
                bound.addresses = [sk.getsockname()[:2] for sk in sockets]
                if serve:
                    bound.acceptor.start()
                logger.info("%s %s (%s) at %s", "Listening on" if serve else "Bound",
                            spec.name, spec.kind, ", ".join(addr(a) for a in bound.addresses))
        except BaseException:
            await self.stop()
            raise
        idle_ms = self.limits_config.connections_max_idle_ms
        if 0 < idle_ms < 2**62:
            self._idle_task = loop.create_task(close_idle_connections(
                lambda: self._connections, idle_ms, self._close_idle), name="idle sweep")

    def _close_lru(self, kind: str, protected: str | None) -> None:
        """The protected inter-broker listener went past max.connections: close the least
        recently active connection of another listener (Kafka's closeExcessConnections)."""
        victim = least_recently_active(self._connections, kind, protected)
        if victim is not None:
            self.limits[kind].lru_closes += 1
            logger.info("Closing connection %s: max.connections is exceeded after a connection "
                        "on the inter-broker listener %s", victim.peer_str(), protected)
            victim.close()

    def _close_idle(self, conn: _Connection) -> None:
        self.limits[conn.listener.kind].idle_closes += 1
        conn.close()

    async def start_serving(self, kind: str) -> None:
        """Start listening on the listeners of ``kind`` that ``start`` deferred."""
        for bound in self._bound.values():
            spec = bound.listener.spec
            if spec.kind == kind and bound.acceptor is not None and \
                    not bound.acceptor.serving:
                bound.acceptor.start()
                logger.info("Listening on %s (%s) at %s", spec.name, spec.kind,
                            ", ".join(addr(a) for a in bound.addresses))

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
        return sum(len(c.core.pending) for c in list(self._connections))

    async def stop(self) -> None:
        """Stop accepting, close every connection, cancel running handlers and wait for them."""
        for b in self._bound.values():
            if b.acceptor is not None:
                b.acceptor.close()
                b.acceptor = None
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        connections = list(self._connections)
        tasks: list[asyncio.Task[Any]] = list(self._orphaned_tasks)
        for conn in connections:
            tasks.extend(conn._tasks)
            conn.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
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
