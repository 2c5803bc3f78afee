"""RaftNode's follower and observer side: whom to fetch from and when, Fetch and FetchSnapshot
responses, a snapshot fetched from the leader and installed, and truncation of a diverged log.

``FollowerMixin`` is one of the parts ``kraft.raft.RaftNode`` is made of: its methods work on
the node's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kraft.messages import (
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    SnapshotId,
)
from kraft.quorum_state import Follower, Leader
from kraft.voters import NO_DIRECTORY


@dataclass(slots=True)
class _SnapshotFetch:
    """A follower's FetchSnapshot in progress: the bytes received so far, in memory."""

    snapshot_id: SnapshotId
    data: bytearray = field(default_factory=bytearray)
    size: int | None = None


class FollowerMixin:
    """The follower's and observer's side of ``RaftNode``."""

    # ------------------------------------------------------------------ follower / observer

    def _fetch_target(self, now_ms: int) -> int | None:
        st = self.state
        if self.may_campaign:
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
        if (
            self._snapshot_fetch is not None
            and self._leader_contact_ms is not None
            and now_ms - self._leader_contact_ms >= self.fetch_timeout_ms
        ):
            # The leader went quiet mid-snapshot: fall back to fetching (an observer then asks
            # around for the current leader).
            self._snapshot_fetch = None
            self._fetch_in_flight_since = None
        if self._fetch_in_flight_since is not None:
            if now_ms - self._fetch_in_flight_since < self.request_timeout_ms:
                return
        elif now_ms < self._next_fetch_ms:
            return
        self._send_fetch(now_ms)

    def _send_fetch(self, now_ms: int) -> None:
        sf = self._snapshot_fetch
        if sf is not None:
            st = self.state
            assert isinstance(st, Follower)
            self._fetch_in_flight_since = now_ms
            self._send(
                st.leader_id,
                FetchSnapshotRequest(self.node_id, self.epoch, sf.snapshot_id, len(sf.data)),
            )
            return
        target = self._fetch_target(now_ms)
        if target is None:
            return
        self._fetch_in_flight_since = now_ms
        self._send(
            target,
            FetchRequest(self.node_id, self.epoch, self.log.end_offset, self.log.last_epoch,
                         self.directory_id if self.directory_id != NO_DIRECTORY else None),
        )

    def _on_fetch_response(self, resp: FetchResponse, now_ms: int) -> None:
        if resp.epoch < self.epoch or isinstance(self.state, Leader):
            return
        self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
        if self._snapshot_fetch is not None:
            return  # a late answer to a fetch from before the snapshot fetch began
        st = self.state
        if resp.error is not FetchError.NONE or not isinstance(st, Follower):
            if isinstance(st, Follower) or not self.may_campaign:
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
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()
        if resp.snapshot_id is not None:
            # We are below the leader's log start (or diverged before it): fetch its snapshot.
            self._snapshot_fetch = _SnapshotFetch(resp.snapshot_id)
            self._send_fetch(now_ms)
            return
        div = resp.diverging_epoch
        if div is not None:
            _, own_end = self.log.end_offset_for_epoch(div.epoch)
            self._truncate_to(min(div.end_offset, own_end))
            self._send_fetch(now_ms)
            return
        if resp.records:
            assert resp.records[0].offset == self.log.end_offset
            self.log.append(list(resp.records))
            self._log_appended(resp.records)
        new_hw = min(resp.high_watermark, self.log.end_offset)
        self.high_watermark = max(self.high_watermark, new_hw)
        if resp.records:
            self._send_fetch(now_ms)
        else:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms

    def _on_fetch_snapshot_response(self, resp: FetchSnapshotResponse, now_ms: int) -> None:
        if resp.epoch < self.epoch or isinstance(self.state, Leader):
            return
        self._observe_epoch(resp.epoch, resp.leader_id, now_ms)
        st = self.state
        sf = self._snapshot_fetch
        if (
            sf is None
            or not isinstance(st, Follower)
            or resp.sender != st.leader_id
            or resp.snapshot_id != sf.snapshot_id
            or resp.position != len(sf.data)
        ):
            return  # stale or duplicated
        self._fetch_in_flight_since = None
        if resp.error is FetchError.NOT_LEADER or resp.error is FetchError.FENCED_EPOCH:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        self._leader_contact_ms = now_ms
        self._follower_deadline_ms = now_ms + self._follower_timeout_ms()
        if resp.error is not FetchError.NONE or (sf.size is not None and sf.size != resp.size):
            # Gone (the leader took a newer one) or inconsistent: fetch again, which names the
            # snapshot to use now.
            self._snapshot_fetch = None
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        sf.size = resp.size
        sf.data += resp.data
        if len(sf.data) > resp.size:
            self._snapshot_fetch = None
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms
            return
        if len(sf.data) == resp.size:
            self._install_snapshot(sf.snapshot_id, bytes(sf.data))
            self._snapshot_fetch = None
            self._send_fetch(now_ms)
        elif resp.data:
            self._send_fetch(now_ms)
        else:
            self._next_fetch_ms = now_ms + self.fetch_backoff_ms

    def _install_snapshot(self, snapshot_id: SnapshotId, data: bytes) -> None:
        """Replace the log by a snapshot fetched from the leader (held in memory until poll)."""
        end = snapshot_id.end_offset
        # We were sent a snapshot only when our log does not hold the committed entry at
        # end - 1, so our high watermark is below it: nothing committed is lost.
        assert end >= self.high_watermark, (
            f"node {self.node_id} installing {snapshot_id} below its HW {self.high_watermark}"
        )
        self.log.reset_to_snapshot(snapshot_id)
        vs = self._snapshot_voters(data) if self._snapshot_voters is not None else None
        if vs is not None:
            self._history.reset(end - 1, vs)
        else:
            self._history.compact(end)
        self._voters_changed()
        self.high_watermark = max(self.high_watermark, end)
        self._applied = max(self._applied, end)
        self._pending_install = (snapshot_id, data)
        self._log_start_dirty = True
        self._stable_end = end
        self._truncated = False
        self._durable_end = 0  # until the driver wrote the snapshot and advanced

    def _truncate_to(self, offset: int) -> None:
        assert offset >= self.high_watermark, (
            f"node {self.node_id} truncating committed entries: {offset} < HW {self.high_watermark}"
        )
        if offset >= self.log.end_offset:
            return
        self.log.truncate_to(offset)
        self._log_truncated(offset)
        if offset < self._stable_end:
            self._stable_end = offset
            self._truncated = True
        self._durable_end = min(self._durable_end, offset)
