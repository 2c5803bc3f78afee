"""TLS and SASL through real clients on one node with four client listeners: SSL with client
certificates required (the principal mapped by ``ssl.principal.mapping.rules``), SASL_SSL with
SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, and SASL_PLAINTEXT with PLAIN. SCRAM credentials come
from ``kafka-storage format --add-scram`` (the metadata log); PLAIN users from the listener's
JAAS configuration. Certificates are made with the openssl CLI (tests/helpers_tls.py).

kafka-python, aiokafka, confluent-kafka, kcat and kafkajs produce and consume; a wrong password,
an unknown user, a client without a certificate and plaintext on a TLS port are refused; an API
other than ApiVersions/SaslHandshake/SaslAuthenticate before authentication closes the
connection.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers_kafkajs import CLIENT_DIR, ENV, why_not_installed
from tests.helpers_tls import Certs, make_certs
from tools.proc_cluster import REPO, ProcCluster, env

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient

JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              'user_admin="admin-secret" user_carol="carol-secret" user_rita="rita-secret";')
USERS = {"SCRAM-SHA-256": ("alice", "alice-secret"), "SCRAM-SHA-512": ("bob", "bob-secret"),
         "PLAIN": ("carol", "carol-secret")}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"),
                      {"alice": "/O=Acme/OU=eng/CN=alice", "other": "/O=Other/CN=Bob Smith"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[ProcCluster]:
    """Three nodes whose quorum talks over SASL_SSL with PLAIN (user "controller") and client
    certificates required, and whose brokers replicate over SASL_SSL with SCRAM-SHA-512
    (user "broker")."""
    c = ProcCluster(
        tmp_path_factory.mktemp("security"), controllers=3, combined=True,
        secure={"SSL": "SSL", "SASL_SSL": "SASL_SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT"},
        format_args=["--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                     "--add-scram",
                     "SCRAM-SHA-512=[name=bob,password=bob-secret,iterations=8192]",
                     "--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret]"],
        extra={
            "listener.security.protocol.map": "CONTROLLER:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                                              "SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                'org.apache.kafka.common.security.scram.ScramLoginModule required '
                'username="broker" password="broker-secret";',
            "listener.name.controller.ssl.client.auth": "required",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                'org.apache.kafka.common.security.plain.PlainLoginModule required '
                'username="controller" password="controller-secret" '
                'user_controller="controller-secret";',
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
            "listener.name.ssl.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS_PLAIN,
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS_PLAIN,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.connections.max.reauth.ms": "2000",
            "group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3",
            "default.replication.factor": "3", "min.insync.replicas": "2",
        })
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def server_log(c: ProcCluster) -> str:
    return "\n".join((n.dir / "server.log").read_text() for n in c.nodes.values())


def wait_log(c: ProcCluster, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server_log(c):
        assert time.monotonic() < deadline, f"{text!r} not in the server log"
        time.sleep(0.2)


def take(consumer: Any, n: int) -> list[bytes]:
    """The first ``n`` values a kafka-python consumer yields (its consumer_timeout_ms bounds
    the wait)."""
    got: list[bytes] = []
    for m in consumer:
        got.append(m.value)
        if len(got) == n:
            break
    return got


def topic() -> str:
    return f"sec-{uuid.uuid4().hex[:8]}"


def ck_sasl(c: ProcCluster, certs: Certs, mechanism: str, user: str, password: str) -> dict:
    return {"bootstrap.servers": c.secure_bootstrap("SASL_SSL"),
            "security.protocol": "SASL_SSL", "ssl.ca.location": str(certs.ca),
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def ck_produce(conf: dict, name: str, n: int) -> None:
    p = ck.Producer({**conf, "acks": "all"})
    for i in range(n):
        p.produce(name, f"v{i}".encode())
    assert p.flush(30) == 0


def ck_consume(conf: dict, name: str, n: int, timeout: float = 30.0) -> list[bytes]:
    cons = ck.Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                        "auto.offset.reset": "earliest"})
    cons.subscribe([name])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        cons.close()
    return got


def test_mtls_principal_from_the_certificate(cluster: ProcCluster, certs: Certs) -> None:
    """confluent-kafka and kafka-python with client certificates; the mapping rule gives
    User:alice@eng, and a name no RULE matches falls through to DEFAULT (the whole DN)."""
    from kafka import KafkaConsumer
    crt, key = certs.client("alice")
    conf = {"bootstrap.servers": cluster.secure_bootstrap("SSL"), "security.protocol": "SSL",
            "ssl.ca.location": str(certs.ca), "ssl.certificate.location": str(crt),
            "ssl.key.location": str(key)}
    name = topic()
    ck_produce(conf, name, 10)
    consumer = KafkaConsumer(name, bootstrap_servers=cluster.secure_bootstrap("SSL"),
                             security_protocol="SSL", ssl_cafile=str(certs.ca),
                             ssl_certfile=str(crt), ssl_keyfile=str(key),
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    try:
        got = take(consumer, 10)
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(10)]
    wait_log(cluster, "on SSL authenticated as User:alice@eng (client certificate)")
    crt2, key2 = certs.client("other")
    md = AdminClient({**conf, "ssl.certificate.location": str(crt2),
                               "ssl.key.location": str(key2)}).list_topics(timeout=15)
    assert name in md.topics
    wait_log(cluster, "on SSL authenticated as User:CN=Bob Smith,O=Other (client certificate)")


def test_tls_refuses_plaintext_and_missing_client_certificates(cluster: ProcCluster,
                                                               certs: Certs) -> None:
    host, port = cluster.secure_bootstrap("SSL").split(",")[0].split(":")
    # ApiVersions v0 in plaintext: the TLS port answers no Kafka response.
    frame = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert len(data) < 8 or struct.unpack(">i", data[4:8])[0] != 1, \
        f"a Kafka response came back in plaintext: {data[:40]!r}"
    # TLS without a client certificate on a listener with ssl.client.auth=required.
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    answer = b""
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(struct.pack(">i", len(frame)) + frame)
            answer = tls.recv(4096)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass  # TLS 1.3 reports the refused certificate after the client's handshake
    assert answer == b"", f"served without a client certificate: {answer[:40]!r}"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_sasl_ssl(cluster: ProcCluster, certs: Certs, mechanism: str) -> None:
    user, password = USERS[mechanism]
    conf = ck_sasl(cluster, certs, mechanism, user, password)
    name = topic()
    ck_produce(conf, name, 5)
    assert ck_consume(conf, name, 5) == [f"v{i}".encode() for i in range(5)]
    wait_log(cluster, f"authenticated as User:{user} (SASL {mechanism})")


def test_kafka_python_and_aiokafka_scram(cluster: ProcCluster, certs: Certs) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    from kafka import KafkaConsumer, KafkaProducer
    bs = cluster.secure_bootstrap("SASL_SSL")
    name = topic()
    producer = KafkaProducer(bootstrap_servers=bs, security_protocol="SASL_SSL",
                             ssl_cafile=str(certs.ca), sasl_mechanism="SCRAM-SHA-512",
                             sasl_plain_username="bob", sasl_plain_password="bob-secret",
                             acks="all")
    for i in range(5):
        producer.send(name, f"kp{i}".encode())
    producer.flush(30)
    producer.close()

    async def aio() -> list[bytes]:
        ctx = create_ssl_context(cafile=str(certs.ca))
        sasl = {"security_protocol": "SASL_SSL", "ssl_context": ctx,
                "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "alice",
                "sasl_plain_password": "alice-secret"}
        p = AIOKafkaProducer(bootstrap_servers=bs, acks="all", **sasl)
        await p.start()
        try:
            for i in range(5):
                await p.send_and_wait(name, f"aio{i}".encode())
        finally:
            await p.stop()
        c = AIOKafkaConsumer(name, bootstrap_servers=bs, auto_offset_reset="earliest", **sasl)
        await c.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < 10:
                    batch = await c.getmany(timeout_ms=500)
                    got += [m.value for msgs in batch.values() for m in msgs]
        finally:
            await c.stop()
        return got

    expected = [f"kp{i}".encode() for i in range(5)] + [f"aio{i}".encode() for i in range(5)]
    assert asyncio.run(aio()) == expected
    consumer = KafkaConsumer(name, bootstrap_servers=bs, security_protocol="SASL_SSL",
                             ssl_cafile=str(certs.ca), sasl_mechanism="SCRAM-SHA-256",
                             sasl_plain_username="alice", sasl_plain_password="alice-secret",
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    try:
        assert take(consumer, 10) == expected
    finally:
        consumer.close()


def test_kafka_python_sasl_plaintext_plain(cluster: ProcCluster) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    bs = cluster.secure_bootstrap("SASL_PLAINTEXT")
    name = topic()
    producer = KafkaProducer(bootstrap_servers=bs, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="admin",
                             sasl_plain_password="admin-secret")
    producer.send(name, b"plain")
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(name, bootstrap_servers=bs, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="carol",
                             sasl_plain_password="carol-secret", auto_offset_reset="earliest",
                             consumer_timeout_ms=15000)
    try:
        assert take(consumer, 1) == [b"plain"]
    finally:
        consumer.close()
    wait_log(cluster, "on SASL_PLAINTEXT authenticated as User:carol (SASL PLAIN)")


@pytest.mark.parametrize(("mechanism", "user", "password"), [
    ("SCRAM-SHA-256", "alice", "wrong"), ("SCRAM-SHA-256", "nobody", "x"),
    ("SCRAM-SHA-512", "alice", "alice-secret"),  # alice has no SHA-512 credential
    ("PLAIN", "carol", "wrong")])
def test_bad_credentials_are_refused(cluster: ProcCluster, certs: Certs, mechanism: str,
                                     user: str, password: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    errors: list[ck.KafkaError] = []
    producer = ck.Producer({**ck_sasl(cluster, certs, mechanism, user, password),
                            "error_cb": errors.append})
    deadline = time.monotonic() + 20
    while not any(e.code() == ck.KafkaError._AUTHENTICATION for e in errors):
        assert time.monotonic() < deadline, f"no authentication error: {errors}"
        producer.poll(0.2)
    assert "Authentication failed" in next(
        e.str() for e in errors if e.code() == ck.KafkaError._AUTHENTICATION)
    del producer
    if mechanism == "SCRAM-SHA-256" and user == "alice":
        with pytest.raises(KafkaError):
            KafkaAdminClient(bootstrap_servers=cluster.secure_bootstrap("SASL_SSL"),
                             security_protocol="SASL_SSL", ssl_cafile=str(certs.ca),
                             sasl_mechanism=mechanism, sasl_plain_username=user,
                             sasl_plain_password=password, request_timeout_ms=5000,
                             api_version_auto_timeout_ms=5000)
    assert "Failed authentication with" in server_log(cluster)


def test_requests_before_authentication_close_the_connection(cluster: ProcCluster) -> None:
    """On a SASL listener ApiVersions is answered, a Metadata request closes the connection."""
    host, port = cluster.secure_bootstrap("SASL_PLAINTEXT").split(",")[0].split(":")

    def request(api_key: int, version: int, cid: int, body: bytes) -> bytes:
        frame = struct.pack(">hhih", api_key, version, cid, 4) + b"test" + body
        return struct.pack(">i", len(frame)) + frame

    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request(18, 0, 1, b""))
        size = struct.unpack(">i", s.recv(4))[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        assert struct.unpack(">i", body[:4])[0] == 1 and body[4:6] == b"\x00\x00"
        s.sendall(request(3, 1, 2, struct.pack(">i", -1)))  # Metadata v1, all topics
        assert s.recv(4096) == b"", "Metadata was answered before authentication"


def test_sasl_handshake_v0_with_bare_tokens(cluster: ProcCluster) -> None:
    """SaslHandshake v0: the PLAIN token follows as a bare size-prefixed frame, answered by a
    bare (empty) frame; then Kafka requests are served. A wrong password closes."""
    host, port = cluster.secure_bootstrap("SASL_PLAINTEXT").split(",")[0].split(":")

    def request(api_key: int, version: int, cid: int, body: bytes) -> bytes:
        frame = struct.pack(">hhih", api_key, version, cid, 4) + b"test" + body
        return struct.pack(">i", len(frame)) + frame

    def read_frame(s: socket.socket) -> bytes:
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            assert chunk, "connection closed"
            head += chunk
        size = struct.unpack(">i", head)[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        return body

    for password, ok in (("carol-secret", True), ("wrong", False)):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request(17, 0, 1, struct.pack(">h", 5) + b"PLAIN"))
            hs = read_frame(s)
            assert struct.unpack(">ih", hs[:6]) == (1, 0)
            token = b"\0carol\0" + password.encode()
            s.sendall(struct.pack(">i", len(token)) + token)
            if not ok:
                assert s.recv(4096) == b""
                continue
            assert read_frame(s) == b""
            s.sendall(request(3, 1, 2, struct.pack(">i", 0)))  # Metadata v1, no topics
            assert struct.unpack(">i", read_frame(s)[:4])[0] == 2


def test_kcat_scram_over_tls(cluster: ProcCluster, certs: Certs) -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed")
    name = topic()
    base = ["kcat", "-b", cluster.secure_bootstrap("SASL_SSL"), "-X",
            "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X",
            "sasl.username=bob", "-X", "sasl.password=bob-secret", "-X",
            f"ssl.ca.location={certs.ca}", "-t", name]
    subprocess.run([*base, "-P"], input="k1\nk2\nk3\n", text=True, check=True, timeout=60,
                   capture_output=True)
    out = subprocess.run([*base, "-C", "-o", "beginning", "-e", "-q"], text=True, check=True,
                         timeout=60, capture_output=True)
    assert out.stdout.split() == ["k1", "k2", "k3"]


@pytest.mark.skipif(why_not_installed() is not None, reason=str(why_not_installed()))
def test_kafkajs_scram_over_tls(cluster: ProcCluster, certs: Certs) -> None:
    name = topic()

    def run(sasl: dict, retries: int = 5) -> dict:
        spec = {"brokers": cluster.secure_bootstrap("SASL_SSL").split(","), "ca": str(certs.ca),
                "sasl": sasl, "topic": name, "n": 4, "retries": retries}
        out = subprocess.run(["node", "secure.js", json.dumps(spec)], cwd=CLIENT_DIR, env=ENV,
                             capture_output=True, text=True, timeout=120, check=False)
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        assert lines, f"kafkajs printed nothing: {out.stderr[-2000:]}"
        return lines[-1]

    done = run({"mechanism": "scram-sha-256", "username": "alice", "password": "alice-secret"})
    assert done["event"] == "done", done
    assert sum(int(p["high"]) for p in done["offsets"]) == 4
    refused = run({"mechanism": "scram-sha-512", "username": "bob", "password": "nope"}, 0)
    assert refused["event"] == "error" and "SASL" in refused["message"], refused
    conf = ck_sasl(cluster, certs, "SCRAM-SHA-512", "bob", "bob-secret")
    assert ck_consume(conf, name, 4) == [f"kafkajs-{i}".encode() for i in range(4)]


def test_pem_text_keys_and_path_values(tmp_path: Path, certs: Certs) -> None:
    """ssl.keystore.certificate.chain / ssl.keystore.key / ssl.truststore.certificates as PEM
    text build the same contexts as the files."""
    from broker.security.tls import client_context, server_context
    server = server_context({"ssl.keystore.type": "PEM",
                             "ssl.keystore.certificate.chain": certs.server_cert.read_text(),
                             "ssl.keystore.key": certs.server_key.read_text(),
                             "ssl.truststore.type": "PEM",
                             "ssl.truststore.certificates": certs.ca.read_text(),
                             "ssl.client.auth": "required"})
    assert server.verify_mode == ssl.CERT_REQUIRED
    client = client_context({"ssl.truststore.type": "PEM",
                             "ssl.truststore.location": str(certs.ca)})
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED


def test_quorum_and_replication_over_tls_and_sasl(cluster: ProcCluster, certs: Certs) -> None:
    """The controllers' Raft and the brokers' registrations ran over SASL_SSL (PLAIN, with
    client certificates), replication over SASL_SSL as User:broker: an acks=all write with
    min.insync.replicas=2 on three replicas completes and the ISR holds all three."""
    wait_log(cluster, "on CONTROLLER authenticated as User:controller (SASL PLAIN)")
    conf = ck_sasl(cluster, certs, "SCRAM-SHA-256", "alice", "alice-secret")
    name = topic()
    ck_produce(conf, name, 5)
    wait_log(cluster, "on SASL_SSL authenticated as User:broker (SASL SCRAM-SHA-512)")
    deadline = time.monotonic() + 30
    while True:
        md = AdminClient(conf).list_topics(name, timeout=10)
        [p] = md.topics[name].partitions.values()
        if len(p.isrs) == 3:
            break
        assert time.monotonic() < deadline, f"ISR {p.isrs}"
        time.sleep(0.5)


def test_cli_tools_with_command_config(cluster: ProcCluster, certs: Certs,
                                       tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text(
        "security.protocol=SASL_SSL\n"
        f"ssl.truststore.type=PEM\nssl.truststore.location={certs.ca}\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="bob" password="bob-secret";\n')
    name = topic()
    base = [sys.executable, "-m", "tools.topics", "--bootstrap-server",
            cluster.secure_bootstrap("SASL_SSL"), "--command-config", str(config)]
    subprocess.run([*base, "--create", "--topic", name, "--partitions", "2"], check=True,
                   timeout=60, capture_output=True, cwd=REPO, env=env())
    out = subprocess.run([*base, "--list"], check=True, timeout=60, capture_output=True,
                         text=True, cwd=REPO, env=env())
    assert name in out.stdout.split()
    bs = cluster.secure_bootstrap("SASL_SSL")
    subprocess.run([sys.executable, "-m", "tools.console_producer", "--bootstrap-server", bs,
                    "--topic", name, "--producer.config", str(config)], input="c1\nc2\n",
                   text=True, check=True, timeout=60, capture_output=True, cwd=REPO, env=env())
    out = subprocess.run([sys.executable, "-m", "tools.console_consumer", "--bootstrap-server",
                          bs, "--topic", name, "--consumer.config", str(config),
                          "--from-beginning", "--max-messages", "2", "--timeout-ms", "20000"],
                         text=True, check=True, timeout=60, capture_output=True, cwd=REPO,
                         env=env())
    assert sorted(out.stdout.split()) == ["c1", "c2"]
    config.write_text(config.read_text().replace("bob-secret", "wrong"))
    bad = subprocess.run([*base, "--list"], check=False, timeout=60, capture_output=True,
                         text=True,
                         cwd=REPO, env=env())
    assert bad.returncode == 1 and "authentication" in bad.stderr.lower(), bad.stderr


def test_scram_credentials_through_kafka_configs_and_the_admin_api(
        cluster: ProcCluster, certs: Certs, tmp_path: Path) -> None:
    """kafka-configs adds a credential (AlterUserScramCredentials, forwarded to the controller,
    replayed by every node), confluent-kafka's admin client describes and alters them, and
    logins follow: a new user can log in, a deleted credential cannot."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )
    config = tmp_path / "client.properties"
    config.write_text(
        f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={certs.ca}\n"
        f"ssl.keystore.type=PEM\nssl.keystore.location={certs.keystore('alice')}\n")
    base = [sys.executable, "-m", "tools.configs", "--bootstrap-server",
            cluster.secure_bootstrap("SSL"), "--command-config", str(config),
            "--entity-type", "users"]
    out = subprocess.run([*base, "--alter", "--entity-name", "dave", "--add-config",
                          "SCRAM-SHA-512=[iterations=8192,password=dave-secret]"],
                         check=True, timeout=60, capture_output=True, text=True, cwd=REPO,
                         env=env())
    assert "Completed updating config for user dave." in out.stdout
    out = subprocess.run([*base, "--describe", "--entity-name", "dave"], check=True,
                         timeout=60, capture_output=True, text=True, cwd=REPO, env=env())
    assert "user-principal 'dave' are SCRAM-SHA-512=iterations=8192" in out.stdout
    conf = ck_sasl(cluster, certs, "SCRAM-SHA-512", "dave", "dave-secret")
    deadline = time.monotonic() + 30
    while True:  # every broker replays the record; any may be asked first
        try:
            AdminClient(conf).list_topics(timeout=5)
            break
        except ck.KafkaException:
            assert time.monotonic() < deadline, "dave cannot log in"
    admin = AdminClient(ck_sasl(cluster, certs, "SCRAM-SHA-256", "alice", "alice-secret"))
    described = admin.describe_user_scram_credentials(["alice", "dave"])
    infos = {u: f.result() for u, f in described.items()}
    assert [(i.mechanism, i.iterations) for i in infos["dave"].scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_512, 8192)]
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("erin", ScramCredentialInfo(
            ScramMechanism.SCRAM_SHA_256, 4096), b"erin-secret"),
        UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512)])
    for f in futures.values():
        f.result()
    missing = admin.alter_user_scram_credentials([
        UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)])
    with pytest.raises(ck.KafkaException, match="does not exist"):
        missing["nobody"].result()
    ck_produce(ck_sasl(cluster, certs, "SCRAM-SHA-256", "erin", "erin-secret"), topic(), 1)
    bad = subprocess.run([*base, "--describe", "--entity-name", "dave"], check=False,
                         timeout=60, capture_output=True, text=True, cwd=REPO, env=env())
    assert bad.returncode == 1 and "ResourceNotFound" in bad.stderr, bad.stderr


