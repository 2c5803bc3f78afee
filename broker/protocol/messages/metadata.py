"""Metadata (key 3): brokers, topics, partitions and their leaders."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 3
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "MetadataRequest", api_key=API_KEY, valid_versions="0-13", flexible_versions="9+",
    fields=[
        Field("topics", Array(Struct("MetadataRequestTopic", [
            Field("topic_id", UUID, "10+", ignorable=True),
            Field("name", STRING, nullable_versions="10+"),
        ])), nullable_versions="1+"),
        Field("allow_auto_topic_creation", BOOL, "4+", default=True),
        Field("include_cluster_authorized_operations", BOOL, "8-10"),
        Field("include_topic_authorized_operations", BOOL, "8+"),
    ],
)

RESPONSE = Message(
    "MetadataResponse", api_key=API_KEY, valid_versions="0-13", flexible_versions="9+",
    fields=[
        Field("throttle_time_ms", INT32, "3+", ignorable=True),
        Field("brokers", Array(Struct("MetadataResponseBroker", [
            Field("node_id", INT32),
            Field("host", STRING),
            Field("port", INT32),
            Field("rack", STRING, "1+", nullable_versions="1+", default=None, ignorable=True),
        ]))),
        Field("cluster_id", STRING, "2+", nullable_versions="2+", default=None, ignorable=True),
        Field("controller_id", INT32, "1+", default=-1, ignorable=True),
        Field("topics", Array(Struct("MetadataResponseTopic", [
            Field("error_code", INT16),
            Field("name", STRING, nullable_versions="12+"),
            Field("topic_id", UUID, "10+", ignorable=True),
            Field("is_internal", BOOL, "1+", default=False, ignorable=True),
            Field("partitions", Array(Struct("MetadataResponsePartition", [
                Field("error_code", INT16),
                Field("partition_index", INT32),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32, "7+", default=-1, ignorable=True),
                Field("replica_nodes", Array(INT32)),
                Field("isr_nodes", Array(INT32)),
                Field("offline_replicas", Array(INT32), "5+", ignorable=True),
            ]))),
            Field("topic_authorized_operations", INT32, "8+", default=-2147483648),
        ]))),
        Field("cluster_authorized_operations", INT32, "8-10", default=-2147483648),
        Field("error_code", INT16, "13+", default=0, ignorable=True),
    ],
)

MetadataRequest = REQUEST
MetadataResponse = RESPONSE
