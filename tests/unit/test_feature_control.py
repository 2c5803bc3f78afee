"""UpdateFeatures on the controller (kraft/controller/feature_control.py) and its wire
translation (broker/controller/feature_translation.py)."""

from __future__ import annotations

import dataclasses

from broker.controller.feature_translation import (
    update_features_request,
    update_features_response,
)
from broker.protocol.messages import update_features
from kraft.controller import ControllerConfig
from kraft.controller.feature_control import (
    FeatureUpdate,
    UpdateFeaturesReply,
    UpdateFeaturesRequest,
    UpgradeType,
)
from kraft.metadata_records import MetadataRecordType as T
from storage.error_codes import ErrorCode as E
from tests.unit.test_controller_helpers import Harness, reg_request

UP, SAFE, UNSAFE = UpgradeType.UPGRADE, UpgradeType.SAFE_DOWNGRADE, UpgradeType.UNSAFE_DOWNGRADE


def update(h: Harness, *updates: tuple[str, int, int], validate_only: bool = False) -> tuple[
        list, UpdateFeaturesReply]:
    req = UpdateFeaturesRequest(tuple(FeatureUpdate(*u) for u in updates),
                                validate_only=validate_only)
    result = h.c.update_features(req, h.now)
    records = list(result.records)
    h.apply(result)
    return records, result.response


def test_metadata_version_upgrade_writes_a_feature_level_record() -> None:
    h = Harness(ControllerConfig(node_id=1))
    assert h.image.features.metadata_version == 21
    records, reply = update(h, ("metadata.version", 25, UP))
    assert reply.error_code == E.NONE
    assert [(t, r.name, r.feature_level) for t, r in records] == [
        (T.FEATURE_LEVEL_RECORD, "metadata.version", 25)]
    assert h.image.features.metadata_version == 25
    # The same level again: nothing to write.
    records, reply = update(h, ("metadata.version", 25, UP))
    assert (records, reply.error_code) == ([], E.NONE)


def test_validate_only_writes_nothing() -> None:
    h = Harness(ControllerConfig(node_id=1))
    records, reply = update(h, ("metadata.version", 22, UP), validate_only=True)
    assert (records, reply.error_code) == ([], E.NONE)
    assert h.image.features.metadata_version == 21


def test_downgrades() -> None:
    h = Harness(ControllerConfig(node_id=1))
    update(h, ("metadata.version", 25, UP))
    records, reply = update(h, ("metadata.version", 24, UP))
    assert reply.error_code == E.INVALID_UPDATE_VERSION and not records
    assert reply.error_message == (
        "Invalid update version 24 for feature metadata.version. Can't downgrade the version "
        "of this feature without setting the upgrade type to either safe or unsafe downgrade.")
    # 25 -> 24: no metadata change in between, a safe downgrade is allowed.
    records, reply = update(h, ("metadata.version", 24, SAFE))
    assert reply.error_code == E.NONE and h.image.features.metadata_version == 24
    # 24 -> 22 crosses 23 (a format change): refused, safe or not.
    _, reply = update(h, ("metadata.version", 22, SAFE))
    assert reply.error_message == ("Invalid metadata.version 22. Refusing to perform the "
                                   "requested downgrade because it might delete metadata "
                                   "information.")
    _, reply = update(h, ("metadata.version", 22, UNSAFE))
    assert reply.error_message == ("Invalid metadata.version 22. Unsafe metadata downgrade is "
                                   "not supported in this version.")
    _, reply = update(h, ("metadata.version", 25, SAFE))
    assert reply.error_message.endswith("Can't downgrade to a newer version.")
    assert h.image.features.metadata_version == 24


def test_out_of_range_and_unknown() -> None:
    h = Harness(ControllerConfig(node_id=3))
    _, reply = update(h, ("metadata.version", 26, UP))
    assert reply.error_message == ("Invalid update version 26 for feature metadata.version. "
                                   "Local controller 3 only supports versions 4-25")
    _, reply = update(h, ("metadata.version", 3, SAFE))
    assert reply.error_code == E.INVALID_UPDATE_VERSION
    _, reply = update(h, ("group.version", 1, UP))
    assert reply.error_message.endswith("Local controller 3 does not support this feature.")
    _, reply = update(h, ("metadata.version", -1, SAFE))
    assert reply.error_message.endswith("A feature version cannot be less than 0.")
    _, reply = update(h, ("metadata.version", 22, 7))
    assert reply.error_message.endswith("The controller does not support the given upgrade type.")
    # One bad update fails the whole request.
    records, reply = update(h, ("metadata.version", 22, UP), ("group.version", 1, UP))
    assert reply.error_code == E.INVALID_UPDATE_VERSION and records == []
    assert h.image.features.metadata_version == 21


def test_a_broker_that_does_not_support_the_level_blocks_it() -> None:
    h = Harness(ControllerConfig(node_id=1))
    h.apply(h.c.register_broker(reg_request(5, mv_range=(4, 22)), h.now))
    _, reply = update(h, ("metadata.version", 23, UP))
    assert reply.error_message == ("Invalid update version 23 for feature metadata.version. "
                                   "Broker 5 only supports versions 4-22")
    _, reply = update(h, ("metadata.version", 22, UP))
    assert reply.error_code == E.NONE


def test_kraft_version() -> None:
    static = Harness(ControllerConfig(node_id=1, kraft_version=0))
    records, reply = update(static, ("kraft.version", 0, UP))
    assert (records, reply.error_code) == ([], E.NONE)
    records, reply = update(static, ("kraft.version", 1, UP))
    assert reply.error_code == E.INVALID_UPDATE_VERSION and records == []
    assert "Upgrading kraft.version from 0 to 1 is not supported" in reply.error_message
    _, reply = update(static, ("kraft.version", 2, UP))
    assert reply.error_message.endswith("Local controller 1 only supports versions 0-1")
    dynamic = Harness(ControllerConfig(node_id=1, kraft_version=1))
    _, reply = update(dynamic, ("kraft.version", 0, SAFE))
    assert reply.error_message == ("Invalid update version 0 for feature kraft.version. "
                                   "Downgrading kraft.version is not supported.")
    assert update(dynamic, ("kraft.version", 1, UP))[1].error_code == E.NONE


def test_wire_translation() -> None:
    R = update_features.REQUEST
    wire = R.cls(feature_updates=[
        R.FeatureUpdateKey(feature="metadata.version", max_version_level=20,
                           allow_downgrade=True)])
    assert update_features_request(wire, 0) == UpdateFeaturesRequest(
        (FeatureUpdate("metadata.version", 20, SAFE),))
    wire = dataclasses.replace(wire, validate_only=True, feature_updates=[
        R.FeatureUpdateKey(feature="metadata.version", max_version_level=20, upgrade_type=3)])
    assert update_features_request(wire, 1) == UpdateFeaturesRequest(
        (FeatureUpdate("metadata.version", 20, UNSAFE),), validate_only=True)
    ok = update_features_response(wire, UpdateFeaturesReply(), 1)
    assert ok.error_code == 0 and [r.feature for r in ok.results] == ["metadata.version"]
    assert update_features_response(wire, UpdateFeaturesReply(), 2).results == []
    bad = update_features_response(wire, UpdateFeaturesReply(E.INVALID_UPDATE_VERSION, "no"), 1)
    assert (bad.error_code, bad.error_message, bad.results) == (
        E.INVALID_UPDATE_VERSION, "no", [])
    assert update_features_response(wire, None, 2).error_code == E.NOT_CONTROLLER


