"""The broker/controller configuration: Kafka's key names, types, defaults and checks.

``CONFIG_DEFS`` is a declarative table of :class:`ConfigDef` entries (Kafka's ``ConfigDef``):
name, type, default, validator, doc. :class:`KafkaConfig` parses a ``dict[str, str]`` (for example
from :func:`storage.properties.load_properties`) against it, then derives the typed views the
node needs (endpoints, voters, log directories, effective retention...) and runs Kafka's
cross-key KRaft checks (``KafkaConfig.validateValues``).

Parsing follows Kafka's ``ConfigDef.parseType``: string values are trimmed; ``int``/``long`` are
decimal with an optional sign and must fit 32/64 bits; ``boolean`` is ``true``/``false`` in any
case; ``list`` splits on commas with surrounding whitespace (an empty string is an empty list).

Errors: a bad value raises :class:`~storage.errors.ConfigError` naming the key and the value
(``Invalid value 'x' for configuration num.partitions: Not a number of type INT``); an unknown key
is only logged as a warning, as Kafka does.

Deliberate differences from Kafka, all in the direction of "fail early, on the operator's side":

- only KRaft mode exists, so ``node.id`` and ``process.roles`` are required;
- ``controller.listener.names`` is matched case-insensitively against listener names (Kafka
  compares the raw string with the upper-cased listener name);
- a few timing keys that Kafka leaves unvalidated (Raft timeouts) must be positive;
- ``admin.listeners`` (our HTTP admin API, like Redpanda's) is extra, and its ports must not
  clash with the Kafka listeners.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from storage.errors import ConfigError
from storage.properties import load_properties

__all__ = [
    "CONFIG_DEFS",
    "NO_DEFAULT",
    "AtLeast",
    "Between",
    "ConfigDef",
    "ConfigType",
    "Endpoint",
    "KafkaConfig",
    "ListOf",
    "NonEmptyString",
    "OneOf",
    "Password",
    "parse_host_port",
    "parse_listeners",
    "parse_voters",
]

logger = logging.getLogger(__name__)

INT_MIN: Final = -(2**31)
INT_MAX: Final = 2**31 - 1
LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1
DOUBLE_MAX: Final = 1.7976931348623157e308

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
PROCESS_ROLES: Final = ("broker", "controller")


class ConfigType(Enum):
    INT = "int"
    LONG = "long"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    STRING = "string"
    LIST = "list"
    PASSWORD = "password"
    CLASS = "class"


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Final = _NoDefault()
"""Marks a required key (Kafka's ``ConfigDef.NO_DEFAULT_VALUE``)."""


class Password:
    """A secret value; never shown by ``str``/``repr`` (Kafka's ``Password``)."""

    __slots__ = ("value",)
    HIDDEN = "[hidden]"

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return self.HIDDEN

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


# ---------------------------------------------------------------------------------------------
# Validators (Kafka's ConfigDef.Range, ValidString, ValidList, NonEmptyString)
# ---------------------------------------------------------------------------------------------

Validator = Callable[[str, Any], None]


@dataclass(frozen=True, slots=True)
class Between:
    """``min <= value <= max`` (either bound may be None). ``None`` values are not checked."""

    min: float | None = None
    max: float | None = None

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(name, value, "Value must be a number")
        if self.min is not None and value < self.min:
            raise ConfigError(name, value, f"Value must be at least {_fmt_num(self.min)}")
        if self.max is not None and value > self.max:
            raise ConfigError(name, value, f"Value must be no more than {_fmt_num(self.max)}")

    def __str__(self) -> str:
        if self.max is None:
            return f"[{_fmt_num(self.min)},...]"
        return f"[{_fmt_num(self.min)},...,{_fmt_num(self.max)}]"


def AtLeast(minimum: float) -> Between:
    return Between(minimum, None)


def _fmt_num(n: float | None) -> str:
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


@dataclass(frozen=True, slots=True)
class OneOf:
    """The (string) value is one of ``allowed`` (Kafka's ``ValidString.in``)."""

    allowed: tuple[str, ...]
    case_insensitive: bool = False

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            return
        ok = (
            value.lower() in {a.lower() for a in self.allowed}
            if self.case_insensitive
            else value in self.allowed
        )
        if not ok:
            raise ConfigError(name, value, f"String must be one of: {', '.join(self.allowed)}")

    def __str__(self) -> str:
        return "[" + ", ".join(self.allowed) + "]"


@dataclass(frozen=True, slots=True)
class ListOf:
    """Every element of a list value is one of ``allowed`` (Kafka's ``ValidList.in``)."""

    allowed: tuple[str, ...]
    allow_empty: bool = True

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            return
        if not value and not self.allow_empty:
            raise ConfigError(name, ",".join(value), "Value must not be empty")
        for item in value:
            if item not in self.allowed:
                raise ConfigError(
                    name, ",".join(value), f"Invalid value {item!r}: each element must be one "
                    f"of: {', '.join(self.allowed)}"
                )

    def __str__(self) -> str:
        return "[" + ", ".join(self.allowed) + "]"


@dataclass(frozen=True, slots=True)
class NonEmptyString:
    def __call__(self, name: str, value: Any) -> None:
        if value is not None and value == "":
            raise ConfigError(name, value, "String must be non-empty")

    def __str__(self) -> str:
        return "non-empty string"


# ---------------------------------------------------------------------------------------------
# ConfigDef
# ---------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+")
_DOUBLE_RE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?))[fFdD]?"
)
_LIST_SPLIT_RE = re.compile(r"\s*,\s*")
_CLASS_RE = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*(\$[\w$]+)*")


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One configuration key: Kafka name, type, default (``NO_DEFAULT`` = required), check, doc."""

    name: str
    type: ConfigType
    default: Any = NO_DEFAULT
    validator: Validator | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    @property
    def python_name(self) -> str:
        return self.name.replace(".", "_")

    def parse(self, value: Any) -> Any:
        """Convert a raw value (usually a string) to this key's type and validate it."""
        parsed = self._parse_type(value)
        if self.validator is not None:
            self.validator(self.name, parsed)
        return parsed

    def default_value(self) -> Any:
        assert not self.required, self.name
        return self.parse(self.default)

    def _bad(self, value: Any, reason: str) -> ConfigError:
        shown = Password.HIDDEN if self.type is ConfigType.PASSWORD else value
        return ConfigError(self.name, shown, reason)

    def _parse_type(self, value: Any) -> Any:
        if value is None:
            return None
        t = self.type
        if isinstance(value, str):
            value = value.strip()
        if t is ConfigType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                if value.lower() == "true":
                    return True
                if value.lower() == "false":
                    return False
            raise self._bad(value, "Expected value to be either true or false")
        if t is ConfigType.INT or t is ConfigType.LONG:
            lo, hi = (INT_MIN, INT_MAX) if t is ConfigType.INT else (LONG_MIN, LONG_MAX)
            kind = t.name
            if isinstance(value, bool):
                raise self._bad(value, f"Not a number of type {kind}")
            if isinstance(value, int):
                n = value
            elif isinstance(value, str) and _INT_RE.fullmatch(value):
                n = int(value)
            else:
                raise self._bad(value, f"Not a number of type {kind}")
            if not lo <= n <= hi:
                raise self._bad(value, f"Not a number of type {kind}")
            return n
        if t is ConfigType.DOUBLE:
            if isinstance(value, bool):
                raise self._bad(value, "Not a number of type DOUBLE")
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str) and _DOUBLE_RE.fullmatch(value):
                text = value.rstrip("fFdD") if not value.endswith("Infinity") else value
                return float(text.replace("Infinity", "inf"))
            raise self._bad(value, "Not a number of type DOUBLE")
        if t is ConfigType.LIST:
            if isinstance(value, str):
                return [] if value == "" else _LIST_SPLIT_RE.split(value)
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return [v.strip() for v in value]
            raise self._bad(value, "Expected a comma separated list")
        if t is ConfigType.PASSWORD:
            if isinstance(value, Password):
                return value
            if isinstance(value, str):
                return Password(value)
            raise self._bad(value, "Expected value to be a string")
        if t is ConfigType.CLASS:
            if isinstance(value, str) and _CLASS_RE.fullmatch(value):
                return value
            raise self._bad(value, "Expected a fully qualified class name")
        # STRING
        if isinstance(value, str):
            return value
        raise self._bad(value, f"Expected a string, but it was a {type(value).__name__}")


