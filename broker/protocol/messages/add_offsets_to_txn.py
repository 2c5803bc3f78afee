"""AddOffsetsToTxn (key 25): add a group's offsets partition to a transaction."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Field, Message

API_KEY = 25
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "AddOffsetsToTxnRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("transactional_id", STRING),
        Field("producer_id", INT64),
        Field("producer_epoch", INT16),
        Field("group_id", STRING),
    ],
)

RESPONSE = Message(
    "AddOffsetsToTxnResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
    ],
)

AddOffsetsToTxnRequest = REQUEST
AddOffsetsToTxnResponse = RESPONSE
