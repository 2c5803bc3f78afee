"""The fault suite's transactional workload (jepsen-style/txn_workload.py, checked by
jepsen-style/txn_checker.py) on a real 3-node cluster in network namespaces, without faults:
transactional producers across two topics (some transactions aborted on purpose) and an
exactly-once consume-transform-produce pipeline through confluent-kafka; the checker must find
the run valid. Skipped, with the reason, while the brokers do not announce the transaction APIs
(ApiVersions without EndTxn and the rest): the run probes them first.

The same workload under faults: ``python jepsen-style/run.py --profile txn`` (not in the
default test run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

import run
from cluster import netns_available

pytestmark = pytest.mark.skipif(not netns_available(),
                                reason="needs root and `ip netns` for per-node networks")


def test_txn_workload_without_faults_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run.main(["--profile", "txn-clean", "--seed", "3", "--out", str(out)])
    reports = sorted(out.glob("run-*/report.json"))
    assert len(reports) == 1, reports
    r = json.loads(reports[0].read_text())
    if r["unsupported"]:
        assert code == 3 and r["verdict"] == "unknown"  # never valid without transactions
        pytest.skip(r["unsupported"])
    assert r["valid"], json.dumps(r, indent=1)[:4000]
    assert code == 0
    assert r["notes"] == [] and r["final_read_complete"]
    s = r["stats"]
    assert s["final_read"] == {"read_committed": "complete", "read_uncommitted": "complete"}
    txns, ctps = s["transactions"]["txn"], s["transactions"]["ctp"]
    assert txns.get("ok", 0) >= 20, s
    assert txns.get("fail", 0) >= 1 and s["planned_aborts"] >= 1, s  # aborts on purpose
    assert ctps.get("ok", 0) >= 1, s
    # Every committed input went through the pipeline exactly once, and was checked so.
    assert s["pipeline_outputs"] > 0 and s["pipeline_lag"] == 0, s
    assert s["group_offsets"]
