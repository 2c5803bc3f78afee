"""ApiVersions (key 18): which versions of each API this node supports."""

from __future__ import annotations

from kraft.codec import BOOL, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

API_KEY = 18
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "ApiVersionsRequest", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("client_software_name", STRING, "3+", ignorable=True),
        Field("client_software_version", STRING, "3+", ignorable=True),
    ],
)

RESPONSE = Message(
    "ApiVersionsResponse", api_key=API_KEY, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("error_code", INT16),
        Field("api_keys", Array(Struct("ApiVersion", [
            Field("api_key", INT16),
            Field("min_version", INT16),
            Field("max_version", INT16),
        ]))),
        Field("throttle_time_ms", INT32, "1+", ignorable=True),
        Field("supported_features", Array(Struct("SupportedFeatureKey", [
            Field("name", STRING, "3+"),
            Field("min_version", INT16, "3+"),
            Field("max_version", INT16, "3+"),
        ])), "3+", tag=0, ignorable=True),
        Field("finalized_features_epoch", INT64, "3+", tag=1, default=-1, ignorable=True),
        Field("finalized_features", Array(Struct("FinalizedFeatureKey", [
            Field("name", STRING, "3+"),
            Field("max_version_level", INT16, "3+"),
            Field("min_version_level", INT16, "3+"),
        ])), "3+", tag=2, ignorable=True),
        Field("zk_migration_ready", BOOL, "3+", tag=3, default=False, ignorable=True),
    ],
)

ApiVersionsRequest = REQUEST
ApiVersionsResponse = RESPONSE
