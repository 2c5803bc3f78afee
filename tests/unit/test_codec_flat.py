"""The flat encoders and decoders (kraft/codec/flat.py) against the general generated code, and
the snapshot framing fast paths (storage/value_batch.py, the one-byte metadata record frames)
against the general record codec: same bytes, same objects, same errors, on generated input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.protocol.api_keys import API_SPECS
from kraft.codec import (
    BOOL,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    UINT16,
    UINT32,
    UUID,
    Array,
    CodecError,
    DecodeError,
    Field,
    Message,
    Primitive,
    Struct,
    write_uvarint,
)
from kraft.metadata_records import (
    CONTROL_RECORD_SCHEMAS,
    METADATA_RECORD_SCHEMAS,
    MetadataRecordType,
    PartitionRecord,
    _decode_frame,
    decode_metadata_record,
    encode_metadata_record,
)
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.records import build_batch, decode_batch
from storage.value_batch import build_value_batch, decode_batch_values

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A test-only message with every flat field kind, classic (v0) and flexible (v1+) encodings,
# a field absent before v2 and a tagged field.
Mixed = Message("Mixed", valid_versions="0-2", flexible_versions="1+", fields=[
    Field("a", INT8), Field("b", UUID), Field("c", Array(INT64)), Field("d", BOOL),
    Field("e", Array(UUID)), Field("f", FLOAT64), Field("g", Array(UINT16)),
    Field("h", UINT32, "2+"), Field("i", INT16, tag=0, tagged_versions="1+"),
    Field("j", Array(INT32), "1+"),
])


def _flat_messages() -> list[tuple[Message, int]]:
    msgs: list[Message] = [Mixed, *METADATA_RECORD_SCHEMAS.values(),
                           *CONTROL_RECORD_SCHEMAS.values()]
    for spec in API_SPECS.values():
        msgs += [spec.request, spec.response]
    out = []
    for m in msgs:
        for v in range(m.valid_versions.lowest, m.valid_versions.highest + 1):
            if "def _encode_flat" in m.generated_source(v):
                out.append((m, v))
    return out


FLAT = _flat_messages()


def test_flat_covers_the_metadata_records() -> None:
    flat = {(m.name, v) for m, v in FLAT}
    assert ("PartitionRecord", 2) in flat and ("FenceBrokerRecord", 0) in flat
    assert ("Mixed", 0) in flat and ("Mixed", 2) in flat
    assert ("TopicRecord", 0) not in flat  # a string: general code only


def _value(draw: Any, t: Any, nullable: bool) -> Any:
    if nullable and draw(st.integers(0, 4)) == 0:
        return None
    if isinstance(t, Array):
        # Mostly short, sometimes past the flat path's 63-element limit.
        size = draw(st.sampled_from([0, 1, 3, 62, 63, 70]) | st.integers(0, 5))
        return [_value(draw, t.elem, False) for _ in range(size)]
    if isinstance(t, Struct):
        return t.cls(**{f.name: _value(draw, f.type, False) for f in t.fields})
    assert isinstance(t, Primitive)
    if t is UUID:
        return draw(st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1)])
                    | st.uuids())
    if t is BOOL:
        return draw(st.booleans())
    if t is FLOAT64:
        return draw(st.floats(allow_nan=False))
    if t.kind == "string":
        return draw(st.text(max_size=5))
    if t.kind in ("bytes", "records"):
        return draw(st.binary(max_size=5))
    return draw(st.integers(t.lo, t.hi))


def _object(draw: Any, msg: Message, version: int) -> Any:
    values = {}
    for f in msg.fields:
        present = version in f.versions
        # Absent and tagged fields mostly keep their default (the flat path), sometimes not.
        if (not present or version in f.tagged_versions) and draw(st.integers(0, 3)):
            continue
        values[f.name] = _value(draw, f.type, version in f.nullable_versions or not present)
    return msg.cls(**values)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as e:  # noqa: BLE001 - the outcome is compared, whatever it is
        return ("error", type(e).__name__, str(e))


def _general_encode(msg: Message, obj: Any, version: int) -> bytes:
    out: list[Any] = []
    msg._general[version][0](obj, out.append)
    return b"".join(out)


def _flat_encode(msg: Message, obj: Any, version: int) -> bytes:
    out: list[Any] = []
    msg._encoders[version](obj, out.append)
    return b"".join(out)


@SETTINGS
@given(st.data())
def test_flat_encode_matches_general(data: Any) -> None:
    msg, version = data.draw(st.sampled_from(FLAT))
    obj = _object(data.draw, msg, version)
    assert msg._encoders[version] is not msg._general[version][0]
    assert _outcome(_flat_encode, msg, obj, version) == \
        _outcome(_general_encode, msg, obj, version)


def _mutations(data: Any, raw: bytes) -> bytes:
    choice = data.draw(st.integers(0, 4))
    if choice == 0 or not raw:
        return raw
    if choice == 1:
        return raw[: data.draw(st.integers(0, len(raw) - 1))]  # truncated
    if choice == 2:
        return raw + data.draw(st.binary(min_size=1, max_size=4))  # trailing bytes
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
    return bytes(out)


@SETTINGS
@given(st.data())
def test_flat_decode_matches_general(data: Any) -> None:
    msg, version = data.draw(st.sampled_from(FLAT))
    obj = _object(data.draw, msg, version)
    try:
        raw = msg.encode(obj, version)
    except CodecError:
        raw = data.draw(st.binary(max_size=64))
    prefix = data.draw(st.binary(max_size=3))
    buf = memoryview(prefix + _mutations(data, raw))
    general = _outcome(msg._general[version][1], buf, len(prefix))
    assert _outcome(msg._decoders[version], buf, len(prefix)) == general


def test_flat_paths_taken_and_left() -> None:
    r = PartitionRecord(partition_id=7, topic_id=uuid.uuid4(), replicas=[1, 2, 3], isr=[1, 2],
                        leader=1, leader_epoch=4, partition_epoch=9,
                        directories=[uuid.uuid4(), uuid.uuid4()])
    for changes in ({}, {"replicas": list(range(70))}, {"leader_recovery_state": 1},
                    {"eligible_leader_replicas": [2]}, {"_unknown_tagged_fields": ((9, b"x"),)}):
        for k, v in changes.items():
            setattr(r, k, v)
        raw = PartitionRecord.encode(r, 2)
        assert raw == _general_encode(PartitionRecord, r, 2)
        assert PartitionRecord.decode(raw, 2) == (r, len(raw))


# ------------------------------------------------------------------- snapshot framing


@SETTINGS
@given(values=st.lists(st.binary(max_size=300) | st.sampled_from([b"", b"x" * 5000]),
                       max_size=40),
       base_offset=st.integers(0, 1 << 40), epoch=st.integers(-1, 1 << 31 - 1),
       ts=st.integers(-1, 1 << 50))
def test_value_batch_matches_build_batch(values: list[bytes], base_offset: int, epoch: int,
                                         ts: int) -> None:
    ours = build_value_batch(values, base_offset=base_offset, partition_leader_epoch=epoch,
                             timestamp=ts)
    theirs = build_batch([(None, v) for v in values], base_offset=base_offset,
                         partition_leader_epoch=epoch, base_timestamp=ts)
    assert ours == theirs
    header, got = decode_batch_values(ours)
    assert got == values and header == decode_batch(ours)[0]


def _batch_outcome(fn: Any, buf: bytes) -> Any:
    try:
        header, items = fn(buf)
    except (CorruptRecordError, InvalidRecordError) as e:
        return ("error", type(e).__name__, str(e))
    return ("ok", header, [getattr(r, "value", r) for r in items])


@SETTINGS
@given(st.data())
def test_decode_batch_values_matches_decode_batch(data: Any) -> None:
    values = data.draw(st.lists(st.binary(max_size=200), max_size=20))
    kind = data.draw(st.integers(0, 2))
    if kind == 0:
        batch = build_value_batch(values, base_offset=5, partition_leader_epoch=3, timestamp=9)
    else:  # layouts off the fast path: keys, headers, per-record timestamps, gaps
        batch = build_batch(
            [(b"k" if kind == 1 and i % 2 else None, v, [("h", b"v")] if i == 3 else (),
              9 + (i == 2)) for i, v in enumerate(values)],
            base_offset=5, offset_deltas=[2 * i for i in range(len(values))] if kind == 2
            else None, partition_leader_epoch=3, base_timestamp=9)
    if data.draw(st.booleans()):
        # Corrupt the records section and fix the CRC: only the record parsing can object.
        from storage.record_batch import CRC_OFFSET, HEADER_SIZE, compute_crc
        out = bytearray(batch)
        if len(out) > HEADER_SIZE:
            for _ in range(data.draw(st.integers(1, 3))):
                out[data.draw(st.integers(HEADER_SIZE, len(out) - 1))] = data.draw(
                    st.integers(0, 255))
            out[CRC_OFFSET:CRC_OFFSET + 4] = compute_crc(out, 0, len(out)).to_bytes(4, "big")
        batch = bytes(out)
    assert _batch_outcome(decode_batch_values, batch) == _batch_outcome(decode_batch, batch)


def _old_decode_metadata_record(buf: bytes) -> tuple[MetadataRecordType, int, Any]:
    """The frame decoder before the one-byte fast path (the reference)."""
    record_type, version, schema, pos = _decode_frame(buf)
    obj, end = schema.decode(buf, version, pos)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} byte(s) of garbage after {schema.name} v{version}")
    return record_type, version, obj


@SETTINGS
@given(st.data())
def test_metadata_record_frames(data: Any) -> None:
    record_type = data.draw(st.sampled_from(sorted(METADATA_RECORD_SCHEMAS)))
    msg = METADATA_RECORD_SCHEMAS[record_type]
    version = data.draw(st.integers(msg.valid_versions.lowest, msg.valid_versions.highest))
    obj = _object(data.draw, msg, version)
    try:
        raw = encode_metadata_record(record_type, version, obj)
    except CodecError:
        return
    assert raw == write_uvarint(1) + write_uvarint(record_type) + write_uvarint(version) + \
        msg.encode(obj, version)
    raw = _mutations(data, raw)
    assert _outcome(decode_metadata_record, raw) == _outcome(_old_decode_metadata_record, raw)


@pytest.mark.parametrize("frame", [b"", b"\x01", b"\x01\x03", b"\x02\x03\x02", b"\x01\x7f\x00",
                                   b"\x01\x03\x09", b"\x01\x83\x00\x00", b"\x01\x03\x80\x00"])
def test_metadata_record_bad_frames(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_metadata_record(frame + bytes(30))
    assert _outcome(decode_metadata_record, frame) == _outcome(_old_decode_metadata_record, frame)


def test_decode_batch_values_every_corrupted_byte() -> None:
    from storage.record_batch import CRC_OFFSET, HEADER_SIZE, compute_crc
    batch = build_value_batch([b"ab", b"", b"x" * 70], base_offset=0, partition_leader_epoch=1,
                              timestamp=5)
    for at in range(HEADER_SIZE, len(batch)):
        for byte in (0, 1, 2, 3, 0x7F, 0x80, 0x81, 0xFF):
            out = bytearray(batch)
            out[at] = byte
            out[CRC_OFFSET:CRC_OFFSET + 4] = compute_crc(out, 0, len(out)).to_bytes(4, "big")
            assert _batch_outcome(decode_batch_values, bytes(out)) == \
                _batch_outcome(decode_batch, bytes(out)), (at, byte)
