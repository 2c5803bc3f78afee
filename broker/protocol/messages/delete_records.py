"""DeleteRecords (key 21): move partitions' log start offsets forward (records below it go)."""

from __future__ import annotations

from kraft.codec import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 21
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "DeleteRecordsRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("topics", Array(Struct("DeleteRecordsTopic", [
            Field("name", STRING),
            Field("partitions", Array(Struct("DeleteRecordsPartition", [
                Field("partition_index", INT32),
                Field("offset", INT64),
            ]))),
        ]))),
        Field("timeout_ms", INT32),
    ],
)

RESPONSE = Message(
    "DeleteRecordsResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("topics", Array(Struct("DeleteRecordsTopicResult", [
            Field("name", STRING),
            Field("partitions", Array(Struct("DeleteRecordsPartitionResult", [
                Field("partition_index", INT32),
                Field("low_watermark", INT64),
                Field("error_code", INT16),
            ]))),
        ]))),
    ],
)

DeleteRecordsRequest = REQUEST
DeleteRecordsResponse = RESPONSE
