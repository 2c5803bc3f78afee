"""Group commit for fsync, for asyncio callers; and Kafka's log.flush.interval.* policy.

``GroupCommit``: one fsync covers every append waiting at that moment. Appenders write to the
file (page cache) on the event loop, then ``await wait_durable(position)``. At most one ``sync()``
runs at a time, in an executor thread; waiters that arrive while it runs queue up, and when it
finishes all waiters it covered resolve and exactly one new sync starts for the rest. Under load
the number of fsyncs is bounded by the fsync rate, not the append rate; an idle log pays one
fsync latency per append, no timers, no polling.

``FlushPolicy``: pure logic for Kafka's ``flush.messages`` / ``flush.ms`` (``log.flush.interval.
messages`` / ``log.flush.interval.ms``): does a log have to be flushed now?
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FlushPolicy", "GroupCommit", "SyncContractError", "SyncJob"]


class SyncContractError(RuntimeError):
    """``sync()`` returned a position below one that was written before it started: a bug in the
    sync function (it must read the position *before* it fsyncs, and cover all written data)."""


class SyncJob(Protocol):
    """A sync prepared on the event loop (``begin``), run in a worker thread, and finished
    on the event loop again, e.g. ``PartitionLog.begin_flush``'s ``LogFlushJob``."""

    def run(self) -> int: ...

    def finish(self, ok: bool) -> None: ...


