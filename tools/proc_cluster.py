"""Real node processes on loopback, for tests and benchmarks: format storage and start nodes
from the CLI.

``ProcCluster(tmp_path, controllers=3, brokers=2)`` writes one ``server.properties`` per node
(ports picked free on 127.0.0.1), runs ``kafka-storage format`` for each, and starts/stops/kills
``kafka-server-start`` processes. Node ids: controllers 1..C, brokers C+1..C+B; with
``combined=True`` nodes 1..C run both roles and there are no separate brokers.

The launching is tools/launcher.py's; this module keeps the tests' conveniences: fast broker
heartbeats, ``extra`` keys, the HTTP admin API on request, brokers stopped before controllers,
and failures as ``AssertionError``.
"""

from __future__ import annotations

import atexit
import contextlib
import random
import socket
from pathlib import Path

from tools.launcher import (
    BROKER,
    CONTROLLER,
    LOOPBACK,
    READY_LINE,
    REPO,
    NodeProcess,
    NodeSpec,
    bootstrap_controllers,
    bootstrap_servers,
    engine_settings,
    free_ports,
    plan_roles,
    process_env,
    quorum_voters,
    random_cluster_id,
    server_properties,
)
from tools.netns import NamespaceNetwork

__all__ = ["REPO", "STARTED", "NodeProc", "ProcCluster", "env", "free_port_offset", "free_ports"]

STARTED = READY_LINE
# Fast broker heartbeats and a short session suit tests; ``extra`` overrides them.
TEST_SETTINGS = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
}


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
    """The environment to run this checkout's CLI tools with."""
    return process_env()


class NodeProc(NodeProcess):
    error = AssertionError

    @property
    def roles(self) -> str:
        return ",".join(self.spec.roles)

    @property
    def broker_port(self) -> int | None:
        return self.spec.broker_port

    @property
    def controller_port(self) -> int | None:
        return self.spec.controller_port

    @property
    def admin_port(self) -> int | None:
        """HTTP admin API (ProcCluster(admin=True))."""
        return self.spec.admin_port

    @property
    def bootstrap(self) -> str:
        return self.spec.broker_address

    @property
    def controller_address(self) -> str:
        return self.spec.controller_address

    @property
    def admin_url(self) -> str:
        url = self.spec.admin_url
        assert url is not None, "start the cluster with ProcCluster(admin=True)"
        return url

    def stop(self, timeout: float = 60.0) -> int:
        code = super().stop(timeout)
        if code is None:
            raise AssertionError(f"node {self.node_id} did not stop within {timeout}s")
        return code


class NetnsNodeProc(NodeProc):
    """A node whose processes run inside its network namespace (``tools/netns.py``)."""

    def __init__(self, spec: NodeSpec, directory: Path, network: NamespaceNetwork) -> None:
        super().__init__(spec, directory)
        self.network = network

    def command(self, argv: list[str]) -> list[str]:
        return self.network.command(self.node_id, argv)


