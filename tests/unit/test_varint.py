"""storage/varint.py: the one varint implementation, as the record format and the schema engine
bind it."""

from __future__ import annotations

import pytest

from kraft.codec import DecodeError, EncodeError, read_varlong, write_varint, write_varlong
from storage.errors import CorruptRecordError
from storage.varint import append_uvarint, append_zigzag, varint_codec

VALUES = [0, 1, -1, 63, -64, 64, 8191, -8192, 8192, 2**31 - 1, -(2**31), 2**40, -(2**63),
          2**63 - 1]


@pytest.mark.parametrize("value", VALUES)
def test_append_zigzag_matches_the_codec(value: int) -> None:
    out = bytearray(b"x")
    append_zigzag(out, value)
    assert bytes(out[1:]) == write_varlong(value)
    assert read_varlong(out, 1) == (value, len(out))
    if -(2**31) <= value < 2**31:
        assert bytes(out[1:]) == write_varint(value)


def test_append_uvarint() -> None:
    out = bytearray()
    append_uvarint(out, 300)
    assert bytes(out) == b"\xac\x02"


def test_bindings_raise_their_callers_errors() -> None:
    records = varint_codec(CorruptRecordError, ValueError)
    with pytest.raises(CorruptRecordError, match="does not fit in 32 bits"):
        records.read_varint(b"\xff" * 6, 0)
    with pytest.raises(CorruptRecordError, match="truncated"):
        records.read_varlong(b"\xff", 0)
    with pytest.raises(ValueError):
        records.write_varint(2**31)
    with pytest.raises(DecodeError, match="longer than 10 bytes"):
        read_varlong(b"\x80" * 11, 0)
    with pytest.raises(EncodeError):
        write_varlong(2**63)
