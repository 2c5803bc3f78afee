"""Requests the CLI tools send to the active controller, as Kafka's admin client does with
``--bootstrap-controller`` (``bootstrap.controllers``) or ``--bootstrap-server``.

``send_to_controller`` asks the given servers in turn. A broker forwards the request to the
active controller itself; a controller that is not the active one answers NOT_CONTROLLER (or,
for the Raft APIs, NOT_LEADER_OR_FOLLOWER), and the tool goes on to the active controller its
DescribeCluster names (KIP-919). While no server knows an active controller (an election),
the servers are asked again until the timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError, parse_address
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError, UnsupportedVersionError
from broker.protocol.messages import api_versions, describe_cluster
from tools.cli_client import CliError

__all__ = ["api_versions_of", "send_to_controller"]

REDIRECT_CODES = frozenset({ErrorCode.NOT_CONTROLLER, ErrorCode.NOT_LEADER_OR_FOLLOWER})
RETRY_BACKOFF_S = 0.5


def _servers(servers: str | Sequence[str]) -> list[str]:
    out = [s.strip() for s in (servers.split(",") if isinstance(servers, str) else servers)
           if s.strip()]
    if not out:
        raise CliError("at least one bootstrap server is required")
    return out


async def send_to_controller(servers: str | Sequence[str], api_key: int, request: Any, *,
                             security: Any = None, timeout_s: float = 30.0,
                             version: int | None = None, client_id: str = "pykraft-cli",
                             error_of: Callable[[Any], int] = lambda r: r.error_code) -> Any:
    """The response of the active controller (or of a broker that forwarded the request);
    ``CliError`` if none answered within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    targets = _servers(servers)
    while True:
        errors: list[str] = []
        for server in targets:
            target = parse_address(server)
            for _ in range(3):  # the named active controller may have moved on meanwhile
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    resp, active = await _send_once(target, api_key, request, security,
                                                    min(remaining, 30.0), version, client_id,
                                                    error_of)
                except UnsupportedVersionError as e:  # asking again will not help
                    raise CliError(f"{target[0]}:{target[1]}: {e}") from None
                except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
                    errors.append(f"{target[0]}:{target[1]}: {e}")
                    break
                if resp is not None:
                    return resp
                errors.append(f"{target[0]}:{target[1]}: not the active controller")
                if active is None or active == target:
                    break
                target = active
        if time.monotonic() + RETRY_BACKOFF_S >= deadline:
            raise CliError("no active controller answered: " + "; ".join(errors[-3:]))
        await asyncio.sleep(RETRY_BACKOFF_S)


async def _send_once(target: tuple[str, int], api_key: int, request: Any, security: Any,
                     timeout_s: float, version: int | None, client_id: str,
                     error_of: Callable[[Any], int]) -> tuple[Any, tuple[str, int] | None]:
    """(response, None), or (None, the active controller's address if known)."""
    conn = await KafkaConnection.connect(*target, client_id=client_id,
                                         timeout_s=min(timeout_s, 10.0), security=security)
    try:
        resp = await conn.send(api_key, request, version, timeout_s=timeout_s)
        if error_of(resp) not in REDIRECT_CODES:
            return resp, None
        dc = await conn.send(ApiKey.DESCRIBE_CLUSTER, describe_cluster.REQUEST.cls(
            include_cluster_authorized_operations=False, endpoint_type=2),
            timeout_s=timeout_s)
        active = next(((b.host, b.port) for b in dc.brokers
                       if not dc.error_code and b.broker_id == dc.controller_id), None)
        return None, active
    finally:
        await conn.close()


async def api_versions_of(servers: str | Sequence[str], *, security: Any = None,
                          timeout_s: float = 30.0, client_id: str = "pykraft-cli") -> Any:
    """The ApiVersions answer (v4 if offered, with its feature fields) of the first server
    that gives one."""
    errors = []
    for server in _servers(servers):
        try:
            conn = await KafkaConnection.connect(*parse_address(server), client_id=client_id,
                                                 timeout_s=min(timeout_s, 10.0),
                                                 security=security)
        except (KafkaConnectionError, KafkaTimeoutError, OSError) as e:
            errors.append(f"{server}: {e}")
            continue
        try:
            req = api_versions.REQUEST.cls(client_software_name="pykraft",
                                           client_software_version="0.1.0")
            return await conn.send(ApiKey.API_VERSIONS, req, timeout_s=timeout_s)
        except (KafkaConnectionError, KafkaTimeoutError, KafkaError, OSError) as e:
            errors.append(f"{server}: {e}")
        finally:
            await conn.close()
    raise CliError("no server answered ApiVersions: " + "; ".join(errors))
