"""DescribeTopicPartitions (key 75): topics and their partitions' leaders, replicas, ISR and
eligible leader replicas, a page at a time (KIP-966). A response holds at most
``response_partition_limit`` partitions; ``next_cursor`` names the first one left out."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 75
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeTopicPartitionsRequest", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("topics", Array(Struct("TopicRequest", [
            Field("name", STRING),
        ]))),
        Field("response_partition_limit", INT32, default=2000),
        Field("cursor", Struct("Cursor", [
            Field("topic_name", STRING),
            Field("partition_index", INT32),
        ]), nullable_versions="0+", default=None),
    ],
)

RESPONSE = Message(
    "DescribeTopicPartitionsResponse", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32, ignorable=True),
        Field("topics", Array(Struct("DescribeTopicPartitionsResponseTopic", [
            Field("error_code", INT16),
            Field("name", STRING, nullable_versions="0+"),
            Field("topic_id", UUID, ignorable=True),
            Field("is_internal", BOOL, default=False, ignorable=True),
            Field("partitions", Array(Struct("DescribeTopicPartitionsResponsePartition", [
                Field("error_code", INT16),
                Field("partition_index", INT32),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32, default=-1, ignorable=True),
                Field("replica_nodes", Array(INT32)),
                Field("isr_nodes", Array(INT32)),
                Field("eligible_leader_replicas", Array(INT32), nullable_versions="0+",
                      default=None),
                Field("last_known_elr", Array(INT32), nullable_versions="0+", default=None),
                Field("offline_replicas", Array(INT32), ignorable=True),
            ]))),
            Field("topic_authorized_operations", INT32, default=-2147483648),
        ]))),
        Field("next_cursor", Struct("Cursor", [
            Field("topic_name", STRING),
            Field("partition_index", INT32),
        ]), nullable_versions="0+", default=None),
    ],
)

DescribeTopicPartitionsRequest = REQUEST
DescribeTopicPartitionsResponse = RESPONSE
