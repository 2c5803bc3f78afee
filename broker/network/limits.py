"""The network server's resource limits, without I/O: how many connections may be open, how
many request bytes may be held while being read, and how many requests may wait unanswered.

The numbers follow Kafka's ``SocketServer`` (``ConnectionQuotas``, ``SimpleMemoryPool``,
``RequestChannel``); ``broker.network.acceptor`` and ``broker.network.server`` act on them.
One ``NetworkLimits`` exists per listener kind: as Kafka's broker and controller each run their
own ``SocketServer``, the broker listeners and the controller listeners of a combined node
count towards separate limits of the same keys.

- **Connections** (``ConnectionQuotas``): ``max.connections`` over every listener of the kind,
  ``listener.name.<l>.max.connections`` per listener, ``max.connections.per.ip`` with
  ``max.connections.per.ip.overrides`` (``host:count,...``) per peer address. While a
  listener or the node has no free slot its acceptor stops accepting: new connections wait in
  the kernel's listen backlog until a connection closes (Kafka's ``waitForConnectionSlot``).
  The inter-broker listener is protected when there are several listeners: only its own
  listener limit applies, and a connection it accepts past ``max.connections`` has the least
  recently active connection of another listener closed (``maxConnectionsExceeded``). A
  connection from an address already at its per-ip maximum is accepted and closed at once
  (``TooManyConnectionsException``).
- **Request bytes** (``MemoryPool``, ``queued.max.request.bytes``; -1: unbounded): a frame that
  does not arrive whole in one read draws its full size from the pool before more of it is
  buffered; when the pool is empty the connection stops being read (the rest waits in the
  kernel) until bytes are released, which happens when the frame is complete and handed on.
  As Kafka's non-strict ``SimpleMemoryPool``, an allocation succeeds while any byte is free, so
  the bytes held stay below ``queued.max.request.bytes + socket.request.max.bytes``. Frames
  that arrive whole (nearly every request) are parsed at once and never held.
- **Waiting requests** (``queued.max.requests``): requests read and not yet answered (a handler
  still running, or an answer queued behind one) over every connection of the kind; at the
  bound a connection that adds one stops being read until the count is below it again.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.errors import ConfigError

__all__ = [
    "ConnectionQuotas",
    "LimitsConfig",
    "MemoryPool",
    "NetworkLimits",
    "normalize_ip",
    "parse_ip_overrides",
    "raise_fd_limit",
]

logger = logging.getLogger(__name__)

INT_MAX = 2**31 - 1


def normalize_ip(host: str) -> str:
    """A peer's address as the key of the per-ip counts (IPv4-mapped IPv6 as IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_ip_overrides(value: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:count`` pairs separated by commas (Kafka's
    ``getMap``); a host name is resolved to its address now, as Kafka's
    ``InetAddress.getByName``. Raises ``ValueError`` for a malformed entry."""
    out: dict[str, int] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        host = host.strip().strip("[]")
        if not sep or not host:
            raise ValueError(f"malformed entry {item!r} (expected host:count)")
        n = int(count.strip())
        if n < 0:
            raise ValueError(f"negative count in {item!r}")
        try:
            key = normalize_ip(str(ipaddress.ip_address(host)))
        except ValueError:
            try:
                key = normalize_ip(socket.gethostbyname(host))
            except OSError as e:
                raise ValueError(f"cannot resolve {host!r}: {e}") from None
        out[key] = n
    return out


@dataclass(frozen=True)
class LimitsConfig:
    """The limit keys of one node (``from_config`` reads them from a ``KafkaConfig``)."""

    max_connections: int = INT_MAX
    max_connections_per_ip: int = INT_MAX
    per_ip_overrides: Mapping[str, int] = field(default_factory=dict)
    listener_max_connections: Mapping[str, int] = field(default_factory=dict)
    inter_broker_listener: str | None = None
    queued_max_requests: int = INT_MAX
    queued_max_request_bytes: int = -1
    connections_max_idle_ms: int = -1

    @classmethod
    def from_config(cls, cfg: Any) -> LimitsConfig:
        """Read and check the keys (``ConfigError`` as Kafka's ``KafkaConfig`` would raise)."""
        per_listener: dict[str, int] = {}
        for key, value in cfg.originals.items():
            # listener.name.<listener>.max.connections (Kafka lower-cases the prefix's name)
            if key.startswith("listener.name.") and key.endswith(".max.connections"):
                name = key[len("listener.name."):-len(".max.connections")]
                if name and "." not in name:
                    try:
                        n = int(str(value).strip())
                    except ValueError:
                        n = -1
                    if n < 0:
                        raise ConfigError(key, value, "Value must be at least 0")
                    per_listener[name.upper()] = n
        overrides = cfg.get("max.connections.per.ip.overrides") or ""
        try:
            per_ip = parse_ip_overrides(overrides)
        except ValueError as e:
            raise ConfigError("max.connections.per.ip.overrides", overrides, str(e)) from None
        if cfg.get("max.connections.per.ip") == 0 and not per_ip:
            raise ConfigError("max.connections.per.ip", 0, "max.connections.per.ip can be set "
                              "to zero only if max.connections.per.ip.overrides is set")
        queued_bytes = cfg.get("queued.max.request.bytes")
        if 0 < queued_bytes < cfg.get("socket.request.max.bytes"):
            raise ConfigError("queued.max.request.bytes", queued_bytes,
                              "queued.max.request.bytes must be larger or equal to "
                              "socket.request.max.bytes")
        return cls(
            max_connections=cfg.get("max.connections"),
            max_connections_per_ip=cfg.get("max.connections.per.ip"),
            per_ip_overrides=per_ip,
            listener_max_connections=per_listener,
            inter_broker_listener=cfg.inter_broker_listener_name,
            queued_max_requests=cfg.get("queued.max.requests"),
            queued_max_request_bytes=cfg.get("queued.max.request.bytes"),
            connections_max_idle_ms=cfg.get("connections.max.idle.ms"),
        )


class ConnectionQuotas:
    """Connection counts and limits of one listener kind (Kafka's ``ConnectionQuotas``)."""

    def __init__(self, listeners: Iterable[str], *, max_connections: int = INT_MAX,
                 max_per_ip: int = INT_MAX, per_ip_overrides: Mapping[str, int] | None = None,
                 listener_max: Mapping[str, int] | None = None,
                 protected_listener: str | None = None) -> None:
        self.listener_counts: dict[str, int] = {name: 0 for name in listeners}
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.per_ip_overrides = dict(per_ip_overrides or {})
        limits = listener_max or {}
        self.listener_max = {name: limits.get(name, INT_MAX) for name in self.listener_counts}
        # Protected only when it is one of several listeners (Kafka's protectedListener).
        self.protected = protected_listener if (
            protected_listener in self.listener_counts and len(self.listener_counts) > 1) \
            else None
        self.ip_counts: dict[str, int] = {}
        self.total = 0
        # listener -> resume callback of an acceptor waiting for a slot there
        self._waiting: dict[str, Callable[[], None]] = {}
        self.rejected_per_ip = 0
        self.accept_blocks = 0

    def max_for_ip(self, ip: str) -> int:
        return self.per_ip_overrides.get(ip, self.max_per_ip)

    def slot_available(self, listener: str) -> bool:
        """Whether ``listener`` may accept one more connection now."""
        if self.listener_counts[listener] >= self.listener_max[listener]:
            return False
        return listener == self.protected or self.total < self.max_connections

    def inc(self, listener: str, ip: str) -> bool:
        """Count a connection just accepted on ``listener`` from ``ip``. False: the address is
        at its maximum already; the connection must be closed at once (and is not counted)."""
        count = self.ip_counts.get(ip, 0)
        if count >= self.max_for_ip(ip):
            self.rejected_per_ip += 1
            return False
        self.ip_counts[ip] = count + 1
        self.total += 1
        self.listener_counts[listener] += 1
        return True

    def dec(self, listener: str, ip: str) -> None:
        """A counted connection closed; wake an acceptor that may accept again."""
        count = self.ip_counts.get(ip, 0)
        if count <= 1:
            self.ip_counts.pop(ip, None)
        else:
            self.ip_counts[ip] = count - 1
        self.total -= 1
        self.listener_counts[listener] -= 1
        if self._waiting:
            for name in [n for n in self._waiting if self.slot_available(n)]:
                self._waiting.pop(name)()

    def exceeded(self, listener: str) -> bool:
        """More connections than ``max.connections`` and ``listener`` is not protected: one of
        its connections should be closed (Kafka's ``maxConnectionsExceeded``)."""
        return self.total > self.max_connections and listener != self.protected

    def wait_for_slot(self, listener: str, resume: Callable[[], None]) -> None:
        """The acceptor of ``listener`` stopped; ``resume()`` is called once it has a slot."""
        self.accept_blocks += 1
        self._waiting[listener] = resume

    def cancel_wait(self, listener: str) -> None:
        self._waiting.pop(listener, None)


class MemoryPool:
    """Bytes of requests being read (Kafka's non-strict ``SimpleMemoryPool``): ``capacity``
    -1 is unbounded. ``try_allocate`` succeeds while any byte is free (the pool may go below
    zero by one allocation); ``release`` wakes the connections waiting for memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.available = capacity
        self.waiters: deque[Callable[[], None]] = deque()
        self.waits = 0  # allocations refused (a connection stopped being read)
        self.peak_used = 0
        self._schedule: Callable[[Callable[[], None]], Any] | None = None
        self._wake_scheduled = False

    @property
    def bounded(self) -> bool:
        return self.capacity > 0

    @property
    def used(self) -> int:
        return self.capacity - self.available if self.bounded else 0

    def try_allocate(self, n: int) -> bool:
        if self.available <= 0:
            self.waits += 1
            return False
        self.available -= n
        used = self.capacity - self.available
        self.peak_used = max(self.peak_used, used)
        return True

    def release(self, n: int) -> None:
        self.available += n
        if self.waiters and self.available > 0 and not self._wake_scheduled:
            if self._schedule is None:
                self._wake()
            else:
                self._wake_scheduled = True
                self._schedule(self._wake)

    def wait(self, resume: Callable[[], None]) -> None:
        self.waiters.append(resume)

    def _wake(self) -> None:
        """Let waiting connections retry, in arrival order, while memory is free."""
        self._wake_scheduled = False
        waiters = self.waiters
        while waiters and self.available > 0:
            waiters.popleft()()


class NetworkLimits:
    """The limits of one listener kind: connection quotas, the request memory pool and the
    count of waiting requests (see the module docstring)."""

    def __init__(self, listeners: Iterable[str], cfg: LimitsConfig | None = None) -> None:
        cfg = cfg or LimitsConfig()
        self.config = cfg
        self.quotas = ConnectionQuotas(
            listeners, max_connections=cfg.max_connections,
            max_per_ip=cfg.max_connections_per_ip, per_ip_overrides=cfg.per_ip_overrides,
            listener_max=cfg.listener_max_connections,
            protected_listener=cfg.inter_broker_listener)
        self.pool = MemoryPool(cfg.queued_max_request_bytes)
        self.max_queued = cfg.queued_max_requests
        self.queued = 0  # requests read and not yet answered, over the kind's connections
        self.queue_waiters: deque[Callable[[], None]] = deque()
        self.queue_waits = 0
        self.idle_closes = 0
        self.lru_closes = 0

    def set_scheduler(self, schedule: Callable[[Callable[[], None]], Any]) -> None:
        """Wake-ups run later through ``schedule`` (``loop.call_soon``), not inside the
        release that frees the resource."""
        self.pool._schedule = schedule
        self._schedule = schedule

    _schedule: Callable[[Callable[[], None]], Any] | None = None
    _queue_wake_scheduled = False

    def queue_full(self) -> bool:
        return self.queued >= self.max_queued

    def dequeued(self, n: int) -> None:
        """``n`` waiting requests answered (or dropped with their connection)."""
        self.queued -= n
        if self.queue_waiters and self.queued < self.max_queued and \
                not self._queue_wake_scheduled:
            if self._schedule is None:
                self._wake_queue()
            else:
                self._queue_wake_scheduled = True
                self._schedule(self._wake_queue)

    def _wake_queue(self) -> None:
        self._queue_wake_scheduled = False
        waiters = self.queue_waiters
        while waiters and self.queued < self.max_queued:
            waiters.popleft()()


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit (connections are file
    descriptors); returns the (soft, hard) limits now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            logger.warning("Cannot raise the open files limit from %d to %d: %s", soft, hard, e)
    return soft, hard
