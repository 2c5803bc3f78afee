"""Admin, produce and fetch helpers for the CLI tools, on top of ``broker.client.KafkaClient``.

Everything here speaks the Kafka protocol through our own client, so the tools work against
any Kafka-compatible cluster. Errors that the user should see (an unknown topic, a refused
request) are raised as ``CliError`` with Kafka's error name in the message; the tools print
them to stderr and exit with code 1.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.client import (
    KafkaClient,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
    TopicInfo,
)
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError, error_for_code
from broker.protocol.messages import (
    create_partitions,
    create_topics,
    delete_topics,
    describe_configs,
    elect_leaders,
    fetch,
    incremental_alter_configs,
    list_offsets,
    produce,
)
from storage.compression import CompressionType
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import HEADER_SIZE, BatchHeader, parse_header
from storage.records import Record, SimpleRecord, build_batch, decode_batch

__all__ = [
    "CliError",
    "ConfigEntry",
    "FetchedPartition",
    "Producer",
    "TopicPartition",
    "admin_client",
    "alter_configs",
    "create_partitions_to",
    "create_topic",
    "delete_topic",
    "describe_configs_of",
    "elect_leaders_for",
    "error_name",
    "fetch_from",
    "list_offsets_of",
    "murmur2",
    "parse_properties_args",
    "partitions_of",
    "run_tool",
]


EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_FETCH_VERSION = 12  # v13+ names topics by id only
DEFAULT_ADMIN_TIMEOUT_MS = 30_000

COMPRESSION_CODECS = {
    "none": CompressionType.NONE,
    "gzip": CompressionType.GZIP,
    "snappy": CompressionType.SNAPPY,
    "lz4": CompressionType.LZ4,
    "zstd": CompressionType.ZSTD,
}

# DescribeConfigs / IncrementalAlterConfigs resource types and operations (Kafka's values).
RESOURCE_TYPES = {"topics": 2, "brokers": 4, "broker-loggers": 8}
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
CONFIG_SOURCES = {
    0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG",
}


class CliError(Exception):
    """A failure to report to the user in one line (no traceback)."""


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR_{code}"


def _fail(what: str, code: int, message: str | None = None) -> CliError:
    text = f"{what}: {error_name(code)}"
    detail = message or error_for_code(code).message
    return CliError(f"{text} ({detail})" if detail else text)


def parse_properties_args(items: Iterable[str] | None, flag: str) -> dict[str, str]:
    """``k=v`` strings (each may itself hold several, comma separated as Kafka's --config
    accepts) -> dict; a malformed one is a ``CliError``."""
    out: dict[str, str] = {}
    for item in items or ():
        for part in _split_top(item):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise CliError(f"{flag} expects key=value, got {part!r}")
            out[key.strip()] = value.strip()
    return out


def _split_top(item: str) -> list[str]:
    # "a=1,b=2" is two properties, but "a=x,y" (a list value) is one: split on a comma only
    # when what follows looks like another key=.
    parts: list[str] = []
    for piece in item.split(","):
        if parts and "=" not in piece:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return [p for p in parts if p.strip()]


def run_tool(prog: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async tool body: known failures become one stderr line and exit code 1,
    Ctrl-C exits 130 quietly."""
    try:
        return asyncio.run(main())
    except CliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except (KafkaConnectionError, KafkaTimeoutError, KafkaError, KafkaProtocolError) as e:
        print(f"Error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


async def admin_client(bootstrap: str, *, timeout_s: float = 30.0,
                       client_id: str = "pykraft-cli") -> KafkaClient:
    servers = [s for s in bootstrap.split(",") if s.strip()]
    if not servers:
        raise CliError("--bootstrap-server is required")
    try:
        return await KafkaClient.bootstrap(servers, client_id=client_id,
                                           api_timeout_s=timeout_s)
    except ValueError as e:
        raise CliError(str(e)) from None


# -- topics ------------------------------------------------------------------------------------


async def create_topic(client: KafkaClient, name: str, partitions: int | None,
                       replication_factor: int | None, configs: dict[str, str],
                       assignment: dict[int, list[int]] | None = None,
                       if_not_exists: bool = False) -> None:
    R = create_topics.REQUEST
    req = R.cls(
        topics=[R.CreatableTopic(
            name=name,
            num_partitions=-1 if partitions is None or assignment else partitions,
            replication_factor=(-1 if replication_factor is None or assignment
                                else replication_factor),
            assignments=[R.CreatableReplicaAssignment(partition_index=p, broker_ids=b)
                         for p, b in sorted((assignment or {}).items())],
            configs=[R.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])],
        timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS, validate_only=False)
    resp = await client.send_to_controller(ApiKey.CREATE_TOPICS, req, check=_admin_check)
    for t in resp.topics:
        if t.error_code == ErrorCode.TOPIC_ALREADY_EXISTS and if_not_exists:
            continue
        if t.error_code:
            raise _fail(f"Creating topic {t.name} failed", t.error_code,
                        getattr(t, "error_message", None))


async def delete_topic(client: KafkaClient, names: Sequence[str]) -> None:
    R = delete_topics.REQUEST
    conn = await client.connection(client.cluster.controller_id
                                   if client.cluster.controller_id >= 0 else
                                   next(iter(client.cluster.brokers)))
    version = conn.version_for(ApiKey.DELETE_TOPICS)
    if version >= 6:
        req = R.cls(topics=[R.DeleteTopicState(name=n) for n in names],
                    timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS)
    else:
        req = R.cls(topic_names=list(names), timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS)
    resp = await client.send_to_controller(ApiKey.DELETE_TOPICS, req, version,
                                           check=_admin_check)
    for r in resp.responses:
        if r.error_code:
            raise _fail(f"Deleting topic {r.name} failed", r.error_code,
                        getattr(r, "error_message", None))


async def create_partitions_to(client: KafkaClient, name: str, count: int) -> None:
    R = create_partitions.REQUEST
    req = R.cls(topics=[R.CreatePartitionsTopic(name=name, count=count, assignments=None)],
                timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS, validate_only=False)
    resp = await client.send_to_controller(ApiKey.CREATE_PARTITIONS, req,
                                           check=_admin_check)
    for r in resp.results:
        if r.error_code:
            raise _fail(f"Adding partitions to {r.name} failed", r.error_code, r.error_message)


async def partitions_of(client: KafkaClient, topics: Sequence[str] | None,
                        include_internal: bool = False) -> dict[str, TopicInfo]:
    """Fresh metadata for ``topics`` (None: every topic); an unknown topic is a ``CliError``."""
    if topics is None:
        return await client.list_topics(include_internal=include_internal)
    answer = await client.metadata(list(topics))
    out: dict[str, TopicInfo] = {}
    for name in topics:
        t = answer.topics.get(name)
        if t is None or t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise CliError(f"Topic '{name}' does not exist as expected")
        if t.error_code and t.error_code != ErrorCode.LEADER_NOT_AVAILABLE:
            raise _fail(f"Topic {name}", t.error_code)
        out[name] = t
    return out


def _retriable_only(resp: Any) -> int | None:
    """Retry the whole request only for a top-level-ish retriable error (NOT_CONTROLLER,
    REQUEST_TIMED_OUT...). Per-item errors that are not retriable are the caller's to read."""
    from broker.client import any_error

    code = any_error(resp)
    if code and error_for_code(code).retriable:
        return code
    return None


def _admin_check(resp: Any) -> int | None:
    """As ``_retriable_only``, but an unknown topic is an answer, not something to wait out
    (it is retriable for produce and fetch, where metadata may lag)."""
    code = _retriable_only(resp)
    return None if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION else code


# -- configs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: str
    read_only: bool
    is_sensitive: bool
    synonyms: tuple[tuple[str, str | None, str], ...] = ()


async def describe_configs_of(client: KafkaClient, resource_type: int, name: str,
                              keys: Sequence[str] | None = None,
                              node: int | None = None) -> list[ConfigEntry]:
    R = describe_configs.REQUEST
    req = R.cls(resources=[R.DescribeConfigsResource(
        resource_type=resource_type, resource_name=name,
        configuration_keys=list(keys) if keys else None)],
        include_synonyms=True, include_documentation=False)
    if node is not None:
        resp = await client.send_to(node, ApiKey.DESCRIBE_CONFIGS, req, check=_admin_check)
    else:
        resp = await client.send_to_any(ApiKey.DESCRIBE_CONFIGS, req, check=_admin_check)
    out: list[ConfigEntry] = []
    for r in resp.results:
        if r.error_code:
            raise _fail(f"Describing configs of {name}", r.error_code, r.error_message)
        for c in r.configs:
            source = CONFIG_SOURCES.get(getattr(c, "config_source", 0) or 0, "UNKNOWN")
            syn = tuple((s.name, s.value, CONFIG_SOURCES.get(s.source, "UNKNOWN"))
                        for s in (getattr(c, "synonyms", None) or ()))
            out.append(ConfigEntry(c.name, c.value, source, bool(c.read_only),
                                   bool(c.is_sensitive), syn))
    return out


async def alter_configs(client: KafkaClient, resource_type: int, name: str,
                        ops: Sequence[tuple[str, int, str | None]]) -> None:
    """IncrementalAlterConfigs: ``ops`` = (key, OP_*, value)."""
    R = incremental_alter_configs.REQUEST
    req = R.cls(resources=[R.AlterConfigsResource(
        resource_type=resource_type, resource_name=name,
        configs=[R.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops])],
        validate_only=False)
    if resource_type == RESOURCE_TYPES["brokers"] and name:
        resp = await client.send_to(int(name), ApiKey.INCREMENTAL_ALTER_CONFIGS, req,
                                    check=_admin_check)
    else:
        resp = await client.send_to_controller(ApiKey.INCREMENTAL_ALTER_CONFIGS, req,
                                               check=_admin_check)
    for r in resp.responses:
        if r.error_code:
            raise _fail(f"Altering configs of {name}", r.error_code, r.error_message)


# -- leader election ---------------------------------------------------------------------------


async def elect_leaders_for(client: KafkaClient, election_type: int,
                            partitions: dict[str, list[int]] | None
                            ) -> list[tuple[str, int, int, str | None]]:
    """ElectLeaders; ``partitions`` None means every partition. Returns
    (topic, partition, error code, message) per partition."""
    R = elect_leaders.REQUEST
    tps = None if partitions is None else [
        R.TopicPartitions(topic=t, partitions=ps) for t, ps in partitions.items()]
    req = R.cls(election_type=election_type, topic_partitions=tps,
                timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS)
    resp = await client.send_to_controller(ApiKey.ELECT_LEADERS, req,
                                           check=lambda r: r.error_code if getattr(
                                               r, "error_code", 0) and error_for_code(
                                               r.error_code).retriable else None)
    if getattr(resp, "error_code", 0):
        raise _fail("Leader election failed", resp.error_code)
    return [(r.topic, p.partition_id, p.error_code, p.error_message)
            for r in resp.replica_election_results for p in r.partition_result]


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


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


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
                    raise _fail(f"Producing to {tp.topic}-{tp.partition}", pr.error_code,
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


# -- list offsets and fetch ---------------------------------------------------------------------


async def list_offsets_of(client: KafkaClient, topic: str, partitions: Iterable[int],
                          timestamp: int, isolation_level: int = 0) -> dict[int, int]:
    """partition -> offset for ``timestamp`` (-2 earliest, -1 latest, else the first offset
    at or after it; -1 when there is none)."""
    R = list_offsets.REQUEST
    out: dict[int, int] = {}

    async def one(p: int) -> None:
        req = R.cls(replica_id=-1, isolation_level=isolation_level, topics=[
            R.ListOffsetsTopic(name=topic, partitions=[R.ListOffsetsPartition(
                partition_index=p, current_leader_epoch=-1, timestamp=timestamp,
                max_num_offsets=1)])], timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS)
        resp = await client.send_to_leader(topic, p, ApiKey.LIST_OFFSETS, req,
                                           check=_retriable_only)
        r = resp.topics[0].partitions[0]
        if r.error_code:
            raise _fail(f"ListOffsets for {topic}-{p}", r.error_code)
        out[p] = r.offset

    await asyncio.gather(*(one(p) for p in partitions))
    return out


@dataclass(slots=True)
class FetchedPartition:
    topic: str
    partition: int
    error_code: int
    high_watermark: int
    records: list[tuple[BatchHeader, list[Record]]]
    next_offset: int | None  # where to fetch next; None: no complete batch in this answer


def decode_fetched(data: bytes | None) -> tuple[list[tuple[BatchHeader, list[Record]]], int | None]:
    """Decode every complete batch in a fetch answer (a trailing partial batch is normal)."""
    out: list[tuple[BatchHeader, list[Record]]] = []
    nxt: int | None = None
    if not data:
        return out, None
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        try:
            header = parse_header(data, pos)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise CliError(f"corrupt record batch in fetch response: {e}") from None
        if len(data) - pos < header.size:
            break
        try:
            header, records = decode_batch(data, pos)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise CliError(f"record batch at offset {header.base_offset} is invalid: {e}") from None
        out.append((header, records))
        nxt = header.next_offset
        pos += header.size
    return out, nxt


async def fetch_from(client: KafkaClient, node: int, positions: dict[TopicPartition, int], *,
                     max_wait_ms: int = 500, min_bytes: int = 1, max_bytes: int = 52428800,
                     partition_max_bytes: int = 1048576,
                     isolation_level: int = 0) -> list[FetchedPartition]:
    """One Fetch to broker ``node`` for ``positions``."""
    conn = await client.connection(node)
    hi = conn.api_versions.get(ApiKey.FETCH, (0, 0))[1]
    version = min(hi, MAX_FETCH_VERSION)
    R = fetch.REQUEST
    by_topic: dict[str, list[Any]] = {}
    for tp, offset in positions.items():
        by_topic.setdefault(tp.topic, []).append(R.FetchPartition(
            partition=tp.partition, current_leader_epoch=-1, fetch_offset=offset,
            log_start_offset=-1, partition_max_bytes=partition_max_bytes))
    req = R.cls(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                isolation_level=isolation_level, session_id=0, session_epoch=-1,
                topics=[R.FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
                forgotten_topics_data=[], rack_id="")
    resp = await conn.send(ApiKey.FETCH, req, version,
                           timeout_s=client.request_timeout_s + max_wait_ms / 1000)
    if getattr(resp, "error_code", 0):
        raise _fail("Fetch", resp.error_code)
    out: list[FetchedPartition] = []
    for t in resp.responses:
        for p in t.partitions:
            batches, nxt = decode_fetched(p.records) if not p.error_code else ([], None)
            out.append(FetchedPartition(t.topic, p.partition_index, p.error_code,
                                        p.high_watermark, batches, nxt))
    return out
