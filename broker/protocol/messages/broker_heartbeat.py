"""BrokerHeartbeat (key 63): broker liveness, fencing and shutdown (KIP-631)."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, INT64, UUID, Array, Field, Message

API_KEY = 63
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "BrokerHeartbeatRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64, default=-1),
        Field("current_metadata_offset", INT64),
        Field("want_fence", BOOL),
        Field("want_shut_down", BOOL),
        Field("offline_log_dirs", Array(UUID), "1+", tag=0),
    ],
)

RESPONSE = Message(
    "BrokerHeartbeatResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("is_caught_up", BOOL, default=False),
        Field("is_fenced", BOOL, default=True),
        Field("should_shut_down", BOOL),
    ],
)

BrokerHeartbeatRequest = REQUEST
BrokerHeartbeatResponse = RESPONSE
