"""Client quotas on a real node, through real clients: quotas set with ``kafka-configs`` and
``kafka-client-quotas`` (AlterClientQuotas forwarded to the controller, DescribeClientQuotas
from the broker's image), a confluent-kafka producer held to its producer_byte_rate and a
kafka-python consumer to its consumer_byte_rate (steady-state rate within ~10 %), clients
without a quota unaffected, and KIP-219 on the wire: the throttle time in the response and
the connection not read again before it is over.

Kafka's windowed rate lets a greedy client through in bursts: a quota measures over at least
``quota.window.num - 1`` windows (10 s by default), so a client may send that much at once,
and again each time the window that held the burst expires; in between it trickles. The
delivered rate is periodic (about ``quota.window.num`` windows, 11 s) and right on average over
a whole period, which is what is measured here: from the first burst to the next. A consumer
gets (n - 1)/n of its quota that way (10/11 with Kafka's defaults): a throttled fetch is
answered empty and its bytes taken back, as in Kafka, so the last window's share is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import create_topics, describe_client_quotas, metadata, produce
from storage.records import SimpleRecord, build_batch
from tools import configs
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic

kafka = pytest.importorskip("kafka")

QUOTA = 1_000_000  # bytes per second
RUN_S = 16.0  # a whole quota period (about 11 s) and the next burst
VALUE = b"q" * 10_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("quotas"), controllers=1, brokers=0, combined=True)
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def tool(module: str, *args: str) -> str:
    """Run a CLI tool's ``main`` in this process (a subprocess costs a second of imports):
    its stdout; it must succeed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = importlib.import_module(module).main(list(args))
    assert code == 0, err.getvalue()
    return out.getvalue()


def send(address: str, api_key: int, req: Any, version: int | None = None) -> Any:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            return await conn.send(api_key, req, version, timeout_s=20.0)
        finally:
            await conn.close()
    return asyncio.run(run())


def burst_onsets(events: list[tuple[float, int]]) -> list[float]:
    """Where bursts start: 2 s worth of the quota arrive within 0.5 s, at least 3 s after the
    previous burst."""
    events = sorted(events)
    onsets: list[float] = []
    j, window = 0, 0
    for t, n in events:
        window += n
        while events[j][0] < t - 0.5:
            window -= events[j][1]
            j += 1
        first = events[j][0]
        if window >= 2 * QUOTA and (not onsets or first - onsets[-1] >= 3.0):
            onsets.append(first)
    return onsets


def period_rate(events: list[tuple[float, int]]) -> float:
    """Bytes per second from the first burst to the next one."""
    events = sorted(events)
    onsets = burst_onsets(events)
    assert len(onsets) >= 2, f"no second burst: {onsets}"
    a, b = onsets[0], onsets[1]
    assert 8.0 <= b - a <= 14.0, (a, b)  # about quota.window.num windows of 1 s
    return sum(n for t, n in events if a <= t < b) / (b - a)


def produce_for(bootstrap: str, topic: str, client_id: str, seconds: float,
                max_bytes: int | None = None) -> tuple[list[tuple[float, int]], float, int]:
    """(deliveries as (time, value bytes), start, largest throttle time the client saw)."""
    throttle = [0]

    def stats(raw: str) -> None:
        import json
        for b in json.loads(raw).get("brokers", {}).values():
            throttle[0] = max(throttle[0], int(b.get("throttle", {}).get("max", 0)))

    p = ck.Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "acks": "1",
                     "linger.ms": 5, "queue.buffering.max.kbytes": 256, "batch.size": 65536,
                     "statistics.interval.ms": 500, "stats_cb": stats})
    events: list[tuple[float, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            events.append((time.monotonic(), len(msg.value())))

    start = time.monotonic()
    sent = 0
    checked = start
    while time.monotonic() - start < seconds and (max_bytes is None or sent < max_bytes):
        if max_bytes is None and time.monotonic() - checked > 1.0:
            checked = time.monotonic()
            onsets = burst_onsets(list(events))
            if len(onsets) >= 2 and checked - onsets[1] > 1.0:
                break
        try:
            p.produce(topic, VALUE, on_delivery=delivered)
            sent += len(VALUE)
        except BufferError:
            p.poll(0.02)
            continue
        p.poll(0)
    if max_bytes is not None:
        assert p.flush(60) == 0
    else:
        p.purge()
        p.flush(10)
    p.poll(1.0)  # one more statistics callback
    return events, start, throttle[0]


def test_alter_and_describe_through_the_tools(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    out = tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
               "--entity-name", "quota-producer", "--add-config",
               f"producer_byte_rate={QUOTA},request_percentage=50")
    assert out.strip() == "Completed updating config for client-id 'quota-producer'."
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "users",
         "--entity-default", "--entity-type", "clients", "--entity-name", "someone",
         "--add-config", "consumer_byte_rate=5000")
    out = tool("tools.configs", "--bootstrap-server", b, "--describe", "--entity-type",
               "clients", "--entity-name", "quota-producer")
    assert out.strip() == ("Quota configs for client-id 'quota-producer' are "
                           "producer_byte_rate=1000000.0, request_percentage=50.0")
    out = tool("tools.client_quotas", "--bootstrap-server", b, "--describe", "--user-defaults",
               "--client-id", "someone")
    assert out.strip() == ("Quota configs for the default user-principal, client-id "
                           "'someone' are consumer_byte_rate=5000.0")
    # Removing the last key removes the entity.
    tool("tools.client_quotas", "--bootstrap-server", b, "--alter", "--user-defaults",
         "--client-id", "someone", "--delete", "consumer_byte_rate")
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
         "--entity-name", "quota-producer", "--delete-config", "request_percentage")
    R = describe_client_quotas.REQUEST
    resp = send(b, ApiKey.DESCRIBE_CLIENT_QUOTAS, R.cls(components=[], strict=False))
    assert resp.error_code == 0
    assert [([(e.entity_type, e.entity_name) for e in x.entity],
             [(v.key, v.value) for v in x.values]) for x in resp.entries] == [
        ([("client-id", "quota-producer")], [("producer_byte_rate", float(QUOTA))])]
    # Bad input is a Kafka error, not a crash.
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = configs.main(["--bootstrap-server", b, "--alter", "--entity-type", "clients",
                             "--entity-name", "x", "--add-config", "producer_byte_rate=1.5"])
    assert code == 1 and "INVALID_REQUEST" in err.getvalue(), err.getvalue()
    resp = send(b, ApiKey.DESCRIBE_CLIENT_QUOTAS, R.cls(components=[
        R.ComponentData(entity_type="user", match_type=0, match=None)], strict=False))
    assert resp.error_code == 42  # INVALID_REQUEST: an exact match needs a name


