"""storage/fsync_journal.py: the fsync journal and the power-loss model of the lose-unsynced
nemesis. Every scenario writes from a child process with ``PYKRAFT_FSYNC_LOG`` set, as a node
does, then models the power loss in this process (where the journal is off)."""

from __future__ import annotations

import inspect
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broker.controller.snapshot_files import FileSnapshotStore
from kraft.messages import SnapshotId
from kraft.snapshot import read_snapshot
from storage import fileutil, fsync_journal
from storage.fsync_journal import Cut, baseline, lose_unsynced, parse_journal, read_journal
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.record_batch import iter_batches

REPO = Path(__file__).resolve().parents[2]

# Helpers the child scripts start with: D is the data directory (argv[1]).
PRELUDE = """
import os, sys
from pathlib import Path
from storage import fsync_journal
from storage.fileutil import atomic_write, fsync_dir, make_dirs
D = Path(sys.argv[1])

def write(name, data, sync=True):
    fd = os.open(D / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, data)
    if sync:
        fsync_journal.fsync(fd)
    os.close(fd)
"""


def run_child(journal: Path, data: Path, script: str) -> str:
    env = {**os.environ, fsync_journal.ENV_VAR: str(journal), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script), str(data)],
                       env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "fsync.journal"


def changes(cuts: list[Cut], root: Path) -> list[tuple[str, str]]:
    return sorted((str(Path(c.path).relative_to(root)), c.change) for c in cuts)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for a directory)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[str((Path(dirpath) / d).relative_to(root))] = None
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_without_the_env_var_the_hooks_are_the_os_functions() -> None:
    assert os.environ.get(fsync_journal.ENV_VAR) is None
    assert fsync_journal.fsync is os.fsync
    assert fsync_journal.unlink is os.unlink
    assert fsync_journal.replace is os.replace
    assert fsync_journal.rename is os.rename
    assert fsync_journal.rmtree is shutil.rmtree


def test_files_are_cut_to_their_last_fsynced_length(data: Path, journal: Path) -> None:
    baseline(journal, [data])
    # A segment-like file fsynced at 10 bytes then appended to, a file replaced atomically
    # (fsynced under its temp name, then renamed) and a file never fsynced; every name durable.
    run_child(journal, data, """
        write("seg.log", b"0123456789")
        write("seg.log", b"unsynced", sync=False)
        atomic_write(D / "state", b"durable state")
        write("fresh", b"never synced", sync=False)
        fsync_dir(D)
    """)
    assert read_journal(journal), "the child wrote no journal"
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"seg.log": b"0123456789", "state": b"durable state", "fresh": b""}
    assert sorted((Path(c.path).name, c.size_before, c.size_after, c.change) for c in cuts) == [
        ("fresh", 12, 0, "cut"), ("seg.log", 18, 10, "cut")]


def test_a_file_fsynced_in_a_directory_never_fsynced_vanishes(data: Path, journal: Path) -> None:
    baseline(journal, [data])
    run_child(journal, data, 'write("f", b"synced data")')
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {}
    assert cuts == [Cut(str(data / "f"), 11, 0, "vanished")]


def test_a_file_fsynced_then_its_directory_fsynced_survives(data: Path, journal: Path) -> None:
    baseline(journal, [data])
    run_child(journal, data, 'write("f", b"synced data")\nfsync_dir(D)')
    assert lose_unsynced(journal, [data]) == []
    assert tree(data) == {"f": b"synced data"}


def test_atomic_write_survives_with_the_new_content(data: Path, journal: Path) -> None:
    (data / "state").write_bytes(b"old")
    baseline(journal, [data])
    run_child(journal, data, 'atomic_write(D / "state", b"new")\natomic_write(D / "x", b"x")')
    assert lose_unsynced(journal, [data]) == []
    assert tree(data) == {"state": b"new", "x": b"x"}


def test_a_rename_over_without_the_directory_fsync_reverts(data: Path, journal: Path) -> None:
    (data / "state").write_bytes(b"old contents")
    baseline(journal, [data])
    run_child(journal, data, """
        write("state.tmp", b"new contents")
        fsync_journal.replace(D / "state.tmp", D / "state")
    """)
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"state": b"old contents"}
    assert cuts == [Cut(str(data / "state"), 12, 12, "reverted")]


