"""``meta.properties`` (KRaft, version 1), Kafka's base64 UUIDs and the initial voter set.

Every log directory of a formatted node holds a ``meta.properties`` written by
``kafka-storage format``::

    #
    #Tue Jan 02 12:34:56 UTC 2024
    cluster.id=MkU3OEVBNTcwNTJENDM2Qg
    directory.id=f2D9cXJ1T8Wb0lAQmiR3hQ
    node.id=1
    version=1

At start-up :func:`verify_log_dirs` checks that every log directory and the metadata log directory
is formatted, that they all carry the same ``cluster.id`` and that ``node.id`` is the configured
one (Kafka's ``MetaPropertiesEnsemble.verify``).

Kafka writes the bootstrap metadata (metadata.version, kraft.version and the initial KIP-853 voter
set from ``--standalone`` / ``--initial-controllers``) into a bootstrap snapshot of
``__cluster_metadata``. We keep it in ``<metadata.log.dir>/bootstrap.properties`` (see
:class:`BootstrapMetadata`); the Raft engine reads it with :func:`read_bootstrap`.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from storage.errors import MetaPropertiesError
from storage.fileutil import atomic_write
from storage.properties import PropertiesError, dump_properties, load_properties

__all__ = [
    "BOOTSTRAP_FILE",
    "METADATA_TOPIC_ID",
    "META_PROPERTIES_FILE",
    "ZERO_UUID",
    "BootstrapMetadata",
    "DynamicVoter",
    "MetaProperties",
    "format_uuid",
    "is_reserved_directory_id",
    "meta_properties_path",
    "parse_dynamic_voters",
    "parse_uuid",
    "random_directory_id",
    "random_uuid",
    "read_bootstrap",
    "read_meta_properties",
    "verify_log_dirs",
    "write_bootstrap",
    "write_meta_properties",
]

META_PROPERTIES_FILE = "meta.properties"
BOOTSTRAP_FILE = "bootstrap.properties"
META_PROPERTIES_VERSION = 1

VERSION_PROP = "version"
CLUSTER_ID_PROP = "cluster.id"
NODE_ID_PROP = "node.id"
DIRECTORY_ID_PROP = "directory.id"

# Kafka's Uuid.ZERO_UUID and Uuid.METADATA_TOPIC_ID (= ONE_UUID): never handed out.
ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"
METADATA_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAQ"
_RESERVED_UUIDS = frozenset({ZERO_UUID, METADATA_TOPIC_ID})


# ---------------------------------------------------------------------------------------------
# UUIDs (org.apache.kafka.common.Uuid)
# ---------------------------------------------------------------------------------------------


def format_uuid(raw: bytes) -> str:
    """16 bytes -> Kafka's string form: URL-safe base64 without padding (22 characters)."""
    if len(raw) != 16:
        raise ValueError(f"a UUID has 16 bytes, got {len(raw)}")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_uuid(text: str) -> bytes:
    """Kafka's ``Uuid.fromString``: URL-safe base64 (padding optional) of exactly 16 bytes.

    Raises ``ValueError`` with a message like Kafka's on anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"a UUID string is required, got {type(text).__name__}")
    if len(text) > 24:
        raise ValueError(
            f"Input string with prefix `{text[:24]}` is too long to be decoded as a base64 UUID"
        )
    body = text[:-2] if len(text) == 24 and text.endswith("==") else text
    if any(c not in _B64URL_ALPHABET for c in body):
        raise ValueError(f"Input string `{text}` is not URL-safe base64")
    if len(body) % 4 == 1:
        raise ValueError(f"Input string `{text}` has an impossible base64 length")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"Input string `{text}` is not valid base64: {e}") from None
    if len(raw) != 16:
        raise ValueError(
            f"Input string `{text}` decoded as {len(raw)} bytes, which is not equal to the "
            "expected 16 bytes of a base64-encoded UUID"
        )
    return raw


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def random_uuid() -> str:
    """Kafka's ``Uuid.randomUuid()``: a random (version 4) UUID in Kafka's string form.

    Never one of the reserved ids (all zeros, ``METADATA_TOPIC_ID``) and, as Kafka does, never one
    whose string starts with ``-`` (it would look like a command-line flag).
    """
    while True:
        text = format_uuid(uuid.uuid4().bytes)
        if text not in _RESERVED_UUIDS and not text.startswith("-"):
            return text


def is_reserved_directory_id(text: str) -> bool:
    """Kafka's ``DirectoryId.reserved``: the 100 lowest UUIDs (UNASSIGNED, LOST, MIGRATING...)."""
    raw = parse_uuid(text)
    return raw[:8] == bytes(8) and int.from_bytes(raw[8:], "big") < 100


