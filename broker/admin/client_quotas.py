"""DescribeClientQuotas (48), answered from this broker's metadata image, and AlterClientQuotas
(49), forwarded to the active controller (``broker.admin.forwarding``): the answer comes once
this broker's image shows the change, so a Describe right after sees it, and so do this
broker's quota hooks (``broker/quotas/enforce.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.admin.forwarding import TIMED_OUT_MESSAGE, ControllerForwarder, ImageWait
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import alter_client_quotas, describe_client_quotas
from kraft.client_quotas import QuotaFilterError, entity_of
from kraft.image import MetadataImage

__all__ = ["ClientQuotaApis"]


class ClientQuotaApis:
    def __init__(self, forwarder: ControllerForwarder,
                 image: Callable[[], MetadataImage]) -> None:
        self.forwarder = forwarder
        self.image = image
        self.handlers: dict[int, Any] = {
            ApiKey.DESCRIBE_CLIENT_QUOTAS: self.handle_describe,
            ApiKey.ALTER_CLIENT_QUOTAS: self.handle_alter,
        }

    def handle_describe(self, ctx: Any, header: Any, request: Any) -> Any:
        R = describe_client_quotas.RESPONSE
        try:
            found = self.image().client_quotas.describe(
                [(c.entity_type, int(c.match_type), c.match) for c in request.components],
                bool(request.strict))
        except QuotaFilterError as e:
            return R.cls(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                         error_message=str(e), entries=None)
        return R.cls(throttle_time_ms=0, error_code=0, error_message=None, entries=[
            R.EntryData(
                entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                values=[R.ValueData(key=k, value=v) for k, v in sorted(values.items())])
            for entity, values in found])

    async def handle_alter(self, ctx: Any, header: Any, request: Any) -> Any:
        return await self.alter(request)

    async def alter(self, request: Any) -> Any:
        R = alter_client_quotas.RESPONSE

        def entity(entry: Any) -> list[Any]:
            return [R.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
                    for e in entry.entity]

        def timed_out() -> Any:
            return R.cls(throttle_time_ms=0, entries=[R.EntryData(
                error_code=ErrorCode.REQUEST_TIMED_OUT, error_message=TIMED_OUT_MESSAGE,
                entity=entity(e)) for e in request.entries])

        def shown(resp: Any) -> ImageWait:
            if request.validate_only:
                return None
            wanted = []
            for entry, result in zip(request.entries, resp.entries, strict=False):
                if result.error_code:
                    continue
                key = entity_of((e.entity_type, e.entity_name) for e in entry.entity)
                wanted.append((key, {op.key: None if op.remove else float(op.value)
                                     for op in entry.ops}))
            if not wanted:
                return None

            def visible(image: MetadataImage) -> bool:
                quotas = image.client_quotas.entities
                return all(quotas.get(k, {}).get(name) == value
                           for k, values in wanted for name, value in values.items())
            return "altered client quotas", visible

        return await self.forwarder.forward(
            ApiKey.ALTER_CLIENT_QUOTAS, request, timeout_ms=None, timed_out=timed_out,
            errors_in="entries", shown=shown)
