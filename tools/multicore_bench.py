"""RF 1 produce and consume throughput of one node with 1 and with 2 worker processes
(``node.worker.processes``, tools/node_workers.py), driven by kcat:
``python -m tools.multicore_bench`` (``make bench-multicore``).

The worker counts alternate in one run (``--rounds`` rounds of 1, 2, 1, 2, ...), each on a
fresh one-node cluster (combined controller and broker, so worker 0 also hosts the quorum),
a topic of ``--partitions`` partitions spread by the controller over the workers. For each
run: produce records/s (kcat -P, acks=1; the records the topic gained are counted), consume
records/s (kcat -C from the beginning; the records read are counted), and the CPU seconds the
node's processes (the node and its workers, from /proc) and kcat used, per million records:
the basis of the extrapolation in docs/multicore.md. The load average is printed before and
after, since the machine may be shared. The summary gives each figure's median per worker
count and the ratio of 2 workers to 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools.proc_cluster import ProcCluster, _port_free
from tools.produce_bench import KCAT_PRODUCER, _create_topic, _end_offsets, consume_throughput_kcat

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (through /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (processes gone count 0)."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start_node(root: Path, workers: int) -> ProcCluster:
    """A one-node cluster with ``workers`` processes, its worker ports checked free."""
    for attempt in range(20):
        offset = random.randrange(50, 2000)
        cluster = ProcCluster(root / f"try-{attempt}", controllers=1, combined=True, extra={
            "node.worker.processes": str(workers), "node.worker.port.offset": str(offset),
            "num.partitions": "1", "log.flush.interval.messages": str(2**62),
            # Kafka's defaults, not the tests' fast ones: a loaded machine must not fence.
            "broker.heartbeat.interval.ms": "2000", "broker.session.timeout.ms": "9000"})
        port = cluster.nodes[1].broker_port
        assert port is not None
        if all(port + k * offset < 65536 and _port_free(port + k * offset)
               for k in range(1, workers)):
            cluster.start()
            return cluster
    raise RuntimeError("no free worker ports found")


def wait_brokers(bootstrap: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap], capture_output=True,
                           text=True, timeout=30, check=False)
        if r.returncode == 0 and len(json.loads(r.stdout)["brokers"]) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{count} brokers not registered within {timeout}s")


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partitions led per broker id."""
    r = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-t", topic], capture_output=True,
                       text=True, timeout=30, check=True)
    out: dict[int, int] = {}
    for t in json.loads(r.stdout)["topics"]:
        for p in t["partitions"]:
            out[p["leader"]] = out.get(p["leader"], 0) + 1
    return out


