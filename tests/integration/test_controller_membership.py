"""The README's story of a dynamic quorum (KIP-853), done with the tools: a cluster formatted
``kafka-storage format --standalone`` on one controller, two more controllers formatted
``--no-initial-controllers`` that start as observers (``controller.quorum.bootstrap.servers``),
``kafka-metadata-quorum add-controller`` for each (3 voters), then ``remove-controller`` back to
one voter; no metadata record (topic) or produced record is lost.

The broker knows the controllers only by ``controller.quorum.bootstrap.servers``
(broker/controller/quorum_bootstrap.py): started before any controller, it finds the voter
through them, registers, serves confluent-kafka throughout, and follows the active controller
to the voters added later once the first one is removed. On the same cluster (formatted at
3.9-IV0), feature levels through ``kafka-features`` (tools/features.py) against the controllers
and through that broker, and through kafka-python's describe_features / update_features.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from storage.meta_properties import read_meta_properties
from storage.properties import parse_properties
from tools import features as features_tool
from tools import metadata_quorum
from tools.launcher import render_properties
from tools.proc_cluster import NodeProc, ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60.0


def run_tool(main: Callable[[list[str]], int], args: Sequence[str]) -> Completed:
    """A CLI tool's ``main`` in this process (a new interpreter per call would cost a second
    each): exit code and output as the command line would show them."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Completed(code, out.getvalue(), err.getvalue())


@dataclasses.dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def quorum_tool(*args: str) -> Completed:
    return run_tool(metadata_quorum.main, args)


def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def directory_id(node: NodeProc) -> str:
    meta = read_meta_properties(node.data_dir)
    assert meta is not None and meta.directory_id is not None
    return meta.directory_id


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    """Controllers 1-3 and broker 4, reformatted as a dynamic quorum: only controller 1 is a
    voter; everybody finds it through controller.quorum.bootstrap.servers."""
    c = ProcCluster(tmp_path_factory.mktemp("membership"), controllers=3, brokers=1)
    broker = c.nodes[c.broker_ids[0]]
    first = c.nodes[c.controller_ids[0]]
    for n in c.nodes.values():
        props = parse_properties(n.config.read_text())
        props.pop("controller.quorum.voters")
        props["controller.quorum.bootstrap.servers"] = c.bootstrap_controllers
        n.config.write_text(render_properties(props))
        shutil.rmtree(n.data_dir)
        if n is first:
            flags = ["--standalone"]
        elif n.spec.is_controller:
            flags = ["--no-initial-controllers"]
        else:
            flags = []
        n.format(c.cluster_id, extra_args=[*flags, "--release-version", "3.9-IV0"])
    try:
        broker.start()  # first: it asks the bootstrap servers until a controller answers
        time.sleep(1.0)
        assert broker.alive(), broker.output()
        c.start([first.node_id])
        broker.wait_for("Kafka Server started", timeout=TIMEOUT_S)
        yield c
    finally:
        c.shutdown()


def voters(c: ProcCluster) -> dict[int, str]:
    """CurrentVoters of ``describe --status``: id -> directory id."""
    r = quorum_tool("--bootstrap-controller", c.bootstrap_controllers, "describe", "--status")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("CurrentVoters:"))
    return {int(i): d for i, d in re.findall(r'"id": (\d+), "directoryId": "([^"]+)"', line)}


def test_broker_finds_the_quorum_through_bootstrap_servers(cluster: ProcCluster) -> None:
    out = cluster.nodes[cluster.broker_ids[0]].output()
    assert "No controller.quorum.bootstrap.servers reported the quorum yet" in out
    first = cluster.nodes[cluster.controller_ids[0]]
    assert ("Controller quorum voters from bootstrap server" in out
            and f"{first.node_id}@{first.controller_address}" in out)