def test_session_lifetime_and_reauthentication(cluster: ProcCluster) -> None:
    """KIP-368 with connections.max.reauth.ms=2000 on SASL_PLAINTEXT: SaslAuthenticate tells
    the lifetime; a client that re-authenticates on the same connection keeps it, one that
    does not is disconnected on its next request after the lifetime."""
    from broker.client import KafkaConnection, KafkaConnectionError
    from broker.client.security import ClientSecurity, sasl_login
    from broker.protocol.api_keys import ApiKey
    from broker.protocol.messages import metadata, sasl_authenticate

    security = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "carol", "carol-secret")
    host, port = cluster.secure_bootstrap("SASL_PLAINTEXT").split(",")[0].split(":")
    md = metadata.REQUEST.cls(topics=None)

    async def run() -> None:
        conn = await KafkaConnection.connect(host, int(port), security=security)
        try:
            await conn.send(ApiKey.METADATA, md, timeout_s=10)
            await asyncio.sleep(2.5)
            await sasl_login(conn, security, 10)  # re-authentication, same connection
            await conn.send(ApiKey.METADATA, md, timeout_s=10)
            await asyncio.sleep(2.5)
            with pytest.raises(KafkaConnectionError):
                await conn.send(ApiKey.METADATA, md, timeout_s=10)
        finally:
            await conn.close()
        conn = await KafkaConnection.connect(host, int(port))
        try:
            await conn.send(ApiKey.SASL_HANDSHAKE, sasl_handshake_v1("PLAIN"), 1, timeout_s=10)
            resp = await conn.send(ApiKey.SASL_AUTHENTICATE, sasl_authenticate.REQUEST.cls(
                auth_bytes=b"\0carol\0carol-secret"), 1, timeout_s=10)
            assert resp.error_code == 0 and resp.session_lifetime_ms == 2000
        finally:
            await conn.close()

    asyncio.run(run())


