"""RecordBatch v2: header, CRC32C, records, compression codecs, control records, client interop."""

from __future__ import annotations

import gzip
import random
import struct
import zlib

import cramjam
import lz4.frame
import pytest

from storage.compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    SNAPPY_XERIAL_MAGIC,
    CompressionType,
    compress,
    decompress,
    zstd_output_bound,
)
from storage.control_records import (
    ControlRecordType,
    EndTxnMarker,
    build_control_batch,
    control_record_key,
    decode_end_txn_marker,
    parse_control_record_key,
)
from storage.errors import CorruptRecordError, InvalidRecordError, UnsupportedCompressionError
from storage.record_batch import (
    CRC_OFFSET,
    HEADER_SIZE,
    HEADER_STRUCT,
    compute_crc,
    iter_batches,
    parse_header,
    set_base_offset,
    set_max_timestamp,
    set_partition_leader_epoch,
    validate_batch,
)
from storage.records import Record, SimpleRecord, build_batch, decode_batch, decode_records

CODECS = list(CompressionType)
COMPRESSED = [c for c in CompressionType if c is not CompressionType.NONE]


def _payloads() -> dict[str, bytes]:
    rng = random.Random(7)
    return {
        "empty": b"",
        "small": b"hello kafka",
        "random-100k": rng.randbytes(100_000),
        "text-300k": b"".join(b"line %d of some log text\n" % i for i in range(12_000)),
        "zeros-1m": bytes(1 << 20),
    }


PAYLOADS = _payloads()


def _ts(r: SimpleRecord) -> int:
    assert r.timestamp is not None
    return r.timestamp


def _reheader(buf: bytes, **fields: int) -> bytes:
    """``buf`` with header fields replaced and the CRC recomputed (a valid-CRC, edited batch)."""
    names = [
        "base_offset", "batch_length", "partition_leader_epoch", "magic", "crc", "attributes",
        "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id", "producer_epoch",
        "base_sequence", "record_count",
    ]
    values = dict(zip(names, HEADER_STRUCT.unpack_from(buf), strict=True))
    values.update(fields)
    out = bytearray(buf)
    HEADER_STRUCT.pack_into(out, 0, *(values[n] for n in names))
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


def _with_section(buf: bytes, section: bytes, **fields: int) -> bytes:
    """Replace the records section (after the header) and fix length and CRC."""
    out = buf[:HEADER_SIZE] + section
    return _reheader(out, batch_length=len(out) - 12, **fields)


# --------------------------------------------------------------------------------------------
# header


def test_header_fields_round_trip() -> None:
    buf = build_batch(
        [SimpleRecord(b"a", timestamp=1_000), SimpleRecord(b"b", timestamp=3_000),
         SimpleRecord(b"c", timestamp=2_000)],
        base_offset=1 << 40,
        producer_id=123456789012,
        producer_epoch=7,
        base_sequence=2_147_483_646,
        partition_leader_epoch=9,
        is_transactional=True,
        compression=CompressionType.LZ4,
        offset_deltas=[0, 2, 5],
        last_offset_delta=6,
    )
    h = validate_batch(buf)
    assert h.size == len(buf)
    assert (h.base_offset, h.partition_leader_epoch, h.magic) == (1 << 40, 9, 2)
    assert h.compression == CompressionType.LZ4
    assert h.is_transactional and not h.is_control and not h.is_log_append_time
    assert not h.has_delete_horizon
    assert (h.last_offset_delta, h.last_offset, h.next_offset) == (6, (1 << 40) + 6, (1 << 40) + 7)
    assert (h.base_timestamp, h.max_timestamp) == (1_000, 3_000)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (123456789012, 7, 2_147_483_646)
    assert h.last_sequence == 4  # wraps at int32 max like Kafka: 2**31 - 2 + 6 - 2**31
    assert h.record_count == 3
    assert [r.offset for r in decode_records(buf)] == [1 << 40, (1 << 40) + 2, (1 << 40) + 5]


def test_default_producer_fields_and_attributes() -> None:
    buf = build_batch([SimpleRecord(b"x", timestamp=5)])
    h = parse_header(buf)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (-1, -1, -1)
    assert h.partition_leader_epoch == -1
    assert h.attributes == 0
    assert h.last_sequence == -1


