"""One server-side Kafka connection without I/O (sans-IO): what the network server decides.

``ServerConnection`` takes the bytes a socket received and turns them into requests; it holds
the per-connection queue that answers requests in order, and it decides when reading must
pause. It never touches a socket, a loop or a task: ``broker.network.server`` feeds it, calls
the handlers, and writes what it hands out (see that module's docstring for the behaviour).

- **Framing.** ``receive(data)`` says what to parse now (None: keep it until a whole frame is in
  and parsing may go on); ``frames(data)`` yields each complete size-prefixed frame while
  parsing is not blocked and keeps the rest. A size prefix <= 0 or above ``max_request_bytes``
  raises ``FrameSizeError`` (also for a partial frame whose prefix is already in).
- **Decoding.** ``decode(frame)`` returns ``(header, request, route)`` for a request to hand to a
  handler, a ``ProtocolError`` (a str: the reason to close the connection), or the bytes of a
  complete response (ApiVersions is answered here).
- **Ordering.** ``push_pending()`` reserves a slot for a request handled later; responses
  behind an unanswered request wait in the queue (``queue_response``) and ``release_head``
  moves the completed head of the queue to ``out``, the bytes to write.
- **Backpressure.** Reading stops at ``max_in_flight`` unanswered requests (and goes on once
  half of them are answered, so that a busy pipelining client is read in bursts rather than
  one request per answer), while the
  transport's write buffer is full (``write_paused``), while the kind's request memory pool
  refuses the partial frame kept in the stash (``mem_wait``: the frame's whole size is drawn
  when its size prefix is in, and given back once the frame is whole; ``retry_memory``), and
  while the kind's waiting requests are at ``queued.max.requests`` and this connection has
  one (``queue_wait``); see ``broker.network.limits``. ``update_blocked`` returns ``PAUSE``,
  ``RESUME`` or 0 for the caller to act on; ``hooks`` (the server's connection) is told when
  to wait for memory and is woken when the waiting requests drop below the bound.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import deque
from collections.abc import Iterator, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any

from broker.network.chunks import CHUNKED_BYTES, ResponseChunks, flatten
from broker.network.limits import NetworkLimits
from broker.protocol.api_keys import API_SPECS, ApiKey, request_header_version
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import (
    MIN_REQUEST_HEADER_BYTES,
    RequestHeader,
    parse_request_header,
)
from broker.security.principal import ANONYMOUS, KafkaPrincipal
from kraft.codec import DecodeError, Message

if TYPE_CHECKING:
    from broker.network.context import ApiFeatures, Handler, ListenerSpec, ServerStats

__all__ = [
    "BLOCK",
    "CLOSE",
    "OUT_BATCH_BYTES",
    "PAUSE",
    "PENDING",
    "RESUME",
    "WRITE",
    "ConnectionInfo",
    "FrameSizeError",
    "ListenerRoutes",
    "ProtocolError",
    "ServerConnection",
]

# Hex dumps of every ApiVersions request (client fingerprints), at DEBUG; the server's name.
wire_logger = logging.getLogger("broker.network.server.wire")

# Kafka's ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN
_SOFTWARE_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")

_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")
_HEAD_V1 = struct.Struct(">hhih")  # + client_id length
_MIN_HEADER_V1_BYTES = _HEAD_V1.size
_SIZE_CID = struct.Struct(">ii")
_API_VERSIONS = int(ApiKey.API_VERSIONS)

PENDING: Any = object()
"""The content of a response slot whose handler has not finished."""
CLOSE: Any = object()
"""A handler's answer meaning: no response, and close the connection once the responses of the
requests before this one are written; the requests after it are not handled (Kafka's
``RequestChannel.closeConnection``, used for a Produce with acks=0 that failed: the producer
expects no response, so a closed connection is how it learns of the error)."""
OUT_BATCH_BYTES = 256 << 10
"""Responses produced while processing one read are written together (one syscall), or as soon
as they reach this size, so that write backpressure can stop the batch."""
PAUSE = 1
"""``update_blocked``: pause reading now."""
RESUME = 2
"""``update_blocked``: resume reading now (then parse what ``ready_stash`` returns)."""
WRITE = 1
"""``queue_response``: the output batch is full, write it now."""
BLOCK = 2
"""``queue_response``: the in-flight bound is reached, call ``update_blocked``."""


class FrameSizeError(Exception):
    """A size prefix outside 1..max_request_bytes; ``str()`` is the reason to log."""


class ProtocolError(str):
    """``decode``'s answer for malformed or disallowed input: the reason to close for."""

    __slots__ = ()


