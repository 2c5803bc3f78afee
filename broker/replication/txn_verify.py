"""Transaction verification on the produce path (KIP-890 part 1, Kafka 3.6+).

A transactional batch from a producer (id, epoch) that has no open transaction on the
partition yet would start one there. Before appending it, the leader asks the transaction
coordinator (the leader of the id's ``__transaction_state`` partition) whether the partition
is in the producer's ongoing transaction: AddPartitionsToTxn v4+, the brokers' batched form,
with ``verify_only`` (served by ``broker/transactions/apis.py``). Only then is the batch
appended; a partition the producer never added is refused with INVALID_TXN_STATE, so a late
or stray write can no longer open a transaction nobody will ever end (a hanging transaction).

The open transaction in the partition's producer state is the cache, as in Kafka: once the
first batch of a transaction is appended, the next batches of that (producer id, epoch) on the
partition go straight to the log; the next transaction pays one round trip again.

A verification guard (Kafka's ``VerificationGuard``) closes the race between the answer and
the append: the guard of (partition, producer id) is created when a verification starts and
dropped when a transaction marker for that producer is written to the partition
(``broker/replication/txn_apis.py``), so a batch verified for a transaction the coordinator
has meanwhile aborted is refused instead of opening a new one.

Errors, as Kafka's ``AddPartitionsToTxnManager`` and ``ReplicaManager.appendRecords``:
PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH; a top-level CLUSTER_AUTHORIZATION_FAILED and
TRANSACTION_ABORTABLE become INVALID_TXN_STATE; the coordinator being unreachable, moving or
loading, and CONCURRENT_TRANSACTIONS become NOT_ENOUGH_REPLICAS, which every client retries
without a metadata refresh. A coordinator that does not serve AddPartitionsToTxn v4 skips the
verification. ``transaction.partition.verification.enable`` (default true, a dynamic broker config) switches
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, UnsupportedVersionError
from broker.protocol.messages import add_partitions_to_txn
from broker.transactions.records import partition_for
from storage.errors import StorageError
from storage.producer_state import batch_headers

if TYPE_CHECKING:
    from broker.replication.replica_manager import ReplicaManager

__all__ = ["TxnVerifier", "produce_error"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]
TRANSACTION_STATE_TOPIC = "__transaction_state"
VERIFICATION_KEY = "transaction.partition.verification.enable"
MIN_VERIFY_VERSION = 4  # the batched broker form with verify_only
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0  # Kafka: request.timeout.ms of the inter-broker send thread

# Coordinator answers a producer retries: Kafka turns them into NOT_ENOUGH_REPLICAS (retriable,
# no metadata refresh) for the clients of Produce versions without the newer errors.
_RETRY_AS_NOT_ENOUGH_REPLICAS = frozenset({
    ErrorCode.NETWORK_EXCEPTION, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR,
    ErrorCode.CONCURRENT_TRANSACTIONS})


def produce_error(code: ErrorCode) -> ErrorCode:
    """The Produce answer for a partition whose verification answered ``code``."""
    if code in _RETRY_AS_NOT_ENOUGH_REPLICAS:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return code


def _partition_error(code: int) -> ErrorCode:
    """AddPartitionsToTxnManager's reading of one partition's answer."""
    if code == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if code == ErrorCode.TRANSACTION_ABORTABLE:
        return ErrorCode.INVALID_TXN_STATE
    return ErrorCode(code)


class TxnVerifier:
    """The leader's side of verification: which batches need it, the round trip to the
    coordinator, the guards."""

    def __init__(self, replica_manager: ReplicaManager) -> None:
        self.rm = replica_manager
        config = replica_manager.config
        self._static_enabled: bool = config.get(VERIFICATION_KEY)
        self.listener = config.inter_broker_listener_name
        self._guards: dict[tuple[TP, int], object] = {}
        self._conns: dict[int, KafkaConnection] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # For the metrics (broker/admin/metrics.py): round trips made, their total time,
        # partitions whose verification failed.
        self.round_trips = 0
        self.round_trip_ms_total = 0.0
        self.refused = 0

    @property
    def enabled(self) -> bool:
        """``transaction.partition.verification.enable``: dynamic, as Kafka's (this broker's
        value, then the cluster default, then the static file)."""
        configs = self.rm.image.configs
        for name in (str(self.rm.node_id), ""):
            value = configs.broker_config(name).get(VERIFICATION_KEY)
            if value is not None:
                return value.strip().lower() == "true"
        return self._static_enabled

    async def close(self) -> None:
        for c in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await c.close()
        self._conns.clear()

    # -- which batches ------------------------------------------------------------------------

    def needs_verification(self, topic: str, partition: int, records: Any
                           ) -> tuple[int, int] | None:
        """(producer id, epoch) when the first batch is transactional and would open a
        transaction on a partition this broker leads; None otherwise (the append decides)."""
        if not self.enabled or records is None or len(records) == 0:
            return None
        hp = self.rm.partitions.get((topic, partition))
        if hp is None or not hp.state.is_leader:
            return None
        try:
            headers = batch_headers(records)
        except StorageError:
            return None
        if not headers:
            return None
        h = headers[0]
        if not h.is_transactional or h.is_control or h.producer_id < 0:
            return None
        entry = hp.producers.last_entry(h.producer_id)
        if (entry is not None and entry.producer_epoch == h.producer_epoch
                and entry.has_ongoing_txn):
            return None
        return h.producer_id, h.producer_epoch

    # -- guards -------------------------------------------------------------------------------

    def start_guard(self, tp: TP, producer_id: int) -> object:
        return self._guards.setdefault((tp, producer_id), object())

    def guard_holds(self, tp: TP, producer_id: int, guard: object) -> bool:
        """Whether a batch verified under ``guard`` may still open a transaction on ``tp``:
        no marker for the producer reached the partition since the verification started."""
        return self._guards.get((tp, producer_id)) is guard

    def drop_guard(self, tp: TP, producer_id: int) -> None:
        self._guards.pop((tp, producer_id), None)

    def guard_count(self) -> int:
        return len(self._guards)

    # -- the round trip -----------------------------------------------------------------------

    async def _connection(self, broker_id: int) -> KafkaConnection | None:
        conn = self._conns.get(broker_id)
        if conn is not None and not conn.closed:
            return conn
        lock = self._locks.setdefault(broker_id, asyncio.Lock())
        async with lock:
            conn = self._conns.get(broker_id)
            if conn is not None and not conn.closed:
                return conn
            reg = self.rm.image.cluster.brokers.get(broker_id)
            ep = None if reg is None or reg.fenced else reg.listener(self.listener)
            if ep is None:
                return None
            conn = await KafkaConnection.connect(
                ep.host, ep.port, client_id=f"broker-{self.rm.node_id}-txn-verification",
                node_id=broker_id, timeout_s=CONNECT_TIMEOUT_S,
                security=self.rm.inter_broker_security)
            self._conns[broker_id] = conn
            return conn

    def _coordinator_id(self, transactional_id: str) -> int | None:
        t = self.rm.image.topics.by_name.get(TRANSACTION_STATE_TOPIC)
        if t is None or not t.partitions:
            return None  # no transaction state yet: the transaction cannot have begun
        reg = t.partitions.get(partition_for(transactional_id, len(t.partitions)))
        if reg is None or reg.leader < 0:
            return None
        return int(reg.leader)

    async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                     tps: Iterable[TP]) -> dict[TP, ErrorCode]:
        """The coordinator's answer for each partition (NONE: in the ongoing transaction),
        already read as Kafka's AddPartitionsToTxnManager reads it."""
        parts = sorted(set(tps))
        started = time.monotonic()
        try:
            out = await self._verify(transactional_id, producer_id, producer_epoch, parts)
        finally:
            self.round_trips += 1
            self.round_trip_ms_total += (time.monotonic() - started) * 1000
        self.refused += sum(1 for c in out.values() if c)
        return out

    async def _verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                      parts: list[TP]) -> dict[TP, ErrorCode]:
        broker_id = self._coordinator_id(transactional_id)
        if broker_id is None:
            return dict.fromkeys(parts, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        Q = add_partitions_to_txn.REQUEST
        by_topic: dict[str, list[int]] = {}
        for t, p in parts:
            by_topic.setdefault(t, []).append(p)
        request = Q.cls(transactions=[Q.AddPartitionsToTxnTransaction(
            transactional_id=transactional_id, producer_id=producer_id,
            producer_epoch=producer_epoch, verify_only=True,
            topics=[Q.AddPartitionsToTxnTopic(name=t, partitions=ps)
                    for t, ps in by_topic.items()])])
        try:
            conn = await self._connection(broker_id)
            if conn is None:
                return dict.fromkeys(parts, ErrorCode.COORDINATOR_NOT_AVAILABLE)
            version = conn.version_for(ApiKey.ADD_PARTITIONS_TO_TXN)
            if version < MIN_VERIFY_VERSION:
                raise UnsupportedVersionError(f"AddPartitionsToTxn v{version}")
            resp = await conn.send(ApiKey.ADD_PARTITIONS_TO_TXN, request, version,
                                   timeout_s=REQUEST_TIMEOUT_S)
        except UnsupportedVersionError:
            # Kafka: a coordinator that cannot verify lets the produce through.
            logger.warning("Broker %d cannot verify transactions (no AddPartitionsToTxn v4); "
                           "appending unverified", broker_id)
            return dict.fromkeys(parts, ErrorCode.NONE)
        except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
            logger.info("Transaction verification with broker %d failed: %s", broker_id, e)
            return dict.fromkeys(parts, ErrorCode.NETWORK_EXCEPTION)
        if resp.error_code:
            code = (ErrorCode.INVALID_TXN_STATE
                    if resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                    else ErrorCode(resp.error_code))
            return dict.fromkeys(parts, code)
        # A partition the answer leaves out was not verified.
        out = dict.fromkeys(parts, ErrorCode.INVALID_TXN_STATE)
        for result in resp.results_by_transaction:
            if result.transactional_id != transactional_id:
                continue
            for topic in result.topic_results:
                for pr in topic.results_by_partition:
                    tp = (topic.name, pr.partition_index)
                    if tp in out:
                        out[tp] = _partition_error(pr.partition_error_code)
        return out
