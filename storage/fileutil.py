"""Small durable-file helpers shared by checkpoints, meta.properties and quorum state."""

from __future__ import annotations

import os
from pathlib import Path

from storage import fsync_journal


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync_journal.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str | os.PathLike[str]) -> None:
    """``mkdir -p`` that survives a crash: the parent of every directory created is fsynced.

    A new directory is only an entry in its parent until the parent is fsynced; files made
    durable inside it would vanish with it.
    """
    path = Path(path)
    if path.is_dir():
        return
    make_dirs(path.parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        if not path.is_dir():
            raise
    # Also when another thread created it: it may not have made it durable yet.
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: write a temp file, fsync it, rename, fsync the dir.

    A crash at any point leaves either the old file or the new one, never a torn mix.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        fsync_journal.fsync(fd)
    finally:
        os.close(fd)
    fsync_journal.replace(tmp, path)
    fsync_dir(path.parent)
