"""AlterUserScramCredentials (key 51): upsert or delete users' SCRAM credentials (KIP-554;
the client sends the salted password, never the password)."""

from __future__ import annotations

from kraft.codec import BYTES, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 51
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "AlterUserScramCredentialsRequest", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("deletions", Array(Struct("ScramCredentialDeletion", [
            Field("name", STRING),
            Field("mechanism", INT8),
        ]))),
        Field("upsertions", Array(Struct("ScramCredentialUpsertion", [
            Field("name", STRING),
            Field("mechanism", INT8),
            Field("iterations", INT32),
            Field("salt", BYTES),
            Field("salted_password", BYTES),
        ]))),
    ],
)

RESPONSE = Message(
    "AlterUserScramCredentialsResponse", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("results", Array(Struct("AlterUserScramCredentialsResult", [
            Field("user", STRING),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
        ]))),
    ],
)

AlterUserScramCredentialsRequest = REQUEST
AlterUserScramCredentialsResponse = RESPONSE
