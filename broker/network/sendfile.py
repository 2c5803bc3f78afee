"""Fetch responses sent from the segment files with ``os.sendfile`` (zero-copy consume).

A large read for a Fetch (``FileRegion``: at least ``CHUNKED_BYTES`` of whole batches of one
segment file, ``storage.log_read.FetchSlice``) is not read into memory: it goes into the
response as the records value (``kraft/codec`` appends records values as given, and takes only
their ``len``), the response stays a list of chunks (``broker/network/chunks.py``), and on a
plaintext listener ``SocketSender`` writes it: the chunks of bytes with ``os.write``, the
regions with ``os.sendfile`` from the file to the socket, resuming when the socket is writable
again. The page cache goes straight to the socket: no read into a bytes object, no copy into
the transport's buffer.

Both event loops are served the same way (uvloop's transports have no ``sendfile`` and asyncio's
``loop.sendfile`` is a coroutine that cannot be ordered with the connection's other writes):
the sender starts only once the transport's own buffer is empty, owns the socket until the
response is out (the connection holds its next responses meanwhile), and watches writability
on a duplicate of the socket's fd (an event loop refuses a writer on an fd its transport owns).
TLS listeners, and anything else that cannot send from a file, read the regions instead
(``materialize``).

As in Kafka (``FileRecords.writeTo``), the bytes are those in the file when they are sent: a
segment truncated meanwhile (a leader turned follower truncating its log) ends the response
short, and the connection is then closed rather than sending a broken frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from broker.network.chunks import CHUNKED_BYTES

__all__ = ["MAX_OPEN_REGIONS", "SENDFILE_MIN_BYTES", "FileRegion", "SendfileWrites",
           "SocketSender", "has_regions", "materialize"]

logger = logging.getLogger(__name__)

SENDFILE_MIN_BYTES = CHUNKED_BYTES
"""Reads at least this large become a ``FileRegion`` (so the response holding one is always
written as chunks); smaller ones are read into bytes at once."""
MAX_OPEN_REGIONS = 256
"""Each region holds a duplicate of its segment's fd until it is sent: past this many in the
process, reads are read into bytes at once (file descriptors stay bounded)."""


class FileRegion:
    """Whole batches of a segment file, to be sent by the network server: wraps a
    ``storage.log_read.FetchSlice`` (its own fd; closed once sent, read or dropped)."""

    __slots__ = ("_open", "slice")
    open_count = 0  # regions not yet closed, in this process

    def __init__(self, fetch_slice: Any) -> None:
        self.slice = fetch_slice
        self._open = True
        FileRegion.open_count += 1

    @classmethod
    def available(cls) -> bool:
        return cls.open_count < MAX_OPEN_REGIONS

    def __len__(self) -> int:
        return int(self.slice.length)

    def read_bytes(self) -> bytes:
        try:
            return bytes(self.slice.read_bytes())
        finally:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            FileRegion.open_count -= 1
            self.slice.close()

    def __del__(self) -> None:  # a response dropped unsent (its connection closed)
        try:
            self.close()
        except OSError:  # pragma: no cover
            pass


def has_regions(bufs: list[Any]) -> bool:
    return any(b.__class__ is FileRegion for b in bufs)


def materialize(bufs: list[Any]) -> list[Any]:
    """``bufs`` with every ``FileRegion`` read into bytes (for transports that cannot send from
    a file)."""
    return [b.read_bytes() if b.__class__ is FileRegion else b for b in bufs]


class SocketSender:
    """Writes ``bufs`` (bytes-like and ``FileRegion``) in order to a connection's socket,
    bypassing its transport, then calls ``on_done()``; on an error (a reset socket, a file that
    shrank) ``on_error(reason)`` instead. ``cancel()`` stops it (connection lost or closed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: Any, sock_fd: int,
                 bufs: list[Any], on_done: Callable[[], None],
                 on_error: Callable[[str], None]) -> None:
        self._loop = loop
        self._transport = transport
        self._fd = os.dup(sock_fd)
        self._bufs = bufs
        self._i = 0
        self._offset = 0  # bytes of bufs[_i] already sent
        self._on_done = on_done
        self._on_error = on_error
        self._watching = False
        self.done = False
        self.bytes_sent = 0

    def start(self) -> None:
        self._pump()

    def _pump(self) -> None:
        if self.done:
            return
        if self._transport.get_write_buffer_size():
            self._watch()  # the transport's own bytes go first
            return
        bufs, fd = self._bufs, self._fd
        try:
            while self._i < len(bufs):
                buf = bufs[self._i]
                off = self._offset
                if buf.__class__ is FileRegion:
                    sl = buf.slice
                    left = sl.length - off
                    n = os.sendfile(fd, sl.fd, sl.position + off, left)
                    if n == 0:
                        self._fail(f"segment file ended {left} bytes short of a fetch region")
                        return
                else:
                    left = len(buf) - off
                    n = os.write(fd, memoryview(buf)[off:] if off else buf)
                self.bytes_sent += n
                if n < left:
                    self._offset = off + n
                    continue  # try again: the next call raises BlockingIOError when full
                if buf.__class__ is FileRegion:
                    buf.close()
                self._i += 1
                self._offset = 0
        except BlockingIOError:
            self._watch()
            return
        except OSError as e:
            self._fail(f"send failed: {e}")
            return
        self._finish()
        self._on_done()

    def _watch(self) -> None:
        if not self._watching:
            self._watching = True
            self._loop.add_writer(self._fd, self._pump)

    def _finish(self) -> None:
        self.done = True
        if self._watching:
            self._watching = False
            self._loop.remove_writer(self._fd)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for buf in self._bufs[self._i:]:
            if buf.__class__ is FileRegion:
                buf.close()

    def _fail(self, reason: str) -> None:
        self._finish()
        self._on_error(reason)

    def cancel(self) -> None:
        if not self.done:
            self._finish()


class SendfileWrites:
    """The network server connection's part (``broker/network/server.py`` ``_Connection``)
    that runs a ``SocketSender``: reading stops while it writes, the responses that come
    meanwhile wait in the connection's ``out``, a close waits for it (``_close_when_sent``)."""

    core: Any
    _loop: Any
    _transport: Any
    _sock_fd: int
    _sender: SocketSender | None
    _transport_paused: bool
    _close_when_sent: bool
    _update_blocked: Callable[[], None]
    _write_out: Callable[[], None]
    _close: Callable[[], None]
    _peer_str: Callable[[], str]

    def _start_sender(self, bufs: list[Any]) -> None:
        """Send a response holding file regions from the files (broker/network/sendfile.py);
        reading stops meanwhile, as when the transport's buffer is full."""
        self._sender = SocketSender(self._loop, self._transport, self._sock_fd, bufs,
                                    self._sent, self._send_failed)
        self.core.write_paused = True
        self._update_blocked()
        self._sender.start()

    def _sent(self) -> None:
        self._sender = None
        core = self.core
        if core.closed:
            return
        if self._close_when_sent:
            self._close()
            return
        core.write_paused = self._transport_paused
        self._update_blocked()
        if core.out and not core.closed and self._sender is None:
            self._write_out()

    def _abort_send(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
            self.core.close()
            if self._transport is not None:
                self._transport.abort()

    def _send_failed(self, reason: str) -> None:
        """A response could not be sent whole: the client cannot resynchronise on a broken
        frame, so the connection is dropped."""
        self._sender = None
        logger.warning("Closing connection from %s: %s", self._peer_str(), reason)
        self.core.close()
        if self._transport is not None:
            self._transport.abort()
