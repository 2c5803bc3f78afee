"""Fuzzing the SASL gate of a real node (broker/security/sasl_server.py behind
broker/network/server.py) over a SASL_PLAINTEXT listener, with hypothesis.

Each example opens a connection and plays a drawn sequence of steps: SaslHandshake v0/v1 with
enabled, unknown or mis-cased mechanisms; SCRAM client-first and client-final messages that are
honest, computed with a wrong password, or mutated (flipped proof, changed nonce, truncated,
garbage, replayed); PLAIN tokens with right and wrong passwords; requests of other APIs
(Metadata, Produce, CreateTopics, ...) and garbage frames in between; ApiVersions. A small
client model follows the exchange and checks after every step:

- no API other than ApiVersions/SaslHandshake/SaslAuthenticate is answered before
  authentication succeeded (the connection is closed instead);
- authentication succeeds only for an exchange done with the user's right password, and an
  honest exchange with it does succeed;
- after every example the node still serves a good client (a full SCRAM login and Metadata), and
  at the end its process is alive with no traceback in its log.

SCRAM credentials come from ``kafka-storage format --add-scram`` (alice: SCRAM-SHA-256, bob:
SCRAM-SHA-512); PLAIN's user carol from the listener's JAAS configuration. Bounded: 200
examples, a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from broker.protocol.api_keys import request_header_version, response_header_version
from broker.protocol.framing import encode_request, parse_response_header
from broker.protocol.messages import api_versions, metadata, sasl_authenticate, sasl_handshake
from broker.security.scram import ScramClient, ScramError
from tools.proc_cluster import ProcCluster

TIMEOUT_S = 20.0
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
# The mechanism each user has a credential for (carol: PLAIN, from the JAAS configuration).
MECHANISM_OF = {"alice": "SCRAM-SHA-256", "bob": "SCRAM-SHA-512", "carol": "PLAIN"}
JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="x" user_carol="carol-secret";')
SASL_KEYS = frozenset({api_versions.API_KEY, sasl_handshake.API_KEY, sasl_authenticate.API_KEY})
# APIs a client may not use before authenticating, at a few versions each.
OTHER_APIS = [(importlib.import_module(f"broker.protocol.messages.{name}"), v)
              for name, versions in (("metadata", (1, 12)), ("produce", (3, 9)),
                                     ("list_offsets", (1, 7)), ("create_topics", (2, 5)),
                                     ("find_coordinator", (0, 3)), ("list_groups", (0, 4)),
                                     ("describe_acls", (1, 3)), ("init_producer_id", (0, 4)),
                                     ("describe_configs", (1, 4)), ("describe_cluster", (0,)))
              for v in versions]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(
        tmp_path_factory.mktemp("sasl-fuzz"), controllers=1, brokers=0, combined=True,
        secure={"SASL_PLAINTEXT": "SASL_PLAINTEXT"},
        format_args=["--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                     "--add-scram", "SCRAM-SHA-512=[name=bob,password=bob-secret]"],
        extra={"sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
               "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS_PLAIN})
    c.start()
    try:
        yield c
    finally:
        c.shutdown()


def address(c: ProcCluster) -> tuple[str, int]:
    host, port = c.secure_bootstrap("SASL_PLAINTEXT").split(",")[0].rsplit(":", 1)
    return host, int(port)


class Closed(Exception):
    """The node closed the connection."""


def event(text: str) -> None:
    """Counted in ``--hypothesis-show-statistics`` (ignored outside the fuzzing test)."""
    with contextlib.suppress(InvalidArgument):
        hypothesis_event(text)


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError):
            raise Closed from None
        if not chunk:
            raise Closed
        buf += chunk
    return buf


def read_frame(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    assert 0 <= size < 1 << 24, f"response frame size {size}"
    return recv_exact(s, size)


def send(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        raise Closed from None


@dataclass
class Client:
    """The client model: what the node must do given what was sent so far."""

    sock: socket.socket
    cid: int = 0
    authenticated: bool = False
    raw: bool = False  # after SaslHandshake v0: tokens as bare frames
    mechanism: str | None = None
    scram: ScramClient | None = None
    user: str = ""
    honest: bool = False  # the exchange so far is honest, with the user's right password
    server_first: bytes | None = None
    log: list[str] = field(default_factory=list)

    def request(self, module: Any, obj: Any, version: int) -> Any:
        """Send a request, return its decoded response (``Closed`` when the node closed)."""
        self.cid += 1
        key = module.API_KEY
        send(self.sock, encode_request(module.REQUEST, obj, version, self.cid, "fuzz",
                                       request_header_version(key, version)))
        frame = read_frame(self.sock)
        cid, pos = parse_response_header(frame, response_header_version(key, version))
        assert cid == self.cid, f"correlation id {cid}, expected {self.cid}"
        return module.RESPONSE.decode(frame, version, pos)[0]

    def token(self, data: bytes, version: int) -> tuple[int, bytes]:
        """One SASL token: (error code, server token)."""
        if self.raw:
            send(self.sock, struct.pack(">i", len(data)) + data)
            return 0, read_frame(self.sock)
        resp = self.request(sasl_authenticate, sasl_authenticate.REQUEST.cls(auth_bytes=data),
                            version)
        return resp.error_code, bytes(resp.auth_bytes)

    def reset(self) -> None:
        self.scram, self.server_first, self.honest, self.raw = None, None, False, False


def flip(token: bytes, index: int) -> bytes:
    if not token:
        return b"\x00"
    i = index % len(token)
    return token[:i] + bytes([token[i] ^ 0x01]) + token[i + 1:]


def wrong_proof(final: bytes) -> bytes:
    head, _, proof = final.rpartition(b",p=")
    raw = bytearray(base64.b64decode(proof))
    raw[0] ^= 0x80
    return head + b",p=" + base64.b64encode(bytes(raw))


def wrong_nonce(final: bytes) -> bytes:
    text = final.decode()
    start = text.index("r=") + 2
    end = text.index(",", start)
    nonce = text[start:end]
    changed = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    return (text[:start] + changed + text[end:]).encode()


def mutate(token: bytes, mutation: str, index: int) -> bytes:
    if mutation == "flip":
        return flip(token, index)
    if mutation == "truncate":
        return token[:index % max(len(token), 1)]
    if mutation == "garbage":
        return bytes((index * 7 + i) % 256 for i in range(index % 40))
    return token


# -- the steps ---------------------------------------------------------------------------------

def step_handshake(c: Client, mechanism: str, version: int) -> None:
    resp = c.request(sasl_handshake, sasl_handshake.REQUEST.cls(mechanism=mechanism), version)
    if resp.error_code != 0:
        assert mechanism not in MECHANISM_OF.values() or c.authenticated, resp
        c.reset()
        c.mechanism = None
        return
    assert mechanism in MECHANISM_OF.values(), f"handshake took {mechanism!r}"
    c.reset()
    c.mechanism = mechanism
    c.raw = version == 0


def check_outcome(c: Client, error: int, honest: bool, user: str) -> None:
    """After a token that completes an exchange (or fails it)."""
    if error == 0:
        assert honest, f"authenticated as {user} without the right password: {c.log}"
        event(f"authenticated ({c.mechanism})")
        c.authenticated = True
        c.raw = False
    else:
        assert not honest, f"an honest login of {user} failed ({error}): {c.log}"
        event("authentication refused")
        raise Closed  # a failure closes the connection (checked by the next step)


def step_first(c: Client, user: str, right: bool, mutation: str, index: int,
               version: int) -> None:
    password = PASSWORDS.get(user, "x") if right else "wrong-password"
    mech = c.mechanism
    if mech == "PLAIN":
        good = f"\0{user}\0{PASSWORDS.get(user, 'x')}".encode()
        token = mutate(f"\0{user}\0{password}".encode(), mutation, index)
        honest = token == good and MECHANISM_OF.get(user) == "PLAIN"
        try:
            error, _ = c.token(token, version)
        except Closed:
            assert not honest, f"an honest PLAIN login of {user} was closed: {c.log}"
            raise
        check_outcome(c, error, honest, user)
        return
    scram_mech = mech if mech is not None else "SCRAM-SHA-256"
    client = ScramClient(scram_mech, user, password)
    token = mutate(client.first(), mutation, index)
    error, server_first = c.token(token, version)
    if error != 0 or mech is None:
        event("client-first refused")
        raise Closed
    assert server_first.startswith(b"r="), server_first
    assert MECHANISM_OF.get(user) == mech or mutation != "none", \
        f"{user} has no {mech} credential yet got a server-first message"
    c.scram, c.server_first, c.user = client, server_first, user
    c.honest = right and mutation == "none" and MECHANISM_OF.get(user) == mech


def step_final(c: Client, mutation: str, index: int, version: int) -> None:
    if c.scram is None or c.server_first is None:
        token = b"c=biws,r=nonce,p=" + base64.b64encode(bytes([index % 256]) * 32)
        error, _ = c.token(token, version)
        if error == 0 and c.mechanism is None and not c.raw:
            raise AssertionError(f"a client-final without an exchange was taken: {c.log}")
        raise Closed
    try:
        token = c.scram.final(c.server_first)
    except ScramError:
        raise Closed from None
    if mutation == "proof":
        token = wrong_proof(token)
    elif mutation == "nonce":
        token = wrong_nonce(token)
    elif mutation == "truncate":
        token = token[:index % len(token)]
    elif mutation == "flip":
        token = flip(token, index)
    elif mutation == "replay":
        token = c.scram.first()
    honest = c.honest and mutation == "none"
    try:
        error, server_final = c.token(token, version)
    except Closed:
        assert not honest, f"an honest SCRAM login of {c.user} was closed: {c.log}"
        raise
    check_outcome(c, error, honest, c.user)
    c.scram.verify(server_final)  # the node proves it knows the credential
    c.scram = c.server_first = None


def other_request(module: Any) -> Any:
    # Produce with acks=1: the default acks=0 has no response to wait for once authenticated.
    return module.REQUEST.cls(acks=1) if module.API_KEY == 0 else module.REQUEST.cls()


def step_other(c: Client, which: int) -> None:
    module, version = OTHER_APIS[which % len(OTHER_APIS)]
    if c.authenticated and not c.raw:
        c.request(module, other_request(module), version)  # answered (any error code)
        return
    try:
        resp = c.request(module, other_request(module), version)
    except Closed:
        event("another API before authentication: closed")
        raise
    except AssertionError:
        raise
    except Exception as e:  # a response that does not decode is still a response
        raise AssertionError(f"{module.__name__} v{version} answered before "
                             f"authentication: {e}; {c.log}") from e
    raise AssertionError(f"{module.__name__} v{version} answered before authentication: "
                         f"{resp}; {c.log}")


def step_garbage(c: Client, data: bytes) -> None:
    frame = struct.pack(">i", len(data)) + data
    send(c.sock, frame)
    if c.authenticated and not c.raw:
        raise Closed  # whatever it was, the connection is not followed further
    reply = read_frame(c.sock)
    if c.raw:
        raise Closed  # garbage as a token: the exchange fails and the node closes
    if not c.authenticated and len(data) >= 8:
        key = struct.unpack(">h", data[:2])[0]
        cid = struct.unpack(">i", data[4:8])[0]
        answered = len(reply) >= 4 and struct.unpack(">i", reply[:4])[0] == cid
        assert key in SASL_KEYS or not answered, \
            f"API {key} answered before authentication: {data!r} -> {reply!r}"


def step_api_versions(c: Client, version: int) -> None:
    if c.raw:
        return  # would be read as a SASL token
    resp = c.request(api_versions, api_versions.REQUEST.cls(
        client_software_name="fuzz", client_software_version="1"), version)
    assert resp.error_code == 0, resp


mechanisms = st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "scram-sha-256",
                              "GSSAPI", "OAUTHBEARER", "", "SCRAM-SHA-1", "PLAIN\0"])
steps = st.one_of(
    st.tuples(st.just("handshake"), mechanisms, st.sampled_from([0, 1, 1, 1])),
    st.tuples(st.just("first"), st.sampled_from(["alice", "bob", "carol", "mallory", "al=ce"]),
              st.booleans(), st.sampled_from(["none", "none", "flip", "truncate", "garbage"]),
              st.integers(0, 200), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("final"),
              st.sampled_from(["none", "none", "proof", "nonce", "truncate", "flip", "replay"]),
              st.integers(0, 200), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("other"), st.integers(0, len(OTHER_APIS) - 1)),
    st.tuples(st.just("garbage"), st.binary(max_size=48)),
    st.tuples(st.just("api_versions"), st.sampled_from([0, 3])),
)


# A coherent login attempt (handshake, client-first, client-final), each part possibly wrong,
# so that plans reach the end of exchanges often and not only by luck.
OWNER = {mech: user for user, mech in MECHANISM_OF.items()}
logins = st.builds(
    lambda mech, hs, owner, other, right, m1, m2, i, v, between: [
        ("handshake", mech, hs), ("first", OWNER[mech] if owner else other, right, m1, i, v),
        *between, ("final", m2, i, v)],
    st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]), st.sampled_from([0, 1, 1]),
    st.sampled_from([True, True, True, False]), st.sampled_from(["alice", "bob", "mallory"]),
    st.sampled_from([True, True, False]),
    st.sampled_from(["none", "none", "none", "flip", "truncate"]),
    st.sampled_from(["none", "none", "proof", "nonce", "truncate", "flip", "replay"]),
    st.integers(0, 200), st.sampled_from([0, 1, 2]),
    # another API's request in the middle of the exchange, now and then
    st.lists(st.tuples(st.just("other"), st.integers(0, len(OTHER_APIS) - 1)), max_size=1))
# Most steps end the connection when they come before authentication, so half of the plans
# start with a login attempt (after ApiVersions or a handshake at most) and go on from there.
prelude = st.lists(st.one_of(
    st.tuples(st.just("api_versions"), st.sampled_from([0, 3])),
    st.tuples(st.just("handshake"), mechanisms, st.just(1))), max_size=2)
anything = st.lists(st.one_of(steps.map(lambda step: [step]), logins), min_size=1, max_size=4)
plans = st.one_of(
    st.tuples(prelude, logins, anything).map(
        lambda parts: [*parts[0], *parts[1], *(step for part in parts[2] for step in part)]),
    anything.map(lambda parts: [step for part in parts for step in part]))


def honest_login(host: str, port: int) -> None:
    """A good client: SCRAM-SHA-512 as bob, then Metadata is answered."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
        c = Client(s)
        step_handshake(c, "SCRAM-SHA-512", 1)
        step_first(c, "bob", True, "none", 0, 2)
        step_final(c, "none", 0, 2)
        assert c.authenticated
        resp = c.request(metadata, metadata.REQUEST.cls(topics=None), 12)
        assert [b.node_id for b in resp.brokers], resp


