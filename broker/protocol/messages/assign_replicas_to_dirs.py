"""AssignReplicasToDirs (key 73): a broker tells the controller which log directory each of its
replicas lives in (KIP-858)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, UUID, Array, Field, Message, Struct

API_KEY = 73
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "AssignReplicasToDirsRequest", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64, default=-1),
        Field("directories", Array(Struct("DirectoryData", [
            Field("id", UUID),
            Field("topics", Array(Struct("TopicData", [
                Field("topic_id", UUID),
                Field("partitions", Array(Struct("PartitionData", [
                    Field("partition_index", INT32),
                ]))),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "AssignReplicasToDirsResponse", api_key=API_KEY, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("directories", Array(Struct("DirectoryData", [
            Field("id", UUID),
            Field("topics", Array(Struct("TopicData", [
                Field("topic_id", UUID),
                Field("partitions", Array(Struct("PartitionData", [
                    Field("partition_index", INT32),
                    Field("error_code", INT16),
                ]))),
            ]))),
        ]))),
    ],
)

AssignReplicasToDirsRequest = REQUEST
AssignReplicasToDirsResponse = RESPONSE
