"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka runs them (KIP-84): the
credential a password gives (``make_credential``), ``verify_password`` (a password against an
image credential, for HTTP basic authentication), the server side of the exchange
(``ScramServer``) and the client side (``ScramClient``, for the broker's own logins and the CLI
tools). Pure: no I/O; randomness comes from ``secrets`` unless a nonce is given.

Kafka's specifics: the user name is the SCRAM ``saslname`` (``=2C`` is ``,``, ``=3D`` is
``=``); an authorization id other than the user name is refused; no channel binding
(gs2 header ``n,,`` or ``y,,``); the ``tokenauth`` extension (delegation tokens) is refused as
no token is served; iterations 4096..16384 for credentials altered through the admin API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from kraft.scram_image import ScramCredentialData, ScramMechanism

__all__ = [
    "MAX_ITERATIONS",
    "MECHANISMS",
    "MIN_ITERATIONS",
    "ScramClient",
    "ScramError",
    "ScramServer",
    "make_credential",
    "salted_password",
    "verify_password",
]

MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
MECHANISMS = {"SCRAM-SHA-256": (ScramMechanism.SCRAM_SHA_256, "sha256"),
              "SCRAM-SHA-512": (ScramMechanism.SCRAM_SHA_512, "sha512")}
_HASH = {int(m): h for m, h in MECHANISMS.values()}


class ScramError(Exception):
    """The exchange failed; ``str()`` is the message the client is sent."""


def _hash_name(mechanism: int) -> str:
    try:
        return _HASH[int(mechanism)]
    except KeyError:
        raise ScramError(f"unknown SCRAM mechanism {mechanism}") from None


