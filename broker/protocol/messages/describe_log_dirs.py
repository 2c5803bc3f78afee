"""DescribeLogDirs (key 35): a broker's log directories, the partitions each holds and their
sizes on disk (KIP-113; v3 adds a top-level error code, v4 each directory's volume size,
KIP-827). Clients send it to every broker: each answers for its own directories."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 35
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DescribeLogDirsRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="2+",
    fields=[
        # Null: every partition the broker hosts.
        Field("topics", Array(Struct("DescribableLogDirTopic", [
            Field("topic", STRING),
            Field("partitions", Array(INT32)),
        ])), nullable_versions="0+"),
    ],
)

RESPONSE = Message(
    "DescribeLogDirsResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16, "3+", ignorable=True),
        Field("results", Array(Struct("DescribeLogDirsResult", [
            Field("error_code", INT16),
            Field("log_dir", STRING),
            Field("topics", Array(Struct("DescribeLogDirsTopic", [
                Field("name", STRING),
                Field("partitions", Array(Struct("DescribeLogDirsPartition", [
                    Field("partition_index", INT32),
                    Field("partition_size", INT64),
                    Field("offset_lag", INT64),
                    Field("is_future_key", BOOL),
                ]))),
            ]))),
            Field("total_bytes", INT64, "4+", default=-1, ignorable=True),
            Field("usable_bytes", INT64, "4+", default=-1, ignorable=True),
        ]))),
    ],
)

DescribeLogDirsRequest = REQUEST
DescribeLogDirsResponse = RESPONSE
