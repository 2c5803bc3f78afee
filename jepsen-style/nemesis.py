"""Nemeses and their generator.

``schedule(seed, kinds, ...)`` is pure: from a seed it decides when each fault starts and
heals, its kind, and how its targets are picked ("2 random nodes", "the leader of partition
1", "the active controller"). ``Nemesis.start``/``heal`` carry a fault out against a
``Cluster`` and write both events to the history; targets that depend on the cluster's state
(leaders) are resolved at that moment.

Kinds:
- ``kill``: kill -9 of one node, a minority, n-1 nodes, a partition leader, the active
  controller, or all nodes at once; heal restarts them.
- ``pause``: SIGSTOP of the same choices; heal sends SIGCONT.
- ``partition``: majority/minority halves, isolate a partition leader, isolate the active
  controller, bridge (two halves that share one node), ring (each node sees only its
  neighbours), or cut the clients from one node; heal removes every blackhole route.
- ``lose-unsynced``: kill -9 of one node or a minority, then a power loss is modelled on their
  data (storage/fsync_journal.py): each directory change (file created, renamed over or
  removed) since the directory's last fsync is undone with probability 1/2, from a random
  generator seeded by the fault, and every file is cut back to the length its last fsync
  covered; heal restarts them.
  ``lose-unsynced-all`` does it to every node at once (a power loss of the whole cluster:
  records acknowledged but in no node's fsynced data are lost unless
  ``log.flush.interval.messages=1``).
  ``lose-unsynced-majority`` does it to a majority of the controllers (2 of 3): what a quorum
  engine that does not fsync its log and vote before answering cannot survive.
- ``followers-lag``: pause the followers of a partition's leader, let the leader take writes
  alone for a moment, kill -9 the leader, resume the followers (a follower becomes leader
  without the leader's tail); heal restarts the old leader. Safe with acks=all and
  min.insync.replicas >= 2, loses acks=1 writes: the planted-unsafe run.
- With the transactional workload (``schedule(..., txn=True)``) kill, pause and
  lose-unsynced may also pick ``coordinator``, and partition ``isolate-coordinator``: the
  transaction coordinator of one of the workload's transactional.ids, found with
  FindCoordinator key_type 1 (a random broker while none is served; the history says which).
- ``disk-full`` / ``disk-eio`` (with ``Cluster(fault_disk_mb=...)``: every broker's second
  log dir on a loop-mounted ext4 image of its own, disks.py): fill that disk (ENOSPC), or shut
  its filesystem down so every I/O on it returns EIO, on a random broker or a partition
  leader. The broker takes the dir offline and serves on from its other dir; its partitions
  in that dir answer KAFKA_STORAGE_ERROR. Heal stops the node, repairs the disk (the filler
  deleted; or unmounted, ``e2fsck -fy``, mounted again) and starts it.
- ``clock``: clock skew needs libfaketime (the nodes use time.time() for timestamps and a
  monotonic clock for timeouts); it is not installed here, so the kind is refused with a clear
  error.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster import BROKER_PORT, CONTROLLER_PORT, Cluster
from confluent_kafka import KafkaException
from disks import disks_available
from history import History
from workload import WorkloadConfig, partition_leaders

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.client.security import ClientSecurity
from broker.controller.raft_wire import describe_quorum_from_wire, describe_quorum_request
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import find_coordinator
from storage.fsync_journal import Cut, lose_unsynced

KINDS = ("kill", "pause", "partition", "lose-unsynced", "lose-unsynced-all", "followers-lag",
         "clock", "disk-full", "disk-eio", "lose-unsynced-majority")
LOSE_KINDS = ("lose-unsynced", "lose-unsynced-all", "lose-unsynced-majority")
DISK_KINDS = ("disk-full", "disk-eio")
DISK_TARGETS = ("broker", "leader")
DEFAULT_KINDS = ("kill", "pause", "partition", "lose-unsynced")
TARGETS = ("one", "minority", "n-1", "leader", "controller", "all")
PARTITIONS = ("halves", "isolate-leader", "isolate-controller", "bridge", "ring", "clients")
# The transactional workload's extra choices (appended: the queue workload's schedules for a
# seed stay as they were).
TXN_TARGETS = (*TARGETS, "coordinator")
TXN_PARTITIONS = (*PARTITIONS, "isolate-coordinator")
KEY_TYPE_TRANSACTION = 1


class NemesisError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    start_s: float  # seconds after the workload started
    heal_s: float
    kind: str
    target: str  # a TARGETS / PARTITIONS choice
    pick: int  # seeds the choice of concrete nodes


def check_kinds(kinds: list[str]) -> None:
    for k in kinds:
        if k not in KINDS:
            raise NemesisError(f"unknown nemesis {k!r}; choose from {', '.join(KINDS)}")
        if k in DISK_KINDS and (why := disks_available()) is not None:
            raise NemesisError(f"the {k} nemesis is unavailable: {why}")
        if k == "clock":
            why = ("libfaketime is not installed" if shutil.which("faketime") is None
                   else "not implemented yet")
            raise NemesisError(f"the clock nemesis (skew via libfaketime) is unavailable: {why}")


def schedule(seed: int, kinds: list[str], time_limit_s: float, *, warmup_s: float = 5.0,
             fault_s: tuple[float, float] = (4.0, 10.0),
             quiet_s: tuple[float, float] = (4.0, 8.0), txn: bool = False) -> list[Fault]:
    """Faults one at a time: warm up, then fault, heal, quiet, fault... until the time limit.
    ``txn``: the transactional workload's targets (the transaction coordinator) too."""
    check_kinds(kinds)
    targets, partitions = (TXN_TARGETS, TXN_PARTITIONS) if txn else (TARGETS, PARTITIONS)
    lose = ("one", "minority", "coordinator") if txn else ("one", "minority")
    rnd = random.Random(seed)
    out: list[Fault] = []
    t = warmup_s
    while True:
        dur = rnd.uniform(*fault_s)
        if t + dur > time_limit_s:
            break
        kind = rnd.choice(kinds)
        if kind == "partition":
            target = rnd.choice(partitions)
        elif kind in ("kill", "pause"):
            target = rnd.choice(targets)
        elif kind == "lose-unsynced":
            target = rnd.choice(lose)
        elif kind == "lose-unsynced-all":
            target = "all"
        elif kind == "lose-unsynced-majority":
            target = "controller-majority"
        elif kind in DISK_KINDS:
            target = rnd.choice(DISK_TARGETS)
        else:
            target = "leader"
        out.append(Fault(round(t, 3), round(t + dur, 3), kind, target, rnd.randrange(2**31)))
        t += dur + rnd.uniform(*quiet_s)
    return out