def test_an_unlink_made_durable_by_a_directory_fsync_stays(data: Path, journal: Path) -> None:
    (data / "gone").write_bytes(b"gone for good")
    baseline(journal, [data])
    run_child(journal, data, 'fsync_journal.unlink(D / "gone")\nfsync_dir(D)')
    assert lose_unsynced(journal, [data]) == []
    assert tree(data) == {}


def test_an_unlink_after_the_last_directory_fsync_reverts_cut_to_its_synced_length(
        data: Path, journal: Path) -> None:
    (data / "seg").write_bytes(b"0123456789")
    baseline(journal, [data])
    run_child(journal, data, """
        write("seg", b"abcde")             # synced at 15 bytes
        write("seg", b"fghij", sync=False)
        fsync_journal.unlink(D / "seg")
    """)
    assert tree(data) == {}
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"seg": b"0123456789abcde"}
    assert cuts == [Cut(str(data / "seg"), 0, 15, "reverted")]


def test_a_file_in_a_new_subdirectory_vanishes_with_it_unless_made_durable(
        data: Path, journal: Path) -> None:
    baseline(journal, [data])
    run_child(journal, data, """
        make_dirs(D / "durable" / "deeper")  # fsyncs each parent it adds an entry to
        write("durable/deeper/f", b"data")
        fsync_dir(D / "durable" / "deeper")
        os.mkdir(D / "sub")                # D is never fsynced after this
        write("sub/f", b"data")
        fsync_dir(D / "sub")
    """)
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"durable": None, "durable/deeper": None, "durable/deeper/f": b"data"}
    assert cuts == [Cut(str(data / "sub"), 4, 0, "vanished")]


def test_an_rmtree_without_the_parent_fsync_brings_the_tree_back(
        data: Path, journal: Path) -> None:
    (data / "log").mkdir()
    (data / "log" / "seg").write_bytes(b"0123456789")
    (data / "deleted").mkdir()
    (data / "deleted" / "seg").write_bytes(b"x")
    baseline(journal, [data])
    run_child(journal, data, """
        write("log/seg", b"synced")
        write("log/seg", b"unsynced", sync=False)
        fsync_journal.rmtree(D / "deleted")
        fsync_dir(D)
        fsync_journal.rmtree(D / "log")
    """)
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"log": None, "log/seg": b"0123456789synced"}
    assert cuts == [Cut(str(data / "log"), 0, 0, "reverted")]


def test_a_directory_inode_removed_by_rmtree_is_another_directory_when_reused(
        journal: Path) -> None:
    # Written by hand: inode 5 is listed, then removed; a directory found with inode 5 later
    # is not the one the listing describes.
    journal.write_text('B 1 2 {"path":"r","entries":{"sub":[1,5,1]}}\n'
                       'B 1 5 {"path":"r/sub","entries":{"f":[1,6,0]}}\n'
                       "X 1 5\n")
    state = parse_journal(journal)
    old = state.listings[(1, 2, 0)]["sub"]
    assert old.ident == (1, 5, 0) and (1, 5, 0) in state.listings
    assert state.current(fsync_journal.Entry(1, 5, True)).ident == (1, 5, 1)


def test_files_present_at_the_baseline_survive(data: Path, journal: Path) -> None:
    (data / "a").write_bytes(b"never fsynced by anyone")
    (data / "sub").mkdir()
    (data / "sub" / "b").write_bytes(b"b")
    baseline(journal, [data])
    run_child(journal, data, 'write("sub/b", b" more", sync=False)')
    cuts = lose_unsynced(journal, [data])
    assert tree(data) == {"a": b"never fsynced by anyone", "sub": None, "sub/b": b"b"}
    assert cuts == [Cut(str(data / "sub" / "b"), 6, 1)]


def test_a_second_loss_right_after_the_first_changes_nothing(data: Path, journal: Path) -> None:
    (data / "state").write_bytes(b"old")
    baseline(journal, [data])
    run_child(journal, data, """
        write("state.tmp", b"new")
        fsync_journal.replace(D / "state.tmp", D / "state")
        os.mkdir(D / "sub")
        write("sub/f", b"x")
    """)
    assert lose_unsynced(journal, [data], rng=random.Random(3))
    after = tree(data)
    assert lose_unsynced(journal, [data]) == []
    assert tree(data) == after
    assert not fsync_journal.graveyard_dir(journal).exists()


