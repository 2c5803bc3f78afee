"""``broker.client`` against real in-process servers over real sockets (no mocks).

Each test runs its own event loop (uvloop when installed; the pipelining test also on plain
asyncio) with one or more ``KafkaServer``s on 127.0.0.1 port 0. ``SpecialHandler`` wraps
``ApiDispatcher`` and reacts to special Metadata topic names: "__hang" (never answers),
"__gate" (waits for the test), "__sleep" (a short random sleep), "__noreply" (no response, like
Produce acks=0), "__flaky" (NOT_LEADER_OR_FOLLOWER for the first ``flaky_failures`` calls),
"__denied" (TOPIC_AUTHORIZATION_FAILED). ``TwoBrokerCluster`` serves Metadata and ListOffsets
from a shared leader table, to exercise leader routing.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest

from broker.client import (
    CLIENT_SOFTWARE_NAME,
    CLIENT_SOFTWARE_VERSION,
    BrokerInfo,
    KafkaClient,
    KafkaConnection,
    KafkaConnectionError,
    KafkaTimeoutError,
    NoBrokersAvailableError,
    any_error,
    choose_version,
    parse_address,
)
from broker.network.context import ListenerSpec, RequestContext
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import new_event_loop
from broker.network.server import KafkaServer
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import (
    ErrorCode,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)
from broker.protocol.messages import broker_heartbeat, list_offsets, metadata

MD_REQ, MD_RESP = metadata.REQUEST, metadata.RESPONSE
LO_REQ, LO_RESP = list_offsets.REQUEST, list_offsets.RESPONSE
HB_REQ, HB_RESP = broker_heartbeat.REQUEST, broker_heartbeat.RESPONSE
CLUSTER_ID = "test-cluster"
TEST_TIMEOUT_S = 30.0


def run(main: Callable[[], Coroutine[Any, Any, Any]],
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop) -> Any:
    """Run ``main()`` on a fresh loop; fail on anything the loop's exception handler saw
    (e.g. "exception was never retrieved")."""
    errors: list[dict[str, Any]] = []

    async def wrapper() -> Any:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))
        return await asyncio.wait_for(main(), TEST_TIMEOUT_S)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(wrapper())
    assert not errors, errors
    return result


def md_request(*names: str) -> Any:
    return MD_REQ.cls(topics=[MD_REQ.MetadataRequestTopic(name=n) for n in names],
                      allow_auto_topic_creation=False)


def dead_port() -> int:
    """A port nothing listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SpecialHandler:
    def __init__(self, node_id: int = 1, flaky_failures: int = 2) -> None:
        self.dispatcher = ApiDispatcher(node_id=node_id, cluster_id=CLUSTER_ID)
        self.gate = asyncio.Event()
        # "__hang" waits for this; set at the end of a test. (KafkaServer.stop() cancels the
        # handler tasks of connections still open only, so a hung handler of a connection the
        # client closed would outlive the loop.)
        self.release = asyncio.Event()
        self.flaky_failures = flaky_failures
        self.calls: dict[str, int] = {}
        self.correlation_ids: list[int] = []
        self.software: tuple[str, str] | None = None

    def __call__(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        self.correlation_ids.append(header.correlation_id)
        self.software = (ctx.client_software_name, ctx.client_software_version)
        if header.api_key == ApiKey.METADATA and request.topics:
            name = request.topics[0].name or ""
            if name.startswith("__"):
                self.calls[name] = self.calls.get(name, 0) + 1
                return self.special(name, ctx, header, request)
        return self.dispatcher.handle(ctx, header, request)

    def special(self, name: str, ctx: RequestContext, header: Any, request: Any) -> Any:
        if name == "__noreply":
            return None
        if name == "__flaky":
            code = ErrorCode.NOT_LEADER_OR_FOLLOWER \
                if self.calls[name] <= self.flaky_failures else ErrorCode.NONE
            return self.topic_answer(ctx, header, request, name, code)
        if name == "__denied":
            return self.topic_answer(ctx, header, request, name,
                                     ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        return self.slow(name, ctx, header, request)

    def topic_answer(self, ctx: RequestContext, header: Any, request: Any, name: str,
                     code: int) -> Any:
        resp = self.dispatcher.handle(ctx, header, request)
        resp.topics = [MD_RESP.MetadataResponseTopic(error_code=code, name=name)]
        return resp

    async def slow(self, name: str, ctx: RequestContext, header: Any, request: Any) -> Any:
        if name == "__hang":
            await self.release.wait()
        elif name == "__gate":
            await self.gate.wait()
        elif name.startswith("__sleep"):
            await asyncio.sleep(random.random() / 200)
        return self.dispatcher.handle(ctx, header, request)


async def start_server(handler: Any, *, port: int = 0,
                       advertised: Mapping[int, tuple[int, int]] | None = None,
                       kind: str = "broker", **kwargs: Any) -> KafkaServer:
    if advertised is None:
        advertised = dict(handler.dispatcher.advertised)
    server = KafkaServer([ListenerSpec("L", port=port, kind=kind)], handler,
                         advertised=advertised, **kwargs)
    await server.start()
    return server


async def stop_server(server: KafkaServer, handler: SpecialHandler) -> None:
    handler.release.set()
    handler.gate.set()
    await asyncio.sleep(0.01)  # let released handlers finish
    await server.stop()


def addr(server: KafkaServer) -> str:
    return f"127.0.0.1:{server.port('L')}"


# -- bootstrap, metadata, negotiation ------------------------------------------------------


def test_bootstrap_skips_a_dead_server_and_caches_metadata() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        port = server.port("L")
        try:
            client = await KafkaClient.bootstrap([f"127.0.0.1:{dead_port()}", addr(server)],
                                                 client_id="t", retry_backoff_ms=10)
            async with client:
                assert client.cluster.brokers == {1: BrokerInfo(1, "127.0.0.1", port, None)}
                assert client.cluster.controller_id == 1
                assert client.cluster.cluster_id == CLUSTER_ID
                answer = await client.metadata()
                assert list(answer.brokers) == [1] and answer.topics == {}
                assert await client.list_topics() == {}
                # The bootstrap connection was kept as node 1's.
                assert client.stats.connections_opened == 1
                assert await client.api_versions(1) == server.advertised_for("L")
                assert client.stats.connections_opened == 1
            # Bootstrapping from nothing but dead servers fails clearly, within the deadline.
            t0 = time.monotonic()
            with pytest.raises(NoBrokersAvailableError, match="no bootstrap server answered"):
                await KafkaClient.bootstrap([f"127.0.0.1:{dead_port()}"], api_timeout_s=0.5,
                                            retry_backoff_ms=20)
            assert time.monotonic() - t0 < 3
        finally:
            await stop_server(server, handler)

    run(main)


def test_api_versions_v3_negotiated_with_software_name() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            async with await KafkaConnection.connect("127.0.0.1", server.port("L"),
                                                     client_id="neg") as conn:
                assert conn.api_versions_version == 3
                assert conn.api_versions == server.advertised_for("L")
                assert conn.version_for(ApiKey.METADATA) == 13
                assert conn.version_for(ApiKey.API_VERSIONS) == 4
                resp = await conn.send(ApiKey.METADATA, md_request())
                assert resp.brokers[0].node_id == 1
                assert handler.software == (CLIENT_SOFTWARE_NAME, CLIENT_SOFTWARE_VERSION)
                assert server.stats.api_versions_requests == 1
        finally:
            await stop_server(server, handler)

    run(main)


def test_api_versions_falls_back_on_error_35() -> None:
    """A broker that takes ApiVersions 0-2 only answers v3 with error 35 and a v0 body; the
    client retries at v2 and then picks Metadata v4 from the broker's 0-4."""
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler, advertised={ApiKey.API_VERSIONS: (0, 2),
                                                         ApiKey.METADATA: (0, 4)})
        try:
            async with await KafkaConnection.connect("127.0.0.1", server.port("L")) as conn:
                assert conn.api_versions_version == 2
                assert conn.api_versions == {ApiKey.API_VERSIONS: (0, 2), ApiKey.METADATA: (0, 4)}
                assert server.stats.api_versions_requests == 2
                assert conn.version_for(ApiKey.METADATA) == 4
                resp = await conn.send(ApiKey.METADATA, md_request("x"))
                assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                # Metadata v1 has no allow_auto_topic_creation: send the default.
                resp = await conn.send(ApiKey.METADATA, MD_REQ.cls(topics=None), version=1)
                assert [b.node_id for b in resp.brokers] == [1]
        finally:
            await stop_server(server, handler)

    run(main)


def test_no_common_version_is_a_clear_error() -> None:
    assert choose_version(ApiKey.METADATA, (0, 20)) == 13
    with pytest.raises(UnsupportedVersionError, match="no common version of Metadata"):
        choose_version(ApiKey.METADATA, (14, 15))
    with pytest.raises(UnsupportedVersionError, match="outside our versions"):
        choose_version(ApiKey.METADATA, (0, 20), requested=14)

    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler, advertised={ApiKey.METADATA: (0, 4)})
        try:
            async with await KafkaConnection.connect("127.0.0.1", server.port("L")) as conn:
                req = LO_REQ.cls(replica_id=-1, topics=[])
                with pytest.raises(UnsupportedVersionError,
                                   match="does not support ListOffsets"):
                    await conn.send(ApiKey.LIST_OFFSETS, req)
                with pytest.raises(UnsupportedVersionError,
                                   match=r"Metadata \(key 3\) v9 is outside the broker's "
                                         r"versions 0-4"):
                    await conn.send(ApiKey.METADATA, md_request(), version=9)
                # Nothing was sent: the connection is still fine.
                assert not conn.closed
                assert (await conn.send(ApiKey.METADATA, md_request())).brokers
            client = await KafkaClient.bootstrap([addr(server)])
            async with client:
                with pytest.raises(UnsupportedVersionError):
                    await client.send_to(1, ApiKey.LIST_OFFSETS, LO_REQ.cls(replica_id=-1))
                assert client.stats.retries == 0
        finally:
            await stop_server(server, handler)

    run(main)


