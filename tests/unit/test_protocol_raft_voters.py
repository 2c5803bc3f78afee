"""AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter (KIP-853) against hand-built wire bytes.

No installed client speaks these APIs, so the vectors are assembled byte by byte from Kafka's
field order (compact strings, uvarint array lengths + 1, tagged-field sections).
"""

from __future__ import annotations

import uuid

from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.messages import add_raft_voter, remove_raft_voter, update_raft_voter

DIR = uuid.UUID("0b7e4f8a-1111-2222-3333-444455556666")


def _cstr(s: str) -> bytes:
    return bytes([len(s) + 1]) + s.encode()


def test_registered_with_kafka_names_and_listeners() -> None:
    assert API_SPECS[ApiKey.ADD_RAFT_VOTER].name == "AddRaftVoter"
    assert API_SPECS[ApiKey.REMOVE_RAFT_VOTER].listeners == {"broker", "controller"}
    assert API_SPECS[ApiKey.UPDATE_RAFT_VOTER].listeners == {"controller"}
    assert API_SPECS[ApiKey.ADD_RAFT_VOTER].valid_versions.highest == 1


def _add_bytes(version: int) -> bytes:
    body = (_cstr("cid") + (5000).to_bytes(4, "big") + (3).to_bytes(4, "big") + DIR.bytes
            + bytes([2]) + _cstr("CONTROLLER") + _cstr("h") + (9093).to_bytes(2, "big") + b"\x00")
    if version >= 1:
        body += b"\x00"  # ack_when_committed = false
    return body + b"\x00"


def test_add_raft_voter_request_round_trip() -> None:
    R = add_raft_voter.REQUEST
    for version in (0, 1):
        wire = _add_bytes(version)
        req, end = R.decode(wire, version)
        assert end == len(wire)
        assert (req.cluster_id, req.timeout_ms, req.voter_id, req.voter_directory_id) == \
            ("cid", 5000, 3, DIR)
        assert [(x.name, x.host, x.port) for x in req.listeners] == [("CONTROLLER", "h", 9093)]
        assert req.ack_when_committed is (version == 0)  # v0 always acks when committed
        assert R.encode(req, version) == wire


def test_remove_raft_voter_and_response() -> None:
    wire = _cstr("cid") + (2).to_bytes(4, "big") + DIR.bytes + b"\x00"
    req, _ = remove_raft_voter.REQUEST.decode(wire, 0)
    assert (req.voter_id, req.voter_directory_id) == (2, DIR)
    resp = remove_raft_voter.RESPONSE.cls(throttle_time_ms=0, error_code=7, error_message="x")
    assert remove_raft_voter.RESPONSE.encode(resp, 0) == \
        b"\x00\x00\x00\x00" + b"\x00\x07" + _cstr("x") + b"\x00"


def test_update_raft_voter_with_tagged_current_leader() -> None:
    wire = (_cstr("cid") + (4).to_bytes(4, "big") + (1).to_bytes(4, "big") + DIR.bytes
            + bytes([2]) + _cstr("C") + _cstr("h") + (1).to_bytes(2, "big") + b"\x00"
            + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + b"\x00" + b"\x00")
    req, end = update_raft_voter.REQUEST.decode(wire, 0)
    assert end == len(wire)
    assert (req.current_leader_epoch, req.voter_id) == (4, 1)
    f = req.kraft_version_feature
    assert (f.min_supported_version, f.max_supported_version) == (0, 1)
    R = update_raft_voter.RESPONSE
    resp = R.cls(throttle_time_ms=0, error_code=0,
                 current_leader=R.CurrentLeader(leader_id=2, leader_epoch=4, host="h", port=7))
    out = R.encode(resp, 0)
    leader = (2).to_bytes(4, "big") + (4).to_bytes(4, "big") + _cstr("h") + (7).to_bytes(4, "big") \
        + b"\x00"
    assert out == b"\x00" * 4 + b"\x00\x00" + b"\x01" + b"\x00" + bytes([len(leader)]) + leader
    back, _ = R.decode(out, 0)
    assert back.current_leader.leader_id == 2
