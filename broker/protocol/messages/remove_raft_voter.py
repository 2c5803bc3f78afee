"""RemoveRaftVoter (key 81): remove a controller, named by id and directory id (KIP-853)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UUID, Field, Message

API_KEY = 81
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "RemoveRaftVoterRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("voter_id", INT32),
        Field("voter_directory_id", UUID),
    ],
)

RESPONSE = Message(
    "RemoveRaftVoterResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None, ignorable=True),
    ],
)

RemoveRaftVoterRequest = REQUEST
RemoveRaftVoterResponse = RESPONSE
