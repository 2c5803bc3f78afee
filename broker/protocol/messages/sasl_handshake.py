"""SaslHandshake (key 17): choose a SASL mechanism."""

from __future__ import annotations

from kraft.codec import INT16, STRING, Array, Field, Message

API_KEY = 17
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "SaslHandshakeRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="none",
    fields=[
        Field("mechanism", STRING),
    ],
)

RESPONSE = Message(
    "SaslHandshakeResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="none",
    fields=[
        Field("error_code", INT16),
        Field("mechanisms", Array(STRING)),
    ],
)

SaslHandshakeRequest = REQUEST
SaslHandshakeResponse = RESPONSE
