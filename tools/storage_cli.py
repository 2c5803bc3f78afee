"""``kafka-storage``: ``random-uuid``, ``format`` and ``info``, as Kafka's ``StorageTool``.

``format`` writes ``meta.properties`` (version 1, cluster.id, node.id, a fresh directory.id) into
every directory of ``log.dirs`` and into ``metadata.log.dir``, and the bootstrap metadata
(``bootstrap.properties``: metadata.version, kraft.version, initial voters) into the metadata log
directory. Like Kafka it writes nothing when any directory is already formatted, unless
``--ignore-formatted``; and a directory formatted for another cluster or node is always refused.

Exit codes: 0 ok, 1 error (message on stderr, prefixed ``Error:``); argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from broker.config import KafkaConfig
from broker.security.scram_config import ScramSpecError, parse_scram_spec
from kraft.metadata_records import (
    MetadataRecordType,
    UserScramCredentialRecord,
    encode_metadata_record,
)
from storage.errors import ConfigError, MetaPropertiesError
from storage.meta_properties import (
    BootstrapMetadata,
    DynamicVoter,
    MetaProperties,
    meta_properties_path,
    parse_dynamic_voters,
    parse_uuid,
    random_directory_id,
    random_uuid,
    read_meta_properties,
    write_bootstrap,
    write_meta_properties,
)
from storage.properties import PropertiesError

PROG = "kafka-storage"
# The newest metadata.version of the Kafka release whose behaviour we follow.
DEFAULT_RELEASE_VERSION = "4.0-IV3"
MIN_RELEASE_VERSION = (3, 3)
_RELEASE_RE = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?(?:-IV(\d+))?")


class CommandError(Exception):
    """A user-facing failure: printed to stderr, exit code 1."""


def _load_config(path: str) -> KafkaConfig:
    try:
        return KafkaConfig.load(path)
    except FileNotFoundError:
        raise CommandError(f"Config file {path} not found") from None
    except (OSError, PropertiesError) as e:
        raise CommandError(f"Cannot read config file {path}: {e}") from None
    except ConfigError as e:
        raise CommandError(str(e)) from None


def config_to_log_directories(config: KafkaConfig) -> list[str]:
    """log.dirs plus metadata.log.dir, sorted and distinct (Kafka uses a TreeSet)."""
    return sorted({*config.log_dirs, config.metadata_log_dir})


# ---------------------------------------------------------------------------------------------
# random-uuid
# ---------------------------------------------------------------------------------------------


def cmd_random_uuid(_args: argparse.Namespace) -> int:
    print(random_uuid())
    return 0


# ---------------------------------------------------------------------------------------------
# format
# ---------------------------------------------------------------------------------------------


def _check_release_version(text: str) -> str:
    m = _RELEASE_RE.fullmatch(text)
    if m is None:
        raise CommandError(
            f"Unknown release version '{text}'. Expected a version like {DEFAULT_RELEASE_VERSION}"
        )
    if (int(m.group(1)), int(m.group(2))) < MIN_RELEASE_VERSION:
        raise CommandError(
            f"Release version {text} is too old: KRaft bootstrap requires at least "
            f"{MIN_RELEASE_VERSION[0]}.{MIN_RELEASE_VERSION[1]}"
        )
    return text


def _initial_voters(args: argparse.Namespace, config: KafkaConfig) -> list[DynamicVoter] | None:
    """Apply Kafka's rules for --standalone / --initial-controllers / --no-initial-controllers."""
    static_quorum = bool(config.controller_quorum_voters)
    if static_quorum and (args.standalone or args.initial_controllers is not None):
        raise CommandError(
            "You cannot use --standalone or --initial-controllers when controller.quorum.voters "
            "is set (a static quorum). To use a dynamic quorum (KIP-853), remove "
            "controller.quorum.voters and set controller.quorum.bootstrap.servers instead."
        )
    if args.standalone:
        if not config.is_controller:
            raise CommandError("You can only use --standalone on a controller.")
        listeners = config.effective_advertised_controller_listeners
        if not listeners:
            raise CommandError("No controller listeners found.")
        host = listeners[0].host or "localhost"
        return [DynamicVoter(config.node_id, host, listeners[0].port, random_directory_id())]
    if args.initial_controllers is not None:
        try:
            return parse_dynamic_voters(args.initial_controllers)
        except ValueError as e:
            raise CommandError(f"Invalid --initial-controllers: {e}") from None
    if not args.no_initial_controllers and config.is_controller and not static_quorum:
        raise CommandError(
            "Because controller.quorum.voters is not set on this controller, you must specify "
            "one of the following: --standalone, --initial-controllers, or "
            "--no-initial-controllers."
        )
    return None


