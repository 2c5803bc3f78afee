"""HTTP admin routes that read records and move a group's committed offsets, over the Kafka
wire protocol like the other read routes (so they work from any node):

- ``GET /v1/partitions/{topic}/{partition}/records?limit=N``: the latest N records of a
  partition (up to its high watermark, read_uncommitted, control batches left out), keys,
  values and header values as base64 (the console shows them as text or hex).
- ``POST /v1/consumer-groups/{group_id}/reset-offsets``: ``{"topic", "partitions"?, "to":
  "earliest"|"latest"|"offset", "offset"?}`` commits new offsets for an inactive group, as
  ``kafka-consumer-groups --reset-offsets --execute`` does (OffsetCommit with generation -1);
  a group with members gets 409, as Kafka's tool refuses it.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from broker.admin.http_common import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    READ_TIMEOUT_S,
    HttpError,
    RouteBase,
    bad_field,
    json_response,
    kafka_error,
    only_fields,
    path_int,
    read_body,
)
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import consumer_group_describe, describe_groups, fetch, offset_commit
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import HEADER_SIZE, parse_header
from storage.records import decode_batch

__all__ = ["RecordRoutes"]

MAX_RECORDS = 1000
DEFAULT_RECORDS = 20
FETCH_BYTES = 4 << 20
MAX_FETCH_VERSION = 12  # v13+ names topics by id
INACTIVE_STATES = ("Empty", "Dead", "")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


class RecordRoutes(RouteBase):
    """The latest records of a partition; resetting a group's offsets."""

    async def get_partition_records(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        partition = path_int(request, "partition")
        t = self._topic(topic, "topic")
        if partition not in t.partitions:
            raise HttpError(404, "UNKNOWN_TOPIC_OR_PARTITION",
                            f"Partition {partition} of {topic!r} does not exist")
        raw = request.query.get("limit", str(DEFAULT_RECORDS))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_RECORDS:
            raise bad_field("limit", f"must be an integer from 1 to {MAX_RECORDS}")
        limit = int(raw)
        start = (await self._list_offsets(topic, [partition], EARLIEST_TIMESTAMP)).get(partition)
        end = (await self._list_offsets(topic, [partition], LATEST_TIMESTAMP)).get(partition)
        if start is None or end is None:
            raise HttpError(503, "LEADER_NOT_AVAILABLE",
                            f"The leader of {topic}-{partition} did not answer")
        records: list[dict[str, Any]] = []
        pos = max(start, end - limit)
        first = pos
        while pos < end:
            batches = await self._fetch(topic, partition, pos)
            if not batches:
                break
            for header, recs in batches:
                if not header.is_control:
                    records.extend({
                        "offset": r.offset, "timestamp": r.timestamp,
                        "key": _b64(r.key), "value": _b64(r.value),
                        "headers": [{"key": k, "value": _b64(v)} for k, v in r.headers],
                    } for r in recs if first <= r.offset < end)
                pos = max(pos, header.next_offset)
        return json_response({"topic": topic, "partition": partition, "start_offset": start,
                              "end_offset": end, "records": records[-limit:]})

    async def _fetch(self, topic: str, partition: int, offset: int) -> list[Any]:
        """One Fetch at ``offset`` to the partition's leader: its complete batches."""
        Q = fetch.REQUEST
        client = await self._kafka()
        leader = client.leader_for(topic, partition)
        if leader < 0:
            raise HttpError(503, "LEADER_NOT_AVAILABLE", f"{topic}-{partition} has no leader")

        def build(v: int) -> Any:
            return Q.cls(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=FETCH_BYTES,
                         isolation_level=0, session_id=0, session_epoch=-1,
                         topics=[Q.FetchTopic(topic=topic, partitions=[Q.FetchPartition(
                             partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                             log_start_offset=-1, partition_max_bytes=FETCH_BYTES)])],
                         forgotten_topics_data=[], rack_id="")

        async def go(c: Any) -> Any:
            version = min((await c.connection(leader)).version_for(ApiKey.FETCH),
                          MAX_FETCH_VERSION)
            return await c.send_to(leader, ApiKey.FETCH, build(version), version,
                                   timeout_s=READ_TIMEOUT_S)
        resp = await self._kafka_call("Fetch", go)
        if getattr(resp, "error_code", 0):
            raise kafka_error(resp.error_code, "Fetch")
        p = resp.responses[0].partitions[0]
        if p.error_code:
            raise kafka_error(p.error_code, f"Fetch {topic}-{partition}")
        data = bytes(p.records or b"")
        out, at = [], 0
        while len(data) - at >= HEADER_SIZE:
            try:
                header = parse_header(data, at)
                if len(data) - at < header.size:
                    break
                out.append(decode_batch(data, at))
            except (CorruptRecordError, InvalidRecordError) as e:
                raise HttpError(502, "CORRUPT_MESSAGE",
                                f"{topic}-{partition} at {offset}: {e}") from None
            at += header.size
        return out

    async def reset_group_offsets(self, request: web.Request) -> web.Response:
        group_id = request.match_info["group_id"]
        if not group_id or len(group_id) > 249:
            raise bad_field("group_id", "must be 1-249 characters")
        body = await read_body(request, required=True)
        only_fields(body, {"topic", "partitions", "to", "offset"})
        topic = body.get("topic")
        if not isinstance(topic, str):
            raise bad_field("topic", "is required (a topic name)")
        t = self._topic(topic, "topic")
        parts = body.get("partitions")
        if parts is None:
            parts = sorted(t.partitions)
        elif (not isinstance(parts, list) or not parts
              or not all(isinstance(p, int) and p in t.partitions for p in parts)):
            raise bad_field("partitions", f"must be a non-empty list of partitions of {topic}")
        to = body.get("to")
        if to not in ("earliest", "latest", "offset"):
            raise bad_field("to", "must be earliest, latest or offset")
        offset = body.get("offset")
        if to == "offset" and (not isinstance(offset, int) or isinstance(offset, bool)
                               or offset < 0):
            raise bad_field("offset", "is required with to=offset (an offset >= 0)")
        if to != "offset" and offset is not None:
            raise bad_field("offset", "is only allowed with to=offset")
        coordinator = await self._coordinator_of(group_id)
        await self._check_inactive(group_id, coordinator)
        if to == "offset":
            # Kafka's tool clamps to the partition's range.
            lo = await self._list_offsets(topic, parts, EARLIEST_TIMESTAMP)
            hi = await self._list_offsets(topic, parts, LATEST_TIMESTAMP)
            targets = {p: min(max(offset, lo.get(p, 0)), hi.get(p, offset)) for p in parts}
        else:
            targets = await self._list_offsets(
                topic, parts, EARLIEST_TIMESTAMP if to == "earliest" else LATEST_TIMESTAMP)
        if len(targets) != len(parts):
            raise HttpError(503, "LEADER_NOT_AVAILABLE",
                            "Some partition leaders did not answer; nothing was changed")
        Q = offset_commit.REQUEST
        resp = await self._send_versioned(
            "OffsetCommit", coordinator, ApiKey.OFFSET_COMMIT,
            lambda v: Q.cls(group_id=group_id, generation_id_or_member_epoch=-1, member_id="",
                            group_instance_id=None, retention_time_ms=-1, topics=[
                                Q.OffsetCommitRequestTopic(name=topic, partitions=[
                                    Q.OffsetCommitRequestPartition(
                                        partition_index=p, committed_offset=o,
                                        committed_leader_epoch=-1, commit_timestamp=-1,
                                        committed_metadata="")
                                    for p, o in sorted(targets.items())])]))
        for rt in resp.topics:
            for rp in rt.partitions:
                if rp.error_code:
                    if rp.error_code in (ErrorCode.UNKNOWN_MEMBER_ID,
                                         ErrorCode.ILLEGAL_GENERATION,
                                         ErrorCode.REBALANCE_IN_PROGRESS):
                        raise HttpError(409, "GROUP_NOT_EMPTY",
                                        f"Group {group_id!r} became active; nothing was reset")
                    raise kafka_error(rp.error_code, f"OffsetCommit {topic}-{rp.partition_index}")
        return json_response({"group_id": group_id, "offsets": [
            {"topic": topic, "partition": p, "offset": o} for p, o in sorted(targets.items())]})

    async def _check_inactive(self, group_id: str, coordinator: int) -> None:
        cgd = await self._kafka_call("ConsumerGroupDescribe", lambda c: c.send_to(
            coordinator, ApiKey.CONSUMER_GROUP_DESCRIBE, consumer_group_describe.REQUEST.cls(
                group_ids=[group_id], include_authorized_operations=False),
            timeout_s=READ_TIMEOUT_S))
        cg = cgd.groups[0]
        if not cg.error_code and cg.members:
            raise HttpError(409, "GROUP_NOT_EMPTY", f"Offsets can only be reset while group "
                            f"{group_id!r} is inactive; it has {len(cg.members)} member(s)")
        dg = await self._kafka_call("DescribeGroups", lambda c: c.send_to(
            coordinator, ApiKey.DESCRIBE_GROUPS, describe_groups.REQUEST.cls(
                groups=[group_id], include_authorized_operations=False),
            timeout_s=READ_TIMEOUT_S))
        g = dg.groups[0]
        if g.error_code and g.error_code != ErrorCode.GROUP_ID_NOT_FOUND:
            raise kafka_error(g.error_code, None)
        if not g.error_code and g.group_state not in INACTIVE_STATES:
            raise HttpError(409, "GROUP_NOT_EMPTY", f"Offsets can only be reset while group "
                            f"{group_id!r} is inactive; its state is {g.group_state}")
