"""The replication throttle: which replicas it applies to, the token bucket, and the rate taken
from dynamic broker configs, for the follower and the leader side."""

from __future__ import annotations

from types import SimpleNamespace

from broker.config import KafkaConfig
from broker.replication.throttle import ReplicationThrottle, TokenBucket, throttled_partitions
from kraft.image import ConfigResourceType, ConfigurationsImage

STATIC = KafkaConfig({
    "node.id": "3", "process.roles": "broker",
    "listeners": "PLAINTEXT://:9092", "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@localhost:9093",
})


def _image(topic: dict[str, str] | None = None, broker: dict[str, str] | None = None,
           default: dict[str, str] | None = None) -> SimpleNamespace:
    resources = {(ConfigResourceType.TOPIC, "t"): topic or {},
                 (ConfigResourceType.BROKER, "3"): broker or {},
                 (ConfigResourceType.BROKER, ""): default or {}}
    return SimpleNamespace(configs=ConfigurationsImage(resources))


def test_throttled_partitions_of_a_broker() -> None:
    assert throttled_partitions("0:3,1:2,2:3", 3) == frozenset({0, 2})
    assert throttled_partitions("0:3, 1:2", 2) == frozenset({1})
    assert throttled_partitions("*", 5) is None
    assert throttled_partitions("x:3,1:y,,4", 3) == frozenset()


def test_token_bucket_fills_at_the_rate_up_to_one_second() -> None:
    b = TokenBucket(1000, now=0.0)
    assert b.available(0.0) == 1000
    b.take(1500, 0.0)  # a whole batch may overdraw
    assert b.available(0.0) == -500 and b.wait_s(0.0) > 0.49
    assert b.available(0.25) == -250
    assert b.available(0.6) > 0 and b.wait_s(0.6) == 0.0
    assert b.available(10.0) == 1000  # at most a second's worth
    b.set_rate(10, 10.0)
    assert b.available(10.0) == 10


def test_follower_throttle_applies_to_named_out_of_sync_replicas_with_a_rate() -> None:
    now = [0.0]
    image = _image(topic={"follower.replication.throttled.replicas": "0:3,1:4"},
                   broker={"follower.replication.throttled.rate": "100"})
    th = ReplicationThrottle(3, STATIC, lambda: image, lambda: now[0])
    assert th.applies("t", 0, in_sync=False)
    assert not th.applies("t", 0, in_sync=True)  # in sync: never slowed down
    assert not th.applies("t", 1, in_sync=False)  # another broker's replica
    assert not th.applies("u", 0, in_sync=False)  # no throttled replicas for that topic
    assert th.applies("t", 0, in_sync=False) and th.allowance() == 100
    th.record(250)
    assert th.allowance() == 0 and 1.0 >= th.wait_s() > 1.0 - 0.01
    now[0] = 2.0  # -150 + 2 s at 100/s
    assert th.applies("t", 0, in_sync=False) and th.allowance() == 50


def test_follower_throttle_rate_from_the_cluster_default_and_none_by_default() -> None:
    image = _image(topic={"follower.replication.throttled.replicas": "*"})
    th = ReplicationThrottle(3, STATIC, lambda: image, lambda: 0.0)
    assert not th.applies("t", 0, in_sync=False)  # Long.MAX_VALUE: not throttled
    image = _image(topic={"follower.replication.throttled.replicas": "*"},
                   default={"follower.replication.throttled.rate": "7"})
    th = ReplicationThrottle(3, STATIC, lambda: image, lambda: 0.0)
    assert th.applies("t", 5, in_sync=False) and th.allowance() == 7


def test_leader_side_reads_its_own_keys() -> None:
    image = _image(topic={"leader.replication.throttled.replicas": "0:3",
                          "follower.replication.throttled.replicas": "1:3"},
                   broker={"leader.replication.throttled.rate": "40",
                           "follower.replication.throttled.rate": "90"})
    leader = ReplicationThrottle(3, STATIC, lambda: image, lambda: 0.0, leader=True)
    follower = ReplicationThrottle(3, STATIC, lambda: image, lambda: 0.0)
    assert leader.applies("t", 0, in_sync=False) and leader.allowance() == 40
    assert not leader.applies("t", 1, in_sync=False)
    assert not leader.applies("t", 0, in_sync=True)
    assert follower.applies("t", 1, in_sync=False) and follower.allowance() == 90
    assert not follower.applies("t", 0, in_sync=False)
