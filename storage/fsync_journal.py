"""Test mode for fault injection: a journal of what each fsync made durable, and a power-loss
model built on it (``lose_unsynced``).

With ``PYKRAFT_FSYNC_LOG=<path>`` in the environment:

- every fsync of a data file (segments, indexes, checkpoints, quorum-state, snapshots,
  meta.properties) appends ``<st_dev> <st_ino> <synced_length> <path>`` to ``<path>``;
- every fsync of a directory (``storage/fileutil.fsync_dir``) appends
  ``D <st_dev> <st_ino> <json>``: the directory's listing, each name with the (device, inode)
  it points to and whether that is a directory;
- ``unlink``, ``replace``, ``rename`` and ``rmtree`` hard-link every regular file they remove
  or overwrite into ``<path>.graveyard/<dev>-<ino>`` first, so that a power loss can bring the
  old inode back (and so that its inode number is not reused meanwhile); ``rmtree`` then
  appends ``X <st_dev> <st_ino>`` for every directory it removed: a directory that reuses that
  inode later is another one (a new incarnation), not the one the earlier listings describe.

Each record is one ``O_APPEND`` write, so lines stay whole across processes; a torn last line
(the writer was killed mid-write) is ignored by the reader. Lengths and listings are taken
*before* the fsync, so a record never claims more than the fsync covered.

Files and directories are keyed by inode, not by name: a file fsynced as ``x.tmp`` and
renamed to ``x`` keeps its inode, so its synced length follows the rename.

``baseline(journal, roots)`` (called while no writer runs: before a node's first start)
rewrites the journal as ``B`` listings of every directory under ``roots`` plus the current
length of every file: everything on disk then counts as durable.

``lose_unsynced(journal, roots, rng=None)`` (called while the writer is dead) models a power
loss. The durable listing of a directory is its last ``D``/``B`` record. A directory with no
record was created since the baseline, so nothing in it is durable; without any baseline in the
journal (or under a root with no record) such a directory is left as it is. Every name whose
current entry differs from its durable one either keeps its new state or reverts: a new name
vanishes (a directory with everything under it), a removed or replaced name comes back as the
old inode (from the graveyard, or wherever that inode still lives under ``roots``; a directory
is recreated from its own durable listing). ``rng=None`` reverts every difference (the worst
case); with an rng each one reverts independently with probability 1/2, which may also produce
states a journaling filesystem never would (both or neither name of a rename): for directory
entries the model errs on the pessimistic side. Then every regular file is cut to its last
synced length (0 if never fsynced), and the journal is rebaselined: after the "reboot"
everything left is durable. Not modelled: unsynced overwrites inside a file's synced length
(only lengths are journaled).

With ``PYKRAFT_FSYNC_DELAY=<seconds>:<substring>`` as well, every fsync of a regular file whose
path contains ``<substring>`` sleeps ``<seconds>`` first: a planted slow disk, to show that
nothing waiting for that fsync (an acknowledgement) goes out early.

Without the variable ``fsync``, ``unlink``, ``replace``, ``rename`` and ``rmtree`` are
``os.fsync``, ``os.unlink``, ``os.replace``, ``os.rename`` and ``shutil.rmtree`` themselves:
test mode costs nothing otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ENV_VAR = "PYKRAFT_FSYNC_LOG"
DELAY_ENV_VAR = "PYKRAFT_FSYNC_DELAY"

StrPath = str | os.PathLike[str]
Key = tuple[int, int]  # (st_dev, st_ino)
Ident = tuple[int, int, int]  # (st_dev, st_ino, incarnation)

_lock = threading.Lock()


def _parse_delay(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    seconds, _, substring = value.partition(":")
    return float(seconds), substring


_DELAY = _parse_delay(os.environ.get(DELAY_ENV_VAR))


@dataclass(frozen=True, slots=True)
class Entry:
    """What a directory entry points to. ``inc`` tells apart directories that had the same
    inode one after the other (see ``X`` records); always 0 for files."""

    dev: int
    ino: int
    is_dir: bool
    inc: int = 0

    @property
    def key(self) -> Key:
        return (self.dev, self.ino)

    @property
    def ident(self) -> Ident:
        return (self.dev, self.ino, self.inc)


def graveyard_dir(journal: StrPath) -> Path:
    """Where test mode keeps removed and overwritten files (hard links, keyed by dev-inode)."""
    journal = Path(journal)
    return journal.with_name(journal.name + ".graveyard")


def _scan(directory: int | StrPath) -> dict[str, Entry]:
    """Regular files and directories in ``directory`` (a path or an open descriptor)."""
    out: dict[str, Entry] = {}
    with os.scandir(directory) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                out[e.name] = Entry(st.st_dev, st.st_ino, True)
            elif stat.S_ISREG(st.st_mode):
                out[e.name] = Entry(st.st_dev, st.st_ino, False)
    return out


def _dir_record(kind: str, dev: int, ino: int, path: str, listing: dict[str, Entry]) -> str:
    entries = {n: [e.dev, e.ino, int(e.is_dir)] for n, e in sorted(listing.items())}
    body = json.dumps({"path": path, "entries": entries}, separators=(",", ":"))
    return f"{kind} {dev} {ino} {body}\n"


def _file_record(dev: int, ino: int, size: int, path: str) -> str:
    return f"{dev} {ino} {size} {path}\n"


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _append(line: str) -> None:
    data = line.encode(errors="surrogateescape")
    with _lock:
        jfd = os.open(os.environ[ENV_VAR], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(jfd, data)  # one O_APPEND write: whole lines even across processes
        finally:
            os.close(jfd)


def _journaled_fsync(fd: int) -> None:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        listing = _scan(fd)  # before the fsync: it covers at least this
        os.fsync(fd)
        _append(_dir_record("D", st.st_dev, st.st_ino, _fd_path(fd), listing))
    elif stat.S_ISREG(st.st_mode):
        path = _fd_path(fd)
        if _DELAY is not None and _DELAY[1] in path:
            time.sleep(_DELAY[0])
        os.fsync(fd)
        _append(_file_record(st.st_dev, st.st_ino, st.st_size, path))
    else:
        os.fsync(fd)


def _bury(path: StrPath, graveyard: Path) -> None:
    """Keep the regular file at ``path`` reachable from ``graveyard`` (no-op if gone)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    os.makedirs(graveyard, exist_ok=True)
    dst = graveyard / f"{st.st_dev}-{st.st_ino}"
    try:
        os.link(path, dst)
    except FileExistsError:
        pass  # buried already: the same inode under this key
    except FileNotFoundError:
        pass  # removed meanwhile by someone else
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.copyfile(path, dst)  # another filesystem: the content, under the old key


