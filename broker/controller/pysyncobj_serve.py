"""The pysyncobj engine's metadata log served read-only to brokers (KRaft observers).

A broker runs its usual KRaft observer (``raft_driver.RaftManager``) against the controllers;
each controller answers its Fetch, FetchSnapshot and DescribeQuorum from the log the engine
derived from pysyncobj (``pysyncobj_engine``), with the rules KRaft's leader applies
(``kraft/raft_leader.py``): a controller that does not lead the current epoch says
NOT_LEADER_OR_FOLLOWER and who does; a stale epoch is FENCED_LEADER_EPOCH; a fetcher below
the log start is sent to the latest snapshot; a fetch position that does not match the log
gets the diverging epoch. Every derived entry is committed, so the high watermark is the log
end. The leader holds a fetch that would get nothing new for up to its ``max_wait_ms`` (long
poll), until the log or the leadership changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from broker.controller import raft_wire as wire
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from kraft.messages import (
    DivergingEpoch,
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    ReplicaDescription,
)

if TYPE_CHECKING:
    from broker.controller.pysyncobj_engine import PysyncobjEngine
    from broker.network.context import RequestContext

__all__ = ["LogServer"]

MAX_FETCH_ENTRIES = 2000
MAX_SNAPSHOT_CHUNK_BYTES = 1 << 20


class LogServer:
    """Fetch / FetchSnapshot / DescribeQuorum of ``engine``'s derived log."""

    def __init__(self, engine: PysyncobjEngine) -> None:
        self.engine = engine
        self._changed: asyncio.Future[None] | None = None
        self._hw_sent: dict[int, int] = {}
        # Observers (brokers) seen fetching: id -> (fetch offset, last fetch, last caught up).
        self._observers: dict[int, tuple[int, int, int]] = {}
        self.handlers: dict[int, Any] = {
            ApiKey.FETCH: self.handle_fetch,
            ApiKey.FETCH_SNAPSHOT: self.handle_fetch_snapshot,
            ApiKey.DESCRIBE_QUORUM: self.handle_describe_quorum,
        }

    def log_changed(self) -> None:
        """The log or the leadership changed: held fetches look again."""
        fut, self._changed = self._changed, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def close(self) -> None:
        self.log_changed()

    def observers(self) -> tuple[ReplicaDescription, ...]:
        return tuple(ReplicaDescription(i, off, fetched, caught)
                     for i, (off, fetched, caught) in sorted(self._observers.items())
                     if i not in self.engine.voters)

    def _unavailable(self) -> bool:
        e = self.engine
        return e._closed or e._log is None

    # ------------------------------------------------------------------ Fetch

    def handle_fetch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        e = self.engine
        version = header.api_version
        msg, err = wire.fetch_request_from_wire(request, version, e.cluster_id)
        if msg is None:
            return wire.fetch_error_response(err, version)
        if self._unavailable():
            return wire.fetch_error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER, version)
        wait_ms = max(0, min(request.max_wait_ms, e.fetch_max_wait_ms))
        resp = self.answer(msg, final=wait_ms == 0)
        if resp is not None:
            return self._to_wire(resp, msg.sender, version)
        return self._long_poll(msg, version, wait_ms)

    async def _long_poll(self, msg: FetchRequest, version: int, wait_ms: int) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while True:
            if self._changed is None or self._changed.done():
                self._changed = loop.create_future()
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(changed), remaining)
            final = self._unavailable() or loop.time() >= deadline
            if self._unavailable():
                return wire.fetch_error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER, version)
            resp = self.answer(msg, final=final)
            if resp is not None:
                return self._to_wire(resp, msg.sender, version)

    def _to_wire(self, resp: FetchResponse, dest: int, version: int) -> Any:
        if resp.error is FetchError.NONE:
            self._hw_sent[dest] = resp.high_watermark
        return wire.fetch_response_to_wire(resp, version, voters=self.engine.voters)

    def answer(self, req: FetchRequest, *, final: bool = True) -> FetchResponse | None:
        """The answer to ``req`` now, or None if it would be empty and not ``final``."""
        e = self.engine
        le = e.leader_and_epoch
        me = e.node_id

        def reply(epoch: int, leader: int | None, **fields: Any) -> FetchResponse:
            return FetchResponse(me, epoch, leader, req.fetch_offset, req.last_fetched_epoch,
                                 **fields)

        if le.leader_id != me or req.epoch > le.epoch:
            return reply(le.epoch, le.leader_id, error=FetchError.NOT_LEADER)
        assert e._log is not None
        mem = e._log.memory
        hw = mem.end_offset
        if req.epoch < le.epoch:
            return reply(le.epoch, me, high_watermark=hw, error=FetchError.FENCED_EPOCH)
        now = e.clock.wall_ms()
        sid = mem.snapshot_id
        if sid is not None and (req.fetch_offset < mem.start_offset
                                or (req.fetch_offset == mem.start_offset
                                    and req.last_fetched_epoch != sid.epoch)
                                or req.last_fetched_epoch < sid.epoch):
            latest = e._snapshots.latest()
            offer = sid if latest is None or latest < sid else latest
            return reply(le.epoch, me, high_watermark=hw, snapshot_id=offer)
        epoch, end = mem.end_offset_for_epoch(req.last_fetched_epoch)
        valid = (req.fetch_offset == 0 and req.last_fetched_epoch == 0) or (
            epoch == req.last_fetched_epoch and req.fetch_offset <= end)
        if not valid:
            return reply(le.epoch, me, high_watermark=hw,
                         diverging_epoch=DivergingEpoch(epoch, end))
        prev = self._observers.get(req.sender)
        caught = now if req.fetch_offset >= hw else (prev[2] if prev else -1)
        self._observers[req.sender] = (req.fetch_offset, now, caught)
        records = tuple(mem.entries_from(req.fetch_offset, MAX_FETCH_ENTRIES))
        if not records and not final and self._hw_sent.get(req.sender) == hw:
            return None
        return reply(le.epoch, me, records=records, high_watermark=hw)

    # ------------------------------------------------------------------ FetchSnapshot

    def handle_fetch_snapshot(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        e = self.engine
        msg, err = wire.fetch_snapshot_request_from_wire(request, e.cluster_id)
        if msg is None:
            return wire.fetch_snapshot_error_response(err)
        if self._unavailable():
            return wire.fetch_snapshot_error_response(ErrorCode.BROKER_NOT_AVAILABLE)
        return wire.fetch_snapshot_response_to_wire(self.answer_snapshot(msg))

    def answer_snapshot(self, req: FetchSnapshotRequest) -> FetchSnapshotResponse:
        e = self.engine
        le = e.leader_and_epoch
        me = e.node_id

        def reply(epoch: int, leader: int | None, **fields: Any) -> FetchSnapshotResponse:
            return FetchSnapshotResponse(me, epoch, leader, req.snapshot_id, req.position,
                                         **fields)

        if le.leader_id != me or req.epoch > le.epoch:
            return reply(le.epoch, le.leader_id, error=FetchError.NOT_LEADER)
        if req.epoch < le.epoch:
            return reply(le.epoch, me, error=FetchError.FENCED_EPOCH)
        size = e._snapshots.size(req.snapshot_id)
        if size is None:
            return reply(le.epoch, me, error=FetchError.SNAPSHOT_NOT_FOUND)
        if not 0 <= req.position <= size:
            return reply(le.epoch, me, size=size, error=FetchError.POSITION_OUT_OF_RANGE)
        data = e._snapshots.read(req.snapshot_id, req.position, MAX_SNAPSHOT_CHUNK_BYTES)
        return reply(le.epoch, me, size=size, data=bytes(data))

    # ------------------------------------------------------------------ DescribeQuorum

    def handle_describe_quorum(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        err = wire.describe_quorum_request_from_wire(request)
        if err:
            return wire.describe_quorum_response(None, err)
        if self._unavailable() or not self.engine.is_leader():
            return wire.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return wire.describe_quorum_response(self.engine.describe_quorum())
