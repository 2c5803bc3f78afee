"""broker.replication.purgatory: delayed operations completed by checks, timeouts and the size bound."""

from __future__ import annotations

import asyncio

from broker.replication.purgatory import Purgatory


def test_ready_at_once_and_timeout() -> None:
    async def run() -> None:
        p: Purgatory[str] = Purgatory("t")
        assert await p.wait(["a"], lambda: True, 10)
        assert not await p.wait(["a"], lambda: False, 0)
        assert not await p.wait(["a"], lambda: False, 0.01)
        assert len(p) == 0 and p.expired == 1

    asyncio.run(run())


def test_check_completes_watchers_of_the_key() -> None:
    async def run() -> None:
        p: Purgatory[str] = Purgatory("t")
        state = {"a": 0}
        w1 = asyncio.create_task(p.wait(["a", "b"], lambda: state["a"] >= 2, 5))
        w2 = asyncio.create_task(p.wait(["b"], lambda: state["a"] >= 1, 5))
        await asyncio.sleep(0)
        assert len(p) == 2
        state["a"] = 1
        assert p.check("a") == 0  # w1 is not ready yet; w2 is not watching "a"
        assert p.check("b") == 1
        assert await w2 is True
        state["a"] = 2
        assert p.check("a") == 1
        assert await w1 is True
        assert len(p) == 0 and p.check("a") == 0

    asyncio.run(run())


def test_bounded_and_cancel_all() -> None:
    async def run() -> None:
        p: Purgatory[int] = Purgatory("t", max_size=1)
        w = asyncio.create_task(p.wait([1], lambda: False, 5))
        await asyncio.sleep(0)
        assert not await p.wait([1], lambda: False, 5)  # full: answered at once
        assert p.rejected == 1
        p.cancel_all()
        assert await w is True
        assert len(p) == 0

    asyncio.run(run())
