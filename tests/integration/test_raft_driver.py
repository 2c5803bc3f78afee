"""The KRaft driver over real sockets and real files: 3 voters + 1 observer in one event loop,
each behind its own ``KafkaServer`` controller listener (no mocks)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection
from broker.controller.quorum_state_file import quorum_state_path, read_quorum_state
from broker.controller.raft_driver import (
    RAFT_API_VERSIONS,
    CommittedBatch,
    LeaderAndEpoch,
    NotLeader,
    RaftManager,
)
from broker.controller.raft_wire import describe_quorum_from_wire, describe_quorum_request
from broker.network.context import ListenerSpec
from broker.network.server import KafkaServer
from broker.protocol.api_keys import ApiKey

CLUSTER = "raft-driver-test-cluster"
ELECTION_MS = 200
FETCH_TIMEOUT_MS = 400
VOTERS = (1, 2, 3)
OBSERVER = 4


class Recorder:
    def __init__(self) -> None:
        self.batches: list[CommittedBatch] = []
        self.leaders: list[LeaderAndEpoch] = []
        self.changed = asyncio.Event()

    def handle_commit(self, batch: CommittedBatch) -> None:
        if self.batches:
            assert batch.base_offset == self.batches[-1].last_offset + 1, (
                batch, self.batches[-1])
        else:
            assert batch.base_offset == 0
        self.batches.append(batch)
        self.changed.set()

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        self.leaders.append(leader)
        self.changed.set()

    @property
    def records(self) -> list[bytes]:
        return [r for b in self.batches for r in b.records]

    @property
    def end(self) -> int:
        return self.batches[-1].last_offset + 1 if self.batches else 0


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Node:
    def __init__(self, node_id: int, port: int, voters: dict[int, tuple[str, int]],
                 directory: Path) -> None:
        self.node_id = node_id
        self.port = port
        self.voters = voters
        self.dir = directory
        self.manager: RaftManager | None = None
        self.server: KafkaServer | None = None
        self.recorder = Recorder()

    async def start(self) -> None:
        self.recorder = Recorder()
        self.manager = m = RaftManager(
            self.node_id, CLUSTER, self.voters, str(self.dir), election_timeout_ms=ELECTION_MS,
            fetch_timeout_ms=FETCH_TIMEOUT_MS, fetch_max_wait_ms=500, request_timeout_ms=500,
            seed=self.node_id)
        m.register(self.recorder)
        handlers = m.handlers

        def route(ctx: Any, header: Any, request: Any) -> Any:
            return handlers[header.api_key](ctx, header, request)

        self.server = KafkaServer(
            [ListenerSpec("CONTROLLER", port=self.port, kind="controller")], route,
            advertised={ApiKey.API_VERSIONS: (0, 3), **RAFT_API_VERSIONS})
        await self.server.start()
        await m.start()

    async def stop(self, *, graceful: bool = True) -> None:
        assert self.manager is not None and self.server is not None
        if graceful:
            await self.manager.shutdown()
            await self.server.stop()
        else:
            await self.server.stop()  # aborts every connection
            await self.manager.shutdown(graceful=False)
        self.manager = None
        self.server = None


async def wait_for(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def leaders(nodes: dict[int, Node]) -> list[Node]:
    return [n for n in nodes.values() if n.manager is not None and n.manager.is_leader()]


async def wait_leader(nodes: dict[int, Node], timeout_s: float) -> Node:
    def agreed() -> bool:
        ls = leaders(nodes)
        if len(ls) != 1:
            return False
        lm = ls[0].manager
        assert lm is not None
        return all(n.manager.leader_and_epoch == lm.leader_and_epoch
                   for n in nodes.values() if n.manager is not None)

    await wait_for(agreed, timeout_s, "one agreed leader")
    return leaders(nodes)[0]


async def append_and_commit(leader: Node, records: list[bytes]) -> int:
    m = leader.manager
    assert m is not None
    last = m.append(records, epoch=m.leader_and_epoch.epoch)
    rec = leader.recorder
    while rec.end <= last:
        rec.changed.clear()
        await asyncio.wait_for(rec.changed.wait(), 5)
    return last


async def make_cluster(tmp_path: Path) -> dict[int, Node]:
    ports = free_ports(4)
    voters = {v: ("127.0.0.1", ports[v - 1]) for v in VOTERS}
    nodes = {i: Node(i, ports[i - 1], voters, tmp_path / f"node{i}") for i in (*VOTERS, OBSERVER)}
    for n in nodes.values():
        await n.start()
    return nodes


async def stop_all(nodes: dict[int, Node]) -> None:
    for n in nodes.values():
        if n.manager is not None:
            await n.stop()


def test_cluster_replicates_fails_over_and_recovers(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await make_cluster(tmp_path)
        try:
            leader = await wait_leader(nodes, 5)
            lm = leader.manager
            assert lm is not None
            with pytest.raises(NotLeader):
                lm.append([b"x"], epoch=lm.leader_and_epoch.epoch + 1)
            follower = next(n for n in nodes.values() if n is not leader)
            with pytest.raises(NotLeader):
                follower.manager.append([b"x"], epoch=lm.leader_and_epoch.epoch)  # type: ignore[union-attr]

            # 600 records: singles and batches, each committed before the next.
            expected: list[bytes] = []
            for i in range(300):
                recs = [f"r{i}".encode()]
                await append_and_commit(leader, recs)
                expected += recs
            for i in range(30):
                recs = [f"b{i}-{j}".encode() for j in range(10)]
                await append_and_commit(leader, recs)
                expected += recs
            end = leader.recorder.end
            await wait_for(lambda: all(n.recorder.end >= end for n in nodes.values()), 5,
                           "every node (observer included) to commit")
            for n in nodes.values():
                assert n.recorder.records == expected, n.node_id
                assert [(b.base_offset, b.last_offset) for b in n.recorder.batches][-1][1] \
                    == end - 1
            # The quorum-state file names the leader.
            qs = read_quorum_state(quorum_state_path(leader.dir))
            assert qs is not None and qs.leader_id == leader.node_id
            assert qs.leader_epoch == lm.leader_and_epoch.epoch

            # DescribeQuorum on the wire.
            conn = await KafkaConnection.connect("127.0.0.1", leader.port)
            try:
                resp = await conn.send(ApiKey.DESCRIBE_QUORUM, describe_quorum_request())
            finally:
                await conn.close()
            desc, err = describe_quorum_from_wire(resp)
            assert err == 0 and desc is not None
            assert desc.leader_id == leader.node_id
            assert sorted(v.replica_id for v in desc.voters) == list(VOTERS)

            # Graceful shutdown of the leader: a new leader within ~2 election timeouts.
            old_epoch = lm.leader_and_epoch.epoch
            t0 = time.monotonic()
            await leader.stop()
            await wait_for(lambda: len(leaders(nodes)) == 1, 2 * 2 * ELECTION_MS / 1000 + 1,
                           "a new leader after the resign")
            graceful_s = time.monotonic() - t0
            new_leader = await wait_leader(nodes, 5)
            assert new_leader is not leader
            assert new_leader.manager.leader_and_epoch.epoch > old_epoch  # type: ignore[union-attr]
            print(f"\n[raft-driver] election after graceful resign: {graceful_s * 1000:.0f} ms")
            expected += [b"after-resign"]
            await append_and_commit(new_leader, [b"after-resign"])

            # Restart the old leader from its directory: it reloads state and catches up.
            await leader.start()
            end = new_leader.recorder.end
            await wait_for(lambda: leader.recorder.end >= end, 5, "restarted node to catch up")
            assert leader.recorder.records == expected
            assert leader.manager.leader_and_epoch == new_leader.manager.leader_and_epoch  # type: ignore[union-attr]

            # Crash the leader (no resign, connections aborted): a new leader takes over.
            crashed = new_leader
            t0 = time.monotonic()
            await crashed.stop(graceful=False)
            await wait_for(lambda: len(leaders(nodes)) == 1, 5, "a new leader after the crash")
            abort_s = time.monotonic() - t0
            replacement = await wait_leader(nodes, 5)
            print(f"[raft-driver] election after leader abort: {abort_s * 1000:.0f} ms "
                  f"(election timeout {ELECTION_MS} ms, fetch timeout {FETCH_TIMEOUT_MS} ms)")
            assert replacement is not crashed
            expected += [b"after-crash"]
            await append_and_commit(replacement, [b"after-crash"])
            # The crashed node rejoins and catches up.
            await crashed.start()
            end = replacement.recorder.end
            await wait_for(lambda: all(n.recorder.end >= end for n in nodes.values()), 5,
                           "everyone to catch up after the crash")
            for n in nodes.values():
                assert n.recorder.records == expected, n.node_id
            # A rejoining voter does not disrupt the healthy leader (PreVote).
            assert replacement.manager.is_leader()  # type: ignore[union-attr]
        finally:
            await stop_all(nodes)

    asyncio.run(main())


def test_throughput_benchmark(tmp_path: Path) -> None:
    """Prints committed records/s for 1-record and 100-record appends in a loop."""
    async def main() -> None:
        nodes = await make_cluster(tmp_path)
        try:
            leader = await wait_leader(nodes, 5)
            await append_and_commit(leader, [b"warm-up"])
            n1 = 300
            t0 = time.perf_counter()
            for i in range(n1):
                await append_and_commit(leader, [b"x%d" % i])
            dt1 = time.perf_counter() - t0
            n100 = 50
            t0 = time.perf_counter()
            for i in range(n100):
                await append_and_commit(leader, [b"y%d-%d" % (i, j) for j in range(100)])
            dt100 = time.perf_counter() - t0
            print(f"\n[raft-driver bench] 1-record appends: {n1 / dt1:.0f} records/s "
                  f"({dt1 / n1 * 1000:.2f} ms per commit); 100-record appends: "
                  f"{n100 * 100 / dt100:.0f} records/s ({dt100 / n100 * 1000:.2f} ms per commit)")
        finally:
            await stop_all(nodes)

    asyncio.run(main())
