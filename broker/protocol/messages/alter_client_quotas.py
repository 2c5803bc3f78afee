"""AlterClientQuotas (key 49): set or remove quota values of entities (controller writes)."""

from __future__ import annotations

from kraft.codec import BOOL, FLOAT64, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 49
LISTENERS = frozenset({"broker", "controller"})

_ENTITY = Struct("EntityData", [
    Field("entity_type", STRING),
    Field("entity_name", STRING, nullable_versions="0+"),
])

REQUEST = Message(
    "AlterClientQuotasRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("entries", Array(Struct("EntryData", [
            Field("entity", Array(_ENTITY)),
            Field("ops", Array(Struct("OpData", [
                Field("key", STRING),
                Field("value", FLOAT64),
                Field("remove", BOOL),
            ]))),
        ]))),
        Field("validate_only", BOOL),
    ],
)

RESPONSE = Message(
    "AlterClientQuotasResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("entries", Array(Struct("EntryData", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+"),
            Field("entity", Array(_ENTITY)),
        ]))),
    ],
)

AlterClientQuotasRequest = REQUEST
AlterClientQuotasResponse = RESPONSE
