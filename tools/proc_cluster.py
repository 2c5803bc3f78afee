"""Real node processes on loopback, for tests and benchmarks: format storage and start nodes
from the CLI.

``ProcCluster(tmp_path, controllers=3, brokers=2)`` writes one ``server.properties`` per node
(ports picked free on 127.0.0.1), runs ``kafka-storage format`` for each, and starts/stops/kills
``kafka-server-start`` processes. Node ids: controllers 1..C, brokers C+1..C+B; with
``combined=True`` nodes 1..C run both roles and there are no separate brokers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTED = "Kafka Server started"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_offset(nodes: int) -> int:
    """A ``--port-offset`` for ``kraft-cluster up`` whose ports (9092 + 10 * node + offset and
    its neighbours, ``tools/local_cluster.py``) are free now. Offsets keep every port below
    32768, under Linux's ephemeral range, so sockets other tests bind to port 0 cannot take
    them between this check and the cluster's start."""
    rng = random.Random()
    for _ in range(50):
        offset = rng.randrange(1000, 22000, 100)
        ports = [base + 10 * node + offset
                 for node in range(1, 2 * nodes + 1) for base in (9092, 9093, 9644)]
        if all(_port_free(p) for p in ports):
            return offset
    raise RuntimeError("no free port offset found")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONUNBUFFERED"] = "1"
    return e


class NodeProc:
    def __init__(self, node_id: int, roles: str, directory: Path, broker_port: int | None,
                 controller_port: int | None) -> None:
        self.node_id = node_id
        self.roles = roles
        self.dir = directory
        self.broker_port = broker_port
        self.controller_port = controller_port
        self.config = directory / "server.properties"
        self.log_path = directory / "server.log"
        self.proc: subprocess.Popen[str] | None = None
        self.admin_port: int | None = None  # HTTP admin API (ProcCluster(admin=True))
        self._lines: list[str] = []
        self._cond = threading.Condition()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def controller_address(self) -> str:
        return f"127.0.0.1:{self.controller_port}"

    @property
    def admin_url(self) -> str:
        assert self.admin_port is not None, "start the cluster with ProcCluster(admin=True)"
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._lines = []
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.server_start", str(self.config)],
            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
            log.close()

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.proc is not None and self.proc.poll() is not None and not any(
                        needle in ln for ln in self._lines):
                    # Give the pump a moment to drain the last lines.
                    self._cond.wait(0.2)
                    if not any(needle in ln for ln in self._lines):
                        break
                self._cond.wait(min(left, 0.5))
        tail = "".join(self._lines[-40:])
        raise AssertionError(f"node {self.node_id}: {needle!r} not seen in {timeout}s:\n{tail}")

    def output(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 60.0) -> int:
        if not self.alive():
            return self.proc.returncode if self.proc is not None else 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"node {self.node_id} did not stop within {timeout}s") from None


class ProcCluster:
    def __init__(self, root: Path, *, controllers: int = 3, brokers: int = 2,
                 combined: bool = False, extra: dict[str, str] | None = None,
                 admin: bool = False) -> None:
        self.root = root
        self.nodes: dict[int, NodeProc] = {}
        # Fast broker heartbeats and a short session suit tests; ``extra`` overrides them.
        ports = free_ports(3 * (controllers + brokers))
        for i in range(1, controllers + 1):
            roles = "broker,controller" if combined else "controller"
            self.nodes[i] = NodeProc(i, roles, root / f"node-{i}",
                                     ports.pop() if combined else None, ports.pop())
        if not combined:
            for i in range(controllers + 1, controllers + brokers + 1):
                self.nodes[i] = NodeProc(i, "broker", root / f"node-{i}", ports.pop(), None)
        self.controller_ids = [n.node_id for n in self.nodes.values()
                               if "controller" in n.roles]
        self.broker_ids = [n.node_id for n in self.nodes.values() if "broker" in n.roles]
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}"
                          for n in self.nodes.values() if "controller" in n.roles)
        cid = subprocess.run([sys.executable, "-m", "tools.storage_cli", "random-uuid"],
                             cwd=REPO, env=env(), capture_output=True, text=True, check=True)
        self.cluster_id = cid.stdout.strip()
        for n in self.nodes.values():
            if admin:
                n.admin_port = ports.pop()
            n.dir.mkdir(parents=True)
            listeners = []
            if n.broker_port is not None:
                listeners.append(f"PLAINTEXT://127.0.0.1:{n.broker_port}")
            if n.controller_port is not None:
                listeners.append(f"CONTROLLER://127.0.0.1:{n.controller_port}")
            props = {
                "node.id": str(n.node_id),
                "process.roles": n.roles,
                "listeners": ",".join(listeners),
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "controller.quorum.voters": voters,
                "log.dirs": str(n.dir / "data"),
                "admin.listeners": f"http://127.0.0.1:{n.admin_port}" if admin else "",
                "broker.heartbeat.interval.ms": "500",
                "broker.session.timeout.ms": "4000",
            }
            if "broker" in n.roles:
                props["inter.broker.listener.name"] = "PLAINTEXT"
            props.update(extra or {})
            n.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            subprocess.run([sys.executable, "-m", "tools.storage_cli", "format", "--cluster-id",
                            self.cluster_id, "--config", str(n.config)],
                           cwd=REPO, env=env(), capture_output=True, text=True, check=True)

    @property
    def bootstrap_controllers(self) -> str:
        return ",".join(self.nodes[i].controller_address for i in self.controller_ids)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.nodes[i].bootstrap for i in self.broker_ids)

    def start(self, ids: list[int] | None = None, wait: bool = True) -> None:
        ids = list(self.nodes) if ids is None else ids
        for i in ids:
            self.nodes[i].start()
        if wait:
            for i in ids:
                self.nodes[i].wait_for(STARTED)

    def stop_all(self) -> None:
        # Brokers first (their controlled shutdown needs the controllers), then controllers.
        for i in self.broker_ids + self.controller_ids:
            with contextlib.suppress(AssertionError):
                self.nodes[i].stop()

    def kill_all(self) -> None:
        for n in self.nodes.values():
            n.kill()

    def shutdown(self) -> None:
        """The end of a test: wake any node a test paused (SIGSTOP), stop all, kill what is
        left."""
        for n in self.nodes.values():
            if n.alive() and n.proc is not None:
                os.kill(n.proc.pid, signal.SIGCONT)
        self.stop_all()
        self.kill_all()
