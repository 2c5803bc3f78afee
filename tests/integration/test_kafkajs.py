"""kafkajs, a pure JavaScript client with its own protocol code, on three nodes with replication
factor 3: it produces with every codec (acks -1 and 1, keys and headers) and idempotently, reads
back what it and confluent-kafka wrote, runs a two-member consumer group through a member
leaving, makes the admin calls it has, and keeps producing while a broker is killed. Everything
it reports is checked against what another client (confluent-kafka, kafka-python) or the wire
sees.

kafkajs runs in node (``tests/clients/kafkajs/driver.js``, one process per scenario, one JSON
line per observation); ``make system-deps`` installs node and the pinned packages with ``npm
ci``. Without them the tests skip and say why.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import fetch, metadata
from storage.records import decode_batch
from tests.helpers_kafkajs import (
    CLIENT_DIR,
    ENV,
    RUN_TIMEOUT_S,
    driver_command,
    run_driver,
    why_not_installed,
)
from tools.proc_cluster import STARTED, ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {name: i for i, name in enumerate(CODECS)}  # attribute bits 0-2 of a batch
N = 20  # records per (acks, codec) from kafkajs

_MISSING = why_not_installed()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("kafkajs"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2", "group.initial.rebalance.delay.ms": "0"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def run_kafkajs(c: ProcCluster, scenario: str, **spec: Any) -> list[dict[str, Any]]:
    return run_driver(c.bootstrap_servers, scenario, **spec)


def value_for(i: int, key: str) -> bytes:
    """The driver's valueFor: every byte value, then the key."""
    return bytes((i * 7 + j) % 256 for j in range(200 + i)) + key.encode()


def b64(data: str | None) -> bytes | None:
    return None if data is None else base64.b64decode(data)


def create_topics(c: ProcCluster, **partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
    futures = admin.create_topics([NewTopic(t, n, 3) for t, n in partitions.items()],
                                  operation_timeout=20)
    for f in futures.values():
        f.result(30)


def send(address: str, api_key: int, req: Any, version: int | None = None) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=20.0)
        finally:
            await conn.close()

    return asyncio.run(run())


def raw_batches(c: ProcCluster, topic: str, partition: int) -> list[tuple[Any, list[Any]]]:
    """Every batch of the partition as its leader stores it: (header, records)."""
    R = metadata.REQUEST
    md = send(c.nodes[1].bootstrap, ApiKey.METADATA,
              R.cls(topics=[R.MetadataRequestTopic(name=topic)]))
    leader = next(p.leader_id for p in md.topics[0].partitions
                  if p.partition_index == partition)
    F = fetch.REQUEST
    out: list[tuple[Any, list[Any]]] = []
    offset = 0
    while True:
        req = F.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 22,
                    isolation_level=0, session_id=0, session_epoch=-1, topics=[F.FetchTopic(
                        topic=topic, partitions=[F.FetchPartition(
                            partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                            log_start_offset=-1, partition_max_bytes=1 << 22)])],
                    forgotten_topics_data=[], rack_id="")
        # Fetch 12, the last that names topics (13+ name them by id only).
        p = send(c.nodes[leader].bootstrap, ApiKey.FETCH, req, 12).responses[0].partitions[0]
        assert p.error_code == 0, p
        data, pos = bytes(p.records or b""), 0
        while pos < len(data):
            header, records = decode_batch(data, pos)
            out.append((header, records))
            pos += header.size
            offset = header.next_offset
        if offset >= p.high_watermark or not data:
            return out


def consume_with_confluent(c: ProcCluster, topic: str, partitions: int,
                           count: int) -> list[Any]:
    consumer = ck.Consumer({"bootstrap.servers": c.bootstrap_servers, "group.id": "cross-check",
                            "enable.auto.commit": False})
    try:
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
                         for p in range(partitions)])
        got: list[Any] = []
        for _ in range(300):
            got += [m for m in consumer.consume(500, timeout=0.2) if m.error() is None]
            if len(got) >= count:
                return got
        raise AssertionError(f"confluent-kafka read {len(got)} of {count} from {topic}")
    finally:
        consumer.close()


