"""The transaction coordinator's I/O (broker/transactions/manager.py and apis.py) over a real
``__transaction_state`` partition log (storage.log.PartitionLog) and real listeners serving
WriteTxnMarkers: a commit is written PrepareCommit, its markers carry the coordinator epoch,
then CompleteCommit is written; a coordinator that loses the partition while markers are
failing leaves PrepareAbort in the log, and the next one loads it, sends the markers again
with its own epoch and completes it. The replica manager here only appends to that log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from broker.config import KafkaConfig
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    add_partitions_to_txn,
    describe_transactions,
    end_txn,
    init_producer_id,
)
from broker.transactions.apis import TransactionApis
from broker.transactions.records import decode_txn_record
from broker.transactions.state import TxnState
from storage.log import PartitionLog
from storage.record_batch import iter_batches
from storage.records import decode_batch
from tests.integration.test_txn_markers_sender import (
    Broker,
    Endpoint,
    Image,
    Leader,
    Reg,
    Topic,
    start,
)

TP0 = ("__transaction_state", 0)
PROPS = {
    "node.id": "9", "process.roles": "broker,controller",
    "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "controller.listener.names": "CONTROLLER", "controller.quorum.voters": "9@h:9093",
    "transaction.state.log.num.partitions": "1",
}
CONFIG = KafkaConfig.from_properties(PROPS)


class ReplicaManager:
    """Hosts ``__transaction_state-0`` as a local log; appends are 'replicated' at once."""

    node_id = 9
    inter_broker_security = None  # PLAINTEXT between nodes

    def __init__(self, path: Path) -> None:
        self.log = PartitionLog.open(path)
        self.partitions = {TP0: SimpleNamespace(log=self.log)}

    async def append_and_wait(self, topic: str, partition: int, batch: bytes, *, acks: int,
                              timeout_s: float) -> tuple[int, int]:
        assert (topic, partition) == TP0 and acks == -1
        return 0, self.log.append(batch, leader_epoch=0).first_offset

    def states(self, tid: str) -> list[str]:
        data = self.log.read_batches(0)
        out = []
        for pos, _ in iter_batches(data):
            for r in decode_batch(data, pos)[1]:
                key, e = decode_txn_record(r.key, r.value)
                if key == tid:
                    out.append("Tombstone" if e is None else e.state.display)
        return out


class ProducerIds:
    def __init__(self) -> None:
        self.next = 1000

    async def generate(self) -> int:
        self.next += 1
        return self.next


def header(v: int) -> Any:
    return SimpleNamespace(api_version=v)


async def until(what: str, fn: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not fn():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def coordinator(rm: ReplicaManager, image: Image, epoch: int) -> TransactionApis:
    c = TransactionApis(CONFIG, rm, lambda: image, ProducerIds())  # type: ignore[arg-type]
    c.on_leadership(TP0, True, epoch)
    await until("loaded", lambda: c.owned[0].loaded)
    return c


async def open_txn(c: TransactionApis, tid: str, parts: list[int]) -> tuple[int, int]:
    Q = init_producer_id.REQUEST
    r = await c.handle_init_producer_id(None, header(4), Q.cls(  # type: ignore[arg-type]
        transactional_id=tid, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1))
    assert r.error_code == 0
    A = add_partitions_to_txn.REQUEST
    resp = await c.handle_add_partitions_to_txn(None, header(3), A.cls(  # type: ignore[arg-type]
        v3_and_below_transactional_id=tid, v3_and_below_producer_id=r.producer_id,
        v3_and_below_producer_epoch=r.producer_epoch, v3_and_below_topics=[
            A.AddPartitionsToTxnTopic(name="d", partitions=parts)]))
    assert all(p.partition_error_code == 0 for t in resp.results_by_topic_v3_and_below
               for p in t.results_by_partition)
    return r.producer_id, r.producer_epoch


async def end(c: TransactionApis, tid: str, pid: int, epoch: int, commit: bool) -> int:
    E = end_txn.REQUEST
    r = await c.handle_end_txn(None, header(3), E.cls(  # type: ignore[arg-type]
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit))
    return int(r.error_code)


def test_commit_then_failover_of_a_prepared_abort(tmp_path: Path) -> None:
    async def main() -> None:
        leader = Leader()
        server = await start(leader)
        image = Image(brokers={1: Broker(Endpoint("127.0.0.1", server.port("L")))},
                      by_name={"d": Topic({0: Reg(1), 1: Reg(1)})})
        rm = ReplicaManager(tmp_path / "__transaction_state-0")
        c1 = await coordinator(rm, image, epoch=5)
        c2 = None
        try:
            pid, ep = await open_txn(c1, "t1", [0, 1])
            assert await end(c1, "t1", pid, ep, True) == 0
            await until("CompleteCommit", lambda: c1.coordinator.describe("t1").state
                        == TxnState.COMPLETE_COMMIT)
            assert rm.states("t1") == ["Empty", "Ongoing", "PrepareCommit", "CompleteCommit"]
            m = leader.requests[0].markers[0]
            assert (m.producer_id, m.producer_epoch, m.transaction_result,
                    m.coordinator_epoch) == (pid, ep, True, 5)
            assert sorted(m.topics[0].partition_indexes) == [0, 1]

            # An abort whose markers keep failing; then the partition moves away.
            leader.codes[("d", 1)] = [int(ErrorCode.NOT_ENOUGH_REPLICAS)] * 1000
            pid2, ep2 = await open_txn(c1, "t2", [0, 1])
            assert await end(c1, "t2", pid2, ep2, False) == 0
            await until("retries", lambda: sum(
                1 for r in leader.requests for mk in r.markers if mk.producer_id == pid2) >= 2)
            # DescribeTransactions shows only the partition still without its marker.
            D = describe_transactions.REQUEST
            st = c1.handle_describe_transactions(None, header(0), D.cls(  # type: ignore
                transactional_ids=["t2"])).transaction_states[0]
            assert st.transaction_state == "PrepareAbort"
            assert [(t.topic, list(t.partitions)) for t in st.topics] == [("d", [1])]
            c1.on_leadership(TP0, False, 5)
            assert c1.coordinator.describe("t2") is None
            assert rm.states("t2")[-1] == "PrepareAbort"

            # The new coordinator loads the log and finishes the abort with its epoch.
            leader.codes.clear()
            c2 = await coordinator(rm, image, epoch=6)
            await until("CompleteAbort", lambda: (d := c2.coordinator.describe("t2"))
                        is not None and d.state == TxnState.COMPLETE_ABORT)
            last = [mk for r in leader.requests for mk in r.markers
                    if mk.producer_id == pid2][-1]
            assert (last.transaction_result, last.coordinator_epoch) == (False, 6)
            assert rm.states("t2")[-2:] == ["PrepareAbort", "CompleteAbort"]
            assert c2.coordinator.describe("t1").state == TxnState.COMPLETE_COMMIT
        finally:
            await c1.stop()
            if c2 is not None:
                await c2.stop()
            await server.stop()
            rm.log.close()

    asyncio.run(main())


def test_idle_ids_expire_with_a_tombstone(tmp_path: Path) -> None:
    async def main() -> None:
        rm = ReplicaManager(tmp_path / "__transaction_state-0")
        image = Image()
        cfg = KafkaConfig.from_properties({**PROPS, "transactional.id.expiration.ms": "1"})
        c = TransactionApis(cfg, rm, lambda: image, ProducerIds())  # type: ignore[arg-type]
        c.on_leadership(TP0, True, 1)
        await until("loaded", lambda: c.owned[0].loaded)
        try:
            Q = init_producer_id.REQUEST
            r = await c.handle_init_producer_id(None, header(4), Q.cls(  # type: ignore
                transactional_id="idle", transaction_timeout_ms=1000, producer_id=-1,
                producer_epoch=-1))
            assert r.error_code == 0
            await asyncio.sleep(0.01)
            await c.expire_ids()
            assert c.coordinator.describe("idle") is None
            assert rm.states("idle") == ["Empty", "Tombstone"]
        finally:
            await c.stop()
        # Reloaded, the tombstone removes the id.
        c = await coordinator(rm, image, epoch=2)
        try:
            assert c.coordinator.describe("idle") is None
        finally:
            await c.stop()
            rm.log.close()

    asyncio.run(main())
