"""Launching real nodes from the CLI: what every cluster of node processes shares.

``kraft-cluster`` (tools/local_cluster.py), the tests' ``ProcCluster`` (tools/proc_cluster.py)
and the fault suite's ``Cluster`` (jepsen-style/cluster.py) are built on this module; each keeps
only its own policy on top (ports, tuning keys, persistence, network namespaces).

- Planning: node ids and roles (``plan_roles``), a node's address, ports and listeners
  (``NodeSpec``), the static quorum (``quorum_voters``), bootstrap lists, free loopback ports.
- ``server_properties``: a node's ``server.properties`` keys (listeners, quorum, ``log.dirs``,
  the HTTP admin API, then the cluster's settings and extra keys); ``render_properties``.
- ``random_cluster_id`` and ``NodeProcess.format`` (``kafka-storage format``).
- ``NodeProcess``: one node's directory (``server.properties``, ``data/``, ``server.log``) and
  its ``kafka-server-start`` process: start with its output appended to the log, wait for a line
  in what this run wrote (``READY_LINE``), stop (SIGTERM, then SIGKILL after a timeout), kill,
  pause and resume (SIGSTOP / SIGCONT). ``stop_nodes`` stops several at once.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.meta_properties import random_uuid
from storage.properties import parse_properties

REPO = Path(__file__).resolve().parents[1]
SERVER_MODULE = "tools.server_start"  # kafka-server-start
STORAGE_MODULE = "tools.storage_cli"  # kafka-storage
READY_LINE = "Kafka Server started"
LOOPBACK = "127.0.0.1"
BROKER = "broker"
CONTROLLER = "controller"
COMBINED = (BROKER, CONTROLLER)
KILL_WAIT_S = 10.0  # how long a SIGKILLed process may take to be reaped


class LaunchError(RuntimeError):
    """A node could not be configured, formatted, started or seen to reach a line."""


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------


def plan_roles(*, controllers: int, brokers: int = 0, combined: bool = False,
               controller_id_base: int = 0,
               broker_id_base: int | None = None) -> list[tuple[int, tuple[str, ...]]]:
    """Node ids and their roles, in id order.

    ``combined``: nodes 1..``controllers`` run both roles (``brokers`` must be 0). Otherwise
    controllers are ``controller_id_base`` + 1.. and brokers ``broker_id_base`` + 1..;
    ``broker_id_base`` defaults to right after the controllers.
    """
    if combined:
        if brokers:
            raise ValueError("combined nodes are counted by controllers alone")
        return [(i, COMBINED) for i in range(1, controllers + 1)]
    if broker_id_base is None:
        broker_id_base = controller_id_base + controllers
    plan = [(controller_id_base + i, (CONTROLLER,)) for i in range(1, controllers + 1)]
    plan += [(broker_id_base + i, (BROKER,)) for i in range(1, brokers + 1)]
    if len({i for i, _ in plan}) != len(plan):
        raise ValueError("controller and broker ids overlap")
    return sorted(plan)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node's id, roles and where it listens: PLAINTEXT (brokers), CONTROLLER (controllers)
    and the HTTP admin API (optional), all on ``host``."""

    node_id: int
    roles: tuple[str, ...]
    host: str = LOOPBACK
    broker_port: int | None = None
    controller_port: int | None = None
    admin_port: int | None = None

    def __post_init__(self) -> None:
        if (self.broker_port is not None) != self.is_broker:
            raise ValueError(f"node {self.node_id}: a broker port exactly when it is a broker")
        if (self.controller_port is not None) != self.is_controller:
            raise ValueError(
                f"node {self.node_id}: a controller port exactly when it is a controller")

    @property
    def is_broker(self) -> bool:
        return BROKER in self.roles

    @property
    def is_controller(self) -> bool:
        return CONTROLLER in self.roles

    @property
    def broker_address(self) -> str:
        return f"{self.host}:{self.broker_port}"

    @property
    def controller_address(self) -> str:
        return f"{self.host}:{self.controller_port}"

    @property
    def admin_url(self) -> str | None:
        return None if self.admin_port is None else f"http://{self.host}:{self.admin_port}"

    def listeners(self) -> list[str]:
        out = []
        if self.is_broker:
            out.append(f"PLAINTEXT://{self.broker_address}")
        if self.is_controller:
            out.append(f"CONTROLLER://{self.controller_address}")
        return out

    def ports(self) -> list[int]:
        return sorted(p for p in (self.broker_port, self.controller_port, self.admin_port)
                      if p is not None)


