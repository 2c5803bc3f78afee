"""Which controllers a node talks to (Kafka's ``controller.quorum.voters`` and KIP-853's
``controller.quorum.bootstrap.servers``).

In order:

1. ``controller.quorum.voters`` when set (a static quorum, kraft.version 0);
2. on a controller formatted with ``--standalone`` or ``--initial-controllers``, the voters it
   was formatted with (``bootstrap.properties``, storage/meta_properties.py);
3. otherwise (a broker, or a controller formatted ``--no-initial-controllers`` that joins as an
   observer until it is added) the voters the controllers in
   ``controller.quorum.bootstrap.servers`` report: each is asked DescribeCluster with endpoint
   type 2 (KIP-919), which a controller answers with the quorum's voters and their controller
   listener, and the active controller's id. The first answer of our cluster id wins; until
   one comes (the controllers may start after us) the servers are asked again, in turn, until
   the node is told to stop.

The node then observes the quorum (``RaftManager``: an observer fetches from a voter, which
names the leader) and its controller channel sends to the active controller among them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import describe_cluster
from storage.meta_properties import read_bootstrap

__all__ = ["CONTROLLER_ENDPOINT_TYPE", "discover_voters", "local_kraft_version", "quorum_voters"]

logger = logging.getLogger(__name__)

CONTROLLER_ENDPOINT_TYPE = 2  # DescribeCluster v1+: ask for the controllers (KIP-919)
RETRY_BACKOFF_S = 0.5
REQUEST_TIMEOUT_S = 5.0

Voters = dict[int, tuple[str, int]]


async def quorum_voters(cfg: Any, cluster_id: str, *, security: Any = None,
                        stopping: Callable[[], bool] = lambda: False) -> Voters | None:
    """The voters this node starts with (see the module doc); None if ``stopping()`` became
    true while asking the bootstrap servers."""
    if cfg.controller_quorum_voters:
        return dict(cfg.controller_quorum_voters)
    if cfg.is_controller:
        boot = read_bootstrap(cfg.metadata_log_dir)
        if boot is not None and boot.initial_controllers:
            return {v.node_id: (v.host, v.port) for v in boot.initial_controllers}
    return await discover_voters(cfg.controller_quorum_bootstrap_servers, cluster_id,
                                 security=security, stopping=stopping,
                                 client_id=f"node-{cfg.node_id}-quorum-bootstrap")


def local_kraft_version(cfg: Any, raft: Any = None) -> int | None:
    """kraft.version as this node knows it: the quorum's own when the Raft layer tracks it
    (``raft.kraft_version``), else 0 for static ``controller.quorum.voters``, else what this
    controller was formatted with; None on a broker that knows only bootstrap servers."""
    level = getattr(raft, "kraft_version", None)
    if isinstance(level, int):
        return level
    if cfg.controller_quorum_voters:
        return 0
    if cfg.is_controller:
        boot = read_bootstrap(cfg.metadata_log_dir)
        if boot is not None:
            return int(boot.kraft_version)
    return None


async def discover_voters(servers: Sequence[tuple[str, int]], cluster_id: str, *,
                          security: Any = None, stopping: Callable[[], bool] = lambda: False,
                          client_id: str = "quorum-bootstrap",
                          backoff_s: float = RETRY_BACKOFF_S,
                          log_every: int = 20) -> Voters | None:
    """Ask ``servers`` in turn until one reports the voters of ``cluster_id``."""
    if not servers:
        raise ValueError("no controller.quorum.bootstrap.servers to discover the quorum from")
    rounds = 0
    while not stopping():
        errors = []
        for host, port in servers:
            try:
                voters = await _ask(host, port, cluster_id, security, client_id)
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                errors.append(f"{host}:{port}: {e}")
                continue
            if voters:
                logger.info("Controller quorum voters from bootstrap server %s:%d: %s", host,
                            port, ", ".join(f"{i}@{h}:{p}" for i, (h, p) in
                                            sorted(voters.items())))
                return voters
            errors.append(f"{host}:{port}: no voters known yet")
            if stopping():
                return None
        if rounds % log_every == 0:
            logger.warning("No controller.quorum.bootstrap.servers reported the quorum yet "
                           "(%s); retrying", "; ".join(errors))
        rounds += 1
        await asyncio.sleep(backoff_s)
    return None


async def _ask(host: str, port: int, cluster_id: str, security: Any,
               client_id: str) -> Voters:
    conn = await KafkaConnection.connect(host, port, client_id=client_id,
                                         timeout_s=REQUEST_TIMEOUT_S, security=security)
    try:
        resp = await conn.send(ApiKey.DESCRIBE_CLUSTER, describe_cluster.REQUEST.cls(
            include_cluster_authorized_operations=False,
            endpoint_type=CONTROLLER_ENDPOINT_TYPE), timeout_s=REQUEST_TIMEOUT_S)
    finally:
        await conn.close()
    if resp.error_code:
        raise KafkaError(f"DescribeCluster answered {ErrorCode(resp.error_code).name}")
    if resp.endpoint_type != CONTROLLER_ENDPOINT_TYPE:
        raise KafkaError("not a controller listener (DescribeCluster answered with brokers)")
    if resp.cluster_id != cluster_id:
        raise KafkaError(f"INCONSISTENT_CLUSTER_ID: the server is in cluster "
                         f"{resp.cluster_id}, this node in {cluster_id}")
    return {b.broker_id: (b.host, b.port) for b in resp.brokers}
