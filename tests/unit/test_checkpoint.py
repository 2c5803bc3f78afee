"""Offset checkpoint files (Kafka format) and the generic CheckpointFile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_OFFSET_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    CheckpointFile,
    CorruptCheckpointError,
    OffsetCheckpointFile,
)
from storage.errors import LogDirOfflineError, StorageError


def test_file_names_are_kafkas() -> None:
    assert RECOVERY_POINT_OFFSET_CHECKPOINT == "recovery-point-offset-checkpoint"
    assert REPLICATION_OFFSET_CHECKPOINT == "replication-offset-checkpoint"
    assert LOG_START_OFFSET_CHECKPOINT == "log-start-offset-checkpoint"
    assert CLEANER_OFFSET_CHECKPOINT == "cleaner-offset-checkpoint"


def test_round_trip_and_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / REPLICATION_OFFSET_CHECKPOINT
    cp = OffsetCheckpointFile(path)
    offsets = {("orders", 2): 1234, ("__consumer_offsets", 17): 0, ("orders", 0): 99}
    cp.write(offsets)
    # Sorted by (topic, partition), one "topic partition offset" line each.
    assert path.read_bytes() == (
        b"0\n3\n__consumer_offsets 17 0\norders 0 99\norders 2 1234\n"
    )
    assert cp.read() == offsets
    assert OffsetCheckpointFile(path).read() == offsets
    assert not path.with_name(path.name + ".tmp").exists()


def test_empty_map(tmp_path: Path) -> None:
    cp = OffsetCheckpointFile(tmp_path / "cp")
    cp.write({})
    assert cp.path.read_bytes() == b"0\n0\n"
    assert cp.read() == {}


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    cp = OffsetCheckpointFile(tmp_path / "nope")
    assert cp.read() == {}
    assert not cp.path.exists()


def test_overwrite_replaces_whole_file(tmp_path: Path) -> None:
    cp = OffsetCheckpointFile(tmp_path / "cp")
    cp.write({("a", 0): 1, ("b", 0): 2, ("c", 0): 3})
    cp.write({("a", 0): 10})
    assert cp.path.read_bytes() == b"0\n1\na 0 10\n"
    assert cp.read() == {("a", 0): 10}


def test_large_offsets_and_topic_characters(tmp_path: Path) -> None:
    cp = OffsetCheckpointFile(tmp_path / "cp")
    offsets = {("a.b_c-D9", 2**31 - 1): 2**63 - 1, ("x", 0): -1}
    cp.write(offsets)
    assert cp.read() == offsets


@pytest.mark.parametrize(
    "data",
    [b"", b"0\n", b"0", b"0\n0\n"],
)
def test_kafka_reader_tolerances_empty(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "cp"
    path.write_bytes(data)
    assert OffsetCheckpointFile(path).read() == {}


def test_kafka_reader_tolerances_crlf_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    path.write_bytes(b"0\r\n2\r\nt  0\t5\r\nu 1 +6")
    assert OffsetCheckpointFile(path).read() == {("t", 0): 5, ("u", 1): 6}


@pytest.mark.parametrize(
    ("data", "line_number", "fragment"),
    [
        (b"1\n0\n", 1, "unrecognised version 1"),
        (b"zero\n0\n", 1, "bad version"),
        (b" 0\n0\n", 1, "bad version"),
        (b"0\nmany\n", 2, "bad entry count"),
        (b"0\n-3\n", 2, "bad entry count"),
        (b"0\n1\nt 0\n", 3, "got 2 fields"),
        (b"0\n1\nt 0 1 2\n", 3, "got 4 fields"),
        (b"0\n2\nt 0 1\nt x 1\n", 4, "not an integer"),
        (b"0\n1\nt -1 5\n", 3, "out of range"),
        (b"0\n1\nt 0 9223372036854775808\n", 3, "out of range"),
        (b"0\n1\nt 0 5.0\n", 3, "not an integer"),
        (b"0\n1\nt 0 1\n\n", 4, "got 0 fields"),
        (b"0\n2\nt 0 1\nt 0 2\n", 4, "duplicate entry for t-0"),
        (b"0\n3\nt 0 1\n", None, "expected 3 entries but found 1"),
        (b"0\n0\nt 0 1\n", None, "expected 0 entries but found 1"),
        (b"\xfe\xff", None, "not UTF-8"),
    ],
)
def test_malformed(tmp_path: Path, data: bytes, line_number: int | None, fragment: str) -> None:
    path = tmp_path / RECOVERY_POINT_OFFSET_CHECKPOINT
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError) as info:
        OffsetCheckpointFile(path).read()
    err = info.value
    assert isinstance(err, StorageError)
    assert err.path == path
    assert err.line_number == line_number
    message = str(err)
    assert str(path) in message
    assert fragment in message
    if line_number is not None:
        assert f"line {line_number}" in message


@pytest.mark.parametrize(
    "offsets",
    [{("has space", 0): 1}, {("", 0): 1}, {("t", -1): 1}, {("t", 0): 2**63}, {("a\nb", 0): 1}],
)
def test_write_rejects_unrepresentable_entries(tmp_path: Path, offsets: dict[tuple[str, int], int]) -> None:
    cp = OffsetCheckpointFile(tmp_path / "cp")
    cp.write({("ok", 0): 1})
    with pytest.raises(ValueError):
        cp.write(offsets)
    assert cp.read() == {("ok", 0): 1}  # the old file is untouched


def test_write_io_error_is_log_dir_offline(tmp_path: Path) -> None:
    cp = OffsetCheckpointFile(tmp_path / "missing-dir" / "cp")
    with pytest.raises(LogDirOfflineError, match="missing-dir"):
        cp.write({("t", 0): 1})


def test_read_io_error_is_log_dir_offline(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    path.mkdir()  # reading a directory fails with IsADirectoryError
    with pytest.raises(LogDirOfflineError):
        OffsetCheckpointFile(path).read()


# -- generic CheckpointFile ---------------------------------------------------------------------


def test_generic_checkpoint_file(tmp_path: Path) -> None:
    def from_line(line: str) -> str:
        if not line.startswith("id="):
            raise ValueError("expected id=...")
        return line[3:]

    cp: CheckpointFile[str] = CheckpointFile(
        tmp_path / "ids", version=3, to_line=lambda s: f"id={s}", from_line=from_line
    )
    cp.write(["a", "b c"])
    assert cp.path.read_bytes() == b"3\n2\nid=a\nid=b c\n"
    assert cp.read() == ["a", "b c"]
    cp.path.write_bytes(b"3\n1\nnope\n")
    with pytest.raises(CorruptCheckpointError, match="line 3: expected id=...: 'nope'"):
        cp.read()
    with pytest.raises(ValueError, match="line break"):
        cp.write(["x\ny"])


def test_write_is_durable_rename(tmp_path: Path) -> None:
    # The new file is a different inode (temp + rename), never an in-place rewrite.
    cp = OffsetCheckpointFile(tmp_path / "cp")
    cp.write({("t", 0): 1})
    first = os.stat(cp.path).st_ino
    cp.write({("t", 0): 2})
    assert os.stat(cp.path).st_ino != first
    assert cp.read() == {("t", 0): 2}
