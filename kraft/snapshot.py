"""KIP-630 snapshots of the metadata log: their file names and format, written and read as
bytes (pure; the files themselves are ``broker.controller.snapshot_files``).

A snapshot ``<end_offset:020d>-<epoch:010d>.checkpoint`` holds the records that rebuild the
metadata image as of every log entry below ``end_offset``. It sits in the metadata partition
directory (``<metadata.log.dir>/__cluster_metadata-0``) next to the log segments, as in Kafka.

The file format is Kafka's (``RecordsSnapshotWriter``): RecordBatch v2 batches,

- first a control batch whose first record is a ``SnapshotHeaderRecord`` (version 0,
  ``last_contained_log_timestamp``);
- with kraft.version 1, control batches holding the ``KRaftVersionRecord`` and the
  ``VotersRecord`` in force at the snapshot's end (KIP-853: the voter set outlives the log
  prefix the snapshot replaces; ``snapshot_control_records`` reads them back);
- then data batches of framed metadata records (``encode_metadata_record``), at most
  ``MAX_RECORDS_PER_BATCH`` records (Kafka's ``SnapshotEmitter`` batch size) and
  ``MAX_BATCH_SIZE_BYTES`` bytes (``KafkaRaftClient.MAX_BATCH_SIZE_BYTES``) each;
- last a control batch holding a ``SnapshotFooterRecord``.

As in Kafka, offsets run from 0 across the whole file (the header is offset 0) and every batch
carries the snapshot's epoch as its partition leader epoch. Unlike Kafka, which stamps batches
with the wall clock, every batch timestamp is ``last_contained_log_timestamp``: equal images
then give byte-identical snapshots, whoever writes them and whenever.

"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO, Self

from kraft.codec import CodecError, DecodeError
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage
from kraft.messages import SnapshotId
from kraft.metadata_records import (
    LATEST_VERSIONS,
    SnapshotFooterRecord,
    SnapshotHeaderRecord,
    decode_control_record,
    decode_metadata_record,
    encode_control_record,
    encode_metadata_record,
)
from storage.control_records import ControlRecordType, build_control_batch, parse_control_record_key
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import ATTRIBUTES_OFFSET, CONTROL_MASK, HEADER_SIZE, LOG_OVERHEAD
from storage.records import decode_batch
from storage.value_batch import build_value_batch, decode_batch_values

__all__ = [
    "DELETED_SUFFIX",
    "MAX_BATCH_SIZE_BYTES",
    "MAX_RECORDS_PER_BATCH",
    "PARTIAL_SUFFIX",
    "SNAPSHOT_SUFFIX",
    "CorruptSnapshotError",
    "SnapshotReader",
    "image_snapshot_records",
    "load_image",
    "parse_snapshot_file_name",
    "read_snapshot",
    "snapshot_batches",
    "snapshot_bytes",
    "snapshot_file_name",
]

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".checkpoint"
PARTIAL_SUFFIX = SNAPSHOT_SUFFIX + ".part"
DELETED_SUFFIX = SNAPSHOT_SUFFIX + ".deleted"  # Kafka's delete-pending marker; we remove them
OFFSET_WIDTH = 20
EPOCH_WIDTH = 10
_NAME_RE = re.compile(rf"(\d{{{OFFSET_WIDTH}}})-(\d{{{EPOCH_WIDTH}}})\.checkpoint")
_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1

MAX_BATCH_SIZE_BYTES = 8 * 1024 * 1024
MAX_RECORDS_PER_BATCH = 1024
SNAPSHOT_HEADER_VERSION = 0
SNAPSHOT_FOOTER_VERSION = 0
# Rough per-record overhead inside a batch (length, attributes, deltas, key, header count):
# only used to cut batches below MAX_BATCH_SIZE_BYTES, so it may overestimate.
_RECORD_OVERHEAD = 24
_WRITE_BUFFER_BYTES = 1 << 20
_ATTRIBUTES_LOW_BYTE = ATTRIBUTES_OFFSET + 1  # int16, big-endian: the control bit is here

# Control records allowed in a snapshot besides the header and footer (Kafka's kraft.version 1
# header batch also carries these); a reader of metadata records skips them.
_SKIPPED_CONTROL_TYPES = frozenset({ControlRecordType.KRAFT_VERSION, ControlRecordType.KRAFT_VOTERS})


class CorruptSnapshotError(CorruptRecordError, ValueError):
    """A snapshot file that does not parse: bad CRC, truncated, no header or footer.

    Also a ``ValueError`` so that loaders catching bad input generally see it.
    """


# ------------------------------------------------------------------------------------ names


def snapshot_file_name(snapshot_id: SnapshotId) -> str:
    assert 0 <= snapshot_id.end_offset <= _INT64_MAX, snapshot_id
    assert 0 <= snapshot_id.epoch <= _INT32_MAX, snapshot_id
    return f"{snapshot_id.end_offset:020d}-{snapshot_id.epoch:010d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_file_name(name: str) -> SnapshotId | None:
    """The id of a complete snapshot file name, or None for any other name."""
    m = _NAME_RE.fullmatch(name)
    if m is None:
        return None
    end_offset, epoch = int(m.group(1)), int(m.group(2))
    if end_offset > _INT64_MAX or epoch > _INT32_MAX:
        return None
    return SnapshotId(end_offset, epoch)


# ------------------------------------------------------------------------------------ writing


def snapshot_batches(
    snapshot_id: SnapshotId,
    records: Iterable[bytes],
    *,
    last_contained_log_timestamp_ms: int,
    max_batch_bytes: int = MAX_BATCH_SIZE_BYTES,
    max_records_per_batch: int = MAX_RECORDS_PER_BATCH,
    control_records: Sequence[tuple[int, bytes]] = (),
) -> Iterator[bytes]:
    """The batches of a snapshot holding ``records`` (framed metadata record values), after
    ``control_records`` ((control type, value): KRaftVersion and Voters records)."""
    ts = last_contained_log_timestamp_ms
    epoch = snapshot_id.epoch
    header = SnapshotHeaderRecord(
        version=SNAPSHOT_HEADER_VERSION, last_contained_log_timestamp=ts
    )
    yield build_control_batch(
        ControlRecordType.SNAPSHOT_HEADER,
        value=encode_control_record(ControlRecordType.SNAPSHOT_HEADER, header),
        base_offset=0,
        partition_leader_epoch=epoch,
        timestamp=ts,
    )
    next_offset = 1
    for control_type, value in control_records:
        yield build_control_batch(control_type, value=value, base_offset=next_offset,
                                  partition_leader_epoch=epoch, timestamp=ts)
        next_offset += 1
    pending: list[bytes] = []
    pending_bytes = HEADER_SIZE
    for value in records:
        size = len(value) + _RECORD_OVERHEAD
        if HEADER_SIZE + size > max_batch_bytes:
            raise ValueError(f"metadata record of {len(value)} bytes exceeds the batch limit "
                             f"of {max_batch_bytes} bytes")
        if pending and (
            len(pending) >= max_records_per_batch or pending_bytes + size > max_batch_bytes
        ):
            yield build_value_batch(pending, base_offset=next_offset,
                                    partition_leader_epoch=epoch, timestamp=ts)
            next_offset += len(pending)
            pending = []
            pending_bytes = HEADER_SIZE
        pending.append(value)
        pending_bytes += size
    if pending:
        yield build_value_batch(pending, base_offset=next_offset, partition_leader_epoch=epoch,
                                timestamp=ts)
        next_offset += len(pending)
    footer = SnapshotFooterRecord(version=SNAPSHOT_FOOTER_VERSION)
    yield build_control_batch(
        ControlRecordType.SNAPSHOT_FOOTER,
        value=encode_control_record(ControlRecordType.SNAPSHOT_FOOTER, footer),
        base_offset=next_offset,
        partition_leader_epoch=epoch,
        timestamp=ts,
    )


def snapshot_bytes(
    snapshot_id: SnapshotId, records: Iterable[bytes], *, last_contained_log_timestamp_ms: int,
    control_records: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """A whole snapshot file's content, in memory."""
    return b"".join(snapshot_batches(
        snapshot_id, records, last_contained_log_timestamp_ms=last_contained_log_timestamp_ms,
        control_records=control_records,
    ))