async def _describe_quorum_leader(host: str, port: int,
                                  security: ClientSecurity | None = None) -> int:
    conn = await KafkaConnection.connect(host, port, timeout_s=2.0, security=security)
    try:
        resp = await conn.send(ApiKey.DESCRIBE_QUORUM, describe_quorum_request(), timeout_s=2.0)
    finally:
        await conn.close()
    desc, _err = describe_quorum_from_wire(resp)
    return desc.leader_id if desc is not None else -1


async def _find_txn_coordinator(host: str, port: int, tid: str,
                                security: ClientSecurity | None = None) -> tuple[int, int]:
    """(node id, error code) of FindCoordinator key_type 1 for ``tid``."""
    conn = await KafkaConnection.connect(host, port, timeout_s=2.0, security=security)
    try:
        v = conn.version_for(ApiKey.FIND_COORDINATOR)
        req = (find_coordinator.REQUEST.cls(key_type=KEY_TYPE_TRANSACTION, coordinator_keys=[tid])
               if v >= 4 else find_coordinator.REQUEST.cls(key=tid, key_type=KEY_TYPE_TRANSACTION))
        resp = await conn.send(ApiKey.FIND_COORDINATOR, req, v, timeout_s=2.0)
    finally:
        await conn.close()
    if v >= 4:
        c = resp.coordinators[0]
        return c.node_id, c.error_code
    return resp.node_id, resp.error_code


