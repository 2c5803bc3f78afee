"""UpdateFeatures (57) between the wire and the controller's operation
(kraft/controller/feature_control.py), both ways; a reply of None means this node is not the
active controller. As Kafka's UpdateFeaturesResponse.createWithErrors: one top-level error, and
before v2 a result per feature only when the request succeeded."""

from __future__ import annotations

from typing import Any

from broker.protocol.messages import update_features
from kraft.controller.feature_control import (
    FeatureUpdate,
    UpdateFeaturesReply,
    UpdateFeaturesRequest,
    UpgradeType,
)
from storage.error_codes import ErrorCode

__all__ = ["update_features_request", "update_features_response"]

_NOT_CONTROLLER_MSG = "This is not the correct controller for this cluster."


def update_features_request(request: Any, version: int) -> UpdateFeaturesRequest:
    updates = []
    for u in request.feature_updates:
        if version == 0:
            kind = UpgradeType.SAFE_DOWNGRADE if u.allow_downgrade else UpgradeType.UPGRADE
        else:
            kind = int(u.upgrade_type)
        updates.append(FeatureUpdate(u.feature, int(u.max_version_level), kind))
    return UpdateFeaturesRequest(tuple(updates), validate_only=bool(request.validate_only))


def update_features_response(request: Any, reply: UpdateFeaturesReply | None,
                             version: int) -> Any:
    R = update_features.RESPONSE
    if reply is None:
        reply = UpdateFeaturesReply(ErrorCode.NOT_CONTROLLER, _NOT_CONTROLLER_MSG)
    code = int(reply.error_code)
    results = []
    if version < 2 and code == 0:
        results = [R.UpdatableFeatureResult(feature=u.feature, error_code=0)
                   for u in request.feature_updates]
    return R.cls(throttle_time_ms=0, error_code=code, error_message=reply.error_message,
                 results=results)
