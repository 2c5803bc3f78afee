"""Pure mappings between ``kraft.messages`` values and Kafka wire objects for the KRaft APIs.

Vote (52, v0-2; v2 carries KIP-996's PreVote), BeginQuorumEpoch (53), EndQuorumEpoch (54),
Fetch (1, v12-17 for the metadata partition), FetchSnapshot (59), DescribeQuorum (55).

Conventions:

- Requests name one topic ``__cluster_metadata`` (Fetch v13+ by Kafka's fixed topic id
  ``00000000-0000-0000-0000-000000000001``), partition 0. A request for anything else is answered
  with UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID for an unknown topic id); a request naming a
  different cluster id with INCONSISTENT_CLUSTER_ID. ``*_from_wire`` for requests returns
  ``(message, ErrorCode.NONE)`` or ``(None, error code)``; the caller answers an error with
  ``*_error_response``.
- A PreVote's epoch: ``kraft`` carries the epoch the candidate *would* use (current + 1); on the
  wire (Kafka's ReplicaEpoch, v2) it is the sender's current epoch. We convert both ways.
- Responses are turned back into ``kraft`` messages with the echo fields (the request's fetch
  offset, candidate epoch, ...) taken from the request they answer. A response carrying an error
  the node has no notion of (cluster id, unknown topic, unsupported version) maps to None: the
  node simply retries, as after a lost message.
- Fetch records are RecordBatch bytes (``broker.controller.metadata_log.encode_entries``/``decode_entries``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from broker.controller.metadata_log import (
    METADATA_PARTITION,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    decode_entries,
    encode_entries,
)
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import begin_quorum_epoch as _bqe
from broker.protocol.messages import describe_quorum as _dq
from broker.protocol.messages import end_quorum_epoch as _eqe
from broker.protocol.messages import fetch as _fetch
from broker.protocol.messages import fetch_snapshot as _fs
from broker.protocol.messages import vote as _vote
from kraft.codec import ZERO_UUID
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
from storage.errors import StorageError

__all__ = [
    "FETCH_VERSIONS",
    "begin_quorum_epoch_request_from_wire",
    "begin_quorum_epoch_request_to_wire",
    "begin_quorum_epoch_response",
    "check_begin_quorum_epoch_response",
    "check_end_quorum_epoch_response",
    "describe_quorum_from_wire",
    "describe_quorum_request",
    "describe_quorum_request_from_wire",
    "describe_quorum_response",
    "end_quorum_epoch_request_from_wire",
    "end_quorum_epoch_request_to_wire",
    "end_quorum_epoch_response",
    "fetch_error_response",
    "fetch_request_from_wire",
    "fetch_request_to_wire",
    "fetch_response_from_wire",
    "fetch_response_to_wire",
    "fetch_snapshot_error_response",
    "fetch_snapshot_request_from_wire",
    "fetch_snapshot_request_to_wire",
    "fetch_snapshot_response_from_wire",
    "fetch_snapshot_response_to_wire",
    "vote_error_response",
    "vote_request_from_wire",
    "vote_request_to_wire",
    "vote_response_from_wire",
    "vote_response_to_wire",
]

FETCH_VERSIONS = range(12, 18)  # KRaft needs last_fetched_epoch and diverging_epoch (v12+)
_NO_ID = -1
_FETCH_ERRORS = {e.value: e for e in FetchError}


def _dir(value: Any) -> Any:
    """A directory id from the wire: None for the zero UUID ("not given")."""
    return None if value is None or value == ZERO_UUID else value


def _id(value: int | None) -> int:
    return _NO_ID if value is None else value


def _opt(value: int) -> int | None:
    return None if value < 0 else value


def _check_cluster(cluster_id: str | None, ours: str) -> int:
    if cluster_id is not None and cluster_id != ours:
        return ErrorCode.INCONSISTENT_CLUSTER_ID
    return ErrorCode.NONE


def _single_partition(topics: list[Any], name_of: Callable[[Any], str | None],
                      partitions_of: Callable[[Any], list[Any]],
                      index_of: Callable[[Any], int]) -> tuple[Any, int]:
    """The one metadata partition a request names, or (None, error code)."""
    if len(topics) != 1:
        return None, ErrorCode.INVALID_REQUEST if not topics else (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    topic = topics[0]
    if name_of(topic) != METADATA_TOPIC:
        return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    parts = partitions_of(topic)
    if len(parts) != 1 or index_of(parts[0]) != METADATA_PARTITION:
        return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return parts[0], ErrorCode.NONE


# -- Vote ---------------------------------------------------------------------------------------


def vote_request_to_wire(msg: VoteRequest, cluster_id: str, dest: int, version: int) -> Any:
    """``UnsupportedVersionError`` (from encoding) if a PreVote is sent below v2."""
    R = _vote.REQUEST
    epoch = msg.candidate_epoch - 1 if msg.pre_vote else msg.candidate_epoch
    part = R.PartitionData(
        partition_index=METADATA_PARTITION, candidate_epoch=epoch, candidate_id=msg.sender,
        last_offset_epoch=msg.last_epoch, last_offset=msg.end_offset, pre_vote=msg.pre_vote,
        candidate_directory_id=msg.candidate_directory_id or ZERO_UUID,
        voter_directory_id=msg.voter_directory_id or ZERO_UUID)
    return R.cls(cluster_id=cluster_id, voter_id=dest, topics=[
        R.TopicData(topic_name=METADATA_TOPIC, partitions=[part])])


def vote_request_from_wire(req: Any, cluster_id: str) -> tuple[VoteRequest | None, int]:
    err = _check_cluster(req.cluster_id, cluster_id)
    if err:
        return None, err
    part, err = _single_partition(req.topics, lambda t: t.topic_name, lambda t: t.partitions,
                                  lambda p: p.partition_index)
    if part is None:
        return None, err
    pre = bool(part.pre_vote)
    epoch = part.candidate_epoch + 1 if pre else part.candidate_epoch
    return VoteRequest(part.candidate_id, epoch, part.last_offset_epoch, part.last_offset,
                       pre, _dir(part.candidate_directory_id),
                       _dir(part.voter_directory_id)), ErrorCode.NONE


def vote_response_to_wire(msg: VoteResponse) -> Any:
    R = _vote.RESPONSE
    part = R.PartitionData(partition_index=METADATA_PARTITION, error_code=0,
                           leader_id=_id(msg.leader_id), leader_epoch=msg.epoch,
                           vote_granted=msg.granted)
    return R.cls(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC,
                                                   partitions=[part])])


def vote_error_response(error_code: int) -> Any:
    return _vote.RESPONSE.cls(error_code=error_code)


def vote_response_from_wire(resp: Any, sender: int, req: VoteRequest) -> VoteResponse | None:
    if resp.error_code:
        return None
    part, _err = _single_partition(resp.topics, lambda t: t.topic_name, lambda t: t.partitions,
                                   lambda p: p.partition_index)
    if part is None or part.error_code:
        return None
    return VoteResponse(sender, part.leader_epoch, req.candidate_epoch, bool(part.vote_granted),
                        req.pre_vote, _opt(part.leader_id))


# -- BeginQuorumEpoch / EndQuorumEpoch --------------------------------------------------------


def begin_quorum_epoch_request_to_wire(msg: BeginQuorumEpoch, cluster_id: str,
                                       dest: int) -> Any:
    R = _bqe.REQUEST
    part = R.PartitionData(partition_index=METADATA_PARTITION, leader_id=msg.sender,
                           leader_epoch=msg.epoch,
                           voter_directory_id=msg.voter_directory_id or ZERO_UUID)
    return R.cls(cluster_id=cluster_id, voter_id=dest, topics=[
        R.TopicData(topic_name=METADATA_TOPIC, partitions=[part])])


def begin_quorum_epoch_request_from_wire(req: Any, cluster_id: str
                                         ) -> tuple[BeginQuorumEpoch | None, int]:
    return _epoch_request_from_wire(req, cluster_id, BeginQuorumEpoch)


def begin_quorum_epoch_response(error_code: int, leader_id: int | None = None,
                                epoch: int = -1) -> Any:
    """Top-level error; with no error, the responder's current leader and epoch."""
    return _epoch_response(_bqe.RESPONSE, error_code, leader_id, epoch)


