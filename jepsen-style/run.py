"""Run the fault suite: start a cluster, run the queue workload under a nemesis, heal, read
everything back, check the history.

    python jepsen-style/run.py                         # the smoke profile (~2 minutes)
    python jepsen-style/run.py --time-limit 600 --nemesis kill,pause,partition --runs 3
    python jepsen-style/run.py --profile planted-unsafe  # must report lost writes
    python jepsen-style/run.py --seed 42               # reproduce a run
    python jepsen-style/run.py --profile txn           # the transactional workload under faults
    python jepsen-style/run.py --profile membership    # controllers added/removed (membership.py)

Writes ``<out>/run-<i>-seed-<seed>/{history.jsonl,report.json}`` and ``<out>/summary.json``,
prints a report per run with its verdict: VALID, INVALID (a fatal anomaly), or UNKNOWN (no
anomaly found, but the history cannot vouch for the data: the final read did not complete,
or a worker or the harness crashed). Exit status:

- 0: every run met ``--expect``: ``valid``: every verdict is valid; ``lost-write``: every
  run found lost writes (lost-write > 0);
- 1: some run definitely did not (``valid``: a run was invalid; ``lost-write``: a run whose
  verdict is valid or invalid found no lost write);
- 2: bad arguments, or no network namespaces;
- 3: no run definitely failed, but some run that did not meet ``--expect`` had the verdict
  unknown: it could not be checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(HERE), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import membership
import metadata_run
import txn_checker
from checker import check
from cluster import BROKER_PORT, Cluster, netns_available
from history import History
from nemesis import (
    DEFAULT_KINDS,
    DISK_KINDS,
    Fault,
    Nemesis,
    NemesisError,
    check_kinds,
    run_schedule,
    schedule,
)
from report_lines import print_faults, print_findings, print_header
from security import MODES, SaslSsl
from txn_workload import RC, RU, TxnConfig, TxnWorkload, create_topics
from workload import Workload, WorkloadConfig, create_topic, wait_healthy

from broker.client import KafkaConnection
from broker.protocol.api_keys import ApiKey

DISK_MB = 256  # each broker's second log dir, for the disk nemeses (disks.py)

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"time_limit": 60.0, "nemesis": ",".join(DEFAULT_KINDS), "consumer_mode": "mixed",
              "commit": True, "consumers": 3},
    "long": {"time_limit": 600.0, "nemesis": ",".join(DEFAULT_KINDS), "consumer_mode": "mixed",
             "commit": True, "consumers": 3},
    # Followers paused, acks=1 writes land on the leader alone, the leader is killed: a
    # follower takes over without them. The checker must report lost writes.
    "planted-unsafe": {"time_limit": 25.0, "nemesis": "followers-lag", "acks": "1",
                       "idempotence": "off", "expect": "lost-write"},
    # The same schedule with acks=all and min.insync.replicas=2: nothing may be lost.
    "planted-safe": {"time_limit": 25.0, "nemesis": "followers-lag", "acks": "all"},
    # The transactional workload (txn_workload.py, txn_checker.py) under the same faults, the
    # transaction coordinator among the targets; txn-clean: no faults.
    "txn": {"workload": "txn", "time_limit": 120.0, "nemesis": ",".join(DEFAULT_KINDS)},
    "txn-clean": {"workload": "txn", "time_limit": 15.0, "nemesis": "none"},
    # A broker's second log dir filled or failing with EIO (jepsen-style/disks.py).
    "disk": {"time_limit": 60.0, "nemesis": "disk-full,disk-eio", "consumer_mode": "mixed",
             "commit": True},
    # Topic creation and deletion, leader elections and metadata reads under faults; every
    # node's metadata log and image checked (metadata_workload.py, metadata_checker.py).
    "metadata": {"workload": "metadata", "time_limit": 60.0,
                 "nemesis": "kill,pause,partition,lose-unsynced,lose-unsynced-all"},
    # Controllers added and removed (KIP-853) under kill and partition (membership.py).
    "membership": {"workload": "membership", "time_limit": 60.0, "nemesis": "kill,partition"},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    ap.add_argument("--workload", choices=("queue", "txn", "metadata", "membership"),
                    help="queue (workload.py) or txn: transactions and an exactly-once "
                         "pipeline (txn_workload.py); default: the profile's")
    ap.add_argument("--time-limit", type=float, help="seconds of workload under faults")
    ap.add_argument("--nemesis", help="comma-separated: kill,pause,partition,lose-unsynced,"
                    "lose-unsynced-all,lose-unsynced-majority,followers-lag,clock,disk-full,"
                    "disk-eio; 'none' for no faults")
    ap.add_argument("--seed", type=int, help="seed of the first run (default: random)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--nodes", type=int, choices=(3, 5), default=3,
                    help="brokers (combined broker+controller nodes unless --controllers)")
    ap.add_argument("--controllers", type=int, choices=(0, 1, 3, 5), default=0,
                    help="separate controller-only nodes forming the metadata quorum "
                         "(0: the brokers are combined nodes and form it)")
    ap.add_argument("--replication-factor", type=int)
    ap.add_argument("--min-insync", type=int)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--acks", choices=("all", "1", "-1"))
    ap.add_argument("--idempotence", choices=("on", "off"))
    ap.add_argument("--consumer-mode", choices=("assign", "subscribe", "mixed"))
    ap.add_argument("--commit", action=argparse.BooleanOptionalAction,
                    help="consumers commit offsets and read them back")
    ap.add_argument("--rate", type=float, help="sends per second, all producers (queue: "
                    "default 40) or transactions per second (txn: default 10)")
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--consumers", type=int)
    ap.add_argument("--flush-every-message", action="store_true",
                    help="log.flush.interval.messages=1 (fsync every append)")
    ap.add_argument("--expect", choices=("valid", "lost-write"),
                    help="what counts as success (planted-unsafe: lost-write)")
    ap.add_argument("--strict-hw", action="store_true",
                    help="a high watermark going backwards makes a run invalid")
    ap.add_argument("--security", choices=MODES, default="none",
                    help="sasl_ssl: SASL_SSL listeners between all nodes and for the clients "
                         "(security.py); default: PLAINTEXT")
    ap.add_argument("--engine", choices=("kraft", "pysyncobj"), default="kraft",
                    help="the metadata quorum's engine (controller.quorum.engine)")
    ap.add_argument("--out", type=Path, default=Path("jepsen-results"))
    a = ap.parse_args(argv)
    prof = PROFILES[a.profile]
    a.workload = a.workload or prof.get("workload", "queue")
    if a.rate is None:
        a.rate = {"txn": 10.0, "metadata": 4.0}.get(a.workload, 40.0)
    a.time_limit = a.time_limit if a.time_limit is not None else prof["time_limit"]
    a.nemesis = a.nemesis if a.nemesis is not None else prof["nemesis"]
    a.acks = a.acks or prof.get("acks", "all")
    a.idempotence = a.idempotence or prof.get("idempotence", "on")
    a.expect = a.expect or prof.get("expect", "valid")
    a.consumer_mode = a.consumer_mode or prof.get("consumer_mode", "assign")
    a.commit = a.commit if a.commit is not None else prof.get("commit", False)
    a.consumers = a.consumers or prof.get("consumers", 2)
    a.replication_factor = a.replication_factor or a.nodes
    a.min_insync = a.min_insync or (a.replication_factor // 2 + 1)
    if a.replication_factor > a.nodes:
        ap.error(f"--replication-factor {a.replication_factor} > --nodes {a.nodes}")
    if a.min_insync > a.replication_factor:
        ap.error(f"--min-insync {a.min_insync} > replication factor {a.replication_factor}")
    if a.workload == "txn" and (a.acks != "all" or a.idempotence != "on"
                                or a.expect != "valid" or "followers-lag" in a.nemesis):
        ap.error("the txn workload runs with acks=all, idempotence on, --expect valid and "
                 "without followers-lag")
    if a.acks == "1" and a.idempotence == "on":
        ap.error("idempotence needs --acks all (librdkafka refuses acks=1 with idempotence)")
    if a.runs < 1 or a.time_limit <= 0:
        ap.error("--runs and --time-limit must be positive")
    a.kinds = [] if a.nemesis == "none" else [k for k in a.nemesis.split(",") if k]
    try:
        check_kinds(a.kinds)
    except NemesisError as e:
        ap.error(str(e))
    return a


def run_once(a: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    if a.workload == "metadata":
        return metadata_run.run_once(a, seed, out)
    if a.workload == "membership":
        report = membership.run_once(a, seed, out)
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
        return report
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    extra = {"min.insync.replicas": str(a.min_insync)}
    if a.flush_every_message:
        extra["log.flush.interval.messages"] = "1"
    disks = any(k in DISK_KINDS for k in a.kinds)
    security = SaslSsl(out / "certs") if a.security == "sasl_ssl" else None
    cluster = Cluster(out / "cluster", n=a.nodes, controllers=a.controllers, extra=extra,
                      seed=seed, fault_disk_mb=DISK_MB if disks else None, security=security,
                      quorum_engine=a.engine)
    client = {} if security is None else security.client_conf()
    history = History(out / "history.jsonl")
    cfg = WorkloadConfig(bootstrap=cluster.bootstrap_servers, partitions=a.partitions,
                         replication_factor=a.replication_factor, min_insync=a.min_insync,
                         acks=a.acks, idempotence=a.idempotence == "on",
                         producers=a.producers, consumers=a.consumers, rate=a.rate,
                         consumer_mode=a.consumer_mode, commit=a.commit, client=client)
    tcfg = TxnConfig(bootstrap=cluster.bootstrap_servers, partitions=a.partitions,
                     replication_factor=a.replication_factor, min_insync=a.min_insync,
                     producers=a.producers, pipelines=a.consumers,
                     rate=a.rate, client=client)
    txn = a.workload == "txn"
    if a.kinds == ["followers-lag"]:
        # One planted fault, early; heal after the controller fenced the killed leader.
        faults = [Fault(5.0, min(a.time_limit - 1, 18.0), "followers-lag", "leader",
                        rnd.randrange(2**31))]
    else:
        faults = (schedule(rnd.randrange(2**31), a.kinds, a.time_limit, txn=txn)
                  if a.kinds else [])
    t_start = time.monotonic()
    notes: list[str] = []
    final_complete = False
    unsupported: str | None = None
    workload: Workload | TxnWorkload | None = None
    health = [cfg] if not txn else [tcfg.topic_config(t) for t in tcfg.topics]
    try:
        cluster.setup()
        cluster.start()
        if txn:
            unsupported = missing_transaction_apis(cluster)
        if unsupported is not None:
            notes.append(unsupported)
        else:
            if txn:
                create_topics(tcfg)
                workload = TxnWorkload(tcfg, history, random.Random(rnd.randrange(2**31)))
                nemesis = Nemesis(cluster, history, health[0],
                                  txn_ids=workload.transactional_ids())
            else:
                create_topic(cfg)
                nemesis = Nemesis(cluster, history, cfg)
                workload = Workload(cfg, history, random.Random(rnd.randrange(2**31)))
            workload.start()
            stop = threading.Event()
            t0 = time.monotonic()
            nem = threading.Thread(target=run_schedule, args=(nemesis, faults, t0, stop),
                                   daemon=True)
            nem.start()
            nem.join(a.time_limit)
            stop.set()
            nem.join(120)
            nemesis.heal_all()
            healed = history.add("info", "healed", "nemesis", value={})
            # Let consumers catch up on a healed cluster before stopping the clients.
            if not all(wait_healthy(c, timeout=60) for c in health):
                notes.append("cluster not healthy (leaders / full ISR) 60 s after healing")
            settle(history, healed["index"], txn)
            if isinstance(workload, TxnWorkload):
                if not workload.finish():
                    notes.append("the pipeline did not catch up with its input in 60 s")
                # read_uncommitted first: a transaction marker written after it (a late
                # abort on timeout) is still read by the read_committed read, whose positions
                # must reach the ends the other read saw (txn_checker.py).
                final_complete = all([workload.final_read(RU, timeout=90),
                                      workload.final_read(RC, timeout=90)])
                workload.group_offsets()
            else:
                workload.finish()
                final_complete = workload.final_read(timeout=90)
            if not final_complete:
                notes.append("final read incomplete: it did not read every partition up to "
                             "a high watermark that held still")
    except Exception as e:  # noqa: BLE001 - any harness failure still gets a report
        notes.append(f"harness error: {e!r}")
        history.add("info", "harness-error", "harness", error=repr(e))
    finally:
        if workload is not None:
            workload.stop.set()
            if isinstance(workload, TxnWorkload):
                workload.stop_producers.set()
        cluster.teardown()
        history.close()
    result = (txn_checker.check(history.ops) if txn else
              check(history.ops, strict_hw=a.strict_hw, allow_duplicates=a.idempotence == "off"))
    fault_events = [op for op in history.ops
                    if op["process"] == "nemesis" and op["f"].startswith("start-")]
    fault_seconds = measured_fault_seconds(history.ops, {f.kind for f in faults})
    crashed = [op for op in history.ops if op["f"] in ("worker-crash", "harness-error")]
    report = {
        "seed": seed,
        "workload": a.workload,
        "unsupported": unsupported,
        "reproduce": reproduce_command(a, seed),
        "config": {"nodes": a.nodes, "controllers": a.controllers,
                   "replication_factor": a.replication_factor,
                   "min_insync_replicas": a.min_insync, "acks": a.acks,
                   "idempotence": a.idempotence, "partitions": a.partitions,
                   "consumer_mode": a.consumer_mode, "commit": a.commit,
                   "time_limit_s": a.time_limit, "nemesis": a.kinds,
                   "security": a.security, "engine": a.engine},
        "duration_s": round(time.monotonic() - t_start, 1),
        "fault_seconds": round(fault_seconds, 1),
        "faults": [{"f": op["f"], **op.get("value", {})} for op in fault_events],
        "final_read_complete": final_complete,
        "unfinished_client_ops": unfinished_client_ops(history.ops),
        "stuck_clients": [{"process": op["process"], "f": op.get("f_stuck"),
                           "group": op.get("group")}
                          for op in history.ops if op["f"] == "client-stuck"],
        "notes": notes + [f"{op['f']}: {op.get('error')}" for op in crashed],
        **result,
    }
    if unsupported is not None and report["verdict"] != "invalid":
        report["unknown_reason"] = unsupported
    if crashed and report["verdict"] == "valid":
        # A crashed worker or harness leaves a history that cannot vouch for the data.
        report["verdict"], report["valid"] = "unknown", False
        report["unknown_reason"] = "a worker or the harness crashed"
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


CATCH_UP_S = 5.0


def settle(history: History, healed: int, txn: bool) -> None:
    """Give the consumers up to CATCH_UP_S on the healed cluster: the queue workload's stop
    as soon as every partition was polled, after the heal, past the last offset acknowledged
    before it (what the cluster held when it healed has been read); the txn workload's
    pipelines wait the whole time (their finish waits for the pipeline to catch up)."""
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        if not txn and consumers_caught_up(list(history.ops), healed):
            return
        time.sleep(0.1)


def consumers_caught_up(ops: list[dict[str, Any]], healed: int) -> bool:
    """Whether every partition with an acknowledged send before op ``healed`` was polled
    after it at or past the last such offset."""
    want: dict[int, int] = {}
    for op in ops[:healed]:
        if op["f"] == "send" and op["type"] == "ok":
            want[op["partition"]] = max(want.get(op["partition"], -1), op["offset"])
    got: dict[int, int] = {}
    for op in ops[healed:]:
        if op["f"] == "poll" and op["type"] == "ok":
            for p, offset, *_ in op.get("reads") or ():
                got[p] = max(got.get(p, -1), offset)
    return all(got.get(p, -1) >= offset for p, offset in want.items())


def reproduce_command(a: argparse.Namespace, seed: int) -> str:
    """The command that runs the same schedule and choices again (timing is not replayed)."""
    parts = [f"python jepsen-style/run.py --profile {a.profile} --seed {seed}",
             f"--workload {a.workload}",
             f"--time-limit {a.time_limit:g} --nemesis {a.nemesis or 'none'}",
             f"--nodes {a.nodes} --controllers {a.controllers}",
             f"--replication-factor {a.replication_factor}",
             f"--min-insync {a.min_insync} --partitions {a.partitions} --acks {a.acks}",
             f"--idempotence {a.idempotence} --consumer-mode {a.consumer_mode}",
             f"--rate {a.rate:g} --producers {a.producers} --consumers {a.consumers}"]
    parts.append("--commit" if a.commit else "--no-commit")
    if a.security != "none":
        parts.append(f"--security {a.security}")
    if a.engine != "kraft":
        parts.append(f"--engine {a.engine}")
    parts += [flag for flag, on in (("--flush-every-message", a.flush_every_message),
                                    ("--strict-hw", a.strict_hw)) if on]
    return " ".join(parts)


def unfinished_client_ops(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consumer operations (poll, assign, commit, committed) invoked and never completed: a
    client stuck for the rest of the run. Not an anomaly of the data, but a liveness
    problem the verdict would otherwise hide (fewer polls is all it shows)."""
    t0 = ops[0]["time"] if ops else 0
    pending: dict[Any, dict[str, Any]] = {}
    for op in ops:
        if op["f"] not in ("poll", "assign", "commit", "committed"):
            continue
        if op["type"] == "invoke":
            pending[op["process"]] = op
        else:
            pending.pop(op["process"], None)
    return [{"process": op["process"], "f": op["f"], "group": op.get("group"),
             "at_s": round((op["time"] - t0) / 1e9, 2)} for op in pending.values()]