# -- one connection: pipelining, failures, limits ------------------------------------------


@pytest.mark.parametrize("loop_factory", [new_event_loop, asyncio.new_event_loop],
                         ids=["default", "asyncio"])
def test_200_pipelined_requests_on_one_connection(
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            async with await KafkaConnection.connect("127.0.0.1", server.port("L")) as conn:
                names = [f"__sleep{i}" if i % 2 else f"topic-{i}" for i in range(200)]
                tasks = [asyncio.ensure_future(conn.send(ApiKey.METADATA, md_request(n)))
                         for n in names]
                await asyncio.sleep(0)
                assert conn.in_flight == 200  # all sent before any answer
                responses = await asyncio.gather(*tasks)
                for name, resp in zip(names, responses, strict=True):
                    assert [t.name for t in resp.topics] == [name]
                ids = handler.correlation_ids[-200:]
                assert len(set(ids)) == 200
                assert conn.in_flight == 0
                assert server.stats.max_in_flight_seen > 1
                assert server.connection_count == 1
        finally:
            await stop_server(server, handler)

    run(main, loop_factory)


def test_server_stop_fails_pending_fast_then_client_reconnects() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        port = server.port("L")
        client = await KafkaClient.bootstrap([addr(server)], retry_backoff_ms=20,
                                             retry_backoff_max_ms=100, request_timeout_s=5)
        try:
            conn = await client.connection(1)
            tasks = [asyncio.ensure_future(conn.send(ApiKey.METADATA, md_request("__hang")))
                     for _ in range(5)]
            while server.in_flight() < 5:
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            await server.stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert time.monotonic() - t0 < 1.0
            for r in results:
                assert isinstance(r, KafkaConnectionError) and isinstance(r, ConnectionError), r
                assert "lost" in str(r)
            assert conn.closed
            with pytest.raises(KafkaConnectionError, match="closed"):
                await conn.send(ApiKey.METADATA, md_request())

            # A request made while the server is down succeeds once it is back (retries with
            # backoff, reconnecting).
            pending = asyncio.ensure_future(client.send_to(1, ApiKey.METADATA, md_request()))
            await asyncio.sleep(0.3)
            assert not pending.done()
            server = await start_server(handler, port=port)
            resp = await pending
            assert resp.brokers[0].port == port
            assert client.stats.retries >= 1
            new_conn = await client.connection(1)
            assert new_conn is not conn and not new_conn.closed
            # And the next one just uses the new connection.
            opened = client.stats.connections_opened
            await client.send_to(1, ApiKey.METADATA, md_request())
            assert client.stats.connections_opened == opened
        finally:
            await client.close()
            await stop_server(server, handler)

    run(main)


def test_request_timeout() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            conn = await KafkaConnection.connect("127.0.0.1", server.port("L"))
            other = asyncio.ensure_future(conn.send(ApiKey.METADATA, md_request("__gate"),
                                                    timeout_s=10))
            t0 = time.monotonic()
            with pytest.raises(KafkaTimeoutError, match="no response within 0.2s"):
                await conn.send(ApiKey.METADATA, md_request("__hang"), timeout_s=0.2)
            assert 0.15 < time.monotonic() - t0 < 2
            # Responses come in order: the connection is closed, the other request fails.
            assert conn.closed
            with pytest.raises(KafkaConnectionError, match="timed out"):
                await other
            await conn.close()

            client = await KafkaClient.bootstrap([addr(server)], request_timeout_s=0.2,
                                                 retry_backoff_ms=10)
            async with client:
                t0 = time.monotonic()
                with pytest.raises(KafkaTimeoutError, match="gave up after") as info:
                    await client.send_to(1, ApiKey.METADATA, md_request("__hang"), timeout_s=1)
                assert 0.9 < time.monotonic() - t0 < 3
                assert info.value.attempts >= 2
                assert isinstance(info.value.last_error, KafkaTimeoutError)
                # retries=0: the first timeout is the answer.
                client.retries = 0
                with pytest.raises(KafkaTimeoutError, match="no response within"):
                    await client.send_to(1, ApiKey.METADATA, md_request("__hang"))
        finally:
            await stop_server(server, handler)

    run(main)


def test_send_no_response_close_and_cancel() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            conn = await KafkaConnection.connect("127.0.0.1", server.port("L"))
            await conn.send_no_response(ApiKey.METADATA, md_request("__noreply"))
            resp = await conn.send(ApiKey.METADATA, md_request("after"))
            assert resp.topics[0].name == "after"
            assert handler.calls["__noreply"] == 1 and conn.in_flight == 0

            # A cancelled request's late answer is dropped; the connection carries on.
            gated = asyncio.ensure_future(conn.send(ApiKey.METADATA, md_request("__gate")))
            await asyncio.sleep(0.05)
            gated.cancel()
            handler.gate.set()
            resp = await conn.send(ApiKey.METADATA, md_request("later"))
            assert resp.topics[0].name == "later" and not conn.closed

            # close() fails what is pending, and later sends.
            hung = asyncio.ensure_future(conn.send(ApiKey.METADATA, md_request("__hang")))
            await asyncio.sleep(0.05)
            await conn.close()
            with pytest.raises(KafkaConnectionError, match="closed by the client"):
                await hung
            with pytest.raises(KafkaConnectionError):
                await conn.send(ApiKey.METADATA, md_request())
        finally:
            await stop_server(server, handler)

    run(main)


def test_response_frame_size_limit() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            conn = await KafkaConnection.connect("127.0.0.1", server.port("L"),
                                                 max_response_bytes=300)
            assert (await conn.send(ApiKey.METADATA, md_request())).brokers
            with pytest.raises(KafkaConnectionError, match="max_response_bytes"):
                await conn.send(ApiKey.METADATA, md_request(*(f"t{i}" for i in range(50))))
            assert conn.closed
        finally:
            await stop_server(server, handler)

    run(main)


def test_controller_listener_without_metadata() -> None:
    """ApiVersions then BrokerHeartbeat on a controller listener (no Metadata there)."""
    class HeartbeatHandler:
        def __call__(self, ctx: RequestContext, header: Any, request: Any) -> Any:
            assert header.api_key == ApiKey.BROKER_HEARTBEAT
            return HB_RESP.cls(throttle_time_ms=0, error_code=0, is_caught_up=True,
                               is_fenced=request.want_fence, should_shut_down=False)

    async def main() -> None:
        server = await start_server(HeartbeatHandler(), kind="controller",
                                    advertised={ApiKey.BROKER_HEARTBEAT: (0, 1)})
        try:
            async with await KafkaConnection.connect("127.0.0.1", server.port("L"),
                                                     node_id=3000) as conn:
                assert ApiKey.METADATA not in conn.api_versions
                req = HB_REQ.cls(broker_id=1, broker_epoch=5, current_metadata_offset=10,
                                 want_fence=False, want_shut_down=False)
                resp = await conn.send(ApiKey.BROKER_HEARTBEAT, req)
                assert resp.is_caught_up and not resp.is_fenced and resp.error_code == 0
                with pytest.raises(UnsupportedVersionError):
                    conn.version_for(ApiKey.METADATA)
        finally:
            await server.stop()

    run(main)


# -- retries -----------------------------------------------------------------------------


def test_retriable_error_is_retried_until_success() -> None:
    async def main() -> None:
        handler = SpecialHandler(flaky_failures=2)
        server = await start_server(handler)
        try:
            client = await KafkaClient.bootstrap([addr(server)], retry_backoff_ms=10)
            async with client:
                refreshes = client.stats.metadata_refreshes
                resp = await client.send_to_any(
                    ApiKey.METADATA, md_request("__flaky"),
                    check=lambda r: r.topics[0].error_code)
                assert resp.topics[0].error_code == 0
                assert handler.calls["__flaky"] == 3
                assert client.stats.retries == 2
                assert client.stats.metadata_refreshes - refreshes == 2  # one between attempts
                # The generic check finds the same error code.
                handler.calls["__flaky"] = 0
                resp = await client.send_to_controller(ApiKey.METADATA, md_request("__flaky"),
                                                       check=any_error)
                assert handler.calls["__flaky"] == 3 and resp.topics[0].error_code == 0
        finally:
            await stop_server(server, handler)

    run(main)


def test_non_retriable_error_is_raised_at_once() -> None:
    async def main() -> None:
        handler = SpecialHandler()
        server = await start_server(handler)
        try:
            client = await KafkaClient.bootstrap([addr(server)], retry_backoff_ms=10)
            async with client:
                with pytest.raises(TopicAuthorizationFailedError, match="attempt 1"):
                    await client.send_to(1, ApiKey.METADATA, md_request("__denied"),
                                         check=any_error)
                assert handler.calls["__denied"] == 1
                assert client.stats.retries == 0
                # Without a check, error codes are the caller's to read.
                resp = await client.send_to(1, ApiKey.METADATA, md_request("__denied"))
                assert resp.topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        finally:
            await stop_server(server, handler)

    run(main)


class TwoBrokerCluster:
    """Two brokers sharing a leader table for topic "orders" (2 partitions)."""

    def __init__(self) -> None:
        self.leaders = {0: 1, 1: 2}
        self.epochs = {0: 1, 1: 1}
        self.servers: dict[int, KafkaServer] = {}
        self.list_offsets_calls: dict[int, int] = {1: 0, 2: 0}

    async def start(self) -> None:
        for node in (1, 2):
            advertised: dict[int, tuple[int, int]] = {ApiKey.METADATA: (0, 12),
                                                      ApiKey.LIST_OFFSETS: (1, 7)}
            self.servers[node] = await start_server(self.handler(node), advertised=advertised)

    async def stop(self) -> None:
        for s in self.servers.values():
            await s.stop()

    def move_leader(self, partition: int, node: int) -> None:
        self.leaders[partition] = node
        self.epochs[partition] += 1

    def handler(self, node: int) -> Callable[[RequestContext, Any, Any], Any]:
        def handle(ctx: RequestContext, header: Any, request: Any) -> Any:
            if header.api_key == ApiKey.METADATA:
                return self.metadata(request)
            return self.list_offsets(node, request)
        return handle

    def metadata(self, request: Any) -> Any:
        brokers = [MD_RESP.MetadataResponseBroker(node_id=n, host="127.0.0.1",
                                                  port=s.port("L"))
                   for n, s in self.servers.items()]
        topics = []
        for name in ([t.name for t in request.topics] if request.topics else ["orders"]):
            if name != "orders":
                topics.append(MD_RESP.MetadataResponseTopic(
                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name))
                continue
            parts = [MD_RESP.MetadataResponsePartition(
                error_code=0, partition_index=p, leader_id=leader,
                leader_epoch=self.epochs[p], replica_nodes=[1, 2], isr_nodes=[1, 2])
                for p, leader in sorted(self.leaders.items())]
            topics.append(MD_RESP.MetadataResponseTopic(error_code=0, name="orders",
                                                        partitions=parts))
        return MD_RESP.cls(brokers=brokers, cluster_id=CLUSTER_ID, controller_id=2,
                           topics=topics)

    def list_offsets(self, node: int, request: Any) -> Any:
        self.list_offsets_calls[node] += 1
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                leader = self.leaders.get(p.partition_index)
                if leader == node:
                    parts.append(LO_RESP.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, error_code=0,
                        offset=node * 100 + p.partition_index))
                else:
                    parts.append(LO_RESP.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index,
                        error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER))
            topics.append(LO_RESP.ListOffsetsTopicResponse(name=t.name, partitions=parts))
        return LO_RESP.cls(throttle_time_ms=0, topics=topics)


