"""The asyncio I/O driver of the metadata quorum: runs a sans-IO ``kraft.raft.RaftNode`` over
real sockets in the Kafka wire protocol. Persist, then send, then apply.

``RaftManager`` is the small interface controllers and brokers use (``append``, ``register``,
``leader_and_epoch``, ``high_watermark``, ``describe_quorum``) plus ``handlers``, the KRaft API
handlers a ``KafkaServer`` controller listener routes to.

How one node is driven (one task, ``_drive``):

1. Inputs arrive at any time: inbound requests (our handlers) and responses to our requests are
   ``step``ped into the node; ``tick`` runs from a timer every ``TICK_MS`` and after every
   step; ``append`` adds records. Each of these wakes the driver.
2. The driver ``poll``s a ``Ready`` and persists it: quorum-state (atomic write + fsync) and the
   log (durable truncation, append, then an fsync in a worker thread through
   ``PartitionLog.begin_flush`` so the loop keeps serving while the disk syncs). Inputs that
   arrive meanwhile pile up in the node and go out in the next Ready: that is group commit.
3. Only then its messages go out. A response message (Vote/Fetch/FetchSnapshot response)
   answers the oldest pending inbound request of that kind from that node (the node answers
   every request exactly once, in order). Requests go over one pipelined ``KafkaConnection``
   per destination (lazy connect, exponential reconnect backoff); connection errors and
   timeouts drop the message, as a lossy network would: the node retries on its own timers.
4. Committed entries go to the listeners (``handle_commit``), then ``advance``. A
   BeginQuorumEpoch/EndQuorumEpoch request is answered (error code only) once a Ready polled
   after its step has been persisted.

Long poll: the leader holds a Fetch whose answer would be empty (no records, no error, no
divergence, and a high watermark the fetcher already has) for up to the request's
``max_wait_ms``, and re-steps it to get a fresh answer as soon as the log end, the high
watermark or the leadership changes. Followers therefore re-fetch right after every answer
(the node's fetch backoff is 0); an answer carrying an *error* is stepped in only after
``RETRY_BACKOFF_MS``, which keeps a node that asks the wrong voter from spinning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.client import (
    KafkaConnection,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
)
from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller import raft_wire as wire
from broker.controller.metadata_log import MetadataLog
from broker.controller.quorum_state_file import QuorumStateFile, quorum_state_path
from broker.network.server import RequestContext
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from kraft.codec import CodecError
from kraft.log import LogEntry
from kraft.messages import (
    BeginQuorumEpoch,
    EndQuorumEpoch,
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
    QuorumDescription,
    ReplicaDescription,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from kraft.quorum_state import ElectionState, Leader
from kraft.raft import NotLeader, RaftNode, Ready
from storage.fileutil import make_dirs

__all__ = [
    "RAFT_API_VERSIONS",
    "CommittedBatch",
    "LeaderAndEpoch",
    "NotLeader",
    "RaftManager",
]

logger = logging.getLogger(__name__)

RAFT_API_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.VOTE: (0, 2),
    ApiKey.BEGIN_QUORUM_EPOCH: (0, 1),
    ApiKey.END_QUORUM_EPOCH: (0, 1),
    ApiKey.FETCH: (wire.FETCH_VERSIONS.start, wire.FETCH_VERSIONS.stop - 1),
    ApiKey.FETCH_SNAPSHOT: (0, 1),
    ApiKey.DESCRIBE_QUORUM: (0, 2),
}
"""What a controller listener must advertise for these handlers (ApiVersions)."""

TICK_MS = 10
RETRY_BACKOFF_MS = 50
RECONNECT_BACKOFF_MS = 50
RECONNECT_BACKOFF_MAX_MS = 1000
KEEPALIVE_TICKS = 10  # check the connections to the voters every this many ticks
MAX_QUEUED_PER_PEER = 256  # messages waiting for a connection; more are dropped
MAX_COMMIT_BATCH = 2000  # entries per CommittedBatch when a listener catches up
MAX_FETCH_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class LeaderAndEpoch:
    leader_id: int | None
    epoch: int


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """Committed entries ``base_offset..last_offset`` of one epoch, in log order. Control
    entries (LeaderChange) are not in ``records`` but are covered by the offsets."""

    base_offset: int
    last_offset: int
    epoch: int
    records: list[bytes]
    append_timestamp_ms: int


@dataclass(slots=True)
class _Inbound:
    """An inbound request waiting for the node's answer."""

    future: asyncio.Future[Any]
    version: int
    message: Message
    deadline: float = 0.0  # loop time; Fetch long-poll only
    final: bool = False  # Fetch: answer even if empty (max_wait expired)


