"""kraft.codec: byte-exact vectors for every primitive and a few real Kafka messages."""

from __future__ import annotations

import struct
import uuid

import pytest

from kraft.codec import (
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    RECORDS,
    STRING,
    UINT16,
    UINT32,
    UUID,
    UVARINT,
    VARINT,
    VARLONG,
    ZERO_UUID,
    Array,
    DecodeError,
    EncodeError,
    Field,
    Message,
    SchemaError,
    Struct,
    UnsupportedVersionError,
    Versions,
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
    size_of_uvarint,
    size_of_varint,
    size_of_varlong,
    write_uvarint,
    write_uvarlong,
    write_varint,
    write_varlong,
)
from storage.errors import StorageError

# --- varints ---------------------------------------------------------------------------------

UVARINT_VECTORS = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
]

VARINT_VECTORS = [
    (0, b"\x00"),
    (-1, b"\x01"),
    (1, b"\x02"),
    (-2, b"\x03"),
    (63, b"\x7e"),
    (-64, b"\x7f"),
    (64, b"\x80\x01"),
    (300, b"\xd8\x04"),
    (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
    (-(2**31), b"\xff\xff\xff\xff\x0f"),
]

VARLONG_VECTORS = [
    (0, b"\x00"),
    (-1, b"\x01"),
    (1, b"\x02"),
    (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"),
    (-(2**63), b"\xff" * 9 + b"\x01"),
]


@pytest.mark.parametrize(("value", "encoded"), UVARINT_VECTORS)
def test_uvarint_vectors(value: int, encoded: bytes) -> None:
    assert write_uvarint(value) == encoded
    assert write_uvarlong(value) == encoded
    assert size_of_uvarint(value) == len(encoded)
    # Read at an offset, from bytes and from a memoryview, with trailing bytes.
    buf = b"\xee" + encoded + b"\xee"
    assert read_uvarint(buf, 1) == (value, 1 + len(encoded))
    assert read_uvarint(memoryview(buf), 1) == (value, 1 + len(encoded))
    assert read_uvarlong(buf, 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize(("value", "encoded"), VARINT_VECTORS)
def test_varint_vectors(value: int, encoded: bytes) -> None:
    assert write_varint(value) == encoded
    assert write_varlong(value) == encoded
    assert size_of_varint(value) == len(encoded)
    assert read_varint(encoded, 0) == (value, len(encoded))
    assert read_varlong(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize(("value", "encoded"), VARLONG_VECTORS)
def test_varlong_vectors(value: int, encoded: bytes) -> None:
    assert write_varlong(value) == encoded
    assert size_of_varlong(value) == len(encoded)
    assert read_varlong(bytearray(encoded), 0) == (value, len(encoded))


def test_uvarlong_max() -> None:
    encoded = b"\xff" * 9 + b"\x01"
    assert write_uvarlong(2**64 - 1) == encoded
    assert read_uvarlong(encoded, 0) == (2**64 - 1, 10)


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (read_uvarint, b""),
        (read_uvarint, b"\x80"),
        (read_uvarint, b"\xff\xff\xff\xff"),
        (read_uvarint, b"\xff\xff\xff\xff\x10"),  # 33 bits
        (read_uvarint, b"\xff\xff\xff\xff\xff\x01"),  # 6 bytes
        (read_varint, b""),
        (read_varint, b"\x81"),
        (read_varint, b"\xff\xff\xff\xff\x7f"),
        (read_uvarlong, b"\x80" * 10 + b"\x01"),  # 11 bytes
        (read_uvarlong, b"\xff" * 9 + b"\x7f"),  # 70 bits
        (read_varlong, b""),
        (read_varlong, b"\xff\xff"),
    ],
)
def test_bad_varints_raise_decode_error(reader, data: bytes) -> None:
    with pytest.raises(DecodeError):
        reader(data, 0)


@pytest.mark.parametrize(
    ("writer", "value"),
    [
        (write_uvarint, -1),
        (write_uvarint, 2**32),
        (write_uvarlong, -1),
        (write_uvarlong, 2**64),
        (write_varint, 2**31),
        (write_varint, -(2**31) - 1),
        (write_varlong, 2**63),
        (write_varlong, -(2**63) - 1),
    ],
)
def test_varint_out_of_range(writer, value: int) -> None:
    with pytest.raises(EncodeError):
        writer(value)


def test_errors_are_value_errors_not_storage_errors() -> None:
    # A malformed frame is the client's fault, not the disk's: nothing that handles storage
    # errors (taking a log directory offline) may catch it.
    assert issubclass(DecodeError, ValueError) and not issubclass(DecodeError, StorageError)
    assert issubclass(UnsupportedVersionError, ValueError)


# --- versions --------------------------------------------------------------------------------


def test_versions_notation() -> None:
    assert str(Versions.parse("3+")) == "3+"
    assert str(Versions.parse("3-7")) == "3-7"
    assert str(Versions.parse((3, 7))) == "3-7"
    assert str(Versions.parse((12, None))) == "12+"
    assert str(Versions.parse("none")) == "none"
    assert Versions.parse("none").empty
    v = Versions.parse("3-7")
    assert 3 in v and 7 in v and 2 not in v and 8 not in v
    assert 40 in Versions.parse("0+")


# --- one primitive per message, at a non-flexible (0) and a flexible (1) version ---------------


def one(t, **kw) -> Message:
    return Message("One", [Field("x", t, **kw)], valid_versions="0-1", flexible_versions="1+")


U = uuid.UUID("0123456789abcdef0123456789abcdef")

# type, field kwargs, value, bytes at v0 (non-flexible), bytes at v1 (flexible, minus the
# trailing empty tagged-fields byte)
PRIMITIVE_VECTORS = [
    (BOOL, {}, True, b"\x01", b"\x01"),
    (BOOL, {}, False, b"\x00", b"\x00"),
    (INT8, {}, -1, b"\xff", b"\xff"),
    (INT16, {}, -2, b"\xff\xfe", b"\xff\xfe"),
    (UINT16, {}, 65535, b"\xff\xff", b"\xff\xff"),
    (INT32, {}, 1, b"\x00\x00\x00\x01", b"\x00\x00\x00\x01"),
    (UINT32, {}, 2**32 - 1, b"\xff\xff\xff\xff", b"\xff\xff\xff\xff"),
    (INT64, {}, -(2**63), b"\x80" + b"\x00" * 7, b"\x80" + b"\x00" * 7),
    (FLOAT64, {}, 1.5, b"\x3f\xf8" + b"\x00" * 6, b"\x3f\xf8" + b"\x00" * 6),
    (UUID, {}, U, U.bytes, U.bytes),
    (UUID, {}, ZERO_UUID, b"\x00" * 16, b"\x00" * 16),
    (UVARINT, {}, 300, b"\xac\x02", b"\xac\x02"),
    (VARINT, {}, -1, b"\x01", b"\x01"),
    (VARLONG, {}, -65, b"\x81\x01", b"\x81\x01"),
    (STRING, {}, "abc", b"\x00\x03abc", b"\x04abc"),
    (STRING, {}, "", b"\x00\x00", b"\x01"),
    (STRING, {}, "\u00e9", b"\x00\x02\xc3\xa9", b"\x03\xc3\xa9"),
    (STRING, {"nullable_versions": "0+"}, None, b"\xff\xff", b"\x00"),
    (BYTES, {}, b"\x01\x02", b"\x00\x00\x00\x02\x01\x02", b"\x03\x01\x02"),
    (BYTES, {"nullable_versions": "0+"}, None, b"\xff\xff\xff\xff", b"\x00"),
    (RECORDS, {"nullable_versions": "0+"}, b"\xab", b"\x00\x00\x00\x01\xab", b"\x02\xab"),
    (RECORDS, {"nullable_versions": "0+"}, None, b"\xff\xff\xff\xff", b"\x00"),
    (Array(INT32), {}, [1, 2], b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01\x00\x00\x00\x02",
     b"\x03" + b"\x00\x00\x00\x01\x00\x00\x00\x02"),
    (Array(INT32), {}, [], b"\x00\x00\x00\x00", b"\x01"),
    (Array(INT32), {"nullable_versions": "0+"}, None, b"\xff\xff\xff\xff", b"\x00"),
    (Array(STRING), {}, ["a", ""], b"\x00\x00\x00\x02\x00\x01a\x00\x00", b"\x03\x02a\x01"),
    (Array(UUID), {}, [U, ZERO_UUID], b"\x00\x00\x00\x02" + U.bytes + bytes(16),
     b"\x03" + U.bytes + bytes(16)),
    (Array(BOOL), {}, [True, False], b"\x00\x00\x00\x02\x01\x00", b"\x03\x01\x00"),
]


@pytest.mark.parametrize(("t", "kw", "value", "v0", "v1"), PRIMITIVE_VECTORS)
def test_primitive_vectors(t, kw, value, v0: bytes, v1: bytes) -> None:
    msg = one(t, **kw)
    obj = msg(x=value)
    for version, expected in ((0, v0), (1, v1 + b"\x00")):
        data = msg.encode(obj, version)
        assert data == expected
        decoded, end = msg.decode(data, version)
        assert end == len(data)
        assert decoded == obj
        assert decoded.x == value
        # Truncated input always fails with DecodeError (never IndexError/struct.error).
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                msg.decode(data[:cut], version)


def test_string_length_limit() -> None:
    msg = one(STRING)
    for version in (0, 1):
        data = msg.encode(msg(x="a" * 0x7FFF), version)
        assert msg.decode(data, version)[0].x == "a" * 0x7FFF
        with pytest.raises(EncodeError, match="One.x"):
            msg.encode(msg(x="a" * 0x8000), version)
    # A declared length above 0x7fff is rejected even if the bytes are there (as Kafka does).
    with pytest.raises(DecodeError):
        msg.decode(b"\x80\x00" + b"a" * 0x8000, 0)


def test_records_decode_zero_copy() -> None:
    msg = one(RECORDS, nullable_versions="0+")
    data = msg.encode(msg(x=b"batch-bytes"), 1)
    buf = memoryview(bytearray(data))
    decoded, _ = msg.decode(buf, 1)
    assert isinstance(decoded.x, memoryview)
    assert decoded.x.obj is buf.obj  # a view of the request buffer, not a copy
    assert decoded.x == b"batch-bytes"


def test_bytes_decode_as_bytes() -> None:
    msg = one(BYTES)
    decoded, _ = msg.decode(msg.encode(msg(x=b"\x00\x01"), 0), 0)
    assert type(decoded.x) is bytes


def test_nullable_struct_field() -> None:
    inner = Struct("Inner", [Field("a", INT16)])
    msg = Message("M", [Field("s", inner, nullable_versions="0+", default=None)],
                  valid_versions="0-1", flexible_versions="1+")
    assert msg().s is None
    assert msg.encode(msg(), 0) == b"\xff"
    assert msg.encode(msg(), 1) == b"\xff\x00"
    obj = msg(s=msg.Inner(a=7))
    assert msg.encode(obj, 0) == b"\x01\x00\x07"
    assert msg.encode(obj, 1) == b"\x01\x00\x07\x00\x00"  # inner tagged section, then outer
    for version in (0, 1):
        assert msg.decode(msg.encode(obj, version), version)[0] == obj


# --- whole messages --------------------------------------------------------------------------

Item = Struct("Item", [
    Field("id", INT32),
    Field("name", STRING, "1+"),
])

Sample = Message("Sample", api_key=999, valid_versions="0-2", flexible_versions="2+", fields=[
    Field("count", INT16),
    Field("items", Array(Item)),
    Field("note", STRING, "1+", nullable_versions="1+", default=None),
    Field("hint", STRING, "2+", tag=0, default=""),
    Field("epoch", INT32, "2+", tag=3, default=-1),
])


def test_defaults() -> None:
    obj = Sample()
    assert obj.count == 0 and obj.items == [] and obj.note is None
    assert obj.hint == "" and obj.epoch == -1
    assert obj._unknown_tagged_fields == ()
    assert Sample().items is not Sample().items  # no shared mutable default
    assert Sample.Item() == Item()


def test_message_non_flexible_vector() -> None:
    obj = Sample(count=2, items=[Sample.Item(id=1, name="a"), Sample.Item(id=2)], note="n")
    assert Sample.encode(obj, 1) == (
        b"\x00\x02"  # count
        b"\x00\x00\x00\x02"  # items: int32 count
        b"\x00\x00\x00\x01" b"\x00\x01a"  # id, name
        b"\x00\x00\x00\x02" b"\x00\x00"
        b"\x00\x01n"  # note
    )
    assert Sample.decode(Sample.encode(obj, 1), 1) == (obj, 22)


def test_message_flexible_vector_with_tagged_fields() -> None:
    obj = Sample(count=1, items=[Sample.Item(id=5, name="xy")], note=None, epoch=7)
    expected = (
        b"\x00\x01"  # count
        b"\x02"  # items: compact count + 1
        b"\x00\x00\x00\x05" b"\x03xy" b"\x00"  # id, compact name, item tagged section
        b"\x00"  # note: compact null
        b"\x01"  # one tagged field (hint is at its default, so not written)
        b"\x03\x04\x00\x00\x00\x07"  # tag 3, size 4, epoch
    )
    data = Sample.encode(obj, 2)
    assert data == expected
    decoded, end = Sample.decode(data, 2)
    assert end == len(data) and decoded == obj
    obj.hint = "h"
    data = Sample.encode(obj, 2)
    assert data.endswith(b"\x02" b"\x00\x02\x02h" b"\x03\x04\x00\x00\x00\x07")
    assert Sample.decode(data, 2)[0] == obj


def test_decode_at_offset_and_trailing_bytes() -> None:
    obj = Sample(count=3)
    data = b"junk" + Sample.encode(obj, 0) + b"tail"
    decoded, end = Sample.decode(data, 0, offset=4)
    assert decoded == obj and end == len(data) - 4


def test_absent_fields_decode_to_defaults() -> None:
    obj = Sample(count=1, items=[Sample.Item(id=1)])
    decoded, _ = Sample.decode(Sample.encode(obj, 0), 0)
    assert decoded.note is None and decoded.items[0].name == "" and decoded.epoch == -1


def test_repr_is_readable() -> None:
    text = repr(Sample(count=1, items=[Sample.Item(id=2)]))
    assert text.startswith("Sample(count=1, items=[Item(id=2, name='')], note=None")
    assert "_unknown" not in text


# --- the unsupported-version rule ------------------------------------------------------------


def test_non_default_value_in_absent_field_raises() -> None:
    with pytest.raises(UnsupportedVersionError, match="note"):
        Sample.encode(Sample(note="x"), 0)
    with pytest.raises(UnsupportedVersionError, match="name"):
        Sample.encode(Sample(items=[Sample.Item(name="x")]), 0)
    with pytest.raises(UnsupportedVersionError, match="epoch"):
        Sample.encode(Sample(epoch=3), 1)
    # Defaults in absent fields are fine.
    assert Sample.encode(Sample(count=1), 0) == b"\x00\x01\x00\x00\x00\x00"


def test_ignorable_field_is_dropped() -> None:
    msg = Message("M", [Field("a", INT8), Field("b", INT32, "1+", ignorable=True)],
                  valid_versions="0-1")
    assert msg.encode(msg(a=1, b=99), 0) == b"\x01"
    assert msg.decode(b"\x01", 0)[0] == msg(a=1, b=0)


def test_version_outside_valid_versions() -> None:
    with pytest.raises(UnsupportedVersionError):
        Sample.encode(Sample(), 3)
    with pytest.raises(UnsupportedVersionError):
        Sample.decode(b"\x00\x00", -1)


# --- unknown tagged fields -------------------------------------------------------------------


def test_unknown_tagged_fields_preserved() -> None:
    data = (
        b"\x00\x01" b"\x01" b"\x00"  # count, no items, null note
        b"\x03"  # three tagged fields
        b"\x01\x02\xaa\xbb"  # unknown tag 1
        b"\x03\x04\x00\x00\x00\x09"  # epoch
        b"\x07\x00"  # unknown tag 7, empty
    )
    obj, end = Sample.decode(data, 2)
    assert end == len(data)
    assert obj.epoch == 9
    assert obj._unknown_tagged_fields == ((1, b"\xaa\xbb"), (7, b""))
    assert "_unknown_tagged_fields=((1, " in repr(obj)
    assert Sample.encode(obj, 2) == data  # re-emitted in tag order, around known ones
    assert obj != Sample(count=1, epoch=9)


def test_unknown_tagged_fields_in_nested_struct() -> None:
    data = b"\x00\x00" b"\x02" b"\x00\x00\x00\x01\x01" b"\x01\x05\x01\x2a" b"\x00" b"\x00"
    obj, end = Sample.decode(data, 2)
    assert end == len(data)
    assert obj.items[0]._unknown_tagged_fields == ((5, b"\x2a"),)
    assert Sample.encode(obj, 2) == data


def test_unknown_tag_colliding_with_known_tag_rejected() -> None:
    with pytest.raises(EncodeError):
        Sample.encode(Sample(_unknown_tagged_fields=((3, b"\x00"),)), 2)


def test_unknown_tagged_fields_need_a_flexible_version() -> None:
    with pytest.raises(UnsupportedVersionError):
        Sample.encode(Sample(_unknown_tagged_fields=((9, b""),)), 1)


def test_tagged_field_size_mismatch() -> None:
    data = b"\x00\x00\x01\x00" b"\x01" b"\x03\x05\x00\x00\x00\x09\x00"  # epoch with size 5
    with pytest.raises(DecodeError):
        Sample.decode(data, 2)


def test_tagged_nullable_struct_uses_uvarint_marker() -> None:
    leader = Struct("Leader", [Field("leader_id", INT32, default=-1)])
    msg = Message("M", [Field("current_leader", leader, "0+", tag=0, nullable_versions="0+")],
                  valid_versions="0", flexible_versions="0+")
    assert msg.encode(msg(), 0) == b"\x00"  # default (an empty struct) is not written
    obj = msg(current_leader=None)
    data = msg.encode(obj, 0)
    assert data == b"\x01" b"\x00\x01\x00"  # tag 0, size 1, null marker 0
    assert msg.decode(data, 0)[0] == obj
    obj = msg(current_leader=msg.Leader(leader_id=4))
    data = msg.encode(obj, 0)
    assert data == b"\x01" b"\x00\x06\x01\x00\x00\x00\x04\x00"
    assert msg.decode(data, 0)[0] == obj


# --- real Kafka messages, built by hand from the spec -----------------------------------------

ApiVersionsRequest = Message(
    "ApiVersionsRequest", api_key=18, valid_versions="0-3", flexible_versions="3+", fields=[
        Field("client_software_name", STRING, "3+", ignorable=True),
        Field("client_software_version", STRING, "3+", ignorable=True),
    ])

ApiVersionsResponse = Message(
    "ApiVersionsResponse", api_key=18, valid_versions="0-3", flexible_versions="3+", fields=[
        Field("error_code", INT16),
        Field("api_keys", Array(Struct("ApiVersion", [
            Field("api_key", INT16),
            Field("min_version", INT16),
            Field("max_version", INT16),
        ]))),
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("supported_features", Array(Struct("SupportedFeatureKey", [
            Field("name", STRING),
            Field("min_version", INT16),
            Field("max_version", INT16),
        ])), "3+", tag=0, ignorable=True),
        Field("finalized_features_epoch", INT64, "3+", tag=1, default=-1, ignorable=True),
    ])

RequestHeader = Message("RequestHeader", valid_versions="0-2", flexible_versions="2+", fields=[
    Field("request_api_key", INT16),
    Field("request_api_version", INT16),
    Field("correlation_id", INT32),
    Field("client_id", STRING, "1+", nullable_versions="1+", flexible_versions="none"),
])


def test_api_versions_request_v3_matches_kafka_bytes() -> None:
    name, version = b"kafka-python", b"3.0.12"
    expected = (bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\x00")
    assert expected == b"\x0dkafka-python\x073.0.12\x00"
    req = ApiVersionsRequest(client_software_name="kafka-python",
                             client_software_version="3.0.12")
    assert ApiVersionsRequest.encode(req, 3) == expected
    assert ApiVersionsRequest.decode(expected, 3) == (req, len(expected))
    assert ApiVersionsRequest.encode(req, 0) == b""  # ignorable: dropped before v3


def test_api_versions_response_v3_with_tagged_fields() -> None:
    resp = ApiVersionsResponse(
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=3)],
        supported_features=[ApiVersionsResponse.SupportedFeatureKey(
            name="metadata.version", min_version=1, max_version=20)],
        finalized_features_epoch=5)
    feature = b"\x11metadata.version" b"\x00\x01\x00\x14" b"\x00"
    features = b"\x02" + feature
    expected = (
        b"\x00\x00"  # error_code
        b"\x02" b"\x00\x12\x00\x00\x00\x03\x00"  # api_keys
        b"\x00\x00\x00\x00"  # throttle_time_ms
        b"\x02"  # two tagged fields
        + b"\x00" + bytes([len(features)]) + features
        + b"\x01\x08" + struct.pack(">q", 5)
        + b""
    )
    assert ApiVersionsResponse.encode(resp, 3) == expected
    assert ApiVersionsResponse.decode(expected, 3) == (resp, len(expected))
    # v0 drops the ignorable throttle time and tagged fields.
    assert ApiVersionsResponse.encode(resp, 0) == b"\x00\x00\x00\x00\x00\x01\x00\x12\x00\x00\x00\x03"


def test_request_header_v2_keeps_non_compact_client_id() -> None:
    header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=7,
                           client_id="kafka-python")
    expected = b"\x00\x12\x00\x03\x00\x00\x00\x07\x00\x0ckafka-python\x00"
    assert RequestHeader.encode(header, 2) == expected
    assert RequestHeader.decode(expected, 2) == (header, len(expected))
    null_id = RequestHeader(request_api_key=18, client_id=None)
    assert RequestHeader.encode(null_id, 2)[8:] == b"\xff\xff\x00"


