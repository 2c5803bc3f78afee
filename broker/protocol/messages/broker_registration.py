"""BrokerRegistration (key 62): broker registers, gets a broker epoch (KIP-631)."""

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

API_KEY = 62
LISTENERS = frozenset({"controller"})

REQUEST = Message(
    "BrokerRegistrationRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="0+",
    fields=[
        Field("broker_id", INT32),
        Field("cluster_id", STRING),
        Field("incarnation_id", UUID),
        Field("listeners", Array(Struct("Listener", [
            Field("name", STRING),
            Field("host", STRING),
            Field("port", UINT16),
            Field("security_protocol", INT16),
        ]))),
        Field("features", Array(Struct("Feature", [
            Field("name", STRING),
            Field("min_supported_version", INT16),
            Field("max_supported_version", INT16),
        ]))),
        Field("rack", STRING, nullable_versions="0+"),
        Field("is_migrating_zk_broker", BOOL, "1+", default=False),
        Field("log_dirs", Array(UUID), "2+", ignorable=True),
        Field("previous_broker_epoch", INT64, "3+", default=-1, ignorable=True),
    ],
)

RESPONSE = Message(
    "BrokerRegistrationResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("broker_epoch", INT64, default=-1),
    ],
)

BrokerRegistrationRequest = REQUEST
BrokerRegistrationResponse = RESPONSE