def test_crc_covers_every_byte_from_attributes() -> None:
    buf = build_batch(
        [SimpleRecord(b"value-%d" % i, key=b"k", headers=(("h", b"v"),), timestamp=10 + i)
         for i in range(3)],
        producer_id=5, producer_epoch=1, base_sequence=0,
    )
    validate_batch(buf)
    # every bit of the CRC field and of the CRC'd region [21, end)
    for i in range(CRC_OFFSET, len(buf)):
        for bit in range(8):
            bad = bytearray(buf)
            bad[i] ^= 1 << bit
            with pytest.raises(CorruptRecordError):
                validate_batch(bad)
            with pytest.raises((CorruptRecordError, InvalidRecordError)):
                decode_records(bytes(bad))


def test_rewrite_outside_crc_keeps_batch_valid() -> None:
    buf = bytearray(build_batch([SimpleRecord(b"x", timestamp=1), SimpleRecord(b"y", timestamp=2)]))
    crc_before = parse_header(buf).crc
    set_base_offset(buf, 0, 1_000_000)
    set_partition_leader_epoch(buf, 0, 42)
    h = validate_batch(buf)
    assert (h.base_offset, h.partition_leader_epoch, h.crc) == (1_000_000, 42, crc_before)
    assert [r.offset for r in decode_records(buf)] == [1_000_000, 1_000_001]


def test_rewrite_in_memoryview_at_position() -> None:
    first = build_batch([SimpleRecord(b"a", timestamp=1)])
    second = build_batch([SimpleRecord(b"b", timestamp=1)])
    buf = bytearray(first + second)
    view = memoryview(buf)
    set_base_offset(view, len(first), 77)
    set_partition_leader_epoch(view, len(first), 3)
    batches = list(iter_batches(buf))
    assert [pos for pos, _ in batches] == [0, len(first)]
    assert batches[1][1].base_offset == 77 and batches[1][1].partition_leader_epoch == 3


def test_set_max_timestamp_recomputes_crc_and_log_append_time() -> None:
    buf = bytearray(build_batch(
        [SimpleRecord(b"x", timestamp=1), SimpleRecord(b"y", timestamp=2)],
        timestamp_type=1,
    ))
    set_max_timestamp(buf, 0, len(buf), 999_999)
    h = validate_batch(buf)
    assert h.is_log_append_time and h.max_timestamp == 999_999
    # LogAppendTime: every record reports the batch's append time, as Kafka's readers do
    assert [r.timestamp for r in decode_records(buf)] == [999_999, 999_999]


def _legacy_message(magic: int) -> bytes:
    """An old-format (v0/v1) message set entry: offset, size, crc, magic, attributes, ..."""
    body = bytes([magic, 0]) + (struct.pack(">q", 1234) if magic == 1 else b"")
    body += struct.pack(">i", -1) + struct.pack(">i", 5) + b"hello"
    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(msg)) + msg


@pytest.mark.parametrize("magic", [0, 1])
def test_magic_0_and_1_rejected_with_clear_message(magic: int) -> None:
    short = _legacy_message(magic)
    assert len(short) < HEADER_SIZE
    long = _legacy_message(magic) * 4  # long enough to be parsed as a full header
    for buf in (short, long):
        for fn in (parse_header, validate_batch, decode_records):
            with pytest.raises(InvalidRecordError, match=f"magic {magic}"):
                fn(buf)
        with pytest.raises(InvalidRecordError, match=f"magic {magic}"):
            list(iter_batches(buf))


def test_unknown_magic_is_corrupt() -> None:
    buf = bytearray(build_batch([SimpleRecord(b"x", timestamp=1)]))
    buf[16] = 3
    with pytest.raises(CorruptRecordError, match="magic 3"):
        parse_header(buf)


