"""``kafka-configs``: describe and change topic and broker configs (Kafka's ConfigCommand).

    kafka-configs --bootstrap-server B --entity-type topics --entity-name T --describe [--all]
    kafka-configs --bootstrap-server B --entity-type topics --entity-name T --alter \\
        --add-config retention.ms=60000,cleanup.policy=[compact,delete] --delete-config x
    kafka-configs --bootstrap-server B --entity-type brokers --entity-name 1 --describe --all

``--topic T`` and ``--broker N`` are shorthands; ``--entity-default`` names the cluster-wide
broker default. Changes go through IncrementalAlterConfigs; users' SCRAM credentials
(``--entity-type users``) through AlterUserScramCredentials (tools/scram_configs.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools.cli_client import (
    OP_DELETE,
    OP_SET,
    RESOURCE_TYPES,
    CliError,
    admin_client,
    alter_configs,
    describe_configs_of,
    run_tool,
)
from tools.scram_configs import run_users

PROG = "kafka-configs"
_ENTITY_LABEL = {"topics": "topic", "brokers": "broker", "broker-loggers": "broker-logger"}
_DYNAMIC = {"DYNAMIC_TOPIC_CONFIG", "DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG",
            "DYNAMIC_BROKER_LOGGER_CONFIG"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Add, remove and describe configs.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    actions = p.add_mutually_exclusive_group(required=True)
    actions.add_argument("--describe", action="store_true")
    actions.add_argument("--alter", action="store_true")
    p.add_argument("--entity-type", choices=[*sorted(RESOURCE_TYPES), "users"])
    p.add_argument("--entity-name")
    p.add_argument("--entity-default", action="store_true",
                   help="the cluster-wide default (brokers)")
    p.add_argument("--topic", help="shorthand for --entity-type topics --entity-name T")
    p.add_argument("--broker", help="shorthand for --entity-type brokers --entity-name N")
    p.add_argument("--all", action="store_true", help="with --describe: every config")
    p.add_argument("--add-config", action="append",
                   help="k=v pairs, comma separated; list values in brackets: k=[a,b]")
    p.add_argument("--delete-config", action="append", help="config names, comma separated")
    return p


def parse_add_config(items: Sequence[str] | None) -> dict[str, str]:
    """Kafka's --add-config syntax: ``a=1,b=[x,y]`` (brackets hold a comma list)."""
    out: dict[str, str] = {}
    for item in items or ():
        depth, cur, parts = 0, "", []
        for ch in item:
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if depth != 0:
            raise CliError(f"unbalanced brackets in --add-config {item!r}")
        parts.append(cur)
        for part in filter(None, (x.strip() for x in parts)):
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise CliError(f"--add-config expects key=value, got {part!r}")
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            out[key.strip()] = value
    return out


def _entity(args: argparse.Namespace) -> tuple[str, str]:
    if args.topic:
        return "topics", args.topic
    if args.broker:
        return "brokers", args.broker
    if not args.entity_type:
        raise CliError("--entity-type (or --topic/--broker) is required")
    if args.entity_default:
        if args.entity_type != "brokers":
            raise CliError("--entity-default applies to --entity-type brokers only")
        return "brokers", ""
    if args.entity_name is None:
        raise CliError("--entity-name (or --entity-default) is required")
    return args.entity_type, args.entity_name


async def _main(args: argparse.Namespace) -> int:
    if args.entity_type == "users":  # SCRAM credentials (tools/scram_configs.py)
        client = await admin_client(args.bootstrap_server, command_config=args.command_config)
        try:
            return await run_users(args, client, args.entity_name)
        finally:
            await client.close()
    etype, name = _entity(args)
    if etype == "brokers" and name and not name.isdigit():
        raise CliError(f"the broker entity name must be a node id, got {name!r}")
    label = _ENTITY_LABEL[etype]
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        rtype = RESOURCE_TYPES[etype]
        if args.describe:
            node = int(name) if etype == "brokers" and name else None
            entries = await describe_configs_of(client, rtype, name, node=node)
            shown = entries if args.all else [e for e in entries if e.source in _DYNAMIC]
            what = "All" if args.all else "Dynamic"
            subject = f"{label} {name}" if name else "the default broker"
            print(f"{what} configs for {subject} are:")
            for e in shown:
                value = "null" if e.value is None else e.value
                if e.is_sensitive:
                    value = "null"
                syn = ", ".join(f"{src}:{n}={v}" for n, v, src in e.synonyms)
                print(f"  {e.name}={value} sensitive={str(e.is_sensitive).lower()} "
                      f"synonyms={{{syn}}}")
            return 0
        adds = parse_add_config(args.add_config)
        deletes = [d.strip() for item in args.delete_config or () for d in item.split(",")
                   if d.strip()]
        if not adds and not deletes:
            raise CliError("--alter needs --add-config and/or --delete-config")
        both = set(adds) & set(deletes)
        if both:
            raise CliError(f"configs both added and deleted: {', '.join(sorted(both))}")
        if etype == "topics":
            answer = await client.metadata([name])
            t = answer.topics.get(name)
            if t is None or t.error_code:
                raise CliError(f"Topic '{name}' does not exist as expected")
        ops = [(k, OP_SET, v) for k, v in adds.items()] + [(k, OP_DELETE, None)
                                                             for k in deletes]
        await alter_configs(client, rtype, name, ops)
        subject = f"{label} {name}" if name else "default broker"
        print(f"Completed updating config for {subject}.")
        return 0
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
