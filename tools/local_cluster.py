"""Run a local cluster on loopback: ``kraft-cluster up|down|status`` (also
``python -m tools.local_cluster``; ``make run`` runs ``up``).

``up`` (foreground) writes one ``server.properties`` per node, formats storage on the first run
(a random cluster id kept in ``<dir>/cluster.json``), starts every node with
``kafka-server-start`` as a subprocess, prints what it started, and on Ctrl-C / SIGTERM stops
them with SIGTERM (SIGKILL after a timeout). ``down`` stops the nodes recorded in
``<dir>/cluster.pids`` (the ``up`` process then exits too); ``status`` reports which are alive.
Data is kept between runs.

Layout and ports (loopback only; node ids start at 1; each node owns a block of 10 ports so the
nodes never clash with each other, nor with a stock Kafka on 9092/9093):

- combined roles (default): nodes 1..N run ``broker,controller``;
- ``--separate-roles``: nodes 1..N are controllers, nodes N+1..2N are brokers;
- node *i* listens on PLAINTEXT ``9092 + 10*i`` (brokers), CONTROLLER ``9093 + 10*i``
  (controllers) and the HTTP admin API on ``9644 + 10*i``: node 1 = 9102 / 9103 / 9654,
  node 2 = 9112 / 9113 / 9664, node 3 = 9122 / 9123 / 9674;
- ``--port-offset N`` adds N to every port (a second cluster next to the first);
- static quorum: ``controller.quorum.voters`` lists every controller;
- ``<dir>/node-<i>/server.properties``, ``<dir>/node-<i>/data`` (log.dirs and metadata log),
  ``<dir>/node-<i>/server.log`` (the node's output).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.meta_properties import random_uuid, read_meta_properties
from storage.properties import parse_properties

PROG = "kraft-cluster"
REPO_ROOT = Path(__file__).resolve().parents[1]
# Ports end in 2 (PLAINTEXT), 3 (CONTROLLER) and 4 (admin), so no two nodes ever share one.
MAX_NODES = 50
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 20.0
STARTED_MARKER = "Kafka Server started"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    node_id: int
    roles: tuple[str, ...]
    port_offset: int = 0

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def broker_port(self) -> int:
        return 9092 + 10 * self.node_id + self.port_offset

    @property
    def controller_port(self) -> int:
        return 9093 + 10 * self.node_id + self.port_offset

    @property
    def admin_port(self) -> int:
        return 9644 + 10 * self.node_id + self.port_offset

    def ports(self) -> list[int]:
        ports = [self.admin_port]
        if self.is_broker:
            ports.append(self.broker_port)
        if self.is_controller:
            ports.append(self.controller_port)
        return sorted(ports)

    def listeners(self) -> list[str]:
        out = []
        if self.is_broker:
            out.append(f"PLAINTEXT://127.0.0.1:{self.broker_port}")
        if self.is_controller:
            out.append(f"CONTROLLER://127.0.0.1:{self.controller_port}")
        return out


def plan(nodes: int, separate_roles: bool, port_offset: int = 0) -> list[NodeSpec]:
    if separate_roles:
        return [NodeSpec(i, ("controller",), port_offset) for i in range(1, nodes + 1)] + [
            NodeSpec(i, ("broker",), port_offset) for i in range(nodes + 1, 2 * nodes + 1)
        ]
    return [NodeSpec(i, ("broker", "controller"), port_offset) for i in range(1, nodes + 1)]


def bootstrap_servers(specs: Sequence[NodeSpec]) -> str:
    return ",".join(f"127.0.0.1:{n.broker_port}" for n in specs if n.is_broker)


def bootstrap_controllers(specs: Sequence[NodeSpec]) -> str:
    return ",".join(f"127.0.0.1:{n.controller_port}" for n in specs if n.is_controller)


def node_dir(root: Path, node: NodeSpec) -> Path:
    return root / f"node-{node.node_id}"


def node_properties(root: Path, node: NodeSpec, specs: Sequence[NodeSpec]) -> dict[str, str]:
    controllers = [s for s in specs if s.is_controller]
    brokers = [s for s in specs if s.is_broker]
    props = {
        "node.id": str(node.node_id),
        "process.roles": ",".join(node.roles),
        "listeners": ",".join(node.listeners()),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.voters": ",".join(
            f"{c.node_id}@127.0.0.1:{c.controller_port}" for c in controllers
        ),
        "log.dirs": str(node_dir(root, node) / "data"),
        "admin.listeners": f"http://127.0.0.1:{node.admin_port}",
        "num.partitions": "1",
        "default.replication.factor": str(min(3, len(brokers))),
        "min.insync.replicas": str(min(2, len(brokers))),
        "offsets.topic.replication.factor": str(min(3, len(brokers))),
        "transaction.state.log.replication.factor": str(min(3, len(brokers))),
        "transaction.state.log.min.isr": str(min(2, len(brokers))),
        "group.initial.rebalance.delay.ms": "0",
    }
    if node.is_broker:
        props["inter.broker.listener.name"] = "PLAINTEXT"
        props["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{node.broker_port}"
    return props


def _render_config(node: NodeSpec, props: dict[str, str]) -> str:
    """Readable server.properties (no escaping of ``:``; checked to parse back identically)."""
    lines = [f"# Generated by tools.local_cluster for node {node.node_id}; rewritten by 'up'."]
    lines += [f"{key}={value}" for key, value in props.items()]
    text = "\n".join(lines) + "\n"
    assert parse_properties(text) == props, "a value needs escaping"
    return text


# ---------------------------------------------------------------------------------------------
# state files
# ---------------------------------------------------------------------------------------------


def _cluster_file(root: Path) -> Path:
    return root / "cluster.json"


def _pid_file(root: Path) -> Path:
    return root / "cluster.pids"


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise SystemExit(f"{PROG}: error: {path} is not a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_node(pid: int) -> bool:
    """Guard against pid reuse: the process must be a tools.server_start."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"tools.server_start" in f.read()
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the pid file


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------


