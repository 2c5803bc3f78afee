"""Requests from a broker to the active controller (Kafka's NodeToControllerChannelManager).

The active controller is the Raft leader; the broker learns who that is from its own Raft
observer (``leader_id()``) and the controllers' addresses from the voters it observes (a live
mapping: ``controller.quorum.voters``, or those found through
``controller.quorum.bootstrap.servers``, broker/controller/quorum_bootstrap.py).
Until a leader is known, or when a controller answers NOT_CONTROLLER or cannot be reached, the
channel tries the next controller, with a short backoff, until the caller's deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.clock import SYSTEM_CLOCK, Clock
from broker.protocol.errors import ErrorCode, KafkaError

__all__ = ["ControllerChannel", "ControllerUnavailableError"]

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.1


class ControllerUnavailableError(KafkaError):
    """No controller accepted the request before the deadline."""

    code = ErrorCode.REQUEST_TIMED_OUT


class ControllerChannel:
    def __init__(self, node_id: int, controllers: Mapping[int, tuple[str, int]],
                 leader_id: Callable[[], int | None], *, client_id: str | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.node_id = node_id
        self.clock = clock
        self.controllers = controllers  # read at each send: the voter set may change
        self._leader_id = leader_id
        self._client_id = client_id or f"broker-{node_id}-to-controller"
        self.security: Any = None  # TLS/SASL towards the controller listener
        self._conns: dict[int, KafkaConnection] = {}
        self._round_robin = itertools.count()
        self._closed = False

    def _candidate(self, avoid: int | None) -> int:
        leader = self._leader_id()
        if leader is not None and leader in self.controllers and leader != avoid:
            return leader
        ids = sorted(self.controllers)
        for _ in range(len(ids)):
            c = ids[next(self._round_robin) % len(ids)]
            if c != avoid or len(ids) == 1:
                return c
        return ids[next(self._round_robin) % len(ids)]

    async def _connection(self, controller_id: int) -> KafkaConnection:
        conn = self._conns.get(controller_id)
        if conn is not None and not conn.closed:
            return conn
        host, port = self.controllers[controller_id]
        conn = await KafkaConnection.connect(host, port, client_id=self._client_id,
                                             node_id=controller_id, timeout_s=2.0,
                                             security=self.security)
        self._conns[controller_id] = conn
        return conn

    async def send(self, api_key: int, request: Any, *, timeout_s: float = 30.0,
                   retry_on: Callable[[Any], bool] | None = None,
                   attempt_timeout_s: float = 10.0) -> Any:
        """Send to the active controller; retry elsewhere on NOT_CONTROLLER (top-level
        ``error_code``), connection errors and timeouts (``attempt_timeout_s`` per attempt:
        longer for a request the controller may hold, like AddRaftVoter), and whenever
        ``retry_on(response)`` says so, until ``timeout_s`` has passed."""
        deadline = self.clock.monotonic() + timeout_s
        avoid: int | None = None
        last: BaseException | str | None = None
        while not self._closed:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            target = self._candidate(avoid)
            try:
                conn = await self._connection(target)
                resp = await conn.send(api_key, request,
                                       timeout_s=min(remaining, attempt_timeout_s))
            except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
                last = e
                avoid = target
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            code = getattr(resp, "error_code", 0)
            if code == ErrorCode.NOT_CONTROLLER or (retry_on is not None and retry_on(resp)):
                last = f"controller {target} answered error {code}"
                avoid = target
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            return resp
        raise ControllerUnavailableError(
            f"no active controller answered within {timeout_s:.0f}s (last: {last})")

    async def close(self) -> None:
        self._closed = True
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            await conn.close()
