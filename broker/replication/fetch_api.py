"""Fetch (key 1) on the broker listener: consumers and followers read partitions.

Versions 4-17. From v13 topics are named by id (KIP-516): each request's ids are looked up in
the metadata image, an unknown id is answered UNKNOWN_TOPIC_ID for each of its partitions, and
fetch sessions opened at v13+ key their partitions by id (``fetch_session.py``). v15 carries
the replica id in ``replica_state``; from v16 a partition answered NOT_LEADER_OR_FOLLOWER or
FENCED_LEADER_EPOCH names its current leader, whose endpoint is added to the response
(``leader_hints.py``, KIP-951). v17's replica directory id is read and ignored (one log
directory per partition, no JBOD moves).

A fetch that cannot be answered at once (less than ``min_bytes`` and no error) waits in the
fetch purgatory up to ``max_wait_ms``; the coroutine it returns is run by the server.
"""

from __future__ import annotations

from typing import Any

from broker.network.context import RequestContext
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import fetch
from broker.replication.fetch_session import CachedPartition, FetchContext, FetchSessionCache
from broker.replication.leader_hints import FETCH_HINT_ERRORS, current_leader, node_endpoints
from broker.replication.replica_manager import PartitionRead, ReplicaManager
from kraft.codec import ZERO_UUID

__all__ = ["FETCH_VERSIONS", "FetchApi"]

FETCH_VERSIONS = (4, 17)
TOPIC_ID_VERSION = 13  # topics by id
LEADER_HINT_VERSION = 16  # KIP-951 current leader and node endpoints
READ_COMMITTED = 1