def addr(address: Any) -> str:
    """A socket address as host:port ([host]:port for IPv6)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


class ConnectionInfo:
    """What a request's context knows about its connection."""

    __slots__ = ("client_software_name", "client_software_version", "connection_id",
                 "listener_kind", "listener_name", "local_address", "mute_until", "peer",
                 "principal", "sasl")

    def __init__(self, listener_name: str, listener_kind: str, peer: Any, local_address: Any,
                 connection_id: str) -> None:
        self.listener_name = listener_name
        self.listener_kind = listener_kind
        self.peer = peer
        self.local_address = local_address
        self.connection_id = connection_id
        self.client_software_name = ""
        self.client_software_version = ""
        # Who the requests are authorized as (broker/security/principal.py).
        self.principal: KafkaPrincipal = ANONYMOUS
        # Set by a quota hook (broker/quotas/enforce.py): stop reading this connection after
        # the response until this time.monotonic() (KIP-219); 0.0: not throttled.
        self.mute_until = 0.0
        self.sasl: Any = None  # a SASL listener's SaslSession (broker/security/sasl_server.py)


class ListenerRoutes:
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
        # A SASL connection's table until it authenticates (broker/network/secure.py).
        self.sasl_routes = {k: v for k, v in self.routes.items() if k >> 16 in (17, 18, 36)}
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
        self._entries = entries
        self._features = spec.features
        # version -> (the features it was encoded with, the body)
        self._feature_bodies: dict[int, tuple[ApiFeatures, bytes]] = {}
        self.api_versions_invalid = {
            v: resp.encode(resp.cls(error_code=ErrorCode.INVALID_REQUEST), v)
            for v in range(self.api_versions_lo, self.api_versions_hi + 1)
        }

    def api_versions_body(self, version: int) -> bytes:
        """The ApiVersions answer at ``version``; from v3 with the features of the moment
        (re-encoded only when they changed)."""
        features = self._features
        if features is None or version < 3:
            return self.api_versions_bodies[version]
        f = features()
        cached = self._feature_bodies.get(version)
        if cached is not None and cached[0] == f:
            return cached[1]
        resp = API_SPECS[_API_VERSIONS].response
        supported = []
        for name, lo, hi in f.supported:
            if version < 4 and lo == 0:
                # v3 cannot carry a minimum of 0 (KAFKA-17011): 0-0 is left out, 0-n is 1-n.
                if hi == 0:
                    continue
                lo = 1
            supported.append(resp.SupportedFeatureKey(name=name, min_version=lo, max_version=hi))
        body = resp.encode(resp.cls(
            error_code=0, api_keys=self._entries, supported_features=supported,
            finalized_features_epoch=f.epoch,
            finalized_features=[resp.FinalizedFeatureKey(name=n, max_version_level=level,
                                                         min_version_level=level)
                                for n, level in f.finalized]), version)
        self._feature_bodies[version] = (f, body)
        return body


