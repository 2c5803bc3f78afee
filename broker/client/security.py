"""How the outgoing client secures a connection: ``ClientSecurity`` (TLS context and SASL login)
from Kafka's client keys (``security.protocol``, ``ssl.*``, ``sasl.mechanism``,
``sasl.jaas.config`` with ``PlainLoginModule`` or ``ScramLoginModule`` ``username``/``password``),
as a CLI tool's ``--command-config`` file gives them, or from a node's own configuration for the
connections it opens to other nodes (``inter_node_security``: the inter-broker listener with
``sasl.mechanism.inter.broker.protocol``, the controller listener with
``sasl.mechanism.controller.protocol``; the login is the listener's
``listener.name.<l>.<mechanism>.sasl.jaas.config`` ``username``/``password``, as Kafka's).

``sasl_login`` runs SaslHandshake v1 and SaslAuthenticate on a connection (PLAIN or SCRAM,
``broker/security/scram.py``)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import sasl_authenticate, sasl_handshake
from broker.security.jaas import JaasError, parse_jaas
from broker.security.listener_security import listener_prop
from broker.security.scram import MECHANISMS, ScramClient, ScramError
from broker.security.tls import TlsConfigError, client_context

if TYPE_CHECKING:
    from broker.client.connection import KafkaConnection

__all__ = ["ClientSecurity", "SecurityError", "client_security", "inter_node_security",
           "sasl_login"]


class SecurityError(Exception):
    """The client's security settings cannot be used, or authentication failed."""


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str = ""
    password: str = ""


def _login(jaas: Any, where: str) -> tuple[str, str]:
    if jaas is None:
        raise SecurityError(f"{where} is not set: the SASL login needs username and password")
    try:
        entries = parse_jaas(str(getattr(jaas, "value", jaas)))
    except JaasError as e:
        raise SecurityError(f"{where}: {e}") from e
    opts = entries[0].options
    if "username" not in opts or "password" not in opts:
        raise SecurityError(f"{where} has no username and password")
    return opts["username"], opts["password"]


def client_security(props: Mapping[str, Any]) -> ClientSecurity | None:
    """From client properties (None for PLAINTEXT)."""
    protocol = str(props.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    ctx = None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            ctx = client_context(props)
        except TlsConfigError as e:
            raise SecurityError(str(e)) from e
    mechanism = username = password = None
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        mechanism = str(props.get("sasl.mechanism", "GSSAPI")).upper()
        if mechanism not in ("PLAIN", *MECHANISMS):
            raise SecurityError(f"sasl.mechanism={mechanism} is not supported")
        username, password = _login(props.get("sasl.jaas.config"), "sasl.jaas.config")
    return ClientSecurity(protocol, ctx, mechanism, username or "", password or "")


def inter_node_security(props: Mapping[str, Any], listener: str, protocol: str,
                        mechanism_key: str) -> ClientSecurity | None:
    """A node's security towards ``listener`` of the other nodes (None for PLAINTEXT)."""
    if protocol == "PLAINTEXT":
        return None
    ctx = None
    if protocol in ("SSL", "SASL_SSL"):
        ssl_props = {k: listener_prop(props, listener, k) for k in (
            "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.certificates",
            "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.certificate.chain",
            "ssl.keystore.key", "ssl.key.password", "ssl.keystore.password",
            "ssl.enabled.protocols", "ssl.endpoint.identification.algorithm")}
        try:
            ctx = client_context({k: v for k, v in ssl_props.items() if v is not None})
        except TlsConfigError as e:
            raise SecurityError(f"listener {listener}: {e}") from e
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        mechanism = str(props.get(mechanism_key, "GSSAPI")).upper()
        key = f"{mechanism.lower()}.sasl.jaas.config"
        username, password = _login(listener_prop(props, listener, key),
                                    f"listener.name.{listener.lower()}.{key}")
        return ClientSecurity(protocol, ctx, mechanism, username, password)
    return ClientSecurity(protocol, ctx)


async def sasl_login(conn: KafkaConnection, security: ClientSecurity, timeout_s: float) -> None:
    """SaslHandshake v1, then SaslAuthenticate until the mechanism completes."""
    mechanism = security.mechanism
    assert mechanism is not None
    hs = await conn.send(ApiKey.SASL_HANDSHAKE,
                         sasl_handshake.REQUEST.cls(mechanism=mechanism), 1, timeout_s=timeout_s)
    if hs.error_code:
        raise SecurityError(f"{conn.host}:{conn.port} does not take SASL {mechanism} (error "
                            f"{hs.error_code}; it offers {', '.join(hs.mechanisms)})")
    req = sasl_authenticate.REQUEST.cls

    async def step(token: bytes) -> bytes:
        resp = await conn.send(ApiKey.SASL_AUTHENTICATE, req(auth_bytes=token),
                               timeout_s=timeout_s)
        if resp.error_code:
            raise SecurityError(f"SASL {mechanism} authentication to {conn.host}:{conn.port} "
                                f"failed: {resp.error_message}")
        return bytes(resp.auth_bytes)

    if mechanism == "PLAIN":
        await step(f"\0{security.username}\0{security.password}".encode())
        return
    client = ScramClient(mechanism, security.username, security.password)
    try:
        client.verify(await step(client.final(await step(client.first()))))
    except ScramError as e:
        raise SecurityError(f"SASL {mechanism} to {conn.host}:{conn.port}: {e}") from e
