"""EndQuorumEpoch (key 54): KRaft leader resigns; voters elect anew (KIP-595)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

API_KEY = 54
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "EndQuorumEpochRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
                Field("preferred_successors", Array(INT32), "0", ignorable=True),
                Field("preferred_candidates", Array(Struct("ReplicaInfo", [
                    Field("candidate_id", INT32, "1+"),
                    Field("candidate_directory_id", UUID, "1+"),
                ])), "1+", ignorable=True),
            ]))),
        ]))),
        Field("leader_endpoints", Array(Struct("LeaderEndpoint", [
            Field("name", STRING, "1+"),
            Field("host", STRING, "1+"),
            Field("port", UINT16, "1+"),
        ])), "1+", ignorable=True),
    ],
)

RESPONSE = Message(
    "EndQuorumEpochResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("error_code", INT16),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
            ]))),
        ]))),
        Field("node_endpoints", Array(Struct("NodeEndpoint", [
            Field("node_id", INT32, "1+"),
            Field("host", STRING, "1+"),
            Field("port", UINT16, "1+"),
        ])), "1+", tag=0),
    ],
)

EndQuorumEpochRequest = REQUEST
EndQuorumEpochResponse = RESPONSE
