"""Epoch states of a KRaft replica (KIP-595 + KIP-996 PreVote), as in Kafka's ``QuorumState``.

Each state is an immutable value; ``check_transition`` asserts the legal moves, so an illegal one
is a bug that crashes loudly. ``ElectionState`` is the durable part (epoch, vote, leader) that the
driver must persist before it sends any message produced together with it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class StateKind(enum.Enum):
    UNATTACHED = "unattached"
    PROSPECTIVE = "prospective"
    CANDIDATE = "candidate"
    LEADER = "leader"
    FOLLOWER = "follower"
    RESIGNED = "resigned"


@dataclass(frozen=True, slots=True)
class ElectionState:
    """What must survive a crash: the epoch, our vote in it, and its leader if known."""

    epoch: int
    voted_for: int | None = None
    leader_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unattached:
    epoch: int
    voted_for: int | None = None
    kind: StateKind = field(default=StateKind.UNATTACHED, init=False)


@dataclass(frozen=True, slots=True)
class Prospective:
    """Running a PreVote round for ``epoch + 1`` without bumping the epoch (KIP-996)."""

    epoch: int
    votes_granted: frozenset[int] = frozenset()
    kind: StateKind = field(default=StateKind.PROSPECTIVE, init=False)


@dataclass(frozen=True, slots=True)
class Candidate:
    epoch: int
    votes_granted: frozenset[int] = frozenset()
    kind: StateKind = field(default=StateKind.CANDIDATE, init=False)


@dataclass(slots=True)
class ReplicaState:
    """The leader's view of one replica: its durable end offset and when it last fetched.

    ``last_fetch_ms`` is any contact (Fetch or FetchSnapshot; check-quorum and observer expiry).
    The ``last_*`` fields with -1 for "never" feed DescribeQuorum and follow Kafka's
    ``LeaderState.ReplicaState.updateFollowerState``: they move on valid fetches only.
    """

    end_offset: int = 0
    last_fetch_ms: int | None = None
    last_fetch_timestamp: int = -1
    last_caught_up_timestamp: int = -1
    # The leader's log end when this replica last fetched (Kafka's lastFetchLeaderLogEndOffset).
    last_fetch_leader_end_offset: int = -1
    # The metadata directory id it fetched with (Fetch v17, KIP-853), if it said.
    directory_id: object = None

    def update_follower_state(self, now_ms: int, fetch_offset: int, leader_end: int) -> None:
        """A valid fetch at ``fetch_offset`` while the leader's log ends at ``leader_end``.

        Caught up now if it reached the leader's end; otherwise caught up as of its previous
        fetch if it reached the leader's end as of that fetch.
        """
        if fetch_offset >= leader_end:
            self.last_caught_up_timestamp = max(self.last_caught_up_timestamp, now_ms)
        elif 0 < self.last_fetch_leader_end_offset <= fetch_offset:
            self.last_caught_up_timestamp = max(
                self.last_caught_up_timestamp, self.last_fetch_timestamp
            )
        self.last_fetch_leader_end_offset = leader_end
        self.last_fetch_timestamp = max(self.last_fetch_timestamp, now_ms)
        self.end_offset = fetch_offset


@dataclass(frozen=True, slots=True)
class Leader:
    epoch: int
    epoch_start_offset: int
    # Per-voter fetch state, following the latest voter set (KIP-853 changes move entries
    # between the two mappings); the values are updated in place.
    voter_states: dict[int, ReplicaState] = field(default_factory=dict, compare=False)
    # Observers that fetched from this leader, by replica id (bounded: idle ones are dropped).
    observer_states: dict[int, ReplicaState] = field(default_factory=dict, compare=False)
    kind: StateKind = field(default=StateKind.LEADER, init=False)


@dataclass(frozen=True, slots=True)
class Follower:
    epoch: int
    leader_id: int
    kind: StateKind = field(default=StateKind.FOLLOWER, init=False)


@dataclass(frozen=True, slots=True)
class Resigned:
    epoch: int
    kind: StateKind = field(default=StateKind.RESIGNED, init=False)


EpochState = Unattached | Prospective | Candidate | Leader | Follower | Resigned


def check_transition(old: EpochState, new: EpochState) -> None:
    """Assert that ``old -> new`` is a legal move. Illegal moves are bugs."""
    k, e = old.kind, old.epoch
    assert new.epoch >= e, f"epoch went backwards: {old} -> {new}"
    if isinstance(new, Unattached):
        ok = new.epoch > e or (
            # Granting a vote in the current epoch, or a failed PreVote round.
            new.epoch == e
            and (
                (k is StateKind.UNATTACHED and old.voted_for is None)  # type: ignore[union-attr]
                or k is StateKind.PROSPECTIVE
            )
        )
    elif isinstance(new, Prospective):
        ok = new.epoch == e and k in (
            StateKind.UNATTACHED,
            StateKind.FOLLOWER,
            StateKind.PROSPECTIVE,
            StateKind.CANDIDATE,
            StateKind.RESIGNED,
        )
    elif isinstance(new, Candidate):
        ok = k is StateKind.PROSPECTIVE and new.epoch == e + 1
    elif isinstance(new, Leader):
        ok = k is StateKind.CANDIDATE and new.epoch == e
    elif isinstance(new, Follower):
        ok = new.epoch > e or (
            new.epoch == e
            and k in (StateKind.UNATTACHED, StateKind.PROSPECTIVE, StateKind.CANDIDATE)
        )
        if new.epoch == e and isinstance(old, Follower):
            ok = old.leader_id == new.leader_id
    elif isinstance(new, Resigned):
        ok = k is StateKind.LEADER and new.epoch == e
    else:  # pragma: no cover
        ok = False
    assert ok, f"illegal quorum state transition {old} -> {new}"


def initial_state(node_id: int, election: ElectionState) -> EpochState:
    """The state a (re)started replica resumes in, from its durable election state."""
    if election.leader_id == node_id:
        return Resigned(election.epoch)
    if election.leader_id is not None:
        return Follower(election.epoch, election.leader_id)
    return Unattached(election.epoch, election.voted_for)