def test_kafkajs_produces_every_codec_and_reads_back(cluster: ProcCluster) -> None:
    create_topics(cluster, **{"kjs-data": 3, "kjs-idem": 1, "kjs-from-confluent": 3})
    # confluent-kafka (librdkafka) writes every codec for kafkajs to decode.
    theirs = set()
    for codec in CODECS:
        producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                                "compression.type": codec, "linger.ms": 5})
        for i in range(10):
            key = f"confluent-{codec}-{i}"
            producer.produce("kjs-from-confluent", value_for(i, key), key.encode(),
                             headers=[("codec", codec.encode()), ("seq", str(i).encode())])
            theirs.add((key.encode(), value_for(i, key), (("codec", codec.encode()),
                                                          ("seq", str(i).encode()))))
        assert producer.flush(30) == 0

    events = run_kafkajs(cluster, "data", topic="kjs-data", idemTopic="kjs-idem",
                         groupId="kjs-data-reader", n=N,
                         expect={"kjs-data": 2 * len(CODECS) * N, "kjs-idem": 30,
                                 "kjs-from-confluent": len(theirs)})
    sent = [e for e in events if e["event"] == "sent"]
    assert [(e["acks"], e["codec"]) for e in sent] == [(a, c) for a in (-1, 1) for c in CODECS]
    assert all(r["errorCode"] == 0 for e in sent for r in e["results"])
    ours = {(key.encode(), value_for(i, key), (("codec", codec.encode()), ("seq", str(i).encode())))
            for acks in (-1, 1) for codec in CODECS for i in range(N)
            for key in [f"kafkajs-{acks}-{codec}-{i}"]}

    def read_by_kafkajs(topic: str) -> list[tuple[Any, ...]]:
        return [(b64(e["key"]), b64(e["value"]),
                 tuple((k, b64(v)) for k, v in e["headers"].items()))
                for e in events if e["event"] == "msg" and e["topic"] == topic]

    got = read_by_kafkajs("kjs-data")
    assert len(got) == len(ours) and set(got) == ours
    got = read_by_kafkajs("kjs-from-confluent")
    assert len(got) == len(theirs) and set(got) == theirs

    # The idempotent producer: one producer id, sequences 0, 10, 20, offsets in order.
    idem = [e["results"][0] for e in events if e["event"] == "sent-idempotent"]
    assert [(r["errorCode"], r["baseOffset"]) for r in idem] == [(0, "0"), (0, "10"), (0, "20")]
    assert [(m["offset"], b64(m["value"])) for m in events
            if m["event"] == "msg" and m["topic"] == "kjs-idem"] == \
        [(10 * b + i, f"v{b}-{i}".encode()) for b in range(3) for i in range(10)]
    batches = raw_batches(cluster, "kjs-idem", 0)
    assert [(h.base_sequence, h.record_count, h.compression) for h, _ in batches] == \
        [(0, 10, 0), (10, 10, CODEC_IDS["gzip"]), (20, 10, 0)]
    assert len({h.producer_id for h, _ in batches}) == 1 and batches[0][0].producer_id >= 0

    # The batches really are compressed with the codec their records name, and another client
    # (librdkafka's decoders) reads them back the same.
    seen_codecs = set()
    for partition in range(3):
        for header, records in raw_batches(cluster, "kjs-data", partition):
            named = {dict(r.headers)["codec"].decode() for r in records}
            assert named == {CODECS[header.compression]}, (header, named)
            seen_codecs.add(header.compression)
    assert seen_codecs == set(range(len(CODECS)))
    read = consume_with_confluent(cluster, "kjs-data", 3, len(ours))
    assert {(m.key(), m.value(), tuple(m.headers())) for m in read} == ours


def test_kafkajs_consumer_group_split_and_takeover(cluster: ProcCluster) -> None:
    topic, group = "kjs-group-topic", "kjs-group"
    create_topics(cluster, **{topic: 4})
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(40):
        producer.produce(topic, f"v{i}".encode(), f"k{i}".encode(), partition=i % 4)
    assert producer.flush(30) == 0

    events = run_kafkajs(cluster, "group", topic=topic, groupId=group, partitions=4,
                         initial=40, more=20)
    split = next(e for e in events if e["event"] == "split")
    assert len(split["c1"]) == len(split["c2"]) == 2
    assert sorted(split["c1"] + split["c2"]) == [0, 1, 2, 3]
    # DescribeGroups while both are in: a stable group, what each member subscribed to and got.
    described = next(e for e in events if e["event"] == "described")
    assert (described["state"], described["protocolType"], described["protocol"]) == \
        ("Stable", "consumer", "RoundRobinAssigner")
    assert len(described["members"]) == 2
    assert sorted(sorted(m["assignment"]["assignment"][topic])
                  for m in described["members"]) == sorted([split["c1"], split["c2"]])
    assert all(m["subscription"]["topics"] == [topic] and m["clientId"] == "pykraft-kafkajs"
               for m in described["members"])
    deleted = next(e for e in events if e["event"] == "delete-active-group")
    assert not deleted["ok"] and deleted["groups"] == [
        {"groupId": group, "errorCode": ErrorCode.NON_EMPTY_GROUP, "type": "NON_EMPTY_GROUP"}]
    assert sorted(next(e for e in events if e["event"] == "takeover")["c2"]) == [0, 1, 2, 3]
    read = {(e["partition"], e["offset"]) for e in events if e["event"] == "msg"}
    assert read == {(p, o) for p in range(4) for o in range(15)}
    assert [e for e in events if e["event"] == "msg" and e["consumer"] == "c1"]
    assert next(e for e in events if e["event"] == "done")["consumed"] == 60

    # The commits are the group's offsets for every other client.
    consumer = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
    try:
        committed = consumer.committed([ck.TopicPartition(topic, p) for p in range(4)],
                                       timeout=20)
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset, tp.error) for tp in committed] == \
        [(p, 15, None) for p in range(4)]
    kafka = pytest.importorskip("kafka")
    kp = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    try:
        assert [kp.committed(kafka.TopicPartition(topic, p)) for p in range(4)] == [15] * 4
    finally:
        kp.close()


