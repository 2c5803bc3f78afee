"""KIP-630 snapshot files (kraft/snapshot.py): names, format, corruption, and the file store."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.controller.snapshot_files import FileSnapshotStore, read_snapshot_file, write_snapshot
from kraft.codec import DecodeError
from kraft.delta import MetadataDelta
from kraft.image import ConfigResourceType, MetadataImage
from kraft.messages import SnapshotId
from kraft.metadata_records import (
    ConfigRecord,
    FeatureLevelRecord,
    MetadataRecordType,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    TopicRecord,
    decode_control_record,
    decode_metadata_record,
)
from kraft.snapshot import (
    MAX_RECORDS_PER_BATCH,
    CorruptSnapshotError,
    SnapshotReader,
    image_snapshot_records,
    load_image,
    parse_snapshot_file_name,
    read_snapshot,
    snapshot_batches,
    snapshot_bytes,
    snapshot_file_name,
)
from kraft.snapshot_store import SnapshotStore
from storage.control_records import ControlRecordType, parse_control_record_key
from storage.record_batch import iter_batches
from storage.records import build_batch, decode_batch

T = MetadataRecordType
SID = SnapshotId(1234, 7)


def small_image(topics: int = 3, partitions: int = 4) -> MetadataImage:
    delta = MetadataDelta(MetadataImage())
    delta.replay(T.FEATURE_LEVEL_RECORD,
                 FeatureLevelRecord(name="metadata.version", feature_level=20))
    for b in range(3):
        delta.replay(T.REGISTER_BROKER_RECORD, RegisterBrokerRecord(
            broker_id=b, incarnation_id=uuid.UUID(int=b + 1), broker_epoch=100 + b,
            end_points=[RegisterBrokerRecord.BrokerEndpoint(
                name="PLAINTEXT", host=f"h{b}", port=9092, security_protocol=0)],
            features=[], rack="r1" if b else None, fenced=b == 2))
    for t in range(topics):
        tid = uuid.UUID(int=1000 + t)
        delta.replay(T.TOPIC_RECORD, TopicRecord(name=f"topic-{t}", topic_id=tid))
        for p in range(partitions):
            replicas = [(p + i) % 3 for i in range(3)]
            delta.replay(T.PARTITION_RECORD, PartitionRecord(
                partition_id=p, topic_id=tid, replicas=replicas, isr=replicas,
                removing_replicas=[], adding_replicas=[], leader=replicas[0],
                leader_epoch=p, partition_epoch=p + 1))
    delta.replay(T.CONFIG_RECORD, ConfigRecord(
        resource_type=int(ConfigResourceType.TOPIC), resource_name="topic-0",
        name="retention.ms", value="60000"))
    delta.replay(T.PRODUCER_IDS_RECORD, ProducerIdsRecord(broker_id=0, next_producer_id=5000))
    delta.set_provenance(SID.end_offset - 1, SID.epoch)
    return delta.apply()


def values(n: int, size: int = 10) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(n)]


# ------------------------------------------------------------------------------------ names


def test_file_name_format_and_parse() -> None:
    name = snapshot_file_name(SnapshotId(1234, 7))
    assert name == "00000000000000001234-0000000007.checkpoint"
    assert parse_snapshot_file_name(name) == SnapshotId(1234, 7)
    big = SnapshotId((1 << 63) - 1, (1 << 31) - 1)
    assert parse_snapshot_file_name(snapshot_file_name(big)) == big


@pytest.mark.parametrize("name", [
    "00000000000000001234-0000000007.checkpoint.part",
    "00000000000000001234-0000000007.checkpoint.deleted",
    "00000000000000001234-0000000007.log",
    "1234-7.checkpoint",
    "00000000000000001234-00000000007.checkpoint",
    "0000000000000000123x-0000000007.checkpoint",
    "99999999999999999999-0000000007.checkpoint",  # > int64
    "00000000000000001234-9999999999.checkpoint",  # > int32
    "leader-epoch-checkpoint",
    "recovery-point-offset-checkpoint",
])
def test_parse_rejects_other_names(name: str) -> None:
    assert parse_snapshot_file_name(name) is None


# ------------------------------------------------------------------------------------ format


def test_layout_is_kafkas() -> None:
    """Header control batch at offset 0, data batches of <= 1024 records, footer last; offsets
    contiguous; every batch carries the snapshot epoch as its partition leader epoch."""
    data = snapshot_bytes(SID, values(2500), last_contained_log_timestamp_ms=42)
    batches = [(pos, h) for pos, h in iter_batches(data)]
    headers = [h for _, h in batches]
    assert [h.is_control for h in headers] == [True, False, False, False, True]
    assert [h.record_count for h in headers] == [1, MAX_RECORDS_PER_BATCH,
                                                 MAX_RECORDS_PER_BATCH, 452, 1]
    assert [h.base_offset for h in headers] == [0, 1, 1025, 2049, 2501]
    assert all(h.partition_leader_epoch == SID.epoch for h in headers)
    assert all(h.base_timestamp == 42 and h.max_timestamp == 42 for h in headers)
    assert all(not h.is_transactional and h.producer_id == -1 for h in headers)
    _, [header_rec] = decode_batch(data, batches[0][0])
    assert parse_control_record_key(header_rec.key)[1] == ControlRecordType.SNAPSHOT_HEADER
    header = decode_control_record(ControlRecordType.SNAPSHOT_HEADER, header_rec.value)
    assert (header.version, header.last_contained_log_timestamp) == (0, 42)
    _, [footer_rec] = decode_batch(data, batches[-1][0])
    assert parse_control_record_key(footer_rec.key)[1] == ControlRecordType.SNAPSHOT_FOOTER
    assert decode_control_record(ControlRecordType.SNAPSHOT_FOOTER, footer_rec.value).version == 0
    assert list(read_snapshot(data)) == values(2500)
    assert SnapshotReader(data).last_contained_log_timestamp_ms == 42


def test_batches_are_bounded_in_bytes() -> None:
    big = values(10, size=400_000)
    batches = list(snapshot_batches(SID, big, last_contained_log_timestamp_ms=0,
                                    max_batch_bytes=1_000_000))
    assert [len(b) < 1_000_000 for b in batches] == [True] * len(batches)
    assert len(batches) == 2 + 5
    assert list(read_snapshot(b"".join(batches))) == big
    with pytest.raises(ValueError, match="exceeds the batch limit"):
        list(snapshot_batches(SID, [b"x" * 2_000_000], last_contained_log_timestamp_ms=0,
                              max_batch_bytes=1_000_000))


def test_empty_snapshot_is_header_and_footer() -> None:
    data = snapshot_bytes(SID, [], last_contained_log_timestamp_ms=1)
    assert [h.base_offset for _, h in iter_batches(data)] == [0, 1]
    assert list(read_snapshot(data)) == []
    assert load_image(read_snapshot(data), -1, -1) == MetadataImage()


def test_image_round_trip_through_a_file(tmp_path: Path) -> None:
    image = small_image()
    path = write_snapshot(tmp_path, SID, image_snapshot_records(image),
                          last_contained_log_timestamp_ms=99)
    assert path == tmp_path / snapshot_file_name(SID)
    assert os.listdir(tmp_path) == [path.name]
    loaded = load_image(read_snapshot_file(path), SID.end_offset - 1, SID.epoch)
    assert loaded == image
    assert loaded.topics.partition_count() == 12
    # Every record is framed at its type's latest version.
    for value in read_snapshot_file(path):
        decode_metadata_record(value)
    # Bytes are a function of the image: a second write gives the same file.
    again = snapshot_bytes(SID, image_snapshot_records(loaded), last_contained_log_timestamp_ms=99)
    assert path.read_bytes() == again


def test_load_image_names_an_undecodable_record() -> None:
    data = snapshot_bytes(SID, [*image_snapshot_records(small_image(1, 1)), b"\x01\x63\x00"],
                          last_contained_log_timestamp_ms=0)
    with pytest.raises(DecodeError, match="snapshot record 8: unknown metadata record type 99"):
        load_image(read_snapshot(data), 0, 0)


def test_crash_during_write_leaves_no_file(tmp_path: Path) -> None:
    def records() -> Any:
        yield from values(3000)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_snapshot(tmp_path, SID, records(), last_contained_log_timestamp_ms=0)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ corruption


def good() -> bytes:
    return snapshot_bytes(SID, values(2100), last_contained_log_timestamp_ms=5)


def read_all(data: Any) -> list[bytes]:
    """A snapshot's values, from its bytes or from its file."""
    return list(read_snapshot_file(data) if isinstance(data, Path) else read_snapshot(data))