def check_begin_quorum_epoch_response(resp: Any) -> int:
    """The first error code in the response (0 if none)."""
    return _first_error(resp)


def end_quorum_epoch_request_to_wire(msg: EndQuorumEpoch, cluster_id: str,
                                     preferred: Iterable[int] = ()) -> Any:
    R = _eqe.REQUEST
    preferred = list(preferred)
    part = R.PartitionData(
        partition_index=METADATA_PARTITION, leader_id=msg.sender, leader_epoch=msg.epoch,
        preferred_successors=preferred,
        preferred_candidates=[R.ReplicaInfo(candidate_id=p) for p in preferred])
    return R.cls(cluster_id=cluster_id, topics=[
        R.TopicData(topic_name=METADATA_TOPIC, partitions=[part])])


def end_quorum_epoch_request_from_wire(req: Any, cluster_id: str
                                       ) -> tuple[EndQuorumEpoch | None, int]:
    return _epoch_request_from_wire(req, cluster_id, EndQuorumEpoch)


def end_quorum_epoch_response(error_code: int, leader_id: int | None = None,
                              epoch: int = -1) -> Any:
    return _epoch_response(_eqe.RESPONSE, error_code, leader_id, epoch)


def _epoch_request_from_wire(req: Any, cluster_id: str, cls: Any) -> tuple[Any, int]:
    """Begin/EndQuorumEpoch requests share their shape: one partition naming leader and
    epoch."""
    err = _check_cluster(req.cluster_id, cluster_id)
    if err:
        return None, err
    part, err = _single_partition(req.topics, lambda t: t.topic_name, lambda t: t.partitions,
                                  lambda p: p.partition_index)
    if part is None:
        return None, err
    if cls is BeginQuorumEpoch:
        return cls(part.leader_id, part.leader_epoch,
                   _dir(getattr(part, "voter_directory_id", None))), ErrorCode.NONE
    return cls(part.leader_id, part.leader_epoch), ErrorCode.NONE


