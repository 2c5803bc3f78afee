"""The checker of the transactional workload (txn_workload.py): a pure function from a history
to a verdict, after Jepsen's analysis of Kafka transactions.

History (history.py, one op per line; ``invoke`` then ``ok`` / ``fail`` / ``info``):

- ``txn``: one producer transaction. invoke: ``txn`` (id), ``tid`` (transactional.id),
  ``writes`` = [[topic, partition, value], ...] in produce order, ``abort`` (planned abort).
  ``ok``: the commit was acknowledged. ``fail``: it did not commit (its abort was
  acknowledged, or its commit was never asked for: the coordinator aborts it on timeout or
  when the transactional.id is fenced). ``info``: the commit's outcome is unknown.
  ``fail`` says ``aborted: true`` when the abort was acknowledged. Completions carry ``acked`` = [[topic, partition, offset, value], ...], the delivery
  reports received.
- ``ctp``: one consume-transform-produce transaction of the pipeline. invoke adds
  ``inputs`` = [[topic, partition, offset, value], ...] (what its read_committed consumer
  read; ``writes[i]`` is derived from ``inputs[i]``) and ``positions`` = [[topic, partition,
  next offset], ...] (sent with send_offsets_to_transaction); outcomes as for ``txn``.
- ``final-read``: ``isolation`` read_committed or read_uncommitted; ok: ``reads`` =
  [[topic, partition, offset, value], ...], ``ends`` and ``positions`` ([[topic, partition,
  offset]]: the high watermarks it read to, where it got), ``complete`` (every partition read
  to a high watermark that two successive queries agreed on).
- ``group-offsets``: ok: the pipeline group's committed offsets at the end, ``positions`` =
  [[topic, partition, offset]] (negative: nothing committed), read with require_stable.

Anomalies (fatal unless said otherwise):

- ``aborted-read``: a record of a transaction that did not commit (``fail``) is visible to a
  read_committed reader: in the final read, or read by the pipeline's consumer.
- ``partial-transaction``: some but not all records of a transaction (committed, or of unknown
  outcome) are in the read_committed final read (Jepsen's G1a-like partial visibility).
- ``lost-transaction``: a transaction whose commit was acknowledged has none of its records in
  the final read (read_committed or read_uncommitted).
- ``duplicate``: one value at two offsets.
- ``duplicate-output``: one input record transformed into two committed outputs (the pipeline
  is not exactly-once).
- ``offsets-without-transaction``: the group's committed offset is past an input record whose
  output is not committed, or an input's output is committed while the committed offset is not
  past it.
- ``inconsistent-offset``: one offset, two values, across the final reads and delivery reports.
- ``order-violation``: within a partition, a transaction's records out of produce order, or a
  record of a transaction begun after another one committed at a lower offset than its records.
- ``phantom-read``: a value read that no transaction wrote (or an output whose input nobody
  wrote).
- ``pipeline-lag`` (warning): committed input records the pipeline had not processed at the end.

Re-check a saved history: ``python jepsen-style/txn_checker.py <run>/history.jsonl`` prints the
report as JSON; exit status 0 valid, 1 invalid, 3 unknown (as run.py's).

Verdict: ``invalid`` when a fatal anomaly was found; else ``unknown`` when a final read is
missing or incomplete, the pipeline's committed offsets were not read, or nothing committed
(no check may pass vacuously); else ``valid``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from history import Op, load

EXAMPLES = 5
INVALID = ("aborted-read", "partial-transaction", "lost-transaction", "duplicate",
           "duplicate-output", "offsets-without-transaction", "inconsistent-offset",
           "order-violation", "phantom-read")
WARNINGS = ("pipeline-lag",)
RC, RU = "read_committed", "read_uncommitted"
TP = tuple[str, int]
INF = float("inf")


class _Found:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[Any]] = defaultdict(list)

    def add(self, name: str, example: Any) -> None:
        self.counts[name] += 1
        if len(self.examples[name]) < EXAMPLES:
            self.examples[name].append(example)


@dataclass(slots=True)
class Txn:
    kind: str  # "txn" or "ctp"
    id: Any
    invoke: Op
    writes: list[tuple[str, int, str]]
    sources: list[str | None] = field(default_factory=list)  # ctp: input value per write
    outcome: str = "info"  # ok, fail, info (never completed: info)
    done_index: float = INF  # completion index; INF unless ok or fail


@dataclass(slots=True)
class Read:
    op: Op | None
    values: dict[str, set[tuple[str, int, int]]] = field(default_factory=dict)
    by_tp: dict[TP, list[tuple[int, str]]] = field(default_factory=dict)
    positions: dict[TP, int] = field(default_factory=dict)
    ends: dict[TP, int] = field(default_factory=dict)
    complete: bool = False

    @property
    def state(self) -> str:
        if self.op is None:
            return "missing"
        if self.op["type"] != "ok":
            return self.op["type"]
        return "complete" if self.complete else "incomplete"


def _tp_map(rows: Any) -> dict[TP, int]:
    return {(str(t), int(p)): int(o) for t, p, o in rows or []}


def _final(ops: list[Op], isolation: str) -> Read:
    op = next((o for o in reversed(ops) if o["f"] == "final-read" and o["type"] != "invoke"
               and o.get("isolation") == isolation), None)
    r = Read(op)
    if op is None or op["type"] != "ok":
        return r
    values: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    by_tp: dict[TP, list[tuple[int, str]]] = defaultdict(list)
    for t, p, o, v in op.get("reads") or []:
        values[v].add((t, int(p), int(o)))
        by_tp[(t, int(p))].append((int(o), v))
    for rows in by_tp.values():
        rows.sort()
    r.values, r.by_tp = dict(values), dict(by_tp)
    r.positions, r.ends = _tp_map(op.get("positions")), _tp_map(op.get("ends"))
    # Only an explicit ``complete: true`` says the read got to the end of every partition.
    r.complete = op.get("complete") is True
    return r


def _transactions(ops: list[Op]) -> tuple[dict[tuple[str, Any], Txn], dict[str, Txn],
                                          list[Op]]:
    txns: dict[tuple[str, Any], Txn] = {}
    acks: list[Op] = []
    for op in ops:
        if op["f"] not in ("txn", "ctp"):
            continue
        key = (op["f"], op["txn"])
        if op["type"] == "invoke":
            writes = [(str(t), int(p), str(v)) for t, p, v in op.get("writes") or []]
            sources: list[str | None] = [str(i[3]) for i in op.get("inputs") or []]
            txns[key] = Txn(op["f"], op["txn"], op, writes, sources)
            continue
        tx = txns.get(key)
        if tx is None:
            continue
        tx.outcome = op["type"]
        # Finished for real-time order only when committed: the commit waits for every send
        # to be delivered, while an abort purges sends that may still land later (a hanging
        # transaction shows as an incomplete read_committed read, not here).
        if op["type"] == "ok":
            tx.done_index = op["index"]
        if op.get("acked"):
            acks.append(op)
    by_value = {v: tx for tx in txns.values() for _t, _p, v in tx.writes}
    return txns, by_value, acks


def check(ops: list[Op]) -> dict[str, Any]:
    found = _Found()
    txns, by_value, acks = _transactions(ops)
    rc, ru = _final(ops, RC), _final(ops, RU)
    # A read_committed read that stopped below the high watermarks the read_uncommitted read
    # reached (a transaction left open: the last stable offset held still) is not the whole log.
    if rc.complete and any(rc.positions.get(tp, -1) < end for tp, end in ru.ends.items()):
        rc.complete = False
    acked_at: dict[str, tuple[str, int, int]] = {}
    for op in acks:
        for t, p, o, v in op["acked"]:
            acked_at[str(v)] = (str(t), int(p), int(o))

    # One offset, two values; one value, two offsets; values nobody wrote.
    at: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    places: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    for v, where in acked_at.items():
        at[where].add(v)
        places[v].add(where)
    for read in (rc, ru):
        for v, where_all in read.values.items():
            for where in where_all:
                at[where].add(v)
                places[v].add(where)
    for where, vs in sorted(at.items()):
        if len(vs) > 1:
            found.add("inconsistent-offset", {"at": list(where), "values": sorted(vs)})
    for v, where_all in sorted(places.items()):
        if len(where_all) > 1:
            found.add("duplicate", {"value": v, "at": sorted(where_all)})
        if v not in by_value and (v in rc.values or v in ru.values):
            found.add("phantom-read", {"value": v, "at": sorted(where_all)})

    def covered(read: Read, t: str, p: int, v: str) -> bool:
        """Whether ``read`` shows if ``v`` (written to t/p) is in the log: a complete read
        does; an incomplete one only past the offset the value was acknowledged at."""
        if read.complete:
            return True
        where = acked_at.get(v)
        return where is not None and read.positions.get((t, p), -1) > where[2]

    # Every transaction all or nothing; committed ones all, aborted ones nothing.
    for tx in txns.values():
        if not tx.writes:
            continue
        seen = [w for w in tx.writes if w[2] in rc.values]
        missing = [w for w in tx.writes if w[2] not in rc.values and covered(rc, *w)]
        ex = {"kind": tx.kind, "txn": tx.id, "tid": tx.invoke.get("tid"),
              "outcome": tx.outcome, "writes": len(tx.writes),
              "visible": [w[2] for w in seen][:10], "missing": [w[2] for w in missing][:10]}
        if tx.outcome == "fail":
            if seen:
                found.add("aborted-read", {**ex, "reader": "final read (read_committed)"})
            continue
        if seen and missing:
            found.add("partial-transaction", ex)
        elif tx.outcome == "ok" and missing:
            found.add("lost-transaction", {**ex, "read": RC})
        if tx.outcome == "ok":
            gone = [w[2] for w in tx.writes if w[2] not in ru.values and covered(ru, *w)]
            if gone and not missing:
                found.add("lost-transaction", {**ex, "read": RU, "missing": gone[:10]})

    _check_pipeline(txns, by_value, rc, ops, found)
    for read in (rc, ru):
        _check_order(read, by_value, found)

    # Verdict.
    counts = {k: found.counts.get(k, 0) for k in (*INVALID, *WARNINGS)}
    committed = [tx for tx in txns.values() if tx.outcome == "ok" and tx.kind == "txn"]
    ctps = [tx for tx in txns.values() if tx.kind == "ctp"]
    group = _group_offsets(ops)
    reasons = []
    for read, name in ((rc, RC), (ru, RU)):
        if read.state != "complete":
            reasons.append(f"the {name} final read is {read.state}")
    if not committed:
        reasons.append("no transaction committed: nothing to check")
    # The pipeline ran (or the run asked for its offsets): its checks must have had work.
    pipeline = bool(ctps) or any(op["f"] == "group-offsets" for op in ops)
    if pipeline and group is None:
        reasons.append("the pipeline group's committed offsets were not read at the end")
    if pipeline and not any(tx.outcome == "ok" for tx in ctps):
        reasons.append("the pipeline committed no transaction")
    if any(counts[k] for k in INVALID):
        verdict = "invalid"  # definite anomalies: an incomplete read cannot undo them
    elif reasons:
        verdict = "unknown"
    else:
        verdict = "valid"
    outcomes: dict[str, dict[str, int]] = {"txn": defaultdict(int), "ctp": defaultdict(int)}
    for tx in txns.values():
        outcomes[tx.kind][tx.outcome] += 1
    faults = [op for op in ops if op["process"] == "nemesis" and op["f"].startswith("start-")]
    outputs = sum(1 for v in rc.values if v in by_value and by_value[v].kind == "ctp")
    return {
        "verdict": verdict,
        "valid": verdict == "valid",
        "unknown_reason": "; ".join(reasons) if verdict == "unknown" else None,
        "anomalies": counts,
        "examples": {k: v for k, v in found.examples.items() if v},
        "stats": {
            "transactions": {k: dict(v) for k, v in outcomes.items()},
            "planned_aborts": sum(1 for tx in txns.values() if tx.invoke.get("abort")),
            "records_written": sum(len(tx.writes) for tx in txns.values() if tx.kind == "txn"),
            "read_committed_values": len(rc.values),
            "read_uncommitted_values": len(ru.values),
            "pipeline_outputs": outputs,
            "pipeline_lag": counts["pipeline-lag"],
            "final_read": {RC: rc.state, RU: ru.state},
            "group_offsets": group is not None,
            "faults": len(faults),
        },
    }


def _group_offsets(ops: list[Op]) -> dict[TP, int] | None:
    op = next((o for o in reversed(ops) if o["f"] == "group-offsets" and o["type"] == "ok"),
              None)
    return None if op is None else _tp_map(op.get("positions"))


def _check_pipeline(txns: dict[tuple[str, Any], Txn], by_value: dict[str, Txn], rc: Read,
                    ops: list[Op], found: _Found) -> None:
    """Exactly-once from the input topics to the output topic, with the group's offsets."""
    ctps = [tx for tx in txns.values() if tx.kind == "ctp"]
    if not ctps:
        return
    # The pipeline's consumer reads read_committed: an input of an aborted transaction is an
    # aborted read, whether or not the pipeline's own transaction committed.
    for tx in ctps:
        for src in tx.sources:
            origin = by_value.get(src) if src is not None else None
            if origin is not None and origin.outcome == "fail":
                found.add("aborted-read", {"reader": "pipeline consumer", "value": src,
                                           "txn": origin.id, "ctp": tx.id})
    # Committed outputs per input value.
    outputs: dict[str, list[str]] = defaultdict(list)
    for tx in ctps:
        for (_t, _p, v), src in zip(tx.writes, tx.sources, strict=False):
            if v in rc.values and src is not None:
                outputs[src].append(v)
    for src, outs in sorted(outputs.items()):
        if len(outs) > 1:
            found.add("duplicate-output", {"input": src, "outputs": sorted(outs)})
        if src not in by_value:
            found.add("phantom-read", {"value": src, "reader": "pipeline consumer",
                                       "outputs": outs})
    group = _group_offsets(ops)
    if group is None or not rc.complete:
        return
    inputs = {(str(t), int(p)) for tx in ctps for t, p, _o, _v in tx.invoke.get("inputs") or []}
    inputs |= set(group)
    input_topics = {t for t, _p in inputs}
    for (t, p), rows in sorted(rc.by_tp.items()):
        if t not in input_topics:
            continue
        committed = max(0, group.get((t, p), 0))
        for o, v in rows:
            n = len(outputs.get(v, ()))
            if o < committed and n == 0:
                found.add("offsets-without-transaction", {
                    "input": v, "at": [t, p, o], "committed_offset": committed,
                    "why": "committed offset past an input whose output is not committed"})
            elif o >= committed and n:
                found.add("offsets-without-transaction", {
                    "input": v, "at": [t, p, o], "committed_offset": committed,
                    "outputs": outputs[v],
                    "why": "output committed, committed offset not past its input"})
            elif o >= committed:
                found.add("pipeline-lag", {"input": v, "at": [t, p, o],
                                           "committed_offset": committed})


