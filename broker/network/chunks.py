"""Large responses written without joining them into one bytes object.

A Fetch response is mostly record bytes read from segment files; joining its encoded chunks
into one frame would copy (and, for tens of MiB, page-fault in) every byte once more before the
socket copies it again. A response of at least ``CHUNKED_BYTES`` therefore stays the list of
chunks the codec produced (``kraft/codec/message.py`` ``encode_to`` appends records values
uncopied), wrapped in ``ResponseChunks``, and goes to the transport with ``writelines``
(a gathered write on both uvloop and asyncio's own loop).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHUNKED_BYTES", "ResponseChunks", "flatten"]

CHUNKED_BYTES = 256 << 10
"""Responses at least this large are written as chunks; smaller ones are joined (one write)."""


class ResponseChunks:
    """One response frame as its chunks (bytes-like, in order); ``len`` is its size in bytes."""

    __slots__ = ("nbytes", "parts")

    def __init__(self, parts: list[Any], nbytes: int) -> None:
        self.parts = parts
        self.nbytes = nbytes

    def __len__(self) -> int:
        return self.nbytes


def flatten(out: list[Any]) -> list[Any]:
    """The buffers of ``out`` (whole responses as bytes, or ``ResponseChunks``), in order,
    small neighbours joined so that a gathered write stays short."""
    bufs: list[Any] = []
    small: list[Any] = []
    for item in out:
        if item.__class__ is ResponseChunks:
            for part in item.parts:
                if len(part) < 4096:
                    small.append(part)
                else:
                    if small:
                        bufs.append(b"".join(small))
                        small = []
                    bufs.append(part)
        else:
            small.append(item)
    if small:
        bufs.append(b"".join(small))
    return bufs