class _ListenerState:
    __slots__ = ("leader", "listener", "next_offset")

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.next_offset = 0
        self.leader: LeaderAndEpoch | None = None


class _Peer:
    """One outbound, pipelined connection to a voter."""

    def __init__(self, mgr: RaftManager, node_id: int, host: str, port: int) -> None:
        self.mgr = mgr
        self.node_id = node_id
        self.host = host
        self.port = port
        self.conn: KafkaConnection | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.queue: list[Message] = []
        self.backoff_ms = RECONNECT_BACKOFF_MS
        self.retry_at = 0.0

    def send(self, msg: Message) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            self.mgr._send_on(self, conn, msg)
            return
        self.conn = None
        loop = self.mgr._loop
        if loop.time() < self.retry_at or len(self.queue) >= MAX_QUEUED_PER_PEER:
            return  # dropped: the node retries
        self.queue.append(msg)
        if self.connecting is None:
            self.connecting = loop.create_task(self._connect())

    def ensure_connected(self) -> None:
        """Keep a connection open (with backoff), so the first message after a quiet spell,
        e.g. the EndQuorumEpoch of a resigning leader, does not wait for a connect."""
        if (self.connecting is None and (self.conn is None or self.conn.closed)
                and self.mgr._loop.time() >= self.retry_at):
            self.conn = None
            self.connecting = self.mgr._loop.create_task(self._connect())

    async def _connect(self) -> None:
        mgr = self.mgr
        try:
            conn = await KafkaConnection.connect(
                self.host, self.port, client_id=f"raft-{mgr.node_id}", node_id=self.node_id,
                timeout_s=mgr.request_timeout_ms / 1000)
        except (KafkaConnectionError, KafkaError, OSError) as e:
            logger.debug("node %d: cannot connect to voter %d: %s", mgr.node_id, self.node_id, e)
            self.retry_at = mgr._loop.time() + self.backoff_ms * mgr._random.uniform(0.8, 1.2) / 1000
            self.backoff_ms = min(self.backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS)
            self.queue.clear()
            return
        finally:
            self.connecting = None
        if mgr._closed:
            await conn.close()
            return
        self.conn = conn
        self.backoff_ms = RECONNECT_BACKOFF_MS
        queued, self.queue = self.queue, []
        for msg in queued:
            mgr._send_on(self, conn, msg)

    def abort(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        if self.conn is not None:
            self.conn._abort(None)
            self.conn = None

    async def close(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()


class RaftManager:
    """Runs the metadata quorum on this node; see the module doc.

    ``voters`` maps each voter id to its controller listener address. A node not in ``voters``
    is an observer (a broker). Register listeners before ``start()``; a listener registered
    later is caught up from the first entry the log still holds.
    """

    def __init__(self, node_id: int, cluster_id: str, voters: dict[int, tuple[str, int]],
                 metadata_log_dir: str, *, election_timeout_ms: int = 1000,
                 fetch_timeout_ms: int = 2000, fetch_max_wait_ms: int = 500,
                 request_timeout_ms: int = 2000, seed: int | None = None,
                 snapshots: object | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        if not voters:
            raise ValueError("the quorum needs at least one voter")
        self.clock = clock
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.voters = dict(voters)
        self.metadata_log_dir = metadata_log_dir
        self.election_timeout_ms = election_timeout_ms
        self.fetch_timeout_ms = fetch_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.request_timeout_ms = request_timeout_ms
        self._random = random.Random(seed)
        self._snapshots = snapshots
        self.handlers: dict[int, Callable[[RequestContext, Any, Any], Any]] = {
            ApiKey.VOTE: self._handle_vote,
            ApiKey.BEGIN_QUORUM_EPOCH: self._handle_begin_quorum_epoch,
            ApiKey.END_QUORUM_EPOCH: self._handle_end_quorum_epoch,
            ApiKey.FETCH: self._handle_fetch,
            ApiKey.FETCH_SNAPSHOT: self._handle_fetch_snapshot,
            ApiKey.DESCRIBE_QUORUM: self._handle_describe_quorum,
        }
        self._node: RaftNode | None = None
        self._log: MetadataLog | None = None
        self._qs = QuorumStateFile(quorum_state_path(metadata_log_dir), cluster_id=cluster_id,
                                   voters=tuple(sorted(voters)))
        self._listeners: list[_ListenerState] = []
        self._peers: dict[int, _Peer] = {}
        self._pending: dict[tuple[int, type], deque[_Inbound]] = {}
        self._parked: list[_Inbound] = []
        self._hw_sent: dict[int, int] = {}
        self._acks: list[tuple[int, asyncio.Future[Any], int, Callable[..., Any]]] = []
        self._polls = 0  # Readys polled
        self._persisted = 0  # Readys persisted and sent
        self._last_wake_key: tuple[int, int, int, int | None] = (0, 0, 0, None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resign_sends: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._closed = False
        self._started = False
        self._driver: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._leader = LeaderAndEpoch(None, 0)
        self._committed_end = 0  # the node has handed out every entry below this as committed
        self.failed: BaseException | None = None
        # Wire max_wait: below the fetcher's own request timeout, so a held fetch is answered
        # before the fetcher gives up on it and sends another.
        self._wire_max_wait_ms = max(0, min(fetch_max_wait_ms,
                                            max(1, fetch_timeout_ms // 4) * 3 // 4))

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("RaftManager already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        make_dirs(self._qs.path.parent)
        epoch, voted, leader = self._qs.read()
        latest = getattr(self._snapshots, "latest", None)
        snapshot_id = latest() if callable(latest) else None
        self._log = MetadataLog.open(self.metadata_log_dir, snapshot_id=snapshot_id)
        kwargs: dict[str, Any] = {}
        if self._snapshots is not None:
            kwargs["snapshots"] = self._snapshots
        self._node = RaftNode(
            self.node_id, frozenset(self.voters), random=self._random,
            election_timeout_ms=self.election_timeout_ms, fetch_timeout_ms=self.fetch_timeout_ms,
            fetch_backoff_ms=0, log=self._log.memory,
            election_state=ElectionState(epoch, voted, leader), **kwargs)
        self._leader = LeaderAndEpoch(self._node.leader_id, self._node.epoch)
        self._committed_end = self._node.log.start_offset
        if snapshot_id is not None and self._snapshots is not None:
            # Everything below the log start is in the snapshot: listeners start from it.
            size = self._snapshots.size(snapshot_id)  # type: ignore[attr-defined]
            data = self._snapshots.read(snapshot_id, 0, size)  # type: ignore[attr-defined]
            for st in self._listeners:
                fn = getattr(st.listener, "handle_load_snapshot", None)
                if fn is not None:
                    self._call(fn, snapshot_id, data)
            logger.info("node %d: loaded snapshot %s (%d bytes)", self.node_id, snapshot_id,
                        size)
        for st in self._listeners:
            st.next_offset = max(st.next_offset, self._committed_end)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"raft-fsync-{self.node_id}")
        for vid, (host, port) in self.voters.items():
            if vid != self.node_id:
                self._peers[vid] = _Peer(self, vid, host, port)
        self._driver = self._loop.create_task(self._drive())
        self._ticker = self._loop.create_task(self._tick_loop())
        self._wake.set()
        logger.info("node %d: raft started at epoch %d (log end %d, %s)", self.node_id, epoch,
                    self._log.end_offset, "voter" if self.node_id in self.voters else "observer")

    async def shutdown(self, *, graceful: bool = True) -> None:
        """Stop. ``graceful``: a leader resigns (EndQuorumEpoch reaches the voters before we
        go), then the log is flushed and closed and connections are closed. Not graceful:
        like a crash of the process, no resign, no flush, connections aborted."""
        if self._closed or not self._started:
            self._closed = True
            return
        node = self._node
        assert node is not None
        if graceful and self.failed is None and node.is_leader():
            try:
                node.resign(self._now())
            except NotLeader:
                pass
            target = self._polls + 1  # the Ready that carries the EndQuorumEpoch requests
            self._wake.set()
            deadline = self._loop.time() + self.request_timeout_ms / 1000
            while self._persisted < target and self._loop.time() < deadline \
                    and self.failed is None:
                await asyncio.sleep(0.001)
            # Then until they are answered (or failed), peers still connecting included.
            while self._loop.time() < deadline:
                waiting: list[asyncio.Task[Any]] = [t for t in self._resign_sends if not t.done()]
                waiting += [p.connecting for p in self._peers.values()
                            if p.connecting is not None]
                if not waiting:
                    break
                await asyncio.wait(waiting, timeout=max(0.0, deadline - self._loop.time()))
        self._closed = True
        self._wake.set()
        for t in (self._ticker, self._driver):
            if t is not None:
                t.cancel()
        for t in (self._ticker, self._driver):
            if t is not None:
                try:
                    await t
                except asyncio.CancelledError:
                    pass
                except Exception:
                    logger.exception("node %d: raft driver task", self.node_id)
        self._fail_inbound()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if graceful:
            await asyncio.gather(*(p.close() for p in self._peers.values()),
                                 return_exceptions=True)
        else:
            for p in self._peers.values():
                p.abort()
        if self._log is not None:
            try:
                if graceful and self.failed is None:
                    self._log.flush()
                self._log.close()
            except Exception:
                logger.exception("node %d: closing the metadata log", self.node_id)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def register(self, listener: Any) -> None:
        """Add a listener (``handle_commit``, ``handle_leader_change``, optionally
        ``handle_load_snapshot``). It sees every committed entry from the log start."""
        st = _ListenerState(listener)
        if self._node is not None:
            st.next_offset = self._node.log.start_offset
        self._listeners.append(st)
        if self._started and not self._closed:
            self._wake.set()

    @property
    def leader_and_epoch(self) -> LeaderAndEpoch:
        return self._leader

    @property
    def high_watermark(self) -> int:
        return self._node.high_watermark if self._node is not None else 0

    @property
    def epoch(self) -> int:
        return self._node.epoch if self._node is not None else 0

    @property
    def log_end_offset(self) -> int:
        return self._node.log.end_offset if self._node is not None else 0

    def snapshot_taken(self, snapshot_id: SnapshotId) -> None:
        """The application wrote ``snapshot_id`` into the snapshot store: Raft may drop the
        log below it (the segments go at the next Ready)."""
        assert self._node is not None
        self._node.snapshot_taken(snapshot_id, self._now())
        self._wake.set()

    @property
    def epoch_start_offset(self) -> int | None:
        """As leader, the offset of the first entry of its epoch (its LeaderChange record);
        once the high watermark passes it, everything before it is committed."""
        st = self._node.state if self._node is not None else None
        return st.epoch_start_offset if isinstance(st, Leader) else None

    def is_leader(self) -> bool:
        return self._node is not None and not self._closed and self._node.is_leader()

    def append(self, records: list[bytes], *, epoch: int) -> int:
        """Append records as the leader of ``epoch``; returns the offset of the last one. The
        caller learns of the commit through ``handle_commit``. ``NotLeader`` if this node is not
        the leader or its epoch is not ``epoch``."""
        node = self._node
        if node is None or self._closed:
            raise NotLeader(epoch, None)
        if not node.is_leader() or node.epoch != epoch:
            raise NotLeader(node.epoch, node.leader_id)
        if not records:
            raise ValueError("append of no records")
        base = node.append(list(records))
        self._restep_parked()  # held fetches answer with the new records in the same Ready
        self._wake.set()
        return base + len(records) - 1

    def describe_quorum(self) -> QuorumDescription:
        """The leader's view of the quorum (``NotLeader`` elsewhere), timestamps in wall-clock
        milliseconds as Kafka reports them (the node runs on the loop's monotonic clock)."""
        mono = self._now()
        desc = self._node.describe_quorum(mono)
        shift = self.clock.wall_ms() - mono

        def wall(rows: tuple[ReplicaDescription, ...]) -> tuple[ReplicaDescription, ...]:
            return tuple(dataclasses.replace(
                r,
                last_fetch_timestamp=r.last_fetch_timestamp + shift
                if r.last_fetch_timestamp >= 0 else -1,
                last_caught_up_timestamp=r.last_caught_up_timestamp + shift
                if r.last_caught_up_timestamp >= 0 else -1) for r in rows)

        return dataclasses.replace(desc, voters=wall(desc.voters),
                                   observers=wall(desc.observers))

    # ------------------------------------------------------------------ driving the node

    def _now(self) -> int:
        return int(self._loop.time() * 1000)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _step(self, msg: Message) -> None:
        node = self._node
        if node is None or self._closed:
            return
        node.step(msg, self._now())
        self._wake.set()

    async def _tick_loop(self) -> None:
        ticks = 0
        while not self._closed:
            await asyncio.sleep(TICK_MS / 1000)
            ticks += 1
            if ticks % KEEPALIVE_TICKS == 0:
                for peer in self._peers.values():
                    peer.ensure_connected()
            if self._parked:
                now = self._loop.time()
                expired = [p for p in self._parked if p.deadline <= now]
                if expired:
                    self._parked = [p for p in self._parked if p.deadline > now]
                    for p in expired:
                        p.final = True
                        self._restep(p)
            self._wake.set()

    async def _drive(self) -> None:
        try:
            while not self._closed:
                await self._wake.wait()
                self._wake.clear()
                await self._process()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # an I/O error or a bug: this node's quorum role stops
            self.failed = e
            logger.critical("node %d: metadata quorum driver failed; the metadata log is "
                            "offline", self.node_id, exc_info=True)
            self._closed = True
            self._fail_inbound()

    async def _process(self) -> None:
        node = self._node
        assert node is not None
        while not self._closed:
            node.tick(self._now())
            ready = node.poll()
            self._polls += 1
            if ready.is_empty():
                node.advance(ready, self._now())
                self._persisted += 1
                self._after_ready()
                return
            await self._persist(ready)
            if self._closed:
                return
            self._send_all(ready.messages_to_send)
            self._persisted += 1
            self._apply(ready)
            node.advance(ready, self._now())
            self._after_ready()

    async def _persist(self, ready: Ready) -> None:
        mlog = self._log
        assert mlog is not None
        election = ready.election_state_to_persist
        install = getattr(ready, "snapshot_to_install", None)
        snapshot_write = None
        if install is not None:
            # FileSnapshotStore.write (atomic, fsynced); MemorySnapshotStore.add in tests.
            add = getattr(self._snapshots, "write", None) or getattr(
                self._snapshots, "add", None)
            if callable(add):
                def snapshot_write() -> None:
                    add(install[0], install[1])
        if election is not None or snapshot_write is not None:
            def write_state() -> None:
                if election is not None:
                    self._qs.write(election.epoch, election.voted_for, election.leader_id)
                if snapshot_write is not None:
                    snapshot_write()
            await self._loop.run_in_executor(self._executor, write_state)
        if install is not None:
            mlog.reset_to(install[0].end_offset)
        if ready.truncate_to is not None:
            mlog.truncate_to(ready.truncate_to)  # durable before it returns
        if ready.entries_to_append:
            node_id = self.node_id
            mlog.write(None, ready.entries_to_append, leader_of_epoch=lambda _e: node_id,
                       voters=self.voters)
            job = mlog.begin_flush()
            fsync = self._loop.run_in_executor(self._executor, job.run)
            ok = False
            try:
                await asyncio.shield(fsync)
                ok = True
            except asyncio.CancelledError:
                # Shutting down: the fsync itself goes on in its thread. Wait for it before
                # its descriptors are closed; a cancelled wait is not an I/O error.
                with contextlib.suppress(BaseException):
                    await fsync
                    ok = True
                raise
            finally:
                job.finish(ok)
        start = getattr(ready, "log_start_offset", None)
        if start is not None:
            try:
                mlog.delete_below(start)
            except Exception:
                logger.warning("node %d: cannot delete the metadata log below %d",
                               self.node_id, start, exc_info=True)

    def _apply(self, ready: Ready) -> None:
        install = getattr(ready, "snapshot_to_install", None)
        if install is not None:
            for st in self._listeners:
                fn = getattr(st.listener, "handle_load_snapshot", None)
                if fn is not None:
                    self._call(fn, install[0], install[1])
                st.next_offset = max(st.next_offset, install[0].end_offset)
            self._committed_end = max(self._committed_end, install[0].end_offset)
        committed = ready.committed
        if not committed:
            return
        first = committed[0].offset
        self._committed_end = max(self._committed_end, committed[-1].offset + 1)
        now_ms = self.clock.wall_ms()
        batches: list[CommittedBatch] | None = None
        for st in self._listeners:
            if st.next_offset < first:
                self._catch_up(st, first, now_ms)
            if st.next_offset == first:
                if batches is None:
                    batches = _to_batches(committed, now_ms)
                for b in batches:
                    self._call(st.listener.handle_commit, b)
                st.next_offset = self._committed_end
            elif st.next_offset < self._committed_end:
                self._catch_up(st, self._committed_end, now_ms)

    def _catch_up(self, st: _ListenerState, up_to: int, now_ms: int) -> None:
        node = self._node
        assert node is not None
        st.next_offset = max(st.next_offset, node.log.start_offset)
        while st.next_offset < up_to:
            entries = node.log.entries_from(st.next_offset,
                                            min(MAX_COMMIT_BATCH, up_to - st.next_offset))
            if not entries:
                break
            for b in _to_batches(entries, now_ms):
                self._call(st.listener.handle_commit, b)
            st.next_offset = entries[-1].offset + 1

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("node %d: raft listener %r failed", self.node_id, fn)

    def _after_ready(self) -> None:
        node = self._node
        assert node is not None
        # Acks for BeginQuorumEpoch/EndQuorumEpoch whose effect is now durable.
        if self._acks:
            done = [a for a in self._acks if a[0] <= self._persisted]
            if done:
                self._acks = [a for a in self._acks if a[0] > self._persisted]
                for _, fut, _version, build in done:
                    if not fut.done():
                        fut.set_result(build(ErrorCode.NONE, node.leader_id, node.epoch))
        leader = LeaderAndEpoch(node.leader_id, node.epoch)
        if leader != self._leader:
            self._leader = leader
            logger.info("node %d: leader is now %s in epoch %d", self.node_id,
                        leader.leader_id, leader.epoch)
        for st in self._listeners:
            if st.next_offset < self._committed_end:  # registered late
                self._catch_up(st, self._committed_end, self.clock.wall_ms())
            if st.leader != leader:
                st.leader = leader
                self._call(st.listener.handle_leader_change, leader)
        key = (node.log.end_offset, node.high_watermark, node.epoch, node.leader_id)
        if key != self._last_wake_key:
            self._last_wake_key = key
            self._restep_parked()

    # ------------------------------------------------------------------ outbound

    def _send_all(self, messages: list[tuple[int, Message]]) -> None:
        for dest, msg in messages:
            if isinstance(msg, (VoteResponse, FetchResponse, FetchSnapshotResponse)):
                self._answer(dest, msg)
                continue
            peer = self._peers.get(dest)
            if peer is None:
                logger.debug("node %d: no address for %d, dropping %r", self.node_id, dest, msg)
                continue
            peer.send(msg)

    def _send_on(self, peer: _Peer, conn: KafkaConnection, msg: Message) -> None:
        task = self._spawn(self._request(peer, conn, msg))
        if isinstance(msg, EndQuorumEpoch):
            self._resign_sends.add(task)
            task.add_done_callback(self._resign_sends.discard)

    async def _request(self, peer: _Peer, conn: KafkaConnection, msg: Message) -> None:
        rt = self.request_timeout_ms / 1000
        dest = peer.node_id
        cid = self.cluster_id
        reply: Message | None = None
        delay_ms = 0
        try:
            if isinstance(msg, FetchRequest):
                v = conn.version_for(ApiKey.FETCH)
                if v not in wire.FETCH_VERSIONS:
                    return
                req = wire.fetch_request_to_wire(msg, cid, v, max_wait_ms=self._wire_max_wait_ms,
                                                 max_bytes=MAX_FETCH_BYTES)
                resp = await conn.send(ApiKey.FETCH, req, v,
                                       timeout_s=rt + self._wire_max_wait_ms / 1000)
                reply = wire.fetch_response_from_wire(resp, dest, msg)
                if reply is None or reply.error is not FetchError.NONE:
                    delay_ms = RETRY_BACKOFF_MS
            elif isinstance(msg, VoteRequest):
                v = conn.version_for(ApiKey.VOTE)
                req = wire.vote_request_to_wire(msg, cid, dest, v)
                resp = await conn.send(ApiKey.VOTE, req, v, timeout_s=rt)
                reply = wire.vote_response_from_wire(resp, dest, msg)
            elif isinstance(msg, BeginQuorumEpoch):
                req = wire.begin_quorum_epoch_request_to_wire(msg, cid, dest)
                resp = await conn.send(ApiKey.BEGIN_QUORUM_EPOCH, req, timeout_s=rt)
                err = wire.check_begin_quorum_epoch_response(resp)
                if err:
                    logger.debug("node %d: BeginQuorumEpoch to %d: error %d", self.node_id,
                                 dest, err)
            elif isinstance(msg, EndQuorumEpoch):
                req = wire.end_quorum_epoch_request_to_wire(msg, cid)
                resp = await conn.send(ApiKey.END_QUORUM_EPOCH, req, timeout_s=rt)
                err = wire.check_end_quorum_epoch_response(resp)
                if err:
                    logger.debug("node %d: EndQuorumEpoch to %d: error %d", self.node_id,
                                  dest, err)
            elif isinstance(msg, FetchSnapshotRequest):
                req = wire.fetch_snapshot_request_to_wire(msg, cid, max_bytes=MAX_FETCH_BYTES)
                resp = await conn.send(ApiKey.FETCH_SNAPSHOT, req, timeout_s=rt)
                reply = wire.fetch_snapshot_response_from_wire(resp, dest, msg)
            else:  # pragma: no cover
                raise TypeError(f"cannot send {msg!r}")
        except (KafkaConnectionError, KafkaTimeoutError, KafkaProtocolError, KafkaError,
                CodecError) as e:
            # Lost, as on a lossy network; the node retries on its own timers.
            logger.debug("node %d: %s to %d failed: %s", self.node_id, type(msg).__name__,
                         dest, e)
            return
        if reply is None or self._closed:
            return
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        self._step(reply)

    # ------------------------------------------------------------------ inbound

    def _answer(self, dest: int, msg: Message) -> None:
        q = self._pending.get((dest, type(msg)))
        if not q:
            logger.debug("node %d: no pending request for %r", self.node_id, msg)
            return
        p = q.popleft()
        if not q:
            del self._pending[(dest, type(msg))]
        if p.future.done():
            return
        if isinstance(msg, FetchResponse):
            node = self._node
            assert node is not None
            empty = (not msg.records and msg.error is FetchError.NONE
                     and msg.diverging_epoch is None and msg.snapshot_id is None)
            if (empty and not p.final and node.is_leader()
                    and self._hw_sent.get(dest) == msg.high_watermark
                    and self._loop.time() < p.deadline):
                self._parked.append(p)  # long poll
                return
            self._hw_sent[dest] = msg.high_watermark
            p.future.set_result(wire.fetch_response_to_wire(msg, p.version, voters=self.voters))
        elif isinstance(msg, VoteResponse):
            p.future.set_result(wire.vote_response_to_wire(msg))
        else:
            assert isinstance(msg, FetchSnapshotResponse)
            p.future.set_result(wire.fetch_snapshot_response_to_wire(msg))

    def _expect(self, sender: int, kind: type, p: _Inbound) -> None:
        self._pending.setdefault((sender, kind), deque()).append(p)

    def _restep(self, p: _Inbound) -> None:
        if p.future.done():
            return
        msg = p.message
        assert isinstance(msg, FetchRequest)
        self._expect(msg.sender, FetchResponse, p)
        self._step(msg)

    def _restep_parked(self) -> None:
        if not self._parked or self._closed:
            return
        parked, self._parked = self._parked, []
        for p in parked:
            self._restep(p)

    def _unavailable(self) -> bool:
        return self._closed or self._node is None

    def _handle_vote(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        msg, err = wire.vote_request_from_wire(request, self.cluster_id)
        if msg is None:
            return wire.vote_error_response(err)
        if self._unavailable():
            return wire.vote_error_response(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = self._loop.create_future()
        self._expect(msg.sender, VoteResponse, _Inbound(fut, header.api_version, msg))
        self._step(msg)
        return fut

    def _handle_epoch_change(self, request: Any, parse: Callable[..., Any],
                             build: Callable[..., Any]) -> Any:
        msg, err = parse(request, self.cluster_id)
        if msg is None:
            return build(err)
        if self._unavailable():
            return build(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = self._loop.create_future()
        # Answered once a Ready polled after this step is persisted (its effect is durable).
        self._acks.append((self._polls + 1, fut, 0, build))
        self._step(msg)
        return fut

    def _handle_begin_quorum_epoch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        return self._handle_epoch_change(request, wire.begin_quorum_epoch_request_from_wire,
                                         wire.begin_quorum_epoch_response)

    def _handle_end_quorum_epoch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        return self._handle_epoch_change(request, wire.end_quorum_epoch_request_from_wire,
                                         wire.end_quorum_epoch_response)

    def _handle_fetch(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        version = header.api_version
        msg, err = wire.fetch_request_from_wire(request, version, self.cluster_id)
        if msg is None:
            return wire.fetch_error_response(err, version)
        if self._unavailable():
            return wire.fetch_error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER, version)
        fut = self._loop.create_future()
        wait_ms = max(0, min(request.max_wait_ms, self.fetch_max_wait_ms))
        p = _Inbound(fut, version, msg, deadline=self._loop.time() + wait_ms / 1000,
                     final=wait_ms == 0)
        self._expect(msg.sender, FetchResponse, p)
        self._step(msg)
        return fut

    def _handle_fetch_snapshot(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        msg, err = wire.fetch_snapshot_request_from_wire(request, self.cluster_id)
        if msg is None:
            return wire.fetch_snapshot_error_response(err)
        if self._unavailable():
            return wire.fetch_snapshot_error_response(ErrorCode.BROKER_NOT_AVAILABLE)
        fut = self._loop.create_future()
        self._expect(msg.sender, FetchSnapshotResponse, _Inbound(fut, header.api_version, msg))
        try:
            self._step(msg)
        except TypeError:  # a RaftNode without snapshot support
            self._pending[(msg.sender, FetchSnapshotResponse)].pop()
            return wire.fetch_snapshot_error_response(
                ErrorCode.SNAPSHOT_NOT_FOUND, partition_level=True, snapshot_id=msg.snapshot_id)
        return fut

    def _handle_describe_quorum(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        err = wire.describe_quorum_request_from_wire(request)
        if err:
            return wire.describe_quorum_response(None, err)
        if self._unavailable():
            return wire.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        try:
            desc = self.describe_quorum()
        except NotLeader:
            return wire.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        except NotImplementedError as e:
            return wire.describe_quorum_response(None, ErrorCode.UNKNOWN_SERVER_ERROR,
                                                 message=str(e))
        return wire.describe_quorum_response(desc)

    def _fail_inbound(self) -> None:
        """Answer every waiting inbound request with an error (we are going away)."""
        for (_sender, kind), q in list(self._pending.items()):
            for p in q:
                if p.future.done():
                    continue
                if kind is FetchResponse:
                    p.future.set_result(wire.fetch_error_response(
                        ErrorCode.NOT_LEADER_OR_FOLLOWER, p.version))
                elif kind is VoteResponse:
                    p.future.set_result(wire.vote_error_response(
                        ErrorCode.BROKER_NOT_AVAILABLE))
                else:
                    p.future.set_result(wire.fetch_snapshot_error_response(
                        ErrorCode.BROKER_NOT_AVAILABLE))
        self._pending.clear()
        for p in self._parked:
            if not p.future.done():
                p.future.set_result(wire.fetch_error_response(
                    ErrorCode.NOT_LEADER_OR_FOLLOWER, p.version))
        self._parked.clear()
        for _, fut, _v, build in self._acks:
            if not fut.done():
                fut.set_result(build(ErrorCode.BROKER_NOT_AVAILABLE))
        self._acks.clear()


def _to_batches(entries: list[LogEntry], now_ms: int) -> list[CommittedBatch]:
    out: list[CommittedBatch] = []
    start = 0
    n = len(entries)
    while start < n:
        epoch = entries[start].epoch
        end = start
        while end < n and entries[end].epoch == epoch:
            end += 1
        run = entries[start:end]
        out.append(CommittedBatch(run[0].offset, run[-1].offset, epoch,
                                  [e.data for e in run if not e.control], now_ms))
        start = end
    return out
