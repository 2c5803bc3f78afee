"""One TCP connection to a Kafka listener: ``KafkaConnection`` (pipelined requests matched by
correlation id, ApiVersions negotiation on connect, timeouts that close the connection) and
``choose_version``, the per-API version pick both sides support."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from typing import Any, Self

from broker.client.errors import (
    KafkaAuthenticationError,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
)
from broker.client.security import ClientSecurity, SecurityError, sasl_login
from broker.protocol.api_keys import (
    API_SPECS,
    ApiKey,
    UnknownApiKeyError,
    request_header_version,
    response_header_version,
)
from broker.protocol.errors import ErrorCode, UnsupportedVersionError, error_for_code
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import api_versions as _api_versions
from kraft.codec import DecodeError

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
_CLOSE_GRACE_S = 1.0  # close() waits this long for the transport before aborting it
_MAX_CORRELATION_ID = (1 << 31) - 1

_API_VERSIONS = int(ApiKey.API_VERSIONS)
_AV_MAX = 3  # the ApiVersions version we send first (what librdkafka sends)
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


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
                      max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                      security: ClientSecurity | None = None) -> KafkaConnection:
        """Connect and negotiate versions within ``timeout_s``; ``KafkaConnectionError`` when
        the peer cannot be reached or does not answer ApiVersions in time. ``security``: TLS
        and a SASL login (``broker/client/security.py``), done before returning."""
        conn = cls(host, port, client_id=client_id, node_id=node_id,
                   max_response_bytes=max_response_bytes, max_in_flight=max_in_flight)
        loop = conn._loop
        where = f"{host}:{port}" + (f" (node {node_id})" if node_id >= 0 else "")
        try:
            async with asyncio.timeout(timeout_s):
                ctx = None if security is None else security.ssl_context
                await loop.create_connection(lambda: conn, host, port, ssl=ctx,
                                             server_hostname=host if ctx else None)
        except TimeoutError:
            conn._abort(None)
            raise KafkaConnectionError(f"timed out connecting to {where} after {timeout_s}s",
                                       host=host, port=port) from None
        except OSError as e:
            raise KafkaConnectionError(f"cannot connect to {where}: {e}",
                                       host=host, port=port) from e
        try:
            await conn._negotiate(timeout_s)
            if security is not None and security.mechanism is not None:
                try:
                    await sasl_login(conn, security, timeout_s)
                except SecurityError as e:
                    raise KafkaAuthenticationError(str(e), host=host, port=port) from e
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
