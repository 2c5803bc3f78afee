"""``kafka-metadata-quorum (--bootstrap-controller H:P | --bootstrap-server H:P) describe
--status | --replication [--human-readable]``: what Kafka's tool prints, from DescribeQuorum;
``add-controller`` / ``remove-controller`` (KIP-853) are in ``tools.quorum_membership``.

DescribeQuorum is answered by the Raft leader; the tool asks each given server in turn and
uses the first full answer. A broker forwards it to the active controller; a follower controller
answers NOT_LEADER_OR_FOLLOWER, and the tool goes on to the leader that controller's
DescribeCluster names (as Kafka's admin client does with ``bootstrap.controllers``). ClusterId
comes from DescribeCluster too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_cluster, describe_quorum
from tools import quorum_membership as membership
from tools.cli_client import CliError

PROG = "kafka-metadata-quorum"
METADATA_TOPIC = "__cluster_metadata"


class ToolError(Exception):
    pass


@dataclass
class Replica:
    replica_id: int
    directory_id: Any
    log_end_offset: int
    last_fetch_timestamp: int
    last_caught_up_timestamp: int


@dataclass
class QuorumInfo:
    cluster_id: str
    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: list[Replica]
    observers: list[Replica]
    endpoints: dict[int, list[str]]


def _replicas(states: Any) -> list[Replica]:
    return [Replica(s.replica_id, getattr(s, "replica_directory_id", None), s.log_end_offset,
                    s.last_fetch_timestamp, s.last_caught_up_timestamp) for s in states]


class _Redirect(Exception):
    """A controller that is not the Raft leader: where the leader is, if it knows."""

    def __init__(self, where: str, leader: tuple[str, int] | None) -> None:
        super().__init__(f"{where}: DescribeQuorum failed: NOT_LEADER_OR_FOLLOWER")
        self.leader = leader


async def _describe_on(host: str, port: int, timeout_s: float) -> QuorumInfo:
    conn = await KafkaConnection.connect(host, port, client_id=PROG, timeout_s=timeout_s)
    try:
        dc = await conn.send(ApiKey.DESCRIBE_CLUSTER, describe_cluster.REQUEST.cls(
            include_cluster_authorized_operations=False), timeout_s=timeout_s)
        req = describe_quorum.REQUEST.cls(topics=[describe_quorum.REQUEST.TopicData(
            topic_name=METADATA_TOPIC,
            partitions=[describe_quorum.REQUEST.PartitionData(partition_index=0)])])
        resp = await conn.send(ApiKey.DESCRIBE_QUORUM, req, timeout_s=timeout_s)
        code = resp.error_code
        if not code and resp.topics and resp.topics[0].partitions:
            code = resp.topics[0].partitions[0].error_code
        if code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
            # A follower controller: its DescribeCluster names the active controller and the
            # controllers' endpoints (KIP-919), as Kafka's admin client uses them.
            leader = next(((b.host, b.port) for b in dc.brokers
                           if b.broker_id == dc.controller_id), None)
            raise _Redirect(f"{host}:{port}", leader)
        if code:
            raise ToolError(f"{host}:{port}: DescribeQuorum failed: {ErrorCode(code).name}")
        if not resp.topics or not resp.topics[0].partitions:
            raise ToolError(f"{host}:{port}: DescribeQuorum answered without the metadata "
                            f"partition")
        p = resp.topics[0].partitions[0]
        endpoints = {n.node_id: [f"{ln.name}://{ln.host}:{ln.port}" for ln in n.listeners]
                     for n in (getattr(resp, "nodes", None) or [])}
        return QuorumInfo(dc.cluster_id, p.leader_id, p.leader_epoch, p.high_watermark,
                          _replicas(p.current_voters), _replicas(p.observers), endpoints)
    finally:
        await conn.close()


async def describe(servers: Sequence[str], timeout_s: float = 10.0) -> QuorumInfo:
    """Ask the given servers in turn; a follower controller sends the tool on to the leader
    it names. While no server knows a leader (an election), try again until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        errors = []
        for server in servers:
            target = parse_address(server)
            for _ in range(3):  # a leader named by a follower may have moved on meanwhile
                try:
                    return await _describe_on(*target, timeout_s)
                except _Redirect as e:
                    errors.append(str(e))
                    if e.leader is None or e.leader == target:
                        break
                    target = e.leader
                except (ToolError, KafkaConnectionError, KafkaTimeoutError, OSError) as e:
                    errors.append(str(e))
                    break
        if time.monotonic() + 0.5 >= deadline:
            raise ToolError("no server described the quorum: " + "; ".join(errors))
        await asyncio.sleep(0.5)


