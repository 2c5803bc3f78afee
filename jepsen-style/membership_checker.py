"""The membership profile's checker (``run.py --profile membership``, membership.py): after
controllers were added and removed under kill and partition faults, did the metadata quorum
keep every committed record, and do the nodes agree?

Inputs: the history (topic creations by the metadata writer: ``f`` "create-topic", ``value``
the topic name; controller changes: "add-controller" / "remove-controller"; nemesis events)
and every node's metadata log as read from its disk after the run (``NodeLog``: entries
``(offset, epoch, control type or None, data)`` from the log start, which must be 0: the
profile keeps snapshots off), plus the committed offset (the leader's high watermark once
every node had caught up after healing).

Rules, each counted as an anomaly:

- ``lost-metadata``: a creation acknowledged to the client (``ok``) whose TopicRecord is not
  below the committed offset of some node's log (a committed record lost, or one the
  controller acknowledged before it was committed);
- ``divergent-log``: two nodes hold different entries (epoch, kind or bytes) at an offset both
  have below the committed offset (Raft's log matching broken);
- ``divergent-image``: the topics (name -> id) replayed from the committed records differ
  between nodes;
- ``divergent-voters``: the latest committed voter set differs between nodes;
- ``short-log``: a node's log ends below the committed offset although it had caught up (it
  lost entries it had acknowledged to the leader).

A LeaderChange control entry counts like any other: Raft's entry is a placeholder
(kraft/raft_election.py) that every node encodes with the voter set in force at its offset
(``RaftManager.voters_at``, broker/controller/metadata_log.py), so equal logs hold equal bytes.

The verdict is ``valid`` with no anomaly, ``invalid`` with any, ``unknown`` when the logs
could not be read or the committed offset was not found (``notes`` say why).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kraft.codec import DecodeError
from kraft.metadata_records import MetadataRecordType, decode_metadata_record

__all__ = ["ANOMALIES", "NodeLog", "check"]

ANOMALIES = ("lost-metadata", "divergent-log", "divergent-image", "divergent-voters",
             "short-log")
VOTERS_CONTROL_TYPE = 6  # Kafka's KRaftVoters control record (storage/control_records.py)

Entry = tuple[int, int, int | None, bytes]  # offset, epoch, control type (None: data), data


@dataclass(slots=True)
class NodeLog:
    node_id: int
    entries: list[Entry] = field(default_factory=list)
    start_offset: int = 0

    @property
    def end_offset(self) -> int:
        return self.entries[-1][0] + 1 if self.entries else self.start_offset


def _topics(entries: Iterable[Entry]) -> tuple[dict[str, uuid.UUID], list[str]]:
    """Topics (name -> id) after replaying the data records, and every name ever created."""
    topics: dict[str, uuid.UUID] = {}
    by_id: dict[uuid.UUID, str] = {}
    created: list[str] = []
    for _offset, _epoch, control, data in entries:
        if control is not None:
            continue
        try:
            rtype, _version, rec = decode_metadata_record(data)
        except DecodeError:
            continue
        if rtype == MetadataRecordType.TOPIC_RECORD:
            topics[rec.name] = rec.topic_id
            by_id[rec.topic_id] = rec.name
            created.append(rec.name)
        elif rtype == MetadataRecordType.REMOVE_TOPIC_RECORD:
            name = by_id.pop(rec.topic_id, None)
            if name is not None:
                topics.pop(name, None)
    return topics, created


def _last_voters(entries: Iterable[Entry]) -> bytes | None:
    last = None
    for _offset, _epoch, control, data in entries:
        if control == VOTERS_CONTROL_TYPE:
            last = data
    return last


def check(ops: list[dict[str, Any]], logs: dict[int, NodeLog],
          committed: int | None) -> dict[str, Any]:
    anomalies = {k: 0 for k in ANOMALIES}
    examples: dict[str, list[Any]] = {}
    notes: list[str] = []

    def found(kind: str, example: Any) -> None:
        anomalies[kind] += 1
        examples.setdefault(kind, [])
        if len(examples[kind]) < 5:
            examples[kind].append(example)

    acked = [op["value"] for op in ops if op.get("f") == "create-topic" and op["type"] == "ok"]
    changes = {f: sum(1 for op in ops if op.get("f") == f and op["type"] == "ok")
               for f in ("add-controller", "remove-controller")}
    stats = {"creates_acknowledged": len(acked),
             "creates_failed": sum(1 for op in ops
                                   if op.get("f") == "create-topic" and op["type"] == "fail"),
             "creates_unknown": sum(1 for op in ops
                                    if op.get("f") == "create-topic" and op["type"] == "info"),
             "controllers_added": changes["add-controller"],
             "controllers_removed": changes["remove-controller"],
             "committed_offset": committed, "nodes": sorted(logs)}
    if committed is None or not logs:
        notes.append("no committed offset or no node log: nothing can be checked")
        return _result("unknown", anomalies, examples, stats, notes)
    if any(log.start_offset > 0 for log in logs.values()):
        notes.append("a node's log starts after a snapshot: records below it are not checked")
    prefixes: dict[int, list[Entry]] = {}
    for nid, log in sorted(logs.items()):
        prefix = [e for e in log.entries if e[0] < committed]
        prefixes[nid] = prefix
        if log.end_offset < committed:
            found("short-log", {"node": nid, "log_end": log.end_offset, "committed": committed})
    # Log matching: the same entry at every offset two nodes both hold below the commit.
    nodes = sorted(prefixes)
    reference = {e[0]: (n, e) for n in reversed(nodes) for e in prefixes[n]}
    for n in nodes:
        for e in prefixes[n]:
            other_node, other = reference[e[0]]
            if other_node == n or other[1:] == e[1:]:
                continue
            found("divergent-log", {"offset": e[0], "nodes": [n, other_node],
                                    "epochs": [e[1], other[1]]})
    images = {n: _topics(prefixes[n]) for n in nodes}
    for topic in acked:
        missing = [n for n in nodes if topic not in images[n][1]]
        if missing:
            found("lost-metadata", {"topic": topic, "missing_on": missing})
    first = nodes[0]
    for n in nodes[1:]:
        if images[n][0] != images[first][0]:
            only = sorted(set(images[n][0].items()) ^ set(images[first][0].items()))
            found("divergent-image", {"nodes": [first, n], "differ": [str(x) for x in only[:5]]})
        if _last_voters(prefixes[n]) != _last_voters(prefixes[first]):
            found("divergent-voters", {"nodes": [first, n]})
    stats["topics"] = len(images[first][0])
    verdict = "invalid" if any(anomalies.values()) else "valid"
    return _result(verdict, anomalies, examples, stats, notes)


def _result(verdict: str, anomalies: dict[str, int], examples: dict[str, list[Any]],
            stats: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    return {"verdict": verdict, "valid": verdict == "valid", "anomalies": anomalies,
            "examples": examples, "stats": stats, "checker_notes": notes}
