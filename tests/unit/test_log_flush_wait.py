"""The write path's group commit (storage/log_flush.py ``flush_wait``) and the append that takes
already parsed headers (storage/log_append.py): real logs in a temporary directory, fsyncs in
the event loop's worker thread."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from storage.errors import CorruptRecordError, InvalidRecordError, LogDirOfflineError
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.producer_state import batch_headers
from tests.helpers_batches import make_batch


def open_deferred(path: Path, flush_messages: int) -> PartitionLog:
    log = PartitionLog.open(path, LogConfig(flush_messages=flush_messages))
    log.defer_flush = True
    return log


def test_append_with_parsed_headers_writes_what_the_plain_append_writes(tmp_path: Path) -> None:
    buf = make_batch([10, 20, 30]) + make_batch([5], seed=1)
    a = PartitionLog.open(tmp_path / "a-0")
    b = PartitionLog.open(tmp_path / "b-0")
    for _ in range(3):
        ia = a.append(buf, leader_epoch=4)
        ib = b.append(buf, leader_epoch=4, headers=batch_headers(buf))
        assert ia == ib
    assert a.read_batches(0) == b.read_batches(0)
    assert a.latest_epoch == b.latest_epoch == 4
    a.close()
    b.close()


def test_append_with_parsed_headers_still_checks_the_crc(tmp_path: Path) -> None:
    buf = bytearray(make_batch([10]))
    headers = batch_headers(buf)
    buf[-1] ^= 0xFF
    log = PartitionLog.open(tmp_path / "t-0")
    with pytest.raises(CorruptRecordError):
        log.append(bytes(buf), headers=headers)
    one = make_batch([1])
    with pytest.raises(InvalidRecordError):  # fewer headers than batches
        log.append(one * 2, headers=batch_headers(one))
    assert log.log_end_offset == 0
    log.close()


def test_deferred_flush_waits_off_the_loop_and_covers_every_waiter(tmp_path: Path) -> None:
    log = open_deferred(tmp_path / "t-0", 1)

    async def producer(n: int) -> None:
        for _ in range(n):
            info = log.append(make_batch([100]))
            assert log.recovery_point <= info.first_offset  # not fsynced inline
            wait = log.flush_wait(info.last_offset + 1)
            assert wait is not None
            await wait
            assert log.recovery_point > info.last_offset

    async def main() -> None:
        await asyncio.gather(*(producer(10) for _ in range(8)))

    asyncio.run(main())
    assert log.recovery_point == log.log_end_offset == 80
    assert log.group_commit.sync_count < 80
    sizes = log.durable_file_sizes()
    active = log.active_segment
    assert sizes[active.log_path] == os.path.getsize(active.log_path)
    log.close()


def test_flush_messages_n_waits_only_when_due(tmp_path: Path) -> None:
    log = open_deferred(tmp_path / "t-0", 3)

    async def main() -> list[bool]:
        due = []
        for _ in range(7):
            info = log.append(make_batch([1]))
            wait = log.flush_wait(info.last_offset + 1)
            due.append(wait is not None)
            if wait is not None:
                await wait
        return due

    assert asyncio.run(main()) == [False, False, True, False, False, True, False]
    assert log.recovery_point == 6
    log.close()


def test_a_retry_waits_for_the_fsync_its_original_asked_for(tmp_path: Path) -> None:
    log = open_deferred(tmp_path / "t-0", 1)

    async def main() -> None:
        info = log.append(make_batch([1, 1]))
        first = log.flush_wait(info.last_offset + 1)
        assert first is not None
        task = asyncio.ensure_future(first)
        await asyncio.sleep(0)  # the fsync is requested, not done
        # A duplicate of that batch (answered with its offsets) must not be acknowledged now.
        again = log.flush_wait(info.last_offset + 1)
        if log.recovery_point < info.last_offset + 1:
            assert again is not None
        if again is not None:
            await again
        await task
        assert log.flush_wait(info.last_offset + 1) is None  # durable now

    asyncio.run(main())
    log.close()


def test_default_policy_and_inline_logs_never_wait(tmp_path: Path) -> None:
    deferred = open_deferred(tmp_path / "d-0", LogConfig().flush_messages)
    info = deferred.append(make_batch([1]))
    assert deferred.flush_wait(info.last_offset + 1) is None
    assert deferred.recovery_point == 0
    inline = PartitionLog.open(tmp_path / "i-0", LogConfig(flush_messages=1))
    info = inline.append(make_batch([1]))
    assert inline.recovery_point == 1  # fsynced by the append itself
    assert inline.flush_wait(info.last_offset + 1) is None
    deferred.close()
    inline.close()


def test_truncation_starts_a_new_group_commit(tmp_path: Path) -> None:
    """Offsets the old group commit reported durable may be rewritten after a truncation: the
    new tail must get an fsync of its own."""
    log = open_deferred(tmp_path / "t-0", 1)

    async def append_durably() -> int:
        info = log.append(make_batch([1, 1, 1]))
        wait = log.flush_wait(info.last_offset + 1)
        assert wait is not None
        await wait
        return info.last_offset

    async def main() -> None:
        await append_durably()
        await append_durably()
        old = log.group_commit
        assert old.durable_position == 6
        log.truncate_to(3)
        assert log.group_commit is not old
        assert log.group_commit.durable_position == log.recovery_point == 3
        info = log.append(make_batch([1, 1]))
        wait = log.flush_wait(info.last_offset + 1)
        assert wait is not None  # 3..4 are not durable yet
        await wait
        assert log.recovery_point == 5

    asyncio.run(main())
    log.close()


def test_an_fsync_failure_fails_the_waiters_and_takes_the_log_offline(tmp_path: Path) -> None:
    log = open_deferred(tmp_path / "t-0", 1)

    async def main() -> None:
        info = log.append(make_batch([1]))
        wait = log.flush_wait(info.last_offset + 1)
        assert wait is not None
        log.active_segment.close()  # the descriptors the fsync duplicates are gone
        with pytest.raises((OSError, LogDirOfflineError)):
            await wait

    asyncio.run(main())
    assert log.offline
