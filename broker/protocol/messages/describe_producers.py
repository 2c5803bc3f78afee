"""DescribeProducers (key 61): describe the active producers of partitions (KIP-664)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 61
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeProducersRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("topics", Array(Struct("TopicRequest", [
            Field("name", STRING),
            Field("partition_indexes", Array(INT32)),
        ]))),
    ],
)

RESPONSE = Message(
    "DescribeProducersResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("topics", Array(Struct("TopicResponse", [
            Field("name", STRING),
            Field("partitions", Array(Struct("PartitionResponse", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("error_message", STRING, nullable_versions="0+", default=None),
                Field("active_producers", Array(Struct("ProducerState", [
                    Field("producer_id", INT64),
                    Field("producer_epoch", INT32),
                    Field("last_sequence", INT32, default=-1),
                    Field("last_timestamp", INT64, default=-1),
                    Field("coordinator_epoch", INT32),
                    Field("current_txn_start_offset", INT64, default=-1),
                ]))),
            ]))),
        ]))),
    ],
)

DescribeProducersRequest = REQUEST
DescribeProducersResponse = RESPONSE
