"""Fetch (key 1): read record batches from partitions (consumers, followers, Raft observers)."""

from __future__ import annotations

from kraft.codec import (
    INT8,
    INT16,
    INT32,
    INT64,
    RECORDS,
    STRING,
    UUID,
    Array,
    Field,
    Message,
    Struct,
)

API_KEY = 1
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "FetchRequest", api_key=API_KEY, valid_versions="0-17", flexible_versions="12+",
    fields=[
        Field("cluster_id", STRING, "12+",
              nullable_versions="12+", tag=0, default=None, ignorable=True),
        Field("replica_id", INT32, "0-14", default=-1),
        Field("replica_state", Struct("ReplicaState", [
            Field("replica_id", INT32, "15+", default=-1),
            Field("replica_epoch", INT64, "15+", default=-1),
        ]), "15+", tag=1),
        Field("max_wait_ms", INT32),
        Field("min_bytes", INT32),
        Field("max_bytes", INT32, "3+", default=0x7fffffff, ignorable=True),
        Field("isolation_level", INT8, "4+", default=0, ignorable=True),
        Field("session_id", INT32, "7+", default=0, ignorable=True),
        Field("session_epoch", INT32, "7+", default=-1, ignorable=True),
        Field("topics", Array(Struct("FetchTopic", [
            Field("topic", STRING, "0-12", ignorable=True),
            Field("topic_id", UUID, "13+", ignorable=True),
            Field("partitions", Array(Struct("FetchPartition", [
                Field("partition", INT32),
                Field("current_leader_epoch", INT32, "9+", default=-1, ignorable=True),
                Field("fetch_offset", INT64),
                Field("last_fetched_epoch", INT32, "12+", default=-1),
                Field("log_start_offset", INT64, "5+", default=-1, ignorable=True),
                Field("partition_max_bytes", INT32),
                Field("replica_directory_id", UUID, "17+", tag=0, ignorable=True),
            ]))),
        ]))),
        Field("forgotten_topics_data", Array(Struct("ForgottenTopic", [
            Field("topic", STRING, "7-12", ignorable=True),
            Field("topic_id", UUID, "13+", ignorable=True),
            Field("partitions", Array(INT32), "7+"),
        ])), "7+"),
        Field("rack_id", STRING, "11+", default="", ignorable=True),
    ],
)

RESPONSE = Message(
    "FetchResponse", api_key=API_KEY, valid_versions="0-17", flexible_versions="12+",
    fields=[
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("error_code", INT16, "7+", ignorable=True),
        Field("session_id", INT32, "7+", default=0),
        Field("responses", Array(Struct("FetchableTopicResponse", [
            Field("topic", STRING, "0-12", ignorable=True),
            Field("topic_id", UUID, "13+", ignorable=True),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("high_watermark", INT64),
                Field("last_stable_offset", INT64, "4+", default=-1, ignorable=True),
                Field("log_start_offset", INT64, "5+", default=-1, ignorable=True),
                Field("diverging_epoch", Struct("EpochEndOffset", [
                    Field("epoch", INT32, "12+", default=-1),
                    Field("end_offset", INT64, "12+", default=-1),
                ]), "12+", tag=0),
                Field("current_leader", Struct("LeaderIdAndEpoch", [
                    Field("leader_id", INT32, "12+", default=-1),
                    Field("leader_epoch", INT32, "12+", default=-1),
                ]), "12+", tag=1),
                Field("snapshot_id", Struct("SnapshotId", [
                    Field("end_offset", INT64, default=-1),
                    Field("epoch", INT32, default=-1),
                ]), "12+", tag=2),
                Field("aborted_transactions", Array(Struct("AbortedTransaction", [
                    Field("producer_id", INT64, "4+"),
                    Field("first_offset", INT64, "4+"),
                ])), "4+", nullable_versions="4+", ignorable=True),
                Field("preferred_read_replica", INT32, "11+", default=-1),
                Field("records", RECORDS, nullable_versions="0+"),
            ]))),
        ]))),
        Field("node_endpoints", Array(Struct("NodeEndpoint", [
            Field("node_id", INT32, "16+"),
            Field("host", STRING, "16+"),
            Field("port", INT32, "16+"),
            Field("rack", STRING, "16+", nullable_versions="16+", default=None),
        ])), "16+", tag=0),
    ],
)

FetchRequest = REQUEST
FetchResponse = RESPONSE