def end_offsets(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0) -> int:
    """The sum of the topic's end offsets, retried while a partition has no leader."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return _end_offsets(bootstrap, topic, partitions)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def produce_kcat(bootstrap: str, topic: str, records: int, size: int, partitions: int,
                 workdir: Path, batch_size: int) -> float:
    """kcat -P (acks=1, linger.ms=5, ``batch.size``) of ``records`` values from a file; the
    records the topic gained are counted."""
    data = workdir / f"values-{size}.txt"
    if not data.exists():
        data.write_bytes((b"x" * size + b"\n") * records)
    before = end_offsets(bootstrap, topic, partitions)
    t0 = time.perf_counter()
    r = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-l", "-X", "acks=1",
                        *KCAT_PRODUCER, "-X", f"batch.size={batch_size}", str(data)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       timeout=600, check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"kcat -P failed ({r.returncode}): {r.stderr[-500:]}")
    got = end_offsets(bootstrap, topic, partitions) - before
    if got != records:
        raise RuntimeError(f"kcat produced {got} of {records} records")
    return dt


def run_once(workers: int, records: int, size: int, partitions: int,
             batch_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="multicore-bench-") as tmp:
        cluster = start_node(Path(tmp), workers)
        try:
            bootstrap = cluster.bootstrap_servers
            wait_brokers(bootstrap, workers)
            topic = "bench"
            asyncio.run(_create_topic(cluster, topic, partitions, 1))
            time.sleep(1.0)
            spread = leaders(bootstrap, topic)
            proc = cluster.nodes[1].proc
            assert proc is not None
            pids = process_tree(proc.pid)
            if len(pids) < workers:
                raise RuntimeError(f"expected {workers} node processes, found {pids}")
            each0, kcat0 = [cpu_seconds([p]) for p in pids], _children_cpu()
            dt = produce_kcat(bootstrap, topic, records, size, partitions, Path(tmp),
                              batch_size)
            each1, kcat1 = [cpu_seconds([p]) for p in pids], _children_cpu()
            cdt = consume_throughput_kcat(bootstrap, topic, records)
            each2, kcat2 = [cpu_seconds([p]) for p in pids], _children_cpu()
            node0, node1, node2 = sum(each0), sum(each1), sum(each2)
            # The busiest node process's share of one core while kcat ran: near 1.0, that
            # process (one core) was the limit.
            busy_p = max(b - a for a, b in zip(each0, each1, strict=True)) / dt
            busy_c = max(b - a for a, b in zip(each1, each2, strict=True)) / cdt
            # How the produce work split over the node's processes (worker 0 first).
            split = [b - a for a, b in zip(each0, each1, strict=True)]
        finally:
            cluster.stop_all()
            cluster.kill_all()
    m = records / 1e6
    return {"produce": records / dt, "consume": records / cdt,
            "produce_node_cpu": (node1 - node0) / m, "produce_kcat_cpu": (kcat1 - kcat0) / m,
            "consume_node_cpu": (node2 - node1) / m, "consume_kcat_cpu": (kcat2 - kcat1) / m,
            "produce_busiest": busy_p, "consume_busiest": busy_c,
            "worker0_share": split[0] / max(sum(split), 1e-9),
            "produce_s": dt, "consume_s": cdt, "leaders": float(len(spread))}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="multicore_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16384,
                    help="the producer's batch.size (default Kafka's 16384; 1000000 gives "
                         "large batches, where kcat itself becomes the bottleneck)")
    ap.add_argument("--workers", default="1,2", help="worker counts, alternated each round")
    args = ap.parse_args(argv)
    if shutil.which("kcat") is None:
        print("kcat is needed (apt-get install kcat)", file=sys.stderr)
        return 1
    counts = [int(w) for w in args.workers.split(",")]
    print(f"cores: {os.cpu_count()}; load average before: {_loadavg()}", flush=True)
    print(f"{args.records:,} records of {args.size} B, {args.partitions} partitions, RF 1, "
          f"kcat acks=1 linger.ms=5 batch.size={args.batch_size}", flush=True)
    results: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    for rnd in range(args.rounds):
        for w in counts:
            r = run_once(w, args.records, args.size, args.partitions, args.batch_size)
            results[w].append(r)
            print(f"round {rnd + 1} workers {w}: produce {r['produce']:>10,.0f} rec/s "
                  f"(node {r['produce_node_cpu']:.2f} + kcat {r['produce_kcat_cpu']:.2f} "
                  f"CPU s/M, busiest node process {r['produce_busiest']:.0%} of a core)  "
                  f"consume {r['consume']:>10,.0f} rec/s (node {r['consume_node_cpu']:.2f} + "
                  f"kcat {r['consume_kcat_cpu']:.2f} CPU s/M, busiest "
                  f"{r['consume_busiest']:.0%})  produce CPU in worker 0 "
                  f"{r['worker0_share']:.0%}  "
                  f"leaders on {r['leaders']:.0f} broker(s)", flush=True)
    print(f"load average after: {_loadavg()}", flush=True)
    print("\nmedians (CPU: seconds per million records; busiest: the busiest node process's "
          "share of one core)")
    print("| workers | produce rec/s | node CPU | kcat CPU | busiest | consume rec/s | "
          "node CPU | kcat CPU | busiest |")
    print("|---|---|---|---|---|---|---|---|---|")
    med = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for w, rs in results.items()}
    for w, m in med.items():
        print(f"| {w} | {m['produce']:,.0f} | {m['produce_node_cpu']:.2f} | "
              f"{m['produce_kcat_cpu']:.2f} | {m['produce_busiest']:.0%} | "
              f"{m['consume']:,.0f} | {m['consume_node_cpu']:.2f} | "
              f"{m['consume_kcat_cpu']:.2f} | {m['consume_busiest']:.0%} |")
    base = counts[0]
    for w in counts[1:]:
        pr = [b["produce"] / a["produce"] for a, b in zip(results[base], results[w], strict=True)]
        cr = [b["consume"] / a["consume"] for a, b in zip(results[base], results[w], strict=True)]
        print(f"\n{w} workers / {base}: produce x{statistics.median(pr):.2f} (per round "
              f"{', '.join(f'{x:.2f}' for x in pr)}), consume x{statistics.median(cr):.2f} "
              f"(per round {', '.join(f'{x:.2f}' for x in cr)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
