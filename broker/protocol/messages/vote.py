"""Vote (key 52): KRaft candidate asks the voters for their vote (KIP-595).

Version 2 adds ``pre_vote`` (KIP-996): a PreVote asks whether the voter *would* grant its vote,
without anyone changing state. Kafka renamed ``candidate_epoch``/``candidate_id`` to
``replica_epoch``/``replica_id`` in v2 (a PreVote carries the sender's current epoch, not the
bumped one); the wire layout is unchanged, so the field names here stay as in v0-1.
"""

from __future__ import annotations

from kraft.codec import (
    BOOL,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT16,
    UUID,
    Array,
    Field,
    Message,
    Struct,
)

API_KEY = 52
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "VoteRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("cluster_id", STRING, nullable_versions="0+", default=None),
        Field("voter_id", INT32, "1+", default=-1, ignorable=True),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("candidate_epoch", INT32),
                Field("candidate_id", INT32),
                Field("candidate_directory_id", UUID, "1+", ignorable=True),
                Field("voter_directory_id", UUID, "1+", ignorable=True),
                Field("last_offset_epoch", INT32),
                Field("last_offset", INT64),
                Field("pre_vote", BOOL, "2+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "VoteResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("error_code", INT16),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
                Field("vote_granted", BOOL),
            ]))),
        ]))),
        Field("node_endpoints", Array(Struct("NodeEndpoint", [
            Field("node_id", INT32, "1+"),
            Field("host", STRING, "1+"),
            Field("port", UINT16, "1+"),
        ])), "1+", tag=0),
    ],
)

VoteRequest = REQUEST
VoteResponse = RESPONSE
