"""OffsetForLeaderEpoch (key 23): end offset of a leader epoch (KIP-101)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 23
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "OffsetForLeaderEpochRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("replica_id", INT32, "3+", default=-2, ignorable=True),
        Field("topics", Array(Struct("OffsetForLeaderTopic", [
            Field("topic", STRING),
            Field("partitions", Array(Struct("OffsetForLeaderPartition", [
                Field("partition", INT32),
                Field("current_leader_epoch", INT32, "2+", default=-1, ignorable=True),
                Field("leader_epoch", INT32),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetForLeaderEpochResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32, "2+", ignorable=True),
        Field("topics", Array(Struct("OffsetForLeaderTopicResult", [
            Field("topic", STRING),
            Field("partitions", Array(Struct("EpochEndOffset", [
                Field("error_code", INT16),
                Field("partition", INT32),
                Field("leader_epoch", INT32, "1+", default=-1, ignorable=True),
                Field("end_offset", INT64, default=-1),
            ]))),
        ]))),
    ],
)

OffsetForLeaderEpochRequest = REQUEST
OffsetForLeaderEpochResponse = RESPONSE
