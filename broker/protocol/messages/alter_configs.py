"""AlterConfigs (key 33): replace topic or broker configs wholesale."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 33
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "AlterConfigsRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("resources", Array(Struct("AlterConfigsResource", [
            Field("resource_type", INT8),
            Field("resource_name", STRING),
            Field("configs", Array(Struct("AlterableConfig", [
                Field("name", STRING),
                Field("value", STRING, nullable_versions="0+"),
            ]))),
        ]))),
        Field("validate_only", BOOL),
    ],
)

RESPONSE = Message(
    "AlterConfigsResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("responses", Array(Struct("AlterConfigsResourceResponse", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+"),
            Field("resource_type", INT8),
            Field("resource_name", STRING),
        ]))),
    ],
)

AlterConfigsRequest = REQUEST
AlterConfigsResponse = RESPONSE
