"""``kafka-reassign-partitions``: move partitions between brokers (Kafka's
ReassignPartitionsCommand), through AlterPartitionReassignments and ListPartitionReassignments.

    kafka-reassign-partitions --bootstrap-server B --generate \\
        --topics-to-move-json-file F --broker-list 1,2,3
    kafka-reassign-partitions --bootstrap-server B --execute --reassignment-json-file F \\
        [--throttle BYTES_PER_S] [--additional]
    kafka-reassign-partitions --bootstrap-server B --verify --reassignment-json-file F \\
        [--preserve-throttles]
    kafka-reassign-partitions --bootstrap-server B --cancel --reassignment-json-file F
    kafka-reassign-partitions --bootstrap-server B --list

The JSON files have Kafka's shapes: topics to move ``{"topics": [{"topic": "foo"}],
"version": 1}``; a reassignment ``{"version": 1, "partitions": [{"topic": "foo",
"partition": 0, "replicas": [2, 3], "log_dirs": ["any", "any"]}]}`` (log dirs other than
"any" are refused: replicas cannot be placed on a given log dir here).

``--throttle`` sets what Kafka's tool sets: ``leader.replication.throttled.replicas`` (the
current replicas) and ``follower.replication.throttled.replicas`` (the replicas being added) on
each topic, ``leader.replication.throttled.rate`` and ``follower.replication.throttled.rate`` on
each broker involved (enforced, see ``broker.replication.throttle``); ``--verify`` removes them
once every partition of the file is done.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import error_for_code
from broker.protocol.messages import alter_partition_reassignments, list_partition_reassignments
from kraft.controller.placement import UsableBroker, place_replicas
from kraft.controller.results import ApiError
from tools.cli_client import (
    DEFAULT_ADMIN_TIMEOUT_MS,
    OP_DELETE,
    OP_SET,
    RESOURCE_TYPES,
    CliError,
    admin_client,
    alter_configs,
    error_name,
    partitions_of,
    retriable_only,
    run_tool,
)

PROG = "kafka-reassign-partitions"
TP = tuple[str, int]
LEADER_RATE, FOLLOWER_RATE = "leader.replication.throttled.rate", "follower.replication.throttled.rate"
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Move partitions between replicas.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    action = p.add_mutually_exclusive_group(required=True)
    for name in ("generate", "execute", "verify", "cancel", "list"):
        action.add_argument(f"--{name}", action="store_true")
    p.add_argument("--topics-to-move-json-file")
    p.add_argument("--broker-list")
    p.add_argument("--reassignment-json-file")
    p.add_argument("--throttle", type=int, default=-1,
                   help="inter-broker replication throttle, bytes/s (--execute)")
    p.add_argument("--replica-alter-log-dirs-throttle", type=int, default=-1,
                   help="accepted for compatibility; log dirs are not reassigned")
    p.add_argument("--additional", action="store_true",
                   help="execute even while other reassignments are in flight")
    p.add_argument("--preserve-throttles", action="store_true")
    p.add_argument("--disable-rack-aware", action="store_true",
                   help="accepted for compatibility; --generate ignores racks")
    p.add_argument("--timeout", type=int, default=10000, help="ms (accepted)")
    return p


# -- JSON --------------------------------------------------------------------------------------

def _load(path: str | None, flag: str) -> Any:
    if not path:
        raise CliError(f"Missing required argument \"[{flag}]\"")
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{path} is not valid JSON: {e}") from None


def parse_topics_to_move(data: Any) -> list[str]:
    items = data.get("topics") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(
            isinstance(t, dict) and isinstance(t.get("topic"), str) for t in items):
        raise CliError('topics to move: expected {"topics": [{"topic": "foo"}], "version": 1}')
    names = [t["topic"] for t in items]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise CliError(f"Duplicate topic names in topics to move: {','.join(dups)}")
    return names


def parse_reassignment(data: Any) -> dict[TP, list[int]]:
    """Kafka's parsePartitionReassignmentData (version 1)."""
    if not isinstance(data, dict):
        raise CliError("reassignment: expected a JSON object")
    if data.get("version", 1) != 1:
        raise CliError(f"Not supported version field value {data.get('version')}")
    items = data.get("partitions")
    if not isinstance(items, list):
        raise CliError("Missing partitions field")
    out: dict[TP, list[int]] = {}
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("topic"), str)
                and type(item.get("partition")) is int
                and isinstance(item.get("replicas"), list)
                and all(type(r) is int for r in item["replicas"])):
            raise CliError(f"reassignment: bad partition entry {item!r}")
        tp = (item["topic"], item["partition"])
        if tp in out:
            raise CliError(f"Duplicate reassignment for partition {tp[0]}-{tp[1]}")
        replicas = item["replicas"]
        if not replicas:
            raise CliError(f"Partition replica list cannot be empty: {tp[0]}-{tp[1]}")
        if len(set(replicas)) != len(replicas):
            raise CliError(f"Duplicate replica assignment found: {tp[0]}-{tp[1]} -> "
                           f"{','.join(map(str, replicas))}")
        dirs = item.get("log_dirs")
        if dirs is not None:
            if not isinstance(dirs, list) or len(dirs) != len(replicas):
                raise CliError(f"Size of replicas list {replicas} is different from size of "
                               f"log dirs list {dirs} for partition {tp[0]}-{tp[1]}")
            if any(d != "any" for d in dirs):
                raise CliError("Reassigning replicas to given log dirs is not supported")
        out[tp] = replicas
    return out