def quorum_voters(specs: Iterable[NodeSpec]) -> str:
    """``controller.quorum.voters``: every controller, as ``id@host:port``."""
    return ",".join(f"{s.node_id}@{s.controller_address}" for s in specs if s.is_controller)


def bootstrap_servers(specs: Iterable[NodeSpec]) -> str:
    return ",".join(s.broker_address for s in specs if s.is_broker)


def bootstrap_controllers(specs: Iterable[NodeSpec]) -> str:
    return ",".join(s.controller_address for s in specs if s.is_controller)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback right now (the kernel's picks)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


QUORUM_ENGINES = ("kraft", "pysyncobj")


def engine_settings(engine: str, specs: Iterable[NodeSpec], *,
                    port_offset: int | None = None) -> dict[str, str]:
    """The keys that run the metadata quorum on ``engine`` (broker/controller/engine.py):
    nothing for kraft; for pysyncobj the engine and one port offset for every controller
    (its pysyncobj port is its controller port plus the offset), picked so that those ports
    are free on loopback now unless ``port_offset`` is given."""
    if engine not in QUORUM_ENGINES:
        raise LaunchError(f"unknown quorum engine {engine!r} (one of {QUORUM_ENGINES})")
    if engine == "kraft":
        return {}
    ports = [s.controller_port for s in specs if s.controller_port is not None]
    if port_offset is None:
        port_offset = _free_offset(ports)
    return {"controller.quorum.engine": engine,
            "controller.quorum.engine.pysyncobj.port.offset": str(port_offset)}


def _free_offset(ports: Sequence[int]) -> int:
    # Below Linux's ephemeral range where possible, so that sockets bound to port 0 elsewhere
    # cannot take them between this check and the nodes' start.
    lo, hi = 1024 - min(ports), 32767 - max(ports)
    if lo >= hi:
        lo, hi = 1024 - min(ports), 65535 - max(ports)
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(lo, hi)
        shifted = [p + offset for p in ports]
        if offset and all(p not in ports and _loopback_port_free(p) for p in shifted):
            return offset
    raise LaunchError("no free pysyncobj port offset found")


def _loopback_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# server.properties, cluster id
# ---------------------------------------------------------------------------------------------


def server_properties(spec: NodeSpec, voters: str, log_dir: Path, *,
                      settings: Mapping[str, str] | None = None, advertise: bool = True,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A node's keys in file order: identity, listeners, quorum, ``log.dirs`` (also the
    metadata log) and ``admin.listeners`` (empty: no admin API); then the cluster's
    ``settings``; a broker's inter-broker listener and (``advertise``) advertised listener;
    ``extra`` last, overriding any of them."""
    props = {
        "node.id": str(spec.node_id),
        "process.roles": ",".join(spec.roles),
        "listeners": ",".join(spec.listeners()),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.voters": voters,
        "log.dirs": str(log_dir),
        "admin.listeners": spec.admin_url or "",
    }
    props.update(settings or {})
    if spec.is_broker:
        props["inter.broker.listener.name"] = "PLAINTEXT"
        if advertise:
            props["advertised.listeners"] = f"PLAINTEXT://{spec.broker_address}"
    props.update(extra or {})
    return props


def render_properties(props: Mapping[str, str], header: str | None = None) -> str:
    """Readable ``key=value`` lines (no escaping; checked to parse back identically), after an
    optional ``# header`` line."""
    lines = [] if header is None else [f"# {header}"]
    lines += [f"{key}={value}" for key, value in props.items()]
    text = "\n".join(lines) + "\n"
    if parse_properties(text) != dict(props):
        raise LaunchError(f"a server.properties value needs escaping: {dict(props)}")
    return text


def random_cluster_id() -> str:
    """A new cluster id, as ``kafka-storage random-uuid`` prints it."""
    return random_uuid()


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``--override key=value`` arguments as a dict (later wins); ValueError names a bad one."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--override expects key=value, got {item!r}")
        overrides[key.strip()] = value
    return overrides


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and is not a zombie (a zombie child still
    answers ``kill(pid, 0)``). Without /proc, existing is enough."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone since the kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment node processes and CLI tools run with: this checkout first on
    PYTHONPATH, unbuffered output; ``overrides`` set variables (None removes one)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# ---------------------------------------------------------------------------------------------
# node processes
# ---------------------------------------------------------------------------------------------


