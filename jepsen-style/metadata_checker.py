"""Checker of the metadata workload (``metadata_workload.py``): the history, plus every node's
``__cluster_metadata`` log read from disk after the run (``read_node_log``).

Anomalies (all fatal):

- ``lost-create`` (judged once the final read settled): an acknowledged CreateTopics whose topic has no TopicRecord in the committed
  log (below the final high watermark, on any node) and is not in the final image either;
  or whose topic is missing from the final image though no delete of it was ever attempted.
- ``lost-delete``: an acknowledged DeleteTopics whose topic is still in the final image.
- ``reordered``: two acknowledged operations, the second invoked after the first was
  acknowledged, whose records are committed in the other order (a create's TopicRecord, a
  delete's RemoveTopicRecord), or a topic whose RemoveTopicRecord precedes its TopicRecord.
- ``divergent-log``: two nodes' logs hold different entries at one offset below the final
  high watermark (committed entries are the same everywhere); compared only when the final
  read settled, since a deposed leader keeps its uncommitted tail until it hears of the new
  one.
- ``divergent-image``: two nodes' images at the same offset with different digests (sampled
  during the run from ``GET /v1/metadata/image``, and at the end), or an image that stopped
  replaying (``loader_failed``), or, once settled, nodes whose final images stand at different
  offsets.
- ``stale-read``: a controller answered DescribeQuorum as the leader, in the epoch it led
  when cut off, although when the request was sent it had been cut off from a majority of the
  voters (partition, or its peers paused/killed) for longer than the fetch timeout plus
  ``slack_ms``: check-quorum should have made it resign (``kraft/raft_leader.py``).

The verdict is ``invalid`` with any anomaly, else ``unknown`` when the final read did not
settle or no node log could be read, else ``valid``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from broker.controller.metadata_log import decode_entries
from kraft.metadata_records import MetadataRecordType, decode_metadata_record
from storage.errors import StorageError

ANOMALIES = ("lost-create", "lost-delete", "reordered", "divergent-log", "divergent-image",
             "stale-read")
METADATA_PARTITION_DIR = "__cluster_metadata-0"


# -- reading a node's log -------------------------------------------------------------------

def read_node_log(node_dir: Path) -> dict[int, tuple[int, bool, bytes]]:
    """offset -> (epoch, control, data) of every entry in the node's metadata log segments
    (under ``node_dir``, wherever its metadata log dir is); a torn tail is ignored."""
    out: dict[int, tuple[int, bool, bytes]] = {}
    for part in sorted(node_dir.rglob(METADATA_PARTITION_DIR)):
        for seg in sorted(part.glob("*.log")):
            with contextlib.suppress(StorageError, ValueError, OSError):
                for e in decode_entries(seg.read_bytes()):
                    out[e.offset] = (e.epoch, e.control, e.data)
    return out


def topic_records(log: dict[int, tuple[int, bool, bytes]], below: int) -> list[tuple[int, str, str]]:
    """(offset, kind, key) of the TopicRecords (``topic``, key = name, plus
    ``topic-id``, key = id) and RemoveTopicRecords (``remove``, key = id) below ``below``."""
    out: list[tuple[int, str, str]] = []
    for off in sorted(o for o in log if o < below):
        _epoch, control, data = log[off]
        if control:
            continue
        try:
            rtype, _v, rec = decode_metadata_record(data)
        except Exception:  # noqa: BLE001, S112 - an undecodable record is not ours to judge
            continue
        if rtype == MetadataRecordType.TOPIC_RECORD:
            out.append((off, "topic", rec.name))
            out.append((off, "topic-id", f"{rec.name}={rec.topic_id}"))
        elif rtype == MetadataRecordType.REMOVE_TOPIC_RECORD:
            out.append((off, "remove", str(rec.topic_id)))
    return out


# -- isolation from the nemesis events ------------------------------------------------------

def isolation_intervals(ops: list[dict[str, Any]], voters: list[int]
                        ) -> dict[int, list[tuple[int, int]]]:
    """node -> [(start ns, end ns)] during which it could not reach a majority of ``voters``
    (itself counted): its links cut by a partition, or the other voters paused or killed (the
    paused or killed nodes themselves are left out)."""
    majority = len(voters) // 2 + 1
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    open_since: dict[int, int] = {}
    end = ops[-1]["time"] if ops else 0
    for op in ops:
        if op["process"] != "nemesis" or op["f"] in ("healed",):
            continue
        f, v = op["f"], op.get("value") or {}
        if f.startswith("start-"):
            cut = _unreachable_pairs(f[6:], v, voters)
            # A paused or killed node serves nothing while down; what it answers after it
            # is back is not judged by this rule.
            down = set(v.get("nodes", [])) if f[6:] != "partition" else set()
            for node in voters:
                if node in down:
                    continue
                reach = 1 + sum(1 for w in voters if w != node and (node, w) not in cut)
                if reach < majority and node not in open_since:
                    open_since[node] = op["time"]
        elif f.startswith("stop-"):
            for node, since in list(open_since.items()):
                out[node].append((since, op["time"]))
                del open_since[node]
    for node, since in open_since.items():
        out[node].append((since, end))
    return out


def _unreachable_pairs(kind: str, v: dict[str, Any], voters: list[int]) -> set[tuple[int, int]]:
    cut: set[tuple[int, int]] = set()
    if kind == "partition":
        groups = v.get("groups")
        if groups:
            where = {n: i for i, g in enumerate(groups) for n in g}
            for a in voters:
                for b in voters:
                    if a != b and where.get(a, -1 - a) != where.get(b, -1 - b):
                        cut.add((a, b))
        sides = v.get("sides")
        if sides:
            for a in sides[0]:
                for b in sides[1]:
                    cut |= {(a, b), (b, a)}
        for a, b in v.get("cut", []):
            cut |= {(a, b), (b, a)}
    elif kind in ("pause", "kill", "lose-unsynced", "lose-unsynced-all",
                  "lose-unsynced-majority"):
        for down in v.get("nodes", []):
            for a in voters:
                if a != down:
                    cut |= {(a, down), (down, a)}
    return cut


# -- the check ------------------------------------------------------------------------------

def check(ops: list[dict[str, Any]], logs: dict[int, dict[int, tuple[int, bool, bytes]]], *,
          voters: list[int], fetch_timeout_ms: int, slack_ms: int = 1000,
          final_complete: bool = True) -> dict[str, Any]:
    found: dict[str, list[Any]] = {k: [] for k in ANOMALIES}
    final_q = next((op for op in reversed(ops) if op["f"] == "final-quorum"), None)
    final_images = {op["node"]: op for op in ops if op["f"] == "final-image"}
    settled = final_q is not None
    # Below a high watermark some leader reported, entries are committed. Only once settled
    # (every voter's log end at the final high watermark) has every node dropped the
    # uncommitted tail it may have written as a deposed leader, so logs are compared then only.
    hw = final_q["high_watermark"] if final_q is not None else max(
        (op["high_watermark"] for op in ops if op["f"] == "quorum-read" and op["type"] == "ok"),
        default=0)

    # Divergent logs: committed offsets must hold the same entry everywhere.
    reference: dict[int, tuple[int, tuple[int, bool, bytes]]] = {}
    for node, log in sorted(logs.items()):
        for off, entry in log.items():
            if off >= hw or (not settled and off in reference):
                continue
            seen = reference.get(off)
            if seen is None:
                reference[off] = (node, entry)
            elif seen[1] != entry and len(found["divergent-log"]) < 50:
                found["divergent-log"].append({"offset": off, "nodes": [seen[0], node],
                                               "epochs": [seen[1][0], entry[0]]})
    merged = {off: e for off, (_n, e) in reference.items()}
    records = topic_records(merged, hw)
    created_at = {key: off for off, kind, key in records if kind == "topic"}
    ids = {key.split("=", 1)[0]: key.split("=", 1)[1] for _o, kind, key in records
           if kind == "topic-id"}
    removed_at = {key: off for off, kind, key in records if kind == "remove"}
    log_from_zero = bool(merged) and min(merged) == 0

    # Images: the same offset must mean the same image.
    by_offset: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for op in ops:
        if op["f"] in ("image", "final-image") and op["type"] == "ok":
            by_offset[op["offset"]][op["digest"]].append(op["node"])
            if op.get("loader_failed"):
                found["divergent-image"].append({"node": op["node"], "offset": op["offset"],
                                                 "loader_failed": op["loader_failed"]})
    for off, digests in sorted(by_offset.items()):
        if len(digests) > 1:
            found["divergent-image"].append({"offset": off, "digests": {
                d[:12]: sorted(set(n)) for d, n in digests.items()}})
    if settled and len({op["offset"] for op in final_images.values()}) > 1:
        found["divergent-image"].append({"final_offsets": {
            n: op["offset"] for n, op in sorted(final_images.items())}})
    final_topics: set[str] | None = None
    if final_images:
        final_topics = set.intersection(*(set(op["topics"]) for op in final_images.values()))

    # Lost and reordered operations.
    invoked_delete = {op["value"]["topic"] for op in ops
                      if op["f"] == "delete" and op["type"] == "invoke"}
    acked: list[tuple[int, int, str, str, int | None]] = []  # invoke t, ok t, f, topic, offset
    invoke_time: dict[tuple[Any, str], int] = {}
    for op in ops:
        if op["f"] not in ("create", "delete"):
            continue
        topic = op["value"]["topic"]
        if op["type"] == "invoke":
            invoke_time[(op["process"], topic)] = op["time"]
            continue
        if op["type"] != "ok":
            continue
        t0 = invoke_time.get((op["process"], topic), op["time"])
        if op["f"] == "create":
            off = created_at.get(topic)
            in_final = final_topics is not None and topic in final_topics
            if settled and ((off is None and log_from_zero and not in_final)
                            or (not in_final and topic not in invoked_delete)):
                found["lost-create"].append({"topic": topic, "acknowledged_at_ms":
                                             op["time"] // 1_000_000,
                                             "topic_record_offset": off,
                                             "via": op["value"].get("via")})
            acked.append((t0, op["time"], "create", topic, off))
        else:
            tid = ids.get(topic)
            off = removed_at.get(tid) if tid is not None else None
            if settled and final_topics is not None and topic in final_topics:
                found["lost-delete"].append({"topic": topic, "acknowledged_at_ms":
                                             op["time"] // 1_000_000})
            acked.append((t0, op["time"], "delete", topic, off))
    for topic, tid in ids.items():
        r = removed_at.get(tid)
        if r is not None and r < created_at.get(topic, -1):
            found["reordered"].append({"topic": topic, "topic_record": created_at[topic],
                                       "remove_record": r})
    acked.sort(key=lambda a: a[1])
    # Real-time order: an operation acknowledged before another was invoked commits first.
    # Sweep by invoke time, keeping the highest committed offset acknowledged so far.
    by_invoke = sorted(acked, key=lambda a: a[0])
    best: tuple[int, tuple[Any, ...]] | None = None
    i = 0
    for b in by_invoke:
        while i < len(acked) and acked[i][1] < b[0]:
            a = acked[i]
            if a[4] is not None and (best is None or a[4] > best[0]):
                best = (a[4], a)
            i += 1
        if best is not None and b[4] is not None and b[4] < best[0] \
                and len(found["reordered"]) < 50:
            a = best[1]
            found["reordered"].append({"first": {"f": a[2], "topic": a[3], "offset": a[4]},
                                       "then": {"f": b[2], "topic": b[3], "offset": b[4]}})

    # Stale reads from an isolated leader: a claim in the epoch it led when cut off (a new
    # epoch is a new election, e.g. once killed peers are back and vote, and may be genuine).
    isolated = isolation_intervals(ops, voters)
    limit_ns = (fetch_timeout_ms + slack_ms) * 1_000_000
    leader_reads = [op for op in ops if op["f"] == "quorum-read" and op["type"] == "ok"
                    and op["leader_id"] == op["node"]]
    for op in leader_reads:
        t = op.get("invoke_time", op["time"])
        for start, end in isolated.get(op["node"], []):
            before = [r["epoch"] for r in leader_reads if r["time"] < start]
            held = max(before) if before else min(
                r["epoch"] for r in leader_reads if r["node"] == op["node"]
                and start <= r.get("invoke_time", r["time"]) <= end)
            if start + limit_ns <= t <= end and op["epoch"] <= held:
                found["stale-read"].append({
                    "node": op["node"], "epoch": op["epoch"],
                    "isolated_for_ms": (t - start) // 1_000_000,
                    "high_watermark": op["high_watermark"]})
                break

    counts = {k: len(v) for k, v in found.items()}
    stats = _stats(ops)
    stats.update({"final_high_watermark": hw if settled else None,
                  "committed_topic_records": len(created_at),
                  "committed_remove_records": len(removed_at),
                  "node_logs_read": sorted(n for n, log in logs.items() if log),
                  "image_samples": sum(len(n) for d in by_offset.values() for n in d.values())})
    invalid = any(counts.values())
    if invalid:
        verdict = "invalid"
    elif not (settled and final_complete) or not any(logs.values()):
        verdict = "unknown"
    else:
        verdict = "valid"
    return {"verdict": verdict, "valid": verdict == "valid", "anomalies": counts,
            "examples": {k: v[:5] for k, v in found.items() if v}, "stats": stats}


def _stats(ops: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = defaultdict(int)
    for op in ops:
        if op["f"] in ("create", "delete", "elect", "quorum-read") and op["type"] != "invoke":
            out[f"{op['f']}_{op['type']}"] += 1
    return dict(sorted(out.items()))