def assignment_json(assignment: dict[TP, list[int]]) -> str:
    """Kafka's formatAsReassignmentJson (compact, log dirs "any")."""
    return json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(assignment.items())]}, separators=(",", ":"))


def _tps(tps: Sequence[TP]) -> str:
    return ",".join(f"{t}-{p}" for t, p in sorted(tps))


# -- cluster state -----------------------------------------------------------------------------

async def current_assignment(client: KafkaClient, tps: Sequence[TP]) -> dict[TP, list[int]]:
    topics = await partitions_of(client, sorted({t for t, _ in tps}))
    out: dict[TP, list[int]] = {}
    for t, p in tps:
        info = topics[t].partitions.get(p)
        if info is None:
            raise CliError(f"Unable to find partition: {t}-{p}")
        out[(t, p)] = list(info.replicas)
    return out


async def ongoing(client: KafkaClient, tps: Sequence[TP] | None = None
                  ) -> dict[TP, tuple[list[int], list[int], list[int]]]:
    """Reassignments in flight: (replicas, adding, removing) per partition."""
    R = list_partition_reassignments.REQUEST
    topics = None
    if tps is not None:
        by_topic: dict[str, list[int]] = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        topics = [R.ListPartitionReassignmentsTopics(name=t, partition_indexes=ps)
                  for t, ps in sorted(by_topic.items())]
    resp = await client.send_to_controller(
        ApiKey.LIST_PARTITION_REASSIGNMENTS,
        R.cls(timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS, topics=topics), check=retriable_only)
    if resp.error_code:
        raise CliError(f"Listing reassignments failed: {error_name(resp.error_code)}")
    return {(t.name, p.partition_index): (list(p.replicas), list(p.adding_replicas),
                                          list(p.removing_replicas))
            for t in resp.topics for p in t.partitions}


async def alter(client: KafkaClient, moves: dict[TP, list[int] | None]
                ) -> dict[TP, tuple[int, str | None]]:
    """AlterPartitionReassignments; (error code, message) per partition."""
    R = alter_partition_reassignments.REQUEST
    by_topic: dict[str, list[Any]] = {}
    for (t, p), replicas in sorted(moves.items()):
        by_topic.setdefault(t, []).append(
            R.ReassignablePartition(partition_index=p, replicas=replicas))
    req = R.cls(timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS, allow_replication_factor_change=True,
                topics=[R.ReassignableTopic(name=t, partitions=ps)
                        for t, ps in by_topic.items()])
    resp = await client.send_to_controller(ApiKey.ALTER_PARTITION_REASSIGNMENTS, req,
                                           check=retriable_only)
    if resp.error_code:
        raise CliError(f"Reassigning partitions failed: {error_name(resp.error_code)}"
                       + (f": {resp.error_message}" if resp.error_message else ""))
    return {(t.name, p.partition_index): (p.error_code, p.error_message)
            for t in resp.responses for p in t.partitions}


