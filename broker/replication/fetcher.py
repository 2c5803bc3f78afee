"""Follower replication: one fetcher task per source (leader) broker.

Kafka's ``ReplicaFetcherManager`` / ``AbstractFetcherThread``, as an asyncio task per leader:

1. **Truncate** every partition that is new to the fetcher or whose leader epoch changed: ask
   the leader ``OffsetsForLeaderEpoch(latest local epoch)`` and truncate to the offset where
   the two logs stop agreeing (KIP-101, KIP-279: when the leader answers with an epoch we do
   not have, truncate to the end of our largest epoch below it and ask again). Never truncate
   simply to the high watermark (only when the leader has no epoch information at all).
2. **Fetch** in an incremental fetch session (KIP-227, see ``_fetch``) from the log end offset with
   ``replica_id`` = this broker; append what comes back with the leader's offsets, set the
   follower high watermark to min(leader HW, log end offset), follow the leader's log start.
   ``OFFSET_OUT_OF_RANGE``: ask the leader (ListOffsets) for its log start and end; restart
   the log at the leader's log start if we are below it, else truncate to its end.
   Epoch errors (FENCED / UNKNOWN_LEADER_EPOCH, NOT_LEADER) back the partition off until
   metadata brings the new state. Throttled replicas (``broker.replication.throttle``) are
   fetched only as fast as ``follower.replication.throttled.rate`` allows.

The leader is reached on its inter-broker listener endpoint from the metadata image.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import fetch, list_offsets, offset_for_leader_epoch
from broker.replication.fetch_session import FINAL_EPOCH, INITIAL_EPOCH
from broker.replication.partition import Partition, out_of_range_action, truncation_point
from broker.replication.throttle import ReplicationThrottle
from storage.errors import StorageError

if TYPE_CHECKING:
    from broker.clock import Clock
    from broker.config import KafkaConfig
    from kraft.image import MetadataImage


class FetcherHost(Protocol):
    """What the fetchers need of the replica manager (``ReplicaManager`` is one): the hosted
    partitions, the metadata image (leaders' endpoints), this broker's config and id, a clock."""

    partitions: Mapping[tuple[str, int], Partition]
    image: MetadataImage
    config: KafkaConfig
    node_id: int
    clock: Clock

    def storage_failed(self, hp: Partition, error: BaseException) -> None: ...

__all__ = ["ReplicaFetcher", "ReplicaFetcherManager"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]
MAX_FETCH_VERSION = 12  # topic names; v13+ would need topic ids
CONNECT_TIMEOUT_S = 5.0


@dataclass(slots=True)
class FetchState:
    leader_epoch: int
    truncating: bool = True
    delayed_until: float = 0.0


class ReplicaFetcher:
    """Replicates the partitions led by ``source_id`` into this broker."""

    def __init__(self, manager: ReplicaFetcherManager, source_id: int) -> None:
        self.manager = manager
        self.rm = manager.rm
        self.source_id = source_id
        self.partitions: dict[TP, FetchState] = {}
        self._conn: KafkaConnection | None = None
        # The fetch session with the leader: its id (0: none yet), the epoch of the next
        # request, and the position the leader holds for each partition in it.
        self._session_id = 0
        self._session_epoch = INITIAL_EPOCH
        self._in_session: dict[TP, tuple[int, int, int]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        cfg = self.rm.config
        self.backoff_s = cfg.get("replica.fetch.backoff.ms") / 1000
        self.max_wait_ms = cfg.get("replica.fetch.wait.max.ms")
        self.min_bytes = cfg.get("replica.fetch.min.bytes")
        self.max_bytes = cfg.get("replica.fetch.response.max.bytes")
        self.partition_max_bytes = cfg.get("replica.fetch.max.bytes")
        self.socket_timeout_s = cfg.get("replica.socket.timeout.ms") / 1000
        self.listener = cfg.inter_broker_listener_name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica-fetcher-{self.source_id}")

    def add(self, tp: TP, leader_epoch: int) -> None:
        self.partitions[tp] = FetchState(leader_epoch)
        self._wakeup.set()

    def remove(self, tp: TP) -> None:
        self.partitions.pop(tp, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _close(self) -> None:
        self._reset_session()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- main loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self.partitions:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                conn = await self._connection()
                if conn is None:
                    await asyncio.sleep(self.backoff_s)
                    continue
                if any(s.truncating for s in self._ready().values()):
                    await self._truncate(conn)
                if not await self._fetch(conn):
                    await self._idle_wait()
            except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
                logger.info("Fetcher from broker %d: %s; retrying in %.1fs", self.source_id, e,
                            self.backoff_s)
                await self._close()
                await asyncio.sleep(self.backoff_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Fetcher from broker %d failed; retrying", self.source_id)
                await self._close()
                await asyncio.sleep(self.backoff_s)

    async def _idle_wait(self) -> None:
        """Every partition is backing off: sleep until the first may retry (or a new one)."""
        now = self.rm.clock.monotonic()
        until = min((s.delayed_until for s in self.partitions.values()), default=now)
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(until - now, 0.01))

    async def _connection(self) -> KafkaConnection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        reg = self.rm.image.cluster.brokers.get(self.source_id)
        ep = None if reg is None else reg.listener(self.listener)
        if ep is None:
            logger.info("No %s endpoint for broker %d yet", self.listener, self.source_id)
            return None
        self._conn = await KafkaConnection.connect(
            ep.host, ep.port, client_id=f"broker-{self.rm.node_id}-fetcher-{self.source_id}",
            node_id=self.source_id, timeout_s=CONNECT_TIMEOUT_S,
            security=self.rm.inter_broker_security)
        return self._conn

    def _ready(self) -> dict[TP, FetchState]:
        now = self.rm.clock.monotonic()
        return {tp: s for tp, s in self.partitions.items() if s.delayed_until <= now}

    def _current(self, tp: TP, state: FetchState) -> Partition | None:
        """The hosted partition if ``state`` is still the fetcher's state for it."""
        if self.partitions.get(tp) is not state:
            return None
        hp = self.rm.partitions.get(tp)
        if hp is None or hp.state.is_leader or hp.state.leader_epoch != state.leader_epoch:
            return None
        return hp

    def _delay(self, tp: TP, state: FetchState) -> None:
        state.delayed_until = self.rm.clock.monotonic() + self.backoff_s

    # -- truncation (KIP-101) -----------------------------------------------------------------

    async def _truncate(self, conn: KafkaConnection) -> None:
        R = offset_for_leader_epoch.REQUEST
        for _ in range(8):  # KIP-279 may need a few rounds; the rest waits for the next loop
            todo = {tp: s for tp, s in self._ready().items() if s.truncating}
            if not todo:
                return
            asked: dict[TP, tuple[FetchState, int]] = {}
            topics: dict[str, list[Any]] = {}
            for tp, s in todo.items():
                hp = self._current(tp, s)
                if hp is None:
                    continue
                epoch = hp.log.latest_epoch
                if epoch is None:
                    # No epoch information: nothing written under any epoch, so nothing can
                    # diverge; an empty log needs no truncation either.
                    self._truncation_done(hp, s, None)
                    continue
                asked[tp] = (s, epoch)
                topics.setdefault(tp[0], []).append(R.OffsetForLeaderPartition(
                    partition=tp[1], current_leader_epoch=s.leader_epoch, leader_epoch=epoch))
            if not topics:
                return
            req = R.cls(replica_id=self.rm.node_id, topics=[
                R.OffsetForLeaderTopic(topic=t, partitions=ps) for t, ps in topics.items()])
            resp = await conn.send(ApiKey.OFFSET_FOR_LEADER_EPOCH, req,
                                   timeout_s=self.socket_timeout_s)
            for t in resp.topics:
                for p in t.partitions:
                    tp = (t.topic, p.partition)
                    entry = asked.get(tp)
                    if entry is None:
                        continue
                    s, asked_epoch = entry
                    hp = self._current(tp, s)
                    if hp is None:
                        continue
                    if p.error_code:
                        logger.info("OffsetsForLeaderEpoch of %s-%d from broker %d: %s",
                                    tp[0], tp[1], self.source_id, ErrorCode(p.error_code).name)
                        self._delay(tp, s)
                        continue
                    self._apply_epoch_end(hp, s, asked_epoch, p.leader_epoch, p.end_offset)

    def _apply_epoch_end(self, hp: Partition, s: FetchState, asked_epoch: int,
                         leader_epoch: int, leader_end: int) -> None:
        offset, done = truncation_point(hp.log, hp.state.high_watermark, leader_epoch,
                                        leader_end)
        if done:
            self._truncation_done(hp, s, offset)
        elif offset is not None:
            self._truncate_log(hp, offset)  # and ask again with our now latest epoch

    def _truncate_log(self, hp: Partition, offset: int) -> None:
        log = hp.log
        if offset < log.log_end_offset:
            logger.info("Truncating %s-%d from %d to %d (leader %d)", hp.topic, hp.partition,
                        log.log_end_offset, offset, self.source_id)
        if offset <= log.log_end_offset:  # at the log end: an empty epoch there still goes
            try:
                hp.truncate(offset, self.rm.clock.wall_ms())
            except (StorageError, OSError) as e:
                self.rm.storage_failed(hp, e)
                raise

    def _truncation_done(self, hp: Partition, s: FetchState, offset: int | None) -> None:
        if offset is not None:
            self._truncate_log(hp, max(offset, 0))
        s.truncating = False

    # -- fetch --------------------------------------------------------------------------------

    async def _fetch(self, conn: KafkaConnection) -> bool:
        """One fetch round; False if no partition was ready to fetch.

        Within a fetch session (KIP-227) the request names only the partitions whose position
        (or leader epoch) changed since the leader last heard of them, and forgets those no
        longer fetched (backing off, truncating, moved away); the answer carries only the
        partitions with something new. The other partitions are still fetched, at the
        positions the session holds for them."""
        R = fetch.REQUEST
        wanted: dict[TP, tuple[FetchState, tuple[int, int, int]]] = {}
        throttle = self.manager.throttle
        max_bytes: dict[TP, int] = {}  # throttled partitions: what the bucket allows
        for tp, s in self._ready().items():
            if s.truncating:
                continue
            hp = self._current(tp, s)
            if hp is None:
                continue
            if throttle.applies(tp[0], tp[1], self.rm.node_id in hp.state.isr):
                allowed = throttle.allowance()
                if allowed <= 0:
                    s.delayed_until = self.rm.clock.monotonic() + throttle.wait_s()
                    continue
                max_bytes[tp] = min(self.partition_max_bytes, allowed)
            wanted[tp] = (s, (hp.log.log_end_offset, s.leader_epoch, hp.log.log_start_offset))
        if not wanted:
            return False
        version = min(conn.version_for(ApiKey.FETCH), MAX_FETCH_VERSION)
        sessions = version >= 7
        if not sessions:
            self._session_id, self._session_epoch = 0, FINAL_EPOCH
        full = self._session_epoch in (INITIAL_EPOCH, FINAL_EPOCH)
        if full:
            self._in_session = {}
        changed = {tp: pos for tp, (_, pos) in wanted.items()
                   if full or self._in_session.get(tp) != pos}
        forgotten = [] if full else [tp for tp in self._in_session if tp not in wanted]
        topics: dict[str, list[Any]] = {}
        for tp, (offset, epoch, log_start) in changed.items():
            topics.setdefault(tp[0], []).append(R.FetchPartition(
                partition=tp[1], current_leader_epoch=epoch, fetch_offset=offset,
                last_fetched_epoch=-1, log_start_offset=log_start,
                partition_max_bytes=max_bytes.get(tp, self.partition_max_bytes)))
        gone: dict[str, list[int]] = {}
        for tp in forgotten:
            gone.setdefault(tp[0], []).append(tp[1])
        req = R.cls(replica_id=self.rm.node_id, max_wait_ms=self.max_wait_ms,
                    min_bytes=self.min_bytes, max_bytes=self.max_bytes, isolation_level=0,
                    session_id=self._session_id, session_epoch=self._session_epoch,
                    topics=[R.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
                    forgotten_topics_data=[R.ForgottenTopic(topic=t, partitions=ps)
                                           for t, ps in gone.items()], rack_id="")
        resp = await conn.send(ApiKey.FETCH, req, version,
                               timeout_s=self.socket_timeout_s + self.max_wait_ms / 1000)
        if getattr(resp, "error_code", 0):
            logger.info("Fetch from broker %d: %s", self.source_id,
                        ErrorCode(resp.error_code).name)
            self._reset_session()
            if resp.error_code not in (ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
                                       ErrorCode.INVALID_FETCH_SESSION_EPOCH):
                for tp, (s, _) in wanted.items():
                    self._delay(tp, s)
            return True
        # The leader now holds these positions for this fetcher.
        if sessions and resp.session_id:
            if full:
                self._session_id, self._session_epoch = resp.session_id, 1
            else:
                self._session_epoch += 1
            for tp in forgotten:
                self._in_session.pop(tp, None)
            self._in_session.update(changed)
        else:
            self._reset_session()
        # (tp, state, wait) of the appends the flush policy wants fsynced.
        durable: list[tuple[TP, FetchState, Any]] = []
        try:
            for t in resp.responses:
                for p in t.partitions:
                    tp = (t.topic, p.partition_index)
                    entry = wanted.get(tp)
                    if entry is None:
                        continue
                    s, (offset, _, _) = entry
                    if tp in max_bytes and p.records:
                        throttle.record(len(p.records))
                    hp = self._current(tp, s)
                    if hp is None or hp.log.log_end_offset != offset:
                        continue
                    await self._process(conn, hp, s, p, durable)
        finally:
            if durable:
                await self._await_durable(durable)
        return True

    async def _await_durable(self, durable: list[tuple[TP, FetchState, Any]]) -> None:
        """The fsyncs the flush policy asked for (one group commit per log, all at once):
        the next fetch reports the new log ends only once they are durable."""
        results = await asyncio.gather(*(wait for _, _, wait in durable), return_exceptions=True)
        for (tp, s, _), result in zip(durable, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("Follower flush of %s-%d failed: %s", tp[0], tp[1], result)
                self._delay(tp, s)

    def _reset_session(self) -> None:
        """Start over with a full fetch that opens a new session (closing the old one)."""
        self._session_epoch = INITIAL_EPOCH
        self._in_session = {}

    async def _process(self, conn: KafkaConnection, hp: Partition, s: FetchState,
                       p: Any, durable: list[tuple[TP, FetchState, Any]]) -> None:
        code = p.error_code
        tp = hp.tp
        if code == ErrorCode.NONE:
            div = getattr(p, "diverging_epoch", None)
            if div is not None and div.end_offset >= 0:
                s.truncating = True  # resolve with OffsetsForLeaderEpoch
                return
            try:
                wait = hp.append_fetched(p.records, p.high_watermark, p.log_start_offset)
                if wait is not None:
                    durable.append((tp, s, wait))
            except (StorageError, OSError) as e:
                logger.error("Follower append to %s-%d failed: %s", tp[0], tp[1], e)
                self.rm.storage_failed(hp, e)  # an I/O error takes the log dir offline
                self._delay(tp, s)
            return
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._handle_out_of_range(conn, hp, s)
            return
        if code not in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                        ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
            logger.warning("Fetch of %s-%d from broker %d: %s", tp[0], tp[1], self.source_id,
                           ErrorCode(code).name)
        self._delay(tp, s)

    async def _handle_out_of_range(self, conn: KafkaConnection, hp: Partition,
                                   s: FetchState) -> None:
        earliest = await self._leader_offset(conn, hp, s, -2)
        latest = await self._leader_offset(conn, hp, s, -1)
        if earliest is None or latest is None or self._current(hp.tp, s) is not hp:
            self._delay(hp.tp, s)
            return
        action = out_of_range_action(hp.log, earliest, latest)
        if action.truncate is not None:
            # Only after an unclean election can the leader be behind us.
            logger.warning("Leader %d of %s-%d ends at %d, below our %d: truncating",
                           self.source_id, hp.topic, hp.partition, latest,
                           hp.log.log_end_offset)
            self._truncate_log(hp, action.truncate)
        elif action.restart is not None:
            logger.info("%s-%d: our log end %d is below the leader's log start %d: "
                        "restarting the log there", hp.topic, hp.partition,
                        hp.log.log_end_offset, action.restart)
            hp.restart_at(action.restart, self.rm.clock.wall_ms())
        else:
            self._delay(hp.tp, s)

    async def _leader_offset(self, conn: KafkaConnection, hp: Partition, s: FetchState,
                             timestamp: int) -> int | None:
        R = list_offsets.REQUEST
        req = R.cls(replica_id=self.rm.node_id, isolation_level=0, topics=[
            R.ListOffsetsTopic(name=hp.topic, partitions=[R.ListOffsetsPartition(
                partition_index=hp.partition, current_leader_epoch=s.leader_epoch,
                timestamp=timestamp)])], timeout_ms=int(self.socket_timeout_s * 1000))
        resp = await conn.send(ApiKey.LIST_OFFSETS, req, timeout_s=self.socket_timeout_s)
        try:
            p = resp.topics[0].partitions[0]
        except IndexError:
            return None
        if p.error_code:
            return None
        return p.offset


class ReplicaFetcherManager:
    """Which fetcher replicates which partition; fetchers start and stop as needed."""

    def __init__(self, rm: FetcherHost) -> None:
        self.rm = rm
        self.throttle = ReplicationThrottle(rm.node_id, rm.config, lambda: rm.image,
                                            rm.clock.monotonic)
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.source_of: dict[TP, int] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def has(self, tp: TP, source_id: int) -> bool:
        return self.source_of.get(tp) == source_id

    def add(self, tp: TP, source_id: int, leader_epoch: int) -> None:
        old = self.source_of.get(tp)
        if old is not None and old != source_id:
            self.remove(tp)
        fetcher = self.fetchers.get(source_id)
        if fetcher is None:
            fetcher = self.fetchers[source_id] = ReplicaFetcher(self, source_id)
            fetcher.start()
        fetcher.add(tp, leader_epoch)
        self.source_of[tp] = source_id

    def remove(self, tp: TP) -> None:
        source = self.source_of.pop(tp, None)
        if source is None:
            return
        fetcher = self.fetchers.get(source)
        if fetcher is None:
            return
        fetcher.remove(tp)
        if not fetcher.partitions:
            del self.fetchers[source]
            task = asyncio.create_task(fetcher.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def shutdown(self) -> None:
        fetchers, self.fetchers = list(self.fetchers.values()), {}
        self.source_of.clear()
        for f in fetchers:
            await f.stop()
        for t in list(self._stopping):
            with contextlib.suppress(Exception):
                await t
