"""The pysyncobj metadata-quorum engine (broker/controller/pysyncobj_*.py): the command codec,
the log every controller derives from the committed commands, the read-only Fetch answers
brokers get, and one real pysyncobj voter in-process (leadership, appends, a restart that
replays its journal without handing anything out twice)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from broker.controller.engine import QuorumEngine
from broker.controller.pysyncobj_engine import PysyncobjEngine, pysyncobj_password
from broker.controller.pysyncobj_log import (
    AppliedLog,
    Batch,
    Claim,
    decode_command,
    encode_command,
)
from broker.controller.pysyncobj_serve import LogServer
from broker.controller.raft_driver import LeaderAndEpoch
from broker.controller.snapshot_files import FileSnapshotStore
from kraft.log import LogEntry, MemoryRaftLog
from kraft.messages import FetchError, FetchRequest, SnapshotId
from kraft.raft import NotLeader

# -- codec -------------------------------------------------------------------------------------


def test_commands_round_trip_and_garbage_is_refused() -> None:
    for cmd in (Claim(3, 7), Batch(2, 10, (b"a", b"", b"x" * 300)), Batch(1, 0, ())):
        assert decode_command(encode_command(cmd)) == cmd
    for bad in (b"", b"C", b"Z" + bytes(12), b"C" + bytes(13),
                encode_command(Batch(1, 0, (b"abc",)))[:-1]):
        with pytest.raises(ValueError):
            decode_command(bad)


# -- the derived log ---------------------------------------------------------------------------


def test_claims_open_epochs_with_a_leader_change_entry() -> None:
    a = AppliedLog([1, 2, 3])
    [e] = a.apply(Claim(1, 5)).entries
    assert (e.offset, e.epoch, e.control) == (0, 1, True)
    assert (a.epoch, a.leader, a.epoch_start, a.next_offset) == (1, 1, 0, 1)
    got = a.apply(Batch(1, 1, (b"r1", b"r2"))).entries
    assert [(x.offset, x.epoch, x.data) for x in got] == [(1, 1, b"r1"), (2, 1, b"r2")]
    # A newer term's claim: epoch 2 led by node 2, starting at offset 3.
    assert a.apply(Claim(2, 6)).entries[0].offset == 3
    assert (a.epoch, a.leader, a.epoch_start) == (2, 2, 3)


def test_a_deposed_leaders_late_commands_are_dropped() -> None:
    a = AppliedLog([1, 2, 3])
    a.apply(Claim(1, 5))
    a.apply(Claim(2, 6))
    # Node 1's claim of an older term, committed late: not a new epoch.
    assert a.apply(Claim(1, 5)).entries == []
    assert (a.epoch, a.leader) == (2, 2)
    # Its batch for epoch 1 is dropped, and says for which epoch.
    res = a.apply(Batch(1, 2, (b"late",)))
    assert res.entries == [] and res.dropped_epoch == 1
    # A batch of the current epoch at the wrong offset (one before it was lost) is dropped.
    res = a.apply(Batch(2, 7, (b"gap",)))
    assert res.entries == [] and res.dropped_epoch == 2
    assert a.next_offset == 2 and a.dropped == 3


def test_a_fenced_leader_claims_again_in_the_same_term() -> None:
    a = AppliedLog([1, 2, 3])
    a.apply(Claim(1, 5))
    assert a.apply(Claim(1, 5)).entries[0].epoch == 2  # same node, same term: new epoch
    assert a.apply(Claim(2, 5)).entries == []  # another node in that term: impossible, dropped
    assert (a.epoch, a.leader) == (2, 1)


def test_every_controller_derives_the_same_log() -> None:
    cmds = [Claim(1, 1), Batch(1, 1, (b"a",)), Claim(2, 2), Batch(1, 2, (b"stale",)),
            Batch(2, 3, (b"b", b"c")), Claim(1, 1), Batch(2, 5, (b"d",))]
    logs = []
    for _ in range(3):
        a = AppliedLog([1, 2, 3])
        logs.append([e for c in cmds for e in a.apply(c).entries])
    assert logs[0] == logs[1] == logs[2]
    assert [e.data for e in logs[0] if not e.control] == [b"a", b"b", b"c", b"d"]
    assert [e.offset for e in logs[0]] == list(range(6))


# -- serving the derived log to brokers --------------------------------------------------------


class _FakeEngine:
    def __init__(self, mem: MemoryRaftLog, leader: LeaderAndEpoch) -> None:
        self.node_id = 1
        self.voters = {1: ("h", 1), 2: ("h", 2), 3: ("h", 3)}
        self.cluster_id = "c"
        self.fetch_max_wait_ms = 500
        self.leader_and_epoch = leader
        self._closed = False
        self._log = type("L", (), {"memory": mem})()
        self._snapshots = type("S", (), {"latest": staticmethod(lambda: SnapshotId(2, 1))})()
        from broker.clock import SYSTEM_CLOCK

        self.clock = SYSTEM_CLOCK

    def is_leader(self) -> bool:
        return self.leader_and_epoch.leader_id == self.node_id


def _mem(entries: list[tuple[int, int]]) -> MemoryRaftLog:
    mem = MemoryRaftLog()
    mem.append([LogEntry(o, e, b"r%d" % o) for o, e in entries])
    return mem


def test_fetch_answers_follow_kraft_leader_rules() -> None:
    mem = _mem([(0, 1), (1, 1), (2, 2), (3, 2)])
    eng = _FakeEngine(mem, LeaderAndEpoch(1, 2))
    server = LogServer(eng)  # type: ignore[arg-type]
    r = server.answer(FetchRequest(9, 2, 0, 0))
    assert r is not None and [e.offset for e in r.records] == [0, 1, 2, 3]
    assert r.high_watermark == 4 and (r.leader_id, r.epoch) == (1, 2)
    # Caught up and already told this high watermark: held (long poll) unless final.
    assert server.answer(FetchRequest(9, 2, 4, 2), final=False) is not None  # hw not sent
    server._hw_sent[9] = 4
    assert server.answer(FetchRequest(9, 2, 4, 2), final=False) is None
    assert server.answer(FetchRequest(9, 2, 4, 2), final=True).records == ()  # type: ignore[union-attr]
    # Stale epoch: fenced, told the current one.
    r = server.answer(FetchRequest(9, 1, 2, 1))
    assert r is not None and r.error is FetchError.FENCED_EPOCH and r.epoch == 2
    # A position past the end of its epoch: the diverging epoch.
    r = server.answer(FetchRequest(9, 2, 5, 1))
    assert r is not None and r.diverging_epoch is not None
    assert (r.diverging_epoch.epoch, r.diverging_epoch.end_offset) == (1, 2)
    assert [o.replica_id for o in server.observers()] == [9]
    # Another controller leads: NOT_LEADER naming it.
    eng.leader_and_epoch = LeaderAndEpoch(3, 3)
    r = server.answer(FetchRequest(9, 2, 4, 2))
    assert r is not None and r.error is FetchError.NOT_LEADER and (r.leader_id, r.epoch) == (3, 3)


def test_a_fetcher_below_the_log_start_is_sent_to_the_snapshot() -> None:
    mem = MemoryRaftLog()
    mem.append([LogEntry(0, 1, b"a"), LogEntry(1, 1, b"b"), LogEntry(2, 1, b"c")])
    mem.truncate_prefix(SnapshotId(2, 1))
    server = LogServer(_FakeEngine(mem, LeaderAndEpoch(1, 1)))  # type: ignore[arg-type]
    r = server.answer(FetchRequest(9, 1, 0, 0))
    assert r is not None and r.snapshot_id == SnapshotId(2, 1)


# -- one real pysyncobj voter ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Listener:
    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []
        self.leaders: list[LeaderAndEpoch] = []

    def handle_commit(self, batch: Any) -> None:
        offsets = range(batch.last_offset - len(batch.records) + 1, batch.last_offset + 1)
        self.records += list(zip(offsets, batch.records, strict=True))

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        self.leaders.append(leader)


async def _until(cond: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _engine(tmp_path: Path, port: int) -> PysyncobjEngine:
    mdir = tmp_path / "meta"
    snaps = tmp_path / "meta" / "__cluster_metadata-0"
    snaps.mkdir(parents=True, exist_ok=True)
    return PysyncobjEngine(1, "cid", {1: ("127.0.0.1", port)}, str(mdir),
                           snapshots=FileSnapshotStore(snaps), port_offset=0,
                           password=pysyncobj_password("cid", "s"), election_timeout_ms=300)


def test_a_single_voter_leads_appends_and_replays_after_a_restart(tmp_path: Path) -> None:
    port = _free_port()

    async def first_run() -> int:
        eng = _engine(tmp_path, port)
        assert isinstance(eng, QuorumEngine)
        listener = _Listener()
        eng.register(listener)
        await eng.start()
        try:
            await _until(eng.is_leader)
            epoch = eng.epoch
            assert eng.epoch_start_offset == 0
            with pytest.raises(NotLeader):
                eng.append([b"x"], epoch=epoch + 1)
            assert eng.append([b"a", b"b"], epoch=epoch) == 2
            assert eng.append([b"c"], epoch=epoch) == 3
            await _until(lambda: len(listener.records) == 3)
            assert listener.records == [(1, b"a"), (2, b"b"), (3, b"c")]
            assert eng.high_watermark == 4
            desc = eng.describe_quorum()
            assert (desc.leader_id, desc.high_watermark) == (1, 4)
            return epoch
        finally:
            await eng.shutdown()

    async def second_run(old_epoch: int) -> None:
        eng = _engine(tmp_path, port)
        listener = _Listener()
        eng.register(listener)
        await eng.start()
        try:
            # The derived log is handed out at once, then the journal's replay adds nothing.
            assert listener.records == [(1, b"a"), (2, b"b"), (3, b"c")]
            await _until(eng.is_leader)
            assert eng.epoch > old_epoch
            last = eng.append([b"d"], epoch=eng.epoch)
            await _until(lambda: len(listener.records) == 4)
            assert listener.records[-1] == (last, b"d")
            assert [o for o, _ in listener.records] == sorted({o for o, _ in listener.records})
        finally:
            await eng.shutdown()

    epoch = asyncio.run(first_run())
    asyncio.run(second_run(epoch))


def test_a_leader_whose_batch_was_dropped_fences_its_epoch_and_claims_a_new_one(
        tmp_path: Path) -> None:
    async def run() -> None:
        eng = _engine(tmp_path, _free_port())
        listener = _Listener()
        eng.register(listener)
        await eng.start()
        try:
            await _until(eng.is_leader)
            epoch = eng.epoch
            # A batch of our epoch at an offset nobody expects (as if one before it was lost):
            # every controller drops it; we stop leading that epoch.
            eng._submit(encode_command(Batch(epoch, 999, (b"lost",))), epoch)
            await _until(lambda: LeaderAndEpoch(None, epoch) in listener.leaders)
            with pytest.raises(NotLeader):
                eng.append([b"x"], epoch=epoch)
            # Then we claim the next epoch and lead again, with nothing of the dropped batch.
            await _until(lambda: eng.is_leader() and eng.epoch == epoch + 1)
            last = eng.append([b"after"], epoch=epoch + 1)
            await _until(lambda: listener.records[-1:] == [(last, b"after")])
            assert b"lost" not in [r for _, r in listener.records]
        finally:
            await eng.shutdown()

    asyncio.run(run())


def test_the_engine_refuses_to_run_without_a_password_or_off_the_voters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        PysyncobjEngine(1, "c", {1: ("127.0.0.1", 1)}, str(tmp_path), snapshots=None,
                        port_offset=0, password="")
    with pytest.raises(ValueError, match="voters"):
        PysyncobjEngine(4, "c", {1: ("127.0.0.1", 1)}, str(tmp_path), snapshots=None,
                        port_offset=0, password="p")
    assert pysyncobj_password("a", "s") != pysyncobj_password("b", "s")
    assert pysyncobj_password("a", "s") != pysyncobj_password("a", "t")


# -- choosing the engine -----------------------------------------------------------------------

_CONTROLLER = {"node.id": "2", "process.roles": "controller", "listeners": "CONTROLLER://:9093",
               "controller.listener.names": "CONTROLLER",
               "controller.quorum.voters": "1@h1:9093,2@h2:9093,3@h3:9093"}
_BROKER = {**_CONTROLLER, "node.id": "4", "process.roles": "broker",
           "listeners": "PLAINTEXT://127.0.0.1:9092"}


def test_the_engine_key_is_checked_at_start_up_and_picks_the_engine(tmp_path: Path) -> None:
    from broker.config import KafkaConfig
    from broker.controller.engine import create_engine
    from broker.controller.raft_driver import RaftManager
    from storage.errors import ConfigError

    with pytest.raises(ConfigError, match="controller.quorum.engine"):
        KafkaConfig.from_properties({**_CONTROLLER, "controller.quorum.engine": "zab"})
    voters = {1: ("h1", 9093), 2: ("h2", 9093), 3: ("h3", 9093)}
    store = FileSnapshotStore(tmp_path)

    def engine(props: dict[str, str]) -> Any:
        config = KafkaConfig.from_properties({**props, "log.dirs": str(tmp_path)})
        return create_engine(config, "cid", voters, store)

    assert isinstance(engine(_CONTROLLER), RaftManager)
    pso = engine({**_CONTROLLER, "controller.quorum.engine": "pysyncobj",
                  "controller.quorum.engine.pysyncobj.password": "secret"})
    assert isinstance(pso, PysyncobjEngine)
    assert pso._addresses == {1: "h1:10093", 2: "h2:10093", 3: "h3:10093"}
    assert pso._password == pysyncobj_password("cid", "secret")
    # A broker is a KRaft observer of either engine.
    assert isinstance(engine({**_BROKER, "controller.quorum.engine": "pysyncobj"}), RaftManager)


def test_nothing_of_pysyncobj_is_imported_with_the_kraft_engine() -> None:
    import subprocess
    import sys

    code = ("import sys; import broker.node, broker.controller.engine; "
            "assert not [m for m in sys.modules if m.startswith('pysyncobj')], 'imported'")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_a_controller_whose_journal_was_emptied_starts_with_an_empty_one(
        tmp_path: Path) -> None:
    port = _free_port()

    async def first_run() -> None:
        eng = _engine(tmp_path, port)
        await eng.start()
        try:
            await _until(eng.is_leader)
            eng.append([b"a"], epoch=eng.epoch)
            await _until(lambda: eng.high_watermark == 2)
        finally:
            await eng.shutdown()

    async def second_run() -> None:
        eng = _engine(tmp_path, port)
        listener = _Listener()
        eng.register(listener)
        await eng.start()  # pysyncobj alone would fail: cannot mmap an empty file
        try:
            assert [src.name for src, _, _ in eng.storage_set_aside] == [
                "pysyncobj.journal", "pysyncobj.journal.meta"]
            assert listener.records == [(1, b"a")]  # the derived log is kept
            assert (tmp_path / "meta" / "pysyncobj.journal").stat().st_size > 0
        finally:
            await eng.shutdown()

    asyncio.run(first_run())
    os.truncate(tmp_path / "meta" / "pysyncobj.journal", 0)
    asyncio.run(second_run())
