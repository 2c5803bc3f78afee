"""The data-path APIs on the broker listener: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
DeleteRecords.

Handlers translate between the wire messages and ``ReplicaManager``. A handler that can answer
at once is a plain function returning the response (the server's cheap path); one that waits
(``acks=all`` until the high watermark passes the batch, a Fetch long poll) returns a
coroutine, which the server runs as a task while keeping responses in request order.
DeleteRecords waits the same way, until the low watermark reaches the requested offsets.

Versions (``ADVERTISED``): low minimums so every client we test enables its features
(docs/clients.md); Produce below v3 (magic 0/1 batches) is answered with UNSUPPORTED_VERSION per
partition, as Kafka 4 does; Fetch stops at v12 (v13+ addresses topics by id).
"""

from __future__ import annotations

import logging
from typing import Any

from broker.network.context import RequestContext
from broker.network.server import CLOSE
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    delete_records,
    fetch,
    list_offsets,
    offset_for_leader_epoch,
    produce,
)
from broker.replication.fetch_session import CachedPartition, FetchContext, FetchSessionCache
from broker.replication.replica_manager import ReplicaManager
from storage.errors import StorageError
from storage.log_read import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP

__all__ = ["ADVERTISED", "DataApis"]

logger = logging.getLogger(__name__)

ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (0, 11),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (0, 7),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (0, 4),
    ApiKey.DELETE_RECORDS: (0, 2),
}

MIN_PRODUCE_VERSION = 3  # magic-2 record batches
READ_COMMITTED = 1


