"""A node's worker processes (tools/node_workers.py): what each worker is given, what the keys
refuse, and the worker's directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import KafkaConfig
from storage.errors import ConfigError, MetaPropertiesError
from storage.meta_properties import MetaProperties, read_meta_properties, write_meta_properties
from tools.node_workers import node_rack, plan_workers, prepare_worker_dirs

COMBINED = {
    "node.id": "1",
    "process.roles": "broker,controller",
    "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SSL://:9094",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL",
    "advertised.listeners": "PLAINTEXT://node1:9092,SSL://node1:9094",
    "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@127.0.0.1:9093",
    "log.dirs": "/data/a,/data/b/",
}


def cfg(**extra: str) -> KafkaConfig:
    return KafkaConfig.from_properties({**COMBINED, **extra})


def test_off_by_default_and_with_one_process() -> None:
    assert plan_workers(cfg()) == []
    assert plan_workers(cfg(**{"node.worker.processes": "1"})) == []


def test_each_worker_is_a_broker_with_its_own_id_ports_dirs_and_the_node_rack() -> None:
    specs = plan_workers(cfg(**{"node.worker.processes": "3", "node.worker.port.offset": "100"}))
    assert [(s.index, s.node_id) for s in specs] == [(1, 1001), (2, 2001)]
    w2 = specs[1].overrides
    assert w2["process.roles"] == "broker"
    # The controller listener stays the node's; broker listeners move by k * offset.
    assert w2["listeners"] == "PLAINTEXT://127.0.0.1:9292,SSL://:9294"
    assert w2["advertised.listeners"] == "PLAINTEXT://node1:9292,SSL://node1:9294"
    # Siblings of the node's dirs, never inside them (a "worker-2" dir would be a partition).
    assert w2["log.dirs"] == "/data/a.worker-2,/data/b.worker-2"
    assert w2["metadata.log.dir"] == "/data/a.worker-2"
    assert specs[1].dirs == ["/data/a.worker-2", "/data/b.worker-2"]
    assert w2["admin.listeners"] == ""
    assert w2["node.worker.processes"] == "1"
    assert w2["broker.rack"] == "node-1"
    # A broker with the overrides is a valid configuration.
    KafkaConfig.from_properties({**COMBINED, **w2})


def test_the_node_rack_wins_when_set() -> None:
    c = cfg(**{"node.worker.processes": "2", "broker.rack": "r1"})
    assert node_rack(c) == "r1"
    assert plan_workers(c)[0].overrides["broker.rack"] == "r1"


@pytest.mark.parametrize(("extra", "key"), [
    ({"process.roles": "controller", "listeners": "CONTROLLER://127.0.0.1:9093",
      "advertised.listeners": ""}, "node.worker.processes"),
    ({"listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:9093",
      "advertised.listeners": "PLAINTEXT://node1:9092"}, "node.worker.processes"),
    ({"node.worker.id.offset": "1", "controller.quorum.voters":
      "1@127.0.0.1:9093,2@h2:9093"}, "node.worker.id.offset"),
    ({"node.worker.port.offset": "60000"}, "node.worker.port.offset"),
])
def test_refused_where_workers_cannot_apply(extra: dict[str, str], key: str) -> None:
    props = {**COMBINED, "node.worker.processes": "2", **extra}
    if not props["advertised.listeners"]:
        del props["advertised.listeners"]
    with pytest.raises(ConfigError) as info:
        plan_workers(KafkaConfig.from_properties(props))
    assert info.value.key == key


def test_zero_processes_is_a_bad_value() -> None:
    with pytest.raises(ConfigError) as info:
        cfg(**{"node.worker.processes": "0"})
    assert info.value.key == "node.worker.processes"


def test_worker_dirs_get_the_node_cluster_id_once(tmp_path: Path) -> None:
    c = cfg(**{"node.worker.processes": "2", "log.dirs": str(tmp_path / "logs")})
    spec = plan_workers(c)[0]
    prepare_worker_dirs(spec, "AAAAAAAAAAAAAAAAAAAAAA")
    meta = read_meta_properties(tmp_path / "logs.worker-1")
    assert meta is not None and (meta.cluster_id, meta.node_id) == ("AAAAAAAAAAAAAAAAAAAAAA",
                                                                    1001)
    prepare_worker_dirs(spec, "AAAAAAAAAAAAAAAAAAAAAA")  # a restart: kept as it is
    write_meta_properties(tmp_path / "logs.worker-1", MetaProperties("BBBBBBBBBBBBBBBBBBBBBB",
                                                                     1001))
    with pytest.raises(MetaPropertiesError, match="belongs to cluster"):
        prepare_worker_dirs(spec, "AAAAAAAAAAAAAAAAAAAAAA")
