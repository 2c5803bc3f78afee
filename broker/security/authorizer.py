"""The authorizer: Kafka's StandardAuthorizer rules over the ACLs of the metadata image. Pure.

``authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`` turns it on
(``AuthorizerConfig.from_config``). A decision for (principal, host, operation, resource):

1. a principal named in ``super.users`` may do anything;
2. the ACLs that apply to the resource are its LITERAL ACLs of that exact name, the LITERAL
   ``*`` wildcard ACLs of its type, and the PREFIXED ACLs whose name starts the resource's;
3. of those, an ACL matches when its principal is the principal or ``User:*``, its host is the
   client's address or ``*``, and its operation is the operation or ALL, or, for an ALLOW ACL
   only, one that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
   implies DESCRIBE_CONFIGS);
4. a matching DENY wins over everything; else a matching ALLOW allows; else, when the resource
   has any ACL at all (for anyone), the answer is no; with none, ``allow.everyone.if.no.acl.found``
   decides (false by default).

``Authorizer`` indexes an ``AclsImage`` once (literal names and prefixes in dicts, so a
decision costs a few dict lookups per character of the resource name, not a scan) and is
rebuilt when the image's ACLs change (``AuthorizerHolder``). A denial is logged at INFO once per
distinct (principal, host, operation, resource) while the ACLs stay the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kraft.acls import (
    WILDCARD,
    WILDCARD_PRINCIPAL,
    AclOperation,
    AclPermissionType,
    AclsImage,
    PatternType,
    ResourceType,
    StandardAcl,
)

__all__ = [
    "STANDARD_AUTHORIZER",
    "Authorizer",
    "AuthorizerConfig",
    "AuthorizerHolder",
    "implied_by",
]

logger = logging.getLogger(__name__)

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Earlier names of Kafka's authorizer that configurations still carry.
_ACCEPTED_NAMES = frozenset({STANDARD_AUTHORIZER, "kafka.security.authorizer.AclAuthorizer",
                             "kafka.security.auth.SimpleAclAuthorizer"})

_IMPLIES_DESCRIBE = frozenset({AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE,
                               AclOperation.DELETE, AclOperation.ALTER})
_IMPLIES_DESCRIBE_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS,
                                       AclOperation.ALTER_CONFIGS})


_ALL = int(AclOperation.ALL)
# operation -> the other operations whose ALLOW implies it, as ints.
_IMPLIES = {int(AclOperation.DESCRIBE): frozenset(int(o) for o in _IMPLIES_DESCRIBE),
            int(AclOperation.DESCRIBE_CONFIGS): frozenset(
                int(o) for o in _IMPLIES_DESCRIBE_CONFIGS)}


def implied_by(operation: AclOperation) -> frozenset[AclOperation]:
    """The operations whose ALLOW ACL also allows ``operation`` (besides ALL)."""
    if operation == AclOperation.DESCRIBE:
        return _IMPLIES_DESCRIBE
    if operation == AclOperation.DESCRIBE_CONFIGS:
        return _IMPLIES_DESCRIBE_CONFIGS
    return frozenset({operation})


@dataclass(frozen=True, slots=True)
class AuthorizerConfig:
    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False

    @staticmethod
    def from_config(get: Callable[[str], object]) -> AuthorizerConfig | None:
        """The authorizer's settings from a node's configuration, or None when
        ``authorizer.class.name`` is empty (no authorizer: every request is allowed). Kafka's
        ``super.users`` is a semicolon-separated list of principals."""
        name = str(get("authorizer.class.name") or "").strip()
        if not name:
            return None
        if name not in _ACCEPTED_NAMES:
            raise ValueError(f"authorizer.class.name {name!r} is not supported (only "
                             f"{STANDARD_AUTHORIZER})")
        raw = str(get("super.users") or "")
        supers = frozenset(p.strip() for p in raw.split(";") if p.strip())
        return AuthorizerConfig(supers, bool(get("allow.everyone.if.no.acl.found")))


class Authorizer:
    """Decisions over one set of ACLs. Decisions are remembered (up to ``CACHE_SIZE``) until
    the ACLs change, which builds a new ``Authorizer``."""

    CACHE_SIZE = 65536
    __slots__ = ("_cache", "_config", "_literal", "_prefixed", "_types_with_acls")

    def __init__(self, acls: Iterable[StandardAcl], config: AuthorizerConfig) -> None:
        self._config = config
        # (resource type as int, name) -> entries (principal, host, operation, deny) as plain
        # values: enum members hash in Python, which a check on every request cannot afford.
        literal: dict[tuple[int, str], list[tuple[str, str, int, bool]]] = {}
        prefixed: dict[tuple[int, str], list[tuple[str, str, int, bool]]] = {}
        types: set[int] = set()
        for acl in acls:
            if acl.pattern_type == PatternType.LITERAL:
                table = literal
            elif acl.pattern_type == PatternType.PREFIXED:
                table = prefixed
            else:
                continue
            if acl.permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
                continue
            entry = (acl.principal, acl.host, int(acl.operation),
                     acl.permission == AclPermissionType.DENY)
            table.setdefault((int(acl.resource_type), acl.resource_name), []).append(entry)
            types.add(int(acl.resource_type))
        self._literal = literal
        self._prefixed = prefixed
        self._types_with_acls = frozenset(types)
        self._cache: dict[tuple[str, str, int, int, str], bool] = {}

    @property
    def config(self) -> AuthorizerConfig:
        return self._config

    def is_super_user(self, principal: str) -> bool:
        return principal in self._config.super_users

    def _applicable(self, rtype: int, name: str) -> list[tuple[str, str, int, bool]]:
        out: list[tuple[str, str, int, bool]] = []
        literal = self._literal
        prefixed = self._prefixed
        found = literal.get((rtype, name))
        if found:
            out.extend(found)
        if name != WILDCARD:
            found = literal.get((rtype, WILDCARD))
            if found:
                out.extend(found)
        if prefixed:
            for i in range(1, len(name) + 1):
                found = prefixed.get((rtype, name[:i]))
                if found:
                    out.extend(found)
        return out

    def authorize(self, principal: str, host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        """May ``principal`` (``User:alice``) connecting from ``host`` (an IP address) do
        ``operation`` on the resource?"""
        key = (principal, host, int(operation), int(resource_type), name)
        cache = self._cache
        known = cache.get(key)
        if known is not None:
            return known
        result = self._decide(principal, host, key[2], key[3], name)
        if not result:
            # Kafka's authorizer log line; once per distinct decision while the ACLs stay.
            logger.info("Principal = %s is Denied operation = %s from host = %s on resource "
                        "= %s:%s", principal, AclOperation(key[2]).name, host,
                        ResourceType(key[3]).name, name)
        if len(cache) >= self.CACHE_SIZE:
            cache.clear()
        cache[key] = result
        return result

    def _decide(self, principal: str, host: str, op: int, rtype: int, name: str) -> bool:
        if principal in self._config.super_users:
            return True
        if rtype not in self._types_with_acls:
            return self._config.allow_everyone_if_no_acl_found
        entries = self._applicable(rtype, name)
        if not entries:
            return self._config.allow_everyone_if_no_acl_found
        allowed = False
        implies = _IMPLIES.get(op)
        for acl_principal, acl_host, acl_op, deny in entries:
            if acl_principal != principal and acl_principal != WILDCARD_PRINCIPAL:
                continue
            if acl_host != WILDCARD and acl_host != host:
                continue
            if deny:
                if acl_op == _ALL or acl_op == op:
                    return False
            elif acl_op == _ALL or acl_op == op or (implies is not None and acl_op in implies):
                allowed = True
        return allowed

    def authorize_any(self, principal: str, host: str, operation: AclOperation,
                      resource_type: ResourceType) -> bool:
        """Kafka's ``authorizeByResourceType``: may the principal do ``operation`` on at least
        one resource of the type? Yes for a super user; else some ALLOW ACL (LITERAL or
        PREFIXED) for the principal names a pattern that no matching DENY covers (a DENY of the
        same literal name, a DENY prefix of it, or the DENY wildcard); with no ACL of that type
        at all, ``allow.everyone.if.no.acl.found``."""
        if principal in self._config.super_users:
            return True
        rtype, op = int(resource_type), int(operation)
        if rtype not in self._types_with_acls:
            return self._config.allow_everyone_if_no_acl_found
        implies = _IMPLIES.get(op, frozenset())
        # (is prefixed, resource name) of the matching DENY and ALLOW ACLs.
        denies: list[tuple[bool, str]] = []
        allows: list[tuple[bool, str]] = []
        for is_prefix, table in ((False, self._literal), (True, self._prefixed)):
            for (t, name), entries in table.items():
                if t != rtype:
                    continue
                for acl_principal, acl_host, acl_op, deny in entries:
                    if acl_principal not in (principal, WILDCARD_PRINCIPAL) or (
                            acl_host not in (WILDCARD, host)):
                        continue
                    if deny:
                        if acl_op in (_ALL, op):
                            denies.append((is_prefix, name))
                    elif acl_op in (_ALL, op) or acl_op in implies:
                        allows.append((is_prefix, name))

        def denied(allow_prefix: bool, allow_name: str) -> bool:
            for deny_prefix, deny_name in denies:
                if not deny_prefix:
                    if deny_name == WILDCARD:
                        return True
                    if not allow_prefix and deny_name == allow_name:
                        return True
                elif allow_name.startswith(deny_name):
                    return True
            return False

        return any(not denied(p, n) for p, n in allows)


class AuthorizerHolder:
    """The authorizer for the current image: rebuilt only when the image's ACLs object
    changed (images share an unchanged ``AclsImage``)."""

    __slots__ = ("_acls", "_authorizer", "_config", "_image")

    def __init__(self, config: AuthorizerConfig, image: Callable[[], object]) -> None:
        self._config = config
        self._image = image
        self._acls: AclsImage | None = None
        self._authorizer = Authorizer((), config)

    @property
    def config(self) -> AuthorizerConfig:
        return self._config

    def current(self) -> Authorizer:
        acls: AclsImage = self._image().acls  # type: ignore[attr-defined]
        if acls is not self._acls:
            self._authorizer = Authorizer(acls.by_id.values(), self._config)
            self._acls = acls
        return self._authorizer
