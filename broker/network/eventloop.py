"""The event loop the network server runs on: uvloop when it is importable, and eager tasks
(Python >= 3.12) for request handlers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["install_event_loop_policy", "new_event_loop", "new_task", "run"]


if sys.version_info >= (3, 12):
    def new_task(loop: asyncio.AbstractEventLoop,
                 coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # Eager: runs up to the first suspension now, as the current task (so asyncio.timeout
        # and current_task() work); one that never suspends is done without a loop iteration.
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
else:
    def new_task(loop: asyncio.AbstractEventLoop,
                 coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return loop.create_task(coro)


def install_event_loop_policy() -> bool:
    """Use uvloop for new event loops if it is importable; return whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop if uvloop is importable, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` on ``new_event_loop()`` (uvloop when available)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
