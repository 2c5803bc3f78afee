"""HTTPS for the HTTP admin API (``admin.listeners=https://host:port``, broker/admin/http.py) on
one real node, with certificates made by the openssl CLI (tests/helpers_tls.py).

The node serves ``http://`` and ``https://`` side by side; its key comes from the global
``ssl.keystore.*`` keys while ``listener.name.admin.ssl.client.auth=required`` and the admin
trust store are per-listener overrides (Kafka's key-by-key fallback), so only a client with a
certificate of the trusted CA gets through (mutual TLS). ``requests`` is the client: it checks
the server's certificate against the CA and host name; plaintext on the https port, no client
certificate and a certificate of another CA are refused. Without HTTP authentication methods a
request runs as its certificate's principal (``ssl.principal.mapping.rules``), so the
authorizer lets the super user ops write and refuses dev (403). An https listener without a key store
stops start-up naming the key.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers_tls import Certs, make_certs
from tools.proc_cluster import ProcCluster, free_ports

TIMEOUT_S = 30.0
REFUSED = (requests.exceptions.SSLError, requests.exceptions.ConnectionError)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certs, Certs]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    ours = make_certs(tmp_path_factory.mktemp("certs"), {"ops": "/O=Acme/CN=ops", "dev": "/O=Acme/CN=dev"})
    other = make_certs(tmp_path_factory.mktemp("other-ca"), {"ops": "/O=Acme/CN=ops"})
    return ours, other


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory,
         certs: tuple[Certs, Certs]) -> Iterator[tuple[ProcCluster, str, str]]:
    ours, _ = certs
    http_port, https_port = free_ports(2)
    c = ProcCluster(tmp_path_factory.mktemp("admin-https"), controllers=1, brokers=0,
                    combined=True, extra={
                        "admin.listeners": f"http://127.0.0.1:{http_port},"
                                           f"https://127.0.0.1:{https_port}",
                        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(ours.server),
                        "listener.name.admin.ssl.client.auth": "required",
                        "listener.name.admin.ssl.truststore.type": "PEM",
                        "listener.name.admin.ssl.truststore.location": str(ours.ca),
                        "ssl.principal.mapping.rules": "RULE:^CN=(.*?),O=.*$/$1/,DEFAULT",
                        "authorizer.class.name":
                            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                        "super.users": "User:ops;User:ANONYMOUS",
                        "allow.everyone.if.no.acl.found": "false"})
    c.start()
    try:
        yield c, f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}"
    finally:
        c.shutdown()


def test_mutual_tls_admin_api(node: tuple[ProcCluster, str, str],
                              certs: tuple[Certs, Certs]) -> None:
    c, http_url, https_url = node
    ours, other = certs
    client = tuple(map(str, ours.client("ops")))
    for host_url in (https_url, https_url.replace("127.0.0.1", "localhost")):
        resp = requests.get(host_url + "/v1/cluster", verify=str(ours.ca), cert=client,
                            timeout=TIMEOUT_S)
        assert resp.status_code == 200, resp.text
        assert resp.json()["cluster_id"] == c.cluster_id
    resp = requests.post(https_url + "/v1/topics", json={"name": "over-tls", "partitions": 2},
                         verify=str(ours.ca), cert=client, timeout=TIMEOUT_S)
    assert resp.status_code == 201, resp.text
    # dev's certificate gets through TLS but dev is no super user and has no ACL: 403 on a
    # write, reads are not checked.
    dev = tuple(map(str, ours.client("dev")))
    resp = requests.post(https_url + "/v1/topics", json={"name": "by-dev", "partitions": 1},
                         verify=str(ours.ca), cert=dev, timeout=TIMEOUT_S)
    assert (resp.status_code, resp.json()["error_code"]) == (
        403, "TOPIC_AUTHORIZATION_FAILED"), resp.text
    resp = requests.delete(https_url + "/v1/topics/over-tls", verify=str(ours.ca), cert=dev,
                           timeout=TIMEOUT_S)
    assert resp.status_code == 403, resp.text
    resp = requests.get(https_url + "/v1/topics/over-tls", verify=str(ours.ca), cert=dev,
                        timeout=TIMEOUT_S)
    assert resp.status_code == 200, resp.text
    # The plain http listener next to it still serves (same routes, same node).
    resp = requests.get(http_url + "/v1/topics/over-tls", timeout=TIMEOUT_S)
    assert resp.status_code == 200 and resp.json()["partitions_count"] == 2, resp.text
    # Refused: no client certificate, a certificate of another CA, plaintext on the TLS port,
    # and (client side) a server certificate the client does not trust.
    with pytest.raises(REFUSED):
        requests.get(https_url + "/v1/cluster", verify=str(ours.ca), timeout=TIMEOUT_S)
    with pytest.raises(REFUSED):
        requests.get(https_url + "/v1/cluster", verify=str(ours.ca),
                     cert=tuple(map(str, other.client("ops"))), timeout=TIMEOUT_S)
    with pytest.raises(REFUSED):
        requests.get(https_url.replace("https:", "http:") + "/v1/cluster", timeout=TIMEOUT_S)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_url + "/v1/cluster", verify=str(other.ca), cert=client,
                     timeout=TIMEOUT_S)


def test_https_without_a_key_store_stops_start_up(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    c = ProcCluster(tmp_path, controllers=1, brokers=0, combined=True,
                    extra={"admin.listeners": f"https://127.0.0.1:{port}"})
    n = c.nodes[c.controller_ids[0]]
    try:
        n.start()
        assert n.proc is not None
        n.proc.wait(timeout=60)
        assert n.proc.returncode != 0
        out = n.output()
        assert "admin.listeners" in out and "ssl.keystore.location" in out, out[-2000:]
    finally:
        c.shutdown()
