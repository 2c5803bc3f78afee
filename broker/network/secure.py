"""The network server's security hooks (kept out of the per-request path): a TLS listener's
principal from the client certificate, and a SASL connection's gate, which is its route table:
until SASL succeeds the connection routes only SaslHandshake and SaslAuthenticate
(``ListenerRoutes.sasl_routes``; any other API closes the connection, as Kafka's
``SaslServerAuthenticator`` does), then the listener's full table. A KIP-368 session that
expires puts the gate back until the client re-authenticates. The exchanges themselves live in
``broker/security/``."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

from broker.network.connection import ConnectionInfo, ListenerRoutes, ServerConnection
from broker.security.principal import ANONYMOUS, KafkaPrincipal
from broker.security.sasl_server import SaslSession
from broker.security.ssl_principal import NoMatchingRuleError

__all__ = ["SASL_KEYS", "secure_connection"]

logger = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
SASL_KEYS = (17, 18, 36)  # SaslHandshake, ApiVersions, SaslAuthenticate


def secure_connection(conn: Any, listener: ListenerRoutes, core: ServerConnection,
                      info: ConnectionInfo, transport: Any, close: Callable[[], None]) -> bool:
    """Set a new connection's principal or SASL gate; False if it must be closed. ``conn``
    is the server's connection, whose frame handler SaslHandshake v0 replaces while its bare
    tokens are exchanged."""
    security = listener.spec.security
    if security.ssl_context is not None and security.sasl is None:
        try:
            info.principal = security.tls_principal(transport.get_extra_info("ssl_object"))
        except NoMatchingRuleError as e:
            logger.warning("Closing connection from %s on %s: %s", info.peer,
                           info.listener_name, e)
            return False
        if info.principal != ANONYMOUS:
            logger.info("Connection %s on %s authenticated as %s (client certificate)",
                        info.connection_id, info.listener_name, info.principal)
    if security.sasl is not None:
        loop = asyncio.get_running_loop()
        session = SaslSession(security.sasl)
        info.sasl = session
        core.routes = listener.sasl_routes
        expiry: list[asyncio.TimerHandle] = []

        def expire() -> None:
            session.expired = True
            core.routes = listener.sasl_routes

        def authenticated(principal: KafkaPrincipal, lifetime_ms: int) -> None:
            if info.principal != principal:
                logger.info("Connection %s on %s authenticated as %s (SASL %s)",
                            info.connection_id, info.listener_name, principal,
                            session.mechanism)
            info.principal = principal
            core.routes = listener.routes
            for handle in expiry:
                handle.cancel()
            expiry.clear()
            if lifetime_ms > 0:
                expiry.append(loop.call_later(lifetime_ms / 1000, expire))

        def on_raw_token(frame: memoryview) -> None:
            resp = session.authenticate(bytes(frame), 0)
            if resp.error_code:
                return  # the session closes the connection
            token = bytes(resp.auth_bytes)
            conn._respond_bytes(_SIZE.pack(len(token)) + token)
            if not session.exchanging:
                del conn._on_frame  # back to Kafka requests

        def start_raw() -> None:
            conn._on_frame = on_raw_token

        session.authenticated = authenticated
        session.close = lambda: loop.call_soon(close)
        session.start_raw = start_raw
    return True
