"""FetchSnapshot (key 59): KRaft follower fetches a metadata snapshot in chunks (KIP-630)."""

from __future__ import annotations

from kraft.codec import (
    INT16,
    INT32,
    INT64,
    RECORDS,
    STRING,
    UINT16,
    UUID,
    Array,
    Field,
    Message,
    Struct,
)

API_KEY = 59
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "FetchSnapshotRequest", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", tag=0, default=None),
        Field("replica_id", INT32, default=-1),
        Field("max_bytes", INT32, default=0x7fffffff),
        Field("topics", Array(Struct("TopicSnapshot", [
            Field("name", STRING),
            Field("partitions", Array(Struct("PartitionSnapshot", [
                Field("partition", INT32),
                Field("current_leader_epoch", INT32),
                Field("snapshot_id", Struct("SnapshotId", [
                    Field("end_offset", INT64),
                    Field("epoch", INT32),
                ])),
                Field("position", INT64),
                Field("replica_directory_id", UUID, "1+", tag=0, ignorable=True),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "FetchSnapshotResponse", api_key=API_KEY, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32, ignorable=True),
        Field("error_code", INT16),
        Field("topics", Array(Struct("TopicSnapshot", [
            Field("name", STRING),
            Field("partitions", Array(Struct("PartitionSnapshot", [
                Field("index", INT32),
                Field("error_code", INT16),
                Field("snapshot_id", Struct("SnapshotId", [
                    Field("end_offset", INT64),
                    Field("epoch", INT32),
                ])),
                Field("current_leader", Struct("LeaderIdAndEpoch", [
                    Field("leader_id", INT32),
                    Field("leader_epoch", INT32),
                ]), tag=0),
                Field("size", INT64),
                Field("position", INT64),
                Field("unaligned_records", RECORDS),
            ]))),
        ]))),
        Field("node_endpoints", Array(Struct("NodeEndpoint", [
            Field("node_id", INT32, "1+"),
            Field("host", STRING, "1+"),
            Field("port", UINT16, "1+"),
        ])), "1+", tag=0),
    ],
)

FetchSnapshotRequest = REQUEST
FetchSnapshotResponse = RESPONSE