def test_kafkajs_admin_calls(cluster: ProcCluster) -> None:
    topic, drop_topic, group, drop_group = "kjs-admin", "kjs-admin-drop", "kjs-admin-g", \
        "kjs-admin-drop-g"
    new_replicas = sorted(cluster.broker_ids, reverse=True)  # the new partition's, in order
    events = run_kafkajs(cluster, "admin", topic=topic, dropTopic=drop_topic, groupId=group,
                         dropGroup=drop_group, brokerId=cluster.broker_ids[0],
                         newReplicas=new_replicas)
    steps = {e["step"]: e for e in events if e["event"] == "admin"}
    failed = {"deleteTopicRecords-beyond", "deleteGroups-unknown"}
    for name, e in steps.items():
        assert e["ok"] == (name not in failed), e
    r = {name: e.get("result") for name, e in steps.items()}

    assert r["createTopics"] is True
    assert r["createTopics-validateOnly"] is True  # valid, and not created:
    assert f"{topic}-never" not in r["listTopics"] + r["listTopics-after"]
    assert r["createTopics-existing"] is False  # TOPIC_ALREADY_EXISTS, as kafkajs reads it
    assert {topic, drop_topic} <= set(r["listTopics"])
    parts = r["fetchTopicMetadata"]["topics"][0]["partitions"]
    assert sorted(p["partitionId"] for p in parts) == [0, 1, 2]
    assert all(p["partitionErrorCode"] == 0 and p["leader"] in cluster.broker_ids
               and sorted(p["replicas"]) == sorted(p["isr"]) == sorted(cluster.broker_ids)
               for p in parts)
    assert all(x["errorCode"] == 0 for x in r["produce"])
    by_partition = {x["partition"]: x for x in r["fetchTopicOffsets"]}
    assert {p: (x["low"], x["high"]) for p, x in by_partition.items()} == \
        {p: ("0", "10") for p in range(3)}
    assert {x["partition"]: x["offset"] for x in r["fetchTopicOffsetsByTimestamp"]} == \
        {p: "0" for p in range(3)}
    parts = {p["partitionId"]: p for p in r["fetchTopicMetadata-4"]["topics"][0]["partitions"]}
    assert sorted(parts) == [0, 1, 2, 3] and parts[3]["replicas"] == new_replicas

    def configs(result: Any) -> dict[str, Any]:
        (resource,) = result["resources"]
        assert resource["errorCode"] == 0, resource
        return {c["configName"]: c for c in resource["configEntries"]}

    before = configs(r["describeConfigs"])
    assert (before["retention.ms"]["configValue"], before["retention.ms"]["isDefault"]) == \
        ("3600000", False)
    assert (before["cleanup.policy"]["configValue"], before["cleanup.policy"]["isDefault"]) == \
        ("delete", True)
    assert r["alterConfigs"]["resources"][0]["errorCode"] == 0
    after = configs(r["describeConfigs-altered"])["retention.ms"]
    assert after["configValue"] == "7200000"
    assert after["configSynonyms"][0] == {"configName": "retention.ms",
                                          "configValue": "7200000", "configSource": 1}
    assert configs(r["describeConfigs-broker"])["num.partitions"]["configValue"] == "1"

    def committed(result: Any) -> dict[int, str]:
        return {p["partition"]: p["offset"] for p in result[0]["partitions"]}

    assert committed(r["fetchOffsets"]) == {0: "5", 1: "7", 2: "-1", 3: "-1"}
    assert committed(r["fetchOffsets-reset"]) == {p: "-2" for p in range(4)}  # "earliest"
    assert {group, drop_group} <= {g["groupId"] for g in r["listGroups"]["groups"]}
    described = {g["groupId"]: g for g in r["describeGroups"]["groups"]}
    assert (described[group]["errorCode"], described[group]["state"],
            described[group]["protocolType"]) == (0, "Empty", "consumer")
    assert (described["no-such-group"]["errorCode"], described["no-such-group"]["state"]) == \
        (0, "Dead")
    assert steps["deleteTopicRecords-beyond"]["partitions"] == [
        {"partition": 2, "errorCode": ErrorCode.OFFSET_OUT_OF_RANGE,
         "type": "OFFSET_OUT_OF_RANGE"}]
    assert {x["partition"]: (x["low"], x["high"]) for x in r["fetchTopicOffsets-deleted"]} == \
        {0: ("4", "10"), 1: ("10", "10"), 2: ("0", "10"), 3: ("0", "0")}
    assert r["deleteGroups"] == [{"groupId": drop_group, "errorCode": 0}]
    assert steps["deleteGroups-unknown"]["groups"] == [
        {"groupId": "no-such-group", "errorCode": ErrorCode.GROUP_ID_NOT_FOUND,
         "type": "GROUP_ID_NOT_FOUND"}]
    assert drop_group not in {g["groupId"] for g in r["listGroups-after"]["groups"]}
    cluster_info = r["describeCluster"]
    assert sorted(b["nodeId"] for b in cluster_info["brokers"]) == sorted(cluster.broker_ids)
    assert cluster_info["clusterId"] == cluster.cluster_id
    assert drop_topic not in r["listTopics-after"] and topic in r["listTopics-after"]

    # What kafkajs changed, as confluent-kafka sees it.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    md = admin.list_topics(timeout=20)
    assert drop_topic not in md.topics and len(md.topics[topic].partitions) == 4
    resource = ck.admin.ConfigResource(ck.admin.ConfigResource.Type.TOPIC, topic)
    described_configs = admin.describe_configs([resource])[resource].result(20)
    assert described_configs["retention.ms"].value == "7200000"
    groups = admin.list_consumer_groups().result(20)
    assert group in {g.group_id for g in groups.valid}
    assert drop_group not in {g.group_id for g in groups.valid}
    consumer = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
    try:
        offsets = consumer.committed([ck.TopicPartition(topic, p) for p in range(2)], timeout=20)
        assert [tp.offset for tp in offsets] == [5, 7]
        assert [consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=20)
                for p in range(2)] == [(4, 10), (10, 10)]
    finally:
        consumer.close()


