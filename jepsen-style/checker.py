"""The checker: a pure function from a history (history.py) to a verdict.

The final read (workload.py ``final_read``) reads every partition from offset 0 after the
faults are healed and the clients stopped. It is *complete* when its ``ok`` op says
``complete: true``: it read up to high watermarks that two successive queries agreed on, so it
is the whole committed log. A final read that is ``info``, says ``complete: false`` (or not at
all), or is missing leaves the log's contents unknown past what it did read.

Anomalies (after Jepsen's Kafka queue workload):

- ``lost-write``: a value the log must hold that the final read lacks. With a complete final
  read: any acknowledged send, and any value a consumer polled (consumers only read below the
  high watermark, so what they read was committed, even when its send's outcome was unknown),
  whatever offsets other reads reached: records missing from the end of a partition are lost
  too. With an incomplete final read, only where it gives definite evidence: it read past the
  offset the send was acknowledged at, or past an offset a consumer read the value at.
- ``unseen``: an acknowledged send no read saw, while the final read was incomplete (or
  missing) and did not get to its offset. Not by itself invalid; it is why such a run's verdict
  is ``unknown``. A complete final read leaves none.
- ``duplicate``: one value at two offsets. Expected from a producer without idempotence that
  retries (Kafka's at-least-once): with ``allow_duplicates=True`` they are counted, not fatal.
- ``inconsistent-offset``: one offset, two values, across all reads and acknowledged sends
  (among them, an acknowledged offset that holds another value in the final read).
- ``poll-skip``: within one consumer session, two successive reads of a partition jump over an
  offset that some other read or send shows to exist.
- ``nonmonotonic-poll``: within one consumer session, a read at an offset at or below the previous.
- ``nonmonotonic-send``: one producer process acknowledged offsets in a partition out of order.
- ``aborted-read``: a send that definitely failed was read.
- ``phantom-read``: a value read that nobody ever sent.
- ``hw-regression``: the high watermark one consumer saw for a partition went backwards. As in
  Kafka (KAFKA-2334), a newly elected leader serves the high watermark it had as a follower
  (or loaded from its checkpoint after a restart) until its followers catch up, so a consumer
  can see it drop after a leader change without any record being lost. Counted and shown, but
  it makes the run invalid only with ``strict_hw=True``.
- ``committed-regression``: the committed offset of a group's partition went backwards: a read
  of it returned less than a read that had completed before this one was invoked.

The verdict (``verdict``): ``invalid`` when a fatal anomaly was found (even if the final read
was incomplete), else ``unknown`` when the final read was not complete (``unknown_reason``
says why), else ``valid``. ``valid`` is True only for ``valid``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from typing import Any

from history import Op

EXAMPLES = 5
# Anomalies that make a run invalid (``unseen`` only says the final read did not finish).
INVALID = ("lost-write", "duplicate", "inconsistent-offset", "poll-skip", "nonmonotonic-poll",
           "nonmonotonic-send", "aborted-read", "phantom-read", "committed-regression")
WARNINGS = ("hw-regression", "unseen")


class _Found:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[Any]] = defaultdict(list)

    def add(self, name: str, example: Any) -> None:
        self.counts[name] += 1
        if len(self.examples[name]) < EXAMPLES:
            self.examples[name].append(example)


def _final_read(ops: list[Op]) -> Op | None:
    """The last completion of a final read (ok, info or fail), or None."""
    for op in reversed(ops):
        if op["f"] == "final-read" and op["type"] != "invoke":
            return op
    return None


def check(ops: list[Op], *, strict_hw: bool = False,
          allow_duplicates: bool = False) -> dict[str, Any]:
    found = _Found()
    invoked: dict[int, Op] = {}  # value -> send invoke
    acked: dict[int, Op] = {}  # value -> send ok
    failed: dict[int, Op] = {}
    info: dict[int, Op] = {}
    # (partition, offset) -> {value: first op index that showed it}
    at: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    read_at: dict[int, set[tuple[int, int]]] = defaultdict(set)  # value -> {(p, o)} from reads
    # The same, from every read but the final read: what consumers saw before it.
    earlier_at: dict[int, set[tuple[int, int]]] = defaultdict(set)
    polls = final_reads = 0
    reads_total = 0
    final = _final_read(ops)
    final_ok = final if final is not None and final["type"] == "ok" else None
    # Only an explicit ``complete: true`` counts: without it nothing says the read got to the
    # end of every partition (workload.py final_read).
    complete = final_ok is not None and final_ok.get("complete") is True
    final_values: set[int] = set()
    final_max: dict[int, int] = defaultdict(lambda: -1)  # partition -> highest offset it read
    # JSON turns the partition keys of ``ends`` into strings (history.py load).
    ends = ({int(p): int(e) for p, e in (final_ok.get("ends") or {}).items()}
            if final_ok is not None else {})

    for op in ops:
        f, t = op["f"], op["type"]
        if f == "send":
            v = op["value"]
            if t == "invoke":
                invoked[v] = op
            elif t == "ok":
                acked[v] = op
                at[(op["partition"], op["offset"])].setdefault(v, op["index"])
            elif t == "fail":
                failed[v] = op
            elif t == "info":
                info[v] = op
        elif f in ("poll", "final-read") and t == "ok":
            if f == "poll":
                polls += 1
            else:
                final_reads += 1
            is_final = op is final
            for p, o, v in op["reads"]:
                reads_total += 1
                if is_final:
                    final_values.add(v)
                    final_max[p] = max(final_max[p], o)
                else:
                    earlier_at[v].add((p, o))
                at[(p, o)].setdefault(v, op["index"])
                read_at[v].add((p, o))

    # One offset, two values.
    for (p, o), values in sorted(at.items()):
        if len(values) > 1:
            found.add("inconsistent-offset", {"partition": p, "offset": o,
                                              "values": sorted(values)})
    # One value, two offsets.
    for v, places in read_at.items():
        offsets = set(places)
        if v in acked:
            offsets.add((acked[v]["partition"], acked[v]["offset"]))
        if len(offsets) > 1:
            found.add("duplicate", {"value": v, "at": sorted(offsets)})
        if v in failed:
            found.add("aborted-read", {"value": v, "send": failed[v]["index"],
                                       "read_at": sorted(places)})
        if v not in invoked:
            found.add("phantom-read", {"value": v, "read_at": sorted(places)})
    # Values the log must hold that the final read lacks. A complete final read is the whole
    # log, so everything acknowledged or read before must be in it, wherever other reads got
    # to: a partition that lost its last records has no later offset to give the loss away.
    # An incomplete one only shows what it read: offsets at or below the highest it reached.
    def covered(p: int, o: int) -> bool:
        return complete or final_max[p] >= o

    def lost(v: int, p: int, o: int, why: str, **extra: Any) -> None:
        found.add("lost-write", {"value": v, "partition": p, "offset": o, "why": why,
                                 "final_read_complete": complete,
                                 "final_read_reached": final_max[p],
                                 "final_read_end": ends.get(p), **extra})

    for v, op in acked.items():
        if v in final_values:
            continue
        p, o = op["partition"], op["offset"]
        earlier = earlier_at.get(v, set())
        if covered(p, o) or any(covered(q, k) for q, k in earlier):
            lost(v, p, o, "read earlier, missing from the final read" if earlier
                 else "acknowledged, never read", acked_at_index=op["index"],
                 read_at=sorted(earlier))
        elif not earlier:
            found.add("unseen", {"value": v, "partition": p, "offset": o,
                                 "final_read_reached": final_max[p]})
    # Consumers read below the high watermark only: a value they read was committed, whatever
    # its send's outcome, and must survive like an acknowledged one.
    for v, places in earlier_at.items():
        if v in acked or v in final_values:
            continue
        hit = sorted((q, k) for q, k in places if covered(q, k))
        if hit:
            send = "info" if v in info else "fail" if v in failed else None
            lost(v, hit[0][0], hit[0][1], "read earlier, missing from the final read",
                 send=send, read_at=sorted(places))

    # Offsets some reader saw, per partition, for skip detection (an acknowledged offset that
    # nobody read is a lost write, not a skip).
    known: dict[int, list[int]] = defaultdict(list)
    for seen_at in read_at.values():
        for p, o in seen_at:
            known[p].append(o)
    for sorted_offsets in known.values():
        sorted_offsets.sort()

    def exists_between(p: int, lo: int, hi: int) -> int | None:
        """A known offset k with lo < k < hi, or None."""
        ks = known.get(p, [])
        i = bisect_right(ks, lo)
        if i < len(ks) and ks[i] < hi:
            return ks[i]
        return None

    # Per consumer session: monotonic, gap-free polls; per consumer: watermarks.
    last: dict[tuple[Any, Any, int], int] = {}
    start: dict[tuple[Any, Any], dict[int, int]] = {}
    hw_seen: dict[tuple[Any, int], tuple[int, int]] = {}
    for op in ops:
        if op["type"] != "ok":
            continue
        proc, session = op["process"], op.get("session")
        if op["f"] == "assign":
            start[(proc, session)] = dict(op.get("offsets") or {})
        elif op["f"] in ("poll", "final-read"):
            for p, o, v in op["reads"]:
                key = (proc, session, p)
                prev = last.get(key)
                if prev is None:
                    s = start.get((proc, session), {}).get(p, -1)
                    if s >= 0 and o > s and (k := exists_between(p, s - 1, o)) is not None:
                        found.add("poll-skip", {"process": proc, "session": session,
                                                "partition": p, "from_start": s, "to": o,
                                                "skipped": k, "op": op["index"]})
                elif o <= prev:
                    found.add("nonmonotonic-poll", {"process": proc, "session": session,
                                                    "partition": p, "prev": prev, "offset": o,
                                                    "value": v, "op": op["index"]})
                elif o > prev + 1:
                    k = exists_between(p, prev, o)
                    if k is not None:
                        found.add("poll-skip", {"process": proc, "session": session,
                                                "partition": p, "prev": prev, "offset": o,
                                                "skipped": k, "op": op["index"]})
                last[key] = o
            for p, hw in (op.get("watermarks") or {}).items():
                if hw < 0:
                    continue
                before = hw_seen.get((proc, p))
                if before is not None and hw < before[0]:
                    found.add("hw-regression", {"process": proc, "partition": p,
                                                "before": before[0], "after": hw,
                                                "ops": [before[1], op["index"]]})
                if before is None or hw > before[0]:
                    hw_seen[(proc, p)] = (hw, op["index"])

    # Per producer process and partition: acknowledged offsets increase.
    send_last: dict[tuple[Any, int], tuple[int, int]] = {}
    for op in ops:
        if op["f"] == "send" and op["type"] == "ok":
            pkey = (op["process"], op["partition"])
            before = send_last.get(pkey)
            if before is not None and op["offset"] <= before[0]:
                found.add("nonmonotonic-send", {"process": op["process"],
                                                "partition": op["partition"],
                                                "prev": before[0], "offset": op["offset"],
                                                "ops": [before[1], op["index"]]})
            send_last[pkey] = (op["offset"], op["index"])

    # Committed offsets per group partition never go backwards: a read of them must not return
    # less than a read that had completed before it was invoked. Reads that overlap in time may
    # be ordered either way (one may see a commit the other started before), so each read is
    # compared with the floor as it stood when the read was invoked.
    committed: dict[tuple[Any, int], tuple[int, int]] = {}
    floor_at_invoke: dict[Any, dict[tuple[Any, int], tuple[int, int]]] = {}
    for op in ops:
        if op["f"] != "committed":
            continue
        if op["type"] == "invoke":
            floor_at_invoke[op["process"]] = dict(committed)
            continue
        floor = floor_at_invoke.pop(op["process"], None)
        if op["type"] != "ok":
            continue
        if floor is None:  # no invoke recorded: compare with everything before it
            floor = committed
        for p, off in (op.get("offsets") or {}).items():
            if off < 0:
                continue
            gkey = (op.get("group"), p)
            before = floor.get(gkey)
            if before is not None and off < before[0]:
                found.add("committed-regression", {"group": op.get("group"), "partition": p,
                                                   "before": before[0], "after": off,
                                                   "ops": [before[1], op["index"]]})
            latest = committed.get(gkey)
            if latest is None or off > latest[0]:
                committed[gkey] = (off, op["index"])

    counts = {k: found.counts.get(k, 0) for k in (*INVALID, *WARNINGS)}
    fatal = tuple(k for k in INVALID if not (allow_duplicates and k == "duplicate"))
    if strict_hw:
        fatal = (*fatal, "hw-regression")
    if any(counts[k] for k in fatal):
        verdict = "invalid"  # definite anomalies: an incomplete final read cannot undo them
    elif not complete:
        verdict = "unknown"
    else:
        verdict = "valid"
    if final is None:
        final_state = "missing"
    elif final_ok is None:
        final_state = final["type"]  # info: outcome unknown
    else:
        final_state = "complete" if complete else "incomplete"
    unknown_reason = {
        "missing": "no final read",
        "incomplete": "the final read did not reach the end of every partition",
        "info": "the final read's outcome is unknown (it ended info)",
    }.get(final_state, f"the final read ended {final_state}")
    faults = [op for op in ops if op["process"] == "nemesis" and op["f"].startswith("start-")]
    return {
        "verdict": verdict,
        "valid": verdict == "valid",
        "unknown_reason": unknown_reason if verdict == "unknown" else None,
        "anomalies": counts,
        "examples": {k: v for k, v in found.examples.items() if v},
        "stats": {
            "sends_attempted": len(invoked),
            "sends_acknowledged": len(acked),
            "sends_failed": len(failed),
            "sends_unknown": len(info),
            "values_read": len(read_at),
            "acknowledged_read": sum(1 for v in acked if v in read_at),
            "unknown_read": sum(1 for v in info if v in read_at),
            "reads": reads_total,
            "polls": polls,
            "final_reads": final_reads,
            "final_read": final_state,
            "faults": len(faults),
        },
    }