def _prepare(
    root: Path, nodes: int, separate_roles: bool, port_offset: int
) -> tuple[str, list[NodeSpec]]:
    """Write configs; create or check cluster.json; format unformatted nodes."""
    from tools import storage_cli  # same layer; imported late to keep start-up light

    root.mkdir(parents=True, exist_ok=True)
    state = _load_json(_cluster_file(root))
    if state is None:
        state = {"cluster_id": random_uuid(), "nodes": nodes, "separate_roles": separate_roles}
        _write_json(_cluster_file(root), state)
        print(f"New cluster {state['cluster_id']} in {root}")
    elif state.get("nodes") != nodes or state.get("separate_roles") != separate_roles:
        raise SystemExit(
            f"{PROG}: error: {root} holds a cluster made with --nodes {state.get('nodes')}"
            f"{' --separate-roles' if state.get('separate_roles') else ''}; use the same options "
            "or remove the directory"
        )
    cluster_id = str(state["cluster_id"])
    specs = plan(nodes, separate_roles, port_offset)
    for node in specs:
        ndir = node_dir(root, node)
        ndir.mkdir(parents=True, exist_ok=True)
        config = ndir / "server.properties"
        config.write_text(_render_config(node, node_properties(root, node, specs)))
        if read_meta_properties(ndir / "data") is None:
            rc = storage_cli.main(["format", "--cluster-id", cluster_id, "--config", str(config)])
            if rc != 0:
                raise SystemExit(f"{PROG}: error: formatting node {node.node_id} failed")
    return cluster_id, specs


def _stop(procs: dict[int, subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S) -> None:
    for node_id, proc in procs.items():
        if proc.poll() is None:
            print(f"Stopping node {node_id} (pid {proc.pid}) with SIGTERM")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node_id, proc in procs.items():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"Node {node_id} (pid {proc.pid}) did not stop in {timeout:.0f}s: SIGKILL")
            proc.kill()
            proc.wait()
        print(f"Node {node_id} exited with code {proc.returncode}")


