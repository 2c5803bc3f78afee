"""DescribeTopicPartitions (key 75, KIP-966): topics and their partitions from this broker's
metadata image, a page at a time; what Kafka's admin client and ``kafka-topics --describe`` use
to describe topics since Kafka 3.8.

Kafka's ``DescribeTopicPartitionsRequestHandler`` and ``KRaftMetadataCache.describeTopicResponse``:

- No topics in the request means every topic. Topics are answered in name order, from the
  cursor's topic on (a named topic list must then hold the cursor's topic), the cursor's topic
  from the cursor's partition, the others from partition 0. A cursor outside the list, or with
  a negative partition, is INVALID_REQUEST for every requested topic.
- At most ``min(response_partition_limit, 2000)`` (at least 1) partitions per answer; when some
  are left, ``next_cursor`` names the first of them, which the client sends as its next cursor.
- A named topic the image does not hold is UNKNOWN_TOPIC_OR_PARTITION.
- Each partition as this broker's Metadata answer shows it (``broker/network/dispatch.py``): a
  leader not live on the request's listener (fenced, or without that listener) is
  LEADER_NOT_AVAILABLE, and replicas not live are offline; plus the leader epoch and the
  eligible leader replicas and last known ELR the image holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from broker.network.context import RequestContext
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import describe_topic_partitions
from broker.replication.delete_records import INTERNAL_TOPICS
from kraft.directories import offline_replicas
from kraft.image import MetadataImage, TopicImage

__all__ = ["MAX_PARTITIONS_PER_RESPONSE", "TopicPartitionsApi", "describe_topic_partitions"]

# Kafka's max.request.partition.size.limit (its default): the most partitions in one answer.
MAX_PARTITIONS_PER_RESPONSE = 2000
ZERO_UUID = uuid.UUID(int=0)
_R = describe_topic_partitions.RESPONSE


def _live_brokers(image: MetadataImage, listener: str) -> set[int]:
    return {b.broker_id for b in image.cluster.brokers.values()
            if not b.fenced and b.listener(listener) is not None}


def _partitions(t: TopicImage, start: int, limit: int, live: set[int],
                brokers: Mapping[int, Any]) -> tuple[list[Any], int]:
    """Up to ``limit`` partitions of ``t`` from index ``start``, and the index of the first one
    left out (-1: none)."""
    count = len(t.partitions)
    end = min(count, start + limit)
    out = []
    for pid in range(start, end):
        p = t.partitions.get(pid)
        if p is None:
            continue
        out.append(_R.DescribeTopicPartitionsResponsePartition(
            error_code=ErrorCode.NONE if p.leader in live else ErrorCode.LEADER_NOT_AVAILABLE,
            partition_index=pid, leader_id=p.leader, leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas), isr_nodes=list(p.isr),
            eligible_leader_replicas=list(p.elr), last_known_elr=list(p.last_known_elr),
            offline_replicas=offline_replicas(brokers, live, p.replicas, p.directories)))
    return out, end if end < count else -1


def _error_response(names: list[str], code: ErrorCode) -> Any:
    return _R.cls(throttle_time_ms=0, topics=[_R.DescribeTopicPartitionsResponseTopic(
        error_code=code, name=n, topic_id=ZERO_UUID, is_internal=False) for n in names])


def describe_topic_partitions(image: MetadataImage, request: Any, listener: str) -> Any:
    """The answer to ``request`` from ``image`` for a client on ``listener``."""
    cursor = request.cursor
    cursor_topic = cursor.topic_name if cursor is not None else ""
    requested = [t.name for t in request.topics]
    fetch_all = not requested
    names = sorted({n for n in (image.topics.by_name if fetch_all else requested)
                    if n >= cursor_topic})
    if cursor is not None and (cursor.partition_index < 0 or (
            not fetch_all and cursor_topic not in names)):
        return _error_response(requested, ErrorCode.INVALID_REQUEST)
    remaining = max(min(MAX_PARTITIONS_PER_RESPONSE, request.response_partition_limit), 1)
    live = _live_brokers(image, listener)
    topics: list[Any] = []
    next_cursor = None
    for name in names:
        if remaining <= 0:
            next_cursor = _R.Cursor(topic_name=name, partition_index=0)
            break
        t = image.topics.by_name.get(name)
        if t is None:
            topics.append(_R.DescribeTopicPartitionsResponseTopic(
                error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name, topic_id=ZERO_UUID,
                is_internal=False))
            continue
        start = cursor.partition_index if cursor is not None and name == cursor_topic else 0
        parts, next_index = _partitions(t, start, remaining, live, image.cluster.brokers)
        topics.append(_R.DescribeTopicPartitionsResponseTopic(
            error_code=ErrorCode.NONE, name=name, topic_id=t.topic_id,
            is_internal=name in INTERNAL_TOPICS, partitions=parts))
        remaining -= len(parts)
        if next_index >= 0:
            next_cursor = _R.Cursor(topic_name=name, partition_index=next_index)
            break
    return _R.cls(throttle_time_ms=0, topics=topics, next_cursor=next_cursor)


class TopicPartitionsApi:
    """``handlers``: DescribeTopicPartitions for the broker listener, from the image."""

    def __init__(self, image: Callable[[], MetadataImage]) -> None:
        self.image = image
        self.handlers: dict[int, Callable[[RequestContext, RequestHeader, Any], Any]] = {
            ApiKey.DESCRIBE_TOPIC_PARTITIONS: self.handle_describe_topic_partitions,
        }

    def handle_describe_topic_partitions(self, ctx: RequestContext, header: RequestHeader,
                                         request: Any) -> Any:
        return describe_topic_partitions(self.image(), request, ctx.connection.listener_name)
