"""Client quotas in the metadata (KIP-546 on KRaft): the image part built from ClientQuotaRecords,
its delta, and DescribeClientQuotas' filter over it (Kafka's ClientQuotasImage).

A quota entity is a set of (entity type, entity name) pairs: ``user``, ``client-id`` (alone or
together) or ``ip`` (alone); a name of None is the default of that type. Here an entity is the
tuple of its pairs sorted by type, so it can key a mapping. Each entity holds its quota keys
(``producer_byte_rate``, ``consumer_byte_rate``, ``request_percentage``,
``controller_mutation_rate``; ``connection_creation_rate`` for ip) as floats, as the record does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kraft.metadata_records import ClientQuotaRecord, MetadataRecordType

__all__ = [
    "CLIENT_ID", "IP", "MATCH_DEFAULT", "MATCH_EXACT", "MATCH_SPECIFIED", "USER",
    "ClientQuotasDelta", "ClientQuotasImage", "QuotaEntity", "QuotaFilterError", "entity_of",
]

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
ENTITY_TYPES = frozenset({USER, CLIENT_ID, IP})

# DescribeClientQuotas ComponentData.match_type.
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2

QuotaEntity = tuple[tuple[str, str | None], ...]

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


def entity_of(pairs: Iterable[tuple[str, str | None]]) -> QuotaEntity:
    """The canonical form of an entity: its (type, name) pairs sorted by type."""
    return tuple(sorted(pairs, key=lambda p: p[0]))


class QuotaFilterError(ValueError):
    """A DescribeClientQuotas filter Kafka refuses (INVALID_REQUEST)."""


@dataclass(frozen=True, slots=True)
class ClientQuotasImage:
    entities: Mapping[QuotaEntity, Mapping[str, float]] = field(default_factory=lambda: _EMPTY)

    def records(self) -> Iterator[tuple[MetadataRecordType, Any]]:
        for entity, values in sorted(self.entities.items(),
                                     key=lambda e: [(t, n or "") for t, n in e[0]]):
            for key, value in sorted(values.items()):
                yield MetadataRecordType.CLIENT_QUOTA_RECORD, ClientQuotaRecord(
                    entity=[ClientQuotaRecord.EntityData(entity_type=t, entity_name=n)
                            for t, n in entity],
                    key=key, value=value, remove=False)

    def describe(self, components: Iterable[tuple[str, int, str | None]],
                 strict: bool) -> list[tuple[QuotaEntity, Mapping[str, float]]]:
        """The entities a filter matches: ``components`` are (entity type, match type, match).
        EXACT matches that name, DEFAULT the type's default, SPECIFIED any entity having the
        type; ``strict`` also excludes entities with types the filter does not name.
        Raises ``QuotaFilterError`` for a filter Kafka refuses."""
        exact: dict[str, str | None] = {}
        typed: set[str] = set()
        for etype, match_type, match in components:
            if etype in exact or etype in typed:
                raise QuotaFilterError(
                    f"Entity type {etype} cannot appear more than once in the filter.")
            if etype not in ENTITY_TYPES:
                raise QuotaFilterError(f"Unknown entity type: {etype}")
            if match_type == MATCH_EXACT:
                if match is None:
                    raise QuotaFilterError(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.")
                exact[etype] = match
            elif match_type == MATCH_DEFAULT:
                if match is not None:
                    raise QuotaFilterError(
                        f"Request specified MATCH_TYPE_DEFAULT, but also specified a match "
                        f"string {match}.")
                exact[etype] = None
            elif match_type == MATCH_SPECIFIED:
                if match is not None:
                    raise QuotaFilterError(
                        f"Request specified MATCH_TYPE_SPECIFIED, but also specified a match "
                        f"string {match}.")
                typed.add(etype)
            else:
                raise QuotaFilterError(f"Unknown match type {match_type}")
        named = set(exact) | typed
        if IP in named and (USER in named or CLIENT_ID in named):
            raise QuotaFilterError(
                "Invalid entity filter component combination, IP filter component should not "
                "be used with user or clientId filter component.")
        out = []
        for entity, values in self.entities.items():
            d = dict(entity)
            if strict and len(d) != len(named):
                continue
            if any(t not in d or d[t] != n for t, n in exact.items()):
                continue
            if any(t not in d for t in typed):
                continue
            out.append((entity, values))
        out.sort(key=lambda e: [(t, n or "") for t, n in e[0]])
        return out


class ClientQuotasDelta:
    """ClientQuotaRecords replayed on top of an image (a removed key whose entity is left
    without keys drops the entity)."""

    __slots__ = ("_changes", "image")

    def __init__(self, image: ClientQuotasImage) -> None:
        self.image = image
        self._changes: dict[QuotaEntity, dict[str, float | None]] = {}

    def replay(self, r: Any) -> None:
        entity = entity_of((e.entity_type, e.entity_name) for e in r.entity)
        self._changes.setdefault(entity, {})[r.key] = None if r.remove else float(r.value)

    def changed(self) -> bool:
        return bool(self._changes)

    def apply(self) -> ClientQuotasImage:
        if not self._changes:
            return self.image
        entities = dict(self.image.entities)
        for entity, changes in self._changes.items():
            values = dict(entities.get(entity, {}))
            for k, v in changes.items():
                if v is None:
                    values.pop(k, None)
                else:
                    values[k] = v
            if values:
                entities[entity] = MappingProxyType(values)
            else:
                entities.pop(entity, None)
        return ClientQuotasImage(MappingProxyType(entities))
