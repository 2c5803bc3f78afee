"""``kafka-dump-log``: print the contents of log segment and index files (Kafka's
DumpLogSegments), read straight from disk (no broker needed).

    kafka-dump-log --files /data/t-0/00000000000000000000.log [--print-data-log]
    kafka-dump-log --files 00000000000000000000.index,00000000000000000000.timeindex

For a ``.log`` file: one line per record batch with its offsets, producer fields, position,
max timestamp, size, codec, the stored CRC and whether it matches the data (``isvalid``);
``--print-data-log`` (or ``--deep-iteration``) adds one ``| offset: ...`` line per record
(``--print-data-log`` with its key and payload as UTF-8). A torn or corrupt tail is reported as
``Found N invalid bytes at the end of <file>``. For ``.index``/``.timeindex`` files: one line per
entry, checked against the ``.log`` next to them when it exists (mismatches go to stderr).
Exit code 1 when a file is missing or any batch fails its CRC check.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from storage.compression import CompressionType
from storage.control_records import (
    ControlRecordType,
    decode_end_txn_marker,
    parse_control_record_key,
)
from storage.errors import CorruptRecordError, InvalidRecordError, StorageError
from storage.record_batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    NO_SEQUENCE,
    BatchHeader,
    compute_crc,
    parse_header,
)
from storage.records import Record, decode_batch

PROG = "kafka-dump-log"
RECORD_INDENT = "|"
_INDEX_ENTRY = struct.Struct(">ii")
_TIME_INDEX_ENTRY = struct.Struct(">qi")
_MAX_INT = (1 << 31) - 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Dump log segment and index files.")
    p.add_argument("--files", required=True, help="REQUIRED: comma-separated .log/.index/"
                   ".timeindex files")
    p.add_argument("--print-data-log", action="store_true",
                   help="print each record's key and payload (implies --deep-iteration)")
    p.add_argument("--deep-iteration", action="store_true", help="print every record")
    p.add_argument("--skip-record-metadata", action="store_true")
    p.add_argument("--max-bytes", type=int, default=_MAX_INT,
                   help="read at most this many bytes of each .log file")
    p.add_argument("--verify-index-only", action="store_true")
    p.add_argument("--index-sanity-check", action="store_true")
    return p


def _base_offset(path: Path) -> int:
    try:
        return int(path.name.split(".", 1)[0])
    except ValueError:
        return 0


def _codec_name(codec: int) -> str:
    try:
        return CompressionType(codec).name.lower()
    except ValueError:
        return f"unknown({codec})"


def _timestamp_type(h: BatchHeader) -> str:
    return "LogAppendTime" if h.is_log_append_time else "CreateTime"


def batch_line(h: BatchHeader, position: int, valid: bool) -> str:
    horizon = f"OptionalLong[{h.base_timestamp}]" if h.has_delete_horizon \
        else "OptionalLong.empty"
    return (f"baseOffset: {h.base_offset} lastOffset: {h.last_offset} count: {h.record_count} "
            f"baseSequence: {h.base_sequence} lastSequence: {h.last_sequence} "
            f"producerId: {h.producer_id} producerEpoch: {h.producer_epoch} "
            f"partitionLeaderEpoch: {h.partition_leader_epoch} "
            f"isTransactional: {str(h.is_transactional).lower()} "
            f"isControl: {str(h.is_control).lower()} deleteHorizonMs: {horizon} "
            f"position: {position} {_timestamp_type(h)}: {h.max_timestamp} size: {h.size} "
            f"magic: {h.magic} compresscodec: {_codec_name(h.compression)} crc: {h.crc} "
            f"isvalid: {str(valid).lower()}")


def record_line(h: BatchHeader, r: Record, *, print_data: bool, skip_metadata: bool) -> str:
    prefix = f"{RECORD_INDENT} "
    out = ""
    if not skip_metadata:
        seq = NO_SEQUENCE if h.base_sequence == NO_SEQUENCE else \
            (h.base_sequence + r.offset - h.base_offset) % (1 << 31)
        out += (f"{prefix}offset: {r.offset} {_timestamp_type(h)}: {r.timestamp} "
                f"keySize: {-1 if r.key is None else len(r.key)} "
                f"valueSize: {-1 if r.value is None else len(r.value)} sequence: {seq} "
                f"headerKeys: [{','.join(k for k, _ in r.headers)}]")
        prefix = " "
        if h.is_control:
            out += _control_text(r)
    if print_data and not h.is_control:
        if r.key is not None:
            out += f"{prefix}key: {r.key.decode('utf-8', errors='replace')}"
            prefix = " "
        if r.value is not None:
            out += f" payload: {r.value.decode('utf-8', errors='replace')}"
    return out


def _control_text(r: Record) -> str:
    try:
        _, ctype = parse_control_record_key(r.key)
        if ctype in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
            m = decode_end_txn_marker(r)
            return f" endTxnMarker: {m.control_type.name} coordinatorEpoch: {m.coordinator_epoch}"
        try:
            name = ControlRecordType(ctype).name
        except ValueError:
            name = "UNKNOWN"
        return f" controlType: {name}({ctype})"
    except StorageError as e:
        return f" controlType: invalid ({e})"


def dump_log(path: Path, args: argparse.Namespace, out: TextIO) -> bool:
    """Print one .log file; returns False when a batch failed its CRC check or the data is
    undecodable."""
    data = path.read_bytes()[:max(args.max_bytes, 0)]
    out.write(f"Log starting offset: {_base_offset(path)}\n")
    deep = args.print_data_log or args.deep_iteration
    ok = True
    pos = 0
    last_offset = -1
    gaps: list[tuple[int, int]] = []
    while len(data) - pos >= LOG_OVERHEAD:
        try:
            h = parse_header(data, pos)
        except (CorruptRecordError, InvalidRecordError):
            break
        if len(data) - pos < h.size or h.size < HEADER_SIZE:
            break
        valid = compute_crc(data, pos, h.size) == h.crc
        ok = ok and valid
        out.write(batch_line(h, pos, valid) + "\n")
        if deep:
            try:
                _, records = decode_batch(data, pos) if valid else (h, [])
            except (CorruptRecordError, InvalidRecordError) as e:
                out.write(f"{RECORD_INDENT} undecodable batch: {e}\n")
                records = []
                ok = False
            for r in records:
                if last_offset >= 0 and r.offset != last_offset + 1:
                    gaps.append((last_offset, r.offset))
                last_offset = r.offset
                out.write(record_line(h, r, print_data=args.print_data_log,
                                      skip_metadata=args.skip_record_metadata) + "\n")
        pos += h.size
    trailing = len(data) - pos
    if trailing > 0 and args.max_bytes == _MAX_INT:
        out.write(f"Found {trailing} invalid bytes at the end of {path.name}\n")
    if gaps:
        # Compacted topics have gaps by design; Kafka reports them the same way.
        print(f"Non-consecutive offsets in {path}", file=sys.stderr)
        for a, b in gaps:
            print(f"  {a} is followed by {b}", file=sys.stderr)
    return ok


def _log_batches(log_path: Path) -> dict[int, int]:
    """position -> last offset of every complete batch in ``log_path``."""
    out: dict[int, int] = {}
    if not log_path.exists():
        return out
    data = log_path.read_bytes()
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        try:
            h = parse_header(data, pos)
        except (CorruptRecordError, InvalidRecordError):
            break
        if len(data) - pos < h.size:
            break
        out[pos] = h.last_offset
        pos += h.size
    return out


def dump_index(path: Path, args: argparse.Namespace, out: TextIO) -> bool:
    base = _base_offset(path)
    data = path.read_bytes()
    if len(data) % _INDEX_ENTRY.size:
        print(f"{path} has a size that is not a multiple of {_INDEX_ENTRY.size}",
              file=sys.stderr)
        return False
    if not data:
        out.write(f"{path} is empty.\n")
        return True
    batches = _log_batches(path.with_suffix(".log"))
    mismatches: list[tuple[int, int]] = []
    for rel, position in _INDEX_ENTRY.iter_unpack(data):
        offset = base + rel
        if batches and batches.get(position) != offset:
            mismatches.append((offset, batches.get(position, -1)))
        if not (args.verify_index_only or args.index_sanity_check):
            out.write(f"offset: {offset} position: {position}\n")
    if args.index_sanity_check:
        out.write(f"{path} passed sanity check.\n")
    if mismatches:
        print(f"Mismatches in :{path}", file=sys.stderr)
        for idx, log in mismatches:
            print(f"  Index offset: {idx}, log offset: {log}", file=sys.stderr)
    return not mismatches


def dump_time_index(path: Path, args: argparse.Namespace, out: TextIO) -> bool:
    base = _base_offset(path)
    data = path.read_bytes()
    if len(data) % _TIME_INDEX_ENTRY.size:
        print(f"{path} has a size that is not a multiple of {_TIME_INDEX_ENTRY.size}",
              file=sys.stderr)
        return False
    if not data:
        out.write(f"{path} is empty.\n")
        return True
    last_ts = None
    ok = True
    for ts, rel in _TIME_INDEX_ENTRY.iter_unpack(data):
        if last_ts is not None and ts <= last_ts:
            print(f"Found out of order timestamp in :{path}\n  Index timestamp: {ts}, "
                  f"Previously indexed timestamp: {last_ts}", file=sys.stderr)
            ok = False
        last_ts = ts
        if not (args.verify_index_only or args.index_sanity_check):
            out.write(f"timestamp: {ts} offset: {base + rel}\n")
    if args.index_sanity_check:
        out.write(f"{path} passed sanity check.\n")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = [Path(f) for f in args.files.split(",") if f.strip()]
    if not files:
        print("Error: --files is empty", file=sys.stderr)
        return 1
    ok = True
    out = sys.stdout
    try:
        for path in files:
            out.write(f"Dumping {path}\n")
            if not path.is_file():
                print(f"Error: {path} does not exist or is not a file", file=sys.stderr)
                ok = False
                continue
            suffix = path.suffix
            if suffix == ".log":
                ok = dump_log(path, args, out) and ok
            elif suffix == ".index":
                ok = dump_index(path, args, out) and ok
            elif suffix == ".timeindex":
                ok = dump_time_index(path, args, out) and ok
            else:
                print(f"Ignoring unknown file {path}", file=sys.stderr)
        out.flush()
    except BrokenPipeError:
        return 0
    except OSError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
