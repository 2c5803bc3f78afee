"""The follower side of the replication throttle (KIP-73, Kafka's ReplicationQuotaManager for
FOLLOWER), used while partitions are reassigned (``kafka-reassign-partitions --throttle``).

A replica on this broker is throttled when its topic's ``follower.replication.throttled.replicas``
names it (``partition:broker`` entries with this broker's id, or ``*``) and it is out of the
ISR (Kafka's fetcher throttles only replicas that are not in sync, so a throttle never slows a
follower the high watermark waits for). The fetches of all throttled replicas share one token
bucket filled at ``follower.replication.throttled.rate`` bytes/s (the dynamic config of this
broker, else the cluster-wide default, else the static file; Long.MAX_VALUE is no throttle)
holding at most one second of it: a throttled partition is fetched only while the bucket is
not empty and asks for at most what the bucket holds (a fetch still returns at least one
batch), and every byte it brings is taken from the bucket.

``leader.replication.throttled.rate`` and ``leader.replication.throttled.replicas`` are
accepted (configs, DescribeConfigs) but not enforced: the leader sends what followers ask for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kraft.config_defs import LONG_MAX

if TYPE_CHECKING:
    from broker.config import KafkaConfig
    from kraft.image import MetadataImage

__all__ = ["FOLLOWER_RATE", "FOLLOWER_REPLICAS", "FollowerThrottle", "TokenBucket",
           "throttled_partitions"]

FOLLOWER_RATE = "follower.replication.throttled.rate"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
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


class FollowerThrottle:
    """What the fetchers of this broker ask: is this replica throttled, how many bytes may its
    next fetch bring, and record what it brought."""

    def __init__(self, node_id: int, config: KafkaConfig, image: Callable[[], MetadataImage],
                 monotonic: Callable[[], float]) -> None:
        self.node_id = node_id
        self.config = config
        self._image = image
        self._now = monotonic
        self._bucket: TokenBucket | None = None

    def rate(self) -> int:
        """The rate in force (bytes/s; LONG_MAX: none)."""
        configs = self._image().configs
        for raw in (configs.broker_config(str(self.node_id)).get(FOLLOWER_RATE),
                    configs.broker_config("").get(FOLLOWER_RATE)):
            if raw is not None:
                try:
                    return max(0, int(raw))
                except ValueError:
                    continue
        return int(self.config.get(FOLLOWER_RATE))

    def applies(self, topic: str, partition: int, isr: tuple[int, ...]) -> bool:
        """Is this replica of ``topic``-``partition`` throttled (named, out of the ISR, with a
        rate set)? Also brings the bucket to the rate in force."""
        if self.node_id in isr:
            return False
        value = self._image().configs.topic_config(topic).get(FOLLOWER_REPLICAS)
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
