"""Turns the committed metadata log into ``MetadataImage``s and publishes each change.

The loader is a Raft listener: every committed batch is decoded and replayed into one
``MetadataDelta``, the delta is applied, and each publisher gets ``(delta, image)``. A
loaded snapshot replaces the image wholesale; publishers then get ``delta=None`` and the new
image, and reconcile against it in full (Kafka's ``MetadataLoader`` + ``MetadataPublisher``).

At start-up nothing is published until the image has caught up with the high watermark the
quorum had when loading began (Kafka's MetadataLoader does the same): a restarted broker that
replays its log must not act on each intermediate image (become leader at an epoch long gone,
follow a broker that no longer leads). Publishers then get the caught-up image with
``delta=None``.

A record that does not decode or does not apply is a corrupt or incompatible log: the loader
logs it with its offset and stops publishing (the node keeps serving its last good image)
rather than acting on a guess.

Snapshots (KIP-630, Kafka's SnapshotGenerator): once ``metadata.log.max.record.bytes.between.
snapshots`` bytes of records (or ``metadata.log.max.snapshot.interval.ms``) have been committed
since the last one, the current image is written as ``<end_offset>-<epoch>.checkpoint`` in a
worker thread (the image is immutable, so the loop keeps going); then Raft is told, drops the
log prefix below it, and older snapshots are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from broker.clock import SYSTEM_CLOCK, Clock
from broker.controller.snapshot_files import FileSnapshotStore
from kraft.codec import CodecError
from kraft.delta import MetadataDelta, MetadataReplayError
from kraft.image import MetadataImage
from kraft.messages import SnapshotId
from kraft.metadata_records import decode_metadata_record
from kraft.snapshot import image_snapshot_records, load_image, read_snapshot

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
    def __init__(self, node_id: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.node_id = node_id
        self.clock = clock
        self.image = MetadataImage()
        self.publishers: list[Publisher] = []
        self.leader_id: int | None = None
        self.leader_epoch = -1
        self.failed: str | None = None
        self._waiters: list[tuple[int, Callable[[], None]]] = []
        # Snapshot generation (off until enable_snapshots).
        self._store: FileSnapshotStore | None = None
        self._raft: Any = None
        self._max_bytes = 0
        self._max_interval_ms = 0
        self._bytes_since = 0
        self._last_snapshot_ms = self.clock.monotonic_ms()
        self._writing = False
        self.snapshots_written = 0
        # Start-up catch-up (see the module docstring): off until catch_up_with() is called.
        self._high_watermark: Callable[[], int] | None = None
        self._catch_up_target: int | None = None
        self.caught_up = True

    def catch_up_with(self, high_watermark: Callable[[], int]) -> None:
        """Hold publishing until the image reaches the high watermark (as it was when the first
        committed batch or snapshot arrived)."""
        self._high_watermark = high_watermark
        self.caught_up = False

    def enable_snapshots(self, store: FileSnapshotStore, raft: Any, *, max_bytes: int,
                         max_interval_ms: int) -> None:
        self._store = store
        self._raft = raft
        self._max_bytes = max_bytes
        self._max_interval_ms = max_interval_ms

    @property
    def offset(self) -> int:
        """Offset of the last record in the image (-1 before any)."""
        return self.image.offset

    def add_publisher(self, publisher: Publisher) -> None:
        self.publishers.append(publisher)
        if not self.image.is_empty() and self.caught_up:
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
        if self._store is not None:
            self._bytes_since += sum(len(r) for r in batch.records)
            self.maybe_snapshot()

    def handle_load_snapshot(self, snapshot_id: Any, data: bytes) -> None:
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

    # -- snapshots ---------------------------------------------------------------------------

    def maybe_snapshot(self, force: bool = False) -> bool:
        """Start writing a snapshot of the current image if one is due; True if started."""
        if self._store is None or self._writing or self.failed is not None:
            return False
        image = self.image
        if image.offset < 0 or not self._bytes_since:
            return False
        now_ms = self.clock.monotonic_ms()
        due = force or self._bytes_since >= self._max_bytes or (
            self._max_interval_ms > 0 and now_ms - self._last_snapshot_ms >= self._max_interval_ms)
        if not due:
            return False
        snapshot_id = SnapshotId(image.offset + 1, image.epoch)
        latest = self._store.latest()
        if latest is not None and latest >= snapshot_id:
            return False
        self._writing = True
        self._bytes_since = 0
        self._last_snapshot_ms = now_ms
        store = self._store
        started = self.clock.monotonic()

        # KIP-853: the voter set in force at the snapshot's end goes into it.
        control = getattr(self._raft, "snapshot_control_records", None)
        control_records = control(snapshot_id.end_offset) if callable(control) else []

        def write() -> None:
            store.write_records(snapshot_id, image_snapshot_records(image),
                                self.clock.wall_ms(), control_records)

        def done(fut: asyncio.Future[None]) -> None:
            self._writing = False
            exc = fut.exception()
            if exc is not None:
                logger.error("Writing metadata snapshot %s failed: %s", snapshot_id, exc)
                return
            self.snapshots_written += 1
            logger.info("Wrote metadata snapshot %s (%d topics, %d partitions) in %.0f ms",
                        snapshot_id, len(image.topics.by_id), image.topics.partition_count(),
                        (self.clock.monotonic() - started) * 1000)
            try:
                self._raft.snapshot_taken(snapshot_id)
            except Exception:
                logger.exception("Raft refused snapshot %s", snapshot_id)
                return
            store.delete_before(snapshot_id)

        fut = asyncio.get_running_loop().run_in_executor(None, write)
        fut.add_done_callback(done)
        return True

    # -- waiting for an offset ---------------------------------------------------------------

    def when_offset_reached(self, offset: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the image contains ``offset`` (at once if it already does)."""
        if self.image.offset >= offset:
            callback()
        else:
            self._waiters.append((offset, callback))

    def _publish(self, delta: MetadataDelta | None, image: MetadataImage) -> None:
        self.image = image
        if self._waiters:
            ready = [cb for off, cb in self._waiters if image.offset >= off]
            self._waiters = [(off, cb) for off, cb in self._waiters if image.offset < off]
            for cb in ready:
                cb()
        if not self.caught_up:
            assert self._high_watermark is not None
            if self._catch_up_target is None:
                self._catch_up_target = self._high_watermark()
                logger.info("Loading the metadata log up to offset %d before acting on it",
                            self._catch_up_target)
            if image.offset + 1 < self._catch_up_target:
                return
            self.caught_up = True
            delta = None  # publishers reconcile with the whole caught-up image
            logger.info("Metadata caught up at offset %d: publishing", image.offset)
        for publisher in self.publishers:
            self._call(publisher, delta, image)

    def _call(self, publisher: Publisher, delta: MetadataDelta | None,
              image: MetadataImage) -> None:
        try:
            publisher(delta, image)
        except Exception:
            logger.exception("Metadata publisher %r failed at offset %d", publisher, image.offset)