def _errors(what: str, results: dict[TP, tuple[int, str | None]]) -> None:
    bad = {tp: r for tp, r in results.items() if r[0]}
    if bad:
        lines = [f"{t}-{p}: {r[1] or error_for_code(r[0]).message or error_name(r[0])}"
                 for (t, p), r in sorted(bad.items())]
        raise CliError(f"Error {what} partition(s):\n" + "\n".join(lines))


# -- actions -----------------------------------------------------------------------------------

def generate_assignment(current: dict[TP, list[int]], brokers: list[int],
                        rng: random.Random) -> dict[TP, list[int]]:
    """Each topic's partitions spread over ``brokers`` with its replication factor (the
    controller's placement, racks ignored)."""
    usable = [UsableBroker(b, None) for b in brokers]
    out: dict[TP, list[int]] = {}
    for topic in sorted({t for t, _ in current}):
        pids = sorted(p for t, p in current if t == topic)
        rf = len(current[(topic, pids[0])])
        if rf > len(brokers):
            raise CliError(f"Replication factor: {rf} larger than available brokers: "
                           f"{len(brokers)}.")
        try:
            placed = place_replicas(len(pids), rf, usable, rng)
        except ApiError as e:
            raise CliError(e.message or e.code.name) from None
        for pid, replicas in zip(pids, placed, strict=True):
            out[(topic, pid)] = list(replicas)
    return out


async def _generate(client: KafkaClient, args: argparse.Namespace) -> int:
    topics = parse_topics_to_move(_load(args.topics_to_move_json_file,
                                        "topics-to-move-json-file"))
    if not args.broker_list:
        raise CliError('Missing required argument "[broker-list]"')
    try:
        brokers = [int(b) for b in args.broker_list.split(",") if b.strip()]
    except ValueError:
        raise CliError(f"Invalid broker list: {args.broker_list}") from None
    if len(set(brokers)) != len(brokers):
        raise CliError(f"Duplicate broker ids in broker list: {args.broker_list}")
    md = await client.metadata(topics)
    unknown = sorted(set(brokers) - set(md.brokers))
    if unknown:
        raise CliError(f"The given broker list contains nonexistent brokers: "
                       f"{','.join(map(str, unknown))}")
    infos = await partitions_of(client, topics)
    current = {(t, p): list(info.replicas) for t in topics
               for p, info in infos[t].partitions.items()}
    proposed = generate_assignment(current, brokers, random.Random())
    print("Current partition replica assignment")
    print(assignment_json(current))
    print()
    print("Proposed partition reassignment configuration")
    print(assignment_json(proposed))
    return 0


async def _set_throttles(client: KafkaClient, current: dict[TP, list[int]],
                         target: dict[TP, list[int]], rate: int) -> None:
    leaders: dict[str, set[str]] = {}
    followers: dict[str, set[str]] = {}
    for (t, p), replicas in target.items():
        leaders.setdefault(t, set()).update(f"{p}:{b}" for b in current[(t, p)])
        followers.setdefault(t, set()).update(
            f"{p}:{b}" for b in replicas if b not in current[(t, p)])
    for t in sorted(leaders):
        ops: list[tuple[str, int, str | None]] = [
            (LEADER_REPLICAS, OP_SET, ",".join(sorted(leaders[t])))]
        if followers.get(t):
            ops.append((FOLLOWER_REPLICAS, OP_SET, ",".join(sorted(followers[t]))))
        await alter_configs(client, RESOURCE_TYPES["topics"], t, ops)
    brokers = sorted({b for r in [*current.values(), *target.values()] for b in r})
    for b in brokers:
        await alter_configs(client, RESOURCE_TYPES["brokers"], str(b),
                            [(LEADER_RATE, OP_SET, str(rate)), (FOLLOWER_RATE, OP_SET, str(rate))])


