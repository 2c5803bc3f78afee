"""LeaderEpochFileCache: Kafka's LeaderEpochFileCacheTest cases plus persistence and bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from storage.errors import StorageError
from storage.leader_epoch import (
    LEADER_EPOCH_CHECKPOINT,
    UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
    CorruptCheckpointError,
    EpochEntry,
    LeaderEpochFileCache,
)

UNDEF = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
E = EpochEntry


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / LEADER_EPOCH_CHECKPOINT


@pytest.fixture
def cache(path: Path) -> LeaderEpochFileCache:
    return LeaderEpochFileCache(path)


def reloaded(cache: LeaderEpochFileCache) -> list[EpochEntry]:
    return LeaderEpochFileCache(cache.path).entries


def test_constants() -> None:
    assert UNDEFINED_EPOCH == -1 and UNDEFINED_EPOCH_OFFSET == -1


def test_epoch_entry_is_frozen_with_slots() -> None:
    entry = E(1, 2)
    with pytest.raises(AttributeError):
        entry.epoch = 3  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")


# -- empty cache ---------------------------------------------------------------------------------


def test_empty_cache_without_file(cache: LeaderEpochFileCache, path: Path) -> None:
    assert not path.exists()
    assert cache.entries == []
    assert cache.latest_epoch is None
    assert cache.latest_entry is None
    assert cache.earliest_entry is None
    assert cache.previous_epoch() is None
    assert cache.epoch_for_offset(0) is None
    assert cache.end_offset_for(7, 0) == UNDEF  # shouldFetchEndOffsetOfEmptyCache
    assert cache.end_offset_for(0, 0) == UNDEF  # shouldReturnUnsupportedIfNoEpochRecorded
    assert cache.end_offset_for(UNDEFINED_EPOCH, 73) == UNDEF
    cache.truncate_from_start(7)  # shouldClearEarliestOnEmptyCache
    cache.truncate_from_end(7)  # shouldClearLatestOnEmptyCache
    assert cache.entries == []
    assert not path.exists()  # nothing changed, nothing written


def test_entries_is_a_copy(cache: LeaderEpochFileCache) -> None:
    cache.assign(1, 0)
    cache.entries.append(E(9, 9))
    assert cache.entries == [E(1, 0)]


# -- assign ---------------------------------------------------------------------------------------


def test_add_epoch_and_offset(cache: LeaderEpochFileCache) -> None:
    cache.assign(2, 10)
    assert cache.latest_epoch == 2
    assert cache.entries == [E(2, 10)]
    assert cache.end_offset_for(2, 11) == (2, 11)


def test_same_epoch_later_offset_is_ignored(cache: LeaderEpochFileCache, path: Path) -> None:
    cache.assign(2, 6)
    before = path.stat().st_mtime_ns
    cache.assign(2, 10)
    cache.assign(2, 6)
    assert cache.entries == [E(2, 6)]
    assert path.stat().st_mtime_ns == before  # no rewrite for a no-op


def test_same_epoch_earlier_offset_rewrites_tail(cache: LeaderEpochFileCache) -> None:
    # shouldTruncateIfMatchingEpochButEarlierStartingOffset
    cache.assign(5, 11)
    cache.assign(6, 12)
    cache.assign(7, 13)
    cache.assign(7, 12)
    assert cache.entries == [E(5, 11), E(7, 12)]
    assert cache.end_offset_for(5, 0) == (5, 12)
    assert cache.end_offset_for(6, 0) == (5, 12)
    assert reloaded(cache) == cache.entries


def test_larger_epoch_same_offset_replaces(cache: LeaderEpochFileCache) -> None:
    # shouldEnforceMonotonicallyIncreasingStartOffsets
    cache.assign(2, 9)
    cache.assign(3, 9)
    assert cache.entries == [E(3, 9)]


def test_larger_epoch_smaller_offset_removes_later_entries(
    cache: LeaderEpochFileCache, caplog: pytest.LogCaptureFixture
) -> None:
    # shouldEnforceOffsetsIncreaseMonotonically
    cache.assign(2, 6)
    with caplog.at_level(logging.WARNING, logger="storage.leader_epoch"):
        cache.assign(3, 5)
    assert cache.entries == [E(3, 5)]
    assert "caused truncation" in caplog.text


def test_no_warning_for_trivial_replacement(
    cache: LeaderEpochFileCache, caplog: pytest.LogCaptureFixture
) -> None:
    cache.assign(1, 0)
    cache.assign(2, 5)
    with caplog.at_level(logging.WARNING, logger="storage.leader_epoch"):
        cache.assign(3, 5)  # epoch 2 never got data: expected, not worth a warning
    assert cache.entries == [E(1, 0), E(3, 5)]
    assert caplog.text == ""


def test_smaller_epoch_rewrites_tail(cache: LeaderEpochFileCache) -> None:
    # shouldEnforceMonotonicallyIncreasingEpochs
    cache.assign(1, 5)
    cache.assign(2, 6)
    cache.assign(1, 7)
    assert cache.latest_epoch == 1
    assert cache.entries == [E(1, 7)]
    assert cache.end_offset_for(1, 8) == (1, 8)
    assert cache.end_offset_for(2, 8) == UNDEF


def test_smaller_epoch_keeps_older_entries(cache: LeaderEpochFileCache) -> None:
    cache.assign(0, 0)
    cache.assign(2, 10)
    cache.assign(4, 20)
    cache.assign(3, 25)  # epoch 4 goes (epoch >= 3); 0 and 2 stay
    assert cache.entries == [E(0, 0), E(2, 10), E(3, 25)]


def test_negative_values_rejected(cache: LeaderEpochFileCache) -> None:
    with pytest.raises(ValueError):
        cache.assign(-1, 0)
    with pytest.raises(ValueError):
        cache.assign(0, -1)
    assert cache.entries == []


def test_follower_receives_many_messages(cache: LeaderEpochFileCache) -> None:
    # shouldIncreaseAndTrackEpochsAsFollowerReceivesManyMessages
    for offset in range(3):
        cache.assign(0, offset)
    assert cache.latest_epoch == 0
    assert cache.end_offset_for(0, 3) == (0, 3)
    for offset in range(3, 6):
        cache.assign(1, offset)
    assert cache.end_offset_for(1, 6) == (1, 6)
    for offset in range(6, 9):
        cache.assign(2, offset)
    assert cache.latest_epoch == 2
    assert cache.end_offset_for(2, 9) == (2, 9)
    assert cache.end_offset_for(0, 9) == (0, 3)
    assert cache.end_offset_for(1, 9) == (1, 6)
    assert cache.entries == [E(0, 0), E(1, 3), E(2, 6)]


def test_leaders_change_many_times(cache: LeaderEpochFileCache) -> None:
    # shouldIncreaseAndTrackEpochsAsLeadersChangeManyTimes
    cache.assign(0, 0)
    cache.assign(1, 0)
    assert cache.latest_epoch == 1
    assert cache.end_offset_for(1, 0) == (1, 0)
    assert cache.end_offset_for(0, 0) == (0, 0)  # epoch 0 was replaced: first entry is (1, 0)
    assert cache.end_offset_for(1, 5) == (1, 5)
    cache.assign(2, 5)
    assert cache.end_offset_for(2, 10) == (2, 10)
    assert cache.end_offset_for(1, 10) == (1, 5)
    assert cache.end_offset_for(0, 10) == (0, 0)


# -- end_offset_for --------------------------------------------------------------------------------


def test_end_offset_for_latest_epoch_is_log_end(cache: LeaderEpochFileCache) -> None:
    cache.assign(2, 11)
    cache.assign(2, 12)
    assert cache.end_offset_for(2, 14) == (2, 14)


def test_end_offset_for_undefined_epoch(cache: LeaderEpochFileCache) -> None:
    cache.assign(2, 11)
    cache.assign(3, 12)
    assert cache.end_offset_for(UNDEFINED_EPOCH, 0) == UNDEF


def test_end_offset_for_epoch_below_all_entries(cache: LeaderEpochFileCache) -> None:
    # shouldReturnFirstEpochIfRequestedEpochLessThanFirstEpoch (KIP-279): the requested epoch
    # comes back with the first entry's start offset, not UNDEFINED.
    cache.assign(5, 11)
    cache.assign(6, 12)
    cache.assign(7, 13)
    assert cache.end_offset_for(4, 0) == (4, 11)
    assert cache.end_offset_for(0, 0) == (0, 11)


def test_end_offset_for_previous_epoch(cache: LeaderEpochFileCache) -> None:
    # shouldGetFirstOffsetOfSubsequentEpochWhenOffsetRequestedForPreviousEpoch
    for epoch, offset in [(1, 11), (1, 12), (2, 13), (2, 14), (3, 15), (3, 16)]:
        cache.assign(epoch, offset)
    assert cache.end_offset_for(2, 17) == (2, 15)


def test_end_offset_for_gap_epoch(cache: LeaderEpochFileCache) -> None:
    # shouldReturnNextAvailableEpochIfThereIsNoExactEpochForTheOneRequested
    cache.assign(0, 10)
    cache.assign(2, 13)
    cache.assign(4, 17)
    assert cache.end_offset_for(1, 0) == (0, 13)
    assert cache.end_offset_for(2, 0) == (2, 17)
    assert cache.end_offset_for(3, 0) == (2, 17)
    assert cache.end_offset_for(4, 99) == (4, 99)


def test_end_offset_for_epoch_above_latest(cache: LeaderEpochFileCache) -> None:
    # shouldReturnInvalidOffsetIfEpochIsRequestedWhichIsNotCurrentlyTracked
    cache.assign(2, 100)
    assert cache.end_offset_for(3, 100) == UNDEF


def test_epochs_not_starting_from_zero(cache: LeaderEpochFileCache) -> None:
    cache.assign(2, 6)
    assert cache.end_offset_for(2, 7) == (2, 7)
    assert cache.entries == [E(2, 6)]


# -- queries --------------------------------------------------------------------------------------


def test_epoch_for_offset(cache: LeaderEpochFileCache) -> None:
    cache.assign(0, 10)
    cache.assign(1, 20)
    cache.assign(5, 30)
    assert cache.epoch_for_offset(25) == 1
    assert cache.epoch_for_offset(20) == 1
    assert cache.epoch_for_offset(30) == 5
    assert cache.epoch_for_offset(50) == 5
    assert cache.epoch_for_offset(10) == 0
    assert cache.epoch_for_offset(5) is None


def test_earliest_latest_previous_next(cache: LeaderEpochFileCache) -> None:
    cache.assign(2, 10)
    assert cache.previous_epoch() is None
    cache.assign(4, 15)
    assert cache.previous_epoch() == 2
    cache.assign(10, 20)
    assert cache.previous_epoch() == 4
    assert cache.previous_epoch(10) == 4
    assert cache.previous_epoch(3) == 2
    assert cache.previous_epoch(2) is None
    assert cache.earliest_entry == E(2, 10)
    assert cache.latest_entry == E(10, 20)
    assert cache.next_epoch(-1) == 2
    assert cache.next_epoch(4) == 10
    assert cache.next_epoch(10) is None
    assert cache.epoch_entry(4) == E(4, 15)
    assert cache.epoch_entry(5) is None
    cache.truncate_from_end(18)
    assert cache.previous_epoch() == 2


# -- truncation -----------------------------------------------------------------------------------


@pytest.fixture
def three(cache: LeaderEpochFileCache) -> LeaderEpochFileCache:
    cache.assign(2, 6)
    cache.assign(3, 8)
    cache.assign(4, 11)
    return cache


@pytest.mark.parametrize(
    ("end_offset", "expected"),
    [
        (8, [E(2, 6)]),  # shouldDropEntriesOnEpochBoundaryWhenRemovingLatestEntries
        (9, [E(2, 6), E(3, 8)]),  # shouldDropEntriesBetweenEpochBoundaryWhenRemovingNewest
        (11, [E(2, 6), E(3, 8)]),
        (12, [E(2, 6), E(3, 8), E(4, 11)]),  # beyond the last start: nothing
        (6, []),
        (0, []),
        (UNDEFINED_EPOCH_OFFSET, [E(2, 6), E(3, 8), E(4, 11)]),  # ...TailIfUndefinedPassed
    ],
)
def test_truncate_from_end(three: LeaderEpochFileCache, end_offset: int,
                           expected: list[EpochEntry]) -> None:
    three.truncate_from_end(end_offset)
    assert three.entries == expected
    assert reloaded(three) == expected


@pytest.mark.parametrize(
    ("start_offset", "expected"),
    [
        (8, [E(3, 8), E(4, 11)]),  # shouldPreserveResetOffsetOnClearEarliestIfOneExists
        (1, [E(2, 6), E(3, 8), E(4, 11)]),  # shouldNotClearAnythingIfOffsetTooEarly
        (6, [E(2, 6), E(3, 8), E(4, 11)]),  # shouldNotClearAnythingIfOffsetIsFirstOffset
        (11, [E(4, 11)]),  # shouldRetainLatestEpochOnClearAllEarliest
        (9, [E(3, 9), E(4, 11)]),  # shouldUpdateOffsetBetweenEpochBoundariesOnClearEarliest
        (15, [E(4, 15)]),  # shouldRetainLatestEpochOnClearAllEarliestAndUpdateItsOffset
        (7, [E(2, 7), E(3, 8), E(4, 11)]),
        (UNDEFINED_EPOCH_OFFSET, [E(2, 6), E(3, 8), E(4, 11)]),  # ...HeadIfUndefinedPassed
    ],
)
def test_truncate_from_start(three: LeaderEpochFileCache, start_offset: int,
                             expected: list[EpochEntry]) -> None:
    three.truncate_from_start(start_offset)
    assert three.entries == expected
    assert reloaded(three) == expected


def test_truncate_from_start_between_first_two(cache: LeaderEpochFileCache) -> None:
    # shouldUpdateOffsetBetweenFirstTwoEpochBoundariesOnClearEarliest
    cache.assign(0, 0)
    cache.assign(1, 7)
    cache.assign(2, 10)
    cache.truncate_from_start(5)
    assert cache.entries == [E(0, 5), E(1, 7), E(2, 10)]


def test_checkpoint_written_on_truncation(three: LeaderEpochFileCache, path: Path) -> None:
    # shouldWriteCheckpointOnTruncation
    three.truncate_from_end(11)
    three.truncate_from_start(8)
    assert path.read_bytes() == b"0\n1\n3 8\n"


def test_clear(three: LeaderEpochFileCache, path: Path) -> None:
    three.clear()
    assert three.entries == []
    assert path.read_bytes() == b"0\n0\n"
    assert reloaded(three) == []
    three.assign(7, 100)
    assert reloaded(three) == [E(7, 100)]


# -- persistence ----------------------------------------------------------------------------------


def test_persists_between_instances(three: LeaderEpochFileCache, path: Path) -> None:
    assert path.read_bytes() == b"0\n3\n2 6\n3 8\n4 11\n"
    other = LeaderEpochFileCache(path)
    assert other.entries == [E(2, 6), E(3, 8), E(4, 11)]
    assert other.end_offset_for(3, 50) == (3, 11)
    assert not path.with_name(path.name + ".tmp").exists()


def test_flush_writes_current_state(path: Path) -> None:
    path.write_bytes(b"0\n2\n5 10\n3 20\n")  # non-monotonic: normalised in memory on load
    cache = LeaderEpochFileCache(path)
    assert cache.entries == [E(3, 20)]
    assert path.read_bytes() == b"0\n2\n5 10\n3 20\n"  # loading does not rewrite (as Kafka)
    cache.flush()
    assert path.read_bytes() == b"0\n1\n3 20\n"


def test_reads_kafka_written_file(path: Path) -> None:
    # A file as Kafka writes it, and Kafka's reader tolerances: CRLF, runs of spaces.
    path.write_bytes(b"0\r\n2\r\n0  0\r\n1 42")
    assert LeaderEpochFileCache(path).entries == [E(0, 0), E(1, 42)]


@pytest.mark.parametrize("data", [b"", b"0\n", b"0"])
def test_empty_or_truncated_header_reads_as_empty(path: Path, data: bytes) -> None:
    # Kafka's CheckpointReadBuffer returns no entries when the file ends before the count.
    path.write_bytes(data)
    assert LeaderEpochFileCache(path).entries == []


@pytest.mark.parametrize(
    ("data", "line_number"),
    [
        (b"1\n0\n", 1),  # unknown version
        (b"x\n0\n", 1),
        (b"0\nfoo\n", 2),
        (b"0\n-1\n", 2),
        (b"0\n1\n1\n", 3),  # one field
        (b"0\n1\n1 2 3\n", 3),  # three fields
        (b"0\n2\n1 2\nfoo 3\n", 4),
        (b"0\n1\n-1 2\n", 3),  # negative epoch
        (b"0\n1\n1 -2\n", 3),  # negative offset
        (b"0\n1\n1 1_0\n", 3),  # python-only integer syntax
        (b"0\n1\n2147483648 0\n", 3),  # epoch beyond int32
        (b"0\n1\n1 2\n\n", 4),  # blank line
        (b"0\n2\n1 2\n", None),  # fewer entries than the count
        (b"0\n1\n1 2\n2 3\n", None),  # more entries than the count
        (b"0\n1\n\xff 2\n", None),  # not UTF-8
    ],
)
def test_malformed_file(path: Path, data: bytes, line_number: int | None) -> None:
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError) as info:
        LeaderEpochFileCache(path)
    err = info.value
    assert isinstance(err, StorageError)
    assert err.path == path
    assert err.line_number == line_number
    assert str(path) in str(err)
    if line_number is not None:
        assert f"line {line_number}" in str(err)
