"""The newest versions current clients negotiate (docs/clients.md, "Versions each client
knows"): Fetch 13-17 by topic id, Produce 12, Metadata 13, ListOffsets 8-10, DescribeCluster 2,
ApiVersions 4 with features, and KIP-951 leader hints, through confluent-kafka (librdkafka
2.16, which fetches by topic id), kafka-python and aiokafka, and on the wire with the project's
own client. One cluster for the module: a controller and two brokers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    api_versions,
    create_topics,
    describe_cluster,
    fetch,
    list_offsets,
    metadata,
    produce,
)
from storage.records import SimpleRecord, build_batch, decode_batch
from tools.proc_cluster import REPO, ProcCluster

ck = pytest.importorskip("confluent_kafka")

TOPIC = "newest"
RECORDS = 40  # per partition
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("newest"), controllers=1, brokers=2)
    try:
        c.start()
        a, b = c.broker_ids
        R = create_topics.REQUEST
        req = R.cls(topics=[R.CreatableTopic(
            name=TOPIC, num_partitions=-1, replication_factor=-1, assignments=[
                R.CreatableReplicaAssignment(partition_index=0, broker_ids=[a]),
                R.CreatableReplicaAssignment(partition_index=1, broker_ids=[b])],
            configs=[])], timeout_ms=10000)
        assert send(c, a, ApiKey.CREATE_TOPICS, req).topics[0].error_code == 0
        wait_for_leaders(c, TOPIC, 2)
        p = ck.Producer({"bootstrap.servers": c.bootstrap_servers, "acks": "all",
                         "linger.ms": 5})
        for i in range(RECORDS):
            for part in (0, 1):
                p.produce(TOPIC, value=f"{part}-{i}".encode(), partition=part)
        assert p.flush(30) == 0
        yield c
    finally:
        c.shutdown()


async def _send(address: str, api_key: int, req: Any, version: int | None) -> Any:
    host, port = parse_address(address)
    conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
    try:
        return await conn.send(api_key, req, version, timeout_s=20.0)
    finally:
        await conn.close()


def send(c: ProcCluster, node: int, api_key: int, req: Any, version: int | None = None) -> Any:
    return asyncio.run(_send(c.nodes[node].bootstrap, api_key, req, version))


def topic_metadata(c: ProcCluster, topic: str, version: int = 13) -> Any:
    R = metadata.REQUEST
    resp = send(c, c.broker_ids[0], ApiKey.METADATA,
                R.cls(topics=[R.MetadataRequestTopic(name=topic)],
                      allow_auto_topic_creation=False), version)
    return resp


def wait_for_leaders(c: ProcCluster, topic: str, partitions: int) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        t = topic_metadata(c, topic).topics[0]
        if t.error_code == 0 and len(t.partitions) == partitions and all(
                p.error_code == 0 and p.leader_id >= 0 for p in t.partitions):
            return t
        assert time.monotonic() < deadline, t
        time.sleep(0.1)


def leaders(c: ProcCluster) -> tuple[uuid.UUID, dict[int, int]]:
    """The topic id and each partition's leader."""
    t = wait_for_leaders(c, TOPIC, 2)
    return t.topic_id, {p.partition_index: p.leader_id for p in t.partitions}


def fetch_request(topics: list[tuple[uuid.UUID, dict[int, int]]], *, session_id: int = 0,
                  epoch: int = -1,
                  forgotten: Sequence[tuple[uuid.UUID, list[int]]] = ()) -> Any:
    R = fetch.REQUEST
    return R.cls(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=session_id, session_epoch=epoch,
        topics=[R.FetchTopic(topic_id=tid, partitions=[
            R.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
            for p, o in parts.items()]) for tid, parts in topics],
        forgotten_topics_data=[R.ForgottenTopic(topic_id=tid, partitions=ps)
                               for tid, ps in forgotten],
        rack_id="")


