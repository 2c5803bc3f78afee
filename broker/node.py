"""A node's lifecycle: start the roles, run until told to stop, stop in reverse order.

This is the *start* of the node's lifecycle. So far it only announces what it would run (roles,
listeners, directories) and waits for SIGTERM/SIGINT; later milestones add, in start order:
the Raft driver over the metadata log, the controller (controller role), the metadata
publisher, replica manager and group coordinator (broker role), the Kafka listeners and the HTTP
admin API; shutdown runs the same list backwards.

``run_node`` owns the event loop (uvloop when importable), so the caller stays synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from storage.config import KafkaConfig

__all__ = ["Node", "run_node"]

logger = logging.getLogger(__name__)

STARTED_MESSAGE = "Kafka Server started"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Node:
    """One process running the broker role, the controller role, or both."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._shutdown: asyncio.Event | None = None
        self.shutdown_reason: str | None = None

    async def start(self) -> None:
        cfg = self.config
        roles = ",".join(sorted(cfg.process_roles))
        logger.info("Starting node %d with process.roles=%s", cfg.node_id, roles)
        logger.info("Listeners: %s", ", ".join(str(e) for e in cfg.listeners))
        if cfg.is_broker:
            logger.info(
                "Advertised broker listeners: %s (inter-broker: %s)",
                ", ".join(str(e) for e in cfg.effective_advertised_broker_listeners),
                cfg.inter_broker_listener_name,
            )
        if cfg.controller_quorum_voters:
            voters = ", ".join(
                f"{i}@{h}:{p}" for i, (h, p) in sorted(cfg.controller_quorum_voters.items())
            )
            logger.info("Controller quorum voters (static): %s", voters)
        else:
            servers = ", ".join(f"{h}:{p}" for h, p in cfg.controller_quorum_bootstrap_servers)
            logger.info("Controller quorum bootstrap servers (dynamic): %s", servers)
        logger.info("Admin API listeners: %s", ", ".join(str(e) for e in cfg.admin_listeners))
        logger.info(
            "Log dirs: %s; metadata log dir: %s", ", ".join(cfg.log_dirs), cfg.metadata_log_dir
        )
        # Later milestones start the Raft driver, controller, broker and listeners here.
        logger.info("%s", STARTED_MESSAGE)

    def request_shutdown(self, reason: str) -> None:
        """Ask the node to stop (idempotent; safe to call from a signal handler)."""
        if self._shutdown is None:  # not running yet: nothing to stop
            return
        if self._shutdown.is_set():
            logger.info("Shutdown already in progress (%s)", reason)
            return
        self.shutdown_reason = reason
        logger.info("Received %s, shutting down", reason)
        self._shutdown.set()

    async def stop(self) -> None:
        # Later milestones stop the components in reverse start order here.
        logger.info("Kafka Server shut down cleanly")

    async def run(self) -> int:
        self._shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_shutdown, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no support
                pass
        try:
            await self.start()
            await self._shutdown.wait()
            await self.stop()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return 0


def run_node(config: KafkaConfig) -> int:
    """Run a node until SIGTERM/SIGINT; return the process exit code (0 on a clean stop)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(Node(config).run())
