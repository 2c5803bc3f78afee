"""The transaction markers sender (broker/transactions/markers.py) against two real Kafka
listeners (broker/network/server.py) that serve WriteTxnMarkers and record what arrives:
one request at a time per leader carrying every transaction waiting for it, retries with
backoff until every partition answered, partitions of a deleted topic dropped, a leader that
moved followed through the image, and a fenced coordinator epoch ends the sending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.network.context import ListenerSpec
from broker.network.server import KafkaServer
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import write_txn_markers
from broker.transactions.markers import MarkerSender

R = write_txn_markers.RESPONSE


@dataclass
class Endpoint:
    host: str
    port: int


@dataclass
class Broker:
    endpoint: Endpoint
    fenced: bool = False

    def listener(self, name: str) -> Endpoint | None:
        return self.endpoint if name == "PLAINTEXT" else None


@dataclass
class Reg:
    leader: int


@dataclass
class Topic:
    partitions: dict[int, Reg]


@dataclass
class Image:
    """The parts of the metadata image the sender reads: brokers' endpoints and leaders."""

    brokers: dict[int, Broker] = field(default_factory=dict)
    by_name: dict[str, Topic] = field(default_factory=dict)

    @property
    def cluster(self) -> Image:
        return self

    @property
    def topics(self) -> Image:
        return self


