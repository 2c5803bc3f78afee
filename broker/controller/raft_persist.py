"""Making a Raft ``Ready`` durable before anything that depends on it leaves the node.

``ReadyPersister`` owns the metadata quorum's fsync executor (one worker thread per node, so the
quorum-state write and the log fsync run one after the other and never queue behind unrelated
blocking work in the loop's default executor). ``persist(ready)`` writes, in this order: the
quorum-state file and an installed snapshot (atomic write + fsync, in the worker thread), the
log reset to an installed snapshot, a durable truncation, the appended entries with their fsync
(``PartitionLog.begin_flush``: the loop keeps serving while the disk syncs), then the deletion of
segments below a new log start. The driver sends the Ready's messages only after it returns.

Not ``storage.group_commit.GroupCommit``: its positions only grow, while a follower's log end
goes back on truncation (entries re-appended below the last synced offset would skip their
fsync); the quorum-state write is no "fsync what was written" sync; and the driver never has
more than one durability wait outstanding, so there is nothing to coalesce.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Iterable

from broker.controller.metadata_log import MetadataLog
from broker.controller.quorum_state_file import QuorumStateFile
from kraft.raft import Ready

__all__ = ["ReadyPersister"]

# The driver's logger: its messages keep the name they have always had.
logger = logging.getLogger("broker.controller.raft_driver")


class ReadyPersister:
    """Persists Readys of node ``node_id`` into ``qs`` and ``log`` (see the module doc)."""

    def __init__(self, node_id: int, qs: QuorumStateFile, log: MetadataLog,
                 snapshots: object | None, voters_at: Callable[[int], Iterable[int]],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.node_id = node_id
        self._qs = qs
        self._log = log
        self._snapshots = snapshots
        self.voters_at = voters_at
        self._loop = loop
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"raft-fsync-{node_id}")

    async def persist(self, ready: Ready) -> None:
        mlog = self._log
        election = ready.election_state_to_persist
        install = getattr(ready, "snapshot_to_install", None)
        snapshot_write = None
        if install is not None:
            # FileSnapshotStore.write (atomic, fsynced); MemorySnapshotStore.add in tests.
            add = getattr(self._snapshots, "write", None) or getattr(
                self._snapshots, "add", None)
            if callable(add):
                def snapshot_write() -> None:
                    add(install[0], install[1])
        if election is not None or snapshot_write is not None:
            def write_state() -> None:
                if election is not None:
                    self._qs.write(election.epoch, election.voted_for, election.leader_id)
                if snapshot_write is not None:
                    snapshot_write()
            await self._loop.run_in_executor(self._executor, write_state)
        if install is not None:
            mlog.reset_to(install[0].end_offset)
        if ready.truncate_to is not None:
            mlog.truncate_to(ready.truncate_to)  # durable before it returns
        if ready.entries_to_append:
            node_id = self.node_id
            mlog.write(None, ready.entries_to_append, leader_of_epoch=lambda _e: node_id,
                       voters=self.voters_at)
            job = mlog.begin_flush()
            fsync = self._loop.run_in_executor(self._executor, job.run)
            ok = False
            try:
                await asyncio.shield(fsync)
                ok = True
            except asyncio.CancelledError:
                # Shutting down: the fsync itself goes on in its thread. Wait for it before
                # its descriptors are closed; a cancelled wait is not an I/O error.
                with contextlib.suppress(BaseException):
                    await fsync
                    ok = True
                raise
            finally:
                job.finish(ok)
        start = getattr(ready, "log_start_offset", None)
        if start is not None:
            try:
                mlog.delete_below(start)
            except Exception:
                logger.warning("node %d: cannot delete the metadata log below %d",
                               self.node_id, start, exc_info=True)

    def shutdown(self) -> None:
        """Stop the worker thread once its current job is done."""
        self._executor.shutdown(wait=True)
