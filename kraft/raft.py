"""Sans-IO Raft in KRaft's dialect (KIP-595, pull-based) with PreVote and check-quorum.

The node never touches sockets, clocks or files. The driver loop is (etcd-io/raft's Ready/Advance):

    node.step(msg, now_ms) / node.tick(now_ms) / node.append(records)
    ready = node.poll()
    persist ready.election_state_to_persist        (write temp, fsync, rename, fsync dir)
    truncate the durable log to ready.truncate_to  (if not None)
    append ready.entries_to_append; fsync
    send ready.messages_to_send                    (only now: they may depend on the above)
    apply ready.committed
    node.advance(ready, now_ms)                    (tells the node its entries are durable)

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
    Message,
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

MAX_FETCH_ENTRIES = 64
LEADER_CHANGE_DATA = b"LeaderChange"


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

    def is_empty(self) -> bool:
        return (
            self.election_state_to_persist is None
            and self.truncate_to is None
            and not self.entries_to_append
            and not self.messages_to_send
            and not self.committed
        )


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
        self.election = election_state
        self.state: EpochState = initial_state(node_id, election_state)
        if not self.is_voter:
            assert not isinstance(self.state, Resigned), "an observer was never leader"

        self.high_watermark = 0
        self._applied = 0
        # Disk bookkeeping: the disk matches memory below _stable_end (as of the last poll);
        # _durable_end is what the driver acknowledged via advance().
        self._stable_end = log.end_offset
        self._durable_end = log.end_offset
        self._truncated = False
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
        entries = self.log.entries_from(self._stable_end, self.log.end_offset - self._stable_end)
        committed_end = min(self.high_watermark, self.log.end_offset)
        committed = (
            self.log.entries_from(self._applied, committed_end - self._applied)
            if committed_end > self._applied
            else []
        )
        ready = Ready(
            election_state_to_persist=election,
            truncate_to=truncate_to,
            entries_to_append=entries,
            messages_to_send=self._outbox,
            committed=committed,
            high_watermark=self.high_watermark,
            durable_end_offset=self.log.end_offset,
        )
        self._election_dirty = False
        self._truncated = False
        self._stable_end = self.log.end_offset
        self._applied = max(self._applied, committed_end)
        self._outbox = []
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready, now_ms: int) -> None:
        assert ready is self._outstanding, "advance() takes the Ready from the last poll()"
        self._outstanding = None
        # A truncation after poll() may have removed part of what this Ready wrote.
        self._durable_end = min(ready.durable_end_offset, self._stable_end)
        st = self.state
        if isinstance(st, Leader):
            self._update_high_watermark(st)

    # ------------------------------------------------------------------ transitions

    def _start(self, now_ms: int) -> None:
        if self._started:
            return
        self._started = True
        self._reset_election_timer(now_ms)
        self._follower_deadline_ms = now_ms + self.fetch_timeout_ms

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

    def _become_unattached(self, epoch: int, now_ms: int) -> None:
        self._transition(Unattached(epoch), ElectionState(epoch))
        self._reset_election_timer(now_ms)

    def _become_follower(self, epoch: int, leader_id: int, now_ms: int) -> None:
        voted = self.election.voted_for if epoch == self.election.epoch else None
        self._transition(Follower(epoch, leader_id), ElectionState(epoch, voted, leader_id))
        # Only the leader itself counts as contact (fetch response, BeginQuorumEpoch); hearing
        # of it from a third party must not make us reject PreVotes.
        self._leader_contact_ms = None
        self._follower_deadline_ms = now_ms + self.fetch_timeout_ms
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
        rs = st.voter_states.get(req.sender)
        if rs is not None:
            rs.last_fetch_ms = now_ms
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
            rs.end_offset = req.fetch_offset
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
        if self._fetch_in_flight_since is not None:
            if now_ms - self._fetch_in_flight_since < self.request_timeout_ms:
                return
        elif now_ms < self._next_fetch_ms:
            return
        self._send_fetch(now_ms)

    def _send_fetch(self, now_ms: int) -> None:
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
        self._follower_deadline_ms = now_ms + self.fetch_timeout_ms
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
