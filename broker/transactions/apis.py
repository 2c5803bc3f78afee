"""The transaction coordinator's wire APIs: InitProducerId (with a transactional id; without
one it stays the idempotent producers' answer of ``broker.admin.producer_ids``),
AddPartitionsToTxn (the client form v0-3 and the brokers' batched form v4+ with
``verify_only``), AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions, answered
from the pure ``TransactionCoordinator`` and written through ``TransactionStateManager``.
FindCoordinator with key type 1 is ``broker.groups.apis``' (it creates
``__transaction_state`` on first use).

Errors follow Kafka's versions: PRODUCER_FENCED is INVALID_PRODUCER_EPOCH for InitProducerId
below v4 and for AddPartitionsToTxn, AddOffsetsToTxn and EndTxn below v2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broker.admin.producer_ids import ProducerIdManager, init_producer_id_response
from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.groups.metadata_manager import GROUP_METADATA_TOPIC
from broker.groups.records import partition_for as group_partition_for
from broker.network.context import RequestContext
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    describe_transactions,
    end_txn,
    init_producer_id,
    list_transactions,
)
from broker.replication.replica_manager import ReplicaManager
from broker.transactions.manager import TransactionStateManager
from broker.transactions.state import TP, TxnState
from kraft.controller.results import ApiError
from kraft.image import MetadataImage

__all__ = ["ADVERTISED", "TransactionApis"]

ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 5),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 4),
    # v5 is KIP-890 part 2 (an epoch bump at every end), unstable in Kafka 4.x.
    ApiKey.END_TXN: (0, 4),
    ApiKey.DESCRIBE_TRANSACTIONS: (0, 0),
    ApiKey.LIST_TRANSACTIONS: (0, 1),
}


def _fenced(code: ErrorCode, version: int, since: int) -> int:
    if code == ErrorCode.PRODUCER_FENCED and version < since:
        return int(ErrorCode.INVALID_PRODUCER_EPOCH)
    return int(code)


class TransactionApis(TransactionStateManager):
    """``handlers``: ApiKey -> handler for the broker listener."""

    def __init__(self, config: KafkaConfig, replica_manager: ReplicaManager,
                 image: Callable[[], MetadataImage], producer_ids: ProducerIdManager,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(config, replica_manager, image, clock)
        self.producer_ids = producer_ids
        self.handlers: dict[int, Any] = {
            ApiKey.INIT_PRODUCER_ID: self.handle_init_producer_id,
            ApiKey.ADD_PARTITIONS_TO_TXN: self.handle_add_partitions_to_txn,
            ApiKey.ADD_OFFSETS_TO_TXN: self.handle_add_offsets_to_txn,
            ApiKey.END_TXN: self.handle_end_txn,
            ApiKey.DESCRIBE_TRANSACTIONS: self.handle_describe_transactions,
            ApiKey.LIST_TRANSACTIONS: self.handle_list_transactions,
        }

    # -- InitProducerId (22) -------------------------------------------------------------

    async def handle_init_producer_id(self, ctx: RequestContext, header: RequestHeader,
                                      request: Any) -> Any:
        R = init_producer_id.RESPONSE
        v = header.api_version
        tid = request.transactional_id
        if tid is None:
            return await init_producer_id_response(self.producer_ids, request)

        def answer(code: ErrorCode, pid: int = -1, epoch: int = -1) -> Any:
            return R.cls(throttle_time_ms=0, error_code=_fenced(code, v, 4), producer_id=pid,
                         producer_epoch=epoch)

        pid, epoch = request.producer_id, request.producer_epoch
        if tid == "" or (pid == -1) != (epoch == -1):
            return answer(ErrorCode.INVALID_REQUEST)
        err = self.txn_error(tid)
        if err:
            return answer(err)
        expected = None if pid == -1 else (pid, epoch)
        timeout = request.transaction_timeout_ms
        now = self.clock.wall_ms()
        step = self.coordinator.init_producer_id(tid, timeout, expected, now)
        if step.need_producer_id:
            try:
                new_pid = await self.producer_ids.generate()
            except ApiError as e:
                return answer(ErrorCode(e.code))
            err = self.txn_error(tid)
            if err:
                return answer(err)
            step = self.coordinator.init_producer_id(tid, timeout, expected,
                                                     self.clock.wall_ms(), new_pid)
        code = await self.run_step(tid, step)
        if code or step.write is None:
            return answer(code)
        return answer(ErrorCode.NONE, step.write.producer_id, step.write.producer_epoch)

    # -- AddPartitionsToTxn (24) -----------------------------------------------------------

    def _unknown(self, parts: list[TP]) -> set[TP]:
        topics = self.image().topics.by_name
        out = set()
        for t, p in parts:
            ti = topics.get(t)
            if ti is None or p not in ti.partitions:
                out.add((t, p))
        return out

    async def _add(self, tid: str, pid: int, epoch: int, parts: list[TP], verify: bool
                   ) -> dict[TP, ErrorCode]:
        if not tid:
            return dict.fromkeys(parts, ErrorCode.INVALID_REQUEST)
        err = self.txn_error(tid)
        if err:
            return dict.fromkeys(parts, err)
        if verify:
            return self.coordinator.verify_partitions(tid, pid, epoch, parts)
        unknown = self._unknown(parts)
        if unknown:
            return {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown
                    else ErrorCode.OPERATION_NOT_ATTEMPTED for tp in parts}
        step = self.coordinator.add_partitions(tid, pid, epoch, parts, self.clock.wall_ms())
        return dict.fromkeys(parts, await self.run_step(tid, step))

    @staticmethod
    def _topic_results(R: Any, results: dict[TP, ErrorCode], v: int, since: int) -> list[Any]:
        by_topic: dict[str, list[Any]] = {}
        for (t, p), code in results.items():
            by_topic.setdefault(t, []).append(R.AddPartitionsToTxnPartitionResult(
                partition_index=p, partition_error_code=_fenced(code, v, since)))
        return [R.AddPartitionsToTxnTopicResult(name=t, results_by_partition=ps)
                for t, ps in by_topic.items()]

    async def handle_add_partitions_to_txn(self, ctx: RequestContext, header: RequestHeader,
                                           request: Any) -> Any:
        R = add_partitions_to_txn.RESPONSE
        v = header.api_version
        if v <= 3:
            parts = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
            results = await self._add(request.v3_and_below_transactional_id,
                                      request.v3_and_below_producer_id,
                                      request.v3_and_below_producer_epoch, parts, False)
            return R.cls(throttle_time_ms=0, results_by_topic_v3_and_below=self._topic_results(
                R, results, v, 2))
        outs = await asyncio.gather(*(self._add(
            txn.transactional_id, txn.producer_id, txn.producer_epoch,
            [(t.name, p) for t in txn.topics for p in t.partitions], txn.verify_only)
            for txn in request.transactions))
        return R.cls(throttle_time_ms=0, error_code=0, results_by_transaction=[
            R.AddPartitionsToTxnResult(transactional_id=txn.transactional_id,
                                       topic_results=self._topic_results(R, res, v, 2))
            for txn, res in zip(request.transactions, outs, strict=True)])

    # -- AddOffsetsToTxn (25) ---------------------------------------------------------------

    async def handle_add_offsets_to_txn(self, ctx: RequestContext, header: RequestHeader,
                                        request: Any) -> Any:
        R = add_offsets_to_txn.RESPONSE
        v = header.api_version
        t = self.image().topics.by_name.get(GROUP_METADATA_TOPIC)
        n = len(t.partitions) if t is not None and t.partitions else self.config.get(
            "offsets.topic.num.partitions")
        tp = (GROUP_METADATA_TOPIC, group_partition_for(request.group_id, n))
        tid = request.transactional_id
        if not tid or not request.group_id:
            code = ErrorCode.INVALID_REQUEST
        elif err := self.txn_error(tid):
            code = err
        else:
            step = self.coordinator.add_partitions(tid, request.producer_id,
                                                   request.producer_epoch, [tp],
                                                   self.clock.wall_ms())
            code = await self.run_step(tid, step)
        return R.cls(throttle_time_ms=0, error_code=_fenced(code, v, 2))

    # -- EndTxn (26) ------------------------------------------------------------------------

    async def handle_end_txn(self, ctx: RequestContext, header: RequestHeader,
                             request: Any) -> Any:
        R = end_txn.RESPONSE
        v = header.api_version
        tid = request.transactional_id
        if not tid:
            code = ErrorCode.INVALID_REQUEST
        elif err := self.txn_error(tid):
            code = err
        else:
            step = self.coordinator.end_txn(tid, request.producer_id, request.producer_epoch,
                                            request.committed, self.clock.wall_ms())
            code = await self.run_step(tid, step)
        return R.cls(throttle_time_ms=0, error_code=_fenced(code, v, 2),
                     producer_id=request.producer_id, producer_epoch=request.producer_epoch)

    # -- DescribeTransactions (65) / ListTransactions (66) ------------------------------------

    def handle_describe_transactions(self, ctx: RequestContext, header: RequestHeader,
                                     request: Any) -> Any:
        R = describe_transactions.RESPONSE
        out = []
        for tid in request.transactional_ids:
            err = self.txn_error(tid)
            e = None if err else self.coordinator.describe(tid)
            if e is None:
                out.append(R.TransactionState(
                    error_code=int(err or ErrorCode.TRANSACTIONAL_ID_NOT_FOUND),
                    transactional_id=tid, transaction_state="", transaction_timeout_ms=0,
                    transaction_start_time_ms=-1, producer_id=-1, producer_epoch=-1,
                    topics=[]))
                continue
            by_topic: dict[str, list[int]] = {}
            parts = e.partitions
            if e.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                parts = frozenset(self.unmarked.get(tid, parts))
            for t, p in sorted(parts):
                by_topic.setdefault(t, []).append(p)
            out.append(R.TransactionState(
                error_code=0, transactional_id=tid, transaction_state=e.state.display,
                transaction_timeout_ms=e.timeout_ms, transaction_start_time_ms=e.txn_start_ms,
                producer_id=e.producer_id, producer_epoch=e.producer_epoch,
                topics=[R.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()]))
        return R.cls(throttle_time_ms=0, transaction_states=out)

    def handle_list_transactions(self, ctx: RequestContext, header: RequestHeader,
                                 request: Any) -> Any:
        R = list_transactions.RESPONSE
        states: set[TxnState] = set()
        unknown = []
        for name in request.state_filters:
            s = TxnState.from_display(name)
            if s is None:
                unknown.append(name)
            else:
                states.add(s)
        pids = set(request.producer_id_filters)
        duration = request.duration_filter if header.api_version >= 1 else -1
        now = self.clock.wall_ms()
        loading = any(not o.loaded for o in self.owned.values())
        out = []
        for e in self.coordinator.entries():
            # As Kafka's listTransactionStates: unknown state names match nothing, and the
            # duration counts from the transaction's start (-1 when none started).
            if (request.state_filters and e.state not in states) or (
                    pids and e.producer_id not in pids) or e.state == TxnState.DEAD:
                continue
            if duration >= 0 and now - e.txn_start_ms <= duration:
                continue
            if self.txn_error(e.transactional_id):
                continue
            out.append(R.TransactionState(transactional_id=e.transactional_id,
                                          producer_id=e.producer_id,
                                          transaction_state=e.state.display))
        return R.cls(throttle_time_ms=0,
                     error_code=int(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading else 0),
                     unknown_state_filters=unknown, transaction_states=out)
