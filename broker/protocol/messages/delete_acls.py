"""DeleteAcls (key 31): remove the ACLs matching each filter."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 31
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DeleteAclsRequest", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("filters", Array(Struct("DeleteAclsFilter", [
            Field("resource_type_filter", INT8),
            Field("resource_name_filter", STRING, nullable_versions="0+", default=None),
            Field("pattern_type_filter", INT8, "1+", default=3),
            Field("principal_filter", STRING, nullable_versions="0+", default=None),
            Field("host_filter", STRING, nullable_versions="0+", default=None),
            Field("operation", INT8),
            Field("permission_type", INT8),
        ]))),
    ],
)

RESPONSE = Message(
    "DeleteAclsResponse", api_key=API_KEY, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("filter_results", Array(Struct("DeleteAclsFilterResult", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
            Field("matching_acls", Array(Struct("DeleteAclsMatchingAcl", [
                Field("error_code", INT16),
                Field("error_message", STRING, nullable_versions="0+", default=None),
                Field("resource_type", INT8),
                Field("resource_name", STRING),
                Field("pattern_type", INT8, "1+", default=3),
                Field("principal", STRING),
                Field("host", STRING),
                Field("operation", INT8),
                Field("permission_type", INT8),
            ]))),
        ]))),
    ],
)

DeleteAclsRequest = REQUEST
DeleteAclsResponse = RESPONSE