def _def(
    name: str,
    type_: ConfigType,
    default: Any = NO_DEFAULT,
    validator: Validator | None = None,
    doc: str = "",
) -> ConfigDef:
    return ConfigDef(name, type_, default, validator, doc)


INT, LONG, DOUBLE, BOOLEAN = ConfigType.INT, ConfigType.LONG, ConfigType.DOUBLE, ConfigType.BOOLEAN
STRING, LIST, PASSWORD, CLASS = (
    ConfigType.STRING,
    ConfigType.LIST,
    ConfigType.PASSWORD,
    ConfigType.CLASS,
)

_DEFAULT_SECURITY_MAP = (
    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
)
_COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

_DEFS: list[ConfigDef] = [
    # --- KRaft / server basics ----------------------------------------------------------------
    _def("node.id", INT, NO_DEFAULT, AtLeast(0),
         "The node id of this server (broker and/or controller)."),
    _def("process.roles", LIST, NO_DEFAULT, ListOf(PROCESS_ROLES),
         "The roles of this node: broker, controller, or both."),
    _def("broker.rack", STRING, None, None, "Rack of the broker, used for rack-aware placement."),
    _def("broker.session.timeout.ms", INT, 9000, AtLeast(1),
         "A broker that sends no heartbeat for this long is fenced."),
    _def("broker.heartbeat.interval.ms", INT, 2000, AtLeast(1),
         "Interval between broker heartbeats to the active controller."),
    _def("initial.broker.registration.timeout.ms", INT, 60000, AtLeast(1),
         "How long a new broker waits for its registration to be accepted."),
    _def("controller.listener.names", LIST, "", None,
         "Listener names used by the controller; the first is used by brokers to reach it."),
    _def("controller.quorum.voters", LIST, "", None,
         "Static quorum: id@host:port of every voter."),
    _def("controller.quorum.bootstrap.servers", LIST, "", None,
         "Dynamic quorum (KIP-853): host:port of controllers to discover the quorum from."),
    _def("controller.quorum.election.timeout.ms", INT, 1000, AtLeast(1),
         "Time without a leader before a voter starts an election."),
    _def("controller.quorum.fetch.timeout.ms", INT, 2000, AtLeast(1),
         "Time without a successful fetch before a follower becomes a candidate."),
    _def("controller.quorum.election.backoff.max.ms", INT, 1000, AtLeast(0),
         "Maximum (exponential) backoff before a new election."),
    _def("controller.quorum.request.timeout.ms", INT, 2000, AtLeast(1),
         "Timeout of one quorum request."),
    _def("controller.quorum.retry.backoff.ms", INT, 20, AtLeast(0),
         "Backoff before retrying a failed quorum request."),
    _def("controller.quorum.append.linger.ms", INT, 25, AtLeast(0),
         "How long the leader lingers to batch metadata appends before flushing."),
    _def("controller.socket.timeout.ms", INT, 30000, AtLeast(1),
         "Socket timeout of broker-to-controller channels."),
    # --- metadata log --------------------------------------------------------------------------
    _def("metadata.log.dir", STRING, None, None,
         "Directory of the metadata log; defaults to the first log directory."),
    _def("metadata.log.segment.bytes", INT, 1073741824, AtLeast(12),
         "Segment size of the metadata log."),
    _def("metadata.log.segment.ms", LONG, 604800000, AtLeast(1),
         "Time after which a metadata log segment is rolled."),
    _def("metadata.max.retention.bytes", LONG, 104857600, None,
         "Maximum size of metadata log + snapshots before old snapshots and segments are deleted."),
    _def("metadata.max.retention.ms", LONG, 604800000, None,
         "Maximum age of metadata snapshots and segments before deletion."),
    _def("metadata.log.max.record.bytes.between.snapshots", LONG, 20971520, AtLeast(1),
         "Bytes of metadata log between snapshots."),
    _def("metadata.log.max.snapshot.interval.ms", LONG, 3600000, AtLeast(0),
         "Maximum time between snapshots (0 disables time-based snapshots)."),
    _def("metadata.max.idle.interval.ms", INT, 500, AtLeast(0),
         "Interval at which the active controller appends a no-op record."),
    # --- listeners and network -----------------------------------------------------------------
    _def("listeners", LIST, "PLAINTEXT://:9092", None,
         "Comma-separated NAME://host:port listeners; an empty host binds all interfaces."),
    _def("advertised.listeners", LIST, None, None,
         "Listeners published to clients; defaults to listeners."),
    _def("listener.security.protocol.map", LIST, _DEFAULT_SECURITY_MAP, None,
         "Listener name to security protocol map, NAME:PROTOCOL pairs."),
    _def("inter.broker.listener.name", STRING, None, None,
         "Listener used between brokers; defaults to security.inter.broker.protocol."),
    _def("security.inter.broker.protocol", STRING, "PLAINTEXT", OneOf(SECURITY_PROTOCOLS),
         "Security protocol between brokers (mutually exclusive with inter.broker.listener.name)."),
    _def("admin.listeners", LIST, "http://127.0.0.1:9644", None,
         "HTTP admin API listeners, http://host:port (ours, like Redpanda's)."),
    _def("socket.request.max.bytes", INT, 104857600, AtLeast(1),
         "Maximum size of one request frame."),
    _def("socket.send.buffer.bytes", INT, 102400, None, "SO_SNDBUF (-1 = OS default)."),
    _def("socket.receive.buffer.bytes", INT, 102400, None, "SO_RCVBUF (-1 = OS default)."),
    _def("socket.listen.backlog.size", INT, 50, AtLeast(1), "Listen backlog."),
    _def("queued.max.requests", INT, 500, AtLeast(1),
         "Requests queued per node before the network layer stops reading."),
    _def("queued.max.request.bytes", LONG, -1, None,
         "Bytes of queued requests before reading stops (-1 = no limit)."),
    _def("connections.max.idle.ms", LONG, 600000, None, "Idle connections are closed after this."),
    _def("max.connections", INT, INT_MAX, AtLeast(0), "Maximum connections per node."),
    _def("max.connections.per.ip", INT, INT_MAX, AtLeast(0), "Maximum connections per IP."),
    _def("num.network.threads", INT, 3, AtLeast(1), "Accepted for compatibility; unused."),
    _def("num.io.threads", INT, 8, AtLeast(1), "Accepted for compatibility; unused."),
    _def("background.threads", INT, 10, AtLeast(1), "Accepted for compatibility; unused."),
    _def("num.recovery.threads.per.data.dir", INT, 2, AtLeast(1),
         "Accepted for compatibility; unused."),
    _def("num.replica.fetchers", INT, 1, AtLeast(1), "Fetcher tasks per source broker."),
    # --- log -----------------------------------------------------------------------------------
    _def("log.dir", STRING, "/tmp/kraft-combined-logs", None,
         "Log directory, used when log.dirs is not set."),
    _def("log.dirs", LIST, None, None, "Comma-separated log directories (overrides log.dir)."),
    _def("num.partitions", INT, 1, AtLeast(1), "Default number of partitions per topic."),
    _def("default.replication.factor", INT, 1, AtLeast(1),
         "Default replication factor of automatically created topics."),
    _def("log.segment.bytes", INT, 1073741824, AtLeast(14), "Maximum size of a log segment."),
    _def("log.roll.ms", LONG, None, None,
         "Time after which a segment is rolled (overrides hours)."),
    _def("log.roll.hours", INT, 168, AtLeast(1), "Time after which a segment is rolled, in hours."),
    _def("log.roll.jitter.ms", LONG, None, None, "Maximum jitter subtracted from the roll time."),
    _def("log.roll.jitter.hours", INT, 0, AtLeast(0), "Roll jitter in hours."),
    _def("log.retention.ms", LONG, None, None,
         "Retention time in ms (overrides minutes and hours); -1 = unlimited."),
    _def("log.retention.minutes", INT, None, None,
         "Retention time in minutes (overrides hours); -1 = unlimited."),
    _def("log.retention.hours", INT, 168, None, "Retention time in hours; -1 = unlimited."),
    _def("log.retention.bytes", LONG, -1, None,
         "Maximum partition size before deletion; -1 = unlimited."),
    _def("log.retention.check.interval.ms", LONG, 300000, AtLeast(1),
         "How often the retention check runs."),
    _def("log.cleanup.policy", LIST, "delete", ListOf(("compact", "delete")),
         "Default cleanup policy: delete, compact or both."),
    _def("log.cleaner.enable", BOOLEAN, True, None, "Run the log cleaner (needed for compaction)."),
    _def("log.cleaner.threads", INT, 1, AtLeast(0), "Number of cleaner threads."),
    _def("log.cleaner.delete.retention.ms", LONG, 86400000, AtLeast(0),
         "How long delete tombstones are kept in compacted topics."),
    _def("log.cleaner.min.cleanable.ratio", DOUBLE, 0.5, Between(0, 1),
         "Minimum dirty ratio before a log is compacted."),
    _def("log.cleaner.min.compaction.lag.ms", LONG, 0, AtLeast(0),
         "Minimum age of a record before it may be compacted."),
    _def("log.cleaner.max.compaction.lag.ms", LONG, LONG_MAX, AtLeast(1),
         "Maximum time a record stays uncompacted."),
    _def("log.cleaner.io.max.bytes.per.second", DOUBLE, DOUBLE_MAX, None,
         "Cleaner I/O throttle."),
    _def("log.cleaner.dedupe.buffer.size", LONG, 134217728, None,
         "Memory for the cleaner's deduplication map."),
    _def("log.cleaner.io.buffer.size", INT, 524288, AtLeast(0), "Cleaner I/O buffer size."),
    _def("log.cleaner.backoff.ms", LONG, 15000, AtLeast(0),
         "Sleep when there is nothing to clean."),
    _def("log.index.size.max.bytes", INT, 10485760, AtLeast(4), "Maximum offset index size."),
    _def("log.index.interval.bytes", INT, 4096, AtLeast(0), "Bytes between offset index entries."),
    _def("log.flush.interval.messages", LONG, LONG_MAX, AtLeast(1),
         "Messages appended before a forced flush."),
    _def("log.flush.interval.ms", LONG, None, None,
         "Time before a forced flush; defaults to log.flush.scheduler.interval.ms."),
    _def("log.flush.scheduler.interval.ms", LONG, LONG_MAX, None,
         "How often the flusher checks whether a log needs flushing."),
    _def("log.flush.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0),
         "How often the recovery point checkpoint is written."),
    _def("log.flush.start.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0),
         "How often the log start offset checkpoint is written."),
    _def("log.segment.delete.delay.ms", LONG, 60000, AtLeast(0),
         "Delay before a deleted segment's files are removed."),
    _def("log.preallocate", BOOLEAN, False, None, "Preallocate segment files."),
    _def("log.message.timestamp.type", STRING, "CreateTime", OneOf(_TIMESTAMP_TYPES),
         "Timestamp stored in records: CreateTime or LogAppendTime."),
    _def("log.message.timestamp.before.max.ms", LONG, LONG_MAX, AtLeast(0),
         "Maximum allowed distance of a record timestamp into the past."),
    _def("log.message.timestamp.after.max.ms", LONG, LONG_MAX, AtLeast(0),
         "Maximum allowed distance of a record timestamp into the future."),
    _def("message.max.bytes", INT, 1048588, AtLeast(0), "Largest record batch size allowed."),
    _def("compression.type", STRING, "producer", OneOf(_COMPRESSION_TYPES),
         "Final compression of topic data; producer keeps the producer's codec."),
    _def("min.insync.replicas", INT, 1, AtLeast(1),
         "Minimum ISR size for acks=all produce requests to succeed."),
    _def("unclean.leader.election.enable", BOOLEAN, False, None,
         "Allow out-of-sync replicas to become leader (may lose data)."),
    _def("auto.create.topics.enable", BOOLEAN, True, None, "Create topics on first use."),
    _def("delete.topic.enable", BOOLEAN, True, None, "Allow topic deletion."),
    # --- replication ---------------------------------------------------------------------------
    _def("replica.lag.time.max.ms", LONG, 30000, AtLeast(1),
         "A follower not caught up for this long is removed from the ISR."),
    _def("replica.socket.timeout.ms", INT, 30000, None, "Socket timeout of follower fetches."),
    _def("replica.socket.receive.buffer.bytes", INT, 65536, None, "Follower socket buffer."),
    _def("replica.fetch.max.bytes", INT, 1048576, AtLeast(0), "Bytes fetched per partition."),
    _def("replica.fetch.min.bytes", INT, 1, None, "Minimum bytes for a follower fetch response."),
    _def("replica.fetch.wait.max.ms", INT, 500, None, "Maximum wait of a follower fetch."),
    _def("replica.fetch.response.max.bytes", INT, 10485760, AtLeast(0),
         "Bytes of a whole follower fetch response."),
    _def("replica.fetch.backoff.ms", INT, 1000, AtLeast(0), "Backoff after a fetch error."),
    _def("max.incremental.fetch.session.cache.slots", INT, 1000, AtLeast(0),
         "Incremental fetch sessions (KIP-227) the broker keeps."),
    _def("replica.high.watermark.checkpoint.interval.ms", LONG, 5000, None,
         "How often high watermarks are checkpointed."),
    _def("replica.selector.class", CLASS, None, None, "Replica selector for fetch-from-follower."),
    _def("fetch.purgatory.purge.interval.requests", INT, 1000, None, "Fetch purgatory purge."),
    _def("producer.purgatory.purge.interval.requests", INT, 1000, None, "Produce purgatory purge."),
    _def("auto.leader.rebalance.enable", BOOLEAN, True, None,
         "Move leadership back to preferred replicas."),
    _def("leader.imbalance.per.broker.percentage", INT, 10, None,
         "Leader imbalance tolerated per broker."),
    _def("leader.imbalance.check.interval.seconds", LONG, 300, AtLeast(1),
         "How often leader imbalance is checked."),
    # --- group coordinator ---------------------------------------------------------------------
    _def("group.min.session.timeout.ms", INT, 6000, None, "Minimum consumer session timeout."),
    _def("group.max.session.timeout.ms", INT, 1800000, None, "Maximum consumer session timeout."),
    _def("group.initial.rebalance.delay.ms", INT, 3000, None,
         "Delay of the first rebalance of a new group."),
    _def("group.max.size", INT, INT_MAX, AtLeast(1), "Maximum members per group."),
    _def("offsets.topic.num.partitions", INT, 50, AtLeast(1), "Partitions of __consumer_offsets."),
    _def("offsets.topic.replication.factor", INT, 3, Between(1, 32767),
         "Replication factor of __consumer_offsets."),
    _def("offsets.topic.segment.bytes", INT, 104857600, AtLeast(1),
         "Segment size of __consumer_offsets."),
    _def("offsets.retention.minutes", INT, 10080, AtLeast(1),
         "Committed offsets of empty groups are kept this long."),
    _def("offsets.retention.check.interval.ms", LONG, 600000, AtLeast(1),
         "How often stale offsets are checked."),
    _def("offsets.commit.timeout.ms", INT, 5000, AtLeast(1), "Offset commit timeout."),
    _def("offsets.load.buffer.size", INT, 5242880, AtLeast(1), "Offsets load buffer."),
    # --- transactions --------------------------------------------------------------------------
    _def("transactional.id.expiration.ms", INT, 604800000, AtLeast(1),
         "Idle transactional ids expire after this."),
    _def("transaction.max.timeout.ms", INT, 900000, AtLeast(1), "Maximum transaction timeout."),
    _def("transaction.state.log.num.partitions", INT, 50, AtLeast(1),
         "Partitions of __transaction_state."),
    _def("transaction.state.log.replication.factor", INT, 3, Between(1, 32767),
         "Replication factor of __transaction_state."),
    _def("transaction.state.log.min.isr", INT, 2, AtLeast(1),
         "min.insync.replicas of __transaction_state."),
    _def("transaction.state.log.segment.bytes", INT, 104857600, AtLeast(1),
         "Segment size of __transaction_state."),
    _def("transaction.state.log.load.buffer.size", INT, 5242880, AtLeast(1),
         "Transaction state load buffer."),
    _def("transaction.abort.timed.out.transaction.cleanup.interval.ms", INT, 10000, AtLeast(1),
         "How often timed-out transactions are aborted."),
    _def("transaction.remove.expired.transaction.cleanup.interval.ms", INT, 3600000, AtLeast(1),
         "How often expired transactional ids are removed."),
    _def("producer.id.expiration.ms", INT, 86400000, AtLeast(1),
         "Idle producer ids expire after this."),
    _def("producer.id.expiration.check.interval.ms", INT, 600000, AtLeast(1),
         "How often idle producer ids are expired and stale producer snapshots deleted."),
    # --- security (accepted; only PLAINTEXT is implemented) ------------------------------------
    _def("ssl.keystore.password", PASSWORD, None, None, "Keystore password."),
    _def("ssl.key.password", PASSWORD, None, None, "Private key password."),
    _def("ssl.truststore.password", PASSWORD, None, None, "Truststore password."),
    _def("principal.builder.class", CLASS,
         "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder", None,
         "Principal builder (accepted for compatibility)."),
    _def("authorizer.class.name", STRING, "", None, "Authorizer (accepted; none is implemented)."),
]

