"""Client quotas around the broker's handlers: the managers of ``producer_byte_rate`` and
``consumer_byte_rate`` fed from the metadata image, and the Produce and Fetch hooks;
``request_percentage`` through the network server's ``request_quota`` hook (set only while
such a quota exists); ``controller_mutation_rate`` around the topic admin APIs is in
``mutations.py``.

With no quota of a key configured, its hook is one attribute check before the handler.
Otherwise (Kafka's KafkaApis):

- Produce records the request's size for its user (``ctx.principal``) and client id after the
  append; the throttle time goes into the response.
- Fetch from a consumer (not a follower) caps the request's ``max_bytes`` at what the quota
  allows over its window, then records the response's record bytes; a throttled consumer gets
  the answer without records (the bytes are taken back from its meter), to fetch the same
  offsets again once the throttle time is over.
- KIP-219: a client of Produce v6+ / Fetch v8+ gets the response at once with
  ``throttle_time_ms`` and its connection is muted for that time after it (the network server
  stops reading it, ``ConnectionInfo.mute_until``); an older one gets the response only after
  the throttle time, as Kafka does for clients that do not throttle themselves.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import create_partitions, create_topics, delete_topics
from broker.quotas.manager import QuotaManager
from broker.quotas.mutations import MutationQuotas

__all__ = ["FETCH_CLIENT_THROTTLE_VERSION", "PRODUCE_CLIENT_THROTTLE_VERSION", "ClientQuotas"]

# The first versions whose clients throttle themselves (KIP-219, Kafka's
# ``shouldClientThrottle``).
PRODUCE_CLIENT_THROTTLE_VERSION = 6
FETCH_CLIENT_THROTTLE_VERSION = 8

Handler = Callable[[Any, Any, Any], Any]


# Requests only other nodes send: not metered by request_percentage.
_EXEMPT = frozenset({ApiKey.WRITE_TXN_MARKERS, ApiKey.API_VERSIONS})


def _user(ctx: Any) -> str:
    return ctx.connection.principal.name


def _with_throttle(response: Any, ms: int) -> Any:
    if response is not None and hasattr(response, "throttle_time_ms"):
        response.throttle_time_ms = max(response.throttle_time_ms or 0, ms)
    return response


# Admin APIs metered by controller_mutation_rate: their response schema and per-topic list.
_MUTATIONS = {
    ApiKey.CREATE_TOPICS: (create_topics.RESPONSE, "topics"),
    ApiKey.CREATE_PARTITIONS: (create_partitions.RESPONSE, "results"),
    ApiKey.DELETE_TOPICS: (delete_topics.RESPONSE, "responses"),
}


class ClientQuotas:
    def __init__(self, samples: int = 11, window_s: int = 1,
                 clock: Callable[[], float] = time.monotonic, *,
                 mutations: MutationQuotas | None = None) -> None:
        window_ms = window_s * 1000
        self.produce = QuotaManager("producer_byte_rate", samples, window_ms)
        self.fetch = QuotaManager("consumer_byte_rate", samples, window_ms)
        # Kafka's ClientRequestQuotaManager: at most one window of throttle per request.
        self.request = QuotaManager("request_percentage", samples, window_ms,
                                    max_throttle_ms=window_ms)
        self.mutations = mutations
        self.clock = clock
        self._server: Any = None

    @classmethod
    def from_config(cls, config: Any, image: Callable[[], Any]) -> ClientQuotas:
        return cls(config.get("quota.window.num"), config.get("quota.window.size.seconds"),
                   mutations=MutationQuotas(
                       image, config.get("num.partitions"),
                       config.get("controller.quota.window.num"),
                       config.get("controller.quota.window.size.seconds")))

    def on_metadata(self, delta: Any, image: Any) -> None:
        """A metadata publisher: the new quotas apply to the next request."""
        if delta is None or delta.client_quotas_changed():
            self.produce.update(image.client_quotas)
            self.fetch.update(image.client_quotas)
            self.request.update(image.client_quotas)
            if self.mutations is not None:
                self.mutations.update(image.client_quotas)
            self._hook_server()

    def attach(self, server: Any) -> None:
        """The network server whose ``request_quota`` hook follows request_percentage."""
        self._server = server
        self._hook_server()

    def _hook_server(self) -> None:
        if self._server is not None:
            self._server.request_quota = self.on_request if self.request.active else None

    # -- request_percentage -------------------------------------------------------------------

    def on_request(self, ctx: Any, header: Any, request: Any, result: Any,
                   seconds: float) -> Any:
        """The network server's hook: record the handler time of a client request on the
        broker listener as a percentage of one thread (Kafka's ClientRequestQuotaManager);
        over the quota, the response carries the larger of its own throttle time and this
        one, and the connection is muted for it. Requests between nodes (a follower's Fetch,
        WriteTxnMarkers) are exempt, as they are in Kafka."""
        if ctx.connection.listener_kind != "broker" or header.api_key in _EXEMPT:
            return result
        if header.api_key == ApiKey.FETCH:
            replica_id = request.replica_id
            if header.api_version >= 15 and request.replica_state is not None:
                replica_id = request.replica_state.replica_id
            if replica_id >= 0:
                return result
        now = self.clock()
        ms = self.request.record(_user(ctx), header.client_id or "", seconds * 100.0,
                                 now * 1000.0)
        if ms <= 0:
            return result
        until = now + ms / 1000.0
        ctx.connection.mute_until = max(ctx.connection.mute_until, until)
        if inspect.isawaitable(result):
            return self._request_later(result, ms)
        return _with_throttle(result, ms)

    @staticmethod
    async def _request_later(pending: Any, ms: int) -> Any:
        return _with_throttle(await pending, ms)

    def wrap_mutations(self, handlers: dict[int, Any]) -> None:
        """CreateTopics, CreatePartitions and DeleteTopics under controller_mutation_rate."""
        assert self.mutations is not None
        for key, (R, field) in _MUTATIONS.items():
            if key in handlers:
                handlers[key] = self.mutations.wrap(key, R, field, handlers[key],
                                                    self._throttle)

    # -- throttling ---------------------------------------------------------------------------

    def _throttle(self, ctx: Any, header: Any, response: Any, throttle_ms: int,
                  client_version: int) -> Any:
        """``response`` (or None) with its throttle time, the connection muted after it; for
        clients older than ``client_version``, a coroutine answering after the delay."""
        if hasattr(response, "throttle_time_ms"):  # not None (acks=0) nor CLOSE
            response.throttle_time_ms = throttle_ms
        if header.api_version >= client_version:
            ctx.connection.mute_until = max(ctx.connection.mute_until,
                                            self.clock() + throttle_ms / 1000.0)
            return response
        return self._delayed(response, throttle_ms)

    @staticmethod
    async def _delayed(response: Any, throttle_ms: int) -> Any:
        await asyncio.sleep(throttle_ms / 1000.0)
        return response

    # -- Produce ------------------------------------------------------------------------------

    def wrap_produce(self, handler: Handler) -> Handler:
        manager = self.produce

        def produce(ctx: Any, header: Any, request: Any) -> Any:
            if not manager.active:
                return handler(ctx, header, request)
            result = handler(ctx, header, request)
            if inspect.isawaitable(result):
                return self._produce_later(ctx, header, result, len(ctx.frame))
            return self._produce_done(ctx, header, result, len(ctx.frame))

        return produce

    def _produce_done(self, ctx: Any, header: Any, response: Any, size: int) -> Any:
        ms = self.produce.record(_user(ctx), header.client_id or "", size,
                                 self.clock() * 1000.0)
        if ms <= 0:
            return response
        return self._throttle(ctx, header, response, ms, PRODUCE_CLIENT_THROTTLE_VERSION)

    async def _produce_later(self, ctx: Any, header: Any, pending: Any, size: int) -> Any:
        out = self._produce_done(ctx, header, await pending, size)
        return await out if inspect.isawaitable(out) else out

    # -- Fetch --------------------------------------------------------------------------------

    def wrap_fetch(self, handler: Handler) -> Handler:
        manager = self.fetch

        def fetch(ctx: Any, header: Any, request: Any) -> Any:
            if not manager.active:
                return handler(ctx, header, request)
            v = header.api_version
            replica_id = request.replica_id
            if v >= 15 and request.replica_state is not None:
                replica_id = request.replica_state.replica_id
            if replica_id >= 0:
                return handler(ctx, header, request)
            user, client_id = _user(ctx), header.client_id or ""
            cap = manager.max_value_in_window(user, client_id)
            if cap is None:
                return handler(ctx, header, request)
            if v >= 3:
                request.max_bytes = max(1, min(request.max_bytes, int(cap)))
            result = handler(ctx, header, request)
            if inspect.isawaitable(result):
                return self._fetch_later(ctx, header, result)
            return self._fetch_done(ctx, header, result)

        return fetch

    def _fetch_done(self, ctx: Any, header: Any, response: Any) -> Any:
        if response is None or response.error_code:
            return response
        size = 0
        for t in response.responses:
            for p in t.partitions:
                if p.records:
                    size += len(p.records)
        user, client_id = _user(ctx), header.client_id or ""
        now_ms = self.clock() * 1000.0
        ms = self.fetch.record(user, client_id, size, now_ms)
        if ms <= 0:
            return response
        if size:
            self.fetch.unrecord(user, client_id, size, now_ms)
            for t in response.responses:
                for p in t.partitions:
                    p.records = b""
        return self._throttle(ctx, header, response, ms, FETCH_CLIENT_THROTTLE_VERSION)

    async def _fetch_later(self, ctx: Any, header: Any, pending: Any) -> Any:
        out = self._fetch_done(ctx, header, await pending)
        return await out if inspect.isawaitable(out) else out
