"""Which quota applies to a request (KIP-55's precedence, Kafka's ``DefaultQuotaCallback``), pure.

For a user and a client id, the first entity in this order that has a value for the quota key
wins (a name of None is that type's default):

    1. user, client-id        5. <default user>, <default client-id>
    2. user, <default client-id>   6. <default user>
    3. user                   7. client-id
    4. <default user>, client-id   8. <default client-id>

The winner also says who shares the usage (Kafka's quota metric tags): an entity naming both
types (or their defaults) meters each (user, client id) apart; a user entity meters the user
over all its client ids; a client-id entity meters the client id over all users.
"""

from __future__ import annotations

from collections.abc import Mapping

from kraft.client_quotas import CLIENT_ID, USER, ClientQuotasImage, QuotaEntity

__all__ = ["QuotaKeyIndex", "Resolved"]

# (quota value, (user tag, client-id tag)): the sensor key is the tags.
Resolved = tuple[float, tuple[str, str]]


class QuotaKeyIndex:
    """One quota key's values of the user/client-id entities of an image, for lookups."""

    __slots__ = ("_values", "key")

    def __init__(self, image: ClientQuotasImage, key: str) -> None:
        self.key = key
        self._values: dict[QuotaEntity, float] = {}
        for entity, values in image.entities.items():
            value = values.get(key)
            if value is not None and all(t in (USER, CLIENT_ID) for t, _ in entity):
                self._values[entity] = value

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def values(self) -> Mapping[QuotaEntity, float]:
        return self._values

    def resolve(self, user: str, client_id: str) -> Resolved | None:
        """The quota and the sensor tags for ``user`` and ``client_id``; None: unlimited."""
        v = self._values
        if not v:
            return None
        for entity, tags in (
            (((CLIENT_ID, client_id), (USER, user)), (user, client_id)),
            (((CLIENT_ID, None), (USER, user)), (user, client_id)),
            (((USER, user),), (user, "")),
            (((CLIENT_ID, client_id), (USER, None)), (user, client_id)),
            (((CLIENT_ID, None), (USER, None)), (user, client_id)),
            (((USER, None),), (user, "")),
            (((CLIENT_ID, client_id),), ("", client_id)),
            (((CLIENT_ID, None),), ("", client_id)),
        ):
            value = v.get(entity)
            if value is not None:
                return value, tags
        return None
