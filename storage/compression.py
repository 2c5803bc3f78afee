"""Compression codecs of Kafka record batches (attributes bits 0-2).

Only the records section (after the 61-byte header) is compressed. The broker never recompresses
(docs/architecture.md); these functions serve tools, compaction and tests.

Wire formats, as real clients write them (docs/clients.md, "Compression framing"):

- gzip: a standard gzip member (we also read several concatenated members).
- snappy: we write xerial framing (magic, version 1, compat 1, then ``[int32 length][raw snappy
  block]`` per 32 KiB of input), as the Java client, kafka-python and aiokafka do; we read both
  xerial and raw snappy (librdkafka writes raw).
- lz4: the LZ4 frame format. We write what the Java client writes (independent 64 KiB blocks, no
  content size, no checksum: flag byte 0x60); we read any standard frame, and several in a row.
- zstd: standard zstd frames; a payload may hold several.

Every decoder is bounded by ``max_size`` (decompression bombs) and turns any failure of the
underlying library into ``CorruptRecordError``.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

import cramjam
import lz4.frame

from storage.errors import CorruptRecordError, UnsupportedCompressionError

# Default bound on the decompressed size of one batch's records section. Kafka's own limit on a
# batch is message.max.bytes (1 MiB default) compressed; 64 MiB decompressed is far above any sane
# ratio for real data and still small enough not to take a broker or tool down.
DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024

# Input bytes per xerial snappy block (the xerial library's and the Java client's default).
SNAPPY_XERIAL_BLOCK_SIZE = 32 * 1024
SNAPPY_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_SNAPPY_XERIAL_HEADER = SNAPPY_XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_SIZE = len(_SNAPPY_XERIAL_HEADER)  # 16

GZIP_DEFAULT_LEVEL = 6  # zlib's (and java.util.zip's) default
ZSTD_DEFAULT_LEVEL = 3  # zstd's default, as the Java client uses
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip container only: no raw deflate, no zlib header

_I32 = struct.Struct(">i")


class CompressionType(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


def compression_type(codec: int) -> CompressionType:
    """The ``CompressionType`` for attribute bits ``codec``; 5-7 are not codecs."""
    try:
        return CompressionType(codec)
    except ValueError:
        raise UnsupportedCompressionError(f"unknown compression codec {codec}") from None


# --------------------------------------------------------------------------------------------
# compress


def compress(codec: int, data: bytes | bytearray | memoryview, *, level: int | None = None) -> bytes:
    """Compress ``data`` with ``codec`` in the framing Kafka clients read."""
    ctype = compression_type(codec)
    if ctype is CompressionType.NONE:
        return bytes(data)
    if ctype is CompressionType.GZIP:
        c = zlib.compressobj(GZIP_DEFAULT_LEVEL if level is None else level, zlib.DEFLATED,
                             _GZIP_WBITS)
        return c.compress(data) + c.flush()
    if ctype is CompressionType.SNAPPY:
        return _snappy_xerial_compress(data)
    if ctype is CompressionType.LZ4:
        return lz4.frame.compress(
            data,
            compression_level=0 if level is None else level,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,  # Kafka readers (Java) refuse dependent blocks
            content_checksum=False,
            store_size=False,
        )
    assert ctype is CompressionType.ZSTD
    return bytes(cramjam.zstd.compress(data, level=ZSTD_DEFAULT_LEVEL if level is None else level))


def _snappy_xerial_compress(data: bytes | bytearray | memoryview) -> bytes:
    view = memoryview(data)
    parts = [_SNAPPY_XERIAL_HEADER]
    # At least one block even for empty input: a header-only stream (16 bytes) is taken for raw
    # snappy by kafka-python, whose xerial check wants more than 16 bytes.
    for start in range(0, max(len(view), 1), SNAPPY_XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + SNAPPY_XERIAL_BLOCK_SIZE]))
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# decompress


def decompress(
    codec: int,
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> bytes:
    """Decompress ``data``. Garbage, truncation, or output past ``max_size`` -> CorruptRecordError.

    Unknown codecs (5-7) raise ``UnsupportedCompressionError``.
    """
    ctype = compression_type(codec)
    if ctype is CompressionType.NONE:
        if len(data) > max_size:
            raise _too_large(ctype, max_size)
        return bytes(data)
    if len(data) == 0:
        raise CorruptRecordError(f"empty {ctype.name.lower()} stream")
    try:
        if ctype is CompressionType.GZIP:
            return _gzip_decompress(data, max_size)
        if ctype is CompressionType.SNAPPY:
            return _snappy_decompress(data, max_size)
        if ctype is CompressionType.LZ4:
            return _lz4_decompress(data, max_size)
        assert ctype is CompressionType.ZSTD
        return _zstd_decompress(data, max_size)
    except CorruptRecordError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # library errors vary: zlib.error, RuntimeError, DecompressionError
        raise CorruptRecordError(f"invalid {ctype.name.lower()} data: {e}") from e


def _too_large(ctype: CompressionType, max_size: int) -> CorruptRecordError:
    return CorruptRecordError(
        f"{ctype.name.lower()} data decompresses to more than the limit of {max_size} bytes"
    )


def _gzip_decompress(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    out: list[bytes] = []
    produced = 0
    rest = bytes(data)
    while True:
        d = zlib.decompressobj(_GZIP_WBITS)
        chunk = d.decompress(rest, max_size + 1 - produced)
        while True:
            produced += len(chunk)
            out.append(chunk)
            if produced > max_size:
                raise _too_large(CompressionType.GZIP, max_size)
            if d.eof or not d.unconsumed_tail:
                break
            chunk = d.decompress(d.unconsumed_tail, max_size + 1 - produced)
        if not d.eof:
            raise CorruptRecordError("truncated gzip stream")
        rest = d.unused_data
        # Concatenated members are one stream (RFC 1952); NUL padding after the last is common.
        if not rest.strip(b"\x00"):
            return b"".join(out)


def _snappy_decompress(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    view = memoryview(data)
    if bytes(view[: len(SNAPPY_XERIAL_MAGIC)]) != SNAPPY_XERIAL_MAGIC:
        # Raw snappy (librdkafka). A raw stream cannot start with the xerial magic: 0x82 0x53 is the
        # length preamble, then 'N' would be a copy with nothing before it to copy from.
        if cramjam.snappy.decompress_raw_len(view) > max_size:
            raise _too_large(CompressionType.SNAPPY, max_size)
        return bytes(cramjam.snappy.decompress_raw(view))
    if len(view) < _XERIAL_HEADER_SIZE:
        raise CorruptRecordError("truncated xerial snappy header")
    # Version and compat are not checked: there is one xerial format, and some producers write
    # these two fields little-endian (kafka-python issue 2414).
    blocks: list[memoryview] = []
    total = 0
    pos = _XERIAL_HEADER_SIZE
    end = len(view)
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError("truncated xerial snappy block length")
        (size,) = _I32.unpack_from(view, pos)
        pos += 4
        if size < 0 or size > end - pos:
            raise CorruptRecordError(f"xerial snappy block length {size} past the end of the data")
        block = view[pos : pos + size]
        pos += size
        total += cramjam.snappy.decompress_raw_len(block)
        if total > max_size:
            raise _too_large(CompressionType.SNAPPY, max_size)
        blocks.append(block)
    return b"".join(bytes(cramjam.snappy.decompress_raw(b)) for b in blocks)


def _lz4_decompress(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    out: list[bytes] = []
    produced = 0
    rest = bytes(data)
    while rest:
        d = lz4.frame.LZ4FrameDecompressor()
        chunk = d.decompress(rest, max_length=max_size + 1 - produced)
        while True:
            produced += len(chunk)
            out.append(chunk)
            if produced > max_size:
                raise _too_large(CompressionType.LZ4, max_size)
            if d.eof or d.needs_input:
                break
            chunk = d.decompress(b"", max_length=max_size + 1 - produced)
        if not d.eof:
            raise CorruptRecordError("truncated lz4 frame")
        rest = d.unused_data
    return b"".join(out)


# zstd (RFC 8878) frame walking: cramjam cannot bound its output, so we bound it from the frame
# headers before decompressing. A frame's output is at most the sum over its blocks of: the
# block size (raw and RLE blocks) or min(window size, 128 KiB) (compressed blocks), and exactly the
# frame content size when the header declares one (libzstd checks it).
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50
_ZSTD_BLOCK_MAX = 128 * 1024
_U32LE = struct.Struct("<I")


def zstd_output_bound(data: bytes | bytearray | memoryview) -> int:
    """Upper bound of the decompressed size of a sequence of zstd frames; checks their structure."""
    view = memoryview(data)
    end = len(view)
    pos = 0
    total = 0
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError("truncated zstd frame magic")
        (magic,) = _U32LE.unpack_from(view, pos)
        pos += 4
        if magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC:
            if end - pos < 4:
                raise CorruptRecordError("truncated zstd skippable frame")
            (size,) = _U32LE.unpack_from(view, pos)
            pos += 4 + size
            if pos > end:
                raise CorruptRecordError("truncated zstd skippable frame")
            continue
        if magic != _ZSTD_MAGIC:
            raise CorruptRecordError(f"bad zstd frame magic {magic:#010x}")
        if pos >= end:
            raise CorruptRecordError("truncated zstd frame header")
        fhd = view[pos]
        pos += 1
        fcs_flag = fhd >> 6
        single_segment = bool(fhd & 0x20)
        if fhd & 0x08:
            raise CorruptRecordError("zstd frame header reserved bit set")
        has_checksum = bool(fhd & 0x04)
        dict_id_size = (0, 1, 2, 4)[fhd & 0x03]
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        header_rest = (0 if single_segment else 1) + dict_id_size + fcs_size
        if end - pos < header_rest:
            raise CorruptRecordError("truncated zstd frame header")
        window_size = 0
        if not single_segment:
            wd = view[pos]
            pos += 1
            window_log = 10 + (wd >> 3)
            window_base = 1 << window_log
            window_size = window_base + (window_base >> 3) * (wd & 7)
        pos += dict_id_size
        content_size: int | None = None
        if fcs_size:
            content_size = int.from_bytes(view[pos : pos + fcs_size], "little")
            if fcs_size == 2:
                content_size += 256
            pos += fcs_size
        if single_segment:
            assert content_size is not None
            window_size = content_size
        block_max = min(window_size, _ZSTD_BLOCK_MAX)
        frame_bound = 0
        while True:
            if end - pos < 3:
                raise CorruptRecordError("truncated zstd block header")
            bh = int.from_bytes(view[pos : pos + 3], "little")
            pos += 3
            last = bh & 1
            block_type = (bh >> 1) & 3
            block_size = bh >> 3
            if block_type == 0:  # raw
                frame_bound += block_size
                pos += block_size
            elif block_type == 1:  # RLE: one byte, repeated block_size times
                frame_bound += block_size
                pos += 1
            elif block_type == 2:  # compressed
                if block_size > block_max:
                    raise CorruptRecordError("zstd compressed block larger than its maximum")
                frame_bound += block_max
                pos += block_size
            else:
                raise CorruptRecordError("reserved zstd block type")
            if pos > end:
                raise CorruptRecordError("truncated zstd block")
            if last:
                break
        if has_checksum:
            pos += 4
            if pos > end:
                raise CorruptRecordError("truncated zstd frame checksum")
        total += frame_bound if content_size is None else min(frame_bound, content_size)
    return total


def _zstd_decompress(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    bound = zstd_output_bound(data)
    if bound > max_size:
        raise _too_large(CompressionType.ZSTD, max_size)
    out = bytes(cramjam.zstd.decompress(data))
    if len(out) > bound:  # cannot happen for a conforming decoder; keep the promise anyway
        raise _too_large(CompressionType.ZSTD, max_size)
    return out
