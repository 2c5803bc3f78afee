"""``kafka-consumer-groups``: list, describe, reset the offsets of, and delete consumer groups,
with Kafka's options and output columns.

    kafka-consumer-groups --bootstrap-server H:P --list [--state] [--type]
    kafka-consumer-groups --bootstrap-server H:P --describe --group G [--state | --members]
    kafka-consumer-groups --bootstrap-server H:P --reset-offsets --group G --topic T[:P,...]
        (--to-earliest | --to-latest | --to-offset N | --shift-by N | --to-datetime T)
        [--execute | --dry-run]
    kafka-consumer-groups --bootstrap-server H:P --delete --group G

It speaks the Kafka protocol through ``broker.client`` (FindCoordinator, ListGroups,
ConsumerGroupDescribe and DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit,
DeleteGroups). Groups of both protocols show: consumer groups (KIP-848) are described with
ConsumerGroupDescribe, classic groups with DescribeGroups, as Kafka's tool does.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.groups.records import decode_consumer_assignment
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    consumer_group_describe,
    delete_groups,
    describe_groups,
    find_coordinator,
    list_groups,
    list_offsets,
    offset_commit,
    offset_fetch,
)
from kraft.codec import DecodeError
from tools.cli_client import CliError, admin_client, error_name, run_tool

__all__ = ["main"]

PROG = "kafka-consumer-groups"
COORDINATOR_RETRY = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                     ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}
RETRY_TIMEOUT_S = 30.0
LATEST, EARLIEST = -1, -2


@dataclass(frozen=True, slots=True)
class GroupView:
    state: str
    members: list[tuple[str, str, str, list[tuple[str, int]]]]  # id, host, client id, tps
    kind: str = "Classic"
    assignor: str = ""
    coordinator: str = ""


_KINDS = {"classic": "Classic", "consumer": "Consumer"}


class GroupTool:
    def __init__(self, client: KafkaClient) -> None:
        self.client = client

    async def coordinator(self, group: str) -> int:
        R = find_coordinator.REQUEST
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_TIMEOUT_S
        while True:
            resp = await self.client.send_to_any(
                ApiKey.FIND_COORDINATOR, R.cls(key=group, key_type=0), 3)
            if not resp.error_code:
                if resp.node_id not in self.client.cluster.brokers:
                    await self.client.metadata([])
                return int(resp.node_id)
            if resp.error_code not in COORDINATOR_RETRY or loop.time() > deadline:
                raise CliError(f"Finding the coordinator of group '{group}' failed: "
                               f"{error_name(resp.error_code)}")
            await asyncio.sleep(0.5)

    async def to_coordinator(self, group: str, api_key: int, request: Any, version: int,
                             error_of: Any) -> Any:
        """Send to the group's coordinator, finding it again on coordinator errors."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_TIMEOUT_S
        while True:
            node = await self.coordinator(group)
            try:
                resp = await self.client.send_to(node, api_key, request, version)
            except (KafkaConnectionError, KafkaTimeoutError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            code = error_of(resp)
            if code in COORDINATOR_RETRY and loop.time() < deadline:
                await asyncio.sleep(0.5)
                continue
            return resp

    async def list_groups(self) -> dict[str, tuple[str, str]]:
        """Group id -> (state, type), from every broker (ListGroups v5, else older)."""
        cluster = await self.client.metadata([])
        found: dict[str, tuple[str, str]] = {}
        for node in cluster.brokers:
            req = list_groups.REQUEST.cls(states_filter=[], types_filter=[])
            resp = await self.client.send_to(node, ApiKey.LIST_GROUPS, req, 5)
            if resp.error_code:
                raise CliError(f"Listing groups on broker {node} failed: "
                               f"{error_name(resp.error_code)}")
            for g in resp.groups:
                kind = _KINDS.get((g.group_type or "classic").lower(), g.group_type or "")
                found[g.group_id] = (g.group_state or "", kind)
        return dict(sorted(found.items()))

    async def describe(self, group: str) -> GroupView:
        node = await self.coordinator(group)
        broker = self.client.cluster.brokers.get(node)
        where = f"{broker.host}:{broker.port} ({node})" if broker is not None else f"({node})"
        R = consumer_group_describe.REQUEST
        resp = await self.to_coordinator(
            group, ApiKey.CONSUMER_GROUP_DESCRIBE,
            R.cls(group_ids=[group], include_authorized_operations=False), 0,
            lambda r: r.groups[0].error_code)
        cg = resp.groups[0]
        if not cg.error_code:
            return GroupView(cg.group_state, [
                (m.member_id, m.client_host, m.client_id,
                 [(t.topic_name, p) for t in m.assignment.topic_partitions
                  for p in t.partitions])
                for m in cg.members], "Consumer", cg.assignor_name, where)
        if cg.error_code != ErrorCode.GROUP_ID_NOT_FOUND:
            raise CliError(f"Describing group '{group}' failed: {error_name(cg.error_code)}")
        req = describe_groups.REQUEST.cls(groups=[group], include_authorized_operations=False)
        resp = await self.to_coordinator(group, ApiKey.DESCRIBE_GROUPS, req, 3,
                                         lambda r: r.groups[0].error_code)
        g = resp.groups[0]
        if g.error_code:
            raise CliError(f"Describing group '{group}' failed: {error_name(g.error_code)}")
        members = []
        for m in g.members:
            tps: list[tuple[str, int]] = []
            if g.protocol_type == "consumer" and m.member_assignment:
                try:
                    a = decode_consumer_assignment(bytes(m.member_assignment))
                    tps = [(t, p) for t, ps in a.partitions for p in ps]
                except DecodeError:
                    tps = []
            members.append((m.member_id, m.client_host, m.client_id, tps))
        return GroupView(g.group_state, members, "Classic", g.protocol_data, where)

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        req = offset_fetch.REQUEST.cls(group_id=group, topics=None, require_stable=False)
        resp = await self.to_coordinator(group, ApiKey.OFFSET_FETCH, req, 7,
                                         lambda r: r.error_code)
        if resp.error_code:
            raise CliError(f"Fetching offsets of group '{group}' failed: "
                           f"{error_name(resp.error_code)}")
        out = {}
        for t in resp.topics:
            for p in t.partitions:
                if not p.error_code and p.committed_offset >= 0:
                    out[(t.name, p.partition_index)] = int(p.committed_offset)
        return out

    async def list_offsets(self, tps: Sequence[tuple[str, int]], timestamp: int
                           ) -> dict[tuple[str, int], int]:
        """Offset per partition for ``timestamp`` (LATEST, EARLIEST or ms); -1 when no record
        has a timestamp at or after it."""
        R = list_offsets.REQUEST
        out: dict[tuple[str, int], int] = {}
        for topic, p in tps:
            req = R.cls(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(
                name=topic, partitions=[R.ListOffsetsPartition(partition_index=p,
                                                               timestamp=timestamp)])])
            resp = await self.client.send_to_leader(
                topic, p, ApiKey.LIST_OFFSETS, req, 2,
                check=lambda r: r.topics[0].partitions[0].error_code)
            out[(topic, p)] = int(resp.topics[0].partitions[0].offset)
        return out

    async def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        R = offset_commit.REQUEST
        by_topic: dict[str, list[Any]] = {}
        for (t, p), o in sorted(offsets.items()):
            by_topic.setdefault(t, []).append(R.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=o, committed_metadata=""))
        req = R.cls(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                    group_instance_id=None, topics=[
                        R.OffsetCommitRequestTopic(name=t, partitions=ps)
                        for t, ps in by_topic.items()])

        def first_error(r: Any) -> int:
            return next((p.error_code for t in r.topics for p in t.partitions
                         if p.error_code), 0)

        resp = await self.to_coordinator(group, ApiKey.OFFSET_COMMIT, req, 7, first_error)
        code = first_error(resp)
        if code:
            raise CliError(f"Committing offsets of group '{group}' failed: {error_name(code)}")

    async def delete(self, groups: Sequence[str]) -> dict[str, int]:
        out = {}
        for g in groups:
            req = delete_groups.REQUEST.cls(groups_names=[g])
            resp = await self.to_coordinator(g, ApiKey.DELETE_GROUPS, req, 1,
                                             lambda r: r.results[0].error_code)
            out[g] = int(resp.results[0].error_code)
        return out


