"""The partition side of transactions: WriteTxnMarkers (27) and DescribeProducers (61).

**WriteTxnMarkers** comes from a transaction coordinator finishing a transaction. For each
marker (producer id and epoch, commit or abort, coordinator epoch) and each partition this
broker leads, the leader appends a control batch (``storage/control_records.py``: key = version
+ type, value = Kafka's EndTransactionMarker with the coordinator epoch) as the producer's, and
answers once ``acks=all`` is reached, as Kafka's ``handleWriteTxnMarkersRequest`` does. The
producer state applies it (``storage/producer_state.py``): the transaction ends, the last stable
offset can pass it once it is replicated, an ABORT goes to the aborted-transaction index
(``storage/txn_index.py``). Refusals, per partition, as Kafka's ``ProducerAppendInfo``:

- a marker epoch older than the producer's: INVALID_PRODUCER_EPOCH (a newer epoch is taken,
  as any batch of the producer's would);
- then, a coordinator epoch older than the one of the producer's last marker:
  TRANSACTION_COORDINATOR_FENCED (a deposed coordinator);
- not the leader, unknown partition, not enough replicas: the usual produce errors.

After a partition's marker is replicated, and before the answer, every
``ReplicaManager.txn_marker_listeners`` entry is called as ``fn(topic, partition, producer_id,
committed)`` (the group coordinator makes transactional offset commits visible there).

**DescribeProducers** (KIP-664) lists a led partition's producers from its producer state:
id, epoch, last sequence, last timestamp, coordinator epoch, first offset of the open
transaction (-1 if none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_producers, write_txn_markers
from storage.control_records import ControlRecordType, build_control_batch

if TYPE_CHECKING:
    from broker.network.context import RequestContext
    from broker.protocol.framing import RequestHeader
    from broker.replication.partition import Partition
    from broker.replication.replica_manager import ReplicaManager
    from broker.replication.txn_verify import TxnVerifier

__all__ = ["TxnPartitionApis"]

logger = logging.getLogger(__name__)

MARKER_TIMEOUT_S = 30.0  # Kafka waits request.timeout.ms (30 s) for acks=all


class TxnPartitionApis:
    def __init__(self, replica_manager: ReplicaManager,
                 verifier: TxnVerifier | None = None) -> None:
        self.rm = replica_manager
        self.verifier = verifier
        self.handlers = {
            ApiKey.WRITE_TXN_MARKERS: self.handle_write_txn_markers,
            ApiKey.DESCRIBE_PRODUCERS: self.handle_describe_producers,
        }

    # -- WriteTxnMarkers (27) -----------------------------------------------------------------

    async def handle_write_txn_markers(self, ctx: RequestContext, header: RequestHeader,
                                       request: Any) -> Any:
        R = write_txn_markers.RESPONSE
        jobs: list[Any] = []
        layout: list[tuple[int, list[tuple[str, list[int]]]]] = []
        for m in request.markers:
            topics = []
            for t in m.topics:
                parts = list(t.partition_indexes)
                topics.append((t.name, parts))
                for p in parts:
                    # Each append happens now, in request order (no await before it).
                    jobs.append(self._write_marker(t.name, p, m.producer_id, m.producer_epoch,
                                                   bool(m.transaction_result),
                                                   m.coordinator_epoch))
            layout.append((m.producer_id, topics))
        codes = iter(await asyncio.gather(*jobs))
        return R.cls(markers=[
            R.WritableTxnMarkerResult(producer_id=pid, topics=[
                R.WritableTxnMarkerTopicResult(name=name, partitions=[
                    R.WritableTxnMarkerPartitionResult(partition_index=p,
                                                       error_code=int(next(codes)))
                    for p in parts])
                for name, parts in topics])
            for pid, topics in layout])

    def _write_marker(self, topic: str, partition: int, producer_id: int, producer_epoch: int,
                      committed: bool, coordinator_epoch: int) -> Any:
        """Validate and append one marker now (no await in between: the check holds for the
        append); returns an awaitable of its answer."""
        rm = self.rm
        hp = rm.partitions.get((topic, partition))
        code = ErrorCode.NONE
        if hp is None or not hp.state.is_leader:
            code = (rm.unknown_or_not_leader(topic, partition) if hp is None
                    else ErrorCode.NOT_LEADER_OR_FOLLOWER)
        elif producer_id < 0 or producer_epoch < 0:
            code = ErrorCode.INVALID_REQUEST
        else:
            # Kafka's ProducerAppendInfo.appendEndTxnMarker: the epoch first, then the
            # coordinator epoch.
            entry = hp.producers.last_entry(producer_id)
            if entry is not None and producer_epoch < entry.producer_epoch:
                code = ErrorCode.INVALID_PRODUCER_EPOCH
            elif entry is not None and entry.coordinator_epoch > coordinator_epoch:
                code = ErrorCode.TRANSACTION_COORDINATOR_FENCED
        if code:
            return _done(code)
        kind = ControlRecordType.COMMIT if committed else ControlRecordType.ABORT
        batch = build_control_batch(kind, producer_id=producer_id, producer_epoch=producer_epoch,
                                    coordinator_epoch=coordinator_epoch,
                                    timestamp=int(time.time() * 1000))
        code, info, appended = rm.append_to_leader(topic, partition, batch, -1)
        if info is None or appended is None:
            return _done(code)
        if self.verifier is not None:
            # A batch verified before this marker may no longer open a transaction here
            # (txn_verify.py).
            self.verifier.drop_guard((topic, partition), producer_id)
        return self._after_marker(appended, appended.state.leader_epoch, info.last_offset,
                                  topic, partition, producer_id, committed)

    async def _after_marker(self, hp: Partition, leader_epoch: int, last_offset: int,
                            topic: str, partition: int, producer_id: int,
                            committed: bool) -> ErrorCode:
        flush = hp.log.flush_wait(last_offset + 1)
        if flush is not None:
            code = await self.rm.wait_flushed(hp, flush)
            if code:
                return code
        code = await self.rm.wait_replicated(hp, leader_epoch, last_offset, MARKER_TIMEOUT_S)
        if code == ErrorCode.NONE:
            for fn in list(self.rm.txn_marker_listeners):
                try:
                    fn(topic, partition, producer_id, committed)
                except Exception:
                    logger.exception("Transaction marker listener failed for %s-%d",
                                     topic, partition)
        return ErrorCode(code)

    # -- DescribeProducers (61) ---------------------------------------------------------------

    def handle_describe_producers(self, ctx: RequestContext, header: RequestHeader,
                                  request: Any) -> Any:
        R = describe_producers.RESPONSE
        rm = self.rm
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partition_indexes:
                hp = rm.partitions.get((t.name, p))
                if hp is None or not hp.state.is_leader:
                    code = (rm.unknown_or_not_leader(t.name, p) if hp is None
                            else ErrorCode.NOT_LEADER_OR_FOLLOWER)
                    parts.append(R.PartitionResponse(partition_index=p, error_code=int(code),
                                                     active_producers=[]))
                    continue
                producers = [
                    R.ProducerState(
                        producer_id=e.producer_id, producer_epoch=e.producer_epoch,
                        last_sequence=e.last_seq, last_timestamp=e.last_timestamp,
                        coordinator_epoch=e.coordinator_epoch,
                        current_txn_start_offset=e.current_txn_first_offset)
                    for e in sorted(hp.producers.active_producers.values(),
                                    key=lambda e: e.producer_id)]
                parts.append(R.PartitionResponse(partition_index=p, error_code=0,
                                                 active_producers=producers))
            topics.append(R.TopicResponse(name=t.name, partitions=parts))
        return R.cls(throttle_time_ms=0, topics=topics)


async def _done(code: ErrorCode) -> ErrorCode:
    return code
