"""The HTTP admin API's writes checked against the authorizer (when
``authorizer.class.name`` is set), with the operation Kafka would check for the same change
through its own API: creating a topic needs CREATE on the cluster or the topic (CreateTopics),
deleting it DELETE on the topic (DeleteTopics), changing it ALTER on the topic for new
partitions (CreatePartitions) and ALTER_CONFIGS on it for configs (IncrementalAlterConfigs),
a leader election ALTER on the cluster (ElectLeaders), and stopping a node ALTER on the
cluster. A refusal is 403 with Kafka's error name. Reads are not checked here.

The principal is ``http_auth.http_principal(request)``: who the HTTP authentication in front
of this check found (User:ANONYMOUS when it is off).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import orjson
from aiohttp import web

from broker.admin.http_auth import http_principal
from broker.admin.http_common import HttpError
from broker.security.api_authz import AuthzChecker
from kraft.acls import AclOperation, ResourceType

__all__ = ["authorize_writes", "write_checks"]

Op = AclOperation
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (operation, resource type, resource name) a write needs; any one of the alternatives.
Need = tuple[AclOperation, ResourceType, str]


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def write_checks(operation_id: str, match: dict[str, str],
                 body: dict[str, Any]) -> list[list[Need]]:
    """What the write route ``operation_id`` needs: every group of the list, and within a
    group any one alternative. Unknown write routes need ALTER on the cluster."""
    cluster = (Op.ALTER, ResourceType.CLUSTER, "kafka-cluster")
    if operation_id == "create_topic":
        name = body.get("name")
        if not isinstance(name, str):
            return []  # the route answers 400 for the missing name
        return [[(Op.CREATE, ResourceType.CLUSTER, "kafka-cluster"),
                 (Op.CREATE, ResourceType.TOPIC, name)]]
    if operation_id == "delete_topic":
        return [[(Op.DELETE, ResourceType.TOPIC, match["name"])]]
    if operation_id == "update_topic":
        name = match["name"]
        needs: list[list[Need]] = []
        if body.get("partitions_count") is not None:
            needs.append([(Op.ALTER, ResourceType.TOPIC, name)])
        if body.get("configs"):
            needs.append([(Op.ALTER_CONFIGS, ResourceType.TOPIC, name)])
        return needs
    return [[cluster]]


def _error_name(rtype: ResourceType) -> str:
    return {ResourceType.TOPIC: "TOPIC_AUTHORIZATION_FAILED"}.get(
        rtype, "CLUSTER_AUTHORIZATION_FAILED")


def authorize_writes(checker: AuthzChecker) -> Any:
    """An aiohttp middleware refusing the writes the request's principal may not make."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method in ("GET", "HEAD", "OPTIONS")
                or request.match_info.http_exception is not None):  # no such route: 404/405
            return await handler(request)
        principal = http_principal(request)
        route = request.match_info.route
        name = route.name or ""
        body = _body(await request.read()) if request.can_read_body else {}
        ctx = SimpleNamespace(principal=principal, peer=(request.remote or "", 0))
        for group in write_checks(name, dict(request.match_info), body):
            if not any(checker.allowed(ctx, op, rtype, rname) for op, rtype, rname in group):
                op, rtype, rname = group[-1]
                raise HttpError(403, _error_name(rtype),
                                f"{principal} may not {op.name} {rtype.name} {rname}")
        return await handler(request)
    return middleware
