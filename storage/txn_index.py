"""The aborted-transaction index: Kafka's ``TransactionIndex`` (``<base_offset>.txnindex``).

One file per segment, holding one entry per transaction whose ABORT marker is in that segment,
in marker-offset order. The format is Kafka's (34 bytes per entry, big-endian)::

    version             int16   0
    producer_id         int64
    first_offset        int64   the transaction's first offset on this partition
    last_offset         int64   the offset of its ABORT marker
    last_stable_offset  int64   the partition's LSO right after the abort

A read_committed Fetch answers, with its records, the aborted transactions that overlap them
(``producer_id``, ``first_offset``): the consumer drops those producers' batches from
``first_offset`` until it meets their ABORT marker.

The file is created on the first entry only (most segments never see an abort). Entries are
appended by the partition when an ABORT marker is applied to its producer state (leader,
follower and recovery replay alike); ``append`` ignores an entry at or below the last one, so a
replay after a restart does not duplicate. ``truncate_to`` follows log truncation; the segment
deletes the file with itself. A torn last entry (a crash mid-write) is dropped on open.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from storage import fsync_journal
from storage.segment_files import segment_file_name

__all__ = ["TXN_INDEX_SUFFIX", "AbortedTxn", "TransactionIndex"]

TXN_INDEX_SUFFIX = ".txnindex"
TXN_INDEX_VERSION = 0
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34


class AbortedTxn(NamedTuple):
    """One entry of the index (Kafka's ``AbortedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """The ``.txnindex`` file of one segment, with its entries cached in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[AbortedTxn] | None = None  # loaded on first use
        self._dirty = False

    @classmethod
    def for_segment(cls, directory: Path, base_offset: int) -> TransactionIndex:
        return cls(directory / segment_file_name(base_offset, TXN_INDEX_SUFFIX))

    # -- reading ----------------------------------------------------------------------------

    @property
    def entries(self) -> list[AbortedTxn]:
        if self._entries is None:
            self._entries = self._load()
        return self._entries

    def _load(self) -> list[AbortedTxn]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        whole = len(data) - len(data) % ENTRY_SIZE
        entries: list[AbortedTxn] = []
        for pos in range(0, whole, ENTRY_SIZE):
            version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
            if version != TXN_INDEX_VERSION or first > last:
                whole = pos  # damaged from here on: keep the good prefix
                break
            entries.append(AbortedTxn(pid, first, last, lso))
        if whole != len(data):
            self._rewrite(entries)
        return entries

    def collect(self, fetch_offset: int, upper_bound: int) -> tuple[list[AbortedTxn], bool]:
        """Entries of transactions overlapping ``[fetch_offset, upper_bound)``: aborted at or
        after ``fetch_offset``, started before ``upper_bound``; and whether the search is
        complete (an entry's LSO reached ``upper_bound``: no later abort can concern the
        range). Kafka's ``collectAbortedTxns``."""
        out: list[AbortedTxn] = []
        for e in self.entries:
            if e.last_offset >= fetch_offset and e.first_offset < upper_bound:
                out.append(e)
            if e.last_stable_offset >= upper_bound:
                return out, True
        return out, False

    # -- writing ----------------------------------------------------------------------------

    def append(self, txn: AbortedTxn) -> bool:
        """Add an entry; False (nothing written) if one at or beyond its marker exists."""
        entries = self.entries
        if entries and entries[-1].last_offset >= txn.last_offset:
            return False
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, _ENTRY.pack(TXN_INDEX_VERSION, *txn))
        finally:
            os.close(fd)
        entries.append(txn)
        self._dirty = True
        return True

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose marker is at or after ``offset``."""
        entries = self.entries
        keep = [e for e in entries if e.last_offset < offset]
        if len(keep) != len(entries):
            self._rewrite(keep)
            self._entries = keep

    def _rewrite(self, entries: Iterable[AbortedTxn]) -> None:
        data = b"".join(_ENTRY.pack(TXN_INDEX_VERSION, *e) for e in entries)
        if not data:
            self.delete()
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            fsync_journal.fsync(fd)
        finally:
            os.close(fd)
        self._dirty = False

    def flush(self) -> None:
        if not self._dirty:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._dirty = False
            return
        try:
            fsync_journal.fsync(fd)
        finally:
            os.close(fd)
        self._dirty = False

    def delete(self) -> None:
        try:
            fsync_journal.unlink(self.path)
        except FileNotFoundError:
            pass
        self._entries = []
        self._dirty = False

    def __repr__(self) -> str:
        return f"TransactionIndex({self.path})"
