"""kraft.codec round trips: every primitive over its full range, and random schemas.

The random-schema test builds nested Message/Struct/Array schemas with random version ranges,
nullable and tagged versions and flexible versions, then random valid values for a random
version, and checks that decode(encode(x)) == x, that decode consumes exactly the encoding, and
that re-encoding is byte-identical.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
    Field,
    Message,
    Primitive,
    Struct,
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

VALUES: dict[Primitive, st.SearchStrategy[Any]] = {
    BOOL: st.booleans(),
    INT8: st.integers(-(2**7), 2**7 - 1),
    INT16: st.integers(-(2**15), 2**15 - 1),
    UINT16: st.integers(0, 2**16 - 1),
    INT32: st.integers(-(2**31), 2**31 - 1),
    UINT32: st.integers(0, 2**32 - 1),
    INT64: st.integers(-(2**63), 2**63 - 1),
    FLOAT64: st.floats(allow_nan=False),
    UUID: st.one_of(st.just(ZERO_UUID), st.uuids()),
    UVARINT: st.integers(0, 2**32 - 1),
    VARINT: st.integers(-(2**31), 2**31 - 1),
    VARLONG: st.integers(-(2**63), 2**63 - 1),
    STRING: st.text(max_size=12),
    BYTES: st.binary(max_size=12),
    RECORDS: st.binary(max_size=12),
}
PRIMITIVES = list(VALUES)


# --- varint helpers --------------------------------------------------------------------------


@given(st.integers(0, 2**32 - 1))
def test_uvarint_roundtrip(value: int) -> None:
    data = write_uvarint(value)
    assert len(data) == size_of_uvarint(value) <= 5
    assert read_uvarint(data + b"\x00", 0) == (value, len(data))


@given(st.integers(0, 2**64 - 1))
def test_uvarlong_roundtrip(value: int) -> None:
    data = write_uvarlong(value)
    assert len(data) == size_of_uvarint(value) <= 10
    assert read_uvarlong(data, 0) == (value, len(data))


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_roundtrip(value: int) -> None:
    data = write_varint(value)
    assert len(data) == size_of_varint(value)
    assert read_varint(memoryview(data), 0) == (value, len(data))
    assert write_varlong(value) == data  # zig-zag is width independent for int32 values


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_roundtrip(value: int) -> None:
    data = write_varlong(value)
    assert len(data) == size_of_varlong(value)
    assert read_varlong(data, 0) == (value, len(data))


@given(st.binary(max_size=12))
def test_varint_readers_never_leak_other_errors(data: bytes) -> None:
    for reader in (read_uvarint, read_uvarlong, read_varint, read_varlong):
        try:
            _, end = reader(data, 0)
        except DecodeError:
            continue
        assert 0 < end <= len(data)


# --- every primitive, alone and in an array, non-flexible and flexible ------------------------


@settings(max_examples=300)
@given(st.data())
def test_primitive_roundtrip(data: st.DataObject) -> None:
    t = data.draw(st.sampled_from(PRIMITIVES))
    nullable = t.nullable_ok and data.draw(st.booleans())
    fields = [Field("x", t, nullable_versions="0+" if nullable else "none")]
    if t is not RECORDS:
        fields.append(Field("xs", Array(t)))
    msg = Message("P", fields, valid_versions="0-1", flexible_versions="1+")
    value = data.draw(st.none() if nullable and data.draw(st.booleans()) else VALUES[t])
    values = {"x": value}
    if t is not RECORDS:
        values["xs"] = data.draw(st.lists(VALUES[t], max_size=4))
    obj = msg(**values)
    for version in (0, 1):
        encoded = msg.encode(obj, version)
        decoded, end = msg.decode(encoded, version)
        assert end == len(encoded)
        assert decoded == obj


# --- random schemas --------------------------------------------------------------------------

_names = itertools.count()


@st.composite
def schemas(draw: st.DrawFn) -> Message:
    """A random Message that obeys Kafka's spec rules."""
    top = draw(st.integers(0, 4))
    flex_lo = None if draw(st.integers(0, 3)) == 0 else draw(st.integers(0, top))

    def versions() -> tuple[int, int | None]:
        lo = draw(st.integers(0, top))
        hi = draw(st.one_of(st.none(), st.integers(lo, top)))
        return lo, hi

    def field(name: str, depth: int, tags: itertools.count) -> Field:
        kinds = ["prim"] * 4 + (["array", "struct", "struct_array"] if depth < 3 else [])
        kind = draw(st.sampled_from(kinds))
        t: Any
        if kind == "prim":
            t = draw(st.sampled_from(PRIMITIVES))
        elif kind == "array":
            t = Array(draw(st.sampled_from([p for p in PRIMITIVES if p is not RECORDS])))
        elif kind == "struct":
            t = struct(depth + 1)
        else:
            t = Array(struct(depth + 1))
        lo, hi = versions()
        kw: dict[str, Any] = {}
        tagged = (flex_lo is not None and t is not RECORDS and draw(st.booleans()))
        if tagged:
            hi = None
            kw["tagged_versions"] = f"{max(lo, flex_lo)}+"
            kw["tag"] = next(tags)
        nullable_ok = isinstance(t, (Array, Struct)) or t.nullable_ok
        if nullable_ok and draw(st.booleans()):
            nlo = draw(st.integers(0, top))
            kw["nullable_versions"] = f"{nlo}+"
            if nlo <= lo and draw(st.booleans()):
                kw["default"] = None
        if t in (STRING, BYTES) and draw(st.integers(0, 4)) == 0:
            kw["flexible_versions"] = "none"
        is_int = isinstance(t, Primitive) and t.lo is not None
        if is_int and "default" not in kw and draw(st.booleans()):
            kw["default"] = draw(VALUES[t])
        kw["ignorable"] = draw(st.booleans())
        return Field(name, t, (lo, hi), **kw)

    def struct(depth: int) -> Struct:
        tags = itertools.count(draw(st.integers(0, 3)))
        # A leading always-present field: Kafka rejects array counts above the bytes left,
        # so arrays of empty structs could not round trip.
        fields = [Field("id", INT8)]
        for i in range(draw(st.integers(0, 4))):
            fields.append(field(f"f{i}", depth, tags))
        return Struct(f"S{next(_names)}", fields)

    root = struct(0)
    flexible = "none" if flex_lo is None else f"{flex_lo}+"
    return Message(f"M{next(_names)}", list(root.fields), valid_versions=(0, top),
                   flexible_versions=flexible)


