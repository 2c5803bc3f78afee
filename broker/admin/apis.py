"""Broker-listener admin APIs: forwarded to the active controller, or answered from the image.

- CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs, AlterConfigs and
  ElectLeaders are forwarded to the active controller (Kafka's ForwardingManager; here the
  request is re-encoded by the ``ControllerChannel`` at the highest version both sides speak and
  the answer is sent back at the client's version). A controller that cannot be reached before
  the deadline gives REQUEST_TIMED_OUT for every topic/resource, as Kafka's forwarding timeout
  does. After a successful answer the broker waits (bounded by the request's timeout) until its
  own metadata image shows the change, so the client's next Metadata/DescribeConfigs to this
  broker sees it. We wait on the image's *content* (the topic id exists, the config has the
  value, ...) rather than on an offset: the image offset only moves on data records, so an
  offset taken from the quorum's high watermark could point at a control record and never be
  reached.
- DescribeConfigs is answered locally (Kafka's ConfigHelper): topic configs from the image's
  ConfigurationsImage over this broker's defaults, broker configs for this broker only.
- InitProducerId for idempotent producers: ids come from blocks the controller hands out
  (AllocateProducerIds); the next block is fetched once 90% of the current one is used (Kafka's
  RPCProducerIdManager). Transactional ids get COORDINATOR_NOT_AVAILABLE until transactions
  exist.
- ``auto_create(names)``: CreateTopics with the broker defaults, for Metadata's
  ``allow_auto_topic_creation``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.config import KafkaConfig, effective_broker_config
from broker.controller.channel import ControllerUnavailableError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    allocate_producer_ids,
    alter_configs,
    create_partitions,
    create_topics,
    delete_topics,
    describe_configs,
    elect_leaders,
    incremental_alter_configs,
    init_producer_id,
)
from kraft.config_defs import CONFIG_DEFS, ConfigType, Password
from kraft.controller.results import ApiError
from kraft.image import ConfigResourceType, MetadataImage
from storage.errors import ConfigError

__all__ = [
    "AdminApis",
    "ConfigSource",
    "ProducerIdManager",
    "describe_broker_configs",
    "describe_topic_configs",
]

logger = logging.getLogger(__name__)

ZERO_UUID = uuid.UUID(int=0)
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# Forwarding deadline when the request carries no timeout of its own (Kafka's
# request.timeout.ms for the broker-to-controller channel is 30 s).
DEFAULT_FORWARD_TIMEOUT_S = 30.0
MIN_FORWARD_TIMEOUT_S = 1.0
# How long InitProducerId waits for a producer id block before answering
# COORDINATOR_LOAD_IN_PROGRESS (retriable: the client asks again).
PRODUCER_ID_WAIT_S = 5.0
UNKNOWN_TOPIC_MSG = "This server does not host this topic-partition."

_MethodHandler = Callable[[Any, Any, Any], Awaitable[Any]]


class ConfigSource:
    """DescribeConfigsResponse.ConfigSource ids."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6


# DescribeConfigsResponse.ConfigType ids.
_CONFIG_TYPE_IDS = {
    ConfigType.BOOLEAN: 1, ConfigType.STRING: 2, ConfigType.INT: 3, ConfigType.LONG: 5,
    ConfigType.DOUBLE: 6, ConfigType.LIST: 7, ConfigType.CLASS: 8, ConfigType.PASSWORD: 9,
}
_BOOLEAN, _STRING, _INT, _LONG, _DOUBLE, _LIST = 1, 2, 3, 5, 6, 7

