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
rebuilt when the image's ACLs change (``AuthorizerHolder``).
"""

from __future__ import annotations

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

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Earlier names of Kafka's authorizer that configurations still carry.
_ACCEPTED_NAMES = frozenset({STANDARD_AUTHORIZER, "kafka.security.authorizer.AclAuthorizer",
                             "kafka.security.auth.SimpleAclAuthorizer"})

_IMPLIES_DESCRIBE = frozenset({AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE,
                               AclOperation.DELETE, AclOperation.ALTER})
_IMPLIES_DESCRIBE_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS,
                                       AclOperation.ALTER_CONFIGS})


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
    """Decisions over one set of ACLs."""

    __slots__ = ("_config", "_literal", "_prefixed", "_types_with_acls")

    def __init__(self, acls: Iterable[StandardAcl], config: AuthorizerConfig) -> None:
        self._config = config
        literal: dict[tuple[ResourceType, str], list[StandardAcl]] = {}
        prefixed: dict[tuple[ResourceType, str], list[StandardAcl]] = {}
        types: set[ResourceType] = set()
        for acl in acls:
            if acl.pattern_type == PatternType.LITERAL:
                literal.setdefault((acl.resource_type, acl.resource_name), []).append(acl)
            elif acl.pattern_type == PatternType.PREFIXED:
                prefixed.setdefault((acl.resource_type, acl.resource_name), []).append(acl)
            else:
                continue
            types.add(acl.resource_type)
        self._literal = literal
        self._prefixed = prefixed
        self._types_with_acls = frozenset(types)

    @property
    def config(self) -> AuthorizerConfig:
        return self._config

    def is_super_user(self, principal: str) -> bool:
        return principal in self._config.super_users

    def _applicable(self, resource_type: ResourceType, name: str) -> list[StandardAcl]:
        out: list[StandardAcl] = []
        literal = self._literal
        prefixed = self._prefixed
        found = literal.get((resource_type, name))
        if found:
            out.extend(found)
        if name != WILDCARD:
            found = literal.get((resource_type, WILDCARD))
            if found:
                out.extend(found)
        if prefixed:
            for i in range(1, len(name) + 1):
                found = prefixed.get((resource_type, name[:i]))
                if found:
                    out.extend(found)
        return out

    def authorize(self, principal: str, host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        """May ``principal`` (``User:alice``) connecting from ``host`` (an IP address) do
        ``operation`` on the resource?"""
        if principal in self._config.super_users:
            return True
        if resource_type not in self._types_with_acls:
            return self._config.allow_everyone_if_no_acl_found
        acls = self._applicable(resource_type, name)
        if not acls:
            return self._config.allow_everyone_if_no_acl_found
        allowed = False
        implies = implied_by(operation)
        for acl in acls:
            if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
                continue
            if acl.host != WILDCARD and acl.host != host:
                continue
            if acl.permission == AclPermissionType.DENY:
                if acl.operation == AclOperation.ALL or acl.operation == operation:
                    return False
            elif acl.permission == AclPermissionType.ALLOW and (
                    acl.operation == AclOperation.ALL or acl.operation in implies):
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
        if resource_type not in self._types_with_acls:
            return self._config.allow_everyone_if_no_acl_found
        implies = implied_by(operation)

        def applies(acl: StandardAcl) -> bool:
            return ((acl.principal == principal or acl.principal == WILDCARD_PRINCIPAL)
                    and (acl.host == WILDCARD or acl.host == host))

        denies: list[StandardAcl] = []
        allows: list[StandardAcl] = []
        for table in (self._literal, self._prefixed):
            for (rtype, _name), acls in table.items():
                if rtype != resource_type:
                    continue
                for acl in acls:
                    if not applies(acl):
                        continue
                    if acl.permission == AclPermissionType.DENY and (
                            acl.operation in (AclOperation.ALL, operation)):
                        denies.append(acl)
                    elif acl.permission == AclPermissionType.ALLOW and (
                            acl.operation == AclOperation.ALL or acl.operation in implies):
                        allows.append(acl)

        def denied(allow: StandardAcl) -> bool:
            for d in denies:
                if d.pattern_type == PatternType.LITERAL:
                    if d.resource_name == WILDCARD:
                        return True
                    if (allow.pattern_type == PatternType.LITERAL
                            and d.resource_name == allow.resource_name):
                        return True
                elif allow.resource_name.startswith(d.resource_name):
                    return True
            return False

        return any(not denied(a) for a in allows)


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
