"""A broker's registration and heartbeats with the active controller (Kafka's
BrokerLifecycleManager).

States, as in Kafka: STARTING (not registered) -> RECOVERY (registered, fenced until its
metadata has caught up with the log) -> RUNNING (unfenced) -> PENDING_CONTROLLED_SHUTDOWN
(heartbeats say WantShutDown; the controller moves leadership away) -> SHUTTING_DOWN.

A heartbeat answered with STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED (the controller
forgot us, e.g. after we were unregistered) sends the broker back to registration with a
fresh request; the incarnation id stays the same for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller.channel import ControllerChannel, ControllerUnavailableError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import broker_heartbeat, broker_registration
from kraft.controller.feature_control import METADATA_VERSION_RANGE
from kraft.image import Endpoint

__all__ = ["METADATA_VERSION_RANGE", "BrokerLifecycleManager", "BrokerState"]

logger = logging.getLogger(__name__)

# metadata.version levels this broker can run: METADATA_VERSION_RANGE (3.3-IV0 .. 4.0-IV3).
NO_CONTROLLER_GIVE_UP_S = 2.0


class BrokerState(enum.Enum):
    STARTING = "starting"
    RECOVERY = "recovery"
    RUNNING = "running"
    PENDING_CONTROLLED_SHUTDOWN = "pending_controlled_shutdown"
    SHUTTING_DOWN = "shutting_down"


class BrokerLifecycleManager:
    def __init__(self, node_id: int, cluster_id: str, channel: ControllerChannel, *,
                 listeners: Sequence[Endpoint], rack: str | None,
                 metadata_offset: Callable[[], int], heartbeat_interval_ms: int = 2000,
                 clock: Clock = SYSTEM_CLOCK,
                 log_dirs: Callable[[], tuple[list[uuid.UUID], list[uuid.UUID]]] | None = None,
                 ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.clock = clock
        self.channel = channel
        self.listeners = list(listeners)
        self.rack = rack
        self.incarnation_id = uuid.uuid4()
        self.broker_epoch = -1
        self.state = BrokerState.STARTING
        self._metadata_offset = metadata_offset
        self._interval_s = heartbeat_interval_ms / 1000
        self._task: asyncio.Task[None] | None = None
        self._want_shutdown = False
        self._wake = asyncio.Event()
        self.unfenced = asyncio.Event()
        self.shutdown_allowed = asyncio.Event()
        self.last_error: str | None = None
        self._last_answer = 0.0  # monotonic time of the last heartbeat answer
        # KIP-858: (online, offline) log dir ids; registration carries the online ones,
        # every heartbeat the offline ones.
        self._log_dirs = log_dirs or (lambda: ([], []))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"broker {self.node_id} lifecycle")

    async def _run(self) -> None:
        while True:
            try:
                if self.broker_epoch < 0:
                    await self._register()
                else:
                    await self._heartbeat()
            except ControllerUnavailableError as e:
                self.last_error = str(e)
                logger.warning("Broker %d: %s", self.node_id, e)
            except Exception:
                logger.exception("Broker %d lifecycle step failed", self.node_id)
            if self.state is BrokerState.SHUTTING_DOWN:
                return
            self._wake.clear()
            # Heartbeat faster while waiting to be unfenced or for shutdown permission.
            fast = self.state in (BrokerState.RECOVERY, BrokerState.PENDING_CONTROLLED_SHUTDOWN)
            delay = min(self._interval_s, 0.1) if fast else self._interval_s
            if self.broker_epoch < 0:
                delay = min(self._interval_s, 0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _register(self) -> None:
        req = broker_registration.REQUEST.cls(
            broker_id=self.node_id,
            cluster_id=self.cluster_id,
            incarnation_id=self.incarnation_id,
            listeners=[
                broker_registration.REQUEST.Listener(
                    name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol)
                for e in self.listeners
            ],
            features=[broker_registration.REQUEST.Feature(
                name="metadata.version", min_supported_version=METADATA_VERSION_RANGE[0],
                max_supported_version=METADATA_VERSION_RANGE[1])],
            rack=self.rack,
            log_dirs=list(self._log_dirs()[0]),
        )
        resp = await self.channel.send(ApiKey.BROKER_REGISTRATION, req, timeout_s=10.0)
        if resp.error_code != ErrorCode.NONE:
            self.last_error = f"registration failed: {ErrorCode(resp.error_code).name}"
            logger.warning("Broker %d %s", self.node_id, self.last_error)
            return
        self.broker_epoch = resp.broker_epoch
        if self.state is BrokerState.STARTING:
            self.state = BrokerState.RECOVERY
        logger.info("Broker %d registered with broker epoch %d (incarnation %s)", self.node_id,
                    self.broker_epoch, self.incarnation_id)
        self._wake.set()

    async def _heartbeat(self) -> None:
        req = broker_heartbeat.REQUEST.cls(
            broker_id=self.node_id,
            broker_epoch=self.broker_epoch,
            current_metadata_offset=self._metadata_offset(),
            want_fence=False,
            want_shut_down=self._want_shutdown,
            offline_log_dirs=list(self._log_dirs()[1]),
        )
        resp = await self.channel.send(ApiKey.BROKER_HEARTBEAT, req, timeout_s=10.0)
        self._last_answer = self.clock.monotonic()
        self._on_heartbeat(resp)

    def _on_heartbeat(self, resp: Any) -> None:
        code = resp.error_code
        if code in (ErrorCode.STALE_BROKER_EPOCH, ErrorCode.BROKER_ID_NOT_REGISTERED):
            logger.warning("Broker %d heartbeat: %s; registering again", self.node_id,
                           ErrorCode(code).name)
            self.broker_epoch = -1
            self.unfenced.clear()
            return
        if code != ErrorCode.NONE:
            self.last_error = f"heartbeat failed: {ErrorCode(code).name}"
            logger.warning("Broker %d %s", self.node_id, self.last_error)
            return
        if self._want_shutdown:
            if resp.should_shut_down:
                self.state = BrokerState.SHUTTING_DOWN
                self.shutdown_allowed.set()
            return
        if resp.is_fenced:
            if self.state is BrokerState.RUNNING:
                logger.warning("Broker %d was fenced by the controller", self.node_id)
                self.state = BrokerState.RECOVERY
                self.unfenced.clear()
        elif self.state is not BrokerState.RUNNING:
            self.state = BrokerState.RUNNING
            self.unfenced.set()
            logger.info("Broker %d is unfenced (metadata offset %d)", self.node_id,
                        self._metadata_offset())

    def wake(self) -> None:
        """Heartbeat now (a log dir just went offline: the controller must know at once)."""
        self._wake.set()

    async def controlled_shutdown(self, timeout_s: float) -> bool:
        """Ask the controller to move leadership away; True once it says we may stop."""
        if self.broker_epoch < 0 or self._task is None or self._task.done():
            return False
        self._want_shutdown = True
        self.state = BrokerState.PENDING_CONTROLLED_SHUTDOWN
        self._wake.set()
        started = self.clock.monotonic()
        while not self.shutdown_allowed.is_set():
            now = self.clock.monotonic()
            if now - started >= timeout_s:
                logger.warning("Broker %d: controlled shutdown not confirmed within %.0fs",
                               self.node_id, timeout_s)
                return False
            if now - max(started, self._last_answer) >= NO_CONTROLLER_GIVE_UP_S:
                # No controller has answered a heartbeat for a while (the quorum is down, or
                # the whole cluster is stopping): nobody is left to move leadership.
                logger.warning("Broker %d: no controller answered for %.0fs; stopping without "
                               "a controlled shutdown", self.node_id, NO_CONTROLLER_GIVE_UP_S)
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.shutdown_allowed.wait(), 0.1)
        logger.info("Broker %d: controlled shutdown complete in %.0f ms", self.node_id,
                    (self.clock.monotonic() - started) * 1000)
        return True

    async def stop(self) -> None:
        self.state = BrokerState.SHUTTING_DOWN
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