# Topic key -> (broker synonyms in precedence order, ConfigType id); Kafka's
# ServerTopicConfigSynonyms with its multi-unit families (ms > minutes > hours).
TOPIC_CONFIG_SYNONYMS: dict[str, tuple[tuple[str, ...], int]] = {
    "segment.bytes": (("log.segment.bytes",), _INT),
    "segment.ms": (("log.roll.ms", "log.roll.hours"), _LONG),
    "segment.jitter.ms": (("log.roll.jitter.ms", "log.roll.jitter.hours"), _LONG),
    "segment.index.bytes": (("log.index.size.max.bytes",), _INT),
    "index.interval.bytes": (("log.index.interval.bytes",), _INT),
    "retention.ms": (("log.retention.ms", "log.retention.minutes", "log.retention.hours"), _LONG),
    "retention.bytes": (("log.retention.bytes",), _LONG),
    "flush.messages": (("log.flush.interval.messages",), _LONG),
    "flush.ms": (("log.flush.interval.ms", "log.flush.scheduler.interval.ms"), _LONG),
    "cleanup.policy": (("log.cleanup.policy",), _LIST),
    "delete.retention.ms": (("log.cleaner.delete.retention.ms",), _LONG),
    "min.compaction.lag.ms": (("log.cleaner.min.compaction.lag.ms",), _LONG),
    "max.compaction.lag.ms": (("log.cleaner.max.compaction.lag.ms",), _LONG),
    "min.cleanable.dirty.ratio": (("log.cleaner.min.cleanable.ratio",), _DOUBLE),
    "file.delete.delay.ms": (("log.segment.delete.delay.ms",), _LONG),
    "max.message.bytes": (("message.max.bytes",), _INT),
    "message.timestamp.type": (("log.message.timestamp.type",), _STRING),
    "message.timestamp.before.max.ms": (("log.message.timestamp.before.max.ms",), _LONG),
    "message.timestamp.after.max.ms": (("log.message.timestamp.after.max.ms",), _LONG),
    "min.insync.replicas": (("min.insync.replicas",), _INT),
    "unclean.leader.election.enable": (("unclean.leader.election.enable",), _BOOLEAN),
    "compression.type": (("compression.type",), _STRING),
    "preallocate": (("log.preallocate",), _BOOLEAN),
    "follower.replication.throttled.replicas": ((), _LIST),
    "leader.replication.throttled.replicas": ((), _LIST),
}

# Broker keys that share a value (the first set wins), for synonym lists.
_BROKER_FAMILIES: tuple[tuple[str, ...], ...] = tuple(
    syn for syn, _t in TOPIC_CONFIG_SYNONYMS.values() if len(syn) > 1)

# Broker keys Kafka can change at run time (DynamicBrokerConfig.AllDynamicConfigs, the subset
# we define); every other broker key is read_only in DescribeConfigs.
_DYNAMIC_BROKER_KEYS = frozenset(
    {k for syn, _t in TOPIC_CONFIG_SYNONYMS.values() for k in syn} | {
        "log.cleaner.threads", "log.cleaner.io.max.bytes.per.second",
        "log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.size",
        "log.cleaner.io.buffer.load.factor", "log.cleaner.backoff.ms",
        "num.io.threads", "num.network.threads", "num.replica.fetchers",
        "num.recovery.threads.per.data.dir", "background.threads",
        "max.connections", "max.connections.per.ip", "max.connections.per.ip.overrides",
        "max.connection.creation.rate", "listeners", "advertised.listeners",
        "listener.security.protocol.map", "producer.id.expiration.ms",
        "transaction.partition.verification.enable", "log.message.downconversion.enable",
        "metric.reporters",
    })


