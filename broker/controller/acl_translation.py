"""CreateAcls and DeleteAcls between the wire and the controller (``kraft.controller.
acl_control``), both ways, in the shape of ``translation.py``: ``None`` as a reply means this
node is not the active controller (NOT_CONTROLLER in every entry)."""

from __future__ import annotations

from typing import Any

from broker.protocol.messages import create_acls, delete_acls
from kraft.acls import AclFilter, StandardAcl
from kraft.controller.acl_control import AclCreationResult, AclDeletionResult
from storage.error_codes import ErrorCode

__all__ = ["create_acls_request", "create_acls_response", "delete_acls_request",
           "delete_acls_response", "to_standard_acl"]


def to_standard_acl(c: Any) -> StandardAcl:
    """A CreateAcls creation as a ``StandardAcl`` (unknown codes become UNKNOWN, which the
    controller refuses)."""
    flt = AclFilter.of(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal,
                       c.host, c.operation, c.permission_type)
    return StandardAcl(flt.resource_type, c.resource_name, flt.pattern_type, c.principal,
                       c.host, flt.operation, flt.permission)


def create_acls_request(request: Any, version: int) -> list[StandardAcl]:
    return [to_standard_acl(c) for c in request.creations]


def create_acls_response(request: Any, reply: list[AclCreationResult] | None,
                         version: int) -> Any:
    resp = create_acls.RESPONSE
    if reply is None:
        results = [resp.AclCreationResult(error_code=ErrorCode.NOT_CONTROLLER)
                   for _ in request.creations]
    else:
        results = [resp.AclCreationResult(error_code=r.error_code, error_message=r.error_message)
                   for r in reply]
    return resp.cls(throttle_time_ms=0, results=results)


def filter_of(f: Any) -> AclFilter:
    return AclFilter.of(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter,
                        f.principal_filter, f.host_filter, f.operation, f.permission_type)


def delete_acls_request(request: Any, version: int) -> list[AclFilter]:
    return [filter_of(f) for f in request.filters]


def delete_acls_response(request: Any, reply: list[AclDeletionResult] | None,
                         version: int) -> Any:
    resp = delete_acls.RESPONSE
    if reply is None:
        results = [resp.DeleteAclsFilterResult(error_code=ErrorCode.NOT_CONTROLLER)
                   for _ in request.filters]
    else:
        results = [resp.DeleteAclsFilterResult(
            error_code=r.error_code, error_message=r.error_message,
            matching_acls=[resp.DeleteAclsMatchingAcl(
                error_code=0, resource_type=int(a.resource_type),
                resource_name=a.resource_name, pattern_type=int(a.pattern_type),
                principal=a.principal, host=a.host, operation=int(a.operation),
                permission_type=int(a.permission)) for a in r.deleted])
            for r in reply]
    return resp.cls(throttle_time_ms=0, filter_results=results)
