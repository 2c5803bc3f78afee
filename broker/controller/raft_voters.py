"""The driver's side of a dynamic voter set (KIP-853): the voters' addresses, and the leader's
AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter as awaitable operations.

``VoterDirectory`` keeps ``RaftManager.voters`` (id -> controller address, read by the
persister, DescribeCluster, the controller channel) and the outbound peers in line with the
node's latest voter set, which ``kraft.raft_membership`` takes from the log. ``Membership`` runs
a change: it asks the node (which refuses with Kafka's error codes: not leader, kraft.version 0,
a change pending, duplicate voter, voter not found), retries a refusal that time may lift
(REQUEST_TIMED_OUT: a pending change, a new voter still catching up) until the request's
timeout, then waits for the VotersRecord to commit when asked to.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broker.protocol.errors import ErrorCode
from kraft.raft_membership import REQUEST_TIMED_OUT, MembershipResult
from kraft.snapshot import snapshot_control_records
from kraft.voters import (
    KRAFT_VERSION_TYPE,
    VOTERS_TYPE,
    Endpoint,
    VoterNode,
    VoterSet,
    decode_voters,
    encode_kraft_version,
    encode_voters,
)

if TYPE_CHECKING:
    from broker.controller.raft_driver import RaftManager

__all__ = ["Membership", "VoterDirectory", "snapshot_voters"]

RETRY_S = 0.05
DEFAULT_TIMEOUT_MS = 30_000


def snapshot_voters(data: bytes) -> VoterSet | None:
    """The voter set a metadata snapshot holds (its VotersRecord), if any."""
    found = None
    for control_type, value in snapshot_control_records(data):
        if control_type == VOTERS_TYPE:
            found = decode_voters(value)
    return found


class VoterDirectory:
    """Addresses of the latest voter set: ``mgr.voters`` and one ``RaftPeer`` per voter."""

    def __init__(self, mgr: RaftManager) -> None:
        self.mgr = mgr
        self._seen: VoterSet | None = None

    def sync(self) -> None:
        mgr = self.mgr
        node = mgr._node
        if node is None:
            return
        vs = node.voter_set
        if vs == self._seen:
            return
        self._seen = vs
        addresses: dict[int, tuple[str, int]] = {}
        for n in vs.nodes:
            if n.endpoints:
                addresses[n.voter_id] = (n.endpoints[0].host, n.endpoints[0].port)
            elif n.voter_id in mgr.voters:  # static voters: the configured address
                addresses[n.voter_id] = mgr.voters[n.voter_id]
        if not addresses:
            return
        # In place: the persister and the controller channel hold this dict.
        for vid in list(mgr.voters):
            if vid not in addresses:
                del mgr.voters[vid]
        mgr.voters.update(addresses)
        from broker.controller.raft_peers import RaftPeer
        # Peers of voters no longer in the set stay: a removed leader still leads until its
        # removal commits, and its followers must reach it for that.
        for vid, (host, port) in addresses.items():
            if vid == mgr.node_id:
                continue
            peer = mgr._peers.get(vid)
            if peer is None or (peer.host, peer.port) != (host, port):
                if peer is not None:
                    peer.abort()
                mgr._peers[vid] = RaftPeer(mgr, vid, host, port)

    def nodes(self) -> list[tuple[int, list[tuple[str, str, int]]]]:
        """DescribeQuorum v2 Nodes: each voter's endpoints."""
        node = self.mgr._node
        if node is None:
            return []
        out = []
        for n in node.voter_set.nodes:
            eps = [(e.name, e.host, e.port) for e in n.endpoints]
            if not eps and n.voter_id in self.mgr.voters:
                host, port = self.mgr.voters[n.voter_id]
                eps = [(self.mgr.controller_listener_name, host, port)]
            out.append((n.voter_id, eps))
        return out

    def snapshot_control_records(self, end_offset: int) -> list[tuple[int, bytes]]:
        """The KRaftVersion and Voters records a snapshot ending at ``end_offset`` holds."""
        node = self.mgr._node
        if node is None or node.kraft_version < 1:
            return []
        return [(KRAFT_VERSION_TYPE, encode_kraft_version(node.kraft_version)),
                (VOTERS_TYPE, encode_voters(node._history.at(end_offset - 1)))]


