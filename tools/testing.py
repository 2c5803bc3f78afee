"""A real cluster for Python test suites: ``with cluster(nodes=3) as c: ...``.

Nodes are real processes of this project (``kafka-server-start``), combined broker +
controller, on ephemeral loopback ports, with their data in a temporary directory removed at
the end (kept when the caller passes ``root``). One node starts in about 2.5 s on a 2-core
machine; three in about the same, started in parallel.

What a test gets (``TestCluster``):

- ``bootstrap_servers`` for any Kafka client (``"127.0.0.1:port,..."``);
- ``create_topic(name, partitions=1, replication_factor=None, config=None)`` (the replication
  factor defaults to min(3, nodes)) and ``delete_topic``;
- ``produce(topic, values, key=None, partition=None)`` (acks=all) and ``read_topic(topic)``:
  every record from the earliest offset to the end, partition by partition, as
  ``ConsumedRecord(partition, offset, key, value, headers, timestamp)``;
- faults for the test's own checks: ``kill(node)`` (SIGKILL), ``restart(node)``, ``stop(node)``
  (a controlled shutdown), ``pause(node)`` / ``resume(node)`` (SIGSTOP / SIGCONT); and with
  ``cluster(..., network=True)`` (root and iproute2: each node in its own network namespace,
  ``tools/netns.py``) ``isolate(node)`` (cut from the other nodes and from the clients),
  ``partition([[1], [2, 3]])`` (between nodes) and ``heal()``.

The pytest plugin (``tools/pytest_plugin.py``, registered through the ``pytest11`` entry point)
wraps this as the ``kafka_cluster`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.client import KafkaClient
from tools.cli_client import TopicPartition, create_topic, delete_topic
from tools.cli_fetch import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, fetch_from, list_offsets_of
from tools.cli_produce import Producer
from tools.netns import NamespaceNetwork
from tools.proc_cluster import STARTED, ProcCluster

__all__ = ["ConsumedRecord", "TestCluster", "cluster"]

DEFAULT_TIMEOUT_S = 60.0
# One request's timeout: a node cut off or paused costs this much before a retry elsewhere.
REQUEST_TIMEOUT_S = 10.0
# Small internal topics: a test cluster of 1 or 3 nodes needs no more.
_TEST_DEFAULTS = {
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
}


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


class TestCluster:
    """A running cluster (see the module docstring). Built by ``cluster()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, procs: ProcCluster, nodes: int) -> None:
        self.procs = procs
        self.nodes = nodes
        self._loop = asyncio.new_event_loop()
        self._client: KafkaClient | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return self.procs.bootstrap_servers

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.procs.nodes)

    @property
    def data_dir(self) -> Path:
        return self.procs.root

    # -- topics and records ------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int | None = None,
                     config: Mapping[str, str] | None = None) -> None:
        rf = min(3, self.nodes) if replication_factor is None else replication_factor
        self._run(lambda c: create_topic(c, name, partitions, rf, dict(config or {})))
        self._run(lambda c: self._wait_for_leaders(c, name))

    def delete_topic(self, name: str) -> None:
        self._run(lambda c: delete_topic(c, [name]))

    def produce(self, topic: str, values: Iterable[bytes | str | None], *,
                key: bytes | str | None = None, partition: int | None = None) -> list[int]:
        """Sends every value (acks=all) and returns their offsets, in order. At least once: a
        request retried after a timeout (a node killed, paused or cut off) may be written
        twice, as with any producer without idempotence."""
        async def go(c: KafkaClient) -> list[int]:
            producer = Producer(c, acks=-1, linger_ms=1,
                                request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
            items = list(values)
            offsets: list[int] = [-1] * len(items)
            errors: list[BaseException] = []

            def done(i: int, offset: int, error: BaseException | None) -> None:
                offsets[i] = offset
                if error is not None:
                    errors.append(error)
            for i, v in enumerate(items):
                await producer.send(topic, _bytes(v), _bytes(key), partition=partition,
                                    callback=lambda o, e, i=i: done(i, o, e))
            await producer.flush()
            if errors:
                raise errors[0]
            return offsets
        return self._run(go)

    def read_topic(self, topic: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
                   ) -> list[ConsumedRecord]:
        """Every record of ``topic`` now in its partitions (earliest to the end offset read
        when called), ordered by partition then offset."""
        return self._run(lambda c: self._read(c, topic), timeout_s)

    async def _read(self, c: KafkaClient, topic: str) -> list[ConsumedRecord]:
        meta = await c.metadata([topic])
        info = meta.topics.get(topic)
        if info is None or info.error_code:
            raise LookupError(f"topic {topic!r} does not exist")
        parts = sorted(info.partitions)
        start = await list_offsets_of(c, topic, parts, EARLIEST_TIMESTAMP)
        end = await list_offsets_of(c, topic, parts, LATEST_TIMESTAMP)
        out: list[ConsumedRecord] = []
        for p in parts:
            pos = start[p]
            while pos < end[p]:
                tp = TopicPartition(topic, p)
                leader = c.leader_for(topic, p)
                (fp,) = await fetch_from(c, leader, {tp: pos}, max_wait_ms=100)
                if fp.error_code:
                    await c.metadata([topic])
                    await asyncio.sleep(0.05)
                    continue
                for header, records in fp.records:
                    if header.is_control:
                        pos = header.last_offset + 1
                        continue
                    for r in records:
                        if pos <= r.offset < end[p]:
                            out.append(ConsumedRecord(p, r.offset, r.key, r.value,
                                                      tuple(r.headers), r.timestamp))
                    pos = max(pos, header.last_offset + 1)
                if fp.next_offset is not None:
                    pos = max(pos, fp.next_offset)
        return out

    async def _wait_for_leaders(self, c: KafkaClient, topic: str) -> None:
        while True:
            meta = await c.metadata([topic])
            info = meta.topics.get(topic)
            if (info is not None and not info.error_code and info.partitions
                    and all(pi.leader_id >= 0 for pi in info.partitions.values())):
                return
            await asyncio.sleep(0.05)

    # -- faults ------------------------------------------------------------------------------

    def kill(self, node: int) -> None:
        """SIGKILL: no shutdown, unsynced writes stay in the page cache (the OS keeps them)."""
        self.procs.nodes[node].kill()

    def stop(self, node: int) -> None:
        """A controlled shutdown (SIGTERM), waited for."""
        self.procs.nodes[node].stop()

    def restart(self, node: int, *, wait: bool = True) -> None:
        """Starts a killed or stopped node again (kills it first if it still runs)."""
        n = self.procs.nodes[node]
        n.resume()
        n.kill()
        n.start()
        if wait:
            n.wait_for(STARTED)

    def isolate(self, node: int) -> None:
        """Cut ``node`` from every other node and from the clients (both directions)."""
        net = self._network()
        net.partition([[node], [i for i in self.node_ids if i != node]])
        net.block(None, node)

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Nodes in different groups cannot talk; clients still reach everyone."""
        self._network().partition(groups)

    def heal(self) -> None:
        self._network().heal()

    def _network(self) -> NamespaceNetwork:
        if self.procs.network is None:
            raise RuntimeError("network faults need cluster(..., network=True) (root and "
                               "iproute2: nodes in network namespaces)")
        return self.procs.network

    def pause(self, node: int) -> None:
        self.procs.nodes[node].pause()

    def resume(self, node: int) -> None:
        self.procs.nodes[node].resume()

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, fn: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        async def go() -> Any:
            if self._client is None:
                self._client = await KafkaClient.bootstrap(
                    self.bootstrap_servers.split(","), client_id="pykraft-testing",
                    api_timeout_s=timeout_s, request_timeout_s=REQUEST_TIMEOUT_S)
            return await asyncio.wait_for(fn(self._client), timeout_s)
        return self._loop.run_until_complete(go())

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._client.close())
            self._client = None
        self._loop.close()


def _bytes(v: bytes | str | None) -> bytes | None:
    return v.encode() if isinstance(v, str) else v


@contextlib.contextmanager
def cluster(nodes: int = 1, *, root: Path | str | None = None,
            config: Mapping[str, str] | None = None, network: bool = False
            ) -> Iterator[TestCluster]:
    """Starts ``nodes`` (1 or more) combined broker + controller nodes and yields the running
    ``TestCluster``; stops them (and removes their data unless ``root`` was given) at the end.
    ``config`` adds or overrides ``server.properties`` keys of every node; ``network`` runs each
    node in its own network namespace, for ``isolate``/``partition``/``heal``."""
    if nodes < 1:
        raise ValueError("nodes must be at least 1")
    own = root is None
    base = Path(tempfile.mkdtemp(prefix="pykraft-")) if root is None else Path(root)
    extra = dict(_TEST_DEFAULTS)
    extra["offsets.topic.replication.factor"] = str(min(3, nodes))
    extra["transaction.state.log.replication.factor"] = str(min(3, nodes))
    extra["transaction.state.log.min.isr"] = str(min(2, nodes))
    extra.update(config or {})
    procs = ProcCluster(base, controllers=nodes, brokers=0, combined=True, extra=extra,
                        network=network)
    tc = TestCluster(procs, nodes)
    try:
        procs.start()
        yield tc
    finally:
        tc.close()
        procs.shutdown(graceful=True)
        if own:
            shutil.rmtree(base, ignore_errors=True)