CHURN = """
for i in range(6):
    write(f"new{i}", b"new")         # fsynced, the name never
for i in range(6):
    write(f"old{i}.tmp", b"replaced")
    fsync_journal.replace(D / f"old{i}.tmp", D / f"old{i}")
for i in range(6):
    fsync_journal.unlink(D / f"del{i}")
"""


def churn(root: Path) -> tuple[Path, Path]:
    data, journal = root / "data", root / "fsync.journal"
    data.mkdir(parents=True)
    for i in range(6):
        (data / f"old{i}").write_bytes(b"old")
        (data / f"del{i}").write_bytes(b"deleted")
    baseline(journal, [data])
    run_child(journal, data, CHURN)
    return data, journal


def test_with_an_rng_each_change_reverts_or_not_reproducibly(tmp_path: Path) -> None:
    results = []
    for run in ("a", "b"):
        data, journal = churn(tmp_path / run)
        cuts = lose_unsynced(journal, [data], rng=random.Random(42))
        results.append((changes(cuts, data), tree(data)))
    assert results[0] == results[1]
    got, contents = results[0]
    assert 0 < len(got) < 18, "with p=1/2 over 18 changes, seed 42 both keeps and reverts"
    for i in range(6):
        assert contents.get(f"new{i}") in (None, b"new")
        assert contents[f"old{i}"] in (b"old", b"replaced")
        assert contents.get(f"del{i}") in (None, b"deleted")
    data, journal = churn(tmp_path / "worst")
    assert len(lose_unsynced(journal, [data])) == 18
    assert tree(data) == {**{f"old{i}": b"old" for i in range(6)},
                          **{f"del{i}": b"deleted" for i in range(6)}}


def test_a_torn_last_line_is_ignored(data: Path, journal: Path) -> None:
    baseline(journal, [data])
    run_child(journal, data, 'write("f", b"1234")\nfsync_dir(D)')
    whole = journal.read_bytes()
    st = (data / "f").stat()
    torn = f"{st.st_dev} {st.st_ino} 99".encode()  # a length record cut before its path
    journal.write_bytes(whole + torn)
    assert read_journal(journal)[(st.st_dev, st.st_ino)] == 4
    journal.write_bytes(whole + b'D 1 2 {"path":"x","entr')
    assert (1, 2) not in parse_journal(journal).listings
    assert lose_unsynced(journal, [data]) == []
    assert tree(data) == {"f": b"1234"}


# -- a planted bug, and the product -----------------------------------------------------------


def _atomic_write_without_the_directory_fsync() -> str:
    """storage/fileutil.atomic_write as it is, minus its last line (the directory fsync)."""
    src = textwrap.dedent(inspect.getsource(fileutil.atomic_write))
    planted = src.replace("    fsync_dir(path.parent)\n", "")
    assert planted != src, "atomic_write no longer ends with fsync_dir(path.parent)"
    return planted


