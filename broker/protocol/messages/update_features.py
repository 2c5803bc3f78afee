"""UpdateFeatures (key 57): change the cluster's finalized feature levels (KIP-584, KIP-778).

Answered by the active controller (kraft/controller/feature_control.py); a broker forwards it.
v1 replaces ``allow_downgrade`` by ``upgrade_type`` (1 upgrade, 2 safe downgrade, 3 unsafe
downgrade) and adds ``validate_only``; v2 answers without per-feature results.
"""

from __future__ import annotations

from kraft.codec import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

API_KEY = 57
LISTENERS = frozenset({"broker", "controller"})

REQUEST = Message(
    "UpdateFeaturesRequest", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("timeout_ms", INT32, default=60000),
        Field("feature_updates", Array(Struct("FeatureUpdateKey", [
            Field("feature", STRING),
            Field("max_version_level", INT16),
            Field("allow_downgrade", BOOL, "0", default=False),
            Field("upgrade_type", INT8, "1+", default=1),
        ]))),
        Field("validate_only", BOOL, "1+", default=False),
    ],
)

RESPONSE = Message(
    "UpdateFeaturesResponse", api_key=API_KEY, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("throttle_time_ms", INT32),
        Field("error_code", INT16),
        Field("error_message", STRING, nullable_versions="0+", default=None),
        Field("results", Array(Struct("UpdatableFeatureResult", [
            Field("feature", STRING),
            Field("error_code", INT16),
            Field("error_message", STRING, nullable_versions="0+", default=None),
        ])), "0-1", ignorable=True),
    ],
)

UpdateFeaturesRequest = REQUEST
UpdateFeaturesResponse = RESPONSE
