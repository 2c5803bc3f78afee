"""UpdateFeatures on the controller (Kafka's FeatureControlManager, KIP-584/KIP-778): the
cluster's finalized feature levels change only through FeatureLevelRecords written here.

Every update of a request is checked, in order, and the first failure fails the whole request
(one top-level error, no record): a level below 0; a level outside what this controller
supports (``SUPPORTED_FEATURES``) or what any registered broker registered for that feature; a
downgrade asked as an upgrade or an upgrade asked as a downgrade; for metadata.version, a level
below 3.3-IV0 and a downgrade across a version that changed the metadata format
(``METADATA_CHANGED``, Kafka's ``didMetadataChange``; an unsafe downgrade is refused too, as
Kafka does). ``validate_only`` checks and writes nothing.

kraft.version lives in the Raft log, not in FeatureLevelRecords (KIP-853): its current level is
the quorum's (``kraft_version``: 0 for a static ``controller.quorum.voters`` quorum, 1 when
formatted with ``--standalone`` / ``--initial-controllers``). Asking for the current level is a
no-op; a downgrade is refused; an upgrade from 0 to 1 is refused unless ``kraft_upgrade`` says
the quorum can rewrite its static voters as a voter set (it cannot yet).
"""

from __future__ import annotations

from dataclasses import dataclass

from kraft.controller.results import ControllerResult
from kraft.image import METADATA_VERSION, MetadataImage
from kraft.metadata_records import FeatureLevelRecord, MetadataRecordType
from storage.error_codes import ErrorCode

__all__ = [
    "KRAFT_VERSION", "METADATA_CHANGED", "METADATA_VERSION_RANGE", "SUPPORTED_FEATURES",
    "FeatureUpdate", "UpdateFeaturesReply", "UpdateFeaturesRequest", "UpgradeType",
    "update_features",
]

KRAFT_VERSION = "kraft.version"
# metadata.version 3.3-IV0 .. 4.0-IV3 (brokers register it: broker/controller/lifecycle.py).
METADATA_VERSION_RANGE = (4, 25)
SUPPORTED_FEATURES: dict[str, tuple[int, int]] = {
    METADATA_VERSION: METADATA_VERSION_RANGE,
    KRAFT_VERSION: (0, 1),
}
# metadata.version levels whose records differ from the level before (Kafka's
# MetadataVersion.didMetadataChange): a downgrade across one of them could lose metadata.
METADATA_CHANGED = frozenset({5, 6, 7, 8, 11, 13, 14, 15, 17, 23})


class UpgradeType:
    """UpdateFeatures v1+ ``UpgradeType`` (v0's ``AllowDowngrade`` maps to 1 or 2)."""

    UNKNOWN = 0
    UPGRADE = 1
    SAFE_DOWNGRADE = 2
    UNSAFE_DOWNGRADE = 3


@dataclass(frozen=True, slots=True)
class FeatureUpdate:
    name: str
    level: int
    upgrade_type: int = UpgradeType.UPGRADE


@dataclass(frozen=True, slots=True)
class UpdateFeaturesRequest:
    updates: tuple[FeatureUpdate, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class UpdateFeaturesReply:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


class _Invalid(Exception):
    pass


def update_features(image: MetadataImage, request: UpdateFeaturesRequest, *, node_id: int,
                    default_metadata_version: int, kraft_version: int,
                    kraft_upgrade: bool = False) -> ControllerResult:
    records: list[tuple[MetadataRecordType, object]] = []
    try:
        seen: set[str] = set()
        for u in request.updates:
            if u.name in seen:
                raise _Invalid(f"Invalid update version {u.level} for feature {u.name}. "
                               "The feature was specified more than once.")
            seen.add(u.name)
            records.extend(_update_one(image, u, node_id=node_id,
                                       default_mv=default_metadata_version,
                                       kraft_version=kraft_version, kraft_upgrade=kraft_upgrade))
    except _Invalid as e:
        return ControllerResult([], UpdateFeaturesReply(ErrorCode.INVALID_UPDATE_VERSION,
                                                        str(e)))
    if request.validate_only:
        records = []
    return ControllerResult(records, UpdateFeaturesReply())  # type: ignore[arg-type]


def _update_one(image: MetadataImage, u: FeatureUpdate, *, node_id: int, default_mv: int,
                kraft_version: int, kraft_upgrade: bool) -> list[tuple[MetadataRecordType, object]]:
    name, level = u.name, u.level

    def invalid(message: str) -> _Invalid:
        return _Invalid(f"Invalid update version {level} for feature {name}. {message}")

    if u.upgrade_type not in (UpgradeType.UPGRADE, UpgradeType.SAFE_DOWNGRADE,
                              UpgradeType.UNSAFE_DOWNGRADE):
        raise invalid("The controller does not support the given upgrade type.")
    if name == METADATA_VERSION:
        current = image.features.metadata_version or default_mv
    elif name == KRAFT_VERSION:
        current = kraft_version
    else:
        current = image.features.levels.get(name, 0)
    if level < 0:
        raise invalid("A feature version cannot be less than 0.")
    reason = _not_supported(f"Local controller {node_id}", SUPPORTED_FEATURES.get(name, (0, 0)),
                            level)
    if reason is None and name != KRAFT_VERSION:
        for broker_id, reg in sorted(image.cluster.brokers.items()):
            reason = _not_supported(f"Broker {broker_id}", reg.features.get(name, (0, 0)), level)
            if reason is not None:
                break
    if reason is not None:
        raise invalid(reason)
    if level < current and u.upgrade_type == UpgradeType.UPGRADE:
        raise invalid("Can't downgrade the version of this feature without setting the upgrade "
                      "type to either safe or unsafe downgrade.")
    if level > current and u.upgrade_type != UpgradeType.UPGRADE:
        raise invalid("Can't downgrade to a newer version.")
    if name == KRAFT_VERSION:
        if level < current:
            raise invalid("Downgrading kraft.version is not supported.")
        if level > current and not kraft_upgrade:
            raise invalid("Upgrading kraft.version from 0 to 1 is not supported by this quorum: "
                          "its voters are static (controller.quorum.voters). A dynamic quorum "
                          "is formatted with kafka-storage format --standalone or "
                          "--initial-controllers.")
        return []  # the current level, or an upgrade the Raft layer performs
    if name == METADATA_VERSION:
        _check_metadata_version(level, current, u.upgrade_type)
    if level == current:
        return []
    return [(MetadataRecordType.FEATURE_LEVEL_RECORD,
             FeatureLevelRecord(name=name, feature_level=level))]


def _check_metadata_version(level: int, current: int, upgrade_type: int) -> None:
    def invalid(message: str) -> _Invalid:
        return _Invalid(f"Invalid metadata.version {level}. {message}")

    if level < METADATA_VERSION_RANGE[0]:
        raise invalid("Unable to set a metadata.version less than 3.3-IV0")
    if level < current and any(v in METADATA_CHANGED for v in range(level + 1, current + 1)):
        if upgrade_type == UpgradeType.UNSAFE_DOWNGRADE:
            raise invalid("Unsafe metadata downgrade is not supported in this version.")
        raise invalid("Refusing to perform the requested downgrade because it might delete "
                      "metadata information.")


def _not_supported(what: str, supported: tuple[int, int], level: int) -> str | None:
    lo, hi = supported
    if lo <= level <= hi:
        return None
    if hi == 0:
        return f"{what} does not support this feature."
    return f"{what} only supports versions {lo}-{hi}" if lo != hi else \
        f"{what} only supports versions {lo}"
