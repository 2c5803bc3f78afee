"""DescribeConfigs, answered locally from the metadata image (Kafka's ConfigHelper): topic
configs from the image's ConfigurationsImage over this broker's defaults, each with where its
value comes from and its synonyms; broker configs for this broker only (or the cluster-wide
dynamic defaults); BROKER_LOGGER for this broker's Python loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.config import KafkaConfig, effective_broker_config
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_configs
from kraft.config_defs import CONFIG_DEFS, ConfigType, Password
from kraft.controller.results import ApiError
from kraft.image import ConfigResourceType, MetadataImage
from storage.errors import ConfigError

__all__ = [
    "ConfigSource",
    "describe_broker_configs",
    "describe_configs_response",
    "describe_topic_configs",
]

UNKNOWN_TOPIC_MSG = "This server does not host this topic-partition."


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
        "metric.reporters", "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
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


# -- the DescribeConfigs answer -------------------------------------------------------------


def describe_configs_response(config: KafkaConfig, image: MetadataImage, node_id: int,
                              request: Any, version: int) -> Any:
    """The DescribeConfigs response (at ``version``) for ``request``, as broker ``node_id``."""
    R = describe_configs.RESPONSE
    v = version
    results = []
    for res in request.resources:
        rtype, name = int(res.resource_type), res.resource_name
        try:
            entries = _describe_one(config, image, node_id, rtype, name,
                                    res.configuration_keys)
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


def _describe_one(config: KafkaConfig, image: MetadataImage, node_id: int, rtype: int,
                  name: str, keys: list[str] | None) -> list[_Entry]:
    if rtype == ConfigResourceType.TOPIC:
        from kraft.controller.replication_control import validate_topic_name
        validate_topic_name(name)
        if name not in image.topics.by_name:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_MSG)
        return describe_topic_configs(config, image, node_id, name, keys)
    if rtype == ConfigResourceType.BROKER:
        return describe_broker_configs(config, image, node_id, name or "", keys)
    if rtype == ConfigResourceType.BROKER_LOGGER:
        if not name:
            raise ApiError(ErrorCode.INVALID_REQUEST, "Broker id must not be empty")
        if name != str(node_id):
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           f"Unexpected broker id, expected {node_id} but received "
                           f"{name}")
        return _loggers(keys)
    raise ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {rtype}")


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
