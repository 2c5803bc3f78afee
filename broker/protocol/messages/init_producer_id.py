"""InitProducerId (key 22): allocate a producer id and epoch."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Field, Message

API_KEY = 22
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "InitProducerIdRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="2+",
    fields=[
        Field("transactional_id", STRING, nullable_versions="0+"),
        Field("transaction_timeout_ms", INT32),
        Field("producer_id", INT64, "3+", default=-1),
        Field("producer_epoch", INT16, "3+", default=-1),
    ],
)

RESPONSE = Message(
    "InitProducerIdResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32, ignorable=True),
        Field("error_code", INT16),
        Field("producer_id", INT64, default=-1),
        Field("producer_epoch", INT16),
    ],
)

InitProducerIdRequest = REQUEST
InitProducerIdResponse = RESPONSE
