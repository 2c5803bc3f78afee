"""ListGroups (key 16): the groups a coordinator manages."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 16
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "ListGroupsRequest", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("states_filter", Array(STRING), "4+"),
        Field("types_filter", Array(STRING), "5+"),
    ],
)

RESPONSE = Message(
    "ListGroupsResponse", api_key=API_KEY, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16),
        Field("groups", Array(Struct("ListedGroup", [
            Field("group_id", STRING),
            Field("protocol_type", STRING),
            Field("group_state", STRING, "4+", ignorable=True),
            Field("group_type", STRING, "5+", ignorable=True),
        ]))),
    ],
)

ListGroupsRequest = REQUEST
ListGroupsResponse = RESPONSE
