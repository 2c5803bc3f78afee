"""The broker data path on real processes: real clients (kafka-python, aiokafka,
confluent-kafka, kcat) produce with acks 0/1/all and every compression codec, then consume the
records back byte for byte, on one node (combined broker+controller) and on three nodes with
replication factor 3 (min.insync.replicas=2); and, on one node, the per-partition errors and
offsets Produce, Fetch, ListOffsets and OffsetForLeaderEpoch answer, on the wire.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import encode_request
from broker.protocol.messages import (
    api_versions,
    create_topics,
    fetch,
    list_offsets,
    metadata,
    offset_for_leader_epoch,
    produce,
)
from storage.compression import CompressionType
from storage.records import SimpleRecord, build_batch, decode_batch
from tools.proc_cluster import ProcCluster

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = [0, 1, -1]
N = 20  # records per (acks, codec) combination


def _messages(client: str) -> list[tuple[bytes, bytes]]:
    """Deterministic records, with binary values (every byte value) to catch mangling."""
    out = []
    for acks in ACKS:
        for codec in CODECS:
            for i in range(N):
                key = f"{client}-{acks}-{codec}-{i}".encode()
                value = bytes((i * 7 + j) % 256 for j in range(200 + i)) + key
                out.append((key, value))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("data-path"), controllers=1, brokers=1,
                    combined=True)
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


async def _send(address: str, api_key: int, req: Any, version: int | None = None,
                timeout_s: float = 15.0) -> Any:
    host, port = parse_address(address)
    conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
    try:
        return await conn.send(api_key, req, version, timeout_s=timeout_s)
    finally:
        await conn.close()


def send(address: str, api_key: int, req: Any, version: int | None = None) -> Any:
    return asyncio.run(_send(address, api_key, req, version))


@pytest.fixture(scope="module")
def rf3_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("data-path-rf3"), controllers=3, combined=True,
                    extra={"min.insync.replicas": "2"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(params=["1-node", "3-nodes-rf3"])
def client_cluster(request: pytest.FixtureRequest) -> ProcCluster:
    """The real-client tests run on both clusters; topics get RF = the number of brokers."""
    name = "cluster" if request.param == "1-node" else "rf3_cluster"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def create_topic(c: ProcCluster, name: str, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    rf = len(c.broker_ids)
    R = create_topics.REQUEST
    req = R.cls(topics=[R.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=rf, assignments=[],
        configs=[R.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])],
        timeout_ms=10000)
    resp = send(c.nodes[c.broker_ids[0]].bootstrap, ApiKey.CREATE_TOPICS, req)  # forwarded
    assert resp.topics[0].error_code == 0, resp
    if rf == 1:
        wait_leader(c, name, partitions)
    else:
        wait_in_sync(c, name, partitions, rf)


def wait_in_sync(c: ProcCluster, name: str, partitions: int, rf: int,
                 timeout: float = 20.0) -> None:
    """Until every broker's Metadata shows a leader and a full ISR for every partition."""
    deadline = time.monotonic() + timeout
    R = metadata.REQUEST
    while True:
        ready = True
        for b in c.broker_ids:
            md = send(c.nodes[b].bootstrap, ApiKey.METADATA,
                      R.cls(topics=[R.MetadataRequestTopic(name=name)]))
            t = md.topics[0]
            ready = ready and t.error_code == 0 and len(t.partitions) == partitions and all(
                p.leader_id >= 0 and len(p.isr_nodes) == rf for p in t.partitions)
        if ready:
            return
        assert time.monotonic() < deadline, f"{name}: not all partitions led and in sync"
        time.sleep(0.1)