class FetchApi:
    def __init__(self, replica_manager: ReplicaManager) -> None:
        self.rm = replica_manager
        self.sessions = FetchSessionCache(
            replica_manager.config.get("max.incremental.fetch.session.cache.slots"))

    def handle_fetch(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        R = fetch.RESPONSE
        v = header.api_version
        replica_id = request.replica_id
        if v >= 15 and request.replica_state is not None:
            replica_id = request.replica_state.replica_id
        by_id = v >= TOPIC_ID_VERSION
        if by_id:
            names = self.rm.image.topics.by_id
            for t in request.topics:
                tt = names.get(t.topic_id)
                t.topic = tt.name if tt is not None else ""
        if v >= 7:
            fctx = self.sessions.new_context(
                request.session_id, request.session_epoch, request.topics,
                request.forgotten_topics_data or [], follower=replica_id >= 0,
                now_ms=self.rm.clock.monotonic_ms(), uses_topic_ids=by_id)
            if fctx.error:
                return R.cls(throttle_time_ms=0, error_code=int(fctx.error), session_id=0,
                             responses=[])
        else:
            fctx = FetchContext(partitions=[CachedPartition.requested(t.topic, p)
                                            for t in request.topics for p in t.partitions])
        wanted = fctx.wanted()
        skip_idle = fctx.incremental and replica_id >= 0
        first = self._read_all(request, wanted, replica_id, skip_idle)
        listener = ctx.listener_name
        max_wait_ms = request.max_wait_ms
        min_bytes = max(request.min_bytes, 1)
        got = sum(len(r.records) for _, r in first)
        errors = any(r.error or r.diverging_epoch is not None for _, r in first)
        if max_wait_ms <= 0 or got >= min_bytes or errors or not wanted:
            return self._fetch_response(request, fctx, first, v, listener)
        return self._delayed_fetch(request, fctx, wanted, v, replica_id, min_bytes,
                                   max_wait_ms, listener, skip_idle)

    async def _delayed_fetch(self, request: Any, fctx: FetchContext,
                             wanted: list[CachedPartition], v: int, replica_id: int,
                             min_bytes: int, max_wait_ms: int, listener: str,
                             skip_idle: bool) -> Any:
        rm = self.rm
        committed = replica_id < 0 and getattr(request, "isolation_level", 0) == READ_COMMITTED

        def ready() -> bool:
            total = 0
            for c in wanted:
                n = rm.available_bytes(c.topic, c.partition, c.fetch_offset,
                                       c.current_leader_epoch, replica_id,
                                       min(c.max_bytes, min_bytes), committed)
                if n < 0:
                    return True
                total += n
                if total >= min_bytes:
                    return True
            return False

        by_tp = {(c.topic, c.partition): c for c in wanted}

        def ready_for(tp: tuple[str, int]) -> bool:
            # min_bytes 1 (followers, most consumers): the partition that moved decides.
            c = by_tp.get(tp)
            if c is None:
                return False
            n = rm.available_bytes(c.topic, c.partition, c.fetch_offset, c.current_leader_epoch,
                                   replica_id, 1, committed)
            return n != 0

        await rm.fetch_purgatory.wait(by_tp, ready, max_wait_ms / 1000,
                                      ready_for=ready_for if min_bytes <= 1 else None)
        return self._fetch_response(
            request, fctx, self._read_all(request, wanted, replica_id, skip_idle), v, listener)

    def _read_all(self, request: Any, wanted: list[CachedPartition], replica_id: int,
                  skip_idle: bool = False) -> list[tuple[CachedPartition, PartitionRead]]:
        """Read every partition of ``wanted``; with ``skip_idle`` (a follower's incremental
        session) the idle partitions the session has nothing new for are only recorded as
        fetched (``ReplicaManager.idle_follower_fetch``) and left out of the answer."""
        rm = self.rm
        names = rm.image.topics.by_id
        remaining = request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF
        read_any = False
        committed = replica_id < 0 and getattr(request, "isolation_level", 0) == READ_COMMITTED
        now_ms = rm.clock.monotonic_ms() if skip_idle else 0
        idle = rm.idle_follower_fetch
        out = []
        for c in wanted:
            if c.topic_id is not None:
                # A session's partitions are named by id: the name is the image's now (a
                # deleted topic's id names nothing).
                tt = names.get(c.topic_id)
                c.topic = tt.name if tt is not None else ""
                if not c.topic:
                    out.append((c, PartitionRead(ErrorCode.UNKNOWN_TOPIC_ID)))
                    continue
            if skip_idle and idle(c, replica_id, now_ms):
                continue
            r = rm.read(c.topic, c.partition, fetch_offset=c.fetch_offset,
                        current_leader_epoch=c.current_leader_epoch,
                        last_fetched_epoch=c.last_fetched_epoch,
                        max_bytes=max(min(c.max_bytes, remaining), 0), min_one=not read_any,
                        replica_id=replica_id, log_start_offset=c.log_start_offset,
                        read_committed=committed)
            remaining -= len(r.records)
            read_any = read_any or bool(r.records)
            out.append((c, r))
        return out

    def _fetch_response(self, request: Any, fctx: FetchContext,
                        reads: list[tuple[CachedPartition, PartitionRead]], v: int,
                        listener: str) -> Any:
        R = fetch.RESPONSE
        read_committed = getattr(request, "isolation_level", 0) == READ_COMMITTED
        incremental = fctx.incremental
        remember = fctx.session is not None
        hints = v >= LEADER_HINT_VERSION
        image = self.rm.image
        leaders: list[int] = []
        topics: list[Any] = []
        out: list[Any] = []
        current: Any = None
        moved: list[Any] = []
        for c, r in reads:
            if remember:
                respond = c.must_respond(int(r.error), r.high_watermark, r.last_stable_offset,
                                         r.log_start_offset, bool(r.records),
                                         r.diverging_epoch is not None)
                if r.records:
                    moved.append(c.key)
                if incremental and not respond:
                    continue
            pd = R.PartitionData(partition_index=c.partition, error_code=int(r.error),
                                 high_watermark=r.high_watermark, records=r.records)
            pd.last_stable_offset = r.last_stable_offset
            if read_committed:
                pd.aborted_transactions = [
                    R.AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset)
                    for t in r.aborted_txns or ()]
            else:
                pd.aborted_transactions = None
            if v >= 5:
                pd.log_start_offset = r.log_start_offset
            if r.diverging_epoch is not None and v >= 12:
                pd.diverging_epoch = R.EpochEndOffset(epoch=r.diverging_epoch[0],
                                                      end_offset=r.diverging_epoch[1])
            if hints and r.error in FETCH_HINT_ERRORS:
                leader, epoch = current_leader(image, c.topic, c.partition)
                pd.current_leader = R.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
                if leader >= 0:
                    leaders.append(leader)
            if c.key[0] != current:
                current, out = c.key[0], []
                topics.append(R.FetchableTopicResponse(
                    topic=c.topic, topic_id=c.topic_id or ZERO_UUID, partitions=out))
            out.append(pd)
        if fctx.session is not None and moved:
            fctx.session.rotate(moved)
        resp = R.cls(throttle_time_ms=0, error_code=0, session_id=fctx.session_id,
                     responses=topics)
        if leaders:
            resp.node_endpoints = node_endpoints(image, leaders, listener, R.NodeEndpoint)
        return resp
