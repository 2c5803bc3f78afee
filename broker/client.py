"""Our own small async Kafka client, for the CLI tools and for broker -> controller RPCs.

Two layers:

- ``KafkaConnection``: one TCP connection (an ``asyncio.Protocol``). Requests carry correlation
  ids and are pipelined: any number of concurrent ``send`` calls share the connection, and
  responses are matched to requests by correlation id (not by order, although our server keeps
  order). On connect it negotiates versions with ApiVersions (KIP-511: v3 with our software name
  and version; on error 35 it reads the v0 body the broker sends and retries at the highest
  ApiVersions version both support). ``send(api_key, request)`` then picks, per API, the
  highest version both sides support. It never assumes Metadata exists, so it also talks to
  a controller listener (ApiVersions, then e.g. BrokerHeartbeat).
- ``KafkaClient``: a cluster. Bootstraps from a server list, caches Metadata (brokers,
  controller id, cluster id, topics -> partitions -> leader/epoch/replicas/ISR), pools one
  connection per broker and routes requests to a node, any node, the controller or a
  partition leader, retrying retriable errors with exponential backoff and a metadata refresh
  between attempts, under an overall deadline.

Failure semantics, following Kafka's ``NetworkClient``:

- A connection that is lost (peer closed, reset, malformed or oversized response frame, a
  response with a correlation id we never sent) fails every pending request at once with a
  ``KafkaConnectionError`` (a ``ConnectionError``).
- A request that gets no answer within its timeout fails with ``KafkaTimeoutError`` (a
  ``TimeoutError``), and the connection is closed: the server answers in order, so everything
  behind the stuck request is stuck too. Its other pending requests fail with
  ``KafkaConnectionError``. The next ``KafkaClient`` request to that node reconnects.
- Retrying is the caller's choice of API: ``KafkaConnection`` never retries; ``KafkaClient``
  retries connection errors, client timeouts and error codes whose class is ``retriable`` in
  ``broker.protocol.errors``. Error codes live in different places in every response, so the
  caller passes ``check(response) -> error code | None`` to say which one counts (see
  ``any_error``). A retried request is sent again as is: for non-idempotent requests (Produce
  without idempotence) a retry after a timeout may duplicate, as in Kafka.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from broker.protocol.api_keys import (
    API_SPECS,
    ApiKey,
    UnknownApiKeyError,
    request_header_version,
    response_header_version,
)
from broker.protocol.errors import (
    ErrorCode,
    KafkaError,
    LeaderNotAvailableError,
    NotControllerError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
    error_for_code,
)
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import api_versions as _api_versions
from broker.protocol.messages import metadata as _metadata
from kraft.codec import DecodeError

__all__ = [
    "CLIENT_SOFTWARE_NAME",
    "CLIENT_SOFTWARE_VERSION",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "BrokerInfo",
    "ClientStats",
    "ClusterMetadata",
    "KafkaClient",
    "KafkaConnection",
    "KafkaConnectionError",
    "KafkaProtocolError",
    "KafkaTimeoutError",
    "NoBrokersAvailableError",
    "PartitionInfo",
    "TopicInfo",
    "UnsupportedVersionError",
    "any_error",
    "choose_version",
    "parse_address",
]

logger = logging.getLogger(__name__)

CLIENT_SOFTWARE_NAME = "pykraft"
CLIENT_SOFTWARE_VERSION = "0.1.0"
"""Sent in ApiVersions v3+ (KIP-511); brokers reject values outside
``[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?`` with INVALID_REQUEST."""

DEFAULT_MAX_RESPONSE_BYTES = 100 * 1024 * 1024
"""A response frame larger than this closes the connection (a corrupt size prefix would
otherwise make us buffer up to 2 GiB)."""
DEFAULT_MAX_IN_FLIGHT = 1000
"""Requests per connection sent and not yet answered; further ``send`` calls wait."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_API_TIMEOUT_S = 60.0
"""Overall deadline of a ``KafkaClient`` call including its retries (``default.api.timeout.ms``)."""
DEFAULT_RETRY_BACKOFF_MS = 100
DEFAULT_RETRY_BACKOFF_MAX_MS = 1000
_RETRY_JITTER = 0.2  # +-20%, as Kafka's ExponentialBackoff
_CLOSE_GRACE_S = 1.0  # close() waits this long for the transport before aborting it
_MAX_CORRELATION_ID = (1 << 31) - 1

_API_VERSIONS = int(ApiKey.API_VERSIONS)
_AV_MAX = 3  # the ApiVersions version we send first (what librdkafka sends)
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


# -- errors ------------------------------------------------------------------------------------


class KafkaConnectionError(ConnectionError):
    """The connection could not be made, or was lost, or was closed: the request may or may
    not have reached the broker."""

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class NoBrokersAvailableError(KafkaConnectionError):
    """None of the bootstrap servers (or known brokers) answered."""


class KafkaTimeoutError(TimeoutError):
    """A request got no response in time (``last_error`` is set when an overall deadline
    expired after retries: the error of the last attempt)."""

    def __init__(self, message: str, *, last_error: BaseException | None = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.last_error = last_error
        self.attempts = attempts


class KafkaProtocolError(Exception):
    """A response that does not decode at the version we asked for (the connection stays
    up: framing is intact)."""


# -- version negotiation -----------------------------------------------------------------------


def choose_version(api_key: int, broker_range: tuple[int, int] | None,
                   requested: int | None = None) -> int:
    """The version to send ``api_key`` at: ``requested`` if both sides support it, else (when
    None) the highest version in both our schema's range and the broker's advertised one.

    Raises ``UnsupportedVersionError`` when the broker does not advertise the API or the ranges
    do not overlap (or ``requested`` is outside either), ``UnknownApiKeyError`` for an API we
    have no schema for.
    """
    spec = API_SPECS.get(api_key)
    if spec is None:
        raise UnknownApiKeyError(f"no schema for API key {api_key}")
    ours = spec.valid_versions
    name = f"{spec.name} (key {int(api_key)})"
    if broker_range is None:
        raise UnsupportedVersionError(f"the broker does not support {name}")
    lo, hi = max(ours.lowest, broker_range[0]), min(ours.highest, broker_range[1])
    if requested is not None:
        if requested not in ours:
            raise UnsupportedVersionError(
                f"{name} v{requested} is outside our versions {ours}")
        if not broker_range[0] <= requested <= broker_range[1]:
            raise UnsupportedVersionError(
                f"{name} v{requested} is outside the broker's versions "
                f"{broker_range[0]}-{broker_range[1]}")
        return requested
    if lo > hi:
        raise UnsupportedVersionError(
            f"no common version of {name}: ours {ours}, the broker's "
            f"{broker_range[0]}-{broker_range[1]}")
    return hi


# -- one connection ----------------------------------------------------------------------------


class _Pending:
    __slots__ = ("api_key", "future", "header_version", "timer", "version")

    def __init__(self, api_key: int, version: int, future: asyncio.Future[Any]) -> None:
        self.api_key = api_key
        self.version = version
        self.header_version = response_header_version(api_key, version)
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class KafkaConnection(asyncio.Protocol):
    """One TCP connection to a Kafka listener (broker or controller).

    Create it with ``await KafkaConnection.connect(host, port, client_id=...)``: that connects
    and negotiates versions; ``api_versions`` then holds the listener's advertised ranges and
    ``api_versions_version`` the ApiVersions version that worked. ``node_id`` is a label for
    messages and pools (-1 when unknown).
    """

    def __init__(self, host: str, port: int, *, client_id: str | None = "pykraft",
                 node_id: int = -1, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_response_bytes < 8:
            raise ValueError("max_response_bytes is too small")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.node_id = node_id
        self.max_response_bytes = max_response_bytes
        self.api_versions: dict[int, tuple[int, int]] = {}
        self.api_versions_version = -1
        self.close_reason: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._transport: Any = None  # uvloop's transports are not asyncio.Transport
        self._pending: dict[int, _Pending] = {}
        self._next_cid = itertools.count()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._buf = bytearray()
        self._need = 4  # bytes the buffer must hold before the next frame can be parsed
        self._closed = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending)} in flight"
        return f"KafkaConnection({self.host}:{self.port}, node {self.node_id}, {state})"

    @classmethod
    async def connect(cls, host: str, port: int, *, client_id: str | None = "pykraft",
                      timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S, node_id: int = -1,
                      max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                      max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> KafkaConnection:
        """Connect and negotiate versions within ``timeout_s``; ``KafkaConnectionError`` when
        the peer cannot be reached or does not answer ApiVersions in time."""
        conn = cls(host, port, client_id=client_id, node_id=node_id,
                   max_response_bytes=max_response_bytes, max_in_flight=max_in_flight)
        loop = conn._loop
        where = f"{host}:{port}" + (f" (node {node_id})" if node_id >= 0 else "")
        try:
            async with asyncio.timeout(timeout_s):
                await loop.create_connection(lambda: conn, host, port)
        except TimeoutError:
            conn._abort(None)
            raise KafkaConnectionError(f"timed out connecting to {where} after {timeout_s}s",
                                       host=host, port=port) from None
        except OSError as e:
            raise KafkaConnectionError(f"cannot connect to {where}: {e}",
                                       host=host, port=port) from e
        try:
            await conn._negotiate(timeout_s)
        except BaseException:
            conn._abort(None)
            raise
        return conn

    async def _negotiate(self, timeout_s: float) -> None:
        req = _api_versions.REQUEST.cls(client_software_name=CLIENT_SOFTWARE_NAME,
                                        client_software_version=CLIENT_SOFTWARE_VERSION)
        version = _AV_MAX
        for _ in range(2):
            try:
                resp = await self._send(_API_VERSIONS, req, version, timeout_s)
            except KafkaTimeoutError as e:
                raise KafkaConnectionError(
                    f"{self.host}:{self.port} did not answer ApiVersions v{version} within "
                    f"{timeout_s}s", host=self.host, port=self.port) from e
            if resp.error_code == ErrorCode.UNSUPPORTED_VERSION and version > 0:
                # KIP-511: the body is v0 and lists the ApiVersions range the broker takes.
                theirs = {e.api_key: e.max_version for e in resp.api_keys}
                version = max(0, min(version - 1, theirs.get(_API_VERSIONS, 0)))
                continue
            if resp.error_code:
                exc = error_for_code(resp.error_code)
                raise exc(f"ApiVersions v{version} to {self.host}:{self.port} failed: "
                          f"{exc.message}")
            self.api_versions = {e.api_key: (e.min_version, e.max_version)
                                 for e in resp.api_keys}
            self.api_versions_version = version
            return
        raise UnsupportedVersionError(
            f"{self.host}:{self.port} rejected ApiVersions v{version} as well")

    # -- requests --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (cancelled ones included until answered)."""
        return len(self._pending)

    def version_for(self, api_key: int, requested: int | None = None) -> int:
        """The version ``send`` would use for ``api_key`` (see ``choose_version``)."""
        return choose_version(api_key, self.api_versions.get(api_key), requested)

    async def send(self, api_key: int, request: Any, version: int | None = None, *,
                   timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S) -> Any:
        """Send ``request`` (an instance of that API's ``REQUEST.cls``) and return the decoded
        response. ``version`` None picks the highest common version. ``timeout_s`` None waits
        forever. Raises ``KafkaConnectionError``, ``KafkaTimeoutError`` (the connection is then
        closed), ``UnsupportedVersionError``, ``KafkaProtocolError``. Error codes inside the
        response are the caller's to read."""
        v = self.version_for(api_key, version)
        return await self._send(int(api_key), request, v, timeout_s)

    async def send_no_response(self, api_key: int, request: Any, version: int | None = None,
                               *, timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        """Send a request the broker does not answer (Produce with acks=0). Returns once the
        bytes are handed to the socket (waiting while its write buffer is full)."""
        v = self.version_for(api_key, version)
        self._check_open()
        frame = self._encode(int(api_key), request, v)
        self._transport.write(frame)
        if self._write_paused:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._drain()
            except TimeoutError:
                exc = KafkaTimeoutError(f"could not write to {self._where()} within {timeout_s}s")
                self._abort(KafkaConnectionError(f"closed: {exc}", host=self.host,
                                                 port=self.port))
                raise exc from None

    async def _send(self, api_key: int, request: Any, version: int,
                    timeout_s: float | None) -> Any:
        self._check_open()
        if self._slots.locked():  # max_in_flight reached: wait for a slot, within the timeout
            try:
                async with asyncio.timeout(timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise KafkaTimeoutError(
                    f"{API_SPECS[api_key].name} to {self._where()}: no free in-flight slot "
                    f"within {timeout_s}s") from None
        else:
            await self._slots.acquire()
        try:
            self._check_open()
            cid, frame = self._encode_with_cid(api_key, request, version)
            fut: asyncio.Future[Any] = self._loop.create_future()
            pending = _Pending(api_key, version, fut)
            if timeout_s is not None:
                pending.timer = self._loop.call_later(timeout_s, self._on_timeout, cid,
                                                      timeout_s)
            self._pending[cid] = pending
            self._transport.write(frame)
            try:
                return await fut
            finally:
                if pending.timer is not None:
                    pending.timer.cancel()
        finally:
            self._slots.release()

    def _encode_with_cid(self, api_key: int, request: Any, version: int) -> tuple[int, bytes]:
        spec = API_SPECS[api_key]
        cid = next(self._next_cid)
        if cid > _MAX_CORRELATION_ID:
            self._next_cid = itertools.count(1)
            cid = 0
        frame = encode_request(spec.request, request, version, cid, self.client_id,
                               request_header_version(api_key, version))
        return cid, frame

    def _encode(self, api_key: int, request: Any, version: int) -> bytes:
        return self._encode_with_cid(api_key, request, version)[1]

    def _check_open(self) -> None:
        if self._closed:
            why = f": {self.close_reason}" if self.close_reason is not None else ""
            raise KafkaConnectionError(f"connection to {self._where()} is closed{why}",
                                       host=self.host, port=self.port)

    def _where(self) -> str:
        return f"{self.host}:{self.port}" + (f" (node {self.node_id})" if self.node_id >= 0
                                             else "")

    def _on_timeout(self, cid: int, timeout_s: float) -> None:
        pending = self._pending.pop(cid, None)
        if pending is None:
            return
        name = API_SPECS[pending.api_key].name
        exc = KafkaTimeoutError(f"{name} v{pending.version} request to {self._where()} "
                                f"(correlation id {cid}) got no response within {timeout_s}s")
        if not pending.future.done():
            pending.future.set_exception(exc)
        # Responses come in request order: everything behind this one is stuck as well.
        self._abort(KafkaConnectionError(
            f"connection to {self._where()} closed: an earlier request timed out ({exc})",
            host=self.host, port=self.port))

    async def _drain(self) -> None:
        while self._write_paused and not self._closed:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        self._check_open()

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection; pending requests fail with ``KafkaConnectionError``."""
        if not self._closed:
            self._closed = True
            self.close_reason = KafkaConnectionError(
                f"connection to {self._where()} closed by the client", host=self.host,
                port=self.port)
            self._fail_all(self.close_reason)
            if self._transport is not None:
                self._transport.close()
        if self._transport is not None and not self._lost.done():
            try:
                async with asyncio.timeout(_CLOSE_GRACE_S):
                    await asyncio.shield(self._lost)
            except TimeoutError:
                self._transport.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _abort(self, reason: BaseException | None) -> None:
        if not self._closed:
            self._closed = True
            self.close_reason = reason or KafkaConnectionError(
                f"connection to {self._where()} aborted", host=self.host, port=self.port)
            self._fail_all(self.close_reason)
        if self._transport is not None:
            self._transport.abort()

    def _fail_all(self, reason: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer is not None:
                p.timer.cancel()
            if not p.future.done():
                # A fresh exception per request: a shared one would collect tracebacks.
                exc = KafkaConnectionError(str(reason), host=self.host, port=self.port)
                exc.__cause__ = reason if not isinstance(reason, KafkaConnectionError) \
                    else reason.__cause__
                p.future.set_exception(exc)
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._closed = True
            why = f": {exc}" if exc is not None else " by the peer"
            reason = KafkaConnectionError(f"connection to {self._where()} lost{why}",
                                          host=self.host, port=self.port)
            reason.__cause__ = exc
            self.close_reason = reason
            self._fail_all(reason)
        if not self._lost.done():
            self._lost.set_result(None)

    def eof_received(self) -> bool | None:
        return False  # close our side too: connection_lost follows

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while not self._closed and n - pos >= 4:
            (size,) = _I32.unpack_from(buf, pos)
            if size < 4 or size > self.max_response_bytes:
                self._abort(KafkaConnectionError(
                    f"response frame of {size} bytes from {self._where()} is outside 4.."
                    f"{self.max_response_bytes} (max_response_bytes)", host=self.host,
                    port=self.port))
                return
            if n - pos - 4 < size:
                break
            with memoryview(buf) as view:  # one copy, and no export left for the del below
                frame = bytes(view[pos + 4:pos + 4 + size])
            pos += 4 + size
            self._on_frame(frame)
        if pos:
            del buf[:pos]

    def _on_frame(self, frame: bytes) -> None:
        (cid,) = _I32.unpack_from(frame, 0)
        pending = self._pending.pop(cid, None)
        if pending is None:
            self._abort(KafkaConnectionError(
                f"{self._where()} sent a response with correlation id {cid}, which matches no "
                f"request in flight", host=self.host, port=self.port))
            return
        if pending.timer is not None:
            pending.timer.cancel()
        fut = pending.future
        if fut.done():  # the caller gave up (cancelled): drop the late answer
            return
        spec = API_SPECS[pending.api_key]
        version = pending.version
        try:
            _cid, at = parse_response_header(frame, pending.header_version)
            if pending.api_key == _API_VERSIONS and len(frame) >= at + 2 and \
                    _I16.unpack_from(frame, at)[0] == ErrorCode.UNSUPPORTED_VERSION:
                version = 0  # KIP-511: an unsupported ApiVersions version is answered as v0
            response, _end = spec.response.decode(frame, version, at)
        except DecodeError as e:
            fut.set_exception(KafkaProtocolError(
                f"cannot decode {spec.name} v{version} response from {self._where()} "
                f"(correlation id {cid}): {e}"))
            return
        fut.set_result(response)


# -- cluster metadata --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    topic: str
    partition: int
    leader_id: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID | None
    is_internal: bool
    partitions: dict[int, PartitionInfo]
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    """One Metadata answer (``KafkaClient.metadata``) or the client's merged cache
    (``KafkaClient.cluster``)."""

    cluster_id: str | None = None
    controller_id: int = -1
    brokers: dict[int, BrokerInfo] = dataclasses.field(default_factory=dict)
    topics: dict[str, TopicInfo] = dataclasses.field(default_factory=dict)


def _cluster_from_response(resp: Any) -> ClusterMetadata:
    brokers = {b.node_id: BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in resp.brokers}
    topics: dict[str, TopicInfo] = {}
    for t in resp.topics:
        if t.name is None:
            continue  # asked by topic id and unknown: nothing to key it by
        parts = {p.partition_index: PartitionInfo(
            t.name, p.partition_index, p.leader_id, p.leader_epoch, tuple(p.replica_nodes),
            tuple(p.isr_nodes), tuple(p.offline_replicas), p.error_code) for p in t.partitions}
        tid = t.topic_id if t.topic_id is not None and t.topic_id.int else None
        topics[t.name] = TopicInfo(t.name, tid, t.is_internal, parts, t.error_code)
    return ClusterMetadata(resp.cluster_id, resp.controller_id, brokers, topics)


def parse_address(address: str) -> tuple[str, int]:
    """"host:port", "[v6]:port" -> (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad server address {address!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def any_error(response: Any) -> ErrorCode | None:
    """A ``check`` for ``KafkaClient.send_*``: the first non-zero ``error_code`` anywhere in the
    response, non-retriable ones first (so a retry is only asked for when every error found is
    retriable). None when there is none."""
    found: list[int] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item)
            return
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "error_code":
                if value:
                    found.append(value)
            elif isinstance(value, list) or dataclasses.is_dataclass(value):
                walk(value)

    walk(response)
    if not found:
        return None
    for code in found:
        if not error_for_code(code).retriable:
            return _as_error_code(code)
    return _as_error_code(found[0])


def _as_error_code(code: int) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.UNKNOWN_SERVER_ERROR


Check = Callable[[Any], "int | None"]
"""``check(response)`` -> an error code to act on (retry if retriable, else raise), or
None/0 when the response is good. It may also raise a ``KafkaError`` itself."""


@dataclass(slots=True)
class ClientStats:
    """Counters for tests and tools."""

    requests: int = 0  # attempts sent by send_* (retries included)
    retries: int = 0
    metadata_refreshes: int = 0
    connections_opened: int = 0


# -- the cluster client ------------------------------------------------------------------------


class KafkaClient:
    """A Kafka cluster seen through its broker listeners.

    Build it with ``await KafkaClient.bootstrap(["host:port", ...], client_id=...)``.
    ``request_timeout_s`` bounds each attempt; ``api_timeout_s`` the whole call with its
    retries; ``retries`` (None: unlimited) the number of retries. Backoff between attempts is
    ``retry_backoff_ms * 2**n`` capped at ``retry_backoff_max_ms``, with +-20% jitter.
    """

    def __init__(self, bootstrap_servers: Sequence[str], *, client_id: str = "pykraft",
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 api_timeout_s: float = DEFAULT_API_TIMEOUT_S,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 retry_backoff_ms: int = DEFAULT_RETRY_BACKOFF_MS,
                 retry_backoff_max_ms: int = DEFAULT_RETRY_BACKOFF_MAX_MS,
                 retries: int | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 rng: random.Random | None = None) -> None:
        if not bootstrap_servers:
            raise ValueError("at least one bootstrap server is required")
        self.bootstrap_servers = [parse_address(s) for s in bootstrap_servers]
        self.client_id = client_id
        self.request_timeout_s = request_timeout_s
        self.api_timeout_s = api_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = max(retry_backoff_max_ms, retry_backoff_ms)
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        self.max_in_flight = max_in_flight
        self.cluster = ClusterMetadata()
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._connections: dict[int, KafkaConnection] = {}
        self._connect_locks: dict[int, asyncio.Lock] = {}
        self._failed_at: dict[int, float] = {}  # node -> loop time of its last connect failure
        self._interest: set[str] = set()  # topics refreshed between retries
        self._refresh_lock = asyncio.Lock()
        self._refresh_generation = 0
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    async def bootstrap(cls, servers: Sequence[str], **kwargs: Any) -> KafkaClient:
        """A client that has fetched cluster metadata from the first of ``servers`` to answer
        (tried in order, rounds repeated with backoff until ``api_timeout_s``)."""
        client = cls(servers, **kwargs)
        try:
            await client._bootstrap()
        except BaseException:
            await client.close()
            raise
        return client

    async def _bootstrap(self) -> None:
        deadline = self._loop.time() + self.api_timeout_s
        errors: list[str] = []
        attempt = 0
        while True:
            for host, port in self.bootstrap_servers:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    conn = await KafkaConnection.connect(
                        host, port, client_id=self.client_id,
                        timeout_s=min(self.connect_timeout_s, remaining),
                        max_response_bytes=self.max_response_bytes,
                        max_in_flight=self.max_in_flight)
                except (KafkaConnectionError, KafkaError) as e:
                    errors.append(f"{host}:{port}: {e}")
                    continue
                self.stats.connections_opened += 1
                try:
                    await self._metadata_on(conn, [], False,
                                            min(self.request_timeout_s, remaining))
                except (KafkaConnectionError, KafkaTimeoutError, KafkaError,
                        KafkaProtocolError) as e:
                    errors.append(f"{host}:{port}: {e}")
                    await conn.close()
                    continue
                self._adopt_bootstrap_connection(conn)
                return
            attempt += 1
            remaining = deadline - self._loop.time()
            if remaining <= 0 or (self.retries is not None and attempt > self.retries):
                raise NoBrokersAvailableError(
                    "no bootstrap server answered: " + "; ".join(errors[-len(
                        self.bootstrap_servers):]))
            await asyncio.sleep(min(self._backoff_s(attempt), remaining))

    def _adopt_bootstrap_connection(self, conn: KafkaConnection) -> None:
        """Keep the bootstrap connection if it reaches a broker the metadata names."""
        for b in self.cluster.brokers.values():
            if (b.host, b.port) == (conn.host, conn.port) and b.node_id not in self._connections:
                conn.node_id = b.node_id
                self._connections[b.node_id] = conn
                return
        self._spawn(conn.close())

    # -- metadata --------------------------------------------------------------------------

    async def metadata(self, topics: Iterable[str] | None = None,
                       allow_auto_topic_creation: bool = False, *,
                       timeout_s: float | None = None) -> ClusterMetadata:
        """Fetch Metadata from any broker (with retries); merge it into ``cluster`` and return
        this answer. ``topics`` None: every topic; a list: those (errors per topic are in
        ``TopicInfo.error_code``; the cache drops topics reported unknown)."""
        names = None if topics is None else list(topics)
        return await self._retrying(
            "Metadata", self._pick_any,
            lambda conn, t: self._metadata_on(conn, names, allow_auto_topic_creation, t),
            None, timeout_s, refresh=False)

    async def _metadata_on(self, conn: KafkaConnection, topics: list[str] | None,
                           auto_create: bool, timeout_s: float) -> ClusterMetadata:
        req_schema = _metadata.REQUEST
        version = conn.version_for(ApiKey.METADATA)
        req_topics: list[Any] | None
        if topics is None:
            req_topics = [] if version == 0 else None
        else:
            req_topics = [req_schema.MetadataRequestTopic(name=t) for t in topics]
        # Before v4 brokers decide auto-creation themselves; the field is absent (default True).
        req = req_schema.cls(topics=req_topics,
                             allow_auto_topic_creation=auto_create or version < 4)
        resp = await conn.send(ApiKey.METADATA, req, version, timeout_s=timeout_s)
        self.stats.metadata_refreshes += 1
        answer = _cluster_from_response(resp)
        self._merge(answer, full=topics is None)
        return answer

    def _merge(self, answer: ClusterMetadata, *, full: bool) -> None:
        if full:
            topics = {}
        else:
            topics = dict(self.cluster.topics)
        for name, t in answer.topics.items():
            if t.error_code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                ErrorCode.INVALID_TOPIC_EXCEPTION,
                                ErrorCode.TOPIC_AUTHORIZATION_FAILED):
                topics.pop(name, None)
            elif t.error_code == ErrorCode.LEADER_NOT_AVAILABLE and not t.partitions:
                topics.pop(name, None)  # being created: no partitions yet
            else:
                topics[name] = t
        self.cluster = ClusterMetadata(answer.cluster_id, answer.controller_id,
                                       dict(answer.brokers), topics)
        for node_id in list(self._connections):
            b = answer.brokers.get(node_id)
            conn = self._connections[node_id]
            if b is None or (b.host, b.port) != (conn.host, conn.port):
                # Gone or moved: drop the connection once its requests are answered.
                del self._connections[node_id]
                self._spawn(_close_when_idle(conn))

    async def _refresh_for_retry(self, timeout_s: float) -> None:
        """One metadata refresh for the topics we route by; concurrent callers share it."""
        generation = self._refresh_generation
        async with self._refresh_lock:
            if generation != self._refresh_generation:
                return  # someone refreshed while we waited
            try:
                node = self._pick_any()
                conn = await self._connection(node, timeout_s)
                await self._metadata_on(conn, sorted(self._interest), False, timeout_s)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, KafkaProtocolError) as e:
                logger.debug("metadata refresh failed: %s", e)
                if isinstance(e, KafkaConnectionError | KafkaTimeoutError):
                    await self._rebootstrap(timeout_s)
            finally:
                self._refresh_generation += 1

    async def _rebootstrap(self, timeout_s: float) -> None:
        """Every known broker looks unreachable: ask the bootstrap servers once."""
        if any(not c.closed for c in self._connections.values()):
            return
        for host, port in self.bootstrap_servers:
            try:
                conn = await KafkaConnection.connect(
                    host, port, client_id=self.client_id,
                    timeout_s=min(self.connect_timeout_s, timeout_s),
                    max_response_bytes=self.max_response_bytes,
                    max_in_flight=self.max_in_flight)
            except (KafkaConnectionError, KafkaError):
                continue
            self.stats.connections_opened += 1
            try:
                await self._metadata_on(conn, sorted(self._interest), False, timeout_s)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, KafkaProtocolError):
                await conn.close()
                continue
            self._adopt_bootstrap_connection(conn)
            return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- connections -----------------------------------------------------------------------

    async def connection(self, node_id: int) -> KafkaConnection:
        """The pooled connection to broker ``node_id`` (connecting if needed)."""
        return await self._connection(node_id, self.connect_timeout_s)

    async def _connection(self, node_id: int, timeout_s: float) -> KafkaConnection:
        self._check_open()
        conn = self._connections.get(node_id)
        if conn is not None and not conn.closed:
            return conn
        lock = self._connect_locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            conn = self._connections.get(node_id)
            if conn is not None and not conn.closed:
                return conn
            broker = self.cluster.brokers.get(node_id)
            if broker is None:
                raise KafkaConnectionError(f"node {node_id} is not in the cluster metadata")
            try:
                conn = await KafkaConnection.connect(
                    broker.host, broker.port, client_id=self.client_id,
                    timeout_s=min(self.connect_timeout_s, timeout_s), node_id=node_id,
                    max_response_bytes=self.max_response_bytes,
                    max_in_flight=self.max_in_flight)
            except KafkaConnectionError:
                self._failed_at[node_id] = self._loop.time()
                raise
            self._check_open()
            self.stats.connections_opened += 1
            self._failed_at.pop(node_id, None)
            self._connections[node_id] = conn
            return conn

    def _pick_any(self) -> int:
        """The least loaded broker: connected ones first (fewest in flight), then those that
        did not fail recently, in random order (Kafka's ``leastLoadedNode``)."""
        brokers = list(self.cluster.brokers)
        if not brokers:
            raise NoBrokersAvailableError("the cluster metadata lists no brokers")
        self._rng.shuffle(brokers)

        def load(node: int) -> tuple[int, float, int]:
            conn = self._connections.get(node)
            if conn is not None and not conn.closed:
                return (0, 0.0, conn.in_flight)
            return (1, self._failed_at.get(node, float("-inf")), 0)

        return min(brokers, key=load)

    # -- sending ---------------------------------------------------------------------------

    async def send_to(self, node_id: int, api_key: int, request: Any,
                      version: int | None = None, *, check: Check | None = None,
                      timeout_s: float | None = None) -> Any:
        """Send to broker ``node_id``, retrying retriable failures (see the module doc)."""
        return await self._send_retrying(lambda: node_id, api_key, request, version, check,
                                         timeout_s)

    async def send_to_any(self, api_key: int, request: Any, version: int | None = None, *,
                          check: Check | None = None, timeout_s: float | None = None) -> Any:
        """Send to the least loaded broker, retrying (another broker may be picked)."""
        return await self._send_retrying(self._pick_any, api_key, request, version, check,
                                         timeout_s)

    async def send_to_controller(self, api_key: int, request: Any, version: int | None = None,
                                 *, check: Check | None = None,
                                 timeout_s: float | None = None) -> Any:
        """Send to the controller id from Metadata (admin requests, as librdkafka does); a
        NOT_CONTROLLER answer (through ``check``) refreshes metadata and retries."""
        def pick() -> int:
            node = self.cluster.controller_id
            if node < 0 or node not in self.cluster.brokers:
                raise NotControllerError(f"no known controller (controller id {node})")
            return node

        return await self._send_retrying(pick, api_key, request, version, check, timeout_s)

    async def send_to_leader(self, topic: str, partition: int, api_key: int, request: Any,
                             version: int | None = None, *, check: Check | None = None,
                             timeout_s: float | None = None) -> Any:
        """Send to the leader of ``topic``/``partition`` from the cached metadata (fetching
        metadata for the topic first if needed); retries NOT_LEADER_OR_FOLLOWER and friends
        (when ``check`` reports them) after a refresh."""
        self._interest.add(topic)

        def pick() -> int:
            t = self.cluster.topics.get(topic)
            if t is None:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} is not in the metadata")
            p = t.partitions.get(partition)
            if p is None:
                raise UnknownTopicOrPartitionError(
                    f"partition {topic}-{partition} is not in the metadata")
            if p.leader_id < 0 or p.leader_id not in self.cluster.brokers:
                raise LeaderNotAvailableError(f"{topic}-{partition} has no leader "
                                              f"(leader id {p.leader_id})")
            return p.leader_id

        if topic not in self.cluster.topics:
            # One try, errors swallowed: the retry loop below reports them, with its deadline.
            await self._refresh_for_retry(min(self.request_timeout_s,
                                              self.api_timeout_s if timeout_s is None
                                              else timeout_s))
        return await self._send_retrying(pick, api_key, request, version, check, timeout_s)

    def leader_for(self, topic: str, partition: int) -> int:
        """The cached leader id of a partition (-1 when unknown)."""
        t = self.cluster.topics.get(topic)
        p = t.partitions.get(partition) if t is not None else None
        return p.leader_id if p is not None else -1

    async def _send_retrying(self, pick: Callable[[], int], api_key: int, request: Any,
                             version: int | None, check: Check | None,
                             timeout_s: float | None) -> Any:
        spec = API_SPECS.get(api_key)
        if spec is None:
            raise UnknownApiKeyError(f"no schema for API key {api_key}")

        async def attempt(conn: KafkaConnection, t: float) -> Any:
            return await conn.send(api_key, request, version, timeout_s=t)

        return await self._retrying(spec.name, pick, attempt, check, timeout_s)

    async def _retrying(self, what: str, pick: Callable[[], int],
                        attempt: Callable[[KafkaConnection, float], Awaitable[Any]],
                        check: Check | None, timeout_s: float | None, *,
                        refresh: bool = True) -> Any:
        loop = self._loop
        total_s = self.api_timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + total_s
        attempts = 0
        while True:
            self._check_open()
            attempts += 1
            remaining = deadline - loop.time()
            node = -1
            error: BaseException
            try:
                node = pick()
                conn = await self._connection(node, remaining)
                self.stats.requests += 1
                response = await attempt(conn, min(self.request_timeout_s,
                                                   max(deadline - loop.time(), 0.001)))
                if check is None:
                    return response
                code = check(response)
                if not code:
                    return response
                cls = error_for_code(code)
                raise cls(f"{what} to node {node} (attempt {attempts}): {cls.message}")
            except KafkaError as e:
                if not e.retriable:
                    raise
                error = e
            except (KafkaConnectionError, KafkaTimeoutError) as e:
                error = e
                if isinstance(e, KafkaConnectionError) and node >= 0:
                    self._failed_at[node] = loop.time()
            remaining = deadline - loop.time()
            if self.retries is not None and attempts > self.retries:
                raise error
            if remaining <= 0:
                raise KafkaTimeoutError(
                    f"{what}: gave up after {attempts} attempt(s) within the {total_s:.3g}s "
                    f"deadline; last error: {error}", last_error=error,
                    attempts=attempts) from error
            logger.debug("%s attempt %d failed (%s); retrying", what, attempts, error)
            self.stats.retries += 1
            await asyncio.sleep(min(self._backoff_s(attempts), remaining))
            if refresh or isinstance(error, KafkaConnectionError):
                remaining = deadline - loop.time()
                if remaining > 0:
                    await self._refresh_for_retry(min(self.request_timeout_s, remaining))

    def _backoff_s(self, attempt: int) -> float:
        base = min(self.retry_backoff_ms * 2 ** min(attempt - 1, 30), self.retry_backoff_max_ms)
        return base * (1 + self._rng.uniform(-_RETRY_JITTER, _RETRY_JITTER)) / 1000

    # -- helpers for tools -----------------------------------------------------------------

    async def api_versions(self, node_id: int) -> dict[int, tuple[int, int]]:
        """The API -> (min, max) versions broker ``node_id`` advertises."""
        return dict((await self.connection(node_id)).api_versions)

    async def list_topics(self, *, include_internal: bool = False) -> dict[str, TopicInfo]:
        """Every topic in the cluster (a full metadata refresh)."""
        answer = await self.metadata(None)
        return {name: t for name, t in sorted(answer.topics.items())
                if not t.error_code and (include_internal or not t.is_internal)}

    # -- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaConnectionError("the client is closed")

    async def close(self) -> None:
        """Close every connection (pending requests fail with ``KafkaConnectionError``)."""
        self._closed = True
        conns, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _close_when_idle(conn: KafkaConnection, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while conn.in_flight and not conn.closed and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await conn.close()
