"""Consumer groups and committed offsets on real processes (1 controller + 3 brokers,
``__consumer_offsets`` with replication factor 3), with the real clients: kafka-python,
aiokafka and confluent-kafka (eager and cooperative-sticky assignors), and kcat -G.

Members split a topic's partitions; a member that leaves, or is killed -9, gives its
partitions to the others within the session timeout; a restarted consumer resumes from its
committed offset; two groups read one topic independently; a static member rejoins without a
rebalance; committed offsets and group state survive kill -9 of the coordinator broker.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.groups.records import partition_for
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import describe_groups, find_coordinator, offset_fetch
from tools.proc_cluster import REPO, ProcCluster, env

PARTITIONS = 4
SESSION_MS = 3000


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("groups"), controllers=1, brokers=3, extra={
        "offsets.topic.replication.factor": "3",
        "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
    })
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def create_topic(c: ProcCluster, name: str, partitions: int = PARTITIONS, rf: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    for f in admin.create_topics([NewTopic(name, partitions, rf)]).values():
        f.result(30)
    # Every broker must know the topic before clients look for its leaders.
    wait_until(lambda: len(admin.list_topics(name, timeout=10).topics[name].partitions)
               == partitions, 20, f"topic {name} in the metadata")


def produce(c: ProcCluster, topic: str, n: int, partitions: int = PARTITIONS) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": c.bootstrap_servers, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=f"{topic}-{i}".encode(), partition=i % partitions)
    assert p.flush(30) == 0


async def _committed(c: ProcCluster, group: str) -> tuple[int, dict[tuple[str, int], int]]:
    """(coordinator node id, committed offsets) through our own client."""
    client = await KafkaClient.bootstrap(c.bootstrap_servers.split(","), api_timeout_s=60)
    try:
        for _ in range(300):
            fc = await client.send_to_any(ApiKey.FIND_COORDINATOR,
                                          find_coordinator.REQUEST.cls(key=group), 3)
            if fc.error_code:
                await asyncio.sleep(0.2)
                continue
            try:
                await client.metadata([])
                resp = await client.send_to(
                    fc.node_id, ApiKey.OFFSET_FETCH,
                    offset_fetch.REQUEST.cls(group_id=group, topics=None), 7, timeout_s=2)
            except (KafkaConnectionError, KafkaTimeoutError):
                # A dead coordinator, until the cluster moves its partition: find it again.
                await asyncio.sleep(0.2)
                continue
            if resp.error_code:
                await asyncio.sleep(0.2)
                continue
            return fc.node_id, {(t.name, p.partition_index): p.committed_offset
                                for t in resp.topics for p in t.partitions}
        raise AssertionError(f"no coordinator answered for {group}")
    finally:
        await client.close()


def committed(c: ProcCluster, group: str) -> tuple[int, dict[tuple[str, int], int]]:
    return asyncio.run(_committed(c, group))


async def _described(c: ProcCluster, group: str) -> tuple[int, str, set[str]]:
    """(coordinator node id, state, member ids) through our own client."""
    client = await KafkaClient.bootstrap(c.bootstrap_servers.split(","), api_timeout_s=60)
    try:
        for _ in range(300):
            fc = await client.send_to_any(ApiKey.FIND_COORDINATOR,
                                          find_coordinator.REQUEST.cls(key=group), 3)
            if fc.error_code:
                await asyncio.sleep(0.2)
                continue
            try:
                await client.metadata([])
                resp = await client.send_to(
                    fc.node_id, ApiKey.DESCRIBE_GROUPS, describe_groups.REQUEST.cls(
                        groups=[group], include_authorized_operations=False), 3, timeout_s=2)
            except (KafkaConnectionError, KafkaTimeoutError):
                await asyncio.sleep(0.2)
                continue
            g = resp.groups[0]
            if g.error_code:
                await asyncio.sleep(0.2)
                continue
            return fc.node_id, g.group_state, {m.member_id for m in g.members}
        raise AssertionError(f"no coordinator answered for {group}")
    finally:
        await client.close()


def described(c: ProcCluster, group: str) -> tuple[int, str, set[str]]:
    return asyncio.run(_described(c, group))


# -- kafka-python -------------------------------------------------------------------------------


class PollingThread:
    """A kafka-python consumer polling in a thread; ``assigned`` mirrors its assignment.

    The consumer learns the topic's partitions before it subscribes. A kafka-python group
    leader that computes the assignment before its first metadata response for the topic
    arrives assigns nothing and rejoins once metadata shows the partitions; kafka-python
    3.0.12 can lose that rejoin: when its JoinGroup + SyncGroup outlast one ``poll()``
    timeout, the leader's new assignment snapshot makes the next poll find nothing to rejoin,
    so the completed join is never applied, heartbeats stay disabled and the coordinator
    expires the member (docs/clients.md). ``metadata_max_age_ms`` stays short for the same
    reason (with the default, 5 minutes, a lost refresh keeps the assignment empty).
    """

    def __init__(self, bootstrap: str, group: str, topic: str, **kw: Any) -> None:
        from kafka import KafkaConsumer
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500, metadata_max_age_ms=3000,
            **kw)
        wait_until(lambda: self.consumer.partitions_for_topic(topic), 20,
                   f"kafka-python metadata for {topic}")
        self.consumer.subscribe([topic])
        self.assigned: set[int] = set()
        self.values: list[bytes] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for records in self.consumer.poll(timeout_ms=100).values():
                    self.values += [r.value for r in records]
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
        except BaseException as e:  # shown by the test that waits on this consumer
            self.error = e
            raise

    def close(self) -> None:
        self._stop.set()
        self.thread.join(10)
        self.consumer.close()


def test_kafka_python_members_split_and_a_leaver_hands_over(cluster: ProcCluster) -> None:
    create_topic(cluster, "kp")
    produce(cluster, "kp", 40)
    a = PollingThread(cluster.bootstrap_servers, "kp-group", "kp")
    b = PollingThread(cluster.bootstrap_servers, "kp-group", "kp")
    try:
        try:
            wait_until(lambda: len(a.assigned) == 2 and len(b.assigned) == 2
                       and a.assigned | b.assigned == set(range(PARTITIONS)), 30,
                       "kafka-python members splitting the partitions")
        except AssertionError as e:
            raise AssertionError(f"{e}: a has {a.assigned} (error {a.error!r}), b has "
                                 f"{b.assigned} (error {b.error!r}); the coordinator "
                                 f"describes {described(cluster, 'kp-group')}") from None
        wait_until(lambda: len(a.values) + len(b.values) == 40, 20, "all records consumed")
        assert sorted(a.values + b.values) == sorted(f"kp-{i}".encode() for i in range(40))
        started = time.monotonic()
        b.close()  # LeaveGroup: no session timeout to wait for
        wait_until(lambda: a.assigned == set(range(PARTITIONS)), 15,
                   "the remaining member taking every partition")
        assert time.monotonic() - started < SESSION_MS / 1000 + 5
    finally:
        a.close()
        b.close()


# -- aiokafka -----------------------------------------------------------------------------------


def test_aiokafka_members_split_and_a_leaver_hands_over(cluster: ProcCluster) -> None:
    from aiokafka import AIOKafkaConsumer
    create_topic(cluster, "aio")
    produce(cluster, "aio", 20)

    async def run() -> None:
        def make() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                "aio", bootstrap_servers=cluster.bootstrap_servers, group_id="aio-group",
                auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
                heartbeat_interval_ms=500)
        a, b = make(), make()
        await a.start()
        await b.start()
        got: list[bytes] = []

        async def drain(cons: AIOKafkaConsumer, stop: asyncio.Event) -> None:
            while not stop.is_set():
                batch = await cons.getmany(timeout_ms=100)
                got.extend(r.value for rs in batch.values() for r in rs)

        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        ta = asyncio.create_task(drain(a, stop_a))
        tb = asyncio.create_task(drain(b, stop_b))
        try:
            deadline = time.monotonic() + 30
            while not (len(a.assignment()) == 2 and len(b.assignment()) == 2):
                assert time.monotonic() < deadline, (a.assignment(), b.assignment())
                await asyncio.sleep(0.1)
            assert {tp.partition for tp in a.assignment() | b.assignment()} == set(
                range(PARTITIONS))
            while len(got) < 20:
                assert time.monotonic() < deadline + 20, len(got)
                await asyncio.sleep(0.1)
            assert sorted(got) == sorted(f"aio-{i}".encode() for i in range(20))
            stop_b.set()
            await tb
            await b.stop()  # leaves the group
            deadline = time.monotonic() + 15
            while len(a.assignment()) != PARTITIONS:
                assert time.monotonic() < deadline, a.assignment()
                await asyncio.sleep(0.1)
        finally:
            stop_a.set()
            stop_b.set()
            await asyncio.gather(ta, tb, return_exceptions=True)
            await a.stop()
            await b.stop()

    asyncio.run(run())


# -- confluent-kafka ----------------------------------------------------------------------------

CHILD = """
import json, sys
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1])
c = Consumer(conf)
c.subscribe([sys.argv[2]], on_assign=lambda c, ps: print(
    json.dumps(sorted(p.partition for p in c.assignment())), flush=True))
