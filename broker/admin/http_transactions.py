"""HTTP admin routes for transactions, read over the Kafka wire protocol like the consumer
group routes (``http_groups.py``), so they do not depend on the coordinator's internals:

- ``GET /v1/transactions``: ListTransactions on every broker (each lists the ids it
  coordinates), then DescribeTransactions at each coordinator for their producer epoch,
  timeout, start time and partitions (``kafka-transactions list`` + ``describe``);
- ``GET /v1/transactions/{transactional_id}``: FindCoordinator (key type 1) and
  DescribeTransactions at the coordinator;
- ``GET /v1/partitions/{topic}/{partition}/producers``: DescribeProducers at the partition's
  leader (``kafka-transactions describe-producers``): the producers of the partition's producer
  state and the first offset of each one's open transaction, the way to spot a hanging one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from broker.admin.http_common import (
    READ_TIMEOUT_S,
    HttpError,
    RouteBase,
    bad_field,
    json_response,
    kafka_error,
    path_int,
)
from broker.client import KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import (
    describe_producers,
    describe_transactions,
    list_transactions,
)

__all__ = ["TXN_STATES", "TransactionRoutes"]

# The states ListTransactions and DescribeTransactions name (Kafka's TransactionState).
TXN_STATES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
              "CompleteAbort", "Dead", "PrepareEpochFence")
MAX_TRANSACTIONAL_ID = 32767  # a Kafka STRING


def _describe_json(st: Any, coordinator: int) -> dict[str, Any]:
    start = st.transaction_start_time_ms
    return {
        "transactional_id": st.transactional_id, "coordinator_id": coordinator,
        "state": st.transaction_state, "producer_id": st.producer_id,
        "producer_epoch": st.producer_epoch,
        "transaction_timeout_ms": st.transaction_timeout_ms,
        "transaction_start_time_ms": start if start >= 0 else None,
        "partitions": [{"topic": t.topic, "partitions": sorted(t.partitions)}
                       for t in sorted(st.topics, key=lambda t: t.topic)],
    }


class TransactionRoutes(RouteBase):
    """GET /v1/transactions[/{transactional_id}], GET
    /v1/partitions/{topic}/{partition}/producers."""

    async def list_transactions(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in TXN_STATES:
            raise bad_field("state", f"must be one of {', '.join(TXN_STATES)}, got {state!r}")
        client = await self._kafka()
        await self._kafka_call("Metadata", lambda c: c.metadata())
        listed: dict[int, list[str]] = {}  # coordinator -> its ids
        errors: list[str] = []
        LQ = list_transactions.REQUEST

        async def ask(broker_id: int) -> None:
            try:
                resp = await client.send_to(broker_id, ApiKey.LIST_TRANSACTIONS, LQ.cls(
                    state_filters=[state] if state else [], producer_id_filters=[]),
                    timeout_s=READ_TIMEOUT_S)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                errors.append(f"broker {broker_id}: {e}")
                return
            if resp.error_code:
                errors.append(f"broker {broker_id}: {ErrorCode(resp.error_code).name}")
                return
            listed[broker_id] = [t.transactional_id for t in resp.transaction_states]

        brokers = sorted(client.cluster.brokers)
        await asyncio.gather(*(ask(b) for b in brokers))
        if errors and not listed:
            raise HttpError(503, "COORDINATOR_NOT_AVAILABLE",
                            "No broker listed its transactions: " + "; ".join(errors))
        out: dict[str, dict[str, Any]] = {}
        DQ = describe_transactions.REQUEST

        async def describe(broker_id: int, ids: list[str]) -> None:
            try:
                resp = await client.send_to(broker_id, ApiKey.DESCRIBE_TRANSACTIONS,
                                            DQ.cls(transactional_ids=ids),
                                            timeout_s=READ_TIMEOUT_S)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError):
                return  # moved or gone meanwhile: left out, as a later listing would
            for st in resp.transaction_states:
                if not st.error_code and (state is None or st.transaction_state == state):
                    out[st.transactional_id] = _describe_json(st, broker_id)

        await asyncio.gather(*(describe(b, ids) for b, ids in listed.items() if ids))
        return json_response({"transactions": [out[t] for t in sorted(out)]})

    async def get_transaction(self, request: web.Request) -> web.Response:
        tid = request.match_info["transactional_id"]
        if not tid or len(tid) > MAX_TRANSACTIONAL_ID:
            raise bad_field("transactional_id", "must be 1-32767 characters")
        coordinator = await self._coordinator_of(tid, key_type=1)
        await self._kafka_call("Metadata", lambda c: c.metadata())
        resp = await self._kafka_call("DescribeTransactions", lambda c: c.send_to(
            coordinator, ApiKey.DESCRIBE_TRANSACTIONS,
            describe_transactions.REQUEST.cls(transactional_ids=[tid]),
            check=lambda r: r.transaction_states[0].error_code
            if r.transaction_states[0].error_code != ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
            else None,
            timeout_s=READ_TIMEOUT_S))
        st = resp.transaction_states[0]
        if st.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND:
            raise HttpError(404, "TRANSACTIONAL_ID_NOT_FOUND",
                            f"Transactional id {tid!r} does not exist")
        if st.error_code:
            raise kafka_error(st.error_code, None)
        return json_response(_describe_json(st, coordinator))

    async def get_partition_producers(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        t = self._topic(topic, "topic")
        partition = path_int(request, "partition")
        if partition not in t.partitions:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION",
                            f"Partition {topic}-{partition} does not exist")
        Q = describe_producers.REQUEST
        await self._kafka_call("Metadata", lambda c: c.metadata([topic]))
        resp = await self._kafka_call("DescribeProducers", lambda c: c.send_to_leader(
            topic, partition, ApiKey.DESCRIBE_PRODUCERS,
            Q.cls(topics=[Q.TopicRequest(name=topic, partition_indexes=[partition])]),
            check=lambda r: r.topics[0].partitions[0].error_code,
            timeout_s=READ_TIMEOUT_S))
        p = resp.topics[0].partitions[0]
        if p.error_code:
            raise kafka_error(p.error_code, p.error_message)
        client = await self._kafka()
        return json_response({
            "topic": topic, "partition": partition,
            "leader_id": client.leader_for(topic, partition),
            "producers": [{
                "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
                "last_sequence": s.last_sequence, "last_timestamp": s.last_timestamp,
                "coordinator_epoch": s.coordinator_epoch,
                "current_txn_start_offset": s.current_txn_start_offset
                if s.current_txn_start_offset >= 0 else None,
            } for s in sorted(p.active_producers, key=lambda s: s.producer_id)]})