class Membership:
    """The leader's voter changes, awaited (see the module doc)."""

    def __init__(self, mgr: RaftManager) -> None:
        self.mgr = mgr

    async def _run(self, change: Any, timeout_ms: int | None,
                   ack_when_committed: bool) -> tuple[int, str | None]:
        mgr = self.mgr
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_ms if timeout_ms and timeout_ms > 0
                                  else DEFAULT_TIMEOUT_MS) / 1000
        while True:
            node = mgr._node
            if node is None or mgr._closed:
                return ErrorCode.NOT_LEADER_OR_FOLLOWER, "the quorum is not running"
            result: MembershipResult = change(node, mgr._now())
            err, message, offset = result
            if err == 0:
                break
            if err != REQUEST_TIMED_OUT or loop.time() >= deadline:
                return err, message
            await asyncio.sleep(RETRY_S)
        epoch = node.epoch
        mgr._inbound.restep_parked()
        mgr._wake.set()
        if not ack_when_committed:
            return ErrorCode.NONE, None
        while loop.time() < deadline:
            node = mgr._node
            if node is None or mgr._closed:
                break
            if node.high_watermark > offset and (
                    offset < node.log.start_offset or node.log.epoch_at(offset) == epoch):
                return ErrorCode.NONE, None  # our record (of our epoch) is committed
            if node.epoch != epoch:
                return (ErrorCode.NOT_LEADER_OR_FOLLOWER,
                        "leadership changed before the voter change committed")
            await asyncio.sleep(0.01)
        return ErrorCode.REQUEST_TIMED_OUT, "timed out waiting for the voter change to commit"

    async def add_voter(self, voter_id: int, directory_id: uuid.UUID,
                        endpoints: Sequence[tuple[str, str, int]], *,
                        timeout_ms: int | None = None,
                        ack_when_committed: bool = True) -> tuple[int, str | None]:
        node = VoterNode(voter_id, directory_id,
                         tuple(Endpoint(name, host, port) for name, host, port in endpoints))
        if not node.endpoints:
            return ErrorCode.INVALID_REQUEST, "the new voter has no endpoints"
        return await self._run(lambda n, now: n.add_voter(node, now), timeout_ms,
                               ack_when_committed)

    async def remove_voter(self, voter_id: int, directory_id: uuid.UUID, *,
                           timeout_ms: int | None = None) -> tuple[int, str | None]:
        return await self._run(lambda n, now: n.remove_voter(voter_id, directory_id, now),
                               timeout_ms, True)

    async def update_voter(self, voter_id: int, directory_id: uuid.UUID,
                           endpoints: Sequence[tuple[str, str, int]], min_version: int,
                           max_version: int, *,
                           timeout_ms: int | None = None) -> tuple[int, str | None]:
        node = VoterNode(voter_id, directory_id,
                         tuple(Endpoint(name, host, port) for name, host, port in endpoints),
                         min_version, max_version)
        return await self._run(lambda n, now: n.update_voter(node, now), timeout_ms, True)


def dynamic_quorum(cfg: Any) -> dict[str, Any]:
    """The ``RaftManager`` arguments of KIP-853 for this node: kraft.version (1 when the
    metadata log dir was formatted ``--standalone`` / ``--initial-controllers`` /
    ``--no-initial-controllers``), the bootstrap voter set with directory ids and endpoints,
    the metadata log dir's directory id, and the controller listener name."""
    from storage.meta_properties import parse_uuid, read_bootstrap, read_meta_properties

    listener = cfg.controller_listener_names[0] if cfg.controller_listener_names \
        else "CONTROLLER"
    out: dict[str, Any] = {"controller_listener_name": listener}
    meta = read_meta_properties(cfg.metadata_log_dir)
    if meta is not None and meta.directory_id:
        out["directory_id"] = uuid.UUID(bytes=parse_uuid(meta.directory_id))
    boot = read_bootstrap(cfg.metadata_log_dir) if cfg.is_controller else None
    if boot is None or boot.kraft_version < 1:
        return out
    out["kraft_version"] = boot.kraft_version
    if boot.initial_controllers:
        out["bootstrap_voters"] = VoterSet.of([
            VoterNode(v.node_id, uuid.UUID(bytes=parse_uuid(v.directory_id)),
                      (Endpoint(listener, v.host, v.port),))
            for v in boot.initial_controllers])
    return out