while True:
    c.poll(0.1)
"""


def _confluent_conf(c: ProcCluster, group: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": c.bootstrap_servers, "group.id": group,
            "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": 500, **extra}


def _poll_until(consumer: Any, pred: Callable[[], bool], timeout: float, what: str,
                sink: list[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        m = consumer.poll(0.1)
        if m is not None and not m.error() and sink is not None:
            sink.append(m.value())


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_confluent_member_killed_hands_over_within_session_timeout(
        cluster: ProcCluster, strategy: str) -> None:
    from confluent_kafka import Consumer
    topic = f"ck-{strategy}"
    group = f"ck-group-{strategy}"
    create_topic(cluster, topic)
    conf = _confluent_conf(cluster, group, **{"partition.assignment.strategy": strategy})
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(conf), topic],
                             cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True)
    mine = Consumer(conf)
    try:
        mine.subscribe([topic])
        _poll_until(mine, lambda: len(mine.assignment()) == 2, 30, "a split of the partitions")
        time.sleep(1.0)  # stable: the child's own assignment is settled too
        assert len(mine.assignment()) == 2
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed_at = time.monotonic()
        _poll_until(mine, lambda: len(mine.assignment()) == PARTITIONS, SESSION_MS / 1000 + 10,
                    "the survivor taking the killed member's partitions")
        # Within the session timeout (+ a rebalance and generous slack for 2 shared cores).
        assert time.monotonic() - killed_at < SESSION_MS / 1000 + 8
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        mine.close()


def test_restart_resumes_from_commit_and_groups_are_independent(cluster: ProcCluster) -> None:
    from confluent_kafka import Consumer, TopicPartition
    create_topic(cluster, "resume", partitions=1)
    produce(cluster, "resume", 20, partitions=1)
    first = Consumer(_confluent_conf(cluster, "resume-a", **{"enable.auto.commit": False}))
    first.subscribe(["resume"])
    got: list[bytes] = []
    _poll_until(first, lambda: len(got) >= 10, 30, "ten records", got)
    # Commit exactly after the tenth record, with a metadata string, then go away.
    first.commit(offsets=[TopicPartition("resume", 0, 10, metadata="half-way")],
                 asynchronous=False)
    meta = first.committed([TopicPartition("resume", 0)], timeout=10)
    assert meta[0].offset == 10 and meta[0].metadata == "half-way"
    first.close()

    other = Consumer(_confluent_conf(cluster, "resume-b"))
    other.subscribe(["resume"])
    everything: list[bytes] = []
    _poll_until(other, lambda: len(everything) >= 20, 30, "group b reading all", everything)
    other.close()
    assert everything == [f"resume-{i}".encode() for i in range(20)]

    again = Consumer(_confluent_conf(cluster, "resume-a"))
    again.subscribe(["resume"])
    rest: list[bytes] = []
    _poll_until(again, lambda: len(rest) >= 10, 30, "the rest", rest)
    again.close()
    assert rest == [f"resume-{i}".encode() for i in range(10, 20)]
    _, offs = committed(cluster, "resume-b")
    assert offs == {("resume", 0): 20}


def test_static_member_rejoins_without_rebalance(cluster: ProcCluster) -> None:
    from confluent_kafka import Consumer
    create_topic(cluster, "static")
    events: list[str] = []

    def conf(instance: str) -> dict[str, Any]:
        return _confluent_conf(cluster, "static-group", **{
            "group.instance.id": instance, "session.timeout.ms": 10000})

    s1 = Consumer(conf("s1"))
    s1.subscribe(["static"], on_assign=lambda c, ps: events.append("assign"),
                 on_revoke=lambda c, ps: events.append("revoke"))
    s2 = Consumer(conf("s2"))
    s2.subscribe(["static"])
    s2_new = None
    try:
        deadline = time.monotonic() + 30
        while not (len(s1.assignment()) == 2 and len(s2.assignment()) == 2):
            assert time.monotonic() < deadline, (s1.assignment(), s2.assignment())
            s1.poll(0.05)
            s2.poll(0.05)
        before = sorted(p.partition for p in s2.assignment())
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            s1.poll(0.1)
        seen = list(events)
        s2.close()  # a static member does not send LeaveGroup
        s2_new = Consumer(conf("s2"))
        s2_new.subscribe(["static"])
        deadline = time.monotonic() + 20
        while len(s2_new.assignment()) != 2:
            assert time.monotonic() < deadline, s2_new.assignment()
            s2_new.poll(0.1)
            s1.poll(0.01)
        assert sorted(p.partition for p in s2_new.assignment()) == before
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            s1.poll(0.1)
            s2_new.poll(0.01)
        # The other static member never saw a revocation or a new assignment.
        assert events == seen
        assert len(s1.assignment()) == 2
    finally:
        s1.close()
        if s2_new is not None:
            s2_new.close()


# -- kcat -G ------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_balanced_consumer_commits(cluster: ProcCluster) -> None:
    create_topic(cluster, "kc", partitions=2)
    produce(cluster, "kc", 10, partitions=2)
    out = subprocess.run(
        ["kcat", "-b", cluster.bootstrap_servers, "-G", "kc-group", "-o", "beginning",
         "-c", "10", "-X", "session.timeout.ms=6000", "-q", "kc"],
        check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(f"kc-{i}" for i in range(10))
    _, offs = committed(cluster, "kc-group")
    assert offs == {("kc", 0): 5, ("kc", 1): 5}


# -- the wire, version by version ----------------------------------------------------------------


async def _wire_walk(c: ProcCluster) -> None:
    from broker.groups.records import ConsumerSubscription, encode_consumer_subscription
    from broker.protocol.errors import ErrorCode as E
    from broker.protocol.messages import (
        delete_groups,
        heartbeat,
        join_group,
        leave_group,
        list_groups,
        offset_commit,
        offset_delete,
        sync_group,
    )
    client = await KafkaClient.bootstrap(c.bootstrap_servers.split(","), api_timeout_s=30)
    try:
        await client.metadata([])
        # FindCoordinator v4: several keys at once.
        fc = await client.send_to_any(ApiKey.FIND_COORDINATOR, find_coordinator.REQUEST.cls(
            key_type=0, coordinator_keys=["w1", "w2", "w3"]), 4)
        assert [x.key for x in fc.coordinators] == ["w1", "w2", "w3"]
        assert all(x.error_code == 0 and x.node_id in client.cluster.brokers
                   for x in fc.coordinators)
        node = fc.coordinators[0].node_id
        other = next(b for b in client.cluster.brokers if b != node)
        J = join_group.REQUEST
        sub = encode_consumer_subscription(ConsumerSubscription(("wire",)))

        def join_req(member_id: str) -> Any:
            return J.cls(group_id="w1", session_timeout_ms=6000, rebalance_timeout_ms=6000,
                         member_id=member_id, group_instance_id=None, protocol_type="consumer",
                         protocols=[J.JoinGroupRequestProtocol(name="range", metadata=sub)])

        wrong = await client.send_to(other, ApiKey.JOIN_GROUP, join_req(""), 5)
        assert wrong.error_code == E.NOT_COORDINATOR
        first = await client.send_to(node, ApiKey.JOIN_GROUP, join_req(""), 5)
        assert first.error_code == E.MEMBER_ID_REQUIRED and first.member_id
        me = first.member_id
        joined = await client.send_to(node, ApiKey.JOIN_GROUP, join_req(me), 7)
        assert (joined.error_code, joined.leader, joined.protocol_type) == (0, me, "consumer")
        gen = joined.generation_id
        S = sync_group.REQUEST
        synced = await client.send_to(node, ApiKey.SYNC_GROUP, S.cls(
            group_id="w1", generation_id=gen, member_id=me, protocol_type="consumer",
            protocol_name="range",
            assignments=[S.SyncGroupRequestAssignment(member_id=me, assignment=b"mine")]), 5)
        assert (synced.error_code, synced.assignment) == (0, b"mine")
        hb = await client.send_to(node, ApiKey.HEARTBEAT, heartbeat.REQUEST.cls(
            group_id="w1", generation_id=gen, member_id=me), 4)
        assert hb.error_code == 0
        C = offset_commit.REQUEST
        commit = await client.send_to(node, ApiKey.OFFSET_COMMIT, C.cls(
            group_id="w1", generation_id_or_member_epoch=gen, member_id=me, topics=[
                C.OffsetCommitRequestTopic(name="wire", partitions=[
                    C.OffsetCommitRequestPartition(partition_index=0, committed_offset=3,
                                                   committed_leader_epoch=0,
                                                   committed_metadata="m")]),
                C.OffsetCommitRequestTopic(name="no-such-topic", partitions=[
                    C.OffsetCommitRequestPartition(partition_index=0, committed_offset=1,
                                                   committed_metadata=None)])]), 8)
        codes = {t.name: t.partitions[0].error_code for t in commit.topics}
        assert codes == {"wire": 0, "no-such-topic": E.UNKNOWN_TOPIC_OR_PARTITION}
        stale = await client.send_to(node, ApiKey.OFFSET_COMMIT, C.cls(
            group_id="w1", generation_id_or_member_epoch=gen + 5, member_id=me, topics=[
                C.OffsetCommitRequestTopic(name="wire", partitions=[
                    C.OffsetCommitRequestPartition(partition_index=0, committed_offset=9,
                                                   committed_metadata="")])]), 2)
        assert stale.topics[0].partitions[0].error_code == E.ILLEGAL_GENERATION
        # OffsetFetch v8: groups batched.
        F = offset_fetch.REQUEST
        fetched = await client.send_to(node, ApiKey.OFFSET_FETCH, F.cls(groups=[
            F.OffsetFetchRequestGroup(group_id="w1", topics=None)]), 8)
        g = fetched.groups[0]
        assert g.error_code == 0
        part = g.topics[0].partitions[0]
        assert (g.topics[0].name, part.committed_offset, part.committed_leader_epoch,
                part.metadata) == ("wire", 3, 0, "m")
        # OffsetDelete of a subscribed topic is refused while the group is active.
        D = offset_delete.REQUEST
        od = await client.send_to(node, ApiKey.OFFSET_DELETE, D.cls(group_id="w1", topics=[
            D.OffsetDeleteRequestTopic(name="wire", partitions=[
                D.OffsetDeleteRequestPartition(partition_index=0)])]), 0)
        assert od.topics[0].partitions[0].error_code == E.GROUP_SUBSCRIBED_TO_TOPIC
        busy = await client.send_to(node, ApiKey.DELETE_GROUPS,
                                    delete_groups.REQUEST.cls(groups_names=["w1"]), 2)
        assert busy.results[0].error_code == E.NON_EMPTY_GROUP
        listed = await client.send_to(node, ApiKey.LIST_GROUPS, list_groups.REQUEST.cls(
            states_filter=["stable"]), 4)
        assert [(x.group_id, x.group_state) for x in listed.groups
                if x.group_id == "w1"] == [("w1", "Stable")]
        # LeaveGroup v3: members batched.
        L = leave_group.REQUEST
        left = await client.send_to(node, ApiKey.LEAVE_GROUP, L.cls(group_id="w1", members=[
            L.MemberIdentity(member_id=me), L.MemberIdentity(member_id="ghost")]), 3)
        assert [(m.member_id, m.error_code) for m in left.members] == [
            (me, 0), ("ghost", E.UNKNOWN_MEMBER_ID)]
        desc = await client.send_to(node, ApiKey.DESCRIBE_GROUPS, describe_groups.REQUEST.cls(
            groups=["w1"], include_authorized_operations=False), 5)
        assert (desc.groups[0].group_state, desc.groups[0].members) == ("Empty", [])
        od = await client.send_to(node, ApiKey.OFFSET_DELETE, D.cls(group_id="w1", topics=[
            D.OffsetDeleteRequestTopic(name="wire", partitions=[
                D.OffsetDeleteRequestPartition(partition_index=0)])]), 0)
        assert (od.error_code, od.topics[0].partitions[0].error_code) == (0, 0)
        fetched = await client.send_to(node, ApiKey.OFFSET_FETCH, F.cls(
            group_id="w1", topics=[F.OffsetFetchRequestTopic(name="wire",
                                                             partition_indexes=[0])]), 1)
        assert fetched.topics[0].partitions[0].committed_offset == -1
        deleted = await client.send_to(node, ApiKey.DELETE_GROUPS,
                                       delete_groups.REQUEST.cls(groups_names=["w1"]), 2)
        assert deleted.results[0].error_code == 0
        again = await client.send_to(node, ApiKey.DELETE_GROUPS,
                                     delete_groups.REQUEST.cls(groups_names=["w1"]), 0)
        assert again.results[0].error_code == E.GROUP_ID_NOT_FOUND
    finally:
        await client.close()


def test_group_apis_on_the_wire(cluster: ProcCluster) -> None:
    create_topic(cluster, "wire", partitions=1)
    asyncio.run(_wire_walk(cluster))


# -- coordinator failover -----------------------------------------------------------------------


def test_commits_survive_kill_9_of_the_coordinator(cluster: ProcCluster) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    create_topic(cluster, "durable", partitions=2, rf=3)
    produce(cluster, "durable", 20, partitions=2)
    group = "durable-group"
    cons = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id=group,
                         enable_auto_commit=False)
    tps = [TopicPartition("durable", 0), TopicPartition("durable", 1)]
    cons.assign(tps)
    cons.commit({tps[0]: OffsetAndMetadata(7, "seven", -1),
                 tps[1]: OffsetAndMetadata(3, "", -1)})
    cons.close()
    coordinator, before = committed(cluster, group)
    assert before == {("durable", 0): 7, ("durable", 1): 3}

    # A live group on the same __consumer_offsets partition (so the same coordinator), with a
    # member that keeps polling in the background.
    live = next(f"live-{i}" for i in range(1000)
                if partition_for(f"live-{i}", 3) == partition_for(group, 3))
    from confluent_kafka import Consumer
    member = Consumer(_confluent_conf(cluster, live, **{"session.timeout.ms": 20000}))
    member.subscribe(["durable"])
    _poll_until(member, lambda: len(member.assignment()) == 2, 30, "the live member")
    stop = threading.Event()

    def keep_polling() -> None:
        while not stop.is_set():
            member.poll(0.1)

    poller = threading.Thread(target=keep_polling, daemon=True)
    poller.start()
    live_coordinator, state, members = described(cluster, live)
    assert live_coordinator == coordinator and state == "Stable" and len(members) == 1

    cluster.nodes[coordinator].kill()
    try:
        new_coordinator, after = committed(cluster, group)
        assert new_coordinator != coordinator
        assert after == before
        # The group's state moved too: still Stable, the same member (no rejoin with a new
        # member id), its heartbeats now accepted by the new coordinator.
        time.sleep(2)
        _, state_after, members_after = described(cluster, live)
        assert (state_after, members_after) == ("Stable", members)
        stop.set()
        poller.join(10)
        assert len(member.assignment()) == 2
        member.close()
        cluster.nodes[new_coordinator].wait_for("Loaded group coordinator state", timeout=5)

        # A consumer of the group resumes from the commits on the new coordinator, and its
        # own commits keep working there.
        resumed = KafkaConsumer("durable", bootstrap_servers=cluster.bootstrap_servers,
                                group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                                heartbeat_interval_ms=500, consumer_timeout_ms=15000)
        values = sorted(m.value for m in _take(resumed, 10))
        expected = sorted([f"durable-{i}".encode() for i in range(20) if i % 2 == 0][7:]
                          + [f"durable-{i}".encode() for i in range(20) if i % 2 == 1][3:])
        assert values == expected
        resumed.commit()
        assert resumed.committed(tps[0]) == 10 and resumed.committed(tps[1]) == 10
        resumed.close()
    finally:
        stop.set()
        cluster.start([coordinator])


def _take(consumer: Any, n: int) -> list[Any]:
    out = []
    for m in consumer:
        out.append(m)
        if len(out) == n:
            break
    assert len(out) == n, f"only {len(out)} of {n} records"
    return out


# -- offsets of deleted topics ---------------------------------------------------------------


def test_offsets_of_deleted_topics_are_removed(cluster: ProcCluster) -> None:
    """Deleting a topic removes its committed offsets from every group (Kafka's
    onPartitionsDeleted, with tombstones in __consumer_offsets); a group whose last offsets
    go, with no members, goes too."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
    create_topic(cluster, "gone-a", partitions=2)
    create_topic(cluster, "gone-b", partitions=1)
    cons = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "gone-group",
                     "enable.auto.commit": False})
    cons.commit(offsets=[TopicPartition("gone-a", 0, 3), TopicPartition("gone-a", 1, 4),
                         TopicPartition("gone-b", 0, 5)], asynchronous=False)
    cons.close()
    assert committed(cluster, "gone-group")[1] == {("gone-a", 0): 3, ("gone-a", 1): 4,
                                                   ("gone-b", 0): 5}
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.delete_topics(["gone-a"])["gone-a"].result(30)
    wait_until(lambda: committed(cluster, "gone-group")[1] == {("gone-b", 0): 5}, 20,
               "the deleted topic's offsets removed, the other topic's kept")
    assert described(cluster, "gone-group")[1] == "Empty"
    admin.delete_topics(["gone-b"])["gone-b"].result(30)
    wait_until(lambda: committed(cluster, "gone-group")[1] == {}, 20,
               "the last offsets removed")
    wait_until(lambda: described(cluster, "gone-group")[1] == "Dead", 20,
               "the group without offsets or members removed")


