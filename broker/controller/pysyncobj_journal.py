"""What the pysyncobj engine does at start-up with a pysyncobj journal it cannot open
(``set_aside_unreadable``), as an operator of pysyncobj would.

pysyncobj writes its journal (``pysyncobj.journal``: a header, then records framed by their
length on both sides) through mmap and never fsyncs it; its term and vote
(``pysyncobj.journal.meta``, a pickled dict) are written to a temp file and renamed, without
fsync either. After a power loss either file can be empty or cut short: pysyncobj's
``FileJournal`` then fails (``mmap`` of an empty file) or reads garbage, and it silently treats
an unreadable meta file as "term 0, voted for nobody". Here a journal that does not parse
whole, and a meta file that does not unpickle, are logged as ERROR, naming the file, and moved
aside (``<name>.unreadable-<n>``); a journal moved aside takes its meta file with it. The
node then starts with an empty journal, and pysyncobj's leader sends it the log again.

This is unsafe for Raft, and known to be: a voter that forgot its log and its vote can vote
for a candidate missing a committed entry, and with a majority of such voters a committed entry
can disappear; after a power loss of every controller, each one's derived metadata log is
ahead of the new, empty pysyncobj log and no controller leads again (docs/architecture.md).
The kraft engine fsyncs its log and quorum state before answering and never needs this;
``make bench-engines`` measures the difference.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from storage import fsync_journal
from storage.fileutil import fsync_dir

__all__ = ["journal_problem", "meta_problem", "set_aside_unreadable"]

logger = logging.getLogger(__name__)

# pysyncobj 0.3.17's journal layout (its FileJournal): name (24 bytes),
# version (8), format version (4), offset just past the last record (4); then records, each
# <u32 size> <u64 index> <u64 term> <command> <u32 size>, size covering index, term, command.
_NAME = b"PYSYNCOBJ"
_NAME_SIZE = 24
_FORMAT_VERSION_AT = _NAME_SIZE + 8
_LAST_RECORD_AT = _FORMAT_VERSION_AT + 4
_FIRST_RECORD = _LAST_RECORD_AT + 4
_U32 = struct.Struct("<I")


def journal_problem(path: Path) -> str | None:
    """Why pysyncobj could not open the journal file ``path`` as it is, or None if it can (or
    the file does not exist: pysyncobj creates it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data:
        return "empty"
    if len(data) < _FIRST_RECORD:
        return f"{len(data)} bytes, shorter than its {_FIRST_RECORD}-byte header"
    if data[:_NAME_SIZE].rstrip(b"\0") != _NAME:
        return "no pysyncobj journal header"
    (version,) = _U32.unpack_from(data, _FORMAT_VERSION_AT)
    if version != 1:
        return f"journal format {version}, not 1"
    (end,) = _U32.unpack_from(data, _LAST_RECORD_AT)
    if end < _FIRST_RECORD or end > len(data):
        return f"its header ends the records at byte {end}, the file has {len(data)}"
    pos = _FIRST_RECORD
    n = 0
    while pos < end:
        if pos + 4 > end:
            return f"record {n} at byte {pos}: cut inside its length"
        (size,) = _U32.unpack_from(data, pos)
        if size < 16 or pos + 8 + size > end:
            return f"record {n} at byte {pos}: length {size} does not fit"
        (trailer,) = _U32.unpack_from(data, pos + 4 + size)
        if trailer != size:
            return f"record {n} at byte {pos}: trailing length {trailer} != {size}"
        pos += size + 8
        n += 1
    return None


def meta_problem(path: Path) -> str | None:
    """Why pysyncobj's meta file (term, vote, commit index) does not read, or None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data:
        return "empty"
    from pysyncobj.pickle import loads

    try:
        # pysyncobj's own file, written by this process only; pysyncobj unpickles it at
        # start anyway (its MetaStorer), this reads it the same way.
        meta = loads(data)
    except Exception as e:  # noqa: BLE001 - any failure means pysyncobj would see {}
        return f"does not unpickle ({type(e).__name__})"
    if not isinstance(meta, dict):
        return f"holds a {type(meta).__name__}, not a dict"
    return None


def _set_aside(path: Path) -> Path:
    n = 0
    while True:
        dest = path.with_name(f"{path.name}.unreadable-{n}")
        if not dest.exists():
            break
        n += 1
    fsync_journal.rename(path, dest)
    return dest


def set_aside_unreadable(journal: Path, node_id: int) -> list[tuple[Path, Path, str]]:
    """Move aside the journal and/or its meta file when they do not read (see the module doc);
    returns ``(file, moved to, why)`` for each file moved."""
    meta = journal.with_name(journal.name + ".meta")
    moved: list[tuple[Path, Path, str]] = []
    why = journal_problem(journal)
    if why is not None:
        moved.append((journal, _set_aside(journal), why))
        if meta.exists():
            moved.append((meta, _set_aside(meta), "belongs to the journal set aside"))
    else:
        why = meta_problem(meta)
        if why is not None:
            moved.append((meta, _set_aside(meta), why))
    for src, dest, reason in moved:
        logger.error("node %d: pysyncobj storage file %s could not be opened (%s): moved to %s; "
                     "this controller rejoins having forgotten its pysyncobj log and vote, "
                     "which Raft does not allow (committed entries can be lost)",
                     node_id, src, reason, dest.name)
    if moved:
        fsync_dir(journal.parent)
    return moved