def values(records: Any) -> list[bytes]:
    out: list[bytes] = []
    data = bytes(records or b"")
    pos = 0
    while pos < len(data):
        header, recs = decode_batch(data, pos)
        out += [r.value for r in recs]
        pos += header.size
    return out


# -- real clients ------------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_confluent_consumer_fetches_by_topic_id(cluster: ProcCluster) -> None:
    """librdkafka fetches by topic id once Metadata carries ids (its debug log names each
    request's version) and reads every record of both partitions, led by different brokers."""
    lines = _Lines()
    log = logging.getLogger("newest.librdkafka")
    log.setLevel(logging.DEBUG)
    log.addHandler(lines)
    cons = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "newest-ck",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False,
                        "debug": "protocol", "logger": log})
    got: list[bytes] = []
    try:
        cons.assign([ck.TopicPartition(TOPIC, p, ck.OFFSET_BEGINNING) for p in (0, 1)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < 2 * RECORDS and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        cons.close()
        log.removeHandler(lines)
    assert sorted(got) == sorted(f"{p}-{i}".encode() for p in (0, 1) for i in range(RECORDS))
    fetches = {int(v) for v in re.findall(r"Sent FetchRequest \(v(\d+)", "\n".join(lines.lines))}
    assert fetches and min(fetches) >= 13, fetches
    metadata_versions = {int(v) for v in re.findall(r"Sent MetadataRequest \(v(\d+)",
                                                    "\n".join(lines.lines))}
    assert metadata_versions == {13}, metadata_versions


def test_kafka_python_and_aiokafka_read_at_their_versions(cluster: ProcCluster) -> None:
    """kafka-python (Fetch 12 at most) and aiokafka (Fetch 11) keep reading by name."""
    kafka = pytest.importorskip("kafka")
    aiokafka = pytest.importorskip("aiokafka")
    want = sorted(f"{p}-{i}".encode() for p in (0, 1) for i in range(RECORDS))
    kc = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        kc.assign([kafka.TopicPartition(TOPIC, p) for p in (0, 1)])
        kc.seek_to_beginning()
        got: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < len(want) and time.monotonic() < deadline:
            for batch in kc.poll(timeout_ms=500).values():
                got += [m.value for m in batch]
    finally:
        kc.close()
    assert sorted(got) == want

    async def read_aiokafka() -> list[bytes]:
        ac = aiokafka.AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                       auto_offset_reset="earliest", enable_auto_commit=False)
        await ac.start()
        try:
            ac.assign([aiokafka.TopicPartition(TOPIC, p) for p in (0, 1)])
            await ac.seek_to_beginning()
            out: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(out) < len(want) and time.monotonic() < deadline:
                for batch in (await ac.getmany(timeout_ms=500)).values():
                    out += [m.value for m in batch]
            return out
        finally:
            await ac.stop()

    assert sorted(asyncio.run(read_aiokafka())) == want


def test_kafka_python_describes_features(cluster: ProcCluster) -> None:
    """ApiVersions v3+ carries metadata.version: supported by the broker and finalized for
    the cluster, with the metadata offset it was read at."""
    kafka = pytest.importorskip("kafka")
    admin = kafka.KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers,
                                   request_timeout_ms=10000)
    try:
        features = admin.describe_features()
    finally:
        admin.close()
    mv = features["metadata.version"]
    lo, hi = mv["supported"]
    level, level_max = mv["finalized"]
    assert 1 <= lo <= level == level_max <= hi
    assert mv["finalized_epoch"] is not None and mv["finalized_epoch"] >= 0


# -- the wire, with the project's client -------------------------------------------------------


