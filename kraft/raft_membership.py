"""RaftNode's voter set (KIP-853): the latest set in the log decides, changes are log entries.

``MembershipMixin`` is one of the parts ``kraft.raft.RaftNode`` is made of. The voter set is
``self._history`` (``kraft.voters.VoterHistory``): every VotersRecord control entry that enters
the log (appended by this leader, or fetched from one) is pushed there at once, committed or
not, and truncation takes it out again. ``voters`` / ``is_voter`` read the latest set.

The leader changes the set one voter at a time (``add_voter``, ``remove_voter``,
``update_voter``) and only when no change is pending: the previous VotersRecord is committed
and the leader has committed an entry of its own epoch (which fences any change an earlier
leader left uncommitted). Any two consecutive sets then differ by one voter, so their majorities
overlap, which is what keeps two leaders out of one epoch across a change. A leader that
removed itself keeps leading (without counting itself) until the removal commits, then resigns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from kraft.log import LogEntry
from kraft.quorum_state import Leader, ReplicaState
from kraft.voters import (
    KRAFT_VERSION_TYPE,
    NO_DIRECTORY,
    VOTERS_TYPE,
    VoterNode,
    VoterSet,
    decode_voters,
    encode_kraft_version,
    encode_voters,
)

# Kafka error codes the membership operations answer with (broker/protocol/errors.py).
NONE = 0
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
DUPLICATE_VOTER = 126
VOTER_NOT_FOUND = 127

MembershipResult = tuple[int, str | None, int]  # (error code, message, offset of the record)


class MembershipMixin:
    """The voter set of ``RaftNode`` and the leader's changes to it."""

    # ------------------------------------------------------------------ reading the set

    @property
    def voters(self) -> frozenset[int]:
        return self._history.latest.ids

    @property
    def voter_set(self) -> VoterSet:
        return self._history.latest

    def voters_at(self, offset: int) -> frozenset[int]:
        """The voter ids in force at ``offset`` of this log (the last VotersRecord at or
        below it): equal on every replica holding that offset, by log matching."""
        return self._history.at(offset).ids

    @property
    def is_voter(self) -> bool:
        return self._history.latest.contains(self.node_id, self.directory_id)

    @property
    def may_campaign(self) -> bool:
        """May stand for election: a voter of the latest set, or (KIP-853) a voter whose
        removal is still uncommitted. The latter may hold the longest log, so without it the
        remaining voters could have no electable member; as a candidate it still needs a
        majority of its latest set, which does not count its own vote."""
        if self.is_voter:
            return True
        h = self._history
        return (h.kraft_version >= 1 and self.voter_change_pending()
                and h.at(self.high_watermark - 1).contains(self.node_id, self.directory_id))

    @property
    def kraft_version(self) -> int:
        return self._history.kraft_version

    def voter_change_pending(self) -> bool:
        """A VotersRecord in the log is not committed yet."""
        return self._history.latest_offset >= self.high_watermark

    # ------------------------------------------------------------------ following the log

    def _log_appended(self, entries: Iterable[LogEntry]) -> None:
        """Entries just entered the log: take in their voter sets at once (KIP-853)."""
        for e in entries:
            if not e.control:
                continue
            if e.control_type == VOTERS_TYPE:
                self._history.append(e.offset, decode_voters(e.data))
                self._voters_changed()
            elif e.control_type == KRAFT_VERSION_TYPE:
                self._history.kraft_version = max(self._history.kraft_version, 1)

    def _log_truncated(self, offset: int) -> None:
        before = self._history.latest
        self._history.truncate(offset)
        if self._history.latest != before:
            self._voters_changed()

    def _voters_changed(self) -> None:
        """Keep the leader's per-voter states in line with the latest set."""
        st = self.state
        if not isinstance(st, Leader):
            return
        ids = self.voters
        for v in list(st.voter_states):
            if v not in ids:
                st.observer_states[v] = st.voter_states.pop(v)
        for v in ids:
            if v != self.node_id and v not in st.voter_states:
                st.voter_states[v] = st.observer_states.pop(v, None) or ReplicaState()

    def _append_control(self, control_type: int, data: bytes) -> int:
        st = self.state
        assert isinstance(st, Leader)
        entry = LogEntry(self.log.end_offset, st.epoch, data, control=True,
                         control_type=control_type)
        self.log.append([entry])
        self._log_appended([entry])
        return entry.offset

    def _append_bootstrap_voters(self) -> None:
        """A new leader whose voter set is the bootstrap one (not yet in the log) writes it,
        with the kraft.version, right after its LeaderChange, as Kafka's leader does."""
        if self._history.kraft_version >= 1 and not self._history.from_log:
            self._append_control(KRAFT_VERSION_TYPE, encode_kraft_version(1))
            self._append_control(VOTERS_TYPE, encode_voters(self._history.latest))

    def _maybe_leave_after_removal(self, now_ms: int) -> bool:
        """A leader removed from the voter set resigns once the removal is committed."""
        st = self.state
        if (isinstance(st, Leader) and not self.is_voter
                and self.high_watermark > self._history.latest_offset):
            self._resign(now_ms)
            return True
        return False

    # ------------------------------------------------------------------ changes (leader)

    def _change_refused(self) -> tuple[int, str] | None:
        st = self.state
        if not isinstance(st, Leader):
            return NOT_LEADER_OR_FOLLOWER, "this replica is not the leader"
        if not self.is_voter:  # it removed itself: it only waits for that to commit
            return NOT_LEADER_OR_FOLLOWER, "the leader is leaving the voter set"
        if self._history.kraft_version < 1:
            return UNSUPPORTED_VERSION, ("Cluster doesn't support changing the voter set "
                                         "because the kraft.version feature is 0")
        if self.high_watermark <= st.epoch_start_offset or not self._history.from_log:
            return REQUEST_TIMED_OUT, ("Request timed out waiting for leader to establish "
                                       "HWM and fence previous voter changes")
        if self.voter_change_pending():
            return REQUEST_TIMED_OUT, ("Request timed out waiting for leader to handle "
                                       "previous voter change request")
        return None

    def add_voter(self, node: VoterNode, now_ms: int) -> MembershipResult:
        """Append the set with ``node`` added, if allowed now: ``node`` must be an observer
        that fetches with its directory id and has caught up with the leader's log end within
        the fetch timeout. Returns (error code, message, offset of the VotersRecord)."""
        refused = self._change_refused()
        if refused is not None:
            return (*refused, -1)
        st = self.state
        assert isinstance(st, Leader)
        latest = self._history.latest
        if latest.get(node.voter_id) is not None:
            return (DUPLICATE_VOTER, (f"The voter id for ReplicaKey(id={node.voter_id}) is "
                    "already part of the set of voters"), -1)
        if node.directory_id == NO_DIRECTORY:
            return INVALID_REQUEST, "a new voter needs a directory id", -1
        rs = st.observer_states.get(node.voter_id)
        if (rs is None or rs.directory_id != node.directory_id
                or rs.last_caught_up_timestamp < 0
                or now_ms - rs.last_caught_up_timestamp >= self.fetch_timeout_ms):
            return (REQUEST_TIMED_OUT, (f"new voter {node.voter_id} has not caught up with the "
                    "leader (it must fetch as an observer with its directory id)"), -1)
        offset = self._append_control(VOTERS_TYPE, encode_voters(latest.added(node)))
        return NONE, None, offset

    def remove_voter(self, voter_id: int, directory_id: uuid.UUID | None,
                     now_ms: int) -> MembershipResult:
        refused = self._change_refused()
        if refused is not None:
            return (*refused, -1)
        latest = self._history.latest
        if not latest.contains(voter_id, directory_id) or directory_id is None:
            return (VOTER_NOT_FOUND, (f"Cannot remove voter {voter_id} ({directory_id}): not in "
                    "the set of voters"), -1)
        n = latest.get(voter_id)
        if n is not None and n.directory_id != directory_id:
            return VOTER_NOT_FOUND, f"voter {voter_id} has another directory id", -1
        if latest.ids == {voter_id}:
            return INVALID_REQUEST, "cannot remove the only voter", -1
        offset = self._append_control(VOTERS_TYPE, encode_voters(latest.removed(voter_id)))
        self._update_high_watermark(self.state)  # type: ignore[arg-type]
        return NONE, None, offset

    def update_voter(self, node: VoterNode, now_ms: int) -> MembershipResult:
        """Replace a voter's endpoints and kraft.version range (same id and directory id)."""
        refused = self._change_refused()
        if refused is not None:
            return (*refused, -1)
        latest = self._history.latest
        old = latest.get(node.voter_id)
        if old is None or old.directory_id != node.directory_id:
            return VOTER_NOT_FOUND, f"voter {node.voter_id} ({node.directory_id}) not found", -1
        if not node.min_kraft_version <= self._history.kraft_version <= node.max_kraft_version:
            return (INVALID_REQUEST, (f"voter {node.voter_id} does not support kraft.version "
                    f"{self._history.kraft_version}"), -1)
        if old == node:
            return NONE, None, self._history.latest_offset
        offset = self._append_control(VOTERS_TYPE, encode_voters(latest.replaced(node)))
        return NONE, None, offset