def wait_leader(c: ProcCluster, name: str, partitions: int, timeout: float = 15.0) -> None:
    """Until the broker answers ListOffsets as leader for every partition."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [p.error_code for p in list_offsets_of(c, name, range(partitions), -1)]
        if all(code == 0 for code in codes):
            return
        assert time.monotonic() < deadline, f"{name}: no leader ({codes})"
        time.sleep(0.05)


def list_offsets_of(c: ProcCluster, topic: str, partitions: Any, timestamp: int,
                    version: int | None = None) -> list[Any]:
    R = list_offsets.REQUEST
    req = R.cls(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(
        name=topic, partitions=[R.ListOffsetsPartition(partition_index=p, timestamp=timestamp)
                                for p in partitions])])
    return send(c.nodes[1].bootstrap, ApiKey.LIST_OFFSETS, req, version).topics[0].partitions


def produce_raw(c: ProcCluster, topic: str, partition: int, records: bytes, acks: int = -1,
                version: int | None = None) -> Any:
    R = produce.REQUEST
    req = R.cls(acks=acks, timeout_ms=5000, topic_data=[R.TopicProduceData(
        name=topic, partition_data=[R.PartitionProduceData(index=partition, records=records)])])
    return send(c.nodes[1].bootstrap, ApiKey.PRODUCE, req, version).responses[0] \
        .partition_responses[0]


def fetch_raw(c: ProcCluster, topic: str, partition: int, offset: int, *,
              max_wait_ms: int = 0, epoch: int = -1, version: int = 12) -> Any:
    """A Fetch by topic name (v12 at most: v13+ names topics by id)."""
    R = fetch.REQUEST
    req = R.cls(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1, topics=[R.FetchTopic(
                    topic=topic, partitions=[R.FetchPartition(
                        partition=partition, current_leader_epoch=epoch, fetch_offset=offset,
                        log_start_offset=-1, partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id="")
    return send(c.nodes[1].bootstrap, ApiKey.FETCH, req, version).responses[0].partitions[0]


# -- real clients ---------------------------------------------------------------------------


def test_kafka_python(client_cluster: ProcCluster) -> None:
    cluster = client_cluster
    kafka = pytest.importorskip("kafka")
    create_topic(cluster, "kp")
    sent = _messages("kp")
    it = iter(sent)
    for acks in ACKS:
        for codec in CODECS:
            p = kafka.KafkaProducer(
                bootstrap_servers=cluster.bootstrap_servers, acks={-1: "all"}.get(acks, acks),
                compression_type=None if codec == "none" else codec,
                enable_idempotence=False, linger_ms=5)
            for _ in range(N):
                k, v = next(it)
                p.send("kp", key=k, value=v, partition=0)
            p.flush(timeout=20)
            p.close(timeout=10)
    consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                   enable_auto_commit=False, group_id=None,
                                   auto_offset_reset="earliest", consumer_timeout_ms=5000)
    tp = kafka.TopicPartition("kp", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            got.extend((r.key, r.value) for r in records)
    consumer.close()
    assert got == sent


def test_aiokafka(client_cluster: ProcCluster) -> None:
    cluster = client_cluster
    aiokafka = pytest.importorskip("aiokafka")
    create_topic(cluster, "aio")
    sent = _messages("aio")

    async def run() -> list[tuple[bytes, bytes]]:
        it = iter(sent)
        for acks in ACKS:
            for codec in CODECS:
                p = aiokafka.AIOKafkaProducer(
                    bootstrap_servers=cluster.bootstrap_servers,
                    acks={-1: "all"}.get(acks, acks),
                    compression_type=None if codec == "none" else codec, linger_ms=5)
                await p.start()
                try:
                    futs = [await p.send("aio", key=k, value=v, partition=0)
                            for k, v in (next(it) for _ in range(N))]
                    await asyncio.gather(*futs)
                finally:
                    await p.stop()
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                             enable_auto_commit=False,
                                             auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            tp = aiokafka.TopicPartition("aio", 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            async with asyncio.timeout(30):
                while len(got) < len(sent):
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        got.extend((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == sent


def test_confluent_kafka(client_cluster: ProcCluster) -> None:
    cluster = client_cluster
    ck = pytest.importorskip("confluent_kafka")
    create_topic(cluster, "ck")
    sent = _messages("ck")
    it = iter(sent)
    errors: list[Any] = []
    for acks in ACKS:
        for codec in CODECS:
            p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                             "acks": str(acks), "compression.type": codec,
                             "linger.ms": 5})
            for _ in range(N):
                k, v = next(it)
                p.produce("ck", key=k, value=v, partition=0,
                          on_delivery=lambda err, msg: err and errors.append(err))
            assert p.flush(20) == 0
            assert not errors
    consumer = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                            "group.id": "unused", "enable.auto.commit": False,
                            "auto.offset.reset": "earliest"})
    consumer.assign([ck.TopicPartition("ck", 0, ck.OFFSET_BEGINNING)])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=500, timeout=1.0):
            assert m.error() is None, m.error()
            got.append((m.key(), m.value()))
    consumer.close()
    assert got == sent


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat(client_cluster: ProcCluster) -> None:
    cluster = client_cluster
    create_topic(cluster, "kc")
    bs = cluster.bootstrap_servers
    lines: list[bytes] = []
    for acks in ACKS:
        for codec in CODECS:
            batch = [f"kc-{acks}-{codec}-{i}-{'x' * i}".encode() for i in range(N)]
            out = subprocess.run(["kcat", "-b", bs, "-P", "-t", "kc", "-p", "0", "-z", codec,
                                  "-X", f"acks={acks}"], input=b"\n".join(batch) + b"\n",
                                 capture_output=True, timeout=30, check=False)
            assert out.returncode == 0, out.stderr
            lines.extend(batch)
    out = subprocess.run(["kcat", "-b", bs, "-C", "-t", "kc", "-p", "0", "-o", "beginning",
                          "-e", "-c", str(len(lines))], capture_output=True, timeout=30,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(b"\n")[:-1] == lines


# -- the protocol, partition by partition -----------------------------------------------------


def _batch(*values: bytes, codec: int = CompressionType.NONE) -> bytes:
    return build_batch([SimpleRecord(v, key=None) for v in values], compression=codec)


def test_produce_errors_and_offsets(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "raw", partitions=2)
    # Offsets are assigned by the leader; the response carries base offset and log start.
    r = produce_raw(c, "raw", 0, _batch(b"a", b"b") + _batch(b"c"))
    assert (r.error_code, r.base_offset, r.log_start_offset) == (0, 0, 0)
    r = produce_raw(c, "raw", 0, _batch(b"d"), acks=1)
    assert (r.error_code, r.base_offset) == (0, 3)
    # Unknown topic and partition.
    assert produce_raw(c, "nope", 0, _batch(b"x")).error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert produce_raw(c, "raw", 7, _batch(b"x")).error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # A flipped bit inside the CRC-covered part: CORRUPT_MESSAGE, nothing appended.
    bad = bytearray(_batch(b"payload"))
    bad[-1] ^= 0xFF
    assert produce_raw(c, "raw", 0, bytes(bad)).error_code == ErrorCode.CORRUPT_MESSAGE
    # A count that does not match the offset range: INVALID_RECORD.
    b = bytearray(_batch(b"p", b"q"))
    b[57:61] = (5).to_bytes(4, "big")  # record count
    crc = _crc32c(bytes(b[21:]))
    b[17:21] = crc.to_bytes(4, "big")
    assert produce_raw(c, "raw", 0, bytes(b)).error_code == ErrorCode.INVALID_RECORD
    # Larger than max.message.bytes.
    create_topic(c, "small", configs={"max.message.bytes": "1000"})
    big = _batch(bytes(range(256)) * 8)
    assert produce_raw(c, "small", 0, big).error_code == ErrorCode.MESSAGE_TOO_LARGE
    # acks=all on a partition whose ISR (1) is below min.insync.replicas (2); acks=1 works.
    create_topic(c, "strict", configs={"min.insync.replicas": "2"})
    assert produce_raw(c, "strict", 0, _batch(b"x")).error_code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert produce_raw(c, "strict", 0, _batch(b"x"), acks=1).error_code == 0
    # The log holds exactly what was acknowledged, byte for byte (offsets rewritten).
    f = fetch_raw(c, "raw", 0, 0)
    assert f.error_code == 0 and f.high_watermark == 4 and f.last_stable_offset == 4
    values = []
    data = bytes(f.records)
    pos = 0
    while pos < len(data):
        header, records = decode_batch(data, pos)
        values += [(r.offset, r.value) for r in records]
        pos += header.size
    assert values == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]


def _produce_frame(topic: str, records: bytes, acks: int, correlation_id: int) -> bytes:
    R = produce.REQUEST
    req = R.cls(acks=acks, timeout_ms=0, topic_data=[R.TopicProduceData(
        name=topic, partition_data=[R.PartitionProduceData(index=0, records=records)])])
    return encode_request(R, req, 11, correlation_id, "acks0-test", 2)


def _api_versions_frame(correlation_id: int) -> bytes:
    return encode_request(api_versions.REQUEST, api_versions.REQUEST.cls(), 0, correlation_id,
                          "acks0-test", 1)


def _read_all(s: socket.socket) -> bytes:
    """What the broker sends until it closes the connection, or 3 s of silence."""
    data = bytearray()
    s.settimeout(3.0)
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return bytes(data)


def test_failed_produce_with_acks_0_closes_the_connection(cluster: ProcCluster) -> None:
    """Produce with acks=0 gets no response; when it fails, the broker closes the connection
    (Kafka's KafkaApis.handleProduceRequest), the producer's only way to learn of the error,
    and the requests pipelined after it are not answered. The failing batch is the one Tansu's
    ``perf`` tool sends: lastOffsetDelta equal to the record count (one too many)."""
    c = cluster
    create_topic(c, "acks0")
    host, port = parse_address(c.nodes[1].bootstrap)
    bad = bytearray(_batch(b"v"))
    bad[23:27] = (1).to_bytes(4, "big")  # lastOffsetDelta 1 for 1 record: INVALID_RECORD
    bad[17:21] = _crc32c(bytes(bad[21:])).to_bytes(4, "big")
    with socket.create_connection((host, port), timeout=5.0) as s:
        s.sendall(_api_versions_frame(1) + _produce_frame("acks0", bytes(bad), 0, 2)
                  + _api_versions_frame(3))
        data = _read_all(s)
    (size,) = struct.unpack_from(">i", data)
    assert len(data) == 4 + size, "only the first ApiVersions is answered, then EOF"
    assert struct.unpack_from(">i", data, 4)[0] == 1
    # A valid batch with acks=0: no response, the connection stays open and serves on.
    with socket.create_connection((host, port), timeout=5.0) as s:
        s.sendall(_produce_frame("acks0", _batch(b"ok"), 0, 1) + _api_versions_frame(2))
        (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        frame = s.recv(size, socket.MSG_WAITALL)
        assert struct.unpack_from(">i", frame)[0] == 2
    # Only the valid record was appended.
    assert produce_raw(c, "acks0", 0, _batch(b"next"), acks=1).base_offset == 1


def _crc32c(data: bytes) -> int:
    from storage.record_batch import crc32c
    return crc32c(data)


def test_fetch_list_offsets_and_epochs(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "offs")
    t0 = int(time.time() * 1000)
    for i in range(5):
        r = produce_raw(c, "offs", 0, build_batch([SimpleRecord(b"v%d" % i)],
                                                  base_timestamp=t0 + i * 1000))
        assert r.error_code == 0
    # ListOffsets: earliest, latest (= HW), by timestamp, max timestamp; v0 old style.
    assert [p.offset for p in list_offsets_of(c, "offs", [0], -2)] == [0]
    assert [p.offset for p in list_offsets_of(c, "offs", [0], -1)] == [5]
    hit = list_offsets_of(c, "offs", [0], t0 + 2500)[0]
    assert (hit.offset, hit.timestamp) == (3, t0 + 3000)
    assert list_offsets_of(c, "offs", [0], t0 + 99_000)[0].offset == -1
    mx = list_offsets_of(c, "offs", [0], -3, version=7)[0]
    assert (mx.offset, mx.timestamp) == (4, t0 + 4000)
    assert list_offsets_of(c, "offs", [0], -1, version=0)[0].old_style_offsets == [5]
    assert list_offsets_of(c, "nope", [0], -1)[0].error_code == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    # Fetch: out of range; leader epoch checks; every version from 4 to 12.
    assert fetch_raw(c, "offs", 0, 6).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert fetch_raw(c, "offs", 0, 0, epoch=5).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    for v in range(4, 13):
        f = fetch_raw(c, "offs", 0, 2, version=v)
        assert f.error_code == 0 and f.high_watermark == 5
        assert decode_batch(bytes(f.records))[1][0].value == b"v2"

    # Long poll: an empty fetch waits max_wait_ms; a produce wakes it early.
    started = time.monotonic()
    f = fetch_raw(c, "offs", 0, 5, max_wait_ms=400)
    waited = time.monotonic() - started
    assert f.error_code == 0 and len(f.records or b"") == 0 and waited >= 0.35

    async def poll_and_produce() -> tuple[Any, float]:
        R = fetch.REQUEST
        req = R.cls(replica_id=-1, max_wait_ms=10_000, min_bytes=1, max_bytes=1 << 20,
                    isolation_level=0, session_id=0, session_epoch=-1, topics=[R.FetchTopic(
                        topic="offs", partitions=[R.FetchPartition(
                            partition=0, fetch_offset=5, partition_max_bytes=1 << 20)])],
                    forgotten_topics_data=[], rack_id="")
        t = time.monotonic()
        task = asyncio.create_task(_send(c.nodes[1].bootstrap, ApiKey.FETCH, req, 12))
        await asyncio.sleep(0.3)
        P = produce.REQUEST
        await _send(c.nodes[1].bootstrap, ApiKey.PRODUCE, P.cls(
            acks=1, timeout_ms=5000, topic_data=[P.TopicProduceData(
                name="offs", partition_data=[P.PartitionProduceData(
                    index=0, records=_batch(b"wake"))])]))
        resp = await task
        return resp.responses[0].partitions[0], time.monotonic() - t

    f, took = asyncio.run(poll_and_produce())
    assert f.error_code == 0 and decode_batch(bytes(f.records))[1][0].value == b"wake"
    assert took < 5

    # OffsetForLeaderEpoch: the current epoch ends at the log end offset.
    R = offset_for_leader_epoch.REQUEST
    req = R.cls(replica_id=-1, topics=[R.OffsetForLeaderTopic(topic="offs", partitions=[
        R.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=0)])])
    p = send(c.nodes[1].bootstrap, ApiKey.OFFSET_FOR_LEADER_EPOCH, req).topics[0].partitions[0]
    assert (p.error_code, p.leader_epoch, p.end_offset) == (0, 0, 6)


def test_incremental_fetch_sessions(cluster: ProcCluster) -> None:
    """KIP-227 on the wire: a session opened with epoch 0 answers in full and names itself;
    incremental requests carry only changed partitions and get back only partitions with
    news; forgotten partitions leave the session; a wrong epoch or an unknown id is a
    top-level error; epoch -1 closes the session."""
    c = cluster
    create_topic(c, "sess", partitions=3)
    for p in range(3):
        assert produce_raw(c, "sess", p, _batch(b"p%d" % p)).error_code == 0
    R = fetch.REQUEST

    def req(session_id: int, epoch: int, parts: dict[int, int], forget: list[int] = ()) -> Any:
        return R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                     isolation_level=0, session_id=session_id, session_epoch=epoch,
                     topics=[R.FetchTopic(topic="sess", partitions=[R.FetchPartition(
                         partition=p, current_leader_epoch=-1, fetch_offset=o,
                         log_start_offset=-1, partition_max_bytes=1 << 20)
                         for p, o in parts.items()])] if parts else [],
                     forgotten_topics_data=[R.ForgottenTopic(topic="sess", partitions=list(
                         forget))] if forget else [], rack_id="")

    async def run() -> None:
        host, port = parse_address(c.nodes[1].bootstrap)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            async def produce_to(partition: int, value: bytes) -> None:
                P = produce.REQUEST
                resp = await conn.send(ApiKey.PRODUCE, P.cls(
                    acks=-1, timeout_ms=5000, topic_data=[P.TopicProduceData(
                        name="sess", partition_data=[P.PartitionProduceData(
                            index=partition, records=_batch(value))])]))
                assert resp.responses[0].partition_responses[0].error_code == 0

            async def parts_of(r: Any) -> dict[int, Any]:
                resp = await conn.send(ApiKey.FETCH, r, 12, timeout_s=10)
                assert resp.error_code == 0, resp
                return {p.partition_index: p for t in resp.responses for p in t.partitions}

            # Sessionless (epoch -1): session id 0, every partition.
            resp = await conn.send(ApiKey.FETCH, req(0, -1, {0: 0, 1: 0, 2: 0}), 12)
            assert resp.session_id == 0 and len(resp.responses[0].partitions) == 3
            # Open a session: a full answer, with the session's id.
            resp = await conn.send(ApiKey.FETCH, req(0, 0, {0: 0, 1: 0, 2: 0}), 12)
            sid = resp.session_id
            assert sid > 0 and resp.error_code == 0
            got = {p.partition_index: p for p in resp.responses[0].partitions}
            assert sorted(got) == [0, 1, 2]
            assert all(decode_batch(bytes(got[p].records))[1][0].value == b"p%d" % p
                       for p in range(3))
            # Incremental: move every position to 1. A partition a request names is answered
            # (with its offsets, here no records); then, with nothing new, nothing comes back.
            back = await parts_of(req(sid, 1, {0: 1, 1: 1, 2: 1}))
            assert sorted(back) == [0, 1, 2] and not any(p.records for p in back.values())
            assert await parts_of(req(sid, 2, {})) == {}
            # New data on partition 1 only: only partition 1 comes back, although the
            # request names no partition at all (positions are the session's).
            await produce_to(1, b"more")
            back = await parts_of(req(sid, 3, {}))
            assert sorted(back) == [1] and back[1].high_watermark == 2
            assert decode_batch(bytes(back[1].records))[1][0].value == b"more"
            # The session still fetches partition 1 at offset 1 until told otherwise: the
            # same records again, but nothing from partitions 0 and 2.
            again = await parts_of(req(sid, 4, {}))
            assert sorted(again) == [1]
            assert sorted(await parts_of(req(sid, 5, {1: 2}))) == [1]
            assert await parts_of(req(sid, 6, {})) == {}
            # Forget partition 0, then new data there does not come back.
            assert await parts_of(req(sid, 7, {}, forget=[0])) == {}
            await produce_to(0, b"zero")
            assert await parts_of(req(sid, 8, {})) == {}
            # A position out of range is answered, as an error, in an incremental answer.
            back = await parts_of(req(sid, 9, {2: 99}))
            assert back[2].error_code == ErrorCode.OFFSET_OUT_OF_RANGE
            # Wrong epoch, unknown session: top-level errors.
            bad = await conn.send(ApiKey.FETCH, req(sid, 43, {}), 12)
            assert bad.error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
            bad = await conn.send(ApiKey.FETCH, req(sid + 1, 1, {}), 12)
            assert bad.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
            # Epoch -1 closes it: a sessionless full answer, and the id is gone.
            resp = await conn.send(ApiKey.FETCH, req(sid, -1, {0: 1}), 12)
            assert resp.error_code == 0 and resp.session_id == 0
            bad = await conn.send(ApiKey.FETCH, req(sid, 10, {}), 12)
            assert bad.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        finally:
            await conn.close()

    asyncio.run(run())


# -- idempotent producers ----------------------------------------------------------------------


def _pid_batch(pid: int, epoch: int, seq: int, *values: bytes) -> bytes:
    return build_batch([SimpleRecord(v, key=None) for v in values], producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq)


def test_idempotent_produce_on_the_wire(cluster: ProcCluster) -> None:
    c = cluster
    create_topic(c, "idem")
    pid = 4242
    r = produce_raw(c, "idem", 0, _pid_batch(pid, 0, 0, b"a", b"b"))
    assert (r.error_code, r.base_offset) == (0, 0)
    # A retry of the same batch is answered with its original offset and appends nothing.
    r = produce_raw(c, "idem", 0, _pid_batch(pid, 0, 0, b"a", b"b"))
    assert (r.error_code, r.base_offset) == (0, 0)
    r = produce_raw(c, "idem", 0, _pid_batch(pid, 0, 2, b"c"))
    assert (r.error_code, r.base_offset) == (0, 2)
    # A gap in the sequence, and an older epoch after a newer one, are refused.
    assert produce_raw(c, "idem", 0, _pid_batch(pid, 0, 9, b"x")).error_code == \
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_raw(c, "idem", 0, _pid_batch(pid, 1, 0, b"d")).error_code == 0
    assert produce_raw(c, "idem", 0, _pid_batch(pid, 0, 3, b"y")).error_code == \
        ErrorCode.INVALID_PRODUCER_EPOCH
    f = fetch_raw(c, "idem", 0, 0)
    data, pos, values = bytes(f.records), 0, []
    while pos < len(data):
        header, records = decode_batch(data, pos)
        values += [r.value for r in records]
        pos += header.size
    assert values == [b"a", b"b", b"c", b"d"]


def test_confluent_kafka_idempotent_producer(cluster: ProcCluster) -> None:
    ck = pytest.importorskip("confluent_kafka")
    c = cluster
    create_topic(c, "idem-ck", partitions=2)
    p = ck.Producer({"bootstrap.servers": c.nodes[1].bootstrap, "enable.idempotence": True,
                     "linger.ms": 5})
    errors: list[Any] = []
    for i in range(2000):
        p.produce("idem-ck", str(i).encode(), key=str(i % 7).encode(),
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
        p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    consumer = ck.Consumer({"bootstrap.servers": c.nodes[1].bootstrap, "group.id": "idem",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition("idem-ck", i, 0) for i in range(2)])
    got: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < 2000 and time.monotonic() < deadline:
        for m in consumer.consume(500, 1.0):
            if m.error() is None:
                got.append(int(m.value()))
    consumer.close()
    assert sorted(got) == list(range(2000))


def test_auto_topic_creation(cluster: ProcCluster) -> None:
    """auto.create.topics.enable (Kafka's default): a producer's Metadata for an unknown
    topic creates it with num.partitions; an illegal name is refused, not created."""
    kafka = pytest.importorskip("kafka")
    p = kafka.KafkaProducer(bootstrap_servers=c_bootstrap(cluster), acks="all")
    md = p.send("auto-made", b"v").get(timeout=30)
    assert (md.topic, md.partition, md.offset) == ("auto-made", 0, 0)
    p.close()
    R = metadata.REQUEST
    resp = send(c_bootstrap(cluster), ApiKey.METADATA, R.cls(
        topics=[R.MetadataRequestTopic(name="bad/name")], allow_auto_topic_creation=True))
    assert resp.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    # allow_auto_topic_creation=false (what consumers send): nothing is created.
    resp = send(c_bootstrap(cluster), ApiKey.METADATA, R.cls(
        topics=[R.MetadataRequestTopic(name="not-made")], allow_auto_topic_creation=False))
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def c_bootstrap(c: ProcCluster) -> str:
    return c.nodes[1].bootstrap
