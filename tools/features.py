"""``kafka-features (--bootstrap-server H:P | --bootstrap-controller H:P) [--command-config F]
describe | upgrade | downgrade | disable | version-mapping | feature-dependencies``: Kafka's
FeatureCommand.

``describe`` reads the ApiVersions answer of a node (its supported feature ranges, the
cluster's finalized levels and their epoch); ``upgrade`` / ``downgrade`` / ``disable`` send
UpdateFeatures to the active controller (kraft/controller/feature_control.py decides) and
print one line per feature as Kafka does. metadata.version levels print as release names
(``3.9-IV0``); ``--release-version`` sets metadata.version and the features that follow from
it (kraft.version 1 from 3.9-IV0).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import update_features
from storage.meta_properties import METADATA_VERSION_LEVELS
from tools.cli_client import CliError, command_security, run_tool
from tools.controller_client import api_versions_of, send_to_controller

PROG = "kafka-features"
METADATA_VERSION = "metadata.version"
KRAFT_VERSION = "kraft.version"
LATEST_PRODUCTION = "4.0-IV3"
MINIMUM_BOOTSTRAP = "3.3-IV0"
KRAFT_VERSION_1_FROM = 21  # kraft.version 1 needs metadata.version 3.9-IV0 (KIP-853)
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3

LEVEL_NAMES = {level: name for name, level in METADATA_VERSION_LEVELS.items()}


def level_to_string(feature: str, level: int) -> str:
    if feature == METADATA_VERSION:
        return LEVEL_NAMES.get(level, f"UNKNOWN {level}")
    return str(level)


def _supported_versions() -> str:
    return ", ".join(name for name, lvl in sorted(METADATA_VERSION_LEVELS.items(),
                                                  key=lambda kv: kv[1]))


def _metadata_level(text: str) -> int:
    if text not in METADATA_VERSION_LEVELS:
        raise CliError(f"Unknown metadata.version {text}. Supported metadata.version are "
                       f"{_supported_versions()}")
    return METADATA_VERSION_LEVELS[text]


def default_levels(mv_level: int) -> dict[str, int]:
    """The features a release version sets besides metadata.version (Kafka's
    Features.defaultValue): kraft.version 1 from 3.9-IV0."""
    return {KRAFT_VERSION: 1 if mv_level >= KRAFT_VERSION_1_FROM else 0}


def parse_name_and_level(text: str) -> tuple[str, int]:
    name, sep, level_text = text.partition("=")
    if not sep:
        raise CliError(f"Can't parse feature=level string {text}: equals sign not found.")
    level_text = level_text.strip()
    try:
        level = int(level_text)
        if not -(1 << 15) <= level < (1 << 15):
            raise ValueError
    except ValueError:
        raise CliError(f"Can't parse feature=level string {text}: unable to parse "
                       f"{level_text} as a short.") from None
    return name.strip(), level


# -- describe ------------------------------------------------------------------------------------


async def describe(args: argparse.Namespace) -> int:
    resp = await api_versions_of(_bootstrap(args), security=command_security(args.command_config))
    if resp.error_code:
        raise CliError(f"ApiVersions failed: {ErrorCode(resp.error_code).name}")
    finalized = {f.name: f.max_version_level for f in resp.finalized_features or []}
    epoch = resp.finalized_features_epoch
    for f in sorted(resp.supported_features or [], key=lambda f: f.name):
        print(f"Feature: {f.name}\tSupportedMinVersion: {level_to_string(f.name, f.min_version)}"
              f"\tSupportedMaxVersion: {level_to_string(f.name, f.max_version)}"
              f"\tFinalizedVersionLevel: {level_to_string(f.name, finalized.get(f.name, 0))}"
              f"\tEpoch: {epoch if epoch is not None and epoch >= 0 else '-'}")
    return 0


# -- upgrade / downgrade / disable -----------------------------------------------------------------


def updates_of(args: argparse.Namespace, upgrade_type: int) -> dict[str, int]:
    metadata = getattr(args, "metadata", None)
    features = args.feature
    release = getattr(args, "release_version", None)
    if release is not None and (metadata is not None or features):
        raise CliError("Can not specify `release-version` with other feature flags.")
    updates: dict[str, int] = {}
    if release is not None:
        mv = _metadata_level(release)
        updates[METADATA_VERSION] = mv
        for name, level in default_levels(mv).items():
            if upgrade_type != UPGRADE or level > 0:  # never "upgrade" a feature to 0
                updates[name] = level
        return updates
    if metadata is not None:
        print(" `metadata` flag is deprecated and may be removed in a future release.")
        updates[METADATA_VERSION] = _metadata_level(metadata)
    for item in features or []:
        name, level = parse_name_and_level(item)
        if name in updates:
            raise CliError(f"Feature {name} was specified more than once.")
        updates[name] = level
    return updates


async def update(args: argparse.Namespace, op: str, updates: dict[str, int],
                 upgrade_type: int) -> int:
    if not updates:
        raise CliError(f"You must specify at least one feature to {op}")
    R = update_features.REQUEST
    req = R.cls(timeout_ms=60000, validate_only=bool(args.dry_run), feature_updates=[
        R.FeatureUpdateKey(feature=name, max_version_level=level, upgrade_type=upgrade_type)
        for name, level in updates.items()])
    resp = await send_to_controller(_bootstrap(args), ApiKey.UPDATE_FEATURES, req,
                                    security=command_security(args.command_config),
                                    client_id=PROG)
    errors: dict[str, str | None] = {}
    per_feature = {r.feature: r for r in resp.results or []}
    for name in updates:
        if resp.error_code:
            errors[name] = resp.error_message or ErrorCode(resp.error_code).name
        elif name in per_feature and per_feature[name].error_code:
            r = per_feature[name]
            errors[name] = r.error_message or ErrorCode(r.error_code).name
        else:
            errors[name] = None
    failures = 0
    for name in sorted(errors):
        level = updates[name]
        message = errors[name]
        if message is not None:
            helper = "Can not " if args.dry_run else "Could not "
            suffix = f"disable {name}" if op == "disable" else f"{op} {name} to {level}"
            print(f"{helper}{suffix}. {message}")
            failures += 1
        else:
            verb = " can be " if args.dry_run else " was "
            obj = "disabled." if op == "disable" else f"{op}d to {level}."
            print(f"{name}{verb}{obj}")
    if failures:
        raise CliError(f"{failures} out of {len(updates)} operation(s) failed.")
    return 0


# -- offline lookups -------------------------------------------------------------------------------


def version_mapping(args: argparse.Namespace) -> int:
    release = args.release_version or LATEST_PRODUCTION
    if release not in METADATA_VERSION_LEVELS:
        raise CliError(f"Unknown release version '{release}'. Supported versions are: "
                       f"{MINIMUM_BOOTSTRAP} to {LATEST_PRODUCTION}")
    mv = METADATA_VERSION_LEVELS[release]
    print(f"metadata.version={mv} ({release})")
    for name, level in default_levels(mv).items():
        print(f"{name}={level}")
    return 0


def feature_dependencies(args: argparse.Namespace) -> int:
    for item in args.feature:
        name, level = parse_name_and_level(item)
        if name == METADATA_VERSION:
            if level not in LEVEL_NAMES:
                raise CliError(f"Unknown metadata.version {level}")
            print(f"{name}={level} ({LEVEL_NAMES[level]}) has no dependencies.")
        elif name == KRAFT_VERSION:
            if level not in (0, 1):
                raise CliError(f"No feature:{name} with feature level {level}")
            if level == 0:
                print(f"{name}={level} has no dependencies.")
            else:
                print(f"{name}={level} requires:")
                print(f"    {METADATA_VERSION}={KRAFT_VERSION_1_FROM} "
                      f"({LEVEL_NAMES[KRAFT_VERSION_1_FROM]})")
        else:
            raise CliError(f"Unknown feature: {name}")
    return 0


# -- command line ----------------------------------------------------------------------------------


def _bootstrap(args: argparse.Namespace) -> str:
    return str(args.bootstrap_controller or args.bootstrap_server)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="This tool manages feature flags in Kafka.")
    boot = parser.add_mutually_exclusive_group(required=False)
    boot.add_argument("--bootstrap-server", help="A comma-separated list of host:port pairs "
                      "to use for establishing the connection to the Kafka cluster.")
    boot.add_argument("--bootstrap-controller", help="A comma-separated list of host:port "
                      "pairs to use for establishing the connection to the KRaft quorum.")
    parser.add_argument("--command-config",
                        help="Property file containing configs to be passed to Admin Client.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("describe", help="Describes the current active feature flags.")
    for name, helptext in (("upgrade", "Upgrade one or more feature flags."),
                           ("downgrade", "Downgrade one or more feature flags.")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--metadata", help=f"DEPRECATED -- The level to which we should {name} "
                       "the metadata. For example, 3.3-IV3.")
        p.add_argument("--release-version", help=f"The release version to {name} all "
                       "features to. For example, 3.9-IV0 will set metadata.version=21 and "
                       "kraft.version=1.")
        p.add_argument("--feature", action="append", help=f"A feature {name} we should "
                       "perform, in feature=level format. For example: `metadata.version=5`.")
        if name == "downgrade":
            p.add_argument("--unsafe", action="store_true", help="Perform this downgrade even "
                           "if it may irreversibly destroy metadata.")
        p.add_argument("--dry-run", action="store_true",
                       help=f"Validate this {name}, but do not perform it.")
    d = sub.add_parser("disable", help="Disable one or more feature flags. This is the same "
                       "as downgrading the version to zero.")
    d.add_argument("--feature", action="append", help="A feature flag to disable.")
    d.add_argument("--unsafe", action="store_true", help="Disable this feature flag even if it "
                   "may irreversibly destroy metadata.")
    d.add_argument("--dry-run", action="store_true",
                   help="Perform a dry-run of this disable operation.")
    m = sub.add_parser("version-mapping", help="Look up the corresponding features for a "
                       "given metadata version.")
    m.add_argument("--release-version", help=f"The release version to use for the "
                   f"corresponding feature mapping. The minimum is {MINIMUM_BOOTSTRAP}; the "
                   f"default is {LATEST_PRODUCTION}")
    f = sub.add_parser("feature-dependencies", help="Look up dependencies for a given "
                       "feature version.")
    f.add_argument("--feature", action="append", required=True, help="The feature and version "
                   "to look up dependencies for, in feature=version format.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("version-mapping", "feature-dependencies"):
        try:
            return (version_mapping if args.command == "version-mapping"
                    else feature_dependencies)(args)
        except CliError as e:
            print(str(e), file=sys.stderr)
            return 1
    if not (args.bootstrap_server or args.bootstrap_controller):
        parser.error("one of the arguments --bootstrap-server --bootstrap-controller is "
                     "required")

    async def body() -> int:
        try:
            return await command()
        except CliError as e:  # Kafka prints these messages as they are
            print(str(e), file=sys.stderr)
            return 1

    async def command() -> int:
        if args.command == "describe":
            return await describe(args)
        if args.command == "upgrade":
            return await update(args, "upgrade", updates_of(args, UPGRADE), UPGRADE)
        kind = UNSAFE_DOWNGRADE if args.unsafe else SAFE_DOWNGRADE
        if args.command == "disable":
            updates: dict[str, int] = {}
            for name in args.feature or []:
                if name in updates:
                    raise CliError(f"Feature {name} was specified more than once.")
                updates[name] = 0
            return await update(args, "disable", updates, kind)
        return await update(args, "downgrade", updates_of(args, kind), kind)

    return run_tool(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
