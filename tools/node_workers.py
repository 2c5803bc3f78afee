"""Worker processes of one node (``node.worker.processes``, off by default): a node that uses
more than one core. See docs/multicore.md for the design and its measurements.

Each worker is a broker of its own: worker ``k`` (1..N-1; the node's own process is worker 0)
runs ``kafka-server-start`` on the node's configuration with

- ``node.id`` = node.id + k * ``node.worker.id.offset`` (a broker id of its own, so clients
  route each partition to the worker that leads it: no request is forwarded between workers);
- the node's broker listeners (and advertised listeners) with each port + k *
  ``node.worker.port.offset``; no controller listener (``process.roles=broker``) and no HTTP
  admin API;
- its own directories: every log dir and the metadata log dir as the sibling
  ``<dir>.worker-k`` (never inside the node's log dir, where a ``worker-1`` directory would
  read as a partition of topic ``worker``), with ``meta.properties`` written from the node's
  cluster id on first start;
- ``broker.rack`` = the node's rack, or ``node-<node.id>`` when the node has none, given to
  worker 0 too: the controller's rack-aware placement (kraft/controller/placement.py) then puts
  the replicas of a partition on distinct nodes whenever there are as many nodes as replicas.

Workers die with the node: a ``kill -9`` of the node kills them (``PR_SET_PDEATHSIG``), a
clean stop stops them first (their controlled shutdown needs the node's controller, if it has
one), then the node itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker.config import KafkaConfig
from storage.errors import ConfigError, MetaPropertiesError
from storage.meta_properties import MetaProperties, read_meta_properties, write_meta_properties

__all__ = ["WorkerSpec", "Workers", "follow_parent", "node_rack", "plan_workers"]

log = logging.getLogger(__name__)

SERVER_MODULE = "tools.server_start"
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 45.0
WORKER_OF_ENV = "PYKRAFT_NODE_WORKER_OF"  # the node's pid, in a worker's environment


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: its index, broker id and the overrides of the node's config."""

    index: int
    node_id: int
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def dirs(self) -> list[str]:
        return list(dict.fromkeys([*self.overrides["log.dirs"].split(","),
                                   self.overrides["metadata.log.dir"]]))


def worker_dir(directory: str, index: int) -> str:
    return f"{directory.rstrip('/')}.worker-{index}"


def node_rack(config: KafkaConfig) -> str:
    """The rack every worker of the node announces (see the module docstring)."""
    rack = config.get("broker.rack")
    return str(rack) if rack else f"node-{config.node_id}"


def plan_workers(config: KafkaConfig) -> list[WorkerSpec]:
    """The workers 1..N-1 of ``config``'s node (empty when ``node.worker.processes`` is 1);
    ``ConfigError`` when the key cannot apply to this node."""
    n = int(config.get("node.worker.processes"))
    if n <= 1:
        return []
    if not config.is_broker:
        raise ConfigError("node.worker.processes", str(n),
                          "worker processes need the broker role in process.roles")
    id_step = int(config.get("node.worker.id.offset"))
    port_step = int(config.get("node.worker.port.offset"))
    controller_names = set(config.controller_listener_names)
    broker_listeners = [e for e in config.listeners if e.name not in controller_names]
    if any(e.port == 0 for e in broker_listeners):
        raise ConfigError("node.worker.processes", str(n),
                          "worker processes need fixed listener ports (not port 0)")
    advertised = ([e for e in config.advertised_listeners if e.name not in controller_names]
                  if config.is_set("advertised.listeners") else [])
    voters = set(config.controller_quorum_voters)
    out = []
    for k in range(1, n):
        node_id = config.node_id + k * id_step
        if node_id in voters or node_id > 2**31 - 1:
            raise ConfigError("node.worker.id.offset", str(id_step),
                              f"worker {k}'s node id {node_id} is a controller's or too large")
        shift = k * port_step
        if any(e.port + shift > 65535 for e in broker_listeners):
            raise ConfigError("node.worker.port.offset", str(port_step),
                              f"worker {k}'s ports pass 65535")
        overrides = {
            "node.id": str(node_id),
            "process.roles": "broker",
            "listeners": ",".join(_shifted(e, shift) for e in broker_listeners),
            "log.dirs": ",".join(worker_dir(d, k) for d in config.log_dirs),
            "metadata.log.dir": worker_dir(config.metadata_log_dir, k),
            "admin.listeners": "",
            "node.worker.processes": "1",
            "broker.rack": node_rack(config),
        }
        if advertised:
            overrides["advertised.listeners"] = ",".join(_shifted(e, shift) for e in advertised)
        out.append(WorkerSpec(k, node_id, overrides))
    return out


