"""The transaction markers sender (Kafka's TransactionMarkerChannelManager): once a
PrepareCommit/PrepareAbort is written, WriteTxnMarkers goes to the leader of every partition
of the transaction (by this broker's metadata image, over the inter-broker listener), one
request per leader per round, and is retried with backoff until every partition answered.
Partitions whose topic is gone are dropped, as Kafka does; a leader that answers that this
coordinator or producer epoch is fenced stops the sending (a newer coordinator owns it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

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


class MarkerSender:
    """``send(...)`` returns True once every partition has its marker, False when the
    sending was abandoned (fenced, or ``still_valid()`` turned False)."""

    def __init__(self, node_id: int, listener: str, image: Callable[[], MetadataImage]) -> None:
        self.node_id = node_id
        self.listener = listener
        self.image = image
        self._conns: dict[int, KafkaConnection] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.rounds = 0  # requests sent, for tests and logs

    async def close(self) -> None:
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
                node_id=broker_id, timeout_s=CONNECT_TIMEOUT_S)
            self._conns[broker_id] = conn
            return conn

    async def send(self, producer_id: int, producer_epoch: int, committed: bool,
                   coordinator_epoch: int, partitions: frozenset[TP],
                   still_valid: Callable[[], bool]) -> bool:
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
        Q = write_txn_markers.REQUEST
        by_topic: dict[str, list[int]] = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        req = Q.cls(markers=[Q.WritableTxnMarker(
            producer_id=producer_id, producer_epoch=epoch, transaction_result=committed,
            topics=[Q.WritableTxnMarkerTopic(name=t, partition_indexes=ps)
                    for t, ps in by_topic.items()],
            coordinator_epoch=coordinator_epoch)])
        self.rounds += 1
        try:
            conn = await self._connection(broker_id)
            if conn is None:
                return set(), False
            resp = await conn.send(ApiKey.WRITE_TXN_MARKERS, req, timeout_s=REQUEST_TIMEOUT_S)
        except (KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError, OSError) as e:
            logger.debug("WriteTxnMarkers to broker %d failed: %s", broker_id, e)
            return set(), False
        done: set[TP] = set()
        for m in resp.markers:
            for t in m.topics:
                for p in t.partitions:
                    code = p.error_code
                    if code == ErrorCode.NONE:
                        done.add((t.name, p.partition_index))
                    elif code in _FENCED:
                        logger.warning("Markers of producer %d fenced at %s-%d: %s",
                                       producer_id, t.name, p.partition_index,
                                       ErrorCode(code).name)
                        return done, True
        return done, False