# --- malformed input -------------------------------------------------------------------------


def test_huge_declared_lengths_fail_fast() -> None:
    big_int32 = b"\x7f\xff\xff\xff"
    with pytest.raises(DecodeError):
        Sample.decode(b"\x00\x00" + big_int32, 0)  # array count
    with pytest.raises(DecodeError):
        one(BYTES).decode(big_int32 + b"ab", 0)
    with pytest.raises(DecodeError):
        one(BYTES).decode(b"\xff\xff\xff\xff\x0f", 1)  # compact length near 2**32
    with pytest.raises(DecodeError):
        one(Array(INT64)).decode(b"\x00\x00\x10\x00" + bytes(8 * 4095), 0)  # 4096 * 8 > left
    with pytest.raises(DecodeError):  # tagged-field count of 2**32 - 1 with no bytes behind it
        Sample.decode(b"\x00\x00\x01\x00\xff\xff\xff\xff\x0f", 2)


def test_null_in_non_nullable_field_rejected() -> None:
    with pytest.raises(DecodeError, match="non-nullable"):
        one(STRING).decode(b"\xff\xff", 0)
    with pytest.raises(DecodeError, match="non-nullable"):
        one(Array(INT8)).decode(b"\x00\x00", 1)


def test_invalid_utf8_rejected() -> None:
    with pytest.raises(DecodeError):
        one(STRING).decode(b"\x00\x01\xff", 0)