def _fmt(value: Any) -> str | None:
    """A parsed config value as Kafka's ConfigDef.convertToString writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | frozenset | set):
        return ",".join(str(v) for v in value)
    if isinstance(value, Password):
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _default_string(key: str) -> str | None:
    d = CONFIG_DEFS.get(key)
    if d is None or d.required:
        return None
    try:
        return _fmt(d.default_value())
    except ConfigError:
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    value: str | None
    source: int
    read_only: bool
    is_sensitive: bool
    synonyms: tuple[tuple[str, str | None, int], ...]
    config_type: int
    documentation: str | None


class _BrokerLayers:
    """The four places a broker key's value can come from, highest precedence first."""

    def __init__(self, config: KafkaConfig, image: MetadataImage, node_id: int) -> None:
        self.dynamic_broker = image.configs.broker_config(str(node_id))
        self.dynamic_default = image.configs.broker_config("")
        self.static = {k: (None if v is None else str(v)) for k, v in config.originals.items()}

    def synonyms(self, names: tuple[str, ...], sensitive: bool,
                 sources: tuple[int, ...] | None = None) -> list[tuple[str, str | None, int]]:
        out: list[tuple[str, str | None, int]] = []
        layers: list[tuple[Mapping[str, str | None], int]] = [
            (self.dynamic_broker, ConfigSource.DYNAMIC_BROKER_CONFIG),
            (self.dynamic_default, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            (self.static, ConfigSource.STATIC_BROKER_CONFIG),
        ]
        for mapping, source in layers:
            if sources is not None and source not in sources:
                continue
            for n in names:
                if n in mapping and mapping[n] is not None:
                    out.append((n, None if sensitive else mapping[n], source))
        if sources is None or ConfigSource.DEFAULT_CONFIG in sources:
            for n in names:
                default = _default_string(n)
                if default is not None:
                    out.append((n, None if sensitive else default, ConfigSource.DEFAULT_CONFIG))
        return out


def _wanted(keys: list[str] | None) -> Callable[[str], bool]:
    if not keys:
        return lambda _n: True
    wanted = set(keys)
    return lambda n: n in wanted


def describe_topic_configs(config: KafkaConfig, image: MetadataImage, node_id: int, topic: str,
                           keys: list[str] | None = None) -> list[_Entry]:
    """Every topic-level config of ``topic`` (which must exist in ``image``): explicit ones
    (DYNAMIC_TOPIC_CONFIG) over the broker's defaults (dynamic broker, static, default)."""
    explicit = image.configs.topic_config(topic)
    layers = _BrokerLayers(config, image, node_id)
    defaults = effective_broker_config(config, image, node_id).log_config_defaults()
    want = _wanted(keys)
    names = sorted(set(TOPIC_CONFIG_SYNONYMS) | set(defaults) | set(explicit))
    out = []
    for name in names:
        if not want(name):
            continue
        broker_keys, type_id = TOPIC_CONFIG_SYNONYMS.get(name, ((), _STRING))
        synonyms = layers.synonyms(broker_keys, False)
        value = explicit.get(name)
        if value is not None:
            synonyms.insert(0, (name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
        else:
            value = defaults.get(name, "" if type_id == _LIST else None)
        source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
        doc = CONFIG_DEFS[broker_keys[0]].doc if broker_keys and broker_keys[0] in CONFIG_DEFS \
            else None
        out.append(_Entry(name, value, source, False, False, tuple(synonyms), type_id, doc))
    return out


def _family(name: str) -> tuple[str, ...]:
    for fam in _BROKER_FAMILIES:
        if name in fam:
            return fam[fam.index(name):]
    return (name,)


def describe_broker_configs(config: KafkaConfig, image: MetadataImage, node_id: int,
                            resource_name: str, keys: list[str] | None = None) -> list[_Entry]:
    """BROKER resource ``resource_name``: this broker's id (every config, with where its value
    comes from) or "" (the cluster-wide dynamic defaults). Another broker id raises
    ApiError(INVALID_REQUEST), as Kafka's brokers answer only for themselves."""
    layers = _BrokerLayers(config, image, node_id)
    want = _wanted(keys)
    out = []
    if resource_name == "":
        for name in sorted(layers.dynamic_default):
            if not want(name):
                continue
            d = CONFIG_DEFS.get(name)
            sensitive = d is None or d.type is ConfigType.PASSWORD
            syn = layers.synonyms(_family(name), sensitive,
                                  (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,))
            out.append(_Entry(
                name, None if sensitive else layers.dynamic_default[name],
                ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, name not in _DYNAMIC_BROKER_KEYS,
                sensitive, tuple(syn), _CONFIG_TYPE_IDS.get(d.type, 0) if d else 0,
                d.doc if d else None))
        return out
    try:
        broker_id = int(resource_name)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST,
                       f"Broker id must be an integer, but it is: {resource_name}") from None
    if broker_id != node_id:
        raise ApiError(ErrorCode.INVALID_REQUEST,
                       f"Unexpected broker id, expected {node_id} or empty string, but "
                       f"received {resource_name}")
    effective = effective_broker_config(config, image, node_id)
    values = effective.values()
    names = sorted(set(CONFIG_DEFS) | {k for k, v in config.originals.items() if v is not None})
    for name in names:
        if not want(name):
            continue
        d = CONFIG_DEFS.get(name)
        # Kafka treats a key it has no definition for as possibly sensitive.
        sensitive = d is None or d.type is ConfigType.PASSWORD
        syn = layers.synonyms(_family(name), sensitive)
        if sensitive:
            value = None
        elif name in values:
            value = _fmt(values[name])
        else:
            value = layers.static.get(name)
        source = syn[0][2] if syn else ConfigSource.DEFAULT_CONFIG
        out.append(_Entry(name, value, source, name not in _DYNAMIC_BROKER_KEYS, sensitive,
                          tuple(syn), _CONFIG_TYPE_IDS.get(d.type, 0) if d else 0,
                          d.doc if d else None))
    return out


# -- producer ids ---------------------------------------------------------------------------


class ProducerIdManager:
    """Hands out producer ids from blocks the controller allocates (Kafka's
    RPCProducerIdManager): the next block is requested when the id at 90% of the current block
    is handed out, so a busy broker rarely waits. ``allocate()`` returns
    ``(error_code, first_id, length)``."""

    PREFETCH_THRESHOLD = 0.90
    RETRY_BACKOFF_S = 0.05

    def __init__(self, allocate: Callable[[], Awaitable[tuple[int, int, int]]]) -> None:
        self._allocate = allocate
        self._block: tuple[int, int] | None = None  # (first, length)
        self._next_id = 0
        self._next_block: tuple[int, int] | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self.last_error = ErrorCode.NONE
        self.requests = 0

    def _claim(self) -> int | None:
        if self._block is None:
            return None
        first, length = self._block
        if self._next_id >= first + length:
            return None
        pid = self._next_id
        self._next_id += 1
        if pid == first + int(length * self.PREFETCH_THRESHOLD):
            self._maybe_request()
        return pid

    def _maybe_request(self) -> None:
        if self._next_block is not None or self._inflight is not None:
            return
        if time.monotonic() < self._backoff_until:
            return
        self.requests += 1
        self._inflight = asyncio.create_task(self._fetch(), name="allocate producer ids")

    async def _fetch(self) -> None:
        try:
            code, first, length = await self._allocate()
        except Exception:
            logger.exception("AllocateProducerIds failed")
            code, first, length = int(ErrorCode.UNKNOWN_SERVER_ERROR), -1, 0
        finally:
            self._inflight = None
        if code == ErrorCode.NONE and length > 0 and first >= 0:
            self._next_block = (first, length)
            self.last_error = ErrorCode.NONE
            logger.debug("Got producer id block [%d, %d)", first, first + length)
        else:
            self.last_error = ErrorCode(code)
            self._backoff_until = time.monotonic() + self.RETRY_BACKOFF_S
            logger.info("AllocateProducerIds answered error %s", self.last_error.name)

    async def generate(self, wait_s: float = PRODUCER_ID_WAIT_S) -> int:
        """The next producer id; ApiError(COORDINATOR_LOAD_IN_PROGRESS) if no block arrives
        within ``wait_s`` (Kafka's retriable answer while a block is being fetched)."""
        deadline = time.monotonic() + wait_s
        while True:
            pid = self._claim()
            if pid is not None:
                return pid
            if self._next_block is not None:
                self._block, self._next_block = self._next_block, None
                self._next_id = self._block[0]
                continue
            self._maybe_request()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            task = self._inflight
            if task is not None:
                await asyncio.wait({task}, timeout=remaining)
            else:
                await asyncio.sleep(min(remaining, self.RETRY_BACKOFF_S))
        raise ApiError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                       "Producer ID block is full. Waiting for next block")


# -- waiting for the local image ---------------------------------------------------------------


class _ImageWaiters:
    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._waiters: list[tuple[Callable[[MetadataImage], bool], asyncio.Future[None]]] = []
        loader.add_publisher(self._published)

    def _published(self, _delta: Any, image: MetadataImage) -> None:
        if not self._waiters:
            return
        keep = []
        for pred, fut in self._waiters:
            if fut.done():
                continue
            try:
                ok = pred(image)
            except Exception:
                logger.exception("image predicate failed")
                ok = True
            if ok:
                fut.set_result(None)
            else:
                keep.append((pred, fut))
        self._waiters = keep

    async def wait(self, pred: Callable[[MetadataImage], bool], timeout_s: float) -> bool:
        if pred(self._loader.image):
            return True
        if timeout_s <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()


# -- the handlers ---------------------------------------------------------------------------


def _has_error(code: int) -> bool:
    return code != ErrorCode.NONE


class AdminApis:
    """``handlers``: ApiKey -> ``async handler(ctx, header, request)`` for a broker listener.
    The operations the HTTP admin API also needs (create/delete topics, create partitions,
    incremental alter configs, elect leaders) are methods taking the request data and its
    version."""

    def __init__(self, node_id: int, cluster_id: str, config: KafkaConfig, channel: Any,
                 loader: Any, *, broker_epoch: Callable[[], int] = lambda: -1) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.config = config
        self.channel = channel
        self.loader = loader
        self._broker_epoch = broker_epoch
        self._image_waiters = _ImageWaiters(loader)
        self.producer_ids = ProducerIdManager(self._allocate_producer_ids)
        self._auto_creating: dict[str, asyncio.Future[int]] = {}
        self.handlers: dict[int, _MethodHandler] = {
            ApiKey.CREATE_TOPICS: self._wire(self.create_topics),
            ApiKey.DELETE_TOPICS: self._wire(self.delete_topics),
            ApiKey.CREATE_PARTITIONS: self._wire(self.create_partitions),
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self._wire(self.incremental_alter_configs),
            ApiKey.ALTER_CONFIGS: self.handle_alter_configs,
            ApiKey.ELECT_LEADERS: self._wire(self.elect_leaders),
            ApiKey.DESCRIBE_CONFIGS: self.handle_describe_configs,
            ApiKey.INIT_PRODUCER_ID: self.handle_init_producer_id,
        }

    @staticmethod
    def _wire(op: Callable[[Any, int], Awaitable[Any]]) -> _MethodHandler:
        """The broker-listener handler of an admin operation: it needs the request and its
        version only (the HTTP admin API calls the operations directly)."""

        def handle(ctx: Any, header: Any, request: Any) -> Awaitable[Any]:
            return op(request, header.api_version)

        return handle

    # -- forwarding ------------------------------------------------------------------------

    async def _forward(self, api_key: int, request: Any, timeout_s: float,
                       retry_on: Callable[[Any], bool] | None = None) -> Any | None:
        """The controller's answer, or None when no controller answered in time."""
        try:
            return await self.channel.send(api_key, request, timeout_s=timeout_s,
                                           retry_on=retry_on)
        except ControllerUnavailableError as e:
            logger.warning("Forwarding %s to the controller failed: %s",
                           ApiKey(api_key).name, e)
            return None

    async def _await_image(self, what: str, pred: Callable[[MetadataImage], bool],
                           deadline: float) -> None:
        if not await self._image_waiters.wait(pred, deadline - time.monotonic()):
            logger.warning("Metadata image did not show %s before the request deadline", what)

    @staticmethod
    def _timeouts(timeout_ms: int | None) -> tuple[float, float]:
        """(forwarding timeout, deadline for the image wait)."""
        if timeout_ms is None or timeout_ms <= 0:
            forward = DEFAULT_FORWARD_TIMEOUT_S
        else:
            forward = max(MIN_FORWARD_TIMEOUT_S, min(timeout_ms / 1000, DEFAULT_FORWARD_TIMEOUT_S))
        return forward, time.monotonic() + forward

    # -- CreateTopics (19) -----------------------------------------------------------------

    async def create_topics(self, request: Any, version: int) -> Any:
        R = create_topics.RESPONSE
        forward_s, deadline = self._timeouts(request.timeout_ms)
        resp = await self._forward(
            ApiKey.CREATE_TOPICS, request, forward_s,
            retry_on=lambda r: any(t.error_code == ErrorCode.NOT_CONTROLLER for t in r.topics))
        if resp is None:
            return R.cls(throttle_time_ms=0, topics=[R.CreatableTopicResult(
                name=t.name, error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message="The controller did not answer in time.")
                for t in request.topics])
        created = [(t.name, getattr(t, "topic_id", None), t.num_partitions)
                   for t in resp.topics if not _has_error(t.error_code)]
        if created and not request.validate_only and request.timeout_ms > 0:
            def visible(image: MetadataImage) -> bool:
                for name, tid, n in created:
                    t = image.topics.by_name.get(name)
                    if t is None or (tid not in (None, ZERO_UUID) and t.topic_id != tid):
                        return False
                    if n > 0 and len(t.partitions) < n:
                        return False
                return True
            await self._await_image("created topics", visible, deadline)
        resp.throttle_time_ms = 0
        return resp

    # -- DeleteTopics (20) -----------------------------------------------------------------

    async def delete_topics(self, request: Any, version: int) -> Any:
        R = delete_topics.RESPONSE
        Q = delete_topics.REQUEST
        v = version
        # The channel speaks v6+, where topics are listed as (name, id) pairs.
        entries = [Q.DeleteTopicState(name=n, topic_id=ZERO_UUID)
                   for n in request.topic_names or ()]
        entries += list(request.topics or ())
        fwd = Q.cls(topics=entries, topic_names=[], timeout_ms=request.timeout_ms)
        forward_s, deadline = self._timeouts(request.timeout_ms)
        resp = await self._forward(
            ApiKey.DELETE_TOPICS, fwd, forward_s,
            retry_on=lambda r: any(t.error_code == ErrorCode.NOT_CONTROLLER
                                   for t in r.responses))
        if resp is None:
            return R.cls(throttle_time_ms=0, responses=[R.DeletableTopicResult(
                name=e.name if v >= 6 else (e.name or ""),
                topic_id=e.topic_id if e.topic_id is not None else ZERO_UUID,
                error_code=ErrorCode.REQUEST_TIMED_OUT) for e in entries])
        deleted = [(r.name, r.topic_id) for r in resp.responses if not _has_error(r.error_code)]
        if deleted and request.timeout_ms > 0:
            def gone(image: MetadataImage) -> bool:
                for name, tid in deleted:
                    if tid not in (None, ZERO_UUID):
                        if tid in image.topics.by_id:
                            return False
                    elif name in image.topics.by_name:
                        return False
                return True
            await self._await_image("deleted topics", gone, deadline)
        if v < 6:
            for r in resp.responses:
                if r.name is None:
                    r.name = ""
        resp.throttle_time_ms = 0
        return resp

    # -- CreatePartitions (37) -------------------------------------------------------------

    async def create_partitions(self, request: Any, version: int) -> Any:
        R = create_partitions.RESPONSE
        forward_s, deadline = self._timeouts(request.timeout_ms)
        resp = await self._forward(
            ApiKey.CREATE_PARTITIONS, request, forward_s,
            retry_on=lambda r: any(t.error_code == ErrorCode.NOT_CONTROLLER for t in r.results))
        if resp is None:
            return R.cls(throttle_time_ms=0, results=[R.CreatePartitionsTopicResult(
                name=t.name, error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message="The controller did not answer in time.")
                for t in request.topics])
        counts = {t.name: t.count for t in request.topics}
        grown = [(r.name, counts.get(r.name, 0)) for r in resp.results
                 if not _has_error(r.error_code)]
        if grown and not request.validate_only and request.timeout_ms > 0:
            def visible(image: MetadataImage) -> bool:
                for name, n in grown:
                    t = image.topics.by_name.get(name)
                    if t is None or len(t.partitions) < n:
                        return False
                return True
            await self._await_image("new partitions", visible, deadline)
        resp.throttle_time_ms = 0
        return resp

    # -- IncrementalAlterConfigs (44) / AlterConfigs (33) ----------------------------------

    @staticmethod
    def _config_of(image: MetadataImage, rtype: int, name: str) -> Mapping[str, str] | None:
        if rtype == ConfigResourceType.TOPIC:
            return image.configs.topic_config(name)
        if rtype == ConfigResourceType.BROKER:
            return image.configs.broker_config(name)
        return None

    async def _alter_configs(self, api_key: int, R: Any, request: Any,
                             expected: Callable[[Any], dict[str, str | None]]) -> Any:
        forward_s, deadline = self._timeouts(None)
        resp = await self._forward(
            api_key, request, forward_s,
            retry_on=lambda r: any(x.error_code == ErrorCode.NOT_CONTROLLER
                                   for x in r.responses))
        if resp is None:
            return R.cls(throttle_time_ms=0, responses=[R.AlterConfigsResourceResponse(
                error_code=ErrorCode.REQUEST_TIMED_OUT,
                error_message="The controller did not answer in time.",
                resource_type=r.resource_type, resource_name=r.resource_name)
                for r in request.resources])
        ok = {(int(x.resource_type), x.resource_name) for x in resp.responses
              if not _has_error(x.error_code)}
        wanted = [((int(r.resource_type), r.resource_name), expected(r))
                  for r in request.resources
                  if (int(r.resource_type), r.resource_name) in ok]
        if wanted and not request.validate_only:
            def visible(image: MetadataImage) -> bool:
                for (rtype, name), values in wanted:
                    current = self._config_of(image, rtype, name)
                    if current is None:
                        continue
                    for k, val in values.items():
                        if current.get(k) != val:
                            return False
                return True
            await self._await_image("altered configs", visible, deadline)
        resp.throttle_time_ms = 0
        return resp

    async def incremental_alter_configs(self, request: Any, version: int) -> Any:
        def expected(res: Any) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for c in res.configs:
                if c.config_operation == 0:  # SET
                    out[c.name] = c.value
                elif c.config_operation == 1:  # DELETE
                    out[c.name] = None
                # APPEND/SUBTRACT: the result depends on the old value; not checked.
            return out
        return await self._alter_configs(ApiKey.INCREMENTAL_ALTER_CONFIGS,
                                         incremental_alter_configs.RESPONSE, request, expected)

    async def handle_alter_configs(self, ctx: Any, header: Any, request: Any) -> Any:
        def expected(res: Any) -> dict[str, str | None]:
            return {c.name: c.value for c in res.configs}
        return await self._alter_configs(ApiKey.ALTER_CONFIGS, alter_configs.RESPONSE,
                                         request, expected)

    # -- ElectLeaders (43) -----------------------------------------------------------------

    async def elect_leaders(self, request: Any, version: int) -> Any:
        R = elect_leaders.RESPONSE
        v = version
        forward_s, deadline = self._timeouts(request.timeout_ms)
        resp = await self._forward(ApiKey.ELECT_LEADERS, request, forward_s)
        if resp is None:
            if request.topic_partitions is None:
                wanted = [(t.name, sorted(t.partitions))
                          for t in self.loader.image.topics.by_name.values()]
            else:
                wanted = [(tp.topic, list(tp.partitions)) for tp in request.topic_partitions]
            resp = R.cls(throttle_time_ms=0, error_code=ErrorCode.REQUEST_TIMED_OUT,
                         replica_election_results=[R.ReplicaElectionResult(
                             topic=t, partition_result=[R.PartitionResult(
                                 partition_id=p, error_code=ErrorCode.REQUEST_TIMED_OUT,
                                 error_message="The controller did not answer in time.")
                                 for p in ps]) for t, ps in wanted])
        else:
            preferred = (request.election_type or 0) == 0
            elected = [(t.topic, p.partition_id) for t in resp.replica_election_results
                       for p in t.partition_result if not _has_error(p.error_code)]
            if elected and request.timeout_ms > 0:
                def visible(image: MetadataImage) -> bool:
                    for topic, pid in elected:
                        t = image.topics.by_name.get(topic)
                        p = t.partitions.get(pid) if t is not None else None
                        if p is None:
                            continue
                        if preferred and (not p.replicas or p.leader != p.replicas[0]):
                            return False
                        if not preferred and p.leader < 0:
                            return False
                    return True
                await self._await_image("elected leaders", visible, deadline)
        if v == 0 and resp.error_code:
            # v0 has no top-level error: every partition carries it.
            for t in resp.replica_election_results:
                for p in t.partition_result:
                    if not p.error_code:
                        p.error_code = resp.error_code
            resp.error_code = 0
        resp.throttle_time_ms = 0
        return resp

    # -- DescribeConfigs (32) --------------------------------------------------------------

    def handle_describe_configs(self, ctx: Any, header: Any, request: Any) -> Any:
        R = describe_configs.RESPONSE
        v = header.api_version
        image = self.loader.image
        results = []
        for res in request.resources:
            rtype, name = int(res.resource_type), res.resource_name
            try:
                entries = self._describe_one(image, rtype, name, res.configuration_keys)
            except ApiError as e:
                results.append(R.DescribeConfigsResult(
                    error_code=int(e.code), error_message=e.message, resource_type=rtype,
                    resource_name=name, configs=[]))
                continue
            configs = []
            for e in entries:
                c = R.DescribeConfigsResourceResult(
                    name=e.name, value=e.value, read_only=e.read_only,
                    is_sensitive=e.is_sensitive)
                if v == 0:
                    c.is_default = e.source == ConfigSource.DEFAULT_CONFIG
                else:
                    c.config_source = e.source
                    if request.include_synonyms:
                        c.synonyms = [R.DescribeConfigsSynonym(name=n, value=val, source=s)
                                      for n, val, s in e.synonyms]
                if v >= 3:
                    c.config_type = e.config_type
                    if request.include_documentation:
                        c.documentation = e.documentation
                configs.append(c)
            results.append(R.DescribeConfigsResult(
                error_code=0, error_message=None, resource_type=rtype, resource_name=name,
                configs=configs))
        return R.cls(throttle_time_ms=0, results=results)

    def _describe_one(self, image: MetadataImage, rtype: int, name: str,
                      keys: list[str] | None) -> list[_Entry]:
        if rtype == ConfigResourceType.TOPIC:
            from kraft.controller.replication_control import validate_topic_name
            validate_topic_name(name)
            if name not in image.topics.by_name:
                raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_MSG)
            return describe_topic_configs(self.config, image, self.node_id, name, keys)
        if rtype == ConfigResourceType.BROKER:
            return describe_broker_configs(self.config, image, self.node_id, name or "", keys)
        if rtype == ConfigResourceType.BROKER_LOGGER:
            if not name:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Broker id must not be empty")
            if name != str(self.node_id):
                raise ApiError(ErrorCode.INVALID_REQUEST,
                               f"Unexpected broker id, expected {self.node_id} but received "
                               f"{name}")
            return self._loggers(keys)
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {rtype}")

    @staticmethod
    def _loggers(keys: list[str] | None) -> list[_Entry]:
        want = _wanted(keys)
        names = ["root"] + sorted(n for n, lg in logging.root.manager.loggerDict.items()
                                  if isinstance(lg, logging.Logger))
        out = []
        for n in names:
            if not want(n):
                continue
            lg = logging.getLogger() if n == "root" else logging.getLogger(n)
            out.append(_Entry(n, logging.getLevelName(lg.getEffectiveLevel()),
                              ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG, False, False, (), 2,
                              None))
        return out

    # -- InitProducerId (22) ---------------------------------------------------------------

    async def _allocate_producer_ids(self) -> tuple[int, int, int]:
        Q = allocate_producer_ids.REQUEST
        req = Q.cls(broker_id=self.node_id, broker_epoch=self._broker_epoch())
        resp = await self._forward(ApiKey.ALLOCATE_PRODUCER_IDS, req, DEFAULT_FORWARD_TIMEOUT_S)
        if resp is None:
            return int(ErrorCode.REQUEST_TIMED_OUT), -1, 0
        return int(resp.error_code), resp.producer_id_start, resp.producer_id_len

    async def handle_init_producer_id(self, ctx: Any, header: Any, request: Any) -> Any:
        R = init_producer_id.RESPONSE

        def error(code: int) -> Any:
            return R.cls(throttle_time_ms=0, error_code=code, producer_id=NO_PRODUCER_ID,
                         producer_epoch=NO_PRODUCER_EPOCH)

        pid, epoch = request.producer_id, request.producer_epoch
        if (pid == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
            return error(ErrorCode.INVALID_REQUEST)
        if request.transactional_id is not None:
            if request.transactional_id == "":
                return error(ErrorCode.INVALID_REQUEST)
            # No transaction coordinator yet: "not available" is the truthful answer.
            return error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        # Idempotent producer (KIP-360 included: an existing id and epoch are not fenced or
        # bumped without a transactional id; Kafka's coordinator always gives a fresh id at
        # epoch 0, and so do we).
        try:
            new_id = await self.producer_ids.generate()
        except ApiError as e:
            return error(int(e.code))
        return R.cls(throttle_time_ms=0, error_code=0, producer_id=new_id, producer_epoch=0)

    # -- auto topic creation ---------------------------------------------------------------

    async def auto_create(self, names: list[str], *, timeout_s: float = 10.0,
                          wait_for_image: bool = True) -> dict[str, int]:
        """Create ``names`` with the broker defaults (num.partitions, default.replication.factor;
        the internal topics with their own settings); name -> error code (0: created and, with
        ``wait_for_image``, visible in this broker's image; TOPIC_ALREADY_EXISTS; ...;
        UNKNOWN_TOPIC_OR_PARTITION when auto.create.topics.enable is off, REQUEST_TIMED_OUT
        when no controller answered). Concurrent calls for one name share one request."""
        cfg = self.config
        out: dict[str, int] = {}
        if not names:
            return out
        internal = {"__consumer_offsets", "__transaction_state"}
        if not cfg.get("auto.create.topics.enable"):
            for n in names:
                if n not in internal:
                    out[n] = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        todo = [n for n in dict.fromkeys(names) if n not in out]
        waiting = {n: self._auto_creating[n] for n in todo if n in self._auto_creating}
        mine = [n for n in todo if n not in waiting]
        loop = asyncio.get_running_loop()
        futs = {n: loop.create_future() for n in mine}
        self._auto_creating.update(futs)
        try:
            if mine:
                Q = create_topics.REQUEST
                topics = [self._auto_topic(Q, n) for n in mine]
                req = Q.cls(topics=topics, timeout_ms=int(timeout_s * 1000), validate_only=False)
                resp = await self._forward(
                    ApiKey.CREATE_TOPICS, req, timeout_s,
                    retry_on=lambda r: any(t.error_code == ErrorCode.NOT_CONTROLLER
                                           for t in r.topics))
                codes = ({n: int(ErrorCode.REQUEST_TIMED_OUT) for n in mine} if resp is None
                         else {t.name: int(t.error_code) for t in resp.topics})
                ok = [n for n in mine if codes.get(n) == ErrorCode.NONE]
                if ok and wait_for_image:
                    await self._await_image(
                        "auto-created topics",
                        lambda image: all(n in image.topics.by_name for n in ok),
                        time.monotonic() + timeout_s)
                for n in mine:
                    out[n] = codes.get(n, int(ErrorCode.UNKNOWN_SERVER_ERROR))
                    futs[n].set_result(out[n])
            for n, fut in waiting.items():
                out[n] = await asyncio.shield(fut)
        finally:
            for n, fut in futs.items():
                if not fut.done():
                    fut.set_result(int(ErrorCode.UNKNOWN_SERVER_ERROR))
                if self._auto_creating.get(n) is fut:
                    del self._auto_creating[n]
        return out

    def _auto_topic(self, Q: Any, name: str) -> Any:
        cfg = self.config
        configs = []
        if name == "__consumer_offsets":
            partitions = cfg.get("offsets.topic.num.partitions")
            rf = cfg.get("offsets.topic.replication.factor")
            configs = [("cleanup.policy", "compact"), ("compression.type", "producer"),
                       ("segment.bytes", str(cfg.get("offsets.topic.segment.bytes")))]
        elif name == "__transaction_state":
            partitions = cfg.get("transaction.state.log.num.partitions")
            rf = cfg.get("transaction.state.log.replication.factor")
            configs = [("cleanup.policy", "compact"), ("compression.type", "uncompressed"),
                       ("min.insync.replicas", str(cfg.get("transaction.state.log.min.isr")))]
        else:
            partitions = cfg.get("num.partitions")
            rf = cfg.get("default.replication.factor")
        return Q.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=rf, assignments=[],
            configs=[Q.CreatableTopicConfig(name=k, value=v) for k, v in configs])
