"""Authentication and ACLs together, through real clients, on three nodes whose quorum talks
over SASL_SSL (PLAIN, User:controller) and whose brokers replicate over SASL_SSL (SCRAM-SHA-512,
User:broker), both super users of the StandardAuthorizer (``allow.everyone.if.no.acl.found``
is off, Kafka's default).

User:alice is no super user. Her ACLs (made by the super user User:admin) allow reading and
writing the topics prefixed ``granted-`` and reading the groups prefixed ``ok-``. Logged in with
SCRAM-SHA-256 over SASL_SSL (confluent-kafka, kafka-python, aiokafka, kafkajs) and with a client
certificate mapped to User:alice by ``ssl.principal.mapping.rules`` (confluent-kafka,
kafka-python), each client produces and consumes there and is refused, with the
authorization error as it reports it, on the topic ``forbidden`` and on a group ``no-*``;
Metadata does not show her ``forbidden``. A wrong password and an unknown user are refused;
plaintext on a TLS port gets no Kafka answer and the node keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers_kafkajs import CLIENT_DIR, ENV, why_not_installed
from tests.helpers_tls import Certs, make_certs
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

CLIENTS = ["ck", "kp", "aio", "js", "ck-tls", "kp-tls"]
FORBIDDEN = "forbidden"
N = 4


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"), {"alice": "/O=Acme/CN=alice"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[ProcCluster]:
    c = ProcCluster(
        tmp_path_factory.mktemp("security-acls"), controllers=3, combined=True,
        secure={"SSL": "SSL", "SASL_SSL": "SASL_SSL"},
        format_args=["--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                     "--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]",
                     "--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret]"],
        extra={
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:broker;User:controller",
            "listener.security.protocol.map": "CONTROLLER:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                                              "SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                'org.apache.kafka.common.security.scram.ScramLoginModule required '
                'username="broker" password="broker-secret";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                'org.apache.kafka.common.security.plain.PlainLoginModule required '
                'username="controller" password="controller-secret" '
                'user_controller="controller-secret";',
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
            "listener.name.ssl.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),O=Acme$/$1/,DEFAULT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3",
            "offsets.topic.replication.factor": "3",
            "default.replication.factor": "3", "min.insync.replicas": "2",
        })
    c.start()
    try:
        admin = AdminClient(sasl(c, certs, "admin"))
        topics = [NewTopic(f"granted-{x}", 1, 3) for x in CLIENTS] + [NewTopic(FORBIDDEN, 1, 3)]
        for f in admin.create_topics(topics, request_timeout=30).values():
            f.result(timeout=40)
        grants = [AclBinding(ResourceType.TOPIC, "granted-", ResourcePatternType.PREFIXED,
                             "User:alice", "*", op, AclPermissionType.ALLOW)
                  for op in (AclOperation.READ, AclOperation.WRITE)]
        grants.append(AclBinding(ResourceType.GROUP, "ok-", ResourcePatternType.PREFIXED,
                                 "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW))
        for f in admin.create_acls(grants, request_timeout=30).values():
            f.result(timeout=40)
        wait_visible(c, certs)
        yield c
    finally:
        c.shutdown()


def sasl(c: ProcCluster, certs: Certs, user: str, password: str | None = None,
         mechanism: str | None = None) -> dict:
    mechanism = mechanism or ("SCRAM-SHA-256" if user == "alice" else "SCRAM-SHA-512")
    return {"bootstrap.servers": c.secure_bootstrap("SASL_SSL"), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(certs.ca), "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password or f"{user}-secret"}


def mtls(c: ProcCluster, certs: Certs) -> dict:
    crt, key = certs.client("alice")
    return {"bootstrap.servers": c.secure_bootstrap("SSL"), "security.protocol": "SSL",
            "ssl.ca.location": str(certs.ca), "ssl.certificate.location": str(crt),
            "ssl.key.location": str(key)}


def wait_visible(c: ProcCluster, certs: Certs) -> None:
    """Until every node shows alice all the granted topics (each applies the ACL records at its
    own pace)."""
    want = {f"granted-{x}" for x in CLIENTS}
    deadline = time.monotonic() + 30
    for address in c.secure_bootstrap("SASL_SSL").split(","):
        while True:
            md = AdminClient({**sasl(c, certs, "alice"), "bootstrap.servers": address}
                             ).list_topics(timeout=10)
            if want <= set(md.topics):
                break
            assert time.monotonic() < deadline, f"{address} shows {sorted(md.topics)}"
            time.sleep(0.2)


def values(prefix: str) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(N)]


# --- confluent-kafka ------------------------------------------------------------------------


def ck_produce(conf: dict, topic: str, prefix: str) -> list[Any]:
    """Delivery errors (None for each success)."""
    p = ck.Producer({**conf, "acks": "all", "message.timeout.ms": 20000})
    out: list[Any] = []
    for v in values(prefix):
        p.produce(topic, v, on_delivery=lambda e, _m: out.append(e))
    p.flush(30)
    return out


def ck_consume(conf: dict, topic: str, group: str) -> tuple[list[bytes], list[int]]:
    """(values read, error codes seen) until N values or an error."""
    c = ck.Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []
    errors: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < N and not errors and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(m.error().code())
            else:
                got.append(m.value())
    finally:
        c.close()
    return got, errors


@pytest.mark.parametrize("via", ["sasl_ssl", "mtls"])
def test_confluent_kafka(cluster: ProcCluster, certs: Certs, via: str) -> None:
    conf = sasl(cluster, certs, "alice") if via == "sasl_ssl" else mtls(cluster, certs)
    name = "ck" if via == "sasl_ssl" else "ck-tls"
    topic = f"granted-{name}"
    assert ck_produce(conf, topic, name) == [None] * N
    assert ck_consume(conf, topic, f"ok-{name}") == (values(name), [])
    denied = ck_produce(conf, FORBIDDEN, name)
    assert [e.code() for e in denied] == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * N
    assert ck_consume(conf, FORBIDDEN, f"ok-{name}-2") == \
        ([], [KafkaError.TOPIC_AUTHORIZATION_FAILED])
    assert ck_consume(conf, topic, f"no-{name}") == ([], [KafkaError.GROUP_AUTHORIZATION_FAILED])
    md = AdminClient(conf).list_topics(timeout=15)
    assert topic in md.topics and FORBIDDEN not in md.topics
    assert "__consumer_offsets" not in md.topics
    log = server_log(cluster)
    assert ("on SASL_SSL authenticated as User:alice (SASL SCRAM-SHA-256)" if via == "sasl_ssl"
            else "on SSL authenticated as User:alice (client certificate)") in log


# --- kafka-python ---------------------------------------------------------------------------


def kp_conf(cluster: ProcCluster, certs: Certs, via: str) -> dict:
    if via == "mtls":
        crt, key = certs.client("alice")
        return {"bootstrap_servers": cluster.secure_bootstrap("SSL"), "security_protocol": "SSL",
                "ssl_cafile": str(certs.ca), "ssl_certfile": str(crt), "ssl_keyfile": str(key)}
    return {"bootstrap_servers": cluster.secure_bootstrap("SASL_SSL"),
            "security_protocol": "SASL_SSL", "ssl_cafile": str(certs.ca),
            "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "alice",
            "sasl_plain_password": "alice-secret"}


def kp_consume(conf: dict, topic: str, group: str) -> list[bytes]:
    c = kafka.KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest",
                            consumer_timeout_ms=20000, **conf)
    got: list[bytes] = []
    try:
        for m in c:
            got.append(m.value)
            if len(got) == N:
                break
    finally:
        c.close()
    return got


@pytest.mark.parametrize("via", ["sasl_ssl", "mtls"])
def test_kafka_python(cluster: ProcCluster, certs: Certs, via: str) -> None:
    conf = kp_conf(cluster, certs, via)
    name = "kp" if via == "sasl_ssl" else "kp-tls"
    topic = f"granted-{name}"
    producer = kafka.KafkaProducer(acks="all", max_block_ms=20000, **conf)
    try:
        for v in values(name):
            producer.send(topic, v).get(timeout=30)
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            producer.send(FORBIDDEN, b"x").get(timeout=30)
    finally:
        producer.close()
    assert kp_consume(conf, topic, f"ok-{name}") == values(name)
    # kafka-python's consumer does not raise for a subscribed topic Metadata refuses: it
    # records the topic as unauthorized (and logs it) and reads nothing.
    c = kafka.KafkaConsumer(FORBIDDEN, group_id=f"ok-{name}-2", auto_offset_reset="earliest",
                            consumer_timeout_ms=3000, **conf)
    try:
        assert list(c) == []
        assert c._client.cluster.unauthorized_topics == {FORBIDDEN}
    finally:
        c.close()
    with pytest.raises(kafka.errors.GroupAuthorizationFailedError):
        kp_consume(conf, topic, f"no-{name}")
    c = kafka.KafkaConsumer(**conf)
    try:
        listed = c.topics()
    finally:
        c.close()
    assert topic in listed and FORBIDDEN not in listed


# --- aiokafka -------------------------------------------------------------------------------


def test_aiokafka_sasl_ssl(cluster: ProcCluster, certs: Certs) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
    from aiokafka.helpers import create_ssl_context
    topic = "granted-aio"

    async def consume(ctx_kw: dict, name: str, group: str) -> list[bytes]:
        c = AIOKafkaConsumer(name, group_id=group, auto_offset_reset="earliest", **ctx_kw)
        got: list[bytes] = []
        try:
            await c.start()
            async with asyncio.timeout(30):
                while len(got) < N:
                    batch = await c.getmany(timeout_ms=500)
                    got += [m.value for msgs in batch.values() for m in msgs]
        finally:
            await c.stop()
        return got

    async def run() -> None:
        kw = {"bootstrap_servers": cluster.secure_bootstrap("SASL_SSL"),
              "security_protocol": "SASL_SSL",
              "ssl_context": create_ssl_context(cafile=str(certs.ca)),
              "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "alice",
              "sasl_plain_password": "alice-secret"}
        p = AIOKafkaProducer(acks="all", request_timeout_ms=20000, **kw)
        await p.start()
        try:
            for v in values("aio"):
                await p.send_and_wait(topic, v)
            with pytest.raises(TopicAuthorizationFailedError):
                await p.send_and_wait(FORBIDDEN, b"x")
        finally:
            await p.stop()
        assert await consume(kw, topic, "ok-aio") == values("aio")
        with pytest.raises(TopicAuthorizationFailedError):
            await consume(kw, FORBIDDEN, "ok-aio-2")
        with pytest.raises(GroupAuthorizationFailedError):
            await consume(kw, topic, "no-aio")

    asyncio.run(run())


# --- kafkajs --------------------------------------------------------------------------------


@pytest.mark.skipif(why_not_installed() is not None, reason=str(why_not_installed()))
def test_kafkajs_sasl_ssl(cluster: ProcCluster, certs: Certs) -> None:
    def run(op: str, topic: str, group: str = "") -> dict:
        spec = {"brokers": cluster.secure_bootstrap("SASL_SSL").split(","), "ca": str(certs.ca),
                "sasl": {"mechanism": "scram-sha-256", "username": "alice",
                         "password": "alice-secret"},
                "op": op, "topic": topic, "group": group, "n": N}
        out = subprocess.run(["node", "acl.js", json.dumps(spec)], cwd=CLIENT_DIR, env=ENV,
                             capture_output=True, text=True, timeout=120, check=False)
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        assert lines, f"kafkajs printed nothing: {out.stderr[-2000:]}"
        return lines[-1]

    topic = "granted-js"
    assert run("produce", topic)["event"] == "done"
    done = run("consume", topic, "ok-js")
    assert done["event"] == "done", done
    assert done["values"] == [f"kafkajs-{i}" for i in range(N)], done
    for result in (run("produce", FORBIDDEN), run("consume", FORBIDDEN, "ok-js-2")):
        assert result["type"] == "TOPIC_AUTHORIZATION_FAILED", result
    # kafkajs logs FindCoordinator's GROUP_AUTHORIZATION_FAILED and reports that no
    # coordinator was found (it tries every broker and drops their errors).
    denied = run("consume", topic, "no-js")
    assert denied["name"] == "KafkaJSGroupCoordinatorNotFound", denied
    assert "GROUP_AUTHORIZATION_FAILED" in denied["logged"], denied


# --- refusals -------------------------------------------------------------------------------


def server_log(c: ProcCluster) -> str:
    return "\n".join((n.dir / "server.log").read_text() for n in c.nodes.values())


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "x")])
def test_bad_credentials_are_refused(cluster: ProcCluster, certs: Certs, user: str,
                                     password: str) -> None:
    errors: list[Any] = []
    producer = ck.Producer({**sasl(cluster, certs, user, password, "SCRAM-SHA-256"),
                            "error_cb": errors.append})
    deadline = time.monotonic() + 20
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        assert time.monotonic() < deadline, f"no authentication error: {errors}"
        producer.poll(0.2)
    del producer
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaAdminClient(bootstrap_servers=cluster.secure_bootstrap("SASL_SSL"),
                               security_protocol="SASL_SSL", ssl_cafile=str(certs.ca),
                               sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
                               sasl_plain_password=password, request_timeout_ms=5000,
                               api_version_auto_timeout_ms=5000)


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_plaintext_on_a_tls_port(cluster: ProcCluster, certs: Certs, listener: str) -> None:
    address = cluster.secure_bootstrap(listener).split(",")[0]
    host, port = address.split(":")
    frame = struct.pack(">hhih", 18, 0, 1, 4) + b"test"  # ApiVersions v0 in plaintext
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(struct.pack(">i", len(frame)) + frame)
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert len(data) < 8 or struct.unpack(">i", data[4:8])[0] != 1, data[:40]
    log = cluster.nodes[min(cluster.nodes)].dir / "server.log"  # the first address's node
    deadline = time.monotonic() + 15
    while f"on {listener} failed at once: [SSL: WRONG_VERSION_NUMBER]" not in log.read_text():
        assert time.monotonic() < deadline, "the refused TLS handshake is not in the log"
        time.sleep(0.2)
    conf = {**(sasl(cluster, certs, "alice") if listener == "SASL_SSL"
               else mtls(cluster, certs)), "bootstrap.servers": address}
    md = AdminClient(conf).list_topics(timeout=15)
    assert "granted-ck" in md.topics