def test_every_truncation_of_a_message_raises_decode_error() -> None:
    objs = {
        0: Sample(count=1, items=[Sample.Item(id=5)]),
        1: Sample(count=1, items=[Sample.Item(id=5, name="xy")], note="n"),
        2: Sample(count=1, items=[Sample.Item(id=5, name="xy")], note="n", epoch=7, hint="h",
                  _unknown_tagged_fields=((9, b"zz"),)),
    }
    for version, obj in objs.items():
        data = Sample.encode(obj, version)
        assert Sample.decode(data, version) == (obj, len(data))
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                Sample.decode(data[:cut], version)


# --- encode errors ---------------------------------------------------------------------------


def test_encode_errors_name_the_field() -> None:
    with pytest.raises(EncodeError, match=r"Sample\.items\[0\]\.id"):
        Sample.encode(Sample(items=[Sample.Item(id=2**31)]), 0)
    with pytest.raises(EncodeError, match=r"Sample\.count"):
        Sample.encode(Sample(count=None), 0)
    with pytest.raises(EncodeError, match=r"Sample\.items\[0\]\.name"):
        Sample.encode(Sample(items=[Sample.Item(name=None)]), 1)
    with pytest.raises(EncodeError):
        Sample.encode(Item(), 0)  # not a Sample


