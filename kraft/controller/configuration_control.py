"""Dynamic configs (Kafka's ConfigurationControlManager): TOPIC configs validated with
``LogConfig``, BROKER configs (a broker id, or "" for the cluster default) parsed when the key
is known. A ConfigRecord with value None deletes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kraft.config_defs import CONFIG_DEFS, ConfigType
from kraft.controller.requests import AlterConfigsRequest, IncrementalAlterConfigsRequest
from kraft.controller.results import (
    AlterConfigsReply,
    AlterConfigsResourceResult,
    ApiError,
    ControllerResult,
    Record,
)
from kraft.image import ConfigResourceType, MetadataImage
from kraft.metadata_records import ConfigRecord, MetadataRecordType
from storage.error_codes import ErrorCode
from storage.errors import ConfigError
from storage.log_config import LogConfig

__all__ = [
    "APPEND", "DELETE", "SET", "SUBTRACT", "alter_configs", "incremental_alter_configs",
    "list_operation", "validate_topic_configs",
]

# AlterConfigOp.OpType ids (IncrementalAlterConfigs config_operation).
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}

# Topic keys of type LIST (the ones APPEND/SUBTRACT work on).
_TOPIC_LIST_KEYS = frozenset({
    "cleanup.policy", "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
})


def validate_topic_configs(configs: Mapping[str, str]) -> None:
    """Raise ApiError(INVALID_CONFIG) naming the first unknown key or bad value."""
    try:
        LogConfig.from_topic_configs(dict(configs))
    except ConfigError as e:
        raise ApiError(ErrorCode.INVALID_CONFIG, str(e)) from None


def _validate_broker_configs(configs: Mapping[str, str]) -> None:
    for k, v in configs.items():
        d = CONFIG_DEFS.get(k)
        if d is None or v is None:
            continue  # Kafka's controller leaves dynamic broker keys to the brokers
        try:
            d.parse(v)
        except ConfigError as e:
            raise ApiError(ErrorCode.INVALID_CONFIG, str(e)) from None


def _is_list(rtype: int, key: str) -> bool:
    if rtype == ConfigResourceType.TOPIC:
        return key in _TOPIC_LIST_KEYS
    d = CONFIG_DEFS.get(key)
    return d is not None and d.type is ConfigType.LIST


def _list_default(rtype: int, key: str) -> str:
    """The static default of a LIST key, what APPEND and SUBTRACT start from when the resource
    has no value of its own (Kafka's ConfigurationControlManager.getParts): a topic's
    ``cleanup.policy`` is ``delete``."""
    if rtype == ConfigResourceType.TOPIC:
        if key == "cleanup.policy":
            return ",".join(sorted(LogConfig().cleanup_policy))
        return ""
    d = CONFIG_DEFS.get(key)
    if d is None or d.required or d.default is None:
        return ""
    default = d.default
    return default if isinstance(default, str) else ",".join(map(str, default))


def list_operation(rtype: int, key: str, current: str | None, op: int, value: str | None) -> str:
    """The value of LIST key ``key`` after APPEND or SUBTRACT of the comma-separated ``value``
    to ``current`` (the resource's own value; None starts from the key's default)."""
    if current is None:
        current = _list_default(rtype, key)
    parts = [p.strip() for p in current.split(",") if p.strip()]
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        if op == APPEND and item not in parts:
            parts.append(item)
        elif op == SUBTRACT and item in parts:
            parts.remove(item)
    return ",".join(parts)


def _check_resource(image: MetadataImage, controller_ids: frozenset[int], rtype: int,
                    name: str) -> None:
    if rtype == ConfigResourceType.TOPIC:
        if not name:
            raise ApiError(ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
        if name not in image.topics.by_name:
            raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                           f"The topic '{name}' does not exist.")
    elif rtype == ConfigResourceType.BROKER:
        if name == "":
            return
        try:
            node = int(name)
        except ValueError:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Invalid broker name {name}") from None
        if node not in image.cluster.brokers and node not in controller_ids:
            raise ApiError(ErrorCode.BROKER_ID_NOT_REGISTERED, f"No node with id {node} found.")
    else:
        raise ApiError(ErrorCode.INVALID_REQUEST,
                       f"Unsupported configuration resource type {rtype}")


def _validate(rtype: int, existing: Mapping[str, str], records: list[Any]) -> None:
    merged = dict(existing)
    for r in records:
        if r.value is None:
            merged.pop(r.name, None)
        else:
            merged[r.name] = r.value
    if rtype == ConfigResourceType.TOPIC:
        validate_topic_configs(merged)
    else:
        _validate_broker_configs(merged)


def incremental_changes(
    image: MetadataImage, rtype: int, name: str, ops: list[tuple[str, int, str | None]],
) -> list[Any]:
    """ConfigRecords for (key, op, value) operations on one resource (validated)."""
    existing = image.configs.resources.get((rtype, name), {})
    pending: dict[str, str | None] = {}
    for key, op, value in ops:
        current = pending[key] if key in pending else existing.get(key)
        if op == SET:
            if value is None:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {key}")
            new = value
        elif op == DELETE:
            new = None
        elif op in (APPEND, SUBTRACT):
            if not _is_list(rtype, key):
                raise ApiError(ErrorCode.INVALID_CONFIG,
                               f"Can't {_OP_NAMES[op]} to key {key} because its type is not LIST.")
            new = list_operation(rtype, key, current, op, value)
        else:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op}")
        pending[key] = new
    records = [
        ConfigRecord(resource_type=rtype, resource_name=name, name=k, value=v)
        for k, v in pending.items()
        if v != existing.get(k) or rtype == ConfigResourceType.BROKER
    ]
    _validate(rtype, existing, records)
    return records


def _result(rtype: int, name: str, e: ApiError | None) -> AlterConfigsResourceResult:
    if e is None:
        return AlterConfigsResourceResult(rtype, name)
    return AlterConfigsResourceResult(rtype, name, e.code, e.message)


def incremental_alter_configs(image: MetadataImage, controller_ids: frozenset[int],
                              request: IncrementalAlterConfigsRequest) -> ControllerResult:
    records: list[Record] = []
    results = []
    for res in request.resources:
        rtype, name = res.resource_type, res.resource_name
        try:
            _check_resource(image, controller_ids, rtype, name)
            keys = [c.name for c in res.configs]
            if len(set(keys)) != len(keys):
                raise ApiError(ErrorCode.INVALID_REQUEST,
                               "Error due to duplicate config keys")
            recs = incremental_changes(
                image, rtype, name,
                [(c.name, c.operation, c.value) for c in res.configs])
        except ApiError as e:
            results.append(_result(rtype, name, e))
            continue
        records.extend((MetadataRecordType.CONFIG_RECORD, r) for r in recs)
        results.append(_result(rtype, name, None))
    if request.validate_only:
        records = []
    return ControllerResult(records, AlterConfigsReply(tuple(results)))


def alter_configs(image: MetadataImage, controller_ids: frozenset[int],
                  request: AlterConfigsRequest) -> ControllerResult:
    """Legacy AlterConfigs: the given keys replace the resource's whole config."""
    records: list[Record] = []
    results = []
    for res in request.resources:
        rtype, name = res.resource_type, res.resource_name
        try:
            _check_resource(image, controller_ids, rtype, name)
            existing = image.configs.resources.get((rtype, name), {})
            wanted: dict[str, str | None] = {}
            for c in res.configs:
                if c.name in wanted:
                    raise ApiError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
                wanted[c.name] = c.value
            recs = [
                ConfigRecord(resource_type=rtype, resource_name=name, name=k, value=v)
                for k, v in wanted.items()
                if v != existing.get(k) or rtype == ConfigResourceType.BROKER
            ]
            recs += [
                ConfigRecord(resource_type=rtype, resource_name=name, name=k, value=None)
                for k in sorted(existing) if k not in wanted
            ]
            _validate(rtype, existing, recs)
        except ApiError as e:
            results.append(_result(rtype, name, e))
            continue
        records.extend((MetadataRecordType.CONFIG_RECORD, r) for r in recs)
        results.append(_result(rtype, name, None))
    if request.validate_only:
        records = []
    return ControllerResult(records, AlterConfigsReply(tuple(results)))
