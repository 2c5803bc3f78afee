"""RaftNode's leader side: check-quorum and the periodic BeginQuorumEpoch on tick, the voters'
and observers' progress, Fetch and FetchSnapshot from them (fencing, divergence, snapshot
offers) and the high watermark.

``LeaderMixin`` is one of the parts ``kraft.raft.RaftNode`` is made of: its methods work on the
node's state.
"""

from __future__ import annotations

from typing import Any

from kraft.messages import (
    DivergingEpoch,
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    SnapshotId,
)
from kraft.quorum_state import Leader, ReplicaState

# The leader forgets an observer it has not heard from for this long (Kafka's value).
OBSERVER_SESSION_TIMEOUT_MS = 5 * 60 * 1000


class LeaderMixin:
    """The leader's side of ``RaftNode``."""

    # ------------------------------------------------------------------ leader

    def _tick_leader(self, st: Leader, now_ms: int) -> None:
        if self._maybe_leave_after_removal(now_ms):
            return
        # Check-quorum: a leader cut off from a majority steps down instead of lingering.
        if now_ms - self._leader_since_ms >= self.fetch_timeout_ms:
            live = int(self.is_voter) + sum(
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

    def _note_directory(self, rs: ReplicaState | None, directory_id: object) -> None:
        if rs is not None and directory_id is not None:
            rs.directory_id = directory_id

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

    def _update_high_watermark(self, st: Leader) -> None:
        # Over the latest voter set (KIP-853): a leader being removed does not count itself.
        ends = [rs.end_offset for rs in st.voter_states.values()]
        if self.is_voter:
            ends.append(self._durable_end)
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
        self._note_directory(rs, req.directory_id)
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
