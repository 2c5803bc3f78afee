"""The client side of Kafka's classic consumer group protocol, for the CLI tools.

``GroupMember`` finds the group coordinator (FindCoordinator), joins the group (JoinGroup with
protocol type ``consumer`` and the ``range`` assignor), computes the assignment when it is the
leader, gets its own share (SyncGroup), heartbeats in the background, reads and commits offsets
(OffsetFetch, OffsetCommit) and leaves (LeaveGroup). Subscriptions and assignments use Kafka's
``ConsumerProtocol`` encoding through ``broker.groups.records`` (v0 written; newer versions from
other clients are read by their v0 prefix, which is how Kafka's own decoder stays compatible),
so Java, librdkafka and Python clients can share a group with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.client import (
    KafkaClient,
    KafkaConnection,
    KafkaConnectionError,
    KafkaTimeoutError,
    choose_version,
)
from broker.groups.records import (
    ConsumerAssignment,
    ConsumerSubscription,
    decode_consumer_assignment,
    decode_consumer_subscription,
    encode_consumer_assignment,
    encode_consumer_subscription,
)
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError, error_for_code
from broker.protocol.messages import (
    find_coordinator,
    heartbeat,
    join_group,
    leave_group,
    offset_commit,
    offset_fetch,
    sync_group,
)
from tools.cli_client import CliError, TopicPartition, error_name

__all__ = ["GroupMember", "range_assign"]

logger = logging.getLogger(__name__)

PROTOCOL_TYPE = "consumer"
ASSIGNOR = "range"
_REJOIN = {ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION,
           ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_INSTANCE_ID}
_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                      ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}


def range_assign(subscriptions: Mapping[str, Sequence[str]],
                 partitions_per_topic: Mapping[str, int]) -> dict[str, dict[str, list[int]]]:
    """Kafka's RangeAssignor: per topic, members sorted by id get contiguous ranges, the first
    ``n % m`` one partition more. Returns member -> topic -> partitions (every member present)."""
    out: dict[str, dict[str, list[int]]] = {m: {} for m in subscriptions}
    topics = sorted({t for ts in subscriptions.values() for t in ts})
    for topic in topics:
        n = partitions_per_topic.get(topic, 0)
        members = sorted(m for m, ts in subscriptions.items() if topic in ts)
        if not members or n <= 0:
            continue
        per, extra = divmod(n, len(members))
        start = 0
        for i, m in enumerate(members):
            count = per + (1 if i < extra else 0)
            if count:
                out[m][topic] = list(range(start, start + count))
            start += count
    return out


# -- the member ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Generation:
    generation_id: int
    member_id: str
    leader: str
    protocol: str | None


class GroupMember:
    """One member of a classic consumer group, subscribed to ``topics``."""

    def __init__(self, client: KafkaClient, group_id: str, topics: Sequence[str], *,
                 session_timeout_ms: int = 45_000, rebalance_timeout_ms: int = 300_000,
                 heartbeat_interval_ms: int = 3_000, client_id: str = "pykraft-cli") -> None:
        if not group_id:
            raise CliError("the group id must not be empty")
        self.client = client
        self.group_id = group_id
        self.topics = list(topics)
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.client_id = client_id
        self.member_id = ""
        self.generation: Generation | None = None
        self.assignment: list[TopicPartition] = []
        self.rebalance_needed = asyncio.Event()
        self._coordinator: KafkaConnection | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None

    # -- coordinator -------------------------------------------------------------------------

    async def coordinator(self) -> KafkaConnection:
        if self._coordinator is not None and not self._coordinator.closed:
            return self._coordinator
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.client.api_timeout_s
        last = "no answer"
        while loop.time() < deadline:
            R = find_coordinator.REQUEST
            node = await self.client.connection(self.client._pick_any())
            lo, hi = node.api_versions.get(ApiKey.FIND_COORDINATOR, (0, -1))
            if hi < 0:
                raise CliError("the broker does not support FindCoordinator: consumer groups "
                               "are not available")
            if lo <= 3:
                version = min(hi, 3)
                resp = await node.send(ApiKey.FIND_COORDINATOR,
                                       R.cls(key=self.group_id, key_type=0), version)
                code, node_id, host, port = resp.error_code, resp.node_id, resp.host, resp.port
            else:
                resp = await node.send(ApiKey.FIND_COORDINATOR, R.cls(
                    key_type=0, coordinator_keys=[self.group_id]))
                c = resp.coordinators[0]
                code, node_id, host, port = c.error_code, c.node_id, c.host, c.port
            if code == 0:
                self._coordinator = await KafkaConnection.connect(
                    host, port, client_id=self.client_id, node_id=node_id,
                    security=self.client.security)
                return self._coordinator
            last = error_name(code)
            if not error_for_code(code).retriable:
                raise CliError(f"FindCoordinator for group {self.group_id} failed: {last}")
            await asyncio.sleep(0.2)
        raise CliError(f"no coordinator found for group {self.group_id}: {last}")

    async def _send(self, api_key: int, request: Any, cap: int | None = None) -> Any:
        conn = await self.coordinator()
        version = None
        if cap is not None:
            lo, hi = conn.api_versions.get(api_key, (0, -1))
            version = choose_version(api_key, (lo, hi), min(hi, cap) if hi >= lo else None)
        try:
            return await conn.send(api_key, request, version,
                                   timeout_s=self.rebalance_timeout_ms / 1000 + 5
                                   if api_key == ApiKey.JOIN_GROUP else 30.0)
        except (KafkaConnectionError, KafkaTimeoutError):
            self._drop_coordinator()
            raise

    def _drop_coordinator(self) -> None:
        conn, self._coordinator = self._coordinator, None
        if conn is not None and not conn.closed:
            asyncio.get_running_loop().create_task(conn.close())

    # -- join / sync -------------------------------------------------------------------------

    async def join(self) -> list[TopicPartition]:
        """(Re)join the group; returns this member's partitions. Retries rebalances and
        coordinator moves until ``api_timeout_s``."""
        await self._stop_heartbeat()
        self.rebalance_needed.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.client.api_timeout_s, self.rebalance_timeout_ms / 1000)
        while True:
            try:
                assigned = await self._join_once()
            except (KafkaConnectionError, KafkaTimeoutError) as e:
                if loop.time() > deadline:
                    raise CliError(f"joining group {self.group_id} failed: {e}") from None
                await asyncio.sleep(0.5)
                continue
            except _Retry as e:
                if loop.time() > deadline:
                    raise CliError(f"joining group {self.group_id} failed: {e}") from None
                await asyncio.sleep(0.1)
                continue
            self.assignment = assigned
            self._heartbeat_task = loop.create_task(self._heartbeat_loop())
            return assigned

    async def _join_once(self) -> list[TopicPartition]:
        JR = join_group.REQUEST
        req = JR.cls(group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
                     rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                     group_instance_id=None, protocol_type=PROTOCOL_TYPE,
                     protocols=[JR.JoinGroupRequestProtocol(
                         name=ASSIGNOR, metadata=encode_consumer_subscription(
                             ConsumerSubscription(tuple(self.topics))))],
                     reason=None)
        resp = await self._send(ApiKey.JOIN_GROUP, req)
        code = resp.error_code
        if code == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = resp.member_id  # KIP-394: join again with the id we were given
            raise _Retry("member id required")
        if code == ErrorCode.UNKNOWN_MEMBER_ID:
            self.member_id = ""
            raise _Retry("unknown member id")
        if code in _COORDINATOR_MOVED:
            self._drop_coordinator()
            raise _Retry(error_name(code))
        if code == ErrorCode.REBALANCE_IN_PROGRESS:
            raise _Retry(error_name(code))
        if code:
            raise CliError(f"JoinGroup for group {self.group_id} failed: {error_name(code)}")
        self.member_id = resp.member_id
        gen = Generation(resp.generation_id, resp.member_id, resp.leader, resp.protocol_name)
        self.generation = gen
        assignments: list[Any] = []
        SR = sync_group.REQUEST
        if resp.leader == resp.member_id and not getattr(resp, "skip_assignment", False):
            assignments = [SR.SyncGroupRequestAssignment(member_id=m, assignment=a)
                           for m, a in (await self._assign(resp.members)).items()]
        sreq = SR.cls(group_id=self.group_id, generation_id=gen.generation_id,
                      member_id=gen.member_id, group_instance_id=None,
                      protocol_type=PROTOCOL_TYPE, protocol_name=gen.protocol or ASSIGNOR,
                      assignments=assignments)
        sresp = await self._send(ApiKey.SYNC_GROUP, sreq)
        code = sresp.error_code
        if code in _REJOIN or code in _COORDINATOR_MOVED:
            if code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if code in _COORDINATOR_MOVED:
                self._drop_coordinator()
            raise _Retry(error_name(code))
        if code:
            raise CliError(f"SyncGroup for group {self.group_id} failed: {error_name(code)}")
        try:
            assigned = decode_consumer_assignment(sresp.assignment)
        except ValueError as e:
            raise CliError(f"undecodable assignment from the group leader: {e}") from None
        return [TopicPartition(t, p) for t, parts in assigned.partitions for p in parts]

    async def _assign(self, members: Iterable[Any]) -> dict[str, bytes]:
        subs: dict[str, list[str]] = {}
        for m in members:
            try:
                subs[m.member_id] = list(decode_consumer_subscription(m.metadata).topics)
            except ValueError as e:
                raise CliError(f"undecodable subscription of member {m.member_id}: "
                               f"{e}") from None
        topics = sorted({t for ts in subs.values() for t in ts})
        answer = await self.client.metadata(topics)
        counts = {t: len(info.partitions) for t, info in answer.topics.items()
                  if not info.error_code}
        plan = range_assign(subs, counts)
        return {m: encode_consumer_assignment(ConsumerAssignment(
                    tuple((t, tuple(parts)) for t, parts in sorted(a.items()))))
                for m, a in plan.items()}

    # -- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        gen = self.generation
        assert gen is not None
        R = heartbeat.REQUEST
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            req = R.cls(group_id=self.group_id, generation_id=gen.generation_id,
                        member_id=gen.member_id, group_instance_id=None)
            try:
                resp = await self._send(ApiKey.HEARTBEAT, req)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError) as e:
                logger.debug("heartbeat failed: %s", e)
                continue
            code = resp.error_code
            if code in _REJOIN:
                if code == ErrorCode.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                self.rebalance_needed.set()
                return
            if code in _COORDINATOR_MOVED:
                self._drop_coordinator()

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- offsets -----------------------------------------------------------------------------

    async def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Committed offsets (partitions without one are left out)."""
        R = offset_fetch.REQUEST
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        req = R.cls(group_id=self.group_id, topics=[
            R.OffsetFetchRequestTopic(name=t, partition_indexes=ps)
            for t, ps in by_topic.items()], require_stable=False)
        for _ in range(50):
            resp = await self._send(ApiKey.OFFSET_FETCH, req, cap=7)
            top = getattr(resp, "error_code", 0) or 0
            if top in _COORDINATOR_MOVED:
                self._drop_coordinator()
                await asyncio.sleep(0.2)
                continue
            if top == ErrorCode.UNSTABLE_OFFSET_COMMIT:
                await asyncio.sleep(0.2)
                continue
            if top:
                raise CliError(f"OffsetFetch for group {self.group_id}: {error_name(top)}")
            out: dict[TopicPartition, int] = {}
            for t in resp.topics:
                for p in t.partitions:
                    if p.error_code:
                        raise CliError(f"OffsetFetch for {t.name}-{p.partition_index}: "
                                       f"{error_name(p.error_code)}")
                    if p.committed_offset >= 0:
                        out[TopicPartition(t.name, p.partition_index)] = p.committed_offset
            return out
        raise CliError(f"OffsetFetch for group {self.group_id}: the coordinator is unavailable")

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read per partition) for this generation."""
        if not offsets:
            return
        gen = self.generation
        R = offset_commit.REQUEST
        by_topic: dict[str, list[Any]] = {}
        for tp, off in offsets.items():
            by_topic.setdefault(tp.topic, []).append(R.OffsetCommitRequestPartition(
                partition_index=tp.partition, committed_offset=off, committed_leader_epoch=-1,
                commit_timestamp=-1, committed_metadata=""))
        req = R.cls(group_id=self.group_id,
                    generation_id_or_member_epoch=gen.generation_id if gen else -1,
                    member_id=gen.member_id if gen else "", group_instance_id=None,
                    retention_time_ms=-1,
                    topics=[R.OffsetCommitRequestTopic(name=t, partitions=ps)
                            for t, ps in by_topic.items()])
        resp = await self._send(ApiKey.OFFSET_COMMIT, req, cap=8)
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code in _REJOIN:
                    self.rebalance_needed.set()
                    raise CliError(f"Commit of {t.name}-{p.partition_index} failed: "
                                   f"{error_name(p.error_code)} (the group rebalanced)")
                if p.error_code:
                    raise CliError(f"Commit of {t.name}-{p.partition_index} failed: "
                                   f"{error_name(p.error_code)}")

    # -- leave -------------------------------------------------------------------------------

    async def leave(self) -> None:
        await self._stop_heartbeat()
        if not self.member_id:
            await self.close()
            return
        R = leave_group.REQUEST
        conn = await self.coordinator()
        version = conn.version_for(ApiKey.LEAVE_GROUP)
        if version >= 3:
            req = R.cls(group_id=self.group_id, members=[R.MemberIdentity(
                member_id=self.member_id, group_instance_id=None,
                reason="the consumer is being closed")])
        else:
            req = R.cls(group_id=self.group_id, member_id=self.member_id)
        with contextlib.suppress(KafkaConnectionError, KafkaTimeoutError):
            await conn.send(ApiKey.LEAVE_GROUP, req, version, timeout_s=5.0)
        self.member_id = ""
        self.generation = None
        await self.close()

    async def close(self) -> None:
        await self._stop_heartbeat()
        conn, self._coordinator = self._coordinator, None
        if conn is not None:
            await conn.close()


class _Retry(Exception):
    """A retriable step of the join protocol."""
