"""ControllerApis and its wire <-> domain translation: real wire requests at several versions
through an in-process submit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.controller.apis import ControllerApis
from broker.protocol.api_keys import ApiKey
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import (
    allocate_producer_ids,
    alter_client_quotas,
    alter_configs,
    alter_partition,
    alter_partition_reassignments,
    alter_user_scram_credentials,
    assign_replicas_to_dirs,
    broker_heartbeat,
    broker_registration,
    create_acls,
    create_partitions,
    create_topics,
    delete_acls,
    delete_topics,
    elect_leaders,
    incremental_alter_configs,
    list_partition_reassignments,
    unregister_broker,
    update_features,
)
from kraft.controller import NotController
from storage.error_codes import ErrorCode as E
from tests.unit.test_controller_helpers import Harness, incarnation

MODULES = {
    ApiKey.CREATE_TOPICS: create_topics, ApiKey.DELETE_TOPICS: delete_topics,
    ApiKey.CREATE_PARTITIONS: create_partitions, ApiKey.BROKER_REGISTRATION: broker_registration,
    ApiKey.BROKER_HEARTBEAT: broker_heartbeat, ApiKey.UNREGISTER_BROKER: unregister_broker,
    ApiKey.ALTER_PARTITION: alter_partition, ApiKey.ALLOCATE_PRODUCER_IDS: allocate_producer_ids,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: incremental_alter_configs,
    ApiKey.ALTER_CONFIGS: alter_configs, ApiKey.ELECT_LEADERS: elect_leaders,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: alter_partition_reassignments,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: list_partition_reassignments,
    ApiKey.ASSIGN_REPLICAS_TO_DIRS: assign_replicas_to_dirs,
    ApiKey.CREATE_ACLS: create_acls, ApiKey.DELETE_ACLS: delete_acls,
    ApiKey.ALTER_CLIENT_QUOTAS: alter_client_quotas,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: alter_user_scram_credentials,
    ApiKey.UPDATE_FEATURES: update_features,
}


def reg_request(broker_id: int) -> Any:
    R = broker_registration.REQUEST
    return R.cls(broker_id=broker_id, cluster_id="c1", incarnation_id=incarnation(broker_id),
                 listeners=[R.Listener(name="PLAINTEXT", host="h", port=9092 + broker_id,
                                       security_protocol=0)],
                 features=[R.Feature(name="metadata.version", min_supported_version=1,
                                     max_supported_version=25)], rack=None)


def topic_request(*topics: tuple[str, int, int]) -> Any:
    R = create_topics.REQUEST
    return R.cls(topics=[R.CreatableTopic(name=name, num_partitions=n, replication_factor=rf,
                                          assignments=[], configs=[])
                         for name, n, rf in topics], timeout_ms=1000, validate_only=False)


def alter_request(broker_id: int, broker_epoch: int, topic: Any, partition: int,
                  leader_epoch: int, partition_epoch: int, isr: list[int], version: int) -> Any:
    R = alter_partition.REQUEST
    pd = R.PartitionData(partition_index=partition, leader_epoch=leader_epoch,
                         partition_epoch=partition_epoch, leader_recovery_state=0)
    if version >= 3:
        pd.new_isr_with_epochs = [R.BrokerState(broker_id=b, broker_epoch=-1) for b in isr]
    else:
        pd.new_isr = list(isr)
    td = R.TopicData(partitions=[pd])
    if version >= 2:
        td.topic_id = topic.topic_id
    else:
        td.topic_name = topic.name
    return R.cls(broker_id=broker_id, broker_epoch=broker_epoch, topics=[td])


class InProcess:
    def __init__(self) -> None:
        self.h = Harness()
        self.active = True
        self.apis = ControllerApis(self.submit)

    async def submit(self, op: Any) -> Any:
        if not self.active:
            raise NotController()
        return self.h.apply(op(self.h.c, self.h.now))

    def call(self, key: ApiKey, version: int, request: Any) -> Any:
        mod = MODULES[key]
        # The request must be valid at this version (round trip through the codec).
        request, _ = mod.REQUEST.decode(mod.REQUEST.encode(request, version), version)
        header = RequestHeader(int(key), version, 1, "test", 2)
        resp = asyncio.run(self.apis.handlers[key](None, header, request))
        raw = mod.RESPONSE.encode(resp, version)  # encodable at this version
        decoded, _ = mod.RESPONSE.decode(raw, version)
        return decoded


def _ready(p: InProcess, *brokers: int) -> None:
    p.h.brokers(*brokers)


def test_handlers_cover_every_api() -> None:
    assert set(InProcess().apis.handlers) == set(MODULES)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_update_features_versions(version: int) -> None:
    p = InProcess()
    R = update_features.REQUEST
    req = R.cls(feature_updates=[R.FeatureUpdateKey(feature="metadata.version",
                                                    max_version_level=22)])
    resp = p.call(ApiKey.UPDATE_FEATURES, version, req)
    assert resp.error_code == 0
    assert [r.feature for r in resp.results] == ([] if version == 2 else ["metadata.version"])
    assert p.h.image.features.metadata_version == 22
    req.feature_updates[0].max_version_level = 21
    resp = p.call(ApiKey.UPDATE_FEATURES, version, req)  # a downgrade asked as an upgrade
    assert resp.error_code == E.INVALID_UPDATE_VERSION and resp.results == []
    if version == 0:
        req.feature_updates[0].allow_downgrade = True
    else:
        req.feature_updates[0].upgrade_type = 2
    assert p.call(ApiKey.UPDATE_FEATURES, version, req).error_code == 0
    assert p.h.image.features.metadata_version == 21


@pytest.mark.parametrize("version", [0, 1, 4])
def test_broker_registration_and_heartbeat(version: int) -> None:
    p = InProcess()
    req = reg_request(1)
    resp = p.call(ApiKey.BROKER_REGISTRATION, version, req)
    assert resp.error_code == 0 and resp.broker_epoch == p.h.image.cluster.brokers[1].epoch
    hb = broker_heartbeat.REQUEST.cls(broker_id=1, broker_epoch=resp.broker_epoch,
                                      current_metadata_offset=10**6, want_fence=False,
                                      want_shut_down=False)
    r = p.call(ApiKey.BROKER_HEARTBEAT, min(version, 1), hb)
    assert r.error_code == 0 and not r.is_fenced and r.is_caught_up
    hb.broker_epoch += 1
    assert p.call(ApiKey.BROKER_HEARTBEAT, 0, hb).error_code == E.STALE_BROKER_EPOCH
    r = p.call(ApiKey.UNREGISTER_BROKER, 0, unregister_broker.REQUEST.cls(broker_id=1))
    assert r.error_code == 0
    r = p.call(ApiKey.UNREGISTER_BROKER, 0, unregister_broker.REQUEST.cls(broker_id=1))
    assert r.error_code == E.BROKER_ID_NOT_REGISTERED


@pytest.mark.parametrize("version", [0, 1, 4, 5, 7])
def test_create_topics_versions(version: int) -> None:
    p = InProcess()
    _ready(p, 1, 2)
    resp = p.call(ApiKey.CREATE_TOPICS, version,
                  topic_request(("t", 2, 2), ("bad name", 1, 1)))
    ok, bad = resp.topics
    assert ok.error_code == 0 and bad.error_code == E.INVALID_TOPIC_EXCEPTION
    if version >= 5:
        assert ok.num_partitions == 2 and ok.replication_factor == 2 and ok.configs
    if version >= 7:
        assert ok.topic_id == p.h.image.topics.by_name["t"].topic_id
    if version >= 1:
        assert bad.error_message


@pytest.mark.parametrize("version", [1, 5, 6])
def test_delete_topics_versions(version: int) -> None:
    p = InProcess()
    _ready(p, 1)
    p.h.create("t")
    R = delete_topics.REQUEST
    if version >= 6:
        tid = p.h.image.topics.by_name["t"].topic_id
        req = R.cls(topics=[R.DeleteTopicState(topic_id=tid), R.DeleteTopicState(name="x")],
                    timeout_ms=1)
    else:
        req = R.cls(topic_names=["t", "x"], timeout_ms=1)
    resp = p.call(ApiKey.DELETE_TOPICS, version, req)
    assert [r.error_code for r in resp.responses] == [0, E.UNKNOWN_TOPIC_OR_PARTITION]
    assert resp.responses[0].name == "t"
    assert "t" not in p.h.image.topics.by_name


def test_create_partitions_and_configs() -> None:
    p = InProcess()
    _ready(p, 1)
    p.h.create("t")
    R = create_partitions.REQUEST
    resp = p.call(ApiKey.CREATE_PARTITIONS, 2, R.cls(topics=[R.CreatePartitionsTopic(
        name="t", count=3, assignments=None)], timeout_ms=1, validate_only=False))
    assert resp.results[0].error_code == 0
    assert len(p.h.image.topics.by_name["t"].partitions) == 3
    IR = incremental_alter_configs.REQUEST
    for v in (0, 1):
        resp = p.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, v, IR.cls(resources=[
            IR.AlterConfigsResource(resource_type=2, resource_name="t", configs=[
                IR.AlterableConfig(name="retention.ms", config_operation=0, value=str(v + 1))])],
            validate_only=False))
        assert resp.responses[0].error_code == 0 and resp.responses[0].resource_name == "t"
    assert p.h.image.configs.topic_config("t") == {"retention.ms": "2"}
    AR = alter_configs.REQUEST
    resp = p.call(ApiKey.ALTER_CONFIGS, 0, AR.cls(resources=[AR.AlterConfigsResource(
        resource_type=2, resource_name="t", configs=[
            AR.AlterableConfig(name="retention.ms", value="nope")])], validate_only=False))
    assert resp.responses[0].error_code == E.INVALID_CONFIG


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_alter_partition_versions(version: int) -> None:
    p = InProcess()
    _ready(p, 1, 2)
    p.h.create("t", 1, 2)
    topic = p.h.image.topics.by_name["t"]
    part = topic.partitions[0]
    leader = part.leader
    epoch = p.h.image.cluster.brokers[leader].epoch
    req = alter_request(leader, epoch, topic, 0, part.leader_epoch, part.partition_epoch,
                        [leader], version)
    resp = p.call(ApiKey.ALTER_PARTITION, version, req)
    assert resp.error_code == 0
    r = resp.topics[0].partitions[0]
    assert r.error_code == 0 and r.isr == [leader] and r.partition_epoch == 1
    if version >= 2:
        assert resp.topics[0].topic_id == topic.topic_id
    else:
        assert resp.topics[0].topic_name == "t"


def test_allocate_producer_ids_and_elect_leaders() -> None:
    p = InProcess()
    _ready(p, 1)
    p.h.create("t")
    e = p.h.image.cluster.brokers[1].epoch
    resp = p.call(ApiKey.ALLOCATE_PRODUCER_IDS, 0,
                  allocate_producer_ids.REQUEST.cls(broker_id=1, broker_epoch=e))
    assert (resp.error_code, resp.producer_id_start, resp.producer_id_len) == (0, 0, 1000)
    R = elect_leaders.REQUEST
    for v in (0, 1, 2):
        resp = p.call(ApiKey.ELECT_LEADERS, v, R.cls(election_type=0, topic_partitions=[
            R.TopicPartitions(topic="t", partitions=[0])], timeout_ms=1))
        pr = resp.replica_election_results[0].partition_result[0]
        assert pr.error_code == E.ELECTION_NOT_NEEDED


@pytest.mark.parametrize("key,version", [
    (ApiKey.CREATE_TOPICS, 0), (ApiKey.CREATE_TOPICS, 7), (ApiKey.DELETE_TOPICS, 6),
    (ApiKey.DELETE_TOPICS, 0), (ApiKey.CREATE_PARTITIONS, 0), (ApiKey.BROKER_REGISTRATION, 0),
    (ApiKey.BROKER_HEARTBEAT, 1), (ApiKey.UNREGISTER_BROKER, 0), (ApiKey.ALTER_PARTITION, 3),
    (ApiKey.ALLOCATE_PRODUCER_IDS, 0), (ApiKey.INCREMENTAL_ALTER_CONFIGS, 1),
    (ApiKey.ALTER_CONFIGS, 2), (ApiKey.ELECT_LEADERS, 0), (ApiKey.ELECT_LEADERS, 2),
    (ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0), (ApiKey.ALTER_PARTITION_REASSIGNMENTS, 1),
    (ApiKey.LIST_PARTITION_REASSIGNMENTS, 0),
])
def test_not_controller(key: ApiKey, version: int) -> None:
    p = InProcess()
    p.active = False
    mod = MODULES[key]
    R = mod.REQUEST
    samples: dict[int, Any] = {
        ApiKey.CREATE_TOPICS: lambda R: topic_request(("t", 1, 1)),
        ApiKey.DELETE_TOPICS: lambda R: (
            R.cls(topics=[R.DeleteTopicState(name="t")], timeout_ms=1)
            if version >= 6 else R.cls(topic_names=["t"], timeout_ms=1)),
        ApiKey.CREATE_PARTITIONS: lambda R: R.cls(
            topics=[R.CreatePartitionsTopic(name="t", count=2)], timeout_ms=1,
            validate_only=False),
        ApiKey.BROKER_REGISTRATION: lambda R: reg_request(1),
        ApiKey.BROKER_HEARTBEAT: lambda R: R.cls(
            broker_id=1, broker_epoch=1, current_metadata_offset=0, want_fence=False,
            want_shut_down=False),
        ApiKey.UNREGISTER_BROKER: lambda R: R.cls(broker_id=1),
        ApiKey.ALTER_PARTITION: lambda R: R.cls(broker_id=1, broker_epoch=1, topics=[]),
        ApiKey.ALLOCATE_PRODUCER_IDS: lambda R: R.cls(broker_id=1, broker_epoch=1),
        ApiKey.INCREMENTAL_ALTER_CONFIGS: lambda R: R.cls(resources=[R.AlterConfigsResource(
            resource_type=2, resource_name="t", configs=[])], validate_only=False),
        ApiKey.ALTER_CONFIGS: lambda R: R.cls(resources=[R.AlterConfigsResource(
            resource_type=2, resource_name="t", configs=[])], validate_only=False),
        ApiKey.ELECT_LEADERS: lambda R: R.cls(election_type=0, topic_partitions=[
            R.TopicPartitions(topic="t", partitions=[0])], timeout_ms=1),
        ApiKey.ALTER_PARTITION_REASSIGNMENTS: lambda R: R.cls(timeout_ms=1, topics=[
            R.ReassignableTopic(name="t", partitions=[
                R.ReassignablePartition(partition_index=0, replicas=[1])])]),
        ApiKey.LIST_PARTITION_REASSIGNMENTS: lambda R: R.cls(timeout_ms=1, topics=None),
    }
    resp = p.call(key, version, samples[key](R))
    codes: list[int] = []
    for attr in ("topics", "responses", "results", "replica_election_results"):
        for item in getattr(resp, attr, None) or ():
            if hasattr(item, "error_code"):
                codes.append(item.error_code)
            for pr in (getattr(item, "partition_result", None) or ()):
                codes.append(pr.error_code)
            if key == ApiKey.ALTER_PARTITION_REASSIGNMENTS:
                codes.extend(pr.error_code for pr in item.partitions)
    if hasattr(resp, "error_code") and (key != ApiKey.ELECT_LEADERS or version >= 1):
        codes.append(resp.error_code)
    assert codes and all(c == E.NOT_CONTROLLER for c in codes), resp


@pytest.mark.parametrize("version", [0, 1])
def test_partition_reassignments_on_the_wire(version: int) -> None:
    p = InProcess()
    _ready(p, 1, 2, 3)
    p.h.create("t", -1, -1, assignments={"t": [[1, 2]]})
    A = alter_partition_reassignments.REQUEST
    L = list_partition_reassignments.REQUEST

    def alter(replicas: list[int] | None, allow: bool = True, topic: str = "t") -> Any:
        req = A.cls(timeout_ms=1000, topics=[A.ReassignableTopic(name=topic, partitions=[
            A.ReassignablePartition(partition_index=0, replicas=replicas)])])
        if version >= 1:
            req.allow_replication_factor_change = allow
        resp = p.call(ApiKey.ALTER_PARTITION_REASSIGNMENTS, version, req)
        assert resp.error_code == 0 and resp.error_message is None
        if version >= 1:
            assert resp.allow_replication_factor_change == allow
        [t] = resp.responses
        assert t.name == topic
        return t.partitions[0]

    def listed(topics: Any = None) -> list[Any]:
        resp = p.call(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                      L.cls(timeout_ms=1000, topics=topics))
        assert resp.error_code == 0
        return [(t.name, q.partition_index, q.replicas, q.adding_replicas, q.removing_replicas)
                for t in resp.topics for q in t.partitions]

    if version >= 1:
        r = alter([1, 2, 3], allow=False)
        assert r.error_code == E.INVALID_REPLICATION_FACTOR and r.error_message
    assert alter([2, 3]).error_code == 0
    assert listed() == [("t", 0, [2, 3, 1], [3], [1])]
    assert listed([L.ListPartitionReassignmentsTopics(name="t", partition_indexes=[1])]) == []
    assert alter(None).error_code == 0
    assert listed() == []
    assert alter(None).error_code == E.NO_REASSIGNMENT_IN_PROGRESS
    assert alter([]).error_code == E.INVALID_REPLICA_ASSIGNMENT
    assert alter([1], topic="nope").error_code == E.UNKNOWN_TOPIC_OR_PARTITION


def test_log_dirs_through_registration_heartbeat_and_assign_replicas_to_dirs() -> None:
    """KIP-858 on the wire: LogDirs (registration v2+), OfflineLogDirs (heartbeat v1),
    AssignReplicasToDirs v0."""
    import uuid
    p = InProcess()
    dirs = {b: [uuid.UUID(int=(b << 64) + 500 + n) for n in range(2)] for b in (1, 2)}
    epochs = {}
    for b in (1, 2):
        req = reg_request(b)
        req.log_dirs = dirs[b]
        resp = p.call(ApiKey.BROKER_REGISTRATION, 2, req)
        assert resp.error_code == 0
        epochs[b] = resp.broker_epoch
        hb = broker_heartbeat.REQUEST.cls(broker_id=b, broker_epoch=resp.broker_epoch,
                                          current_metadata_offset=10**6, want_fence=False,
                                          want_shut_down=False)
        assert not p.call(ApiKey.BROKER_HEARTBEAT, 1, hb).is_fenced
    assert p.h.image.cluster.brokers[1].directories == tuple(sorted(dirs[1]))
    # A directory another broker registered is refused.
    req = reg_request(3)
    req.log_dirs = [dirs[1][0]]
    assert p.call(ApiKey.BROKER_REGISTRATION, 2, req).error_code == E.INVALID_REGISTRATION
    p.h.create("t", 1, 2)
    topic = p.h.image.topics.by_name["t"]
    R = assign_replicas_to_dirs.REQUEST
    for b in (1, 2):
        resp = p.call(ApiKey.ASSIGN_REPLICAS_TO_DIRS, 0, R.cls(
            broker_id=b, broker_epoch=epochs[b], directories=[R.DirectoryData(
                id=dirs[b][0], topics=[R.TopicData(topic_id=topic.topic_id, partitions=[
                    R.PartitionData(partition_index=0), R.PartitionData(partition_index=9)])])])
        )
        assert resp.error_code == 0
        assert [(x.partition_index, x.error_code) for x in resp.directories[0].topics[0].partitions
                ] == [(0, 0), (9, E.UNKNOWN_TOPIC_OR_PARTITION)]
    part = p.h.image.topics.by_name["t"].partitions[0]
    assert part.directory(1) == dirs[1][0] and part.directory(2) == dirs[2][0]
    leader = part.leader
    hb = broker_heartbeat.REQUEST.cls(broker_id=leader, broker_epoch=epochs[leader],
                                      current_metadata_offset=10**6, want_fence=False,
                                      want_shut_down=False, offline_log_dirs=[dirs[leader][0]])
    assert p.call(ApiKey.BROKER_HEARTBEAT, 1, hb).error_code == 0
    part = p.h.image.topics.by_name["t"].partitions[0]
    assert part.leader not in (leader, -1) and leader not in part.isr
    stale = R.cls(broker_id=1, broker_epoch=epochs[1] + 100, directories=[])
    assert p.call(ApiKey.ASSIGN_REPLICAS_TO_DIRS, 0, stale).error_code == E.STALE_BROKER_EPOCH


@pytest.mark.parametrize("version", [0, 1, 3])
def test_create_and_delete_acls(version: int) -> None:
    p = InProcess()
    C = create_acls.REQUEST
    good = C.AclCreation(resource_type=2, resource_name="orders", resource_pattern_type=3,
                         principal="User:alice", host="*", operation=3, permission_type=3)
    bad = C.AclCreation(resource_type=4, resource_name="other", resource_pattern_type=3,
                        principal="User:alice", host="*", operation=7, permission_type=3)
    resp = p.call(ApiKey.CREATE_ACLS, version, C.cls(creations=[good, bad, good]))
    assert [r.error_code for r in resp.results] == [0, E.INVALID_REQUEST, 0]
    assert "kafka-cluster" in resp.results[1].error_message
    assert len(p.h.image.acls.by_id) == 1  # the duplicate wrote nothing
    D = delete_acls.REQUEST
    any_pattern = 1 if version >= 1 else 3  # v0 has no pattern type: LITERAL
    flt = D.DeleteAclsFilter(resource_type_filter=1, resource_name_filter=None,
                             pattern_type_filter=any_pattern, principal_filter="User:alice",
                             host_filter=None, operation=1, permission_type=1)
    unknown = D.DeleteAclsFilter(resource_type_filter=0, resource_name_filter=None,
                                 pattern_type_filter=any_pattern, principal_filter=None,
                                 host_filter=None, operation=1, permission_type=1)
    resp = p.call(ApiKey.DELETE_ACLS, version, D.cls(filters=[flt, unknown, flt]))
    assert [r.error_code for r in resp.filter_results] == [0, E.INVALID_REQUEST, 0]
    assert [m.resource_name for m in resp.filter_results[0].matching_acls] == ["orders"]
    assert not p.h.image.acls.by_id
    p.active = False
    resp = p.call(ApiKey.DELETE_ACLS, version, D.cls(filters=[flt]))
    assert resp.filter_results[0].error_code == E.NOT_CONTROLLER
@pytest.mark.parametrize("version", [0, 1])
def test_alter_client_quotas_through_the_wire(version: int) -> None:
    p = InProcess()
    R = alter_client_quotas.REQUEST
    req = R.cls(entries=[
        R.EntryData(entity=[R.EntityData(entity_type="user", entity_name=None),
                            R.EntityData(entity_type="client-id", entity_name="c")],
                    ops=[R.OpData(key="producer_byte_rate", value=2048.0, remove=False)]),
        R.EntryData(entity=[R.EntityData(entity_type="client-id", entity_name="c")],
                    ops=[R.OpData(key="bogus", value=1.0, remove=False)]),
    ], validate_only=False)
    resp = p.call(ApiKey.ALTER_CLIENT_QUOTAS, version, req)
    assert [e.error_code for e in resp.entries] == [0, E.INVALID_REQUEST]
    assert [(x.entity_type, x.entity_name) for x in resp.entries[0].entity] == [
        ("user", None), ("client-id", "c")]
    assert p.h.image.client_quotas.entities == {
        (("client-id", "c"), ("user", None)): {"producer_byte_rate": 2048.0}}


def test_alter_user_scram_credentials() -> None:
    """Upserts become UserScramCredentialRecords with keys derived from the salted password;
    Kafka's per-user errors; a failing user changes nothing of its own."""
    from broker.security.scram import salted_password, verify_password
    p = InProcess()
    R = alter_user_scram_credentials.REQUEST
    salted = salted_password(1, b"pw", b"salt" * 8, 4096)

    def upsert(name: str, mech: int = 1, iterations: int = 4096) -> Any:
        return R.ScramCredentialUpsertion(name=name, mechanism=mech, iterations=iterations,
                                          salt=b"salt" * 8, salted_password=salted)

    resp = p.call(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, R.cls(deletions=[], upsertions=[
        upsert("alice"), upsert("", 1), upsert("bob", 3), upsert("carol", 1, 100),
        upsert("dan", 1, 20000)]))
    assert [(r.user, r.error_code) for r in resp.results] == [
        ("alice", 0), ("", 93), ("bob", 33), ("carol", 93), ("dan", 93)]
    cred = p.h.image.scram.get("alice", 1)
    assert cred is not None and verify_password(cred, "pw", 1)
    assert set(p.h.image.scram.users()) == {"alice"}
    resp = p.call(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, R.cls(
        deletions=[R.ScramCredentialDeletion(name="alice", mechanism=1),
                   R.ScramCredentialDeletion(name="zed", mechanism=2)],
        upsertions=[upsert("alice")]))
    assert [(r.user, r.error_code) for r in resp.results] == [("alice", 92), ("zed", 91)]
    assert p.h.image.scram.get("alice", 1) == cred
    resp = p.call(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, R.cls(
        deletions=[R.ScramCredentialDeletion(name="alice", mechanism=1)], upsertions=[]))
    assert resp.results[0].error_code == 0 and not p.h.image.scram.credentials
