"""ProducerStateManager: Kafka's ProducerStateManagerTest rules, snapshots, recovery, expiration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from storage.control_records import ControlRecordType, build_control_batch
from storage.error_codes import ErrorCode
from storage.errors import CorruptRecordError
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.producer_checks import CHECK_OK
from storage.producer_entry import NUM_BATCHES_TO_RETAIN, BatchMetadata, ProducerStateEntry
from storage.producer_snapshot import (
    CorruptSnapshotError,
    decode_snapshot,
    encode_snapshot,
    snapshot_file_name,
)
from storage.producer_state import ProducerStateManager, batch_headers, iter_log_headers
from storage.record_batch import (
    CONTROL_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TRANSACTIONAL_MASK,
    BatchHeader,
    parse_header,
)
from storage.records import build_batch

INT32_MAX = 2**31 - 1
PID = 1000
NOW = 10_000
DAY = 86_400_000


def hdr(
    pid: int = PID,
    epoch: int = 0,
    seq: int = 0,
    count: int = 1,
    *,
    base_offset: int = 0,
    ts: int = NOW,
    txn: bool = False,
    control: bool = False,
) -> BatchHeader:
    """A batch header as the broker would parse it (records are not needed here)."""
    attributes = (TRANSACTIONAL_MASK if txn else 0) | (CONTROL_MASK if control else 0)
    return BatchHeader(
        base_offset, HEADER_SIZE - LOG_OVERHEAD, -1, 2, 0, attributes, count - 1, ts, ts,
        pid, epoch, seq, count,
    )


class Leader:
    """A leader's produce path over a ProducerStateManager: check, then assign offsets."""

    def __init__(self, psm: ProducerStateManager, next_offset: int = 0) -> None:
        self.psm = psm
        self.next_offset = next_offset
        self.log: list[BatchHeader] = []  # appended headers, offsets assigned

    def produce(self, header: BatchHeader) -> tuple[ErrorCode, int, int]:
        """(error, first offset, last offset) as the produce response would carry them."""
        result = self.psm.check(header)
        if result.duplicate is not None:
            return ErrorCode.NONE, result.duplicate.first_offset, result.duplicate.last_offset
        if result.error is not ErrorCode.NONE:
            return result.error, -1, -1
        first = self.next_offset
        self.log.append(header._replace(base_offset=first))
        self.psm.on_append([header], first_offset=first)
        self.next_offset = first + header.last_offset_delta + 1
        return ErrorCode.NONE, first, self.next_offset - 1


@pytest.fixture
def psm(tmp_path: Path) -> ProducerStateManager:
    return ProducerStateManager(tmp_path)


@pytest.fixture
def leader(psm: ProducerStateManager) -> Leader:
    return Leader(psm)


def state(psm: ProducerStateManager) -> dict[int, ProducerStateEntry]:
    return dict(psm.active_producers)


# -- sequence rules ------------------------------------------------------------------------------


def test_non_idempotent_batches_always_pass(psm: ProducerStateManager) -> None:
    assert psm.check(hdr(pid=-1, epoch=-1, seq=-1)) is CHECK_OK
    psm.on_append([hdr(pid=-1, epoch=-1, seq=-1, count=3)], first_offset=5)
    assert psm.is_empty and psm.map_end_offset == 8


def test_in_sequence_batches_are_accepted(leader: Leader) -> None:
    assert leader.produce(hdr(seq=0, count=3)) == (ErrorCode.NONE, 0, 2)
    assert leader.produce(hdr(seq=3, count=2)) == (ErrorCode.NONE, 3, 4)
    entry = leader.psm.last_entry(PID)
    assert entry is not None
    assert (entry.producer_epoch, entry.first_seq, entry.last_seq) == (0, 0, 4)
    assert entry.batches[-1].last_offset == 4


def test_unknown_producer_accepted_at_any_sequence(leader: Leader) -> None:
    # KIP-360: a producer whose state expired or was deleted goes on where it was.
    assert leader.produce(hdr(seq=42, epoch=3))[0] is ErrorCode.NONE
    assert leader.produce(hdr(seq=43, epoch=3))[0] is ErrorCode.NONE


def test_gap_is_out_of_order(leader: Leader) -> None:
    leader.produce(hdr(seq=0, count=2))
    result = leader.psm.check(hdr(seq=3))
    assert result.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert "3 (incoming)" in result.message and not result.ok
    assert leader.produce(hdr(seq=2))[0] is ErrorCode.NONE


