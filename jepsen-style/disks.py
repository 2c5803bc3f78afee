"""A second log dir per node on a small disk of its own, for the disk nemeses.

Each node gets ``log.dirs=<data>,<data2>``: ``data`` (also the metadata log dir) on the
ordinary filesystem, ``data2`` on an ext4 filesystem in a loop-mounted image of its own
(``FaultDisk``, created at cluster setup, ``mkfs.ext4 -m 0``: no blocks reserved for root,
so the broker, which runs as root, fills it like anyone). Faults are real kernel behaviour:

- ``fill()`` (``disk-full``): a filler file takes every free block, so appends, rolls and
  checkpoints in ``data2`` fail with ENOSPC; ``repair()`` deletes it.
- ``fail()`` (``disk-eio``): ext4's shutdown ioctl (``EXT4_IOC_SHUTDOWN`` with
  ``EXT4_GOING_FLAGS_NOLOGFLUSH``, what xfstests' "godown" uses to stand for a dead device):
  from then on every read and write on the filesystem returns EIO, and what the journal had not
  committed is gone, as with a device that died. Device-mapper's ``error`` target would be the
  usual tool, but this kernel has no device-mapper. ``repair()`` (the node stopped) unmounts,
  runs ``e2fsck -fy`` and mounts the image again through a new loop device.

The broker takes ``data2`` offline on the first error (storage/log_manager.py) and keeps
serving from ``data``; the nemesis heals by stopping the node, repairing the disk and starting
the node again (a log dir comes back only with a restart, as in Kafka).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 0x2
FILLER = "filler"  # not a partition dir name: the log manager ignores it


class DiskError(RuntimeError):
    pass


def _run(*argv: str) -> str:
    r = subprocess.run(argv, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise DiskError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def disks_available() -> str | None:
    """None if loop-mounted ext4 disks can be made here, else why not."""
    if os.geteuid() != 0:
        return "the disk nemeses need root (mount, loop devices)"
    for tool in ("mkfs.ext4", "e2fsck", "mount", "umount", "losetup"):
        if shutil.which(tool) is None:
            return f"the disk nemeses need {tool}"
    if not os.path.exists("/dev/loop-control"):
        return "the disk nemeses need loop devices (/dev/loop-control)"
    return None


class FaultDisk:
    """An ext4 image ``image`` of ``size_mb`` mounted at ``mount``."""

    def __init__(self, image: Path, mount: Path, size_mb: int = 128) -> None:
        self.image = image
        self.mount = mount
        self.size_mb = size_mb
        self.device: str | None = None
        self.state = "ok"  # ok, full, failed

    def setup(self) -> None:
        self.image.parent.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb << 20)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0", str(self.image))
        self.mount.mkdir(parents=True, exist_ok=True)
        self._mount()

    def _mount(self) -> None:
        # A loop device of its own each time: a node started earlier keeps a copy of the old
        # mount in its mount namespace (``ip netns exec`` makes one per process), so after
        # ``fail()`` the shut-down filesystem lives on there; ``mount -o loop`` would reuse
        # its device and get that dead superblock back.
        self.device = _run("losetup", "--find", "--show", str(self.image)).strip()
        _run("mount", self.device, str(self.mount))

    def usage(self) -> tuple[int, int]:
        st = os.statvfs(self.mount)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Take every free block; returns the bytes written."""
        written = 0
        chunk = b"\0" * (1 << 20)
        fd = os.open(self.mount / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[: len(chunk) // 16 or 1]
                    continue
                written += n
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        self.state = "full"
        return written

    def fail(self) -> None:
        """Every I/O on the filesystem fails with EIO from now on."""
        fd = os.open(self.mount, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)
        self.state = "failed"

    def repair(self) -> None:
        """Back to a working disk (the node using it must be stopped)."""
        if self.state == "full":
            with contextlib.suppress(FileNotFoundError):
                (self.mount / FILLER).unlink()
        elif self.state == "failed":
            self._umount()
            r = subprocess.run(["e2fsck", "-fy", str(self.image)], check=False,
                               capture_output=True, text=True)
            if r.returncode >= 4:  # 1 and 2: errors corrected
                raise DiskError(f"e2fsck {self.image}: {r.stdout.strip()} {r.stderr.strip()}")
            self._mount()
        self.state = "ok"

    def _umount(self) -> None:
        if self.device is None:
            return
        r = subprocess.run(["umount", str(self.mount)], check=False, capture_output=True,
                           text=True)
        if r.returncode != 0:
            _run("umount", "-l", str(self.mount))
        # Detached once nothing uses it any more (other namespaces' copies included).
        subprocess.run(["losetup", "-d", self.device], check=False, capture_output=True)
        self.device = None

    def teardown(self) -> None:
        with contextlib.suppress(DiskError):
            self._umount()
