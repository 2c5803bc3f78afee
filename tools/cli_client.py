"""Admin helpers for the CLI tools, on top of ``broker.client.KafkaClient``, and what every
tool shares: ``CliError``, ``run_tool``, ``admin_client``, ``TopicPartition``.

Everything here speaks the Kafka protocol through our own client, so the tools work against
any Kafka-compatible cluster. Errors that the user should see (an unknown topic, a refused
request) are raised as ``CliError`` with Kafka's error name in the message; the tools print
them to stderr and exit with code 1. Producing is in ``tools.cli_produce``, listing offsets
and fetching in ``tools.cli_fetch``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.client import (
    KafkaClient,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
    TopicInfo,
)
from broker.client.security import ClientSecurity, SecurityError, client_security
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError, error_for_code
from broker.protocol.messages import (
    create_partitions,
    create_topics,
    delete_topics,
    describe_configs,
    elect_leaders,
    incremental_alter_configs,
)
from storage.properties import PropertiesError, load_properties

__all__ = [
    "CliError",
    "ConfigEntry",
    "TopicPartition",
    "admin_client",
    "alter_configs",
    "command_security",
    "create_partitions_to",
    "create_topic",
    "delete_topic",
    "describe_configs_of",
    "elect_leaders_for",
    "error_name",
    "failure",
    "parse_properties_args",
    "partitions_of",
    "retriable_only",
    "run_tool",
]


DEFAULT_ADMIN_TIMEOUT_MS = 30_000

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


def failure(what: str, code: int, message: str | None = None) -> CliError:
    """The ``CliError`` for Kafka error ``code``: "what: NAME (message)"."""
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


def command_security(path: str | None) -> ClientSecurity | None:
    """The TLS/SASL settings of a ``--command-config`` properties file (Kafka's client keys:
    ``security.protocol``, ``ssl.truststore.location``, ``sasl.mechanism``,
    ``sasl.jaas.config``, ...); None without a file or for PLAINTEXT."""
    if not path:
        return None
    try:
        return client_security(load_properties(path))
    except (OSError, PropertiesError, SecurityError) as e:
        raise CliError(f"--command-config {path}: {e}") from None


async def admin_client(bootstrap: str, *, timeout_s: float = 30.0,
                       client_id: str = "pykraft-cli",
                       command_config: str | None = None,
                       props: Mapping[str, Any] | None = None) -> KafkaClient:
    """A bootstrapped client; TLS/SASL from the ``command_config`` file or from ``props``
    (a console tool's --producer.config/--consumer.config and -property values)."""
    servers = [s for s in bootstrap.split(",") if s.strip()]
    if not servers:
        raise CliError("--bootstrap-server is required")
    security = command_security(command_config)
    if security is None and props:
        try:
            security = client_security(props)
        except SecurityError as e:
            raise CliError(str(e)) from None
    try:
        return await KafkaClient.bootstrap(servers, client_id=client_id,
                                           api_timeout_s=timeout_s, security=security)
    except ValueError as e:
        raise CliError(str(e)) from None



@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


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
            raise failure(f"Creating topic {t.name} failed", t.error_code,
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
            raise failure(f"Deleting topic {r.name} failed", r.error_code,
                        getattr(r, "error_message", None))


async def create_partitions_to(client: KafkaClient, name: str, count: int) -> None:
    R = create_partitions.REQUEST
    req = R.cls(topics=[R.CreatePartitionsTopic(name=name, count=count, assignments=None)],
                timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS, validate_only=False)
    resp = await client.send_to_controller(ApiKey.CREATE_PARTITIONS, req,
                                           check=_admin_check)
    for r in resp.results:
        if r.error_code:
            raise failure(f"Adding partitions to {r.name} failed", r.error_code, r.error_message)


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
            raise failure(f"Topic {name}", t.error_code)
        out[name] = t
    return out


def retriable_only(resp: Any) -> int | None:
    """Retry the whole request only for a top-level-ish retriable error (NOT_CONTROLLER,
    REQUEST_TIMED_OUT...). Per-item errors that are not retriable are the caller's to read."""
    from broker.client import any_error

    code = any_error(resp)
    if code and error_for_code(code).retriable:
        return code
    return None


def _admin_check(resp: Any) -> int | None:
    """As ``retriable_only``, but an unknown topic is an answer, not something to wait out
    (it is retriable for produce and fetch, where metadata may lag)."""
    code = retriable_only(resp)
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
            raise failure(f"Describing configs of {name}", r.error_code, r.error_message)
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
            raise failure(f"Altering configs of {name}", r.error_code, r.error_message)


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
        raise failure("Leader election failed", resp.error_code)
    return [(r.topic, p.partition_id, p.error_code, p.error_message)
            for r in resp.replica_election_results for p in r.partition_result]
