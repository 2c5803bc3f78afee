"""A seeded, single-threaded KRaft cluster simulation (TigerBeetle's VOPR / Kafka's
RaftEventSimulationTest in miniature) used by ``test_raft_sim.py`` and the unit tests.

Everything random comes from one seed: message delays, drops, duplicates (reordering follows from
random delays), partitions and heals, isolated nodes rejoining one by one, pauses (SIGSTOP: timers,
messages and fsync completions wait, then happen in a burst), crashes (also in the middle of
persisting a Ready, so unsynced writes are lost), restarts rebuilt from the fake disk, and client
appends at the leader. Half the seeds replace the random faults by the leader-churn program
(``Sim._churn``), whose faults are timed to build Raft's Figure-8 schedules. Invariants are
checked every time a node's Ready is processed, i.e. after every step or tick.

The state machine is the list of applied entries. Now and then a node snapshots it (KIP-630:
the bytes are a deterministic encoding of every applied entry), writes the snapshot to its disk
and store and calls ``snapshot_taken``, so the log prefix goes away and lagging, restarted and
observer nodes must catch up through FetchSnapshot. A snapshot fetched from the leader is durable
only once the sim wrote it at the Ready step (and a crash may land between writing it and
resetting the log); a restart loads the latest durable snapshot (``MemoryRaftLog.recover``).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import (
    FetchResponse,
    FetchSnapshotResponse,
    Message,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from kraft.quorum_state import ElectionState, Leader
from kraft.raft import NotLeader, RaftNode, Ready
from kraft.snapshot_store import MemorySnapshotStore


class InvariantViolation(AssertionError):
    pass


def encode_state(applied: list[LogEntry]) -> bytes:
    """The snapshot of the sim's state machine: every applied entry, in order."""
    return b"".join(f"{e.epoch} {int(e.control)} {e.data.hex()} {e.control_type}\n".encode()
                    for e in applied)


def decode_state(data: bytes) -> list[LogEntry]:
    out = []
    for i, line in enumerate(data.decode().splitlines()):
        epoch, control, hexdata, control_type = line.split(" ")
        out.append(LogEntry(i, int(epoch), bytes.fromhex(hexdata), control == "1",
                            int(control_type)))
    return out


@dataclass
class Disk:
    """What survives a crash: only what a driver wrote and fsynced."""

    election: ElectionState = field(default_factory=lambda: ElectionState(0))
    log_start: int = 0  # offset of entries[0]
    entries: list[LogEntry] = field(default_factory=list)
    snapshots: dict[SnapshotId, bytes] = field(default_factory=dict)

    def add_snapshot(self, sid: SnapshotId, data: bytes) -> None:
        """Write (temp, fsync, rename) and keep only the newest snapshot."""
        self.snapshots[sid] = data
        latest = max(self.snapshots)
        self.snapshots = {latest: self.snapshots[latest]}


@dataclass
class SimNode:
    node_id: int
    disk: Disk = field(default_factory=Disk)
    node: RaftNode | None = None
    incarnation: int = 0
    last_hw: int = 0
    crashed: bool = False
    applied: list[LogEntry] = field(default_factory=list)
    pending: Ready | None = None  # written to the page cache, fsync in progress
    paused: bool = False
    resumed_at: int = 0
    cut_since: int | None = None  # leader only: since when no majority can reach it
    held: list[tuple[str, Any]] = field(default_factory=list)  # events waiting out a pause
    store: MemorySnapshotStore = field(default_factory=MemorySnapshotStore)


@dataclass
class Churn:
    """The leader-churn program's state (``Sim._churn``)."""

    phase: str = "isolate"
    round: int = 0
    old: int | None = None  # the leader cut off in step 1
    new: int | None = None  # the leader struck in step 2
    home: int | None = None  # the group the node from step 2 returns to (None: the largest)
    # (node, epoch) -> its high watermark when first seen leading in step 4
    floors: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass
class SimConfig:
    voters: int = 3
    observers: int = 1
    election_timeout_ms: int = 150
    fetch_timeout_ms: int = 300
    fetch_backoff_ms: int = 25
    tick_ms: int = 10
    min_delay_ms: int = 1
    max_delay_ms: int = 12
    drop_prob: float = 0.05
    dup_prob: float = 0.03
    chaos_ms: int = 4000
    fault_interval_ms: int = 150
    min_fsync_ms: int = 0
    max_fsync_ms: int = 15
    client_interval_ms: int = 20
    liveness_bound_ms: int = 3000