class GroupCommit:
    """Coalesce durability waits into as few ``sync()`` calls as possible.

    ``sync()`` runs in a worker thread (``loop.run_in_executor(executor, sync)``). It must fsync
    everything written so far and return the position now durable: read the position first, then
    fsync, then return it. Positions are any monotonically increasing integers (offsets, bytes)
    used consistently by ``written``, ``wait_durable`` and ``sync``; a waiter for ``p`` resolves
    once a completed sync returned a position >= ``p``.

    Waiting on ``p`` also declares ``p`` written (``wait_durable`` calls ``written``), so calling
    ``written`` is only needed to make ``written_position`` / ``flush()`` see data nobody waits on.

    Errors: if ``sync()`` raises, every waiter pending at that moment fails with that exception
    and ``last_error`` is set. Nothing is retried by itself; the next ``wait_durable`` above
    ``durable_position`` starts a new sync and clears ``last_error`` if it succeeds. Beware
    (PostgreSQL's "fsyncgate"): after a failed fsync the kernel may have dropped the dirty pages, so
    a later successful fsync does not prove the earlier data reached the disk; the log should
    treat a sync error as fatal for its directory (the environment-error tier of docs/architecture.md).

    Not thread-safe: call ``written``, ``wait_durable`` and ``flush`` from the event loop thread.
    """

    def __init__(
        self,
        sync: Callable[[], int] | None = None,
        *,
        begin: Callable[[], SyncJob] | None = None,
        executor: Executor | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        durable_position: int = -1,
    ) -> None:
        """Give either ``sync`` (thread-safe on its own) or ``begin``, which is called on the
        event loop to prepare each sync job (for state that only the loop may touch)."""
        if (sync is None) == (begin is None):
            raise TypeError("GroupCommit needs exactly one of sync or begin")
        self._sync = sync
        self._begin = begin
        self._executor = executor
        self._loop = loop
        self.durable_position = durable_position  # highest position a completed sync returned
        self.written_position = durable_position  # highest position declared written
        self.sync_count = 0  # sync() calls started (successful or not)
        self.last_error: BaseException | None = None
        self._syncing = False
        self._covering = durable_position  # written_position when the running sync started
        # Min-heap of (position, seq, future); seq keeps the ordering total.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def sync_in_progress(self) -> bool:
        return self._syncing

    @property
    def pending_waiters(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    def written(self, position: int) -> None:
        """The caller appended data up to ``position`` (to the page cache, not yet durable)."""
        self.written_position = max(self.written_position, position)

    async def wait_durable(self, position: int) -> None:
        """Return once a sync that covers ``position`` has completed; raise if it failed."""
        if position <= self.durable_position:
            return
        self.written(position)
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiters, (position, next(self._seq), future))
        if not self._syncing:
            self._start_sync(loop)
        # A cancelled waiter just leaves its (cancelled) future in the heap; it is skipped.
        await future

    async def flush(self) -> None:
        """Make everything declared written so far durable."""
        await self.wait_durable(self.written_position)

    # -- internals ----------------------------------------------------------------------------

    def _start_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        assert not self._syncing
        self._syncing = True
        self._covering = self.written_position
        self.sync_count += 1
        job: SyncJob | None = None
        if self._begin is not None:
            try:
                job = self._begin()
            except BaseException as e:  # noqa: BLE001 - handed to the waiters below
                failed: asyncio.Future[int] = loop.create_future()
                failed.set_exception(e)
                self._on_sync_done(loop, failed)
                return
            sync = job.run
        else:
            assert self._sync is not None
            sync = self._sync
        task = loop.run_in_executor(self._executor, sync)
        task.add_done_callback(lambda t: self._on_sync_done(loop, t, job))

    def _on_sync_done(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Future[int], job: SyncJob | None = None
    ) -> None:
        self._syncing = False
        if job is not None:
            job.finish(not task.cancelled() and task.exception() is None)
        error: BaseException | None
        if task.cancelled():
            error = asyncio.CancelledError("sync was cancelled")
        else:
            error = task.exception()
        if error is not None:
            self.last_error = error
            waiters, self._waiters = self._waiters, []
            for _, _, future in waiters:
                if not future.done():
                    if isinstance(error, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(error)
            return

        durable = task.result()
        if not isinstance(durable, int):
            error = TypeError(f"sync() must return an int position, got {durable!r}")
            self.last_error = error
            waiters, self._waiters = self._waiters, []
            for _, _, future in waiters:
                if not future.done():
                    future.set_exception(error)
            return
        self.last_error = None
        self.durable_position = max(self.durable_position, durable)
        while self._waiters and self._waiters[0][0] <= self.durable_position:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
        if self.durable_position < self._covering:
            # Waiters written before this sync started that it did not cover: another sync
            # would be no different, so fail them instead of looping on fsync forever.
            error = SyncContractError(
                f"sync() returned {durable}, but position {self._covering} had been written "
                "before it started"
            )
            while self._waiters and self._waiters[0][0] <= self._covering:
                _, _, future = heapq.heappop(self._waiters)
                if not future.done():
                    future.set_exception(error)
        # Drop cancelled waiters; whoever is left arrived during the sync: one sync for all.
        if any(future.done() for _, _, future in self._waiters):
            self._waiters = [w for w in self._waiters if not w[2].done()]
            heapq.heapify(self._waiters)
        if self._waiters:
            self._start_sync(loop)


# ------------------------------------------------------------------------------------------------

# Kafka's defaults for both keys: Long.MAX_VALUE, i.e. never force a flush and rely on
# replication plus the OS for durability.
FLUSH_NEVER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """Kafka's ``flush.messages`` / ``flush.ms`` (``log.flush.interval.messages`` / ``.ms``).

    Kafka flushes a log on append once ``log_end_offset - recovery_point`` (unflushed messages)
    is >= ``flush.messages``, and from its periodic flusher once ``now - last_flush_time`` is
    >= ``flush.ms``. A flush with nothing unflushed is a no-op in Kafka (it neither syncs nor
    moves the last flush time), so nothing is due while ``unflushed_messages`` is 0.
    """

    flush_messages: int = FLUSH_NEVER
    flush_ms: int = FLUSH_NEVER

    def __post_init__(self) -> None:
        # Kafka's validators: flush.messages atLeast(1), flush.ms atLeast(0).
        if self.flush_messages < 1:
            raise ValueError(f"flush_messages must be >= 1, got {self.flush_messages}")
        if self.flush_ms < 0:
            raise ValueError(f"flush_ms must be >= 0, got {self.flush_ms}")

    def should_flush(self, unflushed_messages: int, last_flush_ms: int, now_ms: int) -> bool:
        """Whether the log must be flushed now."""
        if unflushed_messages <= 0:
            return False
        return (
            unflushed_messages >= self.flush_messages
            or now_ms - last_flush_ms >= self.flush_ms
        )

    def ms_until_flush(self, unflushed_messages: int, last_flush_ms: int,
                       now_ms: int) -> int | None:
        """Milliseconds until the time rule makes a flush due (0 if due now); ``None`` if nothing
        is unflushed or ``flush_ms`` is the "never" default. For arming a timer."""
        if unflushed_messages <= 0:
            return None
        if self.should_flush(unflushed_messages, last_flush_ms, now_ms):
            return 0
        if self.flush_ms >= FLUSH_NEVER:
            return None
        return last_flush_ms + self.flush_ms - now_ms
