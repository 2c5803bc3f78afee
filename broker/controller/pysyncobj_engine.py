"""The metadata quorum on pysyncobj (``controller.quorum.engine=pysyncobj``, controllers only).

The controllers run a pysyncobj ``SyncObj`` (its own Raft, its own TCP port: the controller
listener's port plus ``controller.quorum.engine.pysyncobj.port.offset``, bound only to this
controller's host in the voter list). Its one replicated method carries our commands
(``pysyncobj_log``: a leader's claim of an epoch, a batch of encoded KIP-631 metadata records);
each controller turns the committed commands, in pysyncobj's order, into the same KRaft
metadata log (``AppliedLog``), writes it to its ``__cluster_metadata-0`` (the same files as the
kraft engine's) and hands it to its listeners (the controller and the metadata loader) as
``CommittedBatch``es. Every derived entry is committed.

Leadership: when pysyncobj makes this controller leader of a term, it submits a claim; once
the claim is applied this node leads the next epoch (``leader_and_epoch``), and its controller
activates after that LeaderChange entry, as with kraft. ``append`` submits a batch for the
epoch at the offset it predicts; the batch is applied only if nothing came between
(``AppliedLog``), otherwise the epoch is fenced (reported leaderless, so the controller
resigns) and the node claims a new one.

Brokers stay KRaft observers: the controllers serve the derived log read-only through Fetch,
FetchSnapshot and DescribeQuorum (``pysyncobj_serve``), the active one with records. Snapshots
(KIP-630) are the metadata loader's, as with kraft; ``snapshot_taken`` drops the derived log
below one.

Safety of the transport: pysyncobj peers unpickle what they receive, so its port is bound only to
this controller's address in the voter list (never to all interfaces) and a password is always set (pysyncobj then encrypts and
authenticates every message with it, through the ``cryptography`` package): SHA-256 of the
cluster id and ``controller.quorum.engine.pysyncobj.password``. Anyone who knows both (the
cluster id is not a secret) can run code on a controller: set the secret.

Gaps against kraft (also in docs/architecture.md): pysyncobj's journal is written through mmap
and not fsynced before an entry is acknowledged (after a power loss a journal it cannot open is
moved aside at start and the node rejoins with an empty one, ``pysyncobj_journal``: unsafe for
Raft, measured by ``make bench-engines``), and it is never compacted (it grows with the
metadata; a restarted controller replays it whole, skipping what its derived log already
holds); no pre-vote; no KIP-853 membership; DescribeQuorum's follower timestamps are
pysyncobj's connection state, not fetch times.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller.metadata_log import MetadataLog
from broker.controller.pysyncobj_journal import set_aside_unreadable
from broker.controller.pysyncobj_log import (
    AppliedLog,
    Batch,
    Claim,
    decode_command,
    encode_command,
)
from broker.controller.pysyncobj_serve import LogServer
from broker.controller.raft_driver import CommittedBatch, LeaderAndEpoch
from kraft.log import LogEntry
from kraft.messages import QuorumDescription, ReplicaDescription, SnapshotId
from kraft.raft import NotLeader
from storage.errors import StorageError
from storage.fileutil import make_dirs

__all__ = ["PysyncobjEngine", "pysyncobj_password"]

logger = logging.getLogger(__name__)

POLL_S = 0.02  # how often the loop looks at pysyncobj's leadership
MAX_INDEX_MAP = 10000  # (pysyncobj index, derived log end) pairs kept for DescribeQuorum
HAND_OVER_S = 1.0  # how long a stopping leader waits for a follower to take over
NEVER = 10 ** 12  # pysyncobj's log compaction thresholds: never (see the module doc)


def pysyncobj_password(cluster_id: str, secret: str) -> str:
    return hashlib.sha256(f"pykraft-pysyncobj\0{cluster_id}\0{secret}".encode()).hexdigest()


def _group(entries: list[LogEntry], now_ms: int) -> list[CommittedBatch]:
    out: list[CommittedBatch] = []
    start = 0
    while start < len(entries):
        end = start
        while end < len(entries) and entries[end].epoch == entries[start].epoch:
            end += 1
        run = entries[start:end]
        out.append(CommittedBatch(run[0].offset, run[-1].offset, run[0].epoch,
                                  [e.data for e in run if not e.control], now_ms))
        start = end
    return out


class PysyncobjEngine:
    """A ``QuorumEngine`` (broker/controller/engine.py) on pysyncobj; see the module doc."""

    def __init__(self, node_id: int, cluster_id: str, voters: dict[int, tuple[str, int]],
                 metadata_log_dir: str, *, snapshots: Any, port_offset: int, password: str,
                 election_timeout_ms: int = 1000, fetch_timeout_ms: int = 2000,
                 fetch_max_wait_ms: int = 500, clock: Clock = SYSTEM_CLOCK) -> None:
        if node_id not in voters:
            raise ValueError("the pysyncobj engine runs on controllers (voters) only")
        if not password:
            raise ValueError("the pysyncobj engine needs a password")
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.voters = dict(voters)
        self.metadata_log_dir = metadata_log_dir
        self.clock = clock
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.security: Any = None  # unused: pysyncobj has its own transport
        self.failed: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        self._snapshots = snapshots
        self._addresses = {v: f"{h}:{p + port_offset}" for v, (h, p) in voters.items()}
        self._password = password
        self._election_timeout_ms = election_timeout_ms
        self._fetch_timeout_ms = fetch_timeout_ms
        self._applied = AppliedLog(voters)
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._failed_writes: collections.deque[int] = collections.deque()
        self._index_map: list[tuple[int, int]] = []  # (pysyncobj index, derived end after it)
        self._listeners: list[Any] = []
        self._log: MetadataLog | None = None
        self._syncobj: Any = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._poller: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._flush_again = False
        self._replay_end = 0  # the derived log's end at start: replayed commands below it
        self._replayed = False
        self._claim_term: int | None = None  # the term of our claim in flight
        self._fenced_epoch: int | None = None
        self._next_write = 0
        self._leader = LeaderAndEpoch(None, 0)
        self._started = False
        self._closed = False
        self.storage_set_aside: list[Any] = []  # pysyncobj files moved aside at start
        self.server = LogServer(self)
        self.handlers = self.server.handlers

    @classmethod
    def from_config(cls, config: Any, cluster_id: str, voters: dict[int, tuple[str, int]],
                    snapshots: Any) -> PysyncobjEngine:
        secret = config.get("controller.quorum.engine.pysyncobj.password")
        secret = getattr(secret, "value", secret) or ""
        return cls(config.node_id, cluster_id, voters, config.metadata_log_dir,
                   snapshots=snapshots,
                   port_offset=config.get("controller.quorum.engine.pysyncobj.port.offset"),
                   password=pysyncobj_password(cluster_id, secret),
                   election_timeout_ms=config.get("controller.quorum.election.timeout.ms"),
                   fetch_timeout_ms=config.get("controller.quorum.fetch.timeout.ms"))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        make_dirs(self.metadata_log_dir)
        latest = getattr(self._snapshots, "latest", None)
        snapshot_id = latest() if callable(latest) else None
        self._log = log = MetadataLog.open(self.metadata_log_dir, snapshot_id=snapshot_id)
        mem = log.memory
        self._replay_end = mem.end_offset
        self._replayed = self._replay_end == 0
        if snapshot_id is not None and mem.start_offset == snapshot_id.end_offset:
            size = self._snapshots.size(snapshot_id)
            data = self._snapshots.read(snapshot_id, 0, size)
            for listener in self._listeners:
                fn = getattr(listener, "handle_load_snapshot", None)
                if fn is not None:
                    self._call(fn, snapshot_id, data)
        # Everything in the derived log is committed: the listeners have it at once.
        self._deliver(mem.entries_from(mem.start_offset, mem.end_offset - mem.start_offset))
        self._leader = LeaderAndEpoch(None, mem.last_epoch)
        # A journal pysyncobj cannot open (cut by a power loss: it is never fsynced) is moved
        # aside and this node rejoins with an empty one; unsafe for Raft, see the module.
        self.storage_set_aside = set_aside_unreadable(self._journal_path(), self.node_id)
        self._syncobj = self._make_syncobj()
        self._poller = self._loop.create_task(self._poll_loop())
        logger.info("node %d: pysyncobj engine started on %s (peers %s), metadata log end %d",
                    self.node_id, self._addresses[self.node_id],
                    ", ".join(a for v, a in sorted(self._addresses.items())
                              if v != self.node_id), mem.end_offset)

    def _make_syncobj(self) -> Any:
        from pysyncobj import SyncObj, SyncObjConf, replicated

        engine = self
        loop = self._loop
        min_timeout = max(0.2, self._election_timeout_ms / 1000)
        period = min(0.1, min_timeout / 4)
        conf = SyncObjConf(
            password=self._password,
            bindAddress=self._addresses[self.node_id],
            journalFile=str(self._journal_path()),
            raftMinTimeout=min_timeout, raftMaxTimeout=2 * min_timeout,
            appendEntriesPeriod=period, autoTickPeriod=0.01,
            connectionTimeout=max(3.5, 2 * min_timeout), connectionRetryTime=0.5,
            leaderFallbackTimeout=max(2 * period, self._fetch_timeout_ms / 1000),
            logCompactionMinEntries=NEVER, logCompactionMinTime=NEVER,
            dynamicMembershipChange=False, commandsWaitLeader=False,
            # Send each command at once (not at the next appendEntriesPeriod): commit latency.
            appendEntriesUseBatch=False)

        class _Relay(SyncObj):  # type: ignore[misc]
            @replicated
            def command(self, data: bytes) -> None:
                # pysyncobj's thread, in commit order; the entry's index is the next applied.
                engine._pending.append((self.raftLastApplied + 1, data))
                loop.call_soon_threadsafe(engine._drain)

        others = [a for v, a in sorted(self._addresses.items()) if v != self.node_id]
        return _Relay(self._addresses[self.node_id], others, conf)

    def _journal_path(self) -> Any:
        from pathlib import Path

        return Path(self.metadata_log_dir) / "pysyncobj.journal"

    async def shutdown(self, *, graceful: bool = True) -> None:
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.server.close()
        so = self._syncobj
        if so is not None and graceful and self.failed is None and so._isLeader():
            await self._hand_over(so)
        self._syncobj = None
        if so is not None:
            await self._loop.run_in_executor(None, so.destroy_synchronous)
        if self._flushing is not None:
            with contextlib.suppress(BaseException):
                await self._flushing
        if self._log is not None:
            try:
                if graceful and self.failed is None:
                    self._log.flush()
                self._log.close()
            except Exception:
                logger.exception("node %d: closing the metadata log", self.node_id)

    async def _hand_over(self, so: Any) -> None:
        """A stopping leader asks its most caught-up follower to run an election now
        (pysyncobj's TimeoutNow, sent from pysyncobj's own thread), and waits a little for it:
        the quorum does not wait an election timeout for a leader that said it is going."""
        asked = False

        def transfer() -> None:  # pysyncobj's thread, at its next tick
            nonlocal asked
            if not asked:
                asked = True
                so.transferLeadership()

        so.addOnTickCallback(transfer)
        try:
            deadline = self._loop.time() + HAND_OVER_S
            while so._isLeader() and self._loop.time() < deadline:
                await asyncio.sleep(0.01)
        finally:
            so.removeOnTickCallback(transfer)
        logger.info("node %d: %s", self.node_id, "handed the pysyncobj leadership over"
                    if not so._isLeader() else "still the pysyncobj leader when stopping")

    def register(self, listener: Any) -> None:
        self._listeners.append(listener)
        if self._started and self._log is not None:
            mem = self._log.memory
            self._deliver(mem.entries_from(mem.start_offset, mem.end_offset - mem.start_offset),
                          [listener])

    # ------------------------------------------------------------------ the interface

    @property
    def leader_and_epoch(self) -> LeaderAndEpoch:
        return self._leader

    @property
    def high_watermark(self) -> int:
        return self._log.memory.end_offset if self._log is not None else 0

    @property
    def epoch(self) -> int:
        return self._leader.epoch

    @property
    def log_end_offset(self) -> int:
        end = self.high_watermark
        return max(end, self._next_write) if self.is_leader() else end

    @property
    def epoch_start_offset(self) -> int | None:
        return self._applied.epoch_start if self.is_leader() else None

    def is_leader(self) -> bool:
        return not self._closed and self._leader.leader_id == self.node_id

    def append(self, records: list[bytes], *, epoch: int) -> int:
        if not self.is_leader() or self._leader.epoch != epoch:
            raise NotLeader(self._leader.epoch, self._leader.leader_id)
        if not records:
            raise ValueError("append of no records")
        base = self._next_write
        self._next_write += len(records)
        data = encode_command(Batch(epoch, base, tuple(records)))
        self._submit(data, epoch)
        return self._next_write - 1

    def describe_quorum(self) -> QuorumDescription:
        if not self.is_leader():
            raise NotLeader(self._leader.epoch, self._leader.leader_id)
        now = self.clock.wall_ms()
        hw = self.high_watermark
        status: dict[str, Any] = {}
        with contextlib.suppress(RuntimeError):  # its thread may be changing the dicts
            status = self._syncobj.getStatus()
        voters = []
        for vid in sorted(self.voters):
            if vid == self.node_id:
                voters.append(ReplicaDescription(vid, hw, now, now))
                continue
            addr = self._addresses[vid]
            match = status.get(f"match_idx_server_{addr}")
            end = self._offset_at_index(match) if match is not None else -1
            connected = status.get(f"partner_node_status_server_{addr}") == 2
            voters.append(ReplicaDescription(vid, end, now if connected else -1,
                                             now if connected and end >= hw else -1))
        return QuorumDescription(self.node_id, self._leader.epoch, hw, tuple(voters),
                                 self.server.observers())

    def snapshot_taken(self, snapshot_id: SnapshotId) -> None:
        assert self._log is not None
        self._log.memory.truncate_prefix(snapshot_id)
        try:
            self._log.delete_below(snapshot_id.end_offset)
        except Exception:
            logger.warning("node %d: cannot delete the metadata log below %s", self.node_id,
                           snapshot_id, exc_info=True)

    # ------------------------------------------------------------------ pysyncobj side

    def _submit(self, data: bytes, epoch: int | None) -> None:
        loop = self._loop

        def done(_result: Any, error: int) -> None:  # pysyncobj's thread
            if error != 0 and epoch is not None:
                self._failed_writes.append(epoch)
                loop.call_soon_threadsafe(self._drain)

        so = self._syncobj
        if so is None:
            raise NotLeader(self._leader.epoch, None)
        so.command(data, callback=done)

    def _offset_at_index(self, index: int) -> int:
        i = bisect.bisect_right(self._index_map, (index, 1 << 62)) - 1
        return self._index_map[i][1] if i >= 0 else -1

    async def _poll_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(POLL_S)
            try:
                self._maybe_claim()
                self._update_leader()
            except Exception:
                logger.exception("node %d: pysyncobj engine poll", self.node_id)

    def _maybe_claim(self) -> None:
        so = self._syncobj
        if so is None or not self._replayed or not so._isLeader():
            return
        a = self._applied
        term = so.raftCurrentTerm
        if a.leader == self.node_id and a.claim_term == term and self._fenced_epoch != a.epoch:
            return  # we lead the current epoch
        if self._claim_term == term:
            return  # in flight
        self._claim_term = term
        logger.info("node %d: pysyncobj leader in term %d, claiming the metadata log",
                    self.node_id, term)

        def done(_result: Any, error: int) -> None:
            if error != 0:
                self._loop.call_soon_threadsafe(self._claim_failed, term)

        so.command(encode_command(Claim(self.node_id, term)), callback=done)

    def _claim_failed(self, term: int) -> None:
        if self._claim_term == term:
            self._claim_term = None

    # ------------------------------------------------------------------ applying

    def _drain(self) -> None:
        if self._closed or self.failed is not None:
            return
        a = self._applied
        log = self._log
        assert log is not None
        mem = log.memory
        new: list[LogEntry] = []
        while self._failed_writes:
            epoch = self._failed_writes.popleft()
            if epoch == a.epoch and a.leader == self.node_id:
                self._fence(epoch, "a write was refused")
        while self._pending:
            index, data = self._pending.popleft()
            try:
                cmd = decode_command(data)
            except ValueError as e:
                logger.error("node %d: pysyncobj entry %d is not ours: %s", self.node_id,
                             index, e)
                continue
            res = a.apply(cmd)
            if isinstance(cmd, Claim) and cmd.node_id == self.node_id:
                self._claim_term = None
                if res.entries:
                    self._next_write = a.next_offset
            if res.dropped_epoch is not None and res.dropped_epoch == a.epoch \
                    and a.leader == self.node_id:
                self._fence(a.epoch, "one of its batches was dropped")
            for e in res.entries:
                if e.offset < mem.end_offset:
                    if e.offset >= mem.start_offset and mem.epoch_at(e.offset) != e.epoch:
                        logger.error("node %d: the metadata log has epoch %d at offset %d, "
                                     "the pysyncobj log derives %d", self.node_id,
                                     mem.epoch_at(e.offset), e.offset, e.epoch)
                    continue
                new.append(e)
            self._index_map.append((index, a.next_offset))
        if len(self._index_map) > MAX_INDEX_MAP:
            del self._index_map[:len(self._index_map) - MAX_INDEX_MAP]
        if new:
            try:
                log.write(None, new)
                mem.append(new)
            except (OSError, StorageError) as e:  # this node's quorum role stops
                self._fail(e)
                return
            self._schedule_flush()
            self._deliver(new)
        if not self._replayed and a.next_offset >= self._replay_end:
            self._replayed = True
            logger.info("node %d: replayed the pysyncobj log up to offset %d", self.node_id,
                        a.next_offset)
        self._update_leader()
        self.server.log_changed()

    def _fence(self, epoch: int, why: str) -> None:
        if self._fenced_epoch != epoch:
            logger.warning("node %d: epoch %d fenced (%s); claiming a new one", self.node_id,
                           epoch, why)
            self._fenced_epoch = epoch

    def _update_leader(self) -> None:
        a = self._applied
        if not self._replayed:
            le = LeaderAndEpoch(None, self._leader.epoch)
        else:
            leader = a.leader
            so = self._syncobj
            # We lead only in the pysyncobj term we claimed the epoch in: a leader elected
            # again (after a restart, a lost election) claims a new epoch first.
            if leader == self.node_id and (so is None or not so._isLeader()
                                           or so.raftCurrentTerm != a.claim_term
                                           or self._fenced_epoch == a.epoch):
                leader = None
            le = LeaderAndEpoch(leader, a.epoch)
        if le == self._leader:
            return
        if le.leader_id == self.node_id and le.epoch != self._leader.epoch:
            self._next_write = a.next_offset  # our epoch: nothing after our claim yet
        self._leader = le
        logger.info("node %d: leader is now %s in epoch %d", self.node_id, le.leader_id,
                    le.epoch)
        for listener in self._listeners:
            self._call(listener.handle_leader_change, le)
        self.server.log_changed()

    def _deliver(self, entries: list[LogEntry], listeners: list[Any] | None = None) -> None:
        if not entries:
            return
        batches = _group(entries, self.clock.wall_ms())
        for listener in self._listeners if listeners is None else listeners:
            for b in batches:
                self._call(listener.handle_commit, b)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("node %d: quorum listener %r failed", self.node_id, fn)

    def _schedule_flush(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            self._flush_again = True
            return
        self._flushing = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while True:
            self._flush_again = False
            log = self._log
            if log is None or self._closed:
                return
            job = log.begin_flush()
            ok = False
            try:
                await self._loop.run_in_executor(None, job.run)
                ok = True
            except (OSError, StorageError) as e:  # this node's quorum role stops
                self._fail(e)
                return
            finally:
                job.finish(ok)
            if not self._flush_again:
                return

    def _fail(self, e: BaseException) -> None:
        if self.failed is not None:
            return
        self.failed = e
        logger.critical("node %d: the pysyncobj engine failed; the metadata log is offline",
                        self.node_id, exc_info=e)
        self._closed = True
        if self.on_failure is not None:
            self.on_failure(e)
