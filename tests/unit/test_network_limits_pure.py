"""The network server's limits without sockets (broker/network/limits.py): connection quotas
as Kafka's ConnectionQuotas counts them, the non-strict memory pool, the waiting-request bound,
the configuration keys; and the sans-IO connection drawing partial frames from the pool."""

from __future__ import annotations

import asyncio
import struct
import time
from types import SimpleNamespace

import pytest

from broker.config import KafkaConfig
from broker.network.connection import PAUSE, RESUME, ListenerRoutes, ServerConnection
from broker.network.context import ListenerSpec, ServerStats
from broker.network.expiry import close_idle_connections, least_recently_active
from broker.network.limits import (
    ConnectionQuotas,
    LimitsConfig,
    MemoryPool,
    NetworkLimits,
    normalize_ip,
    parse_ip_overrides,
)
from broker.protocol.api_keys import ApiKey
from storage.errors import ConfigError

BASE = {"process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:9093",
        "listeners": "PLAINTEXT://:9092,INTERNAL://:9094,CONTROLLER://:9093",
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER"}


def test_per_ip_limit_and_overrides() -> None:
    q = ConnectionQuotas(["A"], max_per_ip=2, per_ip_overrides={"10.0.0.9": 3})
    assert q.inc("A", "10.0.0.1") and q.inc("A", "10.0.0.1")
    assert not q.inc("A", "10.0.0.1")  # the third from that address: close at once
    assert q.rejected_per_ip == 1 and q.ip_counts["10.0.0.1"] == 2 and q.total == 2
    assert all(q.inc("A", "10.0.0.9") for _ in range(3))
    assert not q.inc("A", "10.0.0.9")
    q.dec("A", "10.0.0.1")
    assert q.inc("A", "10.0.0.1")
    zero = ConnectionQuotas(["A"], max_per_ip=0, per_ip_overrides={"10.0.0.9": 1})
    assert not zero.inc("A", "10.0.0.1") and zero.inc("A", "10.0.0.9")


def test_listener_and_node_limits_block_and_wake() -> None:
    q = ConnectionQuotas(["A", "B"], max_connections=3, listener_max={"A": 1})
    assert q.slot_available("A")
    q.inc("A", "1.1.1.1")
    assert not q.slot_available("A") and q.slot_available("B")
    woken: list[str] = []
    q.wait_for_slot("A", lambda: woken.append("A"))
    q.inc("B", "1.1.1.2")
    q.inc("B", "1.1.1.3")
    assert not q.slot_available("B")  # the node is full
    q.wait_for_slot("B", lambda: woken.append("B"))
    q.dec("B", "1.1.1.3")  # a node slot frees: B may accept, A is still at its own limit
    assert woken == ["B"]
    q.dec("A", "1.1.1.1")
    assert woken == ["B", "A"]
    assert q.total == 1 and q.accept_blocks == 2


def test_inter_broker_listener_is_protected_only_among_several() -> None:
    q = ConnectionQuotas(["EXTERNAL", "INTERNAL"], max_connections=1,
                         protected_listener="INTERNAL")
    q.inc("EXTERNAL", "1.1.1.1")
    assert not q.slot_available("EXTERNAL")
    assert q.slot_available("INTERNAL")
    q.inc("INTERNAL", "1.1.1.2")
    assert q.exceeded("EXTERNAL") and not q.exceeded("INTERNAL")
    alone = ConnectionQuotas(["INTERNAL"], max_connections=1, protected_listener="INTERNAL")
    alone.inc("INTERNAL", "1.1.1.1")
    assert alone.protected is None and not alone.slot_available("INTERNAL")


def test_memory_pool_is_non_strict() -> None:
    pool = MemoryPool(100)
    assert pool.try_allocate(60) and pool.try_allocate(60)  # any free byte is enough
    assert pool.available == -20 and pool.used == 120 and pool.peak_used == 120
    assert not pool.try_allocate(1) and pool.waits == 1
    woken: list[int] = []
    pool.wait(lambda: woken.append(1))
    pool.release(10)  # still below zero: nobody is woken
    assert woken == []
    pool.release(60)
    assert woken == [1]
    assert not MemoryPool(-1).bounded


def test_waiting_request_bound_wakes_in_order() -> None:
    limits = NetworkLimits(["A"], LimitsConfig(queued_max_requests=2))
    limits.queued = 2
    assert limits.queue_full()
    woken: list[str] = []
    limits.queue_waiters.extend([lambda: woken.append("x"), lambda: woken.append("y")])
    limits.dequeued(1)
    assert woken == ["x", "y"]  # the waiters add nothing here, so both may go


def test_overrides_and_config_keys() -> None:
    assert parse_ip_overrides("127.0.0.1:5, [::1]:7 ,localhost:9") == {
        "127.0.0.1": 9, "::1": 7}  # localhost resolves to 127.0.0.1; the later entry wins
    assert normalize_ip("::ffff:10.1.2.3") == "10.1.2.3"
    with pytest.raises(ValueError):
        parse_ip_overrides("127.0.0.1")
    cfg = LimitsConfig.from_config(KafkaConfig({
        **BASE, "max.connections": "10", "max.connections.per.ip": "4",
        "max.connections.per.ip.overrides": "10.0.0.7:20",
        "listener.name.plaintext.max.connections": "6", "queued.max.requests": "50",
        "queued.max.request.bytes": "209715200", "connections.max.idle.ms": "30000"}))
    assert cfg.max_connections == 10 and cfg.max_connections_per_ip == 4
    assert cfg.per_ip_overrides == {"10.0.0.7": 20}
    assert cfg.listener_max_connections == {"PLAINTEXT": 6}
    assert cfg.inter_broker_listener == "INTERNAL"
    assert (cfg.queued_max_requests, cfg.queued_max_request_bytes,
            cfg.connections_max_idle_ms) == (50, 209715200, 30000)
    for bad in ({"max.connections.per.ip": "0"},
                {"queued.max.request.bytes": "1000"},
                {"max.connections.per.ip.overrides": "nohostcount"},
                {"listener.name.plaintext.max.connections": "-1"}):
        with pytest.raises(ConfigError):
            LimitsConfig.from_config(KafkaConfig({**BASE, **bad}))


# -- the sans-IO connection and the pool ---------------------------------------------------


class Hooks:
    def __init__(self) -> None:
        self.memory_waits = 0

    def memory_wait(self) -> None:
        self.memory_waits += 1

    def queue_resume(self) -> None:
        pass


def new_conn(limits: NetworkLimits) -> tuple[ServerConnection, Hooks]:
    routes = ListenerRoutes(ListenerSpec("PLAINTEXT"), {ApiKey.API_VERSIONS: (0, 3)},
                            lambda *_: None)
    conn = ServerConnection(routes, ServerStats(), max_request_bytes=1000, max_in_flight=5,
                            limits=limits)
    hooks = Hooks()
    conn.hooks = hooks
    return conn, hooks


def feed(conn: ServerConnection, data: bytes) -> list[bytes]:
    ready = conn.receive(data)
    if ready is None:
        return []
    return [bytes(f) for f in conn.frames(ready)]


def test_partial_frames_draw_from_the_pool() -> None:
    limits = NetworkLimits(["PLAINTEXT"], LimitsConfig(queued_max_request_bytes=1000))
    a, _ = new_conn(limits)
    b, _ = new_conn(limits)
    body = bytes(900)
    frame = struct.pack(">i", len(body)) + body
    assert feed(a, frame[:100]) == []
    assert a.reserved == 904 and limits.pool.used == 904
    assert feed(b, frame[:50]) == []  # 96 bytes are free: enough for a non-strict pool
    assert b.reserved == 904 and limits.pool.available == -808
    c, hooks_c = new_conn(limits)
    assert feed(c, frame[:10]) == []
    assert c.mem_wait and hooks_c.memory_waits == 1 and c.reserved == 0
    assert c.update_blocked() == PAUSE
    # a frame that arrives whole is parsed at once and never held
    d, _ = new_conn(limits)
    assert feed(d, struct.pack(">i", 3) + b"abc") == [b"abc"]
    assert feed(a, frame[100:]) == [body]  # complete: the bytes go back
    assert a.reserved == 0 and limits.pool.available == 96
    assert c.retry_memory() and c.reserved == 904
    assert c.update_blocked() == RESUME
    b.drop_pending()  # a closed connection gives its reservation back
    assert limits.pool.used == 904


def test_waiting_requests_pause_connections() -> None:
    limits = NetworkLimits(["PLAINTEXT"], LimitsConfig(queued_max_requests=2))
    a, _ = new_conn(limits)
    b, _ = new_conn(limits)
    a.push_pending()
    assert not a.note_in_flight()
    slot = b.push_pending()
    assert limits.queued == 2 and b.note_in_flight()
    assert b.update_blocked() == PAUSE and b.queue_wait
    assert len(limits.queue_waiters) == 1
    slot[0] = None
    b.release_head()
    assert limits.queued == 1
    assert b.update_blocked() == RESUME
    a.drop_pending()
    assert limits.queued == 0


# -- which connections the server closes on its own (broker/network/expiry.py) ---------------


class FakeConn:
    def __init__(self, name: str, kind: str, last_active: float, *, pending: int = 0,
                 paused: bool = False, unsent: int = 0) -> None:
        self.listener = SimpleNamespace(name=name, kind=kind)
        self.core = SimpleNamespace(last_active=last_active, closed=False, closing=False,
                                    pending=[None] * pending, reading_paused=paused)
        self._unsent = unsent
        self.closed_as_idle = False

    def unsent(self) -> int:
        return self._unsent

    def peer_str(self) -> str:
        return "peer"


def test_least_recently_active_skips_the_protected_listener_and_other_kinds() -> None:
    conns = [FakeConn("INTERNAL", "broker", 1.0), FakeConn("EXTERNAL", "broker", 5.0),
             FakeConn("EXTERNAL", "broker", 3.0), FakeConn("CONTROLLER", "controller", 0.5)]
    assert least_recently_active(conns, "broker", "INTERNAL") is conns[2]
    conns[2].core.closing = True
    assert least_recently_active(conns, "broker", "INTERNAL") is conns[1]
    assert least_recently_active(conns[:1], "broker", "INTERNAL") is None


def test_idle_sweep_spares_busy_and_paused_connections() -> None:
    now = time.monotonic()
    old = now - 60
    idle = FakeConn("A", "broker", old)
    busy = [FakeConn("A", "broker", old, pending=1), FakeConn("A", "broker", old, paused=True),
            FakeConn("A", "broker", old, unsent=10), FakeConn("A", "broker", now)]
    closed: list[FakeConn] = []

    async def run() -> None:
        task = asyncio.create_task(close_idle_connections(lambda: [idle, *busy], 1000,
                                                          closed.append))
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(run())
    assert closed and all(c is idle for c in closed)
    assert all(c.core.last_active > old for c in busy[:3])  # busy counts as active