def test_every_truncation_is_rejected() -> None:
    data = snapshot_bytes(SID, values(5), last_contained_log_timestamp_ms=5)
    for cut in range(len(data)):
        with pytest.raises(CorruptSnapshotError):
            read_all(data[:cut])


def test_truncated_file_names_file_and_position(tmp_path: Path) -> None:
    data = good()
    path = tmp_path / snapshot_file_name(SID)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSnapshotError, match=rf"{path.name}: truncated batch.*at byte \d+"):
        read_all(path)
    path.write_bytes(b"")
    with pytest.raises(CorruptSnapshotError, match="empty file"):
        read_all(path)


def test_flipped_byte_fails_the_crc() -> None:
    data = bytearray(good())
    positions = [pos for pos, _ in iter_batches(data)]
    data[positions[2] + 100] ^= 0xFF
    with pytest.raises(CorruptSnapshotError, match=rf"CRC mismatch.*at byte {positions[2]}\)"):
        read_all(data)


def test_missing_footer_is_rejected() -> None:
    data = good()
    last = [pos for pos, _ in iter_batches(data)][-1]
    with pytest.raises(CorruptSnapshotError, match="without a SnapshotFooterRecord"):
        read_all(data[:last])


def test_missing_header_is_rejected() -> None:
    data = good()
    second = [pos for pos, _ in iter_batches(data)][1]
    with pytest.raises(CorruptSnapshotError, match="not a control batch"):
        read_all(data[second:])
    with pytest.raises(CorruptSnapshotError, match="empty file"):
        read_all(b"")


