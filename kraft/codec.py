"""Declarative schema engine for the Kafka wire protocol and KRaft metadata records.

It lives in ``kraft`` because both are written with it: the metadata records
(``kraft.metadata_records``) and the wire schemas (``broker.protocol``), and ``kraft`` may not
import ``broker``. Pure: no I/O.

Schemas are declared in Python with the shape of Kafka's JSON message specs
(``clients/src/main/resources/common/message/*.json``)::

    ApiVersionsRequest = Message("ApiVersionsRequest", api_key=18, valid_versions="0-3",
                                 flexible_versions="3+", fields=[
        Field("client_software_name", STRING, "3+"),
        Field("client_software_version", STRING, "3+"),
    ])
    req = ApiVersionsRequest(client_software_name="kafka-python")
    data = ApiVersionsRequest.encode(req, 3)
    same, end = ApiVersionsRequest.decode(data, 3)

Why code generation: encode and decode run on every request, and per-request CPU is our first
limit (docs/architecture.md, "Performance shape"). Each (message, version) is compiled once, lazily, into one straight-line Python
function: version checks, flexible/compact choices and nullability are resolved at compile time,
runs of fixed-size fields become a single precompiled ``struct.Struct`` call, and nested structs
are inlined. ``Message.generated_source(version)`` shows the result.

Value conventions (Kafka's defaults in brackets):

- ints, float64 [0]; bool [False]; string [""]; bytes [b""] (decoded as ``bytes``).
- uuid: ``uuid.UUID``; Kafka's zero UUID (``ZERO_UUID``) is its null and default.
- records [None]: raw bytes, never parsed here. Decoded as a zero-copy ``memoryview`` slice of
  the input buffer (the request buffer stays alive while the value does); encode accepts any
  bytes-like object.
- arrays [[]]: ``list`` (any sized iterable on encode); struct [an empty instance].
- a field absent at a version is not written and decodes to its default; writing a non-default
  value into such a field raises ``UnsupportedVersionError`` unless the field is ``ignorable``.
- unknown tagged fields are kept, in arrival order, as ``((tag, bytes), ...)`` in each object's
  ``_unknown_tagged_fields`` and written back on encode.

Generated classes are mutable slots dataclasses: a frozen dataclass ``__init__`` costs about 3x
more per object on the decode path, and Kafka responses are built up incrementally. Pass
``frozen=True`` to ``Struct``/``Message`` where immutability matters more than speed.
"""

from __future__ import annotations

import dataclasses
import itertools
import keyword
import linecache
import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

__all__ = [
    "BOOL", "BYTES", "FLOAT64", "INT8", "INT16", "INT32", "INT64", "RECORDS", "STRING",
    "UINT16", "UINT32", "UUID", "UVARINT", "VARINT", "VARLONG", "ZERO_UUID",
    "Array", "CodecError", "DecodeError", "EncodeError", "Field", "Message", "Primitive",
    "SchemaError", "Struct", "UnsupportedVersionError", "Versions",
    "read_uvarint", "read_uvarlong", "read_varint", "read_varlong",
    "size_of_uvarint", "size_of_varint", "size_of_varlong",
    "write_uvarint", "write_uvarlong", "write_varint", "write_varlong",
]


# ---------------------------------------------------------------------------------------------
# Errors


class CodecError(ValueError):
    """Base of the errors raised while encoding or decoding with a schema."""


class DecodeError(CodecError):
    """Truncated or malformed input. The only exception decoding raises for bad bytes."""


class EncodeError(CodecError):
    """A value cannot be encoded (wrong type, out of range, null in a non-nullable field)."""


class UnsupportedVersionError(CodecError):
    """The version is not valid for the message, or a non-default value was set in a field that
    does not exist at that version (Kafka's UnsupportedVersionException)."""


class SchemaError(Exception):
    """A schema declaration breaks one of Kafka's message-spec rules (a bug, found at import)."""


# ---------------------------------------------------------------------------------------------
# Varints (also used by the record-batch module, so the common 1-2 byte cases are fast paths)

_B1: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(128))
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    """Read an unsigned 32-bit varint (at most 5 bytes) at ``pos``; return (value, new_pos)."""
    try:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        value = b & 0x7F
        b = buf[pos + 1]
        if b < 0x80:
            return value | (b << 7), pos + 2
        value |= (b & 0x7F) << 7
        b = buf[pos + 2]
        if b < 0x80:
            return value | (b << 14), pos + 3
        value |= (b & 0x7F) << 14
        b = buf[pos + 3]
        if b < 0x80:
            return value | (b << 21), pos + 4
        value |= (b & 0x7F) << 21
        b = buf[pos + 4]
    except IndexError:
        raise DecodeError(f"truncated varint at offset {pos}") from None
    if b < 0x10:
        return value | (b << 28), pos + 5
    raise DecodeError(f"varint at offset {pos} does not fit in 32 bits")