def _epoch_response(R: Any, error_code: int, leader_id: int | None, epoch: int) -> Any:
    if error_code:
        return R.cls(error_code=error_code)
    part = R.PartitionData(partition_index=METADATA_PARTITION, error_code=0,
                           leader_id=_id(leader_id), leader_epoch=epoch)
    return R.cls(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC,
                                                   partitions=[part])])


def check_end_quorum_epoch_response(resp: Any) -> int:
    return _first_error(resp)


def _first_error(resp: Any) -> int:
    if resp.error_code:
        return int(resp.error_code)
    for t in resp.topics:
        for p in t.partitions:
            if p.error_code:
                return int(p.error_code)
    return 0


# -- Fetch --------------------------------------------------------------------------------------


def fetch_request_to_wire(msg: FetchRequest, cluster_id: str, version: int, *,
                          max_wait_ms: int, max_bytes: int = 8 << 20) -> Any:
    assert version in FETCH_VERSIONS, version
    R = _fetch.REQUEST
    part = R.FetchPartition(partition=METADATA_PARTITION, current_leader_epoch=msg.epoch,
                            fetch_offset=msg.fetch_offset,
                            last_fetched_epoch=msg.last_fetched_epoch, log_start_offset=-1,
                            partition_max_bytes=max_bytes)
    if version >= 17 and msg.directory_id is not None:
        part.replica_directory_id = msg.directory_id  # KIP-853: the fetcher's directory
    topic = (R.FetchTopic(topic=METADATA_TOPIC, partitions=[part]) if version < 13
             else R.FetchTopic(topic_id=METADATA_TOPIC_ID, partitions=[part]))
    kw: dict[str, Any] = {}
    if version >= 15:
        kw["replica_state"] = R.ReplicaState(replica_id=msg.sender, replica_epoch=-1)
    else:
        kw["replica_id"] = msg.sender
    return R.cls(cluster_id=cluster_id, max_wait_ms=max_wait_ms, min_bytes=0,
                 max_bytes=max_bytes, topics=[topic], **kw)


