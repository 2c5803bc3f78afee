"""Which connections the network server closes on its own: the idle ones
(``connections.max.idle.ms``, Kafka's ``Selector`` idle expiry) and, when the protected
inter-broker listener takes the node past ``max.connections``, the least recently active
connection of another listener (Kafka's ``Processor.closeExcessConnections``). A connection
is active when bytes arrive (``ServerConnection.last_active``); one with unanswered requests,
unsent responses, or whose reading the server paused (e.g. waiting for the request memory
pool) is never idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any

__all__ = ["close_idle_connections", "least_recently_active"]

logger = logging.getLogger(__name__)


def least_recently_active(connections: Iterable[Any], kind: str,
                          protected: str | None) -> Any | None:
    """The connection of ``kind``, not on the ``protected`` listener and not closing, that
    received bytes longest ago (None: there is none)."""
    victim = None
    for conn in connections:
        core = conn.core
        if conn.listener.kind != kind or conn.listener.name == protected or core.closed or \
                core.closing:
            continue
        if victim is None or core.last_active < victim.core.last_active:
            victim = conn
    return victim


async def close_idle_connections(connections: Callable[[], Iterable[Any]], idle_ms: int,
                                 on_idle: Callable[[Any], None]) -> None:
    """Forever: every tenth of ``idle_ms`` (within 50 ms..10 s), call ``on_idle(conn)`` for
    each connection that received nothing for ``idle_ms``; a busy one (``conn.unsent()``
    bytes, unanswered requests, reading paused) counts as active now."""
    idle_s = idle_ms / 1000
    tick_s = min(max(idle_s / 10, 0.05), 10.0)
    while True:
        await asyncio.sleep(tick_s)
        now = monotonic()
        for conn in list(connections()):
            core = conn.core
            if core.closed:
                continue
            if core.pending or core.reading_paused or conn.unsent():
                core.last_active = now
            elif now - core.last_active >= idle_s:
                logger.debug("Closing idle connection %s (connections.max.idle.ms=%d)",
                             conn.peer_str(), idle_ms)
                on_idle(conn)