def test_producer_is_held_to_its_quota_and_others_are_not(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    events, _, throttled = produce_for(b, "quota-produce", "quota-producer", RUN_S)
    rate = period_rate(events)
    assert 0.90 * QUOTA <= rate <= 1.10 * QUOTA, rate
    assert throttled > 0  # librdkafka saw throttle_time_ms
    # Another client id has no quota: it sends 20 MB well above that rate, never throttled.
    events, start, throttled = produce_for(b, "quota-consume", "free-producer", 60.0,
                                           max_bytes=20_000_000)
    took = events[-1][0] - start
    assert sum(n for _, n in events) == 20_000_000
    assert 20_000_000 / took > 3 * QUOTA, took
    assert throttled == 0


def consume_for(bootstrap: str, topic: str, client_id: str, seconds: float,
                max_bytes: int | None = None) -> tuple[list[tuple[float, int]], float]:
    c = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, client_id=client_id,
                            group_id=None, auto_offset_reset="earliest",
                            enable_auto_commit=False, consumer_timeout_ms=1000)
    events: list[tuple[float, int]] = []
    got = 0
    start = time.monotonic()
    try:
        checked = start
        while time.monotonic() - start < seconds and (max_bytes is None or got < max_bytes):
            if max_bytes is None and time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                onsets = burst_onsets(events)
                if len(onsets) >= 2 and checked - onsets[1] > 1.0:
                    break
            for records in c.poll(timeout_ms=200).values():
                n = sum(len(r.value) for r in records)
                got += n
                events.append((time.monotonic(), n))
    finally:
        c.close()
    return events, start


def test_consumer_is_held_to_its_quota_and_others_are_not(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    out = tool("tools.client_quotas", "--bootstrap-server", b, "--alter", "--client-id",
               "quota-consumer", "--add", f"consumer_byte_rate={QUOTA}")
    assert "quota-consumer" in out
    events, _ = consume_for(b, "quota-consume", "quota-consumer", RUN_S)
    rate = period_rate(events)
    assert 0.85 * QUOTA <= rate <= 1.10 * QUOTA, rate  # 10/11 of it expected
    events, start = consume_for(b, "quota-consume", "free-consumer", 60.0,
                                max_bytes=20_000_000)
    took = events[-1][0] - start
    assert sum(n for _, n in events) == 20_000_000
    assert 20_000_000 / took > 3 * QUOTA, took


def test_user_quota_throttles_and_mutes_the_connection(cluster: ProcCluster) -> None:
    """KIP-219 on the wire: a user quota (every connection is User:ANONYMOUS on PLAINTEXT)
    beats the client id's (KIP-55); the produce that exceeds it is answered at once with the
    throttle time, and the connection's next request is not read before that time is over."""
    b = cluster.bootstrap_servers
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "users",
         "--entity-name", "ANONYMOUS", "--add-config", "producer_byte_rate=50000")
    topic = "quota-wire-" + uuid.uuid4().hex[:6]
    events, _, _ = produce_for(b, topic, "warm-up", 30.0, max_bytes=10_000)  # creates it
    assert events
    batch = build_batch([SimpleRecord(b"w" * 100_000)] * 6)
    P = produce.REQUEST
    req = P.cls(transactional_id=None, acks=1, timeout_ms=10_000, topic_data=[
        P.TopicProduceData(name=topic, partition_data=[
            P.PartitionProduceData(index=0, records=batch)])])

    async def run() -> tuple[int, int, float]:
        host, port = parse_address(b)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0,
                                             client_id="quota-producer")
        try:
            first = await conn.send(ApiKey.PRODUCE, req, 9, timeout_s=20.0)
            answered = time.monotonic()
            await conn.send(ApiKey.METADATA, metadata.REQUEST.cls(topics=[]), timeout_s=30.0)
            return (first.responses[0].partition_responses[0].error_code,
                    first.throttle_time_ms, time.monotonic() - answered)
        finally:
            await conn.close()

    try:
        code, throttle_ms, waited = asyncio.run(run())
    finally:
        tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "users",
             "--entity-name", "ANONYMOUS", "--delete-config", "producer_byte_rate")
    assert code == 0
    # About 610 KB against 50 KB/s measured over at least 10 s: (61 - 50) / 50 * 10 s.
    assert 1500 <= throttle_ms <= 3500, throttle_ms
    assert waited >= 0.9 * throttle_ms / 1000, (waited, throttle_ms)


