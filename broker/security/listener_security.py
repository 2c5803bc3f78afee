"""What a listener's security protocol (``listener.security.protocol.map``) asks of its
connections, built from Kafka's keys: ``ListenerSecurity`` holds the TLS context (SSL,
SASL_SSL), the certificate principal mapper (``ssl.principal.mapping.rules``) and the SASL
settings (SASL_PLAINTEXT, SASL_SSL). Every key may be overridden per listener with Kafka's
prefix ``listener.name.<listener name, lower case>.`` (SASL keys also per mechanism:
``listener.name.<l>.<mechanism, lower case>.sasl.jaas.config``).

The network server (``broker/network/server.py``) uses it at two points only: the TLS context
on the listening socket, and on each new connection the principal from the client
certificate or the SASL gate (``broker/security/sasl_server.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.security.jaas import JaasError, parse_jaas
from broker.security.principal import ANONYMOUS, USER_TYPE, KafkaPrincipal
from broker.security.sasl_server import SaslListenerConfig
from broker.security.scram import MECHANISMS
from broker.security.ssl_principal import NoMatchingRuleError, PrincipalMapper, peer_dn
from broker.security.tls import TlsConfigError, server_context
from kraft.scram_image import ScramCredentialData

__all__ = ["ListenerSecurity", "SecurityConfigError", "listener_prop", "listener_security"]

SUPPORTED_MECHANISMS = ("PLAIN", *MECHANISMS)


class SecurityConfigError(ValueError):
    """A listener's security settings cannot be used; the message names the key."""


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # a Password


def listener_prop(props: Mapping[str, Any], listener: str, key: str, default: Any = None) -> Any:
    """``listener.name.<listener>.<key>`` if set (lower- or upper-case listener name), else
    ``key``, else ``default``."""
    for name in (listener.lower(), listener):
        full = f"listener.name.{name}.{key}"
        if full in props:
            return _plain(props[full])
    return _plain(props[key]) if key in props else default


def _ssl_props(props: Mapping[str, Any], listener: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = {k for k in props if k.startswith("ssl.")}
    prefix = (f"listener.name.{listener.lower()}.", f"listener.name.{listener}.")
    keys |= {k.split(".", 3)[3] for k in props if k.startswith(prefix)
             and k.split(".", 3)[3].startswith("ssl.")}
    for key in keys:
        out[key] = listener_prop(props, listener, key)
    return out


@dataclass(frozen=True, slots=True)
class ListenerSecurity:
    protocol: str
    ssl_context: ssl.SSLContext | None = None
    mapper: PrincipalMapper | None = None
    sasl: SaslListenerConfig | None = None

    def tls_principal(self, ssl_object: Any) -> KafkaPrincipal:
        """The principal of an SSL connection: the client certificate's mapped name, or
        User:ANONYMOUS without one. ``NoMatchingRuleError`` when no mapping rule applies."""
        dn = peer_dn(ssl_object)
        if dn is None or self.mapper is None:
            return ANONYMOUS
        return KafkaPrincipal(USER_TYPE, self.mapper.name(dn))


def _plain_users(props: Mapping[str, Any], listener: str) -> dict[str, str]:
    jaas = listener_prop(props, listener, "plain.sasl.jaas.config")
    if jaas is None:
        raise SecurityConfigError(
            f"listener {listener} enables PLAIN without "
            f"listener.name.{listener.lower()}.plain.sasl.jaas.config")
    try:
        entries = parse_jaas(str(jaas))
    except JaasError as e:
        raise SecurityConfigError(
            f"listener.name.{listener.lower()}.plain.sasl.jaas.config: {e}") from e
    users: dict[str, str] = {}
    for entry in entries:
        for key, value in entry.options.items():
            if key.startswith("user_"):
                users[key[5:]] = value
    return users


def listener_security(props: Mapping[str, Any], listener: str, protocol: str,
                      scram_lookup: Callable[[str, int], ScramCredentialData | None]
                      ) -> ListenerSecurity | None:
    """The security of ``listener`` (None for PLAINTEXT). ``props`` are the server's
    properties as given; ``scram_lookup(user, mechanism id)`` reads the metadata image."""
    if protocol == "PLAINTEXT":
        return None
    ctx = mapper = sasl = None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            ctx = server_context(_ssl_props(props, listener))
        except TlsConfigError as e:
            raise SecurityConfigError(f"listener {listener}: {e}") from e
        try:
            mapper = PrincipalMapper(listener_prop(props, listener,
                                                   "ssl.principal.mapping.rules"))
        except ValueError as e:
            raise SecurityConfigError(f"ssl.principal.mapping.rules: {e}") from e
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        raw = listener_prop(props, listener, "sasl.enabled.mechanisms", "GSSAPI")
        mechanisms = tuple(m.strip().upper() for m in
                           (raw if isinstance(raw, list) else str(raw).split(",")) if m.strip())
        unsupported = [m for m in mechanisms if m not in SUPPORTED_MECHANISMS]
        if unsupported or not mechanisms:
            raise SecurityConfigError(
                f"listener {listener}: sasl.enabled.mechanisms={','.join(mechanisms)}: "
                f"only {', '.join(SUPPORTED_MECHANISMS)} are supported")
        users = _plain_users(props, listener) if "PLAIN" in mechanisms else {}
        reauth = int(listener_prop(props, listener, "connections.max.reauth.ms", 0) or 0)
        sasl = SaslListenerConfig(mechanisms, users, scram_lookup, max(0, reauth))
    return ListenerSecurity(protocol, ctx, mapper, sasl)


__all__ += ["NoMatchingRuleError"]
