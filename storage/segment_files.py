"""A segment's files on disk: their names (``<base_offset:020d>`` plus a suffix, Kafka's naming,
including the ``.deleted``/``.cleaned``/``.swap``/``.tmp`` states) and the raw-descriptor I/O
that reads and writes them (``os.pwrite``/``os.pread``, no buffered file objects)."""

from __future__ import annotations

import os

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
TMP_SUFFIX = ".tmp"


def segment_file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def parse_segment_base_offset(name: str) -> int | None:
    """Base offset from ``00000000000000000042.log`` (any suffix), or None if not a segment file."""
    stem = name.split(".", 1)[0]
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """Write all of ``data`` at ``position`` (``os.pwrite`` may write less)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def pread_exact(fd: int, size: int, position: int) -> bytes:
    """``size`` bytes at ``position``, or fewer only where the file ends."""
    data = os.pread(fd, size, position)
    if len(data) == size:
        return data
    chunks = [data]
    got = len(data)
    while got < size:
        chunk = os.pread(fd, size - got, position + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
