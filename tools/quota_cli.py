"""Client quotas from the command line: DescribeClientQuotas and AlterClientQuotas as Kafka's
ConfigCommand sends them (``kafka-configs --entity-type users|clients``) and their output lines,
shared with ``kafka-client-quotas``.

An entity is a list of (``user`` | ``client-id``, name or None for the default) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.client.cluster import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import alter_client_quotas, describe_client_quotas
from tools.cli_client import CliError, failure, retriable_only

__all__ = [
    "ENTITY_TYPES", "alter_quotas", "describe_quotas", "entity_text", "print_described",
    "quota_values",
]

# kafka-configs --entity-type -> the quota entity type.
ENTITY_TYPES = {"users": "user", "clients": "client-id"}
_LONG_KEYS = {"producer_byte_rate", "consumer_byte_rate"}
_LABEL = {"user": "user-principal", "client-id": "client-id"}
_MATCH_EXACT, _MATCH_DEFAULT, _MATCH_SPECIFIED = 0, 1, 2

Entity = Sequence[tuple[str, str | None]]


def entity_text(entity: Entity) -> str:
    """Kafka's wording: ``user-principal 'alice', the default client-id``."""
    parts = []
    for etype, name in sorted(entity, key=lambda p: p[0] != "user"):
        label = _LABEL.get(etype, etype)
        parts.append(f"the default {label}" if name is None else f"{label} '{name}'")
    return ", ".join(parts)


def _format_value(key: str, value: float) -> str:
    return repr(float(value))


def quota_values(adds: dict[str, str]) -> dict[str, float]:
    out = {}
    for k, v in adds.items():
        try:
            out[k] = float(v)
        except ValueError:
            raise CliError(f"Cannot parse quota configuration value for {k}: {v}") from None
    return out


async def describe_quotas(client: KafkaClient, entity: Entity, *,
                          strict: bool = True) -> list[tuple[list[tuple[str, str | None]],
                                                           dict[str, float]]]:
    """Each matching entity and its values. A pair named "" matches every named entity of
    that type (Kafka's describe without --entity-name)."""
    R = describe_client_quotas.REQUEST
    components = []
    for etype, name in entity:
        if name == "":
            components.append(R.ComponentData(entity_type=etype, match_type=_MATCH_SPECIFIED,
                                              match=None))
        elif name is None:
            components.append(R.ComponentData(entity_type=etype, match_type=_MATCH_DEFAULT,
                                              match=None))
        else:
            components.append(R.ComponentData(entity_type=etype, match_type=_MATCH_EXACT,
                                              match=name))
    resp = await client.send_to_any(ApiKey.DESCRIBE_CLIENT_QUOTAS,
                                    R.cls(components=components, strict=strict))
    if resp.error_code:
        raise failure("Describing client quotas", resp.error_code, resp.error_message)
    return [([(e.entity_type, e.entity_name) for e in entry.entity],
             {v.key: v.value for v in entry.values}) for entry in resp.entries or ()]


def print_described(found: Sequence[tuple[Entity, dict[str, float]]]) -> None:
    for entity, values in found:
        shown = ", ".join(f"{k}={_format_value(k, v)}" for k, v in sorted(values.items()))
        print(f"Quota configs for {entity_text(entity)} are {shown}")


async def alter_quotas(client: KafkaClient, entity: Entity, sets: dict[str, float],
                       removes: Sequence[str]) -> None:
    R = alter_client_quotas.REQUEST
    ops = [R.OpData(key=k, value=v, remove=False) for k, v in sets.items()]
    ops += [R.OpData(key=k, value=0.0, remove=True) for k in removes]
    req = R.cls(entries=[R.EntryData(
        entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity], ops=ops)],
        validate_only=False)

    resp = await client.send_to_controller(ApiKey.ALTER_CLIENT_QUOTAS, req,
                                           check=retriable_only)
    for e in resp.entries:
        if e.error_code:
            raise failure(f"Altering quotas of {entity_text(entity)}", e.error_code,
                          e.error_message)
