"""A listener's sockets and its accept loop (Kafka's ``Acceptor``), on the event loop.

The server binds the listening sockets itself rather than through ``loop.create_server``, so
that accepting can stop: while the listener or the node has no free connection slot
(``broker.network.limits.ConnectionQuotas``) the sockets are not watched, and new connections
wait in the kernel's listen backlog. An accepted socket becomes a transport and protocol with
``loop.connect_accepted_socket``; one from an address at its per-ip maximum is closed at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from broker.network.limits import ConnectionQuotas, normalize_ip

__all__ = ["Acceptor", "bind_sockets"]

logger = logging.getLogger(__name__)

ACCEPT_BATCH = 64
"""Connections accepted per readiness callback before other callbacks get their turn."""
FD_EXHAUSTED_PAUSE_S = 1.0
"""Out of file descriptors: accepting pauses this long (as asyncio's own server does)."""


def bind_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Non-blocking sockets bound to ``host`` (None: every interface, one per address family)
    and ``port``, not yet listening."""
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                               socket.AI_PASSIVE)
    seen: set[tuple[Any, ...]] = set()
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _canon, sockaddr in infos:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as e:
                raise OSError(e.errno, f"error while attempting to bind on address "
                                       f"{sockaddr!r}: {e.strerror}") from None
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Acceptor:
    """Accepts the connections of one listener within its ``ConnectionQuotas``.

    Each connection counted in the quotas gets the protocol ``protocol_factory(ip)()``, which
    must call ``quotas.dec(listener, ip)`` once the connection is lost; ``on_excess()`` is
    called when a connection on the protected listener takes the kind past max.connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: str,
                 sockets: list[socket.socket], quotas: ConnectionQuotas,
                 protocol_factory: Callable[[str], Callable[[], asyncio.Protocol]],
                 on_excess: Callable[[], None], backlog: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = loop
        self.ssl_context = ssl_context  # a TLS listener: the handshake runs on the connection
        self.listener = listener
        self.sockets = sockets
        self.quotas = quotas
        self.protocol_factory = protocol_factory
        self.on_excess = on_excess
        self.backlog = backlog
        self.serving = False
        self.watching = False
        self.closed = False
        self.connecting: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Listen and accept (within the quotas)."""
        if self.serving or self.closed:
            return
        for sock in self.sockets:
            sock.listen(self.backlog)
        self.serving = True
        self._watch()

    def _watch(self) -> None:
        if self.watching or not self.serving or self.closed:
            return
        self.watching = True
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._ready, sock)
        # Connections may have queued while we were not watching.
        for sock in self.sockets:
            self.loop.call_soon(self._ready, sock)

    def _unwatch(self) -> None:
        if not self.watching:
            return
        self.watching = False
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())

    def _ready(self, lsock: socket.socket) -> None:
        quotas = self.quotas
        listener = self.listener
        for _ in range(ACCEPT_BATCH):
            if not self.watching:
                return
            if not quotas.slot_available(listener):
                # Kafka's waitForConnectionSlot: stop accepting until a connection closes.
                self._unwatch()
                quotas.wait_for_slot(listener, self._watch)
                return
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("Cannot accept on listener %s (%s); pausing accepting for "
                                 "%.0f s", listener, e, FD_EXHAUSTED_PAUSE_S)
                    self._unwatch()
                    self.loop.call_later(FD_EXHAUSTED_PAUSE_S, self._watch)
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            ip = normalize_ip(str(peer[0])) if isinstance(peer, tuple) else str(peer)
            if not quotas.inc(listener, ip):
                logger.info("Rejected connection from %s on listener %s, address already has "
                            "the configured maximum of %d connections.", ip, listener,
                            quotas.max_for_ip(ip))
                sock.close()
                continue
            sock.setblocking(False)
            if listener == quotas.protected and quotas.total > quotas.max_connections:
                self.on_excess()
            task = self.loop.create_task(self._connect(sock, ip))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _connect(self, sock: socket.socket, ip: str) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol_factory(ip), sock,
                                                    ssl=self.ssl_context)
        except OSError as e:
            # Also a failed TLS handshake (ssl.SSLError), e.g. plaintext sent to a TLS port.
            logger.info("Connection from %s on %s failed at once: %s", ip, self.listener, e)
            sock.close()
            self.quotas.dec(self.listener, ip)

    def close(self) -> None:
        """Stop accepting and close the listening sockets."""
        self._unwatch()
        self.quotas.cancel_wait(self.listener)
        self.serving = False
        self.closed = True
        for task in self.connecting:
            task.cancel()
        for sock in self.sockets:
            sock.close()
