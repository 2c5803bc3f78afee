"""Admin APIs on the broker listener, end to end: 1 controller + 2 brokers as real processes,
driven by unmodified kafka-python and confluent-kafka admin clients bootstrapped to the brokers.

Brokers forward CreateTopics/DeleteTopics/CreatePartitions/(Incremental)AlterConfigs/
ElectLeaders to the active controller and answer only once their own metadata image shows the
change; DescribeConfigs and InitProducerId are answered by the broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    create_topics,
    delete_topics,
    describe_configs,
    elect_leaders,
    init_producer_id,
    metadata,
)
from tools.proc_cluster import ProcCluster

kafka = pytest.importorskip("kafka")
confluent_admin = pytest.importorskip("confluent_kafka.admin")

from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    root = tmp_path_factory.mktemp("admin")
    c = ProcCluster(root, controllers=1, brokers=2)
    try:
        c.start()
        yield c
    finally:
        c.shutdown()


async def _request(address: str, api_key: int, req: Any, version: int | None = None,
                   timeout_s: float = 20.0) -> Any:
    host, port = parse_address(address)
    conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
    try:
        return await conn.send(api_key, req, version, timeout_s=timeout_s)
    finally:
        await conn.close()


def request(address: str, api_key: int, req: Any, version: int | None = None,
            timeout_s: float = 20.0) -> Any:
    return asyncio.run(_request(address, api_key, req, version, timeout_s))


def topics_on(address: str, names: list[str]) -> dict[str, Any]:
    req = metadata.REQUEST.cls(topics=[metadata.REQUEST.MetadataRequestTopic(name=n)
                                       for n in names])
    resp = request(address, ApiKey.METADATA, req)
    return {t.name: t for t in resp.topics if t.error_code == 0}


def _wait(pred: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# -- kafka-python ---------------------------------------------------------------------------


def test_kafka_python_admin(cluster: ProcCluster) -> None:
    b1, b2 = (cluster.nodes[i].bootstrap for i in cluster.broker_ids)
    admin = KafkaAdminClient(bootstrap_servers=b1, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("kp-a", 3, 2)])
        # Answered only once the broker's image has the topic: Metadata sees it at once.
        t = topics_on(b1, ["kp-a"])["kp-a"]
        assert len(t.partitions) == 3
        assert all(len(p.replica_nodes) == 2 for p in t.partitions)

        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            admin.create_topics([NewTopic("kp-a", 1, 1)])

        admin.create_partitions({"kp-a": NewPartitions(5)})
        assert len(topics_on(b1, ["kp-a"])["kp-a"].partitions) == 5

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-a",
                                            configs={"retention.ms": "123456"})])
        got = repr(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-a")]))
        assert "retention.ms" in got and "123456" in got, got
        assert "segment.bytes" not in got, got  # kafka-python shows only modified configs

        brokers = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER,
                                                         str(cluster.broker_ids[0]))],
                                        config_filter="all")
        assert "log.segment.bytes" in repr(brokers) and "STATIC_BROKER_CONFIG" in repr(brokers)

        admin.delete_topics(["kp-a"])
        assert "kp-a" not in topics_on(b1, ["kp-a"])
        # The other broker catches up on its own (no wait there, but it gets there).
        _wait(lambda: "kp-a" not in topics_on(b2, ["kp-a"]))
    finally:
        admin.close()


def test_kafka_python_idempotent_producer_gets_a_producer_id(cluster: ProcCluster) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=cluster.bootstrap_servers,
                                   enable_idempotence=True)
    try:
        tm = producer._transaction_manager
        pid = _wait(lambda: tm.producer_id_and_epoch.producer_id >= 0
                    and tm.producer_id_and_epoch, timeout=30)
        assert pid.epoch == 0
    finally:
        producer.close(timeout=1)


# -- confluent-kafka ------------------------------------------------------------------------


def test_confluent_admin(cluster: ProcCluster) -> None:
    ca = confluent_admin
    b2 = cluster.nodes[cluster.broker_ids[1]].bootstrap
    admin = ca.AdminClient({"bootstrap.servers": b2})
    fs = admin.create_topics([ca.NewTopic("ck-a", num_partitions=2, replication_factor=2,
                                          config={"cleanup.policy": "compact"})])
    fs["ck-a"].result(30)
    assert len(topics_on(b2, ["ck-a"])["ck-a"].partitions) == 2

    fs = admin.create_topics([ca.NewTopic("ck-a", num_partitions=1, replication_factor=1)])
    with pytest.raises(Exception) as exc:
        fs["ck-a"].result(30)
    assert "TOPIC_ALREADY_EXISTS" in str(exc.value)

    res = ca.ConfigResource(ca.ResourceType.TOPIC, "ck-a")
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ca.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].source == ca.ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"

    inc = ca.ConfigResource(ca.ResourceType.TOPIC, "ck-a", incremental_configs=[
        ca.ConfigEntry("retention.ms", "7777",
                       incremental_operation=ca.AlterConfigOpType.SET),
        ca.ConfigEntry("cleanup.policy", None,
                       incremental_operation=ca.AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([inc])[inc].result(30)
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["retention.ms"].value == "7777"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ca.ConfigSource.DEFAULT_CONFIG.value

    # APPEND and SUBTRACT work on the effective list, the default included.
    def incremental(op: Any, value: str) -> str:
        change = ca.ConfigResource(ca.ResourceType.TOPIC, "ck-a", incremental_configs=[
            ca.ConfigEntry("cleanup.policy", value, incremental_operation=op)])
        admin.incremental_alter_configs([change])[change].result(30)
        return admin.describe_configs([res])[res].result(30)["cleanup.policy"].value

    assert incremental(ca.AlterConfigOpType.APPEND, "compact") == "delete,compact"
    assert incremental(ca.AlterConfigOpType.SUBTRACT, "delete") == "compact"
    assert incremental(ca.AlterConfigOpType.SUBTRACT, "compact") == ""

    broker_id = cluster.broker_ids[1]
    bres = ca.ConfigResource(ca.ResourceType.BROKER, str(broker_id))
    bconf = admin.describe_configs([bres])[bres].result(30)
    assert bconf["node.id"].value == str(broker_id)
    assert bconf["node.id"].source == ca.ConfigSource.STATIC_BROKER_CONFIG.value
    assert bconf["node.id"].is_read_only
    assert bconf["num.partitions"].source == ca.ConfigSource.DEFAULT_CONFIG.value

    missing = ca.ConfigResource(ca.ResourceType.TOPIC, "no-such-topic")
    with pytest.raises(Exception) as exc:
        admin.describe_configs([missing])[missing].result(30)
    assert "UNKNOWN_TOPIC_OR_PART" in str(exc.value)

    admin.create_partitions([ca.NewPartitions("ck-a", 4)])["ck-a"].result(30)
    assert len(topics_on(b2, ["ck-a"])["ck-a"].partitions) == 4

    admin.delete_topics(["ck-a"])["ck-a"].result(30)
    assert "ck-a" not in topics_on(b2, ["ck-a"])


# -- our own client: versions and edge cases -------------------------------------------------


@pytest.mark.parametrize("version", [0, 3, 5, 6])
def test_delete_topics_versions(cluster: ProcCluster, version: int) -> None:
    b = cluster.nodes[cluster.broker_ids[0]].bootstrap
    name = f"dv-{version}"
    CQ = create_topics.REQUEST
    resp = request(b, ApiKey.CREATE_TOPICS, CQ.cls(topics=[CQ.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
        timeout_ms=10000), version=2)
    assert resp.topics[0].error_code == 0
    DQ = delete_topics.REQUEST
    if version >= 6:
        tid = topics_on(b, [name])[name].topic_id
        req = DQ.cls(topics=[DQ.DeleteTopicState(name=None, topic_id=tid)], timeout_ms=10000)
    else:
        req = DQ.cls(topic_names=[name, "dv-missing"], timeout_ms=10000)
    resp = request(b, ApiKey.DELETE_TOPICS, req, version=version)
    codes = {r.name: r.error_code for r in resp.responses}
    if version >= 6:
        assert [r.error_code for r in resp.responses] == [0]
    else:
        assert codes == {name: 0, "dv-missing": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert name not in topics_on(b, [name])


@pytest.mark.parametrize("version", [0, 1, 2])
def test_elect_leaders_versions(cluster: ProcCluster, version: int) -> None:
    b = cluster.nodes[cluster.broker_ids[0]].bootstrap
    name = f"el-{version}"
    CQ = create_topics.REQUEST
    request(b, ApiKey.CREATE_TOPICS, CQ.cls(topics=[CQ.CreatableTopic(
        name=name, num_partitions=2, replication_factor=2, assignments=[], configs=[])],
        timeout_ms=10000))
    EQ = elect_leaders.REQUEST
    resp = request(b, ApiKey.ELECT_LEADERS, EQ.cls(election_type=0, topic_partitions=[
        EQ.TopicPartitions(topic=name, partitions=[0, 1])], timeout_ms=10000), version=version)
    codes = [p.error_code for t in resp.replica_election_results for p in t.partition_result]
    # Leaders start on the preferred replica: nothing to do.
    assert codes == [ErrorCode.ELECTION_NOT_NEEDED] * 2


def test_describe_configs_versions_and_filters(cluster: ProcCluster) -> None:
    b = cluster.nodes[cluster.broker_ids[0]].bootstrap
    name = "dc-a"
    CQ = create_topics.REQUEST
    request(b, ApiKey.CREATE_TOPICS, CQ.cls(topics=[CQ.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[],
        configs=[CQ.CreatableTopicConfig(name="retention.ms", value="5000")])],
        timeout_ms=10000))
    Q = describe_configs.REQUEST
    for v in range(5):
        resp = request(b, ApiKey.DESCRIBE_CONFIGS, Q.cls(resources=[
            Q.DescribeConfigsResource(resource_type=2, resource_name=name,
                                      configuration_keys=["retention.ms", "segment.bytes"]),
            Q.DescribeConfigsResource(resource_type=4, resource_name="999",
                                      configuration_keys=None),
        ], include_synonyms=v >= 1, include_documentation=v >= 3), version=v)
        topic, other = resp.results
        assert topic.error_code == 0
        by = {c.name: c for c in topic.configs}
        assert set(by) == {"retention.ms", "segment.bytes"}
        assert by["retention.ms"].value == "5000"
        if v == 0:
            assert by["segment.bytes"].is_default and not by["retention.ms"].is_default
        else:
            assert by["retention.ms"].config_source == 1
            assert by["segment.bytes"].config_source == 5
            assert by["retention.ms"].synonyms[0].source == 1
        if v >= 3:
            assert by["retention.ms"].config_type == 5  # LONG
        assert other.error_code == ErrorCode.INVALID_REQUEST


def test_init_producer_id(cluster: ProcCluster) -> None:
    b1, b2 = (cluster.nodes[i].bootstrap for i in cluster.broker_ids)
    Q = init_producer_id.REQUEST
    seen = set()
    for addr in (b1, b2, b1):
        r = request(addr, ApiKey.INIT_PRODUCER_ID,
                    Q.cls(transactional_id=None, transaction_timeout_ms=60000), version=0)
        assert r.error_code == 0 and r.producer_epoch == 0
        seen.add(r.producer_id)
    assert len(seen) == 3  # distinct ids, from distinct blocks on the two brokers
    # KIP-360: an idempotent producer that sends its id and epoch gets a fresh id.
    pid = max(seen)
    r = request(b1, ApiKey.INIT_PRODUCER_ID, Q.cls(
        transactional_id=None, transaction_timeout_ms=60000, producer_id=pid,
        producer_epoch=3), version=4)
    assert r.error_code == 0 and r.producer_epoch == 0 and r.producer_id not in seen
    r = request(b1, ApiKey.INIT_PRODUCER_ID, Q.cls(
        transactional_id=None, transaction_timeout_ms=60000, producer_id=-1,
        producer_epoch=3), version=4)
    assert r.error_code == ErrorCode.INVALID_REQUEST
    # A transactional id goes to its transaction coordinator (FindCoordinator key type 1);
    # without __transaction_state no broker is it (tests/integration/test_transactions.py).
    r = request(b1, ApiKey.INIT_PRODUCER_ID, Q.cls(transactional_id="tx-1",
                                                   transaction_timeout_ms=60000))
    assert r.error_code == ErrorCode.NOT_COORDINATOR


def test_zz_controller_unreachable_times_out(cluster: ProcCluster) -> None:
    """Runs last: stops the controller."""
    b = cluster.nodes[cluster.broker_ids[0]].bootstrap
    for i in cluster.controller_ids:
        cluster.nodes[i].kill()
    CQ = create_topics.REQUEST
    started = time.monotonic()
    resp = request(b, ApiKey.CREATE_TOPICS, CQ.cls(topics=[CQ.CreatableTopic(
        name=f"late-{uuid.uuid4().hex[:6]}", num_partitions=1, replication_factor=1,
        assignments=[], configs=[])], timeout_ms=2000))
    assert [t.error_code for t in resp.topics] == [ErrorCode.REQUEST_TIMED_OUT]
    assert time.monotonic() - started < 10
    # Without a controller a SIGTERM'd broker can take up to the stop timeout; not tested here.
    cluster.kill_all()
