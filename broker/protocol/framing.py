"""Kafka wire framing: size prefixes, request headers, response headers.

Every message on a Kafka connection is ``int32 size`` followed by ``size`` bytes. A request
frame is a request header then the body; a response frame a response header then the body.

Request header versions (``RequestHeader.json``):

- v0: api_key int16, api_version int16, correlation_id int32 (only ControlledShutdown v0);
- v1: + client_id, a *nullable, non-compact* string (int16 length; -1 = null, read as "");
- v2: + tagged fields. client_id stays non-compact even here.

The header version depends on the API and its version, so a parser reads api_key and
api_version first (``peek_request``) and then the rest (``parse_request_header``).

Response header versions: v0 is the correlation id; v1 adds tagged fields (one 0 byte).
ApiVersions responses always use v0 (KIP-511).
"""

from __future__ import annotations

import struct
from typing import Any

from kraft.codec import DecodeError, Message, read_uvarint

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "MIN_REQUEST_HEADER_BYTES",
    "InvalidHeaderError",
    "RequestHeader",
    "encode_request",
    "frame_response_chunks",
    "parse_request_header",
    "parse_response_header",
    "peek_request",
]

DEFAULT_MAX_REQUEST_BYTES = 104857600
"""``socket.request.max.bytes`` default (100 MiB): a larger request frame closes the connection."""

MIN_REQUEST_HEADER_BYTES = 8  # api_key, api_version, correlation_id

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")  # api_key, api_version, correlation_id
_SIZE_CID = struct.Struct(">ii")  # size prefix, correlation_id (response header v0)
_SIZE_CID_TAGS = struct.Struct(">iiB")  # + empty tagged fields (response header v1)


class InvalidHeaderError(DecodeError):
    """A request header that cannot be parsed (Kafka: InvalidRequestException, closes the
    connection)."""


class RequestHeader:
    """A parsed request header. ``client_id`` is "" when the client sent null, as in Kafka."""

    __slots__ = ("api_key", "api_version", "client_id", "correlation_id", "header_version",
                 "tagged_fields")

    def __init__(self, api_key: int, api_version: int, correlation_id: int, client_id: str,
                 header_version: int, tagged_fields: tuple[tuple[int, bytes], ...] = ()) -> None:
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id
        self.header_version = header_version
        self.tagged_fields = tagged_fields

    def __repr__(self) -> str:
        return (f"RequestHeader(api_key={self.api_key}, api_version={self.api_version}, "
                f"correlation_id={self.correlation_id}, client_id={self.client_id!r}, "
                f"header_version={self.header_version})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestHeader):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


def peek_request(frame: Any) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request frame (without its size prefix)."""
    if len(frame) < MIN_REQUEST_HEADER_BYTES:
        raise InvalidHeaderError(f"request frame of {len(frame)} bytes is shorter than a header")
    return _HEAD.unpack_from(frame, 0)


def parse_request_header(frame: Any, header_version: int) -> tuple[RequestHeader, int]:
    """Parse the request header at the start of ``frame`` (bytes or memoryview, no size
    prefix) as ``header_version``; return (header, offset of the body)."""
    if len(frame) < MIN_REQUEST_HEADER_BYTES:
        raise InvalidHeaderError(f"request frame of {len(frame)} bytes is shorter than a header")
    api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
    if header_version == 0:
        return RequestHeader(api_key, api_version, correlation_id, "", 0), 8
    pos = 10
    try:
        (n,) = _I16.unpack_from(frame, 8)
        if n < 0:
            client_id = ""
        else:
            if pos + n > len(frame):
                raise InvalidHeaderError(f"client_id length {n} exceeds the frame")
            client_id = str(frame[pos:pos + n], "utf-8")
            pos += n
        tagged: tuple[tuple[int, bytes], ...] = ()
        if header_version >= 2:
            count = frame[pos]
            pos += 1
            if count:  # no tags are defined for the header: keep them as unknown
                if count >= 0x80:
                    count, pos = read_uvarint(frame, pos - 1)
                fields = []
                for _ in range(count):
                    tag, pos = read_uvarint(frame, pos)
                    size, pos = read_uvarint(frame, pos)
                    if pos + size > len(frame):
                        raise InvalidHeaderError("tagged field exceeds the frame")
                    fields.append((tag, bytes(frame[pos:pos + size])))
                    pos += size
                tagged = tuple(fields)
    except InvalidHeaderError:
        raise
    except (struct.error, IndexError, UnicodeDecodeError, DecodeError) as e:
        raise InvalidHeaderError(f"malformed request header v{header_version}: {e}") from None
    return RequestHeader(api_key, api_version, correlation_id, client_id, header_version,
                         tagged), pos


def encode_request(message: Message, obj: Any, version: int, correlation_id: int,
                   client_id: str | None, header_version: int) -> bytes:
    """A complete request frame (size prefix included), as a client sends it."""
    out: list[Any] = [b""]
    if header_version >= 1:
        if client_id is None:
            out.append(b"\xff\xff")
        else:
            raw = client_id.encode()
            out.append(_I16.pack(len(raw)))
            out.append(raw)
        if header_version >= 2:
            out.append(b"\x00")
    message.encode_to(obj, version, out)
    size = sum(map(len, out)) + MIN_REQUEST_HEADER_BYTES
    out[0] = _I32.pack(size) + _HEAD.pack(message.api_key or 0, version, correlation_id)
    return b"".join(out)


def frame_response_chunks(message: Message, obj: Any, version: int, correlation_id: int,
                          header_version: int) -> list[Any]:
    """A response frame as a list of buffers (for ``transport.writelines``): size prefix and
    header in the first one, then the body chunks as the encoder produced them (record sets are
    not copied)."""
    out: list[Any] = [b""]
    message.encode_to(obj, version, out)
    size = sum(map(len, out))
    if header_version == 0:
        out[0] = _SIZE_CID.pack(size + 4, correlation_id)
    else:
        out[0] = _SIZE_CID_TAGS.pack(size + 5, correlation_id, 0)
    return out


def parse_response_header(frame: Any, header_version: int) -> tuple[int, int]:
    """(correlation_id, offset of the body) of a response frame without its size prefix."""
    if len(frame) < 4 + (header_version >= 1):
        raise DecodeError("response frame shorter than its header")
    (correlation_id,) = _I32.unpack_from(frame, 0)
    if header_version == 0:
        return correlation_id, 4
    count, pos = read_uvarint(frame, 4)
    for _ in range(count):
        _tag, pos = read_uvarint(frame, pos)
        size, pos = read_uvarint(frame, pos)
        pos += size
    if pos > len(frame):
        raise DecodeError("response header tagged fields exceed the frame")
    return correlation_id, pos
