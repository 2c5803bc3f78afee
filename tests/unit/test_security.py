"""The pure parts of TLS and SASL: SCRAM against RFC 7677's and RFC 5802's test vectors,
``verify_password``, the SASL session's PLAIN and SCRAM exchanges and re-authentication, the
certificate name in RFC 2253 form and ``ssl.principal.mapping.rules``, JAAS parsing and the
``--add-scram`` text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from broker.protocol.errors import ErrorCode
from broker.security.jaas import JaasError, parse_jaas
from broker.security.principal import KafkaPrincipal
from broker.security.sasl_server import SaslListenerConfig, SaslSession
from broker.security.scram import (
    ScramClient,
    ScramError,
    ScramServer,
    make_credential,
    verify_password,
)
from broker.security.scram_config import parse_scram_spec, split_scram_configs
from broker.security.ssl_principal import NoMatchingRuleError, PrincipalMapper, rfc2253_name
from kraft.scram_image import ScramMechanism

SHA256 = int(ScramMechanism.SCRAM_SHA_256)
SHA512 = int(ScramMechanism.SCRAM_SHA_512)


def test_rfc7677_scram_sha_256_vector() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    cred = make_credential(SHA256, "pencil", salt=salt, iterations=4096)
    server = ScramServer("SCRAM-SHA-256", lambda u: cred if u == "user" else None,
                         nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    final = server.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.complete and server.user == "user"
    # The client side computes the same proof.
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.final(first).endswith(b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client.verify(final)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_round_trip_and_wrong_password(mechanism: str) -> None:
    mech = SHA256 if mechanism.endswith("256") else SHA512
    cred = make_credential(mech, "s3cret", iterations=4096)
    server = ScramServer(mechanism, lambda u: cred if u == "a,b=c" else None)
    client = ScramClient(mechanism, "a,b=c", "s3cret")  # saslname escaping both ways
    client.verify(server.step(client.final(server.step(client.first()))))
    assert server.user == "a,b=c"
    bad = ScramClient(mechanism, "a,b=c", "wrong")
    server = ScramServer(mechanism, lambda u: cred)
    with pytest.raises(ScramError, match="invalid credentials"):
        server.step(bad.final(server.step(bad.first())))
    with pytest.raises(ScramError, match="Invalid user credentials"):
        ScramServer(mechanism, lambda u: None).step(ScramClient(mechanism, "x", "y").first())
    with pytest.raises(ScramError, match="Channel binding"):
        ScramServer(mechanism, lambda u: cred).step(b"p=tls-unique,,n=a,r=x")
    with pytest.raises(ScramError, match="delegation tokens"):
        ScramServer(mechanism, lambda u: cred).step(b"n,,n=a,r=x,tokenauth=true")


def test_verify_password() -> None:
    for mech in (SHA256, SHA512):
        cred = make_credential(mech, "pw", iterations=4096)
        assert verify_password(cred, "pw")
        assert verify_password(cred, "pw", mech)
        assert not verify_password(cred, "pw2")


def _session(mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256"),
             reauth_ms: int = 0) -> tuple[SaslSession, list, list]:
    cred = make_credential(SHA256, "alice-secret")
    config = SaslListenerConfig(mechanisms, {"carol": "carol-secret"},
                                lambda u, m: cred if (u, m) == ("alice", SHA256) else None,
                                reauth_ms)
    session = SaslSession(config)
    authenticated: list = []
    closed: list = []
    session.authenticated = lambda p, ms: authenticated.append((p, ms))
    session.close = lambda: closed.append(True)
    return session, authenticated, closed


def test_sasl_session_plain_and_failures() -> None:
    session, authenticated, closed = _session()
    assert session.handshake("GSSAPI") == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert session.handshake("PLAIN") == 0
    resp = session.authenticate(b"\0carol\0wrong", 1)
    assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED and closed
    session, authenticated, closed = _session()
    session.handshake("PLAIN")
    resp = session.authenticate(b"bob\0carol\0carol-secret", 1)
    assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED  # authzid != user
    session, authenticated, closed = _session()
    assert session.authenticate(b"x", 1).error_code == ErrorCode.ILLEGAL_SASL_STATE
    session, authenticated, closed = _session(reauth_ms=60_000)
    session.handshake("PLAIN")
    resp = session.authenticate(b"\0carol\0carol-secret", 1)
    assert resp.error_code == 0 and resp.session_lifetime_ms == 60_000
    assert authenticated == [(KafkaPrincipal("User", "carol"), 60_000)] and not closed


def test_sasl_session_scram_and_reauthentication() -> None:
    session, authenticated, closed = _session(reauth_ms=1000)
    assert session.handshake("SCRAM-SHA-256") == 0
    client = ScramClient("SCRAM-SHA-256", "alice", "alice-secret")
    first = session.authenticate(client.first(), 2)
    assert first.error_code == 0
    final = session.authenticate(client.final(first.auth_bytes), 2)
    assert final.error_code == 0 and final.session_lifetime_ms == 1000
    client.verify(final.auth_bytes)
    assert authenticated[-1][0] == KafkaPrincipal("User", "alice")
    # Re-authentication: the mechanism may not change; the same principal is accepted.
    assert session.handshake("PLAIN") == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert session.handshake("SCRAM-SHA-256") == 0
    client = ScramClient("SCRAM-SHA-256", "alice", "alice-secret")
    first = session.authenticate(client.first(), 2)
    assert session.authenticate(client.final(first.auth_bytes), 2).error_code == 0
    assert len(authenticated) == 2 and not closed


def test_rfc2253_names_and_mapping_rules() -> None:
    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc."),),
               (("organizationalUnitName", "eng"),), (("commonName", "alice"),))
    dn = rfc2253_name(subject)
    assert dn == "CN=alice,OU=eng,O=Acme\\, Inc.,C=US"
    assert rfc2253_name(((("commonName", "x"), ("emailAddress", "a@b")),)) == \
        "CN=x+1.2.840.113549.1.9.1=#1603614062"
    assert PrincipalMapper(None).name(dn) == dn
    mapper = PrincipalMapper("RULE:^CN=(.*?),OU=(.*?),O=(.*?),C=(.*)$/$1@$2/U, DEFAULT")
    assert mapper.name(dn) == "ALICE@ENG"
    assert mapper.name("CN=bob") == "CN=bob"
    only = PrincipalMapper("RULE:^CN=([a-z]+)$/$1/L")
    assert only.name("CN=bob") == "bob"
    with pytest.raises(NoMatchingRuleError):
        only.name("CN=Bob,O=x")
    assert PrincipalMapper("RULE:^CN=(.*)\\/x$/$1/").name("CN=a/x") == "a"


def test_jaas_and_scram_specs() -> None:
    [entry] = parse_jaas('org.apache.kafka.common.security.plain.PlainLoginModule required '
                         'username="admin" password="a\\"b" user_admin=x;')
    assert entry.flag == "required"
    assert entry.options == {"username": "admin", "password": 'a"b', "user_admin": "x"}
    with pytest.raises(JaasError):
        parse_jaas("Module required username=")
    with pytest.raises(JaasError):
        parse_jaas('Module required a="b"')
    spec = parse_scram_spec("SCRAM-SHA-512=[name=bob,password=p,w,iterations=8192]")
    assert spec.name == "bob" and spec.credential.iterations == 8192
    assert verify_password(spec.credential, "p")  # an unquoted value ends at a comma
    spec = parse_scram_spec('SCRAM-SHA-256=[name=bob,password="p,w"]')
    assert verify_password(spec.credential, "p,w")
    assert split_scram_configs("SCRAM-SHA-256=[iterations=4096,password=a],"
                               "SCRAM-SHA-512=[password=b]") == [
        "SCRAM-SHA-256=[iterations=4096,password=a]", "SCRAM-SHA-512=[password=b]"]
    with pytest.raises(ValueError):
        parse_scram_spec("SCRAM-SHA-256=[name=a,password=b,iterations=100]")


def test_listener_security_from_kafka_keys(tmp_path: Path) -> None:
    """Per-listener keys win over the global ones; bad settings name the key."""
    from broker.security.listener_security import (
        SecurityConfigError,
        listener_prop,
        listener_security,
    )
    props = {"sasl.enabled.mechanisms": "SCRAM-SHA-256",
             "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
             "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                 'user_a="x" user_b="y";',
             "connections.max.reauth.ms": "5000"}
    assert listener_prop(props, "SASL_PLAINTEXT", "sasl.enabled.mechanisms") == \
        "PLAIN,SCRAM-SHA-512"
    sec = listener_security(props, "SASL_PLAINTEXT", "SASL_PLAINTEXT", lambda u, m: None)
    assert sec is not None and sec.sasl is not None and sec.ssl_context is None
    assert sec.sasl.mechanisms == ("PLAIN", "SCRAM-SHA-512")
    assert dict(sec.sasl.plain_users) == {"a": "x", "b": "y"} and sec.sasl.reauth_ms == 5000
    assert listener_security(props, "PLAINTEXT", "PLAINTEXT", lambda u, m: None) is None
    with pytest.raises(SecurityConfigError, match="GSSAPI"):
        listener_security({}, "SASL_PLAINTEXT", "SASL_PLAINTEXT", lambda u, m: None)
    with pytest.raises(SecurityConfigError, match="plain.sasl.jaas.config"):
        listener_security({"sasl.enabled.mechanisms": "PLAIN"}, "X", "SASL_PLAINTEXT",
                          lambda u, m: None)
    with pytest.raises(SecurityConfigError, match="only PEM"):
        listener_security({"ssl.keystore.location": str(tmp_path / "k.jks")}, "SSL", "SSL",
                          lambda u, m: None)
    with pytest.raises(SecurityConfigError, match="ssl.keystore.location"):
        listener_security({}, "SSL", "SSL", lambda u, m: None)
