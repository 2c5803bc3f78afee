"""The durable metadata log ``__cluster_metadata-0``: a ``storage.log.PartitionLog`` under
``metadata.log.dir`` that mirrors the in-memory ``kraft.log.MemoryRaftLog`` a ``RaftNode`` edits.

On disk (and on the wire, ``broker.controller.raft_wire`` uses the same codec) Raft entries are Kafka record
batches: consecutive entries of one epoch and one kind become one batch whose
``partition_leader_epoch`` is that epoch and whose base offset is the first entry's offset; an
entry's data is its record's value. Control entries (the leader's LeaderChange at the start of
its epoch) are control batches holding a real ``LeaderChangeMessage`` record: ``RaftNode`` writes
the placeholder ``b"LeaderChange"``, which is encoded here with the leader id and voter set, and
a decoded control entry keeps the record value bytes as its data and the record's control type
(KIP-853's KRaftVersion and Voters records, ``kraft/voters.py``, go through unchanged).

Durability: ``write`` (on the loop thread) truncates durably and appends to the page cache;
``begin_flush``/``LogFlushJob`` fsyncs in a worker thread so the event loop keeps serving; the
driver tells the node its entries are durable only after that. A truncation inside a batch
(the leader's divergence point can be anywhere) keeps the batch's prefix by rewriting it, since
``PartitionLog.truncate_to`` removes a whole batch that contains the target offset.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from broker.controller.quorum_state_file import METADATA_PARTITION_DIR
from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import SnapshotId
from kraft.metadata_records import LeaderChangeMessage, encode_control_record
from kraft.raft import LEADER_CHANGE_DATA
from storage.control_records import ControlRecordType, build_control_batch, parse_control_record_key
from storage.errors import CorruptRecordError
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.log_flush import LogFlushJob
from storage.record_batch import LOG_OVERHEAD, parse_header
from storage.records import SimpleRecord, build_batch, decode_batch

__all__ = [
    "METADATA_TOPIC",
    "METADATA_TOPIC_ID",
    "MetadataLog",
    "decode_entries",
    "encode_entries",
    "encode_leader_change",
]

logger = logging.getLogger(__name__)

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
# Kafka's fixed topic id of the metadata topic (Topic.CLUSTER_METADATA_TOPIC_ID).
METADATA_TOPIC_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")

# One batch holds at most this many records / bytes of data (a batch must fit
# max.message.bytes; Kafka's KRaft caps batches at 8 MiB).
MAX_BATCH_RECORDS = 4096
MAX_BATCH_DATA_BYTES = 1 << 20
METADATA_LOG_CONFIG = LogConfig(
    retention_ms=-1, retention_bytes=-1, max_message_bytes=8 * 1024 * 1024 + 1024,
)


def encode_leader_change(leader_id: int, voters: Iterable[int]) -> bytes:
    voter = LeaderChangeMessage.structs["Voter"].cls
    msg = LeaderChangeMessage.cls(
        version=0, leader_id=leader_id, voters=[voter(voter_id=v) for v in sorted(voters)],
        granting_voters=[])
    return encode_control_record(ControlRecordType.LEADER_CHANGE, msg)


def _runs(entries: Sequence[LogEntry]) -> Iterable[Sequence[LogEntry]]:
    """Split into runs of consecutive entries with one epoch and one kind (bounded size)."""
    start = 0
    n = len(entries)
    while start < n:
        first = entries[start]
        end = start + 1
        size = len(first.data)
        while (end < n and end - start < MAX_BATCH_RECORDS
               and entries[end].epoch == first.epoch
               and entries[end].control == first.control
               and not first.control  # one control record per batch, as Kafka writes
               and size + len(entries[end].data) <= MAX_BATCH_DATA_BYTES):
            size += len(entries[end].data)
            end += 1
        yield entries[start:end]
        start = end


def encode_entries(entries: Sequence[LogEntry], *, timestamp_ms: int | None = None,
                   leader_of_epoch: Callable[[int], int | None] | None = None,
                   voters: Iterable[int] | Callable[[int], Iterable[int]] = ()) -> bytes:
    """Entries as record batches (see the module doc). ``leader_of_epoch`` names the leader
    for a placeholder LeaderChange entry (-1 if unknown); ``voters`` its voters, or a function
    of the entry's offset giving the voter set in force there, so that every node encodes the
    same entry to the same bytes whenever it writes or serves it."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    voters_at = voters if callable(voters) else None
    fixed = () if callable(voters) else tuple(voters)
    out: list[bytes] = []
    for run in _runs(entries):
        first = run[0]
        for i, e in enumerate(run):
            assert e.offset == first.offset + i, "entries must be contiguous"
        if first.control:
            data = first.data
            if data == LEADER_CHANGE_DATA:
                leader = leader_of_epoch(first.epoch) if leader_of_epoch is not None else None
                data = encode_leader_change(
                    -1 if leader is None else leader,
                    voters_at(first.offset) if voters_at is not None else fixed)
            out.append(build_control_batch(
                first.control_type, value=data, base_offset=first.offset,
                partition_leader_epoch=first.epoch, timestamp=ts))
        else:
            out.append(build_batch(
                [SimpleRecord(e.data) for e in run], base_offset=first.offset,
                partition_leader_epoch=first.epoch, base_timestamp=ts))
    return b"".join(out)


