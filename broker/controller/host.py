"""The controller role's I/O: runs the pure ``QuorumController`` on top of the Raft manager.

The controller is active while this node is the Raft leader *and* it has replayed every record
committed before its epoch (the leader's first own-epoch entry committing proves that): only
then can its answers be based on the whole log. ``submit(op)`` runs one operation on the
active controller, hands its records to Raft, and completes once they are committed; if the
leadership is lost before that, the caller gets NOT_CONTROLLER and the controller drops its
uncommitted state (``become_standby``), rebuilding from the committed image.

Operations run one at a time on the event loop, so each sees the records of the previous one
(replayed into the controller's image when written, before they commit), as in Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller.metadata_loader import MetadataLoader, decode_records
from kraft.controller import ControllerResult, NotController, QuorumController
from kraft.metadata_records import encode_metadata_record, latest_version
from kraft.raft import NotLeader
from kraft.snapshot import load_image, read_snapshot

__all__ = ["ControllerService"]

logger = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1
COMMIT_TIMEOUT_S = 30.0


class ControllerService:
    def __init__(self, node_id: int, raft: Any, controller: QuorumController,
                 loader: MetadataLoader | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.node_id = node_id
        self.clock = clock
        # The node's loader, registered with Raft before us: a snapshot it just loaded is
        # reused rather than decoded a second time.
        self.loader = loader
        self.raft = raft
        self.controller = controller
        self.active_epoch: int | None = None
        self._claim: int | None = None  # the epoch we lead and may activate in
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tick_task: asyncio.Task[None] | None = None
        self.committed_offset = -1

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tick_task = asyncio.create_task(self._tick_loop(), name="controller ticks")

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        self._resign("controller shutting down")

    def is_active(self) -> bool:
        return self.active_epoch is not None

    # -- Raft listener -----------------------------------------------------------------------

    def handle_commit(self, batch: Any) -> None:
        records = decode_records(batch.records)
        self.controller.replay_committed(records, batch.last_offset, batch.epoch)
        self.committed_offset = batch.last_offset
        if self._waiters:
            done = [f for off, f in self._waiters if off <= batch.last_offset]
            self._waiters = [(off, f) for off, f in self._waiters if off > batch.last_offset]
            for f in done:
                if not f.done():
                    f.set_result(None)
        self._maybe_activate()

    def handle_load_snapshot(self, snapshot_id: Any, data: bytes) -> None:
        loaded = self.loader.image if self.loader is not None else None
        if loaded is not None and (loaded.offset, loaded.epoch) == (
                snapshot_id.end_offset - 1, snapshot_id.epoch):
            image = loaded
        else:
            image = load_image(read_snapshot(data), snapshot_id.end_offset - 1,
                               snapshot_id.epoch)
        self.controller.load_snapshot(image)
        self.committed_offset = snapshot_id.end_offset - 1

    def handle_leader_change(self, leader: Any) -> None:
        if leader.leader_id == self.node_id:
            if self.active_epoch != leader.epoch:
                self._resign(f"new epoch {leader.epoch}")
                self._claim = leader.epoch
                self._maybe_activate()
        else:
            self._claim = None
            self._resign(f"leader is now {leader.leader_id} in epoch {leader.epoch}")

    def _maybe_activate(self) -> None:
        claim = self._claim
        if claim is None or self.active_epoch is not None:
            return
        epoch = claim
        le = self.raft.leader_and_epoch
        start = self.raft.epoch_start_offset
        if le.leader_id != self.node_id or le.epoch != epoch or start is None:
            return
        # Once the epoch's first entry (our LeaderChange record) is committed *and handed to
        # us*, every earlier record has been replayed. The high watermark alone is not enough:
        # it moves before the driver delivers the batches below it.
        if self.committed_offset < start:
            return
        self._claim = None
        self.active_epoch = epoch
        logger.info("Controller %d is active in epoch %d (committed offset %d)", self.node_id,
                    epoch, self.committed_offset)
        self.controller.note_log_end_offset(self.raft.log_end_offset)
        result = self.controller.become_active(epoch, self.clock.wall_ms())
        if result is not None and result.records:
            self._write(result)

    def _resign(self, why: str) -> None:
        if self.active_epoch is not None:
            logger.info("Controller %d is no longer active: %s", self.node_id, why)
            self.active_epoch = None
            self.controller.become_standby()
        waiters, self._waiters = self._waiters, []
        for _, f in waiters:
            if not f.done():
                f.set_exception(NotController(f"controller {self.node_id} lost leadership"))

    # -- operations --------------------------------------------------------------------------

    def _write(self, result: ControllerResult) -> int:
        """Hand the result's records to Raft; returns the offset of the last one."""
        epoch = self.active_epoch
        assert epoch is not None
        encoded = [encode_metadata_record(t, latest_version(t), r) for t, r in result.records]
        try:
            last_offset = self.raft.append(encoded, epoch=epoch)
        except NotLeader as e:
            self._resign(str(e))
            raise NotController(str(e)) from e
        self.controller.record_written(result.records, last_offset, epoch)
        return last_offset

    async def submit(self, op: Callable[[QuorumController, int], ControllerResult]) -> Any:
        """Run ``op`` on the active controller; return its response once its records commit."""
        if self.active_epoch is None:
            raise NotController(f"controller {self.node_id} is not active")
        self.controller.note_log_end_offset(self.raft.log_end_offset)
        result = op(self.controller, self.clock.wall_ms())
        if not result.records:
            return result.response
        last_offset = self._write(result)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((last_offset, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), COMMIT_TIMEOUT_S)
        except TimeoutError:
            raise NotController(
                f"records at offset {last_offset} not committed in {COMMIT_TIMEOUT_S:.0f}s"
            ) from None
        finally:
            # Nobody waits any more (timeout, or the request was cancelled at shutdown): a
            # later resignation must not fail a future no one will read.
            if not fut.done():
                fut.cancel()
        return result.response

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            try:
                self._maybe_activate()
                if self.active_epoch is None:
                    continue
                self.controller.note_log_end_offset(self.raft.log_end_offset)
                result = self.controller.tick(self.clock.wall_ms())
                if result is not None and result.records:
                    self._write(result)
            except NotController:
                pass
            except Exception:
                logger.exception("Controller %d periodic work failed", self.node_id)