# -- offset retention (slow: offsets.retention.minutes is at least one minute) -------------------


@pytest.mark.slow
def test_offsets_of_an_empty_group_expire(tmp_path: Any, request: pytest.FixtureRequest
                                          ) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (about 80 s): run with -m slow")
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    c = ProcCluster(tmp_path, controllers=1, brokers=1, combined=True, extra={
        "offsets.topic.replication.factor": "1", "offsets.topic.num.partitions": "1",
        "offsets.retention.minutes": "1", "offsets.retention.check.interval.ms": "1000",
        "group.min.session.timeout.ms": "1000", "group.initial.rebalance.delay.ms": "0"})
    c.start()
    try:
        create_topic(c, "ret", partitions=1)
        create_topic(c, "ret-sub", partitions=1)
        for group in ("ret-group", "ret-active"):
            cons = KafkaConsumer(bootstrap_servers=c.bootstrap_servers, group_id=group,
                                 enable_auto_commit=False)
            cons.assign([TopicPartition("ret", 0)])
            cons.commit({TopicPartition("ret", 0): OffsetAndMetadata(0, "", -1)})
            cons.close()
        assert committed(c, "ret-group")[1] == {("ret", 0): 0}
        # "ret-active" stays Stable, subscribed to another topic: its offsets of "ret" expire
        # by commit time all the same (Kafka 2.1+), those of "ret-sub" stay.
        active = PollingThread(c.bootstrap_servers, "ret-active", "ret-sub")
        try:
            wait_until(lambda: active.assigned == {0}, 30, "the active member's assignment")
            c.nodes[1].wait_for("Expired 1 offset(s) of group ret-group", timeout=90)
            assert committed(c, "ret-group")[1] == {}
            c.nodes[1].wait_for("Expired 1 offset(s) of group ret-active", timeout=30)
            assert ("ret", 0) not in committed(c, "ret-active")[1]
            assert described(c, "ret-active")[1] == "Stable"
        finally:
            active.close()
        # The tombstones are in the log: a restart does not bring the offsets back.
        c.nodes[1].stop()
        c.start([1])
        assert committed(c, "ret-group")[1] == {}
    finally:
        c.shutdown()
