"""What the pysyncobj engine's committed commands mean, decided the same way on every
controller (pure; ``pysyncobj_engine`` does the I/O).

pysyncobj replicates opaque commands in one order; this module turns that order into a KRaft
metadata log (offsets, epochs, LeaderChange control entries, records) so the rest of the node
(``QuorumController``, ``MetadataLoader``, brokers fetching the log) sees what it would see
with the kraft engine. Two commands:

- ``Claim(node_id, term)``: the pysyncobj leader of ``term`` asks to lead the metadata log.
  Accepted if ``term`` is newer than the last accepted claim's, or the same term from the
  same node (a leader whose epoch was fenced claims again): the epoch goes up by one, the
  claimer leads it, and a LeaderChange control entry marks the epoch's first offset, as
  KRaft's leader writes one. A claim from an older term (a deposed leader's, committed late)
  is dropped.
- ``Batch(epoch, base_offset, records)``: a leader's append. Accepted only if ``epoch`` is the
  current epoch and ``base_offset`` the next offset, so a batch written by a leader that has
  since lost its epoch, or after one of its own batches was lost, is dropped; the leader then
  sees that its epoch is fenced (``dropped``) and claims again.

Every controller applies the same commands in the same order, so every controller derives the
same log; entries are committed when derived. Encoding: one tag byte, big-endian ints, records
length-prefixed (no pickled objects of ours travel; pysyncobj itself pickles its messages).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from broker.controller.metadata_log import encode_leader_change
from kraft.log import LogEntry

__all__ = ["AppliedLog", "Batch", "Claim", "decode_command", "encode_command"]

_CLAIM = b"C"
_BATCH = b"B"
_HEAD = struct.Struct(">iq")  # (node id, term) or (epoch, base offset)
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Claim:
    node_id: int
    term: int


@dataclass(frozen=True, slots=True)
class Batch:
    epoch: int
    base_offset: int
    records: tuple[bytes, ...]


Command = Claim | Batch


def encode_command(cmd: Command) -> bytes:
    if isinstance(cmd, Claim):
        return _CLAIM + _HEAD.pack(cmd.node_id, cmd.term)
    parts = [_BATCH, _HEAD.pack(cmd.epoch, cmd.base_offset)]
    for r in cmd.records:
        parts.append(_LEN.pack(len(r)))
        parts.append(r)
    return b"".join(parts)


def decode_command(data: bytes) -> Command:
    """``ValueError`` for anything that is not a command of ours."""
    if not isinstance(data, bytes) or len(data) < 1 + _HEAD.size:
        raise ValueError("not a pysyncobj engine command")
    tag = data[:1]
    a, b = _HEAD.unpack_from(data, 1)
    if tag == _CLAIM:
        if len(data) != 1 + _HEAD.size:
            raise ValueError("malformed claim")
        return Claim(a, b)
    if tag != _BATCH:
        raise ValueError(f"unknown command tag {tag!r}")
    records = []
    pos = 1 + _HEAD.size
    while pos < len(data):
        if pos + _LEN.size > len(data):
            raise ValueError("truncated record length")
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + n > len(data):
            raise ValueError("truncated record")
        records.append(data[pos:pos + n])
        pos += n
    return Batch(a, b, tuple(records))


@dataclass(slots=True)
class Applied:
    """The outcome of one command: the entries it added (none if dropped), and for a dropped
    batch the epoch it was written for."""

    entries: list[LogEntry]
    dropped_epoch: int | None = None


class AppliedLog:
    """The state every controller derives from the committed commands: the current epoch, its
    leader and first offset, and the next offset."""

    def __init__(self, voters: Iterable[int]) -> None:
        self.voters = tuple(sorted(voters))
        self.epoch = 0
        self.leader: int | None = None
        self.claim_term = -1
        self.epoch_start = 0
        self.next_offset = 0
        self.dropped = 0

    def apply(self, cmd: Command) -> Applied:
        if isinstance(cmd, Claim):
            if cmd.term > self.claim_term or (
                    cmd.term == self.claim_term and cmd.node_id == self.leader):
                self.epoch += 1
                self.leader = cmd.node_id
                self.claim_term = cmd.term
                self.epoch_start = self.next_offset
                entry = LogEntry(self.next_offset, self.epoch,
                                 encode_leader_change(cmd.node_id, self.voters), control=True)
                self.next_offset += 1
                return Applied([entry])
            self.dropped += 1
            return Applied([])
        if cmd.epoch != self.epoch or cmd.base_offset != self.next_offset or not cmd.records:
            self.dropped += 1
            return Applied([], dropped_epoch=cmd.epoch)
        entries = [LogEntry(self.next_offset + i, self.epoch, r)
                   for i, r in enumerate(cmd.records)]
        self.next_offset += len(entries)
        return Applied(entries)
