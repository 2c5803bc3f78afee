"""The CLI tools' producer: Kafka's murmur2 partitioner (``partition_for_key``) and
``Producer``, which batches records per partition and pipelines Produce requests to the
leaders."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import error_for_code
from broker.protocol.messages import produce
from storage.compression import CompressionType
from storage.records import SimpleRecord, build_batch
from tools.cli_client import CliError, TopicPartition, failure

__all__ = ["COMPRESSION_CODECS", "Producer", "murmur2", "partition_for_key"]

COMPRESSION_CODECS = {
    "none": CompressionType.NONE,
    "gzip": CompressionType.GZIP,
    "snappy": CompressionType.SNAPPY,
    "lz4": CompressionType.LZ4,
    "zstd": CompressionType.ZSTD,
}


# -- partitioning ------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``), so keys land on the partitions Java and librdkafka
    (``murmur2_random``) pick."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# -- produce -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    records: list[SimpleRecord] = field(default_factory=list)
    size: int = 0
    callbacks: list[Callable[[int, BaseException | None], None]] = field(default_factory=list)


class Producer:
    """A small batching producer: ``send`` queues a record for a partition; a batch goes out
    when it reaches ``batch_size`` bytes or after ``linger_ms``; many produce requests are in
    flight at once on one connection per leader (pipelining). ``flush`` waits for all of them.
    Callbacks get (base offset of the batch + index, error or None)."""

    def __init__(self, client: KafkaClient, *, acks: int = -1, linger_ms: float = 5,
                 batch_size: int = 16384, compression: int = CompressionType.NONE,
                 max_in_flight: int = 64, request_timeout_ms: int = 30_000) -> None:
        if acks not in (-1, 0, 1):
            raise CliError(f"acks must be all, -1, 0 or 1, got {acks}")
        self.client = client
        self.acks = acks
        self.linger_s = max(linger_ms, 0) / 1000
        self.batch_size = max(batch_size, 1)
        self.compression = compression
        self.request_timeout_ms = request_timeout_ms
        self._pending: dict[TopicPartition, _Pending] = {}
        self._timers: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._errors: list[BaseException] = []
        self._rr = itertools.count()

    async def partition_count(self, topic: str) -> int:
        t = self.client.cluster.topics.get(topic)
        if t is None:
            answer = await self.client.metadata([topic], allow_auto_topic_creation=True)
            t = answer.topics.get(topic)
            deadline = time.monotonic() + 10
            while (t is None or not t.partitions) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                answer = await self.client.metadata([topic], allow_auto_topic_creation=True)
                t = answer.topics.get(topic)
            if t is None or not t.partitions:
                raise CliError(f"Topic {topic} not present in metadata")
        return len(t.partitions)

    async def choose_partition(self, topic: str, key: bytes | None,
                               partition: int | None = None) -> int:
        n = await self.partition_count(topic)
        if partition is not None:
            if not 0 <= partition < n:
                raise CliError(f"partition {partition} of {topic} does not exist "
                               f"(it has {n})")
            return partition
        if key is not None:
            return partition_for_key(key, n)
        return next(self._rr) % n

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: Sequence[tuple[str, bytes | None]] = (),
                   partition: int | None = None, timestamp: int | None = None,
                   callback: Callable[[int, BaseException | None], None] | None = None) -> None:
        if self._errors:
            raise self._errors[0]
        p = await self.choose_partition(topic, key, partition)
        tp = TopicPartition(topic, p)
        pending = self._pending.setdefault(tp, _Pending())
        pending.records.append(SimpleRecord(value, key, tuple(headers), timestamp))
        pending.size += len(value or b"") + len(key or b"") + 16
        pending.callbacks.append(callback or _ignore)
        if pending.size >= self.batch_size:
            await self._drain(tp)
        elif tp not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[tp] = loop.call_later(self.linger_s, self._linger_expired, tp)

    def _linger_expired(self, tp: TopicPartition) -> None:
        self._timers.pop(tp, None)
        if tp in self._pending:
            task = asyncio.get_running_loop().create_task(self._drain(tp))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _drain(self, tp: TopicPartition) -> None:
        timer = self._timers.pop(tp, None)
        if timer is not None:
            timer.cancel()
        pending = self._pending.pop(tp, None)
        if pending is None or not pending.records:
            return
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._send_batch(tp, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send_batch(self, tp: TopicPartition, pending: _Pending) -> None:
        try:
            batch = build_batch(pending.records, compression=self.compression)
            R = produce.REQUEST
            req = R.cls(transactional_id=None, acks=self.acks,
                        timeout_ms=self.request_timeout_ms,
                        topic_data=[R.TopicProduceData(name=tp.topic, partition_data=[
                            R.PartitionProduceData(index=tp.partition, records=batch)])])
            if self.acks == 0:
                node = self.client.leader_for(tp.topic, tp.partition)
                if node < 0:
                    await self.client.metadata([tp.topic])
                    node = self.client.leader_for(tp.topic, tp.partition)
                conn = await self.client.connection(node)
                await conn.send_no_response(ApiKey.PRODUCE, req)
                base = -1
            else:
                resp = await self.client.send_to_leader(
                    tp.topic, tp.partition, ApiKey.PRODUCE, req, check=_produce_error)
                pr = resp.responses[0].partition_responses[0]
                if pr.error_code:
                    raise failure(f"Producing to {tp.topic}-{tp.partition}", pr.error_code,
                                getattr(pr, "error_message", None))
                base = pr.base_offset
            for i, cb in enumerate(pending.callbacks):
                cb(base + i if base >= 0 else -1, None)
        except BaseException as e:  # reported through callbacks and flush()
            if isinstance(e, asyncio.CancelledError):
                raise
            self._errors.append(e)
            for cb in pending.callbacks:
                cb(-1, e)
        finally:
            self._slots.release()

    async def flush(self) -> None:
        for tp in list(self._pending):
            await self._drain(tp)
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._errors:
            raise self._errors[0]


def _ignore(_offset: int, _error: BaseException | None) -> None:
    return None


def _produce_error(resp: Any) -> int | None:
    for t in resp.responses:
        for p in t.partition_responses:
            if p.error_code and error_for_code(p.error_code).retriable:
                return p.error_code
    return None