def measured_fault_seconds(ops: list[dict[str, Any]], kinds: set[str]) -> float:
    """Seconds between each fault's start and its heal, from the history."""
    total, started = 0.0, None
    for op in ops:
        if op["process"] != "nemesis":
            continue
        if op["f"] in {f"start-{k}" for k in kinds}:
            started = op["time"]
        elif op["f"] in {f"stop-{k}" for k in kinds} and started is not None:
            total += (op["time"] - started) / 1e9
            started = None
    return total


def missing_transaction_apis(cluster: Cluster) -> str | None:
    """Why the brokers cannot run the transactional workload (ApiVersions of a broker lacks
    EndTxn or another transaction API), or None when they announce them all."""
    needed = {ApiKey.INIT_PRODUCER_ID, ApiKey.ADD_PARTITIONS_TO_TXN, ApiKey.ADD_OFFSETS_TO_TXN,
              ApiKey.END_TXN, ApiKey.TXN_OFFSET_COMMIT}
    node = next(n for n in cluster.nodes.values() if n.is_broker)

    async def ask() -> dict[int, tuple[int, int]]:
        conn = await KafkaConnection.connect(
            node.ip, BROKER_PORT, timeout_s=10.0,
            security=None if cluster.security is None else cluster.security.broker_client())
        await conn.close()
        return conn.api_versions

    served = asyncio.run(ask())
    missing = sorted(k.name for k in needed if k not in served)
    if not missing:
        return None
    return ("the brokers do not serve transactions yet: ApiVersions lacks "
            + ", ".join(missing))


