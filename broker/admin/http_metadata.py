"""HTTP admin route showing this node's own metadata image: ``GET /v1/metadata/image``.

The image a node serves is rebuilt only by replaying the committed metadata log
(``broker/controller/metadata_loader.py``); two nodes whose images stand at the same offset must
therefore hold the same image. The answer names the offset and epoch of the last record
replayed, a digest of the whole image (SHA-256 of its snapshot records,
``kraft.snapshot.image_snapshot_records``, which are byte-identical for equal images) and the
topics by name with their ids and partition counts, so a fault-injection checker
(``jepsen-style/metadata_checker.py``) can compare nodes without reading their disks. It is read
locally and never forwarded.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from broker.admin.http_common import RouteBase, json_response
from kraft.image import MetadataImage
from kraft.snapshot import image_snapshot_records

__all__ = ["MetadataImageRoutes", "image_summary"]


def image_summary(node_id: int, image: MetadataImage, loader_failed: str | None) -> dict[str, Any]:
    digest = hashlib.sha256()
    for record in image_snapshot_records(image):
        digest.update(len(record).to_bytes(4, "big"))
        digest.update(record)
    return {
        "node_id": node_id,
        "offset": image.offset,
        "epoch": image.epoch,
        "digest": digest.hexdigest(),
        "topics": {t.name: {"topic_id": str(t.topic_id), "partitions": len(t.partitions)}
                   for t in sorted(image.topics.by_id.values(), key=lambda t: t.name)},
        "brokers": sorted(image.cluster.brokers),
        # Why this node stopped replaying the log (a record that does not apply), or null.
        "loader_failed": loader_failed,
    }


class MetadataImageRoutes(RouteBase):
    """GET /v1/metadata/image."""

    async def get_metadata_image(self, request: web.Request) -> web.Response:
        loader = self.node.loader
        return json_response(image_summary(self.node_id, loader.image, loader.failed))