def test_truncated_batch_is_corrupt() -> None:
    buf = build_batch([SimpleRecord(b"v" * 50, key=b"k", timestamp=i) for i in range(4)],
                      compression=CompressionType.GZIP)
    for n in range(len(buf)):
        with pytest.raises(CorruptRecordError):
            validate_batch(buf[:n])
        with pytest.raises(CorruptRecordError):
            decode_records(buf[:n])
        if n:
            with pytest.raises(CorruptRecordError):
                list(iter_batches(buf + buf[:n]))  # a torn batch at the end of a log


def test_batch_length_too_small_is_corrupt() -> None:
    buf = build_batch([SimpleRecord(b"x", timestamp=1)])
    with pytest.raises(CorruptRecordError, match="too small"):
        parse_header(_reheader(buf, batch_length=10))


# --------------------------------------------------------------------------------------------
# records


def test_records_round_trip_fields() -> None:
    records = [
        SimpleRecord(b"v1", key=b"k1", headers=(("a", b"1"), ("b", None), ("", b"")), timestamp=50),
        SimpleRecord(None, key=b"tombstone", timestamp=40),
        SimpleRecord(b"", key=b"", timestamp=60),
        SimpleRecord(None, key=None, timestamp=-1),
        SimpleRecord(b"k" * 300, key=b"x" * 20_000, headers=(("ünïcødé", b"\xff" * 200),),
                     timestamp=(1 << 62)),
    ]
    buf = build_batch(records, base_offset=100, base_timestamp=45)
    h, decoded = decode_batch(buf)
    assert h.base_timestamp == 45 and h.max_timestamp == 1 << 62
    assert decoded == [
        Record(100 + i, _ts(r), r.key, r.value, r.headers) for i, r in enumerate(records)
    ]


def test_tuple_and_record_inputs() -> None:
    buf = build_batch(
        [
            (b"k", b"v"),
            (None, b"v2", [("h", b"x")]),
            (b"k3", None, (), 77),
            Record(offset=999, timestamp=78, key=b"r", value=b"rv", headers=()),
        ],
        base_timestamp=70,
    )
    got = decode_records(buf)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == [
        (0, 70, b"k", b"v", ()),
        (1, 70, None, b"v2", (("h", b"x"),)),
        (2, 77, b"k3", None, ()),
        (3, 78, b"r", b"rv", ()),
    ]


def test_missing_timestamps_use_wall_clock() -> None:
    import time

    before = int(time.time() * 1000)
    got = decode_records(build_batch([SimpleRecord(b"a"), SimpleRecord(b"b")]))
    after = int(time.time() * 1000)
    assert before <= got[0].timestamp <= after
    assert got[0].timestamp == got[1].timestamp


def test_offset_gaps_for_compaction_and_empty_batch() -> None:
    buf = build_batch(
        [SimpleRecord(b"a", timestamp=1), SimpleRecord(b"b", timestamp=2)],
        base_offset=10, offset_deltas=[3, 9], last_offset_delta=12,
    )
    h, recs = decode_batch(buf)
    assert [r.offset for r in recs] == [13, 19]
    assert (h.last_offset, h.record_count) == (22, 2)

    # an empty batch kept for producer state (compaction), with its original offset range
    empty = build_batch([], base_offset=10, last_offset_delta=12, producer_id=3,
                        producer_epoch=0, base_sequence=5, max_timestamp=1234)
    h, recs = decode_batch(empty)
    assert recs == [] and h.record_count == 0 and h.last_offset == 22
    assert (h.base_timestamp, h.max_timestamp) == (-1, 1234)
    # an empty compressed section with record count 0 is accepted too
    assert decode_records(_reheader(empty, attributes=CompressionType.GZIP)) == []


@pytest.mark.parametrize("deltas", [[0, 0], [1, 0], [-1, 2]])
def test_bad_offset_deltas_rejected_by_builder(deltas: list[int]) -> None:
    with pytest.raises(ValueError):
        build_batch([SimpleRecord(b"a", timestamp=1), SimpleRecord(b"b", timestamp=1)],
                    offset_deltas=deltas)


