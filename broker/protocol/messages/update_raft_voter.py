"""UpdateRaftVoter (key 82): a voter tells the leader its endpoints and kraft.version range.

Controller listener only (KIP-853): each voter sends it to the leader when the voter set's
copy of its endpoints or supported kraft.version range differs from its own configuration.
"""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

API_KEY = 82
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "UpdateRaftVoterRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("current_leader_epoch", INT32),
        Field("voter_id", INT32),
        Field("voter_directory_id", UUID),
        Field("listeners", Array(Struct("Listener", [
            Field("name", STRING),
            Field("host", STRING),
            Field("port", UINT16),
        ]))),
        Field("kraft_version_feature", Struct("KRaftVersionFeature", [
            Field("min_supported_version", INT16),
            Field("max_supported_version", INT16),
        ])),
    ],
)

RESPONSE = Message(
    "UpdateRaftVoterResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("current_leader", Struct("CurrentLeader", [
            Field("leader_id", INT32, default=-1),
            Field("leader_epoch", INT32, default=-1),
            Field("host", STRING, default=""),
            Field("port", INT32, default=0),
        ]), tag=0),
    ],
)

UpdateRaftVoterRequest = REQUEST
UpdateRaftVoterResponse = RESPONSE
