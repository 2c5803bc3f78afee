"""SCRAM credentials in the metadata (Kafka's ``ScramImage``): UserScramCredentialRecord
upserts a user's credential for one mechanism, RemoveUserScramCredentialRecord removes it.
The image keeps (user, mechanism) -> salt, stored key, server key and iterations (RFC 5802's
server-side values; the password itself is never stored). Pure."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ScramCredentialData", "ScramImage", "ScramMechanism", "apply_scram_changes"]


class ScramMechanism(enum.IntEnum):
    """Kafka's ``ScramMechanism`` ids as the records and the admin APIs carry them."""

    UNKNOWN = 0
    SCRAM_SHA_256 = 1
    SCRAM_SHA_512 = 2

    @property
    def mechanism_name(self) -> str:
        return self.name.replace("_", "-")

    @classmethod
    def from_name(cls, name: str) -> ScramMechanism:
        try:
            return cls[name.upper().replace("-", "_")]
        except KeyError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class ScramCredentialData:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(frozen=True, slots=True)
class ScramImage:
    """(user name, mechanism id) -> credential."""

    credentials: Mapping[tuple[str, int], ScramCredentialData] = field(
        default_factory=lambda: MappingProxyType({}))

    def get(self, user: str, mechanism: int) -> ScramCredentialData | None:
        return self.credentials.get((user, mechanism))

    def users(self) -> dict[str, dict[int, ScramCredentialData]]:
        out: dict[str, dict[int, ScramCredentialData]] = {}
        for (user, mech), cred in self.credentials.items():
            out.setdefault(user, {})[mech] = cred
        return out

    def records(self, record_cls: Any) -> Iterator[Any]:
        for (user, mech), c in sorted(self.credentials.items()):
            yield record_cls(name=user, mechanism=mech, salt=c.salt, stored_key=c.stored_key,
                             server_key=c.server_key, iterations=c.iterations)


def apply_scram_changes(image: ScramImage,
                        changes: Mapping[tuple[str, int], ScramCredentialData | None]
                        ) -> ScramImage:
    """The next image: ``None`` removes a credential."""
    if not changes:
        return image
    creds = dict(image.credentials)
    for key, value in changes.items():
        if value is None:
            creds.pop(key, None)
        else:
            creds[key] = value
    return ScramImage(MappingProxyType(creds))
