"""DescribeTopicPartitions without a network: its schema round trips, and the answer over a
hand-built metadata image (name order, pagination, errors)."""

from __future__ import annotations

import uuid
from types import MappingProxyType
from typing import Any

from broker.admin.topic_partitions import describe_topic_partitions
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_topic_partitions as dtp
from kraft.image import (
    BrokerRegistration,
    ClusterImage,
    Endpoint,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
    TopicsImage,
)


def test_describe_topic_partitions_schema_round_trips() -> None:
    Q, R = dtp.REQUEST, dtp.RESPONSE
    assert Q.cls().response_partition_limit == 2000 and Q.cls().cursor is None
    for req in (Q.cls(topics=[Q.TopicRequest(name="a")]),
                Q.cls(topics=[], response_partition_limit=5,
                      cursor=Q.Cursor(topic_name="a", partition_index=7))):
        data = Q.encode(req, 0)
        assert Q.decode(data, 0) == (req, len(data))
    resp = R.cls(topics=[R.DescribeTopicPartitionsResponseTopic(
        error_code=0, name="a", topic_id=uuid.uuid4(), is_internal=True, partitions=[
            R.DescribeTopicPartitionsResponsePartition(
                partition_index=3, leader_id=2, leader_epoch=4, replica_nodes=[1, 2],
                isr_nodes=[2], eligible_leader_replicas=[1], last_known_elr=None,
                offline_replicas=[1])])],
        next_cursor=R.Cursor(topic_name="a", partition_index=4))
    data = R.encode(resp, 0)
    assert R.decode(data, 0) == (resp, len(data))
    resp.next_cursor = None
    data = R.encode(resp, 0)
    assert R.decode(data, 0) == (resp, len(data))


# -- DescribeTopicPartitions over an image ----------------------------------------------------


def _image(counts: dict[str, int], *, fenced: frozenset[int] = frozenset()) -> MetadataImage:
    topics = {}
    for name, n in counts.items():
        parts = {i: PartitionRegistration((1, 2, 3), (1, 2), leader=1 + i % 3,
                                          leader_epoch=i, partition_epoch=0,
                                          elr=(3,) if i == 0 else ())
                 for i in range(n)}
        topics[name] = TopicImage(name, uuid.uuid4(), MappingProxyType(parts))
    brokers = {i: BrokerRegistration(i, 1, uuid.uuid4(), (Endpoint("PLAINTEXT", "h", 9000 + i),),
                                     fenced=i in fenced) for i in (1, 2, 3)}
    return MetadataImage(
        cluster=ClusterImage(MappingProxyType(brokers)),
        topics=TopicsImage(by_id={t.topic_id: t for t in topics.values()}, by_name=topics))


def _ask(image: MetadataImage, names: list[str], limit: int = 2000,
         cursor: tuple[str, int] | None = None) -> Any:
    Q = dtp.REQUEST
    req = Q.cls(topics=[Q.TopicRequest(name=n) for n in names], response_partition_limit=limit,
                cursor=None if cursor is None else Q.Cursor(topic_name=cursor[0],
                                                            partition_index=cursor[1]))
    resp = describe_topic_partitions(image, req, "PLAINTEXT")
    # Every answer encodes (the handler's output is what goes on the wire).
    dtp.RESPONSE.encode(resp, 0)
    return resp


def _pages(image: MetadataImage, names: list[str], limit: int) -> list[tuple[str, int]]:
    got: list[tuple[str, int]] = []
    cursor = None
    for _ in range(100):
        resp = _ask(image, names, limit, cursor)
        assert sum(len(t.partitions) for t in resp.topics) <= limit
        got += [(t.name, p.partition_index) for t in resp.topics for p in t.partitions]
        if resp.next_cursor is None:
            return got
        cursor = (resp.next_cursor.topic_name, resp.next_cursor.partition_index)
    raise AssertionError("no end of pages")


def test_topic_partitions_describes_in_name_order() -> None:
    image = _image({"b": 2, "a": 3, "c": 1})
    resp = _ask(image, [])
    assert [t.name for t in resp.topics] == ["a", "b", "c"] and resp.next_cursor is None
    a = resp.topics[0]
    assert a.error_code == 0 and a.topic_id == image.topics.by_name["a"].topic_id
    assert not a.is_internal
    p0 = a.partitions[0]
    assert (p0.partition_index, p0.leader_id, p0.leader_epoch) == (0, 1, 0)
    assert (p0.replica_nodes, p0.isr_nodes, p0.offline_replicas) == ([1, 2, 3], [1, 2], [])
    assert (p0.eligible_leader_replicas, p0.last_known_elr) == ([3], [])
    named = _ask(image, ["c", "a", "c"])
    assert [t.name for t in named.topics] == ["a", "c"]


def test_topic_partitions_pages_give_every_partition_once() -> None:
    image = _image({"a": 5, "b": 7, "c": 1, "d": 0})
    every = [(t, i) for t, n in (("a", 5), ("b", 7), ("c", 1)) for i in range(n)]
    for limit in (1, 2, 3, 5, 6, 13, 2000):
        assert _pages(image, [], limit) == every
        assert _pages(image, ["b", "a"], limit) == [x for x in every if x[0] in "ab"]
    first = _ask(image, [], 6)
    assert (first.next_cursor.topic_name, first.next_cursor.partition_index) == ("b", 1)
    # A full page ending at a topic's end: the cursor names the next topic's start.
    exact = _ask(image, [], 5)
    assert (exact.next_cursor.topic_name, exact.next_cursor.partition_index) == ("b", 0)
    # Limits below 1 still make progress; above 2000 are capped.
    assert len(_ask(image, [], 0).topics[0].partitions) == 1
    assert len(_ask(image, [], -5).topics[0].partitions) == 1


def test_topic_partitions_errors() -> None:
    image = _image({"a": 2}, fenced=frozenset({2}))
    resp = _ask(image, ["a", "zz"])
    assert [(t.name, t.error_code) for t in resp.topics] == [
        ("a", 0), ("zz", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert resp.topics[1].topic_id == uuid.UUID(int=0) and resp.topics[1].partitions == []
    p0, p1 = resp.topics[0].partitions
    assert p0.offline_replicas == [2] and p0.error_code == 0
    assert p1.leader_id == 2 and p1.error_code == ErrorCode.LEADER_NOT_AVAILABLE
    bad_topic = _ask(image, ["a"], cursor=("b", 0))
    assert [(t.name, t.error_code) for t in bad_topic.topics] == [
        ("a", ErrorCode.INVALID_REQUEST)]
    bad_index = _ask(image, ["a"], cursor=("a", -1))
    assert bad_index.topics[0].error_code == ErrorCode.INVALID_REQUEST
    past_end = _ask(image, ["a"], cursor=("a", 9))
    assert past_end.topics[0].partitions == [] and past_end.next_cursor is None
