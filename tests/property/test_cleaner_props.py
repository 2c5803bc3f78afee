"""Hypothesis: log compaction against a model, on real files.

Random keyed records (small key space, tombstones, a few keyless records, idempotent producers,
mixed codecs) are appended over many small segments, then the log is cleaned, more is appended,
and it is cleaned again (with time moving past the delete horizon or not, and sometimes a tiny
offset map so a cleaning covers only part of the dirty section). After every cleaning:

- every record still in the log is byte-for-byte the record originally written at its offset,
  and batches keep their original offset ranges (base offset, last offset delta);
- records at or after the cleaning's ``end_offset`` are all still there;
- every keyed record below ``end_offset`` is the latest of its key below ``end_offset``;
- the visible state (key -> latest value, deleted keys absent) is unchanged;
- a tombstone disappears only when the cleaning ran at or after the delete horizon a previous
  cleaning gave it; a kept tombstone carries horizon ``first-cleaning time + delete.retention.ms``;
- keyless records and each producer's last batch are kept; the log end offset is unchanged;
- reopening the log (full recovery) gives the same batches.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storage.cleaner import CleanResult, commit_clean, log_to_clean, prepare_clean
from storage.compression import CompressionType
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.record_batch import BatchHeader
from storage.records import Record, SimpleRecord, build_batch, decode_batch

T0 = 1_700_000_000_000
RETENTION = 1000
KEYS = [b"a", b"b", b"c", b"d", b"e"]

_value_st = st.tuples(st.sampled_from(KEYS), st.binary(min_size=1, max_size=12))
record_st = st.one_of(
    _value_st,
    _value_st,
    _value_st,
    st.tuples(st.sampled_from(KEYS), st.none()),  # tombstone
    st.tuples(st.none(), st.binary(min_size=1, max_size=4)) | _value_st,  # keyless: rare
)

batch_st = st.tuples(
    st.lists(record_st, min_size=1, max_size=4),
    st.sampled_from([CompressionType.NONE] * 3 + [CompressionType.GZIP, CompressionType.LZ4,
                                                   CompressionType.ZSTD, CompressionType.SNAPPY]),
    st.sampled_from([-1, -1, 1, 2]),  # producer id
    st.integers(0, 9),  # 0 = roll after this batch
)


def _append(log: PartitionLog, batches: list, ts: int, seqs: dict[int, int]) -> int:
    for recs, codec, pid, roll in batches:
        raw = build_batch(
            [SimpleRecord(v, key=k, timestamp=ts) for k, v in recs],
            compression=codec,
            producer_id=pid,
            producer_epoch=0 if pid >= 0 else -1,
            base_sequence=seqs.get(pid, 0) if pid >= 0 else -1,
        )
        if pid >= 0:
            seqs[pid] = seqs.get(pid, 0) + len(recs)
        log.append(raw, now_ms=ts)
        ts += 1
        if roll == 0:
            log.roll(now_ms=ts)
    return ts


def _read(log: PartitionLog) -> list[tuple[BatchHeader, list[Record]]]:
    data = log.read_batches(log.log_start_offset)
    out = []
    pos = 0
    while pos < len(data):
        header, records = decode_batch(data, pos)  # validates the CRC
        out.append((header, records))
        pos += header.size
    return out


def _visible(records: list[Record]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes | None] = {}
    for r in records:
        if r.key is not None:
            state[r.key] = r.value
    return {k: v for k, v in state.items() if v is not None}


def _check_cleaning(
    pre: list[tuple[BatchHeader, list[Record]]],
    post: list[tuple[BatchHeader, list[Record]]],
    original: dict[int, Record],
    result: CleanResult,
    now: int,
) -> None:
    end = result.end_offset
    pre_records = [r for _, rs in pre for r in rs]
    post_records = [r for _, rs in post for r in rs]
    pre_ranges = {h.base_offset: h.last_offset for h, _ in pre}
    pre_batch_of = {r.offset: h for h, rs in pre for r in rs}
    post_batch_of = {r.offset: h for h, rs in post for r in rs}

    # Contents and offsets preserved, batches keep their offset ranges.
    offsets = [r.offset for r in post_records]
    assert offsets == sorted(set(offsets))
    for r in post_records:
        assert original[r.offset] == r
    for h, _ in post:
        assert pre_ranges.get(h.base_offset) == h.last_offset
    # Nothing at or after end_offset is touched.
    assert [r for r in post_records if r.offset >= end] == [
        r for r in pre_records if r.offset >= end
    ]
    # Below end_offset: only the latest record of each key.
    last_below_end: dict[bytes, int] = {}
    for r in pre_records:
        if r.key is not None and r.offset < end:
            last_below_end[r.key] = r.offset
    for r in post_records:
        if r.key is not None and r.offset < end:
            assert last_below_end[r.key] == r.offset, r
    # The visible state never changes; keyless records stay.
    assert _visible(post_records) == _visible(pre_records)
    assert [r for r in post_records if r.key is None] == [r for r in pre_records if r.key is None]
    # Tombstones: removed exactly when a previously set horizon has passed.
    kept = {r.offset for r in post_records}
    for r in pre_records:
        if r.key is None or r.value is not None or r.offset >= end:
            continue
        if last_below_end[r.key] != r.offset:
            assert r.offset not in kept  # superseded
            continue
        before = pre_batch_of[r.offset]
        if r.offset in kept:
            after = post_batch_of[r.offset]
            assert after.has_delete_horizon
            if before.has_delete_horizon:
                assert after.base_timestamp == before.base_timestamp > now
            else:
                assert after.base_timestamp == now + RETENTION
        else:
            assert before.has_delete_horizon and now >= before.base_timestamp
    # Each producer's last batch survives (possibly emptied).
    last_of_producer: dict[int, int] = {}
    for h, _ in pre:
        if h.producer_id >= 0:
            last_of_producer[h.producer_id] = h.base_offset
    post_bases = {h.base_offset: h for h, _ in post}
    for pid, base in last_of_producer.items():
        assert base in post_bases and post_bases[base].producer_id == pid


def _clean(log: PartitionLog, now: int, first_dirty: int | None, dedupe: int | None) -> CleanResult:
    plan = prepare_clean(
        log_to_clean(log, now_ms=now, first_dirty_offset=first_dirty),
        **({} if dedupe is None else {"dedupe_buffer_size": dedupe}),
    )
    return commit_clean(log, plan)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    first=st.lists(batch_st, min_size=3, max_size=30),
    second=st.lists(batch_st, max_size=15),
    segment_bytes=st.sampled_from([150, 300, 600]),
    dedupe=st.sampled_from([None, None, 250, 600]),
    gap=st.sampled_from([0, RETENTION - 1, RETENTION, 5 * RETENTION]),
    clean_twice_first=st.booleans(),
)
def test_cleaning_matches_model(
    first: list,
    second: list,
    segment_bytes: int,
    dedupe: int | None,
    gap: int,
    clean_twice_first: bool,
) -> None:
    config = LogConfig(
        cleanup_policy="compact",
        segment_bytes=segment_bytes,
        index_interval_bytes=64,
        delete_retention_ms=RETENTION,
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "p"
        log = PartitionLog.open(directory, config, now_ms=T0)
        try:
            seqs: dict[int, int] = {}
            ts = _append(log, first, T0, seqs)
            original = {r.offset: r for _, rs in _read(log) for r in rs}
            now = T0 + 10_000
            first_dirty: int | None = None
            schedule = [(now, False)] + ([(now, False)] if clean_twice_first else [])
            schedule += [(now + gap, True)]
            for when, append_before in schedule:
                if append_before:
                    ts = _append(log, second, ts, seqs)
                    original = {r.offset: r for _, rs in _read(log) for r in rs} | original
                pre = _read(log)
                leo = log.log_end_offset
                result = _clean(log, when, first_dirty, dedupe)
                post = _read(log)
                assert log.log_end_offset == leo
                _check_cleaning(pre, post, original, result, when)
                stats = result.stats
                event(f"tombstones removed: {stats.tombstones_removed > 0}")
                event(f"partial map: {result.end_offset < result.first_uncleanable_offset}")
                event(f"empty batches kept: {stats.empty_batches_kept > 0}")
                event(f"horizons set: {stats.horizons_set > 0}")
                assert result.next_dirty_offset <= log.active_segment.base_offset
                first_dirty = result.next_dirty_offset
            expected = _read(log)
            log.flush()
        finally:
            log.close()
        reopened = PartitionLog.open(directory, config, now_ms=T0, recovery_point=0)
        try:
            assert _read(reopened) == expected
        finally:
            reopened.close()