def random_directory_id() -> str:
    """A random directory id (never a reserved one)."""
    while True:
        text = random_uuid()
        if not is_reserved_directory_id(text):
            return text


# ---------------------------------------------------------------------------------------------
# meta.properties
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaProperties:
    """The contents of one ``meta.properties`` (version 1, KRaft)."""

    cluster_id: str
    node_id: int
    directory_id: str | None = None
    version: int = META_PROPERTIES_VERSION

    def to_properties(self) -> dict[str, str]:
        props = {
            VERSION_PROP: str(self.version),
            CLUSTER_ID_PROP: self.cluster_id,
            NODE_ID_PROP: str(self.node_id),
        }
        if self.directory_id is not None:
            props[DIRECTORY_ID_PROP] = self.directory_id
        return props

    @classmethod
    def from_properties(
        cls, props: Mapping[str, str], source: str = "meta.properties"
    ) -> MetaProperties:
        """Validate and build; ``source`` names the file in error messages."""
        version_text = props.get(VERSION_PROP, "0")
        if version_text != "1":
            if version_text == "0":
                raise MetaPropertiesError(
                    f"{source} has version 0 (ZooKeeper mode), which is not supported; "
                    "only KRaft version 1 is."
                )
            raise MetaPropertiesError(
                f"Unknown meta.properties version number {version_text!r} in {source}"
            )
        cluster_id = props.get(CLUSTER_ID_PROP)
        if cluster_id is None:
            raise MetaPropertiesError(f"cluster.id was not specified in the v1 file: {source}")
        node_text = props.get(NODE_ID_PROP)
        if node_text is None:
            raise MetaPropertiesError(f"node.id was not specified in {source}")
        node_id = _parse_java_int(node_text)
        if node_id is None:
            raise MetaPropertiesError(f"Unable to read node.id as a base-10 number in {source}")
        directory_id = props.get(DIRECTORY_ID_PROP)
        if directory_id is not None:
            try:
                parse_uuid(directory_id)
            except ValueError as e:
                raise MetaPropertiesError(
                    f"Unable to read directory.id as a Uuid in {source}: {e}"
                ) from None
            if is_reserved_directory_id(directory_id):
                raise MetaPropertiesError(
                    f"Invalid reserved directory ID {directory_id} found in {source}"
                )
        return cls(cluster_id=cluster_id, node_id=node_id, directory_id=directory_id)


def _parse_java_int(text: str) -> int | None:
    """``Integer.parseInt``: optional sign, ASCII digits, 32-bit range; else None."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def meta_properties_path(log_dir: str | os.PathLike[str]) -> Path:
    return Path(log_dir) / META_PROPERTIES_FILE


def read_meta_properties(log_dir: str | os.PathLike[str]) -> MetaProperties | None:
    """The ``meta.properties`` of ``log_dir``, or None if the directory is not formatted.

    Raises :class:`MetaPropertiesError` if the file exists but is unreadable or invalid.
    """
    path = meta_properties_path(log_dir)
    try:
        props = load_properties(path)
    except FileNotFoundError:
        return None
    except (OSError, PropertiesError) as e:
        raise MetaPropertiesError(f"Unable to read {path}: {e}") from e
    return MetaProperties.from_properties(props, str(path))


def write_meta_properties(log_dir: str | os.PathLike[str], meta: MetaProperties) -> None:
    """Write ``meta.properties`` into ``log_dir`` atomically and durably (creating the dir)."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    text = dump_properties(meta.to_properties(), "", date=True)
    atomic_write(meta_properties_path(log_dir), text.encode("ascii"))


