"""OffsetCommit (key 8): store a consumer group's committed offsets."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 8
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "OffsetCommitRequest", api_key=API_KEY, valid_versions="0-9", flexible_versions="8+",
    fields=[
        Field("group_id", STRING),
        Field("generation_id_or_member_epoch", INT32, "1+", default=-1, ignorable=True),
        Field("member_id", STRING, "1+", ignorable=True),
        Field("group_instance_id", STRING, "7+", nullable_versions="7+", default=None),
        Field("retention_time_ms", INT64, "2-4", default=-1, ignorable=True),
        Field("topics", Array(Struct("OffsetCommitRequestTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("OffsetCommitRequestPartition", [
                Field("partition_index", INT32),
                Field("committed_offset", INT64),
                Field("committed_leader_epoch", INT32, "6+", default=-1, ignorable=True),
                Field("commit_timestamp", INT64, "1", default=-1),
                Field("committed_metadata", STRING, nullable_versions="0+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetCommitResponse", api_key=API_KEY, valid_versions="0-9", flexible_versions="8+",
    fields=[
        Field("throttle_time_ms", INT32, "3+", ignorable=True),
        Field("topics", Array(Struct("OffsetCommitResponseTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("OffsetCommitResponsePartition", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
            ]))),
        ]))),
    ],
)

OffsetCommitRequest = REQUEST
OffsetCommitResponse = RESPONSE
