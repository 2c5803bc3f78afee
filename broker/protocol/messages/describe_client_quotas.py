"""DescribeClientQuotas (key 48): the quota entities matching a filter, with their values."""

from __future__ import annotations

from kraft.codec import BOOL, FLOAT64, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 48
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeClientQuotasRequest", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="1+",
    fields=[
        Field("components", Array(Struct("ComponentData", [
            Field("entity_type", STRING),
            Field("match_type", INT8),
            Field("match", STRING, nullable_versions="0+"),
        ]))),
        Field("strict", BOOL),
    ],
)

RESPONSE = Message(
    "DescribeClientQuotasResponse", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="1+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+"),
        Field("entries", Array(Struct("EntryData", [
            Field("entity", Array(Struct("EntityData", [
                Field("entity_type", STRING),
                Field("entity_name", STRING, nullable_versions="0+"),
            ]))),
            Field("values", Array(Struct("ValueData", [
                Field("key", STRING),
                Field("value", FLOAT64),
            ]))),
        ])), nullable_versions="0+"),
    ],
)

DescribeClientQuotasRequest = REQUEST
DescribeClientQuotasResponse = RESPONSE
