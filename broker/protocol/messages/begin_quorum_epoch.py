"""BeginQuorumEpoch (key 53): KRaft leader announces its election to the voters (KIP-595)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

API_KEY = 53
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "BeginQuorumEpochRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("voter_id", INT32, "1+", default=-1, ignorable=True),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("voter_directory_id", UUID, "1+", ignorable=True),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
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
    "BeginQuorumEpochResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="1+",
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

BeginQuorumEpochRequest = REQUEST
BeginQuorumEpochResponse = RESPONSE
