"""JoinGroup (key 11): join a consumer group and elect its leader."""

from __future__ import annotations

from kraft.codec import BOOL, BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 11
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "JoinGroupRequest", api_key=API_KEY, valid_versions="0-9", flexible_versions="6+",
    fields=[
        Field("group_id", STRING),
        Field("session_timeout_ms", INT32),
        Field("rebalance_timeout_ms", INT32, "1+", default=-1, ignorable=True),
        Field("member_id", STRING),
        Field("group_instance_id", STRING, "5+", nullable_versions="5+", default=None),
        Field("protocol_type", STRING),
        Field("protocols", Array(Struct("JoinGroupRequestProtocol", [
            Field("name", STRING),
            Field("metadata", BYTES),
        ]))),
        Field("reason", STRING, "8+", nullable_versions="8+", default=None, ignorable=True),
    ],
)

RESPONSE = Message(
    "JoinGroupResponse", api_key=API_KEY, valid_versions="0-9", flexible_versions="6+",
    fields=[
        Field("throttle_time_ms", INT32, "2+", ignorable=True),
        Field("error_code", INT16),
        Field("generation_id", INT32, default=-1),
        Field("protocol_type", STRING, "7+", nullable_versions="7+", default=None, ignorable=True),
        Field("protocol_name", STRING, nullable_versions="7+"),
        Field("leader", STRING),
        Field("skip_assignment", BOOL, "9+", default=False),
        Field("member_id", STRING),
        Field("members", Array(Struct("JoinGroupResponseMember", [
            Field("member_id", STRING),
            Field("group_instance_id", STRING, "5+",
                  nullable_versions="5+", default=None, ignorable=True),
            Field("metadata", BYTES),
        ]))),
    ],
)

JoinGroupRequest = REQUEST
JoinGroupResponse = RESPONSE