def test_kafkajs_idempotent_producer_through_a_broker_kill(cluster: ProcCluster) -> None:
    """acks=-1 sends go on when a broker dies: to the partitions it led once a new leader is
    elected, to the others once the controller has fenced it and taken it out of their ISRs
    (broker.session.timeout.ms, 4 s here). A leader must not wait for the fenced broker to
    catch up for replica.lag.time.max.ms (30 s), the way Kafka's isReplicaIsrEligible rules it
    out. Idempotence keeps every partition's offsets gapless through kafkajs's retries."""
    topic = "kjs-failover"
    create_topics(cluster, **{topic: 3})
    leaders = {p.id: p.leader for p in AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
               .list_topics(topic, timeout=20).topics[topic].partitions.values()}
    victim = leaders[0]
    spec = {"scenario": "failover", "brokers": cluster.bootstrap_servers.split(","),
            "topic": topic, "partitions": 3, "after": 5}
    proc = subprocess.Popen(driver_command(spec), cwd=CLIENT_DIR, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"producing"' in line:
                break
        cluster.nodes[victim].kill()
        proc.stdin.write("killed\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cluster.nodes[victim].start()
    events = [json.loads(x) for x in lines + out.splitlines() if x.startswith("{")]
    assert proc.returncode == 0 and events[-1]["event"] == "end", f"{out[-3000:]}\n{err[-5000:]}"
    sent = [e for e in events if e["event"] == "sent"]
    assert all(e["errorCode"] == 0 for e in sent)
    assert sum(e["afterKill"] for e in sent) >= 15
    slowest = max(e["ms"] for e in sent)
    print(f"slowest acks=-1 send after broker {victim} was killed: {slowest} ms")
    assert slowest < 20000, f"an acks=-1 send took {slowest} ms after broker {victim} died"
    for p in range(3):
        offsets = [int(e["baseOffset"]) for e in sent if e["partition"] == p]
        assert offsets == list(range(len(offsets))), (p, offsets)
    cluster.nodes[victim].wait_for(STARTED)
