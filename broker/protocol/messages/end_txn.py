"""EndTxn (key 26): commit or abort a transaction."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, INT64, STRING, Field, Message

API_KEY = 26
LISTENERS = frozenset({"broker"})

# Kafka marks v5 (epoch bump on every transaction, KIP-890 part 2) latestVersionUnstable.
REQUEST = Message(
    "EndTxnRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("transactional_id", STRING),
        Field("producer_id", INT64),
        Field("producer_epoch", INT16),
        Field("committed", BOOL),
    ],
)

RESPONSE = Message(
    "EndTxnResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("producer_id", INT64, "5+", default=-1, ignorable=True),
        Field("producer_epoch", INT16, "5+", default=-1, ignorable=True),
    ],
)

EndTxnRequest = REQUEST
EndTxnResponse = RESPONSE
