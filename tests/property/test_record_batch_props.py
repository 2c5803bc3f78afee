"""Property tests of RecordBatch v2: build/decode round trips, and corrupt input never escapes
as anything but CorruptRecordError / InvalidRecordError."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.compression import CompressionType, compress
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import CRC_OFFSET, HEADER_SIZE, HEADER_STRUCT, compute_crc, validate_batch
from storage.records import Record, SimpleRecord, build_batch, decode_batch, decode_records

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

TS = st.integers(min_value=-(1 << 62) + 1, max_value=(1 << 62) - 1)
optional_bytes = st.none() | st.binary(max_size=300)
headers = st.lists(
    st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=40)), max_size=4
).map(tuple)
simple_records = st.builds(SimpleRecord, optional_bytes, key=optional_bytes, headers=headers,
                           timestamp=st.none() | TS)
codecs = st.sampled_from(list(CompressionType))


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[SimpleRecord], dict[str, Any]]:
    records = draw(st.lists(simple_records, max_size=25))
    n = len(records)
    kwargs: dict[str, Any] = {
        "compression": draw(codecs),
        "base_offset": draw(st.integers(0, (1 << 62))),
        "producer_id": draw(st.sampled_from([-1, 0, (1 << 63) - 1])),
        "producer_epoch": draw(st.integers(-1, (1 << 15) - 1)),
        "base_sequence": draw(st.integers(-1, (1 << 31) - 1)),
        "partition_leader_epoch": draw(st.integers(-1, (1 << 31) - 1)),
        "is_transactional": draw(st.booleans()),
        "base_timestamp": draw(TS),  # records without a timestamp take it
    }
    if draw(st.booleans()):
        kwargs["offset_deltas"] = sorted(
            draw(st.sets(st.integers(0, (1 << 31) - 2), min_size=n, max_size=n))
        )
    return records, kwargs


@SETTINGS
@given(batches())
def test_build_decode_round_trip(case: tuple[list[SimpleRecord], dict[str, Any]]) -> None:
    records, kwargs = case
    buf = build_batch(records, **kwargs)
    header, decoded = decode_batch(buf)
    base_ts = kwargs["base_timestamp"]
    deltas = kwargs.get("offset_deltas") or list(range(len(records)))
    expected = [
        Record(
            kwargs["base_offset"] + d,
            base_ts if r.timestamp is None else r.timestamp,
            r.key, r.value, r.headers,
        )
        for r, d in zip(records, deltas, strict=True)
    ]
    assert decoded == expected
    assert header.record_count == len(records)
    assert header.compression == kwargs["compression"]
    assert header.size == len(buf)
    assert header.last_offset_delta == (deltas[-1] if records else 0)
    if records:
        assert header.max_timestamp == max(r.timestamp for r in expected)
    for name in ("producer_id", "producer_epoch", "base_sequence", "partition_leader_epoch",
                 "is_transactional", "base_offset"):
        assert getattr(header, name) == kwargs[name]


def _fix_crc(buf: bytearray) -> None:
    if len(buf) >= HEADER_SIZE:
        struct.pack_into(">I", buf, CRC_OFFSET, compute_crc(buf, 0, len(buf)))


def _fix_length(buf: bytearray) -> None:
    if len(buf) >= HEADER_SIZE:
        struct.pack_into(">i", buf, 8, len(buf) - 12)


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]),
              st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1, max_size=4,
)


def _mutate(buf: bytearray, ops: list[tuple[str, int, int]]) -> None:
    for op, where, byte in ops:
        if not buf:
            return
        i = where % len(buf)
        if op == "flip":
            buf[i] ^= 1 << (byte % 8)
        elif op == "set":
            buf[i] = byte
        elif op == "delete":
            del buf[i]
        elif op == "insert":
            buf.insert(i, byte)
        else:
            del buf[i:]


def _decode_only_expected_errors(buf: bytes) -> None:
    try:
        validate_batch(buf)
        decode_records(buf, max_decompressed_size=1 << 20)
    except (CorruptRecordError, InvalidRecordError):
        pass


@SETTINGS
@given(batches(), mutations, st.sampled_from(["raw", "crc", "length+crc"]))
def test_mutated_batch_raises_only_record_errors(
    case: tuple[list[SimpleRecord], dict[str, Any]],
    ops: list[tuple[str, int, int]],
    fix: str,
) -> None:
    records, kwargs = case
    buf = bytearray(build_batch(records, **kwargs))
    _mutate(buf, ops)
    # "crc"/"length+crc": a batch whose framing checks pass (a buggy producer), so the mutation
    # reaches the header fields, the decompressor and the record parser.
    if fix == "length+crc":
        _fix_length(buf)
    if fix != "raw":
        _fix_crc(buf)
    _decode_only_expected_errors(bytes(buf))


@SETTINGS
@given(batches(), mutations)
def test_mutated_records_inside_compressed_batch(
    case: tuple[list[SimpleRecord], dict[str, Any]], ops: list[tuple[str, int, int]]
) -> None:
    """Mutate the uncompressed records section, then recompress with a valid CRC: the record
    parser sees garbage the codec itself accepted."""
    records, kwargs = case
    kwargs = dict(kwargs, compression=CompressionType.NONE)
    plain = build_batch(records, **kwargs)
    section = bytearray(plain[HEADER_SIZE:])
    _mutate(section, ops)
    for codec in CompressionType:
        body = compress(codec, bytes(section))
        buf = bytearray(plain[:HEADER_SIZE] + body)
        fields = list(HEADER_STRUCT.unpack_from(buf))
        fields[5] = codec.value
        HEADER_STRUCT.pack_into(buf, 0, *fields)
        _fix_length(buf)
        _fix_crc(buf)
        _decode_only_expected_errors(bytes(buf))


@SETTINGS
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes_raise_only_record_errors(data: bytes, with_header: bool) -> None:
    if with_header:
        # a plausible header in front of random bytes, valid CRC, any codec and count
        header = bytearray(HEADER_SIZE)
        HEADER_STRUCT.pack_into(
            header, 0, 0, HEADER_SIZE - 12 + len(data), -1, 2, 0,
            data[0] % 8 if data else 0, len(data) % 7, 0, 0, -1, -1, -1,
            data[-1] % 9 - 1 if data else 0,
        )
        buf = bytearray(header + data)
        _fix_crc(buf)
        data = bytes(buf)
    _decode_only_expected_errors(data)
