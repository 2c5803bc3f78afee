"""CreateTopics (key 19): create topics by partition count or explicit assignment."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 19
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "CreateTopicsRequest", api_key=API_KEY, valid_versions="0-7", flexible_versions="5+",
    fields=[
        Field("topics", Array(Struct("CreatableTopic", [
            Field("name", STRING),
            Field("num_partitions", INT32),
            Field("replication_factor", INT16),
            Field("assignments", Array(Struct("CreatableReplicaAssignment", [
                Field("partition_index", INT32),
                Field("broker_ids", Array(INT32)),
            ]))),
            Field("configs", Array(Struct("CreatableTopicConfig", [
                Field("name", STRING),
                Field("value", STRING, nullable_versions="0+"),
            ]))),
        ]))),
        Field("timeout_ms", INT32, default=60000),
        Field("validate_only", BOOL, "1+", default=False),
    ],
)

RESPONSE = Message(
    "CreateTopicsResponse", api_key=API_KEY, valid_versions="0-7", flexible_versions="5+",
    fields=[
        Field("throttle_time_ms", INT32, "2+", ignorable=True),
        Field("topics", Array(Struct("CreatableTopicResult", [
            Field("name", STRING),
            Field("topic_id", UUID, "7+", ignorable=True),
            Field("error_code", INT16),
            Field("error_message", STRING, "1+", nullable_versions="0+", ignorable=True),
            Field("topic_config_error_code", INT16, "5+", tag=0, ignorable=True),
            Field("num_partitions", INT32, "5+", default=-1, ignorable=True),
            Field("replication_factor", INT16, "5+", default=-1, ignorable=True),
            Field("configs", Array(Struct("CreatableTopicConfigs", [
                Field("name", STRING, "5+"),
                Field("value", STRING, "5+", nullable_versions="5+"),
                Field("read_only", BOOL, "5+"),
                Field("config_source", INT8, "5+", default=-1, ignorable=True),
                Field("is_sensitive", BOOL, "5+"),
            ])), "5+", nullable_versions="5+", ignorable=True),
        ]))),
    ],
)

CreateTopicsRequest = REQUEST
CreateTopicsResponse = RESPONSE
