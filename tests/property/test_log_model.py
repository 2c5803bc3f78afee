"""PartitionLog against a list-of-batches model (hypothesis RuleBasedStateMachine).

The model holds every batch physically in the log as (base offset, last offset, bytes), plus the
log start and end offsets and the last checkpointed recovery point. Segment boundaries are read
from the log (they are an implementation choice), everything else is predicted by the model.
"""

from __future__ import annotations

import shutil
import tempfile
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from storage.errors import InvalidRecordError, OffsetOutOfRangeError
from storage.log import PartitionLog
from storage.log_config import LogConfig
from tests.helpers_batches import make_batch, with_base_offset, with_leader_epoch

CONFIG = LogConfig(segment_bytes=700, segment_ms=400, index_interval_bytes=90, retention_ms=-1)

batch_spec = st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=4)


@dataclass
class ModelBatch:
    base: int
    last: int
    data: bytes
    timestamps: list[int]


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="logmodel-"))
        self.dir = self.tmp / "topic-0"
        self.batches: list[ModelBatch] = []
        self.lso = 0
        self.leo = 0
        self.checkpoint_rp = 0
        self.seed = 0
        self.now = 1_000_000
        self.log = PartitionLog.open(self.dir, CONFIG, now_ms=self.now)

    def teardown(self) -> None:
        try:
            self.log.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        assert self.log.log_end_offset == 0

    # -- helpers --------------------------------------------------------------------------

    def _new_batch(self, sizes: list[int]) -> bytes:
        self.seed += 1
        return make_batch(sizes, seed=self.seed, base_timestamp=self.now)

    def _visible(self) -> list[ModelBatch]:
        return [b for b in self.batches if b.last >= self.lso]

    # -- rules ----------------------------------------------------------------------------

    @rule(specs=st.lists(batch_spec, min_size=1, max_size=3),
          epoch=st.none() | st.integers(min_value=0, max_value=5))
    def append(self, specs: list[list[int]], epoch: int | None) -> None:
        raw = [self._new_batch(s) for s in specs]
        self.now += 7
        info = self.log.append(b"".join(raw), leader_epoch=epoch, now_ms=self.now)
        assert info.first_offset == self.leo
        offset = self.leo
        for batch, sizes in zip(raw, specs):
            data = with_base_offset(batch, offset)
            if epoch is not None:
                data = with_leader_epoch(data, epoch)
            stamps = [self.now - 7 + j for j in range(len(sizes))]
            self.batches.append(ModelBatch(offset, offset + len(sizes) - 1, data, stamps))
            offset += len(sizes)
        assert info.last_offset == offset - 1
        self.leo = offset

    @rule(spec=batch_spec, gap=st.integers(min_value=-1, max_value=0))
    def follower_append(self, spec: list[int], gap: int) -> None:
        batch = with_base_offset(self._new_batch(spec), self.leo + gap)
        if gap < 0 and self.leo + gap >= 0:
            try:
                self.log.append(batch, assign_offsets=False)
            except InvalidRecordError:
                return
            raise AssertionError("append below the log end offset was accepted")
        if gap < 0:
            return
        self.log.append(batch, assign_offsets=False, now_ms=self.now)
        stamps = [self.now + j for j in range(len(spec))]
        self.batches.append(ModelBatch(self.leo, self.leo + len(spec) - 1, batch, stamps))
        self.leo += len(spec)

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=self.lso, max_value=self.leo), label="offset")
        max_bytes = data.draw(st.integers(min_value=0, max_value=1500), label="max_bytes")
        max_offset = data.draw(
            st.none() | st.integers(min_value=offset, max_value=self.leo), label="max_offset"
        )
        min_one = data.draw(st.booleans(), label="min_one")
        sl = self.log.read(offset, max_bytes, max_offset=max_offset, min_one_batch=min_one)
        expected = self._expected_read(offset, max_bytes, max_offset, min_one)
        if expected is None:
            assert sl is None, (offset, max_bytes, max_offset, min_one, sl)
            return
        assert sl is not None, (offset, max_bytes, max_offset, min_one)
        with sl:
            got = sl.read_bytes()
        assert sl.first_offset == expected[0].base
        assert got == b"".join(b.data for b in expected)

    def _expected_read(
        self, offset: int, max_bytes: int, max_offset: int | None, min_one: bool
    ) -> list[ModelBatch] | None:
        if offset >= self.leo or (max_offset is not None and offset >= max_offset):
            return None
        start = next(i for i, b in enumerate(self.batches) if b.last >= offset)
        bases = [s.base_offset for s in self.log.segments]
        seg = bisect_right(bases, self.batches[start].base) - 1
        seg_end = bases[seg + 1] if seg + 1 < len(bases) else None
        candidates = []
        for b in self.batches[start:]:
            if seg_end is not None and b.base >= seg_end:
                break
            if max_offset is not None and b.last >= max_offset:
                break
            candidates.append(b)
        if not candidates:
            return None
        out: list[ModelBatch] = []
        total = 0
        for b in candidates:
            if total + len(b.data) > max_bytes:
                break
            out.append(b)
            total += len(b.data)
        if not out:
            return candidates[:1] if min_one else None
        return out

    @rule()
    def roll(self) -> None:
        before = len(self.log.segments)
        empty = self.log.active_segment.size == 0
        self.log.roll(now_ms=self.now)
        assert len(self.log.segments) == before + (0 if empty else 1)
        assert self.log.recovery_point == self.leo
        assert self.log.active_segment.base_offset == self.leo

    @rule(data=st.data())
    def truncate_to(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=0, max_value=self.leo + 1), label="truncate")
        first_base = self.log.segments[0].base_offset
        changed = self.log.truncate_to(offset)
        assert changed == (offset < self.leo)
        if offset >= self.leo:
            return
        if offset <= first_base:
            self.batches = []
            self.lso = self.leo = offset
            self.checkpoint_rp = min(self.checkpoint_rp, offset)
            return
        cut = next(i for i, b in enumerate(self.batches) if b.last >= offset)
        self.leo = self.batches[cut].base
        del self.batches[cut:]
        self.lso = min(self.lso, self.leo)
        self.checkpoint_rp = min(self.checkpoint_rp, self.leo)

    @rule(data=st.data())
    def increment_log_start(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=0, max_value=self.leo), label="log_start")
        moved = self.log.maybe_increment_log_start_offset(offset)
        assert moved == (offset > self.lso)
        self.lso = max(self.lso, offset)
        # Only segments wholly below the log start went, never the active one.
        segments = self.log.segments
        assert segments[0].base_offset <= self.lso
        if moved and len(segments) > 1:
            assert segments[1].base_offset > self.lso

    @rule(retention=st.integers(min_value=0, max_value=3000))
    def retention_by_size(self, retention: int) -> None:
        before = self.log.segments
        # Segments wholly below the log start go first, then Kafka's size rule.
        while len(before) > 1 and before[1].base_offset <= self.lso:
            before = before[1:]
        breached = len(self.log.segments) - len(before)
        diff = sum(s.size for s in before) - retention
        expected = breached
        for s in before[:-1]:
            if diff - s.size < 0:
                break
            diff -= s.size
            expected += 1
        self.log.update_config(CONFIG.replace(retention_bytes=retention))
        try:
            deleted = self.log.delete_retention_segments(now_ms=self.now)
        finally:
            self.log.update_config(CONFIG)
        assert deleted == expected
        self.lso = max(self.lso, self.log.segments[0].base_offset)

    @rule(ms=st.integers(min_value=1, max_value=1000))
    def advance_time(self, ms: int) -> None:
        self.now += ms  # lets segment.ms rolls happen on the next append

    @rule(data=st.data())
    def offset_for_timestamp(self, data: st.DataObject) -> None:
        target = data.draw(
            st.integers(min_value=999_990, max_value=self.now + 10), label="timestamp"
        )
        expected = None
        for b in self._visible():
            for j, ts in enumerate(b.timestamps):
                if b.base + j >= self.lso and ts >= target:
                    expected = (b.base + j, ts)
                    break
            if expected is not None:
                break
        assert self.log.offset_for_timestamp(target) == expected, target

    def _segment_max_timestamps(self) -> list[int]:
        bases = [s.base_offset for s in self.log.segments]
        out = [-1] * len(bases)
        for b in self.batches:
            i = bisect_right(bases, b.base) - 1
            if i >= 0:
                out[i] = max(out[i], *b.timestamps)
        return out

    @rule(retention=st.integers(min_value=0, max_value=2000))
    def retention_by_time(self, retention: int) -> None:
        segments = self.log.segments
        max_ts = self._segment_max_timestamps()
        for s, ts in zip(segments, max_ts):
            if s.size:
                assert s.max_timestamp == ts, (s, ts)
        i = 0
        while i < len(segments) - 1 and segments[i + 1].base_offset <= self.lso:
            i += 1
        expected = i
        while i < len(segments):
            if i == len(segments) - 1 and segments[i].size == 0:
                break
            if not self.now - max_ts[i] > retention:
                break
            expected += 1
            i += 1
        self.log.update_config(CONFIG.replace(retention_ms=retention))
        try:
            deleted = self.log.delete_retention_segments(now_ms=self.now)
        finally:
            self.log.update_config(CONFIG)
        assert deleted == expected
        self.lso = max(self.lso, self.log.segments[0].base_offset)
        if expected == len(segments):
            assert self.lso == self.leo and self.log.active_segment.size == 0

    @rule()
    def flush(self) -> None:
        self.log.flush(now_ms=self.now)
        assert self.log.recovery_point == self.leo
        self.checkpoint_rp = self.leo

    @rule(clean=st.booleans())
    def close_and_reopen(self, clean: bool) -> None:
        if clean:
            self.log.flush(now_ms=self.now)
            self.checkpoint_rp = self.leo
        self.log.close()
        self.log = PartitionLog.open(
            self.dir, CONFIG, recovery_point=self.checkpoint_rp, log_start_offset=self.lso,
            now_ms=self.now,
        )
        assert self.log.recovery_point == self.leo

    @precondition(lambda self: self.leo > 0)
    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        offset = data.draw(
            st.integers(min_value=self.leo + 1, max_value=self.leo + 5)
            | st.integers(min_value=-3, max_value=self.lso - 1)
        )
        try:
            self.log.read(offset, 100)
        except OffsetOutOfRangeError:
            return
        raise AssertionError(f"read at {offset} outside [{self.lso}, {self.leo}] succeeded")

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def offsets_match(self) -> None:
        assert self.log.log_end_offset == self.leo
        assert self.log.log_start_offset == self.lso

    @invariant()
    def contents_match(self) -> None:
        visible = self._visible()
        got = self.log.read_batches(self.lso) if self.lso < self.leo else b""
        assert got == b"".join(b.data for b in visible)
        assert self.log.size_bytes >= len(got)


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