def fetch_request_from_wire(req: Any, version: int, cluster_id: str
                            ) -> tuple[FetchRequest | None, int]:
    if version not in FETCH_VERSIONS:
        return None, ErrorCode.UNSUPPORTED_VERSION
    err = _check_cluster(req.cluster_id, cluster_id)
    if err:
        return None, err
    if version >= 13:
        topics = req.topics
        if len(topics) == 1 and topics[0].topic_id != METADATA_TOPIC_ID:
            return None, ErrorCode.UNKNOWN_TOPIC_ID

        def name_of(t: Any) -> str | None:
            return METADATA_TOPIC if t.topic_id == METADATA_TOPIC_ID else None
    else:
        def name_of(t: Any) -> str | None:
            return t.topic  # type: ignore[no-any-return]
    part, err = _single_partition(req.topics, name_of, lambda t: t.partitions,
                                  lambda p: p.partition)
    if part is None:
        return None, err
    replica = req.replica_state.replica_id if version >= 15 else req.replica_id
    directory = _dir(part.replica_directory_id) if version >= 17 else None
    return FetchRequest(replica, part.current_leader_epoch, part.fetch_offset,
                        part.last_fetched_epoch, directory), ErrorCode.NONE


def _fetch_topic_response(version: int, part: Any) -> Any:
    R = _fetch.RESPONSE
    if version >= 13:
        return R.FetchableTopicResponse(topic_id=METADATA_TOPIC_ID, partitions=[part])
    return R.FetchableTopicResponse(topic=METADATA_TOPIC, partitions=[part])


def fetch_response_to_wire(msg: FetchResponse, version: int, *,
                           voters: Iterable[int] | Callable[[int], Iterable[int]] = (),
                           records: bytes | None = None) -> Any:
    """``records`` overrides encoding ``msg.records`` (e.g. bytes read from disk)."""
    R = _fetch.RESPONSE
    data = records
    if data is None:
        data = encode_entries(msg.records, leader_of_epoch=lambda _e: msg.sender,
                              voters=voters) if msg.records else b""
    div = msg.diverging_epoch
    snap = msg.snapshot_id
    part = R.PartitionData(
        partition_index=METADATA_PARTITION, error_code=msg.error.value,
        high_watermark=msg.high_watermark, last_stable_offset=msg.high_watermark,
        log_start_offset=0,
        diverging_epoch=(R.EpochEndOffset(epoch=div.epoch, end_offset=div.end_offset)
                         if div is not None else R.EpochEndOffset()),
        current_leader=R.LeaderIdAndEpoch(leader_id=_id(msg.leader_id), leader_epoch=msg.epoch),
        snapshot_id=(R.SnapshotId(end_offset=snap.end_offset, epoch=snap.epoch)
                     if snap is not None else R.SnapshotId()),
        records=data)
    return R.cls(throttle_time_ms=0, error_code=0, session_id=0,
                 responses=[_fetch_topic_response(version, part)])


def fetch_error_response(error_code: int, version: int) -> Any:
    """A top-level error (cluster id, version, malformed) or a partition-level one (unknown
    topic or partition)."""
    R = _fetch.RESPONSE
    if error_code in (ErrorCode.INCONSISTENT_CLUSTER_ID, ErrorCode.UNSUPPORTED_VERSION,
                      ErrorCode.INVALID_REQUEST):
        return R.cls(error_code=error_code)
    part = R.PartitionData(partition_index=METADATA_PARTITION, error_code=error_code,
                           high_watermark=-1, records=b"")
    return R.cls(error_code=0, responses=[_fetch_topic_response(version, part)])


