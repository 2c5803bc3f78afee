"""Prometheus metrics of one node, served by the HTTP admin API at ``GET /metrics``.

Everything lives in a per-node ``CollectorRegistry`` (never the process-global one, so two
nodes in one process do not mix). Two kinds of source:

- **Per request** (``RequestMetrics.observe``, installed as ``KafkaServer.request_observer``):
  count, errors and a latency histogram per API, bytes in and out. The hot path only bumps
  plain ints in a per-API slot (a dict lookup, a ``bisect`` and four additions); the
  exposition is built at scrape time. A request counts as an error when its response has a
  non-zero top-level ``error_code`` (per-partition errors are not looked at: that would mean
  walking every response).
- **At scrape time** (``NodeCollector``): read the node's state as it is now: the metadata
  image (cluster-wide under-replicated / leaderless partitions, brokers by state), the replica
  manager (partitions led here, under-replicated ones among them, ISR shrinks / expands), the
  Raft manager (epoch, high watermark, log end offset, active controller, and on the leader the
  lag of every voter and observer from ``describe_quorum``), the server's connection counters.

Names follow Prometheus conventions with a ``pykraft_`` prefix; Kafka's JMX names are given in
the HELP text where one corresponds.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from broker.protocol.api_keys import API_SPECS

__all__ = ["LATENCY_BUCKETS_S", "NodeCollector", "NodeMetrics", "RequestMetrics"]

# Upper bounds (seconds) of the request latency histogram; +Inf is implied.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0)


def api_name(api_key: int | None) -> str:
    spec = API_SPECS.get(api_key) if api_key is not None else None
    return spec.name if spec is not None else f"api_{api_key}"


class _ApiStats:
    __slots__ = ("buckets", "count", "errors", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one is +Inf


class RequestMetrics:
    """Plain-int request accounting; ``observe`` is the server's per-request hook."""

    def __init__(self) -> None:
        self.apis: dict[int | None, _ApiStats] = {}
        self.bytes_in = 0
        self.bytes_out = 0

    def observe(self, api_key: int | None, error_code: int, seconds: float, bytes_in: int,
                bytes_out: int) -> None:
        st = self.apis.get(api_key)
        if st is None:
            st = self.apis[api_key] = _ApiStats()
        st.count += 1
        if error_code:
            st.errors += 1
        st.seconds += seconds
        st.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def collect(self, api_versions: int = 0) -> Iterator[Metric]:
        """``api_versions``: ApiVersions requests, which the server answers in its framing
        layer without the per-request hook (counted, no latency)."""
        count = CounterMetricFamily("pykraft_requests", "Kafka requests answered, per API "
                                    "(kafka.network RequestsPerSec)", labels=["api"])
        errors = CounterMetricFamily("pykraft_request_errors", "Kafka requests answered with a "
                                     "non-zero top-level error code, per API", labels=["api"])
        latency = HistogramMetricFamily(
            "pykraft_request_latency_seconds", "Time from a request's arrival to its encoded "
            "response, per API (kafka.network TotalTimeMs)", labels=["api"])
        for key, st in sorted(self.apis.items(), key=lambda kv: api_name(kv[0])):
            name = api_name(key)
            count.add_metric([name], st.count)
            errors.add_metric([name], st.errors)
            cumulative = 0
            buckets = []
            for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), st.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([name], buckets, st.seconds)
        if api_versions:
            count.add_metric(["ApiVersions"], api_versions)
        yield count
        yield errors
        yield latency
        yield CounterMetricFamily("pykraft_network_request_bytes", "Request bytes received on "
                                  "the Kafka listeners (kafka.server BytesInPerSec counts "
                                  "produce data only)", value=self.bytes_in)
        yield CounterMetricFamily("pykraft_network_response_bytes", "Response bytes sent on the "
                                  "Kafka listeners", value=self.bytes_out)


