"""The transactional workload's checker (jepsen-style/txn_checker.py) on hand-written
histories: every anomaly is found, a clean history (with one unknown-outcome transaction that
committed and one that did not) is valid, and no check passes vacuously."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from history import History, load
from txn_checker import check

A, B, OUT = "txn-a", "txn-b", "txn-out"
Row = list[Any]


class H:
    """Builds a transactional history; ``put`` keeps a model of the log (topic, partition ->
    values) that ``final`` reads back, so a test only states what goes wrong."""

    def __init__(self) -> None:
        self.h = History()
        self.log: dict[tuple[str, int], list[str]] = {}
        self.n = 0

    def put(self, t: str, p: int, v: str) -> list[Any]:
        rows = self.log.setdefault((t, p), [])
        rows.append(v)
        return [t, p, len(rows) - 1, v]

    def txn(self, writes: list[tuple[str, int]], outcome: str = "ok", *, kind: str = "txn",
            inputs: list[Row] | None = None, positions: list[Row] | None = None,
            land: bool | None = None, aborted: bool = True, process: int = 1,
            values: list[str] | None = None) -> list[Any]:
        """One transaction. ``land``: whether its records reach the log (default: unless it
        failed); they are appended in produce order. Returns its records [t, p, o, v]."""
        self.n += 1
        vs = values or [f"{process}/{self.n}/{i}" for i in range(len(writes))]
        ws = [[t, p, v] for (t, p), v in zip(writes, vs, strict=True)]
        extra: dict[str, Any] = {}
        if kind == "ctp":
            extra = {"inputs": inputs or [], "positions": positions or []}
        self.h.add("invoke", kind, process, txn=self.n, tid=f"tid-{process}", writes=ws,
                   abort=outcome == "fail", **extra)
        recs = [self.put(t, p, v) for t, p, v in ws] if (
            land if land is not None else outcome != "fail") else []
        done: dict[str, Any] = {"acked": recs}
        if outcome == "fail":
            done["aborted"] = aborted
        self.h.add(outcome, kind, process, txn=self.n, tid=f"tid-{process}", **done)
        return recs

    def ctp(self, inputs: list[Row], outcome: str = "ok", **kw: Any) -> list[Any]:
        """A pipeline transaction: one output per input, to partition 0 of OUT."""
        positions: dict[tuple[str, int], int] = {}
        for t, p, o, _v in inputs:
            positions[(t, p)] = max(positions.get((t, p), 0), o + 1)
        return self.txn([(OUT, 0)] * len(inputs), outcome, kind="ctp", inputs=inputs,
                        positions=[[t, p, o] for (t, p), o in positions.items()],
                        values=[f"{i[3]}>{self.n + 1}" for i in inputs], process=9, **kw)

    def group(self, positions: dict[tuple[str, int], int]) -> H:
        self.h.add("invoke", "group-offsets", 50, group="g")
        self.h.add("ok", "group-offsets", 50, group="g",
                   positions=[[t, p, o] for (t, p), o in positions.items()])
        return self

    def final(self, isolation: str, rows: list[Row] | None = None, complete: bool = True,
              hide: set[str] | None = None) -> H:
        """A final read of ``rows`` (default: the model log; read_committed leaves out
        ``hide`` values)."""
        if rows is None:
            rows = [[t, p, o, v] for (t, p), vs in sorted(self.log.items())
                    for o, v in enumerate(vs) if not (hide and v in hide)]
        ends = [[t, p, len(vs)] for (t, p), vs in sorted(self.log.items())]
        self.h.add("invoke", "final-read", 99, isolation=isolation)
        self.h.add("ok", "final-read", 99, isolation=isolation, reads=rows, ends=ends,
                   positions=ends if complete else [], complete=complete)
        return self

    def finals(self, hide: set[str] | None = None) -> H:
        return self.final("read_committed", hide=hide).final("read_uncommitted")

    def check(self) -> dict[str, Any]:
        return check(self.h.ops)


def anomalies(r: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in r["anomalies"].items() if v}


def values(recs: list[Row]) -> set[str]:
    return {r[3] for r in recs}


def clean() -> tuple[H, set[str]]:
    """Committed, aborted and unknown-outcome transactions across two topics, and a pipeline
    that transformed every committed input once. Returns the history and the values a
    read_committed reader does not see (the aborted ones)."""
    h = H()
    t1 = h.txn([(A, 0), (A, 1), (B, 0)])
    aborted = h.txn([(A, 0), (B, 1)], "fail", land=True)  # appended, then aborted
    unknown_committed = h.txn([(A, 1), (B, 1)], "info")
    h.txn([(A, 0), (B, 0)], "info", land=False)  # unknown outcome, never committed
    t2 = h.txn([(A, 0), (A, 0), (B, 1)], process=2)
    h.ctp([t1[0], t1[1], unknown_committed[0]])
    h.ctp([t2[0]], "fail", land=True)  # aborted: output invisible, input not consumed
    h.ctp([t2[0], t2[1]])
    h.group({(A, 0): 4, (A, 1): 2})
    return h, values(aborted) | {h.log[(OUT, 0)][3]}


def test_clean_history_with_unknown_outcomes_is_valid() -> None:
    h, hide = clean()
    r = h.finals(hide).check()
    assert anomalies(r) == {}, r["examples"]
    assert r["valid"] and r["verdict"] == "valid"
    s = r["stats"]
    assert s["transactions"]["txn"] == {"ok": 2, "fail": 1, "info": 2}
    assert s["pipeline_outputs"] == 5 and s["pipeline_lag"] == 0
    assert s["final_read"] == {"read_committed": "complete", "read_uncommitted": "complete"}


def test_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    h, hide = clean()
    h.finals(hide)
    path = tmp_path / "history.jsonl"
    copy = History(path)
    for op in h.h.ops:
        copy.add(op["type"], op["f"], op["process"],
                 **{k: v for k, v in op.items() if k not in ("index", "type", "f", "process",
                                                              "time")})
    copy.close()
    assert check(load(path))["verdict"] == "valid"


@pytest.mark.parametrize(("break_it", "code"), [(None, 0), ("lose", 1), ("no-final", 3)])
def test_command_line_exit_status(tmp_path: Path, break_it: str | None, code: int) -> None:
    h, hide = clean()
    if break_it == "lose":
        hide = hide | {h.log[(A, 1)][0]}
    if break_it != "no-final":
        h.finals(hide)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(op) + "\n" for op in h.h.ops))
    script = Path(__file__).resolve().parents[2] / "jepsen-style" / "txn_checker.py"
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == code, r.stderr
    assert json.loads(r.stdout)["verdict"] == {0: "valid", 1: "invalid", 3: "unknown"}[code]


def test_aborted_read_in_the_final_read() -> None:
    h, hide = clean()
    h.txn([(B, 1), (B, 0)], "fail", land=True)  # its abort acknowledged, yet visible
    r = h.finals(hide).check()
    assert anomalies(r) == {"aborted-read": 1}
    assert r["examples"]["aborted-read"][0]["outcome"] == "fail"
    assert r["verdict"] == "invalid"


def test_aborted_read_by_the_pipeline_consumer() -> None:
    h = H()
    h.txn([(B, 0)])
    bad = h.txn([(A, 0)], "fail", land=True)
    h.ctp(bad, "fail", land=True)  # the read_committed consumer got an aborted record
    r = h.finals(values(bad) | {h.log[(OUT, 0)][0]}).group({(A, 0): 0}).check()
    assert anomalies(r) == {"aborted-read": 1}
    assert r["examples"]["aborted-read"][0]["reader"] == "pipeline consumer"


def test_partial_transaction_across_partitions() -> None:
    h, hide = clean()
    t = h.txn([(B, 0), (B, 1)])
    r = h.finals(hide | {t[1][3]}).check()
    assert anomalies(r) == {"partial-transaction": 1}


def test_unknown_outcome_transaction_must_not_be_partial() -> None:
    h, hide = clean()
    t = h.txn([(A, 1), (B, 0), (B, 0)], "info")
    r = h.finals(hide | {t[0][3]}).check()
    assert anomalies(r) == {"partial-transaction": 1}
    assert r["examples"]["partial-transaction"][0]["outcome"] == "info"


def test_lost_committed_transaction() -> None:
    h, hide = clean()
    t = h.txn([(A, 0), (B, 1)])
    r = h.finals(hide | values(t)).check()
    assert anomalies(r) == {"lost-transaction": 1}
    assert r["verdict"] == "invalid"


def test_empty_final_read_with_acknowledged_commits_is_invalid() -> None:
    h, _hide = clean()
    r = h.final("read_committed", []).final("read_uncommitted", []).check()
    assert r["verdict"] == "invalid"
    assert r["anomalies"]["lost-transaction"] >= 2


def test_lost_from_the_read_uncommitted_read_only() -> None:
    h, hide = clean()
    rows = [[t, p, o, v] for (t, p), vs in sorted(h.log.items()) for o, v in enumerate(vs)
            if v != h.log[(A, 0)][0]]
    r = h.final("read_committed", hide=hide).final("read_uncommitted", rows).check()
    assert anomalies(r) == {"lost-transaction": 1}
    assert r["examples"]["lost-transaction"][0]["read"] == "read_uncommitted"


def test_duplicate_in_the_exactly_once_output() -> None:
    h, hide = clean()
    h.ctp([h.txn([(A, 1)])[0]])
    again = h.log[(A, 1)][-1]
    h.ctp([[A, 1, len(h.log[(A, 1)]) - 1, again]])  # the same input transformed twice
    r = h.finals(hide).group({(A, 0): 4, (A, 1): 3}).check()
    assert anomalies(r) == {"duplicate-output": 1}
    assert r["examples"]["duplicate-output"][0]["input"] == again


def test_offsets_moved_without_their_transaction() -> None:
    h, hide = clean()
    h.txn([(A, 1)])  # offset 2 of A/1: never transformed, yet the group is past it
    r = h.finals(hide).group({(A, 0): 4, (A, 1): 3}).check()
    assert anomalies(r) == {"offsets-without-transaction": 1}
    assert "past an input" in r["examples"]["offsets-without-transaction"][0]["why"]


def test_output_committed_without_its_offsets() -> None:
    h, hide = clean()
    r = h.finals(hide).group({(A, 0): 2, (A, 1): 2}).check()  # A/0 offsets 2, 3 transformed
    assert anomalies(r) == {"offsets-without-transaction": 2}
    assert "not past" in r["examples"]["offsets-without-transaction"][0]["why"]


def test_unprocessed_input_is_lag_not_an_anomaly() -> None:
    h, hide = clean()
    h.txn([(A, 1)])
    r = h.finals(hide).check()
    assert r["valid"] and anomalies(r) == {"pipeline-lag": 1}


def test_missing_group_offsets_is_unknown() -> None:
    h = H()
    t = h.txn([(A, 0)])
    h.ctp(t)
    r = h.finals().check()
    assert r["verdict"] == "unknown" and "committed offsets" in r["unknown_reason"]


def test_duplicate_value_at_two_offsets() -> None:
    h, hide = clean()
    t = h.txn([(B, 0)])
    h.put(B, 0, t[0][3])  # written twice
    r = h.finals(hide).check()
    assert anomalies(r) == {"duplicate": 1}


def test_inconsistent_offset_between_the_two_reads() -> None:
    h, hide = clean()
    h.final("read_committed", hide=hide)
    rows = [[t, p, o, v] for (t, p), vs in sorted(h.log.items()) for o, v in enumerate(vs)]
    rows[0], rows[1] = [*rows[0][:3], rows[1][3]], [*rows[1][:3], rows[0][3]]  # swapped
    r = h.final("read_uncommitted", rows).check()
    assert r["anomalies"]["inconsistent-offset"] >= 2
    assert r["verdict"] == "invalid"


def test_order_violation_within_a_transaction() -> None:
    h, hide = clean()
    h.txn([(B, 0), (B, 0)], land=False)  # no delivery reports
    h.put(B, 0, h.h.ops[-2]["writes"][1][2])
    h.put(B, 0, h.h.ops[-2]["writes"][0][2])
    r = h.finals(hide).check()
    assert anomalies(r) == {"order-violation": 2}  # in both final reads
    assert "write 0" in r["examples"]["order-violation"][0]["why"]


def test_order_violation_across_transactions_in_real_time() -> None:
    h, hide = clean()
    h.txn([(B, 0)], land=False)
    first = h.h.ops[-2]["writes"][0][2]
    h.txn([(B, 0)], land=False, process=3)  # invoked after the first committed
    second = h.h.ops[-2]["writes"][0][2]
    h.put(B, 0, second)
    h.put(B, 0, first)
    r = h.finals(hide).check()
    assert anomalies(r) == {"order-violation": 2}
    ex = r["examples"]["order-violation"][0]
    assert ex["lower"]["txn"] == h.n and ex["higher"]["txn"] == h.n - 1


def test_phantom_read() -> None:
    h, hide = clean()
    h.put(B, 1, "nobody/1/0")
    r = h.finals(hide).check()
    assert anomalies(r) == {"phantom-read": 1}


def test_incomplete_final_read_is_unknown_even_with_everything_present() -> None:
    h, hide = clean()
    r = h.final("read_committed", hide=hide, complete=False).final("read_uncommitted").check()
    assert r["verdict"] == "unknown"
    assert "read_committed final read is incomplete" in r["unknown_reason"]


def test_incomplete_read_with_definite_evidence_is_invalid() -> None:
    h, hide = clean()
    t = h.txn([(A, 0)])
    rows = [[tp, p, o, v] for (tp, p), vs in sorted(h.log.items()) for o, v in enumerate(vs)
            if v not in hide and v != t[0][3]]
    ends = [[tp, p, len(vs)] for (tp, p), vs in sorted(h.log.items())]
    h.h.add("ok", "final-read", 99, isolation="read_committed", reads=rows, ends=ends,
            positions=ends, complete=False)
    r = h.final("read_uncommitted").check()
    assert anomalies(r) == {"lost-transaction": 1}
    assert r["verdict"] == "invalid"


def test_read_committed_stopping_below_the_high_watermark_is_not_complete() -> None:
    """A transaction left open holds the last stable offset: the read_committed read ends
    there, below the high watermark, and is no proof of the whole log."""
    h, hide = clean()
    h.final("read_committed", hide=hide)
    h.h.ops[-1]["positions"] = [[A, 0, 1]]
    r = h.final("read_uncommitted").check()
    assert r["verdict"] == "unknown", r
    assert r["stats"]["final_read"]["read_committed"] == "incomplete"


def test_missing_or_unknown_final_reads_are_unknown() -> None:
    h, _hide = clean()
    r = h.final("read_uncommitted").check()
    assert r["verdict"] == "unknown" and "read_committed final read is missing" in \
        r["unknown_reason"]
    h.h.add("invoke", "final-read", 99, isolation="read_committed")
    h.h.add("info", "final-read", 99, isolation="read_committed", error="timed out")
    assert "is info" in h.check()["unknown_reason"]


def test_nothing_committed_is_unknown_not_valid() -> None:
    h = H()
    h.txn([(A, 0)], "fail", land=True)
    h.txn([(A, 0)], "info", land=False)
    r = h.finals(set(h.log[(A, 0)])).check()
    assert anomalies(r) == {}
    assert r["verdict"] == "unknown" and "nothing to check" in r["unknown_reason"]


def test_pipeline_that_committed_nothing_is_unknown() -> None:
    h = H()
    h.txn([(A, 0)])
    r = h.finals().group({(A, 0): 0}).check()  # its offsets were read, it never committed
    assert anomalies(r) == {}
    assert r["verdict"] == "unknown" and "pipeline committed no" in r["unknown_reason"]


def test_aborted_records_landing_late_are_no_order_violation() -> None:
    """An abort purges sends that may still be appended afterwards: an aborted transaction's
    record above a later transaction's is not out of order (read_uncommitted sees both)."""
    h, hide = clean()
    late = h.txn([(B, 0)], "fail", land=False)
    assert late == []
    aborted_value = h.h.ops[-2]["writes"][0][2]
    h.txn([(B, 0)])
    h.put(B, 0, aborted_value)
    r = h.finals(hide | {aborted_value}).check()
    assert anomalies(r) == {}, r["examples"]
