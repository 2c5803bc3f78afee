"""The network server's limits over real sockets (broker/network/limits.py, acceptor.py):
per-ip, per-listener and node-wide connection limits with the protected inter-broker listener,
idle connections, the request memory pool and the waiting-request bound; confluent-kafka
(librdkafka) as the real client where a client's view matters.

Each test runs its own server (tests/integration/test_server_framing.py's ``ServerThread``:
a KafkaServer on its own loop in a thread, Metadata and ApiVersions answered, "__gate" topics
waiting for the test) and talks to it with blocking sockets.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.network.context import ListenerSpec
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import new_event_loop
from broker.network.limits import LimitsConfig
from broker.network.server import KafkaServer
from tests.integration.test_server_framing import (
    ServerThread,
    api_versions_frame,
    check_api_versions,
    connect,
    metadata_frame,
    recv_frame,
)

TIMEOUT_S = 20.0


class LimitedServer(ServerThread):
    """ServerThread with chosen listeners and limits."""

    def __init__(self, listeners: list[ListenerSpec], **server_kwargs: Any) -> None:
        self.dispatcher = ApiDispatcher(node_id=1, cluster_id="test-cluster")
        self.server = KafkaServer(listeners, self.handle, advertised=self.dispatcher.advertised,
                                  **server_kwargs)
        self.loop = new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        self.gate: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(TIMEOUT_S), "server did not start"


@pytest.fixture
def make_server() -> Iterator[Callable[..., LimitedServer]]:
    servers: list[LimitedServer] = []

    def make(limits: LimitsConfig, listeners: list[ListenerSpec] | None = None,
             **kw: Any) -> LimitedServer:
        s = LimitedServer(listeners or [ListenerSpec("PLAINTEXT", kind="broker"),
                                        ListenerSpec("CONTROLLER", kind="controller")],
                          limits=limits, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
        assert not s.loop_errors, s.loop_errors


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def is_closed_by_server(s: socket.socket, timeout_s: float = TIMEOUT_S) -> bool:
    """Whether the server closes ``s`` (EOF or reset) within the time."""
    s.settimeout(timeout_s)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def gets_no_answer(s: socket.socket, correlation_id: int, wait_s: float = 0.5) -> bool:
    """Send ApiVersions; True if nothing comes back within ``wait_s`` (not read)."""
    s.sendall(api_versions_frame(0, correlation_id))
    s.settimeout(wait_s)
    try:
        s.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    return False


def confluent_can_list_topics(port: int) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}",
                         "socket.connection.setup.timeout.ms": 2000})
    try:
        admin.list_topics(timeout=3)
        return True
    except KafkaException:
        return False


def test_per_ip_limit_closes_the_extra_connection_at_once(make_server: Any) -> None:
    pytest.importorskip("confluent_kafka")
    srv = make_server(LimitsConfig(max_connections_per_ip=2))
    port = srv.port()
    a, b = connect(port), connect(port)
    check_api_versions(a, 1)
    check_api_versions(b, 2)
    c = connect(port)  # the TCP handshake completes: accepted, then closed at once
    assert is_closed_by_server(c)
    quotas = srv.server.limits["broker"].quotas
    assert quotas.rejected_per_ip >= 1 and quotas.ip_counts == {"127.0.0.1": 2}
    assert not confluent_can_list_topics(port)  # librdkafka cannot get a connection in
    c.close()
    a.close()
    wait_until(lambda: quotas.total == 1, "the closed connection to be uncounted")
    assert confluent_can_list_topics(port)
    check_api_versions(b, 3)
    # the controller listener counts separately (its own SocketServer in Kafka)
    d = connect(srv.port("CONTROLLER"))
    check_api_versions(d, 4)
    for s in (b, c, d):
        s.close()


def test_override_raises_the_per_ip_limit(make_server: Any) -> None:
    srv = make_server(LimitsConfig(max_connections_per_ip=0,
                                   per_ip_overrides={"127.0.0.1": 3}))
    socks = [connect(srv.port()) for _ in range(3)]
    for i, s in enumerate(socks):
        check_api_versions(s, i)
    extra = connect(srv.port())
    assert is_closed_by_server(extra)
    for s in (*socks, extra):
        s.close()


def test_listener_limit_blocks_accepting_until_a_slot_frees(make_server: Any) -> None:
    srv = make_server(LimitsConfig(listener_max_connections={"PLAINTEXT": 1}))
    a = connect(srv.port())
    check_api_versions(a, 1)
    b = connect(srv.port())  # waits in the listen backlog: not accepted, not read
    assert gets_no_answer(b, 7)
    assert srv.server.limits["broker"].quotas.accept_blocks >= 1
    ctl = connect(srv.port("CONTROLLER"))  # another listener is not affected
    check_api_versions(ctl, 2)
    a.close()
    b.settimeout(TIMEOUT_S)
    frame = recv_frame(b)  # accepted once a's slot freed; the request it sent is answered
    assert struct.unpack_from(">i", frame)[0] == 7
    b.close()
    ctl.close()


def test_inter_broker_listener_is_protected_from_max_connections(make_server: Any) -> None:
    listeners = [ListenerSpec("EXTERNAL", kind="broker"), ListenerSpec("INTERNAL", kind="broker"),
                 ListenerSpec("CONTROLLER", kind="controller")]
    srv = make_server(LimitsConfig(max_connections=2, inter_broker_listener="INTERNAL"),
                      listeners)
    e1, e2 = connect(srv.port("EXTERNAL")), connect(srv.port("EXTERNAL"))
    check_api_versions(e1, 1)
    check_api_versions(e2, 2)
    e3 = connect(srv.port("EXTERNAL"))
    assert gets_no_answer(e3, 3)  # the node is full: EXTERNAL stops accepting
    check_api_versions(e2, 4)  # e2 is now the most recently active one
    i1 = connect(srv.port("INTERNAL"))
    check_api_versions(i1, 5)  # the inter-broker listener still accepts...
    assert is_closed_by_server(e1)  # ...and the least recently active other one is closed
    limits = srv.server.limits["broker"]
    assert limits.lru_closes == 1
    check_api_versions(e2, 6)
    i1.close()
    wait_until(lambda: limits.quotas.total == 2, "e3 to be accepted once a slot freed")
    e3.settimeout(TIMEOUT_S)
    assert struct.unpack_from(">i", recv_frame(e3))[0] == 3
    for s in (e1, e2, e3):
        s.close()


def test_idle_connections_are_closed(make_server: Any) -> None:
    srv = make_server(LimitsConfig(connections_max_idle_ms=300))
    idle, busy = connect(srv.port()), connect(srv.port())
    check_api_versions(idle, 1)
    started = time.monotonic()
    cid = 2
    while time.monotonic() - started < 1.5:  # busy talks every 100 ms
        check_api_versions(busy, cid)
        cid += 1
        time.sleep(0.1)
    assert is_closed_by_server(idle, timeout_s=0.01)
    assert time.monotonic() - started >= 0.3
    check_api_versions(busy, cid)
    assert srv.server.limits["broker"].idle_closes >= 1
    idle.close()
    busy.close()


def _big_api_versions(size: int, correlation_id: int) -> bytes:
    """An ApiVersions v0 request padded to ``size`` bytes (trailing bytes are ignored)."""
    frame = api_versions_frame(0, correlation_id)
    return struct.pack(">i", size) + frame[4:] + bytes(size - (len(frame) - 4))


def test_memory_pool_stops_reading_partial_frames(make_server: Any) -> None:
    mb = 1 << 20
    srv = make_server(LimitsConfig(queued_max_request_bytes=2 * mb), max_request_bytes=mb)
    pool = srv.server.limits["broker"].pool
    frames = [_big_api_versions(mb - 100, 10 + i) for i in range(4)]
    socks = [connect(srv.port()) for _ in frames]
    for s, f in zip(socks, frames, strict=True):
        s.sendall(f[:64 << 10])
    # three draw their frame (non-strict: the third while 192 bytes were free), the fourth waits
    wait_until(lambda: pool.waits >= 1, "a connection to wait for memory")
    time.sleep(0.2)
    assert pool.used == 3 * (mb - 96) and pool.used <= 2 * mb + mb
    small = connect(srv.port())
    check_api_versions(small, 1)  # whole small requests are still answered
    senders = [threading.Thread(target=s.sendall, args=(f[64 << 10:],))
               for s, f in zip(socks, frames, strict=True)]
    for t in senders:
        t.start()
    for i, s in enumerate(socks):
        s.settimeout(TIMEOUT_S)
        assert struct.unpack_from(">i", recv_frame(s))[0] == 10 + i
    for t in senders:
        t.join(TIMEOUT_S)
    assert pool.peak_used <= 3 * mb and pool.used == 0
    for s in (*socks, small):
        s.close()


def test_waiting_requests_bound_stops_reading(make_server: Any) -> None:
    srv = make_server(LimitsConfig(queued_max_requests=3))
    limits = srv.server.limits["broker"]
    assert srv.gate is not None
    srv.call(srv.gate.clear)
    a, b = connect(srv.port()), connect(srv.port())
    for i in range(2):
        a.sendall(metadata_frame(1, 100 + i, ["__gate"]))
    wait_until(lambda: limits.queued == 2, "two waiting requests")
    for i in range(3):
        b.sendall(metadata_frame(1, 200 + i, ["__gate"]))
    wait_until(lambda: limits.queue_waits >= 1, "b to stop being read")
    time.sleep(0.2)
    assert limits.queued == 3  # b's later requests wait unread
    srv.call(srv.gate.set)
    for s, base in ((a, 100), (a, 101), (b, 200), (b, 201), (b, 202)):
        s.settimeout(TIMEOUT_S)
        assert struct.unpack_from(">i", recv_frame(s))[0] == base
    wait_until(lambda: limits.queued == 0, "nothing waiting")
    a.close()
    b.close()