class DataApis:
    def __init__(self, replica_manager: ReplicaManager) -> None:
        self.rm = replica_manager
        self.sessions = FetchSessionCache(
            replica_manager.config.get("max.incremental.fetch.session.cache.slots"))
        self.handlers = {
            ApiKey.PRODUCE: self.handle_produce,
            ApiKey.FETCH: self.handle_fetch,
            ApiKey.LIST_OFFSETS: self.handle_list_offsets,
            ApiKey.OFFSET_FOR_LEADER_EPOCH: self.handle_offset_for_leader_epoch,
            ApiKey.DELETE_RECORDS: self.handle_delete_records,
        }

    # -- Produce (0) --------------------------------------------------------------------------

    def handle_produce(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        rm = self.rm
        v = header.api_version
        acks = request.acks
        # (topic, [[partition, error, base_offset, log_append_time, log_start]])
        results: list[tuple[str, list[list[Any]]]] = []
        waiting: list[tuple[list[Any], Any, int, int]] = []  # (row, hp, epoch, last offset)
        for td in request.topic_data:
            rows: list[list[Any]] = []
            for pd in td.partition_data:
                if v < MIN_PRODUCE_VERSION:
                    rows.append([pd.index, ErrorCode.UNSUPPORTED_VERSION, -1, -1, -1])
                    continue
                if acks not in (0, 1, -1):
                    rows.append([pd.index, ErrorCode.INVALID_REQUIRED_ACKS, -1, -1, -1])
                    continue
                code, info, hp = rm.append_to_leader(td.name, pd.index, pd.records, acks)
                if info is None or hp is None:
                    rows.append([pd.index, code, -1, -1, -1])
                    continue
                row = [pd.index, ErrorCode.NONE, info.first_offset, info.log_append_time_ms,
                       info.log_start_offset]
                rows.append(row)
                if acks == -1:
                    waiting.append((row, hp, hp.state.leader_epoch, info.last_offset))
            results.append((td.name, rows))
        if acks == 0:
            # No response; a failure closes the connection, the producer's only way to learn
            # of it (Kafka's KafkaApis.handleProduceRequest).
            failed = [(name, row[0], ErrorCode(row[1]).name) for name, rows in results
                      for row in rows if row[1] != ErrorCode.NONE]
            if not failed:
                return None
            logger.info("Closing connection due to error during produce request with "
                        "correlation id %d from client id %s with acks=0: %s",
                        header.correlation_id, header.client_id,
                        ", ".join(f"{t}-{p}: {e}" for t, p, e in failed))
            return CLOSE

        def settle() -> bool:
            still = []
            for w in waiting:
                status = rm.produce_status(w[1], w[2], w[3])
                if status is None:
                    still.append(w)
                else:
                    w[0][1] = status
            waiting[:] = still
            return not still

        if not waiting or settle():
            return self._produce_response(results, v)
        return self._delayed_produce(results, waiting, settle, request.timeout_ms, v)

    async def _delayed_produce(self, results: list[tuple[str, list[list[Any]]]],
                               waiting: list[tuple[list[Any], Any, int, int]],
                               settle: Any, timeout_ms: int, v: int) -> Any:
        keys = [w[1].tp for w in waiting]
        await self.rm.produce_purgatory.wait(keys, settle, max(timeout_ms, 0) / 1000)
        settle()
        for w in waiting:
            w[0][1] = ErrorCode.REQUEST_TIMED_OUT
        return self._produce_response(results, v)

    @staticmethod
    def _produce_response(results: list[tuple[str, list[list[Any]]]], v: int) -> Any:
        R = produce.RESPONSE
        topics = []
        for name, rows in results:
            parts = []
            for row in rows:
                pr = R.PartitionProduceResponse(index=row[0], error_code=int(row[1]),
                                                base_offset=row[2])
                if v >= 2:
                    pr.log_append_time_ms = row[3]
                if v >= 5:
                    pr.log_start_offset = row[4]
                parts.append(pr)
            topics.append(R.TopicProduceResponse(name=name, partition_responses=parts))
        return R.cls(throttle_time_ms=0, responses=topics)

    # -- Fetch (1) ----------------------------------------------------------------------------

    def handle_fetch(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        R = fetch.RESPONSE
        v = header.api_version
        replica_id = request.replica_id
        if v >= 15 and request.replica_state is not None:
            replica_id = request.replica_state.replica_id
        if v >= 7:
            fctx = self.sessions.new_context(
                request.session_id, request.session_epoch, request.topics,
                request.forgotten_topics_data or [], follower=replica_id >= 0,
                now_ms=self.rm.clock.monotonic_ms())
            if fctx.error:
                return R.cls(throttle_time_ms=0, error_code=int(fctx.error), session_id=0,
                             responses=[])
        else:
            fctx = FetchContext(partitions=[CachedPartition.requested(t.topic, p)
                                            for t in request.topics for p in t.partitions])
        wanted = fctx.wanted()
        first = self._read_all(request, wanted, replica_id)
        max_wait_ms = request.max_wait_ms
        min_bytes = max(request.min_bytes, 1)
        got = sum(len(r.records) for _, r in first)
        errors = any(r.error or r.diverging_epoch is not None for _, r in first)
        if max_wait_ms <= 0 or got >= min_bytes or errors or not first:
            return self._fetch_response(request, fctx, first, v)
        return self._delayed_fetch(request, fctx, wanted, v, replica_id, min_bytes,
                                   max_wait_ms)

    async def _delayed_fetch(self, request: Any, fctx: FetchContext,
                             wanted: list[CachedPartition], v: int, replica_id: int,
                             min_bytes: int, max_wait_ms: int) -> Any:
        rm = self.rm

        def ready() -> bool:
            total = 0
            for c in wanted:
                n = rm.available_bytes(c.topic, c.partition, c.fetch_offset,
                                       c.current_leader_epoch, replica_id,
                                       min(c.max_bytes, min_bytes))
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
                                   replica_id, 1)
            return n != 0

        await rm.fetch_purgatory.wait(by_tp, ready, max_wait_ms / 1000,
                                      ready_for=ready_for if min_bytes <= 1 else None)
        return self._fetch_response(request, fctx, self._read_all(request, wanted, replica_id),
                                    v)

    def _read_all(self, request: Any, wanted: list[CachedPartition], replica_id: int
                  ) -> list[tuple[CachedPartition, Any]]:
        rm = self.rm
        remaining = request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF
        read_any = False
        out = []
        for c in wanted:
            r = rm.read(c.topic, c.partition, fetch_offset=c.fetch_offset,
                        current_leader_epoch=c.current_leader_epoch,
                        last_fetched_epoch=c.last_fetched_epoch,
                        max_bytes=max(min(c.max_bytes, remaining), 0), min_one=not read_any,
                        replica_id=replica_id, log_start_offset=c.log_start_offset)
            remaining -= len(r.records)
            read_any = read_any or bool(r.records)
            out.append((c, r))
        return out

    @staticmethod
    def _fetch_response(request: Any, fctx: FetchContext,
                        reads: list[tuple[CachedPartition, Any]], v: int) -> Any:
        R = fetch.RESPONSE
        read_committed = getattr(request, "isolation_level", 0) == READ_COMMITTED
        incremental = fctx.incremental
        remember = fctx.session is not None
        topics: list[Any] = []
        out: list[Any] = []
        current = None
        moved: list[tuple[str, int]] = []
        for c, r in reads:
            if remember:
                respond = c.must_respond(int(r.error), r.high_watermark, r.last_stable_offset,
                                         r.log_start_offset, bool(r.records),
                                         r.diverging_epoch is not None)
                if r.records:
                    moved.append((c.topic, c.partition))
                if incremental and not respond:
                    continue
            pd = R.PartitionData(partition_index=c.partition, error_code=int(r.error),
                                 high_watermark=r.high_watermark, records=r.records)
            if v >= 4:
                # No transactions yet: the last stable offset is the high watermark.
                pd.last_stable_offset = r.last_stable_offset
                pd.aborted_transactions = [] if read_committed else None
            if v >= 5:
                pd.log_start_offset = r.log_start_offset
            if r.diverging_epoch is not None and v >= 12:
                pd.diverging_epoch = R.EpochEndOffset(epoch=r.diverging_epoch[0],
                                                      end_offset=r.diverging_epoch[1])
            if c.topic != current:
                current, out = c.topic, []
                topics.append(R.FetchableTopicResponse(topic=c.topic, partitions=out))
            out.append(pd)
        if fctx.session is not None and moved:
            fctx.session.rotate(moved)
        return R.cls(throttle_time_ms=0, error_code=0, session_id=fctx.session_id,
                     responses=topics)

    # -- ListOffsets (2) ----------------------------------------------------------------------

    def handle_list_offsets(self, ctx: RequestContext, header: RequestHeader,
                            request: Any) -> Any:
        R = list_offsets.RESPONSE
        v = header.api_version
        replica_id = request.replica_id
        topics = []
        for td in request.topics:
            parts = []
            for p in td.partitions:
                code, offset, ts, epoch = self._list_offset(
                    td.name, p.partition_index, p.timestamp, p.current_leader_epoch,
                    replica_id, v)
                if v == 0:
                    row = R.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, error_code=int(code),
                        old_style_offsets=[offset] if offset >= 0 else [])
                else:
                    row = R.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, error_code=int(code),
                        timestamp=ts, offset=offset)
                    if v >= 4:
                        row.leader_epoch = epoch
                parts.append(row)
            topics.append(R.ListOffsetsTopicResponse(name=td.name, partitions=parts))
        return R.cls(throttle_time_ms=0, topics=topics)

    def _list_offset(self, topic: str, partition: int, timestamp: int, current_epoch: int,
                     replica_id: int, v: int) -> tuple[ErrorCode, int, int, int]:
        code, hp = self.rm.leader_partition(topic, partition, current_epoch)
        if hp is None:
            return code, -1, -1, -1
        log = hp.log
        hw = hp.state.high_watermark
        # A follower asks for the leader's log end; consumers see up to the (stable) HW.
        fetchable = log.log_end_offset if replica_id >= 0 else hw
        cache = log.leader_epoch_cache

        def epoch_of(offset: int) -> int:
            if cache is None:
                return -1
            e = cache.epoch_for_offset(offset)
            if e is None:
                e = cache.latest_epoch
            return -1 if e is None else e

        if timestamp == LATEST_TIMESTAMP:
            return ErrorCode.NONE, fetchable, -1, epoch_of(max(fetchable - 1, 0))
        if timestamp == EARLIEST_TIMESTAMP or timestamp == -4:
            start = log.log_start_offset
            return ErrorCode.NONE, start, -1, epoch_of(start)
        if timestamp == MAX_TIMESTAMP and v < 7:
            return ErrorCode.UNSUPPORTED_VERSION, -1, -1, -1
        if timestamp < 0 and timestamp != MAX_TIMESTAMP:
            return ErrorCode.NONE, -1, -1, -1
        try:
            found = log.offset_for_timestamp(timestamp)
        except (StorageError, OSError, ValueError):
            return ErrorCode.KAFKA_STORAGE_ERROR, -1, -1, -1
        if found is None or found[0] >= fetchable:
            return ErrorCode.NONE, -1, -1, -1
        offset, ts = found
        return ErrorCode.NONE, offset, ts, epoch_of(offset)

    # -- OffsetForLeaderEpoch (23) ------------------------------------------------------------

    def handle_offset_for_leader_epoch(self, ctx: RequestContext, header: RequestHeader,
                                       request: Any) -> Any:
        R = offset_for_leader_epoch.RESPONSE
        rm = self.rm
        topics = []
        for td in request.topics:
            parts = []
            for p in td.partitions:
                code, hp = rm.leader_partition(td.topic, p.partition, p.current_leader_epoch)
                if hp is None:
                    parts.append(R.EpochEndOffset(error_code=int(code), partition=p.partition,
                                                  leader_epoch=-1, end_offset=-1))
                    continue
                epoch, end = rm.end_offset_for_epoch(hp, p.leader_epoch)
                parts.append(R.EpochEndOffset(error_code=0, partition=p.partition,
                                              leader_epoch=epoch, end_offset=end))
            topics.append(R.OffsetForLeaderTopicResult(topic=td.topic, partitions=parts))
        return R.cls(throttle_time_ms=0, topics=topics)

    # -- DeleteRecords (21) -------------------------------------------------------------------

    def handle_delete_records(self, ctx: RequestContext, header: RequestHeader,
                              request: Any) -> Any:
        """Kafka's ReplicaManager.deleteRecords: each leader moves its log start at once; the
        answer waits (like acks=all) until every partition's low watermark reaches the offset,
        or the request's timeout (REQUEST_TIMED_OUT)."""
        rm = self.rm
        results: list[tuple[str, list[list[Any]]]] = []  # rows: [partition, low wm, error]
        waiting: list[tuple[list[Any], tuple[str, int], int]] = []  # (row, tp, required)
        for td in request.topics:
            rows: list[list[Any]] = []
            for p in td.partitions:
                code, required, lw = rm.delete_records_on_leader(td.name, p.partition_index,
                                                                 p.offset)
                row = [p.partition_index, lw, code]
                rows.append(row)
                if code == ErrorCode.NONE and lw < required:
                    row[2] = ErrorCode.REQUEST_TIMED_OUT  # until the low watermark is there
                    waiting.append((row, (td.name, p.partition_index), required))
            results.append((td.name, rows))

        def settle() -> bool:
            still = []
            for w in waiting:
                status = rm.delete_records_status(w[1], w[2])
                if status is None:
                    still.append(w)
                else:
                    w[0][2], w[0][1] = status
            waiting[:] = still
            return not still

        if not waiting or settle():
            return self._delete_records_response(results)
        return self._delayed_delete_records(results, waiting, settle, request.timeout_ms)

    async def _delayed_delete_records(self, results: list[tuple[str, list[list[Any]]]],
                                      waiting: list[tuple[list[Any], tuple[str, int], int]],
                                      settle: Any, timeout_ms: int) -> Any:
        await self.rm.delete_records_purgatory.wait([w[1] for w in waiting], settle,
                                                    max(timeout_ms, 0) / 1000)
        settle()
        return self._delete_records_response(results)

    @staticmethod
    def _delete_records_response(results: list[tuple[str, list[list[Any]]]]) -> Any:
        R = delete_records.RESPONSE
        return R.cls(throttle_time_ms=0, topics=[
            R.DeleteRecordsTopicResult(name=name, partitions=[
                R.DeleteRecordsPartitionResult(partition_index=row[0], low_watermark=row[1],
                                               error_code=int(row[2])) for row in rows])
            for name, rows in results])
