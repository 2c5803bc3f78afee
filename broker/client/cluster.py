"""``KafkaClient``: a cluster seen through its broker listeners. Bootstraps from a server
list, caches Metadata, pools one connection per broker and routes requests to a node, any
node, the controller or a partition leader, retrying retriable errors with backoff and a
metadata refresh between attempts under an overall deadline. Also the ``check`` helpers
that say which error code of a response counts (``any_error``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from broker.client.connection import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT_S,
    KafkaConnection,
)
from broker.client.errors import (
    KafkaAuthenticationError,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NoBrokersAvailableError,
)
from broker.client.metadata import ClusterMetadata, TopicInfo, cluster_from_response
from broker.client.security import ClientSecurity
from broker.protocol.api_keys import API_SPECS, ApiKey, UnknownApiKeyError
from broker.protocol.errors import (
    ErrorCode,
    KafkaError,
    LeaderNotAvailableError,
    NotControllerError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from broker.protocol.messages import metadata as _metadata

logger = logging.getLogger("broker.client")  # one logger name for the whole client

DEFAULT_API_TIMEOUT_S = 60.0
"""Overall deadline of a ``KafkaClient`` call including its retries (``default.api.timeout.ms``)."""
DEFAULT_RETRY_BACKOFF_MS = 100
DEFAULT_RETRY_BACKOFF_MAX_MS = 1000
_RETRY_JITTER = 0.2  # +-20%, as Kafka's ExponentialBackoff


def parse_address(address: str) -> tuple[str, int]:
    """"host:port", "[v6]:port" -> (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad server address {address!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def any_error(response: Any) -> ErrorCode | None:
    """A ``check`` for ``KafkaClient.send_*``: the first non-zero ``error_code`` anywhere in the
    response, non-retriable ones first (so a retry is only asked for when every error found is
    retriable). None when there is none."""
    found: list[int] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item)
            return
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "error_code":
                if value:
                    found.append(value)
            elif isinstance(value, list) or dataclasses.is_dataclass(value):
                walk(value)

    walk(response)
    if not found:
        return None
    for code in found:
        if not error_for_code(code).retriable:
            return _as_error_code(code)
    return _as_error_code(found[0])


def _as_error_code(code: int) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.UNKNOWN_SERVER_ERROR


Check = Callable[[Any], "int | None"]
"""``check(response)`` -> an error code to act on (retry if retriable, else raise), or
None/0 when the response is good. It may also raise a ``KafkaError`` itself."""


@dataclass(slots=True)
class ClientStats:
    """Counters for tests and tools."""

    requests: int = 0  # attempts sent by send_* (retries included)
    retries: int = 0
    metadata_refreshes: int = 0
    connections_opened: int = 0


# -- the cluster client ------------------------------------------------------------------------


class KafkaClient:
    """A Kafka cluster seen through its broker listeners.

    Build it with ``await KafkaClient.bootstrap(["host:port", ...], client_id=...)``.
    ``request_timeout_s`` bounds each attempt; ``api_timeout_s`` the whole call with its
    retries; ``retries`` (None: unlimited) the number of retries. Backoff between attempts is
    ``retry_backoff_ms * 2**n`` capped at ``retry_backoff_max_ms``, with +-20% jitter.
    """

    def __init__(self, bootstrap_servers: Sequence[str], *, client_id: str = "pykraft",
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 api_timeout_s: float = DEFAULT_API_TIMEOUT_S,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 retry_backoff_ms: int = DEFAULT_RETRY_BACKOFF_MS,
                 retry_backoff_max_ms: int = DEFAULT_RETRY_BACKOFF_MAX_MS,
                 retries: int | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 rng: random.Random | None = None,
                 security: ClientSecurity | None = None) -> None:
        if not bootstrap_servers:
            raise ValueError("at least one bootstrap server is required")
        self.bootstrap_servers = [parse_address(s) for s in bootstrap_servers]
        self.client_id = client_id
        self.request_timeout_s = request_timeout_s
        self.api_timeout_s = api_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = max(retry_backoff_max_ms, retry_backoff_ms)
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        self.max_in_flight = max_in_flight
        self.security = security  # TLS and SASL for every connection (broker/client/security.py)
        self.cluster = ClusterMetadata()
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._connections: dict[int, KafkaConnection] = {}
        self._connect_locks: dict[int, asyncio.Lock] = {}
        self._failed_at: dict[int, float] = {}  # node -> loop time of its last connect failure
        self._interest: set[str] = set()  # topics refreshed between retries
        self._refresh_lock = asyncio.Lock()
        self._refresh_generation = 0
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    async def bootstrap(cls, servers: Sequence[str], **kwargs: Any) -> KafkaClient:
        """A client that has fetched cluster metadata from the first of ``servers`` to answer
        (tried in order, rounds repeated with backoff until ``api_timeout_s``)."""
        client = cls(servers, **kwargs)
        try:
            await client._bootstrap()
        except BaseException:
            await client.close()
            raise
        return client

    async def _bootstrap(self) -> None:
        deadline = self._loop.time() + self.api_timeout_s
        errors: list[str] = []
        attempt = 0
        while True:
            for host, port in self.bootstrap_servers:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    conn = await KafkaConnection.connect(
                        host, port, client_id=self.client_id,
                        timeout_s=min(self.connect_timeout_s, remaining),
                        max_response_bytes=self.max_response_bytes,
                        max_in_flight=self.max_in_flight, security=self.security)
                except KafkaAuthenticationError:
                    raise  # wrong credentials: retrying does not help (as Kafka's clients)
                except (KafkaConnectionError, KafkaError) as e:
                    errors.append(f"{host}:{port}: {e}")
                    continue
                self.stats.connections_opened += 1
                try:
                    await self._metadata_on(conn, [], False,
                                            min(self.request_timeout_s, remaining))
                except (KafkaConnectionError, KafkaTimeoutError, KafkaError,
                        KafkaProtocolError) as e:
                    errors.append(f"{host}:{port}: {e}")
                    await conn.close()
                    continue
                self._adopt_bootstrap_connection(conn)
                return
            attempt += 1
            remaining = deadline - self._loop.time()
            if remaining <= 0 or (self.retries is not None and attempt > self.retries):
                raise NoBrokersAvailableError(
                    "no bootstrap server answered: " + "; ".join(errors[-len(
                        self.bootstrap_servers):]))
            await asyncio.sleep(min(self._backoff_s(attempt), remaining))

    def _adopt_bootstrap_connection(self, conn: KafkaConnection) -> None:
        """Keep the bootstrap connection if it reaches a broker the metadata names."""
        for b in self.cluster.brokers.values():
            if (b.host, b.port) == (conn.host, conn.port) and b.node_id not in self._connections:
                conn.node_id = b.node_id
                self._connections[b.node_id] = conn
                return
        self._spawn(conn.close())

    # -- metadata --------------------------------------------------------------------------

    async def metadata(self, topics: Iterable[str] | None = None,
                       allow_auto_topic_creation: bool = False, *,
                       timeout_s: float | None = None) -> ClusterMetadata:
        """Fetch Metadata from any broker (with retries); merge it into ``cluster`` and return
        this answer. ``topics`` None: every topic; a list: those (errors per topic are in
        ``TopicInfo.error_code``; the cache drops topics reported unknown)."""
        names = None if topics is None else list(topics)
        return await self._retrying(
            "Metadata", self._pick_any,
            lambda conn, t: self._metadata_on(conn, names, allow_auto_topic_creation, t),
            None, timeout_s, refresh=False)

    async def _metadata_on(self, conn: KafkaConnection, topics: list[str] | None,
                           auto_create: bool, timeout_s: float) -> ClusterMetadata:
        req_schema = _metadata.REQUEST
        version = conn.version_for(ApiKey.METADATA)
        req_topics: list[Any] | None
        if topics is None:
            req_topics = [] if version == 0 else None
        else:
            req_topics = [req_schema.MetadataRequestTopic(name=t) for t in topics]
        # Before v4 brokers decide auto-creation themselves; the field is absent (default True).
        req = req_schema.cls(topics=req_topics,
                             allow_auto_topic_creation=auto_create or version < 4)
        resp = await conn.send(ApiKey.METADATA, req, version, timeout_s=timeout_s)
        self.stats.metadata_refreshes += 1
        answer = cluster_from_response(resp)
        self._merge(answer, full=topics is None)
        return answer

    def _merge(self, answer: ClusterMetadata, *, full: bool) -> None:
        if full:
            topics = {}
        else:
            topics = dict(self.cluster.topics)
        for name, t in answer.topics.items():
            if t.error_code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                ErrorCode.INVALID_TOPIC_EXCEPTION,
                                ErrorCode.TOPIC_AUTHORIZATION_FAILED):
                topics.pop(name, None)
            elif t.error_code == ErrorCode.LEADER_NOT_AVAILABLE and not t.partitions:
                topics.pop(name, None)  # being created: no partitions yet
            else:
                topics[name] = t
        self.cluster = ClusterMetadata(answer.cluster_id, answer.controller_id,
                                       dict(answer.brokers), topics)
        for node_id in list(self._connections):
            b = answer.brokers.get(node_id)
            conn = self._connections[node_id]
            if b is None or (b.host, b.port) != (conn.host, conn.port):
                # Gone or moved: drop the connection once its requests are answered.
                del self._connections[node_id]
                self._spawn(_close_when_idle(conn))

    async def _refresh_for_retry(self, timeout_s: float) -> None:
        """One metadata refresh for the topics we route by; concurrent callers share it."""
        generation = self._refresh_generation
        async with self._refresh_lock:
            if generation != self._refresh_generation:
                return  # someone refreshed while we waited
            try:
                node = self._pick_any()
                conn = await self._connection(node, timeout_s)
                await self._metadata_on(conn, sorted(self._interest), False, timeout_s)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, KafkaProtocolError) as e:
                logger.debug("metadata refresh failed: %s", e)
                if isinstance(e, KafkaConnectionError | KafkaTimeoutError):
                    await self._rebootstrap(timeout_s)
            finally:
                self._refresh_generation += 1

    async def _rebootstrap(self, timeout_s: float) -> None:
        """Every known broker looks unreachable: ask the bootstrap servers once."""
        if any(not c.closed for c in self._connections.values()):
            return
        for host, port in self.bootstrap_servers:
            try:
                conn = await KafkaConnection.connect(
                    host, port, client_id=self.client_id,
                    timeout_s=min(self.connect_timeout_s, timeout_s),
                    max_response_bytes=self.max_response_bytes,
                    max_in_flight=self.max_in_flight, security=self.security)
            except (KafkaConnectionError, KafkaError):
                continue
            self.stats.connections_opened += 1
            try:
                await self._metadata_on(conn, sorted(self._interest), False, timeout_s)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, KafkaProtocolError):
                await conn.close()
                continue
            self._adopt_bootstrap_connection(conn)
            return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- connections -----------------------------------------------------------------------

    async def connection(self, node_id: int) -> KafkaConnection:
        """The pooled connection to broker ``node_id`` (connecting if needed)."""
        return await self._connection(node_id, self.connect_timeout_s)

    async def _connection(self, node_id: int, timeout_s: float) -> KafkaConnection:
        self._check_open()
        conn = self._connections.get(node_id)
        if conn is not None and not conn.closed:
            return conn
        lock = self._connect_locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            conn = self._connections.get(node_id)
            if conn is not None and not conn.closed:
                return conn
            broker = self.cluster.brokers.get(node_id)
            if broker is None:
                raise KafkaConnectionError(f"node {node_id} is not in the cluster metadata")
            try:
                conn = await KafkaConnection.connect(
                    broker.host, broker.port, client_id=self.client_id,
                    timeout_s=min(self.connect_timeout_s, timeout_s), node_id=node_id,
                    max_response_bytes=self.max_response_bytes,
                    max_in_flight=self.max_in_flight, security=self.security)
            except KafkaConnectionError:
                self._failed_at[node_id] = self._loop.time()
                raise
            self._check_open()
            self.stats.connections_opened += 1
            self._failed_at.pop(node_id, None)
            self._connections[node_id] = conn
            return conn

    def _pick_any(self) -> int:
        """The least loaded broker: connected ones first (fewest in flight), then those that
        did not fail recently, in random order (Kafka's ``leastLoadedNode``)."""
        brokers = list(self.cluster.brokers)
        if not brokers:
            raise NoBrokersAvailableError("the cluster metadata lists no brokers")
        self._rng.shuffle(brokers)

        def load(node: int) -> tuple[int, float, int]:
            conn = self._connections.get(node)
            if conn is not None and not conn.closed:
                return (0, 0.0, conn.in_flight)
            return (1, self._failed_at.get(node, float("-inf")), 0)

        return min(brokers, key=load)

    # -- sending ---------------------------------------------------------------------------

    async def send_to(self, node_id: int, api_key: int, request: Any,
                      version: int | None = None, *, check: Check | None = None,
                      timeout_s: float | None = None) -> Any:
        """Send to broker ``node_id``, retrying retriable failures (see the module doc)."""
        return await self._send_retrying(lambda: node_id, api_key, request, version, check,
                                         timeout_s)

    async def send_to_any(self, api_key: int, request: Any, version: int | None = None, *,
                          check: Check | None = None, timeout_s: float | None = None) -> Any:
        """Send to the least loaded broker, retrying (another broker may be picked)."""
        return await self._send_retrying(self._pick_any, api_key, request, version, check,
                                         timeout_s)

    async def send_to_controller(self, api_key: int, request: Any, version: int | None = None,
                                 *, check: Check | None = None,
                                 timeout_s: float | None = None) -> Any:
        """Send to the controller id from Metadata (admin requests, as librdkafka does); a
        NOT_CONTROLLER answer (through ``check``) refreshes metadata and retries."""
        def pick() -> int:
            node = self.cluster.controller_id
            if node < 0 or node not in self.cluster.brokers:
                raise NotControllerError(f"no known controller (controller id {node})")
            return node

        return await self._send_retrying(pick, api_key, request, version, check, timeout_s)

    async def send_to_leader(self, topic: str, partition: int, api_key: int, request: Any,
                             version: int | None = None, *, check: Check | None = None,
                             timeout_s: float | None = None) -> Any:
        """Send to the leader of ``topic``/``partition`` from the cached metadata (fetching
        metadata for the topic first if needed); retries NOT_LEADER_OR_FOLLOWER and friends
        (when ``check`` reports them) after a refresh."""
        self._interest.add(topic)

        def pick() -> int:
            t = self.cluster.topics.get(topic)
            if t is None:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} is not in the metadata")
            p = t.partitions.get(partition)
            if p is None:
                raise UnknownTopicOrPartitionError(
                    f"partition {topic}-{partition} is not in the metadata")
            if p.leader_id < 0 or p.leader_id not in self.cluster.brokers:
                raise LeaderNotAvailableError(f"{topic}-{partition} has no leader "
                                              f"(leader id {p.leader_id})")
            return p.leader_id

        if topic not in self.cluster.topics:
            # One try, errors swallowed: the retry loop below reports them, with its deadline.
            await self._refresh_for_retry(min(self.request_timeout_s,
                                              self.api_timeout_s if timeout_s is None
                                              else timeout_s))
        return await self._send_retrying(pick, api_key, request, version, check, timeout_s)

    def leader_for(self, topic: str, partition: int) -> int:
        """The cached leader id of a partition (-1 when unknown)."""
        t = self.cluster.topics.get(topic)
        p = t.partitions.get(partition) if t is not None else None
        return p.leader_id if p is not None else -1

    async def _send_retrying(self, pick: Callable[[], int], api_key: int, request: Any,
                             version: int | None, check: Check | None,
                             timeout_s: float | None) -> Any:
        spec = API_SPECS.get(api_key)
        if spec is None:
            raise UnknownApiKeyError(f"no schema for API key {api_key}")

        async def attempt(conn: KafkaConnection, t: float) -> Any:
            return await conn.send(api_key, request, version, timeout_s=t)

        return await self._retrying(spec.name, pick, attempt, check, timeout_s)

    async def _retrying(self, what: str, pick: Callable[[], int],
                        attempt: Callable[[KafkaConnection, float], Awaitable[Any]],
                        check: Check | None, timeout_s: float | None, *,
                        refresh: bool = True) -> Any:
        loop = self._loop
        total_s = self.api_timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + total_s
        attempts = 0
        while True:
            self._check_open()
            attempts += 1
            remaining = deadline - loop.time()
            node = -1
            error: BaseException
            try:
                node = pick()
                conn = await self._connection(node, remaining)
                self.stats.requests += 1
                response = await attempt(conn, min(self.request_timeout_s,
                                                   max(deadline - loop.time(), 0.001)))
                if check is None:
                    return response
                code = check(response)
                if not code:
                    return response
                cls = error_for_code(code)
                raise cls(f"{what} to node {node} (attempt {attempts}): {cls.message}")
            except KafkaError as e:
                if not e.retriable:
                    raise
                error = e
            except (KafkaConnectionError, KafkaTimeoutError) as e:
                error = e
                if isinstance(e, KafkaConnectionError) and node >= 0:
                    self._failed_at[node] = loop.time()
            remaining = deadline - loop.time()
            if self.retries is not None and attempts > self.retries:
                raise error
            if remaining <= 0:
                raise KafkaTimeoutError(
                    f"{what}: gave up after {attempts} attempt(s) within the {total_s:.3g}s "
                    f"deadline; last error: {error}", last_error=error,
                    attempts=attempts) from error
            logger.debug("%s attempt %d failed (%s); retrying", what, attempts, error)
            self.stats.retries += 1
            await asyncio.sleep(min(self._backoff_s(attempts), remaining))
            if refresh or isinstance(error, KafkaConnectionError):
                remaining = deadline - loop.time()
                if remaining > 0:
                    await self._refresh_for_retry(min(self.request_timeout_s, remaining))

    def _backoff_s(self, attempt: int) -> float:
        base = min(self.retry_backoff_ms * 2 ** min(attempt - 1, 30), self.retry_backoff_max_ms)
        return base * (1 + self._rng.uniform(-_RETRY_JITTER, _RETRY_JITTER)) / 1000

    # -- helpers for tools -----------------------------------------------------------------

    async def api_versions(self, node_id: int) -> dict[int, tuple[int, int]]:
        """The API -> (min, max) versions broker ``node_id`` advertises."""
        return dict((await self.connection(node_id)).api_versions)

    async def list_topics(self, *, include_internal: bool = False) -> dict[str, TopicInfo]:
        """Every topic in the cluster (a full metadata refresh)."""
        answer = await self.metadata(None)
        return {name: t for name, t in sorted(answer.topics.items())
                if not t.error_code and (include_internal or not t.is_internal)}

    # -- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaConnectionError("the client is closed")

    async def close(self) -> None:
        """Close every connection (pending requests fail with ``KafkaConnectionError``)."""
        self._closed = True
        conns, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _close_when_idle(conn: KafkaConnection, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while conn.in_flight and not conn.closed and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await conn.close()
