"""ElectLeaders (key 43): trigger preferred or unclean leader election for partitions."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 43
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "ElectLeadersRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("election_type", INT8, "1+"),
        Field("topic_partitions", Array(Struct("TopicPartitions", [
            Field("topic", STRING),
            Field("partitions", Array(INT32)),
        ])), nullable_versions="0+"),
        Field("timeout_ms", INT32, default=60000),
    ],
)

RESPONSE = Message(
    "ElectLeadersResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16, "1+"),
        Field("replica_election_results", Array(Struct("ReplicaElectionResult", [
            Field("topic", STRING),
            Field("partition_result", Array(Struct("PartitionResult", [
                Field("partition_id", INT32),
                Field("error_code", INT16),
                Field("error_message", STRING, nullable_versions="0+"),
            ]))),
        ]))),
    ],
)

ElectLeadersRequest = REQUEST
ElectLeadersResponse = RESPONSE
