"""The fault suite's checker (jepsen-style/checker.py) on hand-written histories."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from checker import check
from history import History, load


class H:
    """Builds a history in memory."""

    def __init__(self) -> None:
        self.h = History()

    def send(self, process: int, p: int, v: int, offset: int | None, type_: str = "ok") -> H:
        self.h.add("invoke", "send", process, key=p, partition=p, value=v)
        extra: dict[str, Any] = {"offset": offset} if type_ == "ok" else {}
        self.h.add(type_, "send", process, key=p, partition=p, value=v, **extra)
        return self

    def assign(self, process: int, session: int, offsets: dict[int, int]) -> H:
        self.h.add("ok", "assign", process, session=session, offsets=offsets)
        return self

    def poll(self, process: int, session: int, reads: list[list[int]],
             watermarks: dict[int, int] | None = None) -> H:
        self.h.add("invoke", "poll", process, session=session)
        self.h.add("ok", "poll", process, session=session, reads=reads,
                   watermarks=watermarks or {})
        return self

    def final(self, reads: list[list[int]], complete: bool = True) -> H:
        """The final read as workload.py final_read records it: ``complete`` says it reached
        the end of every partition."""
        self.h.add("invoke", "final-read", 99, session=0)
        self.h.add("ok", "final-read", 99, session=0, reads=reads, complete=complete)
        return self

    def final_info(self) -> H:
        """A final read whose outcome is unknown (it raised)."""
        self.h.add("invoke", "final-read", 99, session=0)
        self.h.add("info", "final-read", 99, session=0, error="timed out")
        return self

    def committed(self, offsets: dict[int, int]) -> H:
        self.h.add("ok", "committed", 50, group="g", offsets=offsets)
        return self

    def check(self) -> dict[str, Any]:
        return check(self.h.ops)


def anomalies(r: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in r["anomalies"].items() if v}


def test_clean_history_is_valid() -> None:
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(2, 1, 3, 0)
         .assign(10, 1, {0: -2}).poll(10, 1, [[0, 0, 1], [0, 1, 2]], {0: 2})
         .final([[0, 0, 1], [0, 1, 2], [1, 0, 3]]).check())
    assert r["valid"], r
    assert anomalies(r) == {}
    assert r["stats"]["sends_acknowledged"] == 3
    assert r["stats"]["acknowledged_read"] == 3


def test_lost_write_when_a_later_offset_was_read() -> None:
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2).final([[0, 0, 1], [0, 2, 3]]).check()
    assert not r["valid"]
    assert anomalies(r) == {"lost-write": 1}
    assert r["examples"]["lost-write"][0]["value"] == 2


def test_lost_write_when_read_once_but_missing_from_the_final_read() -> None:
    # A consumer saw value 2 at offset 1; after a crash the log reuses offset 1 for value 3.
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).poll(10, 1, [[0, 0, 1], [0, 1, 2]])
         .send(2, 0, 3, None, "info").final([[0, 0, 1], [0, 1, 3]]).check())
    assert anomalies(r) == {"lost-write": 1, "inconsistent-offset": 1}
    assert r["examples"]["lost-write"][0]["why"] == "read earlier, missing from the final read"


def test_acknowledged_offset_taken_by_another_value() -> None:
    # Value 2 was acknowledged at offset 1, but the log holds value 3 there: 2 is lost, the
    # offset has two values, and 3 sits at two offsets (acknowledged 2, read 1).
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2).final([[0, 0, 1], [0, 1, 3]]).check()
    assert anomalies(r) == {"lost-write": 1, "inconsistent-offset": 1, "duplicate": 1}


def test_tail_loss_of_records_consumers_read_is_lost_write() -> None:
    # The last two records of the partition vanish and nothing is written after them: no read
    # gets past their offsets, but the complete final read is the whole log.
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2)
         .assign(10, 1, {0: -2}).poll(10, 1, [[0, 0, 1], [0, 1, 2], [0, 2, 3]], {0: 3})
         .final([[0, 0, 1]]).check())
    assert r["verdict"] == "invalid" and not r["valid"]
    assert anomalies(r) == {"lost-write": 2}
    assert sorted(e["value"] for e in r["examples"]["lost-write"]) == [2, 3]
    assert {e["why"] for e in r["examples"]["lost-write"]} == {
        "read earlier, missing from the final read"}


def test_tail_loss_of_records_never_read_is_lost_write() -> None:
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2).final([[0, 0, 1]]).check()
    assert r["verdict"] == "invalid" and not r["valid"]
    assert anomalies(r) == {"lost-write": 2}
    assert r["anomalies"]["unseen"] == 0
    assert {e["why"] for e in r["examples"]["lost-write"]} == {"acknowledged, never read"}


def test_value_read_by_a_consumer_must_survive_although_its_send_is_unknown() -> None:
    # Consumers read below the high watermark: value 2 was committed, whatever its producer
    # was told.
    r = (H().send(1, 0, 1, 0).send(2, 0, 2, None, "info")
         .poll(10, 1, [[0, 0, 1], [0, 1, 2]]).final([[0, 0, 1]]).check())
    assert r["verdict"] == "invalid"
    assert anomalies(r) == {"lost-write": 1}
    ex = r["examples"]["lost-write"][0]
    assert (ex["value"], ex["offset"], ex["send"]) == (2, 1, "info")


def test_acknowledged_offset_holding_another_value_in_the_final_read() -> None:
    # Value 2 was acknowledged at offset 1; the final read finds value 3 (outcome unknown) there.
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(2, 0, 3, None, "info")
         .final([[0, 0, 1], [0, 1, 3]]).check())
    assert r["verdict"] == "invalid"
    assert anomalies(r) == {"inconsistent-offset": 1, "lost-write": 1}
    assert r["examples"]["inconsistent-offset"][0] == {"partition": 0, "offset": 1,
                                                       "values": [2, 3]}


def test_incomplete_final_read_is_unknown_even_with_everything_present() -> None:
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).final([[0, 0, 1], [0, 1, 2]], False).check()
    assert r["verdict"] == "unknown" and r["valid"] is False
    assert anomalies(r) == {}
    assert r["unknown_reason"] == "the final read did not reach the end of every partition"
    assert r["stats"]["final_read"] == "incomplete"


def test_incomplete_final_read_counts_what_it_did_not_reach_as_unseen() -> None:
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2).final([[0, 0, 1]], False).check()
    assert r["verdict"] == "unknown" and not r["valid"]
    assert anomalies(r) == {"unseen": 2}


def test_incomplete_final_read_with_definite_evidence_is_invalid() -> None:
    # The final read stopped early but read offset 2: value 2 acknowledged at offset 1 is gone.
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 0, 3, 2).send(1, 0, 4, 3)
         .final([[0, 0, 1], [0, 2, 3]], False).check())
    assert r["verdict"] == "invalid" and not r["valid"]
    assert anomalies(r) == {"lost-write": 1, "unseen": 1}
    assert r["examples"]["lost-write"][0]["value"] == 2
    assert r["unknown_reason"] is None
    # A value a consumer read, missing from the part of the partition the final read covered.
    r = (H().send(1, 0, 1, 0).send(1, 0, 2, 1).send(1, 1, 3, 0)
         .poll(10, 1, [[0, 0, 1], [0, 1, 2]]).final([[0, 0, 1], [0, 1, 9]], False).check())
    assert r["verdict"] == "invalid"
    assert r["anomalies"]["lost-write"] == 1 and r["anomalies"]["unseen"] == 1


def test_no_final_read_is_unknown() -> None:
    r = H().send(1, 0, 1, 0).assign(10, 1, {0: -2}).poll(10, 1, [[0, 0, 1]]).check()
    assert r["verdict"] == "unknown" and not r["valid"]
    assert anomalies(r) == {}
    assert r["unknown_reason"] == "no final read"
    r = H().send(1, 0, 1, 0).check()
    assert r["verdict"] == "unknown"
    assert anomalies(r) == {"unseen": 1}


def test_final_read_with_unknown_outcome_is_unknown() -> None:
    r = H().send(1, 0, 1, 0).send(1, 0, 2, 1).final_info().check()
    assert r["verdict"] == "unknown" and not r["valid"]
    assert anomalies(r) == {"unseen": 2}
    assert r["stats"]["final_read"] == "info"


def test_final_read_without_a_complete_field_is_not_taken_as_complete() -> None:
    h = H().send(1, 0, 1, 0)
    h.h.add("ok", "final-read", 99, session=0, reads=[[0, 0, 1]])
    assert h.check()["verdict"] == "unknown"


def test_unknown_send_never_read_is_fine_but_failed_send_read_is_aborted_read() -> None:
    r = H().send(1, 0, 1, None, "info").final([]).check()
    assert r["valid"]
    r = H().send(1, 0, 1, None, "fail").final([[0, 0, 1]]).check()
    assert anomalies(r) == {"aborted-read": 1}


def test_duplicate_value_at_two_offsets() -> None:
    r = H().send(1, 0, 1, 0).final([[0, 0, 1], [0, 1, 1]]).check()
    assert anomalies(r) == {"duplicate": 1}


def test_duplicates_are_allowed_without_idempotence() -> None:
    h = H().send(1, 0, 1, 0).final([[0, 0, 1], [0, 1, 1]])
    r = check(h.h.ops, allow_duplicates=True)
    assert r["valid"] and r["anomalies"]["duplicate"] == 1


def test_inconsistent_offset_across_readers() -> None:
    # Value 1, read by a consumer, was committed: the final read holding 2 there also lost it.
    r = (H().send(1, 0, 1, None, "info").send(2, 0, 2, None, "info")
         .poll(10, 1, [[0, 0, 1]]).final([[0, 0, 2]]).check())
    assert anomalies(r) == {"inconsistent-offset": 1, "lost-write": 1}
    assert r["examples"]["inconsistent-offset"][0]["values"] == [1, 2]


def test_poll_skip_and_nonmonotonic_poll_within_a_session() -> None:
    h = H()
    for i in range(4):
        h.send(1, 0, i, i)
    h.assign(10, 1, {0: -2}).poll(10, 1, [[0, 0, 0], [0, 2, 2]])  # skips offset 1
    h.poll(10, 1, [[0, 1, 1]])  # goes back
    h.final([[0, i, i] for i in range(4)])
    r = h.check()
    assert anomalies(r) == {"poll-skip": 1, "nonmonotonic-poll": 1}
    assert r["examples"]["poll-skip"][0]["skipped"] == 1


def test_new_session_may_restart_but_not_skip_its_start_offset() -> None:
    h = H()
    for i in range(4):
        h.send(1, 0, i, i)
    h.assign(10, 1, {0: -2}).poll(10, 1, [[0, 0, 0], [0, 1, 1]])
    h.assign(10, 2, {0: -2}).poll(10, 2, [[0, 0, 0]])  # a new session from the start: fine
    h.assign(10, 3, {0: 2}).poll(10, 3, [[0, 3, 3]])  # started at 2, first read 3: skip
    h.final([[0, i, i] for i in range(4)])
    assert anomalies(h.check()) == {"poll-skip": 1}


def test_gaps_that_nobody_saw_are_not_skips() -> None:
    # Offsets 1..2 never observed (e.g. control records): jumping over them is fine.
    h = H().send(1, 0, 0, 0).send(1, 0, 3, 3).assign(10, 1, {0: -2})
    h.poll(10, 1, [[0, 0, 0], [0, 3, 3]]).final([[0, 0, 0], [0, 3, 3]])
    assert h.check()["valid"]


def test_nonmonotonic_send_per_producer() -> None:
    r = H().send(1, 0, 1, 5).send(1, 0, 2, 4).final([[0, 4, 2], [0, 5, 1]]).check()
    assert anomalies(r) == {"nonmonotonic-send": 1}


def test_phantom_read() -> None:
    r = H().final([[0, 0, 42]]).check()
    assert anomalies(r) == {"phantom-read": 1}


def test_high_watermark_and_committed_offsets_must_not_go_backwards() -> None:
    h = H().send(1, 0, 1, 0).assign(10, 1, {0: -2})
    h.poll(10, 1, [[0, 0, 1]], {0: 5}).poll(10, 1, [], {0: 3})
    h.committed({0: 4}).committed({0: 2}).committed({0: -1001})
    h.final([[0, 0, 1]])
    assert anomalies(h.check()) == {"hw-regression": 1, "committed-regression": 1}


def test_committed_reads_that_overlap_may_be_ordered_either_way() -> None:
    """Seen in a fault run: a read invoked before a commit was acknowledged returns the older
    offsets after a later read already returned the newer ones. Overlapping reads are not
    ordered, so that is no regression; a read invoked after the newer one completed is."""
    h = H().send(1, 0, 1, 0).final([[0, 0, 1]])
    h.h.add("invoke", "committed", 6, group="g")
    h.h.add("invoke", "committed", 7, group="g")
    h.h.add("ok", "committed", 7, group="g", offsets={0: 202})
    h.h.add("ok", "committed", 6, group="g", offsets={0: 197})
    assert h.check()["valid"]
    h.h.add("invoke", "committed", 6, group="g")
    h.h.add("ok", "committed", 6, group="g", offsets={0: 197})
    r = h.check()
    assert anomalies(r) == {"committed-regression": 1}
    assert r["examples"]["committed-regression"][0]["before"] == 202


def test_hw_regression_alone_is_a_warning_unless_strict() -> None:
    h = H().send(1, 0, 1, 0).assign(10, 1, {0: -2})
    h.poll(10, 1, [[0, 0, 1]], {0: 5}).poll(10, 1, [], {0: 3}).final([[0, 0, 1]])
    r = h.check()
    assert r["valid"] and r["anomalies"]["hw-regression"] == 1
    assert not check(h.h.ops, strict_hw=True)["valid"]


def test_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    h = History(path)
    h.add("invoke", "send", 1, key=0, partition=0, value=1)
    h.add("ok", "send", 1, key=0, partition=0, value=1, offset=0)
    h.add("ok", "poll", 2, session=1, reads=[[0, 0, 1]], watermarks={0: 1})
    h.add("ok", "final-read", 3, session=0, reads=[[0, 0, 1]], ends={0: 1}, complete=True)
    h.close()
    ops = load(path)
    assert [o["index"] for o in ops] == [0, 1, 2, 3]
    assert ops[2]["watermarks"] == {0: 1}
    assert check(ops)["verdict"] == "valid"
    # ``ends`` comes back with string keys; the checker still finds each partition's end.
    ops.insert(2, {**ops[1], "index": 9, "value": 2, "offset": 1})
    r = check(ops)
    assert r["verdict"] == "invalid"
    assert r["examples"]["lost-write"][0]["final_read_end"] == 1


@pytest.mark.parametrize("bad", ["nonsense", "clock-skew"])
def test_unknown_nemesis_is_refused(bad: str) -> None:
    from nemesis import NemesisError, check_kinds

    with pytest.raises(NemesisError, match="unknown nemesis"):
        check_kinds([bad])


def test_schedule_is_a_pure_function_of_the_seed() -> None:
    from nemesis import schedule

    a = schedule(5, ["kill", "pause", "partition"], 120)
    assert a == schedule(5, ["kill", "pause", "partition"], 120)
    assert a != schedule(6, ["kill", "pause", "partition"], 120)
    assert all(f.start_s < f.heal_s <= 120 for f in a)
    assert all(x.heal_s < y.start_s for x, y in itertools.pairwise(a))
    assert {f.kind for f in a} <= {"kill", "pause", "partition"}


def test_unfinished_client_ops_are_the_invocations_that_never_completed() -> None:
    pytest.importorskip("confluent_kafka")
    from run import unfinished_client_ops
    h = History()
    h.add("invoke", "poll", 5, session=1)
    h.add("ok", "poll", 5, session=1, reads=[])
    h.add("invoke", "commit", 5, group="g", offsets={0: 1})
    h.add("invoke", "commit", 6, group="g", offsets={0: 1})
    h.add("info", "commit", 6, group="g", offsets={0: 1}, error="timed out")
    h.add("invoke", "send", 7, key=0, partition=0, value=1)  # sends are not client ops here
    assert [(u["process"], u["f"], u["group"]) for u in unfinished_client_ops(h.ops)] == [
        (5, "commit", "g")]


def test_exit_status_and_printed_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("confluent_kafka")
    from run import exit_status, print_report

    complete = H().send(1, 0, 1, 0).final([[0, 0, 1]]).check()
    incomplete = H().send(1, 0, 1, 0).final([[0, 0, 1]], False).check()
    lost = H().send(1, 0, 1, 0).send(1, 0, 2, 1).final([[0, 0, 1]]).check()
    assert [r["verdict"] for r in (complete, incomplete, lost)] == ["valid", "unknown", "invalid"]
    assert exit_status([complete], "valid") == 0
    assert exit_status([complete, incomplete], "valid") == 3
    assert exit_status([incomplete, lost], "valid") == 1
    assert exit_status([lost], "lost-write") == 0
    assert exit_status([lost, complete], "lost-write") == 1
    assert exit_status([lost, incomplete], "lost-write") == 3
    report = {**incomplete, "seed": 1, "duration_s": 1.0, "fault_seconds": 0.0, "faults": [],
              "final_read_complete": False, "notes": [], "reproduce": "python run.py"}
    print_report(report)
    assert capsys.readouterr().out.startswith(
        "== seed 1: UNKNOWN (the final read did not reach the end of every partition)")
