"""DescribeLogDirs and DescribeTopicPartitions on three nodes, through kafka-python's admin
client (``describe_log_dirs``, ``describe_topic_partitions``), the wire, ``kafka-log-dirs`` and
``kafka-topics --describe``: every replica reports its partitions and their sizes grow as
records arrive; pages of DescribeTopicPartitions give every partition exactly once; an unknown
topic is UNKNOWN_TOPIC_OR_PARTITION. And on one node with two log dirs, a dir that fails to
load is answered KAFKA_STORAGE_ERROR.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaClient, KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_log_dirs
from tools.proc_cluster import ProcCluster
from tools.topics import describe_partitions

kafka_admin = pytest.importorskip("kafka.admin")
from kafka import KafkaProducer
from kafka.admin import NewTopic

REPO = Path(__file__).resolve().parents[2]
TOPIC, WIDE = "ld", "ld-wide"  # 2 partitions on every broker; 7 partitions, 2 replicas each


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("log-dirs"), controllers=3, combined=True)
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def admin(cluster: ProcCluster) -> Iterator[Any]:
    ka = kafka_admin.KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers,
                                      request_timeout_ms=20000)
    ka.create_topics([NewTopic(TOPIC, 2, 3), NewTopic(WIDE, 7, 2)])
    try:
        yield ka
    finally:
        ka.close()


def until(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``probe`` until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def sizes(ka: Any, topic: str) -> dict[int, dict[int, dict[str, Any]]]:
    """broker -> partition -> kafka-python's partition dict, for ``topic``."""
    out: dict[int, dict[int, dict[str, Any]]] = {}
    for answer in ka.describe_log_dirs():
        parts: dict[int, dict[str, Any]] = {}
        for d in answer["log_dirs"]:
            assert d["error_code"] == 0, d
            for t in d["topics"]:
                if t["name"] == topic:
                    parts.update({p["partition_index"]: dict(p, log_dir=d["log_dir"])
                                  for p in t["partitions"]})
        out[answer["broker"]] = parts
    return out


def raw(address: str, api_key: int, req: Any, version: int | None = None) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=20.0)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_describe_log_dirs_with_kafka_python(cluster: ProcCluster, admin: Any) -> None:
    c, ka = cluster, admin
    brokers = set(c.broker_ids)
    assert len(brokers) == 3

    def hosted_everywhere() -> Any:
        s = sizes(ka, TOPIC)
        return s if set(s) == brokers and all(set(p) == {0, 1} for p in s.values()) else None

    before = until("every broker hosting both partitions", hosted_everywhere)
    for broker, parts in before.items():
        data_dir = os.path.abspath(c.nodes[broker].data_dir)
        for p in parts.values():
            assert p["log_dir"] == data_dir
            assert p["offset_lag"] == 0 and p["is_future_key"] is False

    producer = KafkaProducer(bootstrap_servers=c.bootstrap_servers, acks="all")
    try:
        for i in range(50):
            producer.send(TOPIC, value=b"x" * 200, key=str(i).encode(), partition=0)
        producer.flush(30)
    finally:
        producer.close()

    # Each replica reports the records once it has them (followers fetch them shortly after).
    def grown() -> Any:
        s = sizes(ka, TOPIC)
        return s if all(s[b][0]["partition_size"] >= before[b][0]["partition_size"] + 50 * 200
                        for b in brokers) else None

    after = until("every replica of partition 0 growing", grown)
    for b in brokers:
        assert after[b][1]["partition_size"] == before[b][1]["partition_size"]
        assert after[b][0]["offset_lag"] == 0
    # Sizes on disk: each broker's partition directory holds that many bytes of segments.
    for b in brokers:
        segs = (c.nodes[b].data_dir / f"{TOPIC}-0").glob("*.log")
        assert after[b][0]["partition_size"] == sum(f.stat().st_size for f in segs)

    # A filter names partitions; a broker answers for itself only.
    only = ka.describe_log_dirs({TOPIC: [1]}, brokers=[min(brokers)])
    assert [a["broker"] for a in only] == [min(brokers)]
    named = [(t["name"], p["partition_index"]) for d in only[0]["log_dirs"]
             for t in d["topics"] for p in t["partitions"]]
    assert named == [(TOPIC, 1)]

    # On the wire: topics null is every partition hosted; v4 gives the volume's sizes.
    node = c.nodes[min(brokers)]
    for version in (0, 1, 3, 4):
        resp = raw(node.bootstrap, ApiKey.DESCRIBE_LOG_DIRS,
                   describe_log_dirs.REQUEST.cls(topics=None), version)
        assert resp.error_code == 0 and len(resp.results) == 1
        d = resp.results[0]
        assert d.error_code == 0 and d.log_dir == os.path.abspath(node.data_dir)
        hosted = {(t.name, p.partition_index) for t in d.topics for p in t.partitions}
        assert {(TOPIC, 0), (TOPIC, 1)} <= hosted
        if version >= 4:
            assert d.total_bytes >= d.usable_bytes > 0
        else:
            assert d.total_bytes == d.usable_bytes == -1


