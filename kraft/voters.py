"""The KRaft voter set as data in the log (KIP-853).

With ``kraft.version`` 1 the voters are not configuration: they are ``VotersRecord`` control
records (control type 6, next to a ``KRaftVersionRecord``, type 5) in the metadata log. The
first set comes from ``kafka-storage format --standalone / --initial-controllers`` (the
bootstrap, ``storage/meta_properties.py``); the first leader of such a log appends it, and every
change (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter) is a new VotersRecord the leader
appends. A replica uses the LATEST voter set in its log, committed or not, and forgets a set
when truncation removes its record (``VoterHistory``). With ``kraft.version`` 0 the set is the
static ``controller.quorum.voters`` and never changes.

A voter is (id, directory id): a controller whose disk was wiped comes back with a new directory
id and is not the voter it replaces.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from kraft.codec import DecodeError
from kraft.metadata_records import (
    KRaftVersionRecord,
    VotersRecord,
    decode_control_record,
    encode_control_record,
)
from storage.control_records import ControlRecordType

__all__ = [
    "KRAFT_VERSION_TYPE",
    "NO_DIRECTORY",
    "VOTERS_TYPE",
    "Endpoint",
    "VoterHistory",
    "VoterNode",
    "VoterSet",
    "decode_kraft_version",
    "decode_voters",
    "encode_kraft_version",
    "encode_voters",
]

KRAFT_VERSION_TYPE = int(ControlRecordType.KRAFT_VERSION)
VOTERS_TYPE = int(ControlRecordType.KRAFT_VOTERS)
NO_DIRECTORY = uuid.UUID(int=0)  # Kafka's Uuid.ZERO_UUID: "no directory id" (kraft.version 0)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class VoterNode:
    """One voter: its id, directory id, controller endpoints and supported kraft.version range."""

    voter_id: int
    directory_id: uuid.UUID = NO_DIRECTORY
    endpoints: tuple[Endpoint, ...] = ()
    min_kraft_version: int = 0
    max_kraft_version: int = 1

    @property
    def key(self) -> tuple[int, uuid.UUID]:
        return (self.voter_id, self.directory_id)


@dataclass(frozen=True, slots=True)
class VoterSet:
    """An immutable voter set keyed by voter id (at most one directory per id, as in Kafka)."""

    nodes: tuple[VoterNode, ...] = field(default=())

    @classmethod
    def of(cls, nodes: list[VoterNode] | tuple[VoterNode, ...]) -> VoterSet:
        by_id = {n.voter_id: n for n in nodes}
        assert len(by_id) == len(nodes), f"duplicate voter ids in {nodes}"
        return cls(tuple(sorted(by_id.values(), key=lambda n: n.voter_id)))

    @classmethod
    def static(cls, ids: frozenset[int] | set[int] | list[int]) -> VoterSet:
        return cls.of([VoterNode(i) for i in ids])

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(n.voter_id for n in self.nodes)

    def get(self, voter_id: int) -> VoterNode | None:
        for n in self.nodes:
            if n.voter_id == voter_id:
                return n
        return None

    def contains(self, voter_id: int, directory_id: uuid.UUID | None = None) -> bool:
        """Is (id, directory id) a voter? A ``None`` or zero directory id matches by id alone
        (a kraft.version 0 voter, or a sender that does not say its directory)."""
        n = self.get(voter_id)
        if n is None:
            return False
        if directory_id is None or directory_id == NO_DIRECTORY or n.directory_id == NO_DIRECTORY:
            return True
        return n.directory_id == directory_id

    def added(self, node: VoterNode) -> VoterSet:
        assert self.get(node.voter_id) is None
        return VoterSet.of([*self.nodes, node])

    def removed(self, voter_id: int) -> VoterSet:
        return VoterSet.of([n for n in self.nodes if n.voter_id != voter_id])

    def replaced(self, node: VoterNode) -> VoterSet:
        return VoterSet.of([node if n.voter_id == node.voter_id else n for n in self.nodes])

    def overlaps_majority(self, other: VoterSet) -> bool:
        """True if every majority of ``self`` intersects every majority of ``other``: the sets
        differ by at most one voter (KIP-853's one-change-at-a-time rule), or are equal."""
        a, b = self.ids, other.ids
        return len(a ^ b) <= 1


def encode_voters(voters: VoterSet) -> bytes:
    """The value of a VotersRecord control record (control type 6)."""
    V = VotersRecord.structs["Voter"]
    E = VotersRecord.structs["Endpoint"]
    F = VotersRecord.structs["KRaftVersionFeature"]
    rec = VotersRecord.cls(version=0, voters=[
        V.cls(voter_id=n.voter_id, voter_directory_id=n.directory_id,
              endpoints=[E.cls(name=e.name, host=e.host, port=e.port) for e in n.endpoints],
              kraft_version_feature=F.cls(min_supported_version=n.min_kraft_version,
                                          max_supported_version=n.max_kraft_version))
        for n in voters.nodes])
    return encode_control_record(VOTERS_TYPE, rec)


def decode_voters(data: bytes) -> VoterSet:
    """A VotersRecord value; ``DecodeError`` if malformed."""
    rec = decode_control_record(VOTERS_TYPE, data)
    nodes = []
    for v in rec.voters:
        f = v.kraft_version_feature
        nodes.append(VoterNode(
            v.voter_id, v.voter_directory_id,
            tuple(Endpoint(e.name, e.host, e.port) for e in v.endpoints),
            f.min_supported_version, f.max_supported_version))
    try:
        return VoterSet.of(nodes)
    except AssertionError as e:
        raise DecodeError(str(e)) from None


def encode_kraft_version(kraft_version: int) -> bytes:
    """The value of a KRaftVersionRecord control record (control type 5)."""
    return encode_control_record(
        KRAFT_VERSION_TYPE, KRaftVersionRecord.cls(version=0, kraft_version=kraft_version))


def decode_kraft_version(data: bytes) -> int:
    return int(decode_control_record(KRAFT_VERSION_TYPE, data).kraft_version)


class VoterHistory:
    """The voter sets a replica's log holds, by the offset of their VotersRecord.

    ``(-1, set)`` is the set from outside the log: the static voters (kraft.version 0) or the
    bootstrap set of a log formatted with initial controllers, which the first leader appends.
    ``latest`` is what the replica uses (KIP-853: committed or not); ``truncate`` forgets the
    sets at and above an offset, as the log does; ``compact`` forgets the sets a snapshot made
    redundant, keeping the last one at or below its end.
    """

    __slots__ = ("_entries", "kraft_version")

    def __init__(self, initial: VoterSet, *, kraft_version: int = 0,
                 offset: int = -1) -> None:
        self._entries: list[tuple[int, VoterSet]] = [(offset, initial)]
        self.kraft_version = kraft_version

    @property
    def latest(self) -> VoterSet:
        return self._entries[-1][1]

    @property
    def latest_offset(self) -> int:
        return self._entries[-1][0]

    @property
    def from_log(self) -> bool:
        """Is the latest set in the log (not only the bootstrap or static configuration)?"""
        return self._entries[-1][0] >= 0

    def at(self, offset: int) -> VoterSet:
        """The voter set in force at ``offset`` (the last record at or below it)."""
        for off, vs in reversed(self._entries):
            if off <= offset:
                return vs
        return self._entries[0][1]

    def append(self, offset: int, voters: VoterSet) -> None:
        assert offset > self._entries[-1][0], (offset, self._entries[-1][0])
        self._entries.append((offset, voters))

    def truncate(self, offset: int) -> None:
        """The log lost every entry at and above ``offset``: so do we (never the first)."""
        while len(self._entries) > 1 and self._entries[-1][0] >= offset:
            self._entries.pop()

    def reset(self, offset: int, voters: VoterSet) -> None:
        """The log restarts from a snapshot whose voter set is ``voters`` (as of ``offset``)."""
        self._entries = [(offset, voters)]

    def compact(self, below: int) -> None:
        keep_from = 0
        for i, (off, _) in enumerate(self._entries):
            if off < below:
                keep_from = i
        del self._entries[:keep_from]

    def __len__(self) -> int:
        return len(self._entries)
