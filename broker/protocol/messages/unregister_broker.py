"""UnregisterBroker (key 64): remove a broker's registration from the cluster metadata."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Field, Message

API_KEY = 64
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "UnregisterBrokerRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
    ],
)

RESPONSE = Message(
    "UnregisterBrokerResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+"),
    ],
)

UnregisterBrokerRequest = REQUEST
UnregisterBrokerResponse = RESPONSE
