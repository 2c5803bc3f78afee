"""The fault suite's smoke profile and its planted-unsafe runs (jepsen-style/run.py), on real
3-node clusters in network namespaces.

- smoke: 45 s of the queue workload (acks=all, idempotence, RF 3, min.insync.replicas 2)
  under kill -9, SIGSTOP, partitions and lost unsynced writes; the checker must find nothing.
  Once on 3 combined nodes, once on 3 brokers with 3 separate controllers. Their seeds plan
  all four faults within the 45 s (``nemesis.schedule``; the profile's 60 s with other seeds
  are for runs by hand).
- planted-unsafe: acks=1, the followers of a leader paused while it takes writes alone, then
  the leader killed: a follower takes over without them. The checker must report lost writes
  (the suite can fail). The same schedule with acks=all must stay valid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

import run
from cluster import netns_available

pytestmark = pytest.mark.skipif(not netns_available(),
                                reason="needs root and `ip netns` for per-node networks")


def run_profile(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "results"
    code = run.main([*args, "--out", str(out)])
    reports = sorted(out.glob("run-*/report.json"))
    assert len(reports) == 1, reports
    return code, json.loads(reports[0].read_text())


def test_smoke_profile_finds_no_anomalies(tmp_path: Path) -> None:
    # Lost unsynced writes of one node, a partition in halves, the leader killed, one paused.
    code, r = run_profile(tmp_path, "--profile", "smoke", "--seed", "152", "--time-limit", "45")
    assert r["valid"], json.dumps(r, indent=1)[:4000]
    assert code == 0
    assert r["notes"] == []
    assert r["final_read_complete"]
    assert len(r["faults"]) >= 2  # faults really happened, and were written to the history
    s = r["stats"]
    assert s["sends_acknowledged"] > 200
    assert s["acknowledged_read"] == s["sends_acknowledged"]
    assert (tmp_path / "results" / "summary.json").exists()
    history = next((tmp_path / "results").glob("run-*/history.jsonl")).read_text().splitlines()
    assert sum('"process":"nemesis"' in line for line in history) >= 4  # start + heal each


def test_smoke_with_separate_controllers_finds_no_anomalies(tmp_path: Path) -> None:
    """The production KRaft shape: 3 broker-only nodes and 3 controller-only nodes (101-103)
    forming the metadata quorum; the faults reach controllers as well as brokers."""
    # A minority paused, every node killed, a minority losing unsynced writes, the active
    # controller cut off.
    code, r = run_profile(tmp_path, "--profile", "smoke", "--controllers", "3", "--seed", "1131",
                          "--time-limit", "45")
    assert r["valid"], json.dumps(r, indent=1)[:4000]
    assert code == 0 and r["final_read_complete"]
    assert r["config"]["controllers"] == 3
    hit = {i for f in r["faults"] for i in f.get("nodes", [])}
    assert hit & {101, 102, 103} and hit & {1, 2, 3}, r["faults"]
    s = r["stats"]
    assert s["sends_acknowledged"] > 200
    assert s["acknowledged_read"] == s["sends_acknowledged"]
    roles = sorted(line for n in (tmp_path / "results").glob("run-*/cluster/node-*")
                   for line in (n / "server.properties").read_text().splitlines()
                   if line.startswith("process.roles="))
    assert roles == ["process.roles=broker"] * 3 + ["process.roles=controller"] * 3


def test_planted_unsafe_run_is_detected_as_lost_writes(tmp_path: Path) -> None:
    code, r = run_profile(tmp_path, "--profile", "planted-unsafe", "--seed", "1")
    assert r["anomalies"]["lost-write"] > 0, json.dumps(r, indent=1)[:4000]
    assert not r["valid"]
    assert code == 0  # this profile expects lost writes
    assert any(f["f"] == "start-followers-lag" for f in r["faults"])


def test_same_schedule_with_acks_all_loses_nothing(tmp_path: Path) -> None:
    code, r = run_profile(tmp_path, "--profile", "planted-safe", "--seed", "1")
    assert r["valid"], json.dumps(r, indent=1)[:4000]
    assert code == 0
    assert r["stats"]["sends_acknowledged"] > 100
    assert r["stats"]["acknowledged_read"] == r["stats"]["sends_acknowledged"]


def test_whole_cluster_power_loss_loses_writes_unless_every_message_is_fsynced(
        tmp_path: Path) -> None:
    """lose-unsynced-all: every node loses what it had not fsynced at the same moment (file
    tails and directory entries, storage/fsync_journal.py). With Kafka's default flush policy
    (the page cache, replication for durability) acknowledged records are lost, which shows
    the fault bites; with log.flush.interval.messages=1 none are. One power loss each, 16 s."""
    args = ["--nemesis", "lose-unsynced-all", "--time-limit", "16", "--seed", "5",
            "--consumer-mode", "assign", "--no-commit"]
    _code, r = run_profile(tmp_path / "default", *args)
    assert r["anomalies"]["lost-write"] > 0, json.dumps(r, indent=1)[:4000]
    code, r = run_profile(tmp_path / "fsync", *args, "--flush-every-message")
    assert r["valid"] and code == 0, json.dumps(r, indent=1)[:4000]
