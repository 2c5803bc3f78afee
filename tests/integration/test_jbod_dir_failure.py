"""A log dir failing on one broker of three, each with two log dirs (KIP-858), through real
clients: kafka-python's admin client (DescribeLogDirs, Metadata), confluent-kafka producing
and consuming.

The second log dir of every node starts empty and gets its ``directory.id`` at start-up. Each
broker tells the controller where its replicas live (AssignReplicasToDirs). Then one broker's
second dir is replaced by a file, a real ``NotADirectoryError`` for every file opened in it
(the log manager's checkpoint finds it within ``log.flush.offset.checkpoint.interval.ms``): that
broker reports the dir in its next heartbeat, which it sends at once, and the controller moves
leadership of the partitions in that dir to another in-sync replica and drops the broker from
their ISR, within the broker session timeout and without fencing the broker. A producer
running all along loses nothing; a new topic's replicas on that broker go to its online dir.
Restarted with the dir still broken, the broker does not recreate those partitions empty in
the good dir.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.meta_properties import read_meta_properties
from tools.proc_cluster import STARTED, TEST_SETTINGS, ProcCluster

kafka_admin = pytest.importorskip("kafka.admin")
ck = pytest.importorskip("confluent_kafka")
from kafka.admin import NewTopic

TOPIC, AFTER, PARTS = "jbod", "jbod-after", 6
SESSION_TIMEOUT_S = int(TEST_SETTINGS["broker.session.timeout.ms"]) / 1000
STORAGE_ERROR = 56


def until(what: str, probe: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
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
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def second_dir(c: ProcCluster, broker: int) -> Path:
    return c.nodes[broker].dir / "data2"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("jbod"), controllers=3, combined=True, admin=True,
                    extra={"log.flush.offset.checkpoint.interval.ms": "300"})
    for n in c.nodes.values():
        # A second, empty log dir: formatted at start-up with a fresh directory id.
        text = n.config.read_text()
        line = f"log.dirs={n.data_dir}\n"
        assert line in text
        n.config.write_text(text.replace(line, f"log.dirs={n.data_dir},{n.dir / 'data2'}\n"))
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def admin(cluster: ProcCluster) -> Iterator[Any]:
    ka = kafka_admin.KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers,
                                      request_timeout_ms=20000)
    try:
        yield ka
    finally:
        ka.close()


def registered_dir_ids(c: ProcCluster, broker: int) -> list[str]:
    """The broker's registered log dir ids, from the HTTP admin API of another node."""
    other = next(b for b in c.broker_ids if b != broker)
    with urllib.request.urlopen(f"{c.nodes[other].admin_url}/v1/brokers/{broker}",
                                timeout=10) as r:
        return sorted(json.load(r)["log_dir_ids"])


def partitions(ka: Any, topic: str) -> dict[int, dict[str, Any]]:
    [t] = ka.describe_topics([topic])
    return {p["partition_index"]: p for p in t["partitions"]}


def placement(ka: Any, broker: int, topic: str) -> dict[str, Any]:
    """log dir -> (error code, partitions of ``topic`` there) on ``broker``."""
    [answer] = ka.describe_log_dirs(brokers=[broker])
    return {d["log_dir"]: (d["error_code"], sorted(
        p["partition_index"] for t in d["topics"] if t["name"] == topic
        for p in t["partitions"])) for d in answer["log_dirs"]}


def assigned_count(c: ProcCluster, broker: int) -> int:
    """Replicas whose log dir the broker has told the controller (from its log)."""
    total = 0
    for line in c.nodes[broker].output().splitlines():
        if "Told the controller the log dirs of" in line:
            total += int(line.split("Told the controller the log dirs of ")[1].split()[0])
    return total


class Producing:
    """A confluent-kafka producer (acks=all, idempotent) sending until stopped."""

    def __init__(self, bootstrap: str) -> None:
        self.p = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                              "enable.idempotence": True, "linger.ms": 5,
                              "message.timeout.ms": 120000})
        self.acked: set[bytes] = set()
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked.add(msg.value())

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.p.produce(TOPIC, value=f"m-{i}".encode(), partition=i % PARTS,
                           on_delivery=self._done)
            i += 1
            self.p.poll(0.01)
        self.p.flush(120)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(150)


def consume_all(bootstrap: str, topic: str, want: set[bytes]) -> set[bytes]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"jbod-{time.time()}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(PARTS)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    try:
        while not want <= seen and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error() is None:
                    seen.add(m.value())
    finally:
        c.close()
    return seen


