"""Topic-level log configuration: Kafka's ``LogConfig`` (names, defaults and validation).

``LogConfig`` holds the settings a ``PartitionLog`` obeys, with Kafka's defaults. Topic configs
arrive as strings keyed by Kafka's dotted names (``segment.bytes``, ``retention.ms``, ...), from
``CreateTopics``/``AlterConfigs`` or ``ConfigRecord``s; ``LogConfig.from_topic_configs`` parses and
validates them on top of a base config (the broker's defaults) and raises
``storage.errors.ConfigError(key, value, reason)`` on the first bad one.

Besides the log settings proper, a few topic-level keys that other layers read
(``min.insync.replicas``, ``unclean.leader.election.enable``, ``compression.type``, the timestamp
bounds) are carried here too, so a topic has exactly one parsed config object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.errors import ConfigError

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

CLEANUP_POLICY_DELETE = "delete"
CLEANUP_POLICY_COMPACT = "compact"
TIMESTAMP_TYPE_CREATE_TIME = "CreateTime"
TIMESTAMP_TYPE_LOG_APPEND_TIME = "LogAppendTime"
COMPRESSION_TYPES = frozenset({"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"})

# Kafka's LegacyRecord.RECORD_OVERHEAD_V0: the smallest segment.bytes Kafka accepts.
MIN_SEGMENT_BYTES = 14
# One time-index entry (12 bytes) must fit, else every append would find the index full.
MIN_SEGMENT_INDEX_BYTES = 12


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1: unlimited
    retention_bytes: int = -1  # -1: unlimited
    flush_messages: int = INT64_MAX
    flush_ms: int = INT64_MAX
    cleanup_policy: frozenset[str] = field(default=frozenset({CLEANUP_POLICY_DELETE}))
    delete_retention_ms: int = 24 * 3600 * 1000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = INT64_MAX
    max_message_bytes: int = 1024 * 1024 + 12  # 1048588
    message_timestamp_type: str = TIMESTAMP_TYPE_CREATE_TIME
    message_timestamp_before_max_ms: int = INT64_MAX
    message_timestamp_after_max_ms: int = INT64_MAX
    file_delete_delay_ms: int = 60000
    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False
    compression_type: str = "producer"

    def __post_init__(self) -> None:
        # Accept "compact" / "compact,delete" / any iterable of policies for convenience.
        policy: Any = self.cleanup_policy
        if isinstance(policy, str):
            object.__setattr__(self, "cleanup_policy", _parse_policy("cleanup.policy", policy))
        elif not isinstance(policy, frozenset):
            object.__setattr__(self, "cleanup_policy", frozenset(policy))
        # Validate programmatic construction with the same rules as string configs.
        for key, attr in TOPIC_CONFIG_KEYS.items():
            _CHECKS[key](key, getattr(self, attr))

    @property
    def delete_enabled(self) -> bool:
        return CLEANUP_POLICY_DELETE in self.cleanup_policy

    @property
    def compact_enabled(self) -> bool:
        return CLEANUP_POLICY_COMPACT in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == TIMESTAMP_TYPE_LOG_APPEND_TIME

    @property
    def max_index_entries(self) -> int:
        return self.segment_index_bytes // 8

    @property
    def max_time_index_entries(self) -> int:
        return self.segment_index_bytes // 12

    def replace(self, **changes: Any) -> LogConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_topic_configs(
        cls,
        mapping: Mapping[str, str],
        base: LogConfig | None = None,
        *,
        ignore_unknown: bool = False,
    ) -> LogConfig:
        """Parse Kafka topic-level configs (string values) over ``base`` (default: Kafka's).

        Known Kafka topic keys that do not concern the log (e.g. ``preallocate``,
        ``follower.replication.throttled.replicas``) are accepted and ignored. An unknown key
        raises ``ConfigError`` unless ``ignore_unknown``.
        """
        base = base if base is not None else cls()
        changes: dict[str, Any] = {}
        for key, raw in mapping.items():
            attr = TOPIC_CONFIG_KEYS.get(key)
            if attr is None:
                if key in IGNORED_TOPIC_KEYS or ignore_unknown:
                    continue
                raise ConfigError(key, raw, "unknown topic configuration")
            if raw is None:
                # A null value means "use the default" (AlterConfigs DELETE semantics).
                changes[attr] = getattr(base, attr)
                continue
            value = _PARSERS[key](key, raw)
            _CHECKS[key](key, value)
            changes[attr] = value
        return dataclasses.replace(base, **changes)

    def to_topic_configs(self) -> dict[str, str]:
        """The Kafka string form of every setting (for DescribeConfigs)."""
        out: dict[str, str] = {}
        for key, attr in TOPIC_CONFIG_KEYS.items():
            value = getattr(self, attr)
            if isinstance(value, frozenset):
                out[key] = ",".join(sorted(value))
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            else:
                out[key] = str(value)
        return out


# Kafka topic key -> LogConfig attribute.
TOPIC_CONFIG_KEYS: dict[str, str] = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "segment.jitter.ms": "segment_jitter_ms",
    "segment.index.bytes": "segment_index_bytes",
    "index.interval.bytes": "index_interval_bytes",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "flush.messages": "flush_messages",
    "flush.ms": "flush_ms",
    "cleanup.policy": "cleanup_policy",
    "delete.retention.ms": "delete_retention_ms",
    "min.cleanable.dirty.ratio": "min_cleanable_dirty_ratio",
    "min.compaction.lag.ms": "min_compaction_lag_ms",
    "max.compaction.lag.ms": "max_compaction_lag_ms",
    "max.message.bytes": "max_message_bytes",
    "message.timestamp.type": "message_timestamp_type",
    "message.timestamp.before.max.ms": "message_timestamp_before_max_ms",
    "message.timestamp.after.max.ms": "message_timestamp_after_max_ms",
    "file.delete.delay.ms": "file_delete_delay_ms",
    "min.insync.replicas": "min_insync_replicas",
    "unclean.leader.election.enable": "unclean_leader_election_enable",
    "compression.type": "compression_type",
}

# Kafka topic keys we accept but do not act on here.
IGNORED_TOPIC_KEYS = frozenset({
    "preallocate",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "remote.storage.enable",
    "local.retention.ms",
    "local.retention.bytes",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
})


_Check = Callable[[str, Any], None]


def _parse_long(key: str, raw: str) -> int:
    text = str(raw).strip()
    try:
        value = int(text, 10)
    except ValueError:
        raise ConfigError(key, raw, "not a number") from None
    if not -(2**63) <= value <= INT64_MAX:
        raise ConfigError(key, raw, "out of range for a long")
    return value


def _parse_int(key: str, raw: str) -> int:
    value = _parse_long(key, raw)
    if not -(2**31) <= value <= INT32_MAX:
        raise ConfigError(key, raw, "out of range for an int")
    return value


def _parse_double(key: str, raw: str) -> float:
    try:
        return float(str(raw).strip())
    except ValueError:
        raise ConfigError(key, raw, "not a number") from None


def _parse_bool(key: str, raw: str) -> bool:
    text = str(raw).strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise ConfigError(key, raw, "expected true or false")


def _parse_policy(key: str, raw: str) -> frozenset[str]:
    items = [item.strip() for item in str(raw).split(",")]
    return frozenset(item for item in items if item)


def _parse_str(key: str, raw: str) -> str:
    return str(raw).strip()


def _at_least(minimum: float) -> _Check:
    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, value, "must be a number")
        if value < minimum:
            raise ConfigError(key, value, f"must be at least {minimum}")

    return check


def _between(low: float, high: float) -> _Check:
    def check(key: str, value: Any) -> None:
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(key, value, f"must be between {low} and {high}")

    return check


def _one_of(choices: frozenset[str]) -> _Check:
    def check(key: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(key, value, f"must be one of {sorted(choices)}")

    return check


def _check_policy(key: str, value: Any) -> None:
    if not isinstance(value, frozenset):
        raise ConfigError(key, value, "must be a frozenset of policies")
    bad = value - {CLEANUP_POLICY_DELETE, CLEANUP_POLICY_COMPACT}
    if bad:
        raise ConfigError(key, ",".join(sorted(value)), f"unknown cleanup policy {sorted(bad)}")


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be a boolean")


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "segment.bytes": _parse_int,
    "segment.ms": _parse_long,
    "segment.jitter.ms": _parse_long,
    "segment.index.bytes": _parse_int,
    "index.interval.bytes": _parse_int,
    "retention.ms": _parse_long,
    "retention.bytes": _parse_long,
    "flush.messages": _parse_long,
    "flush.ms": _parse_long,
    "cleanup.policy": _parse_policy,
    "delete.retention.ms": _parse_long,
    "min.cleanable.dirty.ratio": _parse_double,
    "min.compaction.lag.ms": _parse_long,
    "max.compaction.lag.ms": _parse_long,
    "max.message.bytes": _parse_int,
    "message.timestamp.type": _parse_str,
    "message.timestamp.before.max.ms": _parse_long,
    "message.timestamp.after.max.ms": _parse_long,
    "file.delete.delay.ms": _parse_long,
    "min.insync.replicas": _parse_int,
    "unclean.leader.election.enable": _parse_bool,
    "compression.type": _parse_str,
}

_CHECKS: dict[str, _Check] = {
    "segment.bytes": _at_least(MIN_SEGMENT_BYTES),
    "segment.ms": _at_least(1),
    "segment.jitter.ms": _at_least(0),
    "segment.index.bytes": _at_least(MIN_SEGMENT_INDEX_BYTES),
    "index.interval.bytes": _at_least(0),
    "retention.ms": _at_least(-1),
    "retention.bytes": _at_least(-(2**63)),
    "flush.messages": _at_least(1),
    "flush.ms": _at_least(0),
    "cleanup.policy": _check_policy,
    "delete.retention.ms": _at_least(0),
    "min.cleanable.dirty.ratio": _between(0.0, 1.0),
    "min.compaction.lag.ms": _at_least(0),
    "max.compaction.lag.ms": _at_least(1),
    "max.message.bytes": _at_least(0),
    "message.timestamp.type": _one_of(
        frozenset({TIMESTAMP_TYPE_CREATE_TIME, TIMESTAMP_TYPE_LOG_APPEND_TIME})
    ),
    "message.timestamp.before.max.ms": _at_least(0),
    "message.timestamp.after.max.ms": _at_least(0),
    "file.delete.delay.ms": _at_least(0),
    "min.insync.replicas": _at_least(1),
    "unclean.leader.election.enable": _check_bool,
    "compression.type": _one_of(COMPRESSION_TYPES),
}

assert set(_PARSERS) == set(_CHECKS) == set(TOPIC_CONFIG_KEYS)