def test_data_after_footer_is_rejected() -> None:
    with pytest.raises(CorruptSnapshotError, match="after the SnapshotFooterRecord"):
        read_all(good() + b"\x00")


def test_offset_gap_is_rejected() -> None:
    data = good()
    second = [pos for pos, _ in iter_batches(data)][1]
    stray = build_batch([(None, b"x")], base_offset=5000, partition_leader_epoch=SID.epoch)
    with pytest.raises(CorruptSnapshotError, match="base offset 5000, expected 1"):
        read_all(data[:second] + stray + data[second:])


def test_garbage_is_rejected() -> None:
    with pytest.raises(CorruptSnapshotError):
        read_all(os.urandom(4096))
    with pytest.raises(CorruptSnapshotError, match="batch length"):
        read_all(b"\x00" * 8 + b"\x7f\xff\xff\xff" + b"\x00" * 100)


# ------------------------------------------------------------------------------------ store


def test_store_implements_the_protocol(tmp_path: Path) -> None:
    store: SnapshotStore = FileSnapshotStore(tmp_path)
    assert store.latest() is None
    assert store.size(SID) is None


def test_store_write_read_latest_delete(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    ids = [SnapshotId(100, 1), SnapshotId(200, 1), SnapshotId(200, 2), SnapshotId(300, 2)]
    for i, sid in enumerate(ids[::-1]):
        store.write_records(sid, values(10 + i), last_contained_log_timestamp_ms=i)
    assert store.snapshot_ids() == ids
    assert store.latest() == SnapshotId(300, 2)
    path = store.path(SnapshotId(200, 2))
    assert store.size(SnapshotId(200, 2)) == path.stat().st_size
    whole = path.read_bytes()
    for chunk in (1, 7, 1000, 1 << 20):
        got = b"".join(store.read(SnapshotId(200, 2), pos, chunk)
                       for pos in range(0, len(whole), chunk))
        assert got == whole
    assert store.read(SnapshotId(200, 2), len(whole), 100) == b""
    with pytest.raises(KeyError):
        store.read(SnapshotId(9, 9), 0, 10)
    assert store.delete_before(SnapshotId(200, 2)) == [SnapshotId(100, 1), SnapshotId(200, 1)]
    assert store.snapshot_ids() == [SnapshotId(200, 2), SnapshotId(300, 2)]
    assert sorted(os.listdir(tmp_path)) == [snapshot_file_name(s) for s in store.snapshot_ids()]
    assert FileSnapshotStore(tmp_path).snapshot_ids() == store.snapshot_ids()


def test_store_write_fetched_snapshot(tmp_path: Path) -> None:
    leader = FileSnapshotStore(tmp_path / "leader")
    leader.write_records(SID, image_snapshot_records(small_image()), 17)
    size = leader.size(SID)
    assert size is not None
    data = b"".join(leader.read(SID, pos, 333) for pos in range(0, size, 333))
    follower = FileSnapshotStore(tmp_path / "follower")
    path = follower.write(SID, data)
    assert path.read_bytes() == data
    assert follower.latest() == SID and follower.size(SID) == size
    assert load_image(read_snapshot_file(path), SID.end_offset - 1, SID.epoch) == small_image()


def test_store_write_rejects_a_corrupt_snapshot(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    data = good()
    with pytest.raises(CorruptSnapshotError, match="truncated"):
        store.write(SID, data[: len(data) - 40])
    assert os.listdir(tmp_path) == []
    assert store.latest() is None


def test_store_snapshots_are_immutable(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    store.write_records(SID, values(3), 1)
    before = store.path(SID).read_bytes()
    store.write(SID, snapshot_bytes(SID, values(4), last_contained_log_timestamp_ms=1))
    store.write_records(SID, values(5), 1)
    assert store.path(SID).read_bytes() == before


def test_store_open_cleans_up_and_ignores_other_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sid = SnapshotId(50, 3)
    write_snapshot(tmp_path, sid, values(3), last_contained_log_timestamp_ms=0)
    other = [
        "00000000000000000000.log", "00000000000000000000.index",
        "00000000000000000000.timeindex", "leader-epoch-checkpoint", "partition.metadata",
        "quorum-state",
    ]
    for name in other:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / (snapshot_file_name(SnapshotId(60, 3)) + ".part")).write_bytes(b"half")
    (tmp_path / (snapshot_file_name(SnapshotId(40, 3)) + ".deleted")).write_bytes(b"old")
    (tmp_path / "junk-name.checkpoint").write_bytes(b"?")
    with caplog.at_level(logging.INFO, logger="kraft.snapshot"):
        store = FileSnapshotStore(tmp_path)
    assert store.snapshot_ids() == [sid]
    assert store.latest() == sid
    assert "junk-name.checkpoint" in caplog.text
    remaining = sorted(os.listdir(tmp_path))
    assert remaining == sorted([*other, snapshot_file_name(sid), "junk-name.checkpoint"])
    store.delete_before(SnapshotId(1000, 9))
    assert sorted(os.listdir(tmp_path)) == sorted([*other, "junk-name.checkpoint"])


# ------------------------------------------------------------------------------------ image bugs


def test_snapshot_keeps_every_topic_of_the_image() -> None:
    delta = MetadataDelta(MetadataImage())
    delta.replay(T.TOPIC_RECORD, TopicRecord(name="dup", topic_id=uuid.UUID(int=1)))
    delta.replay(T.TOPIC_RECORD, TopicRecord(name="dup", topic_id=uuid.UUID(int=2)))
    image = delta.apply()
    assert len(image.topics.by_id) == 2
    data = snapshot_bytes(SID, image_snapshot_records(image), last_contained_log_timestamp_ms=0)
    assert load_image(read_snapshot(data), image.offset, image.epoch) == image


def test_record_without_value_is_corrupt_and_named_by_offset() -> None:
    data = snapshot_bytes(SnapshotId(3, 2), [b"a", b"b"], last_contained_log_timestamp_ms=7)
    _, (pos, data_batch), (end, _) = list(iter_batches(data))
    null_value = build_batch([(None, b"a"), (None, None)], base_offset=1,
                             partition_leader_epoch=2, base_timestamp=7)
    assert len(null_value) == data_batch.size - 1  # one value byte less, same offsets
    corrupt = data[:pos] + null_value + data[end:]
    with pytest.raises(CorruptSnapshotError, match="record at offset 2 has no value"):
        list(read_snapshot(corrupt))
