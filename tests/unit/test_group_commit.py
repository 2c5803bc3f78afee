"""GroupCommit with a real file, real fsync and real executor threads; FlushPolicy."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.group_commit import FLUSH_NEVER, FlushPolicy, GroupCommit, SyncContractError

TIMEOUT_S = 20


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


class FileLog:
    """An append-only file whose ``sync`` fsyncs and records what each sync covered."""

    def __init__(self, path: Path, first_sync_delay_s: float = 0.0) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.first_sync_delay_s = first_sync_delay_s
        self.lock = threading.Lock()
        self.covered: list[int] = []  # position returned by each completed sync, in order
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.threads: set[str] = set()
        self.fail_calls: set[int] = set()  # 1-based sync calls that raise
        self.failure_delay_s = 0.0
        self.lie_by = 0  # return a position this much lower than the truth

    def append(self, data: bytes) -> int:
        os.write(self.fd, data)
        return os.fstat(self.fd).st_size

    def sync(self) -> int:
        with self.lock:
            self.calls += 1
            call = self.calls
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.threads.add(threading.current_thread().name)
        try:
            position = os.fstat(self.fd).st_size  # read the position first, then fsync
            if call == 1 and self.first_sync_delay_s:
                time.sleep(self.first_sync_delay_s)
            if call in self.fail_calls:
                time.sleep(self.failure_delay_s)
                raise OSError(5, f"simulated EIO on sync {call}")
            os.fsync(self.fd)
            with self.lock:
                self.covered.append(position - self.lie_by)
            return position - self.lie_by
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[FileLog]:
    log = FileLog(tmp_path / "00000000000000000000.log")
    yield log
    log.close()


def test_200_waiters_share_few_syncs(log: FileLog) -> None:
    log.first_sync_delay_s = 0.1  # the first sync is slow, so everyone else piles up behind it

    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        resolved: list[int] = []

        async def waiter(position: int) -> None:
            await gc.wait_durable(position)
            # Only a *completed* sync that covered this position may have released us.
            with log.lock:
                assert log.covered and max(log.covered) >= position
            assert gc.durable_position >= position
            resolved.append(position)

        tasks = []
        for _batch in range(4):
            for _ in range(50):
                position = log.append(b"r" * 100)
                gc.written(position)
                tasks.append(asyncio.create_task(waiter(position)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        assert sorted(resolved) == [100 * i for i in range(1, 201)]
        return gc

    gc = run(main())
    assert log.calls == len(log.covered) == gc.sync_count
    assert 1 <= log.calls <= 5, log.covered
    assert log.max_in_flight == 1  # never two syncs at once
    assert log.covered == sorted(log.covered)
    assert gc.durable_position == 200 * 100
    assert gc.pending_waiters == 0 and not gc.sync_in_progress
    assert all(not name.startswith("MainThread") for name in log.threads)


def test_waiters_on_same_positions_with_own_executor(log: FileLog) -> None:
    log.first_sync_delay_s = 0.05

    async def main() -> GroupCommit:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fsync") as pool:
            gc = GroupCommit(log.sync, executor=pool, loop=asyncio.get_running_loop())
            positions = [log.append(b"x" * 10) for _ in range(5)]
            await asyncio.gather(*(gc.wait_durable(positions[i % 5]) for i in range(200)))
            return gc

    gc = run(main())
    assert log.calls == 1  # all 5 appends were written before the first sync read the size
    assert gc.durable_position == 50
    assert log.threads and all(name.startswith("fsync") for name in log.threads)


def test_already_durable_returns_without_sync(log: FileLog) -> None:
    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        position = log.append(b"abc")
        await gc.wait_durable(position)
        await gc.wait_durable(position)
        await gc.wait_durable(1)
        await gc.wait_durable(-5)
        return gc

    gc = run(main())
    assert log.calls == 1 and gc.durable_position == 3


def test_initial_durable_position(log: FileLog) -> None:
    async def main() -> None:
        gc = GroupCommit(log.sync, durable_position=0)
        await gc.wait_durable(0)  # nothing written: already durable
        assert log.calls == 0
        await gc.wait_durable(log.append(b"a"))
        assert log.calls == 1

    run(main())


def test_flush_covers_written_positions(log: FileLog) -> None:
    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        gc.written(log.append(b"a" * 7))
        gc.written(log.append(b"b" * 7))
        assert gc.durable_position == -1 and log.calls == 0  # written() alone never syncs
        await gc.flush()
        return gc

    gc = run(main())
    assert gc.durable_position == 14 and log.calls == 1 and gc.written_position == 14


def test_sync_exception_fails_current_waiters_then_recovers(log: FileLog) -> None:
    log.fail_calls = {2}
    log.failure_delay_s = 0.05

    async def main() -> None:
        gc = GroupCommit(log.sync)
        await gc.wait_durable(log.append(b"ok"))  # sync 1 succeeds
        assert gc.durable_position == 2

        first = [asyncio.create_task(gc.wait_durable(log.append(b"x"))) for _ in range(10)]
        await asyncio.sleep(0.01)  # sync 2 is now running (and will fail)
        assert gc.sync_in_progress
        late = [asyncio.create_task(gc.wait_durable(log.append(b"y"))) for _ in range(10)]
        results = await asyncio.gather(*first, *late, return_exceptions=True)
        # Every waiter pending when sync 2 failed gets its exception, including those that
        # queued while it ran; no automatic retry.
        assert all(isinstance(r, OSError) and "sync 2" in str(r) for r in results), results
        assert results[0] is results[-1]
        assert isinstance(gc.last_error, OSError)
        assert log.calls == 2 and gc.durable_position == 2
        assert not gc.sync_in_progress and gc.pending_waiters == 0

        # The next waiter starts a new sync, which succeeds and covers everything written.
        end = log.append(b"z")
        await gc.wait_durable(end)
        assert gc.last_error is None
        assert log.calls == 3 and gc.durable_position == end == 2 + 10 + 10 + 1

    run(main())


def test_failure_of_every_sync_keeps_failing(log: FileLog) -> None:
    log.fail_calls = {1, 2, 3}

    async def main() -> None:
        gc = GroupCommit(log.sync)
        for call in (1, 2, 3):
            with pytest.raises(OSError, match=f"sync {call}"):
                await gc.wait_durable(log.append(b"q"))
        await gc.wait_durable(log.append(b"q"))
        assert gc.durable_position == 4

    run(main())


def test_sync_returning_too_little_fails_instead_of_looping(log: FileLog) -> None:
    log.lie_by = 1

    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        position = log.append(b"abcd")
        with pytest.raises(SyncContractError):
            await gc.wait_durable(position)
        return gc

    gc = run(main())
    assert log.calls == 1 and gc.durable_position == 3


def test_cancelled_waiter_does_not_disturb_others(log: FileLog) -> None:
    log.first_sync_delay_s = 0.05

    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        a = asyncio.create_task(gc.wait_durable(log.append(b"a")))
        await asyncio.sleep(0.01)  # sync 1 running, covering position 1
        b = asyncio.create_task(gc.wait_durable(log.append(b"b")))
        c = asyncio.create_task(gc.wait_durable(log.append(b"c")))
        await asyncio.sleep(0)
        b.cancel()
        await a
        await c
        with pytest.raises(asyncio.CancelledError):
            await b
        return gc

    gc = run(main())
    assert log.calls == 2 and gc.durable_position == 3


def test_only_cancelled_waiters_left_starts_no_sync(log: FileLog) -> None:
    log.first_sync_delay_s = 0.05

    async def main() -> GroupCommit:
        gc = GroupCommit(log.sync)
        a = asyncio.create_task(gc.wait_durable(log.append(b"a")))
        await asyncio.sleep(0.01)
        b = asyncio.create_task(gc.wait_durable(log.append(b"b")))
        await asyncio.sleep(0)
        b.cancel()
        await a
        await asyncio.sleep(0.05)
        return gc

    gc = run(main())
    assert log.calls == 1 and not gc.sync_in_progress and gc.pending_waiters == 0


# -- FlushPolicy ----------------------------------------------------------------------------------


def test_flush_policy_defaults_never_flush() -> None:
    policy = FlushPolicy()
    assert policy.flush_messages == policy.flush_ms == FLUSH_NEVER == 2**63 - 1
    assert not policy.should_flush(10**12, 0, 10**12)
    assert policy.ms_until_flush(5, 0, 1000) is None


def test_flush_policy_messages() -> None:
    policy = FlushPolicy(flush_messages=3)
    assert not policy.should_flush(0, 0, 0)
    assert not policy.should_flush(2, 0, 0)
    assert policy.should_flush(3, 0, 0)  # >= like Kafka's unflushedMessages >= flushInterval
    assert policy.should_flush(4, 0, 0)
    assert FlushPolicy(flush_messages=1).should_flush(1, 0, 0)


def test_flush_policy_time() -> None:
    policy = FlushPolicy(flush_ms=1000)
    assert not policy.should_flush(1, 5000, 5999)
    assert policy.should_flush(1, 5000, 6000)
    assert policy.should_flush(1, 5000, 9000)
    assert not policy.should_flush(0, 5000, 9000)  # nothing to flush: never due
    assert not policy.should_flush(1, 5000, 4000)  # clock went backwards: not due
    assert policy.ms_until_flush(1, 5000, 5400) == 600
    assert policy.ms_until_flush(1, 5000, 6400) == 0
    assert policy.ms_until_flush(0, 5000, 6400) is None
    assert FlushPolicy(flush_ms=0).should_flush(1, 5000, 5000)


def test_flush_policy_either_rule() -> None:
    policy = FlushPolicy(flush_messages=100, flush_ms=50)
    assert policy.should_flush(100, 0, 1)
    assert policy.should_flush(1, 0, 50)
    assert not policy.should_flush(99, 0, 49)
    assert policy.ms_until_flush(100, 0, 1) == 0


@pytest.mark.parametrize(("messages", "ms"), [(0, 10), (-1, 10), (1, -1)])
def test_flush_policy_validation(messages: int, ms: int) -> None:
    with pytest.raises(ValueError):
        FlushPolicy(flush_messages=messages, flush_ms=ms)


def test_group_commit_drives_partition_log_flush_jobs(tmp_path: Path) -> None:
    """begin=log.begin_flush: fsyncs run in a thread while the loop keeps appending; every
    waiter resolves only once recovery_point covers its offset."""
    from storage.log import PartitionLog
    from tests.helpers_batches import make_batch

    log = PartitionLog.open(tmp_path / "t-0")
    gc = GroupCommit(begin=log.begin_flush)

    async def producer(n: int) -> list[int]:
        seen = []
        for _ in range(n):
            info = log.append(make_batch([100]))
            await gc.wait_durable(info.last_offset + 1)
            assert log.recovery_point >= info.last_offset + 1
            seen.append(info.last_offset)
        return seen

    async def main() -> None:
        results = await asyncio.gather(*(producer(20) for _ in range(10)))
        assert sum(len(r) for r in results) == 200

    asyncio.run(main())
    assert log.recovery_point == log.log_end_offset == 200
    assert gc.sync_count < 200  # waiters shared fsyncs
    for path, durable_size in log.durable_file_sizes().items():
        if path.suffix == ".log":
            assert durable_size == path.stat().st_size
    log.close()