class NodeCollector(Collector):
    """Gauges and counters read from the node at scrape time."""

    def __init__(self, node: Any, requests: RequestMetrics) -> None:
        self.node = node
        self.requests = requests
        # (group, topic, partition) -> lag, refreshed by the HTTP handler before each scrape
        # (it needs ListOffsets round trips to the partitions' leaders).
        self.consumer_lag: dict[tuple[str, str, int], int] = {}

    def collect(self) -> Iterator[Metric]:
        node = self.node
        server = node.server
        yield from self.requests.collect(
            server.stats.api_versions_requests if server is not None else 0)
        yield _info(node)
        yield from self._server(node)
        yield from self._image(node)
        yield from self._replicas(node)
        yield from self._raft(node)
        yield from _groups(node)
        lag = GaugeMetricFamily("pykraft_consumer_group_lag", "Records between a group's "
                                "committed offset and the partition's high watermark (groups "
                                "coordinated by this broker)",
                                labels=["group", "topic", "partition"])
        for (group, topic, partition), n in sorted(self.consumer_lag.items()):
            lag.add_metric([group, topic, str(partition)], n)
        yield lag

    @staticmethod
    def _server(node: Any) -> Iterator[Metric]:
        server = node.server
        if server is None:
            return
        st = server.stats
        yield GaugeMetricFamily("pykraft_network_connections", "Open Kafka connections",
                                value=server.connection_count)
        yield CounterMetricFamily("pykraft_network_connections_accepted",
                                  "Kafka connections accepted", value=st.connections_accepted)
        yield CounterMetricFamily("pykraft_network_protocol_errors", "Connections closed for "
                                  "malformed or disallowed requests", value=st.protocol_errors)
        yield CounterMetricFamily("pykraft_network_handler_errors", "Requests whose handler "
                                  "failed (a bug; the connection is closed)",
                                  value=st.handler_errors)
        yield from _limits(server)

    @staticmethod
    def _image(node: Any) -> Iterator[Metric]:
        image = node.loader.image
        under = leaderless = total = 0
        for t in image.topics.by_id.values():
            for p in t.partitions.values():
                total += 1
                if p.leader < 0:
                    leaderless += 1
                if len(p.isr) < len(p.replicas):
                    under += 1
        yield GaugeMetricFamily("pykraft_cluster_partitions", "Partitions in the metadata "
                                "image (kafka.controller GlobalPartitionCount)", value=total)
        yield GaugeMetricFamily("pykraft_cluster_topics", "Topics in the metadata image "
                                "(kafka.controller GlobalTopicCount)",
                                value=len(image.topics.by_id))
        yield GaugeMetricFamily("pykraft_cluster_under_replicated_partitions", "Partitions "
                                "whose ISR is smaller than their replica set, cluster-wide",
                                value=under)
        yield GaugeMetricFamily("pykraft_cluster_leaderless_partitions", "Partitions without "
                                "a leader (kafka.controller OfflinePartitionsCount)",
                                value=leaderless)
        brokers = GaugeMetricFamily("pykraft_cluster_brokers", "Registered brokers by state",
                                    labels=["state"])
        states = {"unfenced": 0, "fenced": 0, "controlled_shutdown": 0}
        for b in image.cluster.brokers.values():
            if b.in_controlled_shutdown:
                states["controlled_shutdown"] += 1
            elif b.fenced:
                states["fenced"] += 1
            else:
                states["unfenced"] += 1
        for state, n in states.items():
            brokers.add_metric([state], n)
        yield brokers
        yield GaugeMetricFamily("pykraft_metadata_offset", "Offset of the last metadata "
                                "record in this node's image", value=image.offset)

    @staticmethod
    def _replicas(node: Any) -> Iterator[Metric]:
        rm = node.replica_manager
        if rm is None:
            return
        led = under = under_min = 0
        for hp in rm.partitions.values():
            st = hp.state
            if not st.is_leader:
                continue
            led += 1
            if len(st.isr) < len(st.replicas):
                under += 1
            if len(st.isr) < rm.min_insync_replicas(hp.topic):
                under_min += 1
        yield GaugeMetricFamily("pykraft_partitions", "Partition replicas hosted here "
                                "(kafka.server ReplicaManager PartitionCount)",
                                value=len(rm.partitions))
        yield GaugeMetricFamily("pykraft_leader_partitions", "Partitions led by this broker "
                                "(kafka.server ReplicaManager LeaderCount)", value=led)
        yield GaugeMetricFamily("pykraft_under_replicated_partitions", "Partitions led here "
                                "whose ISR is smaller than their replica set (kafka.server "
                                "ReplicaManager UnderReplicatedPartitions)", value=under)
        yield GaugeMetricFamily("pykraft_under_min_isr_partitions", "Partitions led here "
                                "whose ISR is below min.insync.replicas", value=under_min)
        yield CounterMetricFamily("pykraft_isr_shrinks", "ISR shrinks proposed by this leader "
                                  "(kafka.server ReplicaManager IsrShrinksPerSec)",
                                  value=getattr(rm, "isr_shrinks", 0))
        yield CounterMetricFamily("pykraft_isr_expands", "ISR expands proposed by this leader "
                                  "(kafka.server ReplicaManager IsrExpandsPerSec)",
                                  value=getattr(rm, "isr_expands", 0))
        data = getattr(node, "data_apis", None)
        if data is not None:
            sessions = data.sessions
            yield GaugeMetricFamily("pykraft_fetch_sessions", "Incremental fetch sessions "
                                    "cached (kafka.server FetchSessionCache NumIncrementalFetch"
                                    "Sessions)", value=len(sessions))
            yield GaugeMetricFamily("pykraft_fetch_session_partitions", "Partitions in cached "
                                    "fetch sessions (kafka.server FetchSessionCache "
                                    "NumIncrementalFetchPartitionsCached)",
                                    value=sessions.partitions_cached())
            yield CounterMetricFamily("pykraft_fetch_sessions_evicted", "Fetch sessions evicted "
                                      "to make room (kafka.server FetchSessionCache "
                                      "IncrementalFetchSessionEvictionsPerSec)",
                                      value=sessions.evicted)
            verifier = data.verifier
            yield CounterMetricFamily("pykraft_txn_verifications", "Transaction verifications "
                                      "asked of a coordinator by this leader (kafka.server "
                                      "AddPartitionsToTxnManager VerificationTimeMs count)",
                                      value=verifier.round_trips)
            yield CounterMetricFamily("pykraft_txn_verification_seconds", "Time spent waiting "
                                      "for those answers",
                                      value=verifier.round_trip_ms_total / 1000)
            yield CounterMetricFamily("pykraft_txn_verification_failures", "Partitions whose "
                                      "verification failed (kafka.server "
                                      "AddPartitionsToTxnManager VerificationFailureRate)",
                                      value=verifier.refused)

    @staticmethod
    def _raft(node: Any) -> Iterator[Metric]:
        raft = node.raft
        if raft is None:
            return
        leader = raft.leader_and_epoch.leader_id
        active = 1 if node.controller is not None and raft.is_leader() else 0
        yield GaugeMetricFamily("pykraft_active_controller", "1 on the active controller "
                                "(kafka.controller ActiveControllerCount)", value=active)
        yield GaugeMetricFamily("pykraft_raft_leader_id", "Current metadata quorum leader "
                                "(-1: unknown)", value=-1 if leader is None else leader)
        yield GaugeMetricFamily("pykraft_raft_epoch", "Current metadata quorum epoch",
                                value=raft.epoch)
        yield GaugeMetricFamily("pykraft_raft_high_watermark", "Metadata log high watermark "
                                "known to this node", value=raft.high_watermark)
        yield GaugeMetricFamily("pykraft_raft_log_end_offset", "Metadata log end offset on "
                                "this node", value=raft.log_end_offset)
        if not raft.is_leader():
            return
        try:
            desc = raft.describe_quorum()
        except Exception:  # noqa: BLE001 - leadership may move between the check and the call
            return
        lag = GaugeMetricFamily("pykraft_raft_replica_lag", "Records the replica's metadata "
                                "log is behind the leader's high watermark (on the leader)",
                                labels=["replica_id", "role"])
        age = GaugeMetricFamily("pykraft_raft_replica_last_fetch_age_seconds", "Time since the "
                                "replica last fetched from the leader (on the leader)",
                                labels=["replica_id", "role"])
        now_ms = int(time.time() * 1000)
        for role, rows in (("voter", desc.voters), ("observer", desc.observers)):
            for r in rows:
                labels = [str(r.replica_id), role]
                if r.log_end_offset >= 0:
                    lag.add_metric(labels, max(0, desc.high_watermark - r.log_end_offset))
                if r.last_fetch_timestamp >= 0:
                    age.add_metric(labels, max(0.0, (now_ms - r.last_fetch_timestamp) / 1000))
        yield lag
        yield age