def _scram_records(specs: list[str]) -> tuple[str, ...]:
    """``--add-scram`` values as encoded UserScramCredentialRecords (hex), as Kafka's format
    puts them in the bootstrap metadata."""
    out = []
    for text in specs:
        try:
            spec = parse_scram_spec(text)
        except (ScramSpecError, ValueError) as e:
            raise CommandError(f"--add-scram {text}: {e}") from None
        if not spec.name:
            raise CommandError(f"--add-scram {text}: you must supply 'name' to add-scram")
        c = spec.credential
        record = UserScramCredentialRecord(
            name=spec.name, mechanism=spec.mechanism, salt=c.salt, stored_key=c.stored_key,
            server_key=c.server_key, iterations=c.iterations)
        out.append(encode_metadata_record(
            MetadataRecordType.USER_SCRAM_CREDENTIAL_RECORD, 0, record).hex())
    return tuple(out)


def cmd_format(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    cluster_id = args.cluster_id
    try:
        parse_uuid(cluster_id)
    except ValueError as e:
        raise CommandError(
            f"Cluster ID string {cluster_id} does not appear to be a valid UUID: {e}"
        ) from None
    release_version = _check_release_version(args.release_version or DEFAULT_RELEASE_VERSION)
    voters = _initial_voters(args, config)
    dynamic = voters is not None or args.no_initial_controllers
    node_id = config.node_id
    metadata_dir = config.metadata_log_dir
    directories = config_to_log_directories(config)
    scram_records = _scram_records(args.add_scram or [])

    # Load what is there, then verify it against this cluster and node (Kafka's
    # MetaPropertiesEnsemble.verify with the expected cluster id): a directory of another
    # cluster or node is refused even with --ignore-formatted.
    formatted: dict[str, MetaProperties] = {}
    empty: list[str] = []
    for directory in directories:
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise CommandError(f"{directory} is not a directory")
        try:
            meta = read_meta_properties(directory)
        except MetaPropertiesError as e:
            raise CommandError(str(e)) from None
        if meta is None:
            empty.append(directory)
        else:
            formatted[directory] = meta
    for directory, meta in formatted.items():
        path = meta_properties_path(directory)
        if meta.cluster_id != cluster_id:
            raise CommandError(
                f"Invalid cluster.id in: {path}. Expected {cluster_id}, but read {meta.cluster_id}"
            )
        if meta.node_id != node_id:
            raise CommandError(
                f"Stored node id {meta.node_id} in {path} doesn't match the configured node.id "
                f"{node_id}. If you intend to create a new node, you should remove all data in "
                "your data directories."
            )
    if formatted and not args.ignore_formatted:
        first = next(iter(formatted))
        raise CommandError(
            f"Log directory {first} is already formatted. Use --ignore-formatted to ignore this "
            "directory and format the others."
        )
    if not empty:
        print("All of the log directories are already formatted.")
        return 0

    used_ids = {m.directory_id for m in formatted.values() if m.directory_id}
    my_voter = next((v for v in voters or [] if v.node_id == node_id), None)
    for directory in empty:
        if directory == metadata_dir:
            if not dynamic:
                kind = "metadata directory"
            elif my_voter is not None:
                kind = "dynamic metadata voter directory"
            else:
                kind = "dynamic metadata directory"
        else:
            kind = "data directory"
        if directory == metadata_dir and my_voter is not None:
            directory_id = my_voter.directory_id
        else:
            directory_id = random_directory_id()
            while directory_id in used_ids:
                directory_id = random_directory_id()
        used_ids.add(directory_id)
        print(f"Formatting {kind} {directory} with metadata.version {release_version}.")
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            if directory == metadata_dir:
                # Bootstrap first: a directory counts as formatted once meta.properties exists.
                write_bootstrap(
                    directory,
                    BootstrapMetadata(
                        cluster_id=cluster_id,
                        metadata_version=release_version,
                        kraft_version=1 if dynamic else 0,
                        initial_controllers=tuple(voters) if voters is not None else None,
                        records=scram_records,
                    ),
                )
                if voters is not None:
                    _write_bootstrap_checkpoint(directory, voters, config)
            write_meta_properties(
                directory, MetaProperties(cluster_id, node_id, directory_id=directory_id)
            )
        except OSError as e:
            raise CommandError(f"Error while writing meta.properties file {directory}: {e}") from e
    return 0


def _write_bootstrap_checkpoint(directory: str, voters: list[DynamicVoter],
                                config: KafkaConfig) -> None:
    """Kafka's bootstrap checkpoint of a dynamic quorum (KIP-853):
    ``__cluster_metadata-0/00000000000000000000-0000000000.checkpoint`` holding the
    KRaftVersionRecord (1) and the VotersRecord of the initial controllers; a node starting on
    this log takes its voter set from it, and the first leader appends both records to the
    log (kraft/raft_membership.py)."""
    import time
    import uuid

    from broker.controller.quorum_state_file import METADATA_PARTITION_DIR
    from broker.controller.snapshot_files import write_snapshot
    from kraft.messages import SnapshotId
    from kraft.voters import (
        KRAFT_VERSION_TYPE,
        VOTERS_TYPE,
        Endpoint,
        VoterNode,
        VoterSet,
        encode_kraft_version,
        encode_voters,
    )
    from storage.meta_properties import parse_uuid

    listener = (config.controller_listener_names or ["CONTROLLER"])[0]
    voter_set = VoterSet.of([
        VoterNode(v.node_id, uuid.UUID(bytes=parse_uuid(v.directory_id)),
                  (Endpoint(listener, v.host, v.port),)) for v in voters])
    partition = Path(directory) / METADATA_PARTITION_DIR
    partition.mkdir(parents=True, exist_ok=True)
    write_snapshot(partition, SnapshotId(0, 0), [],
                   last_contained_log_timestamp_ms=int(time.time() * 1000),
                   control_records=[(KRAFT_VERSION_TYPE, encode_kraft_version(1)),
                                    (VOTERS_TYPE, encode_voters(voter_set))])


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------


def _props_text(meta: MetaProperties) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(meta.to_properties().items())) + "}"


