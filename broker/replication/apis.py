"""The data-path APIs on the broker listener: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
DeleteRecords.

Handlers translate between the wire messages and ``ReplicaManager``. A handler that can answer
at once is a plain function returning the response (the server's cheap path); one that waits
(``acks=all`` until the high watermark passes the batch, a Fetch long poll) returns a
coroutine, which the server runs as a task while keeping responses in request order.
DeleteRecords waits the same way, until the low watermark reaches the requested offsets.

Versions (``ADVERTISED``): low minimums so every client we test enables its features
(docs/clients.md); Produce below v3 (magic 0/1 batches) is answered with UNSUPPORTED_VERSION per
partition, as Kafka 4 does. Fetch lives in ``fetch_api.py``; KIP-951 leader hints in
``leader_hints.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from broker.network.context import RequestContext
from broker.network.server import CLOSE
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    delete_records,
    list_offsets,
    offset_for_leader_epoch,
    produce,
)
from broker.replication.fetch_api import FETCH_VERSIONS, FetchApi
from broker.replication.leader_hints import PRODUCE_HINT_ERRORS, current_leader, node_endpoints
from broker.replication.replica_manager import ReplicaManager
from broker.replication.txn_apis import TxnPartitionApis
from broker.replication.txn_verify import TxnVerifier, produce_error
from storage.errors import StorageError
from storage.log_read import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP
from storage.record_batch import ATTRIBUTES_OFFSET, TRANSACTIONAL_MASK

__all__ = ["ADVERTISED", "DataApis"]

logger = logging.getLogger(__name__)

ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (0, 12),
    ApiKey.FETCH: FETCH_VERSIONS,
    ApiKey.LIST_OFFSETS: (0, 10),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (0, 4),
    ApiKey.DELETE_RECORDS: (0, 2),
}

MIN_PRODUCE_VERSION = 3  # magic-2 record batches
PRODUCE_HINT_VERSION = 10  # KIP-951 current leader and node endpoints
# ListOffsets special timestamps and the versions that introduced them (Kafka's
# ListOffsetsRequest): -3 the max timestamp (v7), -4 the earliest local offset (v8), -5 the
# latest tiered offset (v9, KIP-1005).
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5


class DataApis:
    def __init__(self, replica_manager: ReplicaManager) -> None:
        self.rm = replica_manager
        self.fetch = FetchApi(replica_manager)
        self.sessions = self.fetch.sessions
        self.handlers = {
            ApiKey.PRODUCE: self.handle_produce,
            ApiKey.FETCH: self.fetch.handle_fetch,
            ApiKey.LIST_OFFSETS: self.handle_list_offsets,
            ApiKey.OFFSET_FOR_LEADER_EPOCH: self.handle_offset_for_leader_epoch,
            ApiKey.DELETE_RECORDS: self.handle_delete_records,
        }
        self.verifier = TxnVerifier(replica_manager)
        self.handlers.update(TxnPartitionApis(replica_manager, self.verifier).handlers)

    async def close(self) -> None:
        await self.verifier.close()

    # -- Produce (0) --------------------------------------------------------------------------

    def handle_produce(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        # KIP-890: a transactional batch that would open a transaction on a partition waits
        # for the coordinator to confirm the partition is in it (txn_verify.py).
        tid = getattr(request, "transactional_id", None)
        if (tid and self.verifier.enabled and header.api_version >= MIN_PRODUCE_VERSION
                and request.acks in (0, 1, -1)):
            need: dict[tuple[int, int], list[tuple[str, int]]] = {}
            for td in request.topic_data:
                for pd in td.partition_data:
                    ids = self.verifier.needs_verification(td.name, pd.index, pd.records)
                    if ids is not None:
                        need.setdefault(ids, []).append((td.name, pd.index))
            if need:
                return self._verified_produce(ctx, header, request, tid, need)
        return self._produce(ctx, header, request, None)

    async def _verified_produce(self, ctx: RequestContext, header: RequestHeader,
                                request: Any, tid: str,
                                need: dict[tuple[int, int], list[tuple[str, int]]]) -> Any:
        verifier = self.verifier
        guards: dict[tuple[str, int], tuple[int, object]] = {}
        for (pid, _epoch), tps in need.items():
            for tp in tps:
                guards[tp] = (pid, verifier.start_guard(tp, pid))
        answers = await asyncio.gather(*(verifier.verify(tid, pid, epoch, tps)
                                         for (pid, epoch), tps in need.items()))
        verdicts: dict[tuple[str, int], tuple[ErrorCode, int, object]] = {}
        for answer in answers:
            for tp, code in answer.items():
                pid, guard = guards[tp]
                if code:
                    verifier.drop_guard(tp, pid)
                verdicts[tp] = (produce_error(code), pid, guard)
        response = self._produce(ctx, header, request, verdicts)
        if inspect.isawaitable(response):
            response = await response
        return response

    def _produce(self, ctx: RequestContext, header: RequestHeader, request: Any,
                 verdicts: dict[tuple[str, int], tuple[ErrorCode, int, object]] | None) -> Any:
        rm = self.rm
        v = header.api_version
        acks = request.acks
        # (topic, [[partition, error, base_offset, log_append_time, log_start]])
        results: list[tuple[str, list[list[Any]]]] = []
        waiting: list[tuple[list[Any], Any, int, int]] = []  # (row, hp, epoch, last offset)
        flushing: list[tuple[list[Any], Any, Any]] = []  # (row, hp, PartitionLog.flush_wait)
        # Kafka's handleProduceRequest: transactional records need the request's
        # transactional id, else the whole request is refused.
        refuse = (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                  if getattr(request, "transactional_id", None) is None
                  and _has_transactional_records(request) else ErrorCode.NONE)
        for td in request.topic_data:
            rows: list[list[Any]] = []
            for pd in td.partition_data:
                if refuse:
                    rows.append([pd.index, refuse, -1, -1, -1])
                    continue
                if v < MIN_PRODUCE_VERSION:
                    rows.append([pd.index, ErrorCode.UNSUPPORTED_VERSION, -1, -1, -1])
                    continue
                if acks not in (0, 1, -1):
                    rows.append([pd.index, ErrorCode.INVALID_REQUIRED_ACKS, -1, -1, -1])
                    continue
                verdict = None if verdicts is None else verdicts.get((td.name, pd.index))
                if verdict is not None:
                    code = self._check_verdict(td.name, pd.index, pd.records, verdict)
                    if code:
                        rows.append([pd.index, code, -1, -1, -1])
                        continue
                code, info, hp = rm.append_to_leader(td.name, pd.index, pd.records, acks,
                                                     from_client=True)
                if verdict is not None and info is not None:
                    # The open transaction now stands for the verification.
                    self.verifier.drop_guard((td.name, pd.index), verdict[1])
                if info is None or hp is None:
                    rows.append([pd.index, code, -1, -1, -1])
                    continue
                row = [pd.index, ErrorCode.NONE, info.first_offset, info.log_append_time_ms,
                       info.log_start_offset]
                rows.append(row)
                # The flush policy may want the batch fsynced (group commit, off the event
                # loop) before any answer: acks=1, and the leader's part of acks=all.
                flush = hp.log.flush_wait(info.last_offset + 1)
                if flush is not None:
                    flushing.append((row, hp, flush))
                if acks == -1:
                    waiting.append((row, hp, hp.state.leader_epoch, info.last_offset))
            results.append((td.name, rows))
        if flushing:
            return self._flushed_produce(header, results, waiting, flushing, acks,
                                         request.timeout_ms, ctx.listener_name)
        return self._produce_answer(header, results, waiting, acks, request.timeout_ms,
                                    ctx.listener_name)

    async def _flushed_produce(self, header: RequestHeader,
                               results: list[tuple[str, list[list[Any]]]],
                               waiting: list[tuple[list[Any], Any, int, int]],
                               flushing: list[tuple[list[Any], Any, Any]], acks: int,
                               timeout_ms: int, listener: str) -> Any:
        """Answer once the fsyncs covering the appended batches completed."""
        codes = await asyncio.gather(*(self.rm.wait_flushed(hp, flush)
                                       for _, hp, flush in flushing))
        failed = set()
        for (row, _, _), code in zip(flushing, codes, strict=True):
            if code:
                row[1:] = [code, -1, -1, -1]
                failed.add(id(row))
        if failed:
            waiting[:] = [w for w in waiting if id(w[0]) not in failed]
        response = self._produce_answer(header, results, waiting, acks, timeout_ms, listener)
        if inspect.isawaitable(response):
            response = await response
        return response

    def _produce_answer(self, header: RequestHeader, results: list[tuple[str, list[list[Any]]]],
                        waiting: list[tuple[list[Any], Any, int, int]], acks: int,
                        timeout_ms: int, listener: str) -> Any:
        rm = self.rm
        v = header.api_version
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
            return self._produce_response(results, v, listener)
        return self._delayed_produce(results, waiting, settle, timeout_ms, v, listener)

    def _check_verdict(self, topic: str, partition: int, records: Any,
                       verdict: tuple[ErrorCode, int, object]) -> ErrorCode:
        """Just before the append (no await in between): the coordinator's answer, and, if
        the batch would still open a transaction, that no marker came since the question."""
        code, pid, guard = verdict
        if code:
            return code
        if (self.verifier.needs_verification(topic, partition, records) is not None
                and not self.verifier.guard_holds((topic, partition), pid, guard)):
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    async def _delayed_produce(self, results: list[tuple[str, list[list[Any]]]],
                               waiting: list[tuple[list[Any], Any, int, int]],
                               settle: Any, timeout_ms: int, v: int, listener: str) -> Any:
        keys = [w[1].tp for w in waiting]
        await self.rm.produce_purgatory.wait(keys, settle, max(timeout_ms, 0) / 1000)
        settle()
        for w in waiting:
            w[0][1] = ErrorCode.REQUEST_TIMED_OUT
        return self._produce_response(results, v, listener)

    def _produce_response(self, results: list[tuple[str, list[list[Any]]]], v: int,
                          listener: str) -> Any:
        R = produce.RESPONSE
        image = self.rm.image
        hints = v >= PRODUCE_HINT_VERSION
        leaders: list[int] = []
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
                if hints and row[1] in PRODUCE_HINT_ERRORS:
                    leader, epoch = current_leader(image, name, row[0])
                    pr.current_leader = R.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
                    if leader >= 0:
                        leaders.append(leader)
                parts.append(pr)
            topics.append(R.TopicProduceResponse(name=name, partition_responses=parts))
        resp = R.cls(throttle_time_ms=0, responses=topics)
        if leaders:
            resp.node_endpoints = node_endpoints(image, leaders, listener, R.NodeEndpoint)
        return resp

    # -- ListOffsets (2) ----------------------------------------------------------------------

    def handle_list_offsets(self, ctx: RequestContext, header: RequestHeader,
                            request: Any) -> Any:
        R = list_offsets.RESPONSE
        v = header.api_version
        replica_id = request.replica_id
        read_committed = getattr(request, "isolation_level", 0) == 1
        topics = []
        for td in request.topics:
            parts = []
            for p in td.partitions:
                code, offset, ts, epoch = self._list_offset(
                    td.name, p.partition_index, p.timestamp, p.current_leader_epoch,
                    replica_id, v, read_committed)
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
                     replica_id: int, v: int, read_committed: bool = False
                     ) -> tuple[ErrorCode, int, int, int]:
        code, hp = self.rm.leader_partition(topic, partition, current_epoch)
        if hp is None:
            return code, -1, -1, -1
        log = hp.log
        hw = hp.state.high_watermark
        # A follower asks for the leader's log end; consumers see up to the HW, or up to the
        # last stable offset with isolation_level 1 (read_committed), as Kafka's.
        if replica_id >= 0:
            fetchable = log.log_end_offset
        else:
            fetchable = hp.last_stable_offset() if read_committed else hw
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
        if (timestamp == MAX_TIMESTAMP and v < 7) or (
                timestamp == EARLIEST_LOCAL_TIMESTAMP and v < 8) or (
                timestamp == LATEST_TIERED_TIMESTAMP and v < 9):
            return ErrorCode.UNSUPPORTED_VERSION, -1, -1, -1
        if timestamp == EARLIEST_TIMESTAMP or timestamp == EARLIEST_LOCAL_TIMESTAMP:
            # No tiered storage: the whole log is local, so the earliest local offset is the
            # log start offset.
            start = log.log_start_offset
            return ErrorCode.NONE, start, -1, epoch_of(start)
        if timestamp == LATEST_TIERED_TIMESTAMP:
            # Nothing is tiered: KIP-1005 answers offset -1 (and no epoch).
            return ErrorCode.NONE, -1, -1, -1
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


def _has_transactional_records(request: Any) -> bool:
    """Whether the first batch of any partition of a Produce request is transactional (Kafka's
    ``ProduceRequest.hasTransactionalRecords``)."""
    for td in request.topic_data:
        for pd in td.partition_data:
            records = pd.records
            if records is not None and len(records) >= ATTRIBUTES_OFFSET + 2 and (
                    int.from_bytes(records[ATTRIBUTES_OFFSET:ATTRIBUTES_OFFSET + 2], "big")
                    & TRANSACTIONAL_MASK):
                return True
    return False
