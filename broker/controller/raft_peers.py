"""The metadata quorum's outbound side: one pipelined ``KafkaConnection`` per voter and the
exchange of one Raft request over it.

``RaftPeer`` connects lazily, with exponential reconnect backoff; while it connects, messages
wait in a bounded queue (more are dropped, as a lossy network would). ``exchange`` translates a
``kraft.messages`` request to the Kafka wire, sends it and translates the answer back into the
message the node steps; connection errors and timeouts lose the message: the node retries on
its own timers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broker.client import (
    KafkaConnection,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
)
from broker.controller import raft_wire as wire
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import KafkaError
from kraft.codec import CodecError
from kraft.messages import (
    BeginQuorumEpoch,
    EndQuorumEpoch,
    FetchError,
    FetchRequest,
    FetchSnapshotRequest,
    Message,
    VoteRequest,
)

if TYPE_CHECKING:
    from broker.controller.raft_driver import RaftManager

__all__ = ["RaftPeer", "exchange"]

# The driver's logger: its messages keep the name they have always had.
logger = logging.getLogger("broker.controller.raft_driver")

RETRY_BACKOFF_MS = 50
RECONNECT_BACKOFF_MS = 50
RECONNECT_BACKOFF_MAX_MS = 1000
MAX_QUEUED_PER_PEER = 256  # messages waiting for a connection; more are dropped
MAX_FETCH_BYTES = 8 << 20


class RaftPeer:
    """One outbound, pipelined connection to a voter."""

    def __init__(self, mgr: RaftManager, node_id: int, host: str, port: int) -> None:
        self.mgr = mgr
        self.node_id = node_id
        self.host = host
        self.port = port
        self.conn: KafkaConnection | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.queue: list[Message] = []
        self.backoff_ms = RECONNECT_BACKOFF_MS
        self.retry_at = 0.0

    def send(self, msg: Message) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            self.mgr._send_on(self, conn, msg)
            return
        self.conn = None
        loop = self.mgr._loop
        if loop.time() < self.retry_at or len(self.queue) >= MAX_QUEUED_PER_PEER:
            return  # dropped: the node retries
        self.queue.append(msg)
        if self.connecting is None:
            self.connecting = loop.create_task(self._connect())

    def ensure_connected(self) -> None:
        """Keep a connection open (with backoff), so the first message after a quiet spell,
        e.g. the EndQuorumEpoch of a resigning leader, does not wait for a connect."""
        if (self.connecting is None and (self.conn is None or self.conn.closed)
                and self.mgr._loop.time() >= self.retry_at):
            self.conn = None
            self.connecting = self.mgr._loop.create_task(self._connect())

    async def _connect(self) -> None:
        mgr = self.mgr
        try:
            conn = await KafkaConnection.connect(
                self.host, self.port, client_id=f"raft-{mgr.node_id}", node_id=self.node_id,
                timeout_s=mgr.request_timeout_ms / 1000, security=mgr.security)
        except (KafkaConnectionError, KafkaError, OSError) as e:
            logger.debug("node %d: cannot connect to voter %d: %s", mgr.node_id, self.node_id, e)
            self.retry_at = mgr._loop.time() + self.backoff_ms * mgr._random.uniform(0.8, 1.2) / 1000
            self.backoff_ms = min(self.backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS)
            self.queue.clear()
            return
        finally:
            self.connecting = None
        if mgr._closed:
            await conn.close()
            return
        self.conn = conn
        self.backoff_ms = RECONNECT_BACKOFF_MS
        queued, self.queue = self.queue, []
        for msg in queued:
            mgr._send_on(self, conn, msg)

    def abort(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        if self.conn is not None:
            self.conn._abort(None)
            self.conn = None

    async def close(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()


async def exchange(conn: KafkaConnection, msg: Message, *, node_id: int, dest: int,
                   cluster_id: str, request_timeout_ms: int,
                   wire_max_wait_ms: int) -> tuple[Message | None, int]:
    """Send ``msg`` from ``node_id`` to voter ``dest`` over ``conn``; return the reply to step
    into the node (None: nothing to step) and how many milliseconds to wait before stepping it
    (an errored Fetch answer waits ``RETRY_BACKOFF_MS``)."""
    rt = request_timeout_ms / 1000
    cid = cluster_id
    reply: Message | None = None
    delay_ms = 0
    try:
        if isinstance(msg, FetchRequest):
            v = conn.version_for(ApiKey.FETCH)
            if v not in wire.FETCH_VERSIONS:
                return None, 0
            req = wire.fetch_request_to_wire(msg, cid, v, max_wait_ms=wire_max_wait_ms,
                                             max_bytes=MAX_FETCH_BYTES)
            resp = await conn.send(ApiKey.FETCH, req, v,
                                   timeout_s=rt + wire_max_wait_ms / 1000)
            reply = wire.fetch_response_from_wire(resp, dest, msg)
            if reply is None or reply.error is not FetchError.NONE:
                delay_ms = RETRY_BACKOFF_MS
        elif isinstance(msg, VoteRequest):
            v = conn.version_for(ApiKey.VOTE)
            req = wire.vote_request_to_wire(msg, cid, dest, v)
            resp = await conn.send(ApiKey.VOTE, req, v, timeout_s=rt)
            reply = wire.vote_response_from_wire(resp, dest, msg)
        elif isinstance(msg, BeginQuorumEpoch):
            req = wire.begin_quorum_epoch_request_to_wire(msg, cid, dest)
            resp = await conn.send(ApiKey.BEGIN_QUORUM_EPOCH, req, timeout_s=rt)
            err = wire.check_begin_quorum_epoch_response(resp)
            if err:
                logger.debug("node %d: BeginQuorumEpoch to %d: error %d", node_id, dest, err)
        elif isinstance(msg, EndQuorumEpoch):
            req = wire.end_quorum_epoch_request_to_wire(msg, cid)
            resp = await conn.send(ApiKey.END_QUORUM_EPOCH, req, timeout_s=rt)
            err = wire.check_end_quorum_epoch_response(resp)
            if err:
                logger.debug("node %d: EndQuorumEpoch to %d: error %d", node_id, dest, err)
        elif isinstance(msg, FetchSnapshotRequest):
            req = wire.fetch_snapshot_request_to_wire(msg, cid, max_bytes=MAX_FETCH_BYTES)
            resp = await conn.send(ApiKey.FETCH_SNAPSHOT, req, timeout_s=rt)
            reply = wire.fetch_snapshot_response_from_wire(resp, dest, msg)
        else:  # pragma: no cover
            raise TypeError(f"cannot send {msg!r}")
    except (KafkaConnectionError, KafkaTimeoutError, KafkaProtocolError, KafkaError,
            CodecError) as e:
        # Lost, as on a lossy network; the node retries on its own timers.
        logger.debug("node %d: %s to %d failed: %s", node_id, type(msg).__name__, dest, e)
        return None, 0
    return reply, delay_ms
