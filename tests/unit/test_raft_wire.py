"""kraft.messages <-> Kafka wire objects, round-tripped through the real schemas (encode, then
decode) at every version the driver uses; plus the metadata log's batch codec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.controller import raft_wire as w
from broker.controller.metadata_log import (
    METADATA_TOPIC_ID,
    MetadataLog,
    decode_entries,
    encode_entries,
)
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import begin_quorum_epoch as bqe
from broker.protocol.messages import describe_quorum as dq
from broker.protocol.messages import end_quorum_epoch as eqe
from broker.protocol.messages import fetch, vote
from broker.protocol.messages import fetch_snapshot as fs
from kraft.codec import UnsupportedVersionError
from kraft.log import LogEntry
from kraft.messages import (
    BeginQuorumEpoch,
    DivergingEpoch,
    EndQuorumEpoch,
    FetchError,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    QuorumDescription,
    ReplicaDescription,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from kraft.metadata_records import decode_control_record
from kraft.raft import LEADER_CHANGE_DATA
from storage.control_records import ControlRecordType
from storage.errors import CorruptRecordError
from storage.log_config import LogConfig

CID = "cluster-1"


def rt(schema: Any, obj: Any, version: int) -> Any:
    decoded, _end = schema.decode(schema.encode(obj, version), version)
    return decoded


# -- Vote ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pre_vote", [False, True])
def test_vote_round_trip_v2(pre_vote: bool) -> None:
    msg = VoteRequest(1, 6, 5, 42, pre_vote)
    req = rt(vote.REQUEST, w.vote_request_to_wire(msg, CID, 2, 2), 2)
    part = req.topics[0].partitions[0]
    # On the wire a PreVote carries the sender's current epoch (KIP-996).
    assert part.candidate_epoch == (5 if pre_vote else 6)
    assert part.pre_vote is pre_vote
    assert req.voter_id == 2
    back, err = w.vote_request_from_wire(req, CID)
    assert err == 0 and back == msg

    reply = VoteResponse(2, 5, 6, True, pre_vote, 3)
    resp = rt(vote.RESPONSE, w.vote_response_to_wire(reply), 2)
    assert w.vote_response_from_wire(resp, 2, msg) == reply
    no_leader = VoteResponse(2, 5, 6, False, pre_vote, None)
    resp = rt(vote.RESPONSE, w.vote_response_to_wire(no_leader), 2)
    assert w.vote_response_from_wire(resp, 2, msg) == no_leader


@pytest.mark.parametrize("version", [0, 1])
def test_vote_old_versions(version: int) -> None:
    msg = VoteRequest(1, 6, 5, 42)
    req = rt(vote.REQUEST, w.vote_request_to_wire(msg, CID, 2, version), version)
    assert w.vote_request_from_wire(req, CID) == (msg, 0)
    with pytest.raises(UnsupportedVersionError):  # a PreVote cannot be expressed below v2
        vote.REQUEST.encode(w.vote_request_to_wire(VoteRequest(1, 6, 5, 42, True), CID, 2,
                                                   version), version)
    reply = VoteResponse(2, 6, 6, True, False, None)
    resp = rt(vote.RESPONSE, w.vote_response_to_wire(reply), version)
    assert w.vote_response_from_wire(resp, 2, msg) == reply


def test_vote_errors() -> None:
    req = w.vote_request_to_wire(VoteRequest(1, 6, 5, 42), "other", 2, 2)
    assert w.vote_request_from_wire(req, CID) == (None, ErrorCode.INCONSISTENT_CLUSTER_ID)
    req = w.vote_request_to_wire(VoteRequest(1, 6, 5, 42), CID, 2, 2)
    req.topics[0].topic_name = "nope"
    assert w.vote_request_from_wire(req, CID) == (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    req = w.vote_request_to_wire(VoteRequest(1, 6, 5, 42), CID, 2, 2)
    req.topics[0].partitions[0].partition_index = 1
    assert w.vote_request_from_wire(req, CID) == (None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    err = rt(vote.RESPONSE, w.vote_error_response(ErrorCode.INCONSISTENT_CLUSTER_ID), 2)
    assert err.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
    assert w.vote_response_from_wire(err, 2, VoteRequest(1, 6, 5, 42)) is None


# -- BeginQuorumEpoch / EndQuorumEpoch --------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_begin_quorum_epoch(version: int) -> None:
    msg = BeginQuorumEpoch(3, 9)
    req = rt(bqe.REQUEST, w.begin_quorum_epoch_request_to_wire(msg, CID, 1), version)
    assert w.begin_quorum_epoch_request_from_wire(req, CID) == (msg, 0)
    assert w.begin_quorum_epoch_request_from_wire(req, "x") == (
        None, ErrorCode.INCONSISTENT_CLUSTER_ID)
    resp = rt(bqe.RESPONSE, w.begin_quorum_epoch_response(0, 3, 9), version)
    assert w.check_begin_quorum_epoch_response(resp) == 0
    assert resp.topics[0].partitions[0].leader_epoch == 9
    resp = rt(bqe.RESPONSE, w.begin_quorum_epoch_response(ErrorCode.INCONSISTENT_CLUSTER_ID),
              version)
    assert w.check_begin_quorum_epoch_response(resp) == ErrorCode.INCONSISTENT_CLUSTER_ID


@pytest.mark.parametrize("version", [0, 1])
def test_end_quorum_epoch(version: int) -> None:
    msg = EndQuorumEpoch(3, 9)
    req = rt(eqe.REQUEST, w.end_quorum_epoch_request_to_wire(msg, CID, [1, 2]), version)
    assert w.end_quorum_epoch_request_from_wire(req, CID) == (msg, 0)
    resp = rt(eqe.RESPONSE, w.end_quorum_epoch_response(0, None, 9), version)
    assert w.check_end_quorum_epoch_response(resp) == 0
    assert resp.topics[0].partitions[0].leader_id == -1


# -- Fetch --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(w.FETCH_VERSIONS))
def test_fetch_request(version: int) -> None:
    msg = FetchRequest(4, 7, 100, 6)
    req = rt(fetch.REQUEST, w.fetch_request_to_wire(msg, CID, version, max_wait_ms=300), version)
    assert req.max_wait_ms == 300
    if version >= 13:
        assert req.topics[0].topic_id == METADATA_TOPIC_ID
    else:
        assert req.topics[0].topic == "__cluster_metadata"
    if version >= 15:
        assert req.replica_state.replica_id == 4
    else:
        assert req.replica_id == 4
    assert w.fetch_request_from_wire(req, version, CID) == (msg, 0)
    assert w.fetch_request_from_wire(req, version, "x") == (
        None, ErrorCode.INCONSISTENT_CLUSTER_ID)


def test_fetch_request_unknown_topic() -> None:
    req = w.fetch_request_to_wire(FetchRequest(4, 7, 100, 6), CID, 13, max_wait_ms=0)
    req.topics[0].topic_id = METADATA_TOPIC_ID.__class__(int=5)
    assert w.fetch_request_from_wire(req, 13, CID) == (None, ErrorCode.UNKNOWN_TOPIC_ID)
    req = w.fetch_request_to_wire(FetchRequest(4, 7, 100, 6), CID, 12, max_wait_ms=0)
    req.topics[0].topic = "foo"
    assert w.fetch_request_from_wire(req, 12, CID) == (
        None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert w.fetch_request_from_wire(req, 11, CID) == (None, ErrorCode.UNSUPPORTED_VERSION)
    for code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INCONSISTENT_CLUSTER_ID):
        resp = rt(fetch.RESPONSE, w.fetch_error_response(code, 13), 13)
        assert w.fetch_response_from_wire(resp, 1, FetchRequest(4, 7, 100, 6)) is None


def _entries(start: int) -> tuple[LogEntry, ...]:
    return (
        LogEntry(start, 6, b"a"),
        LogEntry(start + 1, 6, b"b"),
        LogEntry(start + 2, 7, LEADER_CHANGE_DATA, control=True),
        LogEntry(start + 3, 7, b"c"),
    )


@pytest.mark.parametrize("version", list(w.FETCH_VERSIONS))
def test_fetch_response(version: int) -> None:
    req = FetchRequest(4, 7, 100, 6)
    cases = [
        FetchResponse(1, 7, 1, 100, 6, records=_entries(100), high_watermark=99),
        FetchResponse(1, 7, 1, 100, 6, high_watermark=103),
        FetchResponse(1, 7, 1, 100, 6, high_watermark=90, diverging_epoch=DivergingEpoch(5, 80)),
        FetchResponse(1, 7, 1, 100, 6, snapshot_id=SnapshotId(500, 6)),
        FetchResponse(2, 8, None, 100, 6, error=FetchError.NOT_LEADER),
        FetchResponse(1, 7, 1, 100, 6, high_watermark=3, error=FetchError.FENCED_EPOCH),
    ]
    for msg in cases:
        resp = rt(fetch.RESPONSE, w.fetch_response_to_wire(msg, version, voters=[1, 2, 3]),
                  version)
        back = w.fetch_response_from_wire(resp, msg.sender, req)
        assert back is not None
        if msg.records:
            # The LeaderChange placeholder goes out as a real LeaderChangeMessage.
            lc = back.records[2]
            assert lc.control and lc.offset == 102 and lc.epoch == 7
            obj = decode_control_record(ControlRecordType.LEADER_CHANGE, lc.data)
            assert obj.leader_id == 1
            assert [v.voter_id for v in obj.voters] == [1, 2, 3]
            assert back.records[:2] + back.records[3:] == msg.records[:2] + msg.records[3:]
            back = FetchResponse(**{**_asdict(back), "records": msg.records})
        assert back == msg


def _asdict(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__slots__}


def test_fetch_response_records_must_start_at_fetch_offset() -> None:
    msg = FetchResponse(1, 7, 1, 100, 6, records=_entries(100), high_watermark=99)
    resp = rt(fetch.RESPONSE, w.fetch_response_to_wire(msg, 17), 17)
    assert w.fetch_response_from_wire(resp, 1, FetchRequest(4, 7, 101, 6)) is not None
    assert w.fetch_response_from_wire(resp, 1, FetchRequest(4, 7, 99, 6)) is None


# -- FetchSnapshot ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_fetch_snapshot(version: int) -> None:
    msg = FetchSnapshotRequest(4, 7, SnapshotId(500, 6), 1024)
    req = rt(fs.REQUEST, w.fetch_snapshot_request_to_wire(msg, CID), version)
    assert w.fetch_snapshot_request_from_wire(req, CID) == (msg, 0)
    assert w.fetch_snapshot_request_from_wire(req, "x")[1] == ErrorCode.INCONSISTENT_CLUSTER_ID
    for reply in (
        FetchSnapshotResponse(1, 7, 1, SnapshotId(500, 6), 1024, size=4096, data=b"xyz"),
        FetchSnapshotResponse(1, 7, 1, SnapshotId(500, 6), 1024,
                              error=FetchError.SNAPSHOT_NOT_FOUND),
    ):
        resp = rt(fs.RESPONSE, w.fetch_snapshot_response_to_wire(reply), version)
        assert w.fetch_snapshot_response_from_wire(resp, 1, msg) == reply
    resp = rt(fs.RESPONSE, w.fetch_snapshot_error_response(ErrorCode.INCONSISTENT_CLUSTER_ID),
              version)
    assert w.fetch_snapshot_response_from_wire(resp, 1, msg) is None


# -- DescribeQuorum -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_quorum(version: int) -> None:
    req = rt(dq.REQUEST, w.describe_quorum_request(), version)
    assert w.describe_quorum_request_from_wire(req) == 0
    desc = QuorumDescription(
        1, 7, 120, (ReplicaDescription(1, 130, 5, 5), ReplicaDescription(2, 120, 4, 3)),
        (ReplicaDescription(9, 100, 2, 1),))
    resp = rt(dq.RESPONSE, w.describe_quorum_response(desc), version)
    back, err = w.describe_quorum_from_wire(resp)
    assert err == 0
    if version == 0:  # timestamps are v1+
        desc = QuorumDescription(1, 7, 120, tuple(
            ReplicaDescription(r.replica_id, r.log_end_offset) for r in desc.voters), tuple(
            ReplicaDescription(r.replica_id, r.log_end_offset) for r in desc.observers))
    assert back == desc
    resp = rt(dq.RESPONSE, w.describe_quorum_response(None, ErrorCode.NOT_LEADER_OR_FOLLOWER),
              version)
    assert w.describe_quorum_from_wire(resp) == (None, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    req.topics[0].topic_name = "x"
    assert w.describe_quorum_request_from_wire(req) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


# -- the metadata log ---------------------------------------------------------------------------


def test_batch_codec_groups_by_epoch_and_kind() -> None:
    entries = [LogEntry(0, 1, LEADER_CHANGE_DATA, control=True), LogEntry(1, 1, b"x"),
               LogEntry(2, 1, b"y"), LogEntry(3, 2, LEADER_CHANGE_DATA, control=True),
               LogEntry(4, 2, b"z")]
    data = encode_entries(entries, leader_of_epoch=lambda e: e, voters=[1, 2])
    back = decode_entries(data)
    assert [(e.offset, e.epoch, e.control) for e in back] == [
        (e.offset, e.epoch, e.control) for e in entries]
    assert [e.data for e in back if not e.control] == [b"x", b"y", b"z"]
    # A partial trailing batch is ignored.
    assert decode_entries(data[:-3]) == back[:-1]


def test_metadata_log_persists_truncates_and_reopens(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path)
    assert log.memory.end_offset == 0
    first = [LogEntry(0, 1, LEADER_CHANGE_DATA, control=True)] + [
        LogEntry(i, 1, b"r%d" % i) for i in range(1, 6)]
    log.write(None, first, leader_of_epoch=lambda _e: 1, voters=[1, 2, 3])
    job = log.begin_flush()
    job.finish(job.run() >= 0)
    # Truncate in the middle of a batch: the head of the batch survives.
    log.write(3, [LogEntry(3, 2, b"new3"), LogEntry(4, 2, b"new4")])
    log.flush()
    log.close()
    again = MetadataLog.open(tmp_path)
    got = again.memory.entries_from(0, 10)
    assert [(e.offset, e.epoch, e.data) for e in got if not e.control] == [
        (1, 1, b"r1"), (2, 1, b"r2"), (3, 2, b"new3"), (4, 2, b"new4")]
    assert got[0].control and got[0].epoch == 1
    assert again.memory.end_offset_for_epoch(1) == (1, 3)
    again.close()


def test_segments_back_below_the_snapshot_are_dropped_again_even_with_holes(
        tmp_path: Path) -> None:
    # The driver deletes the log prefix a snapshot covers without a directory fsync
    # (storage/log_retention.py), so after a power loss some of those segments may be back and
    # others not (the fsync journal's lose_unsynced models this): holes below the snapshot's
    # last entry, which carry nothing the snapshot does not, must not stop the node from
    # starting.
    config = LogConfig(segment_bytes=300, retention_ms=-1, retention_bytes=-1)
    log = MetadataLog.open(tmp_path, config)
    for i in range(60):
        log.write(None, [LogEntry(i, 1, b"r%03d" % i)])
    log.flush()
    log.close()
    directory = tmp_path / "__cluster_metadata-0"
    bases = sorted(int(p.stem) for p in directory.glob("*.log"))
    assert len(bases) >= 4, bases
    for p in directory.glob(f"{bases[1]:020d}.*"):  # the second segment's deletion made it
        p.unlink()
    snapshot = SnapshotId(bases[2] + 1, 1)  # covers the hole and one entry of the third
    again = MetadataLog.open(tmp_path, config, snapshot_id=snapshot)
    try:
        mem = again.memory
        assert (mem.start_offset, mem.end_offset) == (snapshot.end_offset, 60)
        assert [e.data for e in mem.entries_from(mem.start_offset, 100)] == [
            b"r%03d" % i for i in range(snapshot.end_offset, 60)]
        assert again.log.log_start_offset <= snapshot.end_offset
    finally:
        again.close()
    # A hole above the snapshot is still corruption.
    for p in directory.glob(f"{bases[-2]:020d}.*"):
        p.unlink()
    with pytest.raises(CorruptRecordError, match="holes"):
        MetadataLog.open(tmp_path, config, snapshot_id=snapshot).close()


def test_a_hole_holding_the_snapshots_last_entry_is_dropped_too(tmp_path: Path) -> None:
    # As above, but the segment whose deletion stood is the one holding the snapshot's last
    # entry, and an older one came back: the log restarts at the snapshot's end, where the
    # next segment begins, and the stale older segment goes (durably).
    config = LogConfig(segment_bytes=300, retention_ms=-1, retention_bytes=-1)
    log = MetadataLog.open(tmp_path, config)
    for i in range(60):
        log.write(None, [LogEntry(i, 1, b"r%03d" % i)])
    log.flush()
    log.close()
    directory = tmp_path / "__cluster_metadata-0"
    bases = sorted(int(p.stem) for p in directory.glob("*.log"))
    assert len(bases) >= 4, bases
    for p in directory.glob(f"{bases[1]:020d}.*"):
        p.unlink()
    snapshot = SnapshotId(bases[2], 1)  # its last entry was in the deleted segment
    again = MetadataLog.open(tmp_path, config, snapshot_id=snapshot)
    try:
        mem = again.memory
        assert (mem.start_offset, mem.end_offset) == (bases[2], 60)
        assert [e.data for e in mem.entries_from(mem.start_offset, 100)] == [
            b"r%03d" % i for i in range(bases[2], 60)]
        assert again.log.log_start_offset == bases[2]
    finally:
        again.close()
    assert not list(directory.glob(f"{bases[0]:020d}.*"))


def test_a_reset_to_a_snapshot_removes_the_entries_past_it_first(tmp_path: Path) -> None:
    # Installing a snapshot from the leader resets the log. The entries at and past the
    # snapshot's end go durably before any segment is deleted, so no power loss in between can
    # leave old entries that would pass for the snapshot's continuation.
    config = LogConfig(segment_bytes=300, retention_ms=-1, retention_bytes=-1)
    log = MetadataLog.open(tmp_path, config)
    for i in range(60):
        log.write(None, [LogEntry(i, 1, b"r%03d" % i)])
    log.flush()
    truncated: list[int] = []
    original = log.log.truncate_to

    def spy(offset: int) -> bool:
        truncated.append(offset)
        return original(offset)

    log.log.truncate_to = spy  # type: ignore[method-assign]
    log.reset_to(40)
    assert truncated == [40]
    assert (log.log.log_start_offset, log.log.log_end_offset) == (40, 40)
    log.close()