def test_describe_topic_partitions_with_kafka_python(cluster: ProcCluster, admin: Any) -> None:
    c, ka = cluster, admin

    def pages(limit: int) -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        cursor = None
        for _ in range(50):
            resp = ka.describe_topic_partitions([WIDE, TOPIC], response_partition_limit=limit,
                                                cursor=cursor)
            assert sum(len(t["partitions"]) for t in resp["topics"]) <= limit
            for t in resp["topics"]:
                assert t["error_code"] == 0, t
                seen += [(t["name"], p["partition_index"]) for p in t["partitions"]]
            cursor = resp["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("pagination did not end")

    every = [(TOPIC, 0), (TOPIC, 1)] + [(WIDE, i) for i in range(7)]
    for limit in (3, 4, 2000):
        assert pages(limit) == every

    # The partitions as Metadata shows them (leaders elected, replicas placed).
    def described() -> dict[int, Any] | None:
        resp = ka.describe_topic_partitions([WIDE])
        t = resp["topics"][0]
        if any(p["leader_id"] < 0 for p in t["partitions"]):
            return None
        return {p["partition_index"]: p for p in t["partitions"]}

    parts = until("leaders for every partition", described)
    md = {t["name"]: t for t in ka.describe_topics([WIDE])}[WIDE]
    by_md = {p["partition_index"]: p for p in md["partitions"]}
    assert set(by_md) == set(parts)
    for i, p in parts.items():
        assert p["error_code"] == 0
        assert p["leader_id"] == by_md[i]["leader_id"]
        assert p["replica_nodes"] == list(by_md[i]["replica_nodes"])
        assert len(p["replica_nodes"]) == 2 and set(p["isr_nodes"]) <= set(p["replica_nodes"])
        assert p["leader_epoch"] >= 0 and p["offline_replicas"] == []

    unknown = ka.describe_topic_partitions(["no-such-topic", TOPIC])
    assert [(t["name"], t["error_code"]) for t in unknown["topics"]] == [
        (TOPIC, 0), ("no-such-topic", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]  # name order
    assert unknown["topics"][1]["partitions"] == []

    # kafka-topics' own reader follows the cursor to the end, and agrees with Metadata.
    async def ours() -> Any:
        client = await KafkaClient.bootstrap(c.bootstrap_servers.split(","))
        try:
            return (await describe_partitions(client, [TOPIC, WIDE], limit=2),
                    await client.metadata([TOPIC, WIDE]))
        finally:
            await client.close()

    paged, meta = asyncio.run(ours())
    assert paged is not None
    for name in (TOPIC, WIDE):
        assert [p.partition for p in paged[name]] == sorted(meta.topics[name].partitions)
        for p in paged[name]:
            m = meta.topics[name].partitions[p.partition]
            assert (p.leader_id, p.replicas, p.isr) == (m.leader_id, m.replicas, m.isr)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60, check=False)


def test_kafka_log_dirs_and_kafka_topics_tools(cluster: ProcCluster, admin: Any) -> None:
    c = cluster
    brokers = sorted(c.broker_ids)
    r = _run("tools.log_dirs", "--bootstrap-server", c.bootstrap_servers, "--describe",
             "--topic-list", TOPIC)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Querying brokers for log directories information"
    assert lines[1] == "Received log directory information from brokers " + ",".join(
        map(str, brokers))
    data = json.loads(lines[2])
    assert data["version"] == 1 and [b["broker"] for b in data["brokers"]] == brokers
    for b in data["brokers"]:
        (d,) = b["logDirs"]
        assert d["error"] is None
        assert d["logDir"] == os.path.abspath(c.nodes[b["broker"]].data_dir)
        assert [p["partition"] for p in d["partitions"]] == [f"{TOPIC}-0", f"{TOPIC}-1"]
        for p in d["partitions"]:
            assert set(p) == {"partition", "size", "offsetLag", "isFuture"}
            assert p["size"] >= 0 and p["offsetLag"] == 0 and p["isFuture"] is False

    one = _run("tools.log_dirs", "--bootstrap-server", c.bootstrap_servers, "--describe",
               "--broker-list", str(brokers[0]))
    assert one.returncode == 0, one.stderr
    data = json.loads(one.stdout.splitlines()[2])
    assert [b["broker"] for b in data["brokers"]] == [brokers[0]]
    names = {p["partition"] for d in data["brokers"][0]["logDirs"] for p in d["partitions"]}
    assert {f"{TOPIC}-0", f"{TOPIC}-1"} <= names

    bad = _run("tools.log_dirs", "--bootstrap-server", c.bootstrap_servers, "--describe",
               "--broker-list", f"{brokers[0]},99")
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("ERROR: The given brokers do not exist from --broker-list: "
                                  f"99. Current existent brokers: {','.join(map(str, brokers))}")

    # kafka-topics --describe reads DescribeTopicPartitions; the output is unchanged.
    desc = _run("tools.topics", "--bootstrap-server", c.bootstrap_servers, "--describe",
                "--topic", WIDE)
    assert desc.returncode == 0, desc.stderr
    out = desc.stdout.splitlines()
    assert re.fullmatch(rf"Topic: {WIDE}\tTopicId: [A-Za-z0-9_-]{{22}}\tPartitionCount: 7\t"
                        r"ReplicationFactor: 2\tConfigs: ", out[0]), out
    assert len(out) == 8
    for i, line in enumerate(out[1:]):
        assert re.fullmatch(rf"\tTopic: {WIDE}\tPartition: {i}\tLeader: \d+\t"
                            r"Replicas: \d+,\d+\tIsr: [\d,]+", line), line


def test_an_offline_log_dir_is_reported(tmp_path: Path) -> None:
    """A node with two log dirs, one of which fails to load after a restart: it answers that
    directory KAFKA_STORAGE_ERROR (kafka-python sees the code, kafka-log-dirs Kafka's exception
    class) and the other one as before."""
    first, second = tmp_path / "node-1" / "data", tmp_path / "second-dir"
    c = ProcCluster(tmp_path, controllers=1, combined=True,
                    extra={"log.dirs": f"{first},{second}"})
    c.start()
    try:
        ka = kafka_admin.KafkaAdminClient(bootstrap_servers=c.bootstrap_servers)
        try:
            ka.create_topics([NewTopic("spread", 2, 1)])

            def spread() -> dict[str, list[int]] | None:
                placed = {d["log_dir"]: [p["partition_index"] for t in d["topics"]
                                         for p in t["partitions"] if t["name"] == "spread"]
                          for d in ka.describe_log_dirs()[0]["log_dirs"]}
                return placed if all(placed.values()) else None

            # A new log goes to the directory holding the fewest: one partition in each.
            placed = until("a partition in each dir", spread)
        finally:
            ka.close()
        assert set(placed) == {os.path.abspath(first), os.path.abspath(second)}
        c.stop_all()
        (broken,) = [p for p in second.iterdir() if p.name.startswith("spread-")]
        for f in broken.glob("*.log"):
            f.unlink()
            f.mkdir()  # the segment cannot be opened: an I/O error, the dir goes offline
        c.start()
        r = _run("tools.log_dirs", "--bootstrap-server", c.bootstrap_servers, "--describe")
        assert r.returncode == 0, r.stderr
        (broker,) = json.loads(r.stdout.splitlines()[2])["brokers"]
        by_dir = {d["logDir"]: d for d in broker["logDirs"]}
        assert by_dir[os.path.abspath(second)]["error"] == \
            "org.apache.kafka.common.errors.KafkaStorageException"
        assert by_dir[os.path.abspath(second)]["partitions"] == []
        good = by_dir[os.path.abspath(first)]
        assert good["error"] is None
        assert f"spread-{placed[str(first)][0]}" in [p["partition"] for p in good["partitions"]]
        ka = kafka_admin.KafkaAdminClient(bootstrap_servers=c.bootstrap_servers)
        try:
            dirs = {d["log_dir"]: d for d in ka.describe_log_dirs({"spread": [0, 1]})[0][
                "log_dirs"]}
        finally:
            ka.close()
        assert dirs[os.path.abspath(second)]["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
        assert dirs[os.path.abspath(first)]["error_code"] == 0
    finally:
        c.shutdown()
