"""SyncGroup (key 14): distribute the leader's partition assignment."""

from __future__ import annotations

from kraft.codec import BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 14
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "SyncGroupRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("group_id", STRING),
        Field("generation_id", INT32),
        Field("member_id", STRING),
        Field("group_instance_id", STRING, "3+", nullable_versions="3+", default=None),
        Field("protocol_type", STRING, "5+", nullable_versions="5+", default=None, ignorable=True),
        Field("protocol_name", STRING, "5+", nullable_versions="5+", default=None, ignorable=True),
        Field("assignments", Array(Struct("SyncGroupRequestAssignment", [
            Field("member_id", STRING),
            Field("assignment", BYTES),
        ]))),
    ],
)

RESPONSE = Message(
    "SyncGroupResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16),
        Field("protocol_type", STRING, "5+", nullable_versions="5+", default=None, ignorable=True),
        Field("protocol_name", STRING, "5+", nullable_versions="5+", default=None, ignorable=True),
        Field("assignment", BYTES),
    ],
)

SyncGroupRequest = REQUEST
SyncGroupResponse = RESPONSE