class Sim:
    def __init__(self, seed: int, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.cfg = cfg = config or SimConfig()
        self.rng = random.Random(seed)
        self.now = 0
        self.steps = 0
        self.voters = frozenset(range(1, cfg.voters + 1))
        ids = list(range(1, cfg.voters + cfg.observers + 1))
        self.nodes: dict[int, SimNode] = {i: SimNode(i) for i in ids}
        # Small fetches make partially replicated epochs (Raft's Figure 8) likely.
        self.max_fetch_entries = self.rng.choice([1, 2, 3, 64])
        # Snapshot every so many applied entries (0: never), served in small chunks.
        self.snapshot_every = self.rng.choice([0, 3, 6, 12, 25])
        self.snapshot_chunk_bytes = self.rng.choice([40, 200, 1 << 20])
        self.stats: Counter[str] = Counter()
        self.events: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self.group: dict[int, int] = {i: 0 for i in ids}  # partition id per node
        self.faults = False
        self.drop_prob = 0.0
        self.dup_prob = 0.0
        # Half the seeds run the leader-churn program (``_churn``) instead of random faults.
        self.churn: Churn | None = Churn() if self.rng.random() < 0.5 else None
        # Invariant state.
        self.leaders: dict[int, int] = {}  # epoch -> leader id
        self.leading: set[int] = set()  # nodes seen leading, for the check-quorum rule
        self.entries: dict[tuple[int, int], tuple[bytes, int]] = {}  # (off, ep) -> (data, prev ep)
        self.committed: list[LogEntry] = []
        self.commit_tags: list[int] = []
        self.checked_leaders: set[tuple[int, int]] = set()
        self.client_seq = 0
        self.history: list[str] = []
        for i in ids:
            self._boot(self.nodes[i])
            self._schedule(self.rng.randrange(cfg.tick_ms), "tick", i)

    # ------------------------------------------------------------------ plumbing

    def fail(self, what: str) -> None:
        tail = "\n".join(self.history[-25:])
        raise InvariantViolation(
            f"seed={self.seed} step={self.steps} t={self.now}ms: {what}\nrecent events:\n{tail}"
        )

    def _schedule(self, delay: int, kind: str, arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self.events, (self.now + delay, self._seq, kind, arg))

    def _boot(self, sn: SimNode) -> None:
        sn.incarnation += 1
        sn.crashed = False
        disk = sn.disk
        sid = max(disk.snapshots) if disk.snapshots else None
        log = MemoryRaftLog.recover(sid, disk.log_start, list(disk.entries))
        if log.end_offset != disk.log_start + len(disk.entries):
            # The durable log does not continue the snapshot (a crash between installing a
            # snapshot and resetting the log): restart it at the snapshot, as the driver does
            # (broker.controller.metadata_log.MetadataLog.open).
            assert log.end_offset == log.start_offset, (log.start_offset, log.end_offset)
            disk.log_start = log.start_offset
            disk.entries = []
        sn.store = MemorySnapshotStore(disk.snapshots)
        # The application loads its latest snapshot at startup.
        sn.applied = decode_state(disk.snapshots[sid]) if sid is not None else []
        if sid is not None:
            self._check_snapshot_state(sn, sid, sn.applied, "loaded")
        sn.node = RaftNode(
            sn.node_id,
            self._initial_voters(),
            **self._node_kwargs(sn),
            random=random.Random(self.seed * 7919 + sn.node_id * 131 + sn.incarnation),
            election_timeout_ms=self.cfg.election_timeout_ms,
            fetch_timeout_ms=self.cfg.fetch_timeout_ms,
            fetch_backoff_ms=self.cfg.fetch_backoff_ms,
            max_fetch_entries=self.max_fetch_entries,
            log=log,
            election_state=disk.election,
            snapshots=sn.store,
            max_snapshot_chunk_bytes=self.snapshot_chunk_bytes,
        )
        sn.last_hw = sn.node.high_watermark

    def _dispatch_extra(self, kind: str, arg: Any) -> None:
        """An event kind a subclass added (the membership sim's changes)."""

    def _initial_voters(self) -> Any:
        return self.voters

    def _node_kwargs(self, sn: SimNode) -> dict[str, Any]:
        """Extra RaftNode arguments (the membership sim's voter set and directory ids)."""
        return {}

    def crash(self, nid: int) -> None:
        sn = self.nodes[nid]
        if sn.crashed:
            return
        self.history.append(f"t={self.now} crash {nid}")
        sn.crashed = True
        sn.node = None
        if sn.paused:
            sn.paused = False
            # What waited dies with the process, but the tick timer belongs to the sim.
            for kind, arg in sn.held:
                if kind == "tick":
                    self._schedule(0, kind, arg)
            sn.held = []
        if sn.pending is not None:
            self._persist_partially(sn, sn.pending)
            sn.pending = None

    def restart(self, nid: int) -> None:
        sn = self.nodes[nid]
        if not sn.crashed:
            return
        self.history.append(f"t={self.now} restart {nid}")
        self._boot(sn)

    def pause(self, nid: int) -> None:
        """SIGSTOP: the node's timers, arriving messages and fsync completions wait."""
        sn = self.nodes[nid]
        if sn.crashed or sn.paused:
            return
        self.history.append(f"t={self.now} pause {nid}")
        self.stats["pause"] += 1
        sn.paused = True

    def resume(self, nid: int) -> None:
        """SIGCONT: what waited happens now, in the order it arrived."""
        sn = self.nodes[nid]
        if not sn.paused:
            return
        self.history.append(f"t={self.now} resume {nid}")
        sn.paused = False
        sn.resumed_at = self.now
        held, sn.held = sn.held, []
        for kind, arg in held:
            self._schedule(0, kind, arg)

    def connected(self, a: int, b: int) -> bool:
        return self.group[a] == self.group[b]

    def partition(self, groups: list[set[int]]) -> None:
        for g, members in enumerate(groups):
            for m in members:
                self.group[m] = g + 1
        self.history.append(f"t={self.now} partition {groups}")

    def heal(self) -> None:
        for i in self.group:
            self.group[i] = 0
        self.history.append(f"t={self.now} heal")

    # ------------------------------------------------------------------ driving a node

    def _drive(self, sn: SimNode) -> None:
        """Poll the node; writes go to the page cache and become durable after a simulated
        fsync delay, and only then are the Ready's messages sent (a crash in between loses
        an arbitrary suffix of the unsynced writes and all of the messages)."""
        node = sn.node
        if node is None or sn.pending is not None or sn.paused:
            return
        ready = node.poll()
        self._check_ready(sn, node, ready)
        if (
            not (ready.election_state_to_persist or ready.entries_to_append)
            and ready.truncate_to is None
            and ready.snapshot_to_install is None
            and ready.log_start_offset is None
        ):
            self._complete(sn, node, ready)
            return
        sn.pending = ready
        delay = self.rng.randint(self.cfg.min_fsync_ms, self.cfg.max_fsync_ms)
        self._schedule(delay, "synced", (sn.node_id, sn.incarnation))

    def _synced(self, nid: int, incarnation: int) -> None:
        sn = self.nodes[nid]
        if sn.node is None or sn.incarnation != incarnation or sn.pending is None:
            return
        ready, sn.pending = sn.pending, None
        self._persist(sn, ready)
        self._complete(sn, sn.node, ready)

    def _complete(self, sn: SimNode, node: RaftNode, ready: Ready) -> None:
        if self.faults and self.churn is not None:
            self._churn("durable", sn, node, ready)
        for dest, msg in ready.messages_to_send:
            self._check_message(sn, dest, msg)
            self._send(sn.node_id, dest, msg)
        if ready.snapshot_to_install is not None:
            # The application loads the snapshot before applying what follows it.
            _, data = ready.snapshot_to_install
            sn.applied = decode_state(data)
            self.stats["install_observer" if sn.node_id not in self.voters else "install"] += 1
            if sn.incarnation > 1:
                self.stats["install_after_restart"] += 1
        for e in ready.committed:
            if e.offset != len(sn.applied):
                self.fail(f"node {sn.node_id} applied {e.offset} after {len(sn.applied)}")
            c = self.committed[e.offset]
            if (c.epoch, c.data) != (e.epoch, e.data):
                self.fail(f"node {sn.node_id} applied {e} but {c} was committed")
            sn.applied.append(e)
        node.advance(ready, self.now)
        took = self._maybe_take_snapshot(sn, node)
        if took or not ready.is_empty():
            self._drive(sn)  # advance() may have moved the leader's high watermark

    def _maybe_take_snapshot(self, sn: SimNode, node: RaftNode) -> bool:
        """The application snapshots its applied state now and then (written and fsynced
        before telling the node, which then drops the log prefix)."""
        end = len(sn.applied)
        if not self.snapshot_every or end - node.log.start_offset < self.snapshot_every:
            return False
        if self.rng.random() < 0.5:
            return False
        sid = SnapshotId(end, sn.applied[-1].epoch)
        data = encode_state(sn.applied)
        sn.disk.add_snapshot(sid, data)
        sn.store.add(sid, data)
        for old in sn.store.ids():
            if old < sid:
                sn.store.delete(old)
        node.snapshot_taken(sid, self.now)
        self.stats["snapshot_taken"] += 1
        return True

    def _write_ops(self, sn: SimNode, ready: Ready) -> list[Callable[[], None]]:
        """The writes a Ready asks for, in the order a driver does them."""
        disk = sn.disk
        ops: list[Callable[[], None]] = []
        election = ready.election_state_to_persist
        if election is not None:

            def write_election() -> None:
                disk.election = election

            ops.append(write_election)
        install = ready.snapshot_to_install
        if install is not None:
            sid, data = install

            def write_snapshot() -> None:
                disk.add_snapshot(sid, data)
                sn.store.add(sid, data)
                for old in sn.store.ids():
                    if old < sid:
                        sn.store.delete(old)

            def reset_log() -> None:
                disk.log_start = sid.end_offset
                disk.entries = []

            ops += [write_snapshot, reset_log]
        truncate_to = ready.truncate_to
        if truncate_to is not None:

            def truncate() -> None:
                del disk.entries[truncate_to - disk.log_start :]

            ops.append(truncate)
        for e in ready.entries_to_append:

            def append(e: LogEntry = e) -> None:
                assert e.offset == disk.log_start + len(disk.entries), (e, disk.log_start)
                disk.entries.append(e)

            ops.append(append)
        start = ready.log_start_offset
        if start is not None:

            def delete_prefix() -> None:
                if not disk.snapshots or max(disk.snapshots).end_offset < start:
                    self.fail(f"node {sn.node_id} deleted its log below {start} without snapshot")
                if start > disk.log_start:
                    del disk.entries[: start - disk.log_start]
                    disk.log_start = start

            ops.append(delete_prefix)
        return ops

    def _persist(self, sn: SimNode, ready: Ready) -> None:
        for op in self._write_ops(sn, ready):
            op()

    def _persist_partially(self, sn: SimNode, ready: Ready) -> None:
        """A crash while writing: some prefix of the writes reached the platter."""
        ops = self._write_ops(sn, ready)
        for op in ops[: self.rng.randrange(len(ops) + 1)]:
            op()

    def _send(self, src: int, dest: int, msg: Message) -> None:
        if isinstance(msg, FetchResponse) and msg.snapshot_id is not None:
            self.stats["fetch_snapshot_needed"] += 1
        elif isinstance(msg, FetchSnapshotResponse):
            self.stats[f"fetch_snapshot_{msg.error.name.lower()}"] += 1
        if not self.connected(src, dest) or self.rng.random() < self.drop_prob:
            return
        copies = 2 if self.rng.random() < self.dup_prob else 1
        for _ in range(copies):
            delay = self.rng.randint(self.cfg.min_delay_ms, self.cfg.max_delay_ms)
            self._schedule(delay, "deliver", (src, dest, msg))

    # ------------------------------------------------------------------ invariants

    def _check_message(self, sn: SimNode, dest: int, msg: Message) -> None:
        """Term and vote are durable before any message that depends on them is sent."""
        durable = sn.disk.election
        if isinstance(msg, VoteRequest) and msg.pre_vote:
            # The epoch it asks about is the next after one on disk (a burst of messages, after
            # a pause, may have moved the node on since: a stale PreVote is harmless).
            if msg.candidate_epoch > durable.epoch + 1:
                self.fail(f"node {sn.node_id} PreVote {msg} at durable {durable}")
            return
        epoch = msg.candidate_epoch if isinstance(msg, VoteRequest) else msg.epoch
        if epoch > durable.epoch:
            self.fail(f"node {sn.node_id} sent {msg} before persisting its epoch ({durable})")
        # A granted vote is on disk, or the disk holds a later epoch (the node can then never
        # vote in that epoch again).
        if (
            isinstance(msg, VoteResponse)
            and msg.granted
            and not msg.pre_vote
            and (durable.epoch < msg.candidate_epoch
                 or (durable.epoch == msg.candidate_epoch and durable.voted_for != dest))
        ):
            self.fail(f"node {sn.node_id} granted a vote to {dest} not durable ({durable})")

    def _note_reachability(self) -> None:
        """For the check-quorum rule: since when each leader has been cut off from a majority
        (crashed, paused or partitioned voters cannot fetch from it)."""
        for nid in list(self.leading):
            sn = self.nodes[nid]
            node = sn.node
            if node is None or not node.is_leader():
                sn.cut_since = None
                self.leading.discard(nid)
                continue
            voters = self._voters_of(node)
            reachable = int(nid in voters)
            for v in voters:
                if v != nid and self.connected(nid, v):
                    vn = self.nodes[v]
                    if not vn.crashed and not vn.paused:
                        reachable += 1
            if 2 * reachable > len(voters):
                sn.cut_since = None
            elif sn.cut_since is None:
                sn.cut_since = self.now

    def _voters_of(self, node: RaftNode) -> frozenset[int]:
        """The voter set a leader answers to (static here; its latest set with KIP-853)."""
        return self.voters

    def _check_quorum_rule(self, sn: SimNode) -> None:
        """Check-quorum: a leader that no majority could reach for the fetch timeout resigns
        at its next tick (allowing one more fetch timeout for fetches in flight and the
        backlog a pause leaves; a paused leader is judged from when it resumed)."""
        node = sn.node
        if node is None or not node.is_leader() or sn.cut_since is None:
            return
        since = max(sn.cut_since, sn.resumed_at)
        if self.now - since > 2 * self.cfg.fetch_timeout_ms:
            self.fail(f"check-quorum: leader {sn.node_id} of epoch {node.epoch} cut off from a "
                      f"majority since t={since}ms still leads")

    def _check_snapshot_state(
        self, sn: SimNode, sid: SnapshotId, state: list[LogEntry], how: str
    ) -> None:
        """A snapshot holds exactly the committed prefix of its length."""
        if len(state) != sid.end_offset or (state and state[-1].epoch != sid.epoch):
            self.fail(f"node {sn.node_id} {how} snapshot {sid} of {len(state)} entries")
        if len(state) > len(self.committed):
            self.fail(f"node {sn.node_id} {how} snapshot {sid} beyond committed")
        for e in state:
            c = self.committed[e.offset]
            if (c.epoch, c.data, c.control) != (e.epoch, e.data, e.control):
                self.fail(f"node {sn.node_id} {how} snapshot {sid}: {e} but {c} committed")

    def _check_ready(self, sn: SimNode, node: RaftNode, ready: Ready) -> None:
        nid = sn.node_id
        if node.is_leader():
            if nid not in self.leading:
                self.leading.add(nid)
                sn.cut_since = None
            prev = self.leaders.setdefault(node.epoch, nid)
            if prev != nid:
                self.fail(f"two leaders in epoch {node.epoch}: {prev} and {nid}")
        log = node.log
        assert isinstance(log, MemoryRaftLog)
        for e in ready.entries_to_append:
            prev_epoch = log.epoch_at(e.offset - 1)
            key = (e.offset, e.epoch)
            seen = self.entries.setdefault(key, (e.data, prev_epoch))
            if seen != (e.data, prev_epoch):
                self.fail(f"log matching broken at {key} on node {nid}: {seen} vs {e}")
        hw = ready.high_watermark
        if hw < sn.last_hw:
            self.fail(f"node {nid} high watermark went back {sn.last_hw} -> {hw}")
        if hw > log.end_offset:
            self.fail(f"node {nid} high watermark {hw} beyond its log end {log.end_offset}")
        if ready.snapshot_to_install is not None:
            sid, data = ready.snapshot_to_install
            if ready.truncate_to is not None or log.start_offset < sid.end_offset:
                self.fail(f"node {nid} install of {sid} with {ready}")
            self._check_snapshot_state(sn, sid, decode_state(data), "installed")
        elif sn.last_hw < log.start_offset:
            self.fail(f"node {nid} log starts at {log.start_offset} beyond HW {sn.last_hw}")
        for off in range(max(sn.last_hw, log.start_offset), hw):
            e = log.entry(off)
            if off < len(self.committed):
                c = self.committed[off]
                if (c.epoch, c.data) != (e.epoch, e.data):
                    self.fail(f"committed entry changed at {off} on node {nid}: {c} vs {e}")
            else:
                self.committed.append(e)
                self.commit_tags.append(node.epoch)
        sn.last_hw = hw
        if node.is_leader() and (nid, node.epoch) not in self.checked_leaders:
            # Leader completeness, checked when a node first acts as leader of an epoch: it has
            # every entry committed in an earlier epoch. An entry is tagged with the epoch of the
            # node that first reported it committed, which is >= the epoch it was committed in,
            # so the check is sound even for a stale leader elected late.
            self.checked_leaders.add((nid, node.epoch))
            for off, (c, tag) in enumerate(zip(self.committed, self.commit_tags, strict=True)):
                if tag >= node.epoch or off < log.start_offset:
                    continue  # below the log start: checked when its snapshot was made
                if off >= log.end_offset:
                    self.fail(f"leader {nid} epoch {node.epoch} lacks committed entry {off}")
                e = log.entry(off)
                if (c.epoch, c.data) != (e.epoch, e.data):
                    self.fail(f"leader {nid} epoch {node.epoch} differs at committed {off}")

    # ------------------------------------------------------------------ the run

    def leader(self) -> RaftNode | None:
        best = None
        for sn in self.nodes.values():
            n = sn.node
            if (n is not None and not sn.paused and n.is_leader()
                    and (best is None or n.epoch > best.epoch)):
                best = n
        return best

    def client_append(self, tag: str = "c") -> tuple[int, bytes] | None:
        node = self.leader()
        if node is None:
            return None
        self.client_seq += 1
        data = f"{tag}{self.client_seq}".encode()
        try:
            off = node.append([data])
        except NotLeader:  # pragma: no cover - leader() checked
            return None
        self._drive(self.nodes[node.node_id])
        return off, data

    # ------------------------------------------------------------------ leader churn

    def _churn(self, event: str, sn: SimNode | None = None, node: RaftNode | None = None,
               ready: Ready | None = None) -> None:
        """The leader-churn program, a nemesis for the schedules that make Raft's hard cases
        (the Raft paper's Figure 8): leaders change while their logs hold entries, from
        earlier epochs, that no majority has yet. Each round, with random timings:

        1. cut the leader off (it keeps taking appends that cannot replicate);
        2. the next leader fails (crash or isolation) as soon as its first entry is durable
           on its own disk only, so two nodes now hold different uncommitted tails;
        3. the old leader rejoins, and can be elected again with its longer, older tail;
        4. it fails while a voter catches up on those older entries (they reach a majority
           before any entry of the new epoch does);
        5. the node from step 2, whose tail is of a later epoch, comes back and may win.

        Only a leader that commits older entries just because a majority holds them (and not
        once an entry of its own epoch is replicated) can lose a committed entry here.
        ``event`` is "tick" (the program's own timer) or "durable" (a leader's Ready was
        made durable)."""
        c = self.churn
        assert c is not None
        phase = c.phase
        if event == "durable":
            assert sn is not None and node is not None and ready is not None
            st = node.state
            if not isinstance(st, Leader):
                return
            if (phase == "new-leader" and sn.node_id != c.old
                    and any(e.epoch == st.epoch for e in ready.entries_to_append)):
                c.new = sn.node_id
                self._churn_strike(sn.node_id, self.rng.randint(0, 3))
                c.phase = "rejoin-old"
                self._schedule(self.rng.randint(0, 300), "churn", None)
            elif phase == "catch-up":
                self._churn_catch_up(sn, node, st)
            return
        if phase == "isolate":
            leader = self.leader()
            if leader is None:
                self._schedule(self.rng.randint(20, 100), "churn", None)
                return
            c.old, c.new = leader.node_id, None
            self._cut(leader.node_id)
            c.phase = "new-leader"
            self._schedule(2000, "churn-timeout", c.round)
        elif phase == "rejoin-old":
            self._rejoin(c.old)
            c.phase = "catch-up"
            self._schedule(1000, "churn-timeout", c.round)
        elif phase == "return-new":
            new = c.new
            if new is not None:
                self.restart(new)
                if c.home is not None:
                    self.group[new] = c.home
                else:
                    self._rejoin(new)
            c.phase = "settle"
            self._schedule(self.rng.randint(400, 1500), "churn", None)
        elif phase == "settle":
            self.heal()
            for i in sorted(self.nodes):
                self.restart(i)
            c.round += 1
            c.phase, c.old, c.new, c.home = "isolate", None, None, None
            self._schedule(self.rng.randint(100, 500), "churn", None)

    def _churn_catch_up(self, sn: SimNode, node: RaftNode, st: Leader) -> None:
        """Step 4: strike a leader once entries of earlier epochs that were on no majority
        when it took over are on one now (before any entry of its own epoch is)."""
        c = self.churn
        assert c is not None
        floor = c.floors.setdefault((sn.node_id, st.epoch), node.high_watermark)
        ends = sorted((node.log.end_offset, *(rs.end_offset for rs in st.voter_states.values())),
                      reverse=True)
        on_majority = ends[len(self.voters) // 2]
        if floor < on_majority <= st.epoch_start_offset:
            self.stats["churn_catch_up"] += 1
            ahead = {v for v, rs in st.voter_states.items()
                     if rs.end_offset > st.epoch_start_offset}
            r = self.rng.random()
            if r < 0.4 and ahead:
                # A partition that keeps the leader with the voters that already hold an
                # entry of its epoch: the others may elect a node without its older entries.
                side = {sn.node_id, *ahead}
                self.partition([side, set(self.nodes) - side])
                c.home = 2
            elif r < 0.9:
                self._churn_strike(sn.node_id, self.rng.randint(0, 4))
            c.phase = "return-new"
            self._schedule(self.rng.randint(5, 120), "churn", None)

    def _churn_timeout(self, round_: int) -> None:
        """A step waited too long (nobody got elected, nothing to catch up): move on."""
        c = self.churn
        assert c is not None
        if c.round == round_ and c.phase in ("new-leader", "catch-up"):
            c.phase = "return-new" if c.phase == "catch-up" else "settle"
            self._schedule(0, "churn", None)

    def _churn_strike(self, nid: int, delay_ms: int) -> None:
        self._schedule(delay_ms, "strike", (nid, self.nodes[nid].incarnation))

    def _strike(self, nid: int, incarnation: int) -> None:
        sn = self.nodes[nid]
        if sn.crashed or sn.incarnation != incarnation:
            return
        self.stats["churn_strike"] += 1
        if self.rng.random() < 0.5:
            self.crash(nid)
        else:
            self._cut(nid)

    def _cut(self, nid: int) -> None:
        self.group[nid] = 100 + nid
        self.history.append(f"t={self.now} isolate {nid}")

    def _rejoin(self, nid: int) -> None:
        """Put a cut-off node back into the largest group of the others."""
        others = Counter(self.group[i] for i in self.nodes if i != nid and self.group[i] < 100)
        self.group[nid] = max(others, key=lambda g: (others[g], -g)) if others else 0
        self.history.append(f"t={self.now} rejoin {nid}")

    def _random_fault(self) -> None:
        r = self.rng.random()
        ids = sorted(self.nodes)
        alive = [i for i in ids if not self.nodes[i].crashed]
        dead = [i for i in ids if self.nodes[i].crashed]
        if r < 0.12 and alive:
            self.crash(self.rng.choice(alive))
        elif r < 0.24:
            # Leaders are the interesting victims: crash one mid-fsync, mid-replication.
            # kill -9 and a supervisor restart soon after.
            node = self.leader()
            if node is not None:
                self.crash(node.node_id)
                self._schedule(
                    self.rng.randrange(self.cfg.election_timeout_ms), "restart", node.node_id
                )
        elif r < 0.44 and dead:
            self.restart(self.rng.choice(dead))
        elif r < 0.54:
            shuffled = ids[:]
            self.rng.shuffle(shuffled)
            k = self.rng.randrange(1, len(ids))
            self.partition([set(shuffled[:k]), set(shuffled[k:])])
        elif r < 0.66:
            leader = self.leader()
            # Mostly the leader: it keeps taking appends it cannot replicate.
            victim = (
                leader.node_id if leader is not None and self.rng.random() < 0.7
                else self.rng.choice(ids)
            )
            self._cut(victim)  # isolate one node, leave the rest as they are
        elif r < 0.76:
            cut = [i for i in ids if self.group[i] >= 100]
            if cut:
                self._rejoin(self.rng.choice(cut))  # the other cut-off nodes stay cut off
        elif r < 0.84 and alive:
            # SIGSTOP / SIGCONT, the leader half the time: it wakes up still believing it
            # leads, with a backlog of timers and messages.
            leader = self.leader()
            victim = (leader.node_id if leader is not None and self.rng.random() < 0.5
                      else self.rng.choice(alive))
            self.pause(victim)
            self._schedule(self.rng.randint(20, 3 * self.cfg.fetch_timeout_ms), "resume",
                           (victim, self.nodes[victim].incarnation))
        elif r < 0.93:
            self.heal()
        else:
            node = self.leader()
            if node is not None:
                self.history.append(f"t={self.now} resign {node.node_id}")
                node.resign(self.now)
                self._drive(self.nodes[node.node_id])

    def run_until(self, end_ms: int) -> None:
        try:
            self._run_until(end_ms)
        except InvariantViolation:
            raise
        except AssertionError as e:  # a node's own safety assert (e.g. truncating committed)
            self.fail(f"node assertion: {e}")

    def _run_until(self, end_ms: int) -> None:
        while self.events and self.events[0][0] <= end_ms:
            t, _, kind, arg = heapq.heappop(self.events)
            self.now = t
            self.steps += 1
            if kind in ("tick", "deliver", "synced"):
                nid = arg if kind == "tick" else arg[1] if kind == "deliver" else arg[0]
                sn = self.nodes[nid]
                if sn.paused and (kind != "deliver" or self.connected(arg[0], nid)):
                    sn.held.append((kind, arg))  # a message waits in the socket buffer
                    continue
            if kind == "tick":
                sn = self.nodes[arg]
                self._schedule(self.cfg.tick_ms, "tick", arg)
                if sn.node is not None:
                    sn.node.tick(t)
                    self._drive(sn)
                    self._check_quorum_rule(sn)
            elif kind == "deliver":
                src, dest, msg = arg
                sn = self.nodes[dest]
                if sn.node is not None and self.connected(src, dest):
                    self.history.append(f"t={t} {src}->{dest} {msg}"[:200])
                    sn.node.step(msg, t)
                    self._drive(sn)
            elif kind == "resume":
                nid, incarnation = arg
                if self.nodes[nid].incarnation == incarnation:
                    self.resume(nid)
            elif kind == "restart":
                if self.faults:
                    self.restart(arg)
            elif kind == "synced":
                self._synced(*arg)
            elif kind == "strike":
                if self.faults:
                    self._strike(*arg)
            elif kind == "churn":
                if self.faults:
                    self._churn("tick")
            elif kind == "churn-timeout":
                if self.faults:
                    self._churn_timeout(arg)
            elif kind == "fault":
                if self.faults:
                    self._random_fault()
                    self._schedule(
                        self.rng.randint(1, 2 * self.cfg.fault_interval_ms), "fault", None
                    )
            elif kind == "client" and self.faults:
                self.client_append()
                self._schedule(self.cfg.client_interval_ms, "client", None)
            else:
                self._dispatch_extra(kind, arg)
            self._note_reachability()
            if len(self.history) > 200:
                del self.history[:100]
        self.now = max(self.now, end_ms)

    def run(self) -> None:
        """Chaos, then heal everything and require a commit within the liveness bound."""
        cfg = self.cfg
        self.faults = True
        self.drop_prob, self.dup_prob = cfg.drop_prob, cfg.dup_prob
        if self.churn is None:
            self._schedule(self.rng.randint(1, cfg.fault_interval_ms), "fault", None)
        else:
            self._schedule(self.rng.randint(200, 600), "churn", None)
        self._schedule(1, "client", None)
        self.run_until(cfg.chaos_ms)
        # Quiet period: heal, restart everyone, stop faults; delays stay.
        self.faults = False
        self.drop_prob = self.dup_prob = 0.0
        self.heal()
        for i in sorted(self.nodes):
            self.resume(i)
            self.restart(i)
        healed_at = self.now
        pending: list[tuple[int, bytes]] = []
        deadline = healed_at + cfg.liveness_bound_ms
        appended_in: set[tuple[int, int]] = set()
        while self.now < deadline:
            self.run_until(self.now + cfg.client_interval_ms)
            # One record per leader term, so a slow link (tiny fetches) cannot fall behind.
            leader = self.leader()
            if leader is not None and (leader.node_id, leader.epoch) not in appended_in:
                appended_in.add((leader.node_id, leader.epoch))
                got = self.client_append("q")
                if got is not None:
                    pending.append(got)
            for off, data in pending:
                if off < len(self.committed) and self.committed[off].data == data:
                    self._check_observers_catch_up(deadline)
                    return
        self.fail(
            f"liveness: nothing appended after healing committed within {cfg.liveness_bound_ms}ms"
        )

    def _check_observers_catch_up(self, deadline: int) -> None:
        """After a commit in the quiet period, every node learns it within the bound, plus the
        time its fetches need to carry what it lacks (one round trip per ``max_fetch_entries``
        entries, as the seed draws it: a node down for most of the chaos may lack hundreds)."""
        target = len(self.committed)
        behind = max(target - (sn.node.high_watermark if sn.node is not None else 0)
                     for sn in self.nodes.values())
        round_trip_ms = 2 * self.cfg.max_delay_ms + self.cfg.tick_ms
        deadline += behind * round_trip_ms // self.max_fetch_entries
        while self.now < deadline:
            self.run_until(self.now + 50)
            if all(
                sn.node is not None and sn.node.high_watermark >= target
                for sn in self.nodes.values()
            ):
                return
        lag = {i: sn.node.high_watermark for i, sn in self.nodes.items() if sn.node}
        self.fail(f"liveness: nodes did not reach high watermark {target}: {lag}")
