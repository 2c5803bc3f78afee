"""Raft messages as plain values (not wire schemas; the driver maps them to Kafka APIs).

Every message names its ``sender`` so ``RaftNode.step`` needs no transport metadata.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kraft.log import LogEntry


class FetchError(enum.Enum):
    NONE = 0
    NOT_LEADER = 6  # NOT_LEADER_OR_FOLLOWER; leader_id/epoch say who to ask instead
    FENCED_EPOCH = 74  # FENCED_LEADER_EPOCH: the fetcher's epoch is stale


@dataclass(frozen=True, slots=True)
class VoteRequest:
    sender: int
    candidate_epoch: int  # for a PreVote, the epoch the candidate *would* use (not persisted)
    last_epoch: int
    end_offset: int
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse:
    sender: int
    epoch: int  # the responder's current epoch
    candidate_epoch: int  # echo of the request, to match responses to rounds
    granted: bool
    pre_vote: bool
    leader_id: int | None = None


@dataclass(frozen=True, slots=True)
class BeginQuorumEpoch:
    sender: int
    epoch: int


@dataclass(frozen=True, slots=True)
class EndQuorumEpoch:
    sender: int
    epoch: int


@dataclass(frozen=True, slots=True)
class FetchRequest:
    sender: int  # replica_id
    epoch: int
    fetch_offset: int
    last_fetched_epoch: int

    @property
    def replica_id(self) -> int:
        return self.sender


@dataclass(frozen=True, slots=True)
class DivergingEpoch:
    epoch: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class FetchResponse:
    sender: int
    epoch: int
    leader_id: int | None
    # Echo of the request so a late or duplicated response is recognised as stale.
    fetch_offset: int
    last_fetched_epoch: int
    records: tuple[LogEntry, ...] = ()
    high_watermark: int = 0
    diverging_epoch: DivergingEpoch | None = None
    error: FetchError = FetchError.NONE


Message = (
    VoteRequest | VoteResponse | BeginQuorumEpoch | EndQuorumEpoch | FetchRequest | FetchResponse
)