def fetch_response_from_wire(resp: Any, sender: int, req: FetchRequest
                             ) -> FetchResponse | None:
    if resp.error_code or len(resp.responses) != 1:
        return None
    parts = resp.responses[0].partitions
    if len(parts) != 1 or parts[0].partition_index != METADATA_PARTITION:
        return None
    p = parts[0]
    error = _FETCH_ERRORS.get(p.error_code)
    if error is None:
        return None
    epoch = p.current_leader.leader_epoch
    if epoch < 0:
        return None
    div = p.diverging_epoch
    snap = p.snapshot_id
    entries: tuple[Any, ...] = ()
    if p.records:
        try:
            decoded = [e for e in decode_entries(p.records) if e.offset >= req.fetch_offset]
        except StorageError:
            return None
        if decoded:
            if decoded[0].offset != req.fetch_offset or any(
                    e.offset != req.fetch_offset + i for i, e in enumerate(decoded)):
                return None
            entries = tuple(decoded)
    return FetchResponse(
        sender, epoch, _opt(p.current_leader.leader_id), req.fetch_offset,
        req.last_fetched_epoch, records=entries, high_watermark=max(p.high_watermark, 0),
        diverging_epoch=(DivergingEpoch(div.epoch, div.end_offset)
                         if div.epoch >= 0 and div.end_offset >= 0 else None),
        snapshot_id=(SnapshotId(snap.end_offset, snap.epoch)
                     if snap.end_offset >= 0 and snap.epoch >= 0 else None),
        error=error)


# -- FetchSnapshot ------------------------------------------------------------------------------


def fetch_snapshot_request_to_wire(msg: FetchSnapshotRequest, cluster_id: str, *,
                                   max_bytes: int = 8 << 20) -> Any:
    R = _fs.REQUEST
    part = R.PartitionSnapshot(
        partition=METADATA_PARTITION, current_leader_epoch=msg.epoch,
        snapshot_id=R.SnapshotId(end_offset=msg.snapshot_id.end_offset,
                                 epoch=msg.snapshot_id.epoch),
        position=msg.position)
    return R.cls(cluster_id=cluster_id, replica_id=msg.sender, max_bytes=max_bytes,
                 topics=[R.TopicSnapshot(name=METADATA_TOPIC, partitions=[part])])


def fetch_snapshot_request_from_wire(req: Any, cluster_id: str
                                     ) -> tuple[FetchSnapshotRequest | None, int]:
    err = _check_cluster(req.cluster_id, cluster_id)
    if err:
        return None, err
    part, err = _single_partition(req.topics, lambda t: t.name, lambda t: t.partitions,
                                  lambda p: p.partition)
    if part is None:
        return None, err
    sid = SnapshotId(part.snapshot_id.end_offset, part.snapshot_id.epoch)
    return FetchSnapshotRequest(req.replica_id, part.current_leader_epoch, sid,
                                part.position), ErrorCode.NONE


def fetch_snapshot_response_to_wire(msg: FetchSnapshotResponse) -> Any:
    R = _fs.RESPONSE
    part = R.PartitionSnapshot(
        index=METADATA_PARTITION, error_code=msg.error.value,
        snapshot_id=R.SnapshotId(end_offset=msg.snapshot_id.end_offset,
                                 epoch=msg.snapshot_id.epoch),
        current_leader=R.LeaderIdAndEpoch(leader_id=_id(msg.leader_id), leader_epoch=msg.epoch),
        size=msg.size, position=msg.position, unaligned_records=msg.data)
    return R.cls(throttle_time_ms=0, error_code=0,
                 topics=[R.TopicSnapshot(name=METADATA_TOPIC, partitions=[part])])


def fetch_snapshot_error_response(error_code: int, partition_level: bool = False,
                                  snapshot_id: SnapshotId | None = None) -> Any:
    R = _fs.RESPONSE
    if not partition_level:
        return R.cls(error_code=error_code)
    sid = snapshot_id or SnapshotId(-1, -1)
    part = R.PartitionSnapshot(
        index=METADATA_PARTITION, error_code=error_code,
        snapshot_id=R.SnapshotId(end_offset=sid.end_offset, epoch=sid.epoch),
        unaligned_records=b"")
    return R.cls(error_code=0, topics=[R.TopicSnapshot(name=METADATA_TOPIC, partitions=[part])])


