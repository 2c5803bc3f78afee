"""A standby replaying the active controller's records ends with the same image; the
active's committed/uncommitted bookkeeping works."""

from __future__ import annotations

import random

from kraft.controller import ControllerConfig, QuorumController
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage
from kraft.metadata_records import decode_metadata_record, encode_metadata_record, latest_version
from tests.unit.test_controller_helpers import (
    EPOCH,
    Harness,
    check_invariants,
    random_step,
    topic_request,
)


def _roundtrip(records: list) -> list:
    """Through the wire encoding, as a standby would read them from the log."""
    out = []
    for t, r in records:
        raw = encode_metadata_record(t, latest_version(t), r)
        rt, _, obj = decode_metadata_record(raw)
        out.append((rt, obj))
    return out


def test_standby_replay_matches_active() -> None:
    for seed in range(3):
        rng = random.Random(seed)
        h = Harness(seed=seed)
        for _ in range(400):
            random_step(h, rng)
            check_invariants(h.image)
        standby = QuorumController(ControllerConfig(), random.Random(99))
        for records, last in h.log:
            standby.replay_committed(_roundtrip(records), last, EPOCH)
        assert standby.image == h.image
        assert standby.register_offsets == h.c.register_offsets
        # And the image's own snapshot records rebuild it too.
        delta = MetadataDelta(MetadataImage())
        delta.replay_all(h.image.records())
        delta.set_provenance(h.image.offset, h.image.epoch)
        rebuilt = delta.apply()
        assert rebuilt.topics.by_name.keys() == h.image.topics.by_name.keys()
        assert rebuilt.cluster == h.image.cluster


def test_pending_writes_and_become_standby() -> None:
    h = Harness()
    h.brokers(1)
    c = h.c
    committed = c.image
    r = c.create_topics(topic_request(("t", 1, 1)), 0)
    last = h.offset + len(r.records)
    c.record_written(r.records, last, EPOCH)
    assert "t" in c.image.topics.by_name and "t" not in c.committed_image.topics.by_name
    assert list(c.describe_pending()) == [last]
    assert c.committed_image is committed
    # Losing leadership drops the uncommitted topic.
    c.become_standby()
    assert "t" not in c.image.topics.by_name


def test_commit_advances_committed_image() -> None:
    h = Harness()
    h.brokers(1)
    c = h.c
    r1 = c.create_topics(topic_request(("a", 1, 1)), 0)
    c.record_written(r1.records, h.offset + len(r1.records), EPOCH)
    end1 = h.offset + len(r1.records)
    r2 = c.create_topics(topic_request(("b", 1, 1)), 0)
    end2 = end1 + len(r2.records)
    c.record_written(r2.records, end2, EPOCH)
    c.replay_committed(r1.records, end1, EPOCH)
    assert "a" in c.committed_image.topics.by_name
    assert "b" not in c.committed_image.topics.by_name
    c.replay_committed(r2.records, end2, EPOCH)
    assert c.committed_image is c.image
