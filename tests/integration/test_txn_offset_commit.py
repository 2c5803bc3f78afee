"""TxnOffsetCommit (key 28) on real processes, through the project's own client: offsets
committed in a transaction are written to ``__consumer_offsets`` but stay pending, invisible to
OffsetFetch (require_stable answers UNSTABLE_OFFSET_COMMIT), also on the coordinator that takes
over after a kill -9 (it reads them back from the log files). Their transaction markers come
through WriteTxnMarkers (the markers' path is unit-tested in tests/unit/test_txn_offsets.py).

1 controller + 3 brokers; ``__consumer_offsets`` with one partition replicated three times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    delete_groups,
    find_coordinator,
    offset_commit,
    offset_fetch,
    txn_offset_commit,
)
from tests.integration.test_kraft_cluster import create_topic
from tools.proc_cluster import ProcCluster

TOPIC = "paid"
UNSTABLE = ErrorCode.UNSTABLE_OFFSET_COMMIT


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(Path(tmp_path_factory.mktemp("txn-offsets")), controllers=1, brokers=3,
                    extra={"offsets.topic.replication.factor": "3",
                           "offsets.topic.num.partitions": "1",
                           "group.initial.rebalance.delay.ms": "0"})
    c.start()
    try:
        assert create_topic(c, TOPIC, partitions=2, rf=1).error_code == 0
        yield c
    finally:
        c.shutdown()


def txn_commit(group: str, offsets: dict[int, int], pid: int, epoch: int = 0, *,
               generation: int = -1, member: str = "") -> Any:
    R = txn_offset_commit.REQUEST
    return R.cls(transactional_id=f"tx-{pid}", group_id=group, producer_id=pid,
                 producer_epoch=epoch, generation_id=generation, member_id=member,
                 group_instance_id=None, topics=[R.TxnOffsetCommitRequestTopic(
                     name=TOPIC, partitions=[R.TxnOffsetCommitRequestPartition(
                         partition_index=p, committed_offset=o, committed_leader_epoch=-1,
                         committed_metadata="txn") for p, o in offsets.items()])])


def codes(resp: Any) -> dict[tuple[str, int], ErrorCode]:
    return {(t.name, p.partition_index): ErrorCode(p.error_code)
            for t in resp.topics for p in t.partitions}


class Wire:
    """The group's coordinator through our own client, found again after a failover."""

    def __init__(self, client: KafkaClient, group: str) -> None:
        self.client, self.group = client, group

    async def coordinator(self, timeout_s: float = 60) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            fc = await self.client.send_to_any(ApiKey.FIND_COORDINATOR,
                                               find_coordinator.REQUEST.cls(key=self.group), 3)
            if not fc.error_code:
                await self.client.metadata([])
                return int(fc.node_id)
            assert time.monotonic() < deadline, f"no coordinator: {fc.error_code}"
            await asyncio.sleep(0.2)

    async def send(self, api_key: int, request: Any, version: int,
                   timeout_s: float = 90) -> tuple[int, Any]:
        """Send to the coordinator until it answers without a coordinator error."""
        retry = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                 ErrorCode.COORDINATOR_NOT_AVAILABLE}
        deadline = time.monotonic() + timeout_s
        while True:
            node = await self.coordinator()
            try:
                resp = await self.client.send_to(node, api_key, request, version, timeout_s=5)
            except (KafkaConnectionError, KafkaTimeoutError):
                resp = None
            if resp is not None:
                errs = {getattr(resp, "error_code", 0)} | set(
                    codes(resp).values() if hasattr(resp, "topics") else ())
                if not errs & retry:
                    return node, resp
            assert time.monotonic() < deadline, f"coordinator kept failing: {resp}"
            await asyncio.sleep(0.2)

    async def fetch(self, version: int, require_stable: bool, partitions: list[int] | None
                    ) -> tuple[int, dict[int, tuple[int, ErrorCode]]]:
        """(coordinator, partition -> (committed offset, partition error))."""
        F = offset_fetch.REQUEST
        topics = None if partitions is None else [
            F.OffsetFetchRequestTopic(name=TOPIC, partition_indexes=partitions)]
        if version >= 8:
            req = F.cls(require_stable=require_stable, groups=[F.OffsetFetchRequestGroup(
                group_id=self.group, member_id=None, member_epoch=-1, topics=None if
                partitions is None else [F.OffsetFetchRequestTopics(
                    name=TOPIC, partition_indexes=partitions)])])
        else:
            req = F.cls(group_id=self.group, topics=topics, require_stable=require_stable)
        node, resp = await self.send(ApiKey.OFFSET_FETCH, req, version)
        if version >= 8:
            [g] = resp.groups
            assert g.error_code == 0, g
            topics_out = g.topics
        else:
            assert resp.error_code == 0, resp
            topics_out = resp.topics
        return node, {p.partition_index: (p.committed_offset, ErrorCode(p.error_code))
                      for t in topics_out for p in t.partitions}