def test_a_failed_log_dir_moves_leadership_and_isr_away(cluster: ProcCluster,
                                                        admin: Any) -> None:
    c, ka = cluster, admin
    # Every node's second dir got a directory id of its own at start-up.
    ids: dict[int, list[str]] = {}
    for b in c.broker_ids:
        metas = [read_meta_properties(d) for d in (c.nodes[b].data_dir, second_dir(c, b))]
        assert all(m is not None and m.directory_id for m in metas), metas
        ids[b] = [m.directory_id for m in metas if m is not None and m.directory_id]
        # ... and registered them (the HTTP admin API shows the metadata's registration).
        assert registered_dir_ids(c, b) == sorted(ids[b])
    assert len({i for v in ids.values() for i in v}) == 2 * len(c.broker_ids)

    ka.create_topics([NewTopic(TOPIC, PARTS, 3, topic_configs={"min.insync.replicas": "2"})])
    until("every partition fully in sync", lambda: all(
        p["leader_id"] >= 0 and len(p["isr_nodes"]) == 3
        for p in partitions(ka, TOPIC).values()) and len(partitions(ka, TOPIC)) == PARTS)
    # Each broker put its replicas in both dirs and told the controller where.
    for b in c.broker_ids:
        until(f"broker {b} assigning its replicas to dirs",
              lambda b=b: assigned_count(c, b) >= PARTS)

    parts = partitions(ka, TOPIC)
    victim, in_bad = None, []
    for b in c.broker_ids:
        where = placement(ka, b, TOPIC)
        bad = where[os.path.abspath(second_dir(c, b))][1]
        if any(parts[p]["leader_id"] == b for p in bad):
            victim, in_bad = b, bad
            good = where[os.path.abspath(c.nodes[b].data_dir)][1]
            break
    assert victim is not None, "some broker leads a partition in its second dir"
    assert in_bad and good and sorted(in_bad + good) == list(range(PARTS))
    isr_before = {p: set(parts[p]["isr_nodes"]) for p in in_bad}

    producer = Producing(c.bootstrap_servers)
    producer.start()
    try:
        until("the producer running", lambda: len(producer.acked) >= 100)
        bad_dir = second_dir(c, victim)
        os.rename(bad_dir, bad_dir.with_name("data2.failed"))
        bad_dir.write_text("this disk is gone\n")  # every open in the dir: NotADirectoryError
        failed_at = time.monotonic()

        def moved() -> bool:
            now = partitions(ka, TOPIC)
            return all(now[p]["leader_id"] not in (victim, -1)
                       and victim not in now[p]["isr_nodes"]
                       and victim in now[p]["offline_replicas"] for p in in_bad)

        until("leadership and ISR moving away from the failed dir", moved, every=0.05)
        elapsed = time.monotonic() - failed_at
        print(f"leadership and ISR moved {elapsed:.2f} s after the dir failed")
        now = partitions(ka, TOPIC)
        for p in in_bad:
            assert now[p]["leader_id"] in isr_before[p]  # a clean election
        # Within the session timeout, and not by fencing: the broker still leads or follows
        # in sync the partitions of its good dir.
        assert elapsed < SESSION_TIMEOUT_S, elapsed
        for p in good:
            assert victim in now[p]["isr_nodes"] and victim not in now[p]["offline_replicas"]
        acked_at_failure = len(producer.acked)
        until("the producer going on", lambda: len(producer.acked) >= acked_at_failure + 200)
    finally:
        producer.stop()
    assert not producer.failed, producer.failed[:5]
    seen = consume_all(c.bootstrap_servers, TOPIC, producer.acked)
    assert producer.acked <= seen, len(producer.acked - seen)

    # The broker reports the dir offline; the partitions there are not recreated elsewhere.
    where = placement(ka, victim, TOPIC)
    assert where[os.path.abspath(second_dir(c, victim))][0] == STORAGE_ERROR
    assert where[os.path.abspath(c.nodes[victim].data_dir)][1] == good
    assert registered_dir_ids(c, victim) == [ids[victim][0]]  # only the good dir is online

    # A new topic: the broker's replicas go to its online dir.
    ka.create_topics([NewTopic(AFTER, 4, 3)])
    until("the new topic in sync", lambda: all(
        p["leader_id"] >= 0 and len(p["isr_nodes"]) == 3
        for p in partitions(ka, AFTER).values()) and len(partitions(ka, AFTER)) == 4)
    where = until("the new topic's replicas hosted on the broker", lambda: (
        w := placement(ka, victim, AFTER))[os.path.abspath(c.nodes[victim].data_dir)][1] == [
        0, 1, 2, 3] and w)
    assert where[os.path.abspath(c.nodes[victim].data_dir)] == (0, [0, 1, 2, 3])
    assert where[os.path.abspath(second_dir(c, victim))] == (STORAGE_ERROR, [])


def test_restarted_with_the_dir_still_failed_nothing_is_recreated(cluster: ProcCluster,
                                                                  admin: Any) -> None:
    """After the test above: the broker restarts while its second dir is still broken. It
    starts with that dir offline, registers only its good dir, and its replicas that lived in
    the broken dir stay out of the ISR and are not recreated (empty) in the good one."""
    c, ka = cluster, admin
    victim = next(b for b in c.broker_ids if second_dir(c, b).is_file())
    before = partitions(ka, TOPIC)
    out_of_isr = [p for p, info in before.items() if victim not in info["isr_nodes"]]
    good = placement(ka, victim, TOPIC)[os.path.abspath(c.nodes[victim].data_dir)][1]
    assert out_of_isr and sorted(out_of_isr + good) == list(range(PARTS))
    c.nodes[victim].stop()
    c.nodes[victim].start()
    c.nodes[victim].wait_for(STARTED)
    until("the restarted broker back in the ISR of its good dir's partitions", lambda: all(
        victim in partitions(ka, TOPIC)[p]["isr_nodes"] for p in good))
    time.sleep(1.0)  # metadata applied on the broker; nothing may have been recreated
    now = partitions(ka, TOPIC)
    for p in out_of_isr:
        assert victim not in now[p]["isr_nodes"] and now[p]["leader_id"] not in (victim, -1)
        assert victim in now[p]["offline_replicas"]
    # A new admin client: this one's broker list missed the broker while it restarted.
    fresh = kafka_admin.KafkaAdminClient(bootstrap_servers=c.bootstrap_servers,
                                         request_timeout_ms=20000)
    try:
        where = placement(fresh, victim, TOPIC)
    finally:
        fresh.close()
    assert where[os.path.abspath(c.nodes[victim].data_dir)] == (0, good)
    assert where[os.path.abspath(second_dir(c, victim))] == (STORAGE_ERROR, [])
    for p in out_of_isr:
        assert not (c.nodes[victim].data_dir / f"{TOPIC}-{p}").exists()
