"""The broker/controller configuration. :class:`KafkaConfig` parses a ``dict[str, str]`` (for example
from :func:`storage.properties.load_properties`) against it, then derives the typed views the
node needs (endpoints, voters, log directories, effective retention...) and runs Kafka's
cross-key KRaft checks (``KafkaConfig.validateValues``). The address-valued keys (listeners,
voters, the security protocol map) are parsed by ``broker.listener_config``.

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

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from broker.groups.assignors import assignor_name
from broker.listener_config import (
    Endpoint,
    parse_admin_listeners,
    parse_host_port,
    parse_listeners,
    parse_security_map,
    parse_voters,
)
from kraft.config_defs import CONFIG_DEFS, KNOWN_PREFIXES, LIST_SPLIT_RE, PYTHON_NAMES
from kraft.image import MetadataImage
from storage.errors import ConfigError
from storage.properties import load_properties

__all__ = [
    "KafkaConfig",
    "effective_broker_config",
]

logger = logging.getLogger(__name__)


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
            k for k in props if k not in CONFIG_DEFS and not k.startswith(KNOWN_PREFIXES)
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
        key = PYTHON_NAMES.get(name)
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

        security_map = parse_security_map(
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
        self.admin_listeners = parse_admin_listeners("admin.listeners", v["admin.listeners"])

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
        entries = raw if isinstance(raw, list) else LIST_SPLIT_RE.split(raw)
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
        for what in ("heartbeat.interval", "session.timeout"):
            key, lo, hi = (f"group.consumer.{what}.ms", f"group.consumer.min.{what}.ms",
                           f"group.consumer.max.{what}.ms")
            if not v[lo] <= v[key] <= v[hi]:
                raise ConfigError(key, v[key], f"{key} must be between {lo} and {hi}")
        for a in v["group.consumer.assignors"]:
            if assignor_name(a) is None:
                raise ConfigError("group.consumer.assignors", ",".join(
                    v["group.consumer.assignors"]), f"unknown assignor {a!r} (uniform, range)")
        if not v["group.consumer.assignors"]:
            raise ConfigError("group.consumer.assignors", "", "at least one assignor is needed")
        if v["group.consumer.heartbeat.interval.ms"] >= v["group.consumer.session.timeout.ms"]:
            raise ConfigError(
                "group.consumer.heartbeat.interval.ms", v["group.consumer.heartbeat.interval.ms"],
                "group.consumer.heartbeat.interval.ms must be less than "
                "group.consumer.session.timeout.ms")

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


def effective_broker_config(config: KafkaConfig, image: MetadataImage,
                            node_id: int) -> KafkaConfig:
    """This broker's config with the dynamic broker configs of ``image`` applied (the
    cluster-wide default, then this broker's own, over the static file); the static config
    when there are none, or when they do not parse (logged)."""
    dynamic_default = image.configs.broker_config("")
    dynamic_broker = image.configs.broker_config(str(node_id))
    if not dynamic_default and not dynamic_broker:
        return config
    props = dict(config.originals)
    props.update({k: v for k, v in dynamic_default.items() if v is not None})
    props.update({k: v for k, v in dynamic_broker.items() if v is not None})
    try:
        return KafkaConfig(props)
    except (ConfigError, ValueError) as e:
        logger.warning("Dynamic broker configs do not apply (%s); using the static ones", e)
        return config