def lo_request(partition: int, topic: str = "orders") -> Any:
    return LO_REQ.cls(replica_id=-1, topics=[LO_REQ.ListOffsetsTopic(
        name=topic, partitions=[LO_REQ.ListOffsetsPartition(partition_index=partition,
                                                            timestamp=-1)])])


def test_leader_routing_follows_leader_changes() -> None:
    async def main() -> None:
        cluster = TwoBrokerCluster()
        await cluster.start()
        try:
            client = await KafkaClient.bootstrap([addr(cluster.servers[1])],
                                                 retry_backoff_ms=10)
            async with client:
                assert set(client.cluster.brokers) == {1, 2}
                assert client.cluster.controller_id == 2
                topics = await client.list_topics()
                assert list(topics) == ["orders"]
                p1 = topics["orders"].partitions[1]
                assert (p1.leader_id, p1.leader_epoch, p1.replicas, p1.isr) == (2, 1, (1, 2),
                                                                                 (1, 2))

                def check(r: Any) -> Any:
                    return r.topics[0].partitions[0].error_code

                resp = await client.send_to_leader("orders", 1, ApiKey.LIST_OFFSETS,
                                                   lo_request(1), check=check)
                assert resp.topics[0].partitions[0].offset == 201
                resp = await client.send_to_leader("orders", 0, ApiKey.LIST_OFFSETS,
                                                   lo_request(0), check=check)
                assert resp.topics[0].partitions[0].offset == 100
                assert client.stats.retries == 0

                # Leadership moves; the client's cache is stale: NOT_LEADER, refresh, retry.
                cluster.move_leader(0, 2)
                resp = await client.send_to_leader("orders", 0, ApiKey.LIST_OFFSETS,
                                                   lo_request(0), check=check)
                assert resp.topics[0].partitions[0].offset == 200
                assert client.stats.retries == 1
                assert client.leader_for("orders", 0) == 2
                assert client.cluster.topics["orders"].partitions[0].leader_epoch == 2
                assert cluster.list_offsets_calls == {1: 2, 2: 2}

                # A topic that never appears: retried until the deadline, then a timeout
                # carrying the last error.
                with pytest.raises(KafkaTimeoutError) as info:
                    await client.send_to_leader("nope", 0, ApiKey.LIST_OFFSETS,
                                                lo_request(0, "nope"), timeout_s=0.3)
                assert isinstance(info.value.last_error, UnknownTopicOrPartitionError)
        finally:
            await cluster.stop()

    run(main)


def test_parse_address() -> None:
    assert parse_address("localhost:9092") == ("localhost", 9092)
    assert parse_address("[::1]:9093") == ("::1", 9093)
    for bad in ("localhost", ":9092", "host:port"):
        with pytest.raises(ValueError):
            parse_address(bad)
