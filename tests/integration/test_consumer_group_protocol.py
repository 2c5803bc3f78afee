"""Consumer groups of the new protocol (KIP-848) on real processes (1 controller + 3 brokers,
``__consumer_offsets`` with replication factor 3) through confluent-kafka with
``group.protocol=consumer`` (librdkafka's ConsumerGroupHeartbeat v1, OffsetCommit and
OffsetFetch v9), next to a classic group reading the same topic.

Two members split a topic and no partition is ever owned by both; when one closes the other
takes every partition within a few seconds; a restarted consumer resumes from its commits;
``group.remote.assignor`` picks range or uniform; a static member comes back to its partitions without a new group epoch;
``kafka-consumer-groups`` lists and describes
both kinds; a regex subscription follows new topics and added partitions are a new group epoch;
the group's state (same member, same epochs) survives kill -9 of its coordinator.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    consumer_group_describe,
    describe_groups,
    find_coordinator,
    list_groups,
)
from tools.proc_cluster import REPO, ProcCluster, env

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HEARTBEAT_MS = 1000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("consumer-protocol"), controllers=1, brokers=3,
                    admin=True, extra={
                        "offsets.topic.replication.factor": "3",
                        "offsets.topic.num.partitions": "3",
                        "group.initial.rebalance.delay.ms": "0",
                        "group.consumer.heartbeat.interval.ms": str(HEARTBEAT_MS),
                        "group.consumer.min.heartbeat.interval.ms": "500",
                        "group.consumer.session.timeout.ms": "10000",
                        "group.consumer.min.session.timeout.ms": "5000",
                    })
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def send(address: str, api_key: int, req: Any, version: int | None = None) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=20.0)
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def create_topic(c: ProcCluster, name: str, partitions: int, rf: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    for f in admin.create_topics([NewTopic(name, partitions, rf)]).values():
        f.result(60)
    wait_until(lambda: len(admin.list_topics(name, timeout=10).topics[name].partitions)
               == partitions, 20, f"topic {name} in the metadata")


def produce(c: ProcCluster, topic: str, n: int, partitions: int) -> None:
    p = Producer({"bootstrap.servers": c.bootstrap_servers, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=f"{topic}-{i}".encode(), partition=i % partitions)
    assert p.flush(30) == 0


def conf(c: ProcCluster, group: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": c.bootstrap_servers, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest", **extra}


def coordinator_of(c: ProcCluster, group: str, not_node: int = -1) -> tuple[int, str]:
    def find() -> tuple[int, str] | None:
        for n in c.nodes.values():
            if n.alive() and n.spec.is_broker:
                try:
                    r = send(n.bootstrap, ApiKey.FIND_COORDINATOR,
                             find_coordinator.REQUEST.cls(key=group, key_type=0), 3)
                except (OSError, TimeoutError):
                    continue
                if not r.error_code and r.node_id != not_node:
                    return int(r.node_id), f"{r.host}:{r.port}"
        return None
    return wait_until(find, 30, f"the coordinator of {group}")


def describe(c: ProcCluster, group: str) -> Any:
    R = consumer_group_describe.REQUEST

    def once() -> Any:
        _, address = coordinator_of(c, group)
        try:
            g = send(address, ApiKey.CONSUMER_GROUP_DESCRIBE,
                     R.cls(group_ids=[group], include_authorized_operations=False), 1).groups[0]
        except (OSError, TimeoutError):
            return None
        if g.error_code in (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NOT_COORDINATOR,
                            ErrorCode.COORDINATOR_NOT_AVAILABLE):  # not there yet
            return None
        assert g.error_code == 0, g
        return g
    return wait_until(once, 30, f"a description of {group}")


def parts(consumer: Any) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def poll_all(consumers: list[Any], pred: Callable[[], bool], timeout: float, what: str,
             check: Callable[[], None] | None = None,
             sink: dict[int, list[bytes]] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for i, cons in enumerate(consumers):
            m = cons.poll(0.05)
            if m is not None and not m.error() and sink is not None:
                sink.setdefault(i, []).append(m.value())
            if check is not None:
                check()


def test_members_split_a_topic_and_a_leaver_hands_over_next_to_a_classic_group(
        cluster: ProcCluster) -> None:
    topic, n = "kip848-split", 6
    create_topic(cluster, topic, n)
    produce(cluster, topic, 60, n)
    one = Consumer(conf(cluster, "kip848-split-group"))
    two = Consumer(conf(cluster, "kip848-split-group"))
    # A classic group (librdkafka's default protocol) reads the same topic meanwhile.
    classic = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                        "group.id": "kip848-classic", "auto.offset.reset": "earliest"})
    for cons in (one, two, classic):
        cons.subscribe([topic])

    def never_shared() -> None:
        assert not parts(one) & parts(two), (parts(one), parts(two))

    got: dict[int, list[bytes]] = {}
    try:
        poll_all([one, two, classic], lambda: len(parts(one)) == len(parts(two)) == n // 2
                 and len(got.get(2, [])) == 60, 60, "an even split and the classic group's "
                 "read", never_shared, got)
        assert parts(one) | parts(two) == {(topic, p) for p in range(n)}
        g = describe(cluster, "kip848-split-group")
        assert g.group_state == "Stable" and g.assignor_name == "uniform"
        assert {m.member_epoch for m in g.members} == {g.group_epoch} == {g.assignment_epoch}
        # The classic group read everything, independently of the consumer group's split.
        assert sorted(got[2]) == sorted(f"{topic}-{i}".encode() for i in range(60))
        # The two members together read everything once as well.
        assert sorted(got.get(0, []) + got.get(1, [])) == sorted(got[2])

        two.close()
        closed = time.monotonic()
        poll_all([one], lambda: len(parts(one)) == n, 15, "the survivor taking every partition")
        assert time.monotonic() - closed < 3 * HEARTBEAT_MS / 1000 + 5
        assert len(describe(cluster, "kip848-split-group").members) == 1
    finally:
        one.close()
        classic.close()


def test_commits_survive_a_restart_of_the_consumer(cluster: ProcCluster) -> None:
    topic = "kip848-resume"
    create_topic(cluster, topic, 1)
    produce(cluster, topic, 20, 1)
    first = Consumer(conf(cluster, "kip848-resume-group", **{"enable.auto.commit": False}))
    first.subscribe([topic])
    got: dict[int, list[bytes]] = {}
    poll_all([first], lambda: len(got.get(0, [])) >= 10, 30, "ten records", sink=got)
    first.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    assert first.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 10
    first.close()

    again = Consumer(conf(cluster, "kip848-resume-group"))
    again.subscribe([topic])
    rest: dict[int, list[bytes]] = {}
    poll_all([again], lambda: len(rest.get(0, [])) >= 10, 30, "the rest", sink=rest)
    again.close()
    assert rest[0][:10] == [f"{topic}-{i}".encode() for i in range(10, 20)]


@pytest.mark.parametrize("assignor", ["range", "uniform"])
def test_remote_assignor(cluster: ProcCluster, assignor: str) -> None:
    a, b = f"kip848-{assignor}-a", f"kip848-{assignor}-b"
    for t in (a, b):
        create_topic(cluster, t, 3)
    group = f"kip848-{assignor}-group"
    members = [Consumer(conf(cluster, group, **{"group.remote.assignor": assignor}))
               for _ in range(2)]
    try:
        for m in members:
            m.subscribe([a, b])
        poll_all(members, lambda: sum(len(parts(m)) for m in members) == 6
                 and all(parts(m) for m in members), 40, f"the {assignor} split")
        g = describe(cluster, group)
        assert g.assignor_name == assignor
        split = [parts(m) for m in members]
        assert not split[0] & split[1]
        if assignor == "range":
            # Range co-partitions: each member has the same partition numbers of both topics.
            for s in split:
                assert {p for t, p in s if t == a} == {p for t, p in s if t == b}
            assert sorted(len(s) for s in split) == [2, 4]
        else:
            assert sorted(len(s) for s in split) == [3, 3]
    finally:
        for m in members:
            m.close()


def test_regex_subscription_and_new_partitions_are_a_new_assignment(
        cluster: ProcCluster) -> None:
    from confluent_kafka.admin import NewPartitions
    for t, n in (("kip848-rx-a", 2), ("kip848-rx-b", 1), ("kip848-other", 1)):
        create_topic(cluster, t, n)
    cons = Consumer(conf(cluster, "kip848-rx-group",
                         **{"topic.metadata.refresh.interval.ms": 1000}))
    try:
        cons.subscribe(["^kip848-rx-.*"])  # librdkafka sends it as SubscribedTopicRegex
        poll_all([cons], lambda: len(parts(cons)) == 3, 30, "the regex's partitions")
        assert {t for t, _ in parts(cons)} == {"kip848-rx-a", "kip848-rx-b"}
        epoch = describe(cluster, "kip848-rx-group").group_epoch
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        for f in admin.create_partitions([NewPartitions("kip848-rx-b", 3)]).values():
            f.result(30)
        poll_all([cons], lambda: len(parts(cons)) == 5, 30, "the new partitions")
        create_topic(cluster, "kip848-rx-c", 1)
        poll_all([cons], lambda: ("kip848-rx-c", 0) in parts(cons), 30, "the new topic")
        assert describe(cluster, "kip848-rx-group").group_epoch >= epoch + 2
    finally:
        cons.close()


def test_static_member_comes_back_to_its_partitions_without_a_new_epoch(
        cluster: ProcCluster) -> None:
    topic, group = "kip848-static", "kip848-static-group"
    create_topic(cluster, topic, 4)

    def member(instance: str) -> Any:
        cons = Consumer(conf(cluster, group, **{"group.instance.id": instance}))
        cons.subscribe([topic])
        return cons

    one, two = member("i1"), member("i2")
    try:
        poll_all([one, two], lambda: len(parts(one)) == len(parts(two)) == 2, 40, "a split")
        kept, epoch = parts(two), describe(cluster, group).group_epoch
        two.close()  # a static member leaves with epoch -2: its place is kept
        left = {m.instance_id: m.member_epoch for m in describe(cluster, group).members}
        assert left["i2"] == -2
        two = member("i2")
        poll_all([one, two], lambda: len(parts(two)) == 2, 30, "the static member back")
        assert parts(two) == kept and len(parts(one)) == 2
        g = describe(cluster, group)
        assert g.group_epoch == epoch and {m.member_epoch for m in g.members} == {epoch}
        # A second member with the same instance id is refused.
        errors: list[Any] = []
        dup = Consumer(conf(cluster, group, **{"group.instance.id": "i2",
                                               "error_cb": errors.append}))
        dup.subscribe([topic])
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            m = dup.poll(0.1)
            if m is not None and m.error():
                errors.append(m.error())
            one.poll(0.05)
            two.poll(0.05)
        assert any("instance id is still used" in e.str().lower() for e in errors), errors
        dup.close()
    finally:
        one.close()
        two.close()


def test_deleting_its_only_topic_removes_an_empty_consumer_group(cluster: ProcCluster) -> None:
    topic, group = "kip848-gone", "kip848-gone-group"
    create_topic(cluster, topic, 1)
    produce(cluster, topic, 3, 1)
    cons = Consumer(conf(cluster, group, **{"enable.auto.commit": False}))
    cons.subscribe([topic])
    got: dict[int, list[bytes]] = {}
    poll_all([cons], lambda: len(got.get(0, [])) == 3, 30, "three records", sink=got)
    cons.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    cons.close()
    assert describe(cluster, group).group_state == "Empty"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.delete_topics([topic])[topic].result(30)
    R = consumer_group_describe.REQUEST

    def gone() -> bool:
        _, address = coordinator_of(cluster, group)
        g = send(address, ApiKey.CONSUMER_GROUP_DESCRIBE,
                 R.cls(group_ids=[group], include_authorized_operations=False), 1).groups[0]
        return g.error_code == ErrorCode.GROUP_ID_NOT_FOUND
    wait_until(gone, 30, "the empty group gone with its offsets")


def test_unsupported_assignor_is_refused(cluster: ProcCluster) -> None:
    errors: list[Any] = []
    cons = Consumer(conf(cluster, "kip848-bad-assignor",
                         **{"group.remote.assignor": "sticky",
                            "error_cb": errors.append}))
    try:
        cons.subscribe(["kip848-resume"])
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            m = cons.poll(0.2)
            if m is not None and m.error():
                errors.append(m.error())
        assert any("UNSUPPORTED_ASSIGNOR" in e.name() or "assignor" in e.str().lower()
                   for e in errors), errors
    finally:
        cons.close()


def run_tool(cluster: ProcCluster, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tools.consumer_groups", "--bootstrap-server",
         cluster.bootstrap_servers, *args],
        check=False, cwd=REPO, env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_and_list_groups_show_both_kinds(cluster: ProcCluster) -> None:
    topic = "kip848-cli"
    create_topic(cluster, topic, 2)
    produce(cluster, topic, 4, 2)
    new = Consumer(conf(cluster, "kip848-cli-new"))
    closed: list[Any] = []
    old = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "kip848-cli-old",
                    "auto.offset.reset": "earliest"})
    try:
        for cons in (new, old):
            cons.subscribe([topic])
        poll_all([new, old], lambda: len(parts(new)) == 2 and len(parts(old)) == 2, 40,
                 "both groups assigned")
        new.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        # ListGroups v5 with a types filter, on every broker.
        seen: dict[str, str] = {}
        for node in cluster.broker_ids:
            R = list_groups.REQUEST
            for kind in ("consumer", "classic"):
                r = send(cluster.nodes[node].bootstrap, ApiKey.LIST_GROUPS,
                         R.cls(states_filter=[], types_filter=[kind]), 5)
                assert r.error_code == 0
                for g in r.groups:
                    assert g.group_type == kind
                    seen[g.group_id] = kind
        assert seen["kip848-cli-new"] == "consumer" and seen["kip848-cli-old"] == "classic"

        listed = run_tool(cluster, "--list", "--type")
        rows = {line.split()[0]: line.split()[1] for line in listed.splitlines()[1:] if line}
        assert rows["kip848-cli-new"] == "Consumer" and rows["kip848-cli-old"] == "Classic"
        assert "kip848-cli-new" in run_tool(cluster, "--list").split()

        out = run_tool(cluster, "--describe", "--group", "kip848-cli-new")
        lines = [line.split() for line in out.splitlines() if line.startswith("kip848")]
        assert {(r[1], r[2]) for r in lines} == {(topic, "0"), (topic, "1")}
        p0 = next(r for r in lines if r[2] == "0")
        assert p0[3] == "1" and p0[4] == "2" and p0[5] == "1"   # committed, end, lag
        member_id = describe(cluster, "kip848-cli-new").members[0].member_id
        assert {r[6] for r in lines} == {member_id}
        state = run_tool(cluster, "--describe", "--group", "kip848-cli-new", "--state")
        assert "uniform" in state and "Stable" in state
        members = run_tool(cluster, "--describe", "--group", "kip848-cli-new", "--members")
        assert member_id in members
        out = run_tool(cluster, "--describe", "--group", "kip848-cli-old")
        assert sum(1 for line in out.splitlines() if line.startswith("kip848-cli-old")) == 2
        # DescribeGroups (v0-5) answers a consumer group as Kafka does: Dead, no error.
        DG = describe_groups.REQUEST
        node, address = coordinator_of(cluster, "kip848-cli-new")
        dg = send(address, ApiKey.DESCRIBE_GROUPS, DG.cls(
            groups=["kip848-cli-new"], include_authorized_operations=False), 5).groups[0]
        assert (dg.error_code, dg.group_state, dg.protocol_type, dg.members) == (
            0, "Dead", "", [])
        # confluent-kafka's admin client lists and describes it (ConsumerGroupDescribe).
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        listed_kinds = {g.group_id: g.type for g in
                        admin.list_consumer_groups().result(30).valid}
        assert listed_kinds["kip848-cli-new"] == ConsumerGroupType.CONSUMER
        assert listed_kinds["kip848-cli-old"] == ConsumerGroupType.CLASSIC
        desc = admin.describe_consumer_groups(["kip848-cli-new"])["kip848-cli-new"].result(30)
        assert desc.type == ConsumerGroupType.CONSUMER and desc.partition_assignor == "uniform"
        assert {(tp.topic, tp.partition) for tp in desc.members[0].assignment.topic_partitions} \
            == {(topic, 0), (topic, 1)}
        # So does the HTTP admin API.
        body = requests.get(cluster.nodes[node].admin_url + "/v1/consumer-groups/kip848-cli-new",
                            timeout=10).json()
        assert (body["state"], body["protocol_type"], body["protocol"]) == (
            "Stable", "consumer", "uniform")
        assert body["members"][0]["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
        # The coordinator's metrics count the consumer group by its state.
        text = requests.get(cluster.nodes[node].admin_url + "/metrics", timeout=10).text
        stable = [float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith('pykraft_consumer_groups{state="Stable"}')]
        listed = send(cluster.nodes[node].bootstrap, ApiKey.LIST_GROUPS, list_groups.REQUEST.cls(
            states_filter=["Stable"], types_filter=[]), 5).groups
        assert "kip848-cli-new" in {g.group_id for g in listed}
        assert stable == [len(listed)]

        # Once its member left, the consumer group (records and offsets) can be deleted.
        new.close()
        closed.append(new)
        wait_until(lambda: describe(cluster, "kip848-cli-new").group_state == "Empty", 20,
                   "the consumer group empty")
        assert "was successful" in run_tool(cluster, "--delete", "--group", "kip848-cli-new")
        R = consumer_group_describe.REQUEST
        _, address = coordinator_of(cluster, "kip848-cli-new")
        gone = send(address, ApiKey.CONSUMER_GROUP_DESCRIBE,
                    R.cls(group_ids=["kip848-cli-new"], include_authorized_operations=False), 1)
        assert gone.groups[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND
        assert "kip848-cli-new" not in run_tool(cluster, "--list").split()
    finally:
        if new not in closed:
            new.close()
        old.close()


def test_group_state_survives_kill_9_of_the_coordinator(cluster: ProcCluster) -> None:
    topic, group = "kip848-failover", "kip848-failover-group"
    create_topic(cluster, topic, 2, rf=3)
    cons = Consumer(conf(cluster, group))
    cons.subscribe([topic])
    coordinator, _ = coordinator_of(cluster, group)
    try:
        poll_all([cons], lambda: len(parts(cons)) == 2, 30, "the assignment")
        before = describe(cluster, group)
        assert before.group_state == "Stable"
        cluster.nodes[coordinator].kill()
        coordinator_of(cluster, group, not_node=coordinator)
        # The new coordinator loaded the group: the same member at the same epochs, and its
        # heartbeats go on (no rejoin, which would be a new group epoch).
        after = describe(cluster, group)
        assert (after.group_epoch, after.assignment_epoch) == (
            before.group_epoch, before.assignment_epoch)
        assert [m.member_id for m in after.members] == [m.member_id for m in before.members]
        deadline = time.monotonic() + 3 * HEARTBEAT_MS / 1000
        while time.monotonic() < deadline:
            cons.poll(0.1)
        again = describe(cluster, group)
        assert again.group_state == "Stable" and again.group_epoch == before.group_epoch
        assert len(parts(cons)) == 2
    finally:
        cons.close()
        cluster.start([coordinator])
