"""The fault suite with ``--security sasl_ssl`` (jepsen-style/security.py): a short run of the
queue workload under kill -9 on 3 nodes whose listeners all speak SASL_SSL (quorum with PLAIN,
replication with SCRAM-SHA-512, the confluent-kafka clients with SCRAM-SHA-256, certificates
made by openssl at setup); the checker must find nothing, and every node's log shows the
three logins."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

import run
from cluster import netns_available

pytestmark = [
    pytest.mark.skipif(not netns_available(),
                       reason="needs root and `ip netns` for per-node networks"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]


def test_short_sasl_ssl_run_under_kill_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = run.main(["--profile", "smoke", "--nemesis", "kill", "--time-limit", "12",
                     "--security", "sasl_ssl", "--seed", "3", "--out", str(out)])
    [report] = sorted(out.glob("run-*/report.json"))
    r = json.loads(report.read_text())
    assert r["valid"], json.dumps(r, indent=1)[:4000]
    assert code == 0 and r["final_read_complete"]
    assert r["config"]["security"] == "sasl_ssl" and "--security sasl_ssl" in r["reproduce"]
    assert r["stats"]["sends_acknowledged"] > 50
    assert r["stats"]["acknowledged_read"] == r["stats"]["sends_acknowledged"]
    for log in sorted(report.parent.glob("cluster/node-*/server.log")):
        text = log.read_text()
        for login in ("User:controller (SASL PLAIN)", "User:broker (SASL SCRAM-SHA-512)",
                      "User:jepsen (SASL SCRAM-SHA-256)"):
            assert f"on PLAINTEXT authenticated as {login}" in text or \
                f"on CONTROLLER authenticated as {login}" in text, (log, login)