def _test_graveyard() -> Path:
    return graveyard_dir(os.environ[ENV_VAR])


def _journaled_unlink(path: StrPath) -> None:
    _bury(path, _test_graveyard())
    os.unlink(path)


def _journaled_replace(src: StrPath, dst: StrPath) -> None:
    _bury(dst, _test_graveyard())
    os.replace(src, dst)


def _journaled_rename(src: StrPath, dst: StrPath) -> None:
    _bury(dst, _test_graveyard())
    os.rename(src, dst)


def _journaled_rmtree(path: StrPath, ignore_errors: bool = False) -> None:
    graveyard = _test_graveyard()
    dirs: list[tuple[str, Key]] = []
    for dirpath, _dirs, files in os.walk(path):
        try:
            st = os.lstat(dirpath)
        except FileNotFoundError:
            continue
        dirs.append((dirpath, (st.st_dev, st.st_ino)))
        for f in files:
            _bury(os.path.join(dirpath, f), graveyard)
    try:
        shutil.rmtree(path, ignore_errors=ignore_errors)
    finally:
        gone = [key for p, key in dirs if _key_at(p) != key]
        if gone:
            _append("".join(f"X {dev} {ino}\n" for dev, ino in gone))


def _key_at(path: StrPath) -> Key | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


fsync: Callable[[int], None]
unlink: Callable[[StrPath], None]
replace: Callable[[StrPath, StrPath], None]
rename: Callable[[StrPath, StrPath], None]
rmtree: Callable[..., None]  # (path, ignore_errors=False), as shutil.rmtree
if os.environ.get(ENV_VAR):
    fsync, unlink, replace, rename, rmtree = (
        _journaled_fsync, _journaled_unlink, _journaled_replace, _journaled_rename,
        _journaled_rmtree)
else:
    fsync, unlink, replace, rename, rmtree = (
        os.fsync, os.unlink, os.replace, os.rename, shutil.rmtree)


# -- reading the journal ----------------------------------------------------------------------


@dataclass(slots=True)
class JournalState:
    synced: dict[Key, int] = field(default_factory=dict)  # last synced length per inode
    listings: dict[Ident, dict[str, Entry]] = field(default_factory=dict)  # per directory
    incarnations: dict[Key, int] = field(default_factory=dict)  # directory inodes removed
    has_baseline: bool = False

    def current(self, entry: Entry) -> Entry:
        """``entry`` (just scanned) with the incarnation its directory inode has now."""
        inc = self.incarnations.get(entry.key, 0) if entry.is_dir else 0
        return entry if inc == entry.inc else Entry(entry.dev, entry.ino, True, inc)


