"""The network server's sans-IO connection (broker/network/connection.py), without sockets or a
loop: framing across feeds, size limits, decoding, the in-order response queue and the
backpressure decisions."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from broker.network.connection import (
    BLOCK,
    OUT_BATCH_BYTES,
    PAUSE,
    PENDING,
    RESUME,
    WRITE,
    ConnectionInfo,
    FrameSizeError,
    ListenerRoutes,
    ProtocolError,
    ServerConnection,
)
from broker.network.context import ListenerSpec, ServerStats
from broker.protocol.api_keys import ApiKey
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import api_versions, metadata

MD_REQ = metadata.REQUEST
AV_REQ, AV_RESP = api_versions.REQUEST, api_versions.RESPONSE
ADVERTISED = {ApiKey.API_VERSIONS: (0, 3), ApiKey.METADATA: (0, 8)}


def handler(ctx: Any, header: Any, request: Any) -> Any:
    return None


def new_conn(max_request_bytes: int = 1 << 20, max_in_flight: int = 3,
             ) -> tuple[ServerConnection, ServerStats]:
    stats = ServerStats()
    routes = ListenerRoutes(ListenerSpec("PLAINTEXT"), ADVERTISED, handler)
    info = ConnectionInfo("PLAINTEXT", "broker", ("10.0.0.2", 5555), ("10.0.0.1", 9092), "c-1")
    conn = ServerConnection(routes, stats, max_request_bytes=max_request_bytes,
                            max_in_flight=max_in_flight, info=info)
    return conn, stats


def md_frame(correlation_id: int, version: int = 1) -> bytes:
    return encode_request(MD_REQ, MD_REQ.cls(topics=None), version, correlation_id, "cli",
                          2 if version >= 9 else 1)


def feed(conn: ServerConnection, data: bytes) -> list[bytes]:
    """Bytes in as the server does it; the complete frames out (copied)."""
    ready = conn.receive(data)
    if ready is None:
        return []
    conn.processing = True
    try:
        return [bytes(f) for f in conn.frames(ready)]
    finally:
        conn.processing = False


# -- framing ------------------------------------------------------------------------------------


def test_a_frame_split_across_feeds_comes_out_whole_once() -> None:
    conn, _ = new_conn()
    a, b = md_frame(1), md_frame(2)
    stream = a + b
    out: list[bytes] = []
    # One byte at a time, including a size prefix split over feeds.
    for i in range(len(stream)):
        out += feed(conn, stream[i:i + 1])
    assert out == [a[4:], b[4:]]
    assert not conn.stash and conn.need == 4


def test_several_frames_in_one_feed_and_a_tail_kept_for_the_next() -> None:
    conn, _ = new_conn()
    a, b, c = md_frame(1), md_frame(2), md_frame(3)
    assert feed(conn, a + b + c[:7]) == [a[4:], b[4:]]
    assert bytes(conn.stash) == c[:7]
    assert conn.need == len(c)  # the size prefix is in: wait for the whole frame
    assert feed(conn, c[7:-1]) == []
    assert feed(conn, c[-1:]) == [c[4:]]


@pytest.mark.parametrize("size", [0, -1, 101])
def test_a_size_prefix_outside_the_limit_is_an_error(size: int) -> None:
    conn, _ = new_conn(max_request_bytes=100)
    with pytest.raises(FrameSizeError, match=f"request size {size} is outside 1..100 bytes"):
        feed(conn, struct.pack(">i", size) + b"x" * 10)


def test_an_oversize_frame_fails_as_soon_as_its_prefix_is_in() -> None:
    conn, _ = new_conn(max_request_bytes=100)
    ok = md_frame(1)
    assert len(ok) - 4 <= 100
    # A good frame, then only the prefix of an oversize one: the good one comes out first,
    # the error follows without waiting for the 1000 bytes.
    frames = conn.frames(conn.receive(ok + struct.pack(">i", 1000)) or b"")
    assert bytes(next(frames)) == ok[4:]
    with pytest.raises(FrameSizeError, match="request size 1000"):
        next(frames)


def test_a_size_prefix_at_the_limit_is_accepted() -> None:
    conn, _ = new_conn(max_request_bytes=12)
    body = b"y" * 12
    assert feed(conn, struct.pack(">i", 12) + body) == [body]


# -- decoding -----------------------------------------------------------------------------------


def test_decode_returns_the_request_and_its_route() -> None:
    conn, stats = new_conn()
    frame = md_frame(42, version=4)
    header, request, route = conn.decode(memoryview(frame)[4:])
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == \
        (ApiKey.METADATA, 4, 42, "cli")
    assert request.topics is None
    assert route[4] is handler
    assert stats.requests == 1


def test_decode_refuses_an_unadvertised_api_and_a_version_out_of_range() -> None:
    conn, _ = new_conn()
    out = conn.decode(memoryview(md_frame(5, version=10))[4:])
    assert isinstance(out, ProtocolError)
    assert "Metadata v10 is outside the supported versions 0-8 (correlation id 5)" in out
    vote = struct.pack(">hhih", int(ApiKey.VOTE), 0, 6, -1) + b"\x00" * 8
    out = conn.decode(memoryview(vote))
    assert isinstance(out, ProtocolError) and "not served on broker listener" in out


def test_decode_answers_api_versions_itself() -> None:
    conn, stats = new_conn()
    req = AV_REQ.cls(client_software_name="pytest", client_software_version="1.0")
    frame = encode_request(AV_REQ, req, 3, 9, "cli", 2)
    out = conn.decode(memoryview(frame)[4:])
    assert isinstance(out, bytes)
    (size,) = struct.unpack_from(">i", out)
    assert size == len(out) - 4
    cid, pos = parse_response_header(out[4:], 0)
    body, _ = AV_RESP.decode(out[4:], 3, pos)
    assert cid == 9 and body.error_code == 0
    assert {k.api_key for k in body.api_keys} == {int(ApiKey.API_VERSIONS), int(ApiKey.METADATA)}
    assert conn.info is not None and conn.info.client_software_name == "pytest"
    assert stats.api_versions_requests == 1


# -- ordering -----------------------------------------------------------------------------------


def test_responses_completed_out_of_order_leave_in_request_order() -> None:
    conn, _ = new_conn(max_in_flight=10)
    s1, s2, s3 = conn.push_pending(), conn.push_pending(), conn.push_pending()
    assert s1[0] is PENDING
    # A request answered at once queues behind the running ones.
    assert conn.queue_response(b"r4") == 0
    assert conn.out == []
    s3[0] = b"r3"
    s2[0] = None  # no response (acks=0)
    conn.release_head()
    assert conn.out == []  # r1 is still running: nothing may overtake it
    s1[0] = b"r1"
    conn.release_head()
    assert conn.out == [b"r1", b"r3", b"r4"]
    assert not conn.pending
    assert conn.take_out() == b"r1r3r4"
    assert conn.out == [] and conn.out_bytes == 0


def test_an_immediate_answer_goes_straight_out_and_a_full_batch_asks_for_a_write() -> None:
    conn, _ = new_conn()
    assert conn.queue_response(b"a") == 0
    assert conn.queue_response(None) == 0
    assert conn.out == [b"a"]
    assert conn.queue_response(b"b" * OUT_BATCH_BYTES) == WRITE
    assert conn.take_out() == b"a" + b"b" * OUT_BATCH_BYTES


def test_close_drops_unanswered_requests_and_hands_back_what_was_ready() -> None:
    conn, _ = new_conn()
    conn.queue_response(b"done")
    conn.push_pending()
    assert conn.close() == b"done"
    assert conn.closed and not conn.pending
    conn2, _ = new_conn()
    assert conn2.close() is None


# -- backpressure -------------------------------------------------------------------------------


def test_reading_pauses_at_the_in_flight_bound_and_resumes_below_it() -> None:
    conn, stats = new_conn(max_in_flight=2)
    conn.push_pending()
    assert conn.note_in_flight() is False
    conn.push_pending()
    assert conn.note_in_flight() is True  # at the bound
    assert conn.update_blocked() == PAUSE
    assert conn.blocked and conn.reading_paused and stats.read_pauses == 1
    assert conn.update_blocked() == 0  # already paused
    assert stats.max_in_flight_seen == 2
    conn.pending[0][0] = b"x"
    conn.release_head()
    assert conn.update_blocked() == RESUME
    assert not conn.blocked and not conn.reading_paused


def test_reading_at_the_bound_resumes_once_half_are_answered() -> None:
    conn, _ = new_conn(max_in_flight=4)
    for _ in range(4):
        conn.push_pending()
    assert conn.update_blocked() == PAUSE
    conn.pending[0][0] = b"a"
    conn.release_head()
    assert conn.update_blocked() == 0 and conn.blocked  # 3 of 4: still paused
    conn.pending[0][0] = b"b"
    conn.release_head()
    assert conn.update_blocked() == RESUME and not conn.blocked  # 2 of 4
    conn.push_pending()
    assert conn.update_blocked() == 0 and not conn.blocked  # 3 of 4 again: below the bound


def test_an_immediate_answer_behind_running_requests_counts_toward_the_bound() -> None:
    conn, _ = new_conn(max_in_flight=2)
    conn.push_pending()
    assert conn.queue_response(b"quick") == BLOCK
    assert conn.update_blocked() == PAUSE


def test_write_backpressure_pauses_reading_until_the_buffer_drains() -> None:
    conn, _ = new_conn()
    conn.write_paused = True
    assert conn.update_blocked() == PAUSE
    conn.write_paused = False
    assert conn.update_blocked() == RESUME


def test_frames_stop_while_blocked_and_the_rest_waits_for_the_resume() -> None:
    conn, _ = new_conn(max_in_flight=1)
    a, b = md_frame(1), md_frame(2)
    ready = conn.receive(a + b)
    assert ready is not None
    conn.processing = True
    got = []
    for frame in conn.frames(ready):
        got.append(bytes(frame))
        conn.push_pending()  # its handler runs on: the bound is reached
        if conn.note_in_flight():
            assert conn.update_blocked() == PAUSE
    conn.processing = False
    assert got == [a[4:]]
    # The whole frame behind the block is held as a view of the read, not copied.
    assert conn.held is not None and conn.held.obj is ready and not conn.stash
    assert bytes(conn.held) == b
    # More bytes while blocked are kept, not parsed.
    assert conn.receive(md_frame(3)) is None
    conn.pending[0][0] = b"r1"
    conn.release_head()
    assert conn.update_blocked() == RESUME
    rest = conn.ready_stash()
    assert rest == b + md_frame(3)
    assert [bytes(f) for f in conn.frames(rest)] == [b[4:], md_frame(3)[4:]]


def test_held_frames_resume_one_at_a_time_without_copies() -> None:
    conn, _ = new_conn(max_in_flight=1)
    frames = [md_frame(i) for i in range(1, 5)]
    data = conn.receive(b"".join(frames))
    got = []
    while data is not None:
        conn.processing = True
        for frame in conn.frames(data):
            got.append(bytes(frame))
            conn.push_pending()
            if conn.note_in_flight():
                assert conn.update_blocked() == PAUSE
        conn.processing = False
        if conn.held is not None:
            source = data.obj if isinstance(data, memoryview) else data
            assert conn.held.obj is source
        conn.pending[0][0] = b"r"
        conn.release_head()
        conn.update_blocked()
        data = conn.ready_stash()
    assert got == [f[4:] for f in frames]
    assert conn.held is None and not conn.stash and conn.need == 4


def test_no_stash_hand_over_while_frames_are_being_parsed() -> None:
    conn, _ = new_conn()
    conn.stash = bytearray(md_frame(1))
    conn.need = len(conn.stash)
    conn.processing = True
    assert conn.ready_stash() is None
    conn.processing = False
    assert conn.ready_stash() == md_frame(1)
