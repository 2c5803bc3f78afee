"""The quorum-state file: Kafka's JSON shape, atomic writes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.controller.quorum_state_file import (
    QuorumStateData,
    QuorumStateError,
    QuorumStateFile,
    decode_quorum_state,
    encode_quorum_state,
    quorum_state_path,
    read_quorum_state,
    write_quorum_state,
)


def test_path_is_in_the_metadata_partition_directory(tmp_path: Path) -> None:
    assert quorum_state_path(tmp_path) == tmp_path / "__cluster_metadata-0" / "quorum-state"


def test_kafka_json_shape() -> None:
    data = QuorumStateData(leader_epoch=7, leader_id=2, voted_id=3, cluster_id="abc",
                           current_voters=(1, 2, 3))
    obj = json.loads(encode_quorum_state(data))
    assert obj == {"clusterId": "abc", "leaderId": 2, "leaderEpoch": 7, "votedId": 3,
                   "appliedOffset": 0, "currentVoters": [{"voterId": 1}, {"voterId": 2},
                                                         {"voterId": 3}],
                   "data_version": 0}
    assert decode_quorum_state(encode_quorum_state(data)) == data


def test_none_is_minus_one_and_back() -> None:
    data = QuorumStateData(leader_epoch=1)
    obj = json.loads(encode_quorum_state(data))
    assert obj["leaderId"] == -1 and obj["votedId"] == -1 and obj["currentVoters"] is None
    assert decode_quorum_state(encode_quorum_state(data)) == data


def test_reads_kafka_v1_files() -> None:
    raw = (b'{"leaderId":-1,"leaderEpoch":2,"votedId":1,'
           b'"votedDirectoryId":"J8aAPcfLQt2bqs1JT_rMgQ","data_version":1}')
    data = decode_quorum_state(raw)
    assert (data.leader_epoch, data.leader_id, data.voted_id) == (2, None, 1)


def test_write_is_atomic_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "quorum-state"
    assert read_quorum_state(path) is None
    write_quorum_state(path, QuorumStateData(leader_epoch=3, voted_id=1))
    write_quorum_state(path, QuorumStateData(leader_epoch=4, leader_id=2))
    assert read_quorum_state(path) == QuorumStateData(leader_epoch=4, leader_id=2)
    assert not (tmp_path / "quorum-state.tmp").exists()


def test_election_state_mapping(tmp_path: Path) -> None:
    f = QuorumStateFile(tmp_path / "quorum-state", cluster_id="c", voters=(1, 2, 3))
    assert f.read() == (0, None, None)  # missing: the initial state
    f.write(5, 1, None)
    assert f.read() == (5, 1, None)
    f.write(6, None, 3)
    assert f.read() == (6, None, 3)
    on_disk = read_quorum_state(f.path)
    assert on_disk is not None and on_disk.cluster_id == "c"
    assert on_disk.current_voters == (1, 2, 3)


@pytest.mark.parametrize("raw", [
    b"", b"\n", b"not json", b"[1,2]", b'{"leaderEpoch":1}',
    b'{"leaderEpoch":"x","data_version":0}', b'{"leaderEpoch":1,"data_version":9}',
    b'{"leaderEpoch":1,"currentVoters":[1],"data_version":0}',
])
def test_corrupt_files_are_clear_errors(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "quorum-state"
    path.write_bytes(raw)
    with pytest.raises(QuorumStateError, match="quorum-state"):
        read_quorum_state(path)
    with pytest.raises(QuorumStateError):
        QuorumStateFile(path).read()