def run(cluster: ProcCluster, body: Any) -> None:
    async def main() -> None:
        client = await KafkaClient.bootstrap(cluster.bootstrap_servers.split(","),
                                             api_timeout_s=60)
        try:
            await body(client)
        finally:
            await client.close()
    asyncio.run(main())


def test_txn_offsets_stay_pending_and_are_checked_on_the_wire(cluster: ProcCluster) -> None:
    async def body(client: KafkaClient) -> None:
        w = Wire(client, "txn-wire")
        served = await client.api_versions(await w.coordinator())
        assert served.get(ApiKey.TXN_OFFSET_COMMIT) == (0, 4), served

        C = offset_commit.REQUEST
        _, resp = await w.send(ApiKey.OFFSET_COMMIT, C.cls(
            group_id=w.group, generation_id_or_member_epoch=-1, member_id="", topics=[
                C.OffsetCommitRequestTopic(name=TOPIC, partitions=[
                    C.OffsetCommitRequestPartition(partition_index=0, committed_offset=3,
                                                   committed_metadata="")])]), 8)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}

        # Two commits of one transaction (v3, then v0): written, not visible.
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 10}, 4242), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {1: 20}, 4242), 0)
        assert codes(resp) == {(TOPIC, 1): ErrorCode.NONE}
        for v in (7, 8, 9):
            _, got = await w.fetch(v, False, [0, 1])
            assert got == {0: (3, ErrorCode.NONE), 1: (-1, ErrorCode.NONE)}, (v, got)
            _, got = await w.fetch(v, True, [0, 1])
            assert got == {0: (-1, UNSTABLE), 1: (-1, UNSTABLE)}, (v, got)
        # Fetching all offsets lists the committed partitions only.
        _, got = await w.fetch(7, True, None)
        assert got == {0: (-1, UNSTABLE)}
        _, got = await w.fetch(6, False, None)
        assert got == {0: (3, ErrorCode.NONE)}

        # The log fences an older producer epoch.
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 1}, 77, 1), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 2}, 77, 0), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.INVALID_PRODUCER_EPOCH}

        # Group membership is checked when given; unknown topics are refused per partition.
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(
            "txn-no-such-group", {0: 1}, 4242, generation=4, member="m"), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.ILLEGAL_GENERATION}
        R = txn_offset_commit.REQUEST
        bad = txn_commit(w.group, {0: 1}, 4242)
        bad.topics.append(R.TxnOffsetCommitRequestTopic(name="no-such-topic", partitions=[
            R.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=1,
                                              committed_leader_epoch=-1,
                                              committed_metadata=None)]))
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, bad, 4)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE,
                               ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit("", {0: 1}, 4242), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.INVALID_GROUP_ID}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 1}, -1), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.INVALID_PRODUCER_ID_MAPPING}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 1}, 5, -1), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.INVALID_PRODUCER_EPOCH}

        # Deleting the group deletes its pending offsets too (Kafka's deleteAllOffsets).
        _, resp = await w.send(ApiKey.DELETE_GROUPS,
                               delete_groups.REQUEST.cls(groups_names=[w.group]), 2)
        assert [r.error_code for r in resp.results] == [0]
        _, got = await w.fetch(7, True, [0, 1])
        assert got == {0: (-1, ErrorCode.NONE), 1: (-1, ErrorCode.NONE)}

    run(cluster, body)


