"""IncrementalAlterConfigs (key 44): set, delete, append or subtract configs."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 44
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "IncrementalAlterConfigsRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("resources", Array(Struct("AlterConfigsResource", [
            Field("resource_type", INT8),
            Field("resource_name", STRING),
            Field("configs", Array(Struct("AlterableConfig", [
                Field("name", STRING),
                Field("config_operation", INT8),
                Field("value", STRING, nullable_versions="0+"),
            ]))),
        ]))),
        Field("validate_only", BOOL),
    ],
)

RESPONSE = Message(
    "IncrementalAlterConfigsResponse", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="1+",
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

IncrementalAlterConfigsRequest = REQUEST
IncrementalAlterConfigsResponse = RESPONSE
