"""HTTP basic authentication of the admin API against the SCRAM users of the metadata log
(broker/admin/http.py wires broker/admin/http_auth.py to the node's image), on one real node.

The node is formatted with ``kafka-storage format --add-scram`` (alice with SCRAM-SHA-256, admin
with SCRAM-SHA-512), runs ``admin.authentication.methods=basic`` and the StandardAuthorizer
with ``super.users=User:admin;User:ANONYMOUS`` (ANONYMOUS: the PLAINTEXT listener the CLI tools
and the node itself use) and no ACLs. The right password is served, a wrong one or an unknown
user gets 401; a user added later with ``kafka-configs`` logs in without a restart and a
deleted credential stops working; writes are authorized for the authenticated user (403 for
alice, a success for admin). Requests go through ``requests``, a real HTTP client.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tools.proc_cluster import REPO, ProcCluster, env

TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(
        tmp_path_factory.mktemp("admin-basic"), controllers=1, brokers=0, combined=True,
        admin=True,
        format_args=["--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                     "--add-scram",
                     "SCRAM-SHA-512=[name=admin,password=admin-secret,iterations=8192]"],
        extra={"admin.authentication.methods": "basic",
               "authorizer.class.name":
                   "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
               "super.users": "User:admin;User:ANONYMOUS",
               "allow.everyone.if.no.acl.found": "false"})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def url(c: ProcCluster, path: str) -> str:
    return c.nodes[c.controller_ids[0]].admin_url + path


def get(c: ProcCluster, path: str, user: str, password: str) -> requests.Response:
    return requests.get(url(c, path), auth=(user, password), timeout=TIMEOUT_S)


def wait_status(c: ProcCluster, user: str, password: str, status: int) -> requests.Response:
    """GET /v1/cluster as ``user`` until it answers ``status`` (the image catches up with a
    credential change within the deadline) or the deadline passes."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        resp = get(c, "/v1/cluster", user, password)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def users_tool(c: ProcCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.configs", "--bootstrap-server",
                           c.bootstrap_servers, "--entity-type", "users", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=env(),
                          check=False)


def assert_401(resp: requests.Response) -> None:
    assert resp.status_code == 401, f"{resp.status_code}: {resp.text}"
    assert resp.json() == {"error_code": "UNAUTHENTICATED", "message": "authentication required"}
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="admin", charset="UTF-8"'


def test_scram_users_log_in_with_their_password_only(node: ProcCluster) -> None:
    # Both mechanisms' credentials count: alice has SCRAM-SHA-256, admin SCRAM-SHA-512.
    for user, password in (("alice", "alice-secret"), ("admin", "admin-secret")):
        resp = wait_status(node, user, password, 200)
        assert resp.status_code == 200, resp.text
        assert resp.json()["cluster_id"] == node.cluster_id
        # Again: served from the verified-credential cache, same answer.
        assert get(node, "/v1/topics", user, password).status_code == 200
    assert_401(get(node, "/v1/cluster", "alice", "wrong"))
    assert_401(get(node, "/v1/cluster", "alice", "admin-secret"))  # another user's password
    assert_401(get(node, "/v1/cluster", "mallory", "alice-secret"))
    assert_401(get(node, "/v1/cluster", "", "alice-secret"))
    assert_401(requests.get(url(node, "/v1/cluster"), timeout=TIMEOUT_S))
    assert_401(requests.get(url(node, "/v1/cluster"), timeout=TIMEOUT_S,
                            headers={"Authorization": "Basic !!not-base64!!"}))
    assert_401(requests.get(url(node, "/v1/cluster"), timeout=TIMEOUT_S,
                            headers={"Authorization": "Bearer alice-secret"}))
    # The right password after a wrong one still works (a failure does not poison the cache).
    assert get(node, "/v1/cluster", "alice", "alice-secret").status_code == 200
    assert requests.get(url(node, "/v1/status/live"), timeout=TIMEOUT_S).status_code == 200


def test_users_created_altered_and_deleted_with_kafka_configs_count_without_restart(
        node: ProcCluster) -> None:
    assert_401(get(node, "/v1/cluster", "dave", "dave-secret"))
    out = users_tool(node, "--alter", "--entity-name", "dave", "--add-config",
                     "SCRAM-SHA-512=[iterations=4096,password=dave-secret]")
    assert out.returncode == 0, out.stderr
    assert wait_status(node, "dave", "dave-secret", 200).status_code == 200
    assert_401(get(node, "/v1/cluster", "dave", "other-secret"))
    # A second mechanism with another password: either credential logs in.
    out = users_tool(node, "--alter", "--entity-name", "dave", "--add-config",
                     "SCRAM-SHA-256=[password=dave-other]")
    assert out.returncode == 0, out.stderr
    assert wait_status(node, "dave", "dave-other", 200).status_code == 200
    assert get(node, "/v1/cluster", "dave", "dave-secret").status_code == 200
    # A changed password: the old one (cached as verified) stops working.
    out = users_tool(node, "--alter", "--entity-name", "dave", "--add-config",
                     "SCRAM-SHA-512=[password=dave-new]")
    assert out.returncode == 0, out.stderr
    assert wait_status(node, "dave", "dave-new", 200).status_code == 200
    assert_401(get(node, "/v1/cluster", "dave", "dave-secret"))
    # Deleted: each credential stops working once its record is in the image.
    out = users_tool(node, "--alter", "--entity-name", "dave", "--delete-config",
                     "SCRAM-SHA-512,SCRAM-SHA-256")
    assert out.returncode == 0, out.stderr
    assert_401(wait_status(node, "dave", "dave-new", 401))
    assert_401(get(node, "/v1/cluster", "dave", "dave-other"))


def post_topic(node: ProcCluster, user: str, password: str, name: str) -> tuple[int, Any]:
    resp = requests.post(url(node, "/v1/topics"), auth=(user, password), timeout=TIMEOUT_S,
                         json={"name": name, "partitions": 1, "replication_factor": 1})
    return resp.status_code, resp.json()


def test_writes_are_authorized_for_the_authenticated_user(node: ProcCluster) -> None:
    name = f"basic-{uuid.uuid4().hex[:8]}"
    status, body = post_topic(node, "alice", "alice-secret", name)
    assert (status, body["error_code"]) == (403, "TOPIC_AUTHORIZATION_FAILED"), body
    resp = requests.delete(url(node, f"/v1/topics/{name}"), auth=("alice", "alice-secret"),
                           timeout=TIMEOUT_S)
    assert resp.status_code == 403, resp.text
    status, body = post_topic(node, "admin", "admin-secret", name)
    assert status == 201, body
    resp = get(node, f"/v1/topics/{name}", "alice", "alice-secret")  # reads are not checked
    assert resp.status_code == 200, resp.text
    resp = requests.delete(url(node, f"/v1/topics/{name}"), auth=("admin", "admin-secret"),
                           timeout=TIMEOUT_S)
    assert resp.status_code < 300, resp.text
    # A wrong password never reaches the authorizer: 401, not 403.
    status, body = post_topic(node, "admin", "alice-secret", name)
    assert status == 401, body
