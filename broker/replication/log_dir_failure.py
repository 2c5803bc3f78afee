"""A failing log dir on a running broker (Kafka's ``ReplicaManager.handleLogDirFailure``).

An I/O error (disk full, EIO, a vanished directory) in any partition log takes that log's
directory offline in the log manager at once (``storage/log_manager.py``: every log there
refuses writes, no new log is placed there). On the next turn of the event loop this half of
``ReplicaManager`` then:

- moves every hosted partition of that dir to ``offline_partitions`` (Kafka's
  ``HostedPartition.Offline``): its fetcher stops, waiting requests are answered, the group and
  transaction coordinators unload it (a leadership listener call with ``is_leader`` False), and
  from then on every request naming it is answered KAFKA_STORAGE_ERROR (56), which clients
  treat as retriable (they refresh metadata and retry, the leader elsewhere once the controller
  moved it);
- closes the dir's logs;
- calls each of ``log_dir_failure_listeners`` with the dir, once (the node stops when the
  metadata log dir or every log dir failed; the broker's heartbeat reports the dir).

Partitions the metadata assigns to this broker later are not placed in an offline dir. A
partition this broker already held (it is in the replicas of the image it starts from, or of
the previous image) whose log is in no online dir while some dir is offline is not created
anew and empty elsewhere: its data may be in the offline dir, so it is offline too (as Kafka's
``LogManager.getOrCreateLog`` refuses a log that is not new while a dir is offline). Only a
restart brings a dir back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.errors import LogDirOfflineError

if TYPE_CHECKING:
    from broker.replication.partition import Partition

__all__ = ["LogDirFailureHandler"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]


class LogDirFailureHandler:
    """The log-dir failure half of ``broker.replication.replica_manager.ReplicaManager``."""

    # Provided by ReplicaManager.
    log_manager: Any
    partitions: dict[TP, Partition]
    fetchers: Any
    _stopped: bool

    def _init_log_dir_failure(self) -> None:
        # Hosted partitions whose log dir is offline, with their topic id (None: unknown).
        self.offline_partitions: dict[TP, uuid.UUID | None] = {}
        # Called as fn(dir) once when a log dir goes offline at run time.
        self.log_dir_failure_listeners: list[Callable[[Path], None]] = []
        # Partitions a metadata delta newly assigned to this broker (they may be created in
        # any online dir even while another dir is offline).
        self._new_replicas: set[TP] = set()
        self.log_manager.on_dir_offline = self._on_dir_offline

    def offline_log_dirs(self) -> set[Path]:
        """This broker's log dirs that are offline (failed at start-up or since)."""
        return set(self.log_manager.offline_dirs)

    def partition_offline(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.offline_partitions

    # -- reporting ----------------------------------------------------------------------------

    def storage_failed(self, hp: Partition, error: BaseException) -> None:
        """An operation on ``hp``'s log failed with ``error``: an I/O error (one the log did not
        already turn into ``LogDirOfflineError``, say from a producer-state snapshot or an
        epoch checkpoint) takes the log's dir offline too. A shortage of file descriptors is
        the process's, not the disk's."""
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
            return
        if not isinstance(error, (OSError, LogDirOfflineError)):
            return
        directory = self.log_manager.log_dir_of(hp.topic, hp.partition)
        if directory is not None:
            self.log_manager.fail_dir(directory, error)

    def _on_dir_offline(self, directory: Path) -> None:
        """The log manager took ``directory`` offline: finish the work on the next turn of the
        loop, outside whatever log operation failed (it may be iterating partitions)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.handle_log_dir_failure(directory)
            return
        loop.call_soon(self.handle_log_dir_failure, directory)

    def handle_log_dir_failure(self, directory: Path) -> None:
        tps = self.log_manager.partitions_in(directory)
        moved = 0
        for tp in tps:
            hp = self.partitions.pop(tp, None)
            self.fetchers.remove(tp)
            self.offline_partitions[tp] = hp.topic_id if hp is not None else None
            if hp is not None:
                moved += 1
                hp.state.leader = -1
                self._tell_leadership(tp, False, -1)
                self._wake(tp)
        self.log_manager.close_offline_dir(directory)
        logger.error(
            "Log dir %s failed: %d partition(s) on this broker are offline (%s); requests for "
            "them are answered KAFKA_STORAGE_ERROR", directory, moved,
            ", ".join(f"{t}-{p}" for t, p in sorted(tps)[:20]) + (" ..." if len(tps) > 20
                                                                 else ""))
        for fn in list(self.log_dir_failure_listeners):
            try:
                fn(directory)
            except Exception:
                logger.exception("Log dir failure listener failed for %s", directory)

    # -- metadata -----------------------------------------------------------------------------

    def _offline_for_metadata(self, tp: TP, topic_id: uuid.UUID) -> bool:
        """True if ``tp`` must stay offline instead of getting a log now: it is offline
        already (the same topic), or it is not new to this broker, has no log in an online
        dir, and a dir is offline (its data may be there)."""
        known = self.offline_partitions.get(tp, False)
        if known is not False:
            if known is None or known == topic_id:
                return True
            del self.offline_partitions[tp]  # a new topic of the same name
        new = tp in self._new_replicas
        self._new_replicas.discard(tp)
        if new or not self.log_manager.offline_dirs:
            return False
        if self.log_manager.get_log(*tp) is not None:
            return False
        self.offline_partitions[tp] = topic_id
        logger.error(
            "%s-%d has no log in an online log dir while log dir(s) %s are offline: its data "
            "may be there, so it is offline on this broker (KAFKA_STORAGE_ERROR), not created "
            "empty", tp[0], tp[1],
            ", ".join(str(d) for d in sorted(self.log_manager.offline_dirs)))
        return True

    def _creation_failed(self, tp: TP, topic_id: uuid.UUID, error: BaseException) -> None:
        """No log could be created (every dir offline, or the chosen one failed)."""
        if isinstance(error, LogDirOfflineError):
            self.offline_partitions[tp] = topic_id

    if TYPE_CHECKING:  # provided by ReplicaManager
        def _tell_leadership(self, tp: TP, is_leader: bool, leader_epoch: int) -> None: ...

        def _wake(self, tp: TP) -> None: ...
