"""DescribeConfigs (key 32): describe topic and broker configs."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 32
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DescribeConfigsRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("resources", Array(Struct("DescribeConfigsResource", [
            Field("resource_type", INT8),
            Field("resource_name", STRING),
            Field("configuration_keys", Array(STRING), nullable_versions="0+"),
        ]))),
        Field("include_synonyms", BOOL, "1+", default=False),
        Field("include_documentation", BOOL, "3+", default=False),
    ],
)

RESPONSE = Message(
    "DescribeConfigsResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("results", Array(Struct("DescribeConfigsResult", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+"),
            Field("resource_type", INT8),
            Field("resource_name", STRING),
            Field("configs", Array(Struct("DescribeConfigsResourceResult", [
                Field("name", STRING),
                Field("value", STRING, nullable_versions="0+"),
                Field("read_only", BOOL),
                Field("is_default", BOOL, "0"),
                Field("config_source", INT8, "1+", default=-1, ignorable=True),
                Field("is_sensitive", BOOL),
                Field("synonyms", Array(Struct("DescribeConfigsSynonym", [
                    Field("name", STRING, "1+"),
                    Field("value", STRING, "1+", nullable_versions="0+"),
                    Field("source", INT8, "1+"),
                ])), "1+", ignorable=True),
                Field("config_type", INT8, "3+", default=0, ignorable=True),
                Field("documentation", STRING, "3+", nullable_versions="0+", ignorable=True),
            ]))),
        ]))),
    ],
)

DescribeConfigsRequest = REQUEST
DescribeConfigsResponse = RESPONSE
