"""ConsumerGroupDescribe (key 69): consumer groups of the new protocol (KIP-848) with their
epochs, assignor and members' current and target assignments; v1 adds the member type
(KIP-1099)."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

API_KEY = 69
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "ConsumerGroupDescribeRequest", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("group_ids", Array(STRING)),
        Field("include_authorized_operations", BOOL),
    ],
)

_ASSIGNMENT = Struct("Assignment", [
    Field("topic_partitions", Array(Struct("TopicPartitions", [
        Field("topic_id", UUID),
        Field("topic_name", STRING),
        Field("partitions", Array(INT32)),
    ]))),
])

RESPONSE = Message(
    "ConsumerGroupDescribeResponse", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("groups", Array(Struct("DescribedGroup", [
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
            Field("group_id", STRING),
            Field("group_state", STRING),
            Field("group_epoch", INT32),
            Field("assignment_epoch", INT32),
            Field("assignor_name", STRING),
            Field("members", Array(Struct("Member", [
                Field("member_id", STRING),
                Field("instance_id", STRING, nullable_versions="0+", default=None),
                Field("rack_id", STRING, nullable_versions="0+", default=None),
                Field("member_epoch", INT32),
                Field("client_id", STRING),
                Field("client_host", STRING),
                Field("subscribed_topic_names", Array(STRING)),
                Field("subscribed_topic_regex", STRING, nullable_versions="0+", default=None),
                Field("assignment", _ASSIGNMENT),
                Field("target_assignment", _ASSIGNMENT),
                Field("member_type", INT8, "1+", default=-1, ignorable=True),
            ]))),
            Field("authorized_operations", INT32, default=-2147483648),
        ]))),
    ],
)

ConsumerGroupDescribeRequest = REQUEST
ConsumerGroupDescribeResponse = RESPONSE
