"""The metadata quorum's engines side by side: ``python -m tools.engine_bench
[--engines kraft,pysyncobj] [--rounds 3] [--time-limit 40]`` (``make bench-engines``).

For each engine (``controller.quorum.engine``; kraft is the default and needs no key):

- safety, from runs of the fault suite's metadata profile (``jepsen-style/run.py
  --profile metadata --engine E``; by default one of kill, pause, partition, lose-unsynced
  and one of lose-unsynced-majority: a power loss on 2 of 3 controllers; ``--fault-runs``;
  root and network namespaces needed, else "n/a"), summed over the runs: nodes whose storage
  could not be opened after a fault (a start that failed, or files the pysyncobj engine moved
  aside, broker/controller/pysyncobj_journal.py), committed metadata records lost
  (acknowledged creates and deletes missing from the committed log and image), reordered,
  divergent images or logs, stale reads from an isolated leader, and the runs' verdicts;
- on 3 combined nodes on loopback (``tools.proc_cluster.ProcCluster``, Kafka's Raft timeouts:
  election 1000 ms, fetch 2000 ms): election time after kill -9 of the active controller
  (median over ``--rounds``, ``tools.kraft_bench.elections``); committed metadata records per
  second (CreateTopics of 10 partitions each, 16 in flight, to the active controller, each
  answered once committed, ``tools.kraft_bench.create_rate``); recovery after a full restart:
  kill -9 of every node, start them all, until a CreateTopics is answered NONE.

Every figure comes from one run of this command on a shared machine: compare engines within
one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.client import KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics
from tools.kraft_bench import _send, create_rate, elections, wait_leader
from tools.netns import netns_available
from tools.proc_cluster import ProcCluster

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("kraft", "pysyncobj")
FAULT_RUNS = ("kill,pause,partition,lose-unsynced@66", "lose-unsynced-majority@67")
SUMMED = ("storage_unopenable", "lost", "reordered", "divergent", "stale", "acknowledged",
          "faults")


def fault_runs(engine: str, runs: Sequence[str], time_limit: float,
               out: Path) -> dict[str, Any]:
    """The metadata-profile runs ``NEMESES@SEED``, their figures summed, verdicts listed."""
    if not netns_available():
        return {"why": "needs root and ip netns"}
    each = []
    for k, spec in enumerate(runs):
        nemeses, _, seed = spec.partition("@")
        r = fault_run(engine, nemeses, int(seed or 66), time_limit, out / f"{k}")
        print(f"   fault run {spec}: {r}", flush=True)
        each.append(r)
    done = [r for r in each if "verdict" in r]
    if not done:
        return {"why": "; ".join(r["why"] for r in each)}
    res: dict[str, Any] = {key: sum(r[key] for r in done) for key in SUMMED}
    res["verdict"] = "/".join(r["verdict"] for r in each if "verdict" in r)
    whys = [f"{spec}: {r['why']}" for spec, r in zip(runs, each, strict=True) if "why" in r]
    if whys:
        res["why"] = "; ".join(whys)
    return res


def fault_run(engine: str, nemeses: str, seed: int, time_limit: float,
              out: Path) -> dict[str, Any]:
    """One metadata-profile run; its figures, or why there are none."""
    cmd = [sys.executable, str(REPO / "jepsen-style" / "run.py"), "--profile", "metadata",
           "--engine", engine, "--seed", str(seed), "--time-limit", str(time_limit),
           "--nemesis", nemeses, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env,
                          timeout=time_limit + 600)
    reports = sorted(out.glob("run-*/report.json"))
    if not reports:
        return {"why": f"no report (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
    r = json.loads(reports[0].read_text())
    a = r["anomalies"]
    return {"storage_unopenable": r.get("storage_unopenable_nodes", 0),
            "lost": a["lost-create"] + a["lost-delete"], "reordered": a["reordered"],
            "divergent": a["divergent-image"] + a["divergent-log"],
            "stale": a["stale-read"], "verdict": r["verdict"],
            "acknowledged": r["stats"].get("create_ok", 0) + r["stats"].get("delete_ok", 0),
            "faults": len(r["faults"]),
            **({"why": f"{r['verdict']}: {_last_line(r['notes'][0])}"}
               if r["verdict"] != "valid" and r["notes"] else {})}


def _last_line(note: str) -> str:
    """A harness error's last line (the exception of a node that did not start), shortened."""
    lines = [x for x in note.replace("\\n", "\n").splitlines() if x.strip(" ')")]
    return (lines[-1] if lines else note)[-200:]