def sasl_handshake_v1(mechanism: str) -> Any:
    from broker.protocol.messages import sasl_handshake
    return sasl_handshake.REQUEST.cls(mechanism=mechanism)


def test_librdkafka_reauthenticates_on_the_same_connection(cluster: ProcCluster) -> None:
    """confluent-kafka with connections.max.reauth.ms=2000 re-authenticates (KIP-368) on its
    connections and keeps producing over several session lifetimes without reconnecting."""
    import logging

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    lines = Lines()
    log = logging.getLogger("librdkafka-reauth")
    log.addHandler(lines)
    log.setLevel(logging.DEBUG)
    producer = ck.Producer({"bootstrap.servers": cluster.secure_bootstrap("SASL_PLAINTEXT"),
                            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                            "sasl.username": "rita", "sasl.password": "rita-secret",
                            "debug": "security"}, logger=log)
    name = topic()
    failed: list[Any] = []
    for _ in range(12):
        producer.produce(name, b"r", on_delivery=lambda e, _m: failed.append(e) if e else None)
        assert producer.flush(15) == 0
        time.sleep(0.5)
    producer.poll(0)
    assert not failed
    assert sum("Auth in state REAUTH" in x for x in lines.lines) >= 2, lines.lines[-20:]
    # One login per connection (bootstrap and brokers), not one per session lifetime.
    logins = server_log(cluster).count("on SASL_PLAINTEXT authenticated as User:rita")
    assert 1 <= logins <= 4, logins