def play(host: str, port: int, plan: list[tuple[Any, ...]]) -> None:
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
        c = Client(s)
        try:
            for step in plan:
                c.log.append(repr(step)[:120])
                kind, *args = step
                if kind == "handshake":
                    step_handshake(c, *args)
                elif kind == "first":
                    step_first(c, *args)
                elif kind == "final":
                    step_final(c, *args)
                elif kind == "other":
                    step_other(c, *args)
                elif kind == "garbage":
                    step_garbage(c, *args)
                else:
                    step_api_versions(c, *args)
        except Closed:
            # The node closed, or the plan stops following this connection: end our side
            # and read until the node closes too.
            try:
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass


@settings(max_examples=200, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=plans)
def test_sasl_fuzz_never_authenticates_wrongly_nor_crashes(node: ProcCluster,
                                                           plan: list[tuple[Any, ...]]) -> None:
    host, port = address(node)
    play(host, port, plan)
    honest_login(host, port)


def test_the_node_survived_the_fuzzing(node: ProcCluster) -> None:
    host, port = address(node)
    # Directed cases the random plans reach only by luck, then the health checks.
    play(host, port, [("handshake", "SCRAM-SHA-256", 1), ("first", "alice", True, "none", 0, 1),
                      ("other", 0)])
    play(host, port, [("handshake", "SCRAM-SHA-256", 0), ("first", "alice", True, "none", 0, 0),
                      ("final", "none", 0, 0), ("other", 1)])
    play(host, port, [("handshake", "PLAIN", 1), ("first", "carol", True, "none", 0, 2),
                      ("other", 3)])
    play(host, port, [("handshake", "SCRAM-SHA-512", 1), ("first", "bob", False, "none", 0, 2),
                      ("final", "none", 0, 2)])
    honest_login(host, port)
    n = node.nodes[node.controller_ids[0]]
    assert n.proc is not None and n.proc.poll() is None
    log = (n.dir / "server.log").read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
