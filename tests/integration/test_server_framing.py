"""The network server over real sockets: framing, ApiVersions, pipelining, limits, fuzzing.

One server runs in a background thread with its own event loop (uvloop when installed), with a
broker listener and a controller listener; the tests talk to it with blocking sockets. Its test
handler wraps ``ApiDispatcher`` (whose Metadata handler answers synchronously) and reacts to
special Metadata topic names with a coroutine instead: "__sleep_<ms>" (answer late), "__gate"
(wait until the test opens the gate), "__raise" (handler bug in the task), "__noreply" (no
response, like Produce acks=0), "__close" (CLOSE from the task: no response, close the
connection, like a failed Produce with acks=0), "__async" (a coroutine that never suspends);
"__raise_sync" raises before returning anything; "__close_sync" returns CLOSE at once.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.network.context import ListenerSpec, RequestContext
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import new_event_loop
from broker.network.server import CLOSE, KafkaServer
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import api_versions, metadata

AV_REQ, AV_RESP = api_versions.REQUEST, api_versions.RESPONSE
MD_REQ, MD_RESP = metadata.REQUEST, metadata.RESPONSE
MAX_IN_FLIGHT = 100
MAX_REQUEST_BYTES = 1 << 20
TIMEOUT_S = 10.0


class ServerThread:
    """A KafkaServer on its own loop in a daemon thread."""

    def __init__(self, **server_kwargs: Any) -> None:
        self.dispatcher = ApiDispatcher(node_id=1, cluster_id="test-cluster")
        advertised = {**self.dispatcher.advertised, ApiKey.VOTE: (0, 1)}
        self.server = KafkaServer(
            [ListenerSpec("PLAINTEXT", kind="broker"),
             ListenerSpec("CONTROLLER", kind="controller")],
            self.handle, advertised=advertised, **server_kwargs)
        self.loop = new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        self.gate: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(TIMEOUT_S), "server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self._stop = asyncio.Event()
        await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def handle(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        """Synchronous for ordinary requests (the server's fast path), a coroutine for the
        special topic names (the task path)."""
        if header.api_key == ApiKey.METADATA and request.topics:
            name = request.topics[0].name or ""
            if name == "__raise_sync":
                raise RuntimeError("handler bug before any await (on purpose)")
            if name == "__close_sync":
                return CLOSE
            if name.startswith("__"):
                return self.special(name, ctx, header, request)
        return self.dispatcher.handle(ctx, header, request)

    async def special(self, name: str, ctx: RequestContext, header: Any, request: Any) -> Any:
        if name.startswith("__sleep_"):
            await asyncio.sleep(int(name[8:]) / 1000)
        elif name == "__gate":
            assert self.gate is not None
            await self.gate.wait()
        elif name == "__raise":
            raise RuntimeError("handler bug (on purpose)")
        elif name == "__noreply":
            return None
        elif name == "__close":
            return CLOSE
        elif name == "__async":
            pass  # an async handler that never suspends
        return self.dispatcher.handle(ctx, header, request)

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def port(self, listener: str = "PLAINTEXT") -> int:
        return self.server.port(listener)

    def close(self) -> None:
        assert self._stop is not None
        self.call(self._stop.set)
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive(), "server did not stop"


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    s = ServerThread(max_in_flight=MAX_IN_FLIGHT, max_request_bytes=MAX_REQUEST_BYTES)
    yield s
    s.close()
    assert s.server.connection_count == 0
    assert not s.loop_errors, s.loop_errors


@pytest.fixture(scope="module")
def good_connection(srv: ServerThread) -> Iterator[socket.socket]:
    """A well-behaved client that stays connected while others misbehave."""
    with connect(srv.port()) as s:
        yield s


_good_ids = iter(range(1 << 30, 1 << 31))


def assert_healthy(srv: ServerThread, good: socket.socket) -> None:
    check_api_versions(good, next(_good_ids))
    assert srv.thread.is_alive()
    assert not srv.loop_errors, srv.loop_errors


# -- a tiny blocking client ------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, size)


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = bytearray()
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def api_versions_frame(version: int, correlation_id: int, client_id: str | None = "test",
                       name: str = "pytest", software_version: str = "1.0") -> bytes:
    req = AV_REQ.cls(client_software_name=name, client_software_version=software_version) \
        if version >= 3 else AV_REQ.cls()
    return encode_request(AV_REQ, req, version, correlation_id, client_id,
                          2 if version >= 3 else 1)


def metadata_frame(version: int, correlation_id: int, topics: list[str] | None = None) -> bytes:
    req = MD_REQ.cls(topics=None if topics is None and version >= 1 else
                     [MD_REQ.MetadataRequestTopic(name=t) for t in topics or []])
    return encode_request(MD_REQ, req, version, correlation_id, "test", 2 if version >= 9 else 1)


def decode_api_versions(frame: bytes, version: int) -> tuple[int, Any]:
    cid, pos = parse_response_header(frame, 0)  # always header v0
    body, end = AV_RESP.decode(frame, version, pos)
    assert end == len(frame)
    return cid, body


def decode_metadata(frame: bytes, version: int) -> tuple[int, Any]:
    cid, pos = parse_response_header(frame, 1 if version >= 9 else 0)
    body, end = MD_RESP.decode(frame, version, pos)
    assert end == len(frame)
    return cid, body


def check_api_versions(s: socket.socket, correlation_id: int, version: int = 3) -> Any:
    s.sendall(api_versions_frame(version, correlation_id))
    cid, body = decode_api_versions(recv_frame(s), version)
    assert cid == correlation_id
    assert body.error_code == 0
    return body


def wait_for(cond: Any, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def assert_closed_by_server(s: socket.socket) -> bytes:
    data = read_until_closed(s)
    s.close()
    return data


# -- ApiVersions ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_each_version(srv: ServerThread, version: int) -> None:
    with connect(srv.port()) as s:
        body = check_api_versions(s, 1000 + version, version)
    listed = {a.api_key: (a.min_version, a.max_version) for a in body.api_keys}
    assert listed == srv.server.advertised_for("PLAINTEXT")
    assert listed[ApiKey.API_VERSIONS] == (0, 4)
    assert listed[ApiKey.METADATA] == (0, 13)
    assert ApiKey.VOTE not in listed  # controller-only
    assert [a.api_key for a in body.api_keys] == sorted(listed)
    if version >= 1:
        assert body.throttle_time_ms == 0
    if version >= 3:
        assert body.supported_features == [] and body.finalized_features == []


@pytest.mark.parametrize("version", [5, 99, 32767])
def test_api_versions_unsupported_version_gets_error_35_with_v0_body(
        srv: ServerThread, version: int) -> None:
    frame = bytearray(api_versions_frame(3, 77))
    struct.pack_into(">h", frame, 6, version)
    with connect(srv.port()) as s:
        s.sendall(frame)
        cid, body = decode_api_versions(recv_frame(s), 0)
        assert cid == 77
        assert body.error_code == ErrorCode.UNSUPPORTED_VERSION == 35
        assert [(a.api_key, a.min_version, a.max_version) for a in body.api_keys] == \
            [(ApiKey.API_VERSIONS, 0, 4)]
        check_api_versions(s, 78)  # the connection stays usable, as clients then retry


def test_api_versions_invalid_software_name_gets_invalid_request(srv: ServerThread) -> None:
    with connect(srv.port()) as s:
        s.sendall(api_versions_frame(3, 5, name="bad name!"))
        cid, body = decode_api_versions(recv_frame(s), 3)
        assert (cid, body.error_code, body.api_keys) == (5, ErrorCode.INVALID_REQUEST, [])
        check_api_versions(s, 6)


def test_api_versions_null_client_id(srv: ServerThread) -> None:
    with connect(srv.port()) as s:
        s.sendall(api_versions_frame(1, 9, client_id=None))
        assert decode_api_versions(recv_frame(s), 1)[1].error_code == 0


def test_controller_listener_advertises_controller_apis(srv: ServerThread) -> None:
    with connect(srv.port("CONTROLLER")) as s:
        body = check_api_versions(s, 1)
    listed = {a.api_key: (a.min_version, a.max_version) for a in body.api_keys}
    assert listed == {ApiKey.API_VERSIONS: (0, 4), ApiKey.VOTE: (0, 1)}


# -- Metadata through the handler ----------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 4, 9, 12])
def test_metadata_empty_cluster(srv: ServerThread, version: int) -> None:
    with connect(srv.port()) as s:
        s.sendall(metadata_frame(version, 42, ["missing"]))
        cid, body = decode_metadata(recv_frame(s), version)
    assert cid == 42
    assert [(b.node_id, b.host, b.port) for b in body.brokers] == [(1, "127.0.0.1", srv.port())]
    assert [(t.name, t.error_code) for t in body.topics] == \
        [("missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    if version >= 2:
        assert body.cluster_id == "test-cluster"


# -- pipelining and ordering ------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(srv: ServerThread) -> None:
    frames = []
    expected = []
    for i in range(100):
        if i % 3 == 0:
            frames.append(api_versions_frame(i % 4, i))
            expected.append(("av", i, i % 4))
        elif i % 3 == 1:
            # later requests finish first: ordering must not follow completion
            frames.append(metadata_frame(4, i, [f"__sleep_{(100 - i) // 4}"]))
            expected.append(("md", i, 4))
        elif i % 2:
            frames.append(metadata_frame(12, i, ["__async"]))
            expected.append(("md", i, 12))
        else:
            frames.append(metadata_frame(12, i))
            expected.append(("md", i, 12))
    with connect(srv.port()) as s:
        s.sendall(b"".join(frames))
        for kind, cid, version in expected:
            frame = recv_frame(s)
            got_cid, _ = (decode_api_versions(frame, version) if kind == "av"
                          else decode_metadata(frame, version))
            assert got_cid == cid
        check_api_versions(s, 1000)


def test_no_response_requests_keep_order(srv: ServerThread) -> None:
    with connect(srv.port()) as s:
        s.sendall(metadata_frame(4, 1, ["__sleep_30"]) + metadata_frame(4, 2, ["__noreply"])
                  + metadata_frame(4, 3))
        assert [decode_metadata(recv_frame(s), 4)[0] for _ in range(2)] == [1, 3]


@pytest.mark.parametrize("closer", ["__close_sync", "__close"])
@pytest.mark.parametrize("first", [None, "__sleep_50", "__async"])
def test_close_answers_earlier_requests_then_closes(srv: ServerThread, first: str | None,
                                                    closer: str) -> None:
    """A handler's CLOSE (Kafka's closeConnection, e.g. a failed Produce with acks=0): the
    requests before it are answered, it is not, the connection closes, and the requests
    pipelined after it are never handled."""
    before = srv.server.stats.requests
    with connect(srv.port()) as s:
        s.sendall(metadata_frame(4, 1, [first] if first else None)
                  + metadata_frame(4, 2, [closer]) + metadata_frame(4, 3, ["__sleep_1"])
                  + api_versions_frame(0, 4))
        assert decode_metadata(recv_frame(s), 4)[0] == 1
        assert read_until_closed(s) == b""
    if closer == "__close_sync":  # a task's CLOSE may come after later frames were parsed
        assert srv.server.stats.requests - before == 2
    wait_for(lambda: srv.server.in_flight() == 0, "no request left in flight")


# -- backpressure -----------------------------------------------------------------------------


def test_in_flight_bound_pauses_reading(srv: ServerThread) -> None:
    assert srv.gate is not None
    srv.call(srv.gate.clear)
    srv.server.stats.max_in_flight_seen = 0
    n = 1000
    frames = b"".join(metadata_frame(4, i, ["__gate"]) for i in range(n))
    try:
        with connect(srv.port()) as s:
            s.sendall(frames)  # ~40 KB: fits in the socket buffers, the server reads at will
            wait_for(lambda: srv.server.in_flight() == MAX_IN_FLIGHT, "the in-flight bound")
            time.sleep(0.2)  # had it not paused, it would now hold more
            assert srv.server.in_flight() == MAX_IN_FLIGHT
            assert srv.server.stats.max_in_flight_seen == MAX_IN_FLIGHT
            srv.call(srv.gate.set)
            cids = [decode_metadata(recv_frame(s), 4)[0] for _ in range(n)]
            assert cids == list(range(n))
            assert srv.server.stats.max_in_flight_seen <= MAX_IN_FLIGHT
            check_api_versions(s, 5000)
    finally:
        srv.call(srv.gate.set)


def test_write_backpressure_pauses_reading() -> None:
    """A client that sends much and reads nothing: the server stops reading once its write
    buffer is over the high-water mark, and everything arrives once the client reads."""
    st_ = ServerThread(write_buffer_high=64 << 10, write_buffer_low=16 << 10)
    try:
        topics = [f"topic-{i:04d}-{'x' * 40}" for i in range(200)]  # ~10 KB per response
        frame = metadata_frame(4, 0, topics)
        n = 1500  # ~15 MB of responses; loopback socket buffers took ~3.5 MB here
        with connect(st_.port()) as s:
            sender = threading.Thread(
                target=lambda: s.sendall(b"".join(frame[:8] + struct.pack(">i", i) + frame[12:]
                                                  for i in range(n))), daemon=True)
            sender.start()
            wait_for(lambda: st_.server.stats.read_pauses > 0, "a read pause")
            time.sleep(0.3)
            handled = st_.server.stats.requests
            assert handled < n, "the server kept reading while the client did not"
            for i in range(n):
                assert parse_response_header(recv_frame(s), 0)[0] == i
            sender.join(TIMEOUT_S)
    finally:
        st_.close()
    assert not st_.loop_errors, st_.loop_errors


# -- listeners and versions ---------------------------------------------------------------------


def test_disallowed_api_on_controller_listener_closes_connection(srv: ServerThread) -> None:
    before = srv.server.stats.protocol_errors
    with connect(srv.port("CONTROLLER")) as s:
        check_api_versions(s, 1)
        s.sendall(metadata_frame(4, 2))  # Metadata is a broker-listener API
        assert assert_closed_by_server(s) == b""
    assert srv.server.stats.protocol_errors == before + 1
    with connect(srv.port("CONTROLLER")) as s:
        check_api_versions(s, 3)  # the listener still serves others


@pytest.mark.parametrize(("api_key", "version"), [
    (999, 0),  # unknown key
    (4, 0),  # LeaderAndIsr: known to Kafka, no schema here
    (ApiKey.VOTE, 0),  # controller-only API on the broker listener
    (ApiKey.PRODUCE, 3),  # has a schema, not advertised
    (ApiKey.METADATA, 13),  # above the advertised range
    (ApiKey.METADATA, -1),
])
def test_unknown_disallowed_or_unsupported_closes_connection(
        srv: ServerThread, good_connection: socket.socket, api_key: int, version: int) -> None:
    frame = bytearray(metadata_frame(4, 7))
    struct.pack_into(">hh", frame, 4, api_key, version)
    with connect(srv.port()) as s:
        check_api_versions(s, 1)
        s.sendall(frame)
        assert assert_closed_by_server(s) == b""
    assert_healthy(srv, good_connection)


def test_answers_before_a_bad_frame_are_delivered(srv: ServerThread) -> None:
    with connect(srv.port()) as s:
        s.sendall(api_versions_frame(0, 1) + struct.pack(">i", -5))
        data = assert_closed_by_server(s)
    (size,) = struct.unpack_from(">i", data)
    assert decode_api_versions(data[4:4 + size], 0)[0] == 1
    assert len(data) == 4 + size


def test_undecodable_body_closes_connection(srv: ServerThread,
                                            good_connection: socket.socket) -> None:
    body = struct.pack(">i", 1000)  # Metadata v1: 1000 topics, no bytes for them
    header = struct.pack(">hhih", ApiKey.METADATA, 1, 3, 0)
    with connect(srv.port()) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        assert assert_closed_by_server(s) == b""
    assert_healthy(srv, good_connection)


def test_protocol_error_logs_one_warning_with_peer(srv: ServerThread,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="broker.network.server"), connect(srv.port()) as s:
        host, port = s.getsockname()[:2]
        peer = f"{host}:{port}"
        s.sendall(struct.pack(">i", -1) + struct.pack(">i", 0) + b"junk")
        assert_closed_by_server(s)
        wait_for(lambda: any(peer in r.getMessage() for r in caplog.records), "the warning")
        time.sleep(0.05)
    mine = [r for r in caplog.records if peer in r.getMessage()]
    assert len(mine) == 1 and mine[0].levelname == "WARNING", mine
    assert "request size -1" in mine[0].getMessage()


@pytest.mark.parametrize("topic", ["__raise", "__raise_sync"])
def test_handler_exception_closes_only_that_connection(srv: ServerThread, topic: str) -> None:
    before = srv.server.stats.handler_errors
    with connect(srv.port()) as good, connect(srv.port()) as bad:
        bad.sendall(metadata_frame(4, 1, [topic]))
        assert assert_closed_by_server(bad) == b""
        check_api_versions(good, 2)
    assert srv.server.stats.handler_errors == before + 1


def test_frame_split_byte_by_byte(srv: ServerThread, good_connection: socket.socket) -> None:
    frame = metadata_frame(12, 31, ["a", "b"]) + api_versions_frame(3, 32)
    with connect(srv.port()) as s:
        for i in range(len(frame)):
            s.sendall(frame[i:i + 1])
            time.sleep(0.001)
            if i % 16 == 0:
                assert_healthy(srv, good_connection)  # a slow client blocks nobody
        assert decode_metadata(recv_frame(s), 12)[0] == 31
        assert decode_api_versions(recv_frame(s), 3)[0] == 32


@pytest.mark.parametrize("prefix", [
    struct.pack(">i", 0),
    struct.pack(">i", -1),
    struct.pack(">i", -(1 << 31)),
    struct.pack(">i", MAX_REQUEST_BYTES + 1),
    struct.pack(">i", (1 << 31) - 1),
    struct.pack(">i", 4) + b"\x00\x12\x00\x00",  # shorter than a request header
])
def test_bad_sizes_close_connection(srv: ServerThread, good_connection: socket.socket,
                                    prefix: bytes) -> None:
    with connect(srv.port()) as s:
        s.sendall(prefix)  # no half-close: the size alone must be enough to reject it
        assert assert_closed_by_server(s) == b""
    assert_healthy(srv, good_connection)


def test_max_size_frame_is_accepted(srv: ServerThread) -> None:
    frame = bytearray(metadata_frame(4, 9))
    padding = MAX_REQUEST_BYTES - (len(frame) - 4)
    big = frame + bytes(padding)  # trailing bytes after the body are ignored, as in Kafka
    struct.pack_into(">i", big, 0, MAX_REQUEST_BYTES)
    with connect(srv.port()) as s:
        s.sendall(big)
        assert decode_metadata(recv_frame(s), 4)[0] == 9


# -- fuzzing ----------------------------------------------------------------------------------

_VALID = [api_versions_frame(v, 1) for v in range(4)] + \
    [metadata_frame(v, 2, ["topic-a", "b"]) for v in (0, 1, 4, 9, 12)]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "resize", "header"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del frame[draw(st.integers(0, len(frame))):]
        elif op == "insert":
            i = draw(st.integers(0, len(frame)))
            frame[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "resize" and len(frame) >= 4:
            struct.pack_into(">i", frame, 0, draw(st.integers(-(1 << 31), (1 << 31) - 1)))
        elif op == "header" and len(frame) >= 8:
            struct.pack_into(">hh", frame, 4, draw(st.integers(-5, 70)),
                             draw(st.integers(-2, 20)))
    return bytes(frame)


cases = st.one_of(
    st.binary(max_size=200),
    mutated_frames(),
    st.lists(mutated_frames(), min_size=2, max_size=4).map(b"".join),
    st.builds(lambda n, tail: struct.pack(">i", n) + tail,
              st.integers(-(1 << 31), (1 << 31) - 1), st.binary(max_size=64)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=cases)
def test_fuzz_never_hurts_other_connections(srv: ServerThread, good_connection: socket.socket,
                                            data: bytes) -> None:
    with connect(srv.port()) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # an incomplete frame then ends with EOF
        read_until_closed(s)
    assert_healthy(srv, good_connection)


def test_stop_cancels_handlers_of_connections_that_already_closed() -> None:
    """A handler still running after its client disconnected must not outlive the server."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang(ctx: RequestContext, header: Any, request: object) -> object:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    async def main() -> None:
        server = KafkaServer(
            [ListenerSpec("PLAINTEXT", "127.0.0.1", 0, "broker")],
            hang,
            advertised={ApiKey.API_VERSIONS: (0, 3), ApiKey.METADATA: (0, 12)},
        )
        await server.start()
        port = server.port("PLAINTEXT")
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_request(metadata.REQUEST, metadata.REQUEST(), 1, 7, "c", 1))
        await writer.drain()
        await asyncio.wait_for(started.wait(), 5)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)  # let the server see the disconnect
        await server.stop()
        assert cancelled.is_set()

    asyncio.run(main())
