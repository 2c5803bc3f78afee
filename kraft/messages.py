"""Raft messages as plain values (not wire schemas; the driver maps them to Kafka APIs).

Every message names its ``sender`` so ``RaftNode.step`` needs no transport metadata.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from kraft.log import LogEntry


class FetchError(enum.Enum):
    NONE = 0
    NOT_LEADER = 6  # NOT_LEADER_OR_FOLLOWER; leader_id/epoch say who to ask instead
    FENCED_EPOCH = 74  # FENCED_LEADER_EPOCH: the fetcher's epoch is stale
    SNAPSHOT_NOT_FOUND = 98  # FetchSnapshot for a snapshot the leader no longer has
    POSITION_OUT_OF_RANGE = 99  # FetchSnapshot position beyond the snapshot's size


@dataclass(frozen=True, slots=True, order=True)
class SnapshotId:
    """A snapshot holds every entry below ``end_offset``; ``epoch`` is the epoch of the last one
    (KIP-630). On disk: ``<end_offset:020d>-<epoch:010d>.checkpoint``."""

    end_offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class VoteRequest:
    sender: int
    candidate_epoch: int  # for a PreVote, the epoch the candidate *would* use (not persisted)
    last_epoch: int
    end_offset: int
    pre_vote: bool = False
    # Vote v1+ (KIP-853): the candidate's directory id and the directory id it believes the
    # receiving voter has; None when unknown (kraft.version 0, older versions).
    candidate_directory_id: uuid.UUID | None = None
    voter_directory_id: uuid.UUID | None = None


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
    # v1 (KIP-853): the directory id the leader's voter set names for the receiver.
    voter_directory_id: uuid.UUID | None = None


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
    # The fetcher's metadata directory id (Fetch v17 ReplicaDirectoryId, KIP-853); None if the
    # fetcher did not say (older versions).
    directory_id: uuid.UUID | None = None

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
    # Set when fetch_offset is below the leader's log start: fetch this snapshot instead.
    snapshot_id: SnapshotId | None = None
    error: FetchError = FetchError.NONE


@dataclass(frozen=True, slots=True)
class FetchSnapshotRequest:
    sender: int  # replica_id
    epoch: int  # the fetcher's current leader epoch
    snapshot_id: SnapshotId
    position: int  # byte position in the snapshot file


@dataclass(frozen=True, slots=True)
class FetchSnapshotResponse:
    sender: int
    epoch: int
    leader_id: int | None
    snapshot_id: SnapshotId
    position: int  # where ``data`` starts (echo of the request)
    size: int = 0  # total size of the snapshot in bytes
    data: bytes = b""
    error: FetchError = FetchError.NONE


@dataclass(frozen=True, slots=True)
class ReplicaDescription:
    """One row of DescribeQuorum; -1 means unknown (Kafka's convention)."""

    replica_id: int
    log_end_offset: int = -1
    last_fetch_timestamp: int = -1
    last_caught_up_timestamp: int = -1
    directory_id: uuid.UUID | None = None  # DescribeQuorum v2 ReplicaDirectoryId


@dataclass(frozen=True, slots=True)
class QuorumDescription:
    """What the leader reports for DescribeQuorum (``RaftNode.describe_quorum``)."""

    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: tuple[ReplicaDescription, ...]
    observers: tuple[ReplicaDescription, ...]


Message = (
    VoteRequest | VoteResponse | BeginQuorumEpoch | EndQuorumEpoch | FetchRequest | FetchResponse
    | FetchSnapshotRequest | FetchSnapshotResponse
)
