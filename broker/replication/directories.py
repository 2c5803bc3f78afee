"""The broker side of log directories in the metadata (KIP-858).

- **Where each replica lives.** When a partition's log is opened or created in a log dir other
  than the one the metadata names for this broker's replica (``PartitionRegistration.directory``;
  UNASSIGNED until the broker says), the broker tells the controller with AssignReplicasToDirs
  (Kafka's ``AssignmentsManager``): batched, resent until the controller answers.
- **A log dir going offline.** ``broker/replication/log_dir_failure.py`` stops the partitions
  hosted there and calls ``ReplicaManager.log_dir_failure_listeners``: the broker's lifecycle
  sends a heartbeat naming the dir offline at once (its ``offline_log_dirs()``), and the
  controller moves leadership and ISR membership away from the replicas in it
  (``kraft.controller.directories``). Such a partition is never recreated empty in another
  dir (``log_dir_failure.py``; ``LogManager.get_or_create_log`` refuses a partition whose
  assigned dir is not online).
- **Replicas on offline dirs** are not waited for by a leader's high watermark nor taken
  back into the ISR (``replica_dir_online``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from broker.client import KafkaProtocolError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import assign_replicas_to_dirs

if TYPE_CHECKING:
    from broker.replication.replica_manager import ReplicaManager
    from kraft.image import MetadataImage

__all__ = ["DirectoryAssignments", "replica_dir_online"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]
ASSIGN_TIMEOUT_S = 10.0
ASSIGN_RETRY_S = 0.5
# Answers after which an assignment is dropped: the partition or the replica is gone.
_FINAL = frozenset({ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_ID,
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER})


class DirectoryAssignments:
    """Pending (topic id, partition) -> directory id, sent to the controller in batches."""

    def __init__(self, rm: ReplicaManager) -> None:
        self.rm = rm
        self.pending: dict[tuple[uuid.UUID, int], uuid.UUID] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # partitions the controller accepted (tests, metrics)

    def note(self, topic_id: uuid.UUID, partition: int, assigned: uuid.UUID,
             actual: uuid.UUID | None) -> None:
        """The log of a replica is in ``actual``; the metadata says ``assigned``."""
        key = (topic_id, partition)
        if actual is None or actual == assigned:
            self.pending.pop(key, None)
            return
        if self.pending.get(key) != actual:
            self.pending[key] = actual
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="assign-replicas-to-dirs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.pending:
                continue
            if self.rm.broker_epoch() < 0:  # not registered yet
                await asyncio.sleep(ASSIGN_RETRY_S)
                self._wake.set()
                continue
            batch = dict(self.pending)
            try:
                done = await self._send(batch)
            except Exception as e:  # noqa: BLE001 - any failure: retry later
                logger.warning("AssignReplicasToDirs failed: %s; retrying", e)
                done = set()
            for key in done:
                if self.pending.get(key) == batch[key]:
                    del self.pending[key]
            if self.pending:
                await asyncio.sleep(ASSIGN_RETRY_S)
                self._wake.set()

    async def _send(self, batch: dict[tuple[uuid.UUID, int], uuid.UUID]
                    ) -> set[tuple[uuid.UUID, int]]:
        R = assign_replicas_to_dirs.REQUEST
        by_dir: dict[uuid.UUID, dict[uuid.UUID, list[int]]] = {}
        for (tid, pid), dir_id in batch.items():
            by_dir.setdefault(dir_id, {}).setdefault(tid, []).append(pid)
        req = R.cls(broker_id=self.rm.node_id, broker_epoch=self.rm.broker_epoch(), directories=[
            R.DirectoryData(id=dir_id, topics=[
                R.TopicData(topic_id=tid, partitions=[R.PartitionData(partition_index=p)
                                                      for p in sorted(pids)])
                for tid, pids in topics.items()])
            for dir_id, topics in by_dir.items()])
        try:
            resp = await self.rm.send_to_controller(ApiKey.ASSIGN_REPLICAS_TO_DIRS, req,
                                                    timeout_s=ASSIGN_TIMEOUT_S)
        except (KafkaError, KafkaProtocolError, ConnectionError, TimeoutError, OSError) as e:
            logger.info("AssignReplicasToDirs not answered: %s; retrying", e)
            return set()
        if resp.error_code != ErrorCode.NONE:
            logger.info("AssignReplicasToDirs answered %s; retrying",
                        ErrorCode(resp.error_code).name)
            return set()
        done: set[tuple[uuid.UUID, int]] = set()
        for d in resp.directories:
            for t in d.topics:
                for p in t.partitions:
                    if p.error_code in _FINAL:
                        done.add((t.topic_id, p.partition_index))
                        if p.error_code == ErrorCode.NONE:
                            self.sent += 1
        logger.info("Told the controller the log dirs of %d replica(s)", len(done))
        return done


def replica_dir_online(image: MetadataImage, hp: Any, broker_id: int) -> bool:
    """Whether ``broker_id``'s replica of the hosted partition ``hp`` is on a log dir its
    broker has online (as far as the metadata says). A leader does not hold its high watermark
    for a caught-up replica outside the ISR whose dir went offline: it will not fetch again."""
    reg = image.topics.get_partition(hp.topic_id, hp.partition)
    b = image.cluster.brokers.get(broker_id)
    return reg is None or b is None or b.has_online_dir(reg.directory(broker_id))
