"""AddPartitionsToTxn (key 24): add partitions to an ongoing transaction."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 24
LISTENERS = frozenset({"broker"})

_ADD_PARTITIONS_TO_TXN_TOPIC = Struct("AddPartitionsToTxnTopic", [
    Field("name", STRING),
    Field("partitions", Array(INT32)),
])

REQUEST = Message(
    "AddPartitionsToTxnRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("transactions", Array(Struct("AddPartitionsToTxnTransaction", [
            Field("transactional_id", STRING, "4+"),
            Field("producer_id", INT64, "4+"),
            Field("producer_epoch", INT16, "4+"),
            Field("verify_only", BOOL, "4+", default=False),
            Field("topics", Array(_ADD_PARTITIONS_TO_TXN_TOPIC), "4+"),
        ])), "4+"),
        Field("v3_and_below_transactional_id", STRING, "0-3"),
        Field("v3_and_below_producer_id", INT64, "0-3"),
        Field("v3_and_below_producer_epoch", INT16, "0-3"),
        Field("v3_and_below_topics", Array(_ADD_PARTITIONS_TO_TXN_TOPIC), "0-3"),
    ],
)

_ADD_PARTITIONS_TO_TXN_TOPIC_RESULT = Struct("AddPartitionsToTxnTopicResult", [
    Field("name", STRING),
    Field("results_by_partition", Array(Struct("AddPartitionsToTxnPartitionResult", [
        Field("partition_index", INT32),
        Field("partition_error_code", INT16),
    ]))),
])

RESPONSE = Message(
    "AddPartitionsToTxnResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16, "4+", ignorable=True),
        Field("results_by_transaction", Array(Struct("AddPartitionsToTxnResult", [
            Field("transactional_id", STRING, "4+"),
            Field("topic_results", Array(_ADD_PARTITIONS_TO_TXN_TOPIC_RESULT), "4+"),
        ])), "4+"),
        Field("results_by_topic_v3_and_below", Array(_ADD_PARTITIONS_TO_TXN_TOPIC_RESULT), "0-3"),
    ],
)

AddPartitionsToTxnRequest = REQUEST
AddPartitionsToTxnResponse = RESPONSE
