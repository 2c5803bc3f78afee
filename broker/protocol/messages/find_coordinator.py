"""FindCoordinator (key 10): locate the group or transaction coordinator."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 10
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "FindCoordinatorRequest", api_key=API_KEY, valid_versions="0-6", flexible_versions="3+",
    fields=[
        Field("key", STRING, "0-3"),
        Field("key_type", INT8, "1+", default=0),
        Field("coordinator_keys", Array(STRING), "4+"),
    ],
)

RESPONSE = Message(
    "FindCoordinatorResponse", api_key=API_KEY, valid_versions="0-6", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16, "0-3"),
        Field("error_message", STRING, "1-3", nullable_versions="1-3", ignorable=True),
        Field("node_id", INT32, "0-3"),
        Field("host", STRING, "0-3"),
        Field("port", INT32, "0-3"),
        Field("coordinators", Array(Struct("Coordinator", [
            Field("key", STRING, "4+"),
            Field("node_id", INT32, "4+"),
            Field("host", STRING, "4+"),
            Field("port", INT32, "4+"),
            Field("error_code", INT16, "4+"),
            Field("error_message", STRING, "4+", nullable_versions="4+", ignorable=True),
        ])), "4+"),
    ],
)

FindCoordinatorRequest = REQUEST
FindCoordinatorResponse = RESPONSE
