"""``ReplicaManager.txn_marker_listeners``: a single-node cluster run in this process (so the
test can register a listener), a transaction marker written by WriteTxnMarkers over the wire,
and the listener called once the marker is replicated, before the answer; a refused marker
calls nothing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from broker.client import KafkaConnection
from broker.config import KafkaConfig
from broker.node import Node
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics, init_producer_id, produce, write_txn_markers
from storage.records import SimpleRecord, build_batch
from tools.launcher import LOOPBACK, NodeProcess, NodeSpec, random_cluster_id, server_properties
from tools.proc_cluster import free_ports

TOPIC = "listened"


async def _call(port: int, key: int, req: Any) -> Any:
    conn = await KafkaConnection.connect(LOOPBACK, port, timeout_s=5.0)
    try:
        return await conn.send(key, req, None, timeout_s=20.0)
    finally:
        await conn.close()


async def _until(what: str, fn: Any, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(OSError, ConnectionError, TimeoutError, AssertionError):
            got = await fn()
            if got:
                return got
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _markers(pid: int, epoch: int, commit: bool, coordinator_epoch: int) -> Any:
    R = write_txn_markers.REQUEST
    return R.cls(markers=[R.WritableTxnMarker(
        producer_id=pid, producer_epoch=epoch, transaction_result=commit,
        coordinator_epoch=coordinator_epoch,
        topics=[R.WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0])])])


def test_listeners_hear_replicated_markers(tmp_path: Path) -> None:
    broker_port, controller_port = free_ports(2)
    spec = NodeSpec(1, ("broker", "controller"), LOOPBACK, broker_port=broker_port,
                    controller_port=controller_port)
    node_proc = NodeProcess(spec, tmp_path / "node1")
    node_proc.dir.mkdir(parents=True)
    props = server_properties(spec, f"1@{LOOPBACK}:{controller_port}", node_proc.data_dir,
                              extra={"offsets.topic.replication.factor": "1",
                                     # a hand-made transaction, no coordinator behind it
                                     "transaction.partition.verification.enable": "false"})
    node_proc.write_config(props)
    cluster_id = random_cluster_id()
    node_proc.format(cluster_id)
    config = KafkaConfig.from_properties(props)

    async def scenario() -> None:
        node = Node(config, cluster_id)
        running = asyncio.create_task(node.run())
        try:
            async def started() -> Any:
                assert not running.done(), running
                return node.replica_manager

            rm = await _until("the replica manager", started)
            heard: list[tuple[str, int, int, bool]] = []
            rm.txn_marker_listeners.append(lambda *a: heard.append(a))
            C = create_topics.REQUEST

            async def created() -> bool:
                r = await _call(broker_port, ApiKey.CREATE_TOPICS, C.cls(topics=[
                    C.CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1,
                                     assignments=[], configs=[])], timeout_ms=10000))
                code = r.topics[0].error_code
                return code in (0, ErrorCode.TOPIC_ALREADY_EXISTS)

            await _until("the topic", created)
            await _until("leadership", lambda: _leads(rm))
            I = init_producer_id.REQUEST
            r = await _call(broker_port, ApiKey.INIT_PRODUCER_ID,
                            I.cls(transactional_id=None, transaction_timeout_ms=60000))
            pid, epoch = r.producer_id, r.producer_epoch
            P = produce.REQUEST
            batch = build_batch([SimpleRecord(b"x")], producer_id=pid, producer_epoch=epoch,
                                base_sequence=0, is_transactional=True)
            r = await _call(broker_port, ApiKey.PRODUCE, P.cls(
                transactional_id="t", acks=-1, timeout_ms=10000, topic_data=[
                    P.TopicProduceData(name=TOPIC, partition_data=[
                        P.PartitionProduceData(index=0, records=batch)])]))
            assert r.responses[0].partition_responses[0].error_code == 0
            hp = rm.partitions[(TOPIC, 0)]
            assert hp.last_stable_offset() == 0

            r = await _call(broker_port, ApiKey.WRITE_TXN_MARKERS, _markers(pid, epoch, True, 2))
            assert r.markers[0].topics[0].partitions[0].error_code == 0
            assert heard == [(TOPIC, 0, pid, True)]
            assert hp.last_stable_offset() == hp.state.high_watermark == 2
            # Refused (stale coordinator): nothing is heard.
            r = await _call(broker_port, ApiKey.WRITE_TXN_MARKERS, _markers(pid, epoch, False, 1))
            assert r.markers[0].topics[0].partitions[0].error_code == (
                ErrorCode.TRANSACTION_COORDINATOR_FENCED)
            assert heard == [(TOPIC, 0, pid, True)]
            # An abort (no data: a marker only) is heard too.
            r = await _call(broker_port, ApiKey.WRITE_TXN_MARKERS, _markers(pid, epoch, False, 2))
            assert r.markers[0].topics[0].partitions[0].error_code == 0
            assert heard[-1] == (TOPIC, 0, pid, False)
        finally:
            node.request_shutdown("test over")
            assert await asyncio.wait_for(running, 60) == 0

    asyncio.run(scenario())


async def _leads(rm: Any) -> bool:
    hp = rm.partitions.get((TOPIC, 0))
    return hp is not None and hp.state.is_leader
