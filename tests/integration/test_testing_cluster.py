"""The test cluster offered to Python test suites (tools/testing.py, tools/pytest_plugin.py).

A user's test file, run by pytest in a subprocess with the plugin, uses the ``kafka_cluster``
fixture with confluent-kafka (produce, consume, and the cluster's own ``read_topic``); the
context manager starts 3 nodes, survives a node killed and restarted without losing what was
acknowledged, and removes its data at the end.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import time
from pathlib import Path

import pytest

from tools.netns import netns_available
from tools.testing import cluster

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]
ck = pytest.importorskip("confluent_kafka")

USER_TEST = '''
import confluent_kafka as ck

def test_round_trip(kafka_cluster):
    kafka_cluster.create_topic("orders", partitions=2)
    p = ck.Producer({"bootstrap.servers": kafka_cluster.bootstrap_servers})
    for i in range(10):
        p.produce("orders", key=str(i % 3).encode(), value=f"order-{i}".encode())
    assert p.flush(30) == 0
    values = sorted(r.value for r in kafka_cluster.read_topic("orders"))
    assert values == sorted(f"order-{i}".encode() for i in range(10))
    c = ck.Consumer({"bootstrap.servers": kafka_cluster.bootstrap_servers,
                     "group.id": "g", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    got = []
    while len(got) < 10:
        m = c.poll(30)
        assert m is not None and not m.error(), m and m.error()
        got.append(m.value())
    c.close()
    assert sorted(got) == values

def test_same_cluster_for_the_session(kafka_cluster):
    assert len(kafka_cluster.read_topic("orders")) == 10
'''


def test_the_plugin_is_registered_for_pytest() -> None:
    """``pip install`` is all a user needs: the package declares the plugin to pytest."""
    eps = importlib.metadata.entry_points(group="pytest11")
    assert {ep.name: ep.value for ep in eps}.get("pykraft") == "tools.pytest_plugin"


def test_the_fixture_in_a_users_test_suite(pytester: pytest.Pytester,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    # This checkout's code (the installed package may point at another checkout).
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:pykraft", "-p", "tools.pytest_plugin",
                                           "-q", "--kafka-nodes", "1", timeout=180)
    result.assert_outcomes(passed=2)
    assert time.monotonic() - started < 120


def test_three_nodes_faults_lose_nothing_acknowledged(tmp_path: Path) -> None:
    """Kill -9 and restart, then (where namespaces are available) a node cut off."""
    network = netns_available()
    with cluster(nodes=3, root=tmp_path / "c", network=network) as c:
        assert len(c.bootstrap_servers.split(",")) == 3
        c.create_topic("t", partitions=3)
        c.produce("t", [f"a{i}" for i in range(30)])
        victim = c.node_ids[0]
        c.kill(victim)
        c.produce("t", [f"b{i}" for i in range(30)])
        c.restart(victim)
        c.produce("t", [f"c{i}" for i in range(30)])
        # At least once: a request retried after a timeout may have been written twice.
        want = {f"{x}{i}".encode() for x in "abc" for i in range(30)}
        assert {r.value for r in c.read_topic("t")} == want
        if network:
            leader = c._run(lambda k: k.metadata(["t"])).topics["t"].partitions[0].leader_id
            c.isolate(leader)
            with pytest.raises(OSError):  # the clients cannot reach it either
                socket.create_connection((c.procs.nodes[leader].spec.host, 9092), timeout=1)
            # The others elect a new leader and take writes while the old one is cut off.
            c.produce("t", [f"d{i}" for i in range(30)], partition=0)
            now = c._run(lambda k: k.metadata(["t"])).topics["t"].partitions[0].leader_id
            assert now not in (leader, -1)
            c.heal()
            want |= {f"d{i}".encode() for i in range(30)}
            assert {r.value for r in c.read_topic("t")} == want
            prefix = c.procs.network.prefix
    # Data kept when the caller chose the root; the namespaces are gone.
    assert (tmp_path / "c").exists()
    if network:
        assert prefix not in os.popen("ip link").read()
    # A default cluster cleans up after itself.
    with cluster(nodes=1) as c:
        root = c.data_dir
        c.create_topic("u")
        assert c.produce("u", [b"x", b"y"], key=b"k") == [0, 1]
        assert [r.value for r in c.read_topic("u")] == [b"x", b"y"]
    assert not root.exists()