def verify_log_dirs(
    log_dirs: Iterable[str],
    metadata_log_dir: str,
    node_id: int,
    cluster_id: str | None = None,
    failed: dict[str, str] | None = None,
) -> dict[str, MetaProperties]:
    """The start-up check: every directory formatted, for one cluster, for this node.

    Checks ``log_dirs`` and ``metadata_log_dir`` (duplicates removed, in order). Every one must
    hold a valid ``meta.properties``; all must carry the same ``cluster.id`` (``cluster_id`` if
    given); ``node.id`` must equal ``node_id``; directory ids must be distinct. Returns
    ``{dir: MetaProperties}``; raises :class:`MetaPropertiesError` naming the directory.

    With ``failed`` (a dict to fill), a log dir other than the metadata log dir whose
    ``meta.properties`` cannot be read for an I/O error is recorded there (dir -> reason) and
    skipped, as Kafka's broker starts with such a dir offline; the metadata log dir, or every
    dir, failing still raises.
    """
    log_dirs = list(log_dirs)
    dirs = list(dict.fromkeys([*log_dirs, metadata_log_dir]))
    found: dict[str, MetaProperties] = {}
    seen_directory_ids: dict[str, str] = {}
    expected_cluster = cluster_id
    expected_cluster_source = "the expected cluster id" if cluster_id is not None else ""
    for log_dir in dirs:
        path = meta_properties_path(log_dir)
        try:
            meta = read_meta_properties(log_dir)
        except MetaPropertiesError as e:
            io_error = isinstance(e.__cause__, OSError)
            if failed is None or not io_error or log_dir == metadata_log_dir:
                raise
            failed[log_dir] = str(e)
            continue
        if meta is None:
            raise MetaPropertiesError(
                f"No meta.properties found in {log_dir} (have you run kafka-storage to format "
                "the directory?)"
            )
        if expected_cluster is None:
            expected_cluster = meta.cluster_id
            expected_cluster_source = str(path)
        elif meta.cluster_id != expected_cluster:
            raise MetaPropertiesError(
                f"Invalid cluster.id in: {path}. Expected {expected_cluster} "
                f"(from {expected_cluster_source}), but read {meta.cluster_id}"
            )
        if meta.node_id != node_id:
            raise MetaPropertiesError(
                f"Stored node id {meta.node_id} in {path} doesn't match the configured node.id "
                f"{node_id}. If you moved your data, make sure your configured node id matches. "
                "If you intend to create a new node, you should remove all data in your data "
                "directories."
            )
        if meta.directory_id is not None:
            previous = seen_directory_ids.get(meta.directory_id)
            if previous is not None:
                raise MetaPropertiesError(
                    f"Duplicate directory ID {meta.directory_id} found. It was the ID of "
                    f"{previous}, but also of {log_dir}"
                )
            seen_directory_ids[meta.directory_id] = log_dir
        found[log_dir] = meta
    if failed and all(d in failed for d in log_dirs):
        raise MetaPropertiesError(f"Every log dir failed: {failed}")
    return found


# ---------------------------------------------------------------------------------------------
# Initial voters (KIP-853 dynamic quorum)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DynamicVoter:
    """One entry of ``--initial-controllers``: ``id@host:port:directory-id``."""

    node_id: int
    host: str
    port: int
    directory_id: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}:{self.directory_id}"