def parse_journal(journal: StrPath) -> JournalState:
    """Everything the journal says; the last record of an inode wins."""
    state = JournalState()
    try:
        data = Path(journal).read_bytes()
    except FileNotFoundError:
        return state
    # The piece after the last newline is empty, or a record torn by a kill: ignore it.
    for raw in data.split(b"\n")[:-1]:
        line = raw.decode(errors="surrogateescape")
        kind, _, rest = line.partition(" ")
        incs = state.incarnations
        try:
            if kind in ("D", "B"):
                dev, ino, body = rest.split(" ", 2)
                entries = json.loads(body)["entries"]
                key = (int(dev), int(ino))
                state.listings[(*key, incs.get(key, 0))] = {
                    name: state.current(Entry(int(v[0]), int(v[1]), bool(v[2])))
                    for name, v in entries.items()}
                state.has_baseline |= kind == "B"
            elif kind == "X":
                dev, ino = rest.split(" ")
                key = (int(dev), int(ino))
                incs[key] = incs.get(key, 0) + 1
            else:
                parts = line.split(" ", 3)
                if len(parts) < 4:
                    continue
                state.synced[(int(parts[0]), int(parts[1]))] = int(parts[2])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            continue
    return state


def read_journal(journal: StrPath) -> dict[Key, int]:
    """The last synced length per (device, inode). A torn last line is ignored."""
    return parse_journal(journal).synced


# -- baseline and power loss -----------------------------------------------------------------


def _skip_keys(journal: Path) -> set[Key]:
    """The journal and its graveyard, in case they live under a root."""
    out: set[Key] = set()
    for p in (journal, graveyard_dir(journal)):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _walk(roots: Iterable[StrPath], skip: set[Key]) -> Iterable[tuple[Path, dict[str, Entry]]]:
    """Each directory under ``roots`` (top-down) with its listing, minus ``skip``."""
    todo = [Path(r) for r in reversed(list(roots))]
    while todo:
        d = todo.pop()
        try:
            listing = {n: e for n, e in _scan(d).items() if e.key not in skip}
        except (FileNotFoundError, NotADirectoryError):
            continue
        yield d, listing
        todo.extend(d / n for n in sorted(listing, reverse=True) if listing[n].is_dir)


def baseline(journal: StrPath, roots: Iterable[StrPath]) -> None:
    """Declare everything under ``roots`` durable as it is now: rewrite the journal as the
    listing of every directory and the length of every file, and empty the graveyard.

    Call only while no process writes under ``roots`` with this journal (before a node's first
    start; ``lose_unsynced`` calls it after the loss). ``roots`` must hold everything the
    process makes durable: records of anything else are dropped.
    """
    journal = Path(journal)
    lines: list[str] = []
    for d, listing in _walk(roots, _skip_keys(journal)):
        st = os.lstat(d)
        lines.append(_dir_record("B", st.st_dev, st.st_ino, str(d), listing))
        for name, e in sorted(listing.items()):
            if not e.is_dir:
                size = os.lstat(d / name).st_size
                lines.append(_file_record(e.dev, e.ino, size, str(d / name)))
    tmp = journal.with_name(journal.name + ".tmp")
    tmp.write_bytes("".join(lines).encode(errors="surrogateescape"))
    os.replace(tmp, journal)
    shutil.rmtree(graveyard_dir(journal), ignore_errors=True)


Change = Literal["cut", "vanished", "reverted", "unrestorable"]


@dataclass(frozen=True, slots=True)
class Cut:
    """What ``lose_unsynced`` did to one path.

    ``cut``: a file cut from ``size_before`` to its synced length ``size_after``.
    ``vanished``: a name created since its directory's last fsync was removed (for a
    directory, ``size_before`` counts the bytes of the files under it).
    ``reverted``: a name removed or replaced since that fsync points to its old inode again
    (``size_before`` is what the name held, ``size_after`` the old file cut to its synced
    length; 0 for a directory, which is recreated from its own durable listing).
    ``unrestorable``: the name should revert but the old inode is nowhere (it was removed
    without the wrappers here): left as it is.
    """

    path: str
    size_before: int
    size_after: int
    change: Change = "cut"


def _bytes_under(path: Path, entry: Entry) -> int:
    if not entry.is_dir:
        return os.lstat(path).st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