def test_fetch_by_topic_id_and_unknown_ids(cluster: ProcCluster) -> None:
    tid, led = leaders(cluster)
    for v in (13, 14, 15, 16, 17):
        resp = send(cluster, led[0], ApiKey.FETCH, fetch_request([(tid, {0: 0})]), v)
        assert resp.error_code == 0
        [t] = resp.responses
        assert t.topic_id == tid
        [p] = t.partitions
        assert p.error_code == 0 and p.high_watermark == RECORDS
        assert values(p.records)[0] == b"0-0"
    # An id the cluster does not know: UNKNOWN_TOPIC_ID for each partition asked for.
    stray = uuid.uuid4()
    resp = send(cluster, led[0], ApiKey.FETCH, fetch_request([(stray, {0: 0, 3: 5})]), 17)
    [t] = resp.responses
    assert t.topic_id == stray
    assert [(p.partition_index, p.error_code) for p in t.partitions] == [
        (0, ErrorCode.UNKNOWN_TOPIC_ID), (3, ErrorCode.UNKNOWN_TOPIC_ID)]
    # Below v13 the same broker still fetches by name.
    R = fetch.REQUEST
    named = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                  isolation_level=0, session_id=0, session_epoch=-1,
                  topics=[R.FetchTopic(topic=TOPIC, partitions=[R.FetchPartition(
                      partition=0, fetch_offset=RECORDS - 1, partition_max_bytes=1 << 20)])],
                  forgotten_topics_data=[], rack_id="")
    p = send(cluster, led[0], ApiKey.FETCH, named, 12).responses[0].partitions[0]
    assert p.error_code == 0 and values(p.records)[-1] == f"0-{RECORDS - 1}".encode()


def test_fetch_session_by_topic_id_with_forgotten_topic(cluster: ProcCluster) -> None:
    """A session opened at v13+ keys partitions by id: an incremental request forgets one
    topic (by id) and the answers stop carrying it; a v12 request in the session is
    FETCH_SESSION_TOPIC_ID_ERROR."""
    tid, led = leaders(cluster)
    stray = uuid.uuid4()
    node = led[0]

    async def run() -> None:
        host, port = parse_address(cluster.nodes[node].bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            first = await conn.send(ApiKey.FETCH, fetch_request(
                [(tid, {0: RECORDS}), (stray, {0: 0})], epoch=0), 16)
            sid = first.session_id
            assert first.error_code == 0 and sid > 0
            assert {(t.topic_id, p.error_code) for t in first.responses
                    for p in t.partitions} == {(tid, 0), (stray, ErrorCode.UNKNOWN_TOPIC_ID)}
            # Incremental: nothing new on partition 0; the unknown id's error is answered.
            again = await conn.send(ApiKey.FETCH, fetch_request([], session_id=sid, epoch=1),
                                    16)
            assert again.error_code == 0 and again.session_id == sid
            assert [t.topic_id for t in again.responses] == [stray]
            # Forget the unknown topic by id and move partition 0 back one record: only it
            # answers, with the batch holding that record.
            moved = await conn.send(ApiKey.FETCH, fetch_request(
                [(tid, {0: RECORDS - 1})], session_id=sid, epoch=2,
                forgotten=[(stray, [0])]), 17)
            assert moved.error_code == 0
            assert [(t.topic_id, [p.partition_index for p in t.partitions])
                    for t in moved.responses] == [(tid, [0])]
            assert values(moved.responses[0].partitions[0].records)[-1] == \
                f"0-{RECORDS - 1}".encode()
            # Caught up (the partition named once more, then nothing): an empty answer.
            await conn.send(ApiKey.FETCH, fetch_request([(tid, {0: RECORDS})], session_id=sid,
                                                        epoch=3), 13)
            quiet = await conn.send(ApiKey.FETCH, fetch_request([], session_id=sid, epoch=4),
                                    13)
            assert quiet.error_code == 0 and quiet.responses == []
            # A name-keyed request cannot continue an id-keyed session.
            R = fetch.REQUEST
            by_name = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                            isolation_level=0, session_id=sid, session_epoch=5, topics=[],
                            forgotten_topics_data=[], rack_id="")
            bad = await conn.send(ApiKey.FETCH, by_name, 12)
            assert bad.error_code == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
        finally:
            await conn.close()

    asyncio.run(run())


