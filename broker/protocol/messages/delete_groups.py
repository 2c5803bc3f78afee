"""DeleteGroups (key 42): delete consumer groups."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 42
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DeleteGroupsRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("groups_names", Array(STRING)),
    ],
)

RESPONSE = Message(
    "DeleteGroupsResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("results", Array(Struct("DeletableGroupResult", [
            Field("group_id", STRING),
            Field("error_code", INT16),
        ]))),
    ],
)

DeleteGroupsRequest = REQUEST
DeleteGroupsResponse = RESPONSE
