"""Who is calling the HTTP admin API: authentication of its requests.

``admin.authentication.methods`` (a list; empty, the default, means no authentication and every
request runs as ``User:ANONYMOUS``, as a PLAINTEXT Kafka listener does) names what a request may
present in its ``Authorization`` header:

- ``basic``: ``Basic base64(user:password)``, checked against the user's SCRAM credentials in
  the metadata log (the same users Kafka clients authenticate as over SASL/SCRAM); the request
  runs as ``User:<user>``. A verified (user, password) is remembered with the credential it
  matched, so the same header again costs a lookup, not a key derivation, for as long as that
  credential is still the user's (a changed or deleted credential is verified again).
- ``bearer``: ``Bearer <token>``, a token listed in ``admin.bearer.tokens.file``: one
  ``<token> <principal>`` per line (``#`` starts a comment), e.g. ``s3cr3t User:ops``. The file
  is read again when it changes, so tokens rotate without a restart.

A request without valid credentials gets 401 with ``WWW-Authenticate`` naming the methods and a
body that says only that: no route, resource or node detail is revealed. ``/v1/status/live``
stays open (a liveness probe learns nothing but that the process answers), and so do the web
console's static files under ``/ui`` (the page holds no cluster data; it asks for a token
when the API answers 401, and a browser asks for basic credentials itself). What an
authenticated principal may change is the authorizer's decision (``http_principal``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from broker.admin.http_ui import UI_PREFIX
from broker.security.principal import ANONYMOUS, USER_TYPE, KafkaPrincipal
from storage.errors import ConfigError

__all__ = ["AUTH_METHODS", "OPEN_PATHS", "HttpAuthenticator", "TokenFile", "http_principal"]

logger = logging.getLogger(__name__)

AUTH_METHODS = ("basic", "bearer")
OPEN_PATHS = frozenset({"/v1/status/live"})
PRINCIPAL_KEY = "principal"
_MAX_CACHED = 4096

Credentials = Callable[[str], Sequence[Any]]
"""``credentials(user)`` -> the user's current SCRAM credentials (hashable; empty: no such user)."""
Verify = Callable[[Any, str], bool]
"""``verify(credential, password)`` -> whether the password derives that credential."""


def http_principal(request: web.Request) -> KafkaPrincipal:
    """The principal the request was authenticated as (``User:ANONYMOUS`` without
    authentication)."""
    return request.get(PRINCIPAL_KEY, ANONYMOUS)


class TokenFile:
    """``admin.bearer.tokens.file``: tokens -> principals, re-read when the file changes.
    A malformed line stops start-up (``load``) naming the line; at run time it keeps the
    tokens read last and logs the error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[bytes, KafkaPrincipal] = {}

    def load(self) -> None:
        st = os.stat(self.path)
        tokens: dict[bytes, KafkaPrincipal] = {}
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{self.path} line {n}: expected '<token> <Type:name>'")
            try:
                principal = KafkaPrincipal.parse(parts[1])
            except ValueError as e:
                raise ValueError(f"{self.path} line {n}: {e}") from None
            tokens[_digest(parts[0])] = principal
        self._tokens, self._stamp = tokens, (st.st_mtime_ns, st.st_size)

    def lookup(self, token: str) -> KafkaPrincipal | None:
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self.load()
                logger.info("Admin API bearer tokens re-read from %s", self.path)
        except (OSError, ValueError) as e:
            logger.error("Admin API bearer tokens not re-read: %s", e)
        # Keyed by a digest: a dict lookup does not compare the secret byte by byte.
        return self._tokens.get(_digest(token))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class HttpAuthenticator:
    """The aiohttp middleware deciding a request's principal (see the module docstring)."""

    def __init__(self, methods: Sequence[str], tokens: TokenFile | None = None,
                 credentials: Credentials | None = None, verify: Verify | None = None) -> None:
        self.methods = tuple(methods)
        self.tokens = tokens
        self.credentials = credentials
        self.verify = verify
        self._verified: dict[tuple[str, bytes], Any] = {}
        self.failures = 0

    @classmethod
    def from_config(cls, cfg: Any, credentials: Credentials | None = None,
                    verify: Verify | None = None) -> HttpAuthenticator:
        methods = [m.strip().lower() for m in cfg.get("admin.authentication.methods") if m.strip()]
        for m in methods:
            if m not in AUTH_METHODS:
                raise ConfigError("admin.authentication.methods", ",".join(methods),
                                  f"unknown method {m!r}; expected {' or '.join(AUTH_METHODS)}")
        tokens = None
        path = cfg.get("admin.bearer.tokens.file")
        if "bearer" in methods:
            if not path:
                raise ConfigError("admin.bearer.tokens.file", path,
                                  "required when admin.authentication.methods includes bearer")
            tokens = TokenFile(Path(path))
            try:
                tokens.load()
            except (OSError, ValueError) as e:
                raise ConfigError("admin.bearer.tokens.file", path, str(e)) from None
        return cls(methods, tokens, credentials, verify)

    @property
    def enabled(self) -> bool:
        return bool(self.methods)

    def authenticate(self, header: str | None) -> KafkaPrincipal | None:
        """The principal of an ``Authorization`` header value, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and "bearer" in self.methods and self.tokens is not None:
            return self.tokens.lookup(value)
        if scheme == "basic" and "basic" in self.methods:
            return self._basic(value)
        return None

    def _basic(self, value: str) -> KafkaPrincipal | None:
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = text.partition(":")
        if not sep or not user or self.credentials is None or self.verify is None:
            return None
        current = self.credentials(user)
        if not current:
            return None
        key = (user, hashlib.sha256(password.encode("utf-8")).digest())
        if self._verified.get(key) in current:
            return KafkaPrincipal(USER_TYPE, user)
        for credential in current:
            if self.verify(credential, password):
                if len(self._verified) >= _MAX_CACHED:
                    self._verified.clear()
                self._verified[key] = credential
                return KafkaPrincipal(USER_TYPE, user)
        self._verified.pop(key, None)
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (not self.methods or request.path in OPEN_PATHS
                or request.path == UI_PREFIX or request.path.startswith(UI_PREFIX + "/")):
            return await handler(request)
        principal = self.authenticate(request.headers.get("Authorization"))
        if principal is None:
            self.failures += 1
            challenge = ", ".join(
                'Basic realm="admin", charset="UTF-8"' if m == "basic" else 'Bearer realm="admin"'
                for m in self.methods)
            return web.json_response(
                {"error_code": "UNAUTHENTICATED", "message": "authentication required"},
                status=401, headers={"WWW-Authenticate": challenge})
        request[PRINCIPAL_KEY] = principal
        return await handler(request)