def test_controller_mutation_rate(cluster: ProcCluster) -> None:
    """KIP-599: 2 partitions/s with a burst of 22 (11 windows). Strict (CreateTopics v7 on the
    wire): a request is taken while the bucket is not below zero, the next is refused with
    THROTTLING_QUOTA_EXCEEDED; permissive (older versions): taken, with a throttle time."""
    b = cluster.bootstrap_servers
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
         "--entity-name", "quota-admin", "--add-config", "controller_mutation_rate=2")
    C = create_topics.REQUEST

    def create(name: str, partitions: int, version: int) -> Any:
        async def run() -> Any:
            host, port = parse_address(b)
            conn = await KafkaConnection.connect(host, port, timeout_s=5.0,
                                                 client_id="quota-admin")
            try:
                return await conn.send(ApiKey.CREATE_TOPICS, C.cls(topics=[C.CreatableTopic(
                    name=name, num_partitions=partitions, replication_factor=1,
                    assignments=[], configs=[])], timeout_ms=30_000, validate_only=False),
                    version, timeout_s=60.0)
            finally:
                await conn.close()
        return asyncio.run(run())

    suffix = uuid.uuid4().hex[:6]
    first = create(f"mut-a-{suffix}", 30, 7)  # 22 -> -8: taken, 4 s to refill
    assert first.topics[0].error_code == 0
    assert 3000 <= first.throttle_time_ms <= 4000, first.throttle_time_ms
    second = create(f"mut-b-{suffix}", 1, 7)
    assert second.topics[0].error_code == 89  # THROTTLING_QUOTA_EXCEEDED
    assert second.throttle_time_ms > 2000
    third = create(f"mut-c-{suffix}", 1, 5)  # permissive: taken anyway
    assert third.topics[0].error_code == 0 and third.throttle_time_ms > 2000
    # A client without the quota is not concerned.
    admin = AdminClient({"bootstrap.servers": b, "client.id": "free-admin"})
    for f in admin.create_topics([NewTopic(f"mut-d-{suffix}", 3, 1)]).values():
        f.result(timeout=30)
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
         "--entity-name", "quota-admin", "--delete-config", "controller_mutation_rate")


def test_request_percentage(cluster: ProcCluster) -> None:
    """A client id allowed 0.2 % of a thread (2 ms of handler time per second): a stream of
    Metadata requests soon gets a throttle time, growing while it goes on (at most one window,
    1 s, as in Kafka), and the connection is not read again before it is over; another client
    id is not throttled."""
    b = cluster.bootstrap_servers
    tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
         "--entity-name", "busy", "--add-config", "request_percentage=0.2")
    M = metadata.REQUEST

    async def run(client_id: str, limit_s: float) -> tuple[int, int, float]:
        host, port = parse_address(b)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0, client_id=client_id)
        try:
            deadline = time.monotonic() + limit_s
            n = 0
            while time.monotonic() < deadline:
                n += 1
                resp = await conn.send(ApiKey.METADATA, M.cls(topics=None), 12, timeout_s=30.0)
                # The first throttle times are small (just over the quota); the mute is
                # measured on one of at least 100 ms.
                if resp.throttle_time_ms >= 100:
                    answered = time.monotonic()
                    await conn.send(ApiKey.METADATA, M.cls(topics=None), 12, timeout_s=30.0)
                    return n, resp.throttle_time_ms, time.monotonic() - answered
            return n, 0, 0.0
        finally:
            await conn.close()

    try:
        n, throttle_ms, waited = asyncio.run(run("busy", 60.0))
        assert 100 <= throttle_ms <= 1000, (n, throttle_ms)
        assert waited >= 0.9 * throttle_ms / 1000, (waited, throttle_ms)
        free_n, free_ms, _ = asyncio.run(run("not-busy", 3.0))
        assert free_ms == 0 and free_n > 50
    finally:
        tool("tools.configs", "--bootstrap-server", b, "--alter", "--entity-type", "clients",
             "--entity-name", "busy", "--delete-config", "request_percentage")
