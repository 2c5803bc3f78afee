"""The pure transaction coordinator (broker/transactions/coordinator.py): InitProducerId with
fencing and KIP-360 bumps, partitions and offsets added, EndTxn's transitions, the markers'
completion, timeouts and expiry; and random histories checked for its invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.protocol.errors import ErrorCode as E
from broker.transactions.coordinator import Step, TransactionCoordinator, TxnConfig
from broker.transactions.state import SHORT_MAX, TxnEntry, TxnState

S = TxnState


def run(c: TransactionCoordinator, step: Step, ok: E = E.NONE) -> E:
    """Write ``step`` (succeeding unless ``ok`` says otherwise) and return the answer."""
    if step.write is None:
        return step.error
    c.complete(step.write, ok)
    return ok or step.error


def init(c: TransactionCoordinator, tid: str = "t", now: int = 0,
         expected: tuple[int, int] | None = None, pid: int = 100,
         timeout: int = 60_000) -> tuple[E, int, int]:
    step = c.init_producer_id(tid, timeout, expected, now)
    if step.need_producer_id:
        step = c.init_producer_id(tid, timeout, expected, now, pid)
    code = run(c, step)
    if code or step.write is None:
        return code, -1, -1
    return code, step.write.producer_id, step.write.producer_epoch


def finish_markers(c: TransactionCoordinator, tid: str, now: int = 0) -> TxnEntry:
    prepared = c.markers_of(tid)
    assert prepared is not None
    step = c.markers_done(tid, prepared, now)
    assert run(c, step) == E.NONE
    return c.txns[tid].entry


def test_init_gives_a_new_id_at_epoch_0_and_bumps_after() -> None:
    c = TransactionCoordinator()
    assert init(c) == (E.NONE, 100, 0)
    assert c.txns["t"].entry.state == S.EMPTY
    assert init(c) == (E.NONE, 100, 1)  # a restarted producer bumps the epoch


def test_invalid_timeout() -> None:
    c = TransactionCoordinator(TxnConfig(max_timeout_ms=1000))
    assert init(c, timeout=1001)[0] == E.INVALID_TRANSACTION_TIMEOUT
    assert init(c, timeout=0)[0] == E.INVALID_TRANSACTION_TIMEOUT
    assert "t" not in c.txns


def test_a_transaction_commits_through_prepare_and_complete() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    step = c.add_partitions("t", pid, ep, [("a", 0), ("a", 1)], 10)
    assert step.write is not None and step.write.state == S.ONGOING
    assert step.write.txn_start_ms == 10
    assert c.add_partitions("t", pid, ep, [("b", 0)], 11).error == E.CONCURRENT_TRANSACTIONS
    assert run(c, step) == E.NONE
    assert c.add_partitions("t", pid, ep, [("a", 0)], 12).write is None  # already in
    assert run(c, c.add_partitions("t", pid, ep, [("b", 0)], 12)) == E.NONE
    assert c.txns["t"].entry.partitions == {("a", 0), ("a", 1), ("b", 0)}
    assert c.verify_partitions("t", pid, ep, [("a", 0), ("c", 0)]) == {
        ("a", 0): E.NONE, ("c", 0): E.INVALID_TXN_STATE}
    step = c.end_txn("t", pid, ep, True, 20)
    assert step.markers and step.write is not None and step.write.state == S.PREPARE_COMMIT
    assert run(c, step) == E.NONE
    # While the markers go out, the producer's retries and new work wait.
    assert c.end_txn("t", pid, ep, True, 21).error == E.CONCURRENT_TRANSACTIONS
    assert c.end_txn("t", pid, ep, False, 21).error == E.INVALID_TXN_STATE
    assert c.add_partitions("t", pid, ep, [("a", 0)], 21).error == E.CONCURRENT_TRANSACTIONS
    assert init(c)[0] == E.CONCURRENT_TRANSACTIONS
    done = finish_markers(c, "t", 30)
    assert done.state == S.COMPLETE_COMMIT and not done.partitions
    assert c.end_txn("t", pid, ep, True, 31).error == E.NONE  # a retried commit
    assert c.end_txn("t", pid, ep, False, 31).error == E.INVALID_TXN_STATE
    # The next transaction starts from CompleteCommit.
    step = c.add_partitions("t", pid, ep, [("a", 0)], 40)
    assert step.write is not None and step.write.txn_start_ms == 40


def test_end_txn_errors() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    assert c.end_txn("t", pid, ep, True, 0).error == E.INVALID_TXN_STATE  # Empty
    assert c.end_txn("t", pid + 1, ep, True, 0).error == E.INVALID_PRODUCER_ID_MAPPING
    assert c.end_txn("nope", pid, ep, True, 0).error == E.INVALID_PRODUCER_ID_MAPPING
    assert c.end_txn("t", pid, ep + 1, True, 0).error == E.PRODUCER_FENCED
    assert c.add_partitions("t", pid, ep - 1, [("a", 0)], 0).error == E.PRODUCER_FENCED


def test_a_new_producer_fences_an_open_transaction() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    run(c, c.add_partitions("t", pid, ep, [("a", 0)], 0))
    step = c.init_producer_id("t", 60_000, None, 5)
    assert step.error == E.CONCURRENT_TRANSACTIONS
    assert step.write is not None and step.write.state == S.PREPARE_ABORT
    assert step.write.producer_epoch == ep + 1 and step.markers
    run(c, step)
    # The old producer is fenced everywhere from now on.
    assert c.end_txn("t", pid, ep, True, 6).error == E.PRODUCER_FENCED
    assert c.add_partitions("t", pid, ep, [("b", 0)], 6).error == E.PRODUCER_FENCED
    assert init(c)[0] == E.CONCURRENT_TRANSACTIONS  # until the abort completes
    assert finish_markers(c, "t").state == S.COMPLETE_ABORT
    assert init(c) == (E.NONE, pid, ep + 2)


def test_an_idle_producer_is_fenced_by_the_epoch_bump() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    assert init(c) == (E.NONE, pid, ep + 1)
    assert c.add_partitions("t", pid, ep, [("a", 0)], 0).error == E.PRODUCER_FENCED


def test_kip360_bump_with_the_current_id_and_epoch() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    assert init(c, expected=(pid, ep)) == (E.NONE, pid, ep + 1)
    # A retry of that bump (its answer was lost) gets the same epoch again.
    assert init(c, expected=(pid, ep)) == (E.NONE, pid, ep + 1)
    assert init(c, expected=(pid, ep + 5))[0] == E.PRODUCER_FENCED
    assert init(c, expected=(pid + 7, 0))[0] == E.PRODUCER_FENCED


def test_an_exhausted_epoch_takes_a_new_producer_id() -> None:
    c = TransactionCoordinator()
    init(c)
    m = c.txns["t"]
    m.entry = m.entry.replace(producer_epoch=SHORT_MAX - 1)
    assert init(c, pid=200) == (E.NONE, 200, 0)
    assert c.txns["t"].entry.previous_producer_id == 100


def test_a_failed_write_leaves_the_state_as_it_was() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c)
    step = c.add_partitions("t", pid, ep, [("a", 0)], 0)
    assert run(c, step, E.NOT_COORDINATOR) == E.NOT_COORDINATOR
    assert c.txns["t"].entry.state == S.EMPTY and c.txns["t"].pending is None


def test_a_timed_out_transaction_is_aborted_with_a_bumped_epoch() -> None:
    c = TransactionCoordinator()
    _, pid, ep = init(c, timeout=1000)
    run(c, c.add_partitions("t", pid, ep, [("a", 0)], 100))
    assert c.timed_out(1100) == []
    assert c.timed_out(1101) == ["t"]
    step = c.abort_timed_out("t", 1101)
    assert step.write is not None and step.write.state == S.PREPARE_ABORT
    assert step.write.producer_epoch == ep + 1
    run(c, step)
    assert c.end_txn("t", pid, ep, True, 1102).error == E.PRODUCER_FENCED
    assert finish_markers(c, "t").state == S.COMPLETE_ABORT


def test_idle_ids_expire() -> None:
    c = TransactionCoordinator(TxnConfig(id_expiration_ms=1000))
    init(c, now=0)
    init(c, "u", now=500)
    steps = c.expire_ids(1000)
    assert [s.write.transactional_id for s in steps if s.write] == ["t"]
    assert steps[0].write is not None and steps[0].write.state == S.DEAD
    run(c, steps[0])
    assert "t" not in c.txns and "u" in c.txns


def test_load_resumes_prepared_transactions() -> None:
    c = TransactionCoordinator()
    resume = c.load([
        TxnEntry("a", 1, 0, 1000, S.PREPARE_COMMIT, frozenset({("x", 0)})),
        TxnEntry("b", 2, 0, 1000, S.ONGOING, frozenset({("x", 0)})),
        TxnEntry("c", 3, 0, 1000, S.PREPARE_ABORT, frozenset({("x", 1)})),
    ])
    assert sorted(resume) == ["a", "c"]
    assert finish_markers(c, "a").state == S.COMPLETE_COMMIT
    c.unload(["b"])
    assert "b" not in c.txns


# -- random histories ------------------------------------------------------------------------

OPS = ("init", "add", "commit", "abort", "markers", "fail_next", "timeout", "old_producer")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(OPS), max_size=60), st.integers(0, 2**32))
def test_random_histories_keep_the_invariants(ops: list[str], seed: int) -> None:
    """Epochs of a producer id only grow, at most one open transaction per id (one pending
    write at a time), and every Prepare ends in its Complete once the markers succeed."""
    rnd = random.Random(seed)
    c = TransactionCoordinator(TxnConfig(max_timeout_ms=10_000))
    now = 0
    producer: tuple[int, int] | None = None
    next_pid = 1000
    seen: dict[int, int] = {}
    fail = False
    for op in ops:
        now += rnd.randint(0, 3000)
        outcome = E.NOT_COORDINATOR if fail else E.NONE
        fail = False
        if op == "init":
            step = c.init_producer_id("t", 5000, producer if rnd.random() < 0.3 else None, now)
            if step.need_producer_id:
                next_pid += 1
                step = c.init_producer_id("t", 5000, None, now, next_pid)
            code = run(c, step, outcome)
            if not code and step.write is not None:
                producer = (step.write.producer_id, step.write.producer_epoch)
        elif op == "add" and producer:
            run(c, c.add_partitions("t", *producer, [("a", rnd.randint(0, 3))], now), outcome)
        elif op in ("commit", "abort") and producer:
            run(c, c.end_txn("t", *producer, op == "commit", now), outcome)
        elif op == "old_producer" and producer:
            assert c.end_txn("t", producer[0], producer[1] - 1, True, now).error in (
                E.PRODUCER_FENCED, E.INVALID_PRODUCER_ID_MAPPING)
        elif op == "markers":
            prepared = c.markers_of("t")
            if prepared is not None:
                step = c.markers_done("t", prepared, now)
                run(c, step, outcome)
                if not outcome:
                    want = S.COMPLETE_COMMIT if prepared.state == S.PREPARE_COMMIT \
                        else S.COMPLETE_ABORT
                    assert c.txns["t"].entry.state == want
        elif op == "fail_next":
            fail = True
        elif op == "timeout":
            for tid in c.timed_out(now):
                run(c, c.abort_timed_out(tid, now), outcome)
        m = c.txns.get("t")
        if m is not None:
            e = m.entry
            assert m.pending is None  # every write completed above
            assert e.producer_epoch >= seen.get(e.producer_id, -1)
            seen[e.producer_id] = e.producer_epoch
            if e.state in (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
                assert not e.partitions
    # Drive to the end: markers succeed, nothing stays prepared.
    for _ in range(3):
        prepared = c.markers_of("t")
        if prepared is not None:
            run(c, c.markers_done("t", prepared, now))
    m = c.txns.get("t")
    assert m is None or m.entry.state not in (S.PREPARE_COMMIT, S.PREPARE_ABORT)


@pytest.mark.parametrize("state", list(TxnState))
def test_state_names_round_trip(state: TxnState) -> None:
    assert TxnState.from_display(state.display) is state
