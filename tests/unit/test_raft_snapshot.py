"""KIP-630 snapshots in the sans-IO Raft core: the log with a prefix gone, FetchSnapshot on the
leader (chunks and errors), install on followers and observers, and restart from a snapshot."""

from __future__ import annotations

import random

import pytest

from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import (
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from kraft.quorum_state import ElectionState
from kraft.raft import RaftNode, Ready
from kraft.snapshot_store import MemorySnapshotStore


def entries(*epochs: int, start: int = 0) -> list[LogEntry]:
    return [LogEntry(start + i, ep, f"e{start + i}-{ep}".encode()) for i, ep in enumerate(epochs)]


def state_bytes(applied: list[LogEntry]) -> bytes:
    return b"".join(e.data + b";" for e in applied)


class Net:
    """Synchronous network of nodes with snapshot stores; the application state is the list of
    applied entries' data, and a snapshot of it is ``state_bytes``."""

    def __init__(
        self,
        voters: set[int],
        observers: set[int] = frozenset(),  # type: ignore[assignment]
        *,
        chunk: int = 7,
        timeouts: dict[int, int] | None = None,
    ) -> None:
        self.now = 0
        self.voters = frozenset(voters)
        self.chunk = chunk
        self.timeouts = timeouts or {}
        self.isolated: set[int] = set()
        self.nodes: dict[int, RaftNode] = {}
        self.stores: dict[int, MemorySnapshotStore] = {}
        self.state: dict[int, list[bytes]] = {}
        self.readies: dict[int, list[Ready]] = {}
        self.sent: list[tuple[int, int, Message]] = []
        for i in sorted(voters | set(observers)):
            self.start(i, MemoryRaftLog())

    def start(self, i: int, log: MemoryRaftLog, state: list[bytes] | None = None) -> None:
        self.stores.setdefault(i, MemorySnapshotStore())
        self.nodes[i] = RaftNode(
            i,
            self.voters,
            random=random.Random(i),
            election_timeout_ms=self.timeouts.get(i, 100),
            fetch_timeout_ms=200,
            fetch_backoff_ms=10,
            log=log,
            election_state=ElectionState(0),
            snapshots=self.stores[i],
            max_snapshot_chunk_bytes=self.chunk,
        )
        self.state[i] = list(state or [])
        self.readies[i] = []

    def flush(self) -> None:
        for _ in range(10_000):
            queued: list[tuple[int, int, Message]] = []
            busy = False
            for i, node in self.nodes.items():
                ready = node.poll()
                busy = busy or not ready.is_empty()
                if not ready.is_empty():
                    self.readies[i].append(ready)
                if ready.snapshot_to_install is not None:
                    sid, data = ready.snapshot_to_install
                    self.stores[i].add(sid, data)
                    self.state[i] = [d for d in data.split(b";") if d]
                self.state[i] += [e.data for e in ready.committed]
                queued += [(i, d, m) for d, m in ready.messages_to_send]
                node.advance(ready, self.now)
            if not busy:
                return
            for src, dest, msg in queued:
                self.sent.append((src, dest, msg))
                if src not in self.isolated and dest not in self.isolated:
                    self.nodes[dest].step(msg, self.now)
        raise AssertionError("network never went quiet")

    def run(self, ms: int, step: int = 5) -> None:
        end = self.now + ms
        while self.now < end:
            self.now += step
            for node in self.nodes.values():
                node.tick(self.now)
            self.flush()

    def run_until_leader(self) -> int:
        for _ in range(400):
            self.run(5)
            live = [i for i, n in self.nodes.items() if n.is_leader() and i not in self.isolated]
            if live:
                return live[0]
        raise AssertionError("no leader")

    def take_snapshot(self, i: int) -> SnapshotId:
        """The application on node ``i`` snapshots everything it applied."""
        node = self.nodes[i]
        end = len(self.state[i])
        sid = SnapshotId(end, node.log.epoch_at(end - 1))
        self.stores[i].add(sid, state_bytes([LogEntry(0, 0, d) for d in self.state[i]]))
        node.snapshot_taken(sid, self.now)
        return sid

    def log_of(self, i: int) -> list[LogEntry]:
        log = self.nodes[i].log
        return log.entries_from(log.start_offset, log.end_offset - log.start_offset)


# ---------------------------------------------------------------------- the log


def test_log_prefix_truncation_and_epochs() -> None:
    log = MemoryRaftLog(entries(1, 1, 2, 2, 3, 3))
    assert (log.start_offset, log.snapshot_id) == (0, None)
    log.truncate_prefix(SnapshotId(3, 2))
    assert log.start_offset == 3 and log.end_offset == 6
    assert log.snapshot_id == SnapshotId(3, 2)
    assert log.epoch_at(2) == 2  # the snapshot's epoch stands in for the entry
    assert log.epoch_at(3) == 2 and log.epoch_at(4) == 3
    assert [e.offset for e in log.entries_from(3, 10)] == [3, 4, 5]
    with pytest.raises(AssertionError):
        log.entries_from(2, 1)
    with pytest.raises(AssertionError):
        log.epoch_at(1)
    # KIP-101 with the prefix gone: below the first entry's epoch -> the snapshot (Kafka).
    assert log.end_offset_for_epoch(1) == (2, 3)
    assert log.end_offset_for_epoch(2) == (2, 4)
    assert log.end_offset_for_epoch(3) == (3, 6)
    log.truncate_prefix(SnapshotId(2, 2))  # older than the start: no-op
    assert log.start_offset == 3
    with pytest.raises(AssertionError):
        log.truncate_prefix(SnapshotId(5, 2))  # does not match the log
    log.truncate_to(3)
    assert (log.end_offset, log.last_epoch) == (3, 2)
    assert log.end_offset_for_epoch(7) == (2, 3)
    log.append([LogEntry(3, 4, b"x")])
    assert log.end_offset_for_epoch(3) == (2, 3)
    assert log.end_offset_for_epoch(4) == (4, 4)


def test_log_reset_to_snapshot_and_constructor() -> None:
    log = MemoryRaftLog(entries(1, 1, 5))
    log.reset_to_snapshot(SnapshotId(10, 4))
    assert (log.start_offset, log.end_offset, log.last_epoch) == (10, 10, 4)
    assert log.entries_from(10, 5) == []
    assert log.end_offset_for_epoch(9) == (4, 10)
    log2 = MemoryRaftLog(entries(4, 6, start=10), snapshot_id=SnapshotId(10, 4))
    assert (log2.start_offset, log2.end_offset, log2.last_epoch) == (10, 12, 6)
    with pytest.raises(AssertionError):
        MemoryRaftLog(entries(4, start=9), snapshot_id=SnapshotId(10, 4))


def test_log_recover_rules() -> None:
    sid = SnapshotId(3, 2)
    es = entries(1, 2, 2, 3)
    # The log holds the snapshot's last entry with its epoch: keep what follows.
    log = MemoryRaftLog.recover(sid, 0, es)
    assert (log.start_offset, log.end_offset, log.snapshot_id) == (3, 4, sid)
    # Crash between writing an installed snapshot and resetting a diverged log: drop the log.
    log = MemoryRaftLog.recover(sid, 0, entries(1, 1, 1, 1, 1))
    assert (log.start_offset, log.end_offset) == (3, 3)
    # A log behind the snapshot.
    log = MemoryRaftLog.recover(sid, 0, entries(1))
    assert (log.start_offset, log.end_offset) == (3, 3)
    # Prefix already deleted.
    log = MemoryRaftLog.recover(sid, 3, es[3:])
    assert (log.start_offset, log.end_offset) == (3, 4)
    assert MemoryRaftLog.recover(None, 0, es).end_offset == 4


def test_memory_snapshot_store() -> None:
    store = MemorySnapshotStore()
    assert store.latest() is None and store.size(SnapshotId(1, 1)) is None
    store.add(SnapshotId(5, 1), b"0123456789")
    store.add(SnapshotId(9, 2), b"ab")
    assert store.latest() == SnapshotId(9, 2)
    assert store.size(SnapshotId(5, 1)) == 10
    assert store.read(SnapshotId(5, 1), 8, 4) == b"89"
    assert store.read(SnapshotId(5, 1), 10, 4) == b""
    store.delete(SnapshotId(9, 2))
    assert store.latest() == SnapshotId(5, 1)


# ---------------------------------------------------------------------- end to end


def test_observer_catches_up_through_snapshot_chunks() -> None:
    net = Net({1}, {2}, chunk=7)
    net.isolated = {2}
    assert net.run_until_leader() == 1
    leader = net.nodes[1]
    leader.append([b"a", b"b", b"c", b"d"])
    net.run(10)
    assert leader.high_watermark == 5
    sid = net.take_snapshot(1)
    assert sid == SnapshotId(5, 1)
    net.flush()
    assert net.readies[1][-1].log_start_offset == 5
    assert leader.log.start_offset == 5
    leader.append([b"e"])
    net.run(10)
    net.isolated = set()
    net.run(200)
    obs = net.nodes[2]
    assert obs.log.start_offset == 5 and obs.log.snapshot_id == sid
    assert net.log_of(2) == net.log_of(1)
    assert obs.high_watermark == leader.high_watermark == 6
    assert net.state[2] == net.state[1]
    [install] = [r for r in net.readies[2] if r.snapshot_to_install is not None]
    assert install.snapshot_to_install == (sid, net.stores[1].read(sid, 0, 1 << 20))
    assert install.truncate_to is None and install.log_start_offset == 5
    assert install.high_watermark == 5
    # The FetchResponse after the install (offset 5, snapshot epoch) goes out in that Ready.
    assert any(
        isinstance(m, FetchRequest) and (m.fetch_offset, m.last_fetched_epoch) == (5, 1)
        for _, m in install.messages_to_send
    )
    size = net.stores[1].size(sid)
    assert size is not None
    chunks = [m for s, _, m in net.sent if s == 1 and isinstance(m, FetchSnapshotResponse)]
    assert [c.position for c in chunks] == list(range(0, size, 7))
    assert all(len(c.data) <= 7 for c in chunks)


def test_lagging_voter_installs_snapshot_and_counts_again() -> None:
    net = Net({1, 2, 3}, timeouts={2: 10_000, 3: 10_000})
    assert net.run_until_leader() == 1
    net.isolated = {3}
    net.nodes[1].append([b"x%d" % i for i in range(10)])
    net.run(20)
    hw = net.nodes[1].high_watermark
    assert hw == 11
    net.take_snapshot(1)
    net.take_snapshot(2)
    net.run(20)
    assert net.nodes[3].log.end_offset == 1
    net.isolated = set()
    net.run(100)
    assert net.nodes[3].log.start_offset == 11
    assert net.state[3] == net.state[1]
    net.isolated = {2}  # now 1 needs 3 to commit
    net.nodes[1].append([b"y"])
    net.run(50)
    assert net.nodes[1].high_watermark == 12
    assert net.log_of(3) == net.log_of(1)


def test_restart_from_snapshot_resumes_above_it() -> None:
    sid = SnapshotId(3, 1)
    log = MemoryRaftLog.recover(sid, 0, entries(1, 1, 1, 1, 1))
    node = RaftNode(
        1,
        frozenset({1}),
        random=random.Random(0),
        log=log,
        election_state=ElectionState(1),
    )
    assert node.high_watermark == 3
    ready = node.poll()
    assert ready.committed == [] and ready.high_watermark == 3
    node.advance(ready, 0)
    committed: list[int] = []
    for t in range(0, 3000, 10):
        node.tick(t)
        r = node.poll()
        committed += [e.offset for e in r.committed]
        node.advance(r, t)
        if node.is_leader() and committed:
            break
    assert committed == [3, 4, 5]  # 5 is the LeaderChange


def test_snapshot_taken_checks() -> None:
    net = Net({1})
    net.run_until_leader()
    node = net.nodes[1]
    node.append([b"a", b"b"])
    with pytest.raises(AssertionError):
        node.snapshot_taken(SnapshotId(3, 1), net.now)  # beyond the high watermark
    net.run(10)
    with pytest.raises(AssertionError):
        node.snapshot_taken(SnapshotId(3, 7), net.now)  # wrong epoch
    node.snapshot_taken(SnapshotId(2, 1), net.now)
    r = node.poll()
    assert r.log_start_offset == 2 and not r.is_empty()
    node.advance(r, net.now)
    node.snapshot_taken(SnapshotId(1, 1), net.now)  # older: ignored
    assert node.poll().is_empty()


# ---------------------------------------------------------------------- leader side


def leader_with_snapshot(chunk: int = 4) -> tuple[RaftNode, SnapshotId, bytes]:
    """Node 1 leads epoch 2 of {1, 2, 3}; its log starts after snapshot (3, 1)."""
    sid = SnapshotId(3, 1)
    data = b"0123456789"
    store = MemorySnapshotStore({sid: data})
    node = RaftNode(
        1,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        log=MemoryRaftLog(entries(1, 1, start=3), snapshot_id=sid),
        election_state=ElectionState(1),
        snapshots=store,
        max_snapshot_chunk_bytes=chunk,
    )
    t = 0
    while not node.is_leader():
        t += 10
        node.tick(t)
        r = node.poll()
        for _, m in r.messages_to_send:
            if isinstance(m, VoteRequest):
                node.step(VoteResponse(2, node.epoch, m.candidate_epoch, True, m.pre_vote), t)
        node.advance(r, t)
        assert t < 5000
    node.advance(node.poll(), t)
    assert node.epoch == 2 and node.log.start_offset == 3
    return node, sid, data


def replies(node: RaftNode) -> list[Message]:
    r = node.poll()
    node.advance(r, 0)
    return [m for _, m in r.messages_to_send]


def test_leader_answers_fetch_below_start_with_snapshot_id() -> None:
    node, sid, _ = leader_with_snapshot()
    for offset, epoch in [(0, 0), (2, 1), (3, 0), (4, 0)]:
        node.step(FetchRequest(2, 2, offset, epoch), 100)
        [resp] = replies(node)
        assert isinstance(resp, FetchResponse) and resp.snapshot_id == sid, (offset, epoch)
        assert resp.records == () and resp.diverging_epoch is None
    node.step(FetchRequest(2, 2, 3, 1), 100)  # right at the start with the snapshot's epoch
    [resp] = replies(node)
    assert isinstance(resp, FetchResponse) and resp.snapshot_id is None
    assert [e.offset for e in resp.records] == [3, 4, 5]


def test_fetch_snapshot_chunks_and_errors() -> None:
    node, sid, _ = leader_with_snapshot(chunk=4)

    def ask(req: FetchSnapshotRequest) -> FetchSnapshotResponse:
        node.step(req, 100)
        [resp] = replies(node)
        assert isinstance(resp, FetchSnapshotResponse)
        return resp

    r = ask(FetchSnapshotRequest(2, 2, sid, 0))
    assert (r.error, r.size, r.data, r.position, r.leader_id) == (
        FetchError.NONE,
        10,
        b"0123",
        0,
        1,
    )
    r = ask(FetchSnapshotRequest(2, 2, sid, 8))
    assert (r.error, r.data) == (FetchError.NONE, b"89")
    r = ask(FetchSnapshotRequest(2, 2, sid, 10))
    assert (r.error, r.data) == (FetchError.NONE, b"")
    r = ask(FetchSnapshotRequest(2, 2, sid, 11))
    assert r.error is FetchError.POSITION_OUT_OF_RANGE
    r = ask(FetchSnapshotRequest(2, 2, SnapshotId(2, 1), 0))
    assert r.error is FetchError.SNAPSHOT_NOT_FOUND
    r = ask(FetchSnapshotRequest(4, 1, sid, 0))  # an observer with a stale epoch
    assert (r.error, r.epoch, r.leader_id) == (FetchError.FENCED_EPOCH, 2, 1)
    # A follower of epoch 2 is not the leader.
    f = RaftNode(
        2,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        log=MemoryRaftLog(),
        election_state=ElectionState(2, None, 1),
    )
    f.step(FetchSnapshotRequest(3, 2, sid, 0), 0)
    [resp] = replies(f)
    assert isinstance(resp, FetchSnapshotResponse)
    assert (resp.error, resp.epoch, resp.leader_id) == (FetchError.NOT_LEADER, 2, 1)


def test_fetch_snapshot_counts_for_check_quorum() -> None:
    node, sid, _ = leader_with_snapshot()
    # Voter 2 only fetches the snapshot (slowly); that keeps the leader alive past the timeout.
    for t in range(100, 5000, 100):
        node.step(FetchSnapshotRequest(2, 2, sid, 0), t)
        node.tick(t)
        replies(node)
        assert node.is_leader(), t


def test_follower_restarts_snapshot_fetch_when_snapshot_is_gone() -> None:
    f = RaftNode(
        2,
        frozenset({1, 2, 3}),
        random=random.Random(0),
        log=MemoryRaftLog(),
        election_state=ElectionState(2, None, 1),
    )
    f.tick(0)
    [req] = replies(f)
    assert isinstance(req, FetchRequest) and req.fetch_offset == 0
    sid = SnapshotId(3, 1)
    f.step(FetchResponse(1, 2, 1, 0, 0, high_watermark=5, snapshot_id=sid), 1)
    [req] = replies(f)
    assert req == FetchSnapshotRequest(2, 2, sid, 0)
    f.step(FetchSnapshotResponse(1, 2, 1, sid, 0, size=6, data=b"abc"), 2)
    [req] = replies(f)
    assert req == FetchSnapshotRequest(2, 2, sid, 3)
    # A duplicate of the first chunk is ignored.
    f.step(FetchSnapshotResponse(1, 2, 1, sid, 0, size=6, data=b"abc"), 3)
    assert replies(f) == []
    f.step(FetchSnapshotResponse(1, 2, 1, sid, 3, error=FetchError.SNAPSHOT_NOT_FOUND), 4)
    assert replies(f) == []
    f.tick(100)
    [req] = replies(f)
    assert isinstance(req, FetchRequest) and req.fetch_offset == 0  # ask again from scratch
    newer = SnapshotId(4, 1)
    f.step(FetchResponse(1, 2, 1, 0, 0, high_watermark=5, snapshot_id=newer), 101)
    replies(f)
    f.step(FetchSnapshotResponse(1, 2, 1, newer, 0, size=2, data=b"zz"), 102)
    r = f.poll()
    assert r.snapshot_to_install == (newer, b"zz")
    assert r.log_start_offset == 4 and r.high_watermark == 4 and r.truncate_to is None
    assert [m for _, m in r.messages_to_send] == [FetchRequest(2, 2, 4, 1)]
    f.advance(r, 102)
    assert (f.log.start_offset, f.log.end_offset, f.high_watermark) == (4, 4, 4)
