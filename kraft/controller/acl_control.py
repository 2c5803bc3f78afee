"""CreateAcls and DeleteAcls on the controller (Kafka's AclControlManager): records from the
image, changing nothing.

A new ACL is checked (``kraft.acls.validate_new_acl``: INVALID_REQUEST naming the problem),
and one equal to an existing ACL, or to one earlier in the same request, writes nothing and
succeeds, as in Kafka. A delete filter matches ACLs of the image (``AclFilter.matches``); each
matching ACL gets one RemoveAccessControlEntryRecord, even when two filters match it, and is
listed under every filter that matched it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from kraft.acls import AclFilter, StandardAcl, validate_new_acl
from kraft.controller.results import ControllerResult, Record
from kraft.image import MetadataImage
from kraft.metadata_records import MetadataRecordType, RemoveAccessControlEntryRecord
from storage.error_codes import ErrorCode

__all__ = ["AclCreationResult", "AclDeletionResult", "create_acls", "delete_acls"]


@dataclass(frozen=True, slots=True)
class AclCreationResult:
    error_code: int = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class AclDeletionResult:
    error_code: int = ErrorCode.NONE
    error_message: str | None = None
    deleted: list[StandardAcl] = field(default_factory=list)


def create_acls(image: MetadataImage, rng: random.Random,
                acls: Sequence[StandardAcl]) -> ControllerResult:
    records: list[Record] = []
    results = []
    existing = set(image.acls.by_id.values())
    for acl in acls:
        problem = validate_new_acl(acl)
        if problem is not None:
            results.append(AclCreationResult(ErrorCode.INVALID_REQUEST, problem))
            continue
        if acl not in existing:
            existing.add(acl)
            acl_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            records.append((MetadataRecordType.ACCESS_CONTROL_ENTRY_RECORD,
                            acl.to_record(acl_id)))
        results.append(AclCreationResult())
    return ControllerResult(records, results)


def delete_acls(image: MetadataImage, filters: Sequence[AclFilter]) -> ControllerResult:
    records: list[Record] = []
    results = []
    removed: set[uuid.UUID] = set()
    for flt in filters:
        reason = flt.unknown_reason()
        if reason is not None:
            results.append(AclDeletionResult(ErrorCode.INVALID_REQUEST, reason))
            continue
        deleted = []
        for acl_id, acl in sorted(image.acls.matching(flt), key=lambda x: x[1]):
            deleted.append(acl)
            if acl_id not in removed:
                removed.add(acl_id)
                records.append((MetadataRecordType.REMOVE_ACCESS_CONTROL_ENTRY_RECORD,
                                RemoveAccessControlEntryRecord(id=acl_id)))
        results.append(AclDeletionResult(deleted=deleted))
    return ControllerResult(records, results)