def txn_coordinator(cluster: Cluster, tid: str) -> tuple[int, str]:
    """The transaction coordinator of ``tid`` asked of each reachable broker, and how it was
    found; (-1, why) if no broker names one."""
    why = "no broker reachable"
    for n in cluster.nodes.values():
        if not n.is_broker or not n.alive() or n.paused:
            continue
        try:
            node, err = asyncio.run(_find_txn_coordinator(
                n.ip, BROKER_PORT, tid,
                None if cluster.security is None else cluster.security.broker_client()))
        except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
            why = f"node {n.node_id}: {e}"
            continue
        if err == 0 and node in cluster.nodes:
            return node, f"FindCoordinator key_type 1 for {tid}"
        why = f"FindCoordinator key_type 1 for {tid}: error {err}"
    return -1, why


def active_controller(cluster: Cluster) -> int:
    """The Raft leader of the metadata quorum (the active controller), asked with
    DescribeQuorum on the controller listener of each reachable node; -1 if none answers."""
    for n in cluster.nodes.values():
        if not n.is_controller or not n.alive() or n.paused:
            continue
        try:
            leader = asyncio.run(_describe_quorum_leader(
                n.ip, CONTROLLER_PORT,
                None if cluster.security is None else cluster.security.controller_client()))
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            continue
        if leader >= 0:
            return leader
    return -1


