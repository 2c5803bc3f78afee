"""The membership profile (``run.py --profile membership``): controllers join and leave a
dynamic metadata quorum (KIP-853) while nodes are killed and the network is partitioned.

The cluster: brokers 1-3 and controllers 101-103 in their own network namespaces
(``cluster.Cluster``), reformatted as a dynamic quorum: controller 101 with ``kafka-storage
format --standalone``, 102 and 103 with ``--no-initial-controllers``; no node has
``controller.quorum.voters``, all find the quorum through ``controller.quorum.bootstrap.servers``
(broker/controller/quorum_bootstrap.py). Snapshots are kept off so that every node's log holds
the whole history for the checker.

Three things run at once until the time limit:

- the metadata writer creates topics one at a time through confluent-kafka's AdminClient
  (``create-topic`` ops: ``ok`` when acknowledged, ``fail`` when refused for certain, ``info``
  when unknown);
- the membership changer, every few seconds, reads the voters (DescribeQuorum) and runs
  ``kafka-metadata-quorum add-controller`` for a controller that is not a voter, or
  ``remove-controller`` for a voter while more than one is left (``add-controller`` /
  ``remove-controller`` ops);
- the nemesis (nemesis.py): kill and partition by default.

Then every fault is healed, every node is waited for until its log reaches the leader's high
watermark (the committed offset), the nodes are stopped, and each node's metadata log is read
from disk for membership_checker.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cluster import Cluster
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from history import History
from membership_checker import NodeLog, check
from nemesis import Nemesis, run_schedule, schedule
from report_lines import print_faults, print_findings, print_header
from workload import WorkloadConfig, create_topic

from broker.controller.metadata_log import MetadataLog
from storage import fsync_journal
from storage.meta_properties import read_meta_properties
from storage.properties import parse_properties
from tools.metadata_quorum import QuorumInfo, describe

__all__ = ["MembershipCluster", "print_report", "run_once"]

REPO = Path(__file__).resolve().parent.parent
CHANGE_EVERY_S = (3.0, 6.0)
CREATE_EVERY_S = 0.3
CATCH_UP_S = 90.0
# Refusals that certainly changed nothing; any other failure of a creation may have happened.
DEFINITE = ("INVALID_REPLICATION_FACTOR", "INVALID_TOPIC", "POLICY_VIOLATION",
            "TOPIC_ALREADY_EXISTS")


class MembershipCluster(Cluster):
    """``Cluster(n=3, controllers=3)`` reformatted as a dynamic quorum (see the module doc)."""

    def __init__(self, root: Path, *, seed: int, extra: dict[str, str] | None = None) -> None:
        no_snapshots = {"metadata.log.max.record.bytes.between.snapshots": str(1 << 40),
                        "metadata.log.max.snapshot.interval.ms": str(1 << 40)}
        super().__init__(root, n=3, controllers=3, seed=seed, extra={**no_snapshots,
                                                                      **(extra or {})})
        self.first_controller = self.controller_ids[0]

    @property
    def bootstrap_controllers(self) -> str:
        return ",".join(self.nodes[i].spec.controller_address for i in self.controller_ids)

    def setup(self) -> None:
        super().setup()
        cluster_id = read_meta_properties(self.nodes[self.first_controller].data_dir)
        assert cluster_id is not None
        for n in self.nodes.values():
            props = parse_properties(n.config.read_text())
            props.pop("controller.quorum.voters", None)
            props["controller.quorum.bootstrap.servers"] = self.bootstrap_controllers
            n.write_config(props)
            shutil.rmtree(n.data_dir)
            flags = (["--standalone"] if n.node_id == self.first_controller
                     else ["--no-initial-controllers"] if n.is_controller else [])
            n.format(cluster_id.cluster_id, extra_args=flags)
            if n.journal is not None:
                fsync_journal.baseline(n.journal, [n.data_dir])

    def directory_id(self, node_id: int) -> str:
        meta = read_meta_properties(self.nodes[node_id].data_dir)
        assert meta is not None and meta.directory_id is not None
        return meta.directory_id


def quorum(cluster: MembershipCluster, timeout_s: float = 10.0) -> QuorumInfo | None:
    try:
        return asyncio.run(describe(cluster.bootstrap_controllers.split(","), timeout_s))
    except Exception:  # noqa: BLE001 - no leader reachable now
        return None


class MembershipWorkload:
    def __init__(self, cluster: MembershipCluster, history: History,
                 rnd: random.Random) -> None:
        self.cluster = cluster
        self.history = history
        self.rnd = rnd
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._creator, daemon=True),
                        threading.Thread(target=self._changer, daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def _creator(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap_servers})
        k = 0
        while not self.stop.is_set():
            name = f"m{k}"
            k += 1
            self.history.add("invoke", "create-topic", "creator", value=name)
            try:
                admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=10,
                                    request_timeout=15)[name].result(30)
                self.history.add("ok", "create-topic", "creator", value=name)
            except KafkaException as e:
                definite = any(d in str(e) for d in DEFINITE)
                self.history.add("fail" if definite else "info", "create-topic", "creator",
                                 value=name, error=str(e))
            except Exception as e:  # noqa: BLE001 - a client error of unknown outcome
                self.history.add("info", "create-topic", "creator", value=name, error=repr(e))
            self.stop.wait(CREATE_EVERY_S)

    def _changer(self) -> None:
        c = self.cluster
        while not self.stop.wait(self.rnd.uniform(*CHANGE_EVERY_S)):
            q = quorum(c)
            if q is None:
                continue
            voters = {v.replica_id for v in q.voters}
            outside = [i for i in c.controller_ids if i not in voters]
            if outside and (len(voters) < 2 or self.rnd.random() < 0.6):
                node = self.rnd.choice(outside)
                args = ["--command-config", str(c.nodes[node].config), "add-controller"]
                f = "add-controller"
            elif len(voters) > 1:
                node = self.rnd.choice(sorted(voters))
                args = ["remove-controller", "--controller-id", str(node),
                        "--controller-directory-id", c.directory_id(node)]
                f = "remove-controller"
            else:
                continue
            self.history.add("invoke", f, "changer", value={"node": node,
                                                            "voters": sorted(voters)})
            r = subprocess.run([sys.executable, "-m", "tools.metadata_quorum",
                                "--bootstrap-controller", c.bootstrap_controllers, *args],
                               capture_output=True, text=True, timeout=180, check=False,
                               cwd=REPO)
            out = (r.stdout + r.stderr).strip()
            if r.returncode == 0:
                self.history.add("ok", f, "changer", value={"node": node}, output=out)
            else:
                # The tool resends after a lost connection: DUPLICATE_VOTER / VOTER_NOT_FOUND
                # may answer its own first attempt, which took effect.
                unknown = any(m in out for m in ("REQUEST_TIMED_OUT", "no active controller",
                                                 "DUPLICATE_VOTER", "VOTER_NOT_FOUND"))
                self.history.add("info" if unknown else "fail", f, "changer",
                                 value={"node": node}, error=out[-300:])


def caught_up(cluster: MembershipCluster, timeout_s: float) -> int | None:
    """The leader's high watermark once every node's log reached it (None if not in time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        q = quorum(cluster)
        if q is not None:
            ends = {r.replica_id: r.log_end_offset for r in (*q.voters, *q.observers)}
            if set(cluster.nodes) <= set(ends) and min(ends.values()) >= q.high_watermark:
                return q.high_watermark
        time.sleep(1.0)
    return None


def read_logs(cluster: MembershipCluster) -> dict[int, NodeLog]:
    logs = {}
    for i, n in cluster.nodes.items():
        mlog = MetadataLog.open(n.data_dir)
        try:
            mem = mlog.memory
            entries = mem.entries_from(mem.start_offset, mem.end_offset - mem.start_offset)
            logs[i] = NodeLog(i, [(e.offset, e.epoch,
                                   getattr(e, "control_type", 2) if e.control else None, e.data)
                                  for e in entries], mem.start_offset)
        finally:
            mlog.close()
    return logs


def run_once(a: Any, seed: int, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    cluster = MembershipCluster(out / "cluster", seed=seed)
    history = History(out / "history.jsonl")
    probe = WorkloadConfig(bootstrap=cluster.bootstrap_servers, topic="probe", partitions=1,
                           replication_factor=3, min_insync=2)
    faults = schedule(rnd.randrange(2**31), a.kinds, a.time_limit) if a.kinds else []
    notes: list[str] = []
    committed = None
    logs: dict[int, NodeLog] = {}
    t_start = time.monotonic()
    workload = None
    try:
        cluster.setup()
        cluster.start()
        create_topic(probe)
        nemesis = Nemesis(cluster, history, probe)
        workload = MembershipWorkload(cluster, history, random.Random(rnd.randrange(2**31)))
        workload.start()
        stop = threading.Event()
        t0 = time.monotonic()
        nem = threading.Thread(target=run_schedule, args=(nemesis, faults, t0, stop),
                               daemon=True)
        nem.start()
        nem.join(a.time_limit)
        time.sleep(max(0.0, t0 + a.time_limit - time.monotonic()))
        stop.set()
        nem.join(120)
        workload.finish()
        nemesis.heal_all()
        history.add("info", "healed", "nemesis", value={})
        committed = caught_up(cluster, CATCH_UP_S)
        if committed is None:
            notes.append(f"the nodes did not all reach the leader's high watermark in "
                         f"{CATCH_UP_S:.0f} s after healing")
        q = quorum(cluster)
        if q is not None:
            history.add("info", "final-voters", "harness",
                        value=sorted(v.replica_id for v in q.voters))
    except Exception as e:  # noqa: BLE001 - any harness failure still gets a report
        notes.append(f"harness error: {e!r}")
        history.add("info", "harness-error", "harness", error=repr(e))
    finally:
        if workload is not None:
            workload.stop.set()
        cluster.teardown()
        history.close()
    with contextlib.suppress(Exception):
        logs = read_logs(cluster)
    if not logs:
        notes.append("the nodes' metadata logs could not be read")
    result = check(history.ops, logs, committed)
    faults_run = [op for op in history.ops
                  if op["process"] == "nemesis" and op["f"].startswith("start-")]
    report = {"seed": seed, "workload": "membership", "duration_s":
              round(time.monotonic() - t_start, 1),
              "fault_seconds": round(_fault_seconds(history.ops), 1),
              "faults": [{"f": op["f"], **op.get("value", {})} for op in faults_run],
              "reproduce": f"python jepsen-style/run.py --profile membership --seed {seed} "
                           f"--time-limit {a.time_limit:g} --nemesis {a.nemesis or 'none'}",
              "notes": notes + result.pop("checker_notes"), **result}
    if notes and report["verdict"] == "valid":
        report["verdict"], report["valid"] = "unknown", False
        report["unknown_reason"] = notes[0]
    return report


def _fault_seconds(ops: list[dict[str, Any]]) -> float:
    total, started = 0.0, None
    for op in ops:
        if op["process"] != "nemesis":
            continue
        if op["f"].startswith("start-"):
            started = op["time"]
        elif op["f"].startswith("stop-") and started is not None:
            total += (op["time"] - started) / 1e9
            started = None
    return total


def print_report(r: dict[str, Any]) -> None:
    s = r["stats"]
    print_header(r, "membership")
    print_faults(r)
    print(f"   topics: {s['creates_acknowledged']} created, {s['creates_failed']} refused, "
          f"{s['creates_unknown']} unknown; controllers added {s['controllers_added']}, "
          f"removed {s['controllers_removed']}; committed offset {s['committed_offset']}")
    print_findings(r)
    print(f"   reproduce: {r['reproduce']}")