def test_builder_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        build_batch([SimpleRecord("text", timestamp=1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_batch([SimpleRecord(b"x", headers=((b"k", b"v"),), timestamp=1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_batch([SimpleRecord(b"x", timestamp=1)], offset_deltas=[0, 1])
    with pytest.raises(ValueError):
        build_batch([SimpleRecord(b"x", timestamp=1)], offset_deltas=[5], last_offset_delta=4)
    with pytest.raises(ValueError):
        build_batch([SimpleRecord(b"x", timestamp=1)], producer_epoch=1 << 20)
    with pytest.raises(UnsupportedCompressionError):
        build_batch([SimpleRecord(b"x", timestamp=1)], compression=6)


def test_delete_horizon() -> None:
    buf = build_batch([SimpleRecord(None, key=b"k", timestamp=500)], delete_horizon_ms=10_000)
    h, recs = decode_batch(buf)
    assert h.has_delete_horizon and h.base_timestamp == 10_000
    assert recs[0].timestamp == 500


def _section(buf: bytes) -> bytes:
    return buf[HEADER_SIZE:]


def test_record_count_mismatch_and_trailing_bytes() -> None:
    buf = build_batch([SimpleRecord(b"a", timestamp=1), SimpleRecord(b"b", timestamp=1)])
    with pytest.raises(CorruptRecordError, match="only 2 present"):
        decode_records(_reheader(buf, record_count=3))
    with pytest.raises(CorruptRecordError, match="left after"):
        decode_records(_reheader(buf, record_count=1))
    with pytest.raises(CorruptRecordError, match="negative record count"):
        decode_records(_reheader(buf, record_count=-1))
    with pytest.raises(CorruptRecordError, match="left after"):
        decode_records(_with_section(buf, _section(buf) + b"\x00"))
    # the same checks apply inside a compressed section
    gz = build_batch([SimpleRecord(b"a", timestamp=1)], compression=CompressionType.GZIP)
    with pytest.raises(CorruptRecordError, match="only 1 present"):
        decode_records(_reheader(gz, record_count=2))


def test_record_structure_errors_are_corrupt() -> None:
    one = build_batch([SimpleRecord(b"val", key=b"key", headers=(("h", b"x"),), timestamp=1)])
    section = _section(one)
    # record length larger than the data
    with pytest.raises(CorruptRecordError):
        decode_records(_with_section(one, b"\x7e" + section[1:]))
    # record length 1 smaller than its fields
    bad_len = bytes([section[0] - 2]) + section[1:]
    with pytest.raises(CorruptRecordError):
        decode_records(_with_section(one, bad_len, record_count=1))
    # key length -2
    with pytest.raises(CorruptRecordError, match="key length"):
        decode_records(_with_section(one, section[:4] + b"\x03" + section[5:]))
    # header key not UTF-8
    bad_utf8 = section.replace(b"\x02h", b"\x02\xff")
    with pytest.raises(CorruptRecordError, match="UTF-8"):
        decode_records(_with_section(one, bad_utf8))
    # varint too long (6 continuation bytes as the record length)
    with pytest.raises(CorruptRecordError, match="does not fit in 32 bits"):
        decode_records(_with_section(one, b"\xff" * 6 + b"\x01"))


def test_offset_delta_rules_are_invalid_record() -> None:
    two = build_batch([SimpleRecord(b"a", timestamp=1), SimpleRecord(b"b", timestamp=1)],
                      offset_deltas=[0, 1])
    s = bytearray(_section(two))
    # each record: len, attrs, ts_delta, offset_delta; one-byte zig-zag varints (1 -> 2)
    second = (s[0] >> 1) + 1
    assert s[3] == 0 and s[second + 3] == 2
    s[second + 3] = 0  # second record's offset delta 0: not increasing
    with pytest.raises(InvalidRecordError, match="does not follow"):
        decode_records(_with_section(two, bytes(s)))
    with pytest.raises(InvalidRecordError, match="last offset delta"):
        decode_records(_reheader(two, last_offset_delta=0))


# --------------------------------------------------------------------------------------------
# codecs


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_codec_round_trip(codec: CompressionType, name: str) -> None:
    data = PAYLOADS[name]
    encoded = compress(codec, data)
    assert decompress(codec, encoded) == data
    assert decompress(codec, memoryview(bytearray(encoded))) == data
    if codec is not CompressionType.NONE and name in ("text-300k", "zeros-1m"):
        assert len(encoded) < len(data) // 3


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_batch_round_trip_every_codec(codec: CompressionType) -> None:
    rng = random.Random(codec)
    records = [
        SimpleRecord(rng.randbytes(rng.randrange(0, 3000)) if i % 7 else None,
                     key=b"key-%d" % (i % 13) if i % 5 else None,
                     headers=(("trace", b"%d" % i),) if i % 3 == 0 else (),
                     timestamp=1_700_000_000_000 + rng.randrange(-5000, 5000))
        for i in range(200)
    ]
    buf = build_batch(records, compression=codec, base_offset=5000)
    h = validate_batch(buf)
    assert h.compression == codec and h.record_count == 200
    got = decode_records(buf)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (r.key, r.value, r.headers, r.timestamp) for r in records
    ]
    assert [r.offset for r in got] == list(range(5000, 5200))


def test_gzip_standard_member_and_concatenated_members() -> None:
    data = PAYLOADS["text-300k"]
    enc = compress(CompressionType.GZIP, data)
    assert enc[:2] == b"\x1f\x8b" and gzip.decompress(enc) == data
    assert decompress(CompressionType.GZIP, gzip.compress(data, mtime=0)) == data
    two = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(CompressionType.GZIP, two) == b"first second"
    assert decompress(CompressionType.GZIP, gzip.compress(b"pad") + b"\x00" * 8) == b"pad"
    # raw deflate or zlib-wrapped data is not gzip
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.GZIP, zlib.compress(data))


def _xerial(data: bytes, block: int, header: bytes | None = None) -> bytes:
    out = [header or SNAPPY_XERIAL_MAGIC + struct.pack(">ii", 1, 1)]
    for i in range(0, len(data), block):
        b = bytes(cramjam.snappy.compress_raw(data[i : i + block]))
        out.append(struct.pack(">i", len(b)) + b)
    return b"".join(out)


def test_snappy_xerial_written_and_both_framings_read() -> None:
    data = PAYLOADS["text-300k"]
    enc = compress(CompressionType.SNAPPY, data)
    assert enc[:16] == SNAPPY_XERIAL_MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x01"
    # 32 KiB of input per block
    (first_len,) = struct.unpack_from(">i", enc, 16)
    assert bytes(cramjam.snappy.decompress_raw(enc[20 : 20 + first_len])) == data[: 32 * 1024]
    # raw snappy, as librdkafka writes it
    assert decompress(CompressionType.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data
    # xerial with other block sizes, and little-endian version fields (redpanda)
    assert decompress(CompressionType.SNAPPY, _xerial(data, 4096)) == data
    le = SNAPPY_XERIAL_MAGIC + struct.pack("<ii", 1, 1)
    assert decompress(CompressionType.SNAPPY, _xerial(data, 65536, le)) == data
    # empty input still gets one block (kafka-python needs more than the 16 header bytes)
    assert len(compress(CompressionType.SNAPPY, b"")) > 16
    assert decompress(CompressionType.SNAPPY, SNAPPY_XERIAL_MAGIC + bytes(8)) == b""
    # a truncated xerial block
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.SNAPPY, enc[:-10])
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.SNAPPY, enc[:18])


LZ4_FLAGS = [
    {"block_linked": False, "content_checksum": False, "store_size": False,
     "block_size": lz4.frame.BLOCKSIZE_MAX64KB},
    {"block_linked": False, "content_checksum": False, "store_size": True},  # kafka-python: 0x68
    {"block_linked": False, "content_checksum": True, "store_size": False,
     "block_size": lz4.frame.BLOCKSIZE_MAX256KB},
    {"block_linked": True, "content_checksum": True, "store_size": True,
     "block_size": lz4.frame.BLOCKSIZE_MAX1MB},
    {"block_linked": True, "content_checksum": False, "block_checksum": True,
     "block_size": lz4.frame.BLOCKSIZE_MAX4MB},
    {"block_linked": False, "block_checksum": True, "compression_level": 9},
]


@pytest.mark.parametrize("flags", LZ4_FLAGS)
def test_lz4_frames_with_any_flags(flags: dict[str, object]) -> None:
    for data in (b"", b"x", PAYLOADS["text-300k"], PAYLOADS["random-100k"]):
        frame = lz4.frame.compress(data, **flags)
        assert decompress(CompressionType.LZ4, frame) == data


def test_lz4_written_like_java_and_multi_frame() -> None:
    enc = compress(CompressionType.LZ4, PAYLOADS["text-300k"])
    assert enc[:4] == b"\x04\x22\x4d\x18"
    assert enc[4] == 0x60  # version 01, independent blocks, no size, no checksum
    info = lz4.frame.get_frame_info(enc)
    assert info["block_linked"] is False and info["block_size"] == 64 * 1024
    two = lz4.frame.compress(b"abc") + lz4.frame.compress(b"def", content_checksum=True)
    assert decompress(CompressionType.LZ4, two) == b"abcdef"


def test_lz4_content_checksum_checked() -> None:
    frame = bytearray(lz4.frame.compress(b"hello world" * 50, content_checksum=True))
    frame[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.LZ4, bytes(frame))


def _zstd_raw_frame(data: bytes, *, checksum_bytes: bytes | None = None) -> bytes:
    """A hand-made zstd frame of raw blocks: no content size, window 1 MiB."""
    fhd = 0x04 if checksum_bytes is not None else 0x00
    out = bytearray(struct.pack("<I", 0xFD2FB528) + bytes([fhd, (20 - 10) << 3]))
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        out += (len(chunk) << 3 | 0 << 1 | last).to_bytes(3, "little") + chunk
    if checksum_bytes is not None:
        out += checksum_bytes
    return bytes(out)


def test_zstd_multi_frame_skippable_and_unsized() -> None:
    a, b = PAYLOADS["text-300k"], PAYLOADS["random-100k"]
    two = compress(CompressionType.ZSTD, a) + compress(CompressionType.ZSTD, b)
    assert decompress(CompressionType.ZSTD, two) == a + b
    skippable = struct.pack("<II", 0x184D2A5E, 3) + b"xyz"
    assert decompress(CompressionType.ZSTD, skippable + two) == a + b
    # streaming compressors write no content size
    c = cramjam.zstd.Compressor()
    c.compress(b)
    unsized = bytes(c.finish())
    assert zstd_output_bound(unsized) >= len(b)
    assert decompress(CompressionType.ZSTD, unsized + unsized) == b + b
    raw = _zstd_raw_frame(a)
    assert zstd_output_bound(raw) == len(a)
    assert decompress(CompressionType.ZSTD, raw) == a


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_decompression_bomb_bounded(codec: CompressionType) -> None:
    data = bytes(1 << 20)
    enc = compress(codec, data)
    assert decompress(codec, enc, max_size=len(data)) == data
    with pytest.raises(CorruptRecordError, match="limit"):
        decompress(codec, enc, max_size=len(data) - 1)
    with pytest.raises(CorruptRecordError, match="limit"):
        decompress(codec, enc, max_size=1000)
    buf = build_batch([SimpleRecord(data, timestamp=1)], compression=codec)
    with pytest.raises(CorruptRecordError, match="limit"):
        decode_records(buf, max_decompressed_size=1 << 19)


def test_default_bomb_limit_gzip_and_zstd() -> None:
    big = bytes(DEFAULT_MAX_DECOMPRESSED_SIZE + 1)
    for codec, enc in (
        (CompressionType.GZIP, zlib.compressobj(1, zlib.DEFLATED, 31)),
        (CompressionType.ZSTD, None),
    ):
        if enc is None:
            payload = bytes(cramjam.zstd.compress(big, level=1))
        else:
            payload = enc.compress(big) + enc.flush()
        assert len(payload) < 1 << 20
        with pytest.raises(CorruptRecordError, match="limit"):
            decompress(codec, payload)
    # lz4 unsized frames (no declared size) are bounded while decoding
    lz = lz4.frame.compress(big, store_size=False)
    with pytest.raises(CorruptRecordError, match="limit"):
        decompress(CompressionType.LZ4, lz)


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_garbage_and_truncated_input_is_corrupt(codec: CompressionType) -> None:
    rng = random.Random(codec)
    valid = compress(codec, PAYLOADS["text-300k"])
    inputs = [b"", b"\x00", rng.randbytes(10), rng.randbytes(5000), valid[: len(valid) // 2],
              valid[:-1], valid + b"trailing garbage", valid[:3]]
    for _ in range(50):
        bad = bytearray(valid[:2000])
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        inputs.append(bytes(bad))
    for data in inputs:
        try:
            out = decompress(codec, data)
        except CorruptRecordError:
            continue
        # a flipped bit in data may still decode (no checksum in some framings): then it is bytes
        assert isinstance(out, bytes)
    for data in inputs[:8]:
        if codec is CompressionType.SNAPPY and data == b"\x00":
            assert decompress(codec, data) == b""  # raw snappy of nothing: a valid stream
            continue
        with pytest.raises(CorruptRecordError):
            decompress(codec, data)


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec(codec: int) -> None:
    with pytest.raises(UnsupportedCompressionError, match=str(codec)):
        compress(codec, b"x")
    with pytest.raises(UnsupportedCompressionError):
        decompress(codec, b"x")
    buf = build_batch([SimpleRecord(b"x", timestamp=1)])
    bad = _reheader(buf, attributes=codec)
    assert validate_batch(bad).compression == codec  # the header itself is fine
    with pytest.raises(UnsupportedCompressionError):
        decode_records(bad)
    assert issubclass(UnsupportedCompressionError, InvalidRecordError)


# --------------------------------------------------------------------------------------------
# control records


@pytest.mark.parametrize("ctype", [ControlRecordType.ABORT, ControlRecordType.COMMIT])
def test_transaction_marker_round_trip(ctype: ControlRecordType) -> None:
    buf = build_control_batch(ctype, producer_id=4000, producer_epoch=3, coordinator_epoch=17,
                              base_offset=55, partition_leader_epoch=2, timestamp=123)
    h, recs = decode_batch(buf)
    assert h.is_control and h.is_transactional
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (4000, 3, -1)
    assert (h.base_offset, h.partition_leader_epoch, h.record_count) == (55, 2, 1)
    assert len(recs) == 1 and recs[0].offset == 55 and recs[0].timestamp == 123
    assert recs[0].key == b"\x00\x00\x00" + bytes([ctype])
    assert parse_control_record_key(recs[0].key) == (0, ctype)
    marker = decode_end_txn_marker(recs[0])
    assert marker == EndTxnMarker(ctype, 17)
    assert marker.is_commit == (ctype is ControlRecordType.COMMIT)


def test_kraft_control_batch_and_marker_errors() -> None:
    buf = build_control_batch(ControlRecordType.LEADER_CHANGE, value=b"\x00\x00opaque", timestamp=9)
    h, recs = decode_batch(buf)
    assert h.is_control and not h.is_transactional and h.producer_id == -1
    assert parse_control_record_key(recs[0].key) == (0, ControlRecordType.LEADER_CHANGE)
    with pytest.raises(InvalidRecordError):
        decode_end_txn_marker(recs[0])
    with pytest.raises(ValueError):
        build_control_batch(ControlRecordType.COMMIT)  # markers need a producer id
    with pytest.raises(CorruptRecordError):
        parse_control_record_key(b"\x00")
    with pytest.raises(CorruptRecordError):
        decode_end_txn_marker(Record(0, 0, control_record_key(ControlRecordType.ABORT), b"\x00"))
    # a newer key/value version with extra bytes is still read (as Kafka does)
    newer = Record(0, 0, control_record_key(ControlRecordType.COMMIT, version=1) + b"\x00",
                   struct.pack(">hi", 1, 8) + b"\x00")
    assert decode_end_txn_marker(newer) == EndTxnMarker(ControlRecordType.COMMIT, 8)


# --------------------------------------------------------------------------------------------
# interop with kafka-python (a real client's reader and writer)


def _kafka_records():  # a module
    return pytest.importorskip("kafka.record.default_records")


def _require_kafka_codec(codec: CompressionType) -> None:
    kcodec = pytest.importorskip("kafka.codec")
    have = {
        CompressionType.NONE: True,
        CompressionType.GZIP: kcodec.has_gzip(),
        CompressionType.SNAPPY: kcodec.has_snappy(),
        CompressionType.LZ4: kcodec.has_lz4(),
        CompressionType.ZSTD: kcodec.has_zstd(),
    }[codec]
    if not have:
        pytest.skip(f"kafka-python lacks the library for {codec.name} (python-snappy/zstandard)")


def _interop_records() -> list[SimpleRecord]:
    return [
        SimpleRecord(b"value %d " % i * 20 if i % 4 else None,
                     key=b"key-%d" % i if i % 3 else None,
                     headers=(("h1", b"x"), ("h2", None)) if i % 2 else (),
                     timestamp=1_700_000_000_000 + i * 7 - (i % 3) * 50)
        for i in range(60)
    ]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_kafka_python_batches_decode_identically(codec: CompressionType) -> None:
    dr = _kafka_records()
    _require_kafka_codec(codec)
    records = _interop_records()
    builder = dr.DefaultRecordBatchBuilder(
        magic=2, compression_type=int(codec), is_transactional=False,
        producer_id=77, producer_epoch=2, base_sequence=10, batch_size=1 << 20,
    )
    for i, r in enumerate(records):
        assert builder.append(i, timestamp=r.timestamp, key=r.key, value=r.value,
                              headers=list(r.headers)) is not None
    buf = bytes(builder.build())
    h = validate_batch(buf)
    assert h.compression == codec  # the data is compressible, so kafka-python kept the codec
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.record_count) == (77, 2, 10, 60)
    got = decode_records(buf)
    assert got == [Record(i, _ts(r), r.key, r.value, r.headers)
                   for i, r in enumerate(records)]
    # and the same as kafka-python's own reader sees
    theirs = [(m.offset, m.timestamp, m.key, m.value, tuple(m.headers))
              for m in dr.DefaultRecordBatch(buf)]
    assert theirs == [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_our_batches_read_by_kafka_python(codec: CompressionType) -> None:
    dr = _kafka_records()
    _require_kafka_codec(codec)
    records = _interop_records()
    buf = build_batch(records, compression=codec, base_offset=1000, producer_id=5,
                      producer_epoch=1, base_sequence=0, partition_leader_epoch=4,
                      offset_deltas=[2 * i for i in range(len(records))])
    batch = dr.DefaultRecordBatch(buf)
    assert batch.validate_crc()
    assert batch.compression_type == codec and batch.base_offset == 1000
    assert batch.leader_epoch == 4 and batch.producer_id == 5 and batch.base_sequence == 0
    assert batch.last_offset_delta == 2 * (len(records) - 1)
    assert batch.max_timestamp == max(_ts(r) for r in records)
    got = [(m.offset, m.timestamp, m.key, m.value, tuple(m.headers)) for m in batch]
    assert got == [(1000 + 2 * i, r.timestamp, r.key, r.value, r.headers)
                   for i, r in enumerate(records)]


def test_kafka_python_reads_our_control_batch() -> None:
    dr = _kafka_records()
    buf = build_control_batch(ControlRecordType.ABORT, producer_id=9, producer_epoch=0,
                              coordinator_epoch=4, timestamp=1)
    batch = dr.DefaultRecordBatch(buf)
    assert batch.validate_crc() and batch.is_control_batch and batch.is_transactional
    (rec,) = list(batch)
    assert rec.abort and rec.version == 0


def test_kafka_python_rejects_a_corrupted_batch_of_ours() -> None:
    dr = _kafka_records()
    buf = bytearray(build_batch([SimpleRecord(b"x" * 100, timestamp=1)]))
    buf[-5] ^= 1
    assert not dr.DefaultRecordBatch(bytes(buf)).validate_crc()
    with pytest.raises(CorruptRecordError):
        validate_batch(buf)


def test_random_bytes_header_never_other_errors() -> None:
    rng = random.Random(1)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 200))
        try:
            decode_records(data)
        except (CorruptRecordError, InvalidRecordError):
            pass