def _parse_dynamic_voter(text: str) -> DynamicVoter:
    """Kafka's ``DynamicVoter.parse`` (same checks, same messages)."""
    text = text.strip()
    at = text.find("@")
    if at < 0:
        raise ValueError("No @ found in dynamic voter string.")
    if at == 0:
        raise ValueError("Invalid @ at beginning of dynamic voter string.")
    node_id = _parse_java_int(text[:at])
    if node_id is None:
        raise ValueError("Failed to parse node id in dynamic voter string.")
    if node_id < 0:
        raise ValueError(f"Invalid negative node id {node_id} in dynamic voter string.")
    rest = text[at + 1 :]
    if not rest:
        raise ValueError("No hostname found after node id.")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError("Hostname began with left bracket, but no right bracket was found.")
        host = rest[1:end]
        rest = rest[end + 1 :]
    else:
        colon = rest.find(":")
        if colon < 0:
            raise ValueError("No colon following hostname could be found.")
        host = rest[:colon]
        rest = rest[colon:]
    if not host:
        raise ValueError("Empty hostname in dynamic voter string.")
    if not rest.startswith(":"):
        raise ValueError("Port section must start with a colon.")
    rest = rest[1:]
    colon = rest.find(":")
    if colon < 0:
        raise ValueError("No colon following port could be found.")
    port = _parse_java_int(rest[:colon])
    if port is None:
        raise ValueError("Failed to parse port in dynamic voter string.")
    if port < 0 or port > 65535:
        raise ValueError(f"Invalid port {port} in dynamic voter string.")
    directory_id = rest[colon + 1 :]
    try:
        parse_uuid(directory_id)
    except ValueError as e:
        raise ValueError(f"Failed to parse directory ID in dynamic voter string: {e}") from None
    if is_reserved_directory_id(directory_id):
        raise ValueError(f"Reserved directory ID {directory_id} in dynamic voter string.")
    return DynamicVoter(node_id, host, port, directory_id)


def parse_dynamic_voters(text: str) -> list[DynamicVoter]:
    """Kafka's ``DynamicVoters.parse``: comma-separated voters, node ids distinct."""
    voters: dict[int, DynamicVoter] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        voter = _parse_dynamic_voter(entry)
        if voter.node_id in voters:
            raise ValueError(f"Node id {voter.node_id} was specified more than once.")
        voters[voter.node_id] = voter
    if not voters:
        raise ValueError("No voters given.")
    return list(voters.values())


# Kafka's MetadataVersion feature levels for the KRaft-capable releases (3.3-IV0 .. 4.0-IV3).
METADATA_VERSION_LEVELS: dict[str, int] = {
    "3.3-IV0": 4, "3.3-IV1": 5, "3.3-IV2": 6, "3.3-IV3": 7, "3.4-IV0": 8, "3.5-IV0": 9,
    "3.5-IV1": 10, "3.5-IV2": 11, "3.6-IV0": 12, "3.6-IV1": 13, "3.6-IV2": 14, "3.7-IV0": 15,
    "3.7-IV1": 16, "3.7-IV2": 17, "3.7-IV3": 18, "3.7-IV4": 19, "3.8-IV0": 20, "3.9-IV0": 21,
    "4.0-IV0": 22, "4.0-IV1": 23, "4.0-IV2": 24, "4.0-IV3": 25,
}


def metadata_version_level(release_version: str) -> int:
    """The feature level of ``3.9-IV0``, ``3.9`` or ``3.9.1`` (a release without ``-IV`` means
    its last one, as ``kafka-storage format --release-version`` does)."""
    text = release_version.strip()
    if text in METADATA_VERSION_LEVELS:
        return METADATA_VERSION_LEVELS[text]
    major_minor = ".".join(text.split(".")[:2])
    levels = [lvl for name, lvl in METADATA_VERSION_LEVELS.items()
              if name.split("-")[0] == major_minor]
    if not levels:
        raise MetaPropertiesError(f"unknown metadata.version {release_version!r}")
    return max(levels)