def read_uvarlong(buf: Any, pos: int) -> tuple[int, int]:
    """Read an unsigned 64-bit varint (at most 10 bytes) at ``pos``; return (value, new_pos)."""
    start = pos
    value = 0
    shift = 0
    try:
        while True:
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 63:
                raise DecodeError(f"varlong at offset {start} is longer than 10 bytes")
    except IndexError:
        raise DecodeError(f"truncated varlong at offset {start}") from None
    if value > _U64_MAX:
        raise DecodeError(f"varlong at offset {start} does not fit in 64 bits")
    return value, pos


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    """Read a zig-zag signed 32-bit varint (Kafka ``readVarint``); return (value, new_pos)."""
    try:
        b = buf[pos]
    except IndexError:
        raise DecodeError(f"truncated varint at offset {pos}") from None
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    v, pos = read_uvarint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def read_varlong(buf: Any, pos: int) -> tuple[int, int]:
    """Read a zig-zag signed 64-bit varint (Kafka ``readVarlong``); return (value, new_pos)."""
    try:
        b = buf[pos]
    except IndexError:
        raise DecodeError(f"truncated varlong at offset {pos}") from None
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    v, pos = read_uvarlong(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def _write_uv(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_uvarint(value: int) -> bytes:
    """Encode an unsigned 32-bit varint."""
    if 0 <= value < 0x80:
        return _B1[value]
    if 0x80 <= value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if not 0 <= value <= _U32_MAX:
        raise EncodeError(f"unsigned varint out of range: {value}")
    return _write_uv(value)


def write_uvarlong(value: int) -> bytes:
    """Encode an unsigned 64-bit varint."""
    if 0 <= value < 0x80:
        return _B1[value]
    if not 0 <= value <= _U64_MAX:
        raise EncodeError(f"unsigned varlong out of range: {value}")
    return _write_uv(value)


def write_varint(value: int) -> bytes:
    """Encode a zig-zag signed 32-bit varint (Kafka ``writeVarint``)."""
    if not _I32_MIN <= value <= _I32_MAX:
        raise EncodeError(f"varint out of range: {value}")
    z = (value << 1) ^ (value >> 31)
    if z < 0x80:
        return _B1[z]
    if z < 0x4000:
        return bytes(((z & 0x7F) | 0x80, z >> 7))
    return _write_uv(z)


def write_varlong(value: int) -> bytes:
    """Encode a zig-zag signed 64-bit varint (Kafka ``writeVarlong``)."""
    if not _I64_MIN <= value <= _I64_MAX:
        raise EncodeError(f"varlong out of range: {value}")
    z = (value << 1) ^ (value >> 63)
    if z < 0x80:
        return _B1[z]
    if z < 0x4000:
        return bytes(((z & 0x7F) | 0x80, z >> 7))
    return _write_uv(z)


def size_of_uvarint(value: int) -> int:
    """Bytes ``write_uvarint(value)`` (or ``write_uvarlong``) produces."""
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def size_of_varint(value: int) -> int:
    """Bytes ``write_varint(value)`` produces."""
    return size_of_uvarint((value << 1) ^ (value >> 31))


def size_of_varlong(value: int) -> int:
    """Bytes ``write_varlong(value)`` produces."""
    return size_of_uvarint((value << 1) ^ (value >> 63))


# ---------------------------------------------------------------------------------------------
# UUIDs

ZERO_UUID = uuid.UUID(int=0)
_ZERO16 = bytes(16)
_uuid_cache: dict[bytes, uuid.UUID] = {_ZERO16: ZERO_UUID}
_UUID_CACHE_MAX = 4096
_new_object = object.__new__
_set_attr = object.__setattr__
_UUID_UNKNOWN = uuid.SafeUUID.unknown


def _uuid(raw: bytes) -> uuid.UUID:
    """16 bytes -> UUID, ~3x cheaper than ``UUID(bytes=)``; topic ids repeat, so memoize."""
    u = _uuid_cache.get(raw)
    if u is None:
        u = _new_object(uuid.UUID)
        _set_attr(u, "int", int.from_bytes(raw, "big"))
        _set_attr(u, "is_safe", _UUID_UNKNOWN)
        if len(_uuid_cache) >= _UUID_CACHE_MAX:  # bounded: ids come from the network
            _uuid_cache.clear()
            _uuid_cache[_ZERO16] = ZERO_UUID
        _uuid_cache[raw] = u
    return u


# ---------------------------------------------------------------------------------------------
# Versions

_OPEN = 0x7FFF  # Kafka's Short.MAX_VALUE: the top of an open-ended range "N+"

VersionsSpec = Union["Versions", str, int, tuple[int, "int | None"], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive version range; ``Versions.parse`` takes Kafka's notation "none", "3", "3+",
    "3-7", or a tuple ``(3, 7)`` / ``(3, None)``."""

    lowest: int
    highest: int

    @staticmethod
    def parse(spec: VersionsSpec) -> Versions:
        if isinstance(spec, Versions):
            return spec
        if spec is None:
            return NO_VERSIONS
        if isinstance(spec, int):
            return Versions(spec, spec)
        if isinstance(spec, tuple):
            lo, hi = spec
            return Versions(lo, _OPEN if hi is None else hi)
        s = spec.strip()
        if s == "none":
            return NO_VERSIONS
        if s.endswith("+"):
            return Versions(int(s[:-1]), _OPEN)
        if "-" in s:
            lo_s, hi_s = s.split("-", 1)
            return Versions(int(lo_s), int(hi_s))
        return Versions(int(s), int(s))

    @property
    def empty(self) -> bool:
        return self.lowest > self.highest

    @property
    def open_ended(self) -> bool:
        return self.highest == _OPEN

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lowest <= version <= self.highest

    def intersect(self, other: Versions) -> Versions:
        lo, hi = max(self.lowest, other.lowest), min(self.highest, other.highest)
        return Versions(lo, hi) if lo <= hi else NO_VERSIONS

    def contains_all(self, other: Versions) -> bool:
        return other.empty or (self.lowest <= other.lowest and other.highest <= self.highest)

    def __str__(self) -> str:
        if self.empty:
            return "none"
        if self.highest == _OPEN:
            return f"{self.lowest}+"
        if self.lowest == self.highest:
            return str(self.lowest)
        return f"{self.lowest}-{self.highest}"


NO_VERSIONS = Versions(0, -1)
ALL_VERSIONS = Versions(0, _OPEN)


# ---------------------------------------------------------------------------------------------
# Types


class Primitive:
    """A scalar field type. ``fmt`` is the ``struct`` code for fixed-size types, else None."""

    __slots__ = ("default", "fmt", "hi", "kind", "lo", "name", "nullable_ok", "py_type", "size")

    def __init__(self, name: str, kind: str, py_type: type, default: Any, fmt: str | None = None,
                 lo: int | None = None, hi: int | None = None, nullable_ok: bool = False) -> None:
        self.name = name
        self.kind = kind  # fixed | uvarint | varint | varlong | string | bytes | records
        self.fmt = fmt
        self.size = struct.calcsize(">" + fmt) if fmt else 0
        self.lo = lo
        self.hi = hi
        self.py_type = py_type
        self.default = default
        self.nullable_ok = nullable_ok

    def __repr__(self) -> str:
        return self.name.upper()


BOOL = Primitive("bool", "fixed", bool, False, "?")
INT8 = Primitive("int8", "fixed", int, 0, "b", -(1 << 7), (1 << 7) - 1)
INT16 = Primitive("int16", "fixed", int, 0, "h", -(1 << 15), (1 << 15) - 1)
UINT16 = Primitive("uint16", "fixed", int, 0, "H", 0, (1 << 16) - 1)
INT32 = Primitive("int32", "fixed", int, 0, "i", _I32_MIN, _I32_MAX)
UINT32 = Primitive("uint32", "fixed", int, 0, "I", 0, _U32_MAX)
INT64 = Primitive("int64", "fixed", int, 0, "q", _I64_MIN, _I64_MAX)
FLOAT64 = Primitive("float64", "fixed", float, 0.0, "d")
UUID = Primitive("uuid", "fixed", uuid.UUID, ZERO_UUID, "16s")
UVARINT = Primitive("uvarint", "uvarint", int, 0, None, 0, _U32_MAX)
VARINT = Primitive("varint", "varint", int, 0, None, _I32_MIN, _I32_MAX)
VARLONG = Primitive("varlong", "varlong", int, 0, None, _I64_MIN, _I64_MAX)
STRING = Primitive("string", "string", str, "", nullable_ok=True)
BYTES = Primitive("bytes", "bytes", bytes, b"", nullable_ok=True)
RECORDS = Primitive("records", "records", bytes, None, nullable_ok=True)

_MAX_STRING_BYTES = 0x7FFF  # Kafka rejects longer strings in both encodings


class Array:
    """``[]elem``: int32 count (-1 = null), or uvarint count+1 (0 = null) in flexible versions."""

    __slots__ = ("elem",)

    def __init__(self, elem: Primitive | Struct) -> None:
        if isinstance(elem, Array) or elem is RECORDS:
            raise SchemaError(f"arrays of {elem!r} are not supported (as in Kafka)")
        self.elem = elem

    def __repr__(self) -> str:
        return f"Array({self.elem!r})"


FieldType = Union[Primitive, Array, "Struct"]

_MISSING: Any = object()


class Field:
    """One field of a struct, with Kafka's per-field version attributes.

    ``versions`` defaults to ``tagged_versions`` if that is given, else "0+". ``tag`` without
    ``tagged_versions`` means tagged in all of ``versions``. ``flexible_versions`` overrides the
    message's flexible versions for this field's own encoding only (string/bytes; Kafka uses it
    to keep RequestHeader.client_id a non-compact string).
    """

    __slots__ = (
        "about",
        "default",
        "flexible_versions",
        "has_factory",
        "ignorable",
        "name",
        "nullable_versions",
        "tag",
        "tagged_versions",
        "type",
        "versions",
    )

    def __init__(self, name: str, type: FieldType, versions: VersionsSpec = None, *,
                 nullable_versions: VersionsSpec = None, tagged_versions: VersionsSpec = None,
                 tag: int | None = None, default: Any = _MISSING, ignorable: bool = False,
                 flexible_versions: VersionsSpec = _MISSING, about: str = "") -> None:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise SchemaError(f"invalid field name {name!r}")
        self.name = name
        self.type = type
        self.tagged_versions = Versions.parse(tagged_versions)
        if versions is None:
            versions = self.tagged_versions if not self.tagged_versions.empty else ALL_VERSIONS
        self.versions = Versions.parse(versions)
        if tag is not None and self.tagged_versions.empty:
            self.tagged_versions = self.versions
        self.nullable_versions = Versions.parse(nullable_versions)
        self.tag = tag
        self.ignorable = ignorable
        self.flexible_versions = (None if flexible_versions is _MISSING
                                  else Versions.parse(flexible_versions))
        self.about = about
        self._check()
        self.has_factory = False
        self.default = self._resolve_default(default)

    def _check(self) -> None:
        where = f"field {self.name}"
        if self.versions.empty:
            raise SchemaError(f"{where}: versions must not be empty")
        if not self.nullable_versions.empty:
            nullable_ok = isinstance(self.type, (Array, Struct)) or self.type.nullable_ok
            if not nullable_ok:
                raise SchemaError(f"{where}: type {self.type!r} cannot be nullable")
        if self.tag is not None:
            if self.tag < 0:
                raise SchemaError(f"{where}: tags cannot be negative")
            if not self.tagged_versions.open_ended:
                raise SchemaError(f"{where}: taggedVersions must be open-ended ('N+')")
            if not self.versions.contains_all(self.tagged_versions):
                raise SchemaError(f"{where}: taggedVersions must be a subset of versions")
            if self.type is RECORDS:
                raise SchemaError(f"{where}: records fields cannot be tagged")
        elif not self.tagged_versions.empty:
            raise SchemaError(f"{where}: taggedVersions without a tag")
        if self.flexible_versions is not None and self.type not in (STRING, BYTES):
            raise SchemaError(f"{where}: only string and bytes fields may override flexibleVersions")

    def _resolve_default(self, default: Any) -> Any:
        t = self.type
        where = f"field {self.name}"
        if default is None or (default is _MISSING and t is RECORDS):
            if t is not RECORDS and not self.nullable_versions.contains_all(self.versions):
                raise SchemaError(f"{where}: null default but not nullable in all versions")
            return None
        if isinstance(t, (Array, Struct)):
            if default is not _MISSING:
                raise SchemaError(f"{where}: the only defaults for {t!r} are empty and None")
            self.has_factory = True
            return list if isinstance(t, Array) else t.cls
        if default is _MISSING:
            return t.default
        if t.kind in ("bytes", "records") and default != b"":
            raise SchemaError(f"{where}: the only defaults for bytes are b'' and None")
        if not isinstance(default, t.py_type) or (t.py_type is int and isinstance(default, bool)):
            raise SchemaError(f"{where}: default {default!r} is not a {t.name}")
        if isinstance(default, int) and t.lo is not None and t.hi is not None \
                and not t.lo <= default <= t.hi:
            raise SchemaError(f"{where}: default {default!r} out of range for {t.name}")
        return default

    def make_default(self) -> Any:
        """A fresh default value (a new list or struct instance where the default is mutable)."""
        return self.default() if self.has_factory else self.default

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.type!r}, {str(self.versions)!r})"


# ---------------------------------------------------------------------------------------------
# Structs and messages


def _make_repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        parts = [f"{n}={getattr(self, n)!r}" for n in names]
        if self._unknown_tagged_fields:
            parts.append(f"_unknown_tagged_fields={self._unknown_tagged_fields!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
    return __repr__


class Struct:
    """A named group of fields; a generated slots dataclass (``.cls``) holds its values.

    Calling the struct constructs an instance: ``FetchTopic(topic="t", partitions=[...])``.
    """

    def __init__(self, name: str, fields: Sequence[Field], *, frozen: bool = False) -> None:
        if not name.isidentifier():
            raise SchemaError(f"invalid struct name {name!r}")
        self.name = name
        self.frozen = frozen
        self.fields: tuple[Field, ...] = tuple(fields)
        seen: set[str] = set()
        tags: dict[int, str] = {}
        for f in self.fields:
            if f.name in seen:
                raise SchemaError(f"{name}: duplicate field {f.name}")
            seen.add(f.name)
            if f.tag is not None:
                if f.tag in tags:
                    raise SchemaError(f"{name}: fields {tags[f.tag]} and {f.name} share tag {f.tag}")
                tags[f.tag] = f.name
        self.cls: type = self._make_class(frozen)

    def _make_class(self, frozen: bool) -> type:
        specs: list[tuple[str, Any, Any]] = []
        for f in self.fields:
            ann = _annotation(f)
            if f.has_factory:
                specs.append((f.name, ann, dataclasses.field(default_factory=f.default)))
            else:
                specs.append((f.name, ann, f.default))
        specs.append(("_unknown_tagged_fields", tuple, ()))
        names = tuple(f.name for f in self.fields)
        return dataclasses.make_dataclass(
            self.name, specs, slots=True, frozen=frozen, repr=False,
            namespace={"__repr__": _make_repr(names), "__module__": __name__})

    def __call__(self, **values: Any) -> Any:
        return self.cls(**values)

    def __repr__(self) -> str:
        return f"Struct({self.name!r})"

    def _walk(self) -> Iterable[Struct]:
        yield self
        for f in self.fields:
            t = f.type.elem if isinstance(f.type, Array) else f.type
            if isinstance(t, Struct):
                yield from t._walk()


def _annotation(f: Field) -> Any:
    t = f.type
    if isinstance(t, Array):
        elem = t.elem.cls if isinstance(t.elem, Struct) else t.elem.py_type
        ann: Any = list[elem]  # type: ignore[valid-type]
    elif isinstance(t, Struct):
        ann = t.cls
    else:
        ann = t.py_type
    if not f.nullable_versions.empty or f.default is None:
        ann = ann | None
    return ann


_Encoder = Callable[[Any, Callable[[Any], None]], None]
_Decoder = Callable[[memoryview, int], tuple[Any, int]]


class Message(Struct):
    """A top-level versioned struct: a request/response body or a metadata record.

    ``encode``/``decode`` compile the version on first use and cache the generated functions.
    Nested struct classes are reachable by name: ``FetchRequest.FetchTopic(topic="t")``.
    """

    def __init__(self, name: str, fields: Sequence[Field], *, valid_versions: VersionsSpec,
                 flexible_versions: VersionsSpec = "none", api_key: int | None = None,
                 frozen: bool = False) -> None:
        super().__init__(name, fields, frozen=frozen)
        self.api_key = api_key
        self.valid_versions = Versions.parse(valid_versions)
        self.flexible_versions = Versions.parse(flexible_versions)
        if self.valid_versions.empty:
            raise SchemaError(f"{name}: validVersions must not be empty")
        if not (self.flexible_versions.empty or self.flexible_versions.open_ended):
            raise SchemaError(f"{name}: flexibleVersions must be 'none' or open-ended")
        self.structs: dict[str, Struct] = {}
        for s in self._walk():
            other = self.structs.setdefault(s.name, s)
            if other is not s:
                raise SchemaError(f"{name}: two different structs named {s.name}")
            for f in s.fields:
                tagged = f.tagged_versions.intersect(self.valid_versions)
                if not self.flexible_versions.contains_all(tagged):
                    raise SchemaError(f"{name}.{s.name}.{f.name}: tagged in non-flexible versions")
        self._encoders: dict[int, _Encoder] = {}
        self._decoders: dict[int, _Decoder] = {}
        self._sources: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes: expose nested struct classes by name.
        structs = self.__dict__.get("structs")
        if structs is not None and name in structs and name != self.name:
            return structs[name].cls
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Message({self.name!r}, api_key={self.api_key}, valid_versions={self.valid_versions})"

    # -- hot path ---------------------------------------------------------------------------

    def encode(self, obj: Any, version: int) -> bytes:
        """Serialize ``obj`` (an instance of ``self.cls``) at ``version``."""
        out: list[Any] = []
        self.encode_to(obj, version, out)
        return b"".join(out)

    def encode_to(self, obj: Any, version: int, out: list[Any]) -> None:
        """Append the encoding of ``obj`` to ``out`` as bytes-like chunks (records values are
        appended as given, uncopied), so a frame header can go in front without a copy."""
        try:
            enc = self._encoders[version]
        except KeyError:
            enc = self._compile(version)[0]
        if obj.__class__ is not self.cls:
            raise EncodeError(f"expected a {self.name}, got {type(obj).__name__}")
        try:
            enc(obj, out.append)
        except CodecError:
            raise
        except (struct.error, TypeError, ValueError, AttributeError, OverflowError) as e:
            problem = _find_problem(self, obj, version, self.name) or str(e)
            raise EncodeError(f"cannot encode {self.name} v{version}: {problem}") from e

    def decode(self, buf: Any, version: int, offset: int = 0) -> tuple[Any, int]:
        """Parse one ``version`` instance from ``buf`` at ``offset``; return (obj, end offset).

        Trailing bytes are left to the caller (compare the end offset with ``len(buf)``).
        """
        try:
            dec = self._decoders[version]
        except KeyError:
            dec = self._compile(version)[1]
        if type(buf) is not memoryview:
            buf = memoryview(buf)
        if offset < 0:
            raise DecodeError(f"negative offset {offset}")
        try:
            return dec(buf, offset)
        except DecodeError:
            raise
        except (struct.error, IndexError, ValueError, OverflowError) as e:
            raise DecodeError(f"malformed {self.name} v{version} at offset {offset}: {e}") from e

    # -- compilation ------------------------------------------------------------------------

    def generated_source(self, version: int) -> str:
        """The Python source compiled for ``version`` (for debugging and review)."""
        if version not in self._sources:
            self._compile(version)
        return self._sources[version]

    def _compile(self, version: int) -> tuple[_Encoder, _Decoder]:
        if version not in self.valid_versions:
            raise UnsupportedVersionError(
                f"{self.name} does not support version {version} (valid: {self.valid_versions})")
        gen = _Gen(version, version in self.flexible_versions)
        source = gen.module(self)
        filename = f"<codec {self.name} v{version}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        ns = gen.ns
        # The source is generated here from schema declarations, never from input bytes.
        exec(compile(source, filename, "exec"), ns)  # noqa: S102
        enc, dec = ns["_encode"], ns["_decode"]
        self._sources[version] = source
        self._encoders[version] = enc
        self._decoders[version] = dec
        return enc, dec


# ---------------------------------------------------------------------------------------------
# Code generation


@dataclasses.dataclass(frozen=True, slots=True)
class _Slot:
    """A field as it is at one version."""

    field: Field
    present: bool
    tagged: bool
    nullable: bool
    compact: bool


def _write_tagged(a: Callable[[Any], None], known: list[tuple[int, bytes]],
                  unknown: Sequence[tuple[int, Any]], known_tags: frozenset[int]) -> None:
    """Write a tagged-fields section: count, then (tag, size, data) in ascending tag order."""
    fields = known
    if unknown:
        for tag, _ in unknown:
            if tag in known_tags:
                raise EncodeError(f"attempted to use tag {tag} as an undefined tag")
        fields = sorted([*known, *unknown], key=lambda tf: tf[0])
    a(write_uvarint(len(fields)))
    for tag, data in fields:
        a(write_uvarint(tag))
        a(write_uvarint(len(data)))
        a(data)


def _bad_length(path: str, n: int, pos: int, blen: int) -> DecodeError:
    return DecodeError(f"{path}: length {n} at offset {pos} exceeds the {blen - pos} bytes left")


_BASE_NS: dict[str, Any] = {
    "_DE": DecodeError, "_EE": EncodeError, "_UVE": UnsupportedVersionError,
    "_ruv": read_uvarint, "_rv": read_varint, "_rvl": read_varlong,
    "_wuv": write_uvarint, "_wv": write_varint, "_wvl": write_varlong,
    "_B1": _B1, "_uuid": _uuid, "_pack": struct.pack, "_unpack": struct.unpack_from,
    "_H": struct.Struct(">h"), "_I": struct.Struct(">i"), "_b": struct.Struct(">b"),
    "_wt": _write_tagged, "_badlen": _bad_length, "_new": object.__new__,
}

# Python allows 20 nested loop blocks per function; deeper structs go out of line.
_MAX_INLINE_LOOPS = 8


class _Gen:
    """Emits one module per (message, version): ``_encode(o, a)`` appends chunks through ``a``;
    ``_decode(buf, pos)`` returns (obj, pos). All version logic is resolved here."""

    def __init__(self, version: int, flexible: bool) -> None:
        self.version = version
        self.flexible = flexible
        self.ns: dict[str, Any] = dict(_BASE_NS)
        self.lines: list[str] = []
        self.extra: list[str] = []  # out-of-line functions
        self.loops = 0
        self._ids = itertools.count()
        self._consts: dict[int, str] = {}
        self._slots: dict[int, list[_Slot]] = {}
        self._outlined: dict[tuple[str, int], str] = {}

    # -- helpers ----------------------------------------------------------------------------

    def var(self, hint: str) -> str:
        return f"{hint}{next(self._ids)}"

    def const(self, obj: Any, hint: str = "K") -> str:
        name = self._consts.get(id(obj))
        if name is None:
            name = self._consts[id(obj)] = self.var(f"_{hint}")
            self.ns[name] = obj
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def slots(self, s: Struct) -> list[_Slot]:
        got = self._slots.get(id(s))
        if got is None:
            v = self.version
            got = []
            for f in s.fields:
                present = v in f.versions
                compact = self.flexible if f.flexible_versions is None else v in f.flexible_versions
                got.append(_Slot(f, present, present and v in f.tagged_versions,
                                 present and v in f.nullable_versions, compact))
            self._slots[id(s)] = got
        return got

    def min_size(self, t: FieldType, nullable: bool, compact: bool) -> int:
        """Fewest bytes a value can take; bounds declared counts before allocating."""
        if isinstance(t, Struct):
            if nullable:
                return 1
            size = 1 if self.flexible else 0
            for sl in self.slots(t):
                if sl.present and not sl.tagged:
                    size += self.min_size(sl.field.type, sl.nullable, sl.compact)
            return size
        if isinstance(t, Array):
            return 1 if compact else 4
        if t.kind == "fixed":
            return t.size
        if t.kind == "string":
            return 1 if compact else 2
        if t.kind in ("bytes", "records"):
            return 1 if compact else 4
        return 1

    def default_expr(self, f: Field) -> str:
        if f.has_factory:
            return "[]" if f.default is list else f"{self.const(f.default, 'C')}()"
        if f.default is None:
            return "None"
        return self.const(f.default, "D")

    def nondefault(self, f: Field, v: str) -> str:
        """Condition true when ``v`` differs from the field's default (Kafka's rule)."""
        if f.default is None:
            return f"{v} is not None"
        if f.default is list or f.type is BYTES:
            return f"({v} is None or len({v}) != 0)"
        if f.has_factory:
            return f"{v} != {self.const(f.default(), 'D')}"
        return f"{v} != {self.const(f.default, 'D')}"

    def module(self, msg: Message) -> str:
        self.emit(0, "def _encode(o, a):")
        self.enc_struct(msg, "o", "a", 1, msg.name)
        self.emit(1, "return None")
        self.emit(0, "")
        self.emit(0, "def _decode(buf, pos):")
        self.emit(1, "blen = len(buf)")
        self.dec_struct(msg, "r", 1, msg.name)
        self.emit(1, "return r, pos")
        return "\n".join(self.extra + self.lines) + "\n"

    def outline(self, kind: str, s: Struct, path: str) -> str:
        """Generate ``s`` as a separate function (used only beyond _MAX_INLINE_LOOPS)."""
        key = (kind, id(s))
        name = self._outlined.get(key)
        if name is None:
            name = self._outlined[key] = self.var(f"_{kind}_{s.name}_")
            saved_lines, saved_loops = self.lines, self.loops
            self.lines, self.loops = [], 0
            if kind == "enc":
                self.emit(0, f"def {name}(o, a):")
                self.enc_struct(s, "o", "a", 1, path)
                self.emit(1, "return None")
            else:
                self.emit(0, f"def {name}(buf, pos, blen):")
                self.dec_struct(s, "r", 1, path)
                self.emit(1, "return r, pos")
            self.emit(0, "")
            self.extra.extend(self.lines)
            self.lines, self.loops = saved_lines, saved_loops
        return name

    # -- encode -----------------------------------------------------------------------------

    def enc_struct(self, s: Struct, o: str, a: str, d: int, path: str) -> None:
        slots = self.slots(s)
        for sl in slots:
            f = sl.field
            if not sl.present and not f.ignorable:
                msg = f"attempted to write a non-default {path}.{f.name} at version {self.version}"
                v = self.var("x")
                self.emit(d, f"{v} = {o}.{f.name}")
                self.emit(d, f"if {self.nondefault(f, v)}: raise _UVE({msg!r})")
        run: list[tuple[str, str]] = []
        for sl in slots:
            if not sl.present or sl.tagged:
                continue
            t = sl.field.type
            expr = f"{o}.{sl.field.name}"
            if isinstance(t, Primitive) and t.kind == "fixed":
                run.append((t.fmt or "", f"{expr}.bytes" if t is UUID else expr))
                continue
            self.flush_pack(run, a, d)
            self.enc_value(t, expr, a, d, sl.nullable, sl.compact, False, f"{path}.{sl.field.name}")
        self.flush_pack(run, a, d)
        if self.flexible:
            self.enc_tagged(slots, o, a, d, path)
        else:
            msg = f"{path}: tagged fields were set, but version {self.version} does not support them"
            self.emit(d, f"if {o}._unknown_tagged_fields: raise _UVE({msg!r})")

    def flush_pack(self, run: list[tuple[str, str]], a: str, d: int) -> None:
        if run:
            packer = self.const(struct.Struct(">" + "".join(c for c, _ in run)), "S")
            self.emit(d, f"{a}({packer}.pack({', '.join(e for _, e in run)}))")
            run.clear()

    def enc_len(self, n: str, compact: bool, wide: bool) -> str:
        """Expression for a length/count prefix (``n`` already +1 when compact)."""
        if compact:
            return f"(_B1[{n}] if {n} < 128 else _wuv({n}))"
        return f"{'_I' if wide else '_H'}.pack({n})"

    def enc_value(self, t: FieldType, expr: str, a: str, d: int, nullable: bool, compact: bool,
                  in_tag: bool, path: str) -> None:
        if isinstance(t, Struct):
            v = self.var("s")
            self.emit(d, f"{v} = {expr}")
            if nullable:
                null = b"\x00" if in_tag else b"\xff"  # tagged: uvarint 0; else int8 -1
                self.emit(d, f"if {v} is None: {a}({null!r})")
                self.emit(d, "else:")
                d += 1
                self.emit(d, f"{a}(b'\\x01')")
            self.enc_struct_maybe_outlined(t, v, a, d, path)
            return
        if isinstance(t, Primitive) and t.kind not in ("string", "bytes", "records"):
            if t.kind == "fixed":
                arg = f"{expr}.bytes" if t is UUID else expr
                self.emit(d, f"{a}({self.const(struct.Struct('>' + (t.fmt or '')), 'S')}.pack({arg}))")
            else:
                fn = {"uvarint": "_wuv", "varint": "_wv", "varlong": "_wvl"}[t.kind]
                self.emit(d, f"{a}({fn}({expr}))")
            return
        v = self.var("v")
        self.emit(d, f"{v} = {expr}")
        if nullable:
            null = b"\x00" if compact else (b"\xff\xff" if t is STRING else b"\xff\xff\xff\xff")
            self.emit(d, f"if {v} is None:")
            self.emit(d + 1, f"{a}({null!r})")
            self.emit(d, "else:")
            d += 1
        n = self.var("n")
        if t is STRING:
            e = self.var("e")
            self.emit(d, f"{e} = {v}.encode()")
            self.emit(d, f"{n} = len({e}){' + 1' if compact else ''}")
            limit = _MAX_STRING_BYTES + (1 if compact else 0)
            msg = f"{path}: string longer than {_MAX_STRING_BYTES} bytes"
            self.emit(d, f"if {n} > {limit}: raise _EE({msg!r})")
            self.emit(d, f"{a}({self.enc_len(n, compact, False)})")
            self.emit(d, f"{a}({e})")
            return
        self.emit(d, f"{n} = len({v}){' + 1' if compact else ''}")
        self.emit(d, f"{a}({self.enc_len(n, compact, True)})")
        if isinstance(t, Primitive):  # bytes, records
            self.emit(d, f"{a}({v})")
            return
        elem = t.elem
        if isinstance(elem, Primitive) and elem.kind == "fixed":
            if elem is UUID:
                self.emit(d, f"{a}(b''.join([x.bytes for x in {v}]))")
            else:
                self.emit(d, f"{a}(_pack('>%d{elem.fmt}' % len({v}), *{v}))")
            return
        x = self.var("x")
        self.emit(d, f"for {x} in {v}:")
        self.loops += 1
        if isinstance(elem, Struct):
            self.enc_struct_maybe_outlined(elem, x, a, d + 1, path)
        else:
            self.enc_value(elem, x, a, d + 1, False, compact, in_tag, path)
        self.loops -= 1

    def enc_struct_maybe_outlined(self, t: Struct, v: str, a: str, d: int, path: str) -> None:
        if self.loops >= _MAX_INLINE_LOOPS:
            self.emit(d, f"{self.outline('enc', t, path)}({v}, {a})")
        else:
            self.enc_struct(t, v, a, d, path)

    def enc_tagged(self, slots: list[_Slot], o: str, a: str, d: int, path: str) -> None:
        tagged = sorted((sl for sl in slots if sl.tagged), key=lambda sl: sl.field.tag or 0)
        u = self.var("u")
        self.emit(d, f"{u} = {o}._unknown_tagged_fields")
        if not tagged:
            self.emit(d, f"if {u}: _wt({a}, [], {u}, frozenset())")
            self.emit(d, f"else: {a}(b'\\x00')")
            return
        known = self.const(frozenset(sl.field.tag for sl in tagged), "T")
        tf = self.var("tf")
        self.emit(d, f"{tf} = []")
        for sl in tagged:
            f = sl.field
            v = self.var("t")
            self.emit(d, f"{v} = {o}.{f.name}")
            self.emit(d, f"if {self.nondefault(f, v)}:")
            sub = self.var("sub")
            self.emit(d + 1, f"{sub} = []")
            self.enc_value(f.type, v, f"{sub}.append", d + 1, sl.nullable, sl.compact, True,
                           f"{path}.{f.name}")
            self.emit(d + 1, f"{tf}.append(({f.tag}, b''.join({sub})))")
        self.emit(d, f"if {tf} or {u}: _wt({a}, {tf}, {u}, {known})")
        self.emit(d, f"else: {a}(b'\\x00')")

    # -- decode -----------------------------------------------------------------------------

    def dec_struct(self, s: Struct, target: str, d: int, path: str) -> None:
        slots = self.slots(s)
        cls = self.const(s.cls, "C")
        # Mutable classes are filled in place: object.__new__ plus attribute stores (straight
        # from unpack_from) cost ~25% less than calling the dataclass __init__.
        direct = not s.frozen
        o = self.var("o")
        if direct:
            self.emit(d, f"{o} = _new({cls})")
        values: list[str] = []
        run: list[tuple[str, str, Primitive]] = []
        tagged: list[tuple[_Slot, str]] = []
        for sl in slots:
            f = sl.field
            if not sl.present:
                if direct:
                    self.emit(d, f"{o}.{f.name} = {self.default_expr(f)}")
                else:
                    values.append(self.default_expr(f))
                continue
            v = f"{o}.{f.name}" if direct else self.var("f")
            values.append(v)
            t = f.type
            if sl.tagged:
                tagged.append((sl, v))
            elif isinstance(t, Primitive) and t.kind == "fixed":
                run.append((t.fmt or "", v, t))
            else:
                self.flush_unpack(run, d)
                self.dec_value(t, v, d, sl.nullable, sl.compact, False, f"{path}.{f.name}")
        self.flush_unpack(run, d)
        unknown = "()"
        if self.flexible:
            unknown = self.dec_tagged(tagged, d, path)
        if direct:
            self.emit(d, f"{o}._unknown_tagged_fields = {unknown}")
            self.emit(d, f"{target} = {o}")
        else:
            self.emit(d, f"{target} = {cls}({', '.join([*values, unknown])})")

    def flush_unpack(self, run: list[tuple[str, str, Primitive]], d: int) -> None:
        if not run:
            return
        unpacker = struct.Struct(">" + "".join(c for c, _, _ in run))
        names = ", ".join(v for _, v, _ in run)
        self.emit(d, f"{names}, = {self.const(unpacker, 'S')}.unpack_from(buf, pos)")
        self.emit(d, f"pos += {unpacker.size}")
        for _, v, t in run:
            if t is UUID:
                self.emit(d, f"{v} = _uuid({v})")
        run.clear()

    def dec_len(self, n: str, d: int, compact: bool, wide: bool) -> None:
        """Read a length/count into ``n``; negative means null."""
        if compact:
            self.emit(d, f"{n} = buf[pos]")
            self.emit(d, f"if {n} < 128: pos += 1")
            self.emit(d, f"else: {n}, pos = _ruv(buf, pos)")
            self.emit(d, f"{n} -= 1")
        else:
            self.emit(d, f"{n}, = {'_I' if wide else '_H'}.unpack_from(buf, pos)")
            self.emit(d, f"pos += {4 if wide else 2}")

    def dec_value(self, t: FieldType, v: str, d: int, nullable: bool, compact: bool,
                  in_tag: bool, path: str) -> None:
        if isinstance(t, Struct):
            if nullable:
                m = self.var("m")
                if in_tag:  # Kafka writes a uvarint presence marker inside tagged fields
                    self.emit(d, f"{m}, pos = _ruv(buf, pos)")
                    self.emit(d, f"if {m} == 0: {v} = None")
                else:
                    self.emit(d, f"{m}, = _b.unpack_from(buf, pos)")
                    self.emit(d, "pos += 1")
                    self.emit(d, f"if {m} < 0: {v} = None")
                self.emit(d, "else:")
                d += 1
            self.dec_struct_maybe_outlined(t, v, d, path)
            return
        if isinstance(t, Primitive) and t.kind not in ("string", "bytes", "records"):
            if t.kind == "fixed":
                unpacker = struct.Struct(">" + (t.fmt or ""))
                self.emit(d, f"{v}, = {self.const(unpacker, 'S')}.unpack_from(buf, pos)")
                self.emit(d, f"pos += {unpacker.size}")
                if t is UUID:
                    self.emit(d, f"{v} = _uuid({v})")
            else:
                fn = {"uvarint": "_ruv", "varint": "_rv", "varlong": "_rvl"}[t.kind]
                self.emit(d, f"{v}, pos = {fn}(buf, pos)")
            return
        n = self.var("n")
        self.dec_len(n, d, compact, t is not STRING)
        self.emit(d, f"if {n} < 0:")
        if nullable:
            self.emit(d + 1, f"{v} = None")
        else:
            self.emit(d + 1, f"raise _DE({f'{path}: non-nullable field was serialized as null'!r})")
        self.emit(d, "else:")
        d += 1
        if isinstance(t, Primitive):
            limit = f"{n} > {_MAX_STRING_BYTES} or " if t is STRING else ""
            self.emit(d, f"if {limit}{n} > blen - pos: raise _badlen({path!r}, {n}, pos, blen)")
            if t is STRING:
                self.emit(d, f"{v} = str(buf[pos:pos + {n}], 'utf-8')")
            elif t is BYTES:
                self.emit(d, f"{v} = bytes(buf[pos:pos + {n}])")
            else:  # records stay a zero-copy view of the request buffer
                self.emit(d, f"{v} = buf[pos:pos + {n}]")
            self.emit(d, f"pos += {n}")
            return
        elem = t.elem
        per = max(self.min_size(elem, False, compact), 1)  # Kafka: count <= bytes remaining
        count_bytes = f"{n} * {per}" if per > 1 else n
        self.emit(d, f"if {count_bytes} > blen - pos: raise _badlen({path!r}, {n}, pos, blen)")
        if isinstance(elem, Primitive) and elem.kind == "fixed":
            if elem is UUID:
                self.emit(d, f"{v} = [_uuid(bytes(buf[p:p + 16])) "
                             f"for p in range(pos, pos + 16 * {n}, 16)]")
            else:
                self.emit(d, f"{v} = list(_unpack('>%d{elem.fmt}' % {n}, buf, pos))")
            self.emit(d, f"pos += {elem.size} * {n}")
            return
        ap = self.var("ap")
        e = self.var("e")
        self.emit(d, f"{v} = []")
        self.emit(d, f"{ap} = {v}.append")
        self.emit(d, f"for _ in range({n}):")
        self.loops += 1
        if isinstance(elem, Struct):
            self.dec_struct_maybe_outlined(elem, e, d + 1, path)
        else:
            self.dec_value(elem, e, d + 1, False, compact, in_tag, path)
        self.loops -= 1
        self.emit(d + 1, f"{ap}({e})")

    def dec_struct_maybe_outlined(self, t: Struct, v: str, d: int, path: str) -> None:
        if self.loops >= _MAX_INLINE_LOOPS:
            self.emit(d, f"{v}, pos = {self.outline('dec', t, path)}(buf, pos, blen)")
        else:
            self.dec_struct(t, v, d, path)

    def dec_tagged(self, tagged: list[tuple[_Slot, str]], d: int, path: str) -> str:
        """Decode a tagged-fields section; returns the variable holding unknown fields."""
        for sl, v in tagged:
            self.emit(d, f"{v} = {self.default_expr(sl.field)}")
        u, n, tag, size, end = (self.var(h) for h in ("u", "n", "tag", "sz", "end"))
        self.emit(d, f"{u} = ()")
        self.emit(d, f"{n} = buf[pos]")
        self.emit(d, "pos += 1")
        self.emit(d, f"if {n}:")  # usually 0: skip the loop set-up
        d += 1
        self.emit(d, f"if {n} >= 128: {n}, pos = _ruv(buf, pos - 1)")
        self.emit(d, f"for _ in range({n}):")  # each field takes >= 2 bytes: terminates
        self.loops += 1
        d += 1
        self.emit(d, f"{tag}, pos = _ruv(buf, pos)")
        self.emit(d, f"{size}, pos = _ruv(buf, pos)")
        self.emit(d, f"{end} = pos + {size}")
        self.emit(d, f"if {end} > blen: raise _badlen({path + ' tagged field'!r}, {size}, pos, blen)")
        inner = d
        for i, (sl, v) in enumerate(sorted(tagged, key=lambda tv: tv[0].field.tag or 0)):
            f = sl.field
            self.emit(d, f"{'if' if i == 0 else 'elif'} {tag} == {f.tag}:")
            self.dec_value(f.type, v, d + 1, sl.nullable, sl.compact, True, f"{path}.{f.name}")
            msg = f"{path}.{f.name}: tagged field size does not match its contents"
            self.emit(d + 1, f"if pos != {end}: raise _DE({msg!r})")
        if tagged:
            self.emit(d, "else:")
            inner = d + 1
        self.emit(inner, f"{u} += (({tag}, bytes(buf[pos:{end}])),)")
        self.emit(inner, f"pos = {end}")
        self.loops -= 1
        return u


# ---------------------------------------------------------------------------------------------
# Error explanation (cold path: only runs after an encode failed)


def _find_problem(s: Struct, obj: Any, version: int, path: str) -> str | None:
    if not isinstance(obj, s.cls):
        return f"{path}: expected {s.name}, got {type(obj).__name__}"
    for f in s.fields:
        if version in f.versions:
            nullable = version in f.nullable_versions
            p = _check_value(f.type, getattr(obj, f.name), nullable, version, f"{path}.{f.name}")
            if p:
                return p
    return None


def _check_value(t: FieldType, value: Any, nullable: bool, version: int, path: str) -> str | None:
    if value is None:
        return None if nullable else f"{path}: null in a non-nullable field"
    if isinstance(t, Struct):
        return _find_problem(t, value, version, path)
    if isinstance(t, Array):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            return f"{path}: expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            p = _check_value(t.elem, item, False, version, f"{path}[{i}]")
            if p:
                return p
        return None
    ok: bool
    if t is STRING:
        ok = isinstance(value, str)
        if ok and len(value.encode("utf-8", "surrogatepass")) > _MAX_STRING_BYTES:
            return f"{path}: string longer than {_MAX_STRING_BYTES} bytes"
    elif t.kind in ("bytes", "records"):
        ok = isinstance(value, (bytes, bytearray, memoryview))
    elif t is UUID:
        ok = isinstance(value, uuid.UUID)
    elif t is FLOAT64:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t is BOOL:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and t.lo is not None and not t.lo <= value <= (t.hi or 0):
            return f"{path}: {value} out of range for {t.name}"
    return None if ok else f"{path}: {value!r} is not a valid {t.name}"
