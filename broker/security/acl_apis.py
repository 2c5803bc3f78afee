"""CreateAcls, DescribeAcls and DeleteAcls on a broker (Kafka's AclApis).

Without an authorizer every answer is SECURITY_DISABLED, as in Kafka. With one, the principal
needs DESCRIBE on the cluster to describe and ALTER on the cluster to create or delete
(CLUSTER_AUTHORIZATION_FAILED otherwise). DescribeAcls reads this broker's metadata image;
CreateAcls and DeleteAcls go to the active controller (``ControllerForwarder``), which writes
AccessControlEntryRecord / RemoveAccessControlEntryRecord, and are answered once this broker's
image shows the change (so a DescribeAcls to the same broker sees it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.admin.forwarding import ControllerForwarder
from broker.controller.acl_translation import filter_of, to_standard_acl
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_acls, delete_acls, describe_acls
from broker.security.api_authz import AuthzChecker
from kraft.acls import AclOperation, ResourceType, StandardAcl, validate_new_acl
from kraft.image import MetadataImage

__all__ = ["AclApis"]

_CLUSTER = "kafka-cluster"
_DISABLED = "No Authorizer is configured."


class AclApis:
    def __init__(self, image: Callable[[], MetadataImage], forwarder: ControllerForwarder,
                 checker: AuthzChecker | None) -> None:
        self._image = image
        self._forwarder = forwarder
        self._checker = checker
        self.handlers: dict[int, Any] = {
            ApiKey.DESCRIBE_ACLS: self.describe_acls,
            ApiKey.CREATE_ACLS: self.create_acls,
            ApiKey.DELETE_ACLS: self.delete_acls,
        }

    def _allowed(self, ctx: Any, op: AclOperation) -> bool:
        assert self._checker is not None
        return self._checker.allowed(ctx, op, ResourceType.CLUSTER, _CLUSTER)

    # -- DescribeAcls (29) ---------------------------------------------------------------

    def describe_acls(self, ctx: Any, header: Any, request: Any) -> Any:
        R = describe_acls.RESPONSE
        if self._checker is None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.SECURITY_DISABLED,
                         error_message=_DISABLED)
        if not self._allowed(ctx, AclOperation.DESCRIBE):
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        flt = filter_of(request)
        reason = flt.unknown_reason()
        if reason is not None:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                         error_message=reason)
        grouped: dict[tuple[int, str, int], list[StandardAcl]] = {}
        for _, acl in self._image().acls.matching(flt):
            key = (int(acl.resource_type), acl.resource_name, int(acl.pattern_type))
            grouped.setdefault(key, []).append(acl)
        resources = [
            R.DescribeAclsResource(
                resource_type=rtype, resource_name=name, pattern_type=ptype,
                acls=[R.AclDescription(principal=a.principal, host=a.host,
                                       operation=int(a.operation),
                                       permission_type=int(a.permission))
                      for a in sorted(acls)])
            for (rtype, name, ptype), acls in sorted(grouped.items())]
        return R.cls(throttle_time_ms=0, error_code=0, resources=resources)

    # -- CreateAcls (30) -----------------------------------------------------------------

    async def create_acls(self, ctx: Any, header: Any, request: Any) -> Any:
        R = create_acls.RESPONSE
        n = len(request.creations)
        if self._checker is None or not self._allowed(ctx, AclOperation.ALTER):
            code = (ErrorCode.SECURITY_DISABLED if self._checker is None
                    else ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
            msg = _DISABLED if self._checker is None else None
            return R.cls(throttle_time_ms=0, results=[
                R.AclCreationResult(error_code=code, error_message=msg) for _ in range(n)])
        wanted = [to_standard_acl(c) for c in request.creations]
        valid = [a for a in wanted if validate_new_acl(a) is None]

        def timed_out() -> Any:
            return R.cls(results=[R.AclCreationResult(error_code=ErrorCode.REQUEST_TIMED_OUT)
                                  for _ in range(n)])

        def shown(resp: Any) -> Any:
            if not valid:
                return None

            def visible(image: MetadataImage) -> bool:
                present = set(image.acls.by_id.values())
                return all(a in present for a in valid)
            return "created ACLs", visible

        return await self._forwarder.forward(
            ApiKey.CREATE_ACLS, request, timeout_ms=None, timed_out=timed_out,
            errors_in="results", shown=shown)

    # -- DeleteAcls (31) -----------------------------------------------------------------

    async def delete_acls(self, ctx: Any, header: Any, request: Any) -> Any:
        R = delete_acls.RESPONSE
        n = len(request.filters)
        if self._checker is None or not self._allowed(ctx, AclOperation.ALTER):
            code = (ErrorCode.SECURITY_DISABLED if self._checker is None
                    else ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
            msg = _DISABLED if self._checker is None else None
            return R.cls(throttle_time_ms=0, filter_results=[
                R.DeleteAclsFilterResult(error_code=code, error_message=msg)
                for _ in range(n)])

        def timed_out() -> Any:
            return R.cls(filter_results=[
                R.DeleteAclsFilterResult(error_code=ErrorCode.REQUEST_TIMED_OUT)
                for _ in range(n)])

        def shown(resp: Any) -> Any:
            deleted = {to_standard_acl(_as_creation(m)) for r in resp.filter_results
                       for m in r.matching_acls}
            if not deleted:
                return None

            def gone(image: MetadataImage) -> bool:
                return deleted.isdisjoint(image.acls.by_id.values())
            return "deleted ACLs", gone

        return await self._forwarder.forward(
            ApiKey.DELETE_ACLS, request, timeout_ms=None, timed_out=timed_out,
            errors_in="filter_results", shown=shown)


class _as_creation:
    """A DeleteAcls matching ACL read as a CreateAcls creation (same fields, other names)."""

    def __init__(self, m: Any) -> None:
        self.resource_type = m.resource_type
        self.resource_name = m.resource_name
        self.resource_pattern_type = m.pattern_type
        self.principal = m.principal
        self.host = m.host
        self.operation = m.operation
        self.permission_type = m.permission_type