def test_grow_from_standalone_to_three_and_shrink_back(cluster: ProcCluster) -> None:
    c = cluster
    c1, c2, c3 = (c.nodes[i] for i in c.controller_ids)
    broker = c.nodes[c.broker_ids[0]]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    produced: list[bytes] = []

    def create_and_produce(topic: str) -> None:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
        p = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(5):
            value = f"{topic}-{i}".encode()
            p.produce(topic, value)
            produced.append(value)
        assert p.flush(30) == 0

    assert voters(c) == {c1.node_id: directory_id(c1)}
    create_and_produce("standalone")

    # Two observers join: started with only the bootstrap servers, then added as voters.
    c.start([c2.node_id, c3.node_id])
    for n in (c2, c3):
        r = None
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # the new controller must have caught up (else REQUEST_TIMED_OUT)
            r = quorum_tool("--bootstrap-controller", c1.controller_address,
                            "--command-config", str(n.config), "add-controller")
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert r.returncode == 0, r.stderr
        assert r.stdout == (f"Added controller {n.node_id} with directory id "
                            f"{directory_id(n)} and endpoints: "
                            f"CONTROLLER://{n.controller_address}\n")
        create_and_produce(f"after-add-{n.node_id}")
    wait_until(lambda: set(voters(c)) == {c1.node_id, c2.node_id, c3.node_id}, "3 voters")
    assert voters(c) == {n.node_id: directory_id(n) for n in (c1, c2, c3)}

    # Shrink back to one voter: remove the first controller (perhaps the leader, which then
    # steps down) and the second, this one through the broker (which forwards the request).
    for n, where in ((c1, ["--bootstrap-controller", c.bootstrap_controllers]),
                     (c2, ["--bootstrap-server", broker.bootstrap])):
        r = quorum_tool(*where, "remove-controller", "--controller-id", str(n.node_id),
                        "--controller-directory-id", directory_id(n))
        assert r.returncode == 0, r.stderr
        assert r.stdout == (f"Removed  KRaft controller {n.node_id} with directory id "
                            f"{directory_id(n)}\n")
        create_and_produce(f"after-remove-{n.node_id}")
    wait_until(lambda: voters(c) == {c3.node_id: directory_id(c3)}, "one voter left")

    # No metadata record lost: every topic is there, with every record produced to it.
    topics = admin.list_topics(timeout=20).topics
    expected = {v.decode().rsplit("-", 1)[0] for v in produced}
    assert expected <= set(topics)
    assert sorted(consume_all(broker.bootstrap, sorted(expected))) == sorted(produced)


def consume_all(bootstrap: str, topics: list[str]) -> list[bytes]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "membership-check",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(t, 0, ck.OFFSET_BEGINNING) for t in topics])
    got: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < 5 * len(topics) and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        consumer.close()
    return got


# -- kafka-features ------------------------------------------------------------------------------


def features(*args: str) -> Completed:
    return run_tool(features_tool.main, args)


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
    r = subprocess.run([sys.executable, "-m", "tools.features", "--bootstrap-server",
                        broker.bootstrap, "describe"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0 and r.stdout.startswith("Feature: kraft.version\t"), r.stderr
    on_controllers = described("--bootstrap-controller", cluster.bootstrap_controllers)
    mv = on_controllers["metadata.version"]
    assert (mv["SupportedMinVersion"], mv["SupportedMaxVersion"]) == ("3.3-IV0", "4.0-IV3")
    assert mv["FinalizedVersionLevel"] == "3.9-IV0" and int(mv["Epoch"]) >= 0
    assert on_controllers["kraft.version"] == {  # a dynamic quorum
        "SupportedMinVersion": "0", "SupportedMaxVersion": "1", "FinalizedVersionLevel": "1",
        "Epoch": mv["Epoch"]}
    on_broker = described("--bootstrap-server", broker.bootstrap)
    assert on_broker["metadata.version"]["FinalizedVersionLevel"] == "3.9-IV0"
    assert on_broker["kraft.version"]["FinalizedVersionLevel"] == "1"


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
    wait_until(lambda: level() == "4.0-IV0", "metadata.version 22 on the broker", 30)
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
                 "kraft.version=1")  # what it is already
    assert (r.returncode, r.stdout) == (0, "kraft.version was upgraded to 1.\n"), r.stderr
    r = features("--bootstrap-controller", controllers, "downgrade", "--feature",
                 "kraft.version=0")
    assert r.returncode == 1
    assert r.stdout == ("Could not downgrade kraft.version to 0. Invalid update version 0 for "
                        "feature kraft.version. Downgrading kraft.version is not supported.\n")
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
