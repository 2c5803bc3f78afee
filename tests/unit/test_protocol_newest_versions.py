"""The newest versions we serve, as real clients' own classes write and read them: Fetch 13-17
(topic ids, ReplicaState, NodeEndpoints and CurrentLeader, the replica directory id), Produce 12
with KIP-951 hints, Metadata 13's top-level error, ListOffsets 10's timeout, DescribeCluster 2's
fenced brokers, ApiVersions 4 with features (and the v3 rule for a feature minimum of 0).

``test_protocol_vectors_client.py`` already checks every (API, version) both kafka-python and we
have with random values; these are readable vectors of the fields the new versions add.
"""

from __future__ import annotations

import uuid

import pytest

from broker.network.connection import ListenerRoutes
from broker.network.context import ApiFeatures, ListenerSpec
from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.messages import (
    api_versions,
    describe_cluster,
    fetch,
    list_offsets,
    metadata,
    produce,
)

pytest.importorskip("kafka.protocol")

from kafka.protocol.admin import DescribeClusterRequest, DescribeClusterResponse
from kafka.protocol.consumer import FetchRequest, FetchResponse, ListOffsetsRequest
from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

TID = uuid.UUID("6f1c7c3e-4a77-4a59-9b0e-3c2a8a0e5d11")
DIR = uuid.UUID("0b7e4f8a-1111-2222-3333-444455556666")


def _newest(spec_key: int) -> set[int]:
    v = API_SPECS[spec_key].valid_versions
    return set(range(v.lowest, v.highest + 1))


def test_schemas_reach_the_served_versions() -> None:
    assert {13, 14, 15, 16, 17} <= _newest(ApiKey.FETCH)
    assert 12 in _newest(ApiKey.PRODUCE) and 13 in _newest(ApiKey.METADATA)
    assert {8, 9, 10} <= _newest(ApiKey.LIST_OFFSETS)
    assert 2 in _newest(ApiKey.DESCRIBE_CLUSTER) and 4 in _newest(ApiKey.API_VERSIONS)


@pytest.mark.parametrize("version", [13, 14, 15, 16, 17])
def test_fetch_request_by_topic_id_from_kafka_python(version: int) -> None:
    T = FetchRequest.FetchTopic
    kw = {"replica_state": FetchRequest.ReplicaState(replica_id=-1, replica_epoch=-1)} \
        if version >= 15 else {"replica_id": -1}
    part = {"replica_directory_id": DIR} if version >= 17 else {}
    theirs = FetchRequest(
        max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=1, session_id=7,
        session_epoch=3, rack_id="r1", version=version,
        topics=[T(topic_id=TID, partitions=[T.FetchPartition(
            partition=2, current_leader_epoch=4, fetch_offset=99, last_fetched_epoch=3,
            log_start_offset=-1, partition_max_bytes=4096, **part)])],
        forgotten_topics_data=[FetchRequest.ForgottenTopic(topic_id=TID, partitions=[5, 6])],
        **kw).encode()
    req, end = fetch.REQUEST.decode(theirs, version)
    assert end == len(theirs)
    assert (req.session_id, req.session_epoch, req.isolation_level) == (7, 3, 1)
    [t] = req.topics
    assert t.topic_id == TID
    [p] = t.partitions
    assert (p.partition, p.fetch_offset, p.current_leader_epoch, p.last_fetched_epoch) == \
        (2, 99, 4, 3)
    if version >= 17:
        assert p.replica_directory_id == DIR
    if version >= 15:
        assert req.replica_state.replica_id == -1
    assert [(f.topic_id, f.partitions) for f in req.forgotten_topics_data] == [(TID, [5, 6])]


@pytest.mark.parametrize("version", [13, 16, 17])
def test_fetch_response_with_leader_hints_read_by_kafka_python(version: int) -> None:
    R = fetch.RESPONSE
    pd = R.PartitionData(partition_index=0, error_code=6, high_watermark=-1,
                         last_stable_offset=-1, log_start_offset=-1, records=b"")
    pd.current_leader = R.LeaderIdAndEpoch(leader_id=3, leader_epoch=9)
    ours = R.cls(throttle_time_ms=0, error_code=0, session_id=11, responses=[
        R.FetchableTopicResponse(topic_id=TID, partitions=[pd])])
    if version >= 16:  # before v16 there is no such field (our encoder refuses to drop it)
        ours.node_endpoints = [R.NodeEndpoint(node_id=3, host="h3", port=9093, rack=None)]
    theirs = FetchResponse.decode(R.encode(ours, version), version=version)
    [t] = theirs.responses
    assert t.topic_id == TID and theirs.session_id == 11
    [p] = t.partitions
    assert p.error_code == 6
    assert (p.current_leader.leader_id, p.current_leader.leader_epoch) == (3, 9)
    if version >= 16:
        assert [(e.node_id, e.host, e.port) for e in theirs.node_endpoints] == [(3, "h3", 9093)]


def test_produce_v12_from_kafka_python_and_hints_back() -> None:
    T = ProduceRequest.TopicProduceData
    batch = bytes(range(61))
    theirs = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=3000, version=12,
                            topic_data=[T(name="t", partition_data=[T.PartitionProduceData(
                                index=1, records=batch)])]).encode()
    req, end = produce.REQUEST.decode(theirs, 12)
    assert end == len(theirs)
    assert (req.acks, req.topic_data[0].name, bytes(req.topic_data[0].partition_data[0].records)
            ) == (-1, "t", batch)
    R = produce.RESPONSE
    pr = R.PartitionProduceResponse(index=1, error_code=6, base_offset=-1)
    pr.current_leader = R.LeaderIdAndEpoch(leader_id=2, leader_epoch=5)
    ours = R.cls(throttle_time_ms=0, responses=[R.TopicProduceResponse(
        name="t", partition_responses=[pr])])
    ours.node_endpoints = [R.NodeEndpoint(node_id=2, host="h2", port=9092, rack="a")]
    back = ProduceResponse.decode(R.encode(ours, 12), version=12)
    [p] = back.responses[0].partition_responses
    assert (p.error_code, p.current_leader.leader_id, p.current_leader.leader_epoch) == (6, 2, 5)
    assert [(e.node_id, e.host, e.port, e.rack) for e in back.node_endpoints] == [
        (2, "h2", 9092, "a")]


