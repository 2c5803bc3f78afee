"""MetadataLoader's start-up catch-up: nothing is published until the image reaches the high
watermark the quorum had when loading began; then publishers get the whole image once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from broker.controller.metadata_loader import MetadataLoader
from kraft.metadata_records import (
    MetadataRecordType,
    TopicRecord,
    encode_metadata_record,
    latest_version,
)


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    epoch: int
    records: list[bytes]


def topic_batch(offset: int) -> Batch:
    t = MetadataRecordType.TOPIC_RECORD
    raw = encode_metadata_record(t, latest_version(t), TopicRecord(
        name=f"t{offset}", topic_id=uuid.UUID(int=offset + 1)))
    return Batch(offset, offset, 1, [raw])


def test_publishing_waits_for_the_high_watermark_then_sends_the_whole_image() -> None:
    loader = MetadataLoader(1)
    hw = {"value": 5}
    loader.catch_up_with(lambda: hw["value"])
    seen: list[tuple[Any, int]] = []
    loader.add_publisher(lambda delta, image: seen.append((delta, image.offset)))
    for offset in range(4):
        loader.handle_commit(topic_batch(offset))
        hw["value"] += 1  # the quorum moves on meanwhile: the target stays where it was
    assert seen == [] and not loader.caught_up
    assert loader.image.offset == 3 and len(loader.image.topics.by_id) == 4
    loader.handle_commit(topic_batch(4))  # offset 4 + 1 == the first high watermark, 5
    assert loader.caught_up
    assert seen == [(None, 4)]  # the caught-up image, as a full reconcile
    loader.handle_commit(topic_batch(5))
    assert len(seen) == 2 and seen[1][0] is not None and seen[1][1] == 5  # then deltas


def test_without_catch_up_every_batch_is_published() -> None:
    loader = MetadataLoader(1)
    seen: list[int] = []
    loader.add_publisher(lambda _delta, image: seen.append(image.offset))
    for offset in range(3):
        loader.handle_commit(topic_batch(offset))
    assert seen == [0, 1, 2]


def test_offset_waiters_do_not_wait_for_the_catch_up() -> None:
    loader = MetadataLoader(1)
    loader.catch_up_with(lambda: 10)
    fired: list[int] = []
    loader.when_offset_reached(1, lambda: fired.append(loader.image.offset))
    for offset in range(3):
        loader.handle_commit(topic_batch(offset))
    assert fired == [1] and not loader.caught_up
