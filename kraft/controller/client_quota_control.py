"""AlterClientQuotas on the controller (Kafka's ClientQuotaControlManager): each entity's
operations are checked (entity types and their combination, keys valid for it, LONG keys
integral) and become ClientQuotaRecords, one per key that changes. An entity whose operations
are not all valid gets its error and no record; the others still apply.

Differences from Kafka, on purpose: a value must be a positive finite number (Kafka takes any
double, and a quota of 0 or below would throttle without bound); an entity with one bad key
writes none of its keys (Kafka's manager writes the good ones and answers NONE).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from kraft.client_quotas import CLIENT_ID, IP, USER, QuotaEntity, entity_of
from kraft.controller.results import ApiError, ControllerResult, Record
from kraft.image import MetadataImage
from kraft.metadata_records import ClientQuotaRecord, MetadataRecordType
from storage.error_codes import ErrorCode

__all__ = [
    "CLIENT_QUOTA_KEYS", "IP_QUOTA_KEYS", "AlterClientQuotasReply", "AlterClientQuotasRequest",
    "ClientQuotaAlteration", "alter_client_quotas",
]

# Quota key -> whether it is a LONG (else DOUBLE), Kafka's QuotaConfigs.
CLIENT_QUOTA_KEYS = {
    "producer_byte_rate": True,
    "consumer_byte_rate": True,
    "request_percentage": False,
    "controller_mutation_rate": False,
}
IP_QUOTA_KEYS = {"connection_creation_rate": True}


@dataclass(frozen=True, slots=True)
class ClientQuotaAlteration:
    """One entity ((type, name) pairs as sent) and its (key, value, remove) operations."""

    entity: tuple[tuple[str, str | None], ...]
    ops: tuple[tuple[str, float, bool], ...]


@dataclass(frozen=True, slots=True)
class AlterClientQuotasRequest:
    entries: tuple[ClientQuotaAlteration, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class AlterClientQuotasReply:
    """Per entry of the request, in its order: (error code, message)."""

    results: tuple[tuple[ErrorCode, str | None], ...]


def _keys_for(entity: tuple[tuple[str, str | None], ...]) -> dict[str, bool]:
    if not entity:
        raise ApiError(ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity")
    seen: dict[str, str | None] = {}
    for etype, name in entity:
        if etype in seen:
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           f"Invalid empty client quota entity, duplicate entity entry {etype}")
        if etype not in (USER, CLIENT_ID, IP):
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           f"Unhandled client quota entity type: {etype}")
        if name is not None and not name:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Empty {etype} not supported")
        seen[etype] = name
    if IP in seen:
        if len(seen) > 1:
            raise ApiError(ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity")
        ip = seen[IP]
        if ip is not None:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ApiError(ErrorCode.INVALID_REQUEST,
                               f"{ip} is not a valid IP or resolvable host.") from None
        return IP_QUOTA_KEYS
    return CLIENT_QUOTA_KEYS


def _check_value(keys: dict[str, bool], key: str, value: float) -> None:
    is_long = keys.get(key)
    if is_long is None:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Invalid configuration key {key}")
    if not math.isfinite(value) or value <= 0:
        raise ApiError(ErrorCode.INVALID_REQUEST,
                       f"Configuration {key} must be a positive number, got {value}")
    if is_long and abs(math.floor(value + 1e-6) - value) > 1e-6:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Configuration {key} must be a Long value")


def _entity_records(image: MetadataImage, alteration: ClientQuotaAlteration) -> list[Record]:
    keys = _keys_for(alteration.entity)
    wanted: dict[str, float | None] = {}
    for key, value, remove in alteration.ops:
        if key in wanted:
            raise ApiError(ErrorCode.INVALID_REQUEST,
                           f"Duplicate quota key {key} not updating quota for this entity")
        if not remove:
            _check_value(keys, key, value)
        wanted[key] = None if remove else float(value)
    entity: QuotaEntity = entity_of(alteration.entity)
    current = image.client_quotas.entities.get(entity, {})
    records: list[Record] = []
    for key, value in wanted.items():
        if value is None and key not in current:
            continue
        if value is not None and current.get(key) == value:
            continue
        records.append((MetadataRecordType.CLIENT_QUOTA_RECORD, ClientQuotaRecord(
            entity=[ClientQuotaRecord.EntityData(entity_type=t, entity_name=n)
                    for t, n in entity],
            key=key, value=0.0 if value is None else value, remove=value is None)))
    return records


def alter_client_quotas(image: MetadataImage,
                        request: AlterClientQuotasRequest) -> ControllerResult:
    records: list[Record] = []
    results: list[tuple[ErrorCode, str | None]] = []
    for alteration in request.entries:
        try:
            entity_records = _entity_records(image, alteration)
        except ApiError as e:
            results.append((e.code, e.message))
            continue
        records.extend(entity_records)
        results.append((ErrorCode.NONE, None))
    if request.validate_only:
        records = []
    return ControllerResult(records, AlterClientQuotasReply(tuple(results)))