async def create_one(ctl: ProcCluster, name: str, timeout_s: float) -> float:
    """Seconds until a CreateTopics sent to whichever controller leads is answered NONE."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, KafkaConnectionError, KafkaTimeoutError,
                                 OSError):
            p = await wait_leader(ctl, ctl.controller_ids, timeout_s=deadline - time.monotonic())
            req = create_topics.REQUEST.cls(topics=[create_topics.REQUEST.CreatableTopic(
                name=name, num_partitions=1, replication_factor=1, assignments=[],
                configs=[])], timeout_ms=5000)
            resp = await _send(ctl.nodes[p.leader_id].controller_port, ApiKey.CREATE_TOPICS,
                               req, 6.0)
            if resp.topics[0].error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                return time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no CreateTopics answered in {timeout_s:.0f} s")


async def cluster_figures(engine: str, rounds: int, topics: int) -> dict[str, Any]:
    extra = {"controller.quorum.election.timeout.ms": "1000",
             "controller.quorum.fetch.timeout.ms": "2000",
             "broker.heartbeat.interval.ms": "2000", "broker.session.timeout.ms": "9000"}
    with tempfile.TemporaryDirectory(prefix=f"engine-bench-{engine}-") as tmp:
        ctl = ProcCluster(Path(tmp), controllers=3, combined=True, extra=extra,
                          quorum_engine=engine)
        try:
            ctl.start(wait=False)
            await wait_leader(ctl, ctl.controller_ids)
            await create_one(ctl, "warm-up", 60)
            times = await elections(ctl, rounds)
            await wait_leader(ctl, ctl.controller_ids)
            await asyncio.sleep(3.0)  # the restarted node registers and is unfenced
            records, dt = await create_rate(ctl, topics, 10, 16)
            ctl.kill_all()
            t0 = time.monotonic()
            ctl.start(wait=False)
            await create_one(ctl, "after-restart", 120)
            recovery = time.monotonic() - t0
        finally:
            ctl.stop_all()
            ctl.kill_all()
    return {"election_ms": statistics.median(times) * 1000, "election_max_ms": max(times) * 1000,
            "commits_per_s": records / dt, "recovery_s": recovery}


def run_engine(engine: str, a: argparse.Namespace, out: Path) -> dict[str, Any]:
    print(f"== {engine}", flush=True)
    res: dict[str, Any] = {}
    if not a.skip_faults:
        res["faults"] = fault_runs(engine, a.fault_runs, a.time_limit, out / engine)
        print(f"   fault runs: {res['faults']}", flush=True)
    try:
        res["cluster"] = asyncio.run(cluster_figures(engine, a.rounds, a.topics))
    except Exception as e:  # noqa: BLE001 - an engine that does not start is a result too
        res["cluster"] = {"why": f"{type(e).__name__}: {e}"[:300]}
    print(f"   cluster: {res['cluster']}", flush=True)
    return res


def _cell(d: dict[str, Any] | None, key: str, fmt: str) -> str:
    if d is None:
        return "-"
    if key not in d:
        return "n/a"
    return format(d[key], fmt)


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [("nodes whose storage could not be opened after a fault", "faults",
             "storage_unopenable", "d"),
            ("committed metadata records lost", "faults", "lost", "d"),
            ("reordered records", "faults", "reordered", "d"),
            ("divergent images / logs", "faults", "divergent", "d"),
            ("stale reads from an isolated leader", "faults", "stale", "d"),
            ("fault run verdicts", "faults", "verdict", "s"),
            ("faults injected", "faults", "faults", "d"),
            ("acknowledged creates+deletes in the fault runs", "faults", "acknowledged", "d"),
            ("election after kill -9, median ms", "cluster", "election_ms", ".0f"),
            ("election after kill -9, max ms", "cluster", "election_max_ms", ".0f"),
            ("metadata commits per second", "cluster", "commits_per_s", ",.0f"),
            ("recovery after a full restart, s", "cluster", "recovery_s", ".2f")]
    engines = list(results)
    width = max(len(r[0]) for r in rows)
    table = [[_cell(results[e].get(part), key, fmt) for e in engines]
             for _, part, key, fmt in rows]
    cw = [max([10, len(e)] + [len(cells[k]) for cells in table]) for k, e in enumerate(engines)]
    print()
    print(f"| {'figure':<{width}} | "
          + " | ".join(f"{e:>{w}}" for e, w in zip(engines, cw, strict=True)) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (w + 2) for w in cw) + "|")
    for (label, *_), cells in zip(rows, table, strict=True):
        print(f"| {label:<{width}} | "
              + " | ".join(f"{c:>{w}}" for c, w in zip(cells, cw, strict=True)) + " |")
    for e in engines:
        for part in ("faults", "cluster"):
            why = (results[e].get(part) or {}).get("why")
            if why:
                print(f"note: {e} {part}: {why}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="engine_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--rounds", type=int, default=3, help="kills of the active controller")
    ap.add_argument("--topics", type=int, default=100, help="CreateTopics for the commit rate")
    ap.add_argument("--time-limit", type=float, default=40.0, help="seconds of the fault run")
    ap.add_argument("--fault-runs", nargs="+", default=list(FAULT_RUNS),
                    metavar="NEMESES@SEED", help="metadata-profile runs per engine "
                    f"(default: {' '.join(FAULT_RUNS)})")
    ap.add_argument("--skip-faults", action="store_true", help="no fault-suite run")
    ap.add_argument("--out", type=Path, default=Path("engine-bench-results"))
    a = ap.parse_args(argv)
    engines = [e for e in a.engines.split(",") if e]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    results = {e: run_engine(e, a, a.out) for e in engines}
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
