"""The fault suite's membership profile (jepsen-style/membership.py): controllers added and
removed under kill and partition on a dynamic quorum; the checker must find every acknowledged
topic in every node's committed log and the nodes in agreement. About 90 s: in the slow run
(the checker's rules are unit tested on hand-built logs in
tests/unit/test_jepsen_membership_checker.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

import run
from cluster import netns_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not netns_available(),
                                 reason="needs root and `ip netns` for per-node networks")]


def test_membership_profile_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run.main(["--profile", "membership", "--seed", "1", "--out", str(out)])
    [report] = [json.loads(p.read_text()) for p in out.glob("run-*/report.json")]
    assert code == 0 and report["verdict"] == "valid", report
    s = report["stats"]
    assert s["creates_acknowledged"] > 20 and s["controllers_added"] >= 2, s
    assert report["faults"], "no fault ran"