def kafka_uuid(u: Any) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, unpadded."""
    raw = u.bytes if u is not None else bytes(16)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _node_str(r: Replica, endpoints: dict[int, list[str]]) -> str:
    d = r.directory_id
    directory = "null" if d is None or d.int == 0 else f'"{kafka_uuid(d)}"'
    out = f'{{"id": {r.replica_id}, "directoryId": {directory}'
    eps = endpoints.get(r.replica_id)
    if eps:
        out += ', "endpoints": [' + ", ".join(f'"{e}"' for e in eps) + "]"
    return out + "}"


def format_status(q: QuorumInfo) -> str:
    leader = next((v for v in q.voters if v.replica_id == q.leader_id), None)
    if leader is None:
        raise ToolError(f"leader {q.leader_id} is not among the voters")
    lagging = min(q.voters, key=lambda v: v.log_end_offset)
    max_lag = leader.log_end_offset - lagging.log_end_offset
    if lagging is leader:
        lag_time = 0
    elif leader.last_caught_up_timestamp >= 0 and lagging.last_caught_up_timestamp >= 0:
        lag_time = leader.last_caught_up_timestamp - lagging.last_caught_up_timestamp
    else:
        lag_time = -1
    voters = ", ".join(_node_str(v, q.endpoints) for v in q.voters)
    observers = ", ".join(_node_str(o, q.endpoints) for o in q.observers)
    return (
        f"ClusterId:              {q.cluster_id}\n"
        f"LeaderId:               {q.leader_id}\n"
        f"LeaderEpoch:            {q.leader_epoch}\n"
        f"HighWatermark:          {q.high_watermark}\n"
        f"MaxFollowerLag:         {max_lag}\n"
        f"MaxFollowerLagTimeMs:   {lag_time}\n"
        f"CurrentVoters:          [{voters}]\n"
        f"CurrentObservers:       [{observers}]"
    )


def _ago(ts: int, now_ms: int) -> str:
    return "-1" if ts < 0 else f"{max(0, now_ms - ts)} ms ago"


def format_replication(q: QuorumInfo, human_readable: bool = False) -> str:
    leader = next((v for v in q.voters if v.replica_id == q.leader_id), None)
    if leader is None:
        raise ToolError(f"leader {q.leader_id} is not among the voters")
    now_ms = int(time.time() * 1000)
    rows = []
    groups = [([leader], "Leader"),
              ([v for v in q.voters if v.replica_id != q.leader_id], "Follower"),
              (q.observers, "Observer")]
    for replicas, status in groups:
        for r in replicas:
            fetch = _ago(r.last_fetch_timestamp, now_ms) if human_readable else str(
                r.last_fetch_timestamp)
            caught = _ago(r.last_caught_up_timestamp, now_ms) if human_readable else str(
                r.last_caught_up_timestamp)
            rows.append([str(r.replica_id), kafka_uuid(r.directory_id),
                         str(r.log_end_offset), str(leader.log_end_offset - r.log_end_offset),
                         fetch, caught, status])
    headers = ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
               "LastCaughtUpTimestamp", "Status"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["".join(c.ljust(w) + "\t" for c, w in zip(row, widths, strict=True))
             for row in [headers, *rows]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="This tool describes kraft "
                                     "metadata quorum status.")
    conn = parser.add_mutually_exclusive_group(required=True)
    conn.add_argument("--bootstrap-server", help="comma-separated host:port of brokers")
    conn.add_argument("--bootstrap-controller", help="comma-separated host:port of controllers")
    parser.add_argument("--command-config", help="Property file containing configs to be "
                        "passed to Admin Client. For add-controller, the file is used to "
                        "specify the controller properties as well.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="Describe the metadata quorum info")
    d.add_argument("--status", action="store_true")
    d.add_argument("--replication", action="store_true")
    d.add_argument("--human-readable", action="store_true")
    membership.add_subparsers(sub)
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap_controller or args.bootstrap_server
    if args.command in ("add-controller", "remove-controller"):
        return _membership(args, bootstrap)
    if args.status and args.replication:
        print("Only one of --status or --replication should be specified with describe "
              "sub-command", file=sys.stderr)
        return 1
    if not (args.status or args.replication):
        print("One of --status or --replication must be specified with describe sub-command",
              file=sys.stderr)
        return 1
    if args.status and args.human_readable:
        print("The option --human-readable is only supported along with --replication",
              file=sys.stderr)
        return 1
    servers = [s for s in (args.bootstrap_controller or args.bootstrap_server).split(",") if s]
    try:
        info = asyncio.run(describe(servers))
        print(format_status(info) if args.status
              else format_replication(info, args.human_readable))
    except (ToolError, ValueError) as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


def _membership(args: argparse.Namespace, bootstrap: str) -> int:
    async def body() -> int:
        if args.command == "add-controller":
            return await membership.add_controller(bootstrap, args.command_config, args.dry_run)
        return await membership.remove_controller(
            bootstrap, args.command_config, args.controller_id, args.controller_directory_id,
            args.dry_run)

    try:
        return asyncio.run(body())
    except CliError as e:
        print(str(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
