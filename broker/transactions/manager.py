"""The transaction coordinator's ``__transaction_state`` partitions (Kafka's
TransactionStateManager): which of them this broker leads, loading their ids back (and
finishing every PrepareCommit/PrepareAbort found there: failover), writing each state
change with acks=-1 before it is answered, the markers, and the timers (timed-out
transactions are aborted, idle ids expire).

A broker coordinates the transactional ids whose ``__transaction_state`` partition
(``partition_for(transactional_id, partitions)``) it leads; the partition's leader epoch is
the coordinator epoch the markers carry. ``TransactionStateManager`` is the base of
``broker.transactions.apis.TransactionApis``, which adds the wire APIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.protocol.errors import ErrorCode
from broker.replication.log_replay import LogReplayError, replay_batches
from broker.replication.replica_manager import ReplicaManager
from broker.transactions.coordinator import Step, TransactionCoordinator, TxnConfig
from broker.transactions.markers import MarkerSender
from broker.transactions.records import (
    decode_txn_record,
    partition_for,
    records_batch,
    txn_key,
    txn_value,
)
from broker.transactions.state import TxnEntry, TxnState
from kraft.codec import CodecError
from kraft.image import MetadataImage
from storage.errors import StorageError

__all__ = ["TRANSACTION_STATE_TOPIC", "TransactionStateManager"]

logger = logging.getLogger(__name__)

TRANSACTION_STATE_TOPIC = "__transaction_state"
TICK_INTERVAL_S = 0.2

# Append errors as the coordinator answers them (Kafka's TransactionStateManager).
_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.FENCED_LEADER_EPOCH: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
}


@dataclass(slots=True)
class _Owned:
    """A ``__transaction_state`` partition this broker leads."""

    epoch: int
    loaded: bool = False
    task: asyncio.Task[None] | None = None


class TransactionStateManager:
    """``on_leadership`` goes to ``ReplicaManager.add_leadership_listener``;
    ``start()``/``stop()`` run the timers."""

    def __init__(self, config: KafkaConfig, replica_manager: ReplicaManager,
                 image: Callable[[], MetadataImage], clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.rm = replica_manager
        self.image = image
        self.num_partitions: int = config.get("transaction.state.log.num.partitions")
        self.load_buffer_bytes: int = config.get("transaction.state.log.load.buffer.size")
        self.write_timeout_s = 5.0  # Kafka's transaction.state.log request timeout
        self.abort_interval_ms: int = config.get(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms")
        self.expire_interval_ms: int = config.get(
            "transaction.remove.expired.transaction.cleanup.interval.ms")
        self.coordinator = TransactionCoordinator(TxnConfig(
            max_timeout_ms=config.get("transaction.max.timeout.ms"),
            id_expiration_ms=config.get("transactional.id.expiration.ms")))
        self.markers = MarkerSender(replica_manager.node_id, config.inter_broker_listener_name,
                                    image, replica_manager.inter_broker_security)
        self.owned: dict[int, _Owned] = {}
        self._sending: dict[str, asyncio.Task[None]] = {}
        # The partitions of a prepared transaction still waiting for their marker (Kafka's
        # DescribeTransactions shows only those).
        self.unmarked: dict[str, set[tuple[str, int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.create_task(self._run_timers(), name="txn-coordinator")

    async def stop(self) -> None:
        self._stopped = True
        tasks = [t for t in (self._timer, *self._tasks, *self._sending.values(),
                             *(o.task for o in self.owned.values())) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.markers.close()
        self.coordinator.txns.clear()
        self.owned.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_timers(self) -> None:
        mono = self.clock.monotonic
        next_abort = mono() + self.abort_interval_ms / 1000
        next_expire = mono() + self.expire_interval_ms / 1000
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            try:
                if mono() >= next_abort:
                    next_abort = mono() + self.abort_interval_ms / 1000
                    await self.abort_timed_out()
                if mono() >= next_expire:
                    next_expire = mono() + self.expire_interval_ms / 1000
                    await self.expire_ids()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Transaction coordinator timer failed")

    async def abort_timed_out(self) -> None:
        """Abort (with a bumped epoch) every Ongoing transaction past its timeout."""
        now = self.clock.wall_ms()
        for tid in self.coordinator.timed_out(now):
            if self.txn_error(tid):
                continue
            step = self.coordinator.abort_timed_out(tid, now)
            if step.write is not None:
                logger.info("Aborting transaction of %s: timed out after %d ms", tid,
                            step.write.timeout_ms)
                await self.run_step(tid, step)

    async def expire_ids(self) -> None:
        for step in self.coordinator.expire_ids(self.clock.wall_ms()):
            assert step.write is not None
            tid = step.write.transactional_id
            code = await self.run_step(tid, step)
            if not code:
                logger.info("Transactional id %s expired", tid)

    # -- partition ownership --------------------------------------------------------------------

    def partition_of(self, tid: str) -> int:
        t = self.image().topics.by_name.get(TRANSACTION_STATE_TOPIC)
        n = len(t.partitions) if t is not None and t.partitions else self.num_partitions
        return partition_for(tid, n)

    def txn_error(self, tid: str) -> ErrorCode:
        """NONE when this broker coordinates ``tid`` and its partition is loaded."""
        owned = self.owned.get(self.partition_of(tid))
        if owned is None:
            return ErrorCode.NOT_COORDINATOR
        if not owned.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def on_leadership(self, tp: tuple[str, int], is_leader: bool, leader_epoch: int) -> None:
        topic, p = tp
        if topic != TRANSACTION_STATE_TOPIC or self._stopped:
            return
        old = self.owned.pop(p, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        self._unload(p)
        if is_leader:
            owned = self.owned[p] = _Owned(leader_epoch)
            owned.task = asyncio.get_running_loop().create_task(
                self._load(p, owned), name=f"load-{topic}-{p}")
        elif old is not None:
            logger.info("No longer the transaction coordinator for %s-%d", topic, p)

    def _unload(self, p: int) -> None:
        tids = [t for t in self.coordinator.txns if self.partition_of(t) == p]
        for tid in tids:
            task = self._sending.pop(tid, None)
            if task is not None:
                task.cancel()
        self.coordinator.unload(tids)

    async def _load(self, p: int, owned: _Owned) -> None:
        started = self.clock.monotonic()
        entries: dict[str, TxnEntry] = {}
        hp = self.rm.partitions.get((TRANSACTION_STATE_TOPIC, p))
        n_records = 0
        if hp is not None:
            try:
                async for header, records in replay_batches(
                        hp.log, self.load_buffer_bytes, f"{TRANSACTION_STATE_TOPIC}-{p}"):
                    if header.is_control:
                        continue
                    for r in records:
                        n_records += 1
                        try:
                            tid, entry = decode_txn_record(r.key, r.value)
                        except (CodecError, ValueError) as e:
                            logger.warning("Skipping a bad record at %s-%d offset %d: %s",
                                           TRANSACTION_STATE_TOPIC, p, r.offset, e)
                            continue
                        if entry is None:
                            entries.pop(tid, None)
                        else:
                            entries[tid] = entry
            except LogReplayError:
                return
        if self.owned.get(p) is not owned:
            return
        resume = self.coordinator.load(entries.values())
        owned.loaded = True
        owned.task = None
        logger.info("Loaded transaction coordinator state of %s-%d (epoch %d): %d ids, %d "
                    "records, %d transaction(s) to complete, in %.0f ms",
                    TRANSACTION_STATE_TOPIC, p, owned.epoch, len(entries), n_records,
                    len(resume), (self.clock.monotonic() - started) * 1000)
        for tid in resume:
            self._start_markers(tid)

    # -- writing ------------------------------------------------------------------------------

    async def _append(self, tid: str, value: bytes | None) -> ErrorCode:
        p = self.partition_of(tid)
        owned = self.owned.get(p)
        if owned is None:
            return ErrorCode.NOT_COORDINATOR
        batch = records_batch([(txn_key(tid), value)], self.clock.wall_ms())
        try:
            code, _ = await self.rm.append_and_wait(
                TRANSACTION_STATE_TOPIC, p, batch, acks=-1, timeout_s=self.write_timeout_s)
        except (StorageError, OSError) as e:
            logger.error("Appending to %s-%d failed: %s", TRANSACTION_STATE_TOPIC, p, e)
            return ErrorCode.NOT_COORDINATOR
        code = ErrorCode(code)
        if code == ErrorCode.NONE and self.owned.get(p) is not owned:
            return ErrorCode.NOT_COORDINATOR
        return _APPEND_ERRORS.get(code, code)

    async def run_step(self, tid: str, step: Step) -> ErrorCode:
        """Carry out ``step``: write its entry (if any), tell the coordinator, start the
        markers after a Prepare; the request's answer. The write runs in its own task, so a
        request cancelled meanwhile (its client went away) leaves memory and log agreeing."""
        if step.write is None:
            return step.error
        code = await asyncio.shield(self._spawn(self._write(tid, step)))
        return code or step.error

    async def _write(self, tid: str, step: Step) -> ErrorCode:
        entry = step.write
        assert entry is not None
        value = None if entry.state == TxnState.DEAD else txn_value(entry)
        try:
            code = await self._append(tid, value)
        except BaseException:
            # Cancelled (the broker stops): the id must not stay pending.
            self.coordinator.complete(entry, ErrorCode.NOT_COORDINATOR)
            raise
        self.coordinator.complete(entry, code)
        if code:
            logger.warning("Writing the %s state of transactional id %s failed: %s",
                           entry.state.display, tid, code.name)
            return code
        if step.markers:
            self._start_markers(tid)
        return ErrorCode.NONE

    def _start_markers(self, tid: str) -> None:
        if tid in self._sending or self._stopped:
            return
        task = asyncio.get_running_loop().create_task(self._complete(tid),
                                                      name=f"txn-markers-{tid}")
        self._sending[tid] = task
        task.add_done_callback(lambda t: self._sending.pop(tid, None)
                               if self._sending.get(tid) is t else None)

    async def _complete(self, tid: str) -> None:
        prepared = self.coordinator.markers_of(tid)
        if prepared is None:
            return
        p = self.partition_of(tid)
        owned = self.owned.get(p)
        if owned is None:
            return
        remaining = self.unmarked[tid] = set(prepared.partitions)
        try:
            ok = await self.markers.send(
                prepared.producer_id, prepared.producer_epoch,
                prepared.state == TxnState.PREPARE_COMMIT, owned.epoch, prepared.partitions,
                lambda: self.owned.get(p) is owned
                and self.coordinator.markers_of(tid) is prepared, remaining)
        finally:
            if self.unmarked.get(tid) is remaining:
                del self.unmarked[tid]
        if not ok:
            return
        while self.owned.get(p) is owned:
            step = self.coordinator.markers_done(tid, prepared, self.clock.wall_ms())
            if step.write is None:
                if self.coordinator.markers_of(tid) is not prepared:
                    return
                await asyncio.sleep(0.1)  # a write of this id is in flight
                continue
            code = await self.run_step(tid, step)
            if not code:
                logger.info("Completed the transaction of %s (producer %d epoch %d): %s",
                            tid, prepared.producer_id, prepared.producer_epoch,
                            step.write.state.display)
                return
            await asyncio.sleep(0.5)
