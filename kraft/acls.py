"""Access control lists as the metadata holds them (Kafka's ``StandardAcl``, ``AclBinding`` and
``AclBindingFilter``), and the ACL part of the metadata image.

An ACL is a resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal, host,
operation, ALLOW or DENY). Each lives in the metadata log as an AccessControlEntryRecord under
a Uuid and goes with a RemoveAccessControlEntryRecord naming that id (``kraft.delta``).
Filters (DescribeAcls, DeleteAcls) follow Kafka's ``ResourcePatternFilter.matches`` and
``AccessControlEntryFilter.matches``: ANY matches every value, a null name/principal/host every
value, and the MATCH pattern type every pattern that would apply to the named resource
(the literal name, the ``*`` wildcard, and every prefix of it). Pure data; the authorizer that
decides with them is ``broker/security/authorizer.py``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "CLUSTER_NAME",
    "WILDCARD",
    "WILDCARD_PRINCIPAL",
    "AclFilter",
    "AclOperation",
    "AclPermissionType",
    "AclsImage",
    "PatternType",
    "ResourceType",
    "StandardAcl",
    "validate_new_acl",
]

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class AclPermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


def _enum_value(cls: type[enum.IntEnum], value: int) -> enum.IntEnum:
    try:
        return cls(value)
    except ValueError:
        return cls(0)  # UNKNOWN, as Kafka's fromCode


@dataclass(frozen=True, slots=True, order=True)
class StandardAcl:
    """One ACL. ``principal`` is Kafka's string form (``User:alice``, ``User:*``)."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    @staticmethod
    def from_record(r: Any) -> StandardAcl:
        return StandardAcl(
            ResourceType(_enum_value(ResourceType, r.resource_type)), r.resource_name,
            PatternType(_enum_value(PatternType, r.pattern_type)), r.principal, r.host,
            AclOperation(_enum_value(AclOperation, r.operation)),
            AclPermissionType(_enum_value(AclPermissionType, r.permission_type)))

    def to_record(self, acl_id: uuid.UUID) -> Any:
        from kraft.metadata_records import AccessControlEntryRecord
        return AccessControlEntryRecord(
            id=acl_id, resource_type=int(self.resource_type), resource_name=self.resource_name,
            pattern_type=int(self.pattern_type), principal=self.principal, host=self.host,
            operation=int(self.operation), permission_type=int(self.permission))

    def __str__(self) -> str:
        return (f"(principal={self.principal}, host={self.host}, "
                f"operation={self.operation.name}, permissionType={self.permission.name}) on "
                f"ResourcePattern(resourceType={self.resource_type.name}, "
                f"name={self.resource_name}, patternType={self.pattern_type.name})")


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's ``AclBindingFilter``: None for a name, principal or host matches any."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermissionType = AclPermissionType.ANY

    @staticmethod
    def of(resource_type: int, resource_name: str | None, pattern_type: int,
           principal: str | None, host: str | None, operation: int,
           permission: int) -> AclFilter:
        """From wire integers; values we do not know become UNKNOWN (``unknown_reason``)."""
        return AclFilter(
            ResourceType(_enum_value(ResourceType, resource_type)), resource_name,
            PatternType(_enum_value(PatternType, pattern_type)), principal, host,
            AclOperation(_enum_value(AclOperation, operation)),
            AclPermissionType(_enum_value(AclPermissionType, permission)))

    def unknown_reason(self) -> str | None:
        """Why Kafka's ``isUnknown()`` holds for this filter, or None."""
        for name, value in (("resource type", self.resource_type),
                            ("pattern type", self.pattern_type),
                            ("operation", self.operation),
                            ("permission type", self.permission)):
            if value == 0:
                return f"The filter has an unknown {name}."
        return None

    def matches_pattern(self, acl: StandardAcl) -> bool:
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        pt = self.pattern_type
        if pt not in (PatternType.ANY, PatternType.MATCH) and pt != acl.pattern_type:
            return False
        name = self.resource_name
        if name is None:
            return True
        if pt == PatternType.ANY or pt == acl.pattern_type:
            return name == acl.resource_name
        # MATCH: the patterns that apply to the resource named ``name``.
        if acl.pattern_type == PatternType.LITERAL:
            return name == acl.resource_name or acl.resource_name == WILDCARD
        if acl.pattern_type == PatternType.PREFIXED:
            return name.startswith(acl.resource_name)
        return False

    def matches_entry(self, acl: StandardAcl) -> bool:
        return ((self.principal is None or self.principal == acl.principal)
                and (self.host is None or self.host == acl.host)
                and (self.operation == AclOperation.ANY or self.operation == acl.operation)
                and (self.permission == AclPermissionType.ANY
                     or self.permission == acl.permission))

    def matches(self, acl: StandardAcl) -> bool:
        return self.matches_pattern(acl) and self.matches_entry(acl)


def validate_new_acl(acl: StandardAcl) -> str | None:
    """Why ``acl`` cannot be created (an INVALID_REQUEST message), or None. Kafka's checks of
    AclControlManager.validateNewAcl and of the broker's CreateAcls."""
    if acl.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {acl.resource_type.name}"
    if acl.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {acl.pattern_type.name}"
    if acl.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {acl.operation.name}"
    if acl.permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
        return f"Invalid permissionType {acl.permission.name}"
    if not acl.resource_name:
        return "Invalid empty resource name specified"
    if acl.resource_type == ResourceType.CLUSTER and acl.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    kind, sep, _ = acl.principal.partition(":")
    if not sep or not kind:
        return f"Could not parse principal from `{acl.principal}` (no colon is present " \
               "separating the principal type from the principal name)"
    if not acl.host:
        return "Invalid empty host specified"
    return None


_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AclsImage:
    """Every ACL by its id."""

    by_id: Mapping[uuid.UUID, StandardAcl] = field(default_factory=lambda: _EMPTY)

    def matching(self, flt: AclFilter) -> Iterator[tuple[uuid.UUID, StandardAcl]]:
        for acl_id, acl in self.by_id.items():
            if flt.matches(acl):
                yield acl_id, acl

    def find(self, acl: StandardAcl) -> uuid.UUID | None:
        for acl_id, existing in self.by_id.items():
            if existing == acl:
                return acl_id
        return None
