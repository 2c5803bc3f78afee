"""TxnOffsetCommit (key 28): a transactional producer commits a consumer group's offsets as
part of its transaction (``sendOffsetsToTransaction``), after AddOffsetsToTxn added the group's
``__consumer_offsets`` partition to the transaction.

The offsets are written to the group's ``__consumer_offsets`` partition as offset-commit
records in one TRANSACTIONAL batch of the request's producer id and epoch (acks=all), and stay
pending in ``GroupCoordinator.pending_txn`` (``broker.groups.txn_offsets``) until the
transaction marker reaches the partition (``GroupMetadataManager.on_txn_marker``). The log checks
the producer epoch as for any transactional batch (a fenced producer gets
INVALID_PRODUCER_EPOCH); the coordinator numbers the batches of each producer itself (Kafka skips
sequence checks for coordinator writes; our log checks them, so they are kept in order).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from broker.groups.consumer_apis import ConsumerGroupApis
from broker.groups.group import CommittedOffset
from broker.groups.metadata_manager import GROUP_METADATA_TOPIC
from broker.groups.records import offset_commit_key, offset_commit_value
from broker.network.context import RequestContext
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import txn_offset_commit
from storage.records import SimpleRecord, build_batch

__all__ = ["TxnOffsetCommitApis"]

logger = logging.getLogger(__name__)

OFFSET_METADATA_MAX_BYTES = 4096  # Kafka's offset.metadata.max.bytes default
_INT32_MAX = 2**31 - 1


class TxnOffsetCommitApis(ConsumerGroupApis):
    """The TxnOffsetCommit handler (a base of ``broker.groups.apis.GroupApis``)."""

    async def handle_txn_offset_commit(self, ctx: RequestContext, header: RequestHeader,
                                       request: Any) -> Any:
        R = txn_offset_commit.RESPONSE
        v = header.api_version
        gid = request.group_id
        now = self.clock.wall_ms()
        err = self.group_error(gid) if gid else ErrorCode.INVALID_GROUP_ID
        if not err and request.producer_id < 0:
            err = ErrorCode.INVALID_PRODUCER_ID_MAPPING  # no producer id: not transactional
        if not err and request.producer_epoch < 0:
            err = ErrorCode.INVALID_PRODUCER_EPOCH
        if not err:
            err = self.coordinator.validate_txn_offset_commit(
                gid, request.member_id if v >= 3 else "",
                request.group_instance_id if v >= 3 else None,
                request.generation_id if v >= 3 else -1, now)
        errors: dict[tuple[str, int], ErrorCode] = {}
        todo: dict[tuple[str, int], CommittedOffset] = {}
        topics_image = self.image().topics.by_name
        for t in request.topics:
            for p in t.partitions:
                tp = (t.name, p.partition_index)
                ti = topics_image.get(t.name)
                if ti is None or p.partition_index not in ti.partitions:
                    errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                if err:
                    errors[tp] = err
                    continue
                meta = p.committed_metadata or ""
                if len(meta.encode()) > OFFSET_METADATA_MAX_BYTES:
                    errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                    continue
                epoch = p.committed_leader_epoch if v >= 2 else -1
                todo[tp] = CommittedOffset(p.committed_offset, epoch, meta, now)
        if todo:
            code = await self._write_txn_offsets(gid, request.producer_id,
                                                 request.producer_epoch, todo, now)
            for tp in todo:
                errors[tp] = code
        by_topic: dict[str, list[Any]] = {}
        for (topic, pid), code in errors.items():
            by_topic.setdefault(topic, []).append(
                R.TxnOffsetCommitResponsePartition(partition_index=pid, error_code=int(code)))
        return R.cls(throttle_time_ms=0, topics=[
            R.TxnOffsetCommitResponseTopic(name=n, partitions=ps) for n, ps in by_topic.items()])

    async def _write_txn_offsets(self, gid: str, producer_id: int, producer_epoch: int,
                                 todo: dict[tuple[str, int], CommittedOffset], now: int
                                 ) -> ErrorCode:
        p = self.partition_of(gid)
        hp = self.rm.partitions.get((GROUP_METADATA_TOPIC, p))
        if hp is None or p not in self.owned:
            return ErrorCode.NOT_COORDINATOR
        # The next sequence of this producer in the partition (0 for a new epoch).
        entry = hp.producers.last_entry(producer_id)
        seq = 0
        if entry is not None and entry.producer_epoch == producer_epoch and entry.last_seq >= 0:
            seq = 0 if entry.last_seq == _INT32_MAX else entry.last_seq + 1
        batch = build_batch(
            [SimpleRecord(offset_commit_value(o.offset, o.metadata, o.commit_timestamp,
                                              o.leader_epoch),
                          key=offset_commit_key(gid, tp[0], tp[1]), timestamp=now)
             for tp, o in todo.items()],
            base_timestamp=now, producer_id=producer_id, producer_epoch=producer_epoch,
            base_sequence=seq, is_transactional=True)
        # Pending from the moment the records are in the log (as Kafka's prepareTxnOffsetCommit):
        # a marker may complete the transaction before our acks=all wait ends. The append
        # happens synchronously at the log end offset, read here with no await in between.
        base = hp.log.log_end_offset
        stamped = {tp: replace(o, record_offset=base + i) for i, (tp, o) in enumerate(todo.items())}
        pending = self.coordinator.pending_txn
        pending.add(producer_id, gid, stamped)
        code, first = await self._append_batch(gid, batch)
        if first >= 0 and first != base:
            pending.discard(producer_id, gid, stamped)
            stamped = {tp: replace(o, record_offset=first + i)
                       for i, (tp, o) in enumerate(todo.items())}
            if not code:
                pending.add(producer_id, gid, stamped)
        elif code:
            pending.discard(producer_id, gid, stamped)
        if code:
            logger.info("TxnOffsetCommit of group %s by producer %d failed: %s", gid,
                        producer_id, code.name)
        return code
