"""The cleaner's segment I/O: reading batches through its own fds of the segments being cleaned
(chunked, throttled) and writing a new segment as ``.cleaned`` files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from storage.cleaner.plan import _SUFFIXES, CleanAbortedError, CleanStats, _SegmentRef, _unlink
from storage.errors import CorruptRecordError
from storage.index import OffsetIndex, TimeIndex
from storage.log_config import LogConfig
from storage.record_batch import HEADER_SIZE, BatchHeader, parse_header
from storage.segment import LogSegment
from storage.segment_files import (
    CLEANED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    segment_file_name,
)


def _pread_exact(fd: int, size: int, position: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.pread(fd, size - got, position + got)
        if not chunk:
            raise CleanAbortedError(
                f"short read at {position + got}: the segment shrank during cleaning"
            )
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _iter_batches(
    ref: _SegmentRef,
    start: int,
    io_buffer_size: int,
    throttle: Callable[[int], None],
    stats: CleanStats,
) -> Iterator[tuple[BatchHeader, memoryview]]:
    """(header, whole batch bytes) of each batch of ``ref`` from position ``start``, read in
    ``io_buffer_size`` chunks. The view stays valid after the next item (buffers are not reused).
    Lengths and magic are checked here; CRCs by the caller (``validate_batch``/``decode_batch``).
    """
    end = ref.size
    pos = start
    buf = b""
    buf_start = pos
    chunk = max(io_buffer_size, HEADER_SIZE)
    while pos < end:
        rel = pos - buf_start
        if rel + HEADER_SIZE > len(buf):
            if end - pos < HEADER_SIZE:
                raise CorruptRecordError(f"{ref.name}: torn batch header at position {pos}")
            buf = _pread_exact(ref.fd, min(chunk, end - pos), pos)
            buf_start, rel = pos, 0
            stats.bytes_read += len(buf)
            throttle(len(buf))
        header = parse_header(buf, rel)
        if rel + header.size > len(buf):
            if pos + header.size > end:
                raise CorruptRecordError(
                    f"{ref.name}: batch at position {pos} declares {header.size} bytes, only "
                    f"{end - pos} present"
                )
            buf = _pread_exact(ref.fd, min(max(header.size, chunk), end - pos), pos)
            buf_start, rel = pos, 0
            stats.bytes_read += len(buf)
            throttle(len(buf))
        stats.batches_read += 1
        yield header, memoryview(buf)[rel : rel + header.size]
        pos += header.size


def _iter_headers(
    ref: _SegmentRef, throttle: Callable[[int], None], stats: CleanStats
) -> Iterator[BatchHeader]:
    """Batch headers only (one small read each)."""
    pos = 0
    while pos < ref.size:
        data = os.pread(ref.fd, HEADER_SIZE, pos)
        stats.bytes_read += len(data)
        throttle(len(data))
        header = parse_header(data)
        yield header
        pos += header.size


class _CleanedSegmentWriter:
    """Writes one new segment as ``<base>.log.cleaned`` + ``.index.cleaned`` +
    ``.timeindex.cleaned``, through a ``LogSegment`` so indexes are built exactly as appends
    build them."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        io_buffer_size: int,
        throttle: Callable[[int], None],
        stats: CleanStats,
    ) -> None:
        self.paths = {
            suffix: directory / (segment_file_name(base_offset, suffix) + CLEANED_SUFFIX)
            for suffix in _SUFFIXES
        }
        for path in self.paths.values():
            _unlink(path)  # a leftover of an earlier, failed attempt in this process
        self._throttle = throttle
        self._stats = stats
        self._flush_at = max(io_buffer_size, 1)
        self._buf = bytearray()
        self._headers: list[tuple[int, BatchHeader]] = []
        self._last_offset = base_offset
        self.batches = 0
        fd = os.open(self.paths[LOG_SUFFIX], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        offset_index: OffsetIndex | None = None
        try:
            offset_index = OffsetIndex.open_empty(
                self.paths[INDEX_SUFFIX], base_offset, config.max_index_entries
            )
            time_index = TimeIndex.open_empty(
                self.paths[TIME_INDEX_SUFFIX], base_offset, config.max_time_index_entries
            )
        except BaseException:
            if offset_index is not None:
                offset_index.close()
            os.close(fd)
            self.discard()
            raise
        self.segment = LogSegment(
            directory, base_offset, config, fd, offset_index, time_index, 0, None
        )

    def write(self, header: BatchHeader, data: bytes | memoryview) -> None:
        self._headers.append((len(self._buf), header))
        self._buf += data
        self._last_offset = header.last_offset
        self.batches += 1
        if len(self._buf) >= self._flush_at:
            self._flush_buffer()

    def _flush_buffer(self) -> None:
        if not self._buf:
            return
        self.segment.append(self._last_offset, -1, -1, self._buf, headers=self._headers)
        self._stats.bytes_written += len(self._buf)
        self._throttle(len(self._buf))
        self._buf = bytearray()
        self._headers = []

    def finish(self, mtime_ns: int) -> int:
        """Write out, keep the old segment's mtime (retention of timestamp-less data goes by
        it, as in Kafka), fsync, close. Returns the file size."""
        self._flush_buffer()
        os.utime(self.paths[LOG_SUFFIX], ns=(mtime_ns, mtime_ns))
        self.segment.flush()
        size = self.segment.size
        self.segment.close()
        return size

    def discard(self) -> None:
        segment = getattr(self, "segment", None)
        if segment is not None and not segment.closed:
            try:
                segment.close()
            except OSError:
                pass
        for path in self.paths.values():
            _unlink(path)
