"""``kafka-metadata-quorum ... add-controller`` and ``remove-controller`` (KIP-853), as Kafka's
MetadataQuorumCommand does them.

``add-controller --command-config controller.properties [--dry-run]``: the new controller's own
``server.properties`` names it: ``node.id`` (a controller per ``process.roles``), its
metadata log dir (``metadata.log.dir``, else the first ``log.dirs``) whose ``meta.properties``
holds the directory id it was formatted with, and the endpoints of its
``controller.listener.names`` (from ``advertised.listeners``, else ``listeners``; no host means
localhost). Sent as AddRaftVoter to the active controller, which adds it once it has caught up.

``remove-controller --controller-id N --controller-directory-id D [--dry-run]``: RemoveRaftVoter.

Both go through ``tools.controller_client.send_to_controller`` (a follower controller sends the
tool to the active one; a broker forwards the request).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from broker.listener_config import parse_listeners
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import add_raft_voter, remove_raft_voter
from storage.errors import MetaPropertiesError
from storage.meta_properties import parse_uuid, read_meta_properties
from storage.properties import PropertiesError, load_properties
from tools.cli_client import CliError, command_security
from tools.controller_client import send_to_controller

__all__ = ["ControllerToAdd", "add_controller", "add_subparsers", "controller_to_add",
           "remove_controller"]

TIMEOUT_MS = 60_000


@dataclass(frozen=True, slots=True)
class ControllerToAdd:
    node_id: int
    directory_id: str  # Kafka's base64 form
    endpoints: tuple[tuple[str, str, int], ...]  # (listener name, host, port)

    def endpoints_text(self) -> str:
        return ", ".join(f"{n}://[{h}]:{p}" if ":" in h else f"{n}://{h}:{p}"
                         for n, h, p in self.endpoints)


def add_subparsers(sub: Any) -> None:
    a = sub.add_parser("add-controller", help="Add a controller to the KRaft controller cluster")
    a.add_argument("--dry-run", action="store_true",
                   help="True if we should print what would be done, but not do it.")
    r = sub.add_parser("remove-controller",
                       help="Remove a controller from the KRaft controller cluster")
    r.add_argument("--controller-id", "-i", type=int, required=True,
                   help="The id of the controller to remove.")
    r.add_argument("--controller-directory-id", "-d", required=True,
                   help="The directory ID of the controller to remove.")
    r.add_argument("--dry-run", action="store_true",
                   help="True if we should print what would be done, but not do it.")


def controller_to_add(path: str) -> ControllerToAdd:
    """What the new controller's properties file says about it (Kafka's messages)."""
    try:
        props = load_properties(path)
    except FileNotFoundError:
        raise CliError(f"Properties file {path} does not exist.") from None
    except (OSError, PropertiesError) as e:
        raise CliError(f"Unable to read {path}: {e}") from None
    if "node.id" not in props:
        raise CliError("node.id not found in configuration file. Is this a valid controller "
                       "configuration file?")
    try:
        node_id = int(props["node.id"])
    except ValueError:
        raise CliError(f"node.id {props['node.id']!r} is not a number.") from None
    if node_id < 0:
        raise CliError("node.id was negative in configuration file. Is this a valid "
                       "controller configuration file?")
    if "controller" not in props.get("process.roles", ""):
        raise CliError("process.roles did not contain 'controller' in configuration file. Is "
                       "this a valid controller configuration file?")
    if props.get("metadata.log.dir"):
        metadata_dir = props["metadata.log.dir"]
    elif props.get("log.dirs") or props.get("log.dir"):
        metadata_dir = (props.get("log.dirs") or props["log.dir"]).strip().split(",")[0]
    else:
        raise CliError("Neither metadata.log.dir nor log.dirs were found. Is this a valid "
                       "controller configuration file?")
    try:
        meta = read_meta_properties(metadata_dir)
    except MetaPropertiesError as e:
        raise CliError(str(e)) from None
    if meta is None:
        raise CliError(f"Unable to read meta.properties from {metadata_dir}")
    if meta.directory_id is None:
        raise CliError(f"No directory id found in {metadata_dir}")
    listeners: dict[str, tuple[str, int]] = {}
    for key in ("listeners", "advertised.listeners"):
        entries = [e.strip() for e in props.get(key, "").split(",") if e.strip()]
        try:
            for e in parse_listeners(key, entries, None, require_distinct_ports=False):
                listeners[e.name] = (e.host, e.port)
        except ValueError as e:
            raise CliError(str(e)) from None
    if "controller.listener.names" not in props:
        raise CliError("controller.listener.names was not found. Is this a valid controller "
                       "configuration file?")
    endpoints = []
    for name in props["controller.listener.names"].split(","):
        name = name.strip().upper()
        if name not in listeners:
            raise CliError(f"Cannot find information about controller listener name: {name}")
        host, port = listeners[name]
        endpoints.append((name, host or "localhost", port))
    return ControllerToAdd(node_id, meta.directory_id, tuple(endpoints))


async def add_controller(bootstrap: str, config_path: str | None, dry_run: bool) -> int:
    if config_path is None:
        raise CliError("You must supply the configuration file of the controller you are "
                       "adding when using add-controller.")
    c = controller_to_add(config_path)
    if not dry_run:
        R = add_raft_voter.REQUEST
        req = R.cls(cluster_id=None, timeout_ms=TIMEOUT_MS, voter_id=c.node_id,
                    voter_directory_id=uuid.UUID(bytes=parse_uuid(c.directory_id)),
                    listeners=[R.Listener(name=n, host=h, port=p) for n, h, p in c.endpoints])
        resp = await send_to_controller(bootstrap, ApiKey.ADD_RAFT_VOTER, req,
                                        security=command_security(config_path),
                                        timeout_s=TIMEOUT_MS / 1000 + 10,
                                        client_id="kafka-metadata-quorum")
        _check(resp)
    print(f"{'DRY RUN of adding' if dry_run else 'Added'} controller {c.node_id} with "
          f"directory id {c.directory_id} and endpoints: {c.endpoints_text()}")
    return 0


async def remove_controller(bootstrap: str, config_path: str | None, controller_id: int,
                            directory_id: str, dry_run: bool) -> int:
    if controller_id < 0:
        raise CliError(f"Invalid negative --controller-id: {controller_id}")
    try:
        raw = parse_uuid(directory_id)
    except ValueError as e:
        raise CliError(f"Failed to parse --controller-directory-id: {e}") from None
    if not dry_run:
        R = remove_raft_voter.REQUEST
        req = R.cls(cluster_id=None, voter_id=controller_id,
                    voter_directory_id=uuid.UUID(bytes=raw))
        resp = await send_to_controller(bootstrap, ApiKey.REMOVE_RAFT_VOTER, req,
                                        security=command_security(config_path),
                                        client_id="kafka-metadata-quorum")
        _check(resp)
    # Kafka's format string ("%s KRaft controller ..." after a prefix ending in a space).
    print(f"{'DRY RUN of removing ' if dry_run else 'Removed '} KRaft controller "
          f"{controller_id} with directory id {directory_id}")
    return 0


def _check(resp: Any) -> None:
    if resp.error_code:
        try:
            name = ErrorCode(resp.error_code).name
        except ValueError:
            name = f"UNKNOWN_ERROR_{resp.error_code}"
        raise CliError(f"{name}: {resp.error_message}" if resp.error_message else name)
