"""A node's lifecycle: start the roles, run until told to stop, stop in reverse order.

So far a node announces its roles, listeners and directories, (broker role) loads and
recovers its partition logs through a ``LogManager`` and runs the periodic log work (flush.ms,
retention, checkpoints), and opens its Kafka listeners, which answer ApiVersions and Metadata
(this node as the only broker, no topics yet). Later milestones add, in start order:
the Raft driver over the metadata log, the controller (controller role), the metadata
publisher, replica manager and group coordinator (broker role), the Kafka listeners and the HTTP
admin API; shutdown runs the same list backwards.

``run_node`` owns the event loop (uvloop when importable), so the caller stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from broker.apis import ApiDispatcher
from broker.server import KafkaServer, ListenerSpec
from storage.cleaner import Throttler, prepare_clean
from storage.config import KafkaConfig
from storage.errors import StorageError
from storage.log_config import LogConfig
from storage.log_manager import LogManager

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

    def __init__(self, config: KafkaConfig, cluster_id: str) -> None:
        self.config = config
        self.cluster_id = cluster_id
        self.server: KafkaServer | None = None
        self._shutdown: asyncio.Event | None = None
        self.shutdown_reason: str | None = None
        self.log_manager: LogManager | None = None
        self._log_tasks: list[asyncio.Task[None]] = []

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
        # Later milestones start the Raft driver and controller here, before the broker.
        if cfg.is_broker:
            self._start_log_manager()
        await self._start_listeners()
        logger.info("%s", STARTED_MESSAGE)

    async def _start_listeners(self) -> None:
        cfg = self.config
        controller_names = set(cfg.controller_listener_names)
        specs = []
        for endpoint in cfg.listeners:
            kind = "controller" if endpoint.name in controller_names else "broker"
            if (kind == "controller" and not cfg.is_controller) or (
                kind == "broker" and not cfg.is_broker
            ):
                continue
            specs.append(
                ListenerSpec(name=endpoint.name, host=endpoint.host, port=endpoint.port, kind=kind)
            )
        advertised = cfg.effective_advertised_broker_listeners if cfg.is_broker else []
        host = advertised[0].host if advertised and advertised[0].host else None
        dispatcher = ApiDispatcher(
            cfg.node_id,
            self.cluster_id,
            advertised_host=host,
            advertised_port=advertised[0].port if host else None,
            rack=cfg.get("broker.rack"),
        )
        self.server = KafkaServer(
            specs,
            dispatcher.handle,
            advertised=dispatcher.advertised,
            max_request_bytes=cfg.get("socket.request.max.bytes"),
        )
        await self.server.start()

    def _start_log_manager(self) -> None:
        cfg = self.config
        defaults = LogConfig.from_topic_configs(cfg.log_config_defaults())
        started = time.monotonic()
        self.log_manager = manager = LogManager.open(cfg.log_dirs, defaults)
        logger.info(
            "Loaded %d partition log(s) in %.0f ms; offline log dirs: %s",
            len(manager.all_logs()),
            (time.monotonic() - started) * 1000,
            ", ".join(str(d) for d in sorted(manager.offline_dirs)) or "none",
        )
        periodic = [
            ("log flusher", cfg.get("log.flush.scheduler.interval.ms"), manager.flush_due),
            ("log retention", cfg.get("log.retention.check.interval.ms"),
             manager.enforce_retention),
            ("log checkpoints", cfg.get("log.flush.offset.checkpoint.interval.ms"),
             lambda _now_ms: manager.checkpoint()),
        ]
        for name, interval_ms, work in periodic:
            if 0 < interval_ms < 2**62:
                self._log_tasks.append(
                    asyncio.create_task(_every(name, interval_ms, work), name=name)
                )
        if cfg.get("log.cleaner.enable"):
            self._log_tasks.append(asyncio.create_task(self._run_cleaner(), name="log cleaner"))

    async def _run_cleaner(self) -> None:
        """Compaction: pick logs on the loop, rewrite segments in a worker thread (within the
        log.cleaner.io.max.bytes.per.second budget), swap them in on the loop."""
        cfg = self.config
        manager = self.log_manager
        assert manager is not None
        rate = cfg.get("log.cleaner.io.max.bytes.per.second")
        budget = Throttler(rate) if 0 < rate < 1e300 else None
        dedupe = cfg.get("log.cleaner.dedupe.buffer.size")
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(cfg.get("log.cleaner.backoff.ms") / 1000)
            for tp, to_clean in manager.begin_cleaning(int(time.time() * 1000)):
                try:
                    plan = await loop.run_in_executor(
                        None,
                        lambda t=to_clean: prepare_clean(
                            t, io_budget=budget, dedupe_buffer_size=dedupe
                        ),
                    )
                except (StorageError, OSError) as e:
                    manager.finish_cleaning(tp, e)
                else:
                    manager.finish_cleaning(tp, plan)

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
        # Later milestones stop the other components, in reverse start order, around this.
        if self.server is not None:
            await self.server.stop()
        for task in self._log_tasks:
            task.cancel()
        for task in self._log_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.log_manager is not None:
            self.log_manager.shutdown()
            logger.info("Partition logs flushed and closed")
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


async def _every(name: str, interval_ms: int, work: Callable[[int], object]) -> None:
    """Run ``work(now_ms)`` every ``interval_ms``; an error is logged, not fatal to the loop."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            work(int(time.time() * 1000))
        except Exception:
            logger.exception("Periodic task %s failed", name)


def run_node(config: KafkaConfig, cluster_id: str) -> int:
    """Run a node until SIGTERM/SIGINT; return the process exit code (0 on a clean stop)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(Node(config, cluster_id).run())
