"""Leader discovery in data-path errors (KIP-951): a Produce (v10+) or Fetch (v16+) partition
answered NOT_LEADER_OR_FOLLOWER (or, for Fetch, FENCED_LEADER_EPOCH) carries the partition's
current leader and epoch from this broker's metadata image, and the response lists the
endpoints of those leaders on the listener the request came in on, so the client can move to
the new leader without a Metadata round trip. Pure: reads a ``MetadataImage``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from broker.protocol.errors import ErrorCode
from kraft.image import MetadataImage

__all__ = ["FETCH_HINT_ERRORS", "PRODUCE_HINT_ERRORS", "current_leader", "node_endpoints"]

PRODUCE_HINT_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER})
FETCH_HINT_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH})


def current_leader(image: MetadataImage, topic: str, partition: int) -> tuple[int, int]:
    """(leader id, leader epoch) of a partition in ``image``; (-1, -1) when unknown."""
    t = image.topics.by_name.get(topic)
    p = t.partitions.get(partition) if t is not None else None
    if p is None:
        return -1, -1
    return p.leader, p.leader_epoch


def node_endpoints(image: MetadataImage, leader_ids: Iterable[int], listener: str,
                   struct: Any) -> list[Any]:
    """``struct`` (the response's NodeEndpoint class) for each live leader in ``leader_ids``
    that has an endpoint on ``listener``, sorted by id."""
    out = []
    for node_id in sorted(set(leader_ids)):
        b = image.cluster.brokers.get(node_id)
        if b is None or b.fenced:
            continue
        ep = b.listener(listener)
        if ep is None:
            continue
        out.append(struct(node_id=node_id, host=ep.host, port=ep.port, rack=b.rack))
    return out