def salted_password(mechanism: int, password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(_hash_name(mechanism), password, salt, iterations)


def credential_from_salted(mechanism: int, salted: bytes, salt: bytes,
                           iterations: int) -> ScramCredentialData:
    h = _hash_name(mechanism)
    client_key = hmac.digest(salted, b"Client Key", h)
    stored_key = hashlib.new(h, client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", h)
    return ScramCredentialData(salt, stored_key, server_key, iterations)


def make_credential(mechanism: int, password: str, *, salt: bytes | None = None,
                    iterations: int = MIN_ITERATIONS) -> ScramCredentialData:
    salt = secrets.token_bytes(32) if salt is None else salt
    salted = salted_password(mechanism, password.encode("utf-8"), salt, iterations)
    return credential_from_salted(mechanism, salted, salt, iterations)


def verify_password(credential: ScramCredentialData, password: str,
                    mechanism: int | None = None) -> bool:
    """True if ``password`` gives ``credential`` (its stored key, compared in constant time).
    The mechanism is told by the stored key's length when not given."""
    if mechanism is None:
        mechanism = (ScramMechanism.SCRAM_SHA_512 if len(credential.stored_key) == 64
                     else ScramMechanism.SCRAM_SHA_256)
    try:
        again = make_credential(mechanism, password, salt=credential.salt,
                                iterations=credential.iterations)
    except (ScramError, ValueError):
        return False
    return hmac.compare_digest(again.stored_key, credential.stored_key)


def _random_nonce() -> str:
    """Letters and digits only, as Kafka's ``ScramFormatter.secureRandomString`` (some clients
    mishandle the other printable characters RFC 5802 allows)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def _saslname(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ScramError("Invalid username: " + name)
    return name.replace("=2C", ",").replace("=3D", "=")


def _to_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _attrs(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError(f"Invalid SCRAM message: {message!r}")
        out[key] = value
    return out


@dataclass(slots=True)
class _First:
    gs2_header: str
    bare: str
    user: str
    nonce: str


def _parse_client_first(text: str) -> _First:
    # gs2-header = gs2-cbind-flag "," [ authzid ] ","
    parts = text.split(",", 2)
    if len(parts) != 3 or parts[0] not in ("n", "y"):
        if parts and parts[0].startswith("p"):
            raise ScramError("Channel binding is not supported")
        raise ScramError("Invalid SCRAM client first message")
    authzid = parts[1]
    bare = parts[2]
    attrs = bare.split(",")
    if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
        raise ScramError("Invalid SCRAM client first message")
    user = _saslname(attrs[0][2:])
    for ext in attrs[2:]:
        key = ext.partition("=")[0]
        if key == "tokenauth":
            raise ScramError("Authentication failed: delegation tokens are not supported")
    if authzid and (not authzid.startswith("a=") or _saslname(authzid[2:]) != user):
        raise ScramError("Authentication failed: Client requested an authorization id "
                         "that is different from username")
    return _First(f"{parts[0]},{authzid},", bare, user, attrs[1][2:])


class ScramServer:
    """One server-side exchange. ``step(token)`` returns the next challenge; once
    ``complete`` the client proved the password and ``user`` is who it is. ``lookup(user)``
    gives the user's credential for this mechanism (None: unknown user)."""

    def __init__(self, mechanism: str,
                 lookup: Callable[[str], ScramCredentialData | None],
                 nonce: str | None = None) -> None:
        self.mechanism_name = mechanism
        self.mechanism = MECHANISMS[mechanism][0]
        self._hash = MECHANISMS[mechanism][1]
        self._lookup = lookup
        self._nonce = nonce or _random_nonce()
        self._state = 0
        self._first: _First | None = None
        self._server_first = ""
        self._credential: ScramCredentialData | None = None
        self.user = ""
        self.complete = False

    def _fail(self) -> ScramError:
        return ScramError("Authentication failed during authentication due to invalid "
                          f"credentials with SASL mechanism {self.mechanism_name}")

    def step(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("Invalid SCRAM message: not UTF-8") from None
        if self._state == 0:
            first = _parse_client_first(text)
            credential = self._lookup(first.user)
            if credential is None:
                raise ScramError("Authentication failed: Invalid user credentials")
            self._first, self._credential = first, credential
            self._server_first = (f"r={first.nonce}{self._nonce},"
                                  f"s={base64.b64encode(credential.salt).decode()},"
                                  f"i={credential.iterations}")
            self._state = 1
            return self._server_first.encode()
        if self._state == 1:
            first, credential = self._first, self._credential
            assert first is not None and credential is not None
            attrs = _attrs(text)
            if "p" not in attrs or "c" not in attrs or "r" not in attrs:
                raise ScramError("Invalid SCRAM client final message")
            # Kafka's ScramSaslServer checks that the nonce ends with the server-first one
            # (librdkafka 2.0 sends the client nonce once more in front).
            if not attrs["r"].endswith(first.nonce + self._nonce):
                raise ScramError("Invalid client nonce in the final client message.")
            if attrs["c"] != base64.b64encode(first.gs2_header.encode()).decode():
                raise self._fail()
            without_proof = text[:text.rindex(",p=")]
            auth_message = f"{first.bare},{self._server_first},{without_proof}".encode()
            try:
                proof = base64.b64decode(attrs["p"], validate=True)
            except ValueError:
                raise self._fail() from None
            signature = hmac.digest(credential.stored_key, auth_message, self._hash)
            if len(proof) != len(signature):
                raise self._fail()
            client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
            if not hmac.compare_digest(hashlib.new(self._hash, client_key).digest(),
                                       credential.stored_key):
                raise self._fail()
            server_signature = hmac.digest(credential.server_key, auth_message, self._hash)
            self._state = 2
            self.user = first.user
            self.complete = True
            return b"v=" + base64.b64encode(server_signature)
        raise ScramError("Unexpected SCRAM message after the exchange completed")


class ScramClient:
    """The client side: ``first()``, then ``final(server_first)``, then
    ``verify(server_final)`` (which checks that the server knew the credential)."""

    def __init__(self, mechanism: str, username: str, password: str,
                 nonce: str | None = None) -> None:
        self.mechanism = MECHANISMS[mechanism][0]
        self._hash = MECHANISMS[mechanism][1]
        self._username = username
        self._password = password
        self._nonce = nonce or _random_nonce()
        self._bare = f"n={_to_saslname(username)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self._bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8")
        attrs = _attrs(text)
        if "e" in attrs:
            raise ScramError(f"the server refused: {attrs['e']}")
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self._nonce):
            raise ScramError("the server's nonce does not extend ours")
        salted = salted_password(self.mechanism, self._password.encode(), salt, iterations)
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        attrs = _attrs(server_final.decode("utf-8"))
        if "e" in attrs:
            raise ScramError(f"the server refused: {attrs['e']}")
        if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")),
                                   self._server_signature):
            raise ScramError("the server's signature is wrong (it does not know the "
                             "credential)")
