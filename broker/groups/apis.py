"""The group coordinator's I/O side: the consumer-group wire APIs, ``__consumer_offsets``
loading and writing, and the coordinator's timers.

A broker coordinates the groups whose ``__consumer_offsets`` partition
(``partition_for(group_id, partitions)``) it leads. When it becomes leader of such a partition it
replays the partition's log into the pure ``GroupCoordinator`` in the background (answering
COORDINATOR_LOAD_IN_PROGRESS meanwhile); when it loses it, the partition's groups are dropped and
their requests get NOT_COORDINATOR, so clients look the coordinator up again. Every state change
that must survive a failover (committed offsets, group metadata at each generation, deletions as
tombstones) is appended to the partition with acks=-1 and answered once the high watermark
passed it.

``__consumer_offsets`` is created on the first FindCoordinator through the active controller
(``offsets.topic.num.partitions``, ``offsets.topic.replication.factor``, compacted). As in
Kafka, creation is refused while fewer brokers are alive than the replication factor: clients
keep getting COORDINATOR_NOT_AVAILABLE until enough brokers are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.groups.coordinator import (
    CommittedOffset,
    CoordinatorConfig,
    GroupCoordinator,
    GroupState,
    JoinResult,
    SyncResult,
)
from broker.groups.records import (
    GroupMetadataRecord,
    OffsetRecord,
    decode_record,
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    offset_commit_value,
    partition_for,
    records_batch,
)
from broker.network.server import RequestContext
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    delete_groups,
    describe_groups,
    find_coordinator,
    heartbeat,
    join_group,
    leave_group,
    list_groups,
    offset_commit,
    offset_delete,
    offset_fetch,
    sync_group,
)
from broker.replication.replica_manager import ReplicaManager
from kraft.codec import CodecError
from kraft.image import MetadataImage
from storage.errors import StorageError
from storage.record_batch import iter_batches
from storage.records import decode_batch

__all__ = ["ADVERTISED", "GROUP_METADATA_TOPIC", "GroupApis"]

logger = logging.getLogger(__name__)

GROUP_METADATA_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
OFFSET_METADATA_MAX_BYTES = 4096  # Kafka's offset.metadata.max.bytes default
TICK_INTERVAL_S = 0.1
FIND_COORDINATOR_CREATE_TIMEOUT_S = 5.0
KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION = 0, 1
CREATE_RETRY_BACKOFF_S = 2.0

# Every version of each schema is served; the low ones keep kcat's groups on (docs/clients.md).
ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.FIND_COORDINATOR: (0, 6),
    ApiKey.JOIN_GROUP: (0, 9),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 5),
    ApiKey.OFFSET_COMMIT: (0, 9),
    ApiKey.OFFSET_FETCH: (0, 9),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.DELETE_GROUPS: (0, 2),
    ApiKey.OFFSET_DELETE: (0, 0),
}

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


class GroupApis:
    """``handlers``: ApiKey -> handler for the broker listener; ``on_leadership`` goes to
    ``ReplicaManager.add_leadership_listener``; ``start()``/``stop()`` run the timers."""

    def __init__(self, config: KafkaConfig, replica_manager: ReplicaManager,
                 image: Callable[[], MetadataImage],
                 auto_create: Callable[..., Awaitable[dict[str, int]]] | None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.rm = replica_manager
        self.image = image
        self.auto_create = auto_create
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
        ), store=self._store_group)
        self.owned: dict[int, _Owned] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._stopped = False
        self._create_retry_at = 0.0
        self.handlers: dict[int, Any] = {
            ApiKey.FIND_COORDINATOR: self.handle_find_coordinator,
            ApiKey.JOIN_GROUP: self.handle_join_group,
            ApiKey.SYNC_GROUP: self.handle_sync_group,
            ApiKey.HEARTBEAT: self.handle_heartbeat,
            ApiKey.LEAVE_GROUP: self.handle_leave_group,
            ApiKey.OFFSET_COMMIT: self.handle_offset_commit,
            ApiKey.OFFSET_FETCH: self.handle_offset_fetch,
            ApiKey.LIST_GROUPS: self.handle_list_groups,
            ApiKey.DESCRIBE_GROUPS: self.handle_describe_groups,
            ApiKey.DELETE_GROUPS: self.handle_delete_groups,
            ApiKey.OFFSET_DELETE: self.handle_offset_delete,
        }

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
        for gid in list(self.coordinator.groups):
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
                for gid, mid in self.coordinator.tick(self.clock.wall_ms()):
                    logger.info("Member %s of group %s left: session timeout", mid, gid)
                if self.clock.monotonic() >= next_retention:
                    next_retention = self.clock.monotonic() + self.retention_check_ms / 1000
                    await self.expire_offsets()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Group coordinator timer failed")

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
        for gid in [g for g in self.coordinator.groups if self.partition_of(g) == p]:
            self.coordinator.remove_group(gid, ErrorCode.NOT_COORDINATOR)

    async def _load(self, p: int, owned: _Owned) -> None:
        started = self.clock.monotonic()
        groups: dict[str, GroupMetadataRecord] = {}
        offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        hp = self.rm.partitions.get((GROUP_METADATA_TOPIC, p))
        n_records = 0
        if hp is not None:
            log = hp.log
            offset, end = log.log_start_offset, log.log_end_offset
            while offset < end:
                try:
                    sl = log.read(offset, self.load_buffer_bytes, max_offset=end)
                    if sl is None:
                        break
                    with sl:
                        data = sl.read_bytes()
                except (StorageError, OSError) as e:
                    logger.error("Loading %s-%d failed at offset %d: %s",
                                 GROUP_METADATA_TOPIC, p, offset, e)
                    return
                for pos, header in iter_batches(data):
                    offset = header.next_offset
                    if header.is_control:
                        continue
                    try:
                        _, records = decode_batch(data, pos)
                    except (CodecError, StorageError, ValueError) as e:
                        logger.error("Skipping an unreadable batch in %s-%d: %s",
                                     GROUP_METADATA_TOPIC, p, e)
                        continue
                    for r in records:
                        n_records += 1
                        try:
                            rec = decode_record(r.key, r.value)
                        except (CodecError, ValueError) as e:
                            logger.warning("Skipping a bad record at %s-%d offset %d: %s",
                                           GROUP_METADATA_TOPIC, p, r.offset, e)
                            continue
                        _replay(rec, groups, offsets)
                # Large partitions load in slices: the loop keeps serving meanwhile.
                await asyncio.sleep(0)
        if self.owned.get(p) is not owned:
            return
        self.coordinator.load(groups, offsets, self.clock.wall_ms())
        owned.loaded = True
        owned.task = None
        logger.info("Loaded group coordinator state of %s-%d (epoch %d): %d groups, %d "
                    "records in %.0f ms", GROUP_METADATA_TOPIC, p, owned.epoch,
                    len(set(groups) | set(offsets)), n_records,
                    (self.clock.monotonic() - started) * 1000)

    # -- writing ------------------------------------------------------------------------------

    async def _append(self, group_id: str, records: list[tuple[bytes, bytes | None]]
                      ) -> ErrorCode:
        p = self.partition_of(group_id)
        owned = self.owned.get(p)
        if owned is None:
            return ErrorCode.NOT_COORDINATOR
        batch = records_batch(records, self.clock.wall_ms())
        try:
            code, _ = await self.rm.append_and_wait(
                GROUP_METADATA_TOPIC, p, batch, acks=-1, timeout_s=self.commit_timeout_s)
        except (StorageError, OSError) as e:
            logger.error("Appending to %s-%d failed: %s", GROUP_METADATA_TOPIC, p, e)
            return ErrorCode.NOT_COORDINATOR
        code = ErrorCode(code)
        if code == ErrorCode.NONE and self.owned.get(p) is not owned:
            # Leadership moved while we waited: the new coordinator has the record (it is
            # committed) but this broker no longer answers for the group.
            return ErrorCode.NOT_COORDINATOR
        return _APPEND_ERRORS.get(code, code)

    def _store_group(self, group_id: str, record: GroupMetadataRecord,
                     done: Callable[[ErrorCode], None]) -> None:
        async def write() -> None:
            code = await self._append(group_id, [(group_metadata_key(group_id),
                                                  group_metadata_value(record))])
            if code:
                logger.warning("Storing metadata of group %s failed: %s", group_id, code.name)
            done(code)
        self._spawn(write())

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
        for gid, group in list(self.coordinator.groups.items()):
            tps = [tp for tp in group.offsets if tp[0] in names]
            if tps:
                await self._remove_offsets(gid, tps, "Removed (topic deleted)")

    async def _remove_offsets(self, gid: str, tps: list[tuple[str, int]], why: str) -> None:
        """Tombstone ``tps`` of group ``gid`` (and the group itself once it is Empty with no
        offsets left), then forget them. Only the group's loaded coordinator does this."""
        coord = self.coordinator
        group = coord.groups.get(gid)
        if group is None or self.group_error(gid):
            return
        records: list[tuple[bytes, bytes | None]] = [
            (offset_commit_key(gid, t, p), None) for t, p in tps]
        drop_group = len(tps) == len(group.offsets) and not group.members
        if drop_group:
            records.append((group_metadata_key(gid), None))
        if await self._append(gid, records):
            return
        coord.remove_offsets(gid, tps)
        logger.info("%s %d offset(s) of group %s", why, len(tps), gid)
        g = coord.groups.get(gid)
        if drop_group and g is not None and g.is_(GroupState.EMPTY) and not g.offsets:
            coord.remove_group(gid, ErrorCode.NOT_COORDINATOR)

    # -- FindCoordinator (10) -----------------------------------------------------------------

    async def handle_find_coordinator(self, ctx: RequestContext, header: RequestHeader,
                                      request: Any) -> Any:
        R = find_coordinator.RESPONSE
        v = header.api_version
        keys = list(request.coordinator_keys) if v >= 4 else [request.key]
        key_type = request.key_type if v >= 1 else KEY_TYPE_GROUP
        results = [await self._find_one(ctx, key, key_type) for key in keys]
        if v >= 4:
            return R.cls(throttle_time_ms=0, coordinators=[
                R.Coordinator(key=k, node_id=n, host=h, port=pt, error_code=int(e),
                              error_message=None if not e else e.name)
                for k, (e, n, h, pt) in zip(keys, results, strict=True)])
        e, n, h, pt = results[0]
        return R.cls(throttle_time_ms=0, error_code=int(e),
                     error_message=None if not e else e.name, node_id=n, host=h, port=pt)

    async def _find_one(self, ctx: RequestContext, key: str, key_type: int
                        ) -> tuple[ErrorCode, int, str, int]:
        none = (-1, "", -1)
        if key_type == KEY_TYPE_GROUP:
            topic = GROUP_METADATA_TOPIC
            if not key:
                return (ErrorCode.INVALID_REQUEST, *none)
        elif key_type == KEY_TYPE_TRANSACTION:
            topic = TRANSACTION_STATE_TOPIC
            if not key:
                return (ErrorCode.INVALID_REQUEST, *none)
        else:
            return (ErrorCode.INVALID_REQUEST, *none)
        image = self.image()
        t = image.topics.by_name.get(topic)
        if t is None:
            if self.auto_create is None or key_type != KEY_TYPE_GROUP or (
                    self.clock.monotonic() < self._create_retry_at):
                return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *none)
            try:
                codes = await asyncio.wait_for(
                    self.auto_create([topic], timeout_s=FIND_COORDINATOR_CREATE_TIMEOUT_S),
                    FIND_COORDINATOR_CREATE_TIMEOUT_S + 1)
            except TimeoutError:
                return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *none)
            code = codes.get(topic, ErrorCode.UNKNOWN_SERVER_ERROR)
            if code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                # Clients retry FindCoordinator quickly: do not ask the controller each time.
                self._create_retry_at = self.clock.monotonic() + CREATE_RETRY_BACKOFF_S
                if code == ErrorCode.INVALID_REPLICATION_FACTOR:
                    live = sum(1 for b in image.cluster.brokers.values() if not b.fenced)
                    logger.warning(
                        "Cannot create %s yet: offsets.topic.replication.factor=%d but %d "
                        "broker(s) alive; consumer groups wait for more brokers", topic,
                        self.config.get("offsets.topic.replication.factor"), live)
                else:
                    logger.warning("Creating %s failed: %s", topic, ErrorCode(code).name)
                return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *none)
            image = self.image()
            t = image.topics.by_name.get(topic)
            if t is None or not t.partitions:
                return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *none)
        reg = t.partitions.get(partition_for(key, len(t.partitions)))
        broker = image.cluster.brokers.get(reg.leader) if reg is not None else None
        ep = broker.listener(ctx.listener_name) if broker is not None and not broker.fenced \
            else None
        if reg is None or ep is None:
            return (ErrorCode.COORDINATOR_NOT_AVAILABLE, *none)
        return ErrorCode.NONE, reg.leader, ep.host, ep.port

    # -- JoinGroup (11) / SyncGroup (14) / Heartbeat (12) / LeaveGroup (13) ---------------------

    async def handle_join_group(self, ctx: RequestContext, header: RequestHeader,
                                request: Any) -> Any:
        v = header.api_version
        gid = request.group_id
        err = self.group_error(gid) if gid else ErrorCode.NONE
        if err:
            return self._join_response(JoinResult(err, request.member_id), v)
        fut: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()

        def done(result: JoinResult) -> None:
            if not fut.done():
                fut.set_result(result)

        self.coordinator.join_group(
            gid, request.member_id, request.group_instance_id if v >= 5 else None,
            ctx.client_id, _client_host(ctx), request.session_timeout_ms,
            request.rebalance_timeout_ms if v >= 1 else -1, request.protocol_type,
            [(p.name, bytes(p.metadata)) for p in request.protocols],
            v >= 4, self.clock.wall_ms(), done)
        return self._join_response(await fut, v)

    @staticmethod
    def _join_response(r: JoinResult, v: int) -> Any:
        R = join_group.RESPONSE
        name = r.protocol_name
        if name is None and v < 7:
            name = ""
        return R.cls(throttle_time_ms=0, error_code=int(r.error), generation_id=r.generation_id,
                     protocol_type=r.protocol_type, protocol_name=name, leader=r.leader_id,
                     skip_assignment=r.skip_assignment, member_id=r.member_id,
                     members=[R.JoinGroupResponseMember(member_id=m, group_instance_id=i,
                                                        metadata=meta)
                              for m, i, meta in r.members])

    async def handle_sync_group(self, ctx: RequestContext, header: RequestHeader,
                                request: Any) -> Any:
        v = header.api_version
        gid = request.group_id
        err = self.group_error(gid)
        if err:
            return self._sync_response(SyncResult(err), v)
        fut: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()

        def done(result: SyncResult) -> None:
            if not fut.done():
                fut.set_result(result)

        self.coordinator.sync_group(
            gid, request.generation_id, request.member_id,
            request.group_instance_id if v >= 3 else None,
            request.protocol_type if v >= 5 else None,
            request.protocol_name if v >= 5 else None,
            {a.member_id: bytes(a.assignment) for a in request.assignments}, self.clock.wall_ms(), done)
        return self._sync_response(await fut, v)

    @staticmethod
    def _sync_response(r: SyncResult, v: int) -> Any:
        return sync_group.RESPONSE.cls(
            throttle_time_ms=0, error_code=int(r.error), protocol_type=r.protocol_type,
            protocol_name=r.protocol_name, assignment=r.assignment)

    def handle_heartbeat(self, ctx: RequestContext, header: RequestHeader, request: Any) -> Any:
        gid = request.group_id
        err = self.group_error(gid)
        if not err:
            err = self.coordinator.heartbeat(
                gid, request.member_id,
                request.group_instance_id if header.api_version >= 3 else None,
                request.generation_id, self.clock.wall_ms())
        return heartbeat.RESPONSE.cls(throttle_time_ms=0, error_code=int(err))

    def handle_leave_group(self, ctx: RequestContext, header: RequestHeader,
                           request: Any) -> Any:
        R = leave_group.RESPONSE
        v = header.api_version
        gid = request.group_id
        if v >= 3:
            members = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            members = [(request.member_id, None)]
        err = self.group_error(gid)
        results: list[tuple[str, str | None, ErrorCode]] = []
        if not err:
            err, results = self.coordinator.leave_group(gid, members, self.clock.wall_ms())
        if v < 3:
            if not err and results:
                err = results[0][2]
            return R.cls(throttle_time_ms=0, error_code=int(err))
        return R.cls(throttle_time_ms=0, error_code=int(err), members=[
            R.MemberResponse(member_id=m, group_instance_id=i, error_code=int(e))
            for m, i, e in results])

    # -- OffsetCommit (8) / OffsetFetch (9) -----------------------------------------------------

    async def handle_offset_commit(self, ctx: RequestContext, header: RequestHeader,
                                   request: Any) -> Any:
        R = offset_commit.RESPONSE
        v = header.api_version
        gid = request.group_id
        generation = request.generation_id_or_member_epoch if v >= 1 else -1
        member_id = request.member_id if v >= 1 else ""
        instance_id = request.group_instance_id if v >= 7 else None
        now = self.clock.wall_ms()
        errors: dict[tuple[str, int], ErrorCode] = {}
        err = self.group_error(gid) if gid else ErrorCode.INVALID_GROUP_ID
        if not err:
            err = self.coordinator.validate_offset_commit(gid, member_id, instance_id,
                                                          generation, now)
        todo: dict[tuple[str, int], CommittedOffset] = {}
        topics_image = self.image().topics.by_name
        for t in request.topics:
            for p in t.partitions:
                tp = (t.name, p.partition_index)
                if err:
                    errors[tp] = err
                    continue
                meta = p.committed_metadata or ""
                if len(meta.encode()) > OFFSET_METADATA_MAX_BYTES:
                    errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                    continue
                ti = topics_image.get(t.name)
                if ti is None or p.partition_index not in ti.partitions:
                    errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                epoch = p.committed_leader_epoch if v >= 6 else -1
                todo[tp] = CommittedOffset(p.committed_offset, epoch, meta, now)
        if todo:
            code = await self._append(gid, [
                (offset_commit_key(gid, tp[0], tp[1]),
                 offset_commit_value(o.offset, o.metadata, o.commit_timestamp, o.leader_epoch))
                for tp, o in todo.items()])
            if not code:
                self.coordinator.apply_offsets(gid, todo)
            for tp in todo:
                errors[tp] = code
        by_topic: dict[str, list[Any]] = {}
        for (topic, pid), code in errors.items():
            by_topic.setdefault(topic, []).append(
                R.OffsetCommitResponsePartition(partition_index=pid, error_code=int(code)))
        return R.cls(throttle_time_ms=0, topics=[
            R.OffsetCommitResponseTopic(name=n, partitions=ps) for n, ps in by_topic.items()])

    def handle_offset_fetch(self, ctx: RequestContext, header: RequestHeader,
                            request: Any) -> Any:
        R = offset_fetch.RESPONSE
        v = header.api_version
        if v >= 8:
            groups = []
            for g in request.groups:
                wanted = None if g.topics is None else [
                    (t.name, p) for t in g.topics for p in t.partition_indexes]
                err, found = self._fetch_offsets(g.group_id, wanted)
                by_topic: dict[str, list[Any]] = {}
                for (topic, pid), o in found.items():
                    by_topic.setdefault(topic, []).append(R.OffsetFetchResponsePartitions(
                        partition_index=pid, committed_offset=-1 if o is None else o.offset,
                        committed_leader_epoch=-1 if o is None else o.leader_epoch,
                        metadata="" if o is None else o.metadata, error_code=0))
                groups.append(R.OffsetFetchResponseGroup(
                    group_id=g.group_id, error_code=int(err), topics=[
                        R.OffsetFetchResponseTopics(name=n, partitions=ps)
                        for n, ps in by_topic.items()]))
            return R.cls(throttle_time_ms=0, groups=groups)
        topics = request.topics
        wanted = None if topics is None else [
            (t.name, p) for t in topics for p in t.partition_indexes]
        err, found = self._fetch_offsets(request.group_id, wanted)
        if err and v >= 2:
            return R.cls(throttle_time_ms=0, error_code=int(err), topics=[])
        by_topic = {}
        if err:  # v0-1: the error goes on every requested partition
            found = {tp: None for tp in wanted or []}
        for (topic, pid), o in found.items():
            by_topic.setdefault(topic, []).append(R.OffsetFetchResponsePartition(
                partition_index=pid, committed_offset=-1 if o is None else o.offset,
                committed_leader_epoch=-1 if o is None else o.leader_epoch,
                metadata="" if o is None else o.metadata, error_code=int(err)))
        return R.cls(throttle_time_ms=0, error_code=0, topics=[
            R.OffsetFetchResponseTopic(name=n, partitions=ps) for n, ps in by_topic.items()])

    def _fetch_offsets(self, group_id: str, wanted: list[tuple[str, int]] | None
                       ) -> tuple[ErrorCode, dict[tuple[str, int], CommittedOffset | None]]:
        err = self.group_error(group_id)
        if err:
            return err, {}
        return ErrorCode.NONE, self.coordinator.fetch_offsets(group_id, wanted)

    # -- ListGroups (16) / DescribeGroups (15) --------------------------------------------------

    def handle_list_groups(self, ctx: RequestContext, header: RequestHeader,
                           request: Any) -> Any:
        R = list_groups.RESPONSE
        v = header.api_version
        states = {s.lower() for s in request.states_filter} if v >= 4 else set()
        types = {s.lower() for s in request.types_filter} if v >= 5 else set()
        err = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if any(
            not o.loaded for o in self.owned.values()) else ErrorCode.NONE
        out = []
        if not (types and "classic" not in types):
            for g in self.coordinator.groups.values():
                if g.is_(GroupState.DEAD) or self.group_error(g.group_id):
                    continue
                if states and g.state.value.lower() not in states:
                    continue
                out.append(R.ListedGroup(group_id=g.group_id,
                                         protocol_type=g.protocol_type or "",
                                         group_state=g.state.value, group_type="classic"))
        return R.cls(throttle_time_ms=0, error_code=int(err), groups=out)

    def handle_describe_groups(self, ctx: RequestContext, header: RequestHeader,
                               request: Any) -> Any:
        R = describe_groups.RESPONSE
        out = []
        for gid in request.groups:
            err = self.group_error(gid)
            g = self.coordinator.groups.get(gid)
            if err or g is None:
                out.append(R.DescribedGroup(error_code=int(err), group_id=gid,
                                            group_state=GroupState.DEAD.value,
                                            protocol_type="", protocol_data="", members=[]))
                continue
            stable = g.is_(GroupState.STABLE)
            proto = g.protocol_name if stable else None
            members = [R.DescribedGroupMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id,
                client_id=m.client_id, client_host=m.client_host,
                member_metadata=m.metadata_for(proto) if proto else b"",
                member_assignment=m.assignment if stable else b"")
                for m in g.members.values()]
            out.append(R.DescribedGroup(
                error_code=0, group_id=gid, group_state=g.state.value,
                protocol_type=g.protocol_type or "", protocol_data=proto or "",
                members=members))
        return R.cls(throttle_time_ms=0, groups=out)

    # -- DeleteGroups (42) / OffsetDelete (47) --------------------------------------------------

    async def handle_delete_groups(self, ctx: RequestContext, header: RequestHeader,
                                   request: Any) -> Any:
        R = delete_groups.RESPONSE
        results = []
        coord = self.coordinator
        for gid in request.groups_names:
            err = self.group_error(gid) or coord.delete_check(gid)
            if not err:
                g = coord.groups[gid]
                records: list[tuple[bytes, bytes | None]] = [
                    (offset_commit_key(gid, t, p), None) for t, p in g.offsets]
                records.append((group_metadata_key(gid), None))
                err = await self._append(gid, records)
                if not err:
                    coord.remove_group(gid, ErrorCode.NOT_COORDINATOR)
                    logger.info("Deleted group %s", gid)
            results.append(R.DeletableGroupResult(group_id=gid, error_code=int(err)))
        return R.cls(throttle_time_ms=0, results=results)

    async def handle_offset_delete(self, ctx: RequestContext, header: RequestHeader,
                                   request: Any) -> Any:
        R = offset_delete.RESPONSE
        gid = request.group_id
        coord = self.coordinator
        asked = {t.name for t in request.topics}
        err = self.group_error(gid)
        subscribed: set[str] = set()
        if not err:
            err, subscribed = coord.offset_delete_check(gid, asked)
        if err:
            return R.cls(error_code=int(err), throttle_time_ms=0, topics=[])
        results: dict[tuple[str, int], ErrorCode] = {}
        todo = []
        for t in request.topics:
            for p in t.partitions:
                tp = (t.name, p.partition_index)
                if t.name in subscribed:
                    results[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    todo.append(tp)
        if todo:
            code = await self._append(gid, [(offset_commit_key(gid, t, p), None)
                                             for t, p in todo])
            if code:
                return R.cls(error_code=int(code), throttle_time_ms=0, topics=[])
            coord.remove_offsets(gid, todo)
            for tp in todo:
                results[tp] = ErrorCode.NONE
        by_topic: dict[str, list[Any]] = {}
        for (topic, pid), code in results.items():
            by_topic.setdefault(topic, []).append(
                R.OffsetDeleteResponsePartition(partition_index=pid, error_code=int(code)))
        return R.cls(error_code=0, throttle_time_ms=0, topics=[
            R.OffsetDeleteResponseTopic(name=n, partitions=ps) for n, ps in by_topic.items()])


def _client_host(ctx: RequestContext) -> str:
    peer = ctx.peer
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
    return f"/{host}"


def _replay(rec: OffsetRecord | GroupMetadataRecord | None,
            groups: dict[str, GroupMetadataRecord],
            offsets: dict[str, dict[tuple[str, int], CommittedOffset]]) -> None:
    """Apply one loaded record: the last record per key wins, a tombstone removes it."""
    if isinstance(rec, OffsetRecord):
        tp = (rec.topic, rec.partition)
        if rec.tombstone:
            g = offsets.get(rec.group)
            if g is not None:
                g.pop(tp, None)
                if not g:
                    del offsets[rec.group]
        else:
            offsets.setdefault(rec.group, {})[tp] = CommittedOffset(
                rec.offset, rec.leader_epoch, rec.metadata, rec.commit_timestamp)
    elif isinstance(rec, GroupMetadataRecord):
        if rec.tombstone:
            groups.pop(rec.group, None)
        else:
            groups[rec.group] = rec
