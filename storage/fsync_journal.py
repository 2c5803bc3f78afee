"""Test mode for fault injection: a journal of what each fsync made durable.

With ``PYKRAFT_FSYNC_LOG=<path>`` in the environment, every fsync of a data file (segments,
indexes, checkpoints, quorum-state, snapshots, meta.properties) appends one line
``<st_dev> <st_ino> <synced_length> <path>`` to ``<path>``. A fault injector can then kill the
process with SIGKILL and cut every file back to the length its last fsync covered, which is
what a power loss does to data that was only in the page cache (``lose_unsynced``).

Files are keyed by inode, not by name: a file fsynced as ``x.tmp`` and renamed to ``x`` keeps
its inode, so the rename is followed for free (the rename itself is durable because every
writer here fsyncs the directory after renaming). The length is taken *before* the fsync, so
it never claims more than the fsync covered.

Without the variable ``fsync`` is ``os.fsync`` itself: the hook costs nothing.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "PYKRAFT_FSYNC_LOG"

_lock = threading.Lock()


def _journal_fd() -> int:
    path = os.environ[ENV_VAR]
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _journaled_fsync(fd: int) -> None:
    st = os.fstat(fd)
    os.fsync(fd)
    if not stat.S_ISREG(st.st_mode):
        return  # directories: their entries are durable, lengths do not apply
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = "?"
    line = f"{st.st_dev} {st.st_ino} {st.st_size} {name}\n".encode()
    with _lock:
        jfd = _journal_fd()
        try:
            os.write(jfd, line)  # one O_APPEND write: whole lines even across processes
        finally:
            os.close(jfd)


fsync: Callable[[int], None] = _journaled_fsync if os.environ.get(ENV_VAR) else os.fsync


@dataclass(frozen=True, slots=True)
class Cut:
    """What ``lose_unsynced`` did to one file."""

    path: str
    size_before: int
    size_after: int


def read_journal(journal: Path) -> dict[tuple[int, int], int]:
    """The last synced length per (device, inode). A torn last line (the writer was killed
    mid-write) is ignored."""
    synced: dict[tuple[int, int], int] = {}
    if not journal.exists():
        return synced
    for line in journal.read_text(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        try:
            dev, ino, size = int(parts[0]), int(parts[1]), int(parts[2])
        except ValueError:
            continue
        synced[(dev, ino)] = size
    return synced


def lose_unsynced(journal: Path, roots: list[Path]) -> list[Cut]:
    """Cut every regular file under ``roots`` to its last fsynced length (0 if never fsynced).

    Call only while the writing process is dead. Returns the files that changed.
    """
    synced = read_journal(journal)
    cuts: list[Cut] = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                keep = synced.get((st.st_dev, st.st_ino), 0)
                if st.st_size > keep:
                    os.truncate(p, keep)
                    cuts.append(Cut(str(p), st.st_size, keep))
    return cuts