@pytest.mark.parametrize("planted", [False, True])
def test_the_power_loss_model_catches_an_atomic_write_without_its_directory_fsync(
        data: Path, journal: Path, planted: bool) -> None:
    (data / "state").write_bytes(b"previous")
    baseline(journal, [data])
    script = "atomic_write(D / 'state', b'next')"
    if planted:
        script = (f"from storage import fileutil\nns = dict(vars(fileutil))\n"
                  f"exec({_atomic_write_without_the_directory_fsync()!r}, ns)\n"
                  f"ns['atomic_write'](D / 'state', b'next')")
    run_child(journal, data, script)
    assert (data / "state").read_bytes() == b"next"  # until the power goes
    lose_unsynced(journal, [data])
    assert (data / "state").read_bytes() == (b"previous" if planted else b"next")


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_every_batch_a_partition_log_flushed_survives_the_loss(
        data: Path, journal: Path, seed: int | None) -> None:
    # flush.messages=1 fsyncs every append; small segments make it roll (new segment files,
    # made durable by the directory fsync of the roll). The log's own directory is new too.
    baseline(journal, [data])
    out = run_child(journal, data, """
        from storage.log import PartitionLog
        from storage.log_config import LogConfig
        from tests.helpers_batches import make_batch
        log = PartitionLog.open(D / "topic-0", LogConfig(segment_bytes=400, flush_messages=1))
        for i in range(40):
            info = log.append(make_batch([20, 20], seed=i, base_timestamp=1000 + i))
            print(info.first_offset, info.last_offset)
        os._exit(0)  # no close, no final flush: the process just ends
    """)
    acked = [tuple(map(int, ln.split())) for ln in out.splitlines()]
    assert len(acked) == 40
    segments = [p for p in (data / "topic-0").iterdir() if p.suffix == ".log"]
    assert len(segments) > 3, "the log did not roll"
    cuts = lose_unsynced(journal, [data], rng=None if seed is None else random.Random(seed))
    assert not [c for c in cuts if c.change == "unrestorable"], cuts
    log = PartitionLog.open(data / "topic-0", LogConfig(segment_bytes=400))
    try:
        got = [(h.base_offset, h.last_offset)
               for _, h in iter_batches(log.read_batches(log.log_start_offset))]
    finally:
        log.close()
    assert got == acked


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_a_partition_log_loses_only_a_suffix_with_the_default_flush_policy(
        data: Path, journal: Path, seed: int | None) -> None:
    # Kafka's default flush policy: appends stay in the page cache; only a roll fsyncs (the
    # outgoing segment). A power loss may take the active segment's tail, never a batch before
    # one that survives, and the log must not claim offsets it lost (README: "Rolling a segment
    # fsyncs the old one first").
    baseline(journal, [data])
    out = run_child(journal, data, """
        from storage.log import PartitionLog
        from storage.log_config import LogConfig
        from tests.helpers_batches import make_batch
        log = PartitionLog.open(D / "topic-0", LogConfig(segment_bytes=400))
        for i in range(40):
            info = log.append(make_batch([20, 20], seed=i, base_timestamp=1000 + i))
            print(info.first_offset, info.last_offset)
        print(log.recovery_point)  # what a recovery-point checkpoint would hold
        os._exit(0)  # no close, no final flush
    """)
    *lines, last = out.splitlines()
    acked = [tuple(map(int, ln.split())) for ln in lines]
    recovery_point = int(last)
    assert len(acked) == 40 and recovery_point > 0, "the log did not roll"
    cuts = lose_unsynced(journal, [data], rng=None if seed is None else random.Random(seed))
    assert not [c for c in cuts if c.change == "unrestorable"], cuts
    log = PartitionLog.open(data / "topic-0", LogConfig(segment_bytes=400),
                            recovery_point=recovery_point)
    try:
        got = [(h.base_offset, h.last_offset)
               for _, h in iter_batches(log.read_batches(log.log_start_offset))]
        end = log.log_end_offset
    finally:
        log.close()
    assert got == acked[:len(got)], "a batch is missing before one that survived"
    assert end == (got[-1][1] + 1 if got else 0), f"log end {end}, but the data ends at {got[-1:]}"
    assert end >= recovery_point, "data the rolls made durable was lost"


@pytest.mark.parametrize("seed", [None, 1])
def test_a_metadata_snapshot_survives_the_loss_whole(
        data: Path, journal: Path, seed: int | None) -> None:
    # kraft/snapshot.py: a snapshot written through the store is durable when the call returns
    # (part file fsynced, renamed, directory fsynced): a power loss right after it keeps it
    # whole, never an empty or torn file under the final name.
    baseline(journal, [data])
    run_child(journal, data, """
        from kraft.messages import SnapshotId
        from broker.controller.snapshot_files import FileSnapshotStore
        store = FileSnapshotStore(D / "meta")
        store.write_records(SnapshotId(100, 3), [b"record-%d" % i for i in range(500)], 1000)
        os._exit(0)
    """)
    lose_unsynced(journal, [data], rng=None if seed is None else random.Random(seed))
    store = FileSnapshotStore(data / "meta")
    [sid] = store.snapshot_ids()
    assert sid == SnapshotId(100, 3)
    size = store.size(sid)
    assert size is not None and size > 0, "the snapshot is empty after the loss"
    assert list(read_snapshot(store.read(sid, 0, size))) == [b"record-%d" % i
                                                             for i in range(500)]


