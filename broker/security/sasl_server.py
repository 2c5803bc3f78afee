"""The server side of SASL on a connection (Kafka's ``SaslServerAuthenticator``): SaslHandshake
(key 17) picks a mechanism among the listener's ``sasl.enabled.mechanisms``, SaslAuthenticate
(key 36) carries the mechanism's tokens. Until the exchange succeeds only ApiVersions,
SaslHandshake and SaslAuthenticate are served; anything else closes the connection (Kafka's
``IllegalSaslStateException``). The gate is the connection's route table
(``broker/network/server.py`` starts a SASL connection on ``ListenerRoutes.sasl_routes`` and
switches to the full table through ``SaslSession.authenticated``).

- PLAIN (RFC 4616): users and passwords from the listener's JAAS configuration
  (``listener.name.<l>.plain.sasl.jaas.config``: ``user_<name>="<password>"`` options of
  ``PlainLoginModule``).
- SCRAM-SHA-256/512 (``broker/security/scram.py``): credentials from the metadata image.
- A failure answers SASL_AUTHENTICATION_FAILED (58) with the message, then closes.
- SaslHandshake v0 (before KIP-152): the tokens then travel as bare size-prefixed frames, each
  answered by a bare frame; a failure closes the connection.
- KIP-368 re-authentication: with ``connections.max.reauth.ms`` > 0 a successful
  SaslAuthenticate v1+ tells the session lifetime; when it ends the connection goes back to
  the SASL-only table, so a client that did not re-authenticate is disconnected on its next
  request, and one that does (SaslHandshake + SaslAuthenticate again) keeps going. A
  re-authentication must keep the mechanism and the principal.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.protocol.errors import ErrorCode
from broker.protocol.messages import sasl_authenticate, sasl_handshake
from broker.security.principal import USER_TYPE, KafkaPrincipal
from broker.security.scram import MECHANISMS, ScramError, ScramServer
from kraft.scram_image import ScramCredentialData

__all__ = ["SaslListenerConfig", "SaslSession", "sasl_handlers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SaslListenerConfig:
    """A SASL listener's settings: the enabled mechanisms, PLAIN's users, where SCRAM
    credentials come from (user, mechanism id) and ``connections.max.reauth.ms``."""

    mechanisms: tuple[str, ...]
    plain_users: Mapping[str, str] = field(default_factory=dict)
    scram_lookup: Callable[[str, int], ScramCredentialData | None] = lambda _u, _m: None
    reauth_ms: int = 0


class _PlainServer:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.user = ""
        self.complete = False

    def step(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise ScramError("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise ScramError("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user:
            raise ScramError("Authentication failed: username not specified")
        if not password:
            raise ScramError("Authentication failed: password not specified")
        if authzid and authzid != user:
            raise ScramError("Authentication failed: Client requested an authorization id "
                             "that is different from username")
        expected = self._users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise ScramError("Authentication failed: Invalid username or password")
        self.user = user
        self.complete = True
        return b""


class SaslSession:
    """One connection's SASL state. ``authenticated(principal, lifetime_ms)`` and ``close()``
    are set by the network server: open the full route table, and close after the response."""

    __slots__ = ("_exchange", "authenticated", "close", "config", "expired", "mechanism",
                 "principal", "start_raw")

    def __init__(self, config: SaslListenerConfig) -> None:
        self.config = config
        self.mechanism: str | None = None
        self._exchange: Any = None
        self.principal: KafkaPrincipal | None = None  # set once authenticated
        self.authenticated: Callable[[KafkaPrincipal, int], None] = lambda _p, _ms: None
        self.close: Callable[[], None] = lambda: None
        # After SaslHandshake v0 the tokens come as bare size-prefixed frames (no Kafka
        # header) until the exchange ends: the network server reads them that way from now.
        self.start_raw: Callable[[], None] = lambda: None
        self.expired = False

    @property
    def exchanging(self) -> bool:
        """A mechanism's exchange is under way (handshake done, not yet complete)."""
        return self._exchange is not None

    def handshake(self, mechanism: str) -> int:
        if mechanism not in self.config.mechanisms:
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        if self.principal is not None and mechanism != self.mechanism:
            # KIP-368: a re-authentication keeps the mechanism.
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        self.mechanism = mechanism
        if mechanism == "PLAIN":
            self._exchange = _PlainServer(self.config.plain_users)
        else:
            mech_id = int(MECHANISMS[mechanism][0])
            lookup = self.config.scram_lookup
            self._exchange = ScramServer(mechanism, lambda user: lookup(user, mech_id))
        return ErrorCode.NONE

    def authenticate(self, token: bytes, version: int) -> Any:
        resp = sasl_authenticate.RESPONSE.cls
        exchange = self._exchange
        if exchange is None:
            self.close()
            return resp(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                        error_message="SaslAuthenticate before SaslHandshake", auth_bytes=b"")
        try:
            challenge = exchange.step(bytes(token))
        except ScramError as e:
            self._exchange = None
            logger.info("Failed authentication with %s mechanism: %s", self.mechanism, e)
            self.close()
            return resp(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED, error_message=str(e),
                        auth_bytes=b"")
        if not exchange.complete:
            return resp(error_code=0, auth_bytes=challenge)
        self._exchange = None
        principal = KafkaPrincipal(USER_TYPE, exchange.user)
        if self.principal is not None and principal != self.principal:
            self.close()
            return resp(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                        error_message="Cannot change principals during re-authentication "
                                      f"from {self.principal}: {principal}", auth_bytes=b"")
        self.principal = principal
        lifetime = self.config.reauth_ms if version >= 1 else 0
        self.expired = False
        self.authenticated(principal, lifetime)
        return resp(error_code=0, auth_bytes=challenge, session_lifetime_ms=lifetime)


def _session(ctx: Any) -> SaslSession | None:
    return getattr(ctx.connection, "sasl", None)


def _handshake(ctx: Any, header: Any, request: Any) -> Any:
    session = _session(ctx)
    resp = sasl_handshake.RESPONSE.cls
    if session is None:
        # Kafka answers a handshake on a listener without SASL with ILLEGAL_SASL_STATE.
        return resp(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    code = session.handshake(request.mechanism)
    if code == ErrorCode.NONE and header.api_version == 0:
        session.start_raw()  # v0: the tokens follow without Kafka headers
    return resp(error_code=code, mechanisms=list(session.config.mechanisms))


def _authenticate(ctx: Any, header: Any, request: Any) -> Any:
    session = _session(ctx)
    if session is None:
        return sasl_authenticate.RESPONSE.cls(
            error_code=ErrorCode.ILLEGAL_SASL_STATE,
            error_message="SaslAuthenticate on a listener without SASL", auth_bytes=b"")
    return session.authenticate(request.auth_bytes, header.api_version)


def sasl_handlers() -> dict[int, Any]:
    """The SaslHandshake and SaslAuthenticate handlers (every broker and controller listener
    serves them; on a listener without SASL they answer ILLEGAL_SASL_STATE)."""
    return {sasl_handshake.API_KEY: _handshake, sasl_authenticate.API_KEY: _authenticate}
