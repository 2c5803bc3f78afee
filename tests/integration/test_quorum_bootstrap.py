"""A broker that knows the controllers only by ``controller.quorum.bootstrap.servers`` (KIP-853;
broker/controller/quorum_bootstrap.py): started before any controller is up, it finds the
voters through them, registers, is unfenced and serves confluent-kafka, and keeps working when
the active controller changes. On the same cluster (formatted at 3.9-IV0), feature levels
through ``kafka-features`` (tools/features.py) against the controllers and through that broker,
and through kafka-python's describe_features / update_features.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from storage.properties import parse_properties
from tools.launcher import render_properties
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("quorum-bootstrap"), controllers=3, brokers=1,
                    format_args=["--release-version", "3.9-IV0"])
    broker = c.nodes[c.broker_ids[0]]
    props = parse_properties(broker.config.read_text())
    props.pop("controller.quorum.voters")
    props["controller.quorum.bootstrap.servers"] = c.bootstrap_controllers
    broker.config.write_text(render_properties(props))
    try:
        broker.start()  # first: it asks the bootstrap servers until the controllers answer
        time.sleep(1.0)
        assert broker.alive(), broker.output()
        c.start(c.controller_ids)
        broker.wait_for("Kafka Server started", timeout=60)
        yield c
    finally:
        c.shutdown()


def test_broker_finds_the_quorum_through_bootstrap_servers(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    out = broker.output()
    assert "No controller.quorum.bootstrap.servers reported the quorum yet" in out
    assert "Controller quorum voters from bootstrap server" in out
    for i in cluster.controller_ids:
        assert f"{i}@{cluster.nodes[i].controller_address}" in out
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("boot", 1, 1)])["boot"].result(30)
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce("boot", f"v{i}".encode())
    assert p.flush(30) == 0
    assert consume(broker.bootstrap, "boot", 10) == [f"v{i}".encode() for i in range(10)]


def test_broker_follows_a_new_active_controller(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    leader = active_controller(admin)
    cluster.nodes[leader].kill()
    try:
        deadline = time.monotonic() + 60
        while True:  # topic creation goes through the broker's channel to the new leader
            try:
                admin.create_topics([NewTopic("after-failover", 1, 1)])[
                    "after-failover"].result(20)
                break
            except ck.KafkaException as e:
                if time.monotonic() > deadline:
                    raise
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    break
                time.sleep(0.5)
        assert active_controller(admin) != leader
        assert "after-failover" in admin.list_topics(timeout=20).topics
    finally:
        cluster.nodes[leader].start()
        cluster.nodes[leader].wait_for("Kafka Server started")


def active_controller(admin: AdminClient) -> int:
    """The Raft leader, as the broker's DescribeQuorum (forwarded) reports it."""
    import asyncio

    from tools.metadata_quorum import describe
    md = admin.list_topics(timeout=20)
    server = next(f"{b.host}:{b.port}" for b in md.brokers.values())
    return asyncio.run(describe([server], timeout_s=30)).leader_id


def consume(bootstrap: str, topic: str, n: int) -> list[bytes]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])  # one broker: no group
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


# -- kafka-features ------------------------------------------------------------------------------


def features(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.features", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def described(server_flag: str, server: str) -> dict[str, dict[str, str]]:
    r = features(server_flag, server, "describe")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        fields = dict(part.split(": ", 1) for part in line.split("\t"))
        out[fields.pop("Feature")] = fields
    return out


def test_kafka_features_describe(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    on_controllers = described("--bootstrap-controller", cluster.bootstrap_controllers)
    mv = on_controllers["metadata.version"]
    assert (mv["SupportedMinVersion"], mv["SupportedMaxVersion"]) == ("3.3-IV0", "4.0-IV3")
    assert mv["FinalizedVersionLevel"] == "3.9-IV0" and int(mv["Epoch"]) >= 0
    assert on_controllers["kraft.version"] == {
        "SupportedMinVersion": "0", "SupportedMaxVersion": "1", "FinalizedVersionLevel": "0",
        "Epoch": mv["Epoch"]}
    on_broker = described("--bootstrap-server", broker.bootstrap)
    assert on_broker["metadata.version"]["FinalizedVersionLevel"] == "3.9-IV0"


def test_kafka_features_upgrade_and_downgrade(cluster: ProcCluster) -> None:
    broker = cluster.nodes[cluster.broker_ids[0]]
    controllers = cluster.bootstrap_controllers

    def level() -> str:
        return described("--bootstrap-server", broker.bootstrap)["metadata.version"][
            "FinalizedVersionLevel"]

    r = features("--bootstrap-controller", controllers, "upgrade", "--metadata", "4.0-IV0",
                 "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        " `metadata` flag is deprecated and may be removed in a future release.",
        "metadata.version can be upgraded to 22."]
    assert level() == "3.9-IV0"
    # Through the broker, which forwards UpdateFeatures to the active controller.
    r = features("--bootstrap-server", broker.bootstrap, "upgrade", "--feature",
                 "metadata.version=22")
    assert (r.returncode, r.stdout) == (0, "metadata.version was upgraded to 22.\n"), r.stderr
    wait_until(lambda: level() == "4.0-IV0", "metadata.version 22 on the broker")
    # Straight to the controllers: a follower controller sends the tool to the active one.
    r = features("--bootstrap-controller", controllers, "upgrade", "--feature",
                 "metadata.version=25")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: level() == "4.0-IV3", "metadata.version 25 on the broker")
    r = features("--bootstrap-controller", controllers, "downgrade", "--release-version",
                 "3.9-IV0")
    assert r.returncode == 1
    message = ("Invalid metadata.version 21. Refusing to perform the requested downgrade "
               "because it might delete metadata information.")
    assert r.stdout.splitlines() == [
        f"Could not downgrade kraft.version to 1. {message}",
        f"Could not downgrade metadata.version to 21. {message}"]
    assert r.stderr.strip() == "2 out of 2 operation(s) failed."
    r = features("--bootstrap-controller", controllers, "upgrade", "--feature",
                 "kraft.version=1")
    assert r.returncode == 1
    assert r.stdout.startswith(
        "Could not upgrade kraft.version to 1. Invalid update version 1 for feature "
        "kraft.version. Upgrading kraft.version from 0 to 1 is not supported by this quorum")
    r = features("--bootstrap-controller", controllers, "downgrade", "--feature",
                 "metadata.version=24")
    assert (r.returncode, r.stdout) == (0, "metadata.version was downgraded to 24.\n"), r.stderr
    wait_until(lambda: level() == "4.0-IV2", "metadata.version 24 on the broker")


def test_features_through_kafka_python(cluster: ProcCluster) -> None:
    from kafka.admin import KafkaAdminClient

    broker = cluster.nodes[cluster.broker_ids[0]]
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        before = admin.describe_features()["metadata.version"]
        assert before["supported"] == (4, 25)
        level = before["finalized"][1]
        target = 23 if level != 23 else 22
        kind = "UPGRADE" if target > level else "SAFE_DOWNGRADE"
        assert admin.update_features({"metadata.version": (kind, target)},
                                     validate_only=True) == {"metadata.version": "OK"}
        assert admin.describe_features()["metadata.version"]["finalized"][1] == level
        assert admin.update_features({"metadata.version": (kind, target)}) == {
            "metadata.version": "OK"}
        wait_until(lambda: admin.describe_features()["metadata.version"]["finalized"] == (
            target, target), f"metadata.version {target}")
    finally:
        admin.close()