def decode_entries(buf: bytes | bytearray | memoryview) -> list[LogEntry]:
    """Entries from whole record batches; a partial trailing batch is ignored (as a fetch may
    end in one). ``CorruptRecordError`` for a corrupt batch."""
    view = memoryview(buf)
    out: list[LogEntry] = []
    pos = 0
    n = len(view)
    while n - pos >= LOG_OVERHEAD:
        header = parse_header(view, pos) if n - pos >= 61 else None
        if header is None or header.size > n - pos:
            break
        header, records = decode_batch(view, pos)
        epoch = header.partition_leader_epoch
        if header.is_control:
            # Any KRaft control record (LeaderChange; snapshot header/footer and voters from
            # newer writers) occupies its offset: a control entry keeping the raw value.
            for r in records:
                _, control_type = parse_control_record_key(r.key)  # validates the key
                out.append(LogEntry(r.offset, epoch, bytes(r.value or b""), control=True,
                                    control_type=control_type))
        else:
            for r in records:
                out.append(LogEntry(r.offset, epoch, bytes(r.value or b"")))
        pos += header.size
    return out


class MetadataLog:
    """The on-disk metadata log plus the in-memory view built from it at open."""

    def __init__(self, log: PartitionLog, memory: MemoryRaftLog) -> None:
        self.log = log
        self.memory = memory

    @classmethod
    def open(cls, metadata_log_dir: str | os.PathLike[str], config: LogConfig | None = None,
             *, snapshot_id: SnapshotId | None = None) -> MetadataLog:
        """Open (creating) ``<metadata_log_dir>/__cluster_metadata-0``, recover it, and read
        every batch from the log start into a ``MemoryRaftLog`` (resuming after
        ``snapshot_id``, the latest durable snapshot, if any)."""
        directory = Path(metadata_log_dir) / METADATA_PARTITION_DIR
        log = PartitionLog.open(directory, config or METADATA_LOG_CONFIG)
        if snapshot_id is not None and log.log_start_offset < snapshot_id.end_offset - 1:
            # Delete again the segments wholly below the snapshot's last entry (kept: recover
            # checks its epoch). Their deletion was not made durable (storage/log_retention.py), so after
            # a power loss some may be back and others not: holes that carry nothing the
            # snapshot does not.
            log.maybe_increment_log_start_offset(
                min(snapshot_id.end_offset - 1, log.log_end_offset))
        start = log.log_start_offset
        if start != 0 and snapshot_id is None:
            log.close()
            raise CorruptRecordError(
                f"{directory}: metadata log starts at {start}, not 0, and there is no snapshot")
        entries = (decode_entries(log.read_batches(start))
                   if log.log_end_offset > start else [])
        entries = [e for e in entries if e.offset >= start]
        if (snapshot_id is not None and entries and start < entries[0].offset
                <= snapshot_id.end_offset):
            # A power loss undid the deletion of an older segment but not of the next ones, up
            # to the segment holding the snapshot's last entry: the gap lies wholly inside what
            # the snapshot covers. Start the log after it (deleting the stale segment).
            start = entries[0].offset
            log.maybe_increment_log_start_offset(start)
            log.sync_dir()
        if len(entries) != log.log_end_offset - start or any(
                e.offset != start + i for i, e in enumerate(entries)):
            log.close()
            raise CorruptRecordError(
                f"{directory}: metadata log has holes ({len(entries)} entries from {start}, "
                f"log end offset {log.log_end_offset})")
        memory = MemoryRaftLog.recover(snapshot_id, start, entries)
        if memory.end_offset != log.log_end_offset:
            # The durable log does not continue the snapshot: restart it at the snapshot.
            assert memory.end_offset == memory.start_offset
            log.truncate_fully_and_start_at(memory.start_offset)
        return cls(log, memory)

    def reset_to(self, offset: int) -> None:
        """Empty the log and restart it at ``offset`` (after installing a snapshot). Entries
        at and past ``offset`` go first, durably: a power loss in the middle of deleting the
        segments then cannot leave old entries that look like a continuation of the snapshot
        (``open`` keeps a log that starts at the snapshot's end)."""
        if offset < self.log.log_end_offset:
            self.log.truncate_to(max(offset, self.log.log_start_offset))
        self.log.truncate_fully_and_start_at(offset)

    def delete_below(self, offset: int) -> None:
        """Drop whole segments below ``offset`` (a durable snapshot covers them)."""
        if offset <= self.log.log_end_offset:
            self.log.maybe_increment_log_start_offset(offset)

    @property
    def end_offset(self) -> int:
        return self.log.log_end_offset

    def write(self, truncate_to: int | None, entries: Sequence[LogEntry], *,
              leader_of_epoch: Callable[[int], int | None] | None = None,
              voters: Iterable[int] | Callable[[int], Iterable[int]] = ()) -> None:
        """Truncate (durably) then append ``entries`` to the page cache. Call ``begin_flush``
        (or ``flush``) afterwards to make the append durable."""
        if truncate_to is not None:
            self.truncate_to(truncate_to)
        if entries:
            assert entries[0].offset == self.log.log_end_offset, (
                entries[0].offset, self.log.log_end_offset)
            data = encode_entries(entries, leader_of_epoch=leader_of_epoch, voters=voters)
            self.log.append(data, assign_offsets=False)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry at ``offset`` and after, durably, keeping a split batch's head."""
        log = self.log
        if offset >= log.log_end_offset:
            return
        keep: list[LogEntry] = []
        sl = log.read(offset, 1)  # the batch that contains ``offset``
        if sl is not None:
            with sl:
                head = sl.read_bytes()
            h = parse_header(head, 0)
            if h.base_offset < offset:
                keep = [e for e in decode_entries(head[:h.size]) if e.offset < offset]
        log.truncate_to(offset)
        if keep:
            assert keep[0].offset == log.log_end_offset, (keep[0].offset, log.log_end_offset)
            # Rewrite the kept head with its own bytes (values and control records as they were).
            log.append(encode_entries(keep), assign_offsets=False)
            log.flush()
        assert log.log_end_offset == offset, (log.log_end_offset, offset)

    def begin_flush(self) -> LogFlushJob:
        return self.log.begin_flush()

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        self.log.close()