def print_report(r: dict[str, Any]) -> None:
    if r.get("workload") == "metadata":
        metadata_run.print_report(r)
        return
    if r.get("workload") == "membership":
        membership.print_report(r)
        return
    if r.get("workload") == "txn":
        print_txn_report(r)
        return
    s = r["stats"]
    print_header(r, fault_seconds=True)
    print_faults(r)
    print(f"   sends: {s['sends_attempted']} attempted, {s['sends_acknowledged']} acknowledged, "
          f"{s['sends_failed']} failed, {s['sends_unknown']} unknown; "
          f"{s['values_read']} values read ({s['acknowledged_read']} acknowledged), "
          f"{s['polls']} polls, final read complete: {r['final_read_complete']}")
    print_findings(r)
    for u in r.get("stuck_clients", []):
        print(f"   stuck client: process {u['process']} {u['f']} did not return; replaced")
    for u in r.get("unfinished_client_ops", []):
        print(f"   unfinished: process {u['process']} {u['f']} invoked at {u['at_s']} s "
              "never returned")
    print(f"   reproduce: {r['reproduce']}")


def print_txn_report(r: dict[str, Any]) -> None:
    s = r["stats"]
    print_header(r, "txn", fault_seconds=True)
    print_faults(r)
    t = s["transactions"]
    print(f"   transactions: {json.dumps(t.get('txn', {}))}, {s['planned_aborts']} aborted on "
          f"purpose, {s['records_written']} records; pipeline: {json.dumps(t.get('ctp', {}))}, "
          f"{s['pipeline_outputs']} outputs, lag {s['pipeline_lag']}; final reads: "
          f"{json.dumps(s['final_read'])}")
    print_findings(r)
    print(f"   reproduce: {r['reproduce']}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if not netns_available():
        print("network namespaces are not available (needs root and iproute2)", file=sys.stderr)
        return 2
    first = a.seed if a.seed is not None else random.randrange(2**31)
    reports = []
    for i in range(a.runs):
        seed = first + i
        r = run_once(a, seed, a.out / f"run-{i + 1}-seed-{seed}")
        print_report(r)
        reports.append(r)
    code = exit_status(reports, a.expect)
    ok = code == 0
    verdicts = [r["verdict"] for r in reports]
    summary = {
        "runs": len(reports),
        "expect": a.expect,
        "passed": ok,
        "verdict": next((v for v in ("invalid", "unknown") if v in verdicts), "valid"),
        "verdicts": verdicts,
        "fault_minutes": round(sum(r["fault_seconds"] for r in reports) / 60, 2),
        "sends_attempted": sum(r["stats"].get("sends_attempted", 0) for r in reports),
        "sends_acknowledged": sum(r["stats"].get("sends_acknowledged", 0) for r in reports),
        "values_read": sum(r["stats"].get("values_read", 0) for r in reports),
        "anomalies": {k: sum(r["anomalies"][k] for r in reports)
                      for k in reports[0]["anomalies"]},
        "nemeses": a.kinds,
        "seeds": [r["seed"] for r in reports],
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if a.workload == "txn":
        summary["transactions_committed"] = sum(
            r["stats"]["transactions"].get("txn", {}).get("ok", 0) for r in reports)
        work = f"{summary['transactions_committed']} transactions committed"
    else:
        work = (f"{summary['sends_attempted']} sends attempted, "
                f"{summary['sends_acknowledged']} acknowledged, {summary['values_read']} read")
    print(f"== {len(reports)} run(s), {summary['fault_minutes']} min of faults, "
          f"{work}; verdicts: "
          f"{', '.join(v.upper() for v in verdicts)}; expected {a.expect}: "
          f"{'PASS' if ok else 'UNKNOWN' if code == 3 else 'FAIL'}")
    return code


def met_expectation(r: dict[str, Any], expect: str) -> bool:
    """``lost-write``: the run found lost writes (so its verdict is invalid); ``valid``: its
    verdict is valid (an unknown one is not)."""
    if expect == "lost-write":
        return bool(r["anomalies"]["lost-write"] > 0)
    return bool(r["verdict"] == "valid")


def exit_status(reports: list[dict[str, Any]], expect: str) -> int:
    """0, 1 or 3 as the module docstring says."""
    failed = [r for r in reports if not met_expectation(r, expect)]
    if not failed:
        return 0
    return 1 if any(r["verdict"] != "unknown" for r in failed) else 3


if __name__ == "__main__":
    sys.exit(main())
