"""ConsumerGroupHeartbeat (key 68): a member of a consumer group of the new protocol (KIP-848)
joins, heartbeats, reports the partitions it owns and gets its assignment; v1 adds the
subscribed topic regex and has the client generate its member id."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 68
LISTENERS = frozenset({"broker"})

_TOPIC_PARTITIONS = Struct("TopicPartitions", [
    Field("topic_id", UUID),
    Field("partitions", Array(INT32)),
])

REQUEST = Message(
    "ConsumerGroupHeartbeatRequest", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("group_id", STRING),
        Field("member_id", STRING),
        Field("member_epoch", INT32),
        Field("instance_id", STRING, nullable_versions="0+", default=None),
        Field("rack_id", STRING, nullable_versions="0+", default=None),
        Field("rebalance_timeout_ms", INT32, default=-1),
        Field("subscribed_topic_names", Array(STRING), nullable_versions="0+", default=None),
        Field("subscribed_topic_regex", STRING, "1+", nullable_versions="1+", default=None),
        Field("server_assignor", STRING, nullable_versions="0+", default=None),
        Field("topic_partitions", Array(_TOPIC_PARTITIONS), nullable_versions="0+",
              default=None),
    ],
)

RESPONSE = Message(
    "ConsumerGroupHeartbeatResponse", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None),
        Field("member_id", STRING, nullable_versions="0+", default=None),
        Field("member_epoch", INT32),
        Field("heartbeat_interval_ms", INT32),
        Field("assignment", Struct("Assignment", [
            Field("topic_partitions", Array(_TOPIC_PARTITIONS)),
        ]), nullable_versions="0+", default=None),
    ],
)

ConsumerGroupHeartbeatRequest = REQUEST
ConsumerGroupHeartbeatResponse = RESPONSE
