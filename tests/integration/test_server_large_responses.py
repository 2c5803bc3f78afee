"""Large responses over real sockets (``broker/network/chunks.py``, ``sendfile.py``): a Fetch
response of at least ``CHUNKED_BYTES`` is written as its chunks, uncopied, and records read as a
file region go out with ``os.sendfile`` (or are read first when the server may not send from
files); the client must get exactly the frame a joined write would have given, in request order
with the small responses around it, on uvloop and on asyncio's own loop, also when it reads
slowly (the sender waits for the socket again and again)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.network.chunks import CHUNKED_BYTES, ResponseChunks, flatten
from broker.network.context import ListenerSpec, RequestContext
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import new_event_loop
from broker.network.sendfile import FileRegion
from broker.network.server import CLOSE, KafkaServer
from broker.protocol.api_keys import ApiKey
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import fetch, metadata
from storage.log_read import FetchSlice

FETCH_VERSION = 12
TIMEOUT_S = 20.0
BIG = os.urandom(3 * CHUNKED_BYTES + 17)
MEDIUM = os.urandom(CHUNKED_BYTES // 2)
HUGE = os.urandom(24 << 20)  # more than loopback socket buffers hold: the sender must wait


def _fetch_response(records: bytes) -> Any:
    R = fetch.RESPONSE
    pd = R.PartitionData(partition_index=0, error_code=0, high_watermark=1, records=records)
    pd.last_stable_offset = 1
    pd.log_start_offset = 0
    pd.aborted_transactions = None
    return R.cls(throttle_time_ms=0, error_code=0, session_id=0, responses=[
        R.FetchableTopicResponse(topic="t", partitions=[pd])])


class _Server:
    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop],
                 region_file: str) -> None:
        self.region_file = region_file
        self.dispatcher = ApiDispatcher(node_id=1, cluster_id="test-cluster")
        advertised = {**self.dispatcher.advertised, ApiKey.FETCH: (FETCH_VERSION, FETCH_VERSION)}
        self.server = KafkaServer([ListenerSpec("PLAINTEXT", kind="broker")], self.handle,
                                  advertised=advertised)
        self.loop = loop_factory()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(TIMEOUT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def handle(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        if header.api_key != ApiKey.FETCH:
            return self.dispatcher.handle(ctx, header, request)
        # max_bytes picks the answer: 0 the big one at once, 1 the big one from a task that
        # suspends first (the queued path), 2 a medium one (joined), 3 the big one as a file
        # region at once, 4 as a file region from a task.
        if request.max_bytes == 5:
            return CLOSE
        if request.max_bytes == 7:
            fd = os.open(self.region_file, os.O_RDONLY)
            huge = _fetch_response(FileRegion(FetchSlice(fd, 5 + len(BIG) + 4, len(HUGE), 0, 1)))  # type: ignore[arg-type]

            async def huge_later() -> Any:
                await asyncio.sleep(0.02)
                return huge
            return huge_later()
        if request.max_bytes == 6:
            async def close_later() -> Any:
                await asyncio.sleep(0.15)
                return CLOSE
            return close_later()
        if request.max_bytes in (3, 4):
            fd = os.open(self.region_file, os.O_RDONLY)
            response = _fetch_response(FileRegion(FetchSlice(fd, 5, len(BIG), 0, 1)))  # type: ignore[arg-type]
            if request.max_bytes == 3:
                return response

            async def region_later() -> Any:
                await asyncio.sleep(0.02)
                return response
            return region_later()
        if request.max_bytes == 0:
            return _fetch_response(BIG)
        if request.max_bytes == 1:
            async def later() -> Any:
                await asyncio.sleep(0.05)
                return _fetch_response(BIG)
            return later()
        return _fetch_response(MEDIUM)

    def port(self) -> int:
        return self.server.port("PLAINTEXT")

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(TIMEOUT_S)


@pytest.fixture(params=["uvloop", "asyncio", "asyncio-no-sendfile"])
def srv(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[_Server]:
    factory = new_event_loop if request.param == "uvloop" else asyncio.new_event_loop
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    region = tmp_path / "segment.log"
    region.write_bytes(b"head!" + BIG + b"tail" + HUGE)  # BIG at position 5, then HUGE
    s = _Server(factory, str(region))
    s.server.sendfile = request.param != "asyncio-no-sendfile"
    yield s
    s.close()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        assert chunk, "connection closed"
        buf += chunk
    return bytes(buf)


def _fetch_frame(correlation_id: int, max_bytes: int) -> bytes:
    R = fetch.REQUEST
    req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=max_bytes,
                isolation_level=0, session_id=0, session_epoch=-1, topics=[],
                forgotten_topics_data=[], rack_id="")
    return encode_request(R, req, FETCH_VERSION, correlation_id, "test", 2)


def _metadata_frame(correlation_id: int) -> bytes:
    req = metadata.REQUEST.cls(topics=[], allow_auto_topic_creation=False,
                               include_topic_authorized_operations=False)
    return encode_request(metadata.REQUEST, req, 12, correlation_id, "test", 2)


@pytest.mark.parametrize("slow_reader", [False, True])
def test_large_responses_arrive_whole_and_in_order(srv: _Server, slow_reader: bool) -> None:
    sock = socket.socket()
    if slow_reader:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sock.settimeout(TIMEOUT_S)
    sock.connect(("127.0.0.1", srv.port()))
    try:
        # Pipelined: big (task), small, region (at once), big (at once), medium, region
        # (task), small, region (at once), big (task).
        plan = [(1, "fetch", 1), (2, "md", 0), (3, "fetch", 3), (4, "fetch", 0),
                (5, "fetch", 2), (6, "fetch", 4), (7, "md", 0), (8, "fetch", 3),
                (9, "fetch", 1)]
        sock.sendall(b"".join(_fetch_frame(cid, mb) if kind == "fetch" else
                              _metadata_frame(cid) for cid, kind, mb in plan))
        if slow_reader:
            time.sleep(0.3)  # the server fills the socket and must wait for it
        for cid, kind, mb in plan:
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            frame = _recv_exact(sock, size)
            got_cid, pos = parse_response_header(frame, 1)
            assert got_cid == cid
            if kind == "md":
                assert metadata.RESPONSE.decode(memoryview(frame)[pos:], 12)[0].brokers
                continue
            resp = fetch.RESPONSE.decode(memoryview(frame)[pos:], FETCH_VERSION)[0]
            records = bytes(resp.responses[0].partitions[0].records)
            assert records == (MEDIUM if mb == 2 else BIG)
    finally:
        sock.close()


def test_flatten_keeps_order_and_joins_small_neighbours() -> None:
    big = b"b" * 5000
    chunks = ResponseChunks([b"h1", b"x" * 10, big, b"t"], 2 + 10 + 5000 + 1)
    bufs = flatten([b"r0", chunks, b"r2"])
    assert b"".join(bufs) == b"r0" + b"h1" + b"x" * 10 + big + b"t" + b"r2"
    assert bufs == [b"r0h1" + b"x" * 10, big, b"tr2"]
    assert len(chunks) == 5013


def test_file_regions_are_counted_until_closed(tmp_path: Any) -> None:
    path = tmp_path / "segment.log"
    path.write_bytes(b"x" * 100)
    before = FileRegion.open_count
    regions = [FileRegion(FetchSlice(os.open(path, os.O_RDONLY), 0, 100, 0, 1))
               for _ in range(3)]
    assert FileRegion.open_count == before + 3
    assert regions[0].read_bytes() == b"x" * 100  # read, then closed
    regions[1].close()
    regions[1].close()  # twice: counted once
    assert FileRegion.open_count == before + 1
    dropped = regions.pop()  # dropped unsent: closed (fd and count) when collected
    sl = dropped.slice
    del dropped
    assert FileRegion.open_count == before
    assert sl.fd == -1


@pytest.mark.parametrize("close_from_task", [False, True])
def test_close_after_a_region_waits_for_it(srv: _Server, close_from_task: bool) -> None:
    """A handler's CLOSE behind a response being sent from a file (from a task: it comes while
    the file is being sent): that response arrives whole, then the connection ends (nothing
    after the CLOSE is answered)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sock.settimeout(TIMEOUT_S)
    sock.connect(("127.0.0.1", srv.port()))
    try:
        first, close = (7, 6) if close_from_task else (3, 5)
        sock.sendall(_fetch_frame(1, first) + _fetch_frame(2, close) + _metadata_frame(3))
        time.sleep(0.3)  # the region is still being sent when the CLOSE comes
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        frame = _recv_exact(sock, size)
        cid, pos = parse_response_header(frame, 1)
        assert cid == 1
        resp = fetch.RESPONSE.decode(memoryview(frame)[pos:], FETCH_VERSION)[0]
        assert bytes(resp.responses[0].partitions[0].records) == (HUGE if close_from_task
                                                                   else BIG)
        assert sock.recv(1) == b""  # closed, the Metadata request unanswered
    finally:
        sock.close()
