"""The answer to a request whose handler failed unexpectedly (Kafka's
``AbstractRequest.getErrorResponse``): every partition, topic or the whole request gets one
error code, instead of the connection being closed.

Handlers turn the failures they expect into error codes themselves (a partition on an offline
log dir is KAFKA_STORAGE_ERROR, ``broker/replication/log_dir_failure.py``). This is the net
under them, for the APIs whose handlers touch partition logs or internal topics: an exception
that escapes is logged with its traceback and answered KAFKA_STORAGE_ERROR (56) when it is a
storage failure (``LogDirOfflineError``, ``OSError``), UNKNOWN_SERVER_ERROR (-1) otherwise, as
Kafka's ``Errors.forException`` does. Clients retry or fail that request; the connection and
the other clients' requests go on. An API without a builder here keeps the server's default
(close the connection: ``broker/network/server.py``).

``guard_handlers`` wraps a listener's handler table; the builders take the request and the
API version and return the response object.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    add_offsets_to_txn,
    delete_records,
    describe_producers,
    end_txn,
    fetch,
    heartbeat,
    init_producer_id,
    join_group,
    list_offsets,
    offset_commit,
    offset_for_leader_epoch,
    produce,
    sync_group,
    txn_offset_commit,
    write_txn_markers,
)
from storage.errors import LogDirOfflineError

__all__ = ["error_code_for", "error_response", "guard_handlers"]

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any, Any], Any]


def error_code_for(exc: BaseException) -> ErrorCode:
    if isinstance(exc, (LogDirOfflineError, OSError)):
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.UNKNOWN_SERVER_ERROR


def _produce(req: Any, v: int, code: int) -> Any:
    R = produce.RESPONSE
    return R.cls(throttle_time_ms=0, responses=[
        R.TopicProduceResponse(name=t.name, partition_responses=[
            R.PartitionProduceResponse(index=p.index, error_code=code, base_offset=-1)
            for p in t.partition_data])
        for t in req.topic_data])


def _fetch(req: Any, v: int, code: int) -> Any:
    R = fetch.RESPONSE
    return R.cls(throttle_time_ms=0, error_code=0, session_id=0, responses=[
        R.FetchableTopicResponse(
            topic=t.topic, topic_id=t.topic_id, partitions=[
                R.PartitionData(partition_index=p.partition, error_code=code,
                                high_watermark=-1, last_stable_offset=-1,
                                log_start_offset=-1, records=b"")
                for p in t.partitions])
        for t in req.topics])


def _list_offsets(req: Any, v: int, code: int) -> Any:
    R = list_offsets.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.ListOffsetsTopicResponse(name=t.name, partitions=[
            R.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code,
                                           old_style_offsets=[])
            for p in t.partitions])
        for t in req.topics])


def _offset_for_leader_epoch(req: Any, v: int, code: int) -> Any:
    R = offset_for_leader_epoch.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.OffsetForLeaderTopicResult(topic=t.topic, partitions=[
            R.EpochEndOffset(error_code=code, partition=p.partition, leader_epoch=-1,
                             end_offset=-1)
            for p in t.partitions])
        for t in req.topics])


def _delete_records(req: Any, v: int, code: int) -> Any:
    R = delete_records.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.DeleteRecordsTopicResult(name=t.name, partitions=[
            R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                           error_code=code)
            for p in t.partitions])
        for t in req.topics])


def _write_txn_markers(req: Any, v: int, code: int) -> Any:
    R = write_txn_markers.RESPONSE
    return R.cls(markers=[
        R.WritableTxnMarkerResult(producer_id=m.producer_id, topics=[
            R.WritableTxnMarkerTopicResult(name=t.name, partitions=[
                R.WritableTxnMarkerPartitionResult(partition_index=p, error_code=code)
                for p in t.partition_indexes])
            for t in m.topics])
        for m in req.markers])


def _describe_producers(req: Any, v: int, code: int) -> Any:
    R = describe_producers.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.TopicResponse(name=t.name, partitions=[
            R.PartitionResponse(partition_index=p, error_code=code, active_producers=[])
            for p in t.partition_indexes])
        for t in req.topics])


def _offset_commit(req: Any, v: int, code: int) -> Any:
    R = offset_commit.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.OffsetCommitResponseTopic(name=t.name, partitions=[
            R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in t.partitions])
        for t in req.topics])


def _txn_offset_commit(req: Any, v: int, code: int) -> Any:
    R = txn_offset_commit.RESPONSE
    return R.cls(throttle_time_ms=0, topics=[
        R.TxnOffsetCommitResponseTopic(name=t.name, partitions=[
            R.TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                               error_code=code)
            for p in t.partitions])
        for t in req.topics])


def _top_level(message: Any, **extra: Any) -> Callable[[Any, int, int], Any]:
    """For a response whose error is one top-level ``error_code``."""
    def build(req: Any, v: int, code: int) -> Any:
        return message.RESPONSE.cls(error_code=code, **extra)
    return build


# A coordinator's write that failed on the log is NOT_COORDINATOR to the client (Kafka's
# GroupMetadataManager and TransactionStateManager map KAFKA_STORAGE_ERROR so): it looks the
# coordinator up again.
_COORDINATOR_APIS = frozenset({ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP, ApiKey.HEARTBEAT,
                               ApiKey.OFFSET_COMMIT, ApiKey.TXN_OFFSET_COMMIT,
                               ApiKey.INIT_PRODUCER_ID, ApiKey.END_TXN,
                               ApiKey.ADD_OFFSETS_TO_TXN})

BUILDERS: dict[int, Callable[[Any, int, int], Any]] = {
    ApiKey.PRODUCE: _produce,
    ApiKey.FETCH: _fetch,
    ApiKey.LIST_OFFSETS: _list_offsets,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: _offset_for_leader_epoch,
    ApiKey.DELETE_RECORDS: _delete_records,
    ApiKey.WRITE_TXN_MARKERS: _write_txn_markers,
    ApiKey.DESCRIBE_PRODUCERS: _describe_producers,
    ApiKey.OFFSET_COMMIT: _offset_commit,
    ApiKey.TXN_OFFSET_COMMIT: _txn_offset_commit,
    ApiKey.JOIN_GROUP: lambda req, v, code: join_group.RESPONSE.cls(
        error_code=code, generation_id=-1, protocol_name=None if v >= 7 else "", leader="",
        member_id="", members=[]),
    ApiKey.SYNC_GROUP: _top_level(sync_group, assignment=b""),
    ApiKey.HEARTBEAT: _top_level(heartbeat),
    ApiKey.INIT_PRODUCER_ID: _top_level(init_producer_id, producer_id=-1, producer_epoch=-1),
    ApiKey.END_TXN: _top_level(end_txn),
    ApiKey.ADD_OFFSETS_TO_TXN: _top_level(add_offsets_to_txn),
}


def error_response(api_key: int, version: int, request: Any, exc: BaseException) -> Any:
    """The error answer to ``request`` for ``exc``; None if this API has no builder."""
    build = BUILDERS.get(api_key)
    if build is None:
        return None
    code = error_code_for(exc)
    if api_key in _COORDINATOR_APIS and code == ErrorCode.KAFKA_STORAGE_ERROR:
        code = ErrorCode.NOT_COORDINATOR
    return build(request, version, int(code))


def _failed(api_key: int, header: Any, request: Any, exc: BaseException) -> Any:
    response = error_response(api_key, header.api_version, request, exc)
    if response is None:
        raise exc
    logger.error("Handler for %s v%d (correlation id %d) failed; answering %s",
                 API_SPECS[api_key].name, header.api_version, header.correlation_id,
                 ErrorCode(error_code_for(exc)).name, exc_info=exc)
    return response


def _guard(api_key: int, handler: Handler) -> Handler:
    async def finish(awaitable: Awaitable[Any], header: Any, request: Any) -> Any:
        try:
            return await awaitable
        except Exception as exc:  # noqa: BLE001 - answered with an error code instead
            return _failed(api_key, header, request, exc)

    def guarded(ctx: Any, header: Any, request: Any) -> Any:
        try:
            result = handler(ctx, header, request)
        except Exception as exc:  # noqa: BLE001 - answered with an error code instead
            return _failed(api_key, header, request, exc)
        if hasattr(result, "__await__"):
            return finish(result, header, request)
        return result

    guarded.__name__ = getattr(handler, "__name__", "handler")
    return guarded


def guard_handlers(handlers: Mapping[int, Handler]) -> dict[int, Handler]:
    """``handlers`` with the APIs that have an error builder wrapped."""
    return {k: _guard(k, h) if k in BUILDERS else h for k, h in handlers.items()}
