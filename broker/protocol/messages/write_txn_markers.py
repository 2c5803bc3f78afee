"""WriteTxnMarkers (key 27): write transaction commit/abort markers."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 27
LISTENERS = frozenset({"broker"})

REQUEST = Message(
    "WriteTxnMarkersRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="1+",
    fields=[
        Field("markers", Array(Struct("WritableTxnMarker", [
            Field("producer_id", INT64),
            Field("producer_epoch", INT16),
            Field("transaction_result", BOOL),
            Field("topics", Array(Struct("WritableTxnMarkerTopic", [
                Field("name", STRING),
                Field("partition_indexes", Array(INT32)),
            ]))),
            Field("coordinator_epoch", INT32),
            Field("transaction_version", INT8, "2+", default=0, ignorable=True),
        ]))),
    ],
)

RESPONSE = Message(
    "WriteTxnMarkersResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="1+",
    fields=[
        Field("markers", Array(Struct("WritableTxnMarkerResult", [
            Field("producer_id", INT64),
            Field("topics", Array(Struct("WritableTxnMarkerTopicResult", [
                Field("name", STRING),
                Field("partitions", Array(Struct("WritableTxnMarkerPartitionResult", [
                    Field("partition_index", INT32),
                    Field("error_code", INT16),
                ]))),
            ]))),
        ]))),
    ],
)

WriteTxnMarkersRequest = REQUEST
WriteTxnMarkersResponse = RESPONSE
