"""HTTP admin routes for consumer groups, read over the Kafka wire protocol (FindCoordinator,
ListGroups, DescribeGroups, OffsetFetch, ListOffsets) from the brokers in the image, so they do
not depend on the group coordinator's internals: the groups, and one group's members, their
assignments and committed offsets with lag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from broker.admin.http_common import (
    LATEST_TIMESTAMP,
    READ_TIMEOUT_S,
    HttpError,
    RouteBase,
    bad_field,
    json_response,
    kafka_error,
)
from broker.client import KafkaConnectionError, KafkaTimeoutError
from broker.groups.records import decode_consumer_assignment, decode_consumer_subscription
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import (
    consumer_group_describe,
    describe_groups,
    list_groups,
    offset_fetch,
)

__all__ = ["GroupRoutes"]


def _consumer_assignment(data: bytes | None) -> list[dict[str, Any]]:
    """A member's ConsumerProtocolAssignment as JSON; [] when it does not decode."""
    try:
        assignment = decode_consumer_assignment(data or b"")
    except ValueError:
        return []
    return [{"topic": topic, "partitions": sorted(parts)}
            for topic, parts in assignment.partitions]


def _consumer_subscription(data: bytes | None) -> list[str] | None:
    """A member's subscribed topics (ConsumerProtocolSubscription); None when it does not
    decode."""
    try:
        return list(decode_consumer_subscription(data or b"").topics)
    except ValueError:
        return None


class GroupRoutes(RouteBase):
    """GET /v1/consumer-groups[/{group_id}]."""

    async def list_groups(self, request: web.Request) -> web.Response:
        client = await self._kafka()
        await self._kafka_call("Metadata", lambda c: c.metadata())
        groups: dict[str, dict[str, Any]] = {}
        errors: list[str] = []

        async def ask(broker_id: int) -> None:
            try:
                resp = await client.send_to(broker_id, ApiKey.LIST_GROUPS,
                                            list_groups.REQUEST.cls(states_filter=[],
                                                                    types_filter=[]),
                                            timeout_s=READ_TIMEOUT_S)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                errors.append(f"broker {broker_id}: {e}")
                return
            if resp.error_code:
                errors.append(f"broker {broker_id}: {ErrorCode(resp.error_code).name}")
                return
            for g in resp.groups:
                groups[g.group_id] = {"group_id": g.group_id, "protocol_type": g.protocol_type,
                                      "state": getattr(g, "group_state", None) or None,
                                      "coordinator_id": broker_id}
        brokers = sorted(client.cluster.brokers)
        await asyncio.gather(*(ask(b) for b in brokers))
        if errors and not groups and len(errors) == len(brokers):
            raise HttpError(503, "COORDINATOR_NOT_AVAILABLE",
                            "No broker listed its groups: " + "; ".join(errors))
        return json_response({"groups": [groups[g] for g in sorted(groups)]})

    async def get_group(self, request: web.Request) -> web.Response:
        group_id = request.match_info["group_id"]
        if not group_id or len(group_id) > 249:
            raise bad_field("group_id", "must be 1-249 characters")
        coordinator = await self._coordinator_of(group_id)
        await self._kafka_call("Metadata", lambda c: c.metadata())
        # A consumer group of KIP-848 answers ConsumerGroupDescribe (DescribeGroups reports it
        # Dead, as Kafka does); any other group answers GROUP_ID_NOT_FOUND there.
        cgd = await self._kafka_call("ConsumerGroupDescribe", lambda c: c.send_to(
            coordinator, ApiKey.CONSUMER_GROUP_DESCRIBE, consumer_group_describe.REQUEST.cls(
                group_ids=[group_id], include_authorized_operations=False),
            timeout_s=READ_TIMEOUT_S))
        cg = cgd.groups[0]
        if cg.error_code and cg.error_code != ErrorCode.GROUP_ID_NOT_FOUND:
            raise kafka_error(cg.error_code, None)
        if not cg.error_code:
            state, protocol_type, protocol = cg.group_state, "consumer", cg.assignor_name
            members = [{
                "member_id": m.member_id, "group_instance_id": m.instance_id,
                "client_id": m.client_id, "client_host": m.client_host,
                "subscription": list(m.subscribed_topic_names),
                "assignment": [{"topic": t.topic_name, "partitions": sorted(t.partitions)}
                               for t in m.assignment.topic_partitions],
            } for m in cg.members]
        else:
            dg = await self._kafka_call("DescribeGroups", lambda c: c.send_to(
                coordinator, ApiKey.DESCRIBE_GROUPS, describe_groups.REQUEST.cls(
                    groups=[group_id], include_authorized_operations=False),
                timeout_s=READ_TIMEOUT_S))
            g = dg.groups[0]
            if g.error_code:
                raise kafka_error(g.error_code, None)
            state, protocol_type, protocol = g.group_state, g.protocol_type, g.protocol_data
            members = [{
                "member_id": m.member_id,
                "group_instance_id": getattr(m, "group_instance_id", None),
                "client_id": m.client_id, "client_host": m.client_host,
                "subscription": _consumer_subscription(m.member_metadata)
                if g.protocol_type == "consumer" else None,
                "assignment": _consumer_assignment(m.member_assignment)
                if g.protocol_type == "consumer" else [],
            } for m in g.members]
        OQ = offset_fetch.REQUEST
        # Filled for every version: v0-7 read group_id/topics, v8+ the groups list.
        of = await self._send_versioned(
            "OffsetFetch", coordinator, ApiKey.OFFSET_FETCH,
            lambda v: OQ.cls(group_id=group_id, topics=None, require_stable=False) if v < 8
            else OQ.cls(require_stable=False, groups=[
                OQ.OffsetFetchRequestGroup(group_id=group_id, topics=None)]))
        topics = of.topics
        code = getattr(of, "error_code", 0)
        if of.groups:
            topics, code = of.groups[0].topics, of.groups[0].error_code
        if code:
            raise kafka_error(code, None)
        if state in ("Dead", "") and not members and not topics:
            raise HttpError(404, "GROUP_ID_NOT_FOUND", f"Group {group_id!r} does not exist")
        committed: dict[tuple[str, int], tuple[int, str | None]] = {}
        for t in topics or ():
            for p in t.partitions:
                if not p.error_code and p.committed_offset >= 0:
                    committed[(t.name, p.partition_index)] = (p.committed_offset, p.metadata)
        hws: dict[tuple[str, int], int] = {}
        by_topic: dict[str, list[int]] = {}
        for topic, pid in committed:
            by_topic.setdefault(topic, []).append(pid)
        for topic, pids in by_topic.items():
            if topic in self.image.topics.by_name:
                for pid, off in (await self._list_offsets(topic, pids, LATEST_TIMESTAMP)).items():
                    hws[(topic, pid)] = off
        offsets = []
        total = 0
        for (topic, pid), (off, meta) in sorted(committed.items()):
            hw = hws.get((topic, pid))
            lag = None if hw is None else max(0, hw - off)
            total += lag or 0
            offsets.append({"topic": topic, "partition": pid, "committed_offset": off,
                            "metadata": meta, "high_watermark": hw, "lag": lag})
        return json_response({
            "group_id": group_id, "state": state, "protocol_type": protocol_type,
            "protocol": protocol, "coordinator_id": coordinator, "members": members,
            "offsets": offsets, "total_lag": total})

