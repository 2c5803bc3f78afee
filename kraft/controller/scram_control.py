"""SCRAM credentials on the controller (Kafka's ``ScramControlManager``, KIP-554):
AlterUserScramCredentials becomes UserScramCredentialRecords and
RemoveUserScramCredentialRecords. The client sends the salted password; the controller keeps
only the stored and server keys derived from it (RFC 5802), never the password.

Checks, with Kafka's errors and messages, per user (the first error of a user answers for all
of its alterations, and none of them is applied): an empty name or too few/many iterations
(4096..16384) UNACCEPTABLE_CREDENTIAL, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, the same
(user, mechanism) twice in a request DUPLICATE_RESOURCE, deleting a credential that does not
exist RESOURCE_NOT_FOUND. Pure."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from kraft.controller.results import ControllerResult
from kraft.image import MetadataImage
from kraft.metadata_records import (
    MetadataRecordType,
    RemoveUserScramCredentialRecord,
    UserScramCredentialRecord,
)
from storage.error_codes import ErrorCode

__all__ = ["AlterScramReply", "AlterScramRequest", "alter_user_scram_credentials"]

MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
_HASHES = {1: "sha256", 2: "sha512"}


@dataclass(frozen=True, slots=True)
class AlterScramRequest:
    deletions: tuple[tuple[str, int], ...]  # (user, mechanism)
    upsertions: tuple[tuple[str, int, int, bytes, bytes], ...]  # + iterations, salt, salted


@dataclass(frozen=True, slots=True)
class AlterScramReply:
    results: tuple[tuple[str, int, str | None], ...]  # (user, error code, message)


def _keys(mechanism: int, salted: bytes) -> tuple[bytes, bytes]:
    h = _HASHES[mechanism]
    client_key = hmac.digest(salted, b"Client Key", h)
    return hashlib.new(h, client_key).digest(), hmac.digest(salted, b"Server Key", h)


def alter_user_scram_credentials(image: MetadataImage,
                                 request: AlterScramRequest) -> ControllerResult:
    errors: dict[str, tuple[int, str]] = {}
    users: list[str] = []
    seen: set[tuple[str, int]] = set()

    def fail(user: str, code: int, message: str) -> None:
        errors.setdefault(user, (code, message))

    alterations = [(u, m, None) for u, m in request.deletions] + [
        (u, m, (i, salt, salted)) for u, m, i, salt, salted in request.upsertions]
    for user, mech, upsert in alterations:
        if user not in users:
            users.append(user)
        if not user:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
        elif mech not in _HASHES:
            fail(user, ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
        elif (user, mech) in seen:
            fail(user, ErrorCode.DUPLICATE_RESOURCE,
                 "A user credential cannot be altered twice in the same request")
        elif upsert is None and image.scram.get(user, mech) is None:
            fail(user, ErrorCode.RESOURCE_NOT_FOUND,
                 "Attempt to delete a user credential that does not exist")
        elif upsert is not None and upsert[0] < MIN_ITERATIONS:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
        elif upsert is not None and upsert[0] > MAX_ITERATIONS:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
        seen.add((user, mech))
    records = []
    for user, mech, upsert in alterations:
        if user in errors:
            continue
        if upsert is None:
            records.append((MetadataRecordType.REMOVE_USER_SCRAM_CREDENTIAL_RECORD,
                            RemoveUserScramCredentialRecord(name=user, mechanism=mech)))
        else:
            iterations, salt, salted = upsert
            stored, server = _keys(mech, bytes(salted))
            records.append((MetadataRecordType.USER_SCRAM_CREDENTIAL_RECORD,
                            UserScramCredentialRecord(
                                name=user, mechanism=mech, salt=bytes(salt), stored_key=stored,
                                server_key=server, iterations=iterations)))
    results = tuple((u, *errors.get(u, (0, None))) for u in users)
    return ControllerResult(records, AlterScramReply(results))  # type: ignore[arg-type]
