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
- ``--engine pysyncobj`` runs the metadata quorum on pysyncobj (``controller.quorum.engine``;
  its ports are the CONTROLLER ports + 1000);
- ``<dir>/node-<i>/server.properties``, ``<dir>/node-<i>/data`` (log.dirs and metadata log),
  ``<dir>/node-<i>/server.log`` (the node's output).

Configs, format and the node processes come from tools/launcher.py; this module keeps the CLI,
the port scheme, ``<dir>`` between runs, what it prints, ``status`` and ``down``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from broker.config import KafkaConfig
from storage.errors import ConfigError
from storage.meta_properties import read_meta_properties
from tools.launcher import (
    BROKER,
    CONTROLLER,
    LOOPBACK,
    QUORUM_ENGINES,
    READY_LINE,
    SERVER_MODULE,
    LaunchError,
    NodeProcess,
    NodeSpec,
    bootstrap_controllers,
    bootstrap_servers,
    engine_settings,
    parse_overrides,
    pid_alive,
    plan_roles,
    quorum_voters,
    random_cluster_id,
    server_properties,
    stop_nodes,
)

PROG = "kraft-cluster"
# Ports end in 2 (PLAINTEXT), 3 (CONTROLLER) and 4 (admin), so no two nodes ever share one.
MAX_NODES = 50
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 20.0


def plan(nodes: int, separate_roles: bool, port_offset: int = 0) -> list[NodeSpec]:
    """Combined nodes 1..N, or controllers 1..N and brokers N+1..2N; node *i*'s ports are
    ``9092 + 10*i`` (PLAINTEXT), ``9093 + 10*i`` (CONTROLLER), ``9644 + 10*i`` (admin)."""
    roles = plan_roles(controllers=nodes, brokers=nodes if separate_roles else 0,
                       combined=not separate_roles)
    return [
        NodeSpec(
            i, r, LOOPBACK,
            broker_port=9092 + 10 * i + port_offset if BROKER in r else None,
            controller_port=9093 + 10 * i + port_offset if CONTROLLER in r else None,
            admin_port=9644 + 10 * i + port_offset,
        )
        for i, r in roles
    ]


def node_dir(root: Path, node: NodeSpec) -> Path:
    return root / f"node-{node.node_id}"


def node_properties(root: Path, node: NodeSpec, specs: Sequence[NodeSpec],
                    overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    brokers = sum(s.is_broker for s in specs)
    settings = {
        "num.partitions": "1",
        "default.replication.factor": str(min(3, brokers)),
        "min.insync.replicas": str(min(2, brokers)),
        "offsets.topic.replication.factor": str(min(3, brokers)),
        "transaction.state.log.replication.factor": str(min(3, brokers)),
        "transaction.state.log.min.isr": str(min(2, brokers)),
        "group.initial.rebalance.delay.ms": "0",
    }
    return server_properties(node, quorum_voters(specs), node_dir(root, node) / "data",
                             settings=settings, extra=overrides)


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


def _is_our_node(pid: int) -> bool:
    """Guard against pid reuse: the process must be a tools.server_start."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return SERVER_MODULE.encode() in f.read()
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file


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
    root: Path, nodes: int, separate_roles: bool, port_offset: int,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, list[NodeProcess]]:
    """Write configs (checked, ``overrides`` last); create or check cluster.json; format
    unformatted nodes."""
    specs = plan(nodes, separate_roles, port_offset)
    configs = {spec.node_id: node_properties(root, spec, specs, overrides) for spec in specs}
    for props in configs.values():
        try:
            KafkaConfig.from_properties(props)
        except ConfigError as e:
            raise SystemExit(f"{PROG}: error: {e}") from None
    root.mkdir(parents=True, exist_ok=True)
    state = _load_json(_cluster_file(root))
    if state is None:
        state = {"cluster_id": random_cluster_id(), "nodes": nodes, "separate_roles": separate_roles}
        _write_json(_cluster_file(root), state)
        print(f"New cluster {state['cluster_id']} in {root}")
    elif state.get("nodes") != nodes or state.get("separate_roles") != separate_roles:
        raise SystemExit(
            f"{PROG}: error: {root} holds a cluster made with --nodes {state.get('nodes')}"
            f"{' --separate-roles' if state.get('separate_roles') else ''}; use the same options "
            "or remove the directory"
        )
    cluster_id = str(state["cluster_id"])
    out = []
    for spec in specs:
        # A session of its own: Ctrl-C reaches only us, and we stop the nodes in order.
        node = NodeProcess(spec, node_dir(root, spec), new_session=True)
        node.dir.mkdir(parents=True, exist_ok=True)
        try:
            node.write_config(
                configs[spec.node_id],
                header=f"Generated by tools.local_cluster for node {spec.node_id}; "
                       "rewritten by 'up'.")
        except LaunchError as e:
            raise SystemExit(f"{PROG}: error: {e}") from None
        if read_meta_properties(node.data_dir) is None:
            r = node.format(cluster_id, check=False)
            print(r.stdout, end="", flush=True)
            print(r.stderr, end="", file=sys.stderr, flush=True)
            if r.returncode != 0:
                raise SystemExit(f"{PROG}: error: formatting node {spec.node_id} failed")
        out.append(node)
    return cluster_id, out


def _report_stop(node: NodeProcess, event: str) -> None:
    assert node.proc is not None
    if event == "sigterm":
        print(f"Stopping node {node.node_id} (pid {node.proc.pid}) with SIGTERM")
    elif event == "sigkill":
        print(f"Node {node.node_id} (pid {node.proc.pid}) did not stop in "
              f"{STOP_TIMEOUT_S:.0f}s: SIGKILL")
    else:
        print(f"Node {node.node_id} exited with code {node.proc.returncode}")


def _wait_started(nodes: Sequence[NodeProcess], stop: list[str]) -> None:
    """Wait for each node's start line, looking only at what this run appended to its log."""
    pending = {n.node_id: n for n in nodes}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending and time.monotonic() < deadline and not stop:
        for node_id in sorted(pending):
            node = pending[node_id]
            assert node.proc is not None
            if node.proc.poll() is not None:
                print(f"Node {node_id} exited with code {node.proc.returncode}; "
                      f"see {node.log_path}")
                del pending[node_id]
            elif READY_LINE in node.output():
                print(f"Node {node_id} started")
                del pending[node_id]
        time.sleep(0.1)
    for node_id, node in sorted(pending.items()):
        print(f"Node {node_id} has not reported '{READY_LINE}' yet; see {node.log_path}")


def cmd_up(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    running = _running_nodes(root)
    if running:
        pids = ", ".join(str(e["pid"]) for e in running)
        print(f"{PROG}: error: cluster in {root} is already running (pids {pids}); "
              f"run '{PROG} down' first", file=sys.stderr)
        return 1
    try:
        overrides = parse_overrides(args.override)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    # --engine: the metadata quorum's engine; its pysyncobj ports sit 1000 above the
    # controller ports (the key's default), clear of this tool's other ports.
    specs_planned = plan(args.nodes, args.separate_roles, args.port_offset)
    overrides = {**engine_settings(args.engine, specs_planned, port_offset=1000), **overrides}
    cluster_id, nodes = _prepare(root, args.nodes, args.separate_roles, args.port_offset,
                                 overrides)
    specs = [n.spec for n in nodes]
    busy = [p for spec in specs for p in spec.ports() if not _port_free(p)]
    if busy:
        print(f"{PROG}: error: ports already in use: {', '.join(map(str, busy))}", file=sys.stderr)
        return 1

    stop_requested: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.append(signal.Signals(signum).name)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        for node in nodes:
            node.start()
        _write_json(_pid_file(root), {
            "cluster_id": cluster_id,
            "supervisor_pid": os.getpid(),
            "nodes": [
                {
                    "node_id": node.node_id,
                    "pid": node.proc.pid if node.proc is not None else None,
                    "roles": list(node.spec.roles),
                    "config": str(node.config),
                    "data": str(node.data_dir),
                    "log": str(node.log_path),
                    "listeners": node.spec.listeners(),
                    "admin": node.spec.admin_url,
                    "ports": node.spec.ports(),
                }
                for node in nodes
            ],
        })
        print(f"Cluster {cluster_id}: {len(nodes)} node(s) in {root}")
        for node in nodes:
            assert node.proc is not None
            print(
                f"  node {node.node_id} pid {node.proc.pid} "
                f"roles={','.join(node.spec.roles)} listeners={','.join(node.spec.listeners())} "
                f"admin={node.spec.admin_url}\n"
                f"      config={node.config} data={node.data_dir} log={node.log_path}"
            )
        print(f"Bootstrap servers: {bootstrap_servers(specs)}")
        if any(s.is_controller for s in specs):
            print(f"Bootstrap controllers: {bootstrap_controllers(specs)}")
        print("Admin URLs: " + " ".join(f"{s.admin_url}" for s in specs))
        _wait_started(nodes, stop_requested)
        print("Running; press Ctrl-C to stop.")
        while not stop_requested:
            if not any(n.alive() for n in nodes):
                print("All nodes have exited.")
                break
            time.sleep(0.2)
        if stop_requested:
            print(f"Received {stop_requested[0]}, stopping the cluster")
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        stop_nodes(nodes, STOP_TIMEOUT_S, _report_stop)
        with contextlib.suppress(FileNotFoundError):
            _pid_file(root).unlink()
    failed = [n for n in nodes
              if n.proc is not None and n.proc.returncode not in (0, -signal.SIGTERM)]
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
    return [e for e in _recorded_nodes(root) if pid_alive(e["pid"]) and _is_our_node(e["pid"])]


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
        pending = [e for e in pending if pid_alive(e["pid"])]
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
        up = pid_alive(e["pid"]) and _is_our_node(e["pid"])
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
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a server property for every node, written into each server.properties after "
             "the defaults (repeatable; up), e.g. --override min.insync.replicas=1",
    )
    parser.add_argument(
        "--engine", choices=QUORUM_ENGINES, default="kraft",
        help="the metadata quorum's engine, controller.quorum.engine (default kraft; up)",
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