CONFIG_DEFS: Final[dict[str, ConfigDef]] = {d.name: d for d in _DEFS}
assert len(CONFIG_DEFS) == len(_DEFS), "duplicate ConfigDef"

# Prefixes of keys Kafka accepts without a ConfigDef entry (per-listener overrides).
_KNOWN_PREFIXES = ("listener.name.",)

_PYTHON_NAMES: Final[dict[str, str]] = {d.python_name: d.name for d in _DEFS}


# ---------------------------------------------------------------------------------------------
# Endpoints and voters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listener: upper-cased ``name``, ``host`` (``""`` = all interfaces), ``port``."""

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


_LISTENER_RE = re.compile(r"(.+)://\[?([0-9a-zA-Z\-%._:]*)\]?:([0-9]+)")
_HOST_PORT_RE = re.compile(r"\[?([0-9a-zA-Z\-%._:]+)\]?:([0-9]+)")


def parse_listeners(
    key: str,
    entries: Sequence[str],
    security_map: Mapping[str, str] | None,
    *,
    require_distinct_ports: bool,
) -> list[Endpoint]:
    """Kafka's ``listenerListToEndPoints``: parse ``NAME://host:port`` entries.

    ``security_map`` None skips the protocol lookup (used for ``admin.listeners``).
    """
    raw = ",".join(entries)
    endpoints: list[Endpoint] = []
    for entry in entries:
        m = _LISTENER_RE.fullmatch(entry)
        if m is None:
            raise ConfigError(key, raw, f"Unable to parse {entry!r} to a listener endpoint "
                              "(expected NAME://host:port)")
        name, host, port_text = m.group(1).upper(), m.group(2), m.group(3)
        port = int(port_text)
        if port > 65535:
            raise ConfigError(key, raw, f"Invalid port {port} in {entry!r}")
        protocol = "PLAINTEXT"
        if security_map is not None:
            if name not in security_map:
                raise ConfigError(
                    key, raw, f"No security protocol defined for listener {name} (add it to "
                    "listener.security.protocol.map)"
                )
            protocol = security_map[name]
        endpoints.append(Endpoint(name, host, port, protocol))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(key, raw, "Each listener must have a different name")
    if require_distinct_ports:
        by_port: dict[int, list[Endpoint]] = {}
        for e in endpoints:
            if e.port != 0:
                by_port.setdefault(e.port, []).append(e)
        for port, same in by_port.items():
            dual_stack = len(same) == 2 and _one_ipv4_one_ipv6(same[0].host, same[1].host)
            if len(same) > 1 and not dual_stack:
                raise ConfigError(
                    key, raw, f"Each listener must have a different port unless exactly one "
                    f"listener has an IPv4 address and the other IPv6 address (port {port})"
                )
    return endpoints


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version
    except ValueError:
        return None