class Nemesis:
    def __init__(self, cluster: Cluster, history: History, cfg: WorkloadConfig,
                 txn_ids: list[str] | None = None) -> None:
        self.cluster = cluster
        self.history = history
        self.cfg = cfg
        self.txn_ids = txn_ids or []
        self.found_by: str | None = None  # how the last coordinator target was found
        self.affected: list[int] = []
        self.active: Fault | None = None

    # -- target resolution --------------------------------------------------------------------

    def _leader(self, rnd: random.Random) -> int:
        try:
            leaders = partition_leaders(self.cfg)
        except KafkaException:
            leaders = {}
        live = [lead for lead, _ in leaders.values() if lead > 0]
        return rnd.choice(live) if live else rnd.choice(self.cluster.broker_ids)

    def _controller(self, rnd: random.Random) -> int:
        c = active_controller(self.cluster)
        return c if c in self.cluster.nodes else rnd.choice(self.cluster.controller_ids)

    def _coordinator(self, rnd: random.Random) -> int:
        if self.txn_ids:
            node, self.found_by = txn_coordinator(self.cluster, rnd.choice(self.txn_ids))
            if node >= 0:
                return node
        else:
            self.found_by = "no transactional.id to look up"
        self.found_by = f"a random broker ({self.found_by})"
        return rnd.choice(self.cluster.broker_ids)

    def _nodes(self, target: str, rnd: random.Random) -> list[int]:
        """``one`` and ``minority`` pick among all nodes (brokers and controllers alike);
        ``n-1`` is n-1 of the brokers (the failures RF n must survive)."""
        ids = sorted(self.cluster.nodes)
        n = len(ids)
        if target == "one":
            return [rnd.choice(ids)]
        if target == "minority":
            return sorted(rnd.sample(ids, rnd.randint(1, (n - 1) // 2)))
        if target == "n-1":
            brokers = self.cluster.broker_ids
            return sorted(rnd.sample(brokers, len(brokers) - 1))
        if target == "leader":
            return [self._leader(rnd)]
        if target == "controller":
            return [self._controller(rnd)]
        if target == "coordinator":
            return [self._coordinator(rnd)]
        if target == "all":
            return ids
        if target == "controller-majority":
            voters = self.cluster.controller_ids
            return sorted(rnd.sample(voters, len(voters) // 2 + 1))
        raise NemesisError(f"unknown target {target!r}")

    def _grid(self, target: str, rnd: random.Random) -> dict[str, Any]:
        """Cut links for a partition fault; returns what was done, for the history."""
        c = self.cluster
        ids = sorted(c.nodes)
        rnd.shuffle(ids)
        n = len(ids)
        if target == "halves":
            minority = sorted(ids[: (n - 1) // 2 or 1])
            majority = sorted(i for i in ids if i not in minority)
            c.partition([minority, majority])
            return {"groups": [minority, majority]}
        if target in ("isolate-leader", "isolate-controller", "isolate-coordinator"):
            node = (self._leader(rnd) if target == "isolate-leader"
                    else self._controller(rnd) if target == "isolate-controller"
                    else self._coordinator(rnd))
            rest = sorted(i for i in c.nodes if i != node)
            c.partition([[node], rest])
            return {"groups": [[node], rest]}
        if target == "bridge":
            # The bridge node sees both sides; the sides do not see each other.
            bridge, rest = ids[0], ids[1:]
            left, right = rest[: len(rest) // 2], rest[len(rest) // 2:]
            c.block_links([(a, b) for a in left for b in right])
            return {"bridge": bridge, "sides": [sorted(left), sorted(right)]}
        if target == "ring":
            # Each node keeps its two ring neighbours (with 3 nodes: one random link cut).
            neighbours = {ids[i]: {ids[(i - 1) % n], ids[(i + 1) % n]} for i in range(n)}
            cut = [(a, b) for a in ids for b in ids if a < b and b not in neighbours[a]]
            if not cut:
                cut = [tuple(sorted(rnd.sample(ids, 2)))]  # type: ignore[list-item]
            c.block_links(cut)
            return {"ring": ids, "cut": sorted(cut)}
        if target == "clients":
            node = rnd.choice(c.broker_ids)
            c.block(None, node)
            return {"clients_cut_from": node}
        raise NemesisError(f"unknown partition {target!r}")

    # -- faults -------------------------------------------------------------------------------

    def _record(self, f: str, value: Any) -> None:
        self.history.add("info", f, "nemesis", value=value)

    def start(self, fault: Fault) -> None:
        rnd = random.Random(fault.pick)
        c = self.cluster
        self.active = fault
        value: dict[str, Any] = {"target": fault.target}
        self.found_by = None
        if fault.kind == "kill" or fault.kind in LOSE_KINDS:
            nodes = self._nodes(fault.target, rnd)
            for i in nodes:
                c.nodes[i].kill()
            if fault.kind != "kill":
                cuts = {}
                for i in nodes:
                    node = c.nodes[i]
                    if node.journal is None:
                        raise NemesisError("lose-unsynced needs the cluster's fsync journal")
                    rng = random.Random(f"{fault.pick}:{i}")
                    done = lose_unsynced(node.journal, [node.data_dir], rng=rng)
                    cuts[i] = _loss_summary(done, node.data_dir)
                value["cut"] = cuts
            self.affected = nodes
            value["nodes"] = nodes
        elif fault.kind == "pause":
            nodes = self._nodes(fault.target, rnd)
            for i in nodes:
                c.nodes[i].pause()
            self.affected = nodes
            value["nodes"] = nodes
        elif fault.kind == "partition":
            value.update(self._grid(fault.target, rnd))
        elif fault.kind == "followers-lag":
            value.update(self._followers_lag(rnd))
        elif fault.kind in DISK_KINDS:
            value.update(self._disk_fault(fault, rnd))
        else:
            raise NemesisError(f"cannot run nemesis {fault.kind!r}")
        if self.found_by is not None:
            value["found_by"] = self.found_by
        self._record(f"start-{fault.kind}", value)

    def _disk_fault(self, fault: Fault, rnd: random.Random) -> dict[str, Any]:
        c = self.cluster
        if not c.disks:
            raise NemesisError(f"{fault.kind} needs a cluster with fault disks (fault_disk_mb)")
        node = self._leader(rnd) if fault.target == "leader" else rnd.choice(c.broker_ids)
        disk = c.disks[node]
        out: dict[str, Any] = {"nodes": [node], "dir": str(disk.mount)}
        if fault.kind == "disk-full":
            out["filled_bytes"] = disk.fill()
        else:
            disk.fail()
        self.affected = [node]
        return out

    def _repair_disks(self, nodes: list[int]) -> None:
        """Stop each node whose disk is not ok, repair the disk; the restart follows."""
        c = self.cluster
        for i in nodes:
            disk = c.disks.get(i)
            if disk is None or disk.state == "ok":
                continue
            c.nodes[i].stop(60)
            disk.repair()

    def _followers_lag(self, rnd: random.Random) -> dict[str, Any]:
        c = self.cluster
        try:
            leaders = partition_leaders(self.cfg)
        except KafkaException as e:
            raise NemesisError(f"followers-lag: no metadata: {e}") from e
        usable = sorted(p for p, (lead, _) in leaders.items() if lead > 0)
        if not usable:
            raise NemesisError("followers-lag: no partition has a leader")
        p = rnd.choice(usable)
        leader = leaders[p][0]
        followers = [i for i in c.broker_ids if i != leader]
        for i in followers:
            c.nodes[i].pause()
        self._record("start-pause", {"nodes": followers, "why": f"followers of partition {p}"})
        # Shorter than replica.lag.time.max.ms: the followers stay in the ISR.
        time.sleep(1.5)
        c.nodes[leader].kill()
        self._record("start-kill", {"nodes": [leader], "why": f"leader of partition {p}"})
        for i in followers:
            c.nodes[i].resume()
        self._record("stop-pause", {"nodes": followers})
        self.affected = [leader]
        return {"partition": p, "leader": leader, "followers": followers}

    def heal(self) -> None:
        fault = self.active
        if fault is None:
            return
        c = self.cluster
        value: dict[str, Any] = {"nodes": self.affected}
        if fault.kind == "partition":
            c.heal()
        elif fault.kind == "pause":
            for i in self.affected:
                c.nodes[i].resume()
        else:
            if fault.kind in DISK_KINDS:
                self._repair_disks(self.affected)
            self._restart(self.affected)
        self._record(f"stop-{fault.kind}", value)
        self.active = None
        self.affected = []

    def _restart(self, nodes: list[int]) -> None:
        c = self.cluster
        down = [i for i in nodes if not c.nodes[i].alive()]
        c.start(down, wait=False)
        for i in down:
            c.nodes[i].wait_for("Kafka Server started", 120)

    def heal_all(self) -> None:
        """Undo everything: routes, pauses, dead nodes."""
        self.heal()
        c = self.cluster
        c.heal()
        for n in c.nodes.values():
            n.resume()
        self._repair_disks(list(c.disks))
        self._restart(list(c.nodes))


def _loss_summary(done: list[Cut], root: Path) -> dict[str, Any]:
    """For the history: how many files were cut and by how much, and which names vanished or
    reverted (relative to the node's data directory)."""
    cut = [x for x in done if x.change == "cut"]
    out: dict[str, Any] = {"files": len(cut),
                           "bytes": sum(x.size_before - x.size_after for x in cut)}
    for change in ("vanished", "reverted", "unrestorable"):
        paths = [os.path.relpath(x.path, root) for x in done if x.change == change]
        if paths:
            out[change] = paths
    return out


def run_schedule(nemesis: Nemesis, faults: list[Fault], t0: float, stop: threading.Event,
                 min_quiet_s: float = 3.0) -> None:
    """Carry out ``faults`` (times relative to ``t0``, a monotonic time). A heal that took long
    (restarts) pushes the next fault back so the cluster always gets ``min_quiet_s``."""
    healed_at = 0.0
    for fault in faults:
        begin = max(t0 + fault.start_s, healed_at + min_quiet_s)
        if stop.wait(max(0.0, begin - time.monotonic())):
            return
        nemesis.start(fault)
        end = begin + (fault.heal_s - fault.start_s)
        stopped = stop.wait(max(0.0, end - time.monotonic()))
        nemesis.heal()
        healed_at = time.monotonic()
        if stopped:
            return
