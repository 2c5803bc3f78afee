"""``kafka-leader-election``: preferred or unclean leader election (Kafka's
LeaderElectionCommand), through the ElectLeaders API.

    kafka-leader-election --bootstrap-server B --election-type preferred \\
        (--all-topic-partitions | --topic T --partition P | --path-to-json-file F)

The JSON file has Kafka's shape: ``{"partitions": [{"topic": "foo", "partition": 1}]}``.
Exit code 1 when any partition could not be elected.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.protocol.errors import ErrorCode
from tools.cli_client import CliError, admin_client, elect_leaders_for, error_name, run_tool

PROG = "kafka-leader-election"
ELECTION_TYPES = {"preferred": 0, "unclean": 1}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Elect partition leaders.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--admin.config", dest="admin_config",
                   help="accepted for compatibility; not used")
    p.add_argument("--election-type", required=True, type=str.lower,
                   choices=sorted(ELECTION_TYPES))
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all-topic-partitions", action="store_true")
    scope.add_argument("--topic")
    scope.add_argument("--path-to-json-file")
    p.add_argument("--partition", type=int)
    return p


def read_partitions_file(path: str) -> dict[str, list[int]]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{path} is not valid JSON: {e}") from None
    items = data.get("partitions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CliError(f"{path}: expected {{\"partitions\": [{{\"topic\": ..., "
                       "\"partition\": ...}}]}}")
    out: dict[str, list[int]] = {}
    seen: set[tuple[str, int]] = set()
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("topic"), str)
                and isinstance(item.get("partition"), int)):
            raise CliError(f"{path}: bad partition entry {item!r}")
        key = (item["topic"], item["partition"])
        if key in seen:
            raise CliError(f"Replica election data contains duplicate partitions: "
                           f"{key[0]}-{key[1]}")
        seen.add(key)
        out.setdefault(key[0], []).append(key[1])
    return out


async def _main(args: argparse.Namespace) -> int:
    if args.topic is not None and args.partition is None:
        raise CliError("Missing required option(s): partition")
    if args.partition is not None and args.topic is None:
        raise CliError("Option partition is only allowed if topic is used")
    partitions: dict[str, list[int]] | None
    if args.all_topic_partitions:
        partitions = None
    elif args.topic is not None:
        partitions = {args.topic: [args.partition]}
    else:
        partitions = read_partitions_file(args.path_to_json_file)
    etype = args.election_type
    client = await admin_client(args.bootstrap_server)
    try:
        results = await elect_leaders_for(client, ELECTION_TYPES[etype], partitions)
    finally:
        await client.close()
    ok = [f"{t}-{p}" for t, p, code, _ in results if code == 0]
    noop = [f"{t}-{p}" for t, p, code, _ in results if code == ErrorCode.ELECTION_NOT_NEEDED]
    failed = [(f"{t}-{p}", code, msg) for t, p, code, msg in results
              if code not in (0, ErrorCode.ELECTION_NOT_NEEDED)]
    if ok:
        print(f"Successfully completed leader election ({etype.upper()}) for partitions "
              f"{', '.join(ok)}")
    if noop:
        print(f"Valid replica already elected for partitions {', '.join(noop)}")
    for tp, code, msg in failed:
        print(f"Error completing leader election ({etype.upper()}) for partition: {tp}: "
              f"{error_name(code)}" + (f": {msg}" if msg else ""))
    if failed:
        print(f"Error: {len(failed)} replica(s) could not be elected", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
