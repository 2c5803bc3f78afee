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

The node is one class assembled from parts: the core here (public API, ``poll``/``advance``,
epoch transitions), ``kraft.raft_election`` (Vote, PreVote, Begin/EndQuorumEpoch),
``kraft.raft_leader`` (serving fetches, the high watermark, check-quorum),
``kraft.raft_follower`` (fetching, snapshot install, truncation) and ``kraft.raft_membership``
(the voter set as data in the log and the leader's changes to it, KIP-853).
"""

from __future__ import annotations

import random as _random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kraft.log import LogEntry, RaftLog
from kraft.messages import (
    BeginQuorumEpoch,
    EndQuorumEpoch,
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
from kraft.raft_election import LEADER_CHANGE_DATA, ElectionsMixin
from kraft.raft_follower import FollowerMixin, _SnapshotFetch
from kraft.raft_leader import OBSERVER_SESSION_TIMEOUT_MS, LeaderMixin
from kraft.raft_membership import MembershipMixin
from kraft.snapshot_store import MemorySnapshotStore, SnapshotStore
from kraft.voters import NO_DIRECTORY, VoterHistory, VoterSet

__all__ = [
    "LEADER_CHANGE_DATA",
    "MAX_FETCH_ENTRIES",
    "MAX_SNAPSHOT_CHUNK_BYTES",
    "OBSERVER_SESSION_TIMEOUT_MS",
    "NotLeader",
    "RaftNode",
    "Ready",
]

MAX_FETCH_ENTRIES = 64
MAX_SNAPSHOT_CHUNK_BYTES = 1 << 20


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


def _dir(directory_id: object) -> uuid.UUID | None:
    """A directory id for DescribeQuorum: None when unknown or unset (kraft.version 0)."""
    if isinstance(directory_id, uuid.UUID) and directory_id != NO_DIRECTORY:
        return directory_id
    return None


class RaftNode(ElectionsMixin, LeaderMixin, FollowerMixin, MembershipMixin):
    def __init__(
        self,
        node_id: int,
        voters: frozenset[int] | VoterSet,
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
        kraft_version: int = 0,
        directory_id: uuid.UUID = NO_DIRECTORY,
        snapshot_voters: Callable[[bytes], VoterSet | None] | None = None,
    ) -> None:
        """``voters``: the static voter ids (kraft.version 0) or, with ``kraft_version`` 1,
        the bootstrap voter set that holds until the log says otherwise (KIP-853).
        ``snapshot_voters`` reads the voter set a snapshot's bytes hold (None: none)."""
        assert voters, "a quorum needs voters"
        self.node_id = node_id
        self.directory_id = directory_id
        initial = voters if isinstance(voters, VoterSet) else VoterSet.static(voters)
        self._history = VoterHistory(initial, kraft_version=kraft_version)
        self._snapshot_voters = snapshot_voters
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
        # The voter sets the log holds (after the snapshot's, if it says one).
        sid = log.snapshot_id
        if sid is not None and snapshot_voters is not None:
            size = self.snapshots.size(sid)
            if size is not None:
                vs = snapshot_voters(self.snapshots.read(sid, 0, size))
                if vs is not None:
                    self._history.reset(sid.end_offset - 1, vs)
        if log.end_offset > log.start_offset:
            self._log_appended(log.entries_from(log.start_offset,
                                                log.end_offset - log.start_offset))
        if not self.is_voter and self._history.kraft_version == 0:
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
            if self.may_campaign and now_ms >= self._follower_deadline_ms:
                self._become_prospective(now_ms)
            else:
                self._maybe_fetch(now_ms)
        elif not self.may_campaign:
            self._maybe_fetch(now_ms)  # unattached observer (or removed voter): probe a voter
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
        self._history.compact(end)
        self._log_start_dirty = True

    def describe_quorum(self, now_ms: int) -> QuorumDescription:
        """DescribeQuorum as the leader sees it (the leader's own row uses ``now_ms``)."""
        st = self.state
        if not isinstance(st, Leader):
            raise NotLeader(self.epoch, self.leader_id)
        self._expire_observers(st, now_ms)

        vs = self.voter_set

        def row(rid: int, rs: ReplicaState) -> ReplicaDescription:
            n = vs.get(rid)
            return ReplicaDescription(
                rid,
                rs.end_offset if rs.last_fetch_timestamp >= 0 else -1,
                rs.last_fetch_timestamp,
                rs.last_caught_up_timestamp,
                _dir(n.directory_id if n is not None else rs.directory_id),
            )

        me = ReplicaDescription(self.node_id, self.log.end_offset, now_ms, now_ms,
                                _dir(self.directory_id))
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

    def _is_majority(self, votes: frozenset[int]) -> bool:
        return self._is_majority_count(len(votes & self.voters))

    def _is_majority_count(self, n: int) -> bool:
        return 2 * n > len(self.voters)

    def _send(self, dest: int, msg: Message) -> None:
        self._outbox.append((dest, msg))