# --- schema rules (Kafka's FieldSpec checks) -------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Field("x", INT32, nullable_versions="0+"),
        lambda: Field("x", STRING, default=None),  # null default but not nullable
        lambda: Field("x", INT32, "0-3", tag=0),  # tagged versions must be open-ended
        lambda: Field("x", INT32, "2+", tagged_versions="1+", tag=0),  # not a subset
        lambda: Field("x", INT32, tagged_versions="1+"),  # no tag
        lambda: Field("x", RECORDS, tag=0),
        lambda: Field("x", INT32, flexible_versions="none"),
        lambda: Field("x", INT8, default=300),
        lambda: Field("x", Array(INT8), default=[1]),
        lambda: Field("_x", INT8),
        lambda: Array(Array(INT8)),
        lambda: Struct("S", [Field("a", INT8, tag=1), Field("b", INT8, tag=1)]),
        lambda: Struct("S", [Field("a", INT8), Field("a", INT16)]),
        lambda: Message("M", [Field("a", INT8, "0+", tag=0)], valid_versions="0-3",
                        flexible_versions="2+"),
        lambda: Message("M", [], valid_versions="0-3", flexible_versions="1-2"),
    ],
)
def test_schema_errors(make) -> None:
    with pytest.raises(SchemaError):
        make()


