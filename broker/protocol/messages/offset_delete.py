"""OffsetDelete (key 47): delete a consumer group's committed offsets for partitions."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 47
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "OffsetDeleteRequest", api_key=API_KEY, valid_versions="0",
    fields=[
        Field("group_id", STRING),
        Field("topics", Array(Struct("OffsetDeleteRequestTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("OffsetDeleteRequestPartition", [
                Field("partition_index", INT32),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetDeleteResponse", api_key=API_KEY, valid_versions="0",
    fields=[
        Field("error_code", INT16),
        Field("throttle_time_ms", INT32, ignorable=True),
        Field("topics", Array(Struct("OffsetDeleteResponseTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("OffsetDeleteResponsePartition", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
            ]))),
        ]))),
    ],
)

OffsetDeleteRequest = REQUEST
OffsetDeleteResponse = RESPONSE