def test_sequence_below_the_cached_batches_is_out_of_order(leader: Leader) -> None:
    leader.produce(hdr(seq=0, count=10))
    # Overlapping but not an exact cached range: not a duplicate.
    assert leader.psm.check(hdr(seq=5, count=5)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert leader.psm.check(hdr(seq=0, count=5)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


@pytest.mark.parametrize("age", range(NUM_BATCHES_TO_RETAIN))
def test_duplicate_of_each_of_the_last_five_batches(leader: Leader, age: int) -> None:
    sent = []
    seq = 0
    for n in (1, 2, 3, 1, 4, 2, 5):
        header = hdr(seq=seq, count=n)
        sent.append((header, leader.produce(header)))
        seq += n
    end_before = leader.next_offset
    header, (_, first, last) = sent[-1 - age]
    result = leader.psm.check(header)
    assert result.error is ErrorCode.NONE and result.duplicate is not None and not result.ok
    assert (result.duplicate.first_offset, result.duplicate.last_offset) == (first, last)
    assert leader.produce(header) == (ErrorCode.NONE, first, last)
    assert leader.next_offset == end_before  # nothing appended


def test_sixth_most_recent_batch_is_no_longer_a_duplicate(leader: Leader) -> None:
    for seq in range(6):
        leader.produce(hdr(seq=seq))
    assert leader.psm.check(hdr(seq=1)).duplicate is not None
    assert leader.psm.check(hdr(seq=0)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_duplicate_only_within_the_same_epoch(leader: Leader) -> None:
    leader.produce(hdr(epoch=1, seq=0))
    assert leader.psm.check(hdr(epoch=1, seq=0)).duplicate is not None
    # The same sequence range under a new epoch is a fresh batch of the new epoch.
    assert leader.psm.check(hdr(epoch=2, seq=0)) is CHECK_OK


def test_duplicate_returns_the_append_time_for_log_append_time_topics(
    psm: ProducerStateManager,
) -> None:
    header = hdr(seq=0, ts=5)
    psm.on_append([header], first_offset=7, log_append_time_ms=99_000)
    dup = psm.check(header).duplicate
    assert dup == BatchMetadata(0, 0, 7, 7, 99_000)


def test_memory_is_bounded_to_five_batches(leader: Leader) -> None:
    for seq in range(100):
        leader.produce(hdr(seq=seq))
    entry = leader.psm.last_entry(PID)
    assert entry is not None and len(entry.batches) == NUM_BATCHES_TO_RETAIN
    assert [b.first_seq for b in entry.batches] == [95, 96, 97, 98, 99]


# -- epochs --------------------------------------------------------------------------------------


def test_older_epoch_is_fenced(leader: Leader) -> None:
    leader.produce(hdr(epoch=5, seq=0))
    for seq in (0, 1, 7):
        result = leader.psm.check(hdr(epoch=4, seq=seq))
        assert result.error is ErrorCode.INVALID_PRODUCER_EPOCH
    assert "older" in leader.psm.check(hdr(epoch=4, seq=1)).message


def test_epoch_bump_must_start_at_sequence_zero(leader: Leader) -> None:
    leader.produce(hdr(epoch=0, seq=0, count=5))
    assert leader.psm.check(hdr(epoch=1, seq=5)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert leader.psm.check(hdr(epoch=1, seq=1)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert leader.produce(hdr(epoch=1, seq=0))[0] is ErrorCode.NONE
    entry = leader.psm.last_entry(PID)
    assert entry is not None and entry.producer_epoch == 1 and len(entry.batches) == 1
    # The old epoch's batches are gone: a retry of one is fenced, not a duplicate.
    assert leader.psm.check(hdr(epoch=0, seq=0, count=5)).error is ErrorCode.INVALID_PRODUCER_EPOCH
    assert leader.produce(hdr(epoch=1, seq=1))[0] is ErrorCode.NONE


def test_epoch_jump_by_more_than_one_is_fine_at_sequence_zero(leader: Leader) -> None:
    leader.produce(hdr(epoch=0, seq=0))
    assert leader.psm.check(hdr(epoch=7, seq=0)) is CHECK_OK


def test_follower_applies_an_older_epoch_without_validating(
    psm: ProducerStateManager, caplog: pytest.LogCaptureFixture
) -> None:
    psm.on_append([hdr(epoch=3, seq=0, base_offset=0)])
    with caplog.at_level(logging.WARNING, logger="storage.producer_state"):
        psm.on_append([hdr(epoch=2, seq=9, base_offset=1)])
    entry = psm.last_entry(PID)
    assert entry is not None and entry.producer_epoch == 2 and entry.last_seq == 9
    assert "older" in caplog.text


# -- wrap-around ---------------------------------------------------------------------------------


def test_sequence_wraps_after_int32_max(leader: Leader) -> None:
    assert leader.produce(hdr(seq=INT32_MAX - 1, count=2))[0] is ErrorCode.NONE
    entry = leader.psm.last_entry(PID)
    assert entry is not None and entry.last_seq == INT32_MAX
    assert leader.psm.check(hdr(seq=1)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert leader.produce(hdr(seq=0))[0] is ErrorCode.NONE


def test_batch_spanning_the_wrap(leader: Leader) -> None:
    leader.produce(hdr(seq=INT32_MAX - 3, count=2))
    spanning = hdr(seq=INT32_MAX - 1, count=4)  # sequences MAX-1, MAX, 0, 1
    assert spanning.last_sequence == 1
    assert leader.produce(spanning) == (ErrorCode.NONE, 2, 5)
    assert leader.psm.check(spanning).duplicate == BatchMetadata(INT32_MAX - 1, 1, 2, 5, NOW)
    assert leader.psm.check(hdr(seq=3)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert leader.produce(hdr(seq=2))[0] is ErrorCode.NONE


# -- malformed and multi-batch requests ----------------------------------------------------------


def test_producer_id_without_sequence_is_an_invalid_record(leader: Leader) -> None:
    leader.produce(hdr(epoch=5, seq=0))
    assert leader.psm.check(hdr(seq=-1)).error is ErrorCode.INVALID_RECORD
    assert leader.psm.check(hdr(epoch=5, seq=-1)).error is ErrorCode.INVALID_RECORD


def test_check_batches_validates_each_against_the_earlier_ones(
    psm: ProducerStateManager,
) -> None:
    psm.on_append([hdr(seq=0, count=2)], first_offset=0)
    other = 2000
    assert psm.check_batches([hdr(seq=2), hdr(seq=3, count=2), hdr(pid=other, seq=9)]).ok
    bad = psm.check_batches([hdr(seq=2), hdr(seq=4)])
    assert bad.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert psm.check_batches([hdr(epoch=1, seq=0), hdr(epoch=1, seq=1)]).ok
    assert psm.check_batches([hdr(epoch=1, seq=0), hdr(epoch=0, seq=2)]).error is (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )
    dup = psm.check_batches([hdr(pid=-1, epoch=-1, seq=-1), hdr(seq=0, count=2)])
    assert dup.duplicate == BatchMetadata(0, 1, 0, 1, NOW)
    assert psm.check_batches([]) is CHECK_OK


def test_on_append_assigns_contiguous_offsets_on_the_leader_path(
    psm: ProducerStateManager,
) -> None:
    psm.on_append([hdr(seq=0, count=2), hdr(pid=7, seq=0, count=3), hdr(seq=2)], first_offset=10)
    a, b = psm.last_entry(PID), psm.last_entry(7)
    assert a is not None and b is not None
    assert [(m.first_offset, m.last_offset) for m in a.batches] == [(10, 11), (15, 15)]
    assert [(m.first_offset, m.last_offset) for m in b.batches] == [(12, 14)]
    assert psm.map_end_offset == 16


def test_batch_headers_of_a_produce_buffer() -> None:
    buf = build_batch([(None, b"a"), (None, b"b")], producer_id=5, producer_epoch=1,
                      base_sequence=3) + build_batch([(None, b"c")])
    headers = batch_headers(buf)
    assert [(h.producer_id, h.base_sequence, h.last_sequence) for h in headers] == [
        (5, 3, 4), (-1, -1, -1),
    ]
    with pytest.raises(CorruptRecordError):
        batch_headers(buf[:-1])


# -- transactions (the fields later transaction work builds on) -----------------------------------


def test_transactional_state(leader: Leader) -> None:
    psm = leader.psm
    leader.produce(hdr(seq=0, txn=True))
    leader.produce(hdr(seq=1, txn=True))
    entry = psm.last_entry(PID)
    assert entry is not None and entry.current_txn_first_offset == 0
    assert psm.first_undecided_offset() == 0
    assert psm.check(hdr(seq=2)).error is ErrorCode.INVALID_TXN_STATE
    marker = hdr(seq=-1, control=True, txn=True)
    assert psm.check(marker) is CHECK_OK
    assert psm.check(marker._replace(producer_epoch=-1)).error is ErrorCode.INVALID_PRODUCER_EPOCH
    psm.update(marker, base_offset=2, coordinator_epoch=4)
    assert entry.current_txn_first_offset == -1 and entry.coordinator_epoch == 4
    assert psm.first_undecided_offset() is None and psm.map_end_offset == 3
    assert [b.last_seq for b in entry.batches] == [0, 1]  # a marker adds no batch
    assert psm.check(hdr(seq=2)) is CHECK_OK
    # An abort marker that bumps the epoch empties the batches; the new epoch starts at 0.
    psm.update(hdr(epoch=1, seq=-1, control=True, txn=True), base_offset=3)
    assert entry.producer_epoch == 1 and entry.is_empty
    assert psm.check(hdr(epoch=1, seq=1)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert psm.check(hdr(epoch=1, seq=0)) is CHECK_OK


def test_check_batches_tracks_transactions_within_a_request(psm: ProducerStateManager) -> None:
    assert psm.check_batches([hdr(seq=0, txn=True), hdr(seq=1)]).error is (
        ErrorCode.INVALID_TXN_STATE
    )
    marker = hdr(seq=-1, control=True, txn=True)
    assert psm.check_batches([hdr(seq=0, txn=True), marker, hdr(seq=1)]).ok


def test_empty_control_batch_is_ignored(psm: ProducerStateManager) -> None:
    psm.update(hdr(control=True, count=1)._replace(record_count=0), base_offset=0)
    assert psm.is_empty and psm.map_end_offset == 1


# -- expiration ----------------------------------------------------------------------------------


def test_remove_expired_producers(tmp_path: Path) -> None:
    psm = ProducerStateManager(tmp_path, producer_id_expiration_ms=1000)
    psm.update(hdr(pid=1, seq=0, ts=100, base_offset=0))
    psm.update(hdr(pid=2, seq=0, ts=600, base_offset=1))
    psm.update(hdr(pid=3, seq=0, ts=100, base_offset=2, txn=True))
    assert psm.remove_expired_producers(1099) == 0
    assert psm.remove_expired_producers(1100) == 1  # >= expiration, as Kafka
    assert sorted(psm.active_producers) == [2, 3]
    assert psm.remove_expired_producers(10**9) == 1
    assert sorted(psm.active_producers) == [3]  # an open transaction never expires
    # An expired producer comes back as unknown: any sequence is accepted.
    assert psm.check(hdr(pid=1, seq=77)) is CHECK_OK


def test_expired_producers_are_not_loaded_from_a_snapshot(tmp_path: Path) -> None:
    psm = ProducerStateManager(tmp_path, producer_id_expiration_ms=1000)
    psm.update(hdr(pid=1, seq=0, ts=100, base_offset=0))
    psm.update(hdr(pid=2, seq=0, ts=900, base_offset=1))
    psm.take_snapshot()
    fresh = ProducerStateManager(tmp_path, producer_id_expiration_ms=1000)
    fresh.truncate_and_reload(0, 2, now_ms=1500)
    assert sorted(fresh.active_producers) == [2]


def test_negative_expiration_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ProducerStateManager(tmp_path, producer_id_expiration_ms=-1)


# -- snapshots -----------------------------------------------------------------------------------


def populate(leader: Leader, batches: int = 12) -> None:
    for i in range(batches):
        pid = 1 + i % 3
        entry = leader.psm.last_entry(pid)
        seq = 0 if entry is None else entry.last_seq + 1
        leader.produce(hdr(pid=pid, epoch=pid, seq=seq, count=1 + i % 4, ts=NOW + i))


def test_snapshot_round_trip(tmp_path: Path, leader: Leader) -> None:
    populate(leader)
    psm = leader.psm
    psm.update(hdr(pid=9, seq=0, txn=True), base_offset=leader.next_offset)
    psm.update(hdr(pid=9, seq=-1, control=True, txn=True), base_offset=leader.next_offset + 1,
               coordinator_epoch=3)
    psm.update(hdr(pid=9, seq=1, txn=True), base_offset=leader.next_offset + 2)
    end = psm.map_end_offset
    path = psm.take_snapshot()
    assert path == tmp_path / snapshot_file_name(end) == tmp_path / f"{end:020d}.snapshot"
    assert psm.snapshot_offsets == [end] and psm.latest_snapshot_offset == end
    fresh = ProducerStateManager(tmp_path)
    assert fresh.snapshot_offsets == [end]
    assert fresh.truncate_and_reload(0, end, NOW) == end
    assert state(fresh) == state(psm)
    # All five cached batches survive a restart: retries of any of them are still duplicates.
    for header in leader.log[-3:]:
        assert fresh.check(header._replace(base_offset=0)).duplicate is not None


def test_encode_decode_is_deterministic() -> None:
    a = ProducerStateEntry(5, 1, 2, 3, -1)
    a.batches.append(BatchMetadata(0, 1, 10, 11, 3))
    b = ProducerStateEntry(4)
    data = encode_snapshot([a, b])
    assert data == encode_snapshot([b, a])
    assert decode_snapshot(data) == [b, a]
    assert decode_snapshot(encode_snapshot([])) == []


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[:-1], "CRC"),
        (lambda d: d[:4], "too short"),
        (lambda d: b"\x00\x07" + d[2:], "version"),
        (lambda d: d[:10] + bytes([d[10] ^ 1]) + d[11:], "CRC"),
    ],
)
def test_decode_rejects_damage(mangle, reason: str) -> None:  # type: ignore[no-untyped-def]
    entry = ProducerStateEntry(5, 1)
    entry.batches.append(BatchMetadata(0, 1, 10, 11, 3))
    with pytest.raises(CorruptSnapshotError, match=reason):
        decode_snapshot(mangle(encode_snapshot([entry])))


def test_take_snapshot_only_when_there_is_something_new(
    tmp_path: Path, leader: Leader
) -> None:
    psm = leader.psm
    assert psm.take_snapshot() is None  # nothing at offset 0
    leader.produce(hdr(seq=0))
    assert psm.take_snapshot() is not None
    assert psm.take_snapshot() is None
    # On roll the new segment's base offset becomes the snapshot offset.
    assert psm.take_snapshot(5) == tmp_path / snapshot_file_name(5)
    assert psm.snapshot_offsets == [1, 5] and psm.map_end_offset == 5
    with pytest.raises(ValueError, match="below the map end offset"):
        psm.take_snapshot(4)  # would make recovery replay offset 4 twice


def test_corrupt_snapshot_is_deleted_and_an_earlier_one_used(
    tmp_path: Path, leader: Leader, caplog: pytest.LogCaptureFixture
) -> None:
    psm = leader.psm
    populate(leader, 6)
    early = psm.map_end_offset
    psm.take_snapshot()
    populate(leader, 6)
    late = psm.map_end_offset
    path = psm.take_snapshot()
    assert path is not None
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))

    fresh = ProducerStateManager(tmp_path)
    with caplog.at_level(logging.WARNING, logger="storage.producer_state"):
        start = fresh.truncate_and_reload(0, late, NOW)
    assert start == early and "corrupt producer snapshot" in caplog.text
    assert not path.exists() and fresh.snapshot_offsets == [early]
    fresh.rebuild(iter(leader.log), late)
    assert state(fresh) == state(psm) and fresh.map_end_offset == late


def test_all_snapshots_corrupt_rebuilds_from_the_log_start(
    tmp_path: Path, leader: Leader
) -> None:
    psm = leader.psm
    populate(leader)
    end = psm.map_end_offset
    path = psm.take_snapshot()
    assert path is not None
    path.write_bytes(b"")
    fresh = ProducerStateManager(tmp_path)
    assert fresh.truncate_and_reload(0, end, NOW) == 0 and fresh.is_empty
    fresh.rebuild(leader.log, end)
    assert state(fresh) == state(psm)


def test_leftover_temp_snapshot_is_removed(tmp_path: Path) -> None:
    leftover = tmp_path / (snapshot_file_name(3) + ".tmp")
    leftover.write_bytes(b"partial")
    (tmp_path / "00000000000000000000.log").write_bytes(b"")
    (tmp_path / "junk.snapshot").write_bytes(b"")
    psm = ProducerStateManager(tmp_path)
    assert not leftover.exists() and psm.snapshot_offsets == []


def test_missing_directory_lists_no_snapshots(tmp_path: Path) -> None:
    assert ProducerStateManager(tmp_path / "nope").snapshot_offsets == []


def test_delete_snapshots_before(tmp_path: Path, psm: ProducerStateManager) -> None:
    for offset in (3, 6, 9):
        psm.update(hdr(seq=offset, base_offset=offset - 1))
        psm.take_snapshot(offset)
    psm.delete_snapshots_before(6)
    assert psm.snapshot_offsets == [6, 9] and psm.oldest_snapshot_offset == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        snapshot_file_name(6), snapshot_file_name(9),
    ]


# -- truncation ----------------------------------------------------------------------------------


def test_truncate_and_reload_then_replay(tmp_path: Path, leader: Leader) -> None:
    psm = leader.psm
    populate(leader, 5)
    psm.take_snapshot()
    mid = psm.map_end_offset
    populate(leader, 10)
    psm.take_snapshot()
    # Truncate to a batch boundary between the two snapshots.
    target = next(h.base_offset for h in leader.log if h.base_offset > mid + 3)
    start = psm.truncate_and_reload(0, target, NOW)
    assert start == mid and psm.snapshot_offsets == [mid]  # the later one is beyond the end
    psm.rebuild(iter(leader.log), target)
    expected = ProducerStateManager(tmp_path / "expected")
    expected.rebuild([h for h in leader.log if h.base_offset < target], target)
    assert state(psm) == state(expected) and psm.map_end_offset == target


def test_truncate_and_reload_at_the_map_end_keeps_the_state(leader: Leader) -> None:
    populate(leader)
    psm = leader.psm
    before = state(psm)
    assert psm.truncate_and_reload(0, psm.map_end_offset, NOW) == psm.map_end_offset
    assert state(psm) == before


def test_truncate_and_reload_drops_snapshots_at_or_below_the_log_start(
    leader: Leader,
) -> None:
    psm = leader.psm
    populate(leader, 3)
    low = psm.map_end_offset
    psm.take_snapshot()
    populate(leader, 3)
    end = psm.map_end_offset
    psm.take_snapshot()
    psm.truncate_and_reload(low, end, NOW)
    assert psm.snapshot_offsets == [end]


def test_truncate_fully_and_start_at(psm: ProducerStateManager, tmp_path: Path) -> None:
    psm.update(hdr(seq=0, base_offset=0))
    psm.take_snapshot()
    psm.truncate_fully_and_start_at(50)
    assert psm.is_empty and psm.map_end_offset == 50 and psm.snapshot_offsets == []
    assert list(tmp_path.iterdir()) == []
    psm.update(hdr(seq=0, base_offset=50))
    assert psm.take_snapshot() == tmp_path / snapshot_file_name(51)


def test_on_log_start_offset_incremented(psm: ProducerStateManager) -> None:
    psm.update(hdr(seq=0, base_offset=0))
    psm.on_log_start_offset_incremented(20)
    assert psm.map_end_offset == 20
    assert psm.take_snapshot() is None  # nothing new since the log start
    psm.update(hdr(seq=1, base_offset=20))
    assert psm.take_snapshot() is not None


# -- with a real PartitionLog ----------------------------------------------------------------------


def produce_to_log(log: PartitionLog, psm: ProducerStateManager, buf: bytes) -> None:
    """The leader's produce path, with the roll hook done from outside the log: the snapshot
    at the new segment's base goes before the appended batches are applied."""
    headers = batch_headers(buf)
    assert psm.check_batches(headers).ok
    active = log.active_segment.base_offset
    info = log.append(buf, leader_epoch=0, now_ms=NOW)
    if log.active_segment.base_offset != active:
        psm.take_snapshot(log.active_segment.base_offset)
    psm.on_append(headers, first_offset=info.first_offset,
                  log_append_time_ms=info.log_append_time_ms)


def idempotent(pid: int, seq: int, n: int = 2, epoch: int = 0) -> bytes:
    return build_batch([(None, b"x" * 40)] * n, producer_id=pid, producer_epoch=epoch,
                       base_sequence=seq, base_timestamp=NOW)


def test_rebuild_from_log_after_restart(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=600)
    log = PartitionLog.open(tmp_path, config, now_ms=NOW)
    psm = ProducerStateManager(tmp_path)
    psm.rebuild_from_log(log, NOW)
    seqs = {1: 0, 2: 0}
    for i in range(30):
        pid = 1 + i % 2
        produce_to_log(log, psm, idempotent(pid, seqs[pid]))
        seqs[pid] += 2
        if i == 10:
            produce_to_log(log, psm, build_batch([(None, b"plain")], base_timestamp=NOW))
    assert len(log.segments) > 3
    expected = state(psm)
    leo = log.log_end_offset
    bases = [s.base_offset for s in log.segments]
    assert psm.snapshot_offsets == bases[1:]  # one per roll
    log.flush()
    log.close()

    # Restart from each roll snapshot: load it, replay the rest, same state.
    for base in reversed(bases[1:]):
        log = PartitionLog.open(tmp_path, config, now_ms=NOW)
        for path in tmp_path.glob("*.snapshot"):
            if int(path.name.split(".")[0]) > base:
                path.unlink()
        fresh = ProducerStateManager(tmp_path)
        assert fresh.truncate_and_reload(0, leo, NOW) == base
        fresh.rebuild(iter_log_headers(log, base, leo), leo)
        assert state(fresh) == expected
        log.close()

    # Restart with no snapshot at all: full replay.
    for path in tmp_path.glob("*.snapshot"):
        path.unlink()
    log = PartitionLog.open(tmp_path, config, now_ms=NOW)
    fresh = ProducerStateManager(tmp_path)
    fresh.rebuild_from_log(log, NOW)
    assert state(fresh) == expected and fresh.map_end_offset == leo
    # Snapshots at the last two segment bases (recovery shortcut) and at the log end.
    assert fresh.snapshot_offsets == sorted({*bases[-2:], leo})

    # Restart again: loads the log-end snapshot, replays nothing.
    again = ProducerStateManager(tmp_path)
    again.rebuild_from_log(log, NOW)
    assert state(again) == expected

    # Follower truncation into the second-to-last segment: reload + replay of the tail.
    target = log.segments[-2].base_offset + 2
    headers = list(iter_log_headers(log, 0, leo))
    log.truncate_to(target)
    again.rebuild_from_log(log, NOW)
    new_end = log.log_end_offset
    model = ProducerStateManager(tmp_path / "model")
    model.rebuild([h for h in headers if h.base_offset < new_end], new_end)
    assert state(again) == state(model) and again.map_end_offset == new_end
    assert max(again.snapshot_offsets) == new_end
    log.close()


def test_iter_log_headers_ranges(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=400), now_ms=NOW)
    psm = ProducerStateManager(tmp_path)
    for i in range(12):
        produce_to_log(log, psm, idempotent(1, 2 * i))
    all_headers = list(iter_log_headers(log, 0, log.log_end_offset))
    assert [h.base_offset for h in all_headers] == list(range(0, 24, 2))
    assert [h.base_offset for h in iter_log_headers(log, 5, 11)] == [4, 6, 8, 10]
    assert list(iter_log_headers(log, 24, 24)) == []
    log.close()


def test_transaction_marker_batches_from_the_log(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(), now_ms=NOW)
    psm = ProducerStateManager(tmp_path)
    txn = build_batch([(None, b"t")], producer_id=3, producer_epoch=0, base_sequence=0,
                      is_transactional=True, base_timestamp=NOW)
    produce_to_log(log, psm, txn)
    assert psm.first_undecided_offset() == 0
    marker = build_control_batch(ControlRecordType.COMMIT, producer_id=3, producer_epoch=0,
                                 coordinator_epoch=2, timestamp=NOW)
    header = parse_header(marker)
    assert psm.check(header).ok
    info = log.append(marker, leader_epoch=0, now_ms=NOW)
    psm.update(header, base_offset=info.first_offset, coordinator_epoch=2)
    assert psm.first_undecided_offset() is None
    fresh = ProducerStateManager(tmp_path / "fresh")
    fresh.rebuild(iter_log_headers(log, 0, log.log_end_offset), log.log_end_offset)
    entry = fresh.last_entry(3)
    assert entry is not None and not entry.has_ongoing_txn and entry.last_seq == 0
    log.close()
