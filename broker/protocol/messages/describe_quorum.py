"""DescribeQuorum (key 55): KRaft leader, voters, observers and their offsets."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, UINT16, UUID, Array, Field, Message, Struct

API_KEY = 55
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DescribeQuorumRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
            ]))),
        ]))),
    ],
)

_REPLICA_STATE = Struct("ReplicaState", [
    Field("replica_id", INT32),
    Field("replica_directory_id", UUID, "2+"),
    Field("log_end_offset", INT64),
    Field("last_fetch_timestamp", INT64, "1+", default=-1, ignorable=True),
    Field("last_caught_up_timestamp", INT64, "1+", default=-1, ignorable=True),
])

RESPONSE = Message(
    "DescribeQuorumResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("error_code", INT16),
        Field("error_message", STRING, "2+", nullable_versions="2+", ignorable=True),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("error_message", STRING, "2+", nullable_versions="2+", ignorable=True),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
                Field("high_watermark", INT64),
                Field("current_voters", Array(_REPLICA_STATE)),
                Field("observers", Array(_REPLICA_STATE)),
            ]))),
        ]))),
        Field("nodes", Array(Struct("Node", [
            Field("node_id", INT32, "2+"),
            Field("listeners", Array(Struct("Listener", [
                Field("name", STRING, "2+"),
                Field("host", STRING, "2+"),
                Field("port", UINT16, "2+"),
            ])), "2+"),
        ])), "2+"),
    ],
)

DescribeQuorumRequest = REQUEST
DescribeQuorumResponse = RESPONSE
