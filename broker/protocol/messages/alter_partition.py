"""AlterPartition (key 56): partition leader asks the controller to change the ISR."""

from __future__ import annotations

from kraft.codec import INT8, INT16, INT32, INT64, STRING, UUID, Array, Field, Message, Struct

API_KEY = 56
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "AlterPartitionRequest", api_key=API_KEY, valid_versions="0-3", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("broker_epoch", INT64, default=-1),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING, "0-1", ignorable=True),
            Field("topic_id", UUID, "2+", ignorable=True),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("leader_epoch", INT32),
                Field("new_isr", Array(INT32), "0-2"),
                Field("new_isr_with_epochs", Array(Struct("BrokerState", [
                    Field("broker_id", INT32, "3+"),
                    Field("broker_epoch", INT64, "3+", default=-1),
                ])), "3+"),
                Field("leader_recovery_state", INT8, "1+", default=0),
                Field("partition_epoch", INT32),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "AlterPartitionResponse", api_key=API_KEY, valid_versions="0-3", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("topics", Array(Struct("TopicData", [
            Field("topic_name", STRING, "0-1", ignorable=True),
            Field("topic_id", UUID, "2+", ignorable=True),
            Field("partitions", Array(Struct("PartitionData", [
                Field("partition_index", INT32),
                Field("error_code", INT16),
                Field("leader_id", INT32),
                Field("leader_epoch", INT32),
                Field("isr", Array(INT32)),
                Field("leader_recovery_state", INT8, "1+", default=0, ignorable=True),
                Field("partition_epoch", INT32),
            ]))),
        ]))),
    ],
)

AlterPartitionRequest = REQUEST
AlterPartitionResponse = RESPONSE
