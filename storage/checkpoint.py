"""Kafka's checkpoint files: a version line, a count line, then one entry per line.

The on-disk format is Kafka's ``CheckpointFile`` (server-common), byte for byte::

    0\\n
    <entry count>\\n
    <entry>\\n
    ...

``CheckpointFile`` is the generic "version + list of lines" file; ``OffsetCheckpointFile`` stores
``(topic, partition) -> offset`` maps (``<topic> <partition> <offset>`` per line) and backs
``recovery-point-offset-checkpoint``, ``replication-offset-checkpoint`` (high watermarks),
``log-start-offset-checkpoint`` and ``cleaner-offset-checkpoint``. The leader-epoch checkpoint
(``storage.leader_epoch``) is a ``CheckpointFile`` too.

Writes go through ``atomic_write`` (temp file, fsync, rename, fsync dir), so a crash leaves either
the old file or the new one. Reading follows Kafka's reader: a missing or empty file, or one with
only a version line, reads as no entries; any other deviation raises ``CorruptCheckpointError``
naming the file and the 1-based line number.

Errors: a malformed file is ``CorruptCheckpointError`` (a ``StorageError``). Kafka treats it as a
log-directory failure, except for the recovery-point and log-start-offset checkpoints, which it
discards with a warning (and then recovers every segment / uses each log's own start offset); the
caller decides. An ``OSError`` while reading or writing is re-raised as ``LogDirOfflineError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

from storage.errors import LogDirOfflineError, StorageError
from storage.fileutil import atomic_write

T = TypeVar("T")

# File names Kafka uses in each log directory (and the leader-epoch one in each partition dir).
RECOVERY_POINT_OFFSET_CHECKPOINT = "recovery-point-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"

OFFSET_CHECKPOINT_VERSION = 0

_INT_RE = re.compile(r"[+-]?[0-9]+")  # what Java's Integer.parseInt / Long.parseLong accept
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class CorruptCheckpointError(StorageError):
    """A checkpoint file does not parse. ``line_number`` is 1-based, ``None`` for whole-file errors."""

    def __init__(self, path: Path, reason: str, line_number: int | None = None,
                 line: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line_number = line_number
        self.line = line
        where = f"{path}" if line_number is None else f"{path} line {line_number}"
        shown = "" if line is None else f": {line!r}"
        super().__init__(f"Malformed checkpoint file {where}: {reason}{shown}")


def parse_int(text: str, lo: int = _INT64_MIN, hi: int = _INT64_MAX) -> int:
    """Parse a decimal integer strictly (no spaces, no underscores), within ``[lo, hi]``.

    Raises ``ValueError`` on anything else; ``CheckpointFile`` turns that into a
    ``CorruptCheckpointError`` with the file and line.
    """
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"not an integer: {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{value} is out of range [{lo}, {hi}]")
    return value


class CheckpointFile(Generic[T]):
    """A durable ``version + count + one entry per line`` file (Kafka's ``CheckpointFile``).

    ``to_line`` renders an entry (must not contain a newline); ``from_line`` parses one and raises
    ``ValueError`` if the line is malformed.
    """

    def __init__(self, path: str | os.PathLike[str], *, version: int,
                 to_line: Callable[[T], str], from_line: Callable[[str], T]) -> None:
        self.path = Path(path)
        self.version = version
        self._to_line = to_line
        self._from_line = from_line

    def encode(self, entries: Iterable[T]) -> bytes:
        lines = [self._to_line(e) for e in entries]
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError(f"checkpoint entry contains a line break: {line!r}")
        body = "".join(line + "\n" for line in lines)
        return f"{self.version}\n{len(lines)}\n{body}".encode()

    def write(self, entries: Iterable[T]) -> None:
        data = self.encode(entries)
        try:
            atomic_write(self.path, data)
        except OSError as e:
            raise LogDirOfflineError(f"Error writing checkpoint file {self.path}: {e}") from e

    def read(self) -> list[T]:
        """Entries in file order; ``[]`` if the file does not exist (Kafka creates it empty)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise LogDirOfflineError(f"Error reading checkpoint file {self.path}: {e}") from e
        return self.decode(data)

    def decode(self, data: bytes) -> list[T]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CorruptCheckpointError(self.path, f"not UTF-8 ({e})") from None
        lines = _split_lines(text)
        if not lines:
            return []
        try:
            version = parse_int(lines[0], _INT32_MIN, _INT32_MAX)
        except ValueError as e:
            raise CorruptCheckpointError(self.path, f"bad version line ({e})", 1, lines[0]) from None
        if version != self.version:
            raise CorruptCheckpointError(
                self.path, f"unrecognised version {version}, expected {self.version}", 1, lines[0]
            )
        if len(lines) == 1:
            return []
        try:
            expected = parse_int(lines[1], 0, _INT32_MAX)
        except ValueError as e:
            raise CorruptCheckpointError(self.path, f"bad entry count ({e})", 2, lines[1]) from None
        entries: list[T] = []
        for number, line in enumerate(lines[2:], start=3):
            try:
                entries.append(self._from_line(line))
            except ValueError as e:
                raise CorruptCheckpointError(self.path, str(e), number, line) from None
        if len(entries) != expected:
            raise CorruptCheckpointError(
                self.path, f"expected {expected} entries but found {len(entries)}"
            )
        return entries


def _split_lines(text: str) -> list[str]:
    """Split like Java's ``BufferedReader.readLine``: on ``\\n``, ``\\r\\n`` or ``\\r``.

    (Not ``str.splitlines``, which also splits on form feeds and Unicode separators.)
    A final line terminator does not start another line.
    """
    if not text:
        return []
    lines = re.split(r"\r\n|\r|\n", text)
    if lines[-1] == "":
        lines.pop()
    return lines


# ----------------------------------------------------------------------------------------------
# Offset checkpoints: "<topic> <partition> <offset>" per line.

TopicPartitionOffsets = dict[tuple[str, int], int]


def _offset_to_line(item: tuple[tuple[str, int], int]) -> str:
    (topic, partition), offset = item
    if not topic or any(c.isspace() for c in topic):
        raise ValueError(f"topic name {topic!r} is empty or contains whitespace")
    if not 0 <= partition <= _INT32_MAX:
        raise ValueError(f"partition {partition} out of range")
    if not _INT64_MIN <= offset <= _INT64_MAX:
        raise ValueError(f"offset {offset} out of range")
    return f"{topic} {partition} {offset}"


def _offset_from_line(line: str) -> tuple[tuple[str, int], int]:
    # Kafka splits on runs of whitespace and wants exactly three fields.
    fields = line.split()
    if len(fields) != 3:
        raise ValueError(f"expected '<topic> <partition> <offset>', got {len(fields)} fields")
    topic, partition, offset = fields
    return (topic, parse_int(partition, 0, _INT32_MAX)), parse_int(offset)


class OffsetCheckpointFile:
    """``(topic, partition) -> offset`` checkpoint in Kafka's format (version 0).

    Lines are written sorted by (topic, partition) so equal maps give equal bytes. A duplicate
    (topic, partition) on read is reported as corruption (Kafka would keep the last one; Kafka
    never writes duplicates, so a duplicate means the file is not one we or Kafka wrote).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file: CheckpointFile[tuple[tuple[str, int], int]] = CheckpointFile(
            path, version=OFFSET_CHECKPOINT_VERSION, to_line=_offset_to_line,
            from_line=_offset_from_line,
        )

    @property
    def path(self) -> Path:
        return self._file.path

    def write(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self._file.write(sorted(offsets.items()))

    def read(self) -> TopicPartitionOffsets:
        result: TopicPartitionOffsets = {}
        for index, (key, offset) in enumerate(self._file.read()):
            if key in result:
                raise CorruptCheckpointError(
                    self.path, f"duplicate entry for {key[0]}-{key[1]}", index + 3
                )
            result[key] = offset
        return result
