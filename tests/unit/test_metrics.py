"""Node metrics: the per-request accounting, the exposition read from node state at scrape
time (a real MetadataImage and real PartitionState objects; the node around them is a plain
namespace), and per-node registries that never share anything."""

from __future__ import annotations

import time
import uuid
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from broker.admin.metrics import LATENCY_BUCKETS_S, NodeMetrics, RequestMetrics
from broker.protocol.api_keys import ApiKey
from broker.replication.fetch_session import FetchSessionCache
from broker.replication.partition import PartitionState
from kraft.image import (
    BrokerRegistration,
    ClusterImage,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
    TopicsImage,
)
from kraft.messages import QuorumDescription, ReplicaDescription


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class _Only(Collector):
    def __init__(self, rm: RequestMetrics) -> None:
        self.rm = rm

    def collect(self) -> Any:
        return self.rm.collect(api_versions=7)


def test_request_metrics_count_errors_and_histogram() -> None:
    rm = RequestMetrics()
    rm.observe(ApiKey.PRODUCE, 0, 0.0004, 100, 50)
    rm.observe(ApiKey.PRODUCE, 6, 0.003, 200, 60)
    rm.observe(ApiKey.PRODUCE, 0, 99.0, 10, 5)  # beyond the last bucket: +Inf only
    rm.observe(ApiKey.FETCH, 0, 0.0001, 1, 2)  # exactly on a bound: in that bucket
    reg = CollectorRegistry()
    reg.register(_Only(rm))
    got = samples(generate_latest(reg).decode())
    p = (("api", "Produce"),)
    assert got[("pykraft_requests_total", p)] == 3
    assert got[("pykraft_request_errors_total", p)] == 1
    assert got[("pykraft_request_errors_total", (("api", "Fetch"),))] == 0
    assert got[("pykraft_requests_total", (("api", "ApiVersions"),))] == 7
    assert got[("pykraft_request_latency_seconds_count", p)] == 3
    assert got[("pykraft_request_latency_seconds_sum", p)] == pytest.approx(99.0034)

    def bucket(api: str, le: str) -> float:
        return got[("pykraft_request_latency_seconds_bucket", (("api", api), ("le", le)))]
    assert bucket("Produce", "0.00025") == 0
    assert bucket("Produce", "0.0005") == 1
    assert bucket("Produce", "0.005") == 2
    assert bucket("Produce", "30.0") == 2
    assert bucket("Produce", "+Inf") == 3
    assert bucket("Fetch", "0.0001") == 1
    counts = [bucket("Produce", repr(b)) for b in LATENCY_BUCKETS_S]
    assert counts == sorted(counts)  # cumulative
    assert got[("pykraft_network_request_bytes_total", ())] == 311
    assert got[("pykraft_network_response_bytes_total", ())] == 117


def test_observe_is_cheap() -> None:
    rm = RequestMetrics()
    n = 100_000
    started = time.perf_counter()
    for i in range(n):
        rm.observe(0, 0, 0.001 * (i % 7), 100, 100)
    per_call_us = (time.perf_counter() - started) / n * 1e6
    # A few hundred nanoseconds on this machine; a generous bound for a shared CI box.
    assert per_call_us < 20, per_call_us


def _image() -> MetadataImage:
    def reg(replicas: tuple[int, ...], isr: tuple[int, ...], leader: int) -> PartitionRegistration:
        return PartitionRegistration(replicas=replicas, isr=isr, leader=leader, leader_epoch=1,
                                     partition_epoch=1)
    t = TopicImage("t", uuid.uuid4(), MappingProxyType({
        0: reg((1, 2, 3), (1, 2, 3), 1),
        1: reg((1, 2, 3), (1, 2), 1),   # under-replicated
        2: reg((2, 3, 1), (), -1),      # leaderless and under-replicated
    }))
    brokers = {i: BrokerRegistration(i, 10 + i, uuid.uuid4(), (), fenced=(i == 3))
               for i in (1, 2, 3)}
    return MetadataImage(offset=42, epoch=2, cluster=ClusterImage(MappingProxyType(brokers)),
                         topics=TopicsImage(MappingProxyType({t.topic_id: t}),
                                            MappingProxyType({"t": t})))


class _Raft:
    leader_and_epoch = SimpleNamespace(leader_id=1, epoch=5)
    epoch = 5
    high_watermark = 100
    log_end_offset = 101

    def is_leader(self) -> bool:
        return True

    def describe_quorum(self) -> QuorumDescription:
        now = int(time.time() * 1000)
        return QuorumDescription(1, 5, 100, voters=(
            ReplicaDescription(1, 101, now, now), ReplicaDescription(2, 90, now - 3000, now)),
            observers=(ReplicaDescription(4, 100, now, now),))


