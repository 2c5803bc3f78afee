"""Sans-IO Raft in KRaft's dialect (KIP-595, pull-based) with PreVote and check-quorum.

The node never touches sockets, clocks or files. The driver loop is (etcd-io/raft's Ready/Advance):

    node.step(msg, now_ms) / node.tick(now_ms) / node.append(records)
    ready = node.poll()
    persist ready.election_state_to_persist        (write temp, fsync, rename, fsync dir)
    if ready.snapshot_to_install (id, data):       (fetched from the leader, KIP-630)
        write the snapshot durably, then empty the durable log and restart it at id.end_offset
    truncate the durable log to ready.truncate_to  (if not None)
    append ready.entries_to_append; fsync
    delete the durable log below ready.log_start_offset (if not None; optional, any time after)
    send ready.messages_to_send                    (only now: they may depend on the above)
    the application loads snapshot_to_install (if any), then applies ready.committed
    node.advance(ready, now_ms)                    (tells the node its entries are durable)

Snapshots the application takes (of applied, hence committed, state) go to the same store the
node serves FetchSnapshot from; ``snapshot_taken`` then drops the log prefix they cover. On
restart the log is rebuilt with ``MemoryRaftLog.recover`` from the latest snapshot.

The node edits its in-memory ``RaftLog`` view at once; the leader counts its own entries toward
the high watermark only after ``advance``. A follower's Fetch (which acknowledges its log end) is
always in the same Ready as, or a later one than, the entries it acknowledges, so it is durable
before it is sent.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Any

from kraft.log import LogEntry, RaftLog
from kraft.messages import (
    BeginQuorumEpoch,
    DivergingEpoch,
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
from kraft.quorum_state import (
    Candidate,
    ElectionState,
    EpochState,
    Follower,
    Leader,
    Prospective,
    ReplicaState,
    Resigned,
    Unattached,
    check_transition,
    initial_state,
)
from kraft.snapshot_store import MemorySnapshotStore, SnapshotStore

MAX_FETCH_ENTRIES = 64
MAX_SNAPSHOT_CHUNK_BYTES = 1 << 20
LEADER_CHANGE_DATA = b"LeaderChange"
# The leader forgets an observer it has not heard from for this long (Kafka's value).
OBSERVER_SESSION_TIMEOUT_MS = 5 * 60 * 1000


class NotLeader(Exception):
    """``append`` or ``resign`` on a node that is not the leader."""

    def __init__(self, epoch: int, leader_id: int | None) -> None:
        super().__init__(f"not leader (epoch {epoch}, leader {leader_id})")
        self.epoch = epoch
        self.leader_id = leader_id


@dataclass(frozen=True, slots=True)
class Ready:
    election_state_to_persist: ElectionState | None
    truncate_to: int | None
    entries_to_append: list[LogEntry]
    messages_to_send: list[tuple[int, Message]]
    committed: list[LogEntry]
    high_watermark: int
    # Bookkeeping for ``advance``: the log end this Ready makes durable.
    durable_end_offset: int = field(default=0, repr=False)
    # A snapshot fetched from the leader: write it durably, then empty the durable log and
    # restart it at its end offset, before appending ``entries_to_append`` (which follow it)
    # or sending anything. The application loads it before applying ``committed``.
    # ``truncate_to`` is None whenever this is set.
    snapshot_to_install: tuple[SnapshotId, bytes] | None = None
    # The log no longer holds entries below this offset (a durable snapshot covers them): the
    # driver may delete them from the durable log.
    log_start_offset: int | None = None

    def is_empty(self) -> bool:
        return (
            self.election_state_to_persist is None
            and self.truncate_to is None
            and not self.entries_to_append
            and not self.messages_to_send
            and not self.committed
            and self.snapshot_to_install is None
            and self.log_start_offset is None
        )


@dataclass(slots=True)
class _SnapshotFetch:
    """A follower's FetchSnapshot in progress: the bytes received so far, in memory."""

    snapshot_id: SnapshotId
    data: bytearray = field(default_factory=bytearray)
    size: int | None = None


