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

The parts live next door: persisting a Ready and the fsync executor in ``raft_persist``, the
outbound connections to the voters in ``raft_peers``, the KRaft API handlers and the inbound
requests waiting on the node in ``raft_inbound``. This module keeps the lifecycle, the public
interface, the driver loop and the hand-over of committed entries to the listeners.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.client import KafkaConnection
from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller import raft_wire as wire
from broker.controller.metadata_log import MetadataLog
from broker.controller.quorum_state_file import QuorumStateFile, quorum_state_path
from broker.controller.raft_inbound import InboundRequests
from broker.controller.raft_membership_apis import MEMBERSHIP_API_VERSIONS, MembershipApis
from broker.controller.raft_peers import RaftPeer, exchange
from broker.controller.raft_persist import ReadyPersister
from broker.controller.raft_voters import Membership, VoterDirectory, snapshot_voters
from broker.network.context import RequestContext
from broker.protocol.api_keys import ApiKey
from kraft.log import LogEntry
from kraft.messages import (
    EndQuorumEpoch,
    FetchResponse,
    FetchSnapshotResponse,
    Message,
    QuorumDescription,
    ReplicaDescription,
    SnapshotId,
    VoteResponse,
)
from kraft.quorum_state import ElectionState, Leader
from kraft.raft import NotLeader, RaftNode, Ready
from kraft.voters import NO_DIRECTORY, VoterSet
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
    **MEMBERSHIP_API_VERSIONS,  # AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter (KIP-853)
}
"""What a controller listener must advertise for these handlers (ApiVersions)."""

TICK_MS = 10
KEEPALIVE_TICKS = 10  # check the connections to the voters every this many ticks
MAX_COMMIT_BATCH = 2000  # entries per CommittedBatch when a listener catches up


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


class _ListenerState:
    __slots__ = ("leader", "listener", "next_offset")

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.next_offset = 0
        self.leader: LeaderAndEpoch | None = None


