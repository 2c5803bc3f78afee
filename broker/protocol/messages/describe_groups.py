"""DescribeGroups (key 15): state and members of consumer groups."""

from __future__ import annotations

from kraft.codec import BOOL, BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 15
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeGroupsRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="5+",
    fields=[
        Field("groups", Array(STRING)),
        Field("include_authorized_operations", BOOL, "3+"),
    ],
)

RESPONSE = Message(
    "DescribeGroupsResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="5+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("groups", Array(Struct("DescribedGroup", [
            Field("error_code", INT16),
            Field("group_id", STRING),
            Field("group_state", STRING),
            Field("protocol_type", STRING),
            Field("protocol_data", STRING),
            Field("members", Array(Struct("DescribedGroupMember", [
                Field("member_id", STRING),
                Field("group_instance_id", STRING, "4+",
                      nullable_versions="4+", default=None, ignorable=True),
                Field("client_id", STRING),
                Field("client_host", STRING),
                Field("member_metadata", BYTES),
                Field("member_assignment", BYTES),
            ]))),
            Field("authorized_operations", INT32, "3+", default=-2147483648),
        ]))),
    ],
)

DescribeGroupsRequest = REQUEST
DescribeGroupsResponse = RESPONSE
