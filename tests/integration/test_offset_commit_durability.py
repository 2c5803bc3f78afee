"""A committed offset is answered only once every in-sync replica of its ``__consumer_offsets``
partition has it (README "Consumer groups and committed offsets": acks=all), so that it survives
the loss of the coordinator.

Real processes: 1 controller + 2 brokers, ``__consumer_offsets`` with one partition and
replication factor 2. The follower of that partition is paused (SIGSTOP) while still in the ISR
(the ISR and session timeouts are far longer than the test): a commit sent meanwhile must stay
unanswered, and be answered once the follower resumes and copies it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import find_coordinator, metadata, offset_commit, offset_fetch
from tests.integration.test_kraft_cluster import create_topic
from tools.proc_cluster import ProcCluster

GROUP = "durable-commits"
TOPIC = "consumed"
OFFSETS = "__consumer_offsets"
SLOW_MS = "60000"  # ISR shrink, broker session, commit timeout: none within the test
PENDING_S = 2.0  # how long the commit must stay unanswered while the follower is paused


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path, controllers=1, brokers=2, extra={
        "offsets.topic.replication.factor": "2", "offsets.topic.num.partitions": "1",
        "replica.lag.time.max.ms": SLOW_MS, "broker.session.timeout.ms": SLOW_MS,
        "offsets.commit.timeout.ms": SLOW_MS})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


async def until(f: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await f()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def commit_request(offset: int) -> Any:
    C = offset_commit.REQUEST
    return C.cls(group_id=GROUP, generation_id_or_member_epoch=-1, member_id="", topics=[
        C.OffsetCommitRequestTopic(name=TOPIC, partitions=[C.OffsetCommitRequestPartition(
            partition_index=0, committed_offset=offset, committed_metadata="")])])


def commit_error(resp: Any) -> ErrorCode:
    return ErrorCode(resp.topics[0].partitions[0].error_code)


def test_a_commit_is_answered_only_once_the_in_sync_follower_has_it(
        cluster: ProcCluster) -> None:
    c = cluster
    assert create_topic(c, TOPIC, partitions=1, rf=1).error_code == 0
    # Responses on a connection come in request order: the pending commit gets its own.
    conns: dict[tuple[int, str], KafkaConnection] = {}

    async def conn(node_id: int, use: str = "") -> KafkaConnection:
        if (node_id, use) not in conns:
            conns[node_id, use] = await KafkaConnection.connect(
                "127.0.0.1", c.nodes[node_id].broker_port or 0)
        return conns[node_id, use]

    async def coordinator() -> int | None:
        any_broker = await conn(c.broker_ids[0])
        resp = await any_broker.send(ApiKey.FIND_COORDINATOR,
                                     find_coordinator.REQUEST.cls(key=GROUP), 3, timeout_s=15)
        return resp.node_id if resp.error_code == 0 else None

    async def offsets_partition(node_id: int) -> Any:
        resp = await (await conn(node_id)).send(ApiKey.METADATA, metadata.REQUEST.cls(
            topics=[metadata.REQUEST.MetadataRequestTopic(name=OFFSETS)]), timeout_s=5)
        t = resp.topics[0]
        return t.partitions[0] if t.error_code == 0 and t.partitions else None

    async def commit(node_id: int, offset: int) -> ErrorCode:
        resp = await (await conn(node_id, "commit")).send(
            ApiKey.OFFSET_COMMIT, commit_request(offset), 8, timeout_s=90)
        return commit_error(resp)

    async def main() -> None:
        try:
            leader = await until(coordinator, 60, "a coordinator (creates __consumer_offsets)")
            [follower] = [b for b in c.broker_ids if b != leader]
            p = await until(lambda: offsets_partition(leader), 30, "__consumer_offsets metadata")
            assert p.leader_id == leader and sorted(p.isr_nodes) == sorted(c.broker_ids), p
            # A first commit, with both replicas up: the coordinator has loaded and the
            # follower replicates.
            for _ in range(100):
                code = await commit(leader, 1)
                if code not in (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                ErrorCode.COORDINATOR_NOT_AVAILABLE):
                    break
                await asyncio.sleep(0.1)
            assert code == ErrorCode.NONE, code

            proc = c.nodes[follower].proc
            assert proc is not None
            os.kill(proc.pid, signal.SIGSTOP)
            pending = asyncio.ensure_future(commit(leader, 7))
            await asyncio.sleep(PENDING_S)
            assert not pending.done(), f"answered while an in-sync replica lacked it: {pending}"
            p = await offsets_partition(leader)
            assert sorted(p.isr_nodes) == sorted(c.broker_ids), "the ISR shrank: test too slow"
            os.kill(proc.pid, signal.SIGCONT)
            assert await asyncio.wait_for(pending, 30) == ErrorCode.NONE

            F = offset_fetch.REQUEST
            fetched = await (await conn(leader)).send(ApiKey.OFFSET_FETCH, F.cls(
                group_id=GROUP, topics=[F.OffsetFetchRequestTopic(
                    name=TOPIC, partition_indexes=[0])]), 7, timeout_s=10)
            assert fetched.topics[0].partitions[0].committed_offset == 7
        finally:
            for cn in conns.values():
                await cn.close()

    asyncio.run(main())
