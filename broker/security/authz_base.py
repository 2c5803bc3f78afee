"""What the per-API authorization rules share (``broker/security/api_authz.py`` applies
them): ``AuthzChecker`` (decisions for a request's principal and address over the image's
ACLs), a rule's outcomes (``Reject``: answer this instead; ``Split``: run the handler on the
trimmed request, then patch its answer), Kafka's authorization error codes, and answers with an
error code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.protocol.api_keys import API_SPECS
from broker.protocol.errors import ErrorCode
from broker.security.authorizer import AuthorizerHolder
from kraft.acls import CLUSTER_NAME, AclOperation, ResourceType
from kraft.image import MetadataImage

__all__ = [
    "CLUSTER", "CLUSTER_DENIED", "GROUP", "GROUP_DENIED", "RESOURCE_OPERATIONS", "TOPIC",
    "TOPIC_DENIED", "TXN", "TXN_DENIED", "AuthzChecker", "Op", "Reject", "Rule", "Split",
    "error_response", "response_of",
]

Op = AclOperation
TOPIC, GROUP, CLUSTER, TXN = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER,
                              ResourceType.TRANSACTIONAL_ID)
TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


# The operations of each resource type (Kafka's AclEntry.supportedOperations).
RESOURCE_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE,
                         AclOperation.DESCRIBE, AclOperation.DELETE, AclOperation.ALTER,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.CLUSTER_ACTION,
                           AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
                           AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                           AclOperation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
}


class AuthzChecker:
    """Decisions for a request's principal and address, over the current image's ACLs."""

    def __init__(self, holder: AuthorizerHolder, image: Callable[[], MetadataImage]) -> None:
        self.holder = holder
        self.image = image

    @staticmethod
    def _who(ctx: Any) -> tuple[str, str]:
        peer = ctx.peer
        host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
        return str(ctx.principal), host

    def allowed(self, ctx: Any, op: AclOperation, rtype: ResourceType, name: str) -> bool:
        principal, host = self._who(ctx)
        return self.holder.current().authorize(principal, host, op, rtype, name)

    def allowed_any(self, ctx: Any, op: AclOperation, rtype: ResourceType) -> bool:
        principal, host = self._who(ctx)
        return self.holder.current().authorize_any(principal, host, op, rtype)

    def operations(self, ctx: Any, rtype: ResourceType, name: str) -> int:
        """Kafka's authorized-operations bit field (bit ``1 << operation``) of the resource
        type's operations the principal may do on the resource (Metadata, DescribeCluster,
        DescribeGroups, DescribeTopicPartitions with authorized operations asked for)."""
        bits = 0
        for op in RESOURCE_OPERATIONS.get(rtype, ()):
            if self.allowed(ctx, op, rtype, name):
                bits |= 1 << int(op)
        return bits

    def cluster(self, ctx: Any, op: AclOperation) -> bool:
        return self.allowed(ctx, op, CLUSTER, CLUSTER_NAME)


Rule = Callable[[AuthzChecker, Any, Any, Any], Any]
"""``rule(checker, ctx, header, request)`` -> None (go ahead), ``Reject`` or ``Split``."""


@dataclass(slots=True)
class Reject:
    response: Any


@dataclass(slots=True)
class Split:
    """Run the handler on the (already trimmed) request, then ``patch`` its answer."""

    patch: Callable[[Any], Any]


def response_of(header: Any) -> Any:
    return API_SPECS[header.api_key].response


def error_response(header: Any, code: int) -> Any:
    """The API's answer with ``code`` at the top; an answer without a top-level error code at
    this version stays empty (its APIs get a rule of their own that says more)."""
    R = response_of(header)
    if any(f.name == "error_code" and header.api_version in f.versions for f in R.fields):
        return R.cls(error_code=code)
    return R.cls()
