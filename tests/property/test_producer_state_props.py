"""ProducerStateManager against a model derived from the log itself.

The model keeps only the list of appended batch headers (the partition's log) and answers every
question by scanning it: a producer's epoch is the epoch of its last batch, its cached batches are
the last five of its trailing run in that epoch. Random producers send in-order batches, retries
of recent and not-so-recent batches, gaps, stale and bumped epochs, and sequences near the int32
wrap; meanwhile the partition takes snapshots, restarts, truncates and has snapshots corrupted or
lost. After every step the manager's state must equal the model's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storage.error_codes import ErrorCode
from storage.producer_entry import NUM_BATCHES_TO_RETAIN, BatchMetadata
from storage.producer_state import ProducerStateManager
from storage.record_batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader

INT32_MAX = 2**31 - 1
NOW = 1_000_000
PIDS = st.integers(min_value=0, max_value=2)
ACTIONS = st.sampled_from(
    ["next", "next", "next", "retry", "retry", "gap", "old_epoch", "bump0", "bumpN", "random"]
)
INTERESTING_SEQS = st.sampled_from([0, 1, 7, INT32_MAX - 2, INT32_MAX - 1, INT32_MAX])


def make_header(pid: int, epoch: int, seq: int, count: int) -> BatchHeader:
    return BatchHeader(
        0, HEADER_SIZE - LOG_OVERHEAD, -1, 2, 0, 0, count - 1, NOW, NOW, pid, epoch, seq, count
    )


# -- the model -------------------------------------------------------------------------------------


def trailing_run(log: list[BatchHeader], pid: int) -> list[BatchHeader]:
    """The producer's batches since its last epoch change, oldest first."""
    mine = [h for h in log if h.producer_id == pid]
    if not mine:
        return []
    epoch = mine[-1].producer_epoch
    run: list[BatchHeader] = []
    for h in reversed(mine):
        if h.producer_epoch != epoch:
            break
        run.append(h)
    run.reverse()
    return run


def model_state(log: list[BatchHeader]) -> dict[int, tuple[int, list[BatchMetadata]]]:
    out = {}
    for pid in {h.producer_id for h in log if h.producer_id >= 0}:
        run = trailing_run(log, pid)
        out[pid] = (
            run[-1].producer_epoch,
            [
                BatchMetadata(h.base_sequence, h.last_sequence, h.base_offset, h.last_offset,
                              h.max_timestamp)
                for h in run[-NUM_BATCHES_TO_RETAIN:]
            ],
        )
    return out


def model_verdict(log: list[BatchHeader], h: BatchHeader) -> tuple[ErrorCode, int, int] | None:
    """(error, first, last) as the produce response would carry them; None: append it."""
    run = trailing_run(log, h.producer_id)
    if not run:
        return None  # unknown producer: any epoch, any sequence
    epoch = run[-1].producer_epoch
    if h.producer_epoch == epoch:
        for old in run[-NUM_BATCHES_TO_RETAIN:]:
            if (old.base_sequence, old.last_sequence) == (h.base_sequence, h.last_sequence):
                return ErrorCode.NONE, old.base_offset, old.last_offset
    if h.producer_epoch < epoch:
        return ErrorCode.INVALID_PRODUCER_EPOCH, -1, -1
    if h.producer_epoch > epoch:
        return None if h.base_sequence == 0 else (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1)
    if h.base_sequence == (run[-1].last_sequence + 1) % 2**31:
        return None
    return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1


# -- the machine -----------------------------------------------------------------------------------


class ProducerStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="psm-"))
        self.psm = ProducerStateManager(self.dir)
        self.log: list[BatchHeader] = []
        self.next_offset = 0

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(pid=PIDS, action=ACTIONS, count=st.integers(1, 3), age=st.integers(0, 7),
          seq=INTERESTING_SEQS, epoch=st.integers(0, 2), skip=st.integers(1, 4))
    def produce(
        self, pid: int, action: str, count: int, age: int, seq: int, epoch: int, skip: int
    ) -> None:
        run = trailing_run(self.log, pid)
        if not run:
            header = make_header(pid, epoch, seq, count)
        else:
            cur = run[-1].producer_epoch
            nxt = (run[-1].last_sequence + 1) % 2**31
            if action == "retry":
                old = run[max(len(run) - 1 - age, 0)]
                header = old._replace(base_offset=0)
            elif action == "gap":
                header = make_header(pid, cur, (nxt + skip) % 2**31, count)
            elif action == "old_epoch" and cur > 0:
                header = make_header(pid, cur - 1, nxt, count)
            elif action == "bump0":
                header = make_header(pid, cur + 1, 0, count)
            elif action == "bumpN":
                header = make_header(pid, cur + 1, skip, count)
            elif action == "random":
                header = make_header(pid, cur + epoch - 1 if cur > 0 else epoch, seq, count)
            else:
                header = make_header(pid, cur, nxt, count)

        expected = model_verdict(self.log, header)
        result = self.psm.check(header)
        if result.duplicate is not None:
            got = (result.error, result.duplicate.first_offset, result.duplicate.last_offset)
        elif not result.ok:
            got = (result.error, -1, -1)
        else:
            got = None
        assert got == expected, (header, got, expected)
        event("append" if got is None else "duplicate" if got[1] >= 0 else got[0].name)
        assert result == self.psm.check_batches([header])
        if got is None:
            first = self.next_offset
            self.log.append(header._replace(base_offset=first))
            self.psm.on_append([header], first_offset=first)
            self.next_offset = first + count

    @rule()
    def plain_batch(self) -> None:
        header = make_header(-1, -1, -1, 2)
        assert self.psm.check(header).ok
        self.psm.on_append([header], first_offset=self.next_offset)
        self.log.append(header._replace(base_offset=self.next_offset))
        self.next_offset += 2

    @rule()
    def snapshot(self) -> None:
        self.psm.take_snapshot()

    @rule()
    def restart(self) -> None:
        self.psm = ProducerStateManager(self.dir)
        start = self.psm.truncate_and_reload(0, self.next_offset, NOW)
        event("restart from a snapshot" if start else "restart from the log start")
        self.psm.rebuild(iter(self.log), self.next_offset)

    @precondition(lambda self: self.log)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.log) - 1))
        target = self.log[i].base_offset
        del self.log[i:]
        self.next_offset = target
        start = self.psm.truncate_and_reload(0, target, NOW)
        assert start <= target
        self.psm.rebuild(iter(self.log), target)

    @precondition(lambda self: any(self.dir.glob("*.snapshot")))
    @rule(data=st.data(), lose=st.booleans())
    def damage_snapshot(self, data: st.DataObject, lose: bool) -> None:
        path = data.draw(st.sampled_from(sorted(self.dir.glob("*.snapshot"))))
        if lose:
            path.unlink()
        else:
            raw = bytearray(path.read_bytes())
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= 0x5A
            path.write_bytes(bytes(raw))

    @invariant()
    def matches_model(self) -> None:
        got = {
            pid: (e.producer_epoch, list(e.batches))
            for pid, e in self.psm.active_producers.items()
        }
        assert got == model_state(self.log)
        assert self.psm.map_end_offset == self.next_offset


ProducerStateMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None
)
TestProducerState = ProducerStateMachine.TestCase