def _check_order(read: Read, by_value: dict[str, Txn], found: _Found) -> None:
    """Within each partition of a final read: a transaction's records in produce order, and a
    transaction that began after another committed never below it."""
    for (t, p), rows in sorted(read.by_tp.items()):
        last_seq: dict[int, tuple[int, int]] = {}  # id(txn) -> (seq, offset)
        for o, v in rows:
            tx = by_value.get(v)
            if tx is None:
                continue
            seq = next(i for i, w in enumerate(tx.writes) if w[2] == v)
            before = last_seq.get(id(tx))
            if before is not None and seq < before[0]:
                found.add("order-violation", {
                    "read": read.op["isolation"] if read.op else None, "at": [t, p, o],
                    "txn": tx.id, "kind": tx.kind,
                    "why": f"write {seq} at offset {o} after write {before[0]} at {before[1]}"})
            last_seq[id(tx)] = (seq, o)
        # Walk down the offsets, remembering the earliest completion above: a record below
        # whose transaction was invoked after that completion is out of real-time order.
        earliest: tuple[float, int, Txn | None] = (INF, -1, None)
        for o, v in reversed(rows):
            tx = by_value.get(v)
            if tx is None:
                continue
            if tx.invoke["index"] > earliest[0] and earliest[2] is not None:
                other = earliest[2]
                found.add("order-violation", {
                    "read": read.op["isolation"] if read.op else None, "partition": [t, p],
                    "lower": {"offset": o, "txn": tx.id, "kind": tx.kind},
                    "higher": {"offset": earliest[1], "txn": other.id, "kind": other.kind},
                    "why": "a transaction begun after another finished sits below it"})
            if tx.done_index < earliest[0]:
                earliest = (tx.done_index, o, tx)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: txn_checker.py HISTORY.jsonl", file=sys.stderr)
        return 2
    r = check(load(Path(argv[0])))
    print(json.dumps(r, indent=2, default=str))
    return {"valid": 0, "invalid": 1}.get(r["verdict"], 3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
