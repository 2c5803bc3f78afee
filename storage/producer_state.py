"""Per-partition idempotent producer state: Kafka's ``ProducerStateManager``.

For every producer id seen on a partition we keep a ``ProducerStateEntry``: its epoch, the
metadata of its last ``NUM_BATCHES_TO_RETAIN`` (5) data batches (sequence range, offset range,
max timestamp), and the transaction fields (coordinator epoch, first offset of the open
transaction). Memory per producer is therefore constant; the number of producers is bounded by
``producer.id.expiration.ms`` (``remove_expired_producers``).

Paths (who calls what, and when):

- **Leader, before assigning offsets**: ``check_batches(headers)`` (or ``check(header)``) returns
  a ``CheckResult``. ``result.duplicate`` set: a retry of one of the last 5 batches; answer with
  its original offsets and append nothing. ``result.error`` not NONE: answer with that error code
  and append nothing. Otherwise append, then ``on_append(headers, first_offset=info.first_offset,
  log_append_time_ms=info.log_append_time_ms)``.
- **Follower / recovery replay**: ``on_append(headers)`` (the headers carry their offsets). No
  sequence validation: the leader already did it and a follower must mirror the leader's log.
- **Roll**: ``take_snapshot(new_segment.base_offset)``; retention: ``delete_snapshots_before(
  first remaining segment's base offset)`` and ``on_log_start_offset_incremented``.
- **Truncation / open**: ``rebuild_from_log(log, now_ms)`` (= ``truncate_and_reload`` + replay of
  the headers from the loaded snapshot's offset + a snapshot at the log end offset).

The state of one producer is a ``ProducerStateEntry`` (``storage/producer_entry.py``); the
leader's checks before an append are in ``storage/producer_checks.py``; the snapshot file format
is in ``storage/producer_snapshot.py``.

Snapshots are ``<offset:020d>.snapshot`` files in the partition directory, as in Kafka, holding the
state of every producer for the log prefix below ``offset``. Written with ``atomic_write`` (temp
file, fsync, rename, fsync dir). A snapshot that fails to decode is logged, deleted, and the next
older one is tried (then the log start offset): the caller replays more of the log, nothing is
lost.

Pure in time: every method that needs the clock takes ``now_ms``. Single-threaded, like the
``PartitionLog`` that owns it. ``OSError`` becomes ``LogDirOfflineError``.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from storage import fsync_journal, producer_checks
from storage.control_records import EndTxnMarker, batch_txn_marker
from storage.errors import CorruptRecordError, LogDirOfflineError
from storage.fileutil import atomic_write
from storage.producer_checks import CheckResult
from storage.producer_entry import (
    NO_TXN_OFFSET,
    BatchMetadata,
    CompletedTxn,
    ProducerStateEntry,
)
from storage.producer_snapshot import (
    SNAPSHOT_SUFFIX,
    CorruptSnapshotError,
    decode_snapshot,
    encode_snapshot,
    parse_snapshot_offset,
    snapshot_file_name,
)
from storage.record_batch import BatchHeader, parse_header

if TYPE_CHECKING:
    from storage.log import PartitionLog
    from storage.segment import LogSegment

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PRODUCER_ID_EXPIRATION_MS",
    "ProducerStateManager",
    "batch_headers",
    "iter_log_headers",
    "txn_index_writer",
]

DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms


class ProducerStateManager:
    """Producer id -> ``ProducerStateEntry`` for one partition, plus its snapshot files.

    ``map_end_offset`` is the log offset the in-memory state reflects (everything below it has
    been applied). A new manager only lists the snapshot files; load the state with
    ``rebuild_from_log`` (or ``truncate_and_reload`` + ``rebuild``).
    """

    def __init__(
        self,
        partition_dir: str | os.PathLike[str],
        *,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        if producer_id_expiration_ms < 0:
            raise ValueError(f"producer_id_expiration_ms {producer_id_expiration_ms} < 0")
        self.dir = Path(partition_dir)
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._producers: dict[int, ProducerStateEntry] = {}
        # Open transactions: producer id -> first offset (mirrors the entries' field).
        self._ongoing: dict[int, int] = {}
        # Transactions a marker ended that the high watermark has not passed yet: they still
        # hold the last stable offset back (Kafka's ``unreplicatedTxns``).
        self._unreplicated: list[CompletedTxn] = []
        self._map_end_offset = 0
        self._last_snap_offset = 0
        self._snapshots: list[int] = self._list_snapshots()  # sorted offsets

    # -- reading ----------------------------------------------------------------------------

    @property
    def map_end_offset(self) -> int:
        return self._map_end_offset

    @property
    def active_producers(self) -> Mapping[int, ProducerStateEntry]:
        """A read-only view of the producers."""
        return MappingProxyType(self._producers)

    @property
    def is_empty(self) -> bool:
        return not self._producers

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self._producers.get(producer_id)

    def first_undecided_offset(self) -> int | None:
        """First offset of the oldest open transaction (None if none)."""
        return min(self._ongoing.values()) if self._ongoing else None

    # -- leader: validation before append ---------------------------------------------------

    def check(self, header: BatchHeader) -> CheckResult:
        """Check one client batch (see ``CheckResult``). Batches without a producer id pass."""
        return producer_checks.check(self._producers, header)

    def check_batches(self, headers: Sequence[BatchHeader]) -> CheckResult:
        """Check all batches of one produce request, in order, each against the state the earlier
        ones would leave. The first error wins; as in Kafka, a duplicate batch makes the whole
        request a duplicate of it (clients send one batch per partition per request)."""
        return producer_checks.check_batches(self._producers, headers)

    # -- applying appended batches (leader, follower, recovery) ------------------------------

    def update(
        self,
        header: BatchHeader,
        *,
        base_offset: int | None = None,
        max_timestamp: int | None = None,
        coordinator_epoch: int | None = None,
        marker: EndTxnMarker | None = None,
    ) -> CompletedTxn | None:
        """Apply one batch that is now in the log and move ``map_end_offset`` past it.

        ``base_offset``: the offset the log assigned (leader path), default the header's.
        ``max_timestamp``: the log append time on LogAppendTime topics, default the header's.
        ``marker``: the decoded record of a control batch (a transaction marker), if known;
        ``coordinator_epoch``: a marker's coordinator epoch (taken from ``marker`` if given).
        No validation: on the leader ``check`` ran before; followers mirror the leader.

        Returns the transaction a marker ends (``CompletedTxn``), else None.
        """
        first = header.base_offset if base_offset is None else base_offset
        last = first + header.last_offset_delta
        pid = header.producer_id
        completed: CompletedTxn | None = None
        if pid >= 0 and not (header.is_control and header.record_count == 0):
            timestamp = header.max_timestamp if max_timestamp is None else max_timestamp
            entry = self._producers.get(pid)
            if entry is None:
                entry = self._producers[pid] = ProducerStateEntry(pid)
            elif header.producer_epoch < entry.producer_epoch:
                log.warning(
                    "%s: batch at offset %d of producer %d has epoch %d, older than %d",
                    self.dir, first, pid, header.producer_epoch, entry.producer_epoch,
                )
            entry._set_epoch(header.producer_epoch)
            entry.last_timestamp = timestamp
            if header.is_control:
                # A transaction marker (an empty control batch is a cleaned one: ignored above).
                if marker is not None:
                    coordinator_epoch = marker.coordinator_epoch
                txn_first = entry.current_txn_first_offset
                if txn_first >= 0:
                    # As Kafka: a marker of a transaction without data here completes nothing
                    # (no effect on the LSO, no aborted-transaction index entry).
                    completed = CompletedTxn(
                        pid, txn_first, last, marker is not None and not marker.is_commit
                    )
                    self._unreplicated.append(completed)
                entry.current_txn_first_offset = NO_TXN_OFFSET
                self._ongoing.pop(pid, None)
                if coordinator_epoch is not None:
                    entry.coordinator_epoch = coordinator_epoch
            else:
                entry.batches.append(
                    BatchMetadata(header.base_sequence, header.last_sequence, first, last,
                                  timestamp)
                )
                if header.is_transactional and entry.current_txn_first_offset < 0:
                    entry.current_txn_first_offset = first
                    self._ongoing[pid] = first
        self._map_end_offset = max(self._map_end_offset, last + 1)
        return completed

    # -- transactions: the last stable offset -----------------------------------------------

    @property
    def ongoing_txns(self) -> Mapping[int, int]:
        """Producer id -> first offset of its open transaction."""
        return MappingProxyType(self._ongoing)

    def last_stable_offset(self, high_watermark: int) -> int:
        """Kafka's LSO: the first offset of the oldest transaction still undecided (open, or
        decided by a marker the high watermark has not passed yet), bounded by the high
        watermark. Without transactions it is exactly the high watermark."""
        if not self._ongoing and not self._unreplicated:
            return high_watermark
        unreplicated = self._unreplicated
        if unreplicated:
            self._unreplicated = unreplicated = [
                t for t in unreplicated if t.last_offset >= high_watermark
            ]
        lso = high_watermark
        for first in self._ongoing.values():
            lso = min(lso, first)
        for t in unreplicated:
            lso = min(lso, t.first_offset)
        return lso

    def lso_after(self, completed: CompletedTxn) -> int:
        """Kafka's ``lastStableOffset(completedTxn)``, recorded in the aborted-transaction
        index: the first offset of another open transaction, else one past the marker."""
        others = [f for p, f in self._ongoing.items() if p != completed.producer_id]
        return min(others) if others else completed.last_offset + 1

    def on_append(
        self,
        headers: Iterable[BatchHeader],
        *,
        first_offset: int | None = None,
        log_append_time_ms: int = -1,
        markers: Mapping[int, EndTxnMarker] | None = None,
        on_completed: Callable[[CompletedTxn, int], None] | None = None,
    ) -> list[CompletedTxn]:
        """Apply every batch of one append (call after ``PartitionLog.append`` succeeded).
        ``markers``: the decoded transaction marker of each control batch, by batch index
        (``control_markers``). Returns the transactions the markers completed;
        ``on_completed(txn, lso_after)`` is told of each as it completes.

        Leader path: pass ``first_offset`` and ``log_append_time_ms`` from the ``LogAppendInfo``
        (the headers still carry the client's offsets; the log assigned contiguous ones).
        Follower and replay paths: leave both out, the headers carry the real offsets.
        """
        max_timestamp = log_append_time_ms if log_append_time_ms >= 0 else None
        markers = {} if markers is None else markers
        completed: list[CompletedTxn] = []
        offset = 0 if first_offset is None else first_offset
        for i, header in enumerate(headers):
            done = self.update(
                header, base_offset=None if first_offset is None else offset,
                max_timestamp=max_timestamp, marker=markers.get(i),
            )
            if done is not None:
                completed.append(done)
                if on_completed is not None:
                    on_completed(done, self.lso_after(done))
            offset += header.last_offset_delta + 1
        return completed

    # -- expiration -------------------------------------------------------------------------

    def _is_expired(self, entry: ProducerStateEntry, now_ms: int) -> bool:
        return (
            entry.current_txn_first_offset < 0
            and now_ms - entry.last_timestamp >= self.producer_id_expiration_ms
        )

    def remove_expired_producers(self, now_ms: int) -> int:
        """Forget producers idle for ``producer_id_expiration_ms`` (by their last batch's
        timestamp) without an open transaction. Returns how many were removed."""
        expired = [pid for pid, e in self._producers.items() if self._is_expired(e, now_ms)]
        for pid in expired:
            del self._producers[pid]
        return len(expired)

    # -- snapshots --------------------------------------------------------------------------

    @property
    def snapshot_offsets(self) -> list[int]:
        return list(self._snapshots)

    @property
    def latest_snapshot_offset(self) -> int | None:
        return self._snapshots[-1] if self._snapshots else None

    @property
    def oldest_snapshot_offset(self) -> int | None:
        return self._snapshots[0] if self._snapshots else None

    def snapshot_path(self, offset: int) -> Path:
        return self.dir / snapshot_file_name(offset)

    def take_snapshot(self, offset: int | None = None) -> Path | None:
        """Write the state as ``<map_end_offset>.snapshot`` unless no newer one is needed.

        ``offset`` first sets ``map_end_offset`` (on roll: the new segment's base offset, so
        recovery can start from a snapshot at a segment boundary): call it before
        ``on_append`` applies the batches written to the new segment. Durable when it returns.
        """
        if offset is not None:
            if offset < self._map_end_offset:
                # The state already holds batches at or after ``offset``: a snapshot named
                # ``offset`` would make recovery replay them twice.
                raise ValueError(
                    f"snapshot offset {offset} is below the map end offset {self._map_end_offset}"
                )
            self._map_end_offset = offset
        if self._map_end_offset <= self._last_snap_offset:
            return None
        snap_offset = self._map_end_offset
        path = self.snapshot_path(snap_offset)
        data = encode_snapshot(self._producers.values())
        try:
            atomic_write(path, data)
        except OSError as e:
            raise LogDirOfflineError(f"Error writing producer snapshot {path}: {e}") from e
        i = bisect.bisect_left(self._snapshots, snap_offset)
        if i == len(self._snapshots) or self._snapshots[i] != snap_offset:
            self._snapshots.insert(i, snap_offset)
        self._last_snap_offset = snap_offset
        log.debug(
            "%s: wrote producer snapshot at offset %d with %d producers",
            self.dir, snap_offset, len(self._producers),
        )
        return path

    def delete_snapshots_before(self, offset: int) -> None:
        """Delete the snapshots at offsets below ``offset`` (e.g. the first remaining segment's
        base offset after retention)."""
        while self._snapshots and self._snapshots[0] < offset:
            self._delete_snapshot(self._snapshots[0])

    def truncate_and_reload(self, log_start_offset: int, log_end_offset: int, now_ms: int) -> int:
        """Make the state reflect a log prefix ending at or below ``log_end_offset`` (after a
        truncation, or on open). Returns the new ``map_end_offset``: the caller replays the log's
        batches from there to ``log_end_offset`` with ``rebuild``.

        Snapshots beyond the log end or at/below the log start are deleted (Kafka). Unless the
        state already ends exactly at ``log_end_offset``, it is reloaded from the latest
        remaining snapshot that decodes (corrupt ones are deleted), or emptied at the log start.
        """
        for offset in list(self._snapshots):
            if offset > log_end_offset or offset <= log_start_offset:
                self._delete_snapshot(offset)
        if log_end_offset != self._map_end_offset:
            self._producers.clear()
            self._ongoing.clear()
            self._unreplicated.clear()
            self._load_from_snapshot(log_start_offset, now_ms)
        else:
            self.on_log_start_offset_incremented(log_start_offset)
        return self._map_end_offset

    def rebuild(
        self,
        headers: Iterable[BatchHeader | tuple[BatchHeader, EndTxnMarker | None]],
        end_offset: int,
        on_completed: Callable[[CompletedTxn, int], None] | None = None,
    ) -> None:
        """Replay the log's batch headers (in offset order) from ``map_end_offset`` up to
        ``end_offset``; batches already reflected or at/after ``end_offset`` are skipped.
        Afterwards ``map_end_offset == end_offset``.

        An item may be ``(header, marker)`` for a control batch whose marker was decoded;
        ``on_completed(txn, lso_after)`` is then told of each transaction a marker ends."""
        start = self._map_end_offset
        for item in headers:
            header, marker = (item, None) if isinstance(item, BatchHeader) else item
            if header.base_offset < start:
                continue
            if header.base_offset >= end_offset:
                break
            done = self.update(header, marker=marker)
            if done is not None and on_completed is not None:
                on_completed(done, self.lso_after(done))
        self._map_end_offset = end_offset

    def rebuild_from_log(self, log: PartitionLog, now_ms: int) -> None:
        """Kafka's ``rebuildProducerState``: load the state for ``log`` as it is now (after open
        or a truncation): reload from the latest usable snapshot, replay the rest of the log,
        snapshot at the bases of the last two segments on the way and at the log end."""
        end = log.log_end_offset
        self.truncate_and_reload(log.log_start_offset, end, now_ms)
        if self._map_end_offset < end:
            segments = log.segments
            snapshot_at = {s.base_offset for s in segments[-2:]}
            for segment in segments:
                if segment.base_offset >= end:
                    break
                if segment.next_offset <= self._map_end_offset:
                    continue
                if segment.base_offset >= self._map_end_offset:
                    self._map_end_offset = segment.base_offset
                    if segment.base_offset in snapshot_at:
                        _flush_txn_indexes(log)
                        self.take_snapshot()
                self.rebuild(
                    _segment_batches(segment, self._map_end_offset, end),
                    min(segment.next_offset, end),
                    txn_index_writer(log),
                )
        self._map_end_offset = end
        # A snapshot ends replays: the index entries written by this one must be durable first.
        _flush_txn_indexes(log)
        self.take_snapshot()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """The log was emptied and restarts at ``offset``: forget everything, delete every
        snapshot."""
        self._producers.clear()
        self._ongoing.clear()
        self._unreplicated.clear()
        for snap in list(self._snapshots):
            self._delete_snapshot(snap)
        self._last_snap_offset = 0
        self._map_end_offset = offset

    def on_log_start_offset_incremented(self, log_start_offset: int) -> None:
        """The log start moved forward (retention, or a follower after its leader's)."""
        self._map_end_offset = max(self._map_end_offset, log_start_offset)
        latest = self.latest_snapshot_offset
        self._last_snap_offset = log_start_offset if latest is None else latest

    # -- snapshot helpers -------------------------------------------------------------------

    def _list_snapshots(self) -> list[int]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise LogDirOfflineError(f"Error listing {self.dir}: {e}") from e
        offsets: list[int] = []
        for name in names:
            if name.endswith(SNAPSHOT_SUFFIX + ".tmp"):
                # An interrupted atomic_write: never renamed, so never a snapshot.
                _unlink(self.dir / name)
                continue
            offset = parse_snapshot_offset(name)
            if offset is not None:
                offsets.append(offset)
        offsets.sort()
        return offsets

    def _delete_snapshot(self, offset: int) -> None:
        i = bisect.bisect_left(self._snapshots, offset)
        if i < len(self._snapshots) and self._snapshots[i] == offset:
            del self._snapshots[i]
        # No directory fsync: a deleted snapshot that reappears after a crash is deleted again
        # (it is beyond the log end or below the log start).
        _unlink(self.snapshot_path(offset))

    def _load_from_snapshot(self, log_start_offset: int, now_ms: int) -> None:
        while self._snapshots:
            offset = self._snapshots[-1]
            path = self.snapshot_path(offset)
            try:
                data = path.read_bytes()
                entries = decode_snapshot(data)
            except FileNotFoundError:
                log.warning("%s: producer snapshot %s disappeared", self.dir, path.name)
                self._snapshots.pop()
                continue
            except OSError as e:
                raise LogDirOfflineError(f"Error reading producer snapshot {path}: {e}") from e
            except CorruptSnapshotError as e:
                log.warning(
                    "%s: ignoring and deleting corrupt producer snapshot %s: %s",
                    self.dir, path.name, e,
                )
                self._delete_snapshot(offset)
                continue
            for entry in entries:
                if not self._is_expired(entry, now_ms):
                    self._producers[entry.producer_id] = entry
                    if entry.has_ongoing_txn:
                        self._ongoing[entry.producer_id] = entry.current_txn_first_offset
            self._last_snap_offset = self._map_end_offset = offset
            log.info(
                "%s: loaded producer state from snapshot %s (%d producers)",
                self.dir, path.name, len(self._producers),
            )
            return
        self._last_snap_offset = self._map_end_offset = log_start_offset

    def __repr__(self) -> str:
        return (
            f"ProducerStateManager({self.dir}, producers={len(self._producers)}, "
            f"map_end_offset={self._map_end_offset}, snapshots={self._snapshots})"
        )


def _unlink(path: Path) -> None:
    try:
        fsync_journal.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LogDirOfflineError(f"Error deleting {path}: {e}") from e


# -- header helpers -------------------------------------------------------------------------


def batch_headers(buf: bytes | bytearray | memoryview) -> list[BatchHeader]:
    """The headers of the batches in ``buf`` (no CRC check: ``PartitionLog.append`` does it).
    ``CorruptRecordError`` if a batch runs past the end."""
    headers: list[BatchHeader] = []
    pos = 0
    end = len(buf)
    while pos < end:
        header = parse_header(buf, pos)
        if header.size > end - pos:
            raise CorruptRecordError(
                f"record batch at {pos} declares {header.size} bytes, only {end - pos} present"
            )
        headers.append(header)
        pos += header.size
    return headers


def _segment_headers(
    segment: LogSegment, start_offset: int, end_offset: int
) -> Iterator[BatchHeader]:
    found = segment.translate_offset(start_offset)
    if found is None:
        return
    for _pos, header in segment.iter_headers(found[0]):
        if header.base_offset >= end_offset:
            return
        yield header


def _segment_batches(
    segment: LogSegment, start_offset: int, end_offset: int
) -> Iterator[tuple[BatchHeader, EndTxnMarker | None]]:
    """Like ``_segment_headers``, with the transaction marker of each control batch."""
    found = segment.translate_offset(start_offset)
    if found is None:
        return
    for pos, header in segment.iter_headers(found[0]):
        if header.base_offset >= end_offset:
            return
        marker = None
        if header.is_control and header.producer_id >= 0:
            marker = batch_txn_marker(segment.read_bytes(pos, header.size))
        yield header, marker


def _flush_txn_indexes(log: PartitionLog) -> None:
    try:
        for segment in log.segments:
            segment.txn_index.flush()
    except OSError as e:
        raise LogDirOfflineError(f"Error flushing an aborted-transaction index: {e}") from e


def txn_index_writer(log: PartitionLog) -> Callable[[CompletedTxn, int], None]:
    """An ``on_completed`` callback recording aborted transactions in ``log``'s
    aborted-transaction index (idempotent: replays write nothing twice)."""

    def write(txn: CompletedTxn, lso: int) -> None:
        if txn.is_aborted:
            log.append_aborted_txn(txn.aborted(lso))

    return write


def iter_log_headers(log: PartitionLog, start_offset: int, end_offset: int) -> Iterator[BatchHeader]:
    """Headers of ``log``'s batches with offsets in ``[start_offset, end_offset)`` (a batch
    containing ``start_offset`` included), in offset order, reading headers only."""
    for segment in log.segments:
        if segment.base_offset >= end_offset:
            return
        if segment.next_offset <= start_offset:
            continue
        yield from _segment_headers(segment, start_offset, end_offset)