class ProcCluster:
    """See the module docstring. With ``network=True`` (root and iproute2 only) every node runs
    in its own network namespace at its own IP (``tools/netns.py``), so ``network.partition``
    and ``network.block`` can cut links; ``shutdown`` removes the namespaces.

    ``secure`` adds listeners to every broker: listener name -> security protocol (e.g.
    ``{"SSL": "SSL", "SASL_SSL": "SASL_SSL"}``), each on its own free port
    (``address(node_id, name)``); their ``ssl.*``/``sasl.*`` keys go in ``extra``.
    ``format_args`` are added to each node's ``kafka-storage format`` (e.g. ``--add-scram``).
    ``quorum_engine`` runs the metadata quorum on kraft (default) or pysyncobj
    (``controller.quorum.engine``, ``tools/launcher.engine_settings``)."""

    def __init__(self, root: Path, *, controllers: int = 3, brokers: int = 2,
                 combined: bool = False, extra: dict[str, str] | None = None,
                 admin: bool = False, network: bool = False,
                 secure: dict[str, str] | None = None,
                 format_args: list[str] | None = None,
                 quorum_engine: str = "kraft") -> None:
        self.root = root
        self.quorum_engine = quorum_engine
        self.secure_addresses: dict[tuple[int, str], str] = {}
        roles = plan_roles(controllers=controllers, brokers=0 if combined else brokers,
                           combined=combined)
        self.network: NamespaceNetwork | None = None
        if network:
            # Each node has its own address: the usual ports, the same on every node.
            self.network = NamespaceNetwork([i for i, _ in roles])
            self.network.setup()
            atexit.register(self.network.teardown)
            specs = [NodeSpec(i, r, self.network.ip(i),
                              broker_port=9092 if BROKER in r else None,
                              controller_port=9093 if CONTROLLER in r else None,
                              admin_port=9644 if admin else None)
                     for i, r in roles]
        else:
            ports = free_ports(3 * len(roles))
            specs = [NodeSpec(i, r, LOOPBACK,
                              broker_port=ports.pop() if BROKER in r else None,
                              controller_port=ports.pop() if CONTROLLER in r else None,
                              admin_port=ports.pop() if admin else None)
                     for i, r in roles]
        self.nodes: dict[int, NodeProc] = {
            s.node_id: NodeProc(s, root / f"node-{s.node_id}") if self.network is None
            else NetnsNodeProc(s, root / f"node-{s.node_id}", self.network)
            for s in specs}
        self.controller_ids = [s.node_id for s in specs if s.is_controller]
        self.broker_ids = [s.node_id for s in specs if s.is_broker]
        self.cluster_id = random_cluster_id()
        voters = quorum_voters(specs)
        # controller.quorum.engine and its keys; ``extra`` may still override them.
        # In network namespaces every controller has its own address: the key's default offset.
        extra = {**engine_settings(quorum_engine, specs,
                                   port_offset=1000 if self.network is not None else None),
                 **(extra or {})}
        secure = secure or {}
        extra_ports = free_ports(len(secure) * len(specs))
        for n in self.nodes.values():
            n.dir.mkdir(parents=True)
            node_extra = dict(extra or {})
            if secure and n.spec.is_broker:
                listeners = n.spec.listeners()
                protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
                for name, protocol in secure.items():
                    address = f"{n.spec.host}:{extra_ports.pop()}"
                    self.secure_addresses[(n.node_id, name)] = address
                    listeners.append(f"{name}://{address}")
                    protocols.append(f"{name}:{protocol}")
                node_extra.setdefault("listeners", ",".join(listeners))
                node_extra.setdefault("listener.security.protocol.map", ",".join(protocols))
            n.write_config(server_properties(n.spec, voters, n.data_dir, settings=TEST_SETTINGS,
                                             advertise=False, extra=node_extra))
            n.format(self.cluster_id, extra_args=format_args)

    def secure_bootstrap(self, name: str) -> str:
        """The bootstrap servers of the added listener ``name``."""
        return ",".join(a for (_, n), a in sorted(self.secure_addresses.items()) if n == name)

    @property
    def bootstrap_controllers(self) -> str:
        return bootstrap_controllers(n.spec for n in self.nodes.values())

    @property
    def bootstrap_servers(self) -> str:
        return bootstrap_servers(n.spec for n in self.nodes.values())

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

    def shutdown(self, *, graceful: bool = False) -> None:
        """The end of a test: kill every node (SIGKILL; a paused one too) and remove the
        namespaces, if any. Nothing after a test looks at how its nodes stopped, and a clean
        stop costs seconds per cluster (a combined quorum's last node waits for a controller
        that is gone); tests of a clean shutdown call ``stop_all`` or ``NodeProc.stop``
        themselves. ``graceful``: first heal the network, wake paused nodes and stop all
        (brokers before controllers), then kill what is left."""
        if graceful:
            if self.network is not None:
                self.network.heal()
            for n in self.nodes.values():
                n.resume()
            self.stop_all()
        self.kill_all()
        if self.network is not None:
            self.network.teardown()
            atexit.unregister(self.network.teardown)
