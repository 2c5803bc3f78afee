"""The ``quorum-state`` file: a KRaft replica's durable election state (Kafka's
``FileQuorumStateStore``), kept in the metadata partition directory
``<metadata.log.dir>/__cluster_metadata-0/quorum-state``.

One line of JSON in Kafka's ``QuorumStateData`` shape. We write version 0::

    {"clusterId":"","leaderId":-1,"leaderEpoch":0,"votedId":-1,"appliedOffset":0,
     "currentVoters":[{"voterId":1},{"voterId":2}],"data_version":0}

and read versions 0 and 1 (v1 drops clusterId/appliedOffset/currentVoters and adds
votedDirectoryId, which we ignore). Writes are atomic and durable (temp file, fsync, rename, fsync
the directory): a crash leaves the old state or the new one. A missing file is the initial state
(epoch 0, no vote, no leader); an unreadable one is ``QuorumStateError``, never a silent reset,
because forgetting a vote could let a replica vote twice in one epoch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError
from storage.fileutil import atomic_write

QUORUM_STATE_FILE = "quorum-state"
METADATA_PARTITION_DIR = "__cluster_metadata-0"
LOWEST_DATA_VERSION = 0
HIGHEST_DATA_VERSION = 1
_NONE = -1  # Kafka's "no leader" / "no vote"


class QuorumStateError(StorageError):
    """The quorum-state file exists but cannot be read or parsed."""


@dataclass(frozen=True, slots=True)
class QuorumStateData:
    """The file's content. ``leader_id``/``voted_id`` None where Kafka writes -1."""

    leader_epoch: int = 0
    leader_id: int | None = None
    voted_id: int | None = None
    cluster_id: str = ""
    applied_offset: int = 0
    current_voters: tuple[int, ...] | None = None


def quorum_state_path(metadata_log_dir: str | os.PathLike[str]) -> Path:
    """Where the file lives for a ``metadata.log.dir``."""
    return Path(metadata_log_dir) / METADATA_PARTITION_DIR / QUORUM_STATE_FILE


def encode_quorum_state(data: QuorumStateData) -> bytes:
    obj: dict[str, object] = {
        "clusterId": data.cluster_id,
        "leaderId": _NONE if data.leader_id is None else data.leader_id,
        "leaderEpoch": data.leader_epoch,
        "votedId": _NONE if data.voted_id is None else data.voted_id,
        "appliedOffset": data.applied_offset,
        "currentVoters": None if data.current_voters is None
        else [{"voterId": v} for v in data.current_voters],
        "data_version": 0,
    }
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _int(obj: dict[str, object], key: str, default: int) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuorumStateError(f"field {key!r} is not an integer: {value!r}")
    return value


def decode_quorum_state(raw: bytes, where: str = "quorum-state") -> QuorumStateData:
    """Parse the file's bytes (only the first line counts, as in Kafka)."""
    line = raw.split(b"\n", 1)[0]
    if not line.strip():
        raise QuorumStateError(f"{where}: file is empty (ended prematurely)")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise QuorumStateError(f"{where}: not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise QuorumStateError(f"{where}: not a JSON object: {line[:100]!r}")
    if "data_version" not in obj:
        raise QuorumStateError(f"{where}: no data_version field")
    try:
        version = _int(obj, "data_version", 0)
        if not LOWEST_DATA_VERSION <= version <= HIGHEST_DATA_VERSION:
            raise QuorumStateError(
                f"data_version ({version}) is not within the min ({LOWEST_DATA_VERSION}) "
                f"and max ({HIGHEST_DATA_VERSION}) supported version")
        leader_id = _int(obj, "leaderId", _NONE)
        voted_id = _int(obj, "votedId", _NONE)
        epoch = _int(obj, "leaderEpoch", _NONE)
        applied = _int(obj, "appliedOffset", 0)
        cluster_id = obj.get("clusterId", "")
        if not isinstance(cluster_id, str):
            raise QuorumStateError(f"field 'clusterId' is not a string: {cluster_id!r}")
        voters_raw = obj.get("currentVoters")
        voters: tuple[int, ...] | None = None
        if voters_raw is not None:
            if not isinstance(voters_raw, list):
                raise QuorumStateError(f"field 'currentVoters' is not a list: {voters_raw!r}")
            out = []
            for v in voters_raw:
                if not isinstance(v, dict):
                    raise QuorumStateError(f"a currentVoters entry is not an object: {v!r}")
                out.append(_int(v, "voterId", _NONE))
            voters = tuple(out)
    except QuorumStateError as e:
        raise QuorumStateError(f"{where}: {e}") from None
    return QuorumStateData(
        leader_epoch=max(epoch, 0),
        leader_id=None if leader_id < 0 else leader_id,
        voted_id=None if voted_id < 0 else voted_id,
        cluster_id=cluster_id,
        applied_offset=applied,
        current_voters=voters,
    )


def read_quorum_state(path: str | os.PathLike[str]) -> QuorumStateData | None:
    """The file's content, None if it does not exist; ``QuorumStateError`` if unreadable."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise QuorumStateError(f"{p}: cannot read: {e}") from e
    return decode_quorum_state(raw, str(p))


def write_quorum_state(path: str | os.PathLike[str], data: QuorumStateData) -> None:
    """Replace the file atomically and durably (the directory must exist)."""
    atomic_write(path, encode_quorum_state(data))


class QuorumStateFile:
    """The file of one replica, mapped to ``kraft.quorum_state.ElectionState``-shaped values.

    ``storage`` must not import ``kraft`` (imports point one way), so the mapping takes and
    returns plain values; ``broker.controller.raft_driver`` builds the ``ElectionState``.
    """

    def __init__(self, path: str | os.PathLike[str], *, cluster_id: str = "",
                 voters: tuple[int, ...] | None = None) -> None:
        self.path = Path(path)
        self.cluster_id = cluster_id
        self.voters = voters

    def read(self) -> tuple[int, int | None, int | None]:
        """(epoch, voted_for, leader_id); (0, None, None) when there is no file yet."""
        data = read_quorum_state(self.path)
        if data is None:
            return 0, None, None
        return data.leader_epoch, data.voted_id, data.leader_id

    def write(self, epoch: int, voted_for: int | None, leader_id: int | None) -> None:
        write_quorum_state(self.path, QuorumStateData(
            leader_epoch=epoch, leader_id=leader_id, voted_id=voted_for,
            cluster_id=self.cluster_id, current_voters=self.voters))
