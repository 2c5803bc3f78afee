"""Delayed operations (Kafka's ``DelayedOperationPurgatory``), for long-poll fetches and
``acks=all`` produces.

A handler that cannot answer yet calls ``await purgatory.wait(keys, ready, timeout_s)``: the
operation is watched under each key (a topic partition) and ``ready()`` is re-evaluated
whenever something calls ``check(key)`` for one of them (an append, a high watermark move, a
leadership change). ``wait`` returns True once ``ready()`` held, False on timeout; the handler
then builds its response from the current state. ``ready`` must be cheap and must not raise.

The purgatory is bounded (``max_size`` waiting operations): past the bound ``wait`` returns
False at once, so the caller answers with what it has (a fetch returns what is there, a produce
times out), instead of memory growing without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["DEFAULT_PURGATORY_SIZE", "Purgatory"]

K = TypeVar("K", bound=Hashable)

DEFAULT_PURGATORY_SIZE = 50_000


class _Op:
    __slots__ = ("future", "keys", "ready", "ready_for")

    def __init__(self, keys: tuple[Hashable, ...], ready: Callable[[], bool],
                 ready_for: Callable[[Hashable], bool] | None,
                 future: asyncio.Future[bool]) -> None:
        self.keys = keys
        self.ready = ready
        self.ready_for = ready_for
        self.future = future


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class Purgatory(Generic[K]):
    def __init__(self, name: str, max_size: int = DEFAULT_PURGATORY_SIZE) -> None:
        assert max_size >= 0
        self.name = name
        self.max_size = max_size
        self._watchers: dict[Hashable, list[_Op]] = {}
        self._size = 0
        self.expired = 0
        self.completed = 0
        self.rejected = 0

    def __len__(self) -> int:
        return self._size

    async def wait(self, keys: Iterable[K], ready: Callable[[], bool], timeout_s: float, *,
                   ready_for: Callable[[K], bool] | None = None) -> bool:
        """Wait until ``ready()`` holds (checked now and on each ``check`` of a key) or until
        ``timeout_s``. True if ready.

        ``ready_for(key)``, if given, is what a ``check(key)`` evaluates instead of ``ready()``:
        whether the operation is now ready given that ``key`` changed. An operation watching
        many keys (a fetch of 50 partitions) then looks at the one that moved, not at all."""
        if ready():
            return True
        if timeout_s <= 0:
            return False
        if self._size >= self.max_size:
            self.rejected += 1
            return False
        loop = asyncio.get_running_loop()
        op = _Op(tuple(dict.fromkeys(keys)), ready, ready_for,  # type: ignore[arg-type]
                 loop.create_future())
        for k in op.keys:
            self._watchers.setdefault(k, []).append(op)
        self._size += 1
        # A plain timer rather than asyncio.timeout: one per waiting produce or fetch.
        timer = loop.call_later(timeout_s, _expire, op.future)
        try:
            done = await op.future
        finally:
            timer.cancel()
            self._unwatch(op)
        if not done:
            self.expired += 1
        return done

    def check(self, key: K) -> int:
        """Re-evaluate the operations watching ``key``; returns how many completed."""
        ops = self._watchers.get(key)
        if not ops:
            return 0
        done = 0
        for op in list(ops):
            if op.future.done():
                continue
            if op.ready() if op.ready_for is None else op.ready_for(key):
                op.future.set_result(True)
                done += 1
        self.completed += done
        return done

    def cancel_all(self) -> None:
        """Complete every waiting operation now (shutdown)."""
        for ops in list(self._watchers.values()):
            for op in ops:
                if not op.future.done():
                    op.future.set_result(True)

    def _unwatch(self, op: _Op) -> None:
        self._size -= 1
        for k in op.keys:
            ops = self._watchers.get(k)
            if ops is None:
                continue
            with contextlib.suppress(ValueError):
                ops.remove(op)
            if not ops:
                del self._watchers[k]
