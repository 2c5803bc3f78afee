"""The fault suite's metadata profile (jepsen-style/run.py --profile metadata) on a real
3-node cluster in network namespaces: topic creates (AdminClient and the HTTP admin API) and
deletes, preferred leader elections, reads of every node's image and of DescribeQuorum, under
a partition isolating the active controller for 9.6 s, then kill -9 of the new one (seed 106's
schedule), and one node restarted after healing. The checker (jepsen-style/metadata_checker.py) must find no lost, reordered or divergent metadata
and no stale read from the isolated leader, and must have really seen the work: acknowledged
operations, image samples from every node, the final images settled at one offset.
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


def run_profile(out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = run.main([*args, "--out", str(out)])
    reports = sorted(out.glob("run-*/report.json"))
    assert len(reports) == 1, reports
    return code, json.loads(reports[0].read_text())


def test_metadata_profile_under_kill_and_partition(tmp_path: Path) -> None:
    code, r = run_profile(tmp_path / "results", "--profile", "metadata", "--seed", "106",
                          "--time-limit", "30", "--nemesis", "kill,partition")
    assert r["verdict"] == "valid", json.dumps(r, indent=1)[:4000]
    assert code == 0 and r["final_read_complete"]
    faults = {(f["f"], f.get("target")) for f in r["faults"]}
    assert ("start-kill", "controller") in faults, r["faults"]
    assert ("start-partition", "isolate-controller") in faults, r["faults"]
    s = r["stats"]
    assert s["create_ok"] >= 20 and s["delete_ok"] >= 3, s
    assert s["committed_topic_records"] >= s["create_ok"]
    assert s["quorum-read_ok"] > 0 and s["image_samples"] > 60, s
    assert s["node_logs_read"] == [1, 2, 3]


@pytest.mark.slow
def test_metadata_profile_with_the_pysyncobj_engine(tmp_path: Path) -> None:
    """The same schedule with the metadata quorum on pysyncobj (controller.quorum.engine)."""
    code, r = run_profile(tmp_path / "results", "--profile", "metadata", "--seed", "106",
                          "--time-limit", "30", "--nemesis", "kill,partition",
                          "--engine", "pysyncobj")
    assert r["verdict"] == "valid", json.dumps(r, indent=1)[:4000]
    assert code == 0 and r["engine"] == "pysyncobj" and r["final_read_complete"]
    props = (tmp_path / "results").glob("run-*/cluster/node-1/server.properties")
    assert "controller.quorum.engine=pysyncobj" in next(props).read_text()
    assert r["stats"]["create_ok"] >= 20 and r["stats"]["image_samples"] > 60