def _limits(server: Any) -> Iterator[Metric]:
    """The network limits of each listener kind (broker/network/limits.py)."""
    limits = getattr(server, "limits", None)
    if not isinstance(limits, dict):
        return
    kinds = sorted(limits.items())
    families = [
        (GaugeMetricFamily, "pykraft_network_limit_connections", ("Connections counted against "
         "max.connections, per listener kind"), lambda lim: lim.quotas.total),
        (CounterMetricFamily, "pykraft_network_connections_rejected_per_ip", ("Connections "
         "closed at once because their address had max.connections.per.ip already"),
         lambda lim: lim.quotas.rejected_per_ip),
        (CounterMetricFamily, "pykraft_network_accept_blocked", ("Times a listener stopped "
         "accepting for want of a connection slot (kafka.network Acceptor "
         "AcceptorBlockedPercent)"), lambda lim: lim.quotas.accept_blocks),
        (CounterMetricFamily, "pykraft_network_connections_closed_lru", ("Connections closed "
         "because the inter-broker listener went past max.connections"),
         lambda lim: lim.lru_closes),
        (CounterMetricFamily, "pykraft_network_connections_closed_idle", ("Connections closed "
         "after connections.max.idle.ms without a byte received (kafka.server "
         "socket-server-metrics connection-close-total counts them too)"),
         lambda lim: lim.idle_closes),
        (GaugeMetricFamily, "pykraft_network_request_pool_used_bytes", ("Bytes of partially "
         "read requests drawn from the queued.max.request.bytes pool (kafka.network "
         "SocketServer MemoryPoolAvailable is its complement)"), lambda lim: lim.pool.used),
        (GaugeMetricFamily, "pykraft_network_request_pool_peak_bytes", ("Most bytes the pool "
         "had out at once"), lambda lim: lim.pool.peak_used),
        (CounterMetricFamily, "pykraft_network_request_pool_waits", ("Times a connection stopped "
         "being read because the pool was empty (kafka.network SocketServer "
         "MemoryPoolDepletedPercent)"), lambda lim: lim.pool.waits),
        (GaugeMetricFamily, "pykraft_network_queued_requests", ("Requests read and not yet "
         "answered (kafka.network RequestChannel RequestQueueSize)"), lambda lim: lim.queued),
        (CounterMetricFamily, "pykraft_network_queued_requests_waits", ("Times a connection "
         "stopped being read at queued.max.requests"), lambda lim: lim.queue_waits),
    ]
    for cls, name, doc, read in families:
        fam = cls(name, doc, labels=["kind"])
        for kind, lim in kinds:
            fam.add_metric([kind], read(lim))
        yield fam


