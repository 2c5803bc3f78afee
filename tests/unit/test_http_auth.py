"""HTTP admin authentication decisions (broker/admin/http_auth.py), pure parts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from broker.admin.http_auth import HttpAuthenticator, TokenFile
from broker.security.principal import KafkaPrincipal


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Store:
    """Credentials as (salt, password) pairs; counts the verifications (the costly part)."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[tuple[str, str], ...]] = {"alice": (("s1", "pw"),)}
        self.verifications = 0

    def credentials(self, user: str) -> tuple[tuple[str, str], ...]:
        return self.users.get(user, ())

    def verify(self, credential: tuple[str, str], password: str) -> bool:
        self.verifications += 1
        return credential[1] == password


def test_basic_accepts_the_password_caches_it_and_notices_a_changed_credential() -> None:
    store = Store()
    auth = HttpAuthenticator(["basic"], credentials=store.credentials, verify=store.verify)
    assert auth.authenticate(basic("alice", "pw")) == KafkaPrincipal("User", "alice")
    assert auth.authenticate(basic("alice", "pw")) == KafkaPrincipal("User", "alice")
    assert store.verifications == 1  # the second request was a cache hit
    assert auth.authenticate(basic("alice", "wrong")) is None
    assert auth.authenticate(basic("bob", "pw")) is None
    store.users["alice"] = (("s2", "new"),)  # password changed: the cached one is refused
    assert auth.authenticate(basic("alice", "pw")) is None
    assert auth.authenticate(basic("alice", "new")) == KafkaPrincipal("User", "alice")
    del store.users["alice"]  # user deleted
    assert auth.authenticate(basic("alice", "new")) is None


@pytest.mark.parametrize("header", [
    None, "", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b":pw").decode(), "Basic " + base64.b64encode(b"\xff:x").decode(),
    "Bearer anything", "Digest x",
])
def test_malformed_or_disabled_schemes_are_refused(header: str | None) -> None:
    store = Store()
    auth = HttpAuthenticator(["basic"], credentials=store.credentials, verify=store.verify)
    assert auth.authenticate(header) is None


def test_token_file_maps_tokens_to_principals_and_rejects_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("t1 User:ops  # comment\n\n# only a comment\nt2 Group:admins\n")
    tokens = TokenFile(path)
    tokens.load()
    auth = HttpAuthenticator(["bearer"], tokens)
    assert auth.authenticate("Bearer t1") == KafkaPrincipal("User", "ops")
    assert auth.authenticate("bearer   t2 ") == KafkaPrincipal("Group", "admins")
    assert auth.authenticate("Bearer t3") is None
    assert auth.authenticate(basic("alice", "pw")) is None  # basic not enabled
    for bad in ("t1\n", "t1 ops\n", "t1 User:ops extra\n"):
        path.write_text(bad)
        with pytest.raises(ValueError, match="line 1"):
            TokenFile(path).load()
