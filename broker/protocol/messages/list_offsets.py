"""ListOffsets (key 2): look up offsets by timestamp (-1 latest, -2 earliest)."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 2
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "ListOffsetsRequest", api_key=API_KEY, valid_versions="0-10", flexible_versions="6+",
    fields=[
        Field("replica_id", INT32),
        Field("isolation_level", INT8, "2+"),
        Field("topics", Array(Struct("ListOffsetsTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("ListOffsetsPartition", [
                Field("partition_index", INT32),
                Field("current_leader_epoch", INT32, "4+", default=-1, ignorable=True),
                Field("timestamp", INT64),
                Field("max_num_offsets", INT32, "0", default=1),
            ]))),
        ]))),
        Field("timeout_ms", INT32, "10+", ignorable=True),
    ],
)

RESPONSE = Message(
    "ListOffsetsResponse", api_key=API_KEY, valid_versions="0-10", flexible_versions="6+",
    fields=[
        Field("throttle_time_ms", INT32, "2+", ignorable=True),
        Field("topics", Array(Struct("ListOffsetsTopicResponse", [
            Field("name", STRING),
            Field("partitions", Array(Struct("ListOffsetsPartitionResponse", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("old_style_offsets", Array(INT64), "0"),
                Field("timestamp", INT64, "1+", default=-1),
                Field("offset", INT64, "1+", default=-1),
                Field("leader_epoch", INT32, "4+", default=-1),
            ]))),
        ]))),
    ],
)

ListOffsetsRequest = REQUEST
ListOffsetsResponse = RESPONSE