def test_the_next_coordinator_keeps_txn_offsets_pending_after_kill_9(
        cluster: ProcCluster) -> None:
    state: dict[str, int] = {}

    async def before(client: KafkaClient) -> None:
        w = Wire(client, "txn-failover")
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 5, 1: 6}, 9001),
                               3)
        assert set(codes(resp).values()) == {ErrorCode.NONE}
        node, got = await w.fetch(8, True, [0, 1])
        assert got == {0: (-1, UNSTABLE), 1: (-1, UNSTABLE)}
        state["coordinator"] = node

    run(cluster, before)
    old = state["coordinator"]
    cluster.nodes[old].kill()
    try:
        async def after(client: KafkaClient) -> None:
            w = Wire(client, "txn-failover")
            node, got = await w.fetch(8, True, [0, 1])
            assert node != old
            assert got == {0: (-1, UNSTABLE), 1: (-1, UNSTABLE)}
            _, got = await w.fetch(7, False, [0, 1])
            assert got == {0: (-1, ErrorCode.NONE), 1: (-1, ErrorCode.NONE)}
            # The same producer goes on in the same partition on the new coordinator.
            _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(w.group, {0: 7}, 9001),
                                   3)
            assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}

        run(cluster, after)
    finally:
        cluster.start([old])


def test_real_consumers_see_pending_offsets_as_unstable(cluster: ProcCluster) -> None:
    """librdkafka asks for stable offsets when isolation.level=read_committed (OffsetFetch
    require_stable): it keeps retrying UNSTABLE_OFFSET_COMMIT; read_uncommitted gets the last
    committed offset."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    group = "txn-librdkafka"

    async def body(client: KafkaClient) -> None:
        w = Wire(client, group)
        C = offset_commit.REQUEST
        _, resp = await w.send(ApiKey.OFFSET_COMMIT, C.cls(
            group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
                C.OffsetCommitRequestTopic(name=TOPIC, partitions=[
                    C.OffsetCommitRequestPartition(partition_index=0, committed_offset=4,
                                                   committed_metadata="")])]), 8)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}
        _, resp = await w.send(ApiKey.TXN_OFFSET_COMMIT, txn_commit(group, {0: 9}, 5150), 3)
        assert codes(resp) == {(TOPIC, 0): ErrorCode.NONE}

    run(cluster, body)

    seen: list[str] = []

    class Logs(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    log = logging.getLogger("txn-librdkafka")
    log.addHandler(Logs())
    log.setLevel(logging.DEBUG)

    def consumer(isolation: str) -> Any:
        return Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group,
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "debug": "protocol"}, logger=log)

    plain = consumer("read_uncommitted")
    try:
        [tp] = plain.committed([TopicPartition(TOPIC, 0)], timeout=30)
        assert tp.offset == 4 and tp.error is None
    finally:
        plain.close()
    seen.clear()
    stable = consumer("read_committed")
    try:
        with pytest.raises(KafkaException) as e:
            stable.committed([TopicPartition(TOPIC, 0)], timeout=4)
        assert "TIMED_OUT" in str(e.value), e.value
        stable.poll(0.5)
    finally:
        stable.close()
    # Answered, and retried: UNSTABLE_OFFSET_COMMIT is retriable (rd_kafka_handle_OffsetFetch).
    assert any("Retrying OffsetFetchRequest" in m for m in seen), seen[-20:]