def _shifted(e: object, shift: int) -> str:
    name, host, port = e.name, e.host, e.port  # type: ignore[attr-defined]
    host = f"[{host}]" if ":" in host else host
    return f"{name}://{host}:{port + shift}"


def prepare_worker_dirs(spec: WorkerSpec, cluster_id: str) -> None:
    """Create the worker's directories and their ``meta.properties`` (the node's cluster id,
    the worker's node id; the directory id is written by the worker's own start-up check)."""
    for d in spec.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
        meta = read_meta_properties(d)
        if meta is None:
            write_meta_properties(d, MetaProperties(cluster_id, spec.node_id))
        elif meta.cluster_id != cluster_id or meta.node_id != spec.node_id:
            raise MetaPropertiesError(
                f"{d} belongs to cluster {meta.cluster_id} node {meta.node_id}, not to worker "
                f"{spec.index} (node {spec.node_id}) of cluster {cluster_id}")


def follow_parent() -> None:
    """In a worker (``WORKER_OF_ENV`` set), first thing: be killed when the node's process
    dies (``PR_SET_PDEATHSIG``), and exit now if it already has."""
    parent = os.environ.pop(WORKER_OF_ENV, None)
    if parent is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        raise SystemExit(1)


class Workers:
    """The node's running worker processes."""

    def __init__(self, config_path: str, overrides: Mapping[str, str], specs: list[WorkerSpec],
                 cluster_id: str, extra_args: list[str] | None = None) -> None:
        self.config_path = config_path
        self.overrides = dict(overrides)
        self.specs = specs
        self.cluster_id = cluster_id
        self.extra_args = list(extra_args or [])
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self) -> None:
        for spec in self.specs:
            prepare_worker_dirs(spec, self.cluster_id)
            argv = [sys.executable, "-m", SERVER_MODULE, self.config_path, *self.extra_args]
            for key, value in {**self.overrides, **spec.overrides}.items():
                argv += ["--override", f"{key}={value}"]
            # Output goes to the node's own stdout; every line names its node.id.
            env = {**os.environ, WORKER_OF_ENV: str(os.getpid())}
            self.procs[spec.index] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
            log.info("Started worker %d (node.id=%d, pid %d)", spec.index, spec.node_id,
                     self.procs[spec.index].pid)
            threading.Thread(target=self._watch, args=(spec, self.procs[spec.index]),
                             name=f"worker-{spec.index}-watch", daemon=True).start()

    def _watch(self, spec: WorkerSpec, proc: subprocess.Popen[bytes]) -> None:
        """Say so when a worker exits while the node runs (it is not restarted)."""
        code = proc.wait()
        if not self.stopping:
            log.error("Worker %d (node.id=%d) exited with %d while the node runs; the "
                      "partitions it leads stay offline until the node restarts", spec.index,
                      spec.node_id, code)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every worker, wait for them (SIGKILL past ``timeout``). Blocking; once."""
        self.stopping = True
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        for index, p in self.procs.items():
            try:
                code = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
            log.info("Worker %d exited with %d", index, code)
        self.procs.clear()

