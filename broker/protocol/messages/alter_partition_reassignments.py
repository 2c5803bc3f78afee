"""AlterPartitionReassignments (key 45, KIP-455): move partitions to other replicas, or cancel
a move (``replicas`` null). Version 1 adds ``allow_replication_factor_change`` (KIP-860)."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 45
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "AlterPartitionReassignmentsRequest", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("timeout_ms", INT32, default=60000),
        Field("allow_replication_factor_change", BOOL, "1+", default=True),
        Field("topics", Array(Struct("ReassignableTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("ReassignablePartition", [
                Field("partition_index", INT32),
                Field("replicas", Array(INT32), nullable_versions="0+", default=None),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "AlterPartitionReassignmentsResponse", api_key=API_KEY, valid_versions="0-1",
    flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("allow_replication_factor_change", BOOL, "1+", default=True, ignorable=True),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+"),
        Field("responses", Array(Struct("ReassignableTopicResponse", [
            Field("name", STRING),
            Field("partitions", Array(Struct("ReassignablePartitionResponse", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("error_message", STRING, nullable_versions="0+"),
            ]))),
        ]))),
    ],
)

AlterPartitionReassignmentsRequest = REQUEST
AlterPartitionReassignmentsResponse = RESPONSE
