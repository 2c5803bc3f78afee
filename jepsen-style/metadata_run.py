"""One run of the metadata profile (``run.py --profile metadata``): a cluster whose nodes serve
the HTTP admin API, the metadata workload (``metadata_workload.py``) under the nemesis, heal,
one node killed and restarted (it rebuilds its image from its whole log), the final
read, then every node's ``__cluster_metadata`` log read from disk and the history
checked (``metadata_checker.py``). ``run.py`` parses the arguments and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import metadata_checker
from cluster import CONTROLLER_PORT, Cluster
from history import History
from metadata_workload import MetadataConfig, MetadataWorkload
from nemesis import Nemesis, run_schedule, schedule
from report_lines import print_faults, print_findings, print_header
from workload import WorkloadConfig, create_topic

FETCH_TIMEOUT_MS = 2000  # controller.quorum.fetch.timeout.ms of these runs (Kafka's default)
ELECTION_TIMEOUT_MS = 1000


def run_once(a: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    extra = {"controller.quorum.fetch.timeout.ms": str(FETCH_TIMEOUT_MS),
             "controller.quorum.election.timeout.ms": str(ELECTION_TIMEOUT_MS),
             "min.insync.replicas": "1"}
    cluster = Cluster(out / "cluster", n=a.nodes, controllers=a.controllers, extra=extra,
                      seed=seed, admin=True, quorum_engine=a.engine)
    history = History(out / "history.jsonl")
    cfg = MetadataConfig(
        bootstrap=cluster.bootstrap_servers,
        admin_urls={i: n.spec.admin_url for i, n in cluster.nodes.items()
                    if n.spec.admin_url is not None},
        controllers={i: (cluster.nodes[i].ip, CONTROLLER_PORT) for i in cluster.controller_ids},
        brokers_by_node={i: n.bootstrap for i, n in cluster.nodes.items() if n.is_broker},
        brokers=len(cluster.broker_ids), rate=a.rate)
    # The nemesis resolves "leader" targets from a partition of this topic.
    anchor = WorkloadConfig(bootstrap=cluster.bootstrap_servers, topic="md-anchor",
                            partitions=1, replication_factor=min(3, a.nodes))
    faults = schedule(rnd.randrange(2**31), a.kinds, a.time_limit) if a.kinds else []
    notes: list[str] = []
    final_complete = False
    workload: MetadataWorkload | None = None
    t_start = time.monotonic()
    history.add("info", "config", "harness", value={
        "voters": cluster.controller_ids, "fetch_timeout_ms": FETCH_TIMEOUT_MS,
        "engine": a.engine})
    try:
        cluster.setup()
        cluster.start()
        create_topic(anchor)
        workload = MetadataWorkload(cfg, history, random.Random(rnd.randrange(2**31)))
        nemesis = Nemesis(cluster, history, anchor)
        workload.start()
        stop = threading.Event()
        nem = threading.Thread(target=run_schedule,
                               args=(nemesis, faults, time.monotonic(), stop), daemon=True)
        nem.start()
        nem.join(a.time_limit)
        stop.set()
        nem.join(120)
        nemesis.heal_all()
        history.add("info", "healed", "nemesis", value={})
        restart_one(cluster, nemesis, rnd)
        workload.finish()
        final_complete = workload.final_read(timeout=90)
        if not final_complete:
            notes.append("final read incomplete: the quorum and the nodes' images did not "
                         "settle at one offset in 90 s")
    except Exception as e:  # noqa: BLE001 - any harness failure still gets a report
        notes.append(f"harness error: {e!r}")
        history.add("info", "harness-error", "harness", error=repr(e))
    finally:
        if workload is not None:
            workload.stop.set()
        cluster.teardown()
        history.close()
    logs = {i: metadata_checker.read_node_log(n.dir) for i, n in cluster.nodes.items()}
    result = metadata_checker.check(history.ops, logs, voters=cluster.controller_ids,
                                    fetch_timeout_ms=FETCH_TIMEOUT_MS,
                                    final_complete=final_complete)
    crashed = [op for op in history.ops if op["f"] in ("worker-crash", "harness-error")]
    storage = storage_after_faults(cluster)
    report = {
        "seed": seed,
        "workload": "metadata",
        "engine": a.engine,
        "reproduce": (f"python jepsen-style/run.py --profile metadata --seed {seed} "
                      f"--time-limit {a.time_limit:g} --nemesis {a.nemesis or 'none'} "
                      f"--nodes {a.nodes} --controllers {a.controllers} --engine {a.engine}"),
        "duration_s": round(time.monotonic() - t_start, 1),
        "faults": [{"f": op["f"], **op.get("value", {})} for op in history.ops
                   if op["process"] == "nemesis" and op["f"].startswith("start-")],
        "fault_seconds": 0.0,
        "final_read_complete": final_complete,
        "storage_unopenable_nodes": len(storage),
        "storage_unopenable": storage,
        "notes": notes + [f"{op['f']}: {op.get('error')}" for op in crashed],
        **result,
    }
    if crashed and report["verdict"] == "valid":
        report["verdict"], report["valid"] = "unknown", False
        report["unknown_reason"] = "a worker or the harness crashed"
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


SET_ASIDE = "could not be opened"  # broker/controller/pysyncobj_journal.py's ERROR


def storage_after_faults(cluster: Cluster) -> dict[int, list[str]]:
    """Per node whose storage could not be opened at some start during the run: the engine's
    ERROR lines for the files it moved aside, and the last line of a start that failed
    (a traceback before "Kafka Server started")."""
    out: dict[int, list[str]] = {}
    for i, node in sorted(cluster.nodes.items()):
        try:
            text = node.log_path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        found = [line[line.find("ERROR"):][:300] for line in text.splitlines()
                 if SET_ASIDE in line]
        for run in ("\n" + text).split("\n--- start ")[1:]:
            if "Kafka Server started" not in run and "Traceback" in run:
                lines = [x for x in run.splitlines() if x.strip()]
                found.append(f"did not start: {lines[-1][:200]}")
        if found:
            out[i] = found
    return out


def restart_one(cluster: Cluster, nemesis: Nemesis, rnd: random.Random) -> None:
    """Kill -9 and restart one node once healed: it rebuilds its image from its whole log (one
    batch per epoch), which must give the image the others built record by record."""
    node = rnd.choice(sorted(cluster.nodes))
    nemesis.history.add("info", "start-kill", "nemesis",
                        value={"target": "restart-after-heal", "nodes": [node]})
    cluster.nodes[node].kill()
    time.sleep(1.0)
    cluster.start([node], wait=False)
    cluster.nodes[node].wait_for("Kafka Server started", 120)
    nemesis.history.add("info", "stop-kill", "nemesis", value={"nodes": [node]})


def print_report(r: dict[str, Any]) -> None:
    print_header(r, f"metadata, engine {r['engine']}")
    print_faults(r)
    print(f"   operations: {json.dumps(r['stats'])}")
    if r.get("storage_unopenable"):
        print(f"   storage that could not be opened after a fault: "
              f"{r['storage_unopenable_nodes']} node(s)")
        for node, lines in r["storage_unopenable"].items():
            print(f"     node {node}: {lines[0]}" + (f" (+{len(lines) - 1})" if len(lines) > 1
                                                     else ""))
    print_findings(r)
    print(f"   reproduce: {r['reproduce']}")
