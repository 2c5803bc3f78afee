"""The periodic work of a node's logs (Kafka's LogManager scheduler): flushes, retention,
checkpoints, and the log cleaner, started by ``broker/node.py`` once the logs are loaded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from broker.config import KafkaConfig
from storage.cleaner import Throttler, prepare_clean
from storage.errors import StorageError
from storage.log_manager import LogManager

__all__ = ["start_log_tasks"]

logger = logging.getLogger(__name__)


def start_log_tasks(cfg: KafkaConfig, manager: LogManager,
                    high_watermarks: Callable[[], dict[tuple[str, int], int] | None],
                    replica_manager: Callable[[], Any]) -> list[asyncio.Task[None]]:
    """Start the log flusher, retention, checkpoints and (``log.cleaner.enable``) the cleaner;
    returns their tasks. ``replica_manager()`` is the node's, or None."""
    tasks: list[asyncio.Task[None]] = []
    periodic = [
        ("log flusher", cfg.get("log.flush.scheduler.interval.ms"), manager.flush_due),
        ("log retention", cfg.get("log.retention.check.interval.ms"),
         manager.enforce_retention),
        ("log checkpoints", cfg.get("log.flush.offset.checkpoint.interval.ms"),
         lambda _now_ms: manager.checkpoint(high_watermarks())),
    ]
    for name, interval_ms, work in periodic:
        if 0 < interval_ms < 2**62:
            tasks.append(asyncio.create_task(_every(name, interval_ms, work), name=name))
    if cfg.get("log.cleaner.enable"):
        tasks.append(asyncio.create_task(_run_cleaner(cfg, manager, replica_manager),
                                         name="log cleaner"))
    return tasks


async def _run_cleaner(cfg: KafkaConfig, manager: LogManager,
                       replica_manager: Callable[[], Any]) -> None:
    """Compaction: pick logs on the loop, rewrite segments in a worker thread (within the
    log.cleaner.io.max.bytes.per.second budget), swap them in on the loop."""
    rate = cfg.get("log.cleaner.io.max.bytes.per.second")
    budget = Throttler(rate) if 0 < rate < 1e300 else None
    dedupe = cfg.get("log.cleaner.dedupe.buffer.size")
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(cfg.get("log.cleaner.backoff.ms") / 1000)
        rm = replica_manager()
        # As Kafka's cleaner: nothing at or past a partition's last stable offset.
        lsos = None if rm is None else {
            tp: hp.last_stable_offset() for tp, hp in rm.partitions.items()}
        for tp, to_clean in manager.begin_cleaning(int(time.time() * 1000), lsos):
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


async def _every(name: str, interval_ms: int, work: Callable[[int], object]) -> None:
    """Run ``work(now_ms)`` every ``interval_ms``; an error is logged, not fatal to the loop."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            work(int(time.time() * 1000))
        except Exception:
            logger.exception("Periodic task %s failed", name)
