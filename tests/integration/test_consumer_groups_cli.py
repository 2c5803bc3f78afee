"""``kafka-consumer-groups`` against a real node with a real consumer group (confluent-kafka):
--list, --describe (Kafka's columns, with and without active members), --reset-offsets in
every mode (dry run and execute, refused while the group is active), --delete."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tools.proc_cluster import REPO, ProcCluster, env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("groups-cli"), controllers=1, brokers=1,
                    combined=True, extra={
                        "offsets.topic.replication.factor": "1",
                        "offsets.topic.num.partitions": "2",
                        "group.initial.rebalance.delay.ms": "0",
                        "group.min.session.timeout.ms": "1000",
                    })
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def cli(c: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.consumer_groups", "--bootstrap-server",
         c.bootstrap_servers, *args],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=60, check=False)


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines() if line.strip()]


def test_list_describe_reset_delete(cluster: ProcCluster) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bs = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic("cli", 2, 1)])["cli"].result(30)
    p = Producer({"bootstrap.servers": bs})
    for i in range(10):
        p.produce("cli", value=b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": bs, "group.id": "cli-group",
                         "client.id": "cli-client", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 6000})
    consumer.subscribe(["cli"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 10:
        assert time.monotonic() < deadline
        m = consumer.poll(0.2)
        if m is not None and not m.error():
            got += 1
            if got == 6:
                consumer.commit(asynchronous=False)
    member_id = consumer.memberid()

    listed = cli(cluster, "--list")
    assert listed.returncode == 0, listed.stderr
    assert "cli-group" in listed.stdout.split()

    desc = cli(cluster, "--describe", "--group", "cli-group")
    assert desc.returncode == 0, desc.stderr
    table = rows(desc.stdout)
    assert table[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET",
                        "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    body = sorted(table[1:], key=lambda r: int(r[2]))
    assert [r[:3] for r in body] == [["cli-group", "cli", "0"], ["cli-group", "cli", "1"]]
    assert [r[4] for r in body] == ["5", "5"]
    # 6 records were committed across the two partitions: the lag adds up to 4.
    assert sum(int(r[3]) for r in body) == 6 and sum(int(r[5]) for r in body) == 4
    assert all(r[6] == member_id and r[7] == "/127.0.0.1" and r[8] == "cli-client"
               for r in body)

    refused = cli(cluster, "--reset-offsets", "--group", "cli-group", "--topic", "cli",
                  "--to-earliest", "--execute")
    assert refused.returncode == 1 and "inactive" in refused.stderr
    consumer.close()

    idle = cli(cluster, "--describe", "--group", "cli-group")
    assert idle.returncode == 0 and "has no active members" in idle.stderr
    assert all(r[6:] == ["-", "-", "-"] for r in rows(idle.stdout)[1:])

    def reset(*how: str) -> dict[int, int]:
        r = cli(cluster, "--reset-offsets", "--group", "cli-group", "--topic", "cli", *how)
        assert r.returncode == 0, r.stderr
        t = rows(r.stdout)
        assert t[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        return {int(x[2]): int(x[3]) for x in t[1:]}

    def current() -> dict[int, int]:
        d = rows(cli(cluster, "--describe", "--group", "cli-group").stdout)[1:]
        return {int(x[2]): int(x[3]) for x in d}

    before = current()
    assert reset("--to-earliest", "--dry-run") == {0: 0, 1: 0}
    assert current() == before
    assert reset("--to-earliest", "--execute") == {0: 0, 1: 0}
    assert current() == {0: 0, 1: 0}
    assert reset("--to-offset", "3", "--execute") == {0: 3, 1: 3}
    assert reset("--shift-by", "-1", "--execute") == {0: 2, 1: 2}
    assert reset("--shift-by", "100", "--execute") == {0: 5, 1: 5}  # clamped to the end
    assert reset("--to-earliest", "--execute") == {0: 0, 1: 0}
    assert reset("--to-latest", "--execute") == {0: 5, 1: 5}
    assert reset("--to-datetime", "2000-01-01T00:00:00.000", "--execute") == {0: 0, 1: 0}
    assert reset("--to-datetime", "2999-01-01T00:00:00.000Z", "--execute") == {0: 5, 1: 5}
    partial = cli(cluster, "--reset-offsets", "--group", "cli-group", "--topic", "cli:1",
                  "--to-offset", "1", "--execute")
    assert partial.returncode == 0 and current() == {0: 5, 1: 1}
    bad = cli(cluster, "--reset-offsets", "--group", "cli-group", "--topic", "cli",
              "--to-datetime", "yesterday")
    assert bad.returncode == 1 and "to-datetime" in bad.stderr

    deleted = cli(cluster, "--delete", "--group", "cli-group")
    assert deleted.returncode == 0, deleted.stderr
    assert "Deletion of requested consumer groups ('cli-group') was successful." in \
        deleted.stdout
    assert "cli-group" not in cli(cluster, "--list").stdout.split()
    gone = cli(cluster, "--describe", "--group", "cli-group")
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    again = cli(cluster, "--delete", "--group", "cli-group")
    assert again.returncode == 1 and "does not exist" in again.stderr