def _wait_started(
    logs: dict[int, Path],
    offsets: dict[int, int],
    procs: dict[int, subprocess.Popen[bytes]],
    stop: list[str],
) -> None:
    """Wait for each node's start line, looking only at what this run appended to its log."""
    pending = set(logs)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending and time.monotonic() < deadline and not stop:
        for node_id in sorted(pending):
            if procs[node_id].poll() is not None:
                print(f"Node {node_id} exited with code {procs[node_id].returncode}; "
                      f"see {logs[node_id]}")
                pending.discard(node_id)
            elif STARTED_MARKER in _read_from(logs[node_id], offsets[node_id]):
                print(f"Node {node_id} started")
                pending.discard(node_id)
        time.sleep(0.1)
    for node_id in sorted(pending):
        print(f"Node {node_id} has not reported '{STARTED_MARKER}' yet; see {logs[node_id]}")


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def cmd_up(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    running = _running_nodes(root)
    if running:
        pids = ", ".join(str(e["pid"]) for e in running)
        print(f"{PROG}: error: cluster in {root} is already running (pids {pids}); "
              f"run '{PROG} down' first", file=sys.stderr)
        return 1
    cluster_id, specs = _prepare(root, args.nodes, args.separate_roles, args.port_offset)
    busy = [p for node in specs for p in node.ports() if not _port_free(p)]
    if busy:
        print(f"{PROG}: error: ports already in use: {', '.join(map(str, busy))}", file=sys.stderr)
        return 1

    stop_requested: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.append(signal.Signals(signum).name)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    logs: dict[int, Path] = {}
    log_offsets: dict[int, int] = {}
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        for node in specs:
            ndir = node_dir(root, node)
            logs[node.node_id] = ndir / "server.log"
            with open(logs[node.node_id], "ab") as log:
                log_offsets[node.node_id] = log.tell()
                # A new session: Ctrl-C reaches only us, and we stop the nodes in order.
                procs[node.node_id] = subprocess.Popen(
                    [sys.executable, "-m", "tools.server_start", str(ndir / "server.properties")],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=REPO_ROOT, env=env, start_new_session=True,
                )
        _write_json(_pid_file(root), {
            "cluster_id": cluster_id,
            "supervisor_pid": os.getpid(),
            "nodes": [
                {
                    "node_id": node.node_id,
                    "pid": procs[node.node_id].pid,
                    "roles": list(node.roles),
                    "config": str(node_dir(root, node) / "server.properties"),
                    "data": str(node_dir(root, node) / "data"),
                    "log": str(logs[node.node_id]),
                    "listeners": node.listeners(),
                    "admin": f"http://127.0.0.1:{node.admin_port}",
                    "ports": node.ports(),
                }
                for node in specs
            ],
        })
        print(f"Cluster {cluster_id}: {len(specs)} node(s) in {root}")
        for node in specs:
            ndir = node_dir(root, node)
            print(
                f"  node {node.node_id} pid {procs[node.node_id].pid} "
                f"roles={','.join(node.roles)} listeners={','.join(node.listeners())} "
                f"admin=http://127.0.0.1:{node.admin_port}\n"
                f"      config={ndir / 'server.properties'} data={ndir / 'data'} "
                f"log={logs[node.node_id]}"
            )
        print(f"Bootstrap servers: {bootstrap_servers(specs)}")
        if any(n.is_controller for n in specs):
            print(f"Bootstrap controllers: {bootstrap_controllers(specs)}")
        print("Admin URLs: " + " ".join(f"http://127.0.0.1:{n.admin_port}" for n in specs))
        _wait_started(logs, log_offsets, procs, stop_requested)
        print("Running; press Ctrl-C to stop.")
        while not stop_requested:
            if all(p.poll() is not None for p in procs.values()):
                print("All nodes have exited.")
                break
            time.sleep(0.2)
        if stop_requested:
            print(f"Received {stop_requested[0]}, stopping the cluster")
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        _stop(procs)
        with contextlib.suppress(FileNotFoundError):
            _pid_file(root).unlink()
    failed = [n for n, p in procs.items() if p.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# down / status
# ---------------------------------------------------------------------------------------------


def _recorded_nodes(root: Path) -> list[dict[str, Any]]:
    state = _load_json(_pid_file(root))
    if state is None:
        return []
    return list(state.get("nodes", []))


def _running_nodes(root: Path) -> list[dict[str, Any]]:
    return [e for e in _recorded_nodes(root) if _pid_alive(e["pid"]) and _is_our_node(e["pid"])]


def cmd_down(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    entries = _running_nodes(root)
    if not entries:
        print(f"No running nodes recorded in {_pid_file(root)}")
        with contextlib.suppress(FileNotFoundError):
            _pid_file(root).unlink()
        return 0
    for e in entries:
        print(f"Stopping node {e['node_id']} (pid {e['pid']}) with SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.kill(e["pid"], signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    pending = list(entries)
    while pending and time.monotonic() < deadline:
        pending = [e for e in pending if _pid_alive(e["pid"])]
        time.sleep(0.1)
    for e in pending:
        print(f"Node {e['node_id']} (pid {e['pid']}) did not stop in {args.timeout:.0f}s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(e["pid"], signal.SIGKILL)
    print("Stopped.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    entries = _recorded_nodes(root)
    if not entries:
        print(f"No cluster running in {root}")
        return 1
    alive = 0
    for e in entries:
        up = _pid_alive(e["pid"]) and _is_our_node(e["pid"])
        alive += up
        print(
            f"node {e['node_id']}: {'alive' if up else 'dead'} pid {e['pid']} "
            f"roles={','.join(e['roles'])} listeners={','.join(e['listeners'])} "
            f"admin={e['admin']} log={e['log']}"
        )
    brokers = [a.removeprefix("PLAINTEXT://") for e in entries for a in e["listeners"]
               if a.startswith("PLAINTEXT://")]
    if brokers:
        print(f"Bootstrap servers: {','.join(brokers)}")
    print(f"{alive}/{len(entries)} nodes alive")
    return 0 if alive == len(entries) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Run a local cluster on loopback.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", default="data", help="cluster directory (default ./data)")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument(
        "--separate-roles", action="store_true",
        help="run --nodes controllers and --nodes brokers instead of combined nodes",
    )
    parser.add_argument(
        "--port-offset", type=int, default=0,
        help="added to every port, to run a second cluster next to the first (default 0)",
    )
    parser.add_argument(
        "--timeout", type=float, default=STOP_TIMEOUT_S,
        help="seconds to wait after SIGTERM before SIGKILL (down)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= MAX_NODES:
        parser.error(f"--nodes must be between 1 and {MAX_NODES}")
    if not 0 <= args.port_offset <= 50000:
        parser.error("--port-offset must be between 0 and 50000")
    if args.command == "up":
        return cmd_up(args)
    if args.command == "down":
        return cmd_down(args)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
