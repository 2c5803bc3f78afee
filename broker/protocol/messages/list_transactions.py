"""ListTransactions (key 66): list transactions, filtered by state and producer (KIP-664)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 66
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "ListTransactionsRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("state_filters", Array(STRING)),
        Field("producer_id_filters", Array(INT64)),
        Field("duration_filter", INT64, "1+", default=-1),
    ],
)

RESPONSE = Message(
    "ListTransactionsResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("unknown_state_filters", Array(STRING)),
        Field("transaction_states", Array(Struct("TransactionState", [
            Field("transactional_id", STRING),
            Field("producer_id", INT64),
            Field("transaction_state", STRING),
        ]))),
    ],
)

ListTransactionsRequest = REQUEST
ListTransactionsResponse = RESPONSE
