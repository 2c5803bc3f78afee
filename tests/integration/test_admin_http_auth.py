"""Authentication of the HTTP admin API (broker/admin/http_auth.py) on a real node process.

One combined node with ``admin.authentication.methods=bearer`` and a tokens file: requests
without credentials, with a wrong token or an unknown scheme get 401 and nothing else (not even
whether the route exists); a listed token is served as its principal; the file is re-read when
it changes (rotation without restart); the liveness probe stays open; a tokens file that does
not parse stops start-up naming the key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tools.proc_cluster import ProcCluster

TIMEOUT_S = 30.0


def get(url: str, token: str | None = None, auth: str | None = None) -> requests.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if auth is not None:
        headers["Authorization"] = auth
    return requests.get(url, headers=headers, timeout=TIMEOUT_S)


def assert_401(resp: requests.Response) -> None:
    assert resp.status_code == 401, f"{resp.status_code}: {resp.text}"
    assert resp.json() == {"error_code": "UNAUTHENTICATED", "message": "authentication required"}
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcCluster, Path]]:
    root = tmp_path_factory.mktemp("admin-auth")
    tokens = root / "tokens"
    tokens.write_text("# admin API tokens\nfirst-token User:ops\n")
    c = ProcCluster(root, controllers=1, brokers=0, combined=True, admin=True,
                    extra={"admin.authentication.methods": "bearer",
                           "admin.bearer.tokens.file": str(tokens)})
    c.start()
    try:
        yield c, tokens
    finally:
        c.shutdown()


def wait_status(url: str, token: str, status: int) -> requests.Response:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        resp = get(url, token)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def test_requests_without_valid_credentials_get_401_and_nothing_else(
        node: tuple[ProcCluster, Path]) -> None:
    c, _ = node
    base = c.nodes[c.controller_ids[0]].admin_url
    for path in ("/v1/cluster", "/v1/topics", "/v1/no/such/route", "/v1/status/ready"):
        assert_401(get(base + path))
        assert_401(get(base + path, "wrong-token"))
        assert_401(get(base + path, auth="Basic b3BzOnNlY3JldA=="))  # basic is not enabled
    assert_401(requests.post(base + "/v1/topics", json={"name": "t", "partitions": 1},
                             timeout=TIMEOUT_S))
    # The liveness probe and the web console's static files stay open.
    assert get(base + "/v1/status/live").status_code == 200
    assert get(base + "/ui/").status_code == 200
    assert get(base + "/ui/static/app.js").status_code == 200
    assert_401(get(base + "/uix"))


def test_a_listed_token_is_served_and_tokens_rotate_without_restart(
        node: tuple[ProcCluster, Path]) -> None:
    c, tokens = node
    base = c.nodes[c.controller_ids[0]].admin_url
    resp = wait_status(base + "/v1/cluster", "first-token", 200)
    assert resp.status_code == 200, resp.text
    assert resp.json()["cluster_id"] == c.cluster_id
    # Rotation: the old token stops working and the new one works, with no restart.
    tokens.write_text("second-token User:ops\n")
    assert wait_status(base + "/v1/cluster", "first-token", 401).status_code == 401
    assert wait_status(base + "/v1/cluster", "second-token", 200).status_code == 200
    # A broken file at run time keeps the tokens read last (logged), never opens the door.
    tokens.write_text("second-token\n")
    assert get(base + "/v1/cluster", "second-token").status_code == 200
    assert_401(get(base + "/v1/cluster"))


def test_a_tokens_file_that_does_not_parse_stops_start_up(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("only-a-token\n")
    c = ProcCluster(tmp_path, controllers=1, brokers=0, combined=True, admin=True,
                    extra={"admin.authentication.methods": "bearer",
                           "admin.bearer.tokens.file": str(tokens)})
    n = c.nodes[c.controller_ids[0]]
    try:
        n.start()
        assert n.proc is not None
        n.proc.wait(timeout=60)
        assert n.proc.returncode != 0
        out = n.output()
        assert "admin.bearer.tokens.file" in out and "line 1" in out, out[-2000:]
    finally:
        c.shutdown()