def value_of(draw: st.DrawFn, t: Any, version: int, nullable: bool, flexible: bool) -> Any:
    if nullable and draw(st.integers(0, 3)) == 0:
        return None
    if isinstance(t, Struct):
        return struct_value(draw, t, version, flexible)
    if isinstance(t, Array):
        return [value_of(draw, t.elem, version, False, flexible)
                for _ in range(draw(st.integers(0, 3)))]
    return draw(VALUES[t])


def struct_value(draw: st.DrawFn, s: Struct, version: int, flexible: bool) -> Any:
    values: dict[str, Any] = {}
    known_tags = set()
    for f in s.fields:
        if version in f.versions:
            if version in f.tagged_versions:
                known_tags.add(f.tag)
            values[f.name] = value_of(draw, f.type, version, version in f.nullable_versions,
                                      flexible)
    if flexible and draw(st.integers(0, 4)) == 0:
        tags = draw(st.lists(st.integers(0, 40).filter(lambda t: t not in known_tags),
                             max_size=3, unique=True))
        values["_unknown_tagged_fields"] = tuple(
            (tag, draw(st.binary(max_size=4))) for tag in sorted(tags))
    return s.cls(**values)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_schema_roundtrip(data: st.DataObject) -> None:
    msg = data.draw(schemas())
    version = data.draw(st.integers(msg.valid_versions.lowest, msg.valid_versions.highest))
    flexible = version in msg.flexible_versions
    obj = struct_value(data.draw, msg, version, flexible)
    encoded = msg.encode(obj, version)
    decoded, end = msg.decode(encoded, version)
    assert end == len(encoded)
    assert decoded == obj
    assert msg.encode(decoded, version) == encoded
    # Decoding never reads past what it was given: every strict prefix fails cleanly.
    for cut in range(0, len(encoded), max(1, len(encoded) // 8)):
        try:
            msg.decode(encoded[:cut], version)
        except DecodeError:
            pass
        else:
            raise AssertionError(f"a {cut}-byte prefix of {len(encoded)} bytes decoded")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_bytes_never_leak_other_errors(data: st.DataObject) -> None:
    msg = data.draw(schemas())
    version = data.draw(st.integers(msg.valid_versions.lowest, msg.valid_versions.highest))
    junk = data.draw(st.binary(max_size=64))
    try:
        _, end = msg.decode(junk, version)
    except DecodeError:
        return
    assert end <= len(junk)
