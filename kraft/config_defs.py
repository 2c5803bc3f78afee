"""Kafka's configuration keys: names, types, defaults, validators and docs (Kafka's
``ConfigDef``), as one declarative table, ``CONFIG_DEFS``.

Parsing follows Kafka's ``ConfigDef.parseType``: string values are trimmed; ``int``/``long`` are
decimal with an optional sign and must fit 32/64 bits; ``boolean`` is ``true``/``false`` in any
case; ``list`` splits on commas with surrounding whitespace (an empty string is an empty list).
A bad value raises :class:`~storage.errors.ConfigError` naming the key and the value
(``Invalid value 'x' for configuration num.partitions: Not a number of type INT``).

Pure data and checks, in ``kraft`` because both sides need it: the controller validates dynamic
configs against it (``kraft.controller.configuration_control``) and the node parses its
``server.properties`` with it (``broker.config.KafkaConfig``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from storage.errors import ConfigError

__all__ = [
    "CONFIG_DEFS",
    "NO_DEFAULT",
    "SECURITY_PROTOCOLS",
    "AtLeast",
    "Between",
    "ConfigDef",
    "ConfigType",
    "ListOf",
    "OneOf",
    "Password",
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
# Validators (Kafka's ConfigDef.Range, ValidString, ValidList)
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


# ---------------------------------------------------------------------------------------------
# ConfigDef
# ---------------------------------------------------------------------------------------------

INT_RE = re.compile(r"[+-]?[0-9]+")
_DOUBLE_RE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?))[fFdD]?"
)
LIST_SPLIT_RE = re.compile(r"\s*,\s*")
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
            elif isinstance(value, str) and INT_RE.fullmatch(value):
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
                return [] if value == "" else LIST_SPLIT_RE.split(value)
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
    # The replication engine under the metadata quorum (ours; broker/controller/engine.py).
    _def("controller.quorum.engine", STRING, "kraft", OneOf(("kraft", "pysyncobj")),
         "Metadata quorum engine (ours): kraft (KIP-595 Raft) or pysyncobj (controllers only)."),
    _def("controller.quorum.engine.pysyncobj.port.offset", INT, 1000, Between(-65535, 65535),
         "pysyncobj engine (ours): its port is the controller listener's port plus this."),
    _def("controller.quorum.engine.pysyncobj.password", PASSWORD, "", None,
         "pysyncobj engine (ours): secret mixed with the cluster id into its peers' password."),
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
         "HTTP admin API listeners, http://host:port or https://host:port (ours, like Redpanda's)."),
    _def("admin.authentication.methods", LIST, "", ListOf(("basic", "bearer")),
         "HTTP admin API authentication (ours): empty = none; basic (SCRAM users), bearer."),
    _def("admin.bearer.tokens.file", STRING, None, None,
         "HTTP admin API bearer tokens (ours): lines '<token> <Type:name>', re-read on change."),
    _def("socket.request.max.bytes", INT, 104857600, AtLeast(1),
         "Maximum size of one request frame."),
    _def("socket.send.buffer.bytes", INT, 102400, None, "SO_SNDBUF (-1 = OS default)."),
    _def("socket.receive.buffer.bytes", INT, 102400, None, "SO_RCVBUF (-1 = OS default)."),
    _def("socket.listen.backlog.size", INT, 50, AtLeast(1), "Listen backlog."),
    _def("queued.max.requests", INT, 500, AtLeast(1),
         "Requests read and not yet answered, over the connections of a listener kind, at "
         "which a connection adding one stops being read."),
    _def("queued.max.request.bytes", LONG, -1, None,
         "Bytes of partially read requests held per listener kind (a memory pool; when it is "
         "empty connections stop being read until bytes are freed); -1 = no limit."),
    _def("connections.max.idle.ms", LONG, 600000, None,
         "Connections that received nothing for this long are closed (-1: never)."),
    _def("max.connections", INT, INT_MAX, AtLeast(0),
         "Connections per listener kind; at the limit listeners stop accepting until one "
         "closes (the inter-broker listener is protected). Per listener: "
         "listener.name.<listener>.max.connections."),
    _def("max.connections.per.ip", INT, INT_MAX, AtLeast(0),
         "Connections per peer address; one more is accepted and closed at once."),
    _def("max.connections.per.ip.overrides", STRING, "", None,
         "Per-address exceptions to max.connections.per.ip: host:count,host:count."),
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
    _def("quota.window.num", INT, 11, AtLeast(1),
         "Windows kept by each client quota's rate (broker/quotas/rate.py)."),
    _def("quota.window.size.seconds", INT, 1, AtLeast(1),
         "Length of each window of a client quota's rate."),
    _def("controller.quota.window.num", INT, 11, AtLeast(1),
         "Windows of controller_mutation_rate's token bucket: its burst is the quota times "
         "this times the window size (broker/quotas/mutations.py)."),
    _def("controller.quota.window.size.seconds", INT, 1, AtLeast(1),
         "Window size of controller_mutation_rate's token bucket."),
    _def("leader.replication.throttled.rate", LONG, LONG_MAX, AtLeast(0),
         "Bytes/s a leader sends to throttled replicas that are out of the ISR."),
    _def("follower.replication.throttled.rate", LONG, LONG_MAX, AtLeast(0),
         "Bytes/s a follower fetches for throttled replicas that are out of the ISR."),
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
    _def("group.consumer.heartbeat.interval.ms", INT, 5000, AtLeast(1),
         "Heartbeat interval of consumer groups of the new protocol (KIP-848)."),
    _def("group.consumer.min.heartbeat.interval.ms", INT, 5000, AtLeast(1),
         "Minimum consumer group heartbeat interval."),
    _def("group.consumer.max.heartbeat.interval.ms", INT, 15000, AtLeast(1),
         "Maximum consumer group heartbeat interval."),
    _def("group.consumer.session.timeout.ms", INT, 45000, AtLeast(1),
         "Session timeout of consumer group members (KIP-848)."),
    _def("group.consumer.min.session.timeout.ms", INT, 45000, AtLeast(1),
         "Minimum consumer group session timeout."),
    _def("group.consumer.max.session.timeout.ms", INT, 60000, AtLeast(1),
         "Maximum consumer group session timeout."),
    _def("group.consumer.assignors", LIST, "uniform,range", None,
         "Server-side assignors of consumer groups, the first is the default."),
    _def("group.consumer.max.size", INT, INT_MAX, AtLeast(1),
         "Maximum members per consumer group."),
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
    _def("transaction.partition.verification.enable", BOOLEAN, True, None,
         "Leaders ask the transaction coordinator whether a partition is in the transaction "
         "before appending the first transactional batch of a producer there (KIP-890)."),
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
    # --- security: TLS and SASL (broker/security/; each key may be set per listener with the
    # prefix listener.name.<listener>.) ---------------------------------------------------------
    _def("ssl.keystore.type", STRING, "JKS", None,
         "Key store format; only PEM is supported (JKS and PKCS12 are refused)."),
    _def("ssl.keystore.location", STRING, None, None,
         "PEM file with the private key and its certificate chain."),
    _def("ssl.keystore.certificate.chain", PASSWORD, None, None,
         "The certificate chain as PEM text (with ssl.keystore.key)."),
    _def("ssl.keystore.key", PASSWORD, None, None, "The private key as PEM text."),
    _def("ssl.keystore.password", PASSWORD, None, None,
         "Password of an encrypted key when ssl.key.password is not set."),
    _def("ssl.key.password", PASSWORD, None, None, "Password of an encrypted private key."),
    _def("ssl.truststore.type", STRING, "JKS", None, "Trust store format; only PEM."),
    _def("ssl.truststore.location", STRING, None, None, "PEM file of trusted certificates."),
    _def("ssl.truststore.certificates", PASSWORD, None, None,
         "Trusted certificates as PEM text."),
    _def("ssl.truststore.password", PASSWORD, None, None, "Unused with PEM stores."),
    _def("ssl.client.auth", STRING, "none", OneOf(("required", "requested", "none")),
         "Whether TLS clients must (required) or may (requested) present a certificate."),
    _def("ssl.principal.mapping.rules", STRING, "DEFAULT", None,
         "RULE:pattern/replacement/[LU] rules mapping a certificate's RFC 2253 name to a "
         "user name; DEFAULT keeps the whole name."),
    _def("ssl.enabled.protocols", LIST, "TLSv1.2,TLSv1.3", None,
         "TLS versions accepted (the lowest listed is the minimum)."),
    _def("ssl.protocol", STRING, "TLSv1.3", None, "Accepted; the enabled protocols decide."),
    _def("ssl.cipher.suites", LIST, "", None,
         "Accepted; Java suite names are not applied (OpenSSL's defaults are used)."),
    _def("ssl.endpoint.identification.algorithm", STRING, "https", None,
         "https: outgoing TLS connections check the server's host name; empty: they do not."),
    _def("sasl.enabled.mechanisms", LIST, "GSSAPI", None,
         "SASL mechanisms served on SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512."),
    _def("sasl.mechanism.inter.broker.protocol", STRING, "GSSAPI", None,
         "SASL mechanism brokers use to reach each other."),
    _def("sasl.mechanism.controller.protocol", STRING, "GSSAPI", None,
         "SASL mechanism used to reach the controllers."),
    _def("sasl.jaas.config", PASSWORD, None, None,
         "JAAS login (normally set per listener and mechanism)."),
    _def("connections.max.reauth.ms", LONG, 0, AtLeast(0),
         "SASL session lifetime (KIP-368); 0: sessions never expire."),
    _def("principal.builder.class", CLASS,
         "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder", None,
         "Principal builder (accepted for compatibility)."),
    _def("authorizer.class.name", STRING, "", None,
         "org.apache.kafka.metadata.authorizer.StandardAuthorizer enables ACLs "
         "(broker/security/authorizer.py); empty: every request is allowed."),
    _def("super.users", STRING, "", None,
         "Principals allowed everything, separated by ';' (e.g. User:admin;User:ops)."),
    _def("allow.everyone.if.no.acl.found", BOOLEAN, False, None,
         "With an authorizer: a resource without any ACL is open to everyone."),
]

CONFIG_DEFS: Final[dict[str, ConfigDef]] = {d.name: d for d in _DEFS}
assert len(CONFIG_DEFS) == len(_DEFS), "duplicate ConfigDef"

# Prefixes of keys Kafka accepts without a ConfigDef entry (per-listener overrides).
KNOWN_PREFIXES = ("listener.name.",)

PYTHON_NAMES: Final[dict[str, str]] = {d.python_name: d.name for d in _DEFS}
