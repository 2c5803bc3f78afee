"""DeleteTopics (key 20): delete topics by name or topic id."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 20
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DeleteTopicsRequest", api_key=API_KEY, valid_versions="0-6", flexible_versions="4+",
    fields=[
        Field("topics", Array(Struct("DeleteTopicState", [
            Field("name", STRING, "6+", nullable_versions="6+", default=None),
            Field("topic_id", UUID, "6+"),
        ])), "6+"),
        Field("topic_names", Array(STRING), "0-5", ignorable=True),
        Field("timeout_ms", INT32),
    ],
)

RESPONSE = Message(
    "DeleteTopicsResponse", api_key=API_KEY, valid_versions="0-6", flexible_versions="4+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("responses", Array(Struct("DeletableTopicResult", [
            Field("name", STRING, nullable_versions="6+"),
            Field("topic_id", UUID, "6+", ignorable=True),
            Field("error_code", INT16),
            Field("error_message", STRING, "5+", nullable_versions="5+", default=None,
                  ignorable=True),
        ]))),
    ],
)

DeleteTopicsRequest = REQUEST
DeleteTopicsResponse = RESPONSE
