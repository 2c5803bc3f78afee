"""The group coordinator's wire APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and
OffsetDelete (TxnOffsetCommit in ``txn_offset_apis``), answered from the pure ``GroupCoordinator`` and written through the group
metadata manager (``broker.groups.metadata_manager``: ``__consumer_offsets`` loading, writing
and the coordinator's timers), which ``GroupApis`` extends.

``__consumer_offsets`` is created on the first FindCoordinator through the active controller
(``offsets.topic.num.partitions``, ``offsets.topic.replication.factor``, compacted). As in
Kafka, creation is refused while fewer brokers are alive than the replication factor: clients
keep getting COORDINATOR_NOT_AVAILABLE until enough brokers are up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.groups.consumer_apis import client_host
from broker.groups.consumer_records import group_tombstones
from broker.groups.group import CommittedOffset, GroupState, JoinResult, SyncResult
from broker.groups.metadata_manager import GROUP_METADATA_TOPIC
from broker.groups.records import (
    group_metadata_key,
    offset_commit_key,
    offset_commit_value,
    partition_for,
    records_batch,
)
from broker.groups.txn_offset_apis import TxnOffsetCommitApis
from broker.network.context import RequestContext
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
from kraft.image import MetadataImage

__all__ = ["ADVERTISED", "GroupApis"]

logger = logging.getLogger(__name__)

TRANSACTION_STATE_TOPIC = "__transaction_state"
OFFSET_METADATA_MAX_BYTES = 4096  # Kafka's offset.metadata.max.bytes default
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
    ApiKey.TXN_OFFSET_COMMIT: (0, 4),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: (0, 1),
    ApiKey.CONSUMER_GROUP_DESCRIBE: (0, 1),
}


class GroupApis(TxnOffsetCommitApis):
    """``handlers``: ApiKey -> handler for the broker listener; ``on_leadership`` goes to
    ``ReplicaManager.add_leadership_listener``; ``start()``/``stop()`` run the timers."""

    def __init__(self, config: KafkaConfig, replica_manager: ReplicaManager,
                 image: Callable[[], MetadataImage],
                 auto_create: Callable[..., Awaitable[dict[str, int]]] | None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(config, replica_manager, image, clock)
        self.auto_create = auto_create
        self._create_retry_at: dict[str, float] = {}
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
            ApiKey.TXN_OFFSET_COMMIT: self.handle_txn_offset_commit,
            ApiKey.CONSUMER_GROUP_HEARTBEAT: self.handle_consumer_group_heartbeat,
            ApiKey.CONSUMER_GROUP_DESCRIBE: self.handle_consumer_group_describe,
        }

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
            if self.auto_create is None or (
                    self.clock.monotonic() < self._create_retry_at.get(topic, 0.0)):
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
                self._create_retry_at[topic] = self.clock.monotonic() + CREATE_RETRY_BACKOFF_S
                if code == ErrorCode.INVALID_REPLICATION_FACTOR:
                    live = sum(1 for b in image.cluster.brokers.values() if not b.fenced)
                    rf_key = ("offsets.topic.replication.factor" if key_type == KEY_TYPE_GROUP
                              else "transaction.state.log.replication.factor")
                    logger.warning(
                        "Cannot create %s yet: %s=%d but %d broker(s) alive; coordinators "
                        "wait for more brokers", topic, rf_key, self.config.get(rf_key), live)
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
        cg = self.coordinator.consumer_groups.get(gid)
        if cg is not None and not cg.members:
            # An empty consumer group becomes a classic one (Kafka does the same): its
            # records go, its offsets stay.
            err = await self._append(gid, group_tombstones(cg))
            if err:
                return self._join_response(JoinResult(err, request.member_id), v)
        fut: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()

        def done(result: JoinResult) -> None:
            if not fut.done():
                fut.set_result(result)

        self.coordinator.join_group(
            gid, request.member_id, request.group_instance_id if v >= 5 else None,
            ctx.client_id, client_host(ctx), request.session_timeout_ms,
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
                                                          generation, now, v)
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
            code, base = await self._append_batch(gid, records_batch([
                (offset_commit_key(gid, tp[0], tp[1]),
                 offset_commit_value(o.offset, o.metadata, o.commit_timestamp, o.leader_epoch))
                for tp, o in todo.items()], now))
            if not code:
                self.coordinator.apply_offsets(gid, {
                    tp: replace(o, record_offset=base + i)
                    for i, (tp, o) in enumerate(todo.items())})
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
                err, found = self._fetch_offsets(g.group_id, wanted, g.member_id,
                                                 g.member_epoch if v >= 9 else -1)
                unstable = self._unstable(g.group_id, request.require_stable, found)
                by_topic: dict[str, list[Any]] = {}
                for (topic, pid), o in found.items():
                    if (topic, pid) in unstable:
                        o = None
                    by_topic.setdefault(topic, []).append(R.OffsetFetchResponsePartitions(
                        partition_index=pid, committed_offset=-1 if o is None else o.offset,
                        committed_leader_epoch=-1 if o is None else o.leader_epoch,
                        metadata="" if o is None else o.metadata,
                        error_code=int(ErrorCode.UNSTABLE_OFFSET_COMMIT)
                        if (topic, pid) in unstable else 0))
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
        unstable = self._unstable(request.group_id, v >= 7 and request.require_stable, found)
        for (topic, pid), o in found.items():
            code = err
            if (topic, pid) in unstable:
                o, code = None, ErrorCode.UNSTABLE_OFFSET_COMMIT
            by_topic.setdefault(topic, []).append(R.OffsetFetchResponsePartition(
                partition_index=pid, committed_offset=-1 if o is None else o.offset,
                committed_leader_epoch=-1 if o is None else o.leader_epoch,
                metadata="" if o is None else o.metadata, error_code=int(code)))
        return R.cls(throttle_time_ms=0, error_code=0, topics=[
            R.OffsetFetchResponseTopic(name=n, partitions=ps) for n, ps in by_topic.items()])

    def _unstable(self, group_id: str, require_stable: bool, found: dict[tuple[str, int], Any]
                  ) -> set[tuple[str, int]]:
        """require_stable (v7+): the partitions asked for with a pending transactional offset
        answer UNSTABLE_OFFSET_COMMIT, per partition, so the consumer retries."""
        if not require_stable:
            return set()
        pending = self.coordinator.pending_txn.partitions_of(group_id)
        return {tp for tp in found if tp in pending}

    def _fetch_offsets(self, group_id: str, wanted: list[tuple[str, int]] | None,
                       member_id: str | None = None, member_epoch: int = -1
                       ) -> tuple[ErrorCode, dict[tuple[str, int], CommittedOffset | None]]:
        err = self.group_error(group_id) or self.coordinator.validate_consumer_fetch(
            group_id, member_id, member_epoch)
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
        if not (types and "consumer" not in types):
            for cg in self.coordinator.consumer_groups.values():
                state = cg.state.value
                if self.group_error(cg.group_id) or (states and state.lower() not in states):
                    continue
                out.append(R.ListedGroup(group_id=cg.group_id, protocol_type="consumer",
                                         group_state=state, group_type="consumer"))
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
                # Pending transactional offsets go too: a tombstone for those partitions
                # without a committed offset (Kafka's deleteAllOffsets).
                held = coord.offsets_of(gid) or {}
                records: list[tuple[bytes, bytes | None]] = [
                    (offset_commit_key(gid, t, p), None)
                    for t, p in [*held, *(coord.pending_txn.partitions_of(gid) - set(held))]]
                cg = coord.consumer_groups.get(gid)
                if cg is not None:
                    records += group_tombstones(cg)
                else:
                    records.append((group_metadata_key(gid), None))
                err = await self._append(gid, records)
                if not err:
                    coord.remove_group(gid, ErrorCode.NOT_COORDINATOR)
                    coord.pending_txn.remove_group(gid)
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