class NodeProcess:
    """One node: its directory and its ``kafka-server-start`` process.

    ``env`` overrides variables for the node's processes (format and server); ``new_session``
    starts the server in a session of its own, so a Ctrl-C meant for the launcher does not
    reach it. A subclass may run the server elsewhere (``command``) and raise its own error
    type (``error``).
    """

    error: type[Exception] = LaunchError

    def __init__(self, spec: NodeSpec, directory: Path, *,
                 env: Mapping[str, str | None] | None = None, new_session: bool = False) -> None:
        self.spec = spec
        self.node_id = spec.node_id
        self.dir = directory
        self.config = directory / "server.properties"
        self.data_dir = directory / "data"
        self.log_path = directory / "server.log"
        self.env_overrides = dict(env or {})
        self.new_session = new_session
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._log_offset = 0  # where this run's output starts in the log

    # -- files --------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return process_env(self.env_overrides)

    def write_config(self, props: Mapping[str, str], header: str | None = None) -> None:
        self.config.write_text(render_properties(props, header))

    def format(self, cluster_id: str, *, check: bool = True,
               extra_args: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
        """``kafka-storage format`` for this node's config (plus ``extra_args``, e.g.
        ``--add-scram``); with ``check`` a failure raises ``error`` with the tool's output."""
        r = subprocess.run(
            [sys.executable, "-m", STORAGE_MODULE, "format", "--cluster-id", cluster_id,
             "--config", str(self.config), *(extra_args or ())],
            cwd=REPO, env=self.env(), capture_output=True, text=True, check=False)
        if check and r.returncode != 0:
            raise self.error(f"formatting node {self.node_id} failed: {r.stdout}{r.stderr}")
        return r

    # -- process ------------------------------------------------------------------------------

    def command(self, argv: list[str]) -> list[str]:
        """How a command runs on this node (here: as it is)."""
        return argv

    def start(self) -> None:
        """Start the server; its stdout and stderr are appended to ``server.log``."""
        if self.alive():
            raise self.error(f"node {self.node_id} already running")
        self.paused = False
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(
                self.command([sys.executable, "-m", SERVER_MODULE, str(self.config)]),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                env=self.env(), start_new_session=self.new_session)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the current (or last) run wrote to the log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        """The first line of this run's output holding ``needle``, waiting for it up to
        ``timeout`` seconds; raises ``error`` with the output's tail if the time runs out or
        the process exits first."""
        want = needle.encode()
        deadline = time.monotonic() + timeout
        pending = b""
        with contextlib.suppress(FileNotFoundError), open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            while True:
                # Decided before reading: whatever an exited process wrote is read below.
                last = not self.alive() or time.monotonic() >= deadline
                pending += f.read()
                *lines, pending = pending.split(b"\n")
                if last:
                    lines.append(pending)
                for line in lines:
                    if want in line:
                        return line.decode(errors="replace") + "\n"
                if last:
                    break
                time.sleep(0.05)
        tail = "".join(self.output().splitlines(keepends=True)[-40:])
        raise self.error(f"node {self.node_id}: {needle!r} not seen in {timeout}s:\n{tail}")

    def pause(self) -> None:
        if self.alive() and not self.paused:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT, also to a process stopped from outside ``pause``."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def terminate(self) -> None:
        """SIGTERM (a paused process is resumed first, or it could not act on it)."""
        if self.alive():
            assert self.proc is not None
            self.resume()
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(KILL_WAIT_S)
        self.paused = False

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait; SIGKILL after ``timeout`` seconds. The exit code, None if it had
        to be killed (0 if it never ran)."""
        if self.proc is None:
            return 0
        if not self.alive():
            return self.proc.returncode
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def stop_nodes(nodes: Iterable[NodeProcess], timeout: float,
               report: Callable[[NodeProcess, str], None] | None = None) -> None:
    """Stop every started node at once: SIGTERM to all that run, then SIGKILL to any still
    running ``timeout`` seconds later. ``report(node, event)`` hears ``"sigterm"`` before a
    node is signalled, ``"sigkill"`` before it is killed, ``"exited"`` once it is gone."""
    started: Sequence[NodeProcess] = [n for n in nodes if n.proc is not None]
    for n in started:
        if n.alive():
            if report is not None:
                report(n, "sigterm")
            n.terminate()
    deadline = time.monotonic() + timeout
    for n in started:
        assert n.proc is not None
        try:
            n.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if report is not None:
                report(n, "sigkill")
            n.kill()
        if report is not None:
            report(n, "exited")
