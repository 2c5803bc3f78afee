"""DeleteRecords on the leader: which offset a request moves the log start to, and the low
watermark its answer waits for.

Kafka's ``Partition.deleteRecordsOnLeader`` and ``lowWatermarkIfLeader``: the leader moves its
own log start offset (deleting the segments wholly below it) at once; the answer is delayed
(``DelayedDeleteRecords``) until the low watermark, the smallest log start offset among the
leader and the replicas on live brokers, reaches the requested offset. Followers learn the
leader's log start from fetch answers, move theirs, and report it in their next fetch
(``ReplicaState.log_start_offset``). Pure logic; ``ReplicaManager`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from broker.replication.partition import ReplicaState
from storage.error_codes import ErrorCode

__all__ = ["HIGH_WATERMARK", "INTERNAL_TOPICS", "INVALID_LOW_WATERMARK", "delete_target",
           "low_watermark"]

HIGH_WATERMARK = -1  # a request's offset meaning "up to the high watermark"
INVALID_LOW_WATERMARK = -1
# Kafka's Topic.isInternal: their records are never deleted by request.
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def delete_target(offset: int, high_watermark: int, *, delete_policy: bool,
                  internal: bool = False) -> tuple[ErrorCode, int]:
    """(error, the new log start offset) for a request to delete below ``offset``.

    Internal topics refuse (INVALID_TOPIC_EXCEPTION); a compacted-only topic refuses
    (POLICY_VIOLATION); -1 means the high watermark; an offset below 0 or above the high
    watermark is OFFSET_OUT_OF_RANGE."""
    if internal:
        return ErrorCode.INVALID_TOPIC_EXCEPTION, -1
    if not delete_policy:
        return ErrorCode.POLICY_VIOLATION, -1
    target = high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0 or target > high_watermark:
        return ErrorCode.OFFSET_OUT_OF_RANGE, -1
    return ErrorCode.NONE, target


def low_watermark(leader_log_start: int, followers: Iterable[ReplicaState],
                  alive: Callable[[int], bool]) -> int:
    """The smallest log start offset of the leader and of the followers on live brokers (a
    follower that has not reported one yet counts as -1, holding the answer back)."""
    lw = leader_log_start
    for r in followers:
        if r.log_start_offset < lw and alive(r.broker_id):
            lw = r.log_start_offset
    return lw
