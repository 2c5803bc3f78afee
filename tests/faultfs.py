"""A fault-injecting file layer for tests: makes file operations under chosen directories of a
real node process fail the way a failing disk does (EIO on everything, or ENOSPC on writes).

The node process loads it at start-up through ``tests/faultfs_boot/sitecustomize.py`` when its
environment has ``PYKRAFT_FAULTFS=<control file>`` (``node_env`` gives the variables). The
layer wraps the ``os`` functions and ``open`` the storage layer does its I/O with (``storage/``
uses ``os.open``/``pwrite``/``pread``/``fsync``/... on descriptors, and ``open`` for a few
small files); a descriptor's path comes from ``/proc/self/fd``. A thread re-reads the control
file every 50 ms; ``set_faults`` (from the test) rewrites it. One rule per line::

    EIO /path/to/dir        every operation on a path under the dir fails with EIO
    ENOSPC /path/to/dir     writes, file creation and fsync fail with ENOSPC; reads work

Nothing in the product imports this module.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV_VAR = "PYKRAFT_FAULTFS"
BOOT_DIR = Path(__file__).resolve().parent / "faultfs_boot"
POLL_S = 0.05

_rules: tuple[tuple[str, int], ...] = ()
_orig: dict[str, Any] = {}


def node_env(control: Path) -> dict[str, str]:
    """Environment overrides for a node process that loads the layer (``NodeProc.env_overrides``)."""
    repo = str(Path(__file__).resolve().parents[1])
    return {ENV_VAR: str(control), "PYTHONPATH": os.pathsep.join([str(BOOT_DIR), repo])}


def set_faults(control: Path, rules: dict[str | os.PathLike[str], str], *,
               wait_s: float | None = 10.0) -> None:
    """From the test: make each dir fail with its errno name (``"EIO"``, ``"ENOSPC"``); an
    empty dict heals everything. Atomic (rename); with ``wait_s``, returns once the node
    process acknowledged the rules (``<control>.ack``), so the next operation sees them."""
    tmp = control.with_name(control.name + ".tmp")
    tmp.write_text("".join(f"{name} {os.path.realpath(d)}\n" for d, name in rules.items()))
    os.replace(tmp, control)
    if wait_s is None:
        return
    want = str(os.stat(control).st_mtime_ns)
    ack = control.with_name(control.name + ".ack")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if ack.read_text() == want:
                return
        except OSError:
            pass
        time.sleep(POLL_S / 5)
    raise AssertionError(f"the node did not pick up the faults in {control} within {wait_s}s")


# -- in the node process ----------------------------------------------------------------------

def _parse(text: str) -> tuple[tuple[str, int], ...]:
    rules = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and hasattr(errno, parts[0]):
            rules.append((parts[1].rstrip("/") + "/", getattr(errno, parts[0])))
    return tuple(rules)


def _watch(control: str, last: int | None) -> None:
    global _rules
    while True:
        try:
            mtime = _orig["stat"](control).st_mtime_ns
            if mtime != last:
                with _orig["open"](control) as f:
                    _rules = _parse(f.read())
                last = mtime
                _ack(control, mtime)
        except OSError:
            if last is not None:
                _rules, last = (), None
        time.sleep(POLL_S)


def _ack(control: str, mtime: int) -> None:
    tmp, ack = control + ".ack.tmp", control + ".ack"
    with _orig["open"](tmp, "w") as f:
        f.write(str(mtime))
    _orig["replace"](tmp, ack)


def _match(path: Any, write: bool) -> int:
    """The errno to fail with for an operation on ``path``, or 0."""
    if isinstance(path, int):
        try:
            path = _orig["readlink"](f"/proc/self/fd/{path}")
        except OSError:
            return 0
    try:
        p = os.path.abspath(os.fsdecode(path)) + "/"
    except (TypeError, ValueError):
        return 0
    for prefix, code in _rules:
        if p.startswith(prefix) and (code != errno.ENOSPC or write):
            return code
    return 0


def _fail(code: int, path: Any) -> OSError:
    if isinstance(path, int):
        try:
            path = _orig["readlink"](f"/proc/self/fd/{path}")
        except OSError:
            pass
    return OSError(code, os.strerror(code), str(path))


def _wrap(name: str, write: bool, *, arg: int = 0) -> None:
    orig = getattr(os, name)
    _orig[name] = orig

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _rules and args:
            code = _match(args[arg], write)
            if code:
                raise _fail(code, args[arg])
        return orig(*args, **kwargs)

    wrapper.__name__ = name
    setattr(os, name, wrapper)


def _wrap_open() -> None:
    orig_os_open = os.open
    _orig["os_open"] = orig_os_open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if _rules:
            creates = bool(flags & (os.O_CREAT | os.O_TRUNC))
            code = _match(path, creates)
            if code:
                raise _fail(code, path)
        return orig_os_open(path, flags, *args, **kwargs)

    os.open = os_open
    orig_open = builtins.open

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _rules and not isinstance(file, int):
            code = _match(file, any(c in mode for c in "wax+"))
            if code:
                raise _fail(code, file)
        return orig_open(file, mode, *args, **kwargs)

    builtins.open = open_
    io.open = open_


def install(control: str) -> None:
    """Wrap the file functions (once) and start watching ``control``."""
    if _orig:
        return
    _orig.update(stat=os.stat, open=builtins.open, readlink=os.readlink, replace=os.replace)
    for name in ("write", "pwrite", "writev", "ftruncate", "fsync", "fdatasync", "mkdir",
                 "rename", "replace"):
        _wrap(name, True)
    # Reads of data and listings fail; stat answers from the inode cache, as on a dead disk.
    for name in ("read", "pread", "listdir", "scandir", "unlink", "rmdir", "sendfile"):
        _wrap(name, False, arg=1 if name == "sendfile" else 0)
    _wrap_open()
    global _rules
    last = None
    try:  # the rules in force at start-up apply from the first file operation on
        last = _orig["stat"](control).st_mtime_ns
        with _orig["open"](control) as f:
            _rules = _parse(f.read())
        _ack(control, last)
    except OSError:
        pass
    threading.Thread(target=_watch, args=(control, last), name="faultfs", daemon=True).start()
