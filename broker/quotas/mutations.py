"""``controller_mutation_rate`` (KIP-599): partitions created or deleted per second, around
CreateTopics, CreatePartitions and DeleteTopics on a broker, pure apart from the clock.

The rate is a token bucket (Kafka's ``TokenBucket``): it holds up to ``quota * samples *
window`` tokens (``controller.quota.window.num`` and ``.size.seconds``), refills at ``quota``
per second, and each partition created or deleted takes one; it may go below zero. The
throttle time is the time to refill to zero: ``-tokens / quota``.

- Strict (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+): a topic is refused with
  THROTTLING_QUOTA_EXCEEDED while the bucket is below zero, otherwise taken whatever it costs
  (Kafka's ``StrictControllerMutationQuota``: check, then record).
- Permissive (older versions): every topic is taken; the answer carries the throttle time.

The answer's ``throttle_time_ms`` is the throttle time; clients of CreateTopics v3+,
CreatePartitions v1+ and DeleteTopics v2+ get it at once and the connection is muted for it
(KIP-219), older ones get the answer after it.

Unlike Kafka's KRaft controller, which meters the mutations of the whole cluster (the broker
forwards the request in an envelope naming the client), each broker meters the requests it
receives, as it does for the byte rates.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.quotas.resolve import QuotaKeyIndex, Resolved
from kraft.client_quotas import ClientQuotasImage
from kraft.image import MetadataImage

__all__ = ["MutationQuotas", "TokenBucket"]

THROTTLED_MESSAGE = "The throttling quota has been exceeded."
# api key -> (first strict version, first version whose client throttles itself)
_VERSIONS = {
    ApiKey.CREATE_TOPICS: (6, 3),
    ApiKey.CREATE_PARTITIONS: (3, 1),
    ApiKey.DELETE_TOPICS: (5, 2),
}


class TokenBucket:
    __slots__ = ("_last_ms", "tokens")

    def __init__(self, burst: float, now_ms: float) -> None:
        self.tokens = burst
        self._last_ms = now_ms

    def refill(self, rate: float, burst: float, now_ms: float) -> float:
        elapsed = max(0.0, now_ms - self._last_ms)
        self._last_ms = now_ms
        self.tokens = min(burst, self.tokens + rate * elapsed / 1000.0)
        return self.tokens

    def throttle_ms(self, rate: float) -> int:
        return round(-self.tokens / rate * 1000) if self.tokens < 0 else 0


class MutationQuotas:
    def __init__(self, image: Callable[[], MetadataImage], default_partitions: int,
                 samples: int = 11, window_s: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.image = image
        self.default_partitions = default_partitions
        self.burst_s = samples * window_s
        self.clock = clock
        self.index = QuotaKeyIndex(ClientQuotasImage(), "controller_mutation_rate")
        self.active = False
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def update(self, image: ClientQuotasImage) -> None:
        index = QuotaKeyIndex(image, "controller_mutation_rate")
        if index.values != self.index.values:
            self.index = index
            self.active = bool(index)

    def _bucket(self, resolved: Resolved, now_ms: float) -> TokenBucket:
        rate, tags = resolved
        b = self._buckets.get(tags)
        if b is None:
            b = self._buckets[tags] = TokenBucket(rate * self.burst_s, now_ms)
        b.refill(rate, rate * self.burst_s, now_ms)
        return b

    def admit(self, user: str, client_id: str, costs: list[int], strict: bool,
              now_ms: float) -> tuple[list[bool], int]:
        """Which of the topics (their partition counts) go ahead, and the throttle time."""
        resolved = self.index.resolve(user, client_id)
        if resolved is None:
            return [True] * len(costs), 0
        rate = resolved[0]
        bucket = self._bucket(resolved, now_ms)
        admitted = []
        for cost in costs:
            if strict and bucket.tokens < 0:
                admitted.append(False)
                continue
            bucket.tokens -= cost
            admitted.append(True)
        return admitted, bucket.throttle_ms(rate)

    # -- around the handlers ----------------------------------------------------------------

    def _costs(self, api_key: int, request: Any, version: int) -> tuple[list[Any], list[int]]:
        """The request's topic entries and the partitions each creates or deletes."""
        image = self.image()
        if api_key == ApiKey.CREATE_TOPICS:
            entries = list(request.topics)
            costs = []
            for t in entries:
                if t.assignments:
                    costs.append(len(t.assignments))
                else:
                    costs.append(t.num_partitions if t.num_partitions > 0
                                 else self.default_partitions)
            return entries, costs
        if api_key == ApiKey.CREATE_PARTITIONS:
            entries = list(request.topics)
            costs = []
            for t in entries:
                topic = image.topics.by_name.get(t.name)
                have = len(topic.partitions) if topic is not None else 0
                costs.append(max(0, t.count - have))
            return entries, costs
        entries = list(request.topics if version >= 6 else request.topic_names)
        costs = []
        for t in entries:
            if version >= 6:
                topic = (image.topics.by_name.get(t.name) if t.name is not None
                         else image.topics.by_id.get(t.topic_id))
            else:
                topic = image.topics.by_name.get(t)
            costs.append(len(topic.partitions) if topic is not None else 0)
        return entries, costs

    @staticmethod
    def _set_entries(api_key: int, request: Any, version: int, entries: list[Any]) -> None:
        if api_key == ApiKey.DELETE_TOPICS and version < 6:
            request.topic_names = entries
        else:
            request.topics = entries

    @staticmethod
    def _refused(api_key: int, R: Any, entry: Any, version: int) -> Any:
        code = ErrorCode.THROTTLING_QUOTA_EXCEEDED
        if api_key == ApiKey.CREATE_TOPICS:
            return R.CreatableTopicResult(name=entry.name, error_code=code,
                                          error_message=THROTTLED_MESSAGE)
        if api_key == ApiKey.CREATE_PARTITIONS:
            return R.CreatePartitionsTopicResult(name=entry.name, error_code=code,
                                                 error_message=THROTTLED_MESSAGE)
        if version >= 6:
            return R.DeletableTopicResult(name=entry.name, topic_id=entry.topic_id,
                                          error_code=code, error_message=THROTTLED_MESSAGE)
        return R.DeletableTopicResult(name=entry, error_code=code,
                                      error_message=THROTTLED_MESSAGE)

    def wrap(self, api_key: int, R: Any, results_field: str,
             handler: Callable[[Any, Any, Any], Awaitable[Any]],
             throttle: Callable[[Any, Any, Any, int, int], Any]) -> Callable[..., Any]:
        """``R``: the API's response schema; ``results_field``: its per-topic list;
        ``throttle``: ``ClientQuotas._throttle`` (throttle time, mute or delay)."""
        strict_from, client_from = _VERSIONS[api_key]

        async def handle(ctx: Any, header: Any, request: Any) -> Any:
            if not self.active:
                return await handler(ctx, header, request)
            v = header.api_version
            entries, costs = self._costs(api_key, request, v)
            admitted, throttle_ms = self.admit(
                ctx.connection.principal.name, header.client_id or "", costs,
                strict=v >= strict_from, now_ms=self.clock() * 1000.0)
            refused = [e for e, ok in zip(entries, admitted, strict=True) if not ok]
            if refused:
                kept = [e for e, ok in zip(entries, admitted, strict=True) if ok]
                self._set_entries(api_key, request, v, kept)
                if kept:
                    response = await handler(ctx, header, request)
                else:
                    response = R.cls(throttle_time_ms=0, **{results_field: []})
                getattr(response, results_field).extend(
                    self._refused(api_key, R, e, v) for e in refused)
            else:
                response = await handler(ctx, header, request)
            if throttle_ms <= 0:
                return response
            out = throttle(ctx, header, response, throttle_ms, client_from)
            return await out if hasattr(out, "__await__") else out

        return handle
