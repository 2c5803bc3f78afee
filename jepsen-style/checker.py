"""The checker: a pure function from a history (history.py) to a verdict.

Anomalies (after Jepsen's Kafka queue workload):

- ``lost-write``: an acknowledged send never read, although some read of its partition got to an
  offset at or past the send's offset (the final read from offset 0 always does, once it
  reaches the high watermark); or one that was read, but is missing from the final read
  although that read got past its offset (the log lost it later).
- ``unseen``: an acknowledged send never read and no read got that far (the final read was cut
  short); reported, but not by itself invalid.
- ``duplicate``: one value at two offsets. Expected from a producer without idempotence that
  retries (Kafka's at-least-once): with ``allow_duplicates=True`` they are counted, not fatal.
- ``inconsistent-offset``: one offset, two values, across all reads and acknowledged sends.
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
    max_read: dict[int, int] = defaultdict(lambda: -1)  # partition -> highest offset read
    polls = final_reads = 0
    reads_total = 0
    final_values: set[int] = set()
    final_max: dict[int, int] = defaultdict(lambda: -1)

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
            for p, o, v in op["reads"]:
                reads_total += 1
                if f == "final-read":
                    final_values.add(v)
                    final_max[p] = max(final_max[p], o)
                at[(p, o)].setdefault(v, op["index"])
                read_at[v].add((p, o))
                max_read[p] = max(max_read[p], o)

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
    # Acknowledged, then never read, or missing from the final read although it read past it.
    unseen = 0
    for v, op in acked.items():
        p, o = op["partition"], op["offset"]
        if v not in read_at:
            if max_read[p] >= o:
                found.add("lost-write", {"value": v, "partition": p, "offset": o,
                                         "acked_at_index": op["index"], "why": "never read",
                                         "highest_offset_read": max_read[p]})
            else:
                unseen += 1
                found.add("unseen", {"value": v, "partition": p, "offset": o})
        elif final_reads and v not in final_values and final_max[p] >= o:
            found.add("lost-write", {"value": v, "partition": p, "offset": o,
                                     "acked_at_index": op["index"],
                                     "why": "read earlier, missing from the final read",
                                     "final_read_reached": final_max[p]})

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
    valid = not any(counts[k] for k in fatal)
    faults = [op for op in ops if op["process"] == "nemesis" and op["f"].startswith("start-")]
    return {
        "valid": valid,
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
            "faults": len(faults),
        },
    }
