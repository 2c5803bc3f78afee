"""``kafka-client-quotas``: describe and alter client quotas (the tool KIP-546 describes).

    kafka-client-quotas --bootstrap-server B --describe [--user U | --user-defaults] \\
        [--client-id C | --client-id-defaults] [--non-strict]
    kafka-client-quotas --bootstrap-server B --alter --client-id C \\
        --add producer_byte_rate=1048576,consumer_byte_rate=2097152 --delete request_percentage

Without --user or --client-id, --describe lists every quota entity. Output lines are
kafka-configs' (``tools/quota_cli.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools.cli_client import CliError, admin_client, run_tool
from tools.configs import parse_add_config
from tools.quota_cli import (
    alter_quotas,
    describe_quotas,
    entity_text,
    print_described,
    quota_values,
)

PROG = "kafka-client-quotas"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Describe and alter client quotas.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--command-config", help="accepted for compatibility; not used")
    actions = p.add_mutually_exclusive_group(required=True)
    actions.add_argument("--describe", action="store_true")
    actions.add_argument("--alter", action="store_true")
    user = p.add_mutually_exclusive_group()
    user.add_argument("--user")
    user.add_argument("--user-defaults", action="store_true")
    client = p.add_mutually_exclusive_group()
    client.add_argument("--client-id")
    client.add_argument("--client-id-defaults", action="store_true")
    p.add_argument("--non-strict", action="store_true",
                   help="with --describe: also entities with other entity types")
    p.add_argument("--add", action="append", help="k=v pairs, comma separated")
    p.add_argument("--delete", action="append", help="quota keys, comma separated")
    return p


def _entity(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    entity: list[tuple[str, str | None]] = []
    if args.user is not None or args.user_defaults:
        entity.append(("user", None if args.user_defaults else args.user))
    if args.client_id is not None or args.client_id_defaults:
        entity.append(("client-id", None if args.client_id_defaults else args.client_id))
    return entity


async def _main(args: argparse.Namespace) -> int:
    entity = _entity(args)
    client = await admin_client(args.bootstrap_server)
    try:
        if args.describe:
            print_described(await describe_quotas(client, entity, strict=not args.non_strict))
            return 0
        if not entity:
            raise CliError("--alter needs --user/--user-defaults and/or "
                           "--client-id/--client-id-defaults")
        adds = quota_values(parse_add_config(args.add))
        deletes = [d.strip() for item in args.delete or () for d in item.split(",")
                   if d.strip()]
        if not adds and not deletes:
            raise CliError("--alter needs --add and/or --delete")
        await alter_quotas(client, entity, adds, deletes)
        print(f"Altered client quotas of {entity_text(entity)}.")
        return 0
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
