"""DescribeCluster (key 60): describe brokers, the controller and the cluster id."""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 60
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "DescribeClusterRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("include_cluster_authorized_operations", BOOL),
        Field("endpoint_type", INT8, "1+", default=1),
        Field("include_fenced_brokers", BOOL, "2+", default=False),
    ],
)

RESPONSE = Message(
    "DescribeClusterResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None),
        Field("endpoint_type", INT8, "1+", default=1),
        Field("cluster_id", STRING),
        Field("controller_id", INT32, default=-1),
        Field("brokers", Array(Struct("DescribeClusterBroker", [
            Field("broker_id", INT32),
            Field("host", STRING),
            Field("port", INT32),
            Field("rack", STRING, nullable_versions="0+", default=None),
            Field("is_fenced", BOOL, "2+", default=False),
        ]))),
        Field("cluster_authorized_operations", INT32, default=-2147483648),
    ],
)

DescribeClusterRequest = REQUEST
DescribeClusterResponse = RESPONSE