def cmd_info(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    directories = config_to_log_directories(config)
    problems: list[str] = []
    found: list[str] = []
    details: list[str] = []
    first: MetaProperties | None = None
    for directory in directories:
        if not os.path.isdir(directory):
            state = "does not exist" if not os.path.exists(directory) else "is not a directory"
            problems.append(f"{directory} {state}")
            details.append(f"  {directory}: {state}")
            continue
        found.append(directory)
        try:
            meta = read_meta_properties(directory)
        except MetaPropertiesError as e:
            problems.append(f"Error loading {meta_properties_path(directory)}: {e}")
            details.append(f"  {directory}: unreadable meta.properties")
            continue
        if meta is None:
            problems.append(f"{directory} is not formatted.")
            details.append(f"  {directory}: not formatted")
            continue
        details.append(f"  {directory}: formatted {_props_text(meta)}")
        if first is None:
            first = meta
        elif first.cluster_id != meta.cluster_id:
            problems.append("Mismatched cluster IDs between storage directories.")
        elif first.node_id != meta.node_id:
            problems.append("Mismatched node IDs between storage directories.")
    if first is not None and first.node_id != config.node_id:
        problems.append(
            f"The stored node id {first.node_id} does not match the configured node.id "
            f"{config.node_id}."
        )

    if found:
        print("Found log directory:" if len(found) == 1 else "Found log directories:")
        for directory in found:
            print(f"  {directory}")
        print()
    if first is not None:
        print(f"Found metadata: {_props_text(first)}")
        print()
    print("Directories:")
    for line in details:
        print(line)
    print()
    if problems:
        print("Found problem:" if len(problems) == 1 else "Found problems:")
        for problem in problems:
            print(f"  {problem}")
        print()
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The Kafka storage tool.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="Get information about the log directories on this node.")
    info.add_argument("--config", "-c", required=True, help="The server configuration file.")
    info.set_defaults(func=cmd_info)

    fmt = sub.add_parser("format", help="Format the log directories on this node.")
    fmt.add_argument("--config", "-c", required=True, help="The server configuration file.")
    fmt.add_argument("--cluster-id", "-t", required=True, help="The cluster ID to use.")
    fmt.add_argument(
        "--ignore-formatted", "-g", action="store_true",
        help="Skip already formatted directories instead of failing.",
    )
    fmt.add_argument(
        "--release-version", "-r",
        help=f"metadata.version to bootstrap with (default {DEFAULT_RELEASE_VERSION}).",
    )
    fmt.add_argument(
        "--add-scram", "-S", action="append", metavar="SCRAM",
        help="A SCRAM credential for the bootstrap metadata, e.g. "
             "'SCRAM-SHA-256=[name=alice,password=alice-secret]' (repeatable).",
    )
    quorum = fmt.add_mutually_exclusive_group()
    quorum.add_argument(
        "--standalone", "-s", action="store_true",
        help="Initialize a controller as a single-node dynamic quorum.",
    )
    quorum.add_argument(
        "--no-initial-controllers", "-N", action="store_true",
        help="Initialize a server without a dynamic quorum topology.",
    )
    quorum.add_argument(
        "--initial-controllers", "-I", metavar="LIST",
        help="Initial dynamic quorum: comma-separated id@host:port:directory-id.",
    )
    fmt.set_defaults(func=cmd_format)

    rnd = sub.add_parser("random-uuid", help="Print a random UUID.")
    rnd.set_defaults(func=cmd_random_uuid)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CommandError as e:
        sys.stdout.flush()
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
