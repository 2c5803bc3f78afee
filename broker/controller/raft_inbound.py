"""The metadata quorum's inbound side: the KRaft API handlers a controller listener routes to,
and the requests they leave waiting for the node's answer.

A Vote/Fetch/FetchSnapshot request is stepped into the node and waits in a per-(sender, kind)
queue; the node answers every request exactly once, in order, so a response message answers
the oldest one (``answer``). The leader holds (parks) a Fetch whose answer would be empty and
re-steps it when the log end, the high watermark or the leadership changes, or when its
``max_wait_ms`` runs out (long poll). A BeginQuorumEpoch/EndQuorumEpoch request is answered
(error code only) once a Ready polled after its step has been persisted (``ack_persisted``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.controller import raft_wire as wire
from broker.protocol.errors import ErrorCode
from kraft.messages import (
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotResponse,
    Message,
    VoteResponse,
)
from kraft.raft import NotLeader

if TYPE_CHECKING:
    from broker.controller.raft_driver import RaftManager
    from broker.network.context import RequestContext
    from kraft.raft import RaftNode

__all__ = ["InboundRequests"]

# The driver's logger: its messages keep the name they have always had.
logger = logging.getLogger("broker.controller.raft_driver")


@dataclass(slots=True)
class _Inbound:
    """An inbound request waiting for the node's answer."""

    future: asyncio.Future[Any]
    version: int
    message: Message
    deadline: float = 0.0  # loop time; Fetch long-poll only
    final: bool = False  # Fetch: answer even if empty (max_wait expired)


