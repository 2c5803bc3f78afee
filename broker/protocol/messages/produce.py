"""Produce (key 0): append record batches to partitions."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, RECORDS, STRING, Array, Field, Message, Struct

API_KEY = 0
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "ProduceRequest", api_key=API_KEY, valid_versions="0-12", flexible_versions="9+",
    fields=[
        Field("transactional_id", STRING, "3+", nullable_versions="3+", default=None),
        Field("acks", INT16),
        Field("timeout_ms", INT32),
        Field("topic_data", Array(Struct("TopicProduceData", [
            Field("name", STRING),
            Field("partition_data", Array(Struct("PartitionProduceData", [
                Field("index", INT32),
                Field("records", RECORDS, nullable_versions="0+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "ProduceResponse", api_key=API_KEY, valid_versions="0-12", flexible_versions="9+",
    fields=[
        Field("responses", Array(Struct("TopicProduceResponse", [
            Field("name", STRING),
            Field("partition_responses", Array(Struct("PartitionProduceResponse", [
                Field("index", INT32),
                Field("error_code", INT16),
                Field("base_offset", INT64),
                Field("log_append_time_ms", INT64, "2+", default=-1, ignorable=True),
                Field("log_start_offset", INT64, "5+", default=-1, ignorable=True),
                Field("record_errors", Array(Struct("BatchIndexAndErrorMessage", [
                    Field("batch_index", INT32, "8+"),
                    Field("batch_index_error_message", STRING, "8+",
                          nullable_versions="8+", default=None),
                ])), "8+", ignorable=True),
                Field("error_message", STRING, "8+",
                      nullable_versions="8+", default=None, ignorable=True),
                Field("current_leader", Struct("LeaderIdAndEpoch", [
                    Field("leader_id", INT32, "10+", default=-1),
                    Field("leader_epoch", INT32, "10+", default=-1),
                ]), "10+", tag=0),
            ]))),
        ]))),
        Field("throttle_time_ms", INT32, "1+", default=0, ignorable=True),
        Field("node_endpoints", Array(Struct("NodeEndpoint", [
            Field("node_id", INT32, "10+"),
            Field("host", STRING, "10+"),
            Field("port", INT32, "10+"),
            Field("rack", STRING, "10+", nullable_versions="10+", default=None),
        ])), "10+", tag=0),
    ],
)

ProduceRequest = REQUEST
ProduceResponse = RESPONSE