def fetch_snapshot_response_from_wire(resp: Any, sender: int, req: FetchSnapshotRequest
                                      ) -> FetchSnapshotResponse | None:
    if resp.error_code or len(resp.topics) != 1:
        return None
    parts = resp.topics[0].partitions
    if len(parts) != 1 or parts[0].index != METADATA_PARTITION:
        return None
    p = parts[0]
    error = _FETCH_ERRORS.get(p.error_code)
    if error is None or p.current_leader.leader_epoch < 0:
        return None
    return FetchSnapshotResponse(
        sender, p.current_leader.leader_epoch, _opt(p.current_leader.leader_id),
        req.snapshot_id, req.position, size=p.size,
        data=bytes(p.unaligned_records or b""), error=error)


# -- DescribeQuorum -----------------------------------------------------------------------------


def describe_quorum_request() -> Any:
    R = _dq.REQUEST
    return R.cls(topics=[R.TopicData(topic_name=METADATA_TOPIC, partitions=[
        R.PartitionData(partition_index=METADATA_PARTITION)])])


def describe_quorum_request_from_wire(req: Any) -> int:
    """ErrorCode.NONE if the request names the metadata partition."""
    _part, err = _single_partition(req.topics, lambda t: t.topic_name, lambda t: t.partitions,
                                   lambda p: p.partition_index)
    return err


def _replica_state(r: ReplicaDescription) -> Any:
    return _dq.RESPONSE.ReplicaState(
        replica_id=r.replica_id, replica_directory_id=r.directory_id or ZERO_UUID,
        log_end_offset=r.log_end_offset,
        last_fetch_timestamp=r.last_fetch_timestamp,
        last_caught_up_timestamp=r.last_caught_up_timestamp)


def describe_quorum_response(desc: QuorumDescription | None, error_code: int = 0, *,
                             message: str | None = None,
                             nodes: Iterable[tuple[int, Iterable[tuple[str, str, int]]]] = (),
                             ) -> Any:
    """The leader's description, or a partition-level error (NOT_LEADER_OR_FOLLOWER on a
    non-leader) / top-level error (anything about the request itself). ``nodes``: the voters'
    endpoints (v2 Nodes: node id, [(listener name, host, port)])."""
    R = _dq.RESPONSE
    if desc is None:
        if error_code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_REQUEST,
                          ErrorCode.UNSUPPORTED_VERSION):
            return R.cls(error_code=error_code, error_message=message)
        part = R.PartitionData(partition_index=METADATA_PARTITION, error_code=error_code,
                               error_message=message, leader_id=-1, leader_epoch=-1,
                               high_watermark=-1)
    else:
        part = R.PartitionData(
            partition_index=METADATA_PARTITION, error_code=0, leader_id=desc.leader_id,
            leader_epoch=desc.leader_epoch, high_watermark=desc.high_watermark,
            current_voters=[_replica_state(r) for r in desc.voters],
            observers=[_replica_state(r) for r in desc.observers])
    return R.cls(error_code=0, topics=[R.TopicData(topic_name=METADATA_TOPIC,
                                                   partitions=[part])],
                 nodes=[R.Node(node_id=nid, listeners=[
                     R.Listener(name=name, host=host, port=port) for name, host, port in eps])
                     for nid, eps in nodes])


def describe_quorum_from_wire(resp: Any) -> tuple[QuorumDescription | None, int]:
    """For tools: the description, or (None, the first error code)."""
    err = _first_error(resp)
    if err:
        return None, err
    part, err = _single_partition(resp.topics, lambda t: t.topic_name, lambda t: t.partitions,
                                  lambda p: p.partition_index)
    if part is None:
        return None, err

    def rd(s: Any) -> ReplicaDescription:
        return ReplicaDescription(s.replica_id, s.log_end_offset, s.last_fetch_timestamp,
                                  s.last_caught_up_timestamp, _dir(s.replica_directory_id))

    return QuorumDescription(part.leader_id, part.leader_epoch, part.high_watermark,
                             tuple(rd(s) for s in part.current_voters),
                             tuple(rd(s) for s in part.observers)), ErrorCode.NONE