class RaftNode:
    def __init__(
        self,
        node_id: int,
        voters: frozenset[int],
        *,
        random: _random.Random,
        election_timeout_ms: int = 1000,
        fetch_timeout_ms: int = 2000,
        fetch_backoff_ms: int = 50,
        max_fetch_entries: int = MAX_FETCH_ENTRIES,
        log: RaftLog,
        election_state: ElectionState,
        snapshots: SnapshotStore | None = None,
        max_snapshot_chunk_bytes: int = MAX_SNAPSHOT_CHUNK_BYTES,
    ) -> None:
        assert voters, "a quorum needs voters"
        self.node_id = node_id
        self.voters = voters
        self.is_voter = node_id in voters
        self.random = random
        self.election_timeout_ms = election_timeout_ms
        self.fetch_timeout_ms = fetch_timeout_ms
        self.fetch_backoff_ms = fetch_backoff_ms
        self.max_fetch_entries = max_fetch_entries
        self.request_timeout_ms = max(1, fetch_timeout_ms // 4)
        self.log = log
        self.snapshots: SnapshotStore = (
            snapshots if snapshots is not None else MemorySnapshotStore()
        )
        assert max_snapshot_chunk_bytes > 0
        self.max_snapshot_chunk_bytes = max_snapshot_chunk_bytes
        self.election = election_state
        self.state: EpochState = initial_state(node_id, election_state)
        if not self.is_voter:
            assert not isinstance(self.state, Resigned), "an observer was never leader"

        # Everything below the log start is in a snapshot, hence committed; the application
        # loads that snapshot itself at startup.
        self.high_watermark = log.start_offset
        self._applied = log.start_offset
        # Disk bookkeeping: the disk matches memory below _stable_end (as of the last poll);
        # _durable_end is what the driver acknowledged via advance().
        self._stable_end = log.end_offset
        self._durable_end = log.end_offset
        self._truncated = False
        # A fetched snapshot installed in memory and not yet handed out by poll().
        self._pending_install: tuple[SnapshotId, bytes] | None = None
        self._log_start_dirty = False
        self._snapshot_fetch: _SnapshotFetch | None = None
        self._next_observer_gc_ms = 0
        self._election_dirty = False
        self._outbox: list[tuple[int, Message]] = []
        self._outstanding: Ready | None = None

        # Timers, armed lazily on the first step/tick because we are not handed a clock here.
        self._started = False
        self._election_deadline_ms = 0
        self._leader_contact_ms: int | None = None  # follower: last good fetch response
        self._follower_deadline_ms = 0  # follower: when we give up on the leader
        self._fetch_in_flight_since: int | None = None
        self._next_fetch_ms = 0
        self._leader_since_ms = 0
        self._next_begin_epoch_ms = 0

    # ------------------------------------------------------------------ public API

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def leader_id(self) -> int | None:
        if isinstance(self.state, Leader):
            return self.node_id
        if isinstance(self.state, Follower):
            return self.state.leader_id
        return None

    def is_leader(self) -> bool:
        return isinstance(self.state, Leader)

    def tick(self, now_ms: int) -> None:
        self._start(now_ms)
        st = self.state
        if isinstance(st, Leader):
            self._tick_leader(st, now_ms)
        elif isinstance(st, Follower):
            if self.is_voter and now_ms >= self._follower_deadline_ms:
                self._become_prospective(now_ms)
            else:
                self._maybe_fetch(now_ms)
        elif not self.is_voter:
            self._maybe_fetch(now_ms)  # unattached observer: probe a voter for the leader
        elif now_ms >= self._election_deadline_ms:
            self._become_prospective(now_ms)

    def step(self, message: Message, now_ms: int) -> None:
        self._start(now_ms)
        if isinstance(message, FetchRequest):
            self._on_fetch_request(message, now_ms)
        elif isinstance(message, FetchResponse):
            self._on_fetch_response(message, now_ms)
        elif isinstance(message, VoteRequest):
            self._on_vote_request(message, now_ms)
        elif isinstance(message, VoteResponse):
            self._on_vote_response(message, now_ms)
        elif isinstance(message, BeginQuorumEpoch):
            self._on_begin_quorum_epoch(message, now_ms)
        elif isinstance(message, EndQuorumEpoch):
            self._on_end_quorum_epoch(message, now_ms)
        elif isinstance(message, FetchSnapshotRequest):
            self._on_fetch_snapshot_request(message, now_ms)
        elif isinstance(message, FetchSnapshotResponse):
            self._on_fetch_snapshot_response(message, now_ms)
        else:  # pragma: no cover
            raise TypeError(f"unknown message {message!r}")

    def append(self, records: list[bytes]) -> int:
        """Append client records in the current epoch; returns the offset of the first one."""
        st = self.state
        if not isinstance(st, Leader):
            raise NotLeader(self.epoch, self.leader_id)
        base = self.log.end_offset
        self.log.append([LogEntry(base + i, st.epoch, bytes(r)) for i, r in enumerate(records)])
        return base

    def resign(self, now_ms: int) -> None:
        """Graceful step-down: tell the voters (EndQuorumEpoch) so they elect without waiting."""
        self._start(now_ms)
        if not isinstance(self.state, Leader):
            raise NotLeader(self.epoch, self.leader_id)
        self._resign(now_ms)

    def poll(self) -> Ready:
        assert self._outstanding is None, "advance() the previous Ready first"
        election = self.election if self._election_dirty else None
        truncate_to = self._stable_end if self._truncated else None
        log = self.log
        end = log.end_offset
        stable = self._stable_end
        entries = log.entries_from(stable, end - stable) if end > stable else []
        committed_end = min(self.high_watermark, end)
        applied = self._applied
        committed = (
            log.entries_from(applied, committed_end - applied) if committed_end > applied else []
        )
        install = self._pending_install
        if install is not None:
            truncate_to = None  # the reset replaces the whole durable log
        ready = Ready(
            election_state_to_persist=election,
            truncate_to=truncate_to,
            entries_to_append=entries,
            messages_to_send=self._outbox,
            committed=committed,
            high_watermark=self.high_watermark,
            durable_end_offset=end,
            snapshot_to_install=install,
            log_start_offset=log.start_offset if self._log_start_dirty else None,
        )
        self._pending_install = None
        self._log_start_dirty = False
        self._election_dirty = False
        self._truncated = False
        self._stable_end = end
        if committed_end > applied:
            self._applied = committed_end
        self._outbox = []
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready, now_ms: int) -> None:
        assert ready is self._outstanding, "advance() takes the Ready from the last poll()"
        self._outstanding = None
        if self._pending_install is None:
            # A truncation after poll() may have removed part of what this Ready wrote. (After
            # a reset to a snapshot that the driver has not written yet, nothing counts.)
            self._durable_end = min(ready.durable_end_offset, self._stable_end)
        st = self.state
        if isinstance(st, Leader):
            self._update_high_watermark(st)

    def snapshot_taken(self, snapshot_id: SnapshotId, now_ms: int) -> None:
        """The application durably wrote ``snapshot_id`` (of committed, applied entries) into
        the store: drop the log prefix it covers; the next Ready reports ``log_start_offset``."""
        self._start(now_ms)
        end = snapshot_id.end_offset
        assert end <= self.high_watermark, (
            f"snapshot {snapshot_id} beyond the high watermark {self.high_watermark}"
        )
        if end <= self.log.start_offset:
            return  # an older snapshot than the one the log starts after
        assert end <= self._applied, f"snapshot {snapshot_id} beyond applied {self._applied}"
        assert self.log.epoch_at(end - 1) == snapshot_id.epoch, (
            f"snapshot {snapshot_id} does not match the log (epoch {self.log.epoch_at(end - 1)})"
        )
        self.log.truncate_prefix(snapshot_id)
        self._log_start_dirty = True

    def describe_quorum(self, now_ms: int) -> QuorumDescription:
        """DescribeQuorum as the leader sees it (the leader's own row uses ``now_ms``)."""
        st = self.state
        if not isinstance(st, Leader):
            raise NotLeader(self.epoch, self.leader_id)
        self._expire_observers(st, now_ms)

        def row(rid: int, rs: ReplicaState) -> ReplicaDescription:
            return ReplicaDescription(
                rid,
                rs.end_offset if rs.last_fetch_timestamp >= 0 else -1,
                rs.last_fetch_timestamp,
                rs.last_caught_up_timestamp,
            )

        me = ReplicaDescription(self.node_id, self.log.end_offset, now_ms, now_ms)
        voters = [
            me if v == self.node_id else row(v, st.voter_states[v]) for v in sorted(self.voters)
        ]
        observers = [row(o, st.observer_states[o]) for o in sorted(st.observer_states)]
        return QuorumDescription(
            self.node_id, st.epoch, self.high_watermark, tuple(voters), tuple(observers)
        )

    # ------------------------------------------------------------------ transitions

    def _start(self, now_ms: int) -> None:
        if self._started:
            return
        self._started = True
        self._reset_election_timer(now_ms)
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()

    def _follower_timeout_ms(self) -> int:
        """The fetch timeout plus a little jitter (up to a quarter of the election timeout):
        followers that last heard from a dead leader at the same moment would otherwise start
        their elections together and split the vote, costing a whole election timeout."""
        return self.fetch_timeout_ms + self.random.randrange(max(1, self.election_timeout_ms // 4))

    def _random_election_timeout(self) -> int:
        return self.election_timeout_ms + self.random.randrange(self.election_timeout_ms)

    def _reset_election_timer(self, now_ms: int) -> None:
        self._election_deadline_ms = now_ms + self._random_election_timeout()

    def _transition(self, new: EpochState, election: ElectionState) -> None:
        check_transition(self.state, new)
        if election.epoch == self.election.epoch and self.election.leader_id is not None:
            assert election.leader_id in (None, self.election.leader_id), (
                f"two leaders in epoch {election.epoch}: {self.election} -> {election}"
            )
        self.state = new
        if election != self.election:
            self.election = election
            self._election_dirty = True
        self._fetch_in_flight_since = None
        self._snapshot_fetch = None  # the new leader may not have it; start over

    def _become_unattached(self, epoch: int, now_ms: int) -> None:
        self._transition(Unattached(epoch), ElectionState(epoch))
        self._reset_election_timer(now_ms)

    def _become_follower(self, epoch: int, leader_id: int, now_ms: int) -> None:
        voted = self.election.voted_for if epoch == self.election.epoch else None
        self._transition(Follower(epoch, leader_id), ElectionState(epoch, voted, leader_id))
        # Only the leader itself counts as contact (fetch response, BeginQuorumEpoch); hearing
        # of it from a third party must not make us reject PreVotes.
        self._leader_contact_ms = None
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()
        self._next_fetch_ms = now_ms

    def _observe_epoch(self, epoch: int, leader_id: int | None, now_ms: int) -> None:
        """React to a message from a higher epoch, or one that names our epoch's leader."""
        if epoch > self.epoch:
            if leader_id is not None and leader_id != self.node_id:
                self._become_follower(epoch, leader_id, now_ms)
            else:
                self._become_unattached(epoch, now_ms)
        elif (
            epoch == self.epoch
            and leader_id is not None
            and leader_id != self.node_id
            and isinstance(self.state, (Unattached, Prospective, Candidate))
        ):
            self._become_follower(epoch, leader_id, now_ms)

    def _become_prospective(self, now_ms: int) -> None:
        if not self.is_voter:
            return
        self._transition(Prospective(self.epoch, frozenset({self.node_id})), self.election)
        self._reset_election_timer(now_ms)
        self._leader_contact_ms = None
        for v in self.voters - {self.node_id}:
            self._send(
                v,
                VoteRequest(
                    self.node_id, self.epoch + 1, self.log.last_epoch, self.log.end_offset, True
                ),
            )
        self._maybe_win_prevote(now_ms)

    def _maybe_win_prevote(self, now_ms: int) -> None:
        st = self.state
        if isinstance(st, Prospective) and self._is_majority(st.votes_granted):
            self._become_candidate(now_ms)

    def _become_candidate(self, now_ms: int) -> None:
        epoch = self.epoch + 1
        self._transition(
            Candidate(epoch, frozenset({self.node_id})), ElectionState(epoch, self.node_id)
        )
        self._reset_election_timer(now_ms)
        for v in self.voters - {self.node_id}:
            self._send(
                v, VoteRequest(self.node_id, epoch, self.log.last_epoch, self.log.end_offset)
            )
        self._maybe_win_election(now_ms)

    def _maybe_win_election(self, now_ms: int) -> None:
        st = self.state
        if isinstance(st, Candidate) and self._is_majority(st.votes_granted):
            self._become_leader(now_ms)

    def _become_leader(self, now_ms: int) -> None:
        epoch = self.epoch
        start = self.log.end_offset
        voter_states = {v: ReplicaState() for v in self.voters if v != self.node_id}
        self._transition(
            Leader(epoch, start, voter_states), ElectionState(epoch, self.node_id, self.node_id)
        )
        self._leader_since_ms = now_ms
        # The LeaderChange control entry lets the leader commit something of its own epoch,
        # which is what makes earlier-epoch entries committable (Raft's Figure 8).
        self.log.append([LogEntry(start, epoch, LEADER_CHANGE_DATA, control=True)])
        self._send_begin_quorum_epoch(now_ms)
        self._update_high_watermark(self.state)  # type: ignore[arg-type]

    def _send_begin_quorum_epoch(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, Leader)
        for v, rs in st.voter_states.items():
            if rs.last_fetch_ms is None:
                self._send(v, BeginQuorumEpoch(self.node_id, st.epoch))
        self._next_begin_epoch_ms = now_ms + self.request_timeout_ms

    def _resign(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, Leader)
        self._transition(Resigned(st.epoch), self.election)
        self._reset_election_timer(now_ms)
        for v in self.voters - {self.node_id}:
            self._send(v, EndQuorumEpoch(self.node_id, st.epoch))

    # ------------------------------------------------------------------ leader

    def _tick_leader(self, st: Leader, now_ms: int) -> None:
        # Check-quorum: a leader cut off from a majority steps down instead of lingering.
        if now_ms - self._leader_since_ms >= self.fetch_timeout_ms:
            live = 1 + sum(
                1
                for rs in st.voter_states.values()
                if rs.last_fetch_ms is not None
                and now_ms - rs.last_fetch_ms < self.fetch_timeout_ms
            )
            if not self._is_majority_count(live):
                self._resign(now_ms)
                return
        if now_ms >= self._next_begin_epoch_ms:
            self._send_begin_quorum_epoch(now_ms)
        if now_ms >= self._next_observer_gc_ms:
            self._expire_observers(st, now_ms)
            self._next_observer_gc_ms = now_ms + OBSERVER_SESSION_TIMEOUT_MS // 10

    def _expire_observers(self, st: Leader, now_ms: int) -> None:
        idle = [
            o
            for o, rs in st.observer_states.items()
            if rs.last_fetch_ms is None or now_ms - rs.last_fetch_ms >= OBSERVER_SESSION_TIMEOUT_MS
        ]
        for o in idle:
            del st.observer_states[o]

    def _replica_state(self, st: Leader, replica_id: int, now_ms: int) -> ReplicaState | None:
        """The state of a fetching replica, marking contact; None for ourselves."""
        if replica_id == self.node_id:
            return None
        rs = st.voter_states.get(replica_id)
        if rs is None:
            rs = st.observer_states.setdefault(replica_id, ReplicaState())
        rs.last_fetch_ms = now_ms
        return rs

    def _snapshot_required(self, fetch_offset: int, last_fetched_epoch: int) -> bool:
        """Kafka's ``validateOffsetAndEpoch``: the fetcher must start from a snapshot if it is
        below our log start, or at it with another epoch, or its last epoch is older than the
        snapshot we start after (so it diverged from committed data we no longer hold)."""
        sid = self.log.snapshot_id
        if sid is None:
            return False
        start = self.log.start_offset
        return (
            fetch_offset < start
            or (fetch_offset == start and last_fetched_epoch != sid.epoch)
            or last_fetched_epoch < sid.epoch
        )

    def _snapshot_to_offer(self) -> SnapshotId:
        sid = self.log.snapshot_id
        assert sid is not None
        latest = self.snapshots.latest()
        # The driver may not have written a snapshot we just installed; the fetcher will get
        # SNAPSHOT_NOT_FOUND and retry.
        return sid if latest is None or latest < sid else latest

    def _is_majority(self, votes: frozenset[int]) -> bool:
        return self._is_majority_count(len(votes & self.voters))

    def _is_majority_count(self, n: int) -> bool:
        return 2 * n > len(self.voters)

    def _update_high_watermark(self, st: Leader) -> None:
        ends = [self._durable_end] + [rs.end_offset for rs in st.voter_states.values()]
        ends.sort(reverse=True)
        candidate = ends[len(self.voters) // 2]
        # Only once an entry of our own epoch (offset >= epoch_start_offset) is replicated.
        if candidate > st.epoch_start_offset and candidate > self.high_watermark:
            self.high_watermark = candidate

    def _on_fetch_request(self, req: FetchRequest, now_ms: int) -> None:
        st = self.state
        if isinstance(st, Leader) and req.epoch > st.epoch:
            # Someone has seen a newer epoch: we are deposed.
            self._become_unattached(req.epoch, now_ms)
            st = self.state
        if not isinstance(st, Leader):
            self._reply_fetch(req, self.epoch, self.leader_id, error=FetchError.NOT_LEADER)
            return
        if req.epoch < st.epoch:
            self._reply_fetch(
                req,
                st.epoch,
                self.node_id,
                high_watermark=self.high_watermark,
                error=FetchError.FENCED_EPOCH,
            )
            return
        rs = self._replica_state(st, req.sender, now_ms)
        if self._snapshot_required(req.fetch_offset, req.last_fetched_epoch):
            self._reply_fetch(
                req,
                st.epoch,
                self.node_id,
                high_watermark=self.high_watermark,
                snapshot_id=self._snapshot_to_offer(),
            )
            return
        epoch, end = self.log.end_offset_for_epoch(req.last_fetched_epoch)
        valid = (req.fetch_offset == 0 and req.last_fetched_epoch == 0) or (
            epoch == req.last_fetched_epoch and req.fetch_offset <= end
        )
        if not valid:
            self._reply_fetch(
                req,
                st.epoch,
                self.node_id,
                high_watermark=self.high_watermark,
                diverging_epoch=DivergingEpoch(epoch, end),
            )
            return
        if rs is not None:
            # The fetch offset is what the voter has durably; it may go down after a crash
            # that lost unacknowledged entries, and the leader's high watermark never does.
            rs.update_follower_state(now_ms, req.fetch_offset, self.log.end_offset)
            if req.sender in st.voter_states:
                self._update_high_watermark(st)
        records = tuple(self.log.entries_from(req.fetch_offset, self.max_fetch_entries))
        self._reply_fetch(
            req, st.epoch, self.node_id, records=records, high_watermark=self.high_watermark
        )

    def _reply_fetch(
        self, req: FetchRequest, epoch: int, leader_id: int | None, **fields: Any
    ) -> None:
        """Answer a fetch, echoing its offset and epoch (late duplicates are recognised)."""
        self._send(
            req.sender,
            FetchResponse(
                self.node_id, epoch, leader_id, req.fetch_offset, req.last_fetched_epoch, **fields
            ),
        )

    def _on_fetch_snapshot_request(self, req: FetchSnapshotRequest, now_ms: int) -> None:
        st = self.state
        if isinstance(st, Leader) and req.epoch > st.epoch:
            self._become_unattached(req.epoch, now_ms)
            st = self.state
        if not isinstance(st, Leader):
            self._reply_fetch_snapshot(req, self.epoch, self.leader_id, error=FetchError.NOT_LEADER)
            return
        if req.epoch < st.epoch:
            self._reply_fetch_snapshot(req, st.epoch, self.node_id, error=FetchError.FENCED_EPOCH)
            return
        self._replica_state(st, req.sender, now_ms)  # contact, for check-quorum
        size = self.snapshots.size(req.snapshot_id)
        if size is None:
            self._reply_fetch_snapshot(
                req, st.epoch, self.node_id, error=FetchError.SNAPSHOT_NOT_FOUND
            )
            return
        if not 0 <= req.position <= size:
            self._reply_fetch_snapshot(
                req, st.epoch, self.node_id, size=size, error=FetchError.POSITION_OUT_OF_RANGE
            )
            return
        data = self.snapshots.read(req.snapshot_id, req.position, self.max_snapshot_chunk_bytes)
        self._reply_fetch_snapshot(req, st.epoch, self.node_id, size=size, data=bytes(data))

    def _reply_fetch_snapshot(
        self, req: FetchSnapshotRequest, epoch: int, leader_id: int | None, **fields: Any
    ) -> None:
        self._send(
            req.sender,
            FetchSnapshotResponse(
                self.node_id, epoch, leader_id, req.snapshot_id, req.position, **fields
            ),
        )

    # ------------------------------------------------------------------ follower / observer

    def _fetch_target(self, now_ms: int) -> int | None:
        st = self.state
        if self.is_voter:
            return st.leader_id if isinstance(st, Follower) else None
        leader_alive = (
            self._leader_contact_ms is not None
            and now_ms - self._leader_contact_ms < self.fetch_timeout_ms
        )
        if isinstance(st, Follower) and (leader_alive or self.random.random() < 0.5):
            return st.leader_id
        # An observer without a live leader asks a random voter who leads (like bootstrap).
        return self.random.choice(sorted(self.voters))

    def _maybe_fetch(self, now_ms: int) -> None:
        if (
            self._snapshot_fetch is not None
            and self._leader_contact_ms is not None
            and now_ms - self._leader_contact_ms >= self.fetch_timeout_ms
        ):
            # The leader went quiet mid-snapshot: fall back to fetching (an observer then asks
            # around for the current leader).
            self._snapshot_fetch = None
            self._fetch_in_flight_since = None
        if self._fetch_in_flight_since is not None:
            if now_ms - self._fetch_in_flight_since < self.request_timeout_ms:
                return
        elif now_ms < self._next_fetch_ms:
            return
        self._send_fetch(now_ms)

    def _send_fetch(self, now_ms: int) -> None:
        sf = self._snapshot_fetch
        if sf is not None:
            st = self.state
            assert isinstance(st, Follower)
            self._fetch_in_flight_since = now_ms
            self._send(
                st.leader_id,
                FetchSnapshotRequest(self.node_id, self.epoch, sf.snapshot_id, len(sf.data)),
            )
            return
        target = self._fetch_target(now_ms)
        if target is None:
            return
        self._fetch_in_flight_since = now_ms
        self._send(
            target,
            FetchRequest(self.node_id, self.epoch, self.log.end_offset, self.log.last_epoch),
        )

    def _on_fetch_response(self, resp: FetchResponse, now_ms: int) -> None:
        if resp.epoch < self.epoch or isinstance(self.state, Leader):
            return
        self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
        if self._snapshot_fetch is not None:
            return  # a late answer to a fetch from before the snapshot fetch began
        st = self.state
        if resp.error is not FetchError.NONE or not isinstance(st, Follower):
            if isinstance(st, Follower) or not self.is_voter:
                self._fetch_in_flight_since = None
                self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        if resp.sender != st.leader_id:
            return
        if resp.fetch_offset != self.log.end_offset or (
            resp.last_fetched_epoch != self.log.last_epoch
        ):
            return  # stale or duplicated: it answers a fetch we no longer stand behind
        self._fetch_in_flight_since = None
        self._leader_contact_ms = now_ms
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()
        if resp.snapshot_id is not None:
            # We are below the leader's log start (or diverged before it): fetch its snapshot.
            self._snapshot_fetch = _SnapshotFetch(resp.snapshot_id)
            self._send_fetch(now_ms)
            return
        div = resp.diverging_epoch
        if div is not None:
            _, own_end = self.log.end_offset_for_epoch(div.epoch)
            self._truncate_to(min(div.end_offset, own_end))
            self._send_fetch(now_ms)
            return
        if resp.records:
            assert resp.records[0].offset == self.log.end_offset
            self.log.append(list(resp.records))
        new_hw = min(resp.high_watermark, self.log.end_offset)
        self.high_watermark = max(self.high_watermark, new_hw)
        if resp.records:
            self._send_fetch(now_ms)
        else:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms

    def _on_fetch_snapshot_response(self, resp: FetchSnapshotResponse, now_ms: int) -> None:
        if resp.epoch < self.epoch or isinstance(self.state, Leader):
            return
        self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
        st = self.state
        sf = self._snapshot_fetch
        if (
            sf is None
            or not isinstance(st, Follower)
            or resp.sender != st.leader_id
            or resp.snapshot_id != sf.snapshot_id
            or resp.position != len(sf.data)
        ):
            return  # stale or duplicated
        self._fetch_in_flight_since = None
        if resp.error is FetchError.NOT_LEADER or resp.error is FetchError.FENCED_EPOCH:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        self._leader_contact_ms = now_ms
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()
        if resp.error is not FetchError.NONE or (sf.size is not None and sf.size != resp.size):
            # Gone (the leader took a newer one) or inconsistent: fetch again, which names the
            # snapshot to use now.
            self._snapshot_fetch = None
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        sf.size = resp.size
        sf.data += resp.data
        if len(sf.data) > resp.size:
            self._snapshot_fetch = None
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        if len(sf.data) == resp.size:
            self._install_snapshot(sf.snapshot_id, bytes(sf.data))
            self._snapshot_fetch = None
            self._send_fetch(now_ms)
        elif resp.data:
            self._send_fetch(now_ms)
        else:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms

    def _install_snapshot(self, snapshot_id: SnapshotId, data: bytes) -> None:
        """Replace the log by a snapshot fetched from the leader (held in memory until poll)."""
        end = snapshot_id.end_offset
        # We were sent a snapshot only when our log does not hold the committed entry at
        # end - 1, so our high watermark is below it: nothing committed is lost.
        assert end >= self.high_watermark, (
            f"node {self.node_id} installing {snapshot_id} below its HW {self.high_watermark}"
        )
        self.log.reset_to_snapshot(snapshot_id)
        self.high_watermark = max(self.high_watermark, end)
        self._applied = max(self._applied, end)
        self._pending_install = (snapshot_id, data)
        self._log_start_dirty = True
        self._stable_end = end
        self._truncated = False
        self._durable_end = 0  # until the driver wrote the snapshot and advanced

    def _truncate_to(self, offset: int) -> None:
        assert offset >= self.high_watermark, (
            f"node {self.node_id} truncating committed entries: {offset} < HW {self.high_watermark}"
        )
        if offset >= self.log.end_offset:
            return
        self.log.truncate_to(offset)
        if offset < self._stable_end:
            self._stable_end = offset
            self._truncated = True
        self._durable_end = min(self._durable_end, offset)

    # ------------------------------------------------------------------ elections

    def _log_up_to_date(self, last_epoch: int, end_offset: int) -> bool:
        return (last_epoch, end_offset) >= (self.log.last_epoch, self.log.end_offset)

    def _on_vote_request(self, req: VoteRequest, now_ms: int) -> None:
        if not self.is_voter:
            self._reply_vote(req, False)
            return
        if req.pre_vote:
            if req.candidate_epoch - 1 > self.epoch:
                # The sender is already in a later epoch (it became a candidate where we did
                # not hear it). Move there too, stepping down if we lead, or it can never
                # rejoin: it ignores our older epoch, and PreVote keeps it from bumping ours
                # (Kafka's handleVoteRequest moves to the replica's epoch in both cases).
                self._become_unattached(req.candidate_epoch - 1, now_ms)
            st = self.state
            granted = (
                req.candidate_epoch > self.epoch
                and not isinstance(st, Leader)
                and not (
                    isinstance(st, Follower)
                    and self._leader_contact_ms is not None
                    and now_ms - self._leader_contact_ms < self.fetch_timeout_ms
                )
                and self._log_up_to_date(req.last_epoch, req.end_offset)
            )
            self._reply_vote(req, granted)
            return
        if req.candidate_epoch < self.epoch:
            self._reply_vote(req, False)
            return
        if req.candidate_epoch > self.epoch:
            self._become_unattached(req.candidate_epoch, now_ms)
        st = self.state
        voted = self.election.voted_for
        granted = False
        if voted == req.sender and isinstance(st, (Unattached, Follower)):
            granted = True  # a duplicate request: repeat the answer
        elif (
            isinstance(st, Unattached)
            and voted is None
            and self._log_up_to_date(req.last_epoch, req.end_offset)
        ):
            self._transition(Unattached(st.epoch, req.sender), ElectionState(st.epoch, req.sender))
            self._reset_election_timer(now_ms)
            granted = True
        self._reply_vote(req, granted)

    def _reply_vote(self, req: VoteRequest, granted: bool) -> None:
        self._send(
            req.sender,
            VoteResponse(
                self.node_id,
                self.epoch,
                req.candidate_epoch,
                granted,
                req.pre_vote,
                self.leader_id,
            ),
        )

    def _on_vote_response(self, resp: VoteResponse, now_ms: int) -> None:
        if resp.epoch > self.epoch:
            self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
            return
        st = self.state
        if resp.pre_vote:
            if not isinstance(st, Prospective) or resp.candidate_epoch != st.epoch + 1:
                return
            if resp.granted:
                self.state = Prospective(st.epoch, st.votes_granted | {resp.sender})
                self._maybe_win_prevote(now_ms)
            elif resp.epoch == st.epoch and resp.leader_id is not None:
                # A live leader exists in our epoch: follow it instead (KIP-996).
                self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
        else:
            if not isinstance(st, Candidate) or resp.candidate_epoch != st.epoch:
                return
            if resp.granted:
                self.state = Candidate(st.epoch, st.votes_granted | {resp.sender})
                self._maybe_win_election(now_ms)

    def _on_begin_quorum_epoch(self, msg: BeginQuorumEpoch, now_ms: int) -> None:
        if msg.epoch < self.epoch:
            return
        st = self.state
        if msg.epoch == self.epoch:
            assert not isinstance(st, (Leader, Resigned)) or msg.sender == self.node_id, (
                f"two leaders in epoch {msg.epoch}: {self.node_id} and {msg.sender}"
            )
            if isinstance(st, Follower):
                return
        self._observe_epoch(msg.epoch, msg.sender, now_ms)
        if isinstance(self.state, Follower):
            self._leader_contact_ms = now_ms
            self._send_fetch(now_ms)

    def _on_end_quorum_epoch(self, msg: EndQuorumEpoch, now_ms: int) -> None:
        if msg.epoch < self.epoch:
            return
        if msg.epoch > self.epoch:
            self._become_unattached(msg.epoch, now_ms)
            return
        st = self.state
        if isinstance(st, Follower) and st.leader_id == msg.sender:
            # The leader is gone: grant PreVotes and start our own election soon (randomized).
            self._leader_contact_ms = None
            self._follower_deadline_ms = now_ms + self.random.randrange(
                max(1, self.election_timeout_ms // 2)
            )

    def _send(self, dest: int, msg: Message) -> None:
        self._outbox.append((dest, msg))
