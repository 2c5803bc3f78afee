"""broker/security/authorizer.py: Kafka's StandardAuthorizer decisions, by hand-built cases
and against a brute-force reference over drawn ACL sets (Hypothesis); kraft/acls.py filters."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.security.authorizer import Authorizer, AuthorizerConfig, AuthorizerHolder
from kraft.acls import (
    AclFilter,
    AclOperation,
    AclPermissionType,
    AclsImage,
    PatternType,
    ResourceType,
    StandardAcl,
    validate_new_acl,
)
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
Op = AclOperation
ALICE, BOB = "User:alice", "User:bob"


def acl(rtype: ResourceType, name: str, ptype: PatternType, principal: str, op: AclOperation,
        perm: AclPermissionType, host: str = "*") -> StandardAcl:
    return StandardAcl(rtype, name, ptype, principal, host, op, perm)


def authz(*acls: StandardAcl, supers: tuple[str, ...] = (),
          everyone: bool = False) -> Authorizer:
    return Authorizer(acls, AuthorizerConfig(frozenset(supers), everyone))


def test_no_acls_denies_unless_allow_everyone() -> None:
    assert not authz().authorize(ALICE, "1.2.3.4", Op.READ, T, "t")
    assert authz(everyone=True).authorize(ALICE, "1.2.3.4", Op.READ, T, "t")


def test_super_user_may_do_anything_even_against_a_deny() -> None:
    a = authz(acl(T, "t", LIT, ALICE, Op.ALL, DENY), supers=(ALICE,))
    assert a.authorize(ALICE, "h", Op.WRITE, T, "t")
    assert not a.authorize(BOB, "h", Op.WRITE, T, "t")


def test_an_acl_for_someone_else_makes_the_resource_guarded() -> None:
    a = authz(acl(T, "t", LIT, BOB, Op.READ, ALLOW), everyone=True)
    assert not a.authorize(ALICE, "h", Op.READ, T, "t")  # the resource has ACLs: no default
    assert a.authorize(ALICE, "h", Op.READ, T, "other")  # no ACL here: allow.everyone
    assert a.authorize(BOB, "h", Op.READ, T, "t")


def test_deny_wins_over_allow_and_wildcards() -> None:
    a = authz(acl(T, "*", LIT, "User:*", Op.ALL, ALLOW), acl(T, "sec", PRE, ALICE, Op.READ, DENY))
    assert a.authorize(ALICE, "h", Op.READ, T, "public")
    assert not a.authorize(ALICE, "h", Op.READ, T, "secret")
    assert a.authorize(ALICE, "h", Op.WRITE, T, "secret")
    assert a.authorize(BOB, "h", Op.READ, T, "secret")


def test_implied_operations_only_for_allow() -> None:
    a = authz(acl(T, "t", LIT, ALICE, Op.WRITE, ALLOW), acl(G, "g", LIT, ALICE, Op.ALTER_CONFIGS,
                                                           ALLOW))
    assert a.authorize(ALICE, "h", Op.DESCRIBE, T, "t")
    assert not a.authorize(ALICE, "h", Op.READ, T, "t")
    assert a.authorize(ALICE, "h", Op.DESCRIBE_CONFIGS, G, "g")
    # A DENY READ does not deny DESCRIBE.
    b = authz(acl(T, "t", LIT, ALICE, Op.READ, DENY), acl(T, "t", LIT, ALICE, Op.DESCRIBE, ALLOW))
    assert b.authorize(ALICE, "h", Op.DESCRIBE, T, "t")
    assert not b.authorize(ALICE, "h", Op.READ, T, "t")


def test_hosts_and_prefixes_and_literal_prefix_names() -> None:
    a = authz(acl(T, "foo", LIT, ALICE, Op.READ, ALLOW, host="10.0.0.1"),
              acl(T, "fo", PRE, ALICE, Op.WRITE, ALLOW))
    assert a.authorize(ALICE, "10.0.0.1", Op.READ, T, "foo")
    assert not a.authorize(ALICE, "10.0.0.2", Op.READ, T, "foo")
    assert not a.authorize(ALICE, "10.0.0.1", Op.READ, T, "foobar")  # literal is not a prefix
    assert a.authorize(ALICE, "h", Op.WRITE, T, "foobar")
    assert not a.authorize(ALICE, "h", Op.WRITE, T, "f")


def test_authorize_any_of_a_type() -> None:
    a = authz(acl(T, "a", PRE, ALICE, Op.WRITE, ALLOW))
    assert a.authorize_any(ALICE, "h", Op.WRITE, T)
    assert not a.authorize_any(BOB, "h", Op.WRITE, T)
    b = authz(acl(T, "a", PRE, ALICE, Op.WRITE, ALLOW), acl(T, "*", LIT, ALICE, Op.WRITE, DENY))
    assert not b.authorize_any(ALICE, "h", Op.WRITE, T)
    c = authz(acl(T, "ab", LIT, ALICE, Op.WRITE, ALLOW), acl(T, "a", PRE, ALICE, Op.ALL, DENY))
    assert not c.authorize_any(ALICE, "h", Op.WRITE, T)
    assert authz(everyone=True).authorize_any(ALICE, "h", Op.WRITE, T)


def test_config_from_properties() -> None:
    props = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
             "super.users": "User:admin; User:ops", "allow.everyone.if.no.acl.found": True}
    cfg = AuthorizerConfig.from_config(props.get)
    assert cfg == AuthorizerConfig(frozenset({"User:admin", "User:ops"}), True)
    assert AuthorizerConfig.from_config({"authorizer.class.name": ""}.get) is None
    with pytest.raises(ValueError):
        AuthorizerConfig.from_config({"authorizer.class.name": "com.example.Mine"}.get)


def test_holder_rebuilds_only_when_the_acls_change() -> None:
    img = MetadataImage()
    holder = AuthorizerHolder(AuthorizerConfig(), lambda: img)
    first = holder.current()
    assert holder.current() is first
    d = MetadataDelta(img)
    d.replay(18, acl(T, "t", LIT, ALICE, Op.READ, ALLOW).to_record(uuid.uuid4()))
    img = d.apply()
    assert holder.current() is not first
    assert holder.current().authorize(ALICE, "h", Op.READ, T, "t")


def test_filters_match_like_kafka() -> None:
    lit = acl(T, "foo", LIT, ALICE, Op.READ, ALLOW)
    star = acl(T, "*", LIT, ALICE, Op.READ, ALLOW)
    pre = acl(T, "fo", PRE, ALICE, Op.READ, ALLOW)
    match = AclFilter(T, "foo", PatternType.MATCH)
    assert all(match.matches(x) for x in (lit, star, pre))
    assert not AclFilter(T, "bar", PatternType.MATCH).matches(pre)
    assert AclFilter(T, "fo", PatternType.ANY).matches(pre)
    assert not AclFilter(T, "foo", PatternType.ANY).matches(pre)
    assert not AclFilter(T, "foo", PRE).matches(lit)
    assert AclFilter(ResourceType.ANY, None, PatternType.ANY, ALICE).matches(pre)
    assert not AclFilter(permission=DENY).matches(pre)
    assert AclFilter.of(2, None, 9, None, None, 1, 1).unknown_reason() is not None
    img = AclsImage({uuid.UUID(int=1): lit, uuid.UUID(int=2): pre})
    assert [a for _, a in img.matching(AclFilter(pattern_type=PRE))] == [pre]


def test_validate_new_acl() -> None:
    assert validate_new_acl(acl(T, "t", LIT, ALICE, Op.READ, ALLOW)) is None
    assert validate_new_acl(acl(T, "t", PatternType.MATCH, ALICE, Op.READ, ALLOW))
    assert validate_new_acl(acl(C, "other", LIT, ALICE, Op.ALTER, ALLOW))
    assert validate_new_acl(acl(T, "t", LIT, "alice", Op.READ, ALLOW))
    assert validate_new_acl(acl(T, "t", LIT, ALICE, Op.ANY, ALLOW))


# --- property: the indexed authorizer against a brute-force reference ----------------------

NAMES = ("a", "ab", "abc", "b", "ba", "*")
PRINCIPALS = (ALICE, BOB, "User:*")
HOSTS = ("*", "10.0.0.1", "10.0.0.2")
OPS = [o for o in AclOperation if o not in (Op.UNKNOWN, Op.ANY)]
TYPES = (T, G, C)


def reference(acls: list[StandardAcl], cfg: AuthorizerConfig, principal: str, host: str,
              op: AclOperation, rtype: ResourceType, name: str) -> bool:
    """Kafka's rule, spelled out without any index: every ACL is looked at."""
    if principal in cfg.super_users:
        return True
    on_resource = []
    for a in acls:
        if a.resource_type != rtype:
            continue
        literal = a.pattern_type == LIT and a.resource_name in (name, "*")
        prefix = a.pattern_type == PRE and name.startswith(a.resource_name)
        if literal or prefix:
            on_resource.append(a)
    if not on_resource:
        return cfg.allow_everyone_if_no_acl_found
    matching = [a for a in on_resource
                if a.principal in (principal, "User:*") and a.host in (host, "*")]
    if any(a.permission == DENY and a.operation in (op, Op.ALL) for a in matching):
        return False
    implied = {Op.DESCRIBE: {Op.DESCRIBE, Op.READ, Op.WRITE, Op.DELETE, Op.ALTER},
               Op.DESCRIBE_CONFIGS: {Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS}}.get(op, {op})
    return any(a.permission == ALLOW and (a.operation == Op.ALL or a.operation in implied)
               for a in matching)