def test_not_leader_answers_name_the_leader(cluster: ProcCluster) -> None:
    """KIP-951: Fetch v16+ and Produce v10+ sent to a broker that does not lead the partition
    carry the current leader and its endpoint; older Fetch versions do not (the fenced-epoch
    case is at the end of the module, after a leader restart)."""
    tid, led = leaders(cluster)
    wrong, right = led[1], led[0]  # partition 0 asked of partition 1's leader
    right_port = parse_address(cluster.nodes[right].bootstrap)[1]
    md = topic_metadata(cluster, TOPIC)
    epoch0 = next(p.leader_epoch for p in md.topics[0].partitions if p.partition_index == 0)
    resp = send(cluster, wrong, ApiKey.FETCH, fetch_request([(tid, {0: 0})]), 16)
    p = resp.responses[0].partitions[0]
    assert p.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (right, epoch0)
    assert [(e.node_id, e.port) for e in resp.node_endpoints] == [(right, right_port)]
    old = send(cluster, wrong, ApiKey.FETCH, fetch_request([(tid, {0: 0})]), 15)
    assert old.responses[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert old.responses[0].partitions[0].current_leader.leader_id == -1
    assert old.node_endpoints == []

    P = produce.REQUEST
    batch = build_batch([SimpleRecord(b"hint", key=None)])
    req = P.cls(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=TOPIC, partition_data=[P.PartitionProduceData(index=0, records=batch)])])
    for v in (10, 11, 12):
        resp = send(cluster, wrong, ApiKey.PRODUCE, req, v)
        pr = resp.responses[0].partition_responses[0]
        assert pr.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (pr.current_leader.leader_id, pr.current_leader.leader_epoch) == (right, epoch0)
        assert [(e.node_id, e.port) for e in resp.node_endpoints] == [(right, right_port)]
    ok = send(cluster, right, ApiKey.PRODUCE, req, 12).responses[0].partition_responses[0]
    assert ok.error_code == 0 and ok.base_offset >= RECORDS


def test_metadata_13_and_list_offsets_8_to_10(cluster: ProcCluster) -> None:
    md = topic_metadata(cluster, TOPIC, 13)
    assert md.error_code == 0 and md.topics[0].topic_id != uuid.UUID(int=0)
    _, led = leaders(cluster)
    R = list_offsets.REQUEST

    def offset_of(ts: int, v: int) -> Any:
        req = R.cls(replica_id=-1, isolation_level=0, timeout_ms=1000, topics=[
            R.ListOffsetsTopic(name=TOPIC, partitions=[R.ListOffsetsPartition(
                partition_index=1, timestamp=ts)])])
        return send(cluster, led[1], ApiKey.LIST_OFFSETS, req, v).topics[0].partitions[0]

    for v in (8, 9, 10):
        p = offset_of(-4, v)  # earliest local: the log start, nothing being tiered
        assert (p.error_code, p.offset) == (0, 0)
        assert offset_of(-1, v).offset == RECORDS
    p = offset_of(-5, 9)  # latest tiered: nothing is tiered (KIP-1005)
    assert (p.error_code, p.offset, p.leader_epoch) == (0, -1, -1)
    assert offset_of(-4, 7).error_code == ErrorCode.UNSUPPORTED_VERSION
    assert offset_of(-5, 8).error_code == ErrorCode.UNSUPPORTED_VERSION


