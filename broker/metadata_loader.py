"""Turns the committed metadata log into ``MetadataImage``s and publishes each change.

The loader is a Raft listener: every committed batch is decoded and replayed into one
``MetadataDelta``, the delta is applied, and each publisher gets ``(delta, image)``. A
loaded snapshot replaces the image wholesale; publishers then get ``delta=None`` and the new
image, and reconcile against it in full (Kafka's ``MetadataLoader`` + ``MetadataPublisher``).

A record that does not decode or does not apply is a corrupt or incompatible log: the loader
logs it with its offset and stops publishing (the node keeps serving its last good image)
rather than acting on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kraft.delta import MetadataDelta, MetadataReplayError
from kraft.image import MetadataImage
from storage.codec import CodecError
from storage.metadata_records import decode_metadata_record

__all__ = ["MetadataLoader", "Publisher"]

logger = logging.getLogger(__name__)

Publisher = Callable[[MetadataDelta | None, MetadataImage], None]


def decode_records(records: list[bytes]) -> list[tuple[int, Any]]:
    out = []
    for value in records:
        record_type, _version, record = decode_metadata_record(value)
        out.append((record_type, record))
    return out


class MetadataLoader:
    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.image = MetadataImage()
        self.publishers: list[Publisher] = []
        self.leader_id: int | None = None
        self.leader_epoch = -1
        self.failed: str | None = None
        self._waiters: list[tuple[int, Callable[[], None]]] = []

    @property
    def offset(self) -> int:
        """Offset of the last record in the image (-1 before any)."""
        return self.image.offset

    def add_publisher(self, publisher: Publisher) -> None:
        self.publishers.append(publisher)
        if not self.image.is_empty():
            self._call(publisher, None, self.image)

    # -- Raft listener ----------------------------------------------------------------------

    def handle_commit(self, batch: Any) -> None:
        if self.failed is not None:
            return
        delta = MetadataDelta(self.image)
        try:
            delta.replay_all(decode_records(batch.records))
        except (CodecError, MetadataReplayError) as e:
            self.failed = f"offset {batch.base_offset}-{batch.last_offset}: {e}"
            logger.error("Metadata log record does not apply; stopped loading at %s", self.failed)
            return
        delta.set_provenance(batch.last_offset, batch.epoch)
        self._publish(delta, delta.apply())

    def handle_load_snapshot(self, snapshot_id: Any, data: bytes) -> None:
        from kraft.snapshot import load_image, read_snapshot

        try:
            image = load_image(read_snapshot(data), snapshot_id.end_offset - 1, snapshot_id.epoch)
        except (CodecError, MetadataReplayError, ValueError) as e:
            self.failed = f"snapshot {snapshot_id}: {e}"
            logger.error("Metadata snapshot does not load: %s", self.failed)
            return
        logger.info("Loaded metadata snapshot %s (%d topics, %d brokers)", snapshot_id,
                    len(image.topics.by_id), len(image.cluster.brokers))
        self._publish(None, image)

    def handle_leader_change(self, leader: Any) -> None:
        self.leader_id = leader.leader_id
        self.leader_epoch = leader.epoch

    # -- waiting for an offset ---------------------------------------------------------------

    def when_offset_reached(self, offset: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the image contains ``offset`` (at once if it already does)."""
        if self.image.offset >= offset:
            callback()
        else:
            self._waiters.append((offset, callback))

    def _publish(self, delta: MetadataDelta | None, image: MetadataImage) -> None:
        self.image = image
        for publisher in self.publishers:
            self._call(publisher, delta, image)
        if self._waiters:
            ready = [cb for off, cb in self._waiters if image.offset >= off]
            self._waiters = [(off, cb) for off, cb in self._waiters if image.offset < off]
            for cb in ready:
                cb()

    def _call(self, publisher: Publisher, delta: MetadataDelta | None,
              image: MetadataImage) -> None:
        try:
            publisher(delta, image)
        except Exception:
            logger.exception("Metadata publisher %r failed at offset %d", publisher, image.offset)
