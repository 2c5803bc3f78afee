"""Cluster control for the fault suite: N real nodes, each in its own network namespace.

Each node runs in its own network namespace at its own IP, linked to the others by a bridge
(``tools/netns.py`` explains why, and how a partition is a set of blackhole routes); clients
run in the root namespace.

Nodes run ``broker,controller`` (combined), or, with ``controllers=k``, brokers 1..n run
``broker`` and k more nodes (ids 101..100+k) run ``controller`` and form the metadata quorum.
They are started from the CLI (``kafka-storage format`` then ``kafka-server-start``) with their
own data directory, by tools/launcher.py; this module adds the namespaces (a node's commands run
through ``ip netns exec``), the blackhole routes and the fsync journal. With
``fsync_journal=True`` every node writes an fsync journal (storage/fsync_journal.py) so the
lose-unsynced nemesis can model a power loss: files cut back to what was fsynced, directory
entries back to what directory fsyncs made durable. The journal is baselined after format:
what format left on disk counts as durable.
"""

from __future__ import annotations

import atexit
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from disks import FaultDisk
from security import SaslSsl

from storage import fsync_journal
from tools.launcher import (
    BROKER,
    CONTROLLER,
    READY_LINE,
    LaunchError,
    NodeProcess,
    NodeSpec,
    bootstrap_servers,
    engine_settings,
    plan_roles,
    quorum_voters,
    random_cluster_id,
    server_properties,
    stop_nodes,
)
from tools.netns import NamespaceNetwork, netns_available

__all__ = ["Cluster", "ClusterError", "Node", "netns_available"]

STARTED = READY_LINE
BROKER_PORT = 9092
CONTROLLER_PORT = 9093
ADMIN_PORT = 9644  # the HTTP admin API, on nodes of a Cluster(admin=True)
PYSYNCOBJ_PORT_OFFSET = 1000  # quorum_engine="pysyncobj": its port is the controller port + this
STOP_ALL_TIMEOUT_S = 20.0


class ClusterError(LaunchError):
    pass


CONTROLLER_ID_BASE = 100  # separate controllers are nodes 101, 102, ...


class Node(NodeProcess):
    """A node in its own namespace at 10.<net>.0.<id>, with its fsync journal if the cluster
    keeps them."""

    error = ClusterError

    def __init__(self, cluster: Cluster, node_id: int, roles: str = "broker,controller") -> None:
        self.cluster = cluster
        self.roles = roles
        self.ip = cluster.network.ip(node_id)
        self.netns = cluster.network.netns(node_id)
        directory = cluster.root / f"node-{node_id}"
        self.journal = directory / "fsync.journal" if cluster.fsync_journal else None
        role_set = tuple(roles.split(","))
        spec = NodeSpec(node_id, role_set, self.ip,
                        broker_port=BROKER_PORT if BROKER in role_set else None,
                        controller_port=CONTROLLER_PORT if CONTROLLER in role_set else None,
                        admin_port=ADMIN_PORT if cluster.admin else None)
        # Only a journaling node's processes (format and server) write the journal.
        super().__init__(spec, directory, env={
            fsync_journal.ENV_VAR: None if self.journal is None else str(self.journal)})
        self.is_broker = spec.is_broker
        self.is_controller = spec.is_controller

    @property
    def bootstrap(self) -> str:
        return self.spec.broker_address

    def command(self, argv: list[str]) -> list[str]:
        # ``ip netns exec`` execs the command: the pid is the node's own.
        return ["ip", "netns", "exec", self.netns, *argv]

    def start(self) -> None:
        if not self.alive():
            with self.log_path.open("a") as log:
                log.write(f"--- start {time.strftime('%H:%M:%S')}\n")
        super().start()

    def stop(self, timeout: float = 30.0) -> int | None:
        return super().stop(timeout)