def _groups(node: Any) -> Iterator[Metric]:
    """Groups of the coordinator partitions led here, by state. Read defensively (the group
    coordinator is its own module): ``coordinator.groups`` of objects with ``state.value``,
    and a ``coordinator.rebalances`` counter when the coordinator keeps one."""
    apis = getattr(node, "group_coordinator", None)
    coordinator = getattr(apis, "coordinator", None)
    groups = getattr(coordinator, "groups", None)
    if not isinstance(groups, dict):
        return
    by_state: dict[str, int] = {}
    # Consumer groups of KIP-848 (``coordinator.consumer_groups``) count too.
    consumer = getattr(coordinator, "consumer_groups", None)
    every = [*groups.values(), *(consumer.values() if isinstance(consumer, dict) else ())]
    for g in every:
        state = getattr(getattr(g, "state", None), "value", "Unknown")
        by_state[state] = by_state.get(state, 0) + 1
    fam = GaugeMetricFamily("pykraft_consumer_groups", "Consumer groups coordinated by this "
                            "broker, by state", labels=["state"])
    for state, n in sorted(by_state.items()):
        fam.add_metric([state], n)
    yield fam
    rebalances = getattr(coordinator, "rebalances", None)
    if isinstance(rebalances, int):
        yield CounterMetricFamily("pykraft_group_rebalances", "Group rebalances started by "
                                  "this coordinator", value=rebalances)


def _info(node: Any) -> Metric:
    info = GaugeMetricFamily("pykraft_node_info", "This node (value 1)",
                             labels=["node_id", "roles", "cluster_id"])
    info.add_metric([str(node.config.node_id), ",".join(sorted(node.config.process_roles)),
                     node.cluster_id], 1)
    return info


class NodeMetrics:
    """The registry of one node: request metrics, node state, and the process collector."""

    def __init__(self, node: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestMetrics()
        self.collector = NodeCollector(node, self.requests)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of everything registered."""
        return generate_latest(self.registry)
