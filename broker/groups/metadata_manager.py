"""The group coordinator's ``__consumer_offsets`` partitions (Kafka's GroupMetadataManager):
which of them this broker leads, loading their groups back, writing records and waiting for
their replication, offset retention and the coordinator's timers.

A broker coordinates the groups whose ``__consumer_offsets`` partition
(``partition_for(group_id, partitions)``) it leads. When it becomes leader of such a partition it
replays the partition's log into the pure ``GroupCoordinator`` in the background (answering
COORDINATOR_LOAD_IN_PROGRESS meanwhile); when it loses it, the partition's groups are dropped and
their requests get NOT_COORDINATOR, so clients look the coordinator up again. Every state change
that must survive a failover (committed offsets, group metadata at each generation, deletions as
tombstones) is appended to the partition with acks=-1 and answered once the high watermark
passed it.

``GroupMetadataManager`` is the base of ``broker.groups.apis.GroupApis``, which adds the wire
APIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.groups.assignors import assignor_name
from broker.groups.consumer_coordinator import ConsumerGroupConfig
from broker.groups.consumer_records import (
    CONSUMER_KEY_VERSIONS,
    ConsumerGroupLoader,
    group_tombstones,
)
from broker.groups.coordinator import GroupCoordinator
from broker.groups.group import CommittedOffset, CoordinatorConfig, GroupState
from broker.groups.records import (
    GroupMetadataRecord,
    OffsetRecord,
    decode_record,
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    partition_for,
    records_batch,
)
from broker.groups.txn_offsets import newer
from broker.protocol.errors import ErrorCode
from broker.replication.log_replay import LogReplayError, replay_batches
from broker.replication.replica_manager import ReplicaManager
from kraft.codec import CodecError
from kraft.image import MetadataImage
from storage.control_records import decode_end_txn_marker
from storage.errors import StorageError

__all__ = ["GROUP_METADATA_TOPIC", "GroupMetadataManager"]

logger = logging.getLogger(__name__)

GROUP_METADATA_TOPIC = "__consumer_offsets"
_I16 = struct.Struct(">h")
TICK_INTERVAL_S = 0.1

# Append errors as the coordinator reports them (Kafka's GroupCoordinatorService).
_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.FENCED_LEADER_EPOCH: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.INVALID_FETCH_SIZE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
}


@dataclass(slots=True)
class _Owned:
    """A ``__consumer_offsets`` partition this broker leads."""

    epoch: int
    loaded: bool = False
    task: asyncio.Task[None] | None = None
    # Transaction markers that arrived while loading (producer id, committed): applied after.
    late_markers: list[tuple[int, bool]] = field(default_factory=list)


class GroupMetadataManager:
    """The coordinator's partitions and their state: ``on_leadership`` goes to
    ``ReplicaManager.add_leadership_listener``, ``on_metadata`` to the metadata loader;
    ``start()``/``stop()`` run the timers."""

    def __init__(self, config: KafkaConfig, replica_manager: ReplicaManager,
                 image: Callable[[], MetadataImage], clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.rm = replica_manager
        self.image = image
        self.num_partitions: int = config.get("offsets.topic.num.partitions")
        self.commit_timeout_s = config.get("offsets.commit.timeout.ms") / 1000
        self.load_buffer_bytes: int = config.get("offsets.load.buffer.size")
        self.retention_check_ms: int = config.get("offsets.retention.check.interval.ms")
        self.coordinator = GroupCoordinator(CoordinatorConfig(
            min_session_timeout_ms=config.get("group.min.session.timeout.ms"),
            max_session_timeout_ms=config.get("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms=config.get("group.initial.rebalance.delay.ms"),
            max_size=config.get("group.max.size"),
            offsets_retention_ms=config.get("offsets.retention.minutes") * 60_000,
        ), store=self._store_group, consumer_config=ConsumerGroupConfig(
            heartbeat_interval_ms=config.get("group.consumer.heartbeat.interval.ms"),
            session_timeout_ms=config.get("group.consumer.session.timeout.ms"),
            assignors=tuple(n for n in (assignor_name(a) for a in config.get(
                "group.consumer.assignors")) if n is not None),
            max_size=config.get("group.consumer.max.size"),
        ))
        self.owned: dict[int, _Owned] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._stopped = False
        self._store_gates: dict[int, asyncio.Lock] = {}  # per partition, see _store_group
        replica_manager.txn_marker_listeners.append(self.on_txn_marker)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.create_task(self._run_timers(), name="group-coordinator")

    async def stop(self) -> None:
        self._stopped = True
        tasks = [t for t in (self._timer, *self._tasks,
                             *(o.task for o in self.owned.values())) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for gid in [*self.coordinator.groups, *self.coordinator.consumer_groups]:
            self.coordinator.remove_group(gid)
        self.owned.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_timers(self) -> None:
        next_retention = self.clock.monotonic() + self.retention_check_ms / 1000
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            try:
                now = self.clock.wall_ms()
                for gid, mid in self.coordinator.tick(now):
                    logger.info("Member %s of group %s left: session timeout", mid, gid)
                for gid, mid, why in self.coordinator.consumer_tick(now):
                    logger.info("Member %s of consumer group %s fenced: %s", mid, gid, why)
                await self.write_dirty_consumer_groups()
                if self.clock.monotonic() >= next_retention:
                    next_retention = self.clock.monotonic() + self.retention_check_ms / 1000
                    await self.expire_offsets()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Group coordinator timer failed")

    async def write_dirty_consumer_groups(self) -> None:
        """Write what the timers changed in consumer groups (``ConsumerGroupApis``)."""

    # -- partition ownership --------------------------------------------------------------------

    def partition_of(self, group_id: str) -> int:
        t = self.image().topics.by_name.get(GROUP_METADATA_TOPIC)
        n = len(t.partitions) if t is not None and t.partitions else self.num_partitions
        return partition_for(group_id, n)

    def group_error(self, group_id: str) -> ErrorCode:
        """NONE when this broker coordinates ``group_id`` and its state is loaded."""
        owned = self.owned.get(self.partition_of(group_id))
        if owned is None:
            return ErrorCode.NOT_COORDINATOR
        if not owned.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def on_leadership(self, tp: tuple[str, int], is_leader: bool, leader_epoch: int) -> None:
        topic, p = tp
        if topic != GROUP_METADATA_TOPIC or self._stopped:
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
            logger.info("No longer the group coordinator for %s-%d", topic, p)

    def _unload(self, p: int) -> None:
        coord = self.coordinator
        for gid in [g for g in [*coord.groups, *coord.consumer_groups]
                    if self.partition_of(g) == p]:
            self.coordinator.remove_group(gid, ErrorCode.NOT_COORDINATOR)
        for gid in [g for g in coord.pending_txn.groups() if self.partition_of(g) == p]:
            coord.pending_txn.remove_group(gid)

    def on_txn_marker(self, topic: str, partition: int, producer_id: int,
                      committed: bool) -> None:
        """``ReplicaManager.txn_marker_listeners``: a transaction marker of ``producer_id`` is
        replicated in ``__consumer_offsets`` partition ``partition``: its pending offsets of the
        partition's groups become committed offsets or go."""
        if topic != GROUP_METADATA_TOPIC:
            return
        owned = self.owned.get(partition)
        if owned is None:
            return
        if not owned.loaded:
            # The loader may have stopped reading before the marker: apply it after loading.
            owned.late_markers.append((producer_id, committed))
            return
        self._complete_txn(partition, producer_id, committed)

    def _complete_txn(self, p: int, producer_id: int, committed: bool) -> None:
        n = self.coordinator.complete_txn(producer_id, committed,
                                          lambda g: self.partition_of(g) == p,
                                          self.clock.wall_ms())
        logger.debug("Transaction of producer %d %s in %s-%d: %d offset(s) applied",
                     producer_id, "committed" if committed else "aborted",
                     GROUP_METADATA_TOPIC, p, n)

    async def _load(self, p: int, owned: _Owned) -> None:
        started = self.clock.monotonic()
        groups: dict[str, GroupMetadataRecord] = {}
        offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        # Transactional offsets by producer until their marker (Kafka's loadGroupsAndOffsets).
        pending: dict[int, dict[str, dict[tuple[str, int], CommittedOffset]]] = {}
        consumer = ConsumerGroupLoader()
        hp = self.rm.partitions.get((GROUP_METADATA_TOPIC, p))
        n_records = 0
        if hp is not None:
            try:
                async for header, records in replay_batches(
                        hp.log, self.load_buffer_bytes, f"{GROUP_METADATA_TOPIC}-{p}"):
                    if header.is_control:
                        if header.is_transactional and records:
                            _replay_marker(header.producer_id, records[0], offsets, pending)
                        continue
                    txn_pid = header.producer_id if header.is_transactional else -1
                    for r in records:
                        n_records += 1
                        try:
                            if r.key is not None and len(r.key) >= 2 and _I16.unpack_from(
                                    r.key)[0] in CONSUMER_KEY_VERSIONS:
                                consumer.replay(r.key, r.value)
                                continue
                            rec = decode_record(r.key, r.value)
                        except (CodecError, ValueError) as e:
                            logger.warning("Skipping a bad record at %s-%d offset %d: %s",
                                           GROUP_METADATA_TOPIC, p, r.offset, e)
                            continue
                        if txn_pid >= 0 and isinstance(rec, OffsetRecord):
                            _replay_txn_offset(rec, r.offset, pending.setdefault(txn_pid, {}))
                        else:
                            _replay(rec, groups, offsets, r.offset, pending)
            except LogReplayError:
                return
        if self.owned.get(p) is not owned:
            return
        now = self.clock.wall_ms()
        cgroups = consumer.build(now, self.coordinator.consumer_config.session_timeout_ms)
        for by_group in pending.values():
            for gid in [g for g, held in by_group.items() if held]:
                offsets.setdefault(gid, {})  # a group with only pending offsets exists, Empty
        self.coordinator.load(groups, offsets, now, cgroups)
        for pid, by_group in pending.items():
            for gid, offs in by_group.items():
                self.coordinator.pending_txn.add(pid, gid, offs)
        owned.loaded = True
        owned.task = None
        for pid, committed in owned.late_markers:
            self._complete_txn(p, pid, committed)
        owned.late_markers.clear()
        logger.info("Loaded group coordinator state of %s-%d (epoch %d): %d groups, %d "
                    "records in %.0f ms", GROUP_METADATA_TOPIC, p, owned.epoch,
                    len(set(groups) | set(offsets)), n_records,
                    (self.clock.monotonic() - started) * 1000)

    # -- writing ------------------------------------------------------------------------------

    async def _append(self, group_id: str, records: list[tuple[bytes, bytes | None]],
                      timeout_s: float | None = None) -> ErrorCode:
        return (await self._append_batch(group_id, records_batch(records, self.clock.wall_ms()),
                                         timeout_s))[0]

    async def _append_batch(self, group_id: str, batch: bytes, timeout_s: float | None = None
                            ) -> tuple[ErrorCode, int]:
        """Append one batch to the group's partition and wait for acks=all (at most
        ``timeout_s``, offsets.commit.timeout.ms by default): (error, offset of its first
        record)."""
        p = self.partition_of(group_id)
        owned = self.owned.get(p)
        if owned is None:
            return ErrorCode.NOT_COORDINATOR, -1
        try:
            code, base = await self.rm.append_and_wait(
                GROUP_METADATA_TOPIC, p, batch, acks=-1,
                timeout_s=self.commit_timeout_s if timeout_s is None else timeout_s)
        except (StorageError, OSError) as e:
            logger.error("Appending to %s-%d failed: %s", GROUP_METADATA_TOPIC, p, e)
            return ErrorCode.NOT_COORDINATOR, -1
        code = ErrorCode(code)
        if code == ErrorCode.NONE and self.owned.get(p) is not owned:
            # Leadership moved while we waited: the new coordinator has the record (it is
            # committed) but this broker no longer answers for the group.
            return ErrorCode.NOT_COORDINATOR, base
        return _APPEND_ERRORS.get(code, code), base

    def _store_group(self, group_id: str, record: GroupMetadataRecord,
                     done: Callable[[ErrorCode], None]) -> None:
        """The coordinator's ``store``. While the partition's ISR is below
        min.insync.replicas the write waits for it to come back, up to
        offsets.commit.timeout.ms, as a write waits for its replication; then it is answered
        COORDINATOR_NOT_AVAILABLE. Refused at once instead, a SyncGroup failed in a
        millisecond and a client that rejoins without a backoff (librdkafka) ran
        JoinGroup/SyncGroup/store thousands of times a second until the ISR grew back.
        Writes of one partition are appended in the order they were asked for (a later
        generation's record must stay the later one in the log)."""
        p = self.partition_of(group_id)
        records: list[tuple[bytes, bytes | None]] = [
            (group_metadata_key(group_id), group_metadata_value(record))]

        async def write() -> None:
            deadline = self.clock.monotonic() + self.commit_timeout_s
            appending: asyncio.Task[ErrorCode] | None = None
            async with self._store_gates.setdefault(p, asyncio.Lock()):
                if await self._min_isr_wait(p, deadline - self.clock.monotonic()):
                    # Started (appended) before the next write passes the gate.
                    appending = asyncio.ensure_future(self._append(
                        group_id, records, max(deadline - self.clock.monotonic(), 0.0)))
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE if appending is None else \
                await appending
            if code:
                logger.warning("Storing metadata of group %s failed: %s", group_id, code.name)
            done(code)
        self._spawn(write())

    async def _min_isr_wait(self, p: int, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` until partition ``p``, if still led here, has
        min.insync.replicas in its ISR (an ISR change or a leadership change wakes the
        produce purgatory). False on timeout."""
        tp = (GROUP_METADATA_TOPIC, p)

        def ready() -> bool:
            hp = self.rm.partitions.get(tp)
            return hp is None or not hp.state.is_leader or not hp.state.under_min_isr(
                self.rm.min_insync_replicas(GROUP_METADATA_TOPIC))

        return await self.rm.produce_purgatory.wait([tp], ready, timeout_s)

    async def expire_offsets(self) -> None:
        """offsets.retention.minutes: tombstone the offsets of groups that stayed Empty that
        long (by commit time for groups without group management), then the emptied group."""
        for gid, tps in self.coordinator.expired_offsets(self.clock.wall_ms()).items():
            await self._remove_offsets(gid, tps, "Expired")

    def on_metadata(self, delta: Any, image: Any) -> None:
        """A metadata publisher: when topics are deleted, their committed offsets go too
        (Kafka's ``onPartitionsDeleted``), in the groups this broker coordinates."""
        if delta is None:
            return
        names = {t.name for t in delta.deleted_topics.values()}
        if names:
            self._spawn(self.remove_offsets_of_topics(names))

    async def remove_offsets_of_topics(self, names: set[str]) -> None:
        coord = self.coordinator
        for gid in [*coord.groups, *coord.consumer_groups]:
            tps = [tp for tp in coord.offsets_of(gid) or {} if tp[0] in names]
            if tps:
                await self._remove_offsets(gid, tps, "Removed (topic deleted)")

    async def _remove_offsets(self, gid: str, tps: list[tuple[str, int]], why: str) -> None:
        """Tombstone ``tps`` of group ``gid`` (and the group itself once it is Empty with no
        offsets left), then forget them. Only the group's loaded coordinator does this."""
        coord = self.coordinator
        cg = coord.consumer_groups.get(gid)
        if cg is not None:
            # A consumer group with members stays when its offsets go; an empty one goes
            # with its last offsets (its records as tombstones), as Kafka's cleanup does.
            tombstones: list[tuple[bytes, bytes | None]] = [
                (offset_commit_key(gid, t, p), None) for t, p in tps]
            drop = not cg.members and len(tps) == len(cg.offsets) \
                and not coord.pending_txn.has_group(gid)
            if drop:
                tombstones += group_tombstones(cg)
            if self.group_error(gid) or await self._append(gid, tombstones):
                return
            coord.remove_offsets(gid, tps)
            logger.info("%s %d offset(s) of group %s", why, len(tps), gid)
            if drop and coord.consumer_groups.get(gid) is cg and not cg.members \
                    and not cg.offsets:
                coord.remove_group(gid, ErrorCode.NOT_COORDINATOR)
            return
        group = coord.groups.get(gid)
        if group is None or self.group_error(gid):
            return
        records: list[tuple[bytes, bytes | None]] = [
            (offset_commit_key(gid, t, p), None) for t, p in tps]
        # A group with pending transactional offsets stays (Kafka's cleanupExpiredOffsets).
        drop_group = len(tps) == len(group.offsets) and not group.members \
            and not coord.pending_txn.has_group(gid)
        if drop_group:
            records.append((group_metadata_key(gid), None))
        if await self._append(gid, records):
            return
        coord.remove_offsets(gid, tps)
        logger.info("%s %d offset(s) of group %s", why, len(tps), gid)
        g = coord.groups.get(gid)
        if drop_group and g is not None and g.is_(GroupState.EMPTY) and not g.offsets:
            coord.remove_group(gid, ErrorCode.NOT_COORDINATOR)


_Pending = dict[int, dict[str, dict[tuple[str, int], CommittedOffset]]]


def _replay(rec: OffsetRecord | GroupMetadataRecord | None,
            groups: dict[str, GroupMetadataRecord],
            offsets: dict[str, dict[tuple[str, int], CommittedOffset]],
            record_offset: int = -1, pending: _Pending | None = None) -> None:
    """Apply one loaded record: the last record per key wins, a tombstone removes it (and the
    partition's pending transactional offsets)."""
    if isinstance(rec, OffsetRecord):
        tp = (rec.topic, rec.partition)
        if rec.tombstone:
            g = offsets.get(rec.group)
            if g is not None:
                g.pop(tp, None)
                if not g:
                    del offsets[rec.group]
            for by_group in (pending or {}).values():
                held = by_group.get(rec.group)
                if held is not None:
                    held.pop(tp, None)
        else:
            offsets.setdefault(rec.group, {})[tp] = _committed(rec, record_offset)
    elif isinstance(rec, GroupMetadataRecord):
        if rec.tombstone:
            groups.pop(rec.group, None)
        else:
            groups[rec.group] = rec



def _committed(rec: OffsetRecord, record_offset: int) -> CommittedOffset:
    return CommittedOffset(rec.offset, rec.leader_epoch, rec.metadata, rec.commit_timestamp,
                           record_offset)


def _replay_txn_offset(rec: OffsetRecord, record_offset: int,
                       by_group: dict[str, dict[tuple[str, int], CommittedOffset]]) -> None:
    """An offset record of a transactional batch: pending for its producer."""
    held = by_group.setdefault(rec.group, {})
    tp = (rec.topic, rec.partition)
    if rec.tombstone:
        held.pop(tp, None)
    else:
        held[tp] = _committed(rec, record_offset)


def _replay_marker(producer_id: int, record: Any,
                   offsets: dict[str, dict[tuple[str, int], CommittedOffset]],
                   pending: _Pending) -> None:
    """A transaction marker: the producer's pending offsets are applied (COMMIT, where written
    later than the offset held) or dropped (ABORT)."""
    try:
        marker = decode_end_txn_marker(record)
    except (StorageError, ValueError) as e:
        logger.warning("Skipping a bad transaction marker of producer %d: %s", producer_id, e)
        return
    by_group = pending.pop(producer_id, {})
    if not marker.is_commit:
        return
    for gid, held in by_group.items():
        for tp, o in held.items():
            group = offsets.setdefault(gid, {})
            if newer(o, group.get(tp)):
                group[tp] = o