class ServerConnection:
    """The state and decisions of one connection (see the module docstring)."""

    __slots__ = ("_client_id", "_client_id_raw", "_last_software", "blocked",
                 "closed", "closing", "held", "hooks", "in_flight_full", "info", "last_active", "limits", "listener",
                 "max_in_flight", "max_request_bytes", "mem_wait", "need", "out", "out_bytes",
                 "pending", "pool", "processing", "queue_wait", "reading_paused", "reserved",
                 "routes", "stash", "stats", "throttled", "write_paused")

    def __init__(self, listener: ListenerRoutes, stats: ServerStats, *,
                 max_request_bytes: int, max_in_flight: int,
                 info: ConnectionInfo | None = None,
                 limits: NetworkLimits | None = None) -> None:
        self.listener = listener
        # The kind's limits (broker.network.limits): the memory pool partial frames draw
        # from, and the count of waiting requests.
        self.limits = limits if limits is not None else NetworkLimits([listener.name])
        self.pool = self.limits.pool
        self.reserved = 0  # bytes drawn from the pool for the partial frame in the stash
        self.mem_wait = False  # the pool refused: stop reading until it has bytes again
        self.queue_wait = False  # paused because the kind's waiting requests are at the bound
        self.last_active = monotonic()  # when bytes last arrived (idle expiry, LRU)
        # The I/O side's callbacks for the limits (``memory_wait()``, ``queue_resume()``).
        self.hooks: Any = None
        self.routes = listener.routes
        self.stats = stats
        self.max_request_bytes = max_request_bytes
        self.max_in_flight = max_in_flight
        self.info = info
        self.stash = bytearray()  # bytes received but not yet processed
        # The unparsed rest of a read whose parsing was blocked (a view, not a copy); the
        # stash is empty while it is set.
        self.held: memoryview | None = None
        self.need = 4  # process the stash once it holds this many bytes
        self.out: list[Any] = []  # response bytes to write at the end of this batch
        self.out_bytes = 0
        self.pending: deque[list[Any]] = deque()  # response slots, in request order
        self.write_paused = False
        self.reading_paused = False
        self.blocked = False  # stop parsing frames (in-flight bound or write backpressure)
        self.in_flight_full = False  # reached max_in_flight, not yet back to half of it
        self.throttled = False  # muted for a quota's throttle time (KIP-219)
        self.processing = False  # inside frames(): a resume must not parse the stash
        self.closed = False
        self.closing = False  # a CLOSE is queued: parse nothing more, close when it is due
        self._last_software: tuple[str, str] | None = None
        self._client_id_raw = b""
        self._client_id = ""

    # -- framing ------------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes | None:
        """Bytes from the socket: what to parse now, or None (kept for later)."""
        if self.held is not None:
            # Bytes that were already on their way when reading paused: join the two.
            self.stash = bytearray(self.held)
            self.held = None
        if self.stash:
            self.stash += data
            if len(self.stash) < self.need or self.blocked:
                return None
            data = bytes(self.stash)
            self.stash = bytearray()
            if self.reserved:  # the frame is whole: its bytes go back to the pool
                self.pool.release(self.reserved)
                self.reserved = 0
        elif self.blocked:
            self.stash += data
            return None
        return data

    def frames(self, data: bytes | memoryview) -> Iterator[memoryview]:
        """Every complete frame in ``data`` (no size prefix), until parsing is blocked; the
        rest is kept. Stop iterating once the connection is closed."""
        n = len(data)
        pos = 0
        mv = memoryview(data)
        limit = self.max_request_bytes
        unpack = _I32.unpack_from
        while n - pos >= 4 and not self.blocked:
            (size,) = unpack(data, pos)
            if size <= 0 or size > limit:
                raise FrameSizeError(f"request size {size} is outside 1..{limit} bytes")
            end = pos + 4 + size
            if end > n:
                break
            yield mv[pos + 4:end]
            pos = end
        if pos < n:
            if self.blocked and n - pos >= 4 and pos + 4 + unpack(data, pos)[0] <= n:
                self.held = mv[pos:]  # whole frames wait for the block to end
            else:
                self.stash = bytearray(mv[pos:])
            if n - pos >= 4:
                self.need = 4 + unpack(data, pos)[0]
                # Fail an oversized frame now, not after buffering it.
                if not 0 < self.need - 4 <= limit:
                    raise FrameSizeError(f"request size {self.need - 4} is outside "
                                         f"1..{limit} bytes")
                if self.pool.bounded and not self.reserved:
                    # Held until the rest arrives: draw the whole frame from the pool first.
                    if self.pool.try_allocate(self.need):
                        self.reserved = self.need
                    else:
                        self.mem_wait = True
                        if self.hooks is not None:
                            self.hooks.memory_wait()
            else:
                self.need = 4
        else:
            self.need = 4

    def ready_stash(self) -> bytes | memoryview | None:
        """After a resume: the kept bytes, if they hold a whole frame and nobody is parsing."""
        held = self.held
        if held is not None and not self.processing:
            self.held = None
            if self.reserved:
                self.pool.release(self.reserved)
                self.reserved = 0
            return held
        if self.stash and len(self.stash) >= self.need and not self.processing:
            data = bytes(self.stash)
            self.stash = bytearray()
            if self.reserved:
                self.pool.release(self.reserved)
                self.reserved = 0
            return data
        return None

    def retry_memory(self) -> bool:
        """The pool has bytes again: draw the partial frame's size. True if reading may go
        on (then call ``update_blocked``)."""
        if not self.mem_wait or self.closed:
            return False
        if not self.pool.try_allocate(self.need):
            return False
        self.reserved = self.need
        self.mem_wait = False
        return True

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, frame: memoryview) -> Any:
        """``(header, request, route)`` for the handler, a ``ProtocolError``, or the bytes of
        a complete response (ApiVersions)."""
        self.stats.requests += 1
        if len(frame) < _MIN_HEADER_V1_BYTES:
            return self._short_frame(frame)
        api_key, api_version, correlation_id, n = _HEAD_V1.unpack_from(frame, 0)
        route = self.routes.get((api_key << 16) | (api_version & 0xFFFF))
        if route is None:
            return self._unroutable(frame, api_key, api_version, correlation_id)
        request_schema, header_version = route[0], route[1]
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
                    return ProtocolError(f"client_id is not UTF-8 (correlation id "
                                         f"{correlation_id})")
                self._client_id_raw, self._client_id = bytes(raw), client_id
            header = RequestHeader(api_key, api_version, correlation_id, client_id,
                                   header_version)
            if header_version == 2:
                body_at += 1
        else:
            try:
                header, body_at = parse_request_header(frame, header_version)
            except DecodeError as e:
                return ProtocolError(f"cannot parse the request header (api_key {api_key} "
                                     f"v{api_version}, correlation id {correlation_id}): {e}")
        try:
            request, _end = request_schema.decode(frame, api_version, body_at)
        except DecodeError as e:
            return ProtocolError(f"cannot parse {request_schema.name} v{api_version} "
                                 f"(correlation id {correlation_id}): {e}")
        if api_key == _API_VERSIONS:
            return self._answer_api_versions(header, request, frame)
        return header, request, route

    def _short_frame(self, frame: memoryview) -> Any:
        """A frame too short for header v1: only a header-v0 request (api_key, api_version,
        correlation_id) fits, and none of those is routed, so this is always an error."""
        if len(frame) < MIN_REQUEST_HEADER_BYTES:
            return ProtocolError(f"request of {len(frame)} bytes is shorter than a header")
        api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
        if api_key == _API_VERSIONS or (api_key << 16 | (api_version & 0xFFFF)) in self.routes:
            return ProtocolError(f"request of {len(frame)} bytes is shorter than its header")
        return self._unroutable(frame, api_key, api_version, correlation_id)

    def _unroutable(self, frame: memoryview, api_key: int, api_version: int,
                    correlation_id: int) -> Any:
        listener = self.listener
        if api_key == _API_VERSIONS:
            # Any version is accepted (Kafka's ApiKeys.isVersionEnabled): answer error 35 with
            # a v0 body naming our range; the header is parsed per that version's rules.
            try:
                parse_request_header(frame, request_header_version(api_key, api_version))
            except DecodeError as e:
                return ProtocolError(f"cannot parse ApiVersions v{api_version} header: {e}")
            self.stats.api_versions_requests += 1
            self._log_api_versions(frame, api_version)
            return (_SIZE_CID.pack(4 + len(listener.api_versions_unsupported), correlation_id)
                    + listener.api_versions_unsupported)
        api = API_SPECS.get(api_key)
        if api is None:
            why = f"unknown API key {api_key}"
        elif api_key not in listener.advertised:
            why = f"{api.name} (key {api_key}) is not served on {listener.kind} listener " \
                  f"{listener.name}"
        else:
            lo, hi = listener.advertised[api_key]
            why = f"{api.name} v{api_version} is outside the supported versions {lo}-{hi}"
        return ProtocolError(f"{why} (correlation id {correlation_id})")

    def _answer_api_versions(self, header: RequestHeader, request: Any,
                             frame: memoryview) -> bytes:
        listener = self.listener
        version = header.api_version
        self.stats.api_versions_requests += 1
        self._log_api_versions(frame, version)
        body = listener.api_versions_body(version)
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
        return _SIZE_CID.pack(4 + len(body), header.correlation_id) + body

    def _log_api_versions(self, frame: memoryview, version: int) -> None:
        if wire_logger.isEnabledFor(logging.DEBUG):
            info = self.info
            assert info is not None
            wire_logger.debug("ApiVersions v%d request from %s on %s: %s", version,
                              addr(info.peer), info.listener_name, bytes(frame).hex())

    # -- ordering -----------------------------------------------------------------------------

    def push_pending(self) -> list[Any]:
        """Reserve the response slot of a request handled later: ``[PENDING, task]``; its
        response goes into ``slot[0]`` (None: no response)."""
        slot: list[Any] = [PENDING, None]
        self.pending.append(slot)
        self.limits.queued += 1
        return slot

    def queue_response(self, data: bytes | None) -> int:
        """A response available now (None: the request has none): behind every unanswered
        request, else into ``out``. Returns ``WRITE``, ``BLOCK`` or 0."""
        if self.pending:
            self.pending.append([data])
            self.limits.queued += 1
            return BLOCK if self.note_in_flight() else 0
        if data is not None:
            self.out.append(data)
            self.out_bytes += len(data)
            if self.out_bytes >= OUT_BATCH_BYTES:
                return WRITE
        return 0

    def release_head(self) -> bool:
        """Move every completed response at the head of the queue to ``out``. True if a
        ``CLOSE`` reached the head: write ``out``, then close the connection."""
        pending = self.pending
        out = self.out
        released = 0
        try:
            while pending and pending[0][0] is not PENDING:
                data = pending.popleft()[0]
                released += 1
                if data is CLOSE:
                    return True
                if data is not None:
                    out.append(data)
                    self.out_bytes += len(data)
            return False
        finally:
            self.limits.dequeued(released)

    def append_pending(self, entry: list[Any]) -> None:
        """Queue an entry (e.g. ``[CLOSE]``) behind the unanswered requests."""
        self.pending.append(entry)
        self.limits.queued += 1

    def drop_pending(self) -> None:
        """Forget every unanswered request (the connection is closed); give back what the
        connection held of the kind's limits."""
        if self.pending:
            n = len(self.pending)
            self.pending.clear()
            self.limits.dequeued(n)
        if self.reserved:
            self.pool.release(self.reserved)
            self.reserved = 0
        self.mem_wait = False

    def take_out(self) -> bytes | list[Any]:
        """The response bytes to write now (``out`` is then empty); a list of buffers (for
        ``writelines``) when a large response is among them (``broker.network.chunks``)."""
        out = self.out
        if self.out_bytes >= CHUNKED_BYTES and any(
                x.__class__ is ResponseChunks for x in out):
            data: bytes | list[Any] = flatten(out)
        else:
            data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.out_bytes = 0
        return data

    def close(self) -> bytes | list[Any] | None:
        """Closed: drop unanswered requests; return the responses still to write, if any."""
        self.closed = True
        self.drop_pending()
        if not self.out:
            return None
        return self.take_out()

    # -- backpressure -------------------------------------------------------------------------

    def note_in_flight(self) -> bool:
        """Count the unanswered requests; True if they reached the bound while parsing runs
        (then call ``update_blocked``)."""
        n = len(self.pending)
        stats = self.stats
        stats.max_in_flight_seen = max(stats.max_in_flight_seen, n)
        limits = self.limits
        return (n >= self.max_in_flight or limits.queued >= limits.max_queued) \
            and not self.blocked

    def update_blocked(self) -> int:
        """Whether parsing must stop (in-flight bound, write backpressure or a quota's throttle
        time): ``PAUSE`` or
        ``RESUME`` when reading must change, else 0."""
        n = len(self.pending)
        limits = self.limits
        queue_full = n > 0 and limits.queued >= limits.max_queued
        if n >= self.max_in_flight:
            self.in_flight_full = True
        elif self.in_flight_full and n <= self.max_in_flight // 2:
            self.in_flight_full = False
        blocked = (self.write_paused or self.throttled or self.in_flight_full or self.mem_wait
                   or queue_full)
        self.blocked = blocked
        if queue_full and not self.queue_wait:
            self.queue_wait = True
            limits.queue_waits += 1
            if self.hooks is not None:
                limits.queue_waiters.append(self.hooks.queue_resume)
        elif not queue_full:
            self.queue_wait = False
        if blocked and not self.reading_paused:
            self.reading_paused = True
            self.stats.read_pauses += 1
            return PAUSE
        if not blocked and self.reading_paused:
            self.reading_paused = False
            return RESUME
        return 0
