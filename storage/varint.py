"""Varints as Kafka writes them: unsigned LEB128 (``uvarint``/``uvarlong``) and zig-zag signed
(``varint``/``varlong``, protobuf sint32/sint64). The one implementation, shared by the record
format (storage.records) and the schema engine (kraft.codec, which re-exports it).

The readers and writers differ between their users only in the exception that reports bad input
(``CorruptRecordError`` for a stored batch, the codec's ``DecodeError``/``EncodeError`` for a
request), so ``varint_codec`` builds them bound to the caller's exception classes. The common
1-2 byte cases are fast paths: the codec's generated code calls these per field. The record
format builds a batch in one bytearray, so it appends with ``append_zigzag`` (the same LEB128
loop, ``append_uvarint``, that the writers use).
"""

from __future__ import annotations

from typing import Any, NamedTuple

# One-byte encodings, shared rather than built per call.
B1: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(128))
U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def size_of_uvarint(value: int) -> int:
    """Bytes ``write_uvarint(value)`` (or ``write_uvarlong``) produces."""
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def size_of_varint(value: int) -> int:
    """Bytes ``write_varint(value)`` produces."""
    return size_of_uvarint((value << 1) ^ (value >> 31))


def size_of_varlong(value: int) -> int:
    """Bytes ``write_varlong(value)`` produces."""
    return size_of_uvarint((value << 1) ^ (value >> 63))


class VarintCodec(NamedTuple):
    """The readers (``(buf, pos) -> (value, new_pos)``) and writers (``value -> bytes``)."""

    read_uvarint: Any
    read_uvarlong: Any
    read_varint: Any
    read_varlong: Any
    write_uvarint: Any
    write_uvarlong: Any
    write_varint: Any
    write_varlong: Any


def varint_codec(decode_error: type[Exception], encode_error: type[Exception]) -> VarintCodec:
    """The varint readers, raising ``decode_error`` for truncated or malformed input, and
    writers, raising ``encode_error`` for a value out of the type's range."""
    _B1 = B1

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
            raise decode_error(f"truncated varint at offset {pos}") from None
        if b < 0x10:
            return value | (b << 28), pos + 5
        raise decode_error(f"varint at offset {pos} does not fit in 32 bits")

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
                    raise decode_error(f"varlong at offset {start} is longer than 10 bytes")
        except IndexError:
            raise decode_error(f"truncated varlong at offset {start}") from None
        if value > U64_MAX:
            raise decode_error(f"varlong at offset {start} does not fit in 64 bits")
        return value, pos

    def read_varint(buf: Any, pos: int) -> tuple[int, int]:
        """Read a zig-zag signed 32-bit varint (Kafka ``readVarint``); return (value, new_pos)."""
        try:
            b = buf[pos]
        except IndexError:
            raise decode_error(f"truncated varint at offset {pos}") from None
        if b < 0x80:
            return (b >> 1) ^ -(b & 1), pos + 1
        v, pos = read_uvarint(buf, pos)
        return (v >> 1) ^ -(v & 1), pos

    def read_varlong(buf: Any, pos: int) -> tuple[int, int]:
        """Read a zig-zag signed 64-bit varint (Kafka ``readVarlong``); return (value, new_pos)."""
        try:
            b = buf[pos]
        except IndexError:
            raise decode_error(f"truncated varlong at offset {pos}") from None
        if b < 0x80:
            return (b >> 1) ^ -(b & 1), pos + 1
        v, pos = read_uvarlong(buf, pos)
        return (v >> 1) ^ -(v & 1), pos

    def write_uvarint(value: int) -> bytes:
        """Encode an unsigned 32-bit varint."""
        if 0 <= value < 0x80:
            return _B1[value]
        if 0x80 <= value < 0x4000:
            return bytes(((value & 0x7F) | 0x80, value >> 7))
        if not 0 <= value <= U32_MAX:
            raise encode_error(f"unsigned varint out of range: {value}")
        return _write_uv(value)

    def write_uvarlong(value: int) -> bytes:
        """Encode an unsigned 64-bit varint."""
        if 0 <= value < 0x80:
            return _B1[value]
        if not 0 <= value <= U64_MAX:
            raise encode_error(f"unsigned varlong out of range: {value}")
        return _write_uv(value)

    def write_varint(value: int) -> bytes:
        """Encode a zig-zag signed 32-bit varint (Kafka ``writeVarint``)."""
        if not I32_MIN <= value <= I32_MAX:
            raise encode_error(f"varint out of range: {value}")
        z = (value << 1) ^ (value >> 31)
        if z < 0x80:
            return _B1[z]
        if z < 0x4000:
            return bytes(((z & 0x7F) | 0x80, z >> 7))
        return _write_uv(z)

    def write_varlong(value: int) -> bytes:
        """Encode a zig-zag signed 64-bit varint (Kafka ``writeVarlong``)."""
        if not I64_MIN <= value <= I64_MAX:
            raise encode_error(f"varlong out of range: {value}")
        z = (value << 1) ^ (value >> 63)
        if z < 0x80:
            return _B1[z]
        if z < 0x4000:
            return bytes(((z & 0x7F) | 0x80, z >> 7))
        return _write_uv(z)

    return VarintCodec(read_uvarint, read_uvarlong, read_varint, read_varlong,
                       write_uvarint, write_uvarlong, write_varint, write_varlong)


def append_uvarint(out: bytearray, value: int) -> None:
    """Append unsigned ``value`` (the caller checks its range) to ``out``."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def append_zigzag(out: bytearray, value: int) -> None:
    """Append zig-zag ``value``, a varint or varlong (the caller checks its range: the encoding
    of an int32 is the same either way), to ``out``: the record format builds a batch in one
    bytearray."""
    z = (value << 1) ^ (value >> 63)
    if z < 0x80:
        out.append(z)
    else:
        append_uvarint(out, z)


def _write_uv(value: int) -> bytes:
    out = bytearray()
    append_uvarint(out, value)
    return bytes(out)