def snapshot_control_records(data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
    """The KRaftVersion and Voters control records of a snapshot's bytes, (type, value) in
    order (they come before the metadata records; reading stops at the first data batch)."""
    view = memoryview(data)
    out: list[tuple[int, bytes]] = []
    pos = 0
    while len(view) - pos >= LOG_OVERHEAD:
        header, records = decode_batch(view, pos)
        if not header.is_control:
            break
        for r in records:
            ctype = parse_control_record_key(r.key)[1]
            if ctype in _SKIPPED_CONTROL_TYPES:
                out.append((ctype, bytes(r.value or b"")))
            elif ctype == ControlRecordType.SNAPSHOT_FOOTER:
                return out
        pos += header.size
    return out


# ------------------------------------------------------------------------------------ reading


class SnapshotReader:
    """Reads a snapshot from its bytes or from a binary stream (an open file, which it closes),
    batch by batch.

    The header batch is read and checked on construction (``last_contained_log_timestamp_ms``);
    iterating yields the metadata record values in order and checks every batch's CRC, that
    offsets follow each other, and that the file ends with the footer and nothing after it.
    Any violation raises ``CorruptSnapshotError`` naming the file and the byte position.
    """

    def __init__(
        self,
        source: bytes | bytearray | memoryview | BinaryIO,
        *,
        max_batch_bytes: int = MAX_BATCH_SIZE_BYTES,
    ) -> None:
        self._max_batch_bytes = max_batch_bytes
        self._file: BinaryIO
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.name = "<snapshot bytes>"
            self._file = io.BytesIO(source)
        else:
            self.name = str(getattr(source, "name", "<snapshot stream>"))
            self._file = source
        self._position = 0
        self._next_offset = 0
        self._done = False
        self._batch = b""
        try:
            self.last_contained_log_timestamp_ms = self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, position: int, problem: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"snapshot {self.name}: {problem} (at byte {position})")

    def _next_batch(self) -> tuple[int, Any, list[Any]] | None:
        """(position, header, records) of the next batch, or None at the end of the file."""
        pos = self._position
        prefix = self._file.read(LOG_OVERHEAD)
        if not prefix:
            return None
        if len(prefix) < LOG_OVERHEAD:
            raise self._error(pos, f"truncated batch: {len(prefix)} byte(s) of a batch prefix")
        length = int.from_bytes(prefix[8:12], "big", signed=True)
        if not HEADER_SIZE - LOG_OVERHEAD <= length <= self._max_batch_bytes:
            raise self._error(pos, f"batch length {length} out of range "
                                   f"[{HEADER_SIZE - LOG_OVERHEAD}, {self._max_batch_bytes}]")
        body = self._file.read(length)
        if len(body) < length:
            raise self._error(pos, f"truncated batch: declares {length + LOG_OVERHEAD} bytes, "
                                   f"only {len(body) + LOG_OVERHEAD} present")
        self._position = pos + LOG_OVERHEAD + length
        data = self._batch = prefix + body
        try:
            # Control batches as records (their keys name the type); data batches as values.
            if data[_ATTRIBUTES_LOW_BYTE] & CONTROL_MASK:
                header, records = decode_batch(data)
            else:
                header, records = decode_batch_values(data)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise self._error(pos, f"bad batch: {e}") from None
        # Offsets run on from the header's (0 as Kafka writes it) with no gap.
        if pos and header.base_offset != self._next_offset:
            raise self._error(pos, f"batch base offset {header.base_offset}, expected "
                                   f"{self._next_offset}")
        self._next_offset = header.next_offset
        return pos, header, records

    def _control_type(self, pos: int, record: Any) -> int:
        try:
            return parse_control_record_key(record.key)[1]
        except CorruptRecordError as e:
            raise self._error(pos, str(e)) from None

    def _read_header(self) -> int:
        batch = self._next_batch()
        if batch is None:
            raise self._error(0, "empty file, no SnapshotHeaderRecord")
        pos, header, records = batch
        if not header.is_control or not records:
            raise self._error(pos, "first batch is not a control batch with a SnapshotHeaderRecord")
        first, *rest = records
        ctype = self._control_type(pos, first)
        if ctype != ControlRecordType.SNAPSHOT_HEADER:
            raise self._error(pos, f"first control record is type {ctype}, "
                                   "not a SnapshotHeaderRecord")
        for r in rest:
            self._check_skippable(pos, r)
        try:
            snapshot_header = decode_control_record(ControlRecordType.SNAPSHOT_HEADER, first.value)
        except CodecError as e:
            raise self._error(pos, f"bad SnapshotHeaderRecord: {e}") from None
        return int(snapshot_header.last_contained_log_timestamp)

    def _check_skippable(self, pos: int, record: Any) -> None:
        ctype = self._control_type(pos, record)
        if ctype not in _SKIPPED_CONTROL_TYPES:
            raise self._error(pos, f"unexpected control record type {ctype}")

    def __iter__(self) -> Iterator[bytes]:
        return self.records()

    def records(self) -> Iterator[bytes]:
        """The metadata record values, in order (once)."""
        assert not self._done, "a SnapshotReader is read once"
        self._done = True
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    raise self._error(self._position,
                                      "file ends without a SnapshotFooterRecord (truncated?)")
                pos, header, records = batch
                if header.is_control:
                    types = [self._control_type(pos, r) for r in records]
                    if ControlRecordType.SNAPSHOT_FOOTER in types:
                        if types != [ControlRecordType.SNAPSHOT_FOOTER]:
                            raise self._error(pos, f"footer batch holds control records {types}")
                        try:
                            decode_control_record(ControlRecordType.SNAPSHOT_FOOTER,
                                                  records[0].value)
                        except CodecError as e:
                            raise self._error(pos, f"bad SnapshotFooterRecord: {e}") from None
                        if self._file.read(1):
                            raise self._error(self._position, "data after the SnapshotFooterRecord")
                        return
                    for r in records:
                        self._check_skippable(pos, r)
                    continue
                if None in records:
                    offset = next(r.offset for r in decode_batch(self._batch)[1] if r.value is None)
                    raise self._error(pos, f"record at offset {offset} has no value")
                yield from records
        finally:
            self.close()


