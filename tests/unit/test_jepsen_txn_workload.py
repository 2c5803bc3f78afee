"""How the transactional workload (jepsen-style/txn_workload.py) records a transaction's
outcome from what librdkafka's transactional API raises: ``fail`` only when the transaction
certainly did not commit, ``info`` when it may have. The producer here is a scripted stand-in
for confluent_kafka.Producer raising real KafkaError values; the real client runs in
tests/integration/test_jepsen_txn_smoke.py."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from history import History
from txn_workload import TxnConfig, TxnWorkload

ABORTABLE = KafkaException(KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True))
FATAL = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
RETRIABLE = KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))


class Msg:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v


class ScriptedProducer:
    """Delivers every record at once; ``commit`` / ``abort`` / ``produce`` list what each call
    raises in turn (None: returns)."""

    def __init__(self, commit: list[Exception | None] | None = None,
                 abort: list[Exception | None] | None = None,
                 produce: Exception | None = None, poll: Exception | None = None) -> None:
        self.commit = list(commit or [None])
        self.poll_error = poll
        self.abort = list(abort or [None])
        self.produce_error = produce
        self.calls: list[str] = []
        self.offset = 0

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes, partition: int,
                on_delivery: Any) -> None:
        if self.produce_error is not None:
            raise self.produce_error
        on_delivery(None, Msg(topic, partition, self.offset, value))
        self.offset += 1

    def poll(self, _t: float) -> int:
        if self.poll_error is not None:
            raise self.poll_error
        return 0

    def commit_transaction(self, _t: float) -> None:
        self.calls.append("commit")
        e = self.commit.pop(0) if len(self.commit) > 1 else self.commit[0]
        if e is not None:
            raise e

    def abort_transaction(self, _t: float) -> None:
        self.calls.append("abort")
        e = self.abort.pop(0) if self.abort else None
        if e is not None:
            raise e


def run_one(producer: ScriptedProducer, abort: bool = False) -> tuple[tuple[str, bool], Any]:
    h = History()
    w = TxnWorkload(TxnConfig(bootstrap="unused", op_timeout_s=0.05), h, random.Random(1))
    result = w._run_txn(producer, "txn", 1, "tid-0", 7,  # type: ignore[arg-type]
                        [["txn-a", 0, "0/7/0"], ["txn-b", 1, "0/7/1"]], abort)
    assert [op["type"] for op in h.ops] == ["invoke", result[0]]
    return result, h.ops[-1]


def test_acknowledged_commit_is_ok_with_its_delivery_reports() -> None:
    (outcome, usable), op = run_one(ScriptedProducer())
    assert (outcome, usable) == ("ok", True)
    assert op["acked"] == [["txn-a", 0, 0, "0/7/0"], ["txn-b", 1, 1, "0/7/1"]]


def test_planned_abort_is_fail_and_says_it_was_acknowledged() -> None:
    p = ScriptedProducer()
    (outcome, usable), op = run_one(p, abort=True)
    assert (outcome, usable, op["aborted"]) == ("fail", True, True)
    assert "commit" not in p.calls


def test_abort_that_fails_before_any_commit_is_still_fail() -> None:
    """The commit was never asked for: the transaction cannot commit (the coordinator aborts it
    on timeout or when the id is fenced), but the producer must be replaced."""
    (outcome, usable), op = run_one(ScriptedProducer(abort=[FATAL]), abort=True)
    assert (outcome, usable, op["aborted"]) == ("fail", False, False)


def test_produce_refused_is_fail_without_a_commit() -> None:
    p = ScriptedProducer(produce=BufferError("queue full"))
    (outcome, usable), op = run_one(p)
    assert (outcome, usable, op["aborted"]) == ("fail", True, True)
    assert "commit" not in p.calls and "before commit" in op["error"]


def test_abortable_commit_error_then_acknowledged_abort_is_fail() -> None:
    (outcome, usable), op = run_one(ScriptedProducer(commit=[ABORTABLE]))
    assert (outcome, usable, op["aborted"]) == ("fail", True, True)


def test_abortable_commit_error_and_failed_abort_is_unknown() -> None:
    (outcome, usable), _op = run_one(ScriptedProducer(commit=[ABORTABLE], abort=[FATAL]))
    assert (outcome, usable) == ("info", False)


def test_fatal_commit_error_is_unknown() -> None:
    (outcome, usable), _op = run_one(ScriptedProducer(commit=[FATAL]))
    assert (outcome, usable) == ("info", False)


def test_fatal_commit_error_then_poll_raising_is_unknown_not_a_crash() -> None:
    """After a fatal error (a commit answered INVALID_TXN_STATE during a coordinator
    failover) librdkafka's poll() raises the fatal error again: the transaction is still
    recorded (info) and the producer replaced, not the worker crashed."""
    (outcome, usable), op = run_one(ScriptedProducer(commit=[FATAL], poll=FATAL))
    assert (outcome, usable) == ("info", False)
    assert op["error"].startswith("commit:")
    (outcome, usable), op = run_one(ScriptedProducer(poll=FATAL))
    assert (outcome, usable) == ("ok", True) and "poll:" in op["error"]


def test_a_harness_error_is_not_taken_for_an_outcome() -> None:
    """Anything but a client error propagates: the worker's crash is recorded (worker-crash)
    and makes the run unknown, rather than a guessed outcome."""
    with pytest.raises(RuntimeError):
        run_one(ScriptedProducer(commit=[RuntimeError("boom")]))


def test_retriable_commit_error_is_retried() -> None:
    p = ScriptedProducer(commit=[RETRIABLE, RETRIABLE, None])
    (outcome, _usable), _op = run_one(p)
    assert outcome == "ok" and p.calls.count("commit") == 3


def test_commit_that_keeps_timing_out_is_unknown() -> None:
    (outcome, usable), op = run_one(ScriptedProducer(commit=[RETRIABLE]))
    assert (outcome, usable) == ("info", False)
    assert "timed out" in op["error"]


def test_txn_schedule_targets_the_coordinator_and_leaves_queue_schedules_alone() -> None:
    from nemesis import DEFAULT_KINDS, TARGETS, schedule

    kinds = list(DEFAULT_KINDS)
    txn = [f for seed in range(20) for f in schedule(seed, kinds, 300, txn=True)]
    assert {f.target for f in txn} >= {"coordinator", "isolate-coordinator"}
    assert {f.kind for f in txn if f.target == "coordinator"} >= {"kill", "pause"}
    queue = [f for seed in range(20) for f in schedule(seed, kinds, 300)]
    assert not {f.target for f in queue} & {"coordinator", "isolate-coordinator"}
    assert {f.target for f in queue if f.kind == "kill"} <= set(TARGETS)
    assert schedule(5, kinds, 300) == schedule(5, kinds, 300, txn=False)


def test_txn_profiles_parse_and_refuse_what_the_workload_cannot_do() -> None:
    import run

    a = run.parse_args(["--profile", "txn"])
    assert (a.workload, a.rate, a.expect) == ("txn", 10.0, "valid")
    assert a.kinds == ["kill", "pause", "partition", "lose-unsynced"]
    assert "--workload txn" in run.reproduce_command(a, 1)
    assert run.parse_args(["--profile", "txn-clean"]).kinds == []
    assert run.parse_args(["--workload", "txn", "--nemesis", "kill"]).workload == "txn"
    with pytest.raises(SystemExit):
        run.parse_args(["--profile", "txn", "--nemesis", "followers-lag"])
    with pytest.raises(SystemExit):
        run.parse_args(["--workload", "txn", "--idempotence", "off", "--acks", "1"])
