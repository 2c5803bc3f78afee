"""CreateAcls (key 30): add ACLs (written by the controller, replayed by every node)."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 30
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "CreateAclsRequest", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("creations", Array(Struct("AclCreation", [
            Field("resource_type", INT8),
            Field("resource_name", STRING),
            Field("resource_pattern_type", INT8, "1+", default=3),
            Field("principal", STRING),
            Field("host", STRING),
            Field("operation", INT8),
            Field("permission_type", INT8),
        ]))),
    ],
)

RESPONSE = Message(
    "CreateAclsResponse", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("results", Array(Struct("AclCreationResult", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
        ]))),
    ],
)

CreateAclsRequest = REQUEST
CreateAclsResponse = RESPONSE
