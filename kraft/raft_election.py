"""RaftNode's elections: PreVote and Vote (KIP-595, KIP-996), a voter's way from prospective to
candidate to leader, BeginQuorumEpoch and EndQuorumEpoch (sent and received), and a leader's
resignation.

``ElectionsMixin`` is one of the parts ``kraft.raft.RaftNode`` is made of: its methods work on
the node's state and use its transitions (``_transition``, ``_become_unattached``, ...).
"""

from __future__ import annotations

import uuid

from kraft.log import LogEntry
from kraft.messages import (
    BeginQuorumEpoch,
    EndQuorumEpoch,
    VoteRequest,
    VoteResponse,
)
from kraft.quorum_state import (
    Candidate,
    ElectionState,
    Follower,
    Leader,
    Prospective,
    ReplicaState,
    Resigned,
    Unattached,
)
from kraft.voters import NO_DIRECTORY

LEADER_CHANGE_DATA = b"LeaderChange"


class ElectionsMixin:
    """Elections and leadership changes of ``RaftNode``."""

    # ------------------------------------------------------------------ transitions

    def _become_prospective(self, now_ms: int) -> None:
        if not self.may_campaign:
            return
        self._transition(Prospective(self.epoch, frozenset({self.node_id})), self.election)
        self._reset_election_timer(now_ms)
        self._leader_contact_ms = None
        for v in self.voters - {self.node_id}:
            self._send(
                v,
                VoteRequest(
                    self.node_id, self.epoch + 1, self.log.last_epoch, self.log.end_offset, True,
                    *self._vote_keys(v),
                ),
            )
        self._maybe_win_prevote(now_ms)

    def _vote_keys(self, voter: int) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        """Vote v1's directory ids (KIP-853): ours and the one our voter set names for
        ``voter``; None where unknown (kraft.version 0)."""
        n = self.voter_set.get(voter)
        theirs = n.directory_id if n is not None and n.directory_id != NO_DIRECTORY else None
        ours = self.directory_id if self.directory_id != NO_DIRECTORY else None
        return ours, theirs

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
                v, VoteRequest(self.node_id, epoch, self.log.last_epoch, self.log.end_offset,
                               False, *self._vote_keys(v))
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
        self._append_bootstrap_voters()  # kraft.version 1: the bootstrap voter set, once
        self._send_begin_quorum_epoch(now_ms)
        self._update_high_watermark(self.state)  # type: ignore[arg-type]

    def _send_begin_quorum_epoch(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, Leader)
        for v, rs in st.voter_states.items():
            if rs.last_fetch_ms is None:
                self._send(v, BeginQuorumEpoch(self.node_id, st.epoch, self._vote_keys(v)[1]))
        self._next_begin_epoch_ms = now_ms + self.request_timeout_ms

    def _resign(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, Leader)
        self._transition(Resigned(st.epoch), self.election)
        self._reset_election_timer(now_ms)
        for v in self.voters - {self.node_id}:
            self._send(v, EndQuorumEpoch(self.node_id, st.epoch))

    # ------------------------------------------------------------------ elections

    def _log_up_to_date(self, last_epoch: int, end_offset: int) -> bool:
        return (last_epoch, end_offset) >= (self.log.last_epoch, self.log.end_offset)

    def _on_vote_request(self, req: VoteRequest, now_ms: int) -> None:
        if not self.is_voter and self.kraft_version == 0:
            self._reply_vote(req, False)
            return
        # With a dynamic voter set (KIP-853, and the Raft dissertation's 4.2.2) a replica
        # answers votes whatever its own latest set says: a voter whose removal is not yet
        # committed may be needed by the others' majority. The candidate counts only votes of
        # its own voters. A request meant for another directory (our disk was replaced: we
        # are not the voter it asks) is refused (Kafka answers INVALID_VOTER_KEY).
        if (req.voter_directory_id is not None and self.directory_id != NO_DIRECTORY
                and req.voter_directory_id != self.directory_id):
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
        if (msg.voter_directory_id is not None and self.directory_id != NO_DIRECTORY
                and msg.voter_directory_id != self.directory_id):
            return  # meant for the voter of another directory (Kafka: INVALID_VOTER_KEY)
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
