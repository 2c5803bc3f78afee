"""The cluster as a Metadata answer describes it: brokers, controller id, cluster id and
topics -> partitions -> leader/epoch/replicas/ISR (``ClusterMetadata``, what ``KafkaClient``
caches and routes by)."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    topic: str
    partition: int
    leader_id: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID | None
    is_internal: bool
    partitions: dict[int, PartitionInfo]
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    """One Metadata answer (``KafkaClient.metadata``) or the client's merged cache
    (``KafkaClient.cluster``)."""

    cluster_id: str | None = None
    controller_id: int = -1
    brokers: dict[int, BrokerInfo] = dataclasses.field(default_factory=dict)
    topics: dict[str, TopicInfo] = dataclasses.field(default_factory=dict)


def cluster_from_response(resp: Any) -> ClusterMetadata:
    brokers = {b.node_id: BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in resp.brokers}
    topics: dict[str, TopicInfo] = {}
    for t in resp.topics:
        if t.name is None:
            continue  # asked by topic id and unknown: nothing to key it by
        parts = {p.partition_index: PartitionInfo(
            t.name, p.partition_index, p.leader_id, p.leader_epoch, tuple(p.replica_nodes),
            tuple(p.isr_nodes), tuple(p.offline_replicas), p.error_code) for p in t.partitions}
        tid = t.topic_id if t.topic_id is not None and t.topic_id.int else None
        topics[t.name] = TopicInfo(t.name, tid, t.is_internal, parts, t.error_code)
    return ClusterMetadata(resp.cluster_id, resp.controller_id, brokers, topics)
