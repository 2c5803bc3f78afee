"""Storage benchmark: PartitionLog append and read throughput against raw file I/O.

    python -m tools.storage_bench [--mb 128] [--batch-kib 16] [--rounds 3] [--dir DIR]

Every figure is printed next to a raw baseline measured in the same run on the same bytes, so
the ratio is what matters on a noisy machine:

- append, fsync off: ``batch_headers`` + ``PartitionLog.append`` of one 16 KiB batch per call
  (the produce path: header parse, CRC check, header rewrite, index upkeep) against ``os.write`` of the same bytes per call;
  and 64 batches per call (the replication path, a follower appending a fetched chunk)
  against ``os.write`` of the same 1 MiB chunks.
- append, group commit: the broker's write path under ``flush.messages=1`` (many concurrent
  appenders, each awaiting ``PartitionLog.flush_wait``: one fsync in a worker thread covers
  every append waiting at that moment), against raw ``os.write`` with ``os.fsync`` at the same
  cadence (the same number of fsyncs for the same bytes).
- read: ``PartitionLog.read`` + ``FetchSlice.read_bytes`` in 1 MiB fetches against
  ``os.pread`` of the same 1 MiB chunks (page cache warm for both).

Each row is the best of ``--rounds`` rounds, raw and log alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.producer_state import batch_headers
from storage.records import SimpleRecord, build_batch

FETCH_BYTES = 1 << 20
PRODUCERS = 32


def _make_batch(batch_bytes: int) -> bytes:
    record_size = 1024
    count = max(1, (batch_bytes - 61) // (record_size + 20))
    payload = os.urandom(record_size)
    records = [
        SimpleRecord(value=payload, key=b"key-%d" % i, timestamp=1_700_000_000_000)
        for i in range(count)
    ]
    return build_batch(records)


def _best(samples: list[float]) -> float:
    return max(samples)


def _raw_write(path: Path, chunk: bytes, count: int, fsync_every: int = 0) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        start = time.perf_counter()
        for i in range(count):
            os.write(fd, chunk)
            if fsync_every and (i + 1) % fsync_every == 0:
                os.fsync(fd)
        if fsync_every:
            os.fsync(fd)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return len(chunk) * count / elapsed


def _raw_read(path: Path, chunk_bytes: int) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        total = 0
        start = time.perf_counter()
        while True:
            data = os.pread(fd, chunk_bytes, total)
            if not data:
                break
            total += len(data)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return total / elapsed


def _log_config() -> LogConfig:
    return LogConfig(segment_bytes=1 << 30)


def _log_append(directory: Path, chunk: bytes, count: int) -> float:
    log = PartitionLog.open(directory, _log_config())
    try:
        start = time.perf_counter()
        for _ in range(count):
            # As the broker's produce path: the headers parsed once (for the producer-state
            # checks) and handed down to the append.
            log.append(chunk, leader_epoch=0, headers=batch_headers(chunk))
        elapsed = time.perf_counter() - start
    finally:
        log.close()
    return len(chunk) * count / elapsed


def _log_append_group_commit(directory: Path, batch: bytes, count: int) -> tuple[float, int]:
    # The broker's write path under flush.messages=1 (broker/replication/partition.py and
    # apis.py): parse the headers once, append with them, await the log's group commit.
    log = PartitionLog.open(directory, _log_config().replace(flush_messages=1))
    log.defer_flush = True
    per_producer = count // PRODUCERS

    async def main() -> int:
        async def producer() -> None:
            for _ in range(per_producer):
                info = log.append(batch, leader_epoch=0, headers=batch_headers(batch))
                flush = log.flush_wait(info.last_offset + 1)
                assert flush is not None, "flush.messages=1 waits for every append"
                await flush

        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        return log.group_commit.sync_count

    try:
        start = time.perf_counter()
        syncs = asyncio.run(main())
        elapsed = time.perf_counter() - start
    finally:
        log.close()
    return len(batch) * per_producer * PRODUCERS / elapsed, syncs


def _log_read(directory: Path) -> float:
    log = PartitionLog.open(directory, _log_config(), recovery_point=1 << 62)
    try:
        total = 0
        offset = log.log_start_offset
        end = log.log_end_offset
        start = time.perf_counter()
        while offset < end:
            fetched = log.read(offset, FETCH_BYTES)
            assert fetched is not None
            with fetched:
                total += len(fetched.read_bytes())
                offset = fetched.next_offset
        elapsed = time.perf_counter() - start
    finally:
        log.close()
    return total / elapsed


def _row(name: str, ours: float, raw: float, extra: str = "") -> None:
    print(
        f"{name:<44} {ours / 1e6:9.1f} MB/s   raw {raw / 1e6:9.1f} MB/s   "
        f"ratio {ours / raw:5.2f}{extra}"
    )


def _rounds(rounds: int, raw: Callable[[], float], ours: Callable[[], float]) -> tuple[float, float]:
    raw_samples, our_samples = [], []
    for _ in range(rounds):
        raw_samples.append(raw())
        our_samples.append(ours())
    return _best(our_samples), _best(raw_samples)


def run(total_mb: int, batch_kib: int, rounds: int, base: Path) -> None:
    batch = _make_batch(batch_kib * 1024)
    count = total_mb * (1 << 20) // len(batch)
    chunk_batches = 64
    big_chunk = batch * chunk_batches
    big_count = max(1, count // chunk_batches)
    raw_path = base / "raw.bin"
    print(
        f"storage benchmark: {count} batches of {len(batch)} bytes ({count * len(batch) >> 20} "
        f"MiB) per round, best of {rounds} rounds, in {base}"
    )

    def fresh(name: str) -> Path:
        path = base / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    ours, raw = _rounds(
        rounds,
        lambda: _raw_write(raw_path, batch, count),
        lambda: _log_append(fresh("append-1"), batch, count),
    )
    _row("append, fsync off, 1 batch per call", ours, raw)
    ours, raw = _rounds(
        rounds,
        lambda: _raw_write(raw_path, big_chunk, big_count),
        lambda: _log_append(fresh("append-64"), big_chunk, big_count),
    )
    _row(f"append, fsync off, {chunk_batches} batches per call", ours, raw)

    gc_count = min(count, 4096)
    gc_samples: list[tuple[float, int]] = []
    raw_samples: list[float] = []
    for _ in range(rounds):
        gc_samples.append(_log_append_group_commit(fresh("append-gc"), batch, gc_count))
        syncs = gc_samples[-1][1]
        raw_samples.append(
            _raw_write(raw_path, batch, gc_count, fsync_every=max(1, gc_count // syncs))
        )
    best_gc = max(gc_samples)
    _row(
        f"append, group commit, {PRODUCERS} appenders",
        best_gc[0],
        _best(raw_samples),
        f"   ({gc_count} appends, {statistics.median(s for _, s in gc_samples):.0f} fsyncs)",
    )

    # Read back the 1-batch-per-call log (page cache warm) and the raw file it matches.
    _log_append(fresh("read"), batch, count)
    _raw_write(raw_path, batch, count)
    ours, raw = _rounds(
        rounds,
        lambda: _raw_read(raw_path, FETCH_BYTES),
        lambda: _log_read(base / "read"),
    )
    _row("read, 1 MiB fetches", ours, raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=128, help="MiB appended per round")
    parser.add_argument("--batch-kib", type=int, default=16, help="batch size in KiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.dir))
    try:
        run(args.mb, args.batch_kib, args.rounds, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
