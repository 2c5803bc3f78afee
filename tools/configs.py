"""``kafka-configs``: describe and change topic and broker configs (Kafka's ConfigCommand).

    kafka-configs --bootstrap-server B --entity-type topics --entity-name T --describe [--all]
    kafka-configs --bootstrap-server B --entity-type topics --entity-name T --alter \\
        --add-config retention.ms=60000,cleanup.policy=[compact,delete] --delete-config x
    kafka-configs --bootstrap-server B --entity-type brokers --entity-name 1 --describe --all

``--topic T`` and ``--broker N`` are shorthands; ``--entity-default`` names the cluster-wide
broker default. Changes go through IncrementalAlterConfigs.

Client quotas (``tools/quota_cli.py``): ``--entity-type users`` and/or ``--entity-type clients``
(each followed by its ``--entity-name`` or ``--entity-default``; ``--user``/``--client`` and
``--user-defaults``/``--client-defaults`` as shorthands), through DescribeClientQuotas and
AlterClientQuotas:

    kafka-configs --bootstrap-server B --alter --entity-type clients --entity-name app \
        --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152
    kafka-configs --bootstrap-server B --describe --entity-type users --entity-default

Users' SCRAM credentials (``--entity-type users`` with ``SCRAM-SHA-256``/``SCRAM-SHA-512``
configs, and shown by ``--describe`` of users) go through AlterUserScramCredentials and
DescribeUserScramCredentials (tools/scram_configs.py).
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
from tools.quota_cli import (
    ENTITY_TYPES,
    alter_quotas,
    describe_quotas,
    entity_text,
    print_described,
    quota_values,
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
    p.add_argument("--entity-type", action="append",
                   choices=sorted(RESOURCE_TYPES) + sorted(ENTITY_TYPES))
    p.add_argument("--entity-name", action="append")
    p.add_argument("--entity-default", action="append_const", const=True,
                   help="the cluster-wide default (brokers), the default user or client id")
    p.add_argument("--user", help="shorthand for --entity-type users --entity-name U")
    p.add_argument("--client", help="shorthand for --entity-type clients --entity-name C")
    p.add_argument("--user-defaults", action="store_true")
    p.add_argument("--client-defaults", action="store_true")
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


def quota_entity(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    """The users/clients entity in the order of the arguments: each --entity-type is named by
    the --entity-name or --entity-default after it ("" when neither: every named entity of
    that type, for --describe)."""
    out: list[list[str | None]] = []
    it = iter(argv)
    for arg in it:
        key, eq, inline = arg.partition("=")
        value = inline if eq else None
        if key in ("--entity-type", "--entity-name", "--user", "--client") and value is None:
            value = next(it, None)
        if key == "--entity-type":
            out.append([value, ""])
        elif key == "--entity-name" and out:
            out[-1][1] = value
        elif key == "--entity-default" and out:
            out[-1][1] = None
        elif key in ("--user", "--client"):
            out.append(["users" if key == "--user" else "clients", value])
        elif key in ("--user-defaults", "--client-defaults"):
            out.append(["users" if key == "--user-defaults" else "clients", None])
    entity = [(ENTITY_TYPES[t], n) for t, n in out if t in ENTITY_TYPES]
    if len({t for t, _ in entity}) != len(entity):
        raise CliError("each of users and clients may be named once")
    return entity


def _entity(args: argparse.Namespace) -> tuple[str, str]:
    if args.topic:
        return "topics", args.topic
    if args.broker:
        return "brokers", args.broker
    if not args.entity_type:
        raise CliError("--entity-type (or --topic/--broker) is required")
    etype = args.entity_type[0]
    if args.entity_default:
        if etype != "brokers":
            raise CliError("--entity-default applies to --entity-type brokers only")
        return "brokers", ""
    if not args.entity_name:
        raise CliError("--entity-name (or --entity-default) is required")
    return etype, args.entity_name[0]


async def _quotas(args: argparse.Namespace, entity: list[tuple[str, str | None]]) -> int:
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        if args.describe:
            print_described(await describe_quotas(client, entity))
            return 0
        if any(n == "" for _, n in entity):
            raise CliError("--alter needs --entity-name or --entity-default for each "
                           "--entity-type")
        adds = quota_values(parse_add_config(args.add_config))
        deletes = [d.strip() for item in args.delete_config or () for d in item.split(",")
                   if d.strip()]
        if not adds and not deletes:
            raise CliError("--alter needs --add-config and/or --delete-config")
        await alter_quotas(client, entity, adds, deletes)
        if len(entity) == 1 and entity[0][1] is None:
            kind = "users" if entity[0][0] == "user" else "clients"
            print(f"Completed updating default config for {kind} in the cluster.")
        else:
            print(f"Completed updating config for {entity_text(entity)}.")
        return 0
    finally:
        await client.close()


def _scram_change(args: argparse.Namespace) -> bool:
    items = [*(args.add_config or ()), *(args.delete_config or ())]
    return any(x.strip().upper().startswith("SCRAM-SHA-") for x in items)


async def _users_scram(args: argparse.Namespace, name: str | None) -> int:
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        return await run_users(args, client, name)
    finally:
        await client.close()


async def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    entity = quota_entity(argv)
    scram_user = len(entity) == 1 and entity[0][0] == "user" and entity[0][1] is not None
    if scram_user and args.alter and _scram_change(args):
        return await _users_scram(args, entity[0][1] or None)
    if entity:
        code = await _quotas(args, entity)
        if scram_user and args.describe:  # Kafka shows a user's credentials with its quotas
            code = max(code, await _users_scram(args, entity[0][1] or None))
        return code
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
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args, argv))


if __name__ == "__main__":
    sys.exit(main())