def read_snapshot(source: bytes | bytearray | memoryview | BinaryIO) -> Iterator[bytes]:
    """The metadata record values of a snapshot (its bytes, or an open binary file), in order.

    The header is checked at once; each batch as the iterator reaches it, so a corrupt or
    truncated snapshot raises ``CorruptSnapshotError`` before the iterator ends normally.
    """
    return SnapshotReader(source).records()


# ------------------------------------------------------------------------------------ images


def image_snapshot_records(image: MetadataImage) -> Iterator[bytes]:
    """``image.records()``, framed at each record type's latest version."""
    versions = LATEST_VERSIONS
    encode = encode_metadata_record
    for record_type, record in image.records():
        yield encode(record_type, versions[record_type], record)


def load_image(records: Iterable[bytes], offset: int, epoch: int) -> MetadataImage:
    """Replay framed metadata records onto an empty image through a ``MetadataDelta``.

    ``offset``/``epoch`` become the image's provenance: for a snapshot, its end offset - 1 and
    its epoch. A record that does not decode raises ``DecodeError`` naming its index; one that
    does not apply raises ``MetadataReplayError``.
    """
    delta = MetadataDelta(MetadataImage())
    replay = delta.replay
    for i, value in enumerate(records):
        try:
            record_type, _version, record = decode_metadata_record(value)
        except DecodeError as e:
            raise DecodeError(f"snapshot record {i}: {e}") from None
        replay(record_type, record)
    delta.set_provenance(offset, epoch)
    return delta.apply()
