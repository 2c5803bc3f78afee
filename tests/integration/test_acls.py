"""ACLs on three nodes (StandardAuthorizer, ``super.users=User:admin``,
``allow.everyone.if.no.acl.found=true``), through real clients as User:ANONYMOUS (PLAINTEXT):
confluent-kafka's AdminClient creates, describes and deletes ACLs; confluent-kafka and
kafka-python producers and consumers are refused where a DENY, or an ACL for someone else,
guards a topic, a group or a transactional id; Metadata hides topics the principal may not
describe and auto-creation needs CREATE; ``kafka-acls`` adds, lists and removes; and once the
cluster resource itself has ACLs (ClusterAction granted to User:ANONYMOUS for the traffic
between nodes, no Alter) replication still works and ACL changes are refused.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from broker.client import KafkaConnection, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_acls, metadata
from tools import acls
from tools.proc_cluster import REPO, ProcCluster, env

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from confluent_kafka import KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

ANON = "User:ANONYMOUS"
AUTHZ = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
    "allow.everyone.if.no.acl.found": "true",
    "min.insync.replicas": "2",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    root = tmp_path_factory.mktemp("acls")
    tokens = root / "http-tokens"
    tokens.write_text("anon-token User:ANONYMOUS\nadmin-token User:admin\n")
    c = ProcCluster(root, controllers=3, combined=True, admin=True, extra={
        **AUTHZ, "admin.authentication.methods": "bearer",
        "admin.bearer.tokens.file": str(tokens)})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def admin(cluster: ProcCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap_servers})


def binding(rtype: Any, name: str, op: Any, perm: Any, principal: str = ANON,
            pattern: Any = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, "*", op, perm)


def create(admin: AdminClient, *bindings: AclBinding) -> None:
    for f in admin.create_acls(list(bindings), request_timeout=30).values():
        f.result(timeout=40)


def everything() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def make_topics(admin: AdminClient, *names: str, rf: int = 3) -> None:
    for f in admin.create_topics([NewTopic(n, 1, rf) for n in names],
                                 request_timeout=30).values():
        f.result(timeout=40)


def produce(cluster: ProcCluster, topic: str, n: int = 3, **conf: Any) -> list[Any]:
    """Delivery errors (None for each success), acks=all."""
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                  "message.timeout.ms": 15000, **conf})
    out: list[Any] = []
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), on_delivery=lambda e, _m: out.append(e))
    p.flush(30)
    return out


def acl_count(address: str) -> int:
    async def run() -> Any:
        host, port = parse_address(address)
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            R = describe_acls.REQUEST
            req = R.cls(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                        principal_filter=None, host_filter=None, operation=1,
                        permission_type=1)
            return await conn.send(ApiKey.DESCRIBE_ACLS, req, timeout_s=10.0)
        finally:
            await conn.close()
    resp = asyncio.run(run())
    assert resp.error_code == 0, resp
    return sum(len(r.acls) for r in resp.resources)


def create_everywhere(cluster: ProcCluster, admin: AdminClient, *bindings: AclBinding) -> None:
    create(admin, *bindings)
    wait_everywhere(cluster, admin)


def wait_everywhere(cluster: ProcCluster, admin: AdminClient) -> None:
    """Until every node's image holds the ACLs the admin client sees (brokers apply the
    metadata at their own pace, as in Kafka)."""
    want = len(admin.describe_acls(everything()).result(timeout=40))
    deadline = time.monotonic() + 20
    for n in cluster.nodes.values():
        while acl_count(n.bootstrap) != want:
            assert time.monotonic() < deadline, f"node {n.bootstrap} lags"
            time.sleep(0.1)


def metadata_for(cluster: ProcCluster, *topics: str, auto: bool = False) -> dict[str, int]:
    async def run() -> Any:
        host, port = parse_address(cluster.bootstrap_servers.split(",")[0])
        conn = await KafkaConnection.connect(host, port, timeout_s=5.0)
        try:
            R = metadata.REQUEST
            req = R.cls(topics=None if not topics else [
                R.MetadataRequestTopic(name=t) for t in topics],
                allow_auto_topic_creation=auto)
            return await conn.send(ApiKey.METADATA, req, timeout_s=10.0)
        finally:
            await conn.close()
    return {t.name: t.error_code for t in asyncio.run(run()).topics}


def http(cluster: ProcCluster, method: str, path: str, body: dict[str, Any] | None = None,
         token: str = "anon-token") -> tuple[int, dict[str, Any]]:
    """The HTTP admin API, authenticated with a bearer token (anon-token: User:ANONYMOUS,
    admin-token: User:admin, a super user)."""
    node = next(iter(cluster.nodes.values()))
    req = urllib.request.Request(node.admin_url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=40) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def acls_tool(cluster: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.acls", "--bootstrap-server",
                           cluster.bootstrap_servers, *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=60, input="", check=False)


def acls_main(cluster: ProcCluster, capsys: pytest.CaptureFixture[str],
              *args: str) -> tuple[int, str, str]:
    """The tool in this process (its start-up costs seconds per run as a process)."""
    code = acls.main(["--bootstrap-server", cluster.bootstrap_servers, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_describe_delete_through_confluent_admin(admin: AdminClient) -> None:
    bindings = [binding(ResourceType.TOPIC, "orders", AclOperation.READ, AclPermissionType.ALLOW,
                        "User:alice"),
                binding(ResourceType.TOPIC, "ord", AclOperation.WRITE, AclPermissionType.DENY,
                        "User:alice", ResourcePatternType.PREFIXED),
                binding(ResourceType.GROUP, "g1", AclOperation.READ, AclPermissionType.ALLOW,
                        "User:alice")]
    create(admin, *bindings)
    got = admin.describe_acls(everything(), request_timeout=30).result(timeout=40)
    assert set(got) == set(bindings)
    match = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert set(admin.describe_acls(match).result(timeout=40)) == set(bindings[:2])
    futures = admin.delete_acls([AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY,
        AclPermissionType.ANY)], request_timeout=30)
    deleted = next(iter(futures.values())).result(timeout=40)
    assert set(deleted) == set(bindings)
    assert admin.describe_acls(everything()).result(timeout=40) == []


def test_kafka_python_admin_acls(cluster: ProcCluster) -> None:
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KResourceType
    client = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers,
                              request_timeout_ms=30000)
    try:
        acl = ACL("User:dave", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW,
                  ResourcePattern(KResourceType.GROUP, "dave-", ACLResourcePatternType.PREFIXED))
        result = client.create_acls([acl])
        assert result["succeeded"] == [acl] and not result["failed"]
        flt = ACLFilter("User:dave", None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(KResourceType.ANY, None,
                                              ACLResourcePatternType.ANY))
        acls, error = client.describe_acls(flt)
        assert error.errno == 0 and [(a.principal, a.operation) for a in acls] == [
            ("User:dave", ACLOperation.DESCRIBE)]
        deleted = client.delete_acls([flt])
        assert [a.principal for a in deleted[0][1]] == ["User:dave"]
    finally:
        client.close()


def test_bad_acls_are_refused_with_invalid_request(admin: AdminClient) -> None:
    bad = binding(ResourceType.BROKER, "not-the-cluster", AclOperation.ALTER,
                  AclPermissionType.ALLOW)
    futures = admin.create_acls([bad], request_timeout=30)
    with pytest.raises(KafkaException) as e:
        next(iter(futures.values())).result(timeout=40)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST


def test_topic_write_denied_read_allowed(cluster: ProcCluster, admin: AdminClient) -> None:
    make_topics(admin, "guarded")
    assert produce(cluster, "guarded") == [None] * 3
    create_everywhere(cluster, admin, binding(ResourceType.TOPIC, "guarded", AclOperation.WRITE,
                          AclPermissionType.DENY),
           binding(ResourceType.TOPIC, "guarded", AclOperation.READ, AclPermissionType.ALLOW))
    errors = produce(cluster, "guarded", n=1)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # READ is allowed (and implies DESCRIBE): kafka-python reads what was written before.
    consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                   auto_offset_reset="earliest", consumer_timeout_ms=15000)
    try:
        consumer.assign([kafka.TopicPartition("guarded", 0)])
        values = []
        for m in consumer:
            values.append(m.value)
            if len(values) == 3:
                break
    finally:
        consumer.close()
    assert values == [b"v0", b"v1", b"v2"]
    # The operations the principal holds, as confluent-kafka's describe_topics reports them.
    desc = admin.describe_topics(TopicCollection(["guarded"]), request_timeout=30,
                                 include_authorized_operations=True)["guarded"].result(timeout=40)
    ops = set(desc.authorized_operations or ())
    assert {AclOperation.READ, AclOperation.DESCRIBE} <= ops and AclOperation.WRITE not in ops


def test_read_denied_to_consumers(cluster: ProcCluster, admin: AdminClient) -> None:
    make_topics(admin, "unreadable")
    assert produce(cluster, "unreadable", n=1) == [None]
    create_everywhere(cluster, admin, binding(ResourceType.TOPIC, "unreadable", AclOperation.READ,
                          AclPermissionType.DENY),
           binding(ResourceType.TOPIC, "unreadable", AclOperation.DESCRIBE,
                   AclPermissionType.ALLOW))
    consumer = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                   auto_offset_reset="earliest")
    try:
        consumer.assign([kafka.TopicPartition("unreadable", 0)])
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert not consumer.poll(timeout_ms=500), "read despite the DENY READ"
    finally:
        consumer.close()


def test_metadata_hides_topics_and_auto_creation_needs_create(cluster: ProcCluster,
                                                              admin: AdminClient) -> None:
    make_topics(admin, "hidden")
    create_everywhere(cluster, admin, binding(ResourceType.TOPIC, "hidden", AclOperation.READ,
                          AclPermissionType.ALLOW, "User:bob"),
           binding(ResourceType.TOPIC, "auto-", AclOperation.DESCRIBE, AclPermissionType.ALLOW,
                   pattern=ResourcePatternType.PREFIXED))
    assert "hidden" not in admin.list_topics(timeout=10).topics
    assert "guarded" in admin.list_topics(timeout=10).topics
    assert metadata_for(cluster, "hidden") == {"hidden": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    # The HTTP admin API's writes are checked the same way (its principal is ANONYMOUS).
    status, body = http(cluster, "DELETE", "/v1/topics/hidden")
    assert (status, body["error_code"]) == (403, "TOPIC_AUTHORIZATION_FAILED")
    status, body = http(cluster, "POST", "/v1/topics", {"name": "from-http", "partitions": 1})
    assert status == 201, body
    # The principal comes from the HTTP authentication: a super user may delete it.
    status, body = http(cluster, "DELETE", "/v1/topics/hidden", token="admin-token")
    assert status < 300, body
    assert http(cluster, "GET", "/v1/topics/hidden", token="admin-token")[0] == 404
    # The cluster has no ACL yet, so CREATE on it is allowed (allow.everyone.if.no.acl.found):
    # a topic is auto-created (after the cluster ACLs below it is not).
    deadline = time.monotonic() + 20
    while metadata_for(cluster, "free-x", auto=True)["free-x"] != 0:
        assert time.monotonic() < deadline, "free-x was not auto-created"
        time.sleep(0.3)


def test_group_and_transactional_id_guarded(cluster: ProcCluster, admin: AdminClient) -> None:
    make_topics(admin, "shared")
    create_everywhere(cluster, admin, binding(ResourceType.GROUP, "bob-group", AclOperation.READ,
                          AclPermissionType.ALLOW, "User:bob"),
           binding(ResourceType.TRANSACTIONAL_ID, "bob-txn", AclOperation.WRITE,
                   AclPermissionType.ALLOW, "User:bob"))
    consumer = kafka.KafkaConsumer("shared", bootstrap_servers=cluster.bootstrap_servers,
                                   group_id="bob-group", consumer_timeout_ms=3000)
    try:
        with pytest.raises(kafka.errors.GroupAuthorizationFailedError):
            consumer.poll(timeout_ms=10000)
            consumer.poll(timeout_ms=10000)
    finally:
        consumer.close(autocommit=False)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "bob-txn"})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    # An unguarded group and transactional id work.
    ok = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "free"})
    ok.init_transactions(30)
    ok.begin_transaction()
    ok.produce("shared", b"t")
    ok.commit_transaction(30)


def test_kafka_acls_tool(cluster: ProcCluster, capsys: pytest.CaptureFixture[str]) -> None:
    r = acls_tool(cluster, "--add", "--allow-principal", "User:carol", "--consumer",
                  "--topic", "tool-topic", "--group", "tool-group")
    assert r.returncode == 0, r.stderr
    assert ("Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=tool-topic, "
            "patternType=LITERAL)`:") in r.stdout
    assert "(principal=User:carol, host=*, operation=READ, permissionType=ALLOW)" in r.stdout
    code, out, err = acls_main(cluster, capsys, "--list", "--topic", "tool-topic")
    assert code == 0, err
    assert "operation=DESCRIBE" in out and "operation=READ" in out
    code, out, _ = acls_main(cluster, capsys, "--list", "--principal", "User:carol")
    assert "resourceType=GROUP, name=tool-group" in out
    code, out, err = acls_main(cluster, capsys, "--remove", "--topic", "tool-topic",
                               "--group", "tool-group", "--force")
    assert code == 0, err
    assert "User:carol" not in acls_main(cluster, capsys, "--list")[1]
    code, _, err = acls_main(cluster, capsys, "--add", "--allow-principal", "User:carol",
                             "--operation", "Fly", "--topic", "x")
    assert code == 1 and "Unknown operation" in err


def test_cluster_acls_inter_node_cluster_action(cluster: ProcCluster,
                                                admin: AdminClient) -> None:
    """Last: once the cluster resource has ACLs, ANONYMOUS keeps only what they grant
    (ClusterAction, Describe, IdempotentWrite; not Create, not Alter)."""
    create(admin, binding(ResourceType.TOPIC, "mine-", AclOperation.CREATE,
                          AclPermissionType.ALLOW, pattern=ResourcePatternType.PREFIXED),
           binding(ResourceType.TOPIC, "mine-", AclOperation.WRITE, AclPermissionType.ALLOW,
                   pattern=ResourcePatternType.PREFIXED),
           binding(ResourceType.TOPIC, "mine-", AclOperation.READ, AclPermissionType.ALLOW,
                   pattern=ResourcePatternType.PREFIXED),
           binding(ResourceType.TOPIC, "bobs-", AclOperation.ALL, AclPermissionType.ALLOW,
                   "User:bob", pattern=ResourcePatternType.PREFIXED))
    create_everywhere(cluster, admin, *[
        binding(ResourceType.BROKER, "kafka-cluster", op, AclPermissionType.ALLOW)
        for op in (AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE,
                   AclOperation.IDEMPOTENT_WRITE)])
    # No CREATE on the cluster: mine-1 may be created (CREATE on its prefix), bobs-1 not (its
    # prefix has ACLs, for bob only), and auto-y (describable through the auto- prefix, not
    # creatable) is not auto-created.
    make_topics(admin, "mine-1")
    futures = admin.create_topics([NewTopic("bobs-1", 1, 3)], request_timeout=30)
    with pytest.raises(KafkaException) as e:
        next(iter(futures.values())).result(timeout=40)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert metadata_for(cluster, "auto-y", auto=True) == {
        "auto-y": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    # Replication between the nodes (follower fetch, AlterPartition, heartbeats) goes on:
    # acks=all with min.insync.replicas=2 needs the followers.
    assert produce(cluster, "mine-1", **{"enable.idempotence": True}) == [None] * 3
    # A transaction: the coordinator's WriteTxnMarkers and the leader's AddPartitionsToTxn
    # verification travel between the nodes as ANONYMOUS, with CLUSTER_ACTION.
    txn = Producer({"bootstrap.servers": cluster.bootstrap_servers,
                    "transactional.id": "mine-txn"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce("mine-1", b"in-txn")
    txn.commit_transaction(30)
    reader = kafka.KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                 auto_offset_reset="earliest", consumer_timeout_ms=15000,
                                 isolation_level="read_committed")
    try:
        reader.assign([kafka.TopicPartition("mine-1", 0)])
        seen = []
        for m in reader:
            seen.append(m.value)
            if m.value == b"in-txn":
                break
    finally:
        reader.close()
    assert seen[-1:] == [b"in-txn"]
    status, body = http(cluster, "POST", "/v1/partitions/mine-1/0/elect-leader", {})
    assert (status, body["error_code"]) == (403, "CLUSTER_AUTHORIZATION_FAILED")
    # No ALTER on the cluster: ACL changes are refused.
    with pytest.raises(KafkaException) as e:
        create(admin, binding(ResourceType.TOPIC, "x", AclOperation.READ,
                              AclPermissionType.ALLOW))
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert admin.describe_acls(everything()).result(timeout=40)  # DESCRIBE on the cluster is granted
