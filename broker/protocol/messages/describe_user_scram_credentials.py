"""DescribeUserScramCredentials (key 50): which SCRAM mechanisms and iterations users have
(KIP-554)."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 50
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DescribeUserScramCredentialsRequest", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("users", Array(Struct("UserName", [Field("name", STRING)])),
              nullable_versions="0+"),
    ],
)

RESPONSE = Message(
    "DescribeUserScramCredentialsResponse", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None),
        Field("results", Array(Struct("DescribeUserScramCredentialsResult", [
            Field("user", STRING),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
            Field("credential_infos", Array(Struct("CredentialInfo", [
                Field("mechanism", INT8),
                Field("iterations", INT32),
            ]))),
        ]))),
    ],
)

DescribeUserScramCredentialsRequest = REQUEST
DescribeUserScramCredentialsResponse = RESPONSE