METADATA_NODE = """
import asyncio, time, uuid
import broker.controller.metadata_log as metadata_log
from storage.log_config import LogConfig
# Small segments, so that a snapshot lets the node delete whole segments of the log prefix.
metadata_log.METADATA_LOG_CONFIG = LogConfig(segment_bytes=2048, retention_ms=-1,
                                             retention_bytes=-1)
from broker.controller.metadata_loader import MetadataLoader
from broker.controller.metadata_log import MetadataLog
from broker.controller.raft_driver import RaftManager
from broker.controller.snapshot_files import FileSnapshotStore
from storage.fileutil import make_dirs
from kraft.metadata_records import (MetadataRecordType, TopicRecord, encode_metadata_record,
                                      latest_version)
from broker.controller.quorum_state_file import METADATA_PARTITION_DIR

M = D / METADATA_PARTITION_DIR

def topic(i):
    t = MetadataRecordType.TOPIC_RECORD
    return encode_metadata_record(t, latest_version(t), TopicRecord(
        name=f"t{i}", topic_id=uuid.UUID(int=i + 1)))

def node(max_snapshot_bytes):
    # As broker/node.py wires them: one voter, its loader taking snapshots.
    make_dirs(M)
    store = FileSnapshotStore(M)
    raft = RaftManager(1, "cluster", {1: ("127.0.0.1", 9)}, str(D), election_timeout_ms=50,
                       snapshots=store)
    loader = MetadataLoader(1)
    raft.register(loader)
    loader.enable_snapshots(store, raft, max_bytes=max_snapshot_bytes, max_interval_ms=0)
    return raft, loader

async def until(pred, what):
    for _ in range(2000):
        if pred():
            return
        await asyncio.sleep(0.005)
    print("timed out waiting for", what, flush=True)
    os._exit(3)
"""


@pytest.mark.parametrize("seed", ["kill", None, 1, 2])
def test_a_power_loss_right_after_a_snapshot_dropped_the_log_prefix_loses_nothing(
        data: Path, journal: Path, seed: int | str | None) -> None:
    # The whole path of broker/controller/metadata_loader.py and broker/controller/raft_driver.py: the loader writes a
    # snapshot, tells Raft, and the driver deletes the segments below it. The node crashes the
    # moment the first segment is gone and the power goes: the restarted node must still hold
    # every committed record, from the snapshot and what is left of the log. A snapshot write
    # waits (up to 1.5 s) for the first segment to go, so that a prefix deleted before its
    # snapshot is durable is seen whatever the timing; done right, the prefix goes only after.
    baseline(journal, [data])
    out = run_child(journal, data, METADATA_NODE + """
first_segment = M / "00000000000000000000.log"
delete_below = MetadataLog.delete_below

def delete_below_then_crash(self, offset):
    delete_below(self, offset)
    if not first_segment.exists():
        print(len(loader.image.topics.by_name), flush=True)  # committed, acknowledged
        os._exit(0)

MetadataLog.delete_below = delete_below_then_crash
write_records = FileSnapshotStore.write_records

def slow_write_records(*args):
    deadline = time.monotonic() + 1.5
    while first_segment.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return write_records(*args)

FileSnapshotStore.write_records = slow_write_records
raft, loader = node(max_snapshot_bytes=1500)

async def main():
    await raft.start()
    await until(raft.is_leader, "leadership")
    for i in range(5000):
        raft.append([topic(i)], epoch=raft.epoch)
        await asyncio.sleep(0.001)
    print("the log prefix was never deleted", flush=True)
    os._exit(3)

asyncio.run(main())
""")
    committed = int(out.split()[-1])
    assert committed > 0
    if seed != "kill":  # "kill": a crash alone, where every deletion already stands
        lose_unsynced(journal, [data], rng=None if seed is None else random.Random(seed))
    out = run_child(journal, data, METADATA_NODE + """
raft, loader = node(max_snapshot_bytes=1 << 30)

async def main():
    await raft.start()
    await until(lambda: loader.failed or raft.is_leader() and raft.high_watermark
                == raft.log_end_offset and loader.image.offset + 2 >= raft.high_watermark,
                "the restarted node to load its metadata")
    print(loader.failed or sorted(int(n[1:]) for n in loader.image.topics.by_name), flush=True)
    os._exit(0)

asyncio.run(main())
""")
    got = out.strip().splitlines()[-1]
    assert got.startswith("["), f"the restarted node did not load its metadata: {got}"
    names = [int(n) for n in got.strip("[]").split(",") if n.strip()]
    assert names[:committed] == list(range(committed)), "committed records were lost"