class _PowerLoss:
    def __init__(self, journal: Path, roots: list[Path], rng: random.Random | None) -> None:
        self.state = parse_journal(journal)
        self.graveyard = graveyard_dir(journal)
        self.rng = rng
        self.skip = _skip_keys(journal)
        self.synced = dict(self.state.synced)
        self.changes: list[Cut] = []
        # Where each inode lives now: a file renamed away can be linked back from there.
        self.live: dict[Key, Path] = {}
        for d, listing in _walk(roots, self.skip):
            for name, e in listing.items():
                if not e.is_dir:
                    self.live.setdefault(e.key, d / name)

    def root(self, root: Path) -> None:
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            entry = self.state.current(Entry(st.st_dev, st.st_ino, True))
            self._reconcile(root, self.state.listings.get(entry.ident))

    def _durable(self, entry: Entry, parent_known: bool) -> dict[str, Entry] | None:
        listing = self.state.listings.get(entry.ident)
        if listing is None and parent_known and self.state.has_baseline:
            return {}  # created since the baseline and never fsynced: nothing in it is durable
        return listing

    def _reconcile(self, d: Path, durable: dict[str, Entry] | None) -> None:
        current = {n: self.state.current(e) for n, e in _scan(d).items()
                   if e.key not in self.skip}
        if durable is None:  # nothing known about this directory: leave its entries
            for name in sorted(current):
                if current[name].is_dir:
                    self._reconcile(d / name, self._durable(current[name], False))
            return
        for name in sorted(current.keys() | durable.keys()):
            cur, old = current.get(name), durable.get(name)
            p = d / name
            if cur is not None and old is not None and cur.ident == old.ident:
                if cur.is_dir:
                    self._reconcile(p, self._durable(cur, True))
                continue
            if self.rng is not None and self.rng.random() < 0.5:  # the new state made it
                if cur is not None and cur.is_dir:
                    self._reconcile(p, self._durable(cur, True))
                continue
            self._revert(p, cur, old)

    def _revert(self, p: Path, cur: Entry | None, old: Entry | None) -> None:
        before = _bytes_under(p, cur) if cur is not None else 0
        if old is not None and not old.is_dir and self._find(old.key) is None:
            self.changes.append(Cut(str(p), before, before, "unrestorable"))
            if cur is not None and cur.is_dir:
                self._reconcile(p, self._durable(cur, True))
            return
        if cur is not None:
            self._remove(p, cur)
        if old is None:
            self.changes.append(Cut(str(p), before, 0, "vanished"))
        else:
            self.changes.append(Cut(str(p), before, self._restore(p, old), "reverted"))

    def _find(self, key: Key) -> Path | None:
        buried = self.graveyard / f"{key[0]}-{key[1]}"
        if os.path.lexists(buried):
            return buried
        p = self.live.get(key)
        if p is not None:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                return None
            if (st.st_dev, st.st_ino) == key:
                return p
        return None

    def _remove(self, p: Path, entry: Entry) -> None:
        # Bury first: another name may still have to revert to this inode.
        if entry.is_dir:
            for dirpath, _dirs, files in os.walk(p):
                for f in files:
                    _bury(os.path.join(dirpath, f), self.graveyard)
            shutil.rmtree(p)
        else:
            _bury(p, self.graveyard)
            os.unlink(p)

    def _restore(self, p: Path, old: Entry) -> int:
        """Bring ``old`` back at ``p``; returns the restored file's length."""
        if old.is_dir:
            os.mkdir(p)
            listing = self.state.listings.get(old.ident, {})
            for name in sorted(listing):
                e = listing[name]
                if not e.is_dir and self._find(e.key) is None:
                    self.changes.append(Cut(str(p / name), 0, 0, "unrestorable"))
                else:
                    self._restore(p / name, e)
            return 0
        src = self._find(old.key)
        assert src is not None
        os.link(src, p)
        keep = self.synced.get(old.key, 0)
        st = os.lstat(p)
        if (st.st_dev, st.st_ino) != old.key:
            self.synced[(st.st_dev, st.st_ino)] = keep  # a copy (graveyard on another fs)
        if st.st_size > keep:
            os.truncate(p, keep)
        return min(st.st_size, keep)

    def cut_files(self, roots: list[Path]) -> None:
        for d, listing in _walk(roots, self.skip):
            for name in sorted(listing):
                e = listing[name]
                if e.is_dir:
                    continue
                p = d / name
                size = os.lstat(p).st_size
                keep = self.synced.get(e.key, 0)
                if size > keep:
                    os.truncate(p, keep)
                    self.changes.append(Cut(str(p), size, keep))


def lose_unsynced(journal: StrPath, roots: Iterable[StrPath], *,
                  rng: random.Random | None = None) -> list[Cut]:
    """Model a power loss under ``roots`` (see the module doc): revert unsynced directory
    changes (all of them with ``rng=None``, each with probability 1/2 otherwise), cut every
    regular file to its last fsynced length, then rebaseline the journal.

    Call only while the writing process is dead. Returns what changed, in walk order.
    """
    journal = Path(journal)
    paths = [Path(r) for r in roots]
    loss = _PowerLoss(journal, paths, rng)
    for root in paths:
        loss.root(root)
    loss.cut_files(paths)
    baseline(journal, paths)
    return loss.changes