class Cluster:
    """``Cluster(root, n=3, controllers=0, extra={...})``; ``setup()``, ``start()``,
    ``teardown()``. ``n`` brokers; ``controllers`` 0 makes them combined nodes that are also
    the quorum, otherwise that many controller-only nodes form it."""

    def __init__(self, root: Path, *, n: int = 3, controllers: int = 0,
                 extra: dict[str, str] | None = None, fsync_journal: bool = True,
                 seed: int | None = None, fault_disk_mb: int | None = None,
                 security: SaslSsl | None = None, admin: bool = False,
                 quorum_engine: str = "kraft") -> None:
        if n not in (1, 3, 5):
            raise ClusterError(f"n must be 1, 3 or 5, not {n}")
        if controllers not in (0, 1, 3, 5):
            raise ClusterError(f"controllers must be 0 (combined), 1, 3 or 5, not {controllers}")
        self.root = root
        self.n = n
        self.extra = dict(extra or {})
        # The metadata quorum's engine (broker/controller/engine.py); set after the nodes.
        self.quorum_engine = quorum_engine
        self.admin = admin  # every node serves the HTTP admin API on ADMIN_PORT
        self.fsync_journal = fsync_journal
        rnd = random.Random(seed if seed is not None else time.time_ns())
        if controllers:
            plan = plan_roles(controllers=controllers, brokers=n,
                              controller_id_base=CONTROLLER_ID_BASE, broker_id_base=0)
        else:
            plan = plan_roles(controllers=n, combined=True)
        self.network = NamespaceNetwork([i for i, _ in plan], rnd=rnd)
        self.nodes = {i: Node(self, i, ",".join(roles)) for i, roles in plan}
        # Each node has its own address: one fixed pysyncobj port offset serves them all.
        self.extra = {**engine_settings(quorum_engine, [n.spec for n in self.nodes.values()],
                                        port_offset=PYSYNCOBJ_PORT_OFFSET), **self.extra}
        self.broker_ids = [i for i, node in self.nodes.items() if node.is_broker]
        self.controller_ids = [i for i, node in self.nodes.items() if node.is_controller]
        self.combined = not controllers
        # With ``fault_disk_mb``: each broker's second log dir on a disk of its own that the
        # disk nemeses fill or fail (disks.py).
        self.disks: dict[int, FaultDisk] = {} if fault_disk_mb is None else {
            i: FaultDisk(node.dir / "disk2.img", node.dir / "data2", fault_disk_mb)
            for i, node in self.nodes.items() if node.is_broker}
        # SASL_SSL listeners everywhere (security.py); None: PLAINTEXT.
        self.security = security
        self._set_up = False

    @property
    def bootstrap_servers(self) -> str:
        return bootstrap_servers(n.spec for n in self.nodes.values())

    # -- network ------------------------------------------------------------------------------

    def block(self, src: int | None, dst: int) -> None:
        """Drop traffic from ``src`` (a node id, or None for the clients) to node ``dst``."""
        self.network.block(src, dst)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Nodes in different groups cannot talk (both directions). Nodes in no group are cut
        from everybody."""
        self.network.partition(groups)

    def block_links(self, links: Iterable[tuple[int, int]]) -> None:
        """Cut each (a, b) link in both directions."""
        self.network.block_links(links)

    def heal(self) -> None:
        self.network.heal()

    def can_connect(self, src: int | None, dst: int, timeout: float = 1.0) -> bool:
        """Try a TCP connect from ``src``'s namespace (None: the root namespace) to ``dst``'s
        broker port. Used by the tests that check a partition really blocks traffic."""
        code = ("import socket,sys\n"
                "s=socket.socket();s.settimeout(float(sys.argv[2]))\n"
                "try:\n s.connect((sys.argv[1],int(sys.argv[3])));print('ok')\n"
                "except OSError as e:\n print('no',e)\n")
        argv = [sys.executable, "-c", code, self.nodes[dst].ip, str(timeout), str(BROKER_PORT)]
        if src is not None:
            argv = self.nodes[src].command(argv)
        r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout + 10)
        return r.stdout.startswith("ok")

    # -- lifecycle ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the network, write configs and format storage (from the CLI)."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Namespaces, the bridge and routes outlive us unless removed: also when setting them
        # up fails half-way, and on an early exit.
        self._set_up = True
        atexit.register(self.teardown)
        self.network.setup()
        if self.security is not None:
            self.security.make_certs(n.ip for n in self.nodes.values())
        specs = [n.spec for n in self.nodes.values()]
        voters = quorum_voters(specs)
        cluster_id = random_cluster_id()
        settings = {
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
            "replica.lag.time.max.ms": "3000",
            "num.partitions": "1",
            "default.replication.factor": str(min(3, self.n)),
            # As many replicas as brokers: with 5 brokers and min.insync.replicas 3, an
            # offsets topic of RF 3 could take no commit while any of its replicas is down.
            "offsets.topic.replication.factor": str(self.n),
        }
        for n in self.nodes.values():
            n.dir.mkdir(parents=True, exist_ok=True)
            extra = dict(self.extra)
            if self.security is not None:
                extra.update(self.security.server_props())
            disk = self.disks.get(n.node_id)
            if disk is not None:
                disk.setup()
                extra["log.dirs"] = f"{n.data_dir},{disk.mount}"
            n.write_config(server_properties(n.spec, voters, n.data_dir, settings=settings,
                                             extra=extra))
            n.format(cluster_id, extra_args=None if self.security is None
                     else self.security.format_args())
            if n.journal is not None:
                # Not the fault disk: a repaired disk may come back as another loop device,
                # and the journal keys files by device (lose-unsynced spares that dir).
                fsync_journal.baseline(n.journal, [n.data_dir])

    def start(self, ids: Iterable[int] | None = None, wait: bool = True,
              timeout: float = 90.0) -> None:
        todo = list(self.nodes) if ids is None else list(ids)
        for i in todo:
            self.nodes[i].start()
        if wait:
            for i in todo:
                self.nodes[i].wait_for(STARTED, timeout)

    def teardown(self) -> None:
        """Stop every node (resume paused ones first), then remove the network."""
        with contextlib.suppress(Exception):
            self.heal()
        stop_nodes(self.nodes.values(), STOP_ALL_TIMEOUT_S)
        for disk in self.disks.values():
            disk.teardown()
        if self._set_up:
            self.network.teardown()
            self._set_up = False
            atexit.unregister(self.teardown)

    def __enter__(self) -> Self:
        try:
            self.setup()
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()
