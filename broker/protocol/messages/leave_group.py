"""LeaveGroup (key 13): leave a consumer group."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 13
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "LeaveGroupRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("group_id", STRING),
        Field("member_id", STRING, "0-2"),
        Field("members", Array(Struct("MemberIdentity", [
            Field("member_id", STRING, "3+"),
            Field("group_instance_id", STRING, "3+", nullable_versions="3+", default=None),
            Field("reason", STRING, "5+", nullable_versions="5+", default=None, ignorable=True),
        ])), "3+"),
    ],
)

RESPONSE = Message(
    "LeaveGroupResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16),
        Field("members", Array(Struct("MemberResponse", [
            Field("member_id", STRING, "3+"),
            Field("group_instance_id", STRING, "3+", nullable_versions="3+"),
            Field("error_code", INT16, "3+"),
        ])), "3+"),
    ],
)

LeaveGroupRequest = REQUEST
LeaveGroupResponse = RESPONSE