def test_metadata_v13_top_level_error_read_by_kafka_python() -> None:
    R = metadata.RESPONSE
    ours = R.cls(throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=1, topics=[
        R.MetadataResponseTopic(error_code=0, name="t", topic_id=TID, partitions=[])],
        error_code=0)
    theirs = MetadataResponse.decode(R.encode(ours, 13), version=13)
    assert theirs.error_code == 0 and theirs.topics[0].topic_id == TID
    ours.error_code = 29  # e.g. an authorization failure
    assert MetadataResponse.decode(R.encode(ours, 13), version=13).error_code == 29
    # Before v13 the (ignorable) field is left out.
    v12 = R.encode(ours, 12)
    ours.error_code = 0
    assert v12 == R.encode(ours, 12)


@pytest.mark.parametrize("version", [8, 9, 10])
def test_list_offsets_new_versions_from_kafka_python(version: int) -> None:
    T = ListOffsetsRequest.ListOffsetsTopic
    kw = {"timeout_ms": 2500} if version >= 10 else {}
    theirs = ListOffsetsRequest(replica_id=-1, isolation_level=0, version=version, topics=[
        T(name="t", partitions=[T.ListOffsetsPartition(partition_index=0,
                                                       current_leader_epoch=-1,
                                                       timestamp=-5 if version >= 9 else -4)])],
        **kw).encode()
    req, end = list_offsets.REQUEST.decode(theirs, version)
    assert end == len(theirs)
    assert req.topics[0].partitions[0].timestamp == (-5 if version >= 9 else -4)
    if version >= 10:
        assert req.timeout_ms == 2500


def test_describe_cluster_v2_fenced_brokers_with_kafka_python() -> None:
    theirs = DescribeClusterRequest(include_cluster_authorized_operations=False,
                                    endpoint_type=1, include_fenced_brokers=True,
                                    version=2).encode()
    req, _ = describe_cluster.REQUEST.decode(theirs, 2)
    assert req.include_fenced_brokers is True
    R = describe_cluster.RESPONSE
    ours = R.cls(throttle_time_ms=0, error_code=0, endpoint_type=1, cluster_id="c",
                 controller_id=1, brokers=[
                     R.DescribeClusterBroker(broker_id=1, host="h", port=1, is_fenced=False),
                     R.DescribeClusterBroker(broker_id=2, host="h", port=2, is_fenced=True)])
    back = DescribeClusterResponse.decode(R.encode(ours, 2), version=2)
    assert [(b.broker_id, b.is_fenced) for b in back.brokers] == [(1, False), (2, True)]


def _routes(features: ApiFeatures) -> ListenerRoutes:
    spec = ListenerSpec(name="L", advertised={ApiKey.API_VERSIONS: (0, 4)}, handlers={},
                        features=lambda: features)
    return ListenerRoutes(spec, spec.advertised or {}, None)


def test_api_versions_features_read_by_kafka_python() -> None:
    f = ApiFeatures(supported=(("metadata.version", 4, 25), ("kraft.version", 0, 1)),
                    finalized=(("metadata.version", 21),), epoch=42)
    routes = _routes(f)
    v4 = ApiVersionsResponse.decode(routes.api_versions_body(4), version=4)
    assert [(s.name, s.min_version, s.max_version) for s in v4.supported_features] == [
        ("metadata.version", 4, 25), ("kraft.version", 0, 1)]
    assert [(x.name, x.min_version_level, x.max_version_level)
            for x in v4.finalized_features] == [("metadata.version", 21, 21)]
    assert v4.finalized_features_epoch == 42
    # v3 cannot carry a minimum of 0 (KAFKA-17011): such a range starts at 1, 0-0 is left out.
    v3 = ApiVersionsResponse.decode(routes.api_versions_body(3), version=3)
    assert [(s.name, s.min_version, s.max_version) for s in v3.supported_features] == [
        ("metadata.version", 4, 25), ("kraft.version", 1, 1)]
    zero = _routes(ApiFeatures(supported=(("group.version", 0, 0),)))
    assert ApiVersionsResponse.decode(zero.api_versions_body(3), version=3
                                      ).supported_features == []
    # Below v3 there are no features; the body is the fixed one.
    assert routes.api_versions_body(2) == routes.api_versions_bodies[2]


def test_api_versions_body_follows_the_features() -> None:
    current = [ApiFeatures(finalized=(("metadata.version", 20),), epoch=5)]
    spec = ListenerSpec(name="L", advertised={ApiKey.API_VERSIONS: (0, 4)}, handlers={},
                        features=lambda: current[0])
    routes = ListenerRoutes(spec, spec.advertised or {}, None)
    first = routes.api_versions_body(4)
    assert routes.api_versions_body(4) is first  # unchanged features: the same bytes
    current[0] = ApiFeatures(finalized=(("metadata.version", 21),), epoch=9)
    resp, _ = api_versions.RESPONSE.decode(routes.api_versions_body(4), 4)
    assert resp.finalized_features_epoch == 9
    assert [(x.name, x.max_version_level) for x in resp.finalized_features] == [
        ("metadata.version", 21)]