# --- engine corners --------------------------------------------------------------------------


def test_deep_nesting_goes_out_of_line() -> None:
    s = Struct("L0", [Field("v", INT8)])
    for depth in range(1, 14):
        s = Struct(f"L{depth}", [Field("v", INT8), Field("kids", Array(s))])
    msg = Message("Deep", [Field("root", Array(s))], valid_versions="0-1", flexible_versions="1+")

    def build(depth: int):
        cls = msg.structs[f"L{depth}"].cls
        if depth == 0:
            return cls(v=0)
        return cls(v=depth, kids=[build(depth - 1), build(depth - 1)] if depth > 10 else
                   [build(depth - 1)])

    obj = msg(root=[build(13)])
    for version in (0, 1):
        data = msg.encode(obj, version)
        assert msg.decode(data, version) == (obj, len(data))
    assert "def _dec_L" in msg.generated_source(1)


def test_frozen_message() -> None:
    msg = Message("Rec", [Field("a", INT32), Field("b", STRING, "1+")], valid_versions="0-1",
                  flexible_versions="1+", frozen=True)
    obj = msg(a=1, b="x")
    with pytest.raises(AttributeError):
        obj.a = 2
    assert msg.decode(msg.encode(obj, 1), 1)[0] == obj
    assert msg.decode(msg.encode(msg(a=1), 0), 0)[0] == msg(a=1)


def test_compiled_once_per_version() -> None:
    msg = one(INT32)
    msg.encode(msg(x=1), 0)
    enc = msg._encoders[0]
    msg.decode(b"\x00\x00\x00\x01", 0)
    msg.encode(msg(x=2), 0)
    assert msg._encoders[0] is enc
    # No per-field version checks at run time: a fixed-size body is one unpack_from.
    general_decode = msg.generated_source(0).split("def _decode(")[1].split("def _encode_flat")[0]
    assert "if " not in general_decode


def test_encode_to_appends_chunks() -> None:
    out: list[bytes] = [b"header"]
    Sample.encode_to(Sample(count=1), 0, out)
    assert b"".join(out) == b"header" + Sample.encode(Sample(count=1), 0)
