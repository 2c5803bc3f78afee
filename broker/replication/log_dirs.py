"""DescribeLogDirs (key 35): this broker's log directories, the partition logs each holds, their
sizes on disk and, from v4, the size and free space of each directory's volume.

Kafka's ``ReplicaManager.describeLogDirs``: one result per configured log dir (its absolute
path); an offline directory is answered KAFKA_STORAGE_ERROR and lists nothing. Request topics
null means every partition log on this broker. Per partition: the bytes of its segments
(``PartitionLog.size_bytes``), the offset lag (Kafka's ``getLogEndOffsetLag``: for a current
replica the high watermark minus the log end offset, never below 0, so 0 in practice; -1 for a
log this broker does not host as a partition (yet); only a future replica, moving between
directories through AlterReplicaLogDirs, lags, and there are none here) and ``is_future_key``
false. Each broker answers for itself; clients ask every broker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from broker.network.context import RequestContext
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import describe_log_dirs
from broker.replication.partition import Partition
from storage.log import PartitionLog
from storage.log_manager import LogManager

__all__ = ["INVALID_OFFSET_LAG", "LogDirApis", "describe_log_dirs", "volume_bytes"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]
INVALID_OFFSET_LAG = -1  # Kafka's DescribeLogDirsResponse.INVALID_OFFSET_LAG
_R = describe_log_dirs.RESPONSE


def volume_bytes(path: str, statvfs: Callable[[str], Any] = os.statvfs) -> tuple[int, int]:
    """(total, usable) bytes of the volume holding ``path`` (Java's ``FileStore`` total and
    usable space: blocks and blocks available to unprivileged users, times the fragment
    size)."""
    st = statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def wanted_partitions(topics: Iterable[Any] | None) -> set[TP] | None:
    """The (topic, partition) pairs a request names; None for all (topics null)."""
    if topics is None:
        return None
    return {(t.topic, p) for t in topics for p in t.partitions}


def offset_lag(log: PartitionLog, hosted: Partition | None) -> int:
    if hosted is None or hosted.log is not log:
        return INVALID_OFFSET_LAG
    return max(hosted.state.high_watermark - log.log_end_offset, 0)


def describe_log_dirs(log_manager: LogManager, hosted: Mapping[TP, Partition],
                      wanted: set[TP] | None, *,
                      statvfs: Callable[[str], Any] = os.statvfs) -> list[Any]:
    """The response's results, one per configured log dir, in configuration order."""
    by_dir: dict[Path, list[tuple[TP, PartitionLog]]] = {d: [] for d in log_manager.log_dirs}
    for tp, log in sorted(log_manager.all_logs().items()):
        d = log_manager.log_dir_of(*tp)
        if d is not None and d in by_dir:
            by_dir[d].append((tp, log))
    results = []
    for d, logs in by_dir.items():
        path = os.path.abspath(d)
        # An I/O error takes a log offline (storage/log.py); the directory holding it is then
        # as good as offline (docs/architecture.md, "Errors"), as Kafka would have it.
        if d in log_manager.offline_dirs or any(log.offline for _, log in logs):
            results.append(_R.DescribeLogDirsResult(
                error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=path))
            continue
        try:
            total, usable = volume_bytes(path, statvfs)
        except OSError as e:
            logger.warning("Cannot read the volume size of log dir %s: %s", path, e)
            results.append(_R.DescribeLogDirsResult(
                error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=path))
            continue
        topics: dict[str, list[Any]] = {}
        for tp, log in logs:
            if wanted is not None and tp not in wanted:
                continue
            topics.setdefault(tp[0], []).append(_R.DescribeLogDirsPartition(
                partition_index=tp[1], partition_size=log.size_bytes,
                offset_lag=offset_lag(log, hosted.get(tp)), is_future_key=False))
        results.append(_R.DescribeLogDirsResult(
            error_code=ErrorCode.NONE, log_dir=path,
            topics=[_R.DescribeLogDirsTopic(name=n, partitions=ps)
                    for n, ps in topics.items()],
            total_bytes=total, usable_bytes=usable))
    return results


class LogDirApis:
    """``handlers``: DescribeLogDirs for the broker listener, over the node's log manager and
    the partitions its replica manager hosts."""

    def __init__(self, log_manager: LogManager, hosted: Callable[[], Mapping[TP, Partition]]
                 ) -> None:
        self.log_manager = log_manager
        self.hosted = hosted
        self.handlers: dict[int, Callable[[RequestContext, RequestHeader, Any], Any]] = {
            ApiKey.DESCRIBE_LOG_DIRS: self.handle_describe_log_dirs,
        }

    def handle_describe_log_dirs(self, ctx: RequestContext, header: RequestHeader,
                                 request: Any) -> Any:
        results = describe_log_dirs(self.log_manager, self.hosted(),
                                    wanted_partitions(request.topics))
        return _R.cls(throttle_time_ms=0, error_code=ErrorCode.NONE, results=results)
