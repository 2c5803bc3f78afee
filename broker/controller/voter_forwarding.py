"""AddRaftVoter and RemoveRaftVoter on the broker listener: forwarded to the active controller,
as Kafka's broker does (KafkaApis forwardToControllerOrFail), so that ``kafka-metadata-quorum
--bootstrap-server`` can change the quorum too.

The controller may hold an AddRaftVoter until the new voter has caught up (up to the request's
``timeout_ms``): one attempt may take that long. A controller that is not the Raft leader
answers NOT_LEADER_OR_FOLLOWER and the request goes to the next candidate. No controller in
time: REQUEST_TIMED_OUT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.controller.channel import ControllerChannel, ControllerUnavailableError
from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode

__all__ = ["voter_change_forwarders"]

DEFAULT_TIMEOUT_MS = 30_000
MARGIN_S = 5.0


def voter_change_forwarders(channel: Callable[[], ControllerChannel | None]) -> dict[int, Any]:
    def forwarder(api_key: int) -> Any:
        response = API_SPECS[api_key].response

        async def forward(ctx: Any, header: Any, request: Any) -> Any:
            ch = channel()
            timeout_s = (getattr(request, "timeout_ms", 0) or DEFAULT_TIMEOUT_MS) / 1000 \
                + MARGIN_S
            if ch is None:
                return response.cls(error_code=ErrorCode.REQUEST_TIMED_OUT)
            try:
                return await ch.send(
                    api_key, request, timeout_s=timeout_s, attempt_timeout_s=timeout_s,
                    retry_on=lambda r: r.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER)
            except ControllerUnavailableError as e:
                return response.cls(error_code=ErrorCode.REQUEST_TIMED_OUT,
                                    error_message=str(e))
        return forward

    return {key: forwarder(key) for key in (ApiKey.ADD_RAFT_VOTER, ApiKey.REMOVE_RAFT_VOTER)}