def _node(image: MetadataImage) -> Any:
    partitions = {}
    for pid, (isr, leader) in {0: ((1, 2, 3), 1), 1: ((1, 2), 1), 2: ((2, 3), 2)}.items():
        st = PartitionState(local_id=1, replicas=(1, 2, 3), isr=isr, leader=leader)
        partitions[("t", pid)] = SimpleNamespace(topic="t", state=st)
    rm = SimpleNamespace(partitions=partitions, isr_shrinks=4, isr_expands=2,
                         min_insync_replicas=lambda topic: 3)
    stats = SimpleNamespace(api_versions_requests=3, connections_accepted=9,
                            protocol_errors=1, handler_errors=0)
    group = SimpleNamespace(state=SimpleNamespace(value="Stable"))
    sessions = FetchSessionCache()
    wire = [SimpleNamespace(topic="t", partitions=[SimpleNamespace(
        partition=p, fetch_offset=0, partition_max_bytes=100) for p in (0, 1)])]
    sessions.new_context(0, 0, wire, [], follower=True, now_ms=0)
    return SimpleNamespace(
        config=SimpleNamespace(node_id=1, process_roles={"broker", "controller"}),
        cluster_id="abc", loader=SimpleNamespace(image=image), replica_manager=rm,
        raft=_Raft(), controller=object(),
        server=SimpleNamespace(stats=stats, connection_count=2),
        group_coordinator=SimpleNamespace(coordinator=SimpleNamespace(
            groups={"g": group, "h": group}, rebalances=6)),
        data_apis=SimpleNamespace(sessions=sessions, verifier=SimpleNamespace(
            round_trips=3, round_trip_ms_total=1500.0, refused=1)))


def test_node_collector_reads_state_at_scrape_time() -> None:
    metrics = NodeMetrics(_node(_image()))
    got = samples(metrics.exposition().decode())
    assert got[("pykraft_node_info", (("cluster_id", "abc"), ("node_id", "1"),
                                      ("roles", "broker,controller")))] == 1
    assert got[("pykraft_cluster_partitions", ())] == 3
    assert got[("pykraft_cluster_under_replicated_partitions", ())] == 2
    assert got[("pykraft_cluster_leaderless_partitions", ())] == 1
    assert got[("pykraft_cluster_brokers", (("state", "fenced"),))] == 1
    assert got[("pykraft_cluster_brokers", (("state", "unfenced"),))] == 2
    assert got[("pykraft_metadata_offset", ())] == 42
    assert got[("pykraft_partitions", ())] == 3
    assert got[("pykraft_leader_partitions", ())] == 2
    assert got[("pykraft_under_replicated_partitions", ())] == 1
    assert got[("pykraft_under_min_isr_partitions", ())] == 1
    assert got[("pykraft_isr_shrinks_total", ())] == 4
    assert got[("pykraft_isr_expands_total", ())] == 2
    assert got[("pykraft_fetch_sessions", ())] == 1
    assert got[("pykraft_fetch_session_partitions", ())] == 2
    assert got[("pykraft_txn_verifications_total", ())] == 3
    assert got[("pykraft_txn_verification_seconds_total", ())] == 1.5
    assert got[("pykraft_txn_verification_failures_total", ())] == 1
    assert got[("pykraft_active_controller", ())] == 1
    assert got[("pykraft_raft_epoch", ())] == 5
    assert got[("pykraft_raft_high_watermark", ())] == 100
    assert got[("pykraft_raft_replica_lag", (("replica_id", "2"), ("role", "voter")))] == 10
    assert got[("pykraft_raft_replica_lag", (("replica_id", "4"), ("role", "observer")))] == 0
    age = got[("pykraft_raft_replica_last_fetch_age_seconds",
               (("replica_id", "2"), ("role", "voter")))]
    assert 2.5 < age < 60
    assert got[("pykraft_requests_total", (("api", "ApiVersions"),))] == 3
    assert got[("pykraft_network_connections", ())] == 2
    assert got[("pykraft_consumer_groups", (("state", "Stable"),))] == 2
    assert got[("pykraft_group_rebalances_total", ())] == 6
    assert ("process_cpu_seconds_total", ()) in got


def test_controller_only_node_and_registry_isolation() -> None:
    node = _node(_image())
    node.replica_manager = None
    node.group_coordinator = None
    a, b = NodeMetrics(node), NodeMetrics(_node(_image()))
    a.requests.observe(ApiKey.METADATA, 0, 0.001, 1, 1)
    got_a = samples(a.exposition().decode())
    got_b = samples(b.exposition().decode())
    assert got_a[("pykraft_requests_total", (("api", "Metadata"),))] == 1
    assert ("pykraft_requests_total", (("api", "Metadata"),)) not in got_b
    assert ("pykraft_leader_partitions", ()) not in got_a
    assert ("pykraft_cluster_partitions", ()) in got_a
    assert not any(name.startswith("pykraft_") for name in REGISTRY._names_to_collectors)
