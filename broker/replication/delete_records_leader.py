"""DeleteRecords on the leader: the half of ``broker.replication.replica_manager.ReplicaManager``
that moves a leader's log start offset and tells when the low watermark reached the requested
offset (the rules are in ``broker/replication/delete_records.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from broker.protocol.errors import ErrorCode
from broker.replication.delete_records import (
    INTERNAL_TOPICS,
    INVALID_LOW_WATERMARK,
    delete_target,
    low_watermark,
)
from storage.errors import StorageError

if TYPE_CHECKING:
    from broker.replication.partition import Partition

__all__ = ["DeleteRecordsOnLeader"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]


class DeleteRecordsOnLeader:
    """The DeleteRecords half of ``broker.replication.replica_manager.ReplicaManager``."""

    # Provided by ReplicaManager.
    partitions: dict[TP, Partition]
    image: Any

    def delete_records_on_leader(self, topic: str, partition: int, offset: int
                                 ) -> tuple[ErrorCode, int, int]:
        """Move the leader's log start to ``offset`` (-1: the high watermark), deleting the
        segments wholly below it. Returns (error, the offset the answer waits for, the low
        watermark now)."""
        code, hp = self.leader_partition(topic, partition, -1)
        if hp is None:
            return code, -1, INVALID_LOW_WATERMARK
        log = hp.log
        code, target = delete_target(offset, hp.state.high_watermark,
                                     delete_policy=log.config.delete_enabled,
                                     internal=topic in INTERNAL_TOPICS)
        if code:
            return code, -1, INVALID_LOW_WATERMARK
        try:
            if hp.delete_records_before(target):
                logger.info("Incremented the log start offset of %s-%d to %d (deleted records)",
                            topic, partition, log.log_start_offset)
        except (StorageError, OSError) as e:
            logger.error("Deleting records of %s-%d failed: %s", topic, partition, e)
            self.storage_failed(hp, e)
            return ErrorCode.KAFKA_STORAGE_ERROR, -1, INVALID_LOW_WATERMARK
        return ErrorCode.NONE, target, self._low_watermark(hp)

    def delete_records_status(self, tp: TP, required: int) -> tuple[ErrorCode, int] | None:
        """A waiting DeleteRecords: None until the low watermark reaches ``required``, else
        (error, low watermark)."""
        hp = self.partitions.get(tp)
        if hp is None:
            return self.unknown_or_not_leader(*tp), INVALID_LOW_WATERMARK
        if not hp.state.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER, INVALID_LOW_WATERMARK
        lw = self._low_watermark(hp)
        return (ErrorCode.NONE, lw) if lw >= required else None

    def _low_watermark(self, hp: Partition) -> int:
        brokers = self.image.cluster.brokers

        def alive(broker_id: int) -> bool:
            b = brokers.get(broker_id)
            return b is not None and not b.fenced

        return low_watermark(hp.log.log_start_offset, hp.state.followers.values(), alive)

    if TYPE_CHECKING:  # provided by ReplicaManager
        def leader_partition(self, topic: str, partition: int, current_leader_epoch: int
                             ) -> tuple[ErrorCode, Partition | None]: ...

        def unknown_or_not_leader(self, topic: str, partition: int) -> ErrorCode: ...

        def storage_failed(self, hp: Partition, error: BaseException) -> None: ...