def _table(rows: list[list[str]], widths: list[int | None]) -> str:
    """Kafka's printf-style columns: each padded to its width (None: to the longest cell)."""
    cols = len(rows[0])
    sized = [w if w is not None else max(len(r[i]) for r in rows)
             for i, w in enumerate(widths)]
    lines = []
    for r in rows:
        cells = [r[i].ljust(sized[i]) if i < cols - 1 else r[i] for i in range(cols)]
        lines.append(" ".join(cells))
    return "\n".join(lines)


async def _describe(tool: GroupTool, group: str, args: argparse.Namespace) -> int:
    view = await tool.describe(group)
    committed = await tool.committed(group)
    if view.state == "Dead" and not committed:
        raise CliError(f"Consumer group '{group}' does not exist.")
    if args.state:
        print()
        print(_table([["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
                      [group, view.coordinator, view.assignor, view.state,
                       str(len(view.members))]], [None, None, None, None, None]))
        return 0
    if args.members:
        rows = [["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]]
        rows += [[group, mid, host, cid, str(len(tps))] for mid, host, cid, tps in view.members]
        print()
        print(_table(rows, [None, None, None, None, None]))
        return 0
    owner: dict[tuple[str, int], tuple[str, str, str]] = {}
    for mid, host, cid, tps in view.members:
        for tp in tps:
            owner[tp] = (mid, host, cid)
    tps = sorted(set(committed) | set(owner))
    ends = await tool.list_offsets(tps, LATEST) if tps else {}
    if view.state in ("PreparingRebalance", "CompletingRebalance"):
        print(f"\nWarning: Consumer group '{group}' is rebalancing.", file=sys.stderr)
    elif not view.members:
        print(f"\nConsumer group '{group}' has no active members.", file=sys.stderr)
    rows = [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
             "CONSUMER-ID", "HOST", "CLIENT-ID"]]
    for tp in tps:
        cur = committed.get(tp)
        end = ends.get(tp, -1)
        lag = "-" if cur is None or end < 0 else str(max(end - cur, 0))
        mid, host, cid = owner.get(tp, ("-", "-", "-"))
        rows.append([group, tp[0], str(tp[1]), "-" if cur is None else str(cur),
                     "-" if end < 0 else str(end), lag, mid, host, cid])
    # Members without partitions still show up, as in Kafka.
    for mid, host, cid, mtps in view.members:
        if not mtps:
            rows.append([group, "-", "-", "-", "-", "-", mid, host, cid])
    print()
    print(_table(rows, [None, None, 10, 15, 15, 15, None, None, None]))
    return 0


_TP = re.compile(r"^([^:]+)(?::([0-9,]+))?$")


def _parse_topics(specs: Sequence[str]) -> list[tuple[str, list[int] | None]]:
    out = []
    for spec in specs:
        m = _TP.match(spec)
        if m is None:
            raise CliError(f"Bad --topic value {spec!r} (expected TOPIC or TOPIC:P1,P2)")
        parts = None if m.group(2) is None else [int(x) for x in m.group(2).split(",") if x]
        out.append((m.group(1), parts))
    return out


def parse_datetime(text: str) -> int:
    """Kafka's --to-datetime formats: YYYY-MM-DDTHH:mm:SS.sss with an optional zone (Z,
    +hh:mm); no zone means local time. Returns epoch ms."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S"):
        try:
            when = dt.datetime.strptime(t, fmt)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.astimezone()
        return int(when.timestamp() * 1000)
    raise CliError(f"Bad --to-datetime value {text!r} (expected YYYY-MM-DDTHH:mm:SS.sss)")


async def _reset(tool: GroupTool, args: argparse.Namespace) -> int:
    group = args.group[0]
    view = await tool.describe(group)
    if view.state not in ("Empty", "Dead"):
        raise CliError(f"Assignments can only be reset if the group '{group}' is inactive, "
                       f"but the current state is {view.state}.")
    committed = await tool.committed(group)
    if args.all_topics:
        tps = sorted(committed)
    else:
        if not args.topic:
            raise CliError("--reset-offsets needs --topic or --all-topics")
        wanted = _parse_topics(args.topic)
        cluster = await tool.client.metadata([t for t, _ in wanted])
        tps = []
        for t, parts in wanted:
            info = cluster.topics.get(t)
            if info is None or info.error_code:
                raise CliError(f"Topic '{t}' does not exist")
            tps += [(t, p) for p in (parts if parts is not None else sorted(info.partitions))]
    if not tps:
        raise CliError(f"No partitions to reset for group '{group}'")
    earliest = await tool.list_offsets(tps, EARLIEST)
    latest = await tool.list_offsets(tps, LATEST)

    def clamp(tp: tuple[str, int], o: int) -> int:
        return max(earliest[tp], min(o, latest[tp]))

    new: dict[tuple[str, int], int] = {}
    if args.to_earliest:
        new = dict(earliest)
    elif args.to_latest:
        new = dict(latest)
    elif args.to_offset is not None:
        new = {tp: clamp(tp, args.to_offset) for tp in tps}
    elif args.shift_by is not None:
        new = {tp: clamp(tp, committed.get(tp, latest[tp]) + args.shift_by) for tp in tps}
    elif args.to_datetime is not None:
        found = await tool.list_offsets(tps, parse_datetime(args.to_datetime))
        new = {tp: latest[tp] if found[tp] < 0 else found[tp] for tp in tps}
    else:
        raise CliError("--reset-offsets needs one of --to-earliest, --to-latest, --to-offset, "
                       "--shift-by, --to-datetime")
    if not args.execute and not args.dry_run:
        print("WARN: No action will be performed as the --execute option is missing. In a "
              "future major release, the default behavior of this command will be to prompt "
              "the user before executing the reset rather than doing a dry run. You should "
              "add the --dry-run option explicitly if you are scripting this command and want "
              "to keep the current default behavior without prompting.", file=sys.stderr)
    if args.execute:
        await tool.commit(group, new)
    rows = [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]]
    rows += [[group, t, str(p), str(new[(t, p)])] for t, p in sorted(new)]
    print()
    print(_table(rows, [30, 30, 10, 15]))
    return 0


async def _delete(tool: GroupTool, groups: Sequence[str]) -> int:
    results = await tool.delete(groups)
    ok = [g for g, e in results.items() if not e]
    bad = {g: e for g, e in results.items() if e}
    if ok:
        names = ", ".join(f"'{g}'" for g in ok)
        print(f"Deletion of requested consumer groups ({names}) was successful.")
    if bad:
        print("Deletion of some consumer groups failed:", file=sys.stderr)
        for g, e in bad.items():
            reason = {ErrorCode.GROUP_ID_NOT_FOUND: f"Group '{g}' does not exist",
                      ErrorCode.NON_EMPTY_GROUP: "The group is not empty"}.get(
                ErrorCode(e), error_name(e))
            print(f"* Group '{g}' could not be deleted due to: {reason}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="List, describe, reset and delete "
                                "consumer groups.")
    p.add_argument("--bootstrap-server", required=True, help="HOST:PORT[,HOST:PORT...]")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list all consumer groups")
    action.add_argument("--describe", action="store_true", help="describe a group")
    action.add_argument("--reset-offsets", action="store_true",
                        help="reset a group's committed offsets")
    action.add_argument("--delete", action="store_true", help="delete groups")
    p.add_argument("--group", action="append", help="the group (repeatable for --delete)")
    p.add_argument("--state", action="store_true",
                   help="with --list: each group's state; with --describe: the group's state")
    p.add_argument("--type", action="store_true",
                   help="with --list: each group's type (Classic or Consumer)")
    p.add_argument("--members", action="store_true", help="with --describe: the members")
    p.add_argument("--topic", action="append", help="TOPIC or TOPIC:P1,P2 (--reset-offsets)")
    p.add_argument("--all-topics", action="store_true",
                   help="every topic the group has offsets for (--reset-offsets)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--to-earliest", action="store_true")
    how.add_argument("--to-latest", action="store_true")
    how.add_argument("--to-offset", type=int)
    how.add_argument("--shift-by", type=int)
    how.add_argument("--to-datetime", help="YYYY-MM-DDTHH:mm:SS.sss[zone]")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--execute", action="store_true")
    run.add_argument("--dry-run", action="store_true")
    p.add_argument("--timeout", type=int, default=30000, help="ms to wait for the cluster")
    return p


async def _main(args: argparse.Namespace) -> int:
    client = await admin_client(args.bootstrap_server, timeout_s=args.timeout / 1000,
                                client_id="kafka-consumer-groups")
    try:
        tool = GroupTool(client)
        if args.list:
            groups = await tool.list_groups()
            if not (args.state or args.type):
                for g in groups:
                    print(g)
                return 0
            header = ["GROUP"] + (["STATE"] if args.state else []) + (
                ["TYPE"] if args.type else [])
            rows = [header] + [[g] + ([state] if args.state else []) + (
                [kind] if args.type else []) for g, (state, kind) in groups.items()]
            print(_table(rows, [None] * len(header)))
            return 0
        if not args.group:
            raise CliError("--group is required")
        if args.describe:
            return await _describe(tool, args.group[0], args)
        if args.reset_offsets:
            return await _reset(tool, args)
        return await _delete(tool, args.group)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
