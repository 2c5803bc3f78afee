"""Reading a partition log: ``FetchSlice`` (whole batches of one segment file, served by fd so
the server can ``os.sendfile`` them) and ``PartitionLog``'s reads by offset and by timestamp
(ListOffsets).

``LogReadMixin`` is one of the parts ``storage.log.PartitionLog`` is made of: its methods work
on the log's segments.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import Self

from storage.errors import LogDirOfflineError, OffsetOutOfRangeError
from storage.segment import LogSegment

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4


class FetchSlice:
    """Whole batches ``[position, position + length)`` of one segment file.

    ``fd`` is this slice's own duplicate of the segment's fd: it stays valid if retention or
    truncation deletes the segment meanwhile. Close the slice (or use it as a context manager)
    when done; a forgotten slice closes its fd when garbage-collected.
    """

    __slots__ = ("__weakref__", "fd", "first_offset", "length", "next_offset", "position")

    def __init__(
        self, fd: int, position: int, length: int, first_offset: int, next_offset: int
    ) -> None:
        self.fd = fd
        self.position = position
        self.length = length
        self.first_offset = first_offset
        self.next_offset = next_offset  # offset to fetch next (first batch after the slice)

    def read_bytes(self) -> bytes:
        if self.fd < 0:
            raise ValueError("FetchSlice is closed")
        chunks: list[bytes] = []
        got = 0
        while got < self.length:
            chunk = os.pread(self.fd, self.length - got, self.position + got)
            if not chunk:
                raise LogDirOfflineError(
                    f"short read: {got} of {self.length} bytes at {self.position}"
                )
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return (
            f"FetchSlice(position={self.position}, length={self.length}, "
            f"first_offset={self.first_offset}, next_offset={self.next_offset})"
        )


class LogReadMixin:
    """Reads of ``PartitionLog``."""

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> FetchSlice | None:
        """Whole batches from the one containing ``start_offset``, within one segment.

        At most ``max_bytes`` (at least the first batch if ``min_one_batch``), only batches whose
        last offset is below ``max_offset`` (the high watermark for consumers). None when there
        is nothing to return; ``OffsetOutOfRangeError`` outside [log start, log end].
        """
        self._check_open()
        leo = self.log_end_offset
        if start_offset < self._log_start_offset or start_offset > leo:
            raise OffsetOutOfRangeError(start_offset, self._log_start_offset, leo)
        if start_offset == leo or (max_offset is not None and start_offset >= max_offset):
            return None
        with self._io("reading"):
            i = max(bisect_right(self._bases, start_offset) - 1, 0)
            while i < len(self._segments):
                segment = self._segments[i]
                found = segment.read(
                    start_offset, max_bytes, max_offset=max_offset, min_one_batch=min_one_batch
                )
                if found is not None:
                    return FetchSlice(
                        os.dup(segment.fd),
                        found.position,
                        found.length,
                        found.first_offset,
                        found.next_offset,
                    )
                if start_offset < segment.next_offset:
                    return None
                i += 1
        return None

    def read_batches(self, start_offset: int, max_offset: int | None = None) -> bytes:
        """All batches from the one containing ``start_offset`` to the end (or ``max_offset``),
        across segments. A convenience for tools and tests; brokers use ``read``."""
        out: list[bytes] = []
        offset = start_offset
        while True:
            sl = self.read(offset, 1 << 62, max_offset=max_offset)
            if sl is None:
                break
            with sl:
                out.append(sl.read_bytes())
            if sl.next_offset <= offset:
                break
            offset = sl.next_offset
            if offset >= self.log_end_offset:
                break
        return b"".join(out)

    # -- offsets by timestamp ---------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """ListOffsets: ``(offset, timestamp)``.

        ``timestamp >= 0``: the first record with timestamp >= it (None if none).
        ``LATEST_TIMESTAMP`` (-1): ``(log_end_offset, -1)`` (callers cap at the high watermark).
        ``EARLIEST_TIMESTAMP`` (-2) / ``EARLIEST_LOCAL_TIMESTAMP`` (-4): ``(log_start_offset, -1)``.
        ``MAX_TIMESTAMP`` (-3): the record with the largest timestamp (None if no timestamps).
        """
        self._check_open()
        with self._io("searching by timestamp"):
            if timestamp == LATEST_TIMESTAMP:
                return self.log_end_offset, -1
            if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
                return self._log_start_offset, -1
            if timestamp == MAX_TIMESTAMP:
                best: LogSegment | None = None
                for segment in self._segments:
                    if segment.max_timestamp >= 0 and (
                        best is None or segment.max_timestamp > best.max_timestamp
                    ):
                        best = segment
                if best is None:
                    return None
                return best.find_offset_by_timestamp(best.max_timestamp, self._log_start_offset)
            if timestamp < 0:
                raise ValueError(f"unsupported ListOffsets timestamp {timestamp}")
            for segment in self._segments:
                if segment.max_timestamp >= timestamp:
                    found = segment.find_offset_by_timestamp(timestamp, self._log_start_offset)
                    if found is not None:
                        return found
            return None
