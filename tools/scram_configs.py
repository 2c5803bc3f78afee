"""``kafka-configs --entity-type users``: SCRAM credentials (Kafka's ConfigCommand over
AlterUserScramCredentials and DescribeUserScramCredentials, KIP-554).

    kafka-configs --bootstrap-server B --alter --entity-type users --entity-name alice \\
        --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'
    kafka-configs --bootstrap-server B --alter --entity-type users --entity-name alice \\
        --delete-config SCRAM-SHA-512
    kafka-configs --bootstrap-server B --describe --entity-type users [--entity-name alice]

The salted password is computed here (PBKDF2 over a random salt) and only it is sent, as Kafka's
admin client does.
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import error_for_code
from broker.protocol.messages import alter_user_scram_credentials as alter_scram
from broker.protocol.messages import describe_user_scram_credentials as describe_scram
from broker.security.scram import MECHANISMS
from broker.security.scram_config import ScramSpecError, parse_scram_spec, split_scram_configs
from kraft.scram_image import ScramMechanism
from tools.cli_client import CliError

__all__ = ["run_users"]


def _fail(user: str, code: int, message: str | None) -> CliError:
    exc = error_for_code(code)
    return CliError(f"{exc.__name__} for user {user}: {message or exc.message}")


async def _describe(client: KafkaClient, name: str | None) -> int:
    R = describe_scram.REQUEST
    users = None if name is None else [R.UserName(name=name)]
    resp = await client.send_to_any(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, R.cls(users=users))
    if resp.error_code:
        raise _fail(name or "*", resp.error_code, resp.error_message)
    for r in resp.results:
        if r.error_code:
            if name is not None:
                raise _fail(r.user, r.error_code, r.error_message)
            continue
        creds = ", ".join(f"{ScramMechanism(c.mechanism).mechanism_name}=iterations="
                          f"{c.iterations}" for c in r.credential_infos)
        print(f"SCRAM credential configs for user-principal '{r.user}' are {creds}")
    return 0


async def run_users(args: argparse.Namespace, client: KafkaClient, name: str | None) -> int:
    """The users entity: describe, or alter SCRAM credentials."""
    if args.describe:
        return await _describe(client, name)
    if not name:
        raise CliError("--entity-name is required to alter a user's SCRAM credentials")
    R = alter_scram.REQUEST
    upsertions: list[Any] = []
    for item in args.add_config or ():
        for text in split_scram_configs(item):
            try:
                spec = parse_scram_spec(text)
            except (ScramSpecError, ValueError) as e:
                raise CliError(f"--add-config {text}: {e}") from None
            upsertions.append(R.ScramCredentialUpsertion(
                name=name, mechanism=spec.mechanism, iterations=spec.credential.iterations,
                salt=spec.credential.salt, salted_password=spec.salted_password))
    deletions = []
    for item in args.delete_config or ():
        for mech in filter(None, (m.strip() for m in item.split(","))):
            if mech.upper() not in MECHANISMS:
                raise CliError(f"--delete-config {mech}: not SCRAM-SHA-256 or SCRAM-SHA-512")
            deletions.append(R.ScramCredentialDeletion(
                name=name, mechanism=int(MECHANISMS[mech.upper()][0])))
    if not upsertions and not deletions:
        raise CliError("--alter needs --add-config and/or --delete-config")
    resp = await client.send_to_any(ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
                                    R.cls(deletions=deletions, upsertions=upsertions))
    for r in resp.results:
        if r.error_code:
            raise _fail(r.user, r.error_code, r.error_message)
    print(f"Completed updating config for user {name}.")
    return 0