class InboundRequests:
    """The KRaft API handlers of ``mgr`` and the inbound requests waiting on its node."""

    def __init__(self, mgr: RaftManager) -> None:
        self.mgr = mgr
        self._pending: dict[tuple[int, type], deque[_Inbound]] = {}
        self.parked: list[_Inbound] = []
        self._hw_sent: dict[int, int] = {}
        self._acks: list[tuple[int, asyncio.Future[Any], int, Callable[..., Any]]] = []

    # ------------------------------------------------------------------ answers

    def answer(self, dest: int, msg: Message) -> None:
        q = self._pending.get((dest, type(msg)))
        mgr = self.mgr
        if not q:
            logger.debug("node %d: no pending request for %r", mgr.node_id, msg)
            return
        p = q.popleft()
        if not q:
            del self._pending[(dest, type(msg))]
        if p.future.done():
            return
        if isinstance(msg, FetchResponse):
            node = mgr._node
            assert node is not None
            empty = (not msg.records and msg.error is FetchError.NONE
                     and msg.diverging_epoch is None and msg.snapshot_id is None)
            if (empty and not p.final and node.is_leader()
                    and self._hw_sent.get(dest) == msg.high_watermark
                    and mgr._loop.time() < p.deadline):
                self.parked.append(p)  # long poll
                return
            self._hw_sent[dest] = msg.high_watermark
            p.future.set_result(wire.fetch_response_to_wire(msg, p.version, voters=mgr.voters_at))
        elif isinstance(msg, VoteResponse):
            p.future.set_result(wire.vote_response_to_wire(msg))
        else:
            assert isinstance(msg, FetchSnapshotResponse)
            p.future.set_result(wire.fetch_snapshot_response_to_wire(msg))

    def ack_persisted(self, persisted: int, node: RaftNode) -> None:
        """Acks for BeginQuorumEpoch/EndQuorumEpoch whose effect is now durable."""
        if self._acks:
            done = [a for a in self._acks if a[0] <= persisted]
            if done:
                self._acks = [a for a in self._acks if a[0] > persisted]
                for _, fut, _version, build in done:
                    if not fut.done():
                        fut.set_result(build(ErrorCode.NONE, node.leader_id, node.epoch))

    def _expect(self, sender: int, kind: type, p: _Inbound) -> None:
        self._pending.setdefault((sender, kind), deque()).append(p)

    # ------------------------------------------------------------------ long poll

    def _restep(self, p: _Inbound) -> None:
        if p.future.done():
            return
        msg = p.message
        assert isinstance(msg, FetchRequest)
        self._expect(msg.sender, FetchResponse, p)
        self.mgr._step(msg)

    def restep_parked(self) -> None:
        if not self.parked or self.mgr._closed:
            return
        parked, self.parked = self.parked, []
        for p in parked:
            self._restep(p)

    def expire_parked(self, now: float) -> None:
        """Answer the held fetches whose ``max_wait_ms`` has run out (loop time ``now``)."""
        expired = [p for p in self.parked if p.deadline <= now]
        if expired:
            self.parked = [p for p in self.parked if p.deadline > now]
            for p in expired:
                p.final = True
                self._restep(p)

    # ------------------------------------------------------------------ handlers

    def _unavailable(self) -> bool:
        return self.mgr._closed or self.mgr._node is None

    def handle_vote(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        mgr = self.mgr
        msg, err = wire.vote_request_from_wire(request, mgr.cluster_id)
        if msg is None:
            return wire.vote_error_response(err)
        if self._unavailable():
            return wire.vote_error_response(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = mgr._loop.create_future()
        self._expect(msg.sender, VoteResponse, _Inbound(fut, header.api_version, msg))
        mgr._step(msg)
        return fut

    def _handle_epoch_change(self, request: Any, parse: Callable[..., Any],
                             build: Callable[..., Any]) -> Any:
        mgr = self.mgr
        msg, err = parse(request, mgr.cluster_id)
        if msg is None:
            return build(err)
        if self._unavailable():
            return build(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = mgr._loop.create_future()
        # Answered once a Ready polled after this step is persisted (its effect is durable).
        self._acks.append((mgr._polls + 1, fut, 0, build))
        mgr._step(msg)
        return fut

    def handle_begin_quorum_epoch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        return self._handle_epoch_change(request, wire.begin_quorum_epoch_request_from_wire,
                                         wire.begin_quorum_epoch_response)

    def handle_end_quorum_epoch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        return self._handle_epoch_change(request, wire.end_quorum_epoch_request_from_wire,
                                         wire.end_quorum_epoch_response)

    def handle_fetch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        mgr = self.mgr
        version = header.api_version
        msg, err = wire.fetch_request_from_wire(request, version, mgr.cluster_id)
        if msg is None:
            return wire.fetch_error_response(err, version)
        if self._unavailable():
            return wire.fetch_error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER, version)
        fut = mgr._loop.create_future()
        wait_ms = max(0, min(request.max_wait_ms, mgr.fetch_max_wait_ms))
        p = _Inbound(fut, version, msg, deadline=mgr._loop.time() + wait_ms / 1000,
                     final=wait_ms == 0)
        self._expect(msg.sender, FetchResponse, p)
        mgr._step(msg)
        return fut

    def handle_fetch_snapshot(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        mgr = self.mgr
        msg, err = wire.fetch_snapshot_request_from_wire(request, mgr.cluster_id)
        if msg is None:
            return wire.fetch_snapshot_error_response(err)
        if self._unavailable():
            return wire.fetch_snapshot_error_response(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = mgr._loop.create_future()
        self._expect(msg.sender, FetchSnapshotResponse, _Inbound(fut, header.api_version, msg))
        try:
            mgr._step(msg)
        except TypeError:  # a RaftNode without snapshot support
            self._pending[(msg.sender, FetchSnapshotResponse)].pop()
            return wire.fetch_snapshot_error_response(
                ErrorCode.SNAPSHOT_NOT_FOUND, partition_level=True, snapshot_id=msg.snapshot_id)
        return fut

    def handle_describe_quorum(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        err = wire.describe_quorum_request_from_wire(request)
        if err:
            return wire.describe_quorum_response(None, err)
        if self._unavailable():
            return wire.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        try:
            desc = self.mgr.describe_quorum()
        except NotLeader:
            return wire.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        except NotImplementedError as e:
            return wire.describe_quorum_response(None, ErrorCode.UNKNOWN_SERVER_ERROR,
                                                 message=str(e))
        return wire.describe_quorum_response(desc, nodes=self.mgr.voter_nodes())

    # ------------------------------------------------------------------ going away

    def fail_all(self) -> None:
        """Answer every waiting inbound request with an error (we are going away)."""
        for (_sender, kind), q in list(self._pending.items()):
            for p in q:
                if p.future.done():
                    continue
                if kind is FetchResponse:
                    p.future.set_result(wire.fetch_error_response(
                        ErrorCode.NOT_LEADER_OR_FOLLOWER, p.version))
                elif kind is VoteResponse:
                    p.future.set_result(wire.vote_error_response(
                        ErrorCode.BROKER_NOT_AVAILABLE))
                else:
                    p.future.set_result(wire.fetch_snapshot_error_response(
                        ErrorCode.BROKER_NOT_AVAILABLE))
        self._pending.clear()
        for p in self.parked:
            if not p.future.done():
                p.future.set_result(wire.fetch_error_response(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER, p.version))
        self.parked.clear()
        for _, fut, _v, build in self._acks:
            if not fut.done():
                fut.set_result(build(ErrorCode.BROKER_NOT_AVAILABLE))
        self._acks.clear()
