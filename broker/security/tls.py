"""TLS contexts from Kafka's ``ssl.*`` keys, PEM only (``ssl.keystore.type=PEM``,
``ssl.truststore.type=PEM``), for a listener (server side) and for an outgoing connection
(client side: brokers to controllers and brokers, the CLI tools).

``props`` is a plain key -> value mapping already resolved for the listener or client (see
``broker/security/listener_security.py`` for Kafka's ``listener.name.<l>.`` overrides):

- the key and certificate chain: ``ssl.keystore.location`` (one PEM file with the private key
  and the certificates) or ``ssl.keystore.certificate.chain`` + ``ssl.keystore.key`` (PEM text in
  the configuration), ``ssl.key.password`` (or ``ssl.keystore.password``) for an encrypted key;
- the trusted certificates: ``ssl.truststore.location`` (a PEM file) or
  ``ssl.truststore.certificates`` (PEM text); without either, the system's default CAs;
- ``ssl.client.auth`` (server: ``required``, ``requested`` or ``none``),
  ``ssl.endpoint.identification.algorithm`` (client: ``https`` checks the host name, empty does
  not), ``ssl.enabled.protocols`` (the lowest one listed is the minimum version).

JKS and PKCS12 stores are refused with a clear error (``ssl.keystore.type`` must be PEM).
``ssl.cipher.suites`` names Java suites and is not applied (OpenSSL's defaults are used).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

__all__ = ["TlsConfigError", "client_context", "server_context"]

_PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
              "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1": ssl.TLSVersion.TLSv1}


class TlsConfigError(ValueError):
    """A TLS setting that cannot be applied; the message names the key."""


def _text(props: Mapping[str, Any], key: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    value = getattr(value, "value", value)  # a Password
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value).strip()
    return text or None


def _check_type(props: Mapping[str, Any], key: str) -> None:
    kind = (_text(props, key) or "JKS").upper()
    if kind != "PEM":
        raise TlsConfigError(f"{key}={kind} is not supported: only PEM stores are (set {key}=PEM)")


def _load_key(ctx: ssl.SSLContext, props: Mapping[str, Any]) -> bool:
    """Load the private key and certificate chain, if configured; True if loaded."""
    location = _text(props, "ssl.keystore.location")
    chain = _text(props, "ssl.keystore.certificate.chain")
    key = _text(props, "ssl.keystore.key")
    if location is None and chain is None:
        return False
    _check_type(props, "ssl.keystore.type")
    password = _text(props, "ssl.key.password") or _text(props, "ssl.keystore.password")
    try:
        if location is not None:
            ctx.load_cert_chain(location, password=password)
            return True
        if key is None:
            raise TlsConfigError("ssl.keystore.certificate.chain needs ssl.keystore.key")
        # load_cert_chain reads files only: a private temporary file, removed at once.
        fd, path = tempfile.mkstemp(prefix="kafka-key-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_pem(key) + "\n" + _pem(chain) + "\n")
            ctx.load_cert_chain(path, password=password)
        finally:
            os.unlink(path)
    except (ssl.SSLError, OSError) as e:
        raise TlsConfigError(f"cannot load the key store "
                             f"({location or 'ssl.keystore.certificate.chain'}): {e}") from e
    return True


def _pem(text: str) -> str:
    """PEM text as written in a properties file (lines may be joined by spaces)."""
    if "\n" in text:
        return text
    out = []
    for block in text.split("-----END "):
        if "-----BEGIN " not in block:
            continue
        head, _, rest = block.partition("-----BEGIN ")[2].partition("-----")
        label = head
        body, _, _tail = rest.partition("-----")
        out.append(f"-----BEGIN {label}-----\n" + "\n".join(body.split())
                   + f"\n-----END {label}-----")
    return "\n".join(out) if out else text


def _load_trust(ctx: ssl.SSLContext, props: Mapping[str, Any]) -> None:
    location = _text(props, "ssl.truststore.location")
    certs = _text(props, "ssl.truststore.certificates")
    try:
        if location is not None:
            _check_type(props, "ssl.truststore.type")
            ctx.load_verify_locations(cafile=location)
        elif certs is not None:
            _check_type(props, "ssl.truststore.type")
            ctx.load_verify_locations(cadata=_pem(certs))
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH if ctx.check_hostname is False
                                   and ctx.verify_mode != ssl.CERT_REQUIRED
                                   else ssl.Purpose.SERVER_AUTH)
    except (ssl.SSLError, OSError) as e:
        raise TlsConfigError(f"cannot load the trust store ({location or 'certificates'}): "
                             f"{e}") from e


def _protocols(ctx: ssl.SSLContext, props: Mapping[str, Any]) -> None:
    enabled = _text(props, "ssl.enabled.protocols")
    if enabled is None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return
    versions = [_PROTOCOLS[p.strip()] for p in enabled.split(",") if p.strip() in _PROTOCOLS]
    if not versions:
        raise TlsConfigError(f"ssl.enabled.protocols={enabled} names no supported protocol")
    ctx.minimum_version = min(versions)
    ctx.maximum_version = max(versions)


def server_context(props: Mapping[str, Any]) -> ssl.SSLContext:
    """A listener's context: its key (required), client authentication per
    ``ssl.client.auth`` against the trust store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _protocols(ctx, props)
    if not _load_key(ctx, props):
        raise TlsConfigError("a TLS listener needs ssl.keystore.location or "
                             "ssl.keystore.certificate.chain and ssl.keystore.key")
    auth = (_text(props, "ssl.client.auth") or "none").lower()
    modes = {"required": ssl.CERT_REQUIRED, "requested": ssl.CERT_OPTIONAL,
             "none": ssl.CERT_NONE}
    if auth not in modes:
        raise TlsConfigError(f"ssl.client.auth={auth} is not one of required, requested, none")
    ctx.verify_mode = modes[auth]
    if auth != "none":
        _load_trust(ctx, props)
    return ctx


def client_context(props: Mapping[str, Any]) -> ssl.SSLContext:
    """An outgoing connection's context: the server is verified against the trust store, its
    host name checked unless ``ssl.endpoint.identification.algorithm`` is empty; a key is
    presented when one is configured (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _protocols(ctx, props)
    algorithm = props.get("ssl.endpoint.identification.algorithm", "https")
    ctx.check_hostname = str(algorithm or "").strip().lower() == "https"
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_trust(ctx, props)
    _load_key(ctx, props)
    return ctx