@dataclass(frozen=True, slots=True)
class BootstrapMetadata:
    """What ``kafka-storage format`` decided for the cluster's first metadata.

    Kafka writes this as a bootstrap snapshot (``00000000000000000000-0000000000.checkpoint``) of
    ``__cluster_metadata``; we keep it in ``<metadata.log.dir>/bootstrap.properties``:

    - ``metadata_version``: ``--release-version`` (e.g. ``4.0-IV3``);
    - ``kraft_version``: 0 for a static quorum (``controller.quorum.voters``), 1 for a dynamic one
      (formatted with ``--standalone``, ``--initial-controllers`` or ``--no-initial-controllers``);
    - ``initial_controllers``: the initial voter set, or None when none was given (a static
      quorum, or ``--no-initial-controllers``: the node joins an existing dynamic quorum).
    """

    cluster_id: str
    metadata_version: str
    kraft_version: int
    initial_controllers: tuple[DynamicVoter, ...] | None = None
    # Metadata records the first active controller writes after metadata.version (the SCRAM
    # credentials of ``--add-scram``), each an encoded metadata record frame in hex
    # (kraft/metadata_records.py encodes and decodes them).
    records: tuple[str, ...] = ()

    def to_properties(self) -> dict[str, str]:
        props = {
            "version": "1",
            "cluster.id": self.cluster_id,
            "metadata.version": self.metadata_version,
            "kraft.version": str(self.kraft_version),
        }
        if self.initial_controllers is not None:
            voters = sorted(self.initial_controllers, key=lambda v: v.node_id)
            props["initial.controllers"] = ",".join(str(v) for v in voters)
        if self.records:
            props["bootstrap.records"] = ",".join(self.records)
        return props

    @classmethod
    def from_properties(cls, props: Mapping[str, str], source: str) -> BootstrapMetadata:
        if props.get("version") != "1":
            raise MetaPropertiesError(f"Unknown version {props.get('version')!r} in {source}")
        missing = [k for k in ("cluster.id", "metadata.version", "kraft.version") if k not in props]
        if missing:
            raise MetaPropertiesError(f"{', '.join(missing)} missing in {source}")
        if props["kraft.version"] not in ("0", "1"):
            raise MetaPropertiesError(
                f"Invalid kraft.version {props['kraft.version']!r} in {source}"
            )
        voters: tuple[DynamicVoter, ...] | None = None
        if "initial.controllers" in props:
            try:
                voters = tuple(parse_dynamic_voters(props["initial.controllers"]))
            except ValueError as e:
                raise MetaPropertiesError(f"Invalid initial.controllers in {source}: {e}") from None
        return cls(
            cluster_id=props["cluster.id"],
            metadata_version=props["metadata.version"],
            kraft_version=int(props["kraft.version"]),
            initial_controllers=voters,
            records=tuple(r for r in props.get("bootstrap.records", "").split(",") if r),
        )


def write_bootstrap(metadata_log_dir: str | os.PathLike[str], bootstrap: BootstrapMetadata) -> None:
    """Write ``<metadata_log_dir>/bootstrap.properties`` atomically and durably."""
    text = dump_properties(bootstrap.to_properties(), "Bootstrap metadata written by kafka-storage")
    Path(metadata_log_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(metadata_log_dir) / BOOTSTRAP_FILE, text.encode("ascii"))


def read_bootstrap(metadata_log_dir: str | os.PathLike[str]) -> BootstrapMetadata | None:
    """The bootstrap metadata written at format time, or None if there is none."""
    path = Path(metadata_log_dir) / BOOTSTRAP_FILE
    try:
        props = load_properties(path)
    except FileNotFoundError:
        return None
    except (OSError, PropertiesError) as e:
        raise MetaPropertiesError(f"Unable to read {path}: {e}") from e
    return BootstrapMetadata.from_properties(props, str(path))
