"""CreatePartitions (key 37): add partitions to existing topics."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 37
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "CreatePartitionsRequest", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("topics", Array(Struct("CreatePartitionsTopic", [
            Field("name", STRING),
            Field("count", INT32),
            Field("assignments", Array(Struct("CreatePartitionsAssignment", [
                Field("broker_ids", Array(INT32)),
            ])), nullable_versions="0+"),
        ]))),
        Field("timeout_ms", INT32),
        Field("validate_only", BOOL),
    ],
)

RESPONSE = Message(
    "CreatePartitionsResponse", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("results", Array(Struct("CreatePartitionsTopicResult", [
            Field("name", STRING),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
        ]))),
    ],
)

CreatePartitionsRequest = REQUEST
CreatePartitionsResponse = RESPONSE
