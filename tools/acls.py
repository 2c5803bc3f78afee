"""``kafka-acls``: add, remove and list ACLs (Kafka's AclCommand) through CreateAcls,
DeleteAcls and DescribeAcls.

    kafka-acls --bootstrap-server B --add --allow-principal User:alice --operation Read \\
        --topic orders [--resource-pattern-type prefixed]
    kafka-acls --bootstrap-server B --add --allow-principal User:alice --producer --topic t
    kafka-acls --bootstrap-server B --add --allow-principal User:bob --consumer --topic t \\
        --group g
    kafka-acls --bootstrap-server B --remove --topic orders --force
    kafka-acls --bootstrap-server B --list [--topic orders] [--principal User:alice]

Resources: ``--topic``, ``--group``, ``--transactional-id`` (each repeatable), ``--cluster``.
``--allow-host`` / ``--deny-host`` default to ``*``. ``--producer`` gives WRITE, DESCRIBE and
CREATE on the topics (WRITE and DESCRIBE on ``--transactional-id``, IDEMPOTENT_WRITE on the
cluster with ``--idempotent``); ``--consumer`` READ and DESCRIBE on the topics and READ on the
groups. ``--remove`` asks before removing unless ``--force``. Output follows Kafka's tool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import create_acls, delete_acls, describe_acls
from kraft.acls import (
    CLUSTER_NAME,
    AclFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
    StandardAcl,
)
from tools.cli_client import CliError, admin_client, failure, retriable_only, run_tool

PROG = "kafka-acls"

_OPS = {o.name.replace("_", "").lower(): o for o in AclOperation
        if o not in (AclOperation.UNKNOWN, AclOperation.ANY)}
# Kafka's spelling of each operation in the tool's output.
_OP_NAMES = {AclOperation.CLUSTER_ACTION: "CLUSTER_ACTION"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Manage ACLs.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--command-config", help="accepted for compatibility; not used")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--add", action="store_true")
    action.add_argument("--remove", action="store_true")
    action.add_argument("--list", action="store_true")
    p.add_argument("--allow-principal", action="append", default=[])
    p.add_argument("--deny-principal", action="append", default=[])
    p.add_argument("--allow-host", action="append", default=[])
    p.add_argument("--deny-host", action="append", default=[])
    p.add_argument("--principal", action="append", default=[],
                   help="--list: only the ACLs of these principals")
    p.add_argument("--operation", action="append", default=[])
    p.add_argument("--topic", action="append", default=[])
    p.add_argument("--group", action="append", default=[])
    p.add_argument("--transactional-id", action="append", default=[])
    p.add_argument("--cluster", action="store_true")
    p.add_argument("--resource-pattern-type", default=None,
                   help="literal (default), prefixed; for --list/--remove also any, match")
    p.add_argument("--producer", action="store_true")
    p.add_argument("--consumer", action="store_true")
    p.add_argument("--idempotent", action="store_true")
    p.add_argument("--force", action="store_true")
    return p


def parse_operation(text: str) -> AclOperation:
    op = _OPS.get(text.replace("_", "").replace("-", "").lower())
    if op is None:
        raise CliError(f"Unknown operation {text!r}; valid: "
                       + ", ".join(sorted(o.name for o in _OPS.values())))
    return op


def parse_pattern_type(text: str | None, *, for_add: bool) -> PatternType:
    if text is None:
        return PatternType.LITERAL
    try:
        pt = PatternType[text.upper()]
    except KeyError:
        raise CliError(f"Unknown resource pattern type {text!r}") from None
    if pt == PatternType.UNKNOWN or (for_add and pt not in (PatternType.LITERAL,
                                                            PatternType.PREFIXED)):
        raise CliError(f"A '--resource-pattern-type' value of '{text}' is not valid when "
                       "adding acls.")
    return pt


def resources(args: argparse.Namespace) -> list[tuple[ResourceType, str]]:
    out = [(ResourceType.TOPIC, t) for t in args.topic]
    out += [(ResourceType.GROUP, g) for g in args.group]
    out += [(ResourceType.TRANSACTIONAL_ID, t) for t in args.transactional_id]
    if args.cluster or (args.producer and args.idempotent):
        out.append((ResourceType.CLUSTER, CLUSTER_NAME))
    return out


def _entries(args: argparse.Namespace) -> list[tuple[str, str, AclPermissionType]]:
    """(principal, host, permission) of every entry the command names."""
    out = []
    for principals, hosts, perm in ((args.allow_principal, args.allow_host,
                                     AclPermissionType.ALLOW),
                                    (args.deny_principal, args.deny_host,
                                     AclPermissionType.DENY)):
        for principal in principals:
            if ":" not in principal:
                raise CliError(f"Could not parse principal {principal!r} (expected Type:name)")
            for host in hosts or ["*"]:
                out.append((principal, host, perm))
    return out


def operations_for(args: argparse.Namespace, rtype: ResourceType) -> list[AclOperation]:
    if args.producer or args.consumer:
        ops: list[AclOperation] = []
        if args.producer:
            ops += {ResourceType.TOPIC: [AclOperation.WRITE, AclOperation.DESCRIBE,
                                         AclOperation.CREATE],
                    ResourceType.TRANSACTIONAL_ID: [AclOperation.WRITE, AclOperation.DESCRIBE],
                    ResourceType.CLUSTER: [AclOperation.IDEMPOTENT_WRITE]}.get(rtype, [])
        if args.consumer:
            ops += {ResourceType.TOPIC: [AclOperation.READ, AclOperation.DESCRIBE],
                    ResourceType.GROUP: [AclOperation.READ]}.get(rtype, [])
        return list(dict.fromkeys(ops))
    return [parse_operation(o) for o in args.operation] or [AclOperation.ALL]


def pattern_text(rtype: int, name: str, ptype: int) -> str:
    return (f"ResourcePattern(resourceType={ResourceType(rtype).name}, name={name}, "
            f"patternType={PatternType(ptype).name})")


def entry_text(principal: str, host: str, op: int, perm: int) -> str:
    o = AclOperation(op)
    return (f"(principal={principal}, host={host}, operation={_OP_NAMES.get(o, o.name)}, "
            f"permissionType={AclPermissionType(perm).name})")


async def list_acls(client: KafkaClient, flt: AclFilter) -> list[Any]:
    R = describe_acls.REQUEST
    req = R.cls(resource_type_filter=int(flt.resource_type), resource_name_filter=flt.resource_name,
                pattern_type_filter=int(flt.pattern_type), principal_filter=flt.principal,
                host_filter=flt.host, operation=int(flt.operation),
                permission_type=int(flt.permission))
    resp = await client.send_to_any(ApiKey.DESCRIBE_ACLS, req, check=retriable_only)
    if resp.error_code:
        raise failure("Listing ACLs", resp.error_code, resp.error_message)
    return list(resp.resources)


def print_resources(found: list[Any]) -> None:
    for r in found:
        pattern = pattern_text(r.resource_type, r.resource_name, r.pattern_type)
        print(f"Current ACLs for resource `{pattern}`: ")
        for a in r.acls:
            print(f" \t{entry_text(a.principal, a.host, a.operation, a.permission_type)} ")
        print()


async def add(client: KafkaClient, args: argparse.Namespace) -> None:
    ptype = parse_pattern_type(args.resource_pattern_type, for_add=True)
    entries = _entries(args)
    if not entries:
        raise CliError("You must specify one of: --allow-principal, --deny-principal when "
                       "trying to add ACLs.")
    targets = resources(args)
    if not targets:
        raise CliError("You must specify a resource: --topic, --group, --cluster or "
                       "--transactional-id.")
    if args.consumer and not args.group:
        raise CliError("With --consumer you must specify a --group")
    R = create_acls.REQUEST
    for rtype, name in targets:
        acls = [StandardAcl(rtype, name, ptype, principal, host, op, perm)
                for principal, host, perm in entries for op in operations_for(args, rtype)]
        if not acls:
            continue
        print(f"Adding ACLs for resource `{pattern_text(rtype, name, ptype)}`: ")
        for a in acls:
            print(f" \t{entry_text(a.principal, a.host, a.operation, a.permission)} ")
        print()
        req = R.cls(creations=[R.AclCreation(
            resource_type=int(a.resource_type), resource_name=a.resource_name,
            resource_pattern_type=int(a.pattern_type), principal=a.principal, host=a.host,
            operation=int(a.operation), permission_type=int(a.permission)) for a in acls])
        resp = await client.send_to_any(ApiKey.CREATE_ACLS, req, check=retriable_only)
        for r in resp.results:
            if r.error_code:
                raise failure("Adding ACLs", r.error_code, r.error_message)
    await list_targets(client, targets, ptype)


async def list_targets(client: KafkaClient, targets: list[tuple[ResourceType, str]],
                       ptype: PatternType, principals: Sequence[str] = ()) -> None:
    filters = [AclFilter(rtype, name, ptype) for rtype, name in targets] or [AclFilter()]
    if principals:
        filters = [AclFilter(f.resource_type, f.resource_name, f.pattern_type, p)
                   for f in filters for p in principals]
    seen: list[Any] = []
    for f in filters:
        seen.extend(await list_acls(client, f))
    print_resources(seen)


async def remove(client: KafkaClient, args: argparse.Namespace) -> None:
    ptype = parse_pattern_type(args.resource_pattern_type, for_add=False)
    targets = resources(args)
    if not targets:
        raise CliError("You must specify a resource: --topic, --group, --cluster or "
                       "--transactional-id.")
    entries = _entries(args)
    R = delete_acls.REQUEST
    for rtype, name in targets:
        flts = ([AclFilter(rtype, name, ptype, principal, host, op, perm)
                 for principal, host, perm in entries for op in operations_for(args, rtype)]
                if entries else [AclFilter(rtype, name, ptype)])
        what = f"`{pattern_text(rtype, name, ptype)}`"
        if not args.force:
            print(f"Are you sure you want to delete all ACLs for resource filter {what}? (y/n)")
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                continue
        print(f"Removing ACLs for resource filter {what}")
        req = R.cls(filters=[R.DeleteAclsFilter(
            resource_type_filter=int(f.resource_type), resource_name_filter=f.resource_name,
            pattern_type_filter=int(f.pattern_type), principal_filter=f.principal,
            host_filter=f.host, operation=int(f.operation), permission_type=int(f.permission))
            for f in flts])
        resp = await client.send_to_any(ApiKey.DELETE_ACLS, req, check=retriable_only)
        for r in resp.filter_results:
            if r.error_code:
                raise failure("Removing ACLs", r.error_code, r.error_message)


async def _main(args: argparse.Namespace) -> int:
    client = await admin_client(args.bootstrap_server)
    try:
        if args.add:
            await add(client, args)
        elif args.remove:
            await remove(client, args)
        else:
            ptype = parse_pattern_type(args.resource_pattern_type, for_add=False)
            await list_targets(client, resources(args), ptype, args.principal)
    finally:
        await client.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
