"""A pysyncobj journal the engine cannot open after a power loss (broker/controller/
pysyncobj_journal.py): an empty or cut journal, or an empty meta file, is named in an ERROR
and moved aside, and pysyncobj's own FileJournal then starts on an empty one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pysyncobj.journal import FileJournal

from broker.controller.pysyncobj_journal import (
    journal_problem,
    meta_problem,
    set_aside_unreadable,
)


def _journal(tmp_path: Path, entries: int = 3) -> Path:
    """A journal and its meta file written by pysyncobj itself."""
    path = tmp_path / "pysyncobj.journal"
    j = FileJournal(str(path))
    for i in range(entries):
        j.add(b"command-%d" % i, i + 1, 2)
    j.setCurrentTerm(2, "127.0.0.1:9000")
    j._destroy()
    return path


def test_a_journal_written_by_pysyncobj_reads_whole(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    assert journal_problem(path) is None
    assert meta_problem(path.with_name(path.name + ".meta")) is None
    assert journal_problem(tmp_path / "absent") is None  # pysyncobj creates it
    assert set_aside_unreadable(path, 1) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pysyncobj.journal",
                                                          "pysyncobj.journal.meta"]


def test_an_empty_journal_is_moved_aside_with_its_meta(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = _journal(tmp_path)
    os.truncate(path, 0)
    with pytest.raises(ValueError, match="empty"):  # what pysyncobj does with it
        FileJournal(str(path))
    with caplog.at_level(logging.ERROR):
        moved = set_aside_unreadable(path, 7)
    assert [(src.name, dest.name, why) for src, dest, why in moved] == [
        ("pysyncobj.journal", "pysyncobj.journal.unreadable-0", "empty"),
        ("pysyncobj.journal.meta", "pysyncobj.journal.meta.unreadable-0",
         "belongs to the journal set aside")]
    assert f"{path} could not be opened (empty)" in caplog.text
    assert "node 7" in caplog.text
    fresh = FileJournal(str(path))  # the node starts with an empty journal, term 0
    assert (len(fresh), fresh.getCurrentTerm(), fresh.getVotedForNodeId()) == (0, 0, None)
    fresh._destroy()


@pytest.mark.parametrize("cut", [10, 41, -3])
def test_a_cut_journal_is_moved_aside(tmp_path: Path, cut: int) -> None:
    path = _journal(tmp_path)
    # FileJournal pads the file with zeros; cut relative to the records' end.
    end = int.from_bytes(path.read_bytes()[36:40], "little")
    os.truncate(path, cut if cut > 0 else end + cut)
    why = journal_problem(path)
    assert why is not None
    moved = set_aside_unreadable(path, 1)
    assert [src.name for src, _, _ in moved] == ["pysyncobj.journal", "pysyncobj.journal.meta"]
    assert not path.exists()
    # A second loss later: the earlier copy is kept, the new one gets the next name.
    path.write_bytes(b"")
    set_aside_unreadable(path, 1)
    assert (tmp_path / "pysyncobj.journal.unreadable-1").exists()


def test_a_journal_whose_last_record_was_never_written_is_moved_aside(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    data = bytearray(path.read_bytes())
    end = int.from_bytes(data[36:40], "little")
    data[end - 4:end] = b"\0\0\0\0"  # a page of the mmap that never reached the disk
    path.write_bytes(bytes(data))
    assert "trailing length 0" in (journal_problem(path) or "")
    assert [src.name for src, _, _ in set_aside_unreadable(path, 1)] == [
        "pysyncobj.journal", "pysyncobj.journal.meta"]


def test_an_empty_meta_file_alone_is_moved_aside(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    meta = path.with_name(path.name + ".meta")
    os.truncate(meta, 0)
    moved = set_aside_unreadable(path, 1)
    assert [(src.name, why) for src, _, why in moved] == [("pysyncobj.journal.meta", "empty")]
    j = FileJournal(str(path))  # the journal itself is kept
    assert len(j) == 3
    j._destroy()