def _one_ipv4_one_ipv6(a: str, b: str) -> bool:
    return {_ip_version(a), _ip_version(b)} == {4, 6}


def parse_host_port(key: str, raw: str, entry: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` with a port in 1..65535."""
    m = _HOST_PORT_RE.fullmatch(entry.strip())
    if m is None:
        raise ConfigError(key, raw, f"Invalid host:port {entry!r}")
    host, port = m.group(1), int(m.group(2))
    if not 1 <= port <= 65535:
        raise ConfigError(key, raw, f"Invalid port {port} in {entry!r}")
    return host, port


def parse_voters(key: str, entries: Sequence[str]) -> dict[int, tuple[str, int]]:
    """Kafka's ``QuorumConfig.parseVoterConnections``: ``id@host:port`` entries."""
    raw = ",".join(entries)
    voters: dict[int, tuple[str, int]] = {}
    for entry in entries:
        parts = entry.split("@")
        if len(parts) != 2:
            raise ConfigError(key, raw, "Each entry should be in the form `{id}@{host}:{port}`.")
        id_text, address = parts
        if not _INT_RE.fullmatch(id_text.strip()):
            raise ConfigError(key, raw, f"Failed to parse voter ID as an integer from {id_text!r}")
        voter_id = int(id_text)
        if not 0 <= voter_id <= INT_MAX:
            raise ConfigError(key, raw, f"Invalid voter ID {voter_id}: must be non-negative")
        host, port = parse_host_port(key, raw, address)
        if host == "0.0.0.0":
            raise ConfigError(key, raw, f"Host string ({host}) is not routeable")
        if voter_id in voters:
            raise ConfigError(key, raw, f"Voter ID {voter_id} appears more than once")
        voters[voter_id] = (host, port)
    return voters


def _parse_security_map(key: str, entries: Sequence[str]) -> dict[str, str]:
    raw = ",".join(entries)
    result: dict[str, str] = {}
    for entry in entries:
        name, sep, protocol = entry.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name or not protocol:
            raise ConfigError(key, raw, f"Map entry {entry!r} is improperly formatted; "
                              "expected LISTENER_NAME:SECURITY_PROTOCOL")
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(key, raw, f"Invalid security protocol {protocol!r} for listener "
                              f"{name}; expected one of {', '.join(SECURITY_PROTOCOLS)}")
        if name in result:
            raise ConfigError(key, raw, f"Listener {name} appears more than once")
        result[name] = protocol
    return result


def _parse_admin_listeners(key: str, entries: Sequence[str]) -> list[Endpoint]:
    raw = ",".join(entries)
    endpoints = parse_listeners(key, entries, None, require_distinct_ports=True)
    for e in endpoints:
        if e.name != "HTTP":
            raise ConfigError(key, raw, f"Unsupported admin listener scheme {e.name.lower()!r} "
                              "(only http:// is supported)")
    return [Endpoint("http", e.host, e.port, "PLAINTEXT") for e in endpoints]


def _csv(items: Iterable[str]) -> str:
    return ",".join(items)


# ---------------------------------------------------------------------------------------------
# KafkaConfig
# ---------------------------------------------------------------------------------------------

_MS_PER_MINUTE = 60 * 1000
_MS_PER_HOUR = 60 * _MS_PER_MINUTE


class KafkaConfig:
    """A parsed, validated node configuration.

    ``cfg.get("log.segment.bytes")`` returns the parsed value of any key by its Kafka name.
    Attribute access uses Python names (dots become underscores): ``cfg.num_partitions``.
    A few attributes are *derived* views that apply Kafka's rules instead of the raw value:

    ``node_id: int``, ``process_roles: frozenset[str]``, ``listeners: list[Endpoint]``,
    ``advertised_listeners: list[Endpoint]`` (falls back to listeners),
    ``controller_listener_names: list[str]`` (upper-cased), ``controller_listeners``,
    ``effective_advertised_broker_listeners``, ``effective_advertised_controller_listeners``,
    ``listener_security_protocol_map: dict[str, str]``, ``inter_broker_listener_name: str``,
    ``controller_quorum_voters: dict[int, (host, port)]``,
    ``controller_quorum_bootstrap_servers: list[(host, port)]``, ``admin_listeners``,
    ``log_dirs: list[str]`` (log.dirs, else log.dir), ``metadata_log_dir: str``,
    ``log_retention_ms`` (ms > minutes > hours, negative -> -1), ``log_roll_ms``,
    ``log_roll_jitter_ms``, ``log_flush_interval_ms``.
    """

    node_id: int
    process_roles: frozenset[str]
    listener_security_protocol_map: dict[str, str]
    controller_listener_names: list[str]
    listeners: list[Endpoint]
    advertised_listeners: list[Endpoint]
    controller_listeners: list[Endpoint]
    effective_advertised_broker_listeners: list[Endpoint]
    effective_advertised_controller_listeners: list[Endpoint]
    inter_broker_listener_name: str
    controller_quorum_voters: dict[int, tuple[str, int]]
    controller_quorum_bootstrap_servers: list[tuple[str, int]]
    admin_listeners: list[Endpoint]
    log_dirs: list[str]
    metadata_log_dir: str
    log_retention_ms: int
    log_roll_ms: int
    log_roll_jitter_ms: int
    log_flush_interval_ms: int

    def __init__(self, props: Mapping[str, Any]) -> None:
        self._originals: dict[str, Any] = dict(props)
        values: dict[str, Any] = {}
        for name, d in CONFIG_DEFS.items():
            if name in props:
                values[name] = d.parse(props[name])
            elif d.required:
                raise ConfigError(
                    name, None,
                    f'Missing required configuration "{name}" which has no default value.',
                )
            else:
                values[name] = d.default_value()
        self._values = values
        self.unknown_keys: list[str] = sorted(
            k for k in props if k not in CONFIG_DEFS and not k.startswith(_KNOWN_PREFIXES)
        )
        for key in self.unknown_keys:
            logger.warning("The configuration '%s' was supplied but isn't a known config.", key)
        self._derive()
        self._validate()

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> KafkaConfig:
        return cls(props)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
    ) -> KafkaConfig:
        """Read a ``server.properties`` file, apply ``overrides`` (later wins), validate."""
        props: dict[str, Any] = dict(load_properties(path))
        if overrides:
            props.update(overrides)
        return cls(props)

    # --- access --------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The parsed value of ``key`` (Kafka name). Raises ``KeyError`` for an unknown key."""
        return self._values[key]

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: derived attributes win over raw values.
        key = _PYTHON_NAMES.get(name)
        if key is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return self._values[key]

    @property
    def originals(self) -> dict[str, Any]:
        """The properties as given (a copy)."""
        return dict(self._originals)

    def is_set(self, key: str) -> bool:
        """True if ``key`` was given explicitly (not a default)."""
        return key in self._originals

    def values(self) -> dict[str, Any]:
        """Every key's parsed value (passwords stay hidden ``Password`` objects)."""
        return dict(self._values)

    @property
    def is_broker(self) -> bool:
        return "broker" in self.process_roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.process_roles

    def __repr__(self) -> str:
        return (
            f"KafkaConfig(node.id={self.node_id}, process.roles={sorted(self.process_roles)}, "
            f"listeners={[str(e) for e in self.listeners]})"
        )

    # --- derived values ------------------------------------------------------------------------

    def _derive(self) -> None:
        v = self._values
        self.node_id = v["node.id"]

        roles = v["process.roles"]
        if len(set(roles)) != len(roles):
            raise ConfigError("process.roles", _csv(roles), "Duplicate role names found")
        if not roles:
            raise ConfigError(
                "process.roles", "", "process.roles must contain broker, controller or both "
                "(only KRaft mode is supported)"
            )
        self.process_roles = frozenset(roles)

        self.controller_listener_names = [n.upper() for n in v["controller.listener.names"] if n]

        security_map = _parse_security_map(
            "listener.security.protocol.map", v["listener.security.protocol.map"]
        )
        if not self.is_set("listener.security.protocol.map"):
            # Kafka's effectiveListenerSecurityProtocolMap: controller listeners default to
            # PLAINTEXT when the map was not given explicitly.
            for name in self.controller_listener_names:
                security_map.setdefault(name, "PLAINTEXT")
        self.listener_security_protocol_map = security_map

        self.listeners = parse_listeners(
            "listeners", v["listeners"], security_map, require_distinct_ports=True
        )
        if v["advertised.listeners"] is not None:
            self.advertised_listeners = parse_listeners(
                "advertised.listeners", v["advertised.listeners"], security_map,
                require_distinct_ports=False,
            )
        else:
            self.advertised_listeners = list(self.listeners)
        controller_names = set(self.controller_listener_names)
        self.controller_listeners = [e for e in self.listeners if e.name in controller_names]
        self.effective_advertised_broker_listeners = [
            e for e in self.advertised_listeners if e.name not in controller_names
        ]
        advertised_controller: list[Endpoint] = []
        for name in self.controller_listener_names:
            chosen = None
            if v["advertised.listeners"] is not None:
                chosen = next((e for e in self.advertised_listeners if e.name == name), None)
            if chosen is None:
                chosen = next((e for e in self.controller_listeners if e.name == name), None)
                if chosen is not None and chosen.host == "0.0.0.0":
                    chosen = Endpoint(chosen.name, "", chosen.port, chosen.security_protocol)
            if chosen is not None:
                advertised_controller.append(chosen)
        self.effective_advertised_controller_listeners = advertised_controller

        if self.is_set("inter.broker.listener.name") and self.is_set(
            "security.inter.broker.protocol"
        ):
            raise ConfigError(
                "inter.broker.listener.name", v["inter.broker.listener.name"],
                "Only one of inter.broker.listener.name and security.inter.broker.protocol "
                "should be set.",
            )
        if v["inter.broker.listener.name"]:
            self.inter_broker_listener_name = v["inter.broker.listener.name"].upper()
        else:
            self.inter_broker_listener_name = v["security.inter.broker.protocol"]

        self.controller_quorum_voters = parse_voters(
            "controller.quorum.voters", v["controller.quorum.voters"]
        )
        bootstrap = v["controller.quorum.bootstrap.servers"]
        self.controller_quorum_bootstrap_servers = [
            parse_host_port("controller.quorum.bootstrap.servers", _csv(bootstrap), entry)
            for entry in bootstrap
        ]
        self.admin_listeners = _parse_admin_listeners("admin.listeners", v["admin.listeners"])

        self.log_dirs = self._parse_log_dirs()
        # Paths are normalised ("/a/" -> "/a") so that one directory is never seen as two.
        metadata_dir = v["metadata.log.dir"]
        self.metadata_log_dir = os.path.normpath(metadata_dir) if metadata_dir else self.log_dirs[0]

        if v["log.retention.ms"] is not None:
            retention = v["log.retention.ms"]
        elif v["log.retention.minutes"] is not None:
            retention = v["log.retention.minutes"] * _MS_PER_MINUTE
        else:
            retention = v["log.retention.hours"] * _MS_PER_HOUR
        self.log_retention_ms = -1 if retention < 0 else retention
        self.log_roll_ms = (
            v["log.roll.ms"] if v["log.roll.ms"] is not None else v["log.roll.hours"] * _MS_PER_HOUR
        )
        self.log_roll_jitter_ms = (
            v["log.roll.jitter.ms"]
            if v["log.roll.jitter.ms"] is not None
            else v["log.roll.jitter.hours"] * _MS_PER_HOUR
        )
        self.log_flush_interval_ms = (
            v["log.flush.interval.ms"]
            if v["log.flush.interval.ms"] is not None
            else v["log.flush.scheduler.interval.ms"]
        )

    def _parse_log_dirs(self) -> list[str]:
        key = "log.dirs" if self._values["log.dirs"] is not None else "log.dir"
        raw = self._values[key]
        entries = raw if isinstance(raw, list) else _LIST_SPLIT_RE.split(raw)
        dirs = [os.path.normpath(d) for d in entries if d]
        shown = raw if isinstance(raw, str) else _csv(raw)
        if not dirs:
            raise ConfigError(key, shown, "At least one log directory must be defined")
        normalised = [os.path.normpath(os.path.abspath(d)) for d in dirs]
        if len(set(normalised)) != len(normalised):
            raise ConfigError(key, shown, "Duplicate log directory found")
        return dirs

    # --- cross-key checks (Kafka's KafkaConfig.validateValues, KRaft part) --------------------

    def _validate(self) -> None:
        v = self._values
        roles = self.process_roles
        controller_names = set(self.controller_listener_names)
        voters = self.controller_quorum_voters
        voters_raw = _csv(v["controller.quorum.voters"])
        names_raw = _csv(v["controller.listener.names"])
        listeners_raw = _csv(v["listeners"])
        listener_names = {e.name for e in self.listeners}

        if not voters and not self.controller_quorum_bootstrap_servers:
            raise ConfigError(
                "controller.quorum.voters", voters_raw,
                "If using process.roles, either controller.quorum.bootstrap.servers must contain "
                "the set of bootstrap controllers or controller.quorum.voters must contain a "
                "parseable set of controllers.",
            )

        if not self.controller_listener_names:
            raise ConfigError(
                "controller.listener.names", names_raw,
                "controller.listener.names must contain at least one value when running in "
                "KRaft mode",
            )
        for name in self.controller_listener_names:
            if name not in self.listener_security_protocol_map:
                raise ConfigError(
                    "listener.security.protocol.map", _csv(v["listener.security.protocol.map"]),
                    f"Controller listener with name {name} defined in controller.listener.names "
                    "not found in listener.security.protocol.map",
                )

        if "controller" in roles:
            if self.node_id not in voters and voters:
                raise ConfigError(
                    "controller.quorum.voters", voters_raw,
                    "If process.roles contains the 'controller' role, the node id "
                    f"{self.node_id} must be included in the set of voters "
                    f"controller.quorum.voters={sorted(voters)}",
                )
            first = self.controller_listener_names[0]
            if first not in listener_names:
                raise ConfigError(
                    "controller.listener.names", names_raw,
                    f"The first controller listener name {first} must appear in the 'listeners' "
                    f"configuration ({listeners_raw}) when running the KRaft controller role",
                )
            if "broker" in roles:
                missing = [n for n in self.controller_listener_names if n not in listener_names]
                if missing:
                    raise ConfigError(
                        "controller.listener.names", names_raw,
                        "controller.listener.names must only contain values appearing in the "
                        f"'listeners' configuration when running the KRaft controller role "
                        f"(missing: {', '.join(missing)})",
                    )
            else:
                others = [e.name for e in self.listeners if e.name not in controller_names]
                if others:
                    raise ConfigError(
                        "listeners", listeners_raw,
                        "The listeners config must only contain KRaft controller listeners from "
                        "controller.listener.names when process.roles=controller "
                        f"(found {', '.join(others)})",
                    )
        else:
            if self.node_id in voters:
                raise ConfigError(
                    "controller.quorum.voters", voters_raw,
                    "If process.roles contains just the 'broker' role, the node id "
                    f"{self.node_id} must not be included in the set of voters "
                    f"controller.quorum.voters={sorted(voters)}",
                )
            clash = [e.name for e in self.controller_listeners]
            if clash:
                raise ConfigError(
                    "listeners", listeners_raw,
                    "controller.listener.names must not contain a value appearing in the "
                    "'listeners' configuration when running KRaft with just the broker role "
                    f"({', '.join(clash)})",
                )
            if len(self.controller_listener_names) > 1:
                logger.warning(
                    "controller.listener.names has multiple entries; only the first will be used "
                    "since process.roles=broker: %s", self.controller_listener_names,
                )

        if "broker" in roles:
            advertised_raw = _csv(v["advertised.listeners"] or v["listeners"])
            broker_names = [e.name for e in self.effective_advertised_broker_listeners]
            if not broker_names:
                raise ConfigError(
                    "listeners", listeners_raw,
                    "There must be at least one broker advertised listener. Perhaps all "
                    "listeners appear in controller.listener.names?",
                )
            if self.inter_broker_listener_name not in broker_names:
                key = (
                    "inter.broker.listener.name"
                    if v["inter.broker.listener.name"]
                    else "security.inter.broker.protocol"
                )
                raise ConfigError(
                    key, self.inter_broker_listener_name,
                    "inter.broker.listener.name must be a listener name defined in "
                    "advertised.listeners. The valid options based on currently configured "
                    f"listeners are {','.join(broker_names)}",
                )
            not_listened = [n for n in broker_names if n not in listener_names]
            if not_listened:
                raise ConfigError(
                    "advertised.listeners", advertised_raw,
                    "advertised.listeners listener names must be equal to or a subset of the ones "
                    f"defined in listeners. Found {','.join(broker_names)}. The valid options "
                    f"based on the current configuration are {','.join(sorted(listener_names))}",
                )
            if any(e.host == "0.0.0.0" for e in self.effective_advertised_broker_listeners):
                raise ConfigError(
                    "advertised.listeners", advertised_raw,
                    "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. "
                    "Use a routable IP address.",
                )

        kafka_ports = {e.port for e in self.listeners if e.port != 0}
        for e in self.admin_listeners:
            if e.port != 0 and e.port in kafka_ports:
                raise ConfigError(
                    "admin.listeners", _csv(v["admin.listeners"]),
                    f"Admin listener port {e.port} is also used by a Kafka listener",
                )

        wait = v["replica.fetch.wait.max.ms"]
        if wait > v["replica.socket.timeout.ms"]:
            raise ConfigError(
                "replica.socket.timeout.ms", v["replica.socket.timeout.ms"],
                "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms "
                "to prevent unnecessary socket timeouts",
            )
        if wait > v["replica.lag.time.max.ms"]:
            raise ConfigError(
                "replica.fetch.wait.max.ms", wait,
                "replica.fetch.wait.max.ms should always be less than or equal to "
                "replica.lag.time.max.ms to prevent frequent changes in ISR",
            )
        if v["group.max.session.timeout.ms"] < v["group.min.session.timeout.ms"]:
            raise ConfigError(
                "group.max.session.timeout.ms", v["group.max.session.timeout.ms"],
                "group.max.session.timeout.ms must be at least group.min.session.timeout.ms",
            )

    # --- topic-level defaults ------------------------------------------------------------------

    def log_config_defaults(self) -> dict[str, str]:
        """The broker's defaults for topic-level log configs, by topic-level name.

        Kafka's ``ServerTopicConfigSynonyms`` with its precedence rules applied (for example
        ``retention.ms`` from log.retention.ms > .minutes > .hours, ``flush.ms`` falling back to
        log.flush.scheduler.interval.ms). Values are strings as ``LogConfig`` expects them.
        """
        v = self._values

        def b(x: bool) -> str:
            return "true" if x else "false"

        return {
            "segment.bytes": str(v["log.segment.bytes"]),
            "segment.ms": str(self.log_roll_ms),
            "segment.jitter.ms": str(self.log_roll_jitter_ms),
            "segment.index.bytes": str(v["log.index.size.max.bytes"]),
            "index.interval.bytes": str(v["log.index.interval.bytes"]),
            "retention.ms": str(self.log_retention_ms),
            "retention.bytes": str(v["log.retention.bytes"]),
            "flush.messages": str(v["log.flush.interval.messages"]),
            "flush.ms": str(self.log_flush_interval_ms),
            "cleanup.policy": _csv(v["log.cleanup.policy"]),
            "delete.retention.ms": str(v["log.cleaner.delete.retention.ms"]),
            "min.compaction.lag.ms": str(v["log.cleaner.min.compaction.lag.ms"]),
            "max.compaction.lag.ms": str(v["log.cleaner.max.compaction.lag.ms"]),
            "min.cleanable.dirty.ratio": repr(v["log.cleaner.min.cleanable.ratio"]),
            "file.delete.delay.ms": str(v["log.segment.delete.delay.ms"]),
            "max.message.bytes": str(v["message.max.bytes"]),
            "message.timestamp.type": v["log.message.timestamp.type"],
            "message.timestamp.before.max.ms": str(v["log.message.timestamp.before.max.ms"]),
            "message.timestamp.after.max.ms": str(v["log.message.timestamp.after.max.ms"]),
            "min.insync.replicas": str(v["min.insync.replicas"]),
            "unclean.leader.election.enable": b(v["unclean.leader.election.enable"]),
            "compression.type": v["compression.type"],
            "preallocate": b(v["log.preallocate"]),
        }
