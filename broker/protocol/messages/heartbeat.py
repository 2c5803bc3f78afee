"""Heartbeat (key 12): keep a group membership alive."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Field, Message

API_KEY = 12
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "HeartbeatRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("group_id", STRING),
        Field("generation_id", INT32),
        Field("member_id", STRING),
        Field("group_instance_id", STRING, "3+", nullable_versions="3+", default=None),
    ],
)

RESPONSE = Message(
    "HeartbeatResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16),
    ],
)

HeartbeatRequest = REQUEST
HeartbeatResponse = RESPONSE