acl_strategy = st.builds(
    StandardAcl, st.sampled_from(TYPES), st.sampled_from(NAMES), st.sampled_from((LIT, PRE)),
    st.sampled_from(PRINCIPALS), st.sampled_from(HOSTS), st.sampled_from(OPS),
    st.sampled_from((ALLOW, DENY)))


@settings(max_examples=400, deadline=None)
@given(acls=st.lists(acl_strategy, max_size=12), everyone=st.booleans(),
       supers=st.sets(st.sampled_from((ALICE, BOB)), max_size=1),
       principal=st.sampled_from((ALICE, BOB)), host=st.sampled_from(HOSTS[1:]),
       op=st.sampled_from(OPS), rtype=st.sampled_from(TYPES),
       name=st.sampled_from(NAMES + ("abcd", "c")))
def test_authorize_matches_the_reference(acls: list[StandardAcl], everyone: bool,
                                         supers: set[str], principal: str, host: str,
                                         op: AclOperation, rtype: ResourceType,
                                         name: str) -> None:
    cfg = AuthorizerConfig(frozenset(supers), everyone)
    got = Authorizer(acls, cfg).authorize(principal, host, op, rtype, name)
    assert got == reference(acls, cfg, principal, host, op, rtype, name)


@settings(max_examples=200, deadline=None)
@given(acls=st.lists(acl_strategy, max_size=10), principal=st.sampled_from((ALICE, BOB)),
       op=st.sampled_from(OPS), rtype=st.sampled_from(TYPES))
def test_authorize_any_is_sound(acls: list[StandardAcl], principal: str, op: AclOperation,
                                rtype: ResourceType) -> None:
    """When some concrete resource name is allowed, authorize_any says yes; and when it says
    yes, the ALLOW it found names a resource that is allowed (for literal names)."""
    cfg = AuthorizerConfig()
    a = Authorizer(acls, cfg)
    any_allowed = a.authorize_any(principal, "10.0.0.1", op, rtype)
    concrete = [n for n in NAMES + ("abcd", "zz") if n != "*"
                and a.authorize(principal, "10.0.0.1", op, rtype, n)]
    if concrete:
        assert any_allowed
