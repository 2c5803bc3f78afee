"""The broker's AssignReplicasToDirs sender (broker/replication/directories.py) against a
controller stand-in that answers with the real schema."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import assign_replicas_to_dirs
from broker.replication import directories
from broker.replication.directories import DirectoryAssignments
from kraft.directories import DIR_UNASSIGNED

R = assign_replicas_to_dirs.RESPONSE
T1, T2 = uuid.UUID(int=11 << 64), uuid.UUID(int=12 << 64)
D1, D2 = uuid.UUID(int=21 << 64), uuid.UUID(int=22 << 64)


class Controller:
    def __init__(self, fail_first: int = 0, code: int = 0) -> None:
        self.requests: list[Any] = []
        self.fail_first = fail_first
        self.code = code

    async def send(self, api_key: int, req: Any, *, timeout_s: float) -> Any:
        assert api_key == ApiKey.ASSIGN_REPLICAS_TO_DIRS
        # The request must encode at version 0.
        wire = assign_replicas_to_dirs.REQUEST.encode(req, 0)
        req, _ = assign_replicas_to_dirs.REQUEST.decode(wire, 0)
        self.requests.append(req)
        if len(self.requests) <= self.fail_first:
            raise ConnectionError("controller gone")
        return R.cls(throttle_time_ms=0, error_code=0, directories=[
            R.DirectoryData(id=d.id, topics=[
                R.TopicData(topic_id=t.topic_id, partitions=[
                    R.PartitionData(partition_index=p.partition_index, error_code=self.code)
                    for p in t.partitions]) for t in d.topics]) for d in req.directories])


async def _run(controller: Controller, notes: list[tuple[uuid.UUID, int, uuid.UUID, Any]],
               until: Any) -> DirectoryAssignments:
    rm: Any = SimpleNamespace(node_id=3, broker_epoch=lambda: 42,
                              send_to_controller=controller.send)
    a = DirectoryAssignments(rm)
    a.start()
    for n in notes:
        a.note(*n)
    for _ in range(200):
        if until(a):
            break
        await asyncio.sleep(0.01)
    await a.stop()
    return a


def test_assignments_are_batched_by_dir_and_cleared_once_answered(monkeypatch: Any) -> None:
    monkeypatch.setattr(directories, "ASSIGN_RETRY_S", 0.01)
    c = Controller()
    a = asyncio.run(_run(c, [(T1, 0, DIR_UNASSIGNED, D1), (T1, 1, DIR_UNASSIGNED, D2),
                             (T2, 0, DIR_UNASSIGNED, D1), (T2, 1, D2, D2)],
                         lambda a: not a.pending))
    assert not a.pending and a.sent == 3
    sent = {(d.id, t.topic_id, p.partition_index) for r in c.requests
            for d in r.directories for t in d.topics for p in t.partitions}
    # Already where the metadata says (T2-1): nothing to send.
    assert sent == {(D1, T1, 0), (D2, T1, 1), (D1, T2, 0)}
    assert all(r.broker_id == 3 and r.broker_epoch == 42 for r in c.requests)


def test_a_failed_send_is_retried(monkeypatch: Any) -> None:
    monkeypatch.setattr(directories, "ASSIGN_RETRY_S", 0.01)
    c = Controller(fail_first=2)
    a = asyncio.run(_run(c, [(T1, 0, DIR_UNASSIGNED, D1)], lambda a: not a.pending))
    assert not a.pending and len(c.requests) == 3


def test_a_partition_gone_from_the_metadata_is_dropped(monkeypatch: Any) -> None:
    monkeypatch.setattr(directories, "ASSIGN_RETRY_S", 0.01)
    c = Controller(code=ErrorCode.UNKNOWN_TOPIC_ID)
    a = asyncio.run(_run(c, [(T1, 0, DIR_UNASSIGNED, D1)], lambda a: not a.pending))
    assert not a.pending and a.sent == 0 and len(c.requests) == 1
