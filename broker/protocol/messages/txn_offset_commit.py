"""TxnOffsetCommit (key 28): commit consumer offsets as part of a transaction."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 28
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "TxnOffsetCommitRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("transactional_id", STRING),
        Field("group_id", STRING),
        Field("producer_id", INT64),
        Field("producer_epoch", INT16),
        Field("generation_id", INT32, "3+", default=-1),
        Field("member_id", STRING, "3+", default=""),
        Field("group_instance_id", STRING, "3+", nullable_versions="3+", default=None),
        Field("topics", Array(Struct("TxnOffsetCommitRequestTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("TxnOffsetCommitRequestPartition", [
                Field("partition_index", INT32),
                Field("committed_offset", INT64),
                Field("committed_leader_epoch", INT32, "2+", default=-1, ignorable=True),
                Field("committed_metadata", STRING, nullable_versions="0+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "TxnOffsetCommitResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("topics", Array(Struct("TxnOffsetCommitResponseTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("TxnOffsetCommitResponsePartition", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
            ]))),
        ]))),
    ],
)

TxnOffsetCommitRequest = REQUEST
TxnOffsetCommitResponse = RESPONSE
