"""The replication throttle (KIP-73, Kafka's ReplicationQuotaManager for LEADER and FOLLOWER),
used while partitions are reassigned (``kafka-reassign-partitions --throttle``).

Each side has its own pair of configs: ``follower.replication.throttled.replicas`` /
``follower.replication.throttled.rate`` for this broker's fetchers
(``broker.replication.fetcher``), ``leader.replication.throttled.replicas`` /
``leader.replication.throttled.rate`` for what this broker's leaders send followers
(``ReplicaManager.read``). A replica on this broker is throttled when its topic's list names
it (``partition:broker`` entries with this broker's id, or ``*``) and the replica being
replicated to is out of the ISR (Kafka throttles only replicas that are not in sync, so a
throttle never slows a follower the high watermark waits for). All throttled replicas of one
side share a token bucket filled at the rate (bytes/s: the dynamic config of this broker,
else the cluster-wide default, else the static file; Long.MAX_VALUE is no throttle) holding at
most one second of it: a throttled partition is read only while the bucket is not empty, for
at most what the bucket holds (still at least one batch), and every byte read is taken from
the bucket.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kraft.config_defs import LONG_MAX

if TYPE_CHECKING:
    from broker.config import KafkaConfig
    from kraft.image import MetadataImage

__all__ = ["FOLLOWER_RATE", "FOLLOWER_REPLICAS", "LEADER_RATE", "LEADER_REPLICAS",
           "ReplicationThrottle", "TokenBucket", "throttled_partitions"]

FOLLOWER_RATE = "follower.replication.throttled.rate"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
LEADER_RATE = "leader.replication.throttled.rate"
LEADER_REPLICAS = "leader.replication.throttled.replicas"
MAX_WAIT_S = 1.0


@functools.lru_cache(maxsize=256)
def throttled_partitions(value: str, broker_id: int) -> frozenset[int] | None:
    """The partitions a ``*.replication.throttled.replicas`` value throttles on ``broker_id``:
    None for every partition (``*``), else the ids of the ``partition:broker`` entries naming
    this broker (entries that do not parse are ignored)."""
    out = set()
    for entry in value.split(","):
        entry = entry.strip()
        if entry == "*":
            return None
        partition, _, broker = entry.partition(":")
        try:
            if int(broker) == broker_id:
                out.add(int(partition))
        except ValueError:
            continue
    return frozenset(out)


class TokenBucket:
    """Bytes allowed at ``rate`` per second, at most one second's worth saved up. The level
    may go below zero (a fetch brings at least one whole batch); nothing is allowed until it
    is refilled above zero."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self._at = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
        self.tokens = min(self.tokens, rate)

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def take(self, n: int, now: float) -> None:
        self._refill(now)
        self.tokens -= n

    def wait_s(self, now: float) -> float:
        """Seconds until something is allowed again (bounded by MAX_WAIT_S)."""
        self._refill(now)
        if self.tokens > 0 or self.rate <= 0:
            return 0.0 if self.tokens > 0 else MAX_WAIT_S
        return min(MAX_WAIT_S, -self.tokens / self.rate + 0.001)


class ReplicationThrottle:
    """One side's throttle (``leader`` False: the follower's): is this replica throttled, how
    many bytes may its next read bring, and record what it brought."""

    def __init__(self, node_id: int, config: KafkaConfig, image: Callable[[], MetadataImage],
                 monotonic: Callable[[], float], *, leader: bool = False) -> None:
        self.node_id = node_id
        self.config = config
        self._image = image
        self._now = monotonic
        self._bucket: TokenBucket | None = None
        self.rate_key = LEADER_RATE if leader else FOLLOWER_RATE
        self.replicas_key = LEADER_REPLICAS if leader else FOLLOWER_REPLICAS

    def rate(self) -> int:
        """The rate in force (bytes/s; LONG_MAX: none)."""
        configs = self._image().configs
        for raw in (configs.broker_config(str(self.node_id)).get(self.rate_key),
                    configs.broker_config("").get(self.rate_key)):
            if raw is not None:
                try:
                    return max(0, int(raw))
                except ValueError:
                    continue
        return int(self.config.get(self.rate_key))

    def applies(self, topic: str, partition: int, in_sync: bool) -> bool:
        """Is this replica of ``topic``-``partition`` throttled (named, replicating to a
        replica out of the ISR (``in_sync`` False), with a rate set)? Also brings the bucket to
        the rate in force."""
        if in_sync:
            return False
        value = self._image().configs.topic_config(topic).get(self.replicas_key)
        if not value:
            return False
        parts = throttled_partitions(value, self.node_id)
        if parts is not None and partition not in parts:
            return False
        rate = self.rate()
        if rate >= LONG_MAX:
            return False
        now = self._now()
        if self._bucket is None:
            self._bucket = TokenBucket(rate, now)
        elif self._bucket.rate != rate:
            self._bucket.set_rate(rate, now)
        return True

    def allowance(self) -> int:
        """Bytes the next throttled fetch may ask for (0: none now)."""
        assert self._bucket is not None, "applies() first"
        return max(0, int(self._bucket.available(self._now())))

    def wait_s(self) -> float:
        assert self._bucket is not None, "applies() first"
        return self._bucket.wait_s(self._now())

    def record(self, n: int) -> None:
        if self._bucket is not None and n:
            self._bucket.take(n, self._now())
