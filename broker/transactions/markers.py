"""The transaction markers sender (Kafka's TransactionMarkerChannelManager): once a
PrepareCommit/PrepareAbort is written, WriteTxnMarkers goes to the leader of every partition
of the transaction (by this broker's metadata image, over the inter-broker listener), one
request at a time per leader carrying the markers of every transaction waiting for it, and is retried with backoff until every partition answered.
Partitions whose topic is gone are dropped, as Kafka does; a leader that answers that this
coordinator or producer epoch is fenced stops the sending (a newer coordinator owns it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, UnsupportedVersionError
from broker.protocol.messages import write_txn_markers
from broker.transactions.state import TP
from kraft.image import MetadataImage

__all__ = ["MarkerSender"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
# Kafka gives up on these: the transaction belongs to a newer coordinator or producer.
_FENCED = (ErrorCode.TRANSACTION_COORDINATOR_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH,
           ErrorCode.PRODUCER_FENCED)


@dataclass(slots=True)
class _Queued:
    """One transaction's markers waiting for the next request to a broker."""

    producer_id: int
    epoch: int
    committed: bool
    coordinator_epoch: int
    tps: list[TP]
    fut: asyncio.Future[tuple[set[TP], bool]]


class MarkerSender:
    """``send(...)`` returns True once every partition has its marker, False when the
    sending was abandoned (fenced, or ``still_valid()`` turned False)."""

    def __init__(self, node_id: int, listener: str, image: Callable[[], MetadataImage],
                 security: Any = None) -> None:
        self.node_id = node_id
        self.security = security  # TLS/SASL towards the inter-broker listener
        self.listener = listener
        self.image = image
        self._conns: dict[int, KafkaConnection] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._queues: dict[int, list[_Queued]] = {}
        self._drainers: dict[int, asyncio.Task[None]] = {}
        self.rounds = 0  # requests sent, for tests and logs

    async def close(self) -> None:
        for task in list(self._drainers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for c in self._conns.values():
            with contextlib.suppress(Exception):
                await c.close()
        self._conns.clear()

    async def _connection(self, broker_id: int) -> KafkaConnection | None:
        conn = self._conns.get(broker_id)
        if conn is not None and not conn.closed:
            return conn
        lock = self._locks.setdefault(broker_id, asyncio.Lock())
        async with lock:
            conn = self._conns.get(broker_id)
            if conn is not None and not conn.closed:
                return conn
            reg = self.image().cluster.brokers.get(broker_id)
            ep = None if reg is None or reg.fenced else reg.listener(self.listener)
            if ep is None:
                return None
            conn = await KafkaConnection.connect(
                ep.host, ep.port, client_id=f"broker-{self.node_id}-txn-markers",
                node_id=broker_id, timeout_s=CONNECT_TIMEOUT_S, security=self.security)
            self._conns[broker_id] = conn
            return conn

    async def send(self, producer_id: int, producer_epoch: int, committed: bool,
                   coordinator_epoch: int, partitions: frozenset[TP],
                   still_valid: Callable[[], bool],
                   remaining: set[TP] | None = None) -> bool:
        """``remaining`` (default: a copy of ``partitions``) shrinks as partitions get their
        marker or are dropped, so the caller can show what is left."""
        if remaining is None:
            remaining = set(partitions)
        attempt = 0
        while remaining:
            if not still_valid():
                return False
            image = self.image()
            by_leader: dict[int, list[TP]] = {}
            for tp in sorted(remaining):
                t = image.topics.by_name.get(tp[0])
                reg = None if t is None else t.partitions.get(tp[1])
                if reg is None:
                    logger.info("Dropping the marker of producer %d for %s-%d: the partition "
                                "no longer exists", producer_id, tp[0], tp[1])
                    remaining.discard(tp)
                elif reg.leader >= 0:
                    by_leader.setdefault(reg.leader, []).append(tp)
            results = await asyncio.gather(*(
                self._send_to(b, tps, producer_id, producer_epoch, committed,
                              coordinator_epoch) for b, tps in by_leader.items()))
            for done, fenced in results:
                if fenced:
                    return False
                remaining -= done
            if remaining:
                await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1
                if attempt % 50 == 0:
                    logger.warning("Markers of producer %d still pending for %d partition(s) "
                                   "after %d rounds", producer_id, len(remaining), attempt)
        return True

    async def _send_to(self, broker_id: int, tps: list[TP], producer_id: int, epoch: int,
                       committed: bool, coordinator_epoch: int) -> tuple[set[TP], bool]:
        """Queue one transaction's markers for ``broker_id``; (partitions done, fenced)."""
        fut: asyncio.Future[tuple[set[TP], bool]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(broker_id, []).append(
            _Queued(producer_id, epoch, committed, coordinator_epoch, tps, fut))
        if broker_id not in self._drainers:
            self._drainers[broker_id] = asyncio.get_running_loop().create_task(
                self._drain(broker_id), name=f"txn-markers-to-{broker_id}")
        return await fut

    async def _drain(self, broker_id: int) -> None:
        """One request at a time per broker, carrying every marker queued meanwhile (Kafka's
        TransactionMarkerChannelManager batches the same way)."""
        try:
            while True:
                batch = [q for q in self._queues.pop(broker_id, []) if not q.fut.done()]
                if not batch:
                    return
                results = await self._request(broker_id, batch)
                for q, r in zip(batch, results, strict=True):
                    if not q.fut.done():
                        q.fut.set_result(r)
        finally:
            self._drainers.pop(broker_id, None)
            for q in self._queues.pop(broker_id, []):
                if not q.fut.done():
                    q.fut.set_result((set(), False))

    async def _request(self, broker_id: int, batch: list[_Queued]
                       ) -> list[tuple[set[TP], bool]]:
        Q = write_txn_markers.REQUEST
        markers = []
        for q in batch:
            by_topic: dict[str, list[int]] = {}
            for t, p in q.tps:
                by_topic.setdefault(t, []).append(p)
            markers.append(Q.WritableTxnMarker(
                producer_id=q.producer_id, producer_epoch=q.epoch,
                transaction_result=q.committed,
                topics=[Q.WritableTxnMarkerTopic(name=t, partition_indexes=ps)
                        for t, ps in by_topic.items()],
                coordinator_epoch=q.coordinator_epoch))
        self.rounds += 1
        nothing: list[tuple[set[TP], bool]] = [(set(), False) for _ in batch]
        try:
            conn = await self._connection(broker_id)
            if conn is None:
                return nothing
            resp = await conn.send(ApiKey.WRITE_TXN_MARKERS, Q.cls(markers=markers),
                                   timeout_s=REQUEST_TIMEOUT_S)
        except (KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError, OSError) as e:
            logger.debug("WriteTxnMarkers to broker %d failed: %s", broker_id, e)
            return nothing
        # Answers come in request order; match by producer id if a leader reorders them.
        answers = list(resp.markers)
        if [m.producer_id for m in answers] != [q.producer_id for q in batch]:
            by_pid = {m.producer_id: m for m in answers}
            answers = [by_pid.get(q.producer_id) for q in batch]
        return [self._read(q, m) for q, m in zip(batch, answers, strict=True)]

    @staticmethod
    def _read(q: _Queued, answer: Any) -> tuple[set[TP], bool]:
        done: set[TP] = set()
        if answer is None:
            return done, False
        for t in answer.topics:
            for p in t.partitions:
                code = p.error_code
                if code == ErrorCode.NONE:
                    done.add((t.name, p.partition_index))
                elif code in _FENCED:
                    logger.warning("Markers of producer %d fenced at %s-%d: %s",
                                   q.producer_id, t.name, p.partition_index,
                                   ErrorCode(code).name)
                    return done, True
        return done, False
