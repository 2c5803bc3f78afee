"""ListPartitionReassignments (key 46, KIP-455): the partition reassignments in flight."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 46
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "ListPartitionReassignmentsRequest", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("timeout_ms", INT32, default=60000),
        Field("topics", Array(Struct("ListPartitionReassignmentsTopics", [
            Field("name", STRING),
            Field("partition_indexes", Array(INT32)),
        ])), nullable_versions="0+", default=None),
    ],
)

RESPONSE = Message(
    "ListPartitionReassignmentsResponse", api_key=API_KEY, valid_versions="0",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+"),
        Field("topics", Array(Struct("OngoingTopicReassignment", [
            Field("name", STRING),
            Field("partitions", Array(Struct("OngoingPartitionReassignment", [
                Field("partition_index", INT32),
                Field("replicas", Array(INT32)),
                Field("adding_replicas", Array(INT32)),
                Field("removing_replicas", Array(INT32)),
            ]))),
        ]))),
    ],
)

ListPartitionReassignmentsRequest = REQUEST
ListPartitionReassignmentsResponse = RESPONSE
