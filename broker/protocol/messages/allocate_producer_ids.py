"""AllocateProducerIds (key 67): broker asks the controller for a block of producer ids."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, Field, Message

API_KEY = 67
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "AllocateProducerIdsRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64, default=-1),
    ],
)

RESPONSE = Message(
    "AllocateProducerIdsResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("producer_id_start", INT64),
        Field("producer_id_len", INT32),
    ],
)

AllocateProducerIdsRequest = REQUEST
AllocateProducerIdsResponse = RESPONSE
