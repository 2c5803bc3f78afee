"""AlterClientQuotas (49) between the wire and the controller's operation, both ways (the
same shape as ``broker.controller.translation``; a reply of None means this node is not the
active controller)."""

from __future__ import annotations

from typing import Any

from broker.protocol.messages import alter_client_quotas
from kraft.controller.client_quota_control import (
    AlterClientQuotasReply,
    AlterClientQuotasRequest,
    ClientQuotaAlteration,
)
from storage.error_codes import ErrorCode

__all__ = ["alter_client_quotas_request", "alter_client_quotas_response"]

_NOT_CONTROLLER_MSG = "This is not the correct controller for this cluster."


def alter_client_quotas_request(request: Any, version: int) -> AlterClientQuotasRequest:
    return AlterClientQuotasRequest(
        entries=tuple(ClientQuotaAlteration(
            entity=tuple((e.entity_type, e.entity_name) for e in entry.entity),
            ops=tuple((op.key, float(op.value), bool(op.remove)) for op in entry.ops))
            for entry in request.entries),
        validate_only=bool(request.validate_only))


def alter_client_quotas_response(request: Any, reply: AlterClientQuotasReply | None,
                                 version: int) -> Any:
    R = alter_client_quotas.RESPONSE
    if reply is None:
        results: Any = [(ErrorCode.NOT_CONTROLLER, _NOT_CONTROLLER_MSG)] * len(request.entries)
    else:
        results = reply.results
    return R.cls(throttle_time_ms=0, entries=[R.EntryData(
        error_code=int(code), error_message=message,
        entity=[R.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
                for e in entry.entity])
        for entry, (code, message) in zip(request.entries, results, strict=True)])
