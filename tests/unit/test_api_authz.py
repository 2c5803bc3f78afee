"""broker/security/api_authz.py and its rules: each API's check on hand-built requests, with
a handler standing in for the real one (what reaches it, and the answer the client gets)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    describe_acls,
    describe_groups,
    fetch,
    init_producer_id,
    join_group,
    produce,
)
from broker.security.acl_apis import AclApis
from broker.security.api_authz import AuthzChecker, secure_handlers
from broker.security.authorizer import AuthorizerConfig, AuthorizerHolder
from broker.security.principal import KafkaPrincipal
from kraft.acls import AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage

ANON = "User:ANONYMOUS"
CTX = SimpleNamespace(principal=KafkaPrincipal("User", "ANONYMOUS"), peer=("10.0.0.1", 4000),
                      listener_name="PLAINTEXT")


def checker(*acls: StandardAcl, everyone: bool = True) -> AuthzChecker:
    d = MetadataDelta(MetadataImage())
    for a in acls:
        d.replay(18, a.to_record(uuid.uuid4()))
    image = d.apply()
    holder = AuthorizerHolder(AuthorizerConfig(frozenset({"User:admin"}), everyone),
                              lambda: image)
    return AuthzChecker(holder, lambda: image)


def acl(rtype: ResourceType, name: str, op: AclOperation, perm: AclPermissionType,
        principal: str = ANON) -> StandardAcl:
    return StandardAcl(rtype, name, PatternType.LITERAL, principal, "*", op, perm)


def header(key: int, version: int) -> Any:
    return SimpleNamespace(api_key=key, api_version=version)


def produce_request(*topics: str, txn: str | None = None) -> Any:
    R = produce.REQUEST
    return R.cls(transactional_id=txn, acks=1, timeout_ms=1000, topic_data=[
        R.TopicProduceData(name=t, partition_data=[R.PartitionProduceData(index=0, records=None),
                                                   R.PartitionProduceData(index=1, records=None)])
        for t in topics])


def echo_produce(seen: list[str]) -> Any:
    R = produce.RESPONSE

    def handle(ctx: Any, hdr: Any, req: Any) -> Any:
        seen.extend(t.name for t in req.topic_data)
        return R.cls(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
            R.PartitionProduceResponse(index=p.index, error_code=0) for p in t.partition_data])
            for t in req.topic_data])
    return handle


def codes(resp: Any) -> dict[str, list[int]]:
    return {t.name: [p.error_code for p in t.partition_responses] for t in resp.responses}


def test_produce_splits_denied_topics_from_allowed() -> None:
    seen: list[str] = []
    c = checker(acl(ResourceType.TOPIC, "no", AclOperation.WRITE, AclPermissionType.DENY))
    handlers = secure_handlers({ApiKey.PRODUCE: echo_produce(seen)}, c, "broker")
    resp = handlers[ApiKey.PRODUCE](CTX, header(0, 9), produce_request("yes", "no"))
    assert seen == ["yes"]  # the denied topic never reaches the handler
    assert codes(resp) == {"yes": [0, 0], "no": [29, 29]}


def test_produce_with_a_denied_transactional_id_fails_every_partition() -> None:
    seen: list[str] = []
    c = checker(acl(ResourceType.TRANSACTIONAL_ID, "t", AclOperation.WRITE,
                    AclPermissionType.ALLOW, "User:bob"))
    handlers = secure_handlers({ApiKey.PRODUCE: echo_produce(seen)}, c, "broker")
    resp = handlers[ApiKey.PRODUCE](CTX, header(0, 9), produce_request("a", txn="t"))
    assert seen == [] and codes(resp) == {"a": [53, 53]}


def test_async_handlers_are_patched_after_they_answer() -> None:
    seen: list[str] = []
    sync = echo_produce(seen)

    async def handle(ctx: Any, hdr: Any, req: Any) -> Any:
        return sync(ctx, hdr, req)
    c = checker(acl(ResourceType.TOPIC, "no", AclOperation.ALL, AclPermissionType.DENY))
    wrapped = secure_handlers({ApiKey.PRODUCE: handle}, c, "broker")[ApiKey.PRODUCE]
    resp = asyncio.run(wrapped(CTX, header(0, 9), produce_request("no", "yes")))
    assert codes(resp) == {"yes": [0, 0], "no": [29, 29]}


def test_follower_fetch_needs_cluster_action() -> None:
    R = fetch.REQUEST
    req = R.cls(replica_id=2, max_wait_ms=0, min_bytes=0, topics=[R.FetchTopic(
        topic="t", partitions=[R.FetchPartition(partition=0, fetch_offset=0)])])
    called = []
    c = checker(acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE,
                    AclPermissionType.ALLOW))
    h = secure_handlers({ApiKey.FETCH: lambda *a: called.append(1)}, c, "broker")
    resp = h[ApiKey.FETCH](CTX, header(1, 12), req)
    assert not called
    assert [(t.topic, [p.error_code for p in t.partitions]) for t in resp.responses] == [
        ("t", [ErrorCode.TOPIC_AUTHORIZATION_FAILED])]


def test_group_request_denied_and_per_group_describe() -> None:
    c = checker(acl(ResourceType.GROUP, "g", AclOperation.READ, AclPermissionType.ALLOW,
                    "User:bob"))
    J = join_group.REQUEST
    h = secure_handlers({ApiKey.JOIN_GROUP: lambda *a: None,
                         ApiKey.DESCRIBE_GROUPS: lambda ctx, hdr, req: describe_groups.RESPONSE
                         .cls(groups=[describe_groups.RESPONSE.DescribedGroup(group_id=g)
                                      for g in req.groups])}, c, "broker")
    resp = h[ApiKey.JOIN_GROUP](CTX, header(11, 5), J.cls(group_id="g", session_timeout_ms=1,
                                                          member_id="", protocol_type="c"))
    assert resp.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    resp = h[ApiKey.DESCRIBE_GROUPS](CTX, header(15, 5),
                                     describe_groups.REQUEST.cls(groups=["g", "other"]))
    assert {(g.group_id, g.error_code) for g in resp.groups} == {
        ("other", 0), ("g", ErrorCode.GROUP_AUTHORIZATION_FAILED)}


def test_idempotent_init_producer_id_needs_idempotent_write_or_a_topic_write() -> None:
    req = init_producer_id.REQUEST.cls(transactional_id=None, transaction_timeout_ms=1)
    called: list[int] = []

    def handle(*a: Any) -> Any:
        called.append(1)
        return init_producer_id.RESPONSE.cls(error_code=0)
    guarded = checker(acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE,
                          AclPermissionType.ALLOW), everyone=False)
    h = secure_handlers({ApiKey.INIT_PRODUCER_ID: handle}, guarded, "broker")
    assert h[ApiKey.INIT_PRODUCER_ID](CTX, header(22, 4), req).error_code == 31
    writer = checker(acl(ResourceType.TOPIC, "t", AclOperation.WRITE, AclPermissionType.ALLOW),
                     everyone=False)
    h = secure_handlers({ApiKey.INIT_PRODUCER_ID: handle}, writer, "broker")
    assert h[ApiKey.INIT_PRODUCER_ID](CTX, header(22, 4), req).error_code == 0 and called


def test_unchecked_apis_keep_their_handler_and_unknown_ones_need_alter() -> None:
    def plain(*a: Any) -> Any:
        return None
    c = checker(acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE,
                    AclPermissionType.ALLOW))
    h = secure_handlers({ApiKey.DESCRIBE_ACLS: plain,
                         ApiKey.ALTER_PARTITION_REASSIGNMENTS: plain}, c, "broker")
    assert h[ApiKey.DESCRIBE_ACLS] is plain
    resp = h[ApiKey.ALTER_PARTITION_REASSIGNMENTS](CTX, header(45, 0), SimpleNamespace())
    assert resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    # On the controller listener an inter-node API needs CLUSTER_ACTION.
    h = secure_handlers({ApiKey.BROKER_HEARTBEAT: plain}, c, "controller")
    assert h[ApiKey.BROKER_HEARTBEAT](CTX, header(63, 0), SimpleNamespace()).error_code == 31


def test_acl_apis_without_an_authorizer_answer_security_disabled() -> None:
    apis = AclApis(MetadataImage, forwarder=None, checker=None)  # type: ignore[arg-type]
    R = describe_acls.REQUEST
    resp = apis.describe_acls(CTX, header(29, 1), R.cls(
        resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
        principal_filter=None, host_filter=None, operation=1, permission_type=1))
    assert resp.error_code == ErrorCode.SECURITY_DISABLED


def test_http_write_routes_need_kafkas_operations() -> None:
    from broker.admin.http_authz import write_checks
    create = write_checks("create_topic", {}, {"name": "t"})
    assert create == [[(AclOperation.CREATE, ResourceType.CLUSTER, "kafka-cluster"),
                       (AclOperation.CREATE, ResourceType.TOPIC, "t")]]
    assert write_checks("update_topic", {"name": "t"}, {"partitions_count": 3,
                                                       "configs": {"a": "1"}}) == [
        [(AclOperation.ALTER, ResourceType.TOPIC, "t")],
        [(AclOperation.ALTER_CONFIGS, ResourceType.TOPIC, "t")]]
    assert write_checks("delete_topic", {"name": "t"}, {}) == [
        [(AclOperation.DELETE, ResourceType.TOPIC, "t")]]
    assert write_checks("shutdown_broker", {"broker_id": "1"}, {}) == [
        [(AclOperation.ALTER, ResourceType.CLUSTER, "kafka-cluster")]]


def test_answers_fit_old_versions_and_acks_0_gets_none() -> None:
    from broker.protocol.messages import elect_leaders, offset_fetch
    c = checker(acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE,
                    AclPermissionType.ALLOW),
                acl(ResourceType.GROUP, "g", AclOperation.READ, AclPermissionType.ALLOW,
                    "User:bob"),
                acl(ResourceType.TRANSACTIONAL_ID, "t", AclOperation.WRITE,
                    AclPermissionType.ALLOW, "User:bob"))
    h = secure_handlers({ApiKey.ELECT_LEADERS: lambda *a: None,
                         ApiKey.OFFSET_FETCH: lambda *a: None,
                         ApiKey.PRODUCE: lambda *a: None}, c, "broker")
    E = elect_leaders.REQUEST
    req = E.cls(topic_partitions=[E.TopicPartitions(topic="x", partitions=[0])], timeout_ms=1)
    resp = h[ApiKey.ELECT_LEADERS](CTX, header(43, 0), req)
    elect_leaders.RESPONSE.encode(resp, 0)  # encodable at v0 (no top-level error there)
    assert resp.replica_election_results[0].partition_result[0].error_code == 31
    O = offset_fetch.REQUEST
    req = O.cls(group_id="g", topics=[O.OffsetFetchRequestTopic(name="x", partition_indexes=[0])])
    resp = h[ApiKey.OFFSET_FETCH](CTX, header(9, 1), req)
    offset_fetch.RESPONSE.encode(resp, 1)
    assert resp.topics[0].partitions[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    req = produce_request("a", txn="t")
    req.acks = 0
    assert h[ApiKey.PRODUCE](CTX, header(0, 9), req) is None


# --- every rule, every version, drawn requests: a denial is always an encodable answer -------

_TEXT = "ab-_.x"


def _draw(t: Any, version: int, rng: Any, depth: int = 0) -> Any:
    from kraft.codec import BOOL, BYTES, FLOAT64, RECORDS, STRING, UUID, Array, Struct
    if isinstance(t, Struct):
        values: dict[str, Any] = {}
        for f in t.fields:
            if version not in f.versions:
                continue
            if version in f.nullable_versions and rng.random() < 0.25:
                values[f.name] = None
            else:
                values[f.name] = _draw(f.type, version, rng, depth + 1)
        return t.cls(**values)
    if isinstance(t, Array):
        return [_draw(t.elem, version, rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if t is BOOL:
        return rng.random() < 0.5
    if t is FLOAT64:
        return 0.0
    if t is UUID:
        return uuid.UUID(int=rng.getrandbits(128))
    if t is STRING:
        return "".join(rng.choice(_TEXT) for _ in range(rng.randint(0, 5)))
    if t is BYTES or t is RECORDS:
        return b""
    return rng.randint(max(t.lo, -2), min(t.hi, 3))


def test_every_rule_answers_an_encodable_denial_at_every_version() -> None:
    import random

    from broker.protocol.api_keys import API_SPECS
    from broker.security.api_authz import BROKER_RULES, CONTROLLER_RULES
    deny_all = checker(acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.ALL,
                           AclPermissionType.DENY), everyone=False)
    everything = {k for k, spec in API_SPECS.items() if spec.listeners}
    for kind, keys in (("broker", set(BROKER_RULES) | everything),
                       ("controller", set(CONTROLLER_RULES) | everything)):
        for key in sorted(keys):
            spec = API_SPECS[key]
            if key == ApiKey.API_VERSIONS:
                continue  # answered by the server itself

            def inner(ctx: Any, hdr: Any, req: Any, spec: Any = spec) -> Any:
                return spec.response.cls()
            handler = secure_handlers({key: inner}, deny_all, kind)[key]
            for version in range(spec.valid_versions.lowest, spec.valid_versions.highest + 1):
                for seed in range(3):
                    rng = random.Random(seed)
                    req = _draw(spec.request, version, rng)
                    # Round trip: what a real decoder would hand the handler.
                    req, _ = spec.request.decode(spec.request.encode(req, version), version)
                    resp = handler(CTX, header(key, version), req)
                    if resp is not None:
                        spec.response.encode(resp, version)


def test_authorized_operations_when_asked() -> None:
    from broker.protocol.messages import describe_cluster, metadata
    c = checker(acl(ResourceType.TOPIC, "t", AclOperation.READ, AclPermissionType.ALLOW),
                acl(ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE,
                    AclPermissionType.ALLOW))
    M = metadata.RESPONSE

    def md(ctx: Any, hdr: Any, req: Any) -> Any:
        return M.cls(topics=[M.MetadataResponseTopic(error_code=0, name="t")])
    h = secure_handlers({ApiKey.METADATA: md, ApiKey.DESCRIBE_CLUSTER:
                         lambda *a: describe_cluster.RESPONSE.cls()}, c, "broker")
    req = metadata.REQUEST.cls(topics=None, include_topic_authorized_operations=True,
                               include_cluster_authorized_operations=True)
    resp = h[ApiKey.METADATA](CTX, header(3, 10), req)
    assert resp.topics[0].topic_authorized_operations == (1 << 3) | (1 << 8)  # READ, DESCRIBE
    assert resp.cluster_authorized_operations == 1 << 8
    req = describe_cluster.REQUEST.cls(include_cluster_authorized_operations=True)
    assert h[ApiKey.DESCRIBE_CLUSTER](CTX, header(60, 0), req).cluster_authorized_operations \
        == 1 << 8


def test_incremental_fetch_withholds_session_partitions_now_denied() -> None:
    F = fetch.RESPONSE
    c = checker(acl(ResourceType.TOPIC, "s", AclOperation.READ, AclPermissionType.DENY))

    def session_answer(ctx: Any, hdr: Any, req: Any) -> Any:
        # The session still holds "s" although this request does not name it.
        return F.cls(responses=[F.FetchableTopicResponse(topic="s", partitions=[
            F.PartitionData(partition_index=0, error_code=0, records=b"data")])])
    h = secure_handlers({ApiKey.FETCH: session_answer}, c, "broker")
    req = fetch.REQUEST.cls(replica_id=-1, max_wait_ms=0, min_bytes=0, session_id=7,
                            session_epoch=3, topics=[])
    part = h[ApiKey.FETCH](CTX, header(1, 12), req).responses[0].partitions[0]
    assert (part.error_code, part.records) == (ErrorCode.TOPIC_AUTHORIZATION_FAILED, None)


def test_consumer_group_heartbeat_needs_describe_on_subscribed_topics() -> None:
    from broker.protocol.messages import consumer_group_heartbeat
    c = checker(acl(ResourceType.TOPIC, "secret", AclOperation.DESCRIBE,
                    AclPermissionType.DENY))
    h = secure_handlers({ApiKey.CONSUMER_GROUP_HEARTBEAT: lambda *a: None}, c, "broker")
    req = consumer_group_heartbeat.REQUEST.cls(group_id="g", member_id="m", member_epoch=0,
                                               subscribed_topic_names=["ok", "secret"])
    resp = h[ApiKey.CONSUMER_GROUP_HEARTBEAT](CTX, header(68, 0), req)
    assert resp.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED and "secret" in \
        resp.error_message
