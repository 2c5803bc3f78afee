"""DescribeTransactions (key 65): describe transactions by transactional id (KIP-664)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 65
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeTransactionsRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("transactional_ids", Array(STRING)),
    ],
)

RESPONSE = Message(
    "DescribeTransactionsResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("transaction_states", Array(Struct("TransactionState", [
            Field("error_code", INT16),
            Field("transactional_id", STRING),
            Field("transaction_state", STRING),
            Field("transaction_timeout_ms", INT32),
            Field("transaction_start_time_ms", INT64),
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("topics", Array(Struct("TopicData", [
                Field("topic", STRING),
                Field("partitions", Array(INT32)),
            ]))),
        ]))),
    ],
)

DescribeTransactionsRequest = REQUEST
DescribeTransactionsResponse = RESPONSE