async def _execute(client: KafkaClient, args: argparse.Namespace) -> int:
    target = parse_reassignment(_load(args.reassignment_json_file, "reassignment-json-file"))
    md = await client.metadata(sorted({t for t, _ in target}))
    unknown = sorted({b for r in target.values() for b in r} - set(md.brokers))
    if unknown:
        raise CliError(f"Unknown broker id(s) {','.join(map(str, unknown))}")
    current = await current_assignment(client, list(target))
    if not args.additional and await ongoing(client):
        raise CliError("Cannot execute because there is an existing partition assignment.  "
                       "Use --additional to override this and create a new partition "
                       "assignment in addition to the existing one.")
    print("Current partition replica assignment")
    print()
    print(assignment_json(current))
    print()
    print("Save this to use as the --reassignment-json-file option during rollback")
    if args.throttle >= 0:
        await _set_throttles(client, current, target, args.throttle)
        print("Warning: You must run --verify periodically, until the reassignment completes, "
              "to ensure the throttle is removed.")
        print(f"The inter-broker throttle limit was set to {args.throttle} B/s")
    results = await alter(client, dict(target))
    _errors("reassigning", results)
    print(f"Successfully started partition reassignments for {_tps(list(target))}")
    return 0


async def _clear_throttles(client: KafkaClient, topics: Sequence[str]) -> None:
    brokers = sorted((await client.metadata([])).brokers)
    print(f"Clearing broker-level throttles on brokers {','.join(map(str, brokers))}")
    for b in brokers:
        await alter_configs(client, RESOURCE_TYPES["brokers"], str(b),
                            [(LEADER_RATE, OP_DELETE, None), (FOLLOWER_RATE, OP_DELETE, None)])
    for t in sorted(set(topics)):
        print(f"Clearing topic-level throttles on topic {t}")
        await alter_configs(client, RESOURCE_TYPES["topics"], t,
                            [(LEADER_REPLICAS, OP_DELETE, None),
                             (FOLLOWER_REPLICAS, OP_DELETE, None)])


async def _verify(client: KafkaClient, args: argparse.Namespace) -> int:
    target = parse_reassignment(_load(args.reassignment_json_file, "reassignment-json-file"))
    in_flight = await ongoing(client, list(target))
    current = await current_assignment(client, [tp for tp in target if tp not in in_flight])
    print("Status of partition reassignment:")
    done = True
    for (t, p), replicas in sorted(target.items()):
        if (t, p) in in_flight:
            done = False
            print(f"Reassignment of partition {t}-{p} is still in progress.")
        elif current[(t, p)] == replicas:
            print(f"Reassignment of partition {t}-{p} is completed.")
        else:
            done = False
            print(f"There is no active reassignment of partition {t}-{p}, but replica set is "
                  f"{','.join(map(str, current[(t, p)]))} rather than "
                  f"{','.join(map(str, replicas))}.")
    if done and not args.preserve_throttles:
        print()
        await _clear_throttles(client, [t for t, _ in target])
    return 0


async def _cancel(client: KafkaClient, args: argparse.Namespace) -> int:
    target = parse_reassignment(_load(args.reassignment_json_file, "reassignment-json-file"))
    in_flight = await ongoing(client, list(target))
    if in_flight:
        results = await alter(client, {tp: None for tp in target if tp in in_flight})
        _errors("cancelling", results)
        print(f"Successfully cancelled partition reassignments for: {_tps(list(results))}")
    else:
        print("None of the specified partition reassignments are active.")
    if not args.preserve_throttles:
        await _clear_throttles(client, [t for t, _ in target])
    return 0


async def _list(client: KafkaClient, args: argparse.Namespace) -> int:
    in_flight = await ongoing(client)
    if not in_flight:
        print("No partition reassignments found.")
        return 0
    print("Current partition reassignments:")
    for (t, p), (replicas, adding, removing) in sorted(in_flight.items()):
        print(f"{t}-{p}: replicas: {','.join(map(str, replicas))}. adding: "
              f"{','.join(map(str, adding))}. removing: {','.join(map(str, removing))}.")
    return 0


async def _main(args: argparse.Namespace) -> int:
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        if args.generate:
            return await _generate(client, args)
        if args.execute:
            return await _execute(client, args)
        if args.verify:
            return await _verify(client, args)
        if args.cancel:
            return await _cancel(client, args)
        return await _list(client, args)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
