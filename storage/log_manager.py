"""The partition logs of one node, across its ``log.dirs`` (Kafka's LogManager).

Start-up loads every ``<topic>-<partition>`` directory: after a clean shutdown (the
``.kafka_cleanshutdown`` marker is present) the checkpointed recovery points are trusted;
otherwise every segment from the recovery point on is validated and a torn or corrupt tail is
truncated (``PartitionLog.open`` logs what it cut). Per log dir it keeps Kafka's checkpoint
files, each written atomically: ``recovery-point-offset-checkpoint``,
``log-start-offset-checkpoint``, ``cleaner-offset-checkpoint`` (where compaction resumes) and
``replication-offset-checkpoint`` (high watermarks, owned by the replica manager and stored
here). Compaction runs in three steps so its heavy middle can go to a worker thread:
``begin_cleaning`` (pick the logs), ``storage.cleaner.prepare_clean`` (anywhere),
``finish_cleaning`` (swap in, checkpoint).

Single-threaded like ``PartitionLog``: the caller serialises access (the broker's event loop).
The metadata log (``__cluster_metadata-0``) is the Raft layer's, not ours, and is skipped.

**A failing log dir** (Kafka's ``LogDirFailureChannel``): an I/O error in any log (an append,
a read, a flush, a roll, retention, a checkpoint) takes its whole directory offline at once
(``fail_dir``): it is listed in ``offline_dirs``, every log in it refuses writes from then on,
and no new log is placed there. The owner (``on_dir_offline``, the broker's replica manager)
then stops serving its partitions and calls ``close_offline_dir``; without an owner the logs
are closed at once. A dir comes back only with a restart.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from storage import fsync_journal
from storage.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_OFFSET_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    OffsetCheckpointFile,
)
from storage.cleaner import (
    CleanAbortedError,
    CleanPlan,
    CleanResult,
    LogToClean,
    commit_clean,
    log_to_clean,
    needs_cleaning,
    prepare_clean,
)
from storage.errors import CorruptRecordError, LogDirOfflineError, StorageError
from storage.fileutil import fsync_dir, make_dirs
from storage.log import PartitionLog
from storage.log_config import LogConfig

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
METADATA_TOPIC = "__cluster_metadata"
# Kafka's legal topic names: ASCII letters, digits, '.', '_' and '-'; at most 249 chars.
_PARTITION_DIR = re.compile(r"^([a-zA-Z0-9._-]{1,249})-([0-9]+)$")

TopicPartition = tuple[str, int]


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> TopicPartition | None:
    """``orders-3`` -> ``("orders", 3)``; None for anything that is not a partition dir."""
    match = _PARTITION_DIR.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


class LogManager:
    """Owns every partition log of a node. Create with ``LogManager.open``."""

    def __init__(self, log_dirs: list[Path], default_config: LogConfig) -> None:
        assert log_dirs, "a node has at least one log dir"
        self.log_dirs = log_dirs
        self.default_config = default_config
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._log_dir_of: dict[TopicPartition, Path] = {}
        self.offline_dirs: set[Path] = set()
        # KIP-858: each log dir's directory id (from its meta.properties, set by the node).
        self.directory_ids: dict[Path, uuid.UUID] = {}
        # Called with a directory once it goes offline at run time; the callee must call
        # ``close_offline_dir`` (soon). None: the logs are closed at once.
        self.on_dir_offline: Callable[[Path], None] | None = None
        # Compaction state: where the next cleaning of each log starts, and what the last one
        # learnt about tombstone horizons (saves a scan in needs_cleaning).
        self._first_dirty: dict[TopicPartition, int] = {}
        self._delete_horizons: dict[TopicPartition, int | None] = {}
        self._cleaning: set[TopicPartition] = set()
        self.uncleanable: set[TopicPartition] = set()

    @classmethod
    def open(
        cls,
        log_dirs: Iterable[str | os.PathLike[str]],
        default_config: LogConfig | None = None,
        *,
        topic_configs: Mapping[str, LogConfig] | None = None,
        now_ms: int | None = None,
    ) -> LogManager:
        """Load and recover every partition log in ``log_dirs``.

        A log dir that fails with an I/O error is taken offline (logged, listed in
        ``offline_dirs``); the others keep working.
        """
        manager = cls([Path(d) for d in log_dirs], default_config or LogConfig())
        topic_configs = topic_configs or {}
        for directory in manager.log_dirs:
            try:
                manager._load_dir(directory, topic_configs, now_ms)
            except (OSError, LogDirOfflineError) as e:
                manager._take_offline(directory, e)
        return manager

    def _load_dir(
        self, directory: Path, topic_configs: Mapping[str, LogConfig], now_ms: int | None
    ) -> None:
        make_dirs(directory)
        clean_marker = directory / CLEAN_SHUTDOWN_FILE
        clean = clean_marker.exists()
        recovery_points = _read_checkpoint(directory / RECOVERY_POINT_OFFSET_CHECKPOINT)
        log_starts = _read_checkpoint(directory / LOG_START_OFFSET_CHECKPOINT)
        self._first_dirty.update(_read_checkpoint(directory / CLEANER_OFFSET_CHECKPOINT))
        loaded = 0
        for child in sorted(directory.iterdir()):
            tp = parse_partition_dir(child.name) if child.is_dir() else None
            if tp is None or tp[0] == METADATA_TOPIC:
                continue
            if tp in self._logs:
                raise StorageError(
                    f"partition {tp[0]}-{tp[1]} is in two log dirs: {self._log_dir_of[tp]} "
                    f"and {directory}"
                )
            # After a clean shutdown everything was flushed: skip recovery. Otherwise recover
            # from the checkpointed recovery point (0 if there is none: validate everything).
            recovery_point = (1 << 63) - 1 if clean else recovery_points.get(tp, 0)
            partition_log = PartitionLog.open(
                child,
                topic_configs.get(tp[0], self.default_config),
                recovery_point=recovery_point,
                log_start_offset=log_starts.get(tp),
                now_ms=now_ms,
            )
            partition_log.on_offline = self._log_failed
            self._logs[tp] = partition_log
            self._log_dir_of[tp] = directory
            loaded += 1
        if clean:
            # From here on the logs are live again: a crash must trigger recovery.
            fsync_journal.unlink(clean_marker)
            fsync_dir(directory)
        log.info(
            "Loaded %d partition log(s) from %s (%s shutdown)",
            loaded, directory, "clean" if clean else "unclean",
        )

    def _take_offline(self, directory: Path, error: BaseException) -> None:
        self.fail_dir(directory, error)

    def _log_failed(self, partition_log: PartitionLog, error: BaseException) -> None:
        self.fail_dir(partition_log.dir.parent, error)

    def fail_dir(self, directory: Path, error: BaseException) -> bool:
        """Take ``directory`` offline after an I/O error in it (idempotent: True the first
        time). Its logs refuse writes at once; ``on_dir_offline`` is told."""
        if directory not in self.log_dirs:
            # A log's parent as spelt by the caller: match the configured dir.
            directory = next((d for d in self.log_dirs if _same_dir(d, directory)), directory)
        if directory in self.offline_dirs:
            return False
        self.offline_dirs.add(directory)
        online = [d for d in self.log_dirs if d not in self.offline_dirs]
        log.error(
            "Log directory %s is offline: %s (online log dirs left: %s)",
            directory, error, ", ".join(str(d) for d in online) or "none",
        )
        for tp, d in self._log_dir_of.items():
            if d == directory:
                self._logs[tp].mark_offline()
        if self.on_dir_offline is None:
            self.close_offline_dir(directory)
        else:
            self.on_dir_offline(directory)
        return True

    def close_offline_dir(self, directory: Path) -> list[TopicPartition]:
        """Forget and close the logs of an offline dir; returns their partitions."""
        tps = [tp for tp, d in self._log_dir_of.items() if d == directory]
        for tp in tps:
            del self._log_dir_of[tp]
            partition_log = self._logs.pop(tp)
            partition_log.mark_offline()
            try:
                partition_log.close()
            except (StorageError, OSError):
                pass
            self._cleaning.discard(tp)
        return tps

    def partitions_in(self, directory: Path) -> list[TopicPartition]:
        return [tp for tp, d in self._log_dir_of.items() if d == directory]

    # -- directory ids (KIP-858) --------------------------------------------------------------

    def dir_id_of(self, topic: str, partition: int) -> uuid.UUID | None:
        """The directory id of the log dir holding a partition's log (None: not known)."""
        directory = self._log_dir_of.get((topic, partition))
        return None if directory is None else self.directory_ids.get(directory)

    def online_dir_ids(self) -> list[uuid.UUID]:
        return [i for d, i in self.directory_ids.items() if d not in self.offline_dirs]

    def offline_dir_ids(self) -> list[uuid.UUID]:
        return [i for d, i in self.directory_ids.items() if d in self.offline_dirs]

    def _target_dir(self, tp: TopicPartition, dir_id: uuid.UUID | None,
                    online: list[Path]) -> Path | None:
        """Where the metadata says a new log must go: one of our online dirs, or None to pick.
        Refuses (LogDirOfflineError) a partition whose assigned dir is not one of ours online:
        its data is there, and an empty log elsewhere would pass for it. (A partition whose
        dir went offline at run time is kept offline by the replica manager,
        broker/replication/log_dir_failure.py.)"""
        if dir_id is None or dir_id.int < 100:  # reserved: UNASSIGNED, MIGRATING, LOST
            return None
        for d in online:
            if self.directory_ids.get(d) == dir_id:
                return d
        raise LogDirOfflineError(
            f"{tp[0]}-{tp[1]} is assigned to log dir {dir_id}, which is not online here")

    # -- access -------------------------------------------------------------------------------

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def all_logs(self) -> dict[TopicPartition, PartitionLog]:
        return dict(self._logs)

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        return self._log_dir_of.get((topic, partition))

    def get_or_create_log(
        self, topic: str, partition: int, config: LogConfig | None = None,
        dir_id: uuid.UUID | None = None,
    ) -> PartitionLog:
        """The log of a partition, created in the log dir ``dir_id`` names (KIP-858), else in
        the online log dir holding the fewest logs (a dir that fails meanwhile goes offline and
        the next one is tried; an assigned dir that fails is not replaced by another)."""
        tp = (topic, partition)
        existing = self._logs.get(tp)
        if existing is not None:
            return existing
        if topic == METADATA_TOPIC or parse_partition_dir(partition_dir_name(*tp)) != tp:
            raise ValueError(f"illegal topic partition {topic!r}/{partition}")
        while True:
            online = [d for d in self.log_dirs if d not in self.offline_dirs]
            target = self._target_dir(tp, dir_id, online)
            if not online:
                raise LogDirOfflineError(
                    f"cannot create the log of {topic}-{partition}: every log dir is offline "
                    f"({', '.join(str(d) for d in self.log_dirs)})")
            counts = {d: 0 for d in online}
            for d in self._log_dir_of.values():
                if d in counts:
                    counts[d] += 1
            directory = target or min(online, key=lambda d: (counts[d], online.index(d)))
            try:
                partition_log = PartitionLog.open(
                    directory / partition_dir_name(topic, partition),
                    config or self.default_config,
                )
                fsync_dir(directory)
                break
            except (OSError, LogDirOfflineError) as e:
                # That dir failed: a new log has no data anywhere, so try the next one (and
                # leave no half-made partition dir behind to clash with it after a restart).
                fsync_journal.rmtree(directory / partition_dir_name(topic, partition),
                                     ignore_errors=True)
                self.fail_dir(directory, e)
        partition_log.on_offline = self._log_failed
        self._logs[tp] = partition_log
        self._log_dir_of[tp] = directory
        return partition_log

    def delete_log(self, topic: str, partition: int) -> bool:
        """Remove a partition's log and its files. True if there was one."""
        tp = (topic, partition)
        partition_log = self._logs.pop(tp, None)
        directory = self._log_dir_of.pop(tp, None)
        if partition_log is None or directory is None:
            return False
        self._first_dirty.pop(tp, None)
        self._delete_horizons.pop(tp, None)
        try:
            partition_log.close()
            fsync_journal.rmtree(partition_log.dir, ignore_errors=True)
            fsync_dir(directory)
        except (OSError, LogDirOfflineError) as e:
            self.fail_dir(directory, e)
        return True

    # -- periodic work ------------------------------------------------------------------------

    def _online_logs(self) -> list[tuple[TopicPartition, PartitionLog]]:
        return [(tp, lg) for tp, lg in self._logs.items() if not lg.offline and not lg.closed]

    def _failed(self, tp: TopicPartition, error: Exception) -> None:
        """Periodic work hit an I/O error in ``tp``'s log: its dir goes offline."""
        directory = self._log_dir_of.get(tp)
        if directory is not None:
            self.fail_dir(directory, error)

    def flush_due(self, now_ms: int) -> int:
        """Apply every log's ``flush.ms``; returns how many logs were flushed."""
        flushed = 0
        for tp, partition_log in self._online_logs():
            try:
                flushed += partition_log.flush_if_due(now_ms)
            except (OSError, LogDirOfflineError) as e:
                self._failed(tp, e)
        return flushed

    def enforce_retention(
        self, now_ms: int, high_watermarks: Mapping[TopicPartition, int] | None = None
    ) -> int:
        """Delete segments past retention (time and size); returns segments deleted."""
        deleted = 0
        for tp, partition_log in self._online_logs():
            hw = None if high_watermarks is None else high_watermarks.get(tp)
            try:
                deleted += partition_log.delete_retention_segments(now_ms, high_watermark=hw)
            except (OSError, LogDirOfflineError) as e:
                self._failed(tp, e)
        return deleted

    def begin_cleaning(
        self, now_ms: int, last_stable_offsets: Mapping[TopicPartition, int] | None = None
    ) -> list[tuple[TopicPartition, LogToClean]]:
        """Step 1 of compaction (on the owner): the compacted logs that need cleaning now,
        each with its range chosen and private fds taken. ``last_stable_offsets`` (high
        watermark, or first unstable offset) bounds what may be cleaned; None: the log end."""
        picked = []
        for tp, partition_log in self._online_logs():
            if (
                tp in self._cleaning
                or tp in self.uncleanable
                or not partition_log.config.compact_enabled
                or partition_log.offline
            ):
                continue
            lso = None if last_stable_offsets is None else last_stable_offsets.get(tp)
            first_dirty = self._first_dirty.get(tp)
            if not needs_cleaning(
                partition_log,
                first_dirty,
                now_ms,
                last_stable_offset=lso,
                earliest_delete_horizon_ms=self._delete_horizons.get(tp),
            ):
                continue
            try:
                to_clean = log_to_clean(
                    partition_log,
                    now_ms=now_ms,
                    first_dirty_offset=first_dirty,
                    last_stable_offset=lso,
                )
            except (OSError, LogDirOfflineError) as e:
                self._failed(tp, e)
                continue
            picked.append((tp, to_clean))
            self._cleaning.add(tp)
        return picked

    def finish_cleaning(
        self, tp: TopicPartition, plan: CleanPlan | BaseException
    ) -> CleanResult | None:
        """Step 3 (on the owner): swap a prepared plan in and checkpoint where the next
        cleaning starts. Pass the exception instead if ``prepare_clean`` failed."""
        self._cleaning.discard(tp)
        partition_log = self._logs.get(tp)
        if isinstance(plan, BaseException):
            if isinstance(plan, (OSError, LogDirOfflineError)) and partition_log is not None:
                # The cleaner read or wrote the log's dir and the disk failed.
                log.error("Compaction of %s-%d hit an I/O error: %s", *tp, plan)
                self._failed(tp, plan)
            elif isinstance(plan, CorruptRecordError):
                # As Kafka: a corrupt batch makes the partition uncleanable until restart.
                self.uncleanable.add(tp)
                log.error("Compaction of %s-%d found a corrupt batch: %s", *tp, plan)
            elif not isinstance(plan, CleanAbortedError):
                log.error("Compaction of %s-%d failed: %s", *tp, plan)
            return None
        if partition_log is None:
            plan.abort()
            return None
        if partition_log.offline:
            plan.abort()
            return None
        try:
            result = commit_clean(partition_log, plan)
        except CleanAbortedError as e:
            log.info("Compaction of %s-%d aborted: %s", *tp, e)
            return None
        except (OSError, LogDirOfflineError) as e:
            log.error("Compaction of %s-%d hit an I/O error swapping segments in: %s", *tp, e)
            self._failed(tp, e)
            return None
        self._first_dirty[tp] = result.next_dirty_offset
        self._delete_horizons[tp] = result.earliest_delete_horizon_ms
        directory = self._log_dir_of[tp]
        try:
            self._write_cleaner_checkpoint(directory)
        except (OSError, LogDirOfflineError) as e:
            self.fail_dir(directory, e)
            return None
        log.info(
            "Compacted %s-%d: %d segment(s) rewritten into %d in %.3f s; next dirty offset %d",
            *tp, result.segments_replaced, result.segments_written, result.elapsed_s,
            result.next_dirty_offset,
        )
        return result

    def clean_all(self, now_ms: int) -> list[CleanResult]:
        """All three compaction steps, synchronously (tests, tools)."""
        results = []
        for tp, to_clean in self.begin_cleaning(now_ms):
            plan: CleanPlan | BaseException
            try:
                plan = prepare_clean(to_clean)
            except (StorageError, OSError) as e:
                plan = e
            result = self.finish_cleaning(tp, plan)
            if result is not None:
                results.append(result)
        return results

    def _write_cleaner_checkpoint(self, directory: Path) -> None:
        OffsetCheckpointFile(directory / CLEANER_OFFSET_CHECKPOINT).write(
            {tp: o for tp, o in self._first_dirty.items() if self._log_dir_of.get(tp) == directory}
        )

    def checkpoint(self, high_watermarks: Mapping[TopicPartition, int] | None = None) -> None:
        """Write recovery points, log start offsets and (if given) high watermarks per dir."""
        for directory in self.log_dirs:
            if directory in self.offline_dirs:
                continue
            tps = [tp for tp, d in self._log_dir_of.items() if d == directory]
            try:
                OffsetCheckpointFile(directory / RECOVERY_POINT_OFFSET_CHECKPOINT).write(
                    {tp: self._logs[tp].recovery_point for tp in tps}
                )
                OffsetCheckpointFile(directory / LOG_START_OFFSET_CHECKPOINT).write(
                    {tp: self._logs[tp].log_start_offset for tp in tps}
                )
                if high_watermarks is not None:
                    OffsetCheckpointFile(directory / REPLICATION_OFFSET_CHECKPOINT).write(
                        {tp: high_watermarks[tp] for tp in tps if tp in high_watermarks}
                    )
            except (OSError, LogDirOfflineError) as e:
                self._take_offline(directory, e)

    def read_high_watermarks(self) -> dict[TopicPartition, int]:
        """The high watermarks checkpointed in every online log dir."""
        out: dict[TopicPartition, int] = {}
        for directory in self.log_dirs:
            if directory not in self.offline_dirs:
                out.update(_read_checkpoint(directory / REPLICATION_OFFSET_CHECKPOINT))
        return out

    def shutdown(self, high_watermarks: Mapping[TopicPartition, int] | None = None) -> None:
        """Flush and close every log, write the checkpoints and the clean-shutdown marker."""
        self.on_dir_offline = None  # from here on a failing dir is simply closed
        for tp, partition_log in self._online_logs():
            try:
                partition_log.flush()
            except (OSError, LogDirOfflineError) as e:
                self._failed(tp, e)
        self.checkpoint(high_watermarks)
        for partition_log in self._logs.values():
            try:
                partition_log.close()
            except (OSError, LogDirOfflineError) as e:
                log.error("Closing %s failed: %s", partition_log.dir, e)
        for directory in self.log_dirs:
            if directory in self.offline_dirs:
                continue  # no clean-shutdown marker: its logs are recovered at the next start
            try:
                marker = directory / CLEAN_SHUTDOWN_FILE
                marker.write_bytes(b"")
                fsync_dir(directory)
            except OSError as e:
                log.error("Cannot write the clean-shutdown marker of %s: %s", directory, e)
        self._logs.clear()
        self._log_dir_of.clear()


def fatal_log_dir_failure(metadata_log_dir: str | os.PathLike[str], manager: LogManager
                          ) -> str | None:
    """Why the node must stop, or None: Kafka exits when the metadata log dir (the first log
    dir unless ``metadata.log.dir`` is set) or every log dir has failed."""
    metadata_dir = Path(metadata_log_dir)
    for d in manager.offline_dirs:
        if _same_dir(d, metadata_dir):
            return f"the metadata log dir {metadata_dir} has failed"
    if all(d in manager.offline_dirs for d in manager.log_dirs):
        return (f"all log dirs in {', '.join(str(d) for d in manager.log_dirs)} have failed")
    return None


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def _read_checkpoint(path: Path) -> dict[TopicPartition, int]:
    if not path.exists():
        return {}
    return OffsetCheckpointFile(path).read()
