"""KafkaConfig: Kafka's keys, defaults, precedence rules, bad values and KRaft cross-checks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from broker.config import KafkaConfig
from broker.listener_config import Endpoint
from kraft.config_defs import CONFIG_DEFS, ConfigType, Password
from storage.errors import ConfigError

COMBINED = {
    "node.id": "1",
    "process.roles": "broker,controller",
    "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@localhost:9093",
}
BROKER = {
    "node.id": "4",
    "process.roles": "broker",
    "listeners": "PLAINTEXT://127.0.0.1:9092",
    "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@h1:9093,2@h2:9093,3@h3:9093",
}
CONTROLLER = {
    "node.id": "2",
    "process.roles": "controller",
    "listeners": "CONTROLLER://:9093",
    "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@h1:9093,2@h2:9093,3@h3:9093",
}


def cfg(base: dict[str, str] | None = None, **overrides: Any) -> KafkaConfig:
    props: dict[str, Any] = dict(COMBINED if base is None else base)
    for key, value in overrides.items():
        name = key.replace("_", ".")
        if value is None:
            props.pop(name, None)
        else:
            props[name] = value
    return KafkaConfig.from_properties(props)


def bad(
    props: dict[str, Any], key: str, value: object | None = None, match: str = ""
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        KafkaConfig.from_properties(props)
    err = info.value
    assert err.key == key, str(err)
    assert key in str(err)
    if value is not None:
        # The error carries the value (parsed when the type check passed, as Kafka does).
        assert str(err.value) == str(value), str(err)
        assert str(value) in str(err)
    if match:
        assert match in err.reason, err.reason
    return err


def with_(base: dict[str, str], **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = dict(base)
    for key, value in overrides.items():
        name = key.replace("_", ".")
        if value is None:
            props.pop(name, None)
        else:
            props[name] = value
    return props


# --- defaults ------------------------------------------------------------------------------

KAFKA_DEFAULTS = {
    "controller.quorum.election.timeout.ms": 1000,
    "controller.quorum.fetch.timeout.ms": 2000,
    "controller.quorum.election.backoff.max.ms": 1000,
    "controller.quorum.request.timeout.ms": 2000,
    "controller.quorum.retry.backoff.ms": 20,
    "log.dir": "/tmp/kraft-combined-logs",
    "log.dirs": None,
    "metadata.log.dir": None,
    "metadata.log.segment.bytes": 1073741824,
    "metadata.max.retention.bytes": 104857600,
    "metadata.log.max.record.bytes.between.snapshots": 20971520,
    "num.partitions": 1,
    "default.replication.factor": 1,
    "min.insync.replicas": 1,
    "log.segment.bytes": 1073741824,
    "log.roll.ms": None,
    "log.roll.hours": 168,
    "log.retention.ms": None,
    "log.retention.minutes": None,
    "log.retention.hours": 168,
    "log.retention.bytes": -1,
    "log.index.interval.bytes": 4096,
    "log.index.size.max.bytes": 10485760,
    "log.flush.interval.messages": 2**63 - 1,
    "log.flush.interval.ms": None,
    "log.flush.scheduler.interval.ms": 2**63 - 1,
    "log.cleanup.policy": ["delete"],
    "log.cleaner.enable": True,
    "log.cleaner.delete.retention.ms": 86400000,
    "log.cleaner.min.cleanable.ratio": 0.5,
    "log.cleaner.io.max.bytes.per.second": 1.7976931348623157e308,
    "log.message.timestamp.type": "CreateTime",
    "message.max.bytes": 1048588,
    "unclean.leader.election.enable": False,
    "auto.create.topics.enable": True,
    "auto.leader.rebalance.enable": True,
    "replica.lag.time.max.ms": 30000,
    "replica.fetch.max.bytes": 1048576,
    "replica.fetch.wait.max.ms": 500,
    "broker.session.timeout.ms": 9000,
    "broker.heartbeat.interval.ms": 2000,
    "offsets.topic.num.partitions": 50,
    "offsets.topic.replication.factor": 3,
    "offsets.retention.minutes": 10080,
    "group.initial.rebalance.delay.ms": 3000,
    "group.min.session.timeout.ms": 6000,
    "group.max.session.timeout.ms": 1800000,
    "transaction.state.log.num.partitions": 50,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "socket.request.max.bytes": 104857600,
    "queued.max.requests": 500,
    "num.network.threads": 3,
    "num.io.threads": 8,
    "broker.rack": None,
    "admin.listeners": ["http://127.0.0.1:9644"],
    "security.inter.broker.protocol": "PLAINTEXT",
    "inter.broker.listener.name": None,
    "advertised.listeners": None,
    "controller.quorum.bootstrap.servers": [],
}


@pytest.mark.parametrize(("key", "expected"), sorted(KAFKA_DEFAULTS.items()))
def test_kafka_defaults(key: str, expected: object) -> None:
    assert cfg().get(key) == expected


def test_listeners_default() -> None:
    assert CONFIG_DEFS["listeners"].default_value() == ["PLAINTEXT://:9092"]
    # A broker-only node can rely on it.
    assert cfg(with_(BROKER, listeners=None)).listeners == [Endpoint("PLAINTEXT", "", 9092)]


def test_every_default_passes_its_own_validator() -> None:
    for d in CONFIG_DEFS.values():
        if not d.required:
            d.default_value()
    assert {d.name for d in CONFIG_DEFS.values() if d.required} == {"node.id", "process.roles"}


def test_config_types_cover_all_kinds() -> None:
    assert {d.type for d in CONFIG_DEFS.values()} == set(ConfigType)


def test_default_security_protocol_map() -> None:
    c = cfg()
    assert c.get("listener.security.protocol.map") == [
        "CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT", "SSL:SSL",
        "SASL_PLAINTEXT:SASL_PLAINTEXT", "SASL_SSL:SASL_SSL",
    ]
    assert c.listener_security_protocol_map["CONTROLLER"] == "PLAINTEXT"


def test_typed_attributes() -> None:
    c = cfg()
    assert c.node_id == 1
    assert c.process_roles == frozenset({"broker", "controller"})
    assert c.is_broker and c.is_controller
    assert c.listeners == [Endpoint("PLAINTEXT", "", 9092), Endpoint("CONTROLLER", "", 9093)]
    assert c.controller_listeners == [Endpoint("CONTROLLER", "", 9093)]
    assert c.effective_advertised_broker_listeners == [Endpoint("PLAINTEXT", "", 9092)]
    assert c.controller_quorum_voters == {1: ("localhost", 9093)}
    assert c.controller_listener_names == ["CONTROLLER"]
    assert c.inter_broker_listener_name == "PLAINTEXT"
    assert c.admin_listeners == [Endpoint("http", "127.0.0.1", 9644)]
    assert c.log_dirs == ["/tmp/kraft-combined-logs"]
    assert c.metadata_log_dir == "/tmp/kraft-combined-logs"
    # Raw values by Python name, and by Kafka name.
    assert c.num_partitions == 1 == c.get("num.partitions")
    assert c.log_cleaner_min_cleanable_ratio == 0.5
    assert c.unclean_leader_election_enable is False
    with pytest.raises(KeyError):
        c.get("no.such.key")
    with pytest.raises(AttributeError):
        _ = c.no_such_key


def test_overrides_and_parsing() -> None:
    c = cfg(
        num_partitions=" 12 ",
        log_cleaner_enable="FALSE",
        log_cleaner_min_cleanable_ratio="0.25",
        log_cleanup_policy="compact , delete",
        broker_rack="  rack-a ",
        log_retention_bytes="-1",
        message_max_bytes=2000000,
    )
    assert c.num_partitions == 12
    assert c.log_cleaner_enable is False
    assert c.log_cleaner_min_cleanable_ratio == 0.25
    assert c.log_cleanup_policy == ["compact", "delete"]
    assert c.broker_rack == "rack-a"
    assert c.message_max_bytes == 2000000
    assert c.is_set("num.partitions") and not c.is_set("num.io.threads")
    assert c.originals["num.partitions"] == " 12 "


def test_load_from_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    lines = [f"{k}={v}" for k, v in COMBINED.items()] + ["num.partitions=3", "log.dirs=/a, /b"]
    path.write_text("# comment\n" + "\n".join(lines) + "\n")
    c = KafkaConfig.load(path, {"num.partitions": "5"})
    assert c.num_partitions == 5
    assert c.log_dirs == ["/a", "/b"]
    assert c.metadata_log_dir == "/a"


# --- precedence ----------------------------------------------------------------------------


def test_retention_precedence_ms_minutes_hours() -> None:
    assert cfg().log_retention_ms == 168 * 3600 * 1000
    assert cfg(log_retention_hours="1").log_retention_ms == 3600000
    assert cfg(log_retention_hours="1", log_retention_minutes="2").log_retention_ms == 120000
    c = cfg(log_retention_hours="1", log_retention_minutes="2", log_retention_ms="3")
    assert c.log_retention_ms == 3
    assert c.get("log.retention.hours") == 1  # the raw value is untouched


@pytest.mark.parametrize(
    "overrides",
    [
        {"log_retention_ms": "-1"},
        {"log_retention_ms": "-5"},
        {"log_retention_minutes": "-1"},
        {"log_retention_hours": "-1"},
        {"log_retention_hours": "5", "log_retention_ms": "-1"},
    ],
)
def test_negative_retention_means_unlimited(overrides: dict[str, str]) -> None:
    c = cfg(**overrides)
    assert c.log_retention_ms == -1
    assert c.log_config_defaults()["retention.ms"] == "-1"


def test_log_dirs_wins_over_log_dir() -> None:
    assert cfg(log_dir="/x").log_dirs == ["/x"]
    c = cfg(log_dir="/x", log_dirs="/a,/b")
    assert c.log_dirs == ["/a", "/b"]
    assert c.metadata_log_dir == "/a"
    assert cfg(log_dirs="/a,/b", metadata_log_dir="/m").metadata_log_dir == "/m"


def test_log_dir_paths_are_normalised() -> None:
    c = cfg(log_dirs="/a/,/b//c", metadata_log_dir="/a/./")
    assert c.log_dirs == ["/a", "/b/c"]
    assert c.metadata_log_dir == "/a"


def test_roll_and_flush_fallbacks() -> None:
    assert cfg().log_roll_ms == 168 * 3600000
    assert cfg(log_roll_hours="2").log_roll_ms == 7200000
    assert cfg(log_roll_hours="2", log_roll_ms="5").log_roll_ms == 5
    assert cfg().log_flush_interval_ms == 2**63 - 1
    assert cfg(log_flush_scheduler_interval_ms="3000").log_flush_interval_ms == 3000
    c = cfg(log_flush_scheduler_interval_ms="3000", log_flush_interval_ms="10")
    assert c.log_flush_interval_ms == 10


def test_log_config_defaults_default_values() -> None:
    d = cfg().log_config_defaults()
    assert d == {
        "segment.bytes": "1073741824",
        "segment.ms": "604800000",
        "segment.jitter.ms": "0",
        "segment.index.bytes": "10485760",
        "index.interval.bytes": "4096",
        "retention.ms": "604800000",
        "retention.bytes": "-1",
        "flush.messages": "9223372036854775807",
        "flush.ms": "9223372036854775807",
        "cleanup.policy": "delete",
        "delete.retention.ms": "86400000",
        "min.compaction.lag.ms": "0",
        "max.compaction.lag.ms": "9223372036854775807",
        "min.cleanable.dirty.ratio": "0.5",
        "file.delete.delay.ms": "60000",
        "max.message.bytes": "1048588",
        "message.timestamp.type": "CreateTime",
        "message.timestamp.before.max.ms": "9223372036854775807",
        "message.timestamp.after.max.ms": "9223372036854775807",
        "min.insync.replicas": "1",
        "unclean.leader.election.enable": "false",
        "compression.type": "producer",
        "preallocate": "false",
    }


def test_log_config_defaults_follow_overrides() -> None:
    d = cfg(
        log_segment_bytes="1048576",
        log_roll_hours="1",
        log_retention_minutes="10",
        log_flush_interval_ms="50",
        log_cleanup_policy="delete,compact",
        log_cleaner_min_cleanable_ratio="0.1",
        message_max_bytes="5000",
        log_message_timestamp_type="LogAppendTime",
        min_insync_replicas="2",
        unclean_leader_election_enable="true",
        log_index_size_max_bytes="4096",
    ).log_config_defaults()
    assert d["segment.bytes"] == "1048576"
    assert d["segment.ms"] == "3600000"
    assert d["retention.ms"] == "600000"
    assert d["flush.ms"] == "50"
    assert d["cleanup.policy"] == "delete,compact"
    assert d["min.cleanable.dirty.ratio"] == "0.1"
    assert d["max.message.bytes"] == "5000"
    assert d["message.timestamp.type"] == "LogAppendTime"
    assert d["min.insync.replicas"] == "2"
    assert d["unclean.leader.election.enable"] == "true"
    assert d["segment.index.bytes"] == "4096"


def test_log_config_defaults_feed_log_config() -> None:
    log_config = pytest.importorskip("storage.log_config")
    lc = log_config.LogConfig.from_topic_configs(
        cfg(log_retention_minutes="10", log_segment_bytes="1048576").log_config_defaults()
    )
    assert lc.retention_ms == 600000
    assert lc.segment_bytes == 1048576


# --- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("num.partitions", "abc", "Not a number of type INT"),
        ("num.partitions", "1.5", "Not a number of type INT"),
        ("num.partitions", "1_000", "Not a number of type INT"),
        ("num.partitions", "2147483648", "Not a number of type INT"),
        ("num.partitions", "0", "Value must be at least 1"),
        ("log.retention.bytes", "9223372036854775808", "Not a number of type LONG"),
        ("log.retention.ms", "ten", "Not a number of type LONG"),
        ("log.segment.bytes", "13", "Value must be at least 14"),
        ("log.cleaner.min.cleanable.ratio", "1.5", "Value must be no more than 1"),
        ("log.cleaner.min.cleanable.ratio", "-0.1", "Value must be at least 0"),
        ("log.cleaner.min.cleanable.ratio", "half", "Not a number of type DOUBLE"),
        ("log.cleaner.enable", "yes", "Expected value to be either true or false"),
        ("log.message.timestamp.type", "createtime", "String must be one of"),
        ("compression.type", "brotli", "String must be one of"),
        ("security.inter.broker.protocol", "TLS", "String must be one of"),
        ("log.cleanup.policy", "delete,forever", "each element must be one of"),
        ("log.cleanup.policy", "delete,,compact", "each element must be one of"),
        ("principal.builder.class", "not a class!", "class name"),
        ("node.id", "-1", "Value must be at least 0"),
        ("node.id", "one", "Not a number of type INT"),
    ],
)
def test_bad_values_raise_config_error(key: str, value: str, reason: str) -> None:
    bad(with_(COMBINED, **{key.replace(".", "_"): value}), key, value.strip(), match=reason)


def test_bad_list_values_name_the_whole_value() -> None:
    bad(with_(COMBINED, process_roles="broker,zookeeper"), "process.roles", "broker,zookeeper",
        match="each element must be one of")
    bad(with_(COMBINED, process_roles="broker,broker,controller"), "process.roles",
        "broker,broker,controller", match="Duplicate role")


def test_missing_required_keys() -> None:
    bad(with_(COMBINED, node_id=None), "node.id", match="Missing required configuration")
    bad(with_(COMBINED, process_roles=None), "process.roles", match="Missing required")
    bad(with_(COMBINED, process_roles=""), "process.roles", match="must contain broker")


def test_non_string_values_are_type_checked() -> None:
    bad(with_(COMBINED, num_partitions=True), "num.partitions", True)
    bad(with_(COMBINED, broker_rack=5), "broker.rack", 5)


def test_password_is_never_shown() -> None:
    c = cfg(ssl_keystore_password="s3cret")
    value = c.get("ssl.keystore.password")
    assert isinstance(value, Password) and value.value == "s3cret"
    assert "s3cret" not in repr(value) and "s3cret" not in str(c.values())


@pytest.mark.parametrize(
    ("listeners", "reason"),
    [
        ("PLAINTEXT:9092,CONTROLLER://:9093", "Unable to parse"),
        ("PLAINTEXT://host,CONTROLLER://:9093", "Unable to parse"),
        ("PLAINTEXT://host:port,CONTROLLER://:9093", "Unable to parse"),
        ("PLAINTEXT://:99999,CONTROLLER://:9093", "Invalid port 99999"),
        ("INTERNAL://:9092,CONTROLLER://:9093", "No security protocol defined for listener"),
        ("PLAINTEXT://:9092,PLAINTEXT://:9094,CONTROLLER://:9093", "different name"),
        ("PLAINTEXT://:9092,SSL://:9092,CONTROLLER://:9093", "different port"),
        ("PLAINTEXT://127.0.0.1:9092,SSL://10.0.0.1:9092,CONTROLLER://:9093", "different port"),
    ],
)
def test_bad_listeners(listeners: str, reason: str) -> None:
    bad(with_(COMBINED, listeners=listeners), "listeners", listeners, match=reason)


def test_same_port_allowed_for_one_ipv4_and_one_ipv6() -> None:
    c = cfg(
        listeners="PLAINTEXT://127.0.0.1:9092,SSL://[::1]:9092,CONTROLLER://:9093",
        inter_broker_listener_name="PLAINTEXT",
    )
    assert [e.host for e in c.listeners] == ["127.0.0.1", "::1", ""]
    assert str(c.listeners[1]) == "SSL://[::1]:9092"


def test_port_zero_may_repeat() -> None:
    c = cfg(listeners="PLAINTEXT://:0,SSL://:0,CONTROLLER://:0")
    assert [e.port for e in c.listeners] == [0, 0, 0]


def test_listener_names_are_case_insensitive() -> None:
    c = cfg(
        listeners="plaintext://:9092,controller://:9093", controller_listener_names="controller"
    )
    assert [e.name for e in c.listeners] == ["PLAINTEXT", "CONTROLLER"]
    assert c.controller_listener_names == ["CONTROLLER"]


@pytest.mark.parametrize(
    ("map_value", "reason"),
    [
        ("PLAINTEXT", "improperly formatted"),
        ("PLAINTEXT:PLAINTEXT,CONTROLLER:TLS", "Invalid security protocol"),
    ],
)
def test_bad_security_protocol_map(map_value: str, reason: str) -> None:
    bad(with_(COMBINED, listener_security_protocol_map=map_value),
        "listener.security.protocol.map", map_value, match=reason)


def test_explicit_map_must_name_the_controller_listener() -> None:
    props = with_(
        COMBINED,
        listeners="PLAINTEXT://:9092,CTRL://:9093",
        controller_listener_names="CTRL",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT",
    )
    bad(props, "listeners", match="No security protocol defined for listener CTRL")
    # Without an explicit map, a controller listener defaults to PLAINTEXT (Kafka's effective map).
    props.pop("listener.security.protocol.map")
    assert cfg(props).listener_security_protocol_map["CTRL"] == "PLAINTEXT"


@pytest.mark.parametrize(
    ("voters", "reason"),
    [
        ("1localhost:9093", "{id}@{host}:{port}"),
        ("1@a@b:9093", "{id}@{host}:{port}"),
        ("x@localhost:9093", "Failed to parse voter ID"),
        ("-1@localhost:9093", "must be non-negative"),
        ("1@localhost", "Invalid host:port"),
        ("1@localhost:abc", "Invalid host:port"),
        ("1@localhost:0", "Invalid port 0"),
        ("1@localhost:70000", "Invalid port 70000"),
        ("1@0.0.0.0:9093", "not routeable"),
        ("1@a:9093,1@b:9093", "appears more than once"),
    ],
)
def test_bad_voters(voters: str, reason: str) -> None:
    bad(with_(COMBINED, controller_quorum_voters=voters), "controller.quorum.voters", voters,
        match=reason)


def test_voters_parsing() -> None:
    c = cfg(controller_quorum_voters="1@localhost:9093, 2@[::1]:9094,3@10.0.0.3:19093")
    assert c.controller_quorum_voters == {
        1: ("localhost", 9093), 2: ("::1", 9094), 3: ("10.0.0.3", 19093),
    }


def test_bootstrap_servers_parsing() -> None:
    c = cfg(controller_quorum_voters="", controller_quorum_bootstrap_servers="h1:9093,[::1]:9094")
    assert c.controller_quorum_voters == {}
    assert c.controller_quorum_bootstrap_servers == [("h1", 9093), ("::1", 9094)]
    bad(with_(COMBINED, controller_quorum_voters="", controller_quorum_bootstrap_servers="h1"),
        "controller.quorum.bootstrap.servers", "h1", match="Invalid host:port")


def test_admin_listeners_http_and_https() -> None:
    c = KafkaConfig.from_properties(with_(
        COMBINED, admin_listeners="http://127.0.0.1:9644,HTTPS://[::1]:9645"))
    assert c.admin_listeners == [Endpoint("http", "127.0.0.1", 9644),
                                 Endpoint("https", "::1", 9645, "SSL")]
    assert [str(e) for e in c.admin_listeners] == ["http://127.0.0.1:9644",
                                                   "https://[::1]:9645"]


def test_bad_admin_listeners() -> None:
    bad(with_(COMBINED, admin_listeners="ftp://127.0.0.1:9644"), "admin.listeners",
        "ftp://127.0.0.1:9644", match="only http:// and https://")
    bad(with_(COMBINED, admin_listeners="https://127.0.0.1:9644,https://127.0.0.1:9645"),
        "admin.listeners", match="different name")
    bad(with_(COMBINED, admin_listeners="127.0.0.1:9644"), "admin.listeners",
        match="Unable to parse")
    bad(with_(COMBINED, admin_listeners="http://:9092"), "admin.listeners", match="also used")


def test_duplicate_log_dirs_rejected() -> None:
    bad(with_(COMBINED, log_dirs="/a,/b,/a/"), "log.dirs", "/a,/b,/a/", match="Duplicate")
    bad(with_(COMBINED, log_dirs=" , "), "log.dirs", match="At least one log directory")


# --- unknown keys --------------------------------------------------------------------------


def test_unknown_keys_warn_and_name_each_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="broker.config"):
        c = cfg(zookeeper_connect="localhost:2181", **{"my.custom.key": "x"})
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'zookeeper.connect'" in m for m in messages)
    assert any("'my.custom.key'" in m for m in messages)
    assert c.unknown_keys == ["my.custom.key", "zookeeper.connect"]


def test_listener_prefixed_keys_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="broker.config"):
        cfg(**{"listener.name.plaintext.ssl.keystore.location": "/x"})
    assert not caplog.records


# --- KRaft cross-checks --------------------------------------------------------------------


def test_valid_broker_and_controller_configs() -> None:
    b = cfg(BROKER)
    assert b.is_broker and not b.is_controller
    assert b.controller_listeners == []
    c = cfg(CONTROLLER)
    assert c.is_controller and not c.is_broker
    assert c.effective_advertised_controller_listeners == [Endpoint("CONTROLLER", "", 9093)]


def test_voters_or_bootstrap_servers_required() -> None:
    for base in (COMBINED, BROKER, CONTROLLER):
        bad(with_(base, controller_quorum_voters=None), "controller.quorum.voters",
            match="either controller.quorum.bootstrap.servers")


def test_controller_requires_controller_listener_names() -> None:
    bad(with_(COMBINED, controller_listener_names=None), "controller.listener.names",
        match="must contain at least one value")
    bad(with_(BROKER, controller_listener_names=None), "controller.listener.names")


def test_first_controller_listener_must_be_in_listeners() -> None:
    bad(with_(COMBINED, controller_listener_names="CTRL,CONTROLLER",
              listener_security_protocol_map="CTRL:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                             "PLAINTEXT:PLAINTEXT"),
        "controller.listener.names", "CTRL,CONTROLLER", match="CTRL must appear in the 'listeners'")


def test_combined_requires_all_controller_listeners_in_listeners() -> None:
    bad(with_(COMBINED, controller_listener_names="CONTROLLER,CTRL",
              listener_security_protocol_map="CTRL:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                             "PLAINTEXT:PLAINTEXT"),
        "controller.listener.names", match="missing: CTRL")


def test_controller_node_must_be_a_voter() -> None:
    bad(with_(COMBINED, controller_quorum_voters="2@localhost:9093"), "controller.quorum.voters",
        "2@localhost:9093", match="node id 1 must be included")
    bad(with_(CONTROLLER, node_id="9"), "controller.quorum.voters", match="node id 9")
    # A dynamic quorum (bootstrap servers only) has no voter list to check against.
    cfg(COMBINED, controller_quorum_voters=None, controller_quorum_bootstrap_servers="h:9093")


def test_broker_only_node_must_not_be_a_voter() -> None:
    bad(with_(BROKER, node_id="1"), "controller.quorum.voters", match="must not be included")


def test_broker_only_must_not_listen_on_controller_listener() -> None:
    bad(with_(BROKER, listeners="PLAINTEXT://:9092,CONTROLLER://:9093"), "listeners",
        match="must not contain a value appearing in the 'listeners'")


def test_broker_only_controller_listener_must_have_a_protocol() -> None:
    bad(with_(BROKER, controller_listener_names="CTRL",
              listener_security_protocol_map="PLAINTEXT:PLAINTEXT"),
        "listener.security.protocol.map", match="Controller listener with name CTRL")


def test_controller_only_must_only_have_controller_listeners() -> None:
    bad(with_(CONTROLLER, listeners="CONTROLLER://:9093,PLAINTEXT://:9092"), "listeners",
        match="must only contain KRaft controller listeners")


def test_broker_role_requires_a_non_controller_listener() -> None:
    bad(with_(COMBINED, listeners="CONTROLLER://:9093"), "listeners",
        match="at least one broker advertised listener")


def test_inter_broker_listener_must_be_advertised() -> None:
    bad(with_(COMBINED, inter_broker_listener_name="INTERNAL"), "inter.broker.listener.name",
        "INTERNAL", match="must be a listener name defined in advertised.listeners")
    bad(with_(COMBINED, security_inter_broker_protocol="SSL"), "security.inter.broker.protocol",
        "SSL")
    bad(with_(COMBINED, inter_broker_listener_name="PLAINTEXT",
              security_inter_broker_protocol="PLAINTEXT"),
        "inter.broker.listener.name", match="Only one of")


def test_advertised_listeners() -> None:
    c = cfg(advertised_listeners="PLAINTEXT://broker1.example:9092")
    assert c.effective_advertised_broker_listeners == [
        Endpoint("PLAINTEXT", "broker1.example", 9092)
    ]
    # The controller listener is not advertised, so it falls back to listeners.
    assert c.effective_advertised_controller_listeners == [Endpoint("CONTROLLER", "", 9093)]
    bad(with_(COMBINED, advertised_listeners="PLAINTEXT://0.0.0.0:9092"), "advertised.listeners",
        match="0.0.0.0")
    bad(with_(COMBINED, advertised_listeners="PLAINTEXT://h:9092,SSL://h:9095",
              inter_broker_listener_name="PLAINTEXT"),
        "advertised.listeners", match="subset")


def test_replica_fetch_wait_checks() -> None:
    bad(with_(COMBINED, replica_fetch_wait_max_ms="40000"), "replica.socket.timeout.ms",
        match="at least replica.fetch.wait.max.ms")
    bad(with_(COMBINED, replica_fetch_wait_max_ms="20000", replica_lag_time_max_ms="10000"),
        "replica.fetch.wait.max.ms", 20000, match="less than or equal to replica.lag.time.max.ms")
