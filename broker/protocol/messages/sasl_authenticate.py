"""SaslAuthenticate (key 36): one SASL token each way (KIP-152; v1 adds the session lifetime of
KIP-368)."""

from __future__ import annotations

from kraft.codec import BYTES, INT16, INT64, STRING, Field, Message

API_KEY = 36
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "SaslAuthenticateRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("auth_bytes", BYTES),
    ],
)

RESPONSE = Message(
    "SaslAuthenticateResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None),
        Field("auth_bytes", BYTES),
        Field("session_lifetime_ms", INT64, "1+", default=0),
    ],
)

SaslAuthenticateRequest = REQUEST
SaslAuthenticateResponse = RESPONSE
