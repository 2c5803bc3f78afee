"""Primitive types of the schema engine and what they are built from: the codec's errors, varints
(also used by the wire framing and the metadata record frames), UUIDs, version ranges and the
scalar field types."""

from __future__ import annotations

import dataclasses
import struct
import uuid
from typing import Any, Union

from storage import varint as _varint

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
# Varints: storage.varint's, raising the codec's errors (also used by the wire framing and the
# metadata record frames)

_B1 = _varint.B1  # the one-byte encodings, also for the generated code
_U32_MAX = _varint.U32_MAX
_I32_MIN, _I32_MAX = _varint.I32_MIN, _varint.I32_MAX
_I64_MIN, _I64_MAX = _varint.I64_MIN, _varint.I64_MAX
size_of_uvarint = _varint.size_of_uvarint
size_of_varint = _varint.size_of_varint
size_of_varlong = _varint.size_of_varlong
(
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
    write_uvarint,
    write_uvarlong,
    write_varint,
    write_varlong,
) = _varint.varint_codec(DecodeError, EncodeError)


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