class RaftManager:
    """Runs the metadata quorum on this node; see the module doc.

    ``voters`` maps each voter id to its controller listener address. A node not in ``voters``
    is an observer (a broker). Register listeners before ``start()``; a listener registered
    later is caught up from the first entry the log still holds.

    KIP-853: with ``kraft_version`` 1 the voter set is data in the log (``kraft/voters.py``);
    ``bootstrap_voters`` (the set ``kafka-storage format`` chose, with directory ids and
    endpoints) holds until the log says otherwise, ``voters`` then follows the latest set, and
    ``directory_id`` (the metadata log dir's) is this node's half of its voter key.
    """

    def __init__(self, node_id: int, cluster_id: str, voters: dict[int, tuple[str, int]],
                 metadata_log_dir: str, *, election_timeout_ms: int = 1000,
                 fetch_timeout_ms: int = 2000, fetch_max_wait_ms: int = 500,
                 request_timeout_ms: int = 2000, seed: int | None = None,
                 snapshots: object | None = None, clock: Clock = SYSTEM_CLOCK,
                 kraft_version: int = 0, directory_id: uuid.UUID | None = None,
                 bootstrap_voters: VoterSet | None = None,
                 controller_listener_name: str = "CONTROLLER") -> None:
        if not voters:
            raise ValueError("the quorum needs at least one voter")
        self.clock = clock
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.voters = dict(voters)
        self._kraft_version = kraft_version
        self.directory_id = directory_id
        self._bootstrap_voters = bootstrap_voters
        self.controller_listener_name = controller_listener_name
        self._directory = VoterDirectory(self)
        self.membership = Membership(self)
        self.metadata_log_dir = metadata_log_dir
        self.election_timeout_ms = election_timeout_ms
        self.fetch_timeout_ms = fetch_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.request_timeout_ms = request_timeout_ms
        self.security: Any = None  # TLS/SASL towards the other voters' controller listener
        self._random = random.Random(seed)
        self._snapshots = snapshots
        self._inbound = inbound = InboundRequests(self)
        self.handlers: dict[int, Callable[[RequestContext, Any, Any], Any]] = {
            ApiKey.VOTE: inbound.handle_vote,
            ApiKey.BEGIN_QUORUM_EPOCH: inbound.handle_begin_quorum_epoch,
            ApiKey.END_QUORUM_EPOCH: inbound.handle_end_quorum_epoch,
            ApiKey.FETCH: inbound.handle_fetch,
            ApiKey.FETCH_SNAPSHOT: inbound.handle_fetch_snapshot,
            ApiKey.DESCRIBE_QUORUM: inbound.handle_describe_quorum,
            **MembershipApis(self).handlers,
        }
        self._node: RaftNode | None = None
        self._log: MetadataLog | None = None
        self._qs = QuorumStateFile(quorum_state_path(metadata_log_dir), cluster_id=cluster_id,
                                   voters=tuple(sorted(voters)))
        self._listeners: list[_ListenerState] = []
        self._peers: dict[int, RaftPeer] = {}
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
        self._persister: ReadyPersister | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._leader = LeaderAndEpoch(None, 0)
        self._committed_end = 0  # the node has handed out every entry below this as committed
        self.failed: BaseException | None = None
        # Called with the error once the driver fails (the node stops: broker/node.py).
        self.on_failure: Callable[[BaseException], None] | None = None
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
        initial: frozenset[int] | VoterSet = frozenset(self.voters)
        if self._kraft_version >= 1 and self._bootstrap_voters is not None:
            initial = self._bootstrap_voters
        self._node = RaftNode(
            self.node_id, initial, random=self._random,
            election_timeout_ms=self.election_timeout_ms, fetch_timeout_ms=self.fetch_timeout_ms,
            fetch_backoff_ms=0, log=self._log.memory,
            election_state=ElectionState(epoch, voted, leader),
            kraft_version=self._kraft_version,
            directory_id=self.directory_id or NO_DIRECTORY,
            snapshot_voters=snapshot_voters, **kwargs)
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
        self._persister = ReadyPersister(self.node_id, self._qs, self._log, self._snapshots,
                                         self.voters_at, self._loop)
        for vid, (host, port) in self.voters.items():
            if vid != self.node_id:
                self._peers[vid] = RaftPeer(self, vid, host, port)
        self._directory.sync()  # the voters the log names (KIP-853)
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
        self._inbound.fail_all()
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
        if self._persister is not None:
            self._persister.shutdown()

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
    def kraft_version(self) -> int:
        """The quorum's kraft.version: 1 once the voter set is data in the log (KIP-853)."""
        node = self._node
        return node.kraft_version if node is not None else self._kraft_version

    # KIP-853 voter changes as the leader, each -> (error code, message): see
    # ``broker.controller.raft_voters.Membership`` (a new voter must fetch as an observer with
    # its directory id and catch up first, else REQUEST_TIMED_OUT).
    async def add_voter(self, voter_id: int, directory_id: uuid.UUID,
                        endpoints: Sequence[tuple[str, str, int]],
                        **kw: Any) -> tuple[int, str | None]:
        return await self.membership.add_voter(voter_id, directory_id, endpoints, **kw)

    async def remove_voter(self, voter_id: int, directory_id: uuid.UUID,
                           **kw: Any) -> tuple[int, str | None]:
        return await self.membership.remove_voter(voter_id, directory_id, **kw)

    async def update_voter(self, voter_id: int, directory_id: uuid.UUID,
                           endpoints: Sequence[tuple[str, str, int]], min_version: int,
                           max_version: int, **kw: Any) -> tuple[int, str | None]:
        return await self.membership.update_voter(voter_id, directory_id, endpoints,
                                                  min_version, max_version, **kw)

    def snapshot_control_records(self, end_offset: int) -> list[tuple[int, bytes]]:
        """KIP-853: the KRaftVersion and Voters records a snapshot ending there holds."""
        return self._directory.snapshot_control_records(end_offset)

    def voter_nodes(self) -> list[tuple[int, list[tuple[str, str, int]]]]:
        """DescribeQuorum v2 Nodes: the voters' endpoints."""
        return self._directory.nodes()

    def voters_at(self, offset: int) -> frozenset[int]:
        """The voter ids in force at ``offset`` of the log (what a LeaderChange entry there
        names): the same on every node holding that offset, whenever it is encoded."""
        node = self._node
        return frozenset(self.voters) if node is None else node.voters_at(offset)

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
        self._inbound.restep_parked()  # held fetches answer with the new records in the same Ready
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
            if self._inbound.parked:
                self._inbound.expire_parked(self._loop.time())
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
            self._inbound.fail_all()
            if self.on_failure is not None:
                self.on_failure(e)

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
            await self._persister.persist(ready)  # type: ignore[union-attr]
            if self._closed:
                return
            self._send_all(ready.messages_to_send)
            self._persisted += 1
            self._apply(ready)
            node.advance(ready, self._now())
            self._after_ready()

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
        self._directory.sync()
        self._inbound.ack_persisted(self._persisted, node)
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
            self._inbound.restep_parked()

    # ------------------------------------------------------------------ outbound

    def _send_all(self, messages: list[tuple[int, Message]]) -> None:
        for dest, msg in messages:
            if isinstance(msg, (VoteResponse, FetchResponse, FetchSnapshotResponse)):
                self._inbound.answer(dest, msg)
                continue
            peer = self._peers.get(dest)
            if peer is None:
                logger.debug("node %d: no address for %d, dropping %r", self.node_id, dest, msg)
                continue
            peer.send(msg)

    def _send_on(self, peer: RaftPeer, conn: KafkaConnection, msg: Message) -> None:
        task = self._spawn(self._request(peer, conn, msg))
        if isinstance(msg, EndQuorumEpoch):
            self._resign_sends.add(task)
            task.add_done_callback(self._resign_sends.discard)

    async def _request(self, peer: RaftPeer, conn: KafkaConnection, msg: Message) -> None:
        reply, delay_ms = await exchange(
            conn, msg, node_id=self.node_id, dest=peer.node_id, cluster_id=self.cluster_id,
            request_timeout_ms=self.request_timeout_ms, wire_max_wait_ms=self._wire_max_wait_ms)
        if reply is None or self._closed:
            return
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        self._step(reply)


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
