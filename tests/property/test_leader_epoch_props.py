"""LeaderEpochFileCache against a list model, under random assign / truncate / reopen sequences."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storage.leader_epoch import (
    LEADER_EPOCH_CHECKPOINT,
    UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
    EpochEntry,
    LeaderEpochFileCache,
)

epochs = st.integers(min_value=0, max_value=12)
offsets = st.integers(min_value=0, max_value=60)
# Query arguments may be below, inside or beyond the stored range, including UNDEFINED (-1).
query_epochs = st.integers(min_value=-2, max_value=14)
query_offsets = st.integers(min_value=-1, max_value=65)


# The model is written differently from the implementation on purpose: filters over the whole
# list (Kafka 2.x's formulation) rather than popping from the ends (Kafka 3.x's).


def model_assign(model: list[EpochEntry], epoch: int, start: int) -> list[EpochEntry]:
    if model and model[-1].epoch == epoch and start >= model[-1].start_offset:
        return model
    kept = [e for e in model if e.epoch < epoch and e.start_offset < start]
    return [*kept, EpochEntry(epoch, start)]


def model_truncate_from_end(model: list[EpochEntry], end: int) -> list[EpochEntry]:
    if end < 0:
        return model
    return [e for e in model if e.start_offset < end]


def model_truncate_from_start(model: list[EpochEntry], start: int) -> list[EpochEntry]:
    before = [e for e in model if e.start_offset <= start]
    if not before:
        return model
    return [EpochEntry(before[-1].epoch, start)] + [e for e in model if e.start_offset > start]


def model_end_offset_for(model: list[EpochEntry], epoch: int, leo: int) -> tuple[int, int]:
    if epoch == UNDEFINED_EPOCH:
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
    if model and model[-1].epoch == epoch:
        return epoch, leo
    higher = [e for e in model if e.epoch > epoch]
    lower = [e for e in model if e.epoch <= epoch]
    if not higher:
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
    if not lower:
        return epoch, higher[0].start_offset
    return lower[-1].epoch, higher[0].start_offset


def model_epoch_for_offset(model: list[EpochEntry], offset: int) -> int | None:
    at_or_before = [e for e in model if e.start_offset <= offset]
    return at_or_before[-1].epoch if at_or_before else None


class LeaderEpochMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="leader-epoch-"))
        self.path = self.dir / LEADER_EPOCH_CHECKPOINT
        self.cache = LeaderEpochFileCache(self.path)
        self.model: list[EpochEntry] = []

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(epoch=epochs, start=offsets)
    def assign(self, epoch: int, start: int) -> None:
        self.cache.assign(epoch, start)
        self.model = model_assign(self.model, epoch, start)

    @rule(data=st.data())
    def assign_next_epoch(self, data: st.DataObject) -> None:
        # The common path: a new leader epoch at or after the latest start offset.
        latest = self.model[-1] if self.model else EpochEntry(-1, 0)
        epoch = data.draw(st.integers(latest.epoch + 1, latest.epoch + 3))
        start = data.draw(st.integers(latest.start_offset, latest.start_offset + 10))
        self.cache.assign(epoch, start)
        self.model = model_assign(self.model, epoch, start)

    @rule(end=query_offsets)
    def truncate_from_end(self, end: int) -> None:
        self.cache.truncate_from_end(end)
        self.model = model_truncate_from_end(self.model, end)

    @rule(start=query_offsets)
    def truncate_from_start(self, start: int) -> None:
        self.cache.truncate_from_start(start)
        self.model = model_truncate_from_start(self.model, start)

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model = []

    @rule()
    def reopen(self) -> None:
        self.cache = LeaderEpochFileCache(self.path)

    @rule(epoch=query_epochs, extra=st.integers(0, 5))
    def end_offset_for(self, epoch: int, extra: int) -> None:
        leo = (self.model[-1].start_offset if self.model else 0) + extra
        assert self.cache.end_offset_for(epoch, leo) == model_end_offset_for(self.model, epoch, leo)

    @rule(offset=query_offsets)
    def epoch_for_offset(self, offset: int) -> None:
        assert self.cache.epoch_for_offset(offset) == model_epoch_for_offset(self.model, offset)

    @invariant()
    def matches_model(self) -> None:
        assert self.cache.entries == self.model
        assert self.cache.latest_epoch == (self.model[-1].epoch if self.model else None)
        assert self.cache.earliest_entry == (self.model[0] if self.model else None)

    @invariant()
    def strictly_increasing(self) -> None:
        entries = self.cache.entries
        for a, b in itertools.pairwise(entries):
            assert a.epoch < b.epoch and a.start_offset < b.start_offset, entries

    @invariant()
    def reload_equals_memory(self) -> None:
        if self.path.exists():
            assert LeaderEpochFileCache(self.path).entries == self.cache.entries
        else:
            assert self.cache.entries == []


LeaderEpochMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
TestLeaderEpochMachine = LeaderEpochMachine.TestCase
