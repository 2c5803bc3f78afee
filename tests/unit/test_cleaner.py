"""Log compaction (storage/cleaner/) on real files: no mocks, except an injected clock for the
throttler."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from storage.cleaner import (
    CleanAbortedError,
    CleanResult,
    Throttler,
    clean_log,
    cleanable_offsets,
    commit_clean,
    dirty_ratio,
    earliest_delete_horizon,
    log_to_clean,
    needs_cleaning,
    prepare_clean,
)
from storage.compression import CompressionType
from storage.control_records import ControlRecordType, build_control_batch
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.record_batch import BatchHeader, validate_batch
from storage.records import Record, SimpleRecord, build_batch, decode_batch

DAY = 24 * 3600 * 1000
T0 = 1_700_000_000_000
RETENTION = 1000  # delete.retention.ms in these tests


def config(**changes: object) -> LogConfig:
    base = LogConfig(
        cleanup_policy="compact",
        segment_bytes=400,
        index_interval_bytes=64,
        delete_retention_ms=RETENTION,
        min_cleanable_dirty_ratio=0.5,
    )
    return base.replace(**changes)


KV = tuple[bytes | None, bytes | None]


def append(
    log: PartitionLog,
    records: Sequence[KV],
    *,
    ts: int = T0,
    compression: int = CompressionType.NONE,
    producer_id: int = -1,
    base_sequence: int = -1,
    epoch: int | None = None,
) -> int:
    """Append one batch; returns its base offset."""
    raw = build_batch(
        [SimpleRecord(v, key=k, timestamp=ts) for k, v in records],
        compression=compression,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=base_sequence,
    )
    return log.append(raw, now_ms=ts, leader_epoch=epoch).first_offset


def batches(log: PartitionLog) -> list[tuple[BatchHeader, list[Record]]]:
    """Every batch through log.read, CRC-checked and decoded."""
    out = []
    data = log.read_batches(log.log_start_offset)
    pos = 0
    while pos < len(data):
        validate_batch(data, pos)
        header, records = decode_batch(data, pos)
        out.append((header, records))
        pos += header.size
    return out


def records(log: PartitionLog) -> list[Record]:
    return [r for _, rs in batches(log) for r in rs]


def latest(recs: Sequence[Record]) -> dict[bytes, bytes]:
    """key -> value of the last record of each key, deleted keys (tombstones) absent."""
    state: dict[bytes, bytes | None] = {}
    for r in recs:
        if r.key is not None:
            state[r.key] = r.value
    return {k: v for k, v in state.items() if v is not None}


def fill(log: PartitionLog, rounds: int, keys: int = 4, *, ts: int = T0) -> list[Record]:
    for i in range(rounds):
        append(log, [(f"k{(i + j) % keys}".encode(), f"v{i}-{j}".encode() * 3) for j in range(2)],
               ts=ts + i)
    return records(log)


def open_log(path: Path, cfg: LogConfig | None = None) -> PartitionLog:
    return PartitionLog.open(path, cfg or config(), now_ms=T0)


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    lg = open_log(tmp_path / "t-0")
    yield lg
    lg.close()


# -- basics ------------------------------------------------------------------------------------


def test_keeps_latest_value_per_key_with_original_offsets(log: PartitionLog) -> None:
    before = fill(log, 40)
    assert len(log.segments) > 4
    active_base = log.active_segment.base_offset
    leo = log.log_end_offset
    result = clean_log(log, now_ms=T0 + 100)
    after = records(log)
    by_offset = {r.offset: r for r in before}
    # offsets and contents preserved, order preserved
    assert [r.offset for r in after] == sorted(r.offset for r in after)
    for r in after:
        assert by_offset[r.offset] == r
    # below the active segment: exactly the latest record of each key (within that range)
    cleaned = [r for r in after if r.offset < active_base]
    expected_latest = {}
    for r in before:
        if r.offset < active_base:
            expected_latest[r.key] = r.offset
    assert sorted(r.offset for r in cleaned) == sorted(expected_latest.values())
    # the active segment is untouched: all its records are still there
    assert [r for r in after if r.offset >= active_base] == [
        r for r in before if r.offset >= active_base
    ]
    assert latest(after) == latest(before)
    assert log.log_end_offset == leo
    assert result.next_dirty_offset == active_base
    assert result.first_dirty_offset == 0
    assert result.stats.records_removed == len(before) - len(after)
    assert 0 < result.segments_written <= result.segments_replaced


def test_active_segment_bytes_and_object_untouched(log: PartitionLog) -> None:
    fill(log, 30)
    active = log.active_segment
    data = active.log_path.read_bytes()
    clean_log(log, now_ms=T0)
    assert log.active_segment is active
    assert active.log_path.read_bytes() == data


def test_only_active_segment_is_a_noop(log: PartitionLog) -> None:
    append(log, [(b"a", b"1"), (b"a", b"2")])
    files = sorted(os.listdir(log.dir))
    result = clean_log(log, now_ms=T0)
    assert result.segments_replaced == 0 and result.next_dirty_offset == 0
    assert sorted(os.listdir(log.dir)) == files
    assert len(records(log)) == 2


def test_reopen_after_cleaning_gives_same_contents(tmp_path: Path) -> None:
    lg = open_log(tmp_path / "p")
    fill(lg, 40)
    clean_log(lg, now_ms=T0)
    expected = batches(lg)
    lg.flush()
    lg.close()
    # recovery_point 0: every segment is recovered (CRC-checked, indexes rebuilt)
    for recovery_point in (0, None):
        kwargs = {} if recovery_point is None else {"recovery_point": recovery_point}
        lg = PartitionLog.open(tmp_path / "p", config(), now_ms=T0, **kwargs)
        assert batches(lg) == expected
        assert not [n for n in os.listdir(tmp_path / "p") if n.endswith((".cleaned", ".swap"))]
        lg.close()


def test_segments_are_merged_up_to_segment_bytes(log: PartitionLog) -> None:
    # Many distinct keys: little is removed, but small segments merge.
    for i in range(40):
        append(log, [(f"key{i}".encode(), b"x" * 20)], ts=T0 + i)
        if i % 2:
            log.roll(now_ms=T0)  # segments of ~190 bytes: two fit in segment.bytes
    before = records(log)
    n_before = len(log.segments)
    clean_log(log, now_ms=T0 + 100)
    assert records(log) == before
    assert len(log.segments) < n_before
    for segment in log.segments[:-1]:
        assert segment.size <= log.config.segment_bytes


def test_recleaning_reaches_a_fixpoint_without_changing_contents(log: PartitionLog) -> None:
    fill(log, 40)
    result = clean_log(log, now_ms=T0)
    contents = records(log)
    for _ in range(5):  # shrunken segments may merge on the next pass, then nothing changes
        result = clean_log(log, now_ms=T0, first_dirty_offset=result.next_dirty_offset)
        assert records(log) == contents
        if result.segments_written == 0:
            break
    assert result.segments_written == 0
    files = {n: (log.dir / n).read_bytes() for n in os.listdir(log.dir) if n.endswith(".log")}
    clean_log(log, now_ms=T0, first_dirty_offset=result.next_dirty_offset)
    assert {n: (log.dir / n).read_bytes() for n in files} == files


def test_incremental_cleaning_uses_checkpoint(log: PartitionLog) -> None:
    fill(log, 30)
    first = clean_log(log, now_ms=T0)
    more = fill(log, 30, ts=T0 + 1000)
    second = clean_log(log, now_ms=T0 + 2000, first_dirty_offset=first.next_dirty_offset)
    assert second.first_dirty_offset == first.next_dirty_offset
    assert second.next_dirty_offset == log.active_segment.base_offset
    assert latest(records(log)) == latest(more)


# -- tombstones ----------------------------------------------------------------------------------


def test_tombstone_kept_until_delete_horizon_then_removed(log: PartitionLog) -> None:
    append(log, [(b"a", b"1"), (b"b", b"1")])
    append(log, [(b"a", None), (b"c", b"1")])  # tombstone for a
    log.roll(now_ms=T0)
    append(log, [(b"z", b"active")])

    now1 = T0 + 10
    r1 = clean_log(log, now_ms=now1)
    recs = records(log)
    assert [(r.key, r.value) for r in recs] == [
        (b"b", b"1"), (b"a", None), (b"c", b"1"), (b"z", b"active"),
    ]
    tomb_batch = next(h for h, rs in batches(log) if any(r.value is None for r in rs))
    assert tomb_batch.has_delete_horizon
    assert tomb_batch.base_timestamp == now1 + RETENTION
    assert r1.earliest_delete_horizon_ms == now1 + RETENTION
    assert r1.stats.horizons_set == 1
    # record timestamps survive the horizon in base_timestamp
    assert all(r.timestamp == T0 for r in recs)

    # Before the horizon: kept, horizon unchanged (not pushed back).
    r2 = clean_log(log, now_ms=now1 + RETENTION - 1, first_dirty_offset=r1.next_dirty_offset)
    assert (b"a", None) in [(r.key, r.value) for r in records(log)]
    assert r2.stats.tombstones_removed == 0
    tomb_batch = next(h for h, rs in batches(log) if any(r.value is None for r in rs))
    assert tomb_batch.base_timestamp == now1 + RETENTION

    assert needs_cleaning(log, r2.next_dirty_offset, now1 + RETENTION)
    assert not needs_cleaning(log, r2.next_dirty_offset, now1 + RETENTION - 1)
    assert earliest_delete_horizon(log) == now1 + RETENTION

    # At the horizon: removed; the key is gone entirely.
    r3 = clean_log(log, now_ms=now1 + RETENTION, first_dirty_offset=r2.next_dirty_offset)
    recs = records(log)
    assert b"a" not in [r.key for r in recs]
    assert r3.stats.tombstones_removed == 1
    assert r3.earliest_delete_horizon_ms is None
    assert earliest_delete_horizon(log) is None
    assert not needs_cleaning(log, r3.next_dirty_offset, now1 + 10 * RETENTION)
    # the batch that held the tombstone lost its horizon flag with it
    assert not any(h.has_delete_horizon for h, _ in batches(log))


def test_tombstone_in_active_segment_is_not_touched(log: PartitionLog) -> None:
    append(log, [(b"a", b"1")])
    log.roll(now_ms=T0)
    append(log, [(b"a", None)])
    clean_log(log, now_ms=T0 + 10 * RETENTION)
    assert [(r.key, r.value) for r in records(log)] == [(b"a", b"1"), (b"a", None)]
    assert not any(h.has_delete_horizon for h, _ in batches(log))


def test_superseded_tombstone_is_removed(log: PartitionLog) -> None:
    append(log, [(b"a", b"1")])
    append(log, [(b"a", None)])
    append(log, [(b"a", b"2")])
    log.roll(now_ms=T0)
    append(log, [(b"x", b"y")])
    clean_log(log, now_ms=T0)
    assert [(r.offset, r.key, r.value) for r in records(log)] == [
        (2, b"a", b"2"), (3, b"x", b"y"),
    ]


# -- compaction lag, stable offset, checkpoint handling ----------------------------------------------


def test_min_compaction_lag_respected(tmp_path: Path) -> None:
    lag = 10_000
    lg = open_log(tmp_path / "lag", config(min_compaction_lag_ms=lag))
    for i in range(30):  # timestamps T0 + i*1000, several segments
        append(lg, [(b"k", f"v{i}".encode() * 10)], ts=T0 + i * 1000)
    before = records(lg)
    now = T0 + 20_000
    _first_dirty, uncleanable = cleanable_offsets(lg, None, now)
    # first segment whose largest timestamp is newer than now - lag
    expected = next(s.base_offset for s in lg.segments if s.largest_timestamp > now - lag)
    assert uncleanable == expected < lg.active_segment.base_offset
    result = clean_log(lg, now_ms=now)
    assert result.next_dirty_offset == expected
    after = records(lg)
    assert [r for r in after if r.offset >= expected] == [r for r in before if r.offset >= expected]
    assert len([r for r in after if r.offset < expected]) == 1
    lg.close()


def test_last_stable_offset_bounds_cleaning(log: PartitionLog) -> None:
    before = fill(log, 40)
    segments = log.segments
    lso = segments[3].base_offset + 1  # inside the 4th segment
    result = clean_log(log, now_ms=T0, last_stable_offset=lso)
    assert result.first_uncleanable_offset == segments[3].base_offset
    after = records(log)
    bound = segments[3].base_offset
    assert [r for r in after if r.offset >= bound] == [r for r in before if r.offset >= bound]


def test_bad_checkpoint_resets_to_log_start(log: PartitionLog) -> None:
    fill(log, 20)
    assert cleanable_offsets(log, 10**9, T0)[0] == log.log_start_offset
    assert cleanable_offsets(log, -5, T0)[0] == log.log_start_offset
    assert cleanable_offsets(log, None, T0)[0] == log.log_start_offset


def test_offset_map_limit_cleans_in_several_passes(log: PartitionLog) -> None:
    for i in range(60):
        append(log, [(f"key{i % 15}".encode(), f"v{i}".encode() * 4)], ts=T0 + i)
    before = records(log)
    active_base = log.active_segment.base_offset
    to_clean = log_to_clean(log, now_ms=T0)
    plan = prepare_clean(to_clean, dedupe_buffer_size=5 * 105)  # ~5 keys
    result = commit_clean(log, plan)
    assert result.stats.map_entries <= 6
    assert result.first_dirty_offset < result.next_dirty_offset < active_base
    dirty = result.next_dirty_offset
    for _ in range(20):
        if dirty >= active_base:
            break
        plan = prepare_clean(log_to_clean(log, now_ms=T0, first_dirty_offset=dirty),
                             dedupe_buffer_size=5 * 105)
        dirty = commit_clean(log, plan).next_dirty_offset
    assert dirty == active_base
    assert latest(records(log)) == latest(before)
    # every record below the active segment is the latest for its key
    after = [r for r in records(log) if r.offset < active_base]
    assert len({r.key for r in after}) == len(after)


# -- batch formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "codec",
    [CompressionType.NONE, CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4,
     CompressionType.ZSTD],
)
def test_compression_codec_preserved(log: PartitionLog, codec: CompressionType) -> None:
    append(log, [(b"a", b"1" * 50), (b"b", b"1" * 50), (b"c", b"1" * 50)], compression=codec)
    append(log, [(b"d", b"1" * 50), (b"e", b"1" * 50)], compression=codec)  # all latest
    append(log, [(b"a", b"2" * 50)], compression=codec)
    untouched = batches(log)[1]
    log.roll(now_ms=T0)
    append(log, [(b"z", b"z")])
    clean_log(log, now_ms=T0)
    got = batches(log)
    assert [(r.offset, r.key) for _, rs in got for r in rs] == [
        (1, b"b"), (2, b"c"), (3, b"d"), (4, b"e"), (5, b"a"), (6, b"z"),
    ]
    for header, _ in got[:3]:
        assert header.compression == codec
    rebuilt = got[0][0]
    assert rebuilt.base_offset == 0 and rebuilt.last_offset_delta == 2
    assert rebuilt.record_count == 2
    assert got[1] == untouched  # a batch that keeps everything is copied as is


def test_producer_fields_epoch_and_last_offset_preserved(log: PartitionLog) -> None:
    append(log, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2")], producer_id=7, base_sequence=100,
           epoch=3)
    log.roll(now_ms=T0)
    append(log, [(b"x", b"x")])
    clean_log(log, now_ms=T0)
    header, recs = batches(log)[0]
    assert [(r.offset, r.key, r.value) for r in recs] == [(1, b"b", b"1"), (2, b"a", b"2")]
    assert (header.base_offset, header.last_offset_delta) == (0, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 0, 100)
    assert header.last_sequence == 102
    assert header.partition_leader_epoch == 3


def test_empty_batches_dropped_except_group_end_and_producer_last(tmp_path: Path) -> None:
    log = open_log(tmp_path / "e", config(segment_bytes=10_000))
    append(log, [(b"a", b"1")])  # 0: superseded, plain -> dropped
    append(log, [(b"b", b"1")], producer_id=5, base_sequence=0)  # 1: superseded, pid 5 last
    append(log, [(b"a", b"2"), (b"b", b"2")])  # 2-3
    append(log, [(b"c", b"1")], producer_id=6, base_sequence=0)  # 4: superseded, not pid 6 last
    append(log, [(b"c", b"2")], producer_id=6, base_sequence=1)  # 5: pid 6 last, kept
    append(log, [(b"d", b"1")])  # 6: superseded; last batch of the first segment (group)
    log.roll(now_ms=T0)
    append(log, [(b"pad", b"p" * 10_000)])  # 7: too big for the two segments to merge
    append(log, [(b"d", b"2")])  # 8, in a third segment
    log.roll(now_ms=T0)
    append(log, [(b"z", b"z")])  # 9 (active)
    seg_end = log.segments[0].next_offset
    result = clean_log(log, now_ms=T0)
    got = [(h.base_offset, h.last_offset, h.record_count, h.producer_id) for h, _ in batches(log)]
    assert got == [
        (1, 1, 0, 5),  # empty: last batch of producer 5
        (2, 3, 2, -1),
        (5, 5, 1, 6),
        (6, 6, 0, -1),  # empty: keeps the group's end offset
        (7, 7, 1, -1),
        (8, 8, 1, -1),
        (9, 9, 1, -1),
    ]
    assert log.segments[0].next_offset == seg_end
    assert result.stats.batches_removed == 2
    assert result.stats.empty_batches_kept == 2
    log.close()


def test_keyless_control_and_transactional_batches_kept(log: PartitionLog) -> None:
    append(log, [(None, b"keyless"), (b"a", b"1")])
    raw = build_batch([SimpleRecord(b"t1", key=b"a", timestamp=T0)], producer_id=9,
                      producer_epoch=0, base_sequence=0, is_transactional=True)
    log.append(raw, now_ms=T0)
    log.append(build_control_batch(ControlRecordType.COMMIT, producer_id=9, producer_epoch=0,
                                   timestamp=T0), now_ms=T0)
    append(log, [(b"a", b"2")])
    log.roll(now_ms=T0)
    append(log, [(b"z", b"z")])
    clean_log(log, now_ms=T0 + 10 * RETENTION)
    got = [(h.is_control, h.is_transactional, r.offset, r.key, r.value)
           for h, rs in batches(log) for r in rs]
    assert got[0] == (False, False, 0, None, b"keyless")
    assert (False, True, 2, b"a", b"t1") in got  # transactional data kept
    assert any(c for c, *_ in got)  # the commit marker kept
    assert (False, False, 1, b"a", b"1") not in got  # superseded by the plain a@4
    assert (False, False, 4, b"a", b"2") in got


def test_log_append_time_batches(tmp_path: Path) -> None:
    lg = open_log(tmp_path / "lat", config(message_timestamp_type="LogAppendTime"))
    append(lg, [(b"a", b"1"), (b"b", b"1")], ts=T0)
    append(lg, [(b"a", b"2")], ts=T0 + 5)
    lg.roll(now_ms=T0)
    append(lg, [(b"z", b"z")], ts=T0 + 9)
    before = {r.offset: r for r in records(lg)}
    clean_log(lg, now_ms=T0 + 100)
    hs = batches(lg)
    assert hs[0][0].is_log_append_time
    assert hs[0][0].max_timestamp == T0
    for r in records(lg):
        assert before[r.offset] == r
    lg.close()


# -- crash safety ----------------------------------------------------------------------------------


class SimulatedCrash(Exception):
    pass


def _build_crash_fixture(path: Path) -> None:
    """Tiny segments first (groups merging several), then full ones (groups of one)."""
    lg = open_log(path)
    for i in range(36):
        k = f"k{i % 6}".encode()
        append(lg, [(k, None if i % 11 == 3 else f"v{i}".encode() * 5)], ts=T0 + i)
        if i < 16:
            lg.roll(now_ms=T0)
    lg.flush()
    lg.close()


def _contents(lg: PartitionLog) -> list[tuple[int, bytes | None, bytes | None, int]]:
    return [(r.offset, r.key, r.value, r.timestamp) for r in records(lg)]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_crash_at_every_swap_step_recovers_old_or_new(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    _build_crash_fixture(origin)
    now = T0 + 100

    # The uninterrupted run: the new contents and the list of steps.
    steps: list[str] = []
    lg = open_log(_copy(origin, tmp_path / "ref"))
    old = _contents(lg)
    plan = prepare_clean(log_to_clean(lg, now_ms=now))
    group_bases = [g.base_offset for g in plan.groups if g.paths is not None]
    assert len(group_bases) >= 3, "want several groups to test partial swaps"
    assert max(len(g.refs) for g in plan.groups) >= 3, "want groups merging segments"
    commit_clean(lg, plan, _fault_hook=steps.append)
    new = _contents(lg)
    lg.close()
    assert new != old
    assert latest(records_of(new)) == latest(records_of(old))
    # Allowed states: groups swapped in offset order, so a prefix of groups is new.
    allowed = [old, new] + [
        [c for c in new if c[0] < b] + [c for c in old if c[0] >= b] for b in group_bases[1:]
    ]

    def crash_run(name: str, crash_at: int | None) -> tuple[Path, list]:
        d = _copy(origin, tmp_path / name)
        lg = open_log(d)
        plan = prepare_clean(log_to_clean(lg, now_ms=now))
        calls = 0

        def hook(step: str) -> None:
            nonlocal calls
            if calls == crash_at:
                raise SimulatedCrash(step)
            calls += 1

        if crash_at is None:  # crash after prepare: .cleaned files left behind
            plan._finish()
        else:
            with pytest.raises(SimulatedCrash):
                commit_clean(lg, plan, _fault_hook=hook)
            assert lg.offline
        lg.close()  # the process dies: no flush, no cleanup
        lg = open_log(d)
        got = _contents(lg)
        leftovers = [n for n in os.listdir(d) if n.endswith((".cleaned", ".swap"))]
        # Re-cleaning after recovery converges to the uninterrupted result.
        clean_log(lg, now_ms=now)
        again = _contents(lg)
        lg.close()
        assert not leftovers
        assert again == new
        return d, got

    seen = set()
    for crash_at in [None, *range(len(steps))]:
        _, got = crash_run(f"crash-{crash_at}", crash_at)
        assert got in allowed, f"crash at {crash_at}: {steps[crash_at] if crash_at else 'prep'}"
        assert latest(records_of(got)) == latest(records_of(old))
        seen.add(allowed.index(got))
    # both sides of the commit points, and mixed (new prefix) states, were exercised
    assert {0, 1} < seen and len(seen) >= 3


def records_of(rows: list[tuple[int, bytes | None, bytes | None, int]]) -> list[Record]:
    return [Record(o, ts, k, v) for o, k, v, ts in rows]


# -- concurrency and aborts ------------------------------------------------------------------------


def test_prepare_in_worker_thread_while_owner_appends(log: PartitionLog) -> None:
    fill(log, 40)
    to_clean = log_to_clean(log, now_ms=T0)
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.update(plan=prepare_clean(to_clean)))
    worker.start()
    more = [append(log, [(b"k1", f"new{i}".encode())], ts=T0 + 500 + i) for i in range(30)]
    worker.join()
    result = commit_clean(log, box["plan"])  # type: ignore[arg-type]
    assert isinstance(result, CleanResult)
    recs = records(log)
    assert latest(recs)[b"k1"] == b"new29"
    assert [r.offset for r in recs if r.value and r.value.startswith(b"new")] == more


def test_commit_aborts_if_cleaned_range_truncated(log: PartitionLog) -> None:
    fill(log, 40)
    plan = prepare_clean(log_to_clean(log, now_ms=T0))
    cut = log.segments[1].base_offset + 1
    log.truncate_to(cut)
    expected = records(log)
    with pytest.raises(CleanAbortedError):
        commit_clean(log, plan)
    assert records(log) == expected
    assert not [n for n in os.listdir(log.dir) if n.endswith((".cleaned", ".swap"))]
    clean_log(log, now_ms=T0)  # the lease was released


def test_commit_survives_retention_of_whole_leading_groups(log: PartitionLog) -> None:
    fill(log, 60)
    plan = prepare_clean(log_to_clean(log, now_ms=T0))
    assert len(plan.groups) >= 2
    log.maybe_increment_log_start_offset(plan.groups[1].base_offset)
    commit_clean(log, plan)
    assert log.segments[0].base_offset == plan.groups[1].base_offset
    assert not [n for n in os.listdir(log.dir) if n.endswith((".cleaned", ".swap"))]
    after = [r for r in records(log) if r.offset < log.active_segment.base_offset]
    assert len({r.key for r in after}) == len(after)


def test_commit_aborts_if_retention_splits_a_group(log: PartitionLog) -> None:
    for i in range(30):
        append(log, [(f"k{i % 3}".encode(), b"v")], ts=T0 + i)
        log.roll(now_ms=T0)  # tiny segments: groups hold several
    plan = prepare_clean(log_to_clean(log, now_ms=T0))
    group = next(g for g in plan.groups if len(g.refs) > 1)
    log.maybe_increment_log_start_offset(group.refs[1].base_offset)
    with pytest.raises(CleanAbortedError):
        commit_clean(log, plan)
    assert not [n for n in os.listdir(log.dir) if n.endswith((".cleaned", ".swap"))]


def test_one_cleaning_per_log_at_a_time(log: PartitionLog) -> None:
    fill(log, 20)
    to_clean = log_to_clean(log, now_ms=T0)
    with pytest.raises(CleanAbortedError):
        log_to_clean(log, now_ms=T0)
    to_clean.close()
    log_to_clean(log, now_ms=T0).close()


def test_rejects_non_compacted_log(tmp_path: Path) -> None:
    lg = open_log(tmp_path / "d", config(cleanup_policy="delete"))
    with pytest.raises(ValueError):
        clean_log(lg, now_ms=T0)
    assert not needs_cleaning(lg, None, T0)
    lg.close()


# -- dirty ratio / needs cleaning ---------------------------------------------------------------


def test_dirty_ratio_and_needs_cleaning(log: PartitionLog) -> None:
    assert dirty_ratio(log, None, now_ms=T0) == 0.0
    assert not needs_cleaning(log, None, T0)
    fill(log, 40)
    assert dirty_ratio(log, None, now_ms=T0) == 1.0
    assert needs_cleaning(log, None, T0)
    result = clean_log(log, now_ms=T0)
    assert dirty_ratio(log, result.next_dirty_offset, now_ms=T0) == 0.0
    assert not needs_cleaning(log, result.next_dirty_offset, T0,
                              earliest_delete_horizon_ms=result.earliest_delete_horizon_ms)
    fill(log, 6, ts=T0 + 50)
    ratio = dirty_ratio(log, result.next_dirty_offset, now_ms=T0)
    assert 0.0 < ratio < 1.0
    cfg = log.config
    log.update_config(cfg.replace(min_cleanable_dirty_ratio=ratio))
    assert needs_cleaning(log, result.next_dirty_offset, T0)
    log.update_config(cfg.replace(min_cleanable_dirty_ratio=min(1.0, ratio + 0.01)))
    assert not needs_cleaning(log, result.next_dirty_offset, T0)
    # max.compaction.lag.ms forces cleaning of old dirty data regardless of the ratio
    log.update_config(cfg.replace(min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=1000))
    assert needs_cleaning(log, result.next_dirty_offset, T0 + 5000)
    assert not needs_cleaning(log, result.next_dirty_offset, T0 + 500)


# -- throttler ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("work_s", [0.0, 0.001, 0.05])
def test_throttler_limits_rate(work_s: float) -> None:
    clock = FakeClock()
    t = Throttler(1_000_000, clock=clock, sleep=clock.sleep)
    for _ in range(200):
        clock.now += work_s  # time the "I/O" itself takes
        t.maybe_throttle(50_000)  # 10 MB in total
    natural = 200 * work_s
    expected = max(10.0, natural)
    # Never faster than the rate (up to one check interval of burst), never needlessly slow.
    assert expected - 0.11 <= clock.now <= expected + 0.11
    assert t.total_bytes == 10_000_000


def test_throttler_does_not_sleep_below_rate_or_bank_idle_time() -> None:
    clock = FakeClock()
    t = Throttler(1000, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        clock.now += 1.0
        t.maybe_throttle(500)  # half the rate
    assert clock.sleeps == []
    clock.now += 3600  # idle for an hour: no credit for a burst afterwards
    t.maybe_throttle(1)
    for _ in range(10):
        t.maybe_throttle(1000)
    assert sum(clock.sleeps) >= 9.0


def test_throttler_unlimited_and_validation() -> None:
    clock = FakeClock()
    t = Throttler(float("inf"), clock=clock, sleep=clock.sleep)
    t.maybe_throttle(10**12)
    assert clock.sleeps == []
    with pytest.raises(ValueError):
        Throttler(0)


def test_cleaning_with_throttler_counts_io(log: PartitionLog) -> None:
    fill(log, 40)
    clock = FakeClock()
    t = Throttler(100_000, clock=clock, sleep=clock.sleep)
    result = clean_log(log, now_ms=T0, io_budget=t, io_buffer_size=256)
    assert t.total_bytes == result.stats.bytes_read + result.stats.bytes_written
    assert clock.now == pytest.approx(t.total_bytes / 100_000, abs=0.11)
    assert DAY > 0