def _readme_api_table() -> dict[int, tuple[str, str]]:
    """The README's "Kafka APIs served" table: key -> (broker listener, controller listener)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Kafka APIs served", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| \w+ \| ([-\d]+) \| ([-\d]+) \|$", section, re.MULTILINE)
    return {int(k): (b, c) for k, b, c in rows}


def _announced(address: str) -> dict[int, str]:
    R = api_versions.REQUEST
    resp = asyncio.run(_send(address, ApiKey.API_VERSIONS,
                             R.cls(client_software_name="t", client_software_version="1"), 3))
    return {k.api_key: f"{k.min_version}-{k.max_version}" for k in resp.api_keys}


def test_readme_api_table_is_what_api_versions_announces(cluster: ProcCluster) -> None:
    table = _readme_api_table()
    assert len(table) > 40
    broker = _announced(cluster.nodes[cluster.broker_ids[0]].bootstrap)
    controller = _announced(cluster.nodes[cluster.controller_ids[0]].controller_address)
    assert {k: b for k, (b, _) in table.items() if b != "-"} == broker
    assert {k: c for k, (_, c) in table.items() if c != "-"} == controller


def test_api_versions_4_features_and_describe_cluster_2(cluster: ProcCluster) -> None:
    a, b = cluster.broker_ids
    R = api_versions.REQUEST
    resp = send(cluster, a, ApiKey.API_VERSIONS,
                R.cls(client_software_name="t", client_software_version="1"), 4)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert ranges[ApiKey.FETCH] == (4, 17) and ranges[ApiKey.PRODUCE] == (0, 12)
    assert ranges[ApiKey.METADATA] == (0, 13) and ranges[ApiKey.LIST_OFFSETS] == (0, 10)
    assert ranges[ApiKey.API_VERSIONS] == (0, 4) and ranges[ApiKey.DESCRIBE_CLUSTER] == (0, 2)
    supported = {f.name: (f.min_version, f.max_version) for f in resp.supported_features}
    finalized = {f.name: (f.min_version_level, f.max_version_level)
                 for f in resp.finalized_features}
    assert supported == {"metadata.version": (4, 25), "kraft.version": (0, 1)}
    lo, hi = finalized["metadata.version"]
    assert 4 <= lo == hi <= 25
    assert finalized["kraft.version"] == (0, 0)  # a static quorum (controller.quorum.voters)
    assert resp.finalized_features_epoch >= 0
    # DescribeCluster v2: fenced brokers only when asked for, and marked. Stop broker b (a
    # clean shutdown fences it) and wait until the controller has.
    D = describe_cluster.REQUEST
    both = send(cluster, a, ApiKey.DESCRIBE_CLUSTER, D.cls(include_fenced_brokers=True), 2)
    assert [(x.broker_id, x.is_fenced) for x in both.brokers] == [(a, False), (b, False)]
    cluster.nodes[b].stop()
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        seen = send(cluster, a, ApiKey.DESCRIBE_CLUSTER, D.cls(include_fenced_brokers=True), 2)
        if [(x.broker_id, x.is_fenced) for x in seen.brokers] == [(a, False), (b, True)]:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)
    live = send(cluster, a, ApiKey.DESCRIBE_CLUSTER, D.cls(include_fenced_brokers=False), 2)
    assert [x.broker_id for x in live.brokers] == [a] and live.controller_id == a

    # Back again, b leads its partition at a new leader epoch: a fetcher still at an older
    # epoch is FENCED_LEADER_EPOCH, told the current leader and epoch (KIP-951).
    cluster.start([b])
    tid, led = leaders(cluster)
    md = topic_metadata(cluster, TOPIC)
    epoch1 = next(p.leader_epoch for p in md.topics[0].partitions if p.partition_index == 1)
    assert led[1] == b and epoch1 > 0
    stale = fetch_request([(tid, {1: 0})])
    stale.topics[0].partitions[0].current_leader_epoch = epoch1 - 1
    resp = send(cluster, b, ApiKey.FETCH, stale, 17)
    p = resp.responses[0].partitions[0]
    assert p.error_code == ErrorCode.FENCED_LEADER_EPOCH
    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (b, epoch1)
    assert [e.node_id for e in resp.node_endpoints] == [b]