class Leader:
    """A partition leader's WriteTxnMarkers: answers each partition with the next code
    queued for it (NONE when nothing is queued) and records the requests."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.codes: dict[tuple[str, int], list[int]] = {}
        self.on_request: Callable[[], None] | None = None

    def handle(self, ctx: Any, header: Any, request: Any) -> Any:
        self.requests.append(request)
        if self.on_request is not None:
            self.on_request()
        out = []
        for m in request.markers:
            topics = []
            for t in m.topics:
                parts = []
                for p in t.partition_indexes:
                    queue = self.codes.get((t.name, p), [])
                    parts.append(R.WritableTxnMarkerPartitionResult(
                        partition_index=p, error_code=queue.pop(0) if queue else 0))
                topics.append(R.WritableTxnMarkerTopicResult(name=t.name, partitions=parts))
            out.append(R.WritableTxnMarkerResult(producer_id=m.producer_id, topics=topics))
        return R.cls(markers=out)


async def start(leader: Leader) -> KafkaServer:
    server = KafkaServer(
        [ListenerSpec("L", port=0, handlers={ApiKey.WRITE_TXN_MARKERS: leader.handle})],
        advertised={ApiKey.API_VERSIONS: (0, 4), ApiKey.WRITE_TXN_MARKERS: (0, 1)})
    await server.start()
    return server


def test_markers_are_batched_per_leader_retried_and_dropped_for_deleted_topics() -> None:
    async def main() -> None:
        l1, l2 = Leader(), Leader()
        s1, s2 = await start(l1), await start(l2)
        image = Image(brokers={1: Broker(Endpoint("127.0.0.1", s1.port("L"))),
                               2: Broker(Endpoint("127.0.0.1", s2.port("L")))},
                      by_name={"a": Topic({0: Reg(1), 1: Reg(1), 2: Reg(2)})})
        sender = MarkerSender(9, "PLAINTEXT", lambda: image)  # type: ignore[arg-type,return-value]
        # Partition a-2 is not ready twice (retriable), then answers.
        l2.codes[("a", 2)] = [int(ErrorCode.NOT_LEADER_OR_FOLLOWER),
                              int(ErrorCode.NOT_ENOUGH_REPLICAS)]
        parts = frozenset({("a", 0), ("a", 1), ("a", 2), ("gone", 0)})
        try:
            ok = await asyncio.wait_for(sender.send(
                7, 3, True, 5, parts, lambda: True), 20)
            assert ok
            # One request to leader 1 carried both of its partitions.
            assert len(l1.requests) == 1
            m = l1.requests[0].markers[0]
            assert (m.producer_id, m.producer_epoch, m.transaction_result,
                    m.coordinator_epoch) == (7, 3, True, 5)
            assert [(t.name, sorted(t.partition_indexes)) for t in m.topics] == [("a", [0, 1])]
            assert len(l2.requests) == 3  # two retriable answers, then NONE
            # The deleted topic's partition was dropped, never sent.
            sent = {t.name for lead in (l1, l2) for r in lead.requests
                    for mk in r.markers for t in mk.topics}
            assert sent == {"a"}
        finally:
            await sender.close()
            await s1.stop()
            await s2.stop()

    asyncio.run(main())


def test_a_moved_leader_and_a_fenced_coordinator() -> None:
    async def main() -> None:
        l1, l2 = Leader(), Leader()
        s1, s2 = await start(l1), await start(l2)
        image = Image(brokers={1: Broker(Endpoint("127.0.0.1", s1.port("L"))),
                               2: Broker(Endpoint("127.0.0.1", s2.port("L")))},
                      by_name={"b": Topic({0: Reg(1)})})
        sender = MarkerSender(9, "PLAINTEXT", lambda: image)  # type: ignore[arg-type,return-value]

        def move() -> None:
            image.by_name["b"].partitions[0] = Reg(2)

        # Leader 1 is no longer the leader: it says so, and the image moves to broker 2.
        l1.codes[("b", 0)] = [int(ErrorCode.NOT_LEADER_OR_FOLLOWER)]
        l1.on_request = move
        try:
            assert await asyncio.wait_for(sender.send(
                8, 0, False, 1, frozenset({("b", 0)}), lambda: True), 20)
            assert len(l1.requests) == 1 and len(l2.requests) == 1
            assert l2.requests[0].markers[0].transaction_result is False
            # A newer coordinator wrote markers there: this one stops, unfinished.
            l2.codes[("b", 0)] = [int(ErrorCode.TRANSACTION_COORDINATOR_FENCED)]
            assert not await asyncio.wait_for(sender.send(
                8, 0, False, 1, frozenset({("b", 0)}), lambda: True), 20)
            # still_valid() False (leadership lost): nothing is sent.
            before = len(l2.requests)
            assert not await sender.send(8, 0, False, 1, frozenset({("b", 0)}), lambda: False)
            assert len(l2.requests) == before
        finally:
            await sender.close()
            await s1.stop()
            await s2.stop()

    asyncio.run(main())


def test_transactions_waiting_for_one_leader_share_a_request() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        leader = Leader()

        async def slow_first(ctx: Any, header: Any, request: Any) -> Any:
            if len(leader.requests) == 0:
                leader.requests.append(request)
                await gate.wait()
                leader.requests.pop()
            return leader.handle(ctx, header, request)

        server = KafkaServer(
            [ListenerSpec("L", port=0, handlers={ApiKey.WRITE_TXN_MARKERS: slow_first})],
            advertised={ApiKey.API_VERSIONS: (0, 4), ApiKey.WRITE_TXN_MARKERS: (0, 1)})
        await server.start()
        image = Image(brokers={1: Broker(Endpoint("127.0.0.1", server.port("L")))},
                      by_name={"c": Topic({0: Reg(1), 1: Reg(1)})})
        sender = MarkerSender(9, "PLAINTEXT", lambda: image)  # type: ignore[arg-type,return-value]
        try:
            first = asyncio.create_task(sender.send(1, 0, True, 0, frozenset({("c", 0)}),
                                                    lambda: True))
            while not leader.requests:
                await asyncio.sleep(0.01)
            # While the first request is in flight, two more transactions queue up.
            more = [asyncio.create_task(sender.send(pid, 0, False, 0,
                                                    frozenset({("c", 1)}), lambda: True))
                    for pid in (2, 3)]
            await asyncio.sleep(0.1)
            gate.set()
            assert await asyncio.wait_for(asyncio.gather(first, *more), 20) == [True] * 3
            assert [[m.producer_id for m in r.markers] for r in leader.requests] == [
                [1], [2, 3]]
        finally:
            await sender.close()
            await server.stop()

    asyncio.run(main())
