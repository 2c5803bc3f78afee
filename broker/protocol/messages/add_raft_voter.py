"""AddRaftVoter (key 80): add a controller to the KRaft voter set (KIP-853).

Sent to the active controller (Kafka lists both listeners; a broker forwards it). Version 1 adds
``ack_when_committed``: false answers once the leader has appended the new VotersRecord, true
(the default, and v0's behaviour) once it has committed. Kafka's response schema also lists a
v2 identical to v1; request and response share one range here.
"""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

API_KEY = 80
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "AddRaftVoterRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("timeout_ms", INT32),
        Field("voter_id", INT32),
        Field("voter_directory_id", UUID),
        Field("listeners", Array(Struct("Listener", [
            Field("name", STRING),
            Field("host", STRING),
            Field("port", UINT16),
        ]))),
        Field("ack_when_committed", BOOL, "1+", default=True),
    ],
)

RESPONSE = Message(
    "AddRaftVoterResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None, ignorable=True),
    ],
)

AddRaftVoterRequest = REQUEST
AddRaftVoterResponse = RESPONSE
