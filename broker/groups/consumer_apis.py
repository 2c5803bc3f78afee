"""The wire APIs of consumer groups of the new protocol (KIP-848): ConsumerGroupHeartbeat (68)
and ConsumerGroupDescribe (69), answered from the pure ``ConsumerGroups`` half of the
coordinator (``broker.groups.consumer_coordinator``). What a heartbeat changed is written to
``__consumer_offsets`` as Kafka's consumer group records (``broker.groups.consumer_records``)
before the answer goes out, so a new coordinator resumes the group.

``ConsumerGroupApis`` sits between ``GroupMetadataManager`` and ``broker.groups.apis.GroupApis``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from broker.groups.consumer_coordinator import HeartbeatRequest
from broker.groups.consumer_group import Assignment, ConsumerGroup
from broker.groups.consumer_records import drain_records, mark_unwritten
from broker.groups.metadata_manager import GroupMetadataManager
from broker.network.context import RequestContext
from broker.protocol.errors import ErrorCode
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import consumer_group_describe, consumer_group_heartbeat

__all__ = ["ConsumerGroupApis", "client_host"]

logger = logging.getLogger(__name__)


def client_host(ctx: RequestContext) -> str:
    peer = ctx.peer
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
    return f"/{host}"


class ConsumerGroupApis(GroupMetadataManager):
    # -- ConsumerGroupHeartbeat (68) ------------------------------------------------------------

    async def handle_consumer_group_heartbeat(self, ctx: RequestContext, header: RequestHeader,
                                              request: Any) -> Any:
        R = consumer_group_heartbeat.RESPONSE
        gid = request.group_id
        err = self.group_error(gid) if gid else ErrorCode.NONE
        if err:
            return R.cls(throttle_time_ms=0, error_code=int(err), member_epoch=0,
                         heartbeat_interval_ms=0)
        owned = None if request.topic_partitions is None else {
            tp.topic_id: set(tp.partitions) for tp in request.topic_partitions}
        v = header.api_version
        r = HeartbeatRequest(
            group_id=gid, member_id=request.member_id, member_epoch=request.member_epoch,
            instance_id=request.instance_id, rack_id=request.rack_id,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            subscribed_topic_names=None if request.subscribed_topic_names is None
            else tuple(request.subscribed_topic_names),
            subscribed_topic_regex=request.subscribed_topic_regex if v >= 1 else None,
            server_assignor=request.server_assignor, owned=owned,
            client_id=ctx.client_id or "", client_host=client_host(ctx), version=v)
        result = self.coordinator.consumer_heartbeat(r, self.image().topics.by_name,
                                                     self.clock.wall_ms())
        code = await self.write_consumer_group(gid)
        if result.error or code:
            error = result.error or code
            return R.cls(throttle_time_ms=0, error_code=int(error),
                         error_message=result.message or error.name, member_epoch=0,
                         heartbeat_interval_ms=0)
        return R.cls(throttle_time_ms=0, error_code=0, member_id=result.member_id,
                     member_epoch=result.member_epoch,
                     heartbeat_interval_ms=result.heartbeat_interval_ms,
                     assignment=None if result.assignment is None else R.Assignment(
                         topic_partitions=_topic_partitions(R, result.assignment)))

    async def write_consumer_group(self, gid: str) -> ErrorCode:
        """Append the records of what changed in the consumer group (nothing: NONE)."""
        group = self.coordinator.consumer_groups.get(gid)
        records = drain_records(group) if group is not None else []
        if not records:
            return ErrorCode.NONE
        code = await self._append(gid, records)
        if code:
            logger.warning("Writing the state of consumer group %s failed: %s", gid, code.name)
            if group is not None and self.coordinator.consumer_groups.get(gid) is group:
                mark_unwritten(group, records)
        return code

    async def write_dirty_consumer_groups(self) -> None:
        for gid, g in list(self.coordinator.consumer_groups.items()):
            if _dirty(g) and not self.group_error(gid):
                await self.write_consumer_group(gid)

    # -- ConsumerGroupDescribe (69) -------------------------------------------------------------

    def handle_consumer_group_describe(self, ctx: RequestContext, header: RequestHeader,
                                       request: Any) -> Any:
        R = consumer_group_describe.RESPONSE
        names = {t.topic_id: t.name for t in self.image().topics.by_id.values()}
        out = []
        for gid in request.group_ids:
            err = self.group_error(gid) if gid else ErrorCode.INVALID_GROUP_ID
            g = self.coordinator.consumer_groups.get(gid) if not err else None
            if g is None:
                if not err:
                    err = ErrorCode.GROUP_ID_NOT_FOUND
                    msg = (f"Group {gid} is not a consumer group."
                           if gid in self.coordinator.groups else f"Group {gid} not found.")
                else:
                    msg = err.name
                out.append(R.DescribedGroup(error_code=int(err), error_message=msg,
                                            group_id=gid, group_state="Dead", group_epoch=-1,
                                            assignment_epoch=-1, assignor_name="",
                                            members=[]))
                continue
            out.append(R.DescribedGroup(
                error_code=0, group_id=gid, group_state=g.state.value,
                group_epoch=g.group_epoch, assignment_epoch=g.assignment_epoch,
                assignor_name=self.coordinator.preferred_assignor(g),
                members=[R.Member(
                    member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                    member_epoch=m.member_epoch, client_id=m.client_id,
                    client_host=m.client_host,
                    subscribed_topic_names=sorted(m.subscribed_topic_names),
                    subscribed_topic_regex=m.subscribed_topic_regex,
                    assignment=_described(R, m.assigned, names),
                    target_assignment=_described(R, g.target.get(m.member_id, {}), names),
                    member_type=1)
                    for m in g.members.values()]))
        return R.cls(throttle_time_ms=0, groups=out)


def _dirty(g: ConsumerGroup) -> bool:
    return bool(g.dirty_group or g.dirty_partition_metadata or g.dirty_members
                or g.dirty_target or g.dirty_current or g.removed_members)


def _topic_partitions(R: Any, a: Assignment) -> list[Any]:
    return [R.TopicPartitions(topic_id=t, partitions=sorted(ps))
            for t, ps in sorted(a.items(), key=lambda kv: str(kv[0])) if ps]


def _described(R: Any, a: Assignment, names: dict[uuid.UUID, str]) -> Any:
    return R.Assignment(topic_partitions=[
        R.TopicPartitions(topic_id=t, topic_name=names.get(t, ""), partitions=sorted(ps))
        for t, ps in sorted(a.items(), key=lambda kv: names.get(kv[0], "")) if ps])
