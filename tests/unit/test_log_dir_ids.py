"""Log directory ids at start-up and the log manager's use of them (KIP-858)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from storage.errors import LogDirOfflineError, MetaPropertiesError
from storage.log_dir_ids import directory_uuid, prepare_log_dirs, read_directory_ids
from storage.log_manager import LogManager
from storage.meta_properties import MetaProperties, read_meta_properties, write_meta_properties

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qg"


def _format(d: Path, directory_id: str | None = "f2D9cXJ1T8Wb0lAQmiR3hQ", node: int = 1) -> None:
    write_meta_properties(d, MetaProperties(CLUSTER, node, directory_id=directory_id))


def test_an_empty_dir_and_a_dir_without_id_get_a_directory_id(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _format(a)
    _format(b, directory_id=None)
    c.mkdir()
    out = prepare_log_dirs([str(a), str(b), str(c)], str(a), node_id=1)
    assert not out.offline and out.cluster_id == CLUSTER
    ids = {d: m.directory_id for d, m in out.metas.items()}
    assert ids[str(a)] == "f2D9cXJ1T8Wb0lAQmiR3hQ"
    assert len(set(ids.values())) == 3
    for d in (b, c):  # written to disk
        meta = read_meta_properties(d)
        assert meta is not None and meta.directory_id == ids[str(d)] and meta.node_id == 1
    assert read_directory_ids([a, b, c]) == {
        Path(d): directory_uuid(i) for d, i in ids.items()}


def test_an_unreadable_dir_is_offline_unless_it_holds_the_metadata_log(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _format(a)
    b.write_text("not a directory")  # the disk is gone: the path is no longer a directory
    out = prepare_log_dirs([str(a), str(b)], str(a), node_id=1)
    assert out.offline == [str(b)] and list(out.metas) == [str(a)]
    with pytest.raises(MetaPropertiesError, match="metadata log directory"):
        prepare_log_dirs([str(a), str(b)], str(b), node_id=1)


def test_nothing_formatted_or_another_node_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    with pytest.raises(MetaPropertiesError, match="kafka-storage"):
        prepare_log_dirs([str(a)], str(a), node_id=1)
    _format(a)
    _format(b, directory_id="g2D9cXJ1T8Wb0lAQmiR3hQ", node=2)
    with pytest.raises(MetaPropertiesError, match="node.id"):
        prepare_log_dirs([str(a), str(b)], str(a), node_id=1)


def test_a_partition_is_never_recreated_outside_its_assigned_dir(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    m = LogManager.open([a, b])
    ida, idb = uuid.UUID(int=1 << 100), uuid.UUID(int=2 << 100)
    m.directory_ids = {a: ida, b: idb}
    log = m.get_or_create_log("t", 0, dir_id=idb)
    assert log.dir.parent == b and m.dir_id_of("t", 0) == idb
    # UNASSIGNED: the manager picks (the dir with fewest logs).
    m.get_or_create_log("t", 1, dir_id=uuid.UUID(int=1))
    assert m.log_dir_of("t", 1) == a
    # A dir that is not ours (it failed at start-up): refused.
    with pytest.raises(LogDirOfflineError):
        m.get_or_create_log("t", 2, dir_id=uuid.UUID(int=3 << 100))
    assert m.get_log("t", 2) is None
    # b fails at run time: its owner is told once, its id is listed offline, and nothing
    # assigned to it is created in a (the replica manager keeps its partitions offline:
    # broker/replication/log_dir_failure.py).
    seen: list[Path] = []

    def offline(d: Path) -> None:
        seen.append(d)
        m.close_offline_dir(d)

    m.on_dir_offline = offline
    shutil.rmtree(b)
    m.checkpoint()
    assert seen == [b] and m.offline_dirs == {b}
    assert m.get_log("t", 0) is None and m.log_dir_of("t", 0) is None
    assert m.online_dir_ids() == [ida] and m.offline_dir_ids() == [idb]
    with pytest.raises(LogDirOfflineError):
        m.get_or_create_log("t", 0, dir_id=idb)
    with pytest.raises(LogDirOfflineError):
        m.get_or_create_log("t", 3, dir_id=idb)
    assert list(a.iterdir()) and not (a / "t-0").exists()
    m.checkpoint()
    assert seen == [b]  # told once
