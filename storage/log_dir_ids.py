"""The log directories of a node at start-up, with their directory ids (KIP-858).

Kafka's ``MetaPropertiesEnsemble`` as the server applies it before it starts:

- every ``meta.properties`` that can be read must agree on ``cluster.id`` and ``node.id``
  (``storage.meta_properties.verify_log_dirs``);
- a log directory that cannot be read (an I/O error, a path that is no longer a directory) is
  offline from the start, unless it holds the metadata log: then the node cannot start;
- an empty log directory (no ``meta.properties``, a new disk added to ``log.dirs``) is formatted
  with the cluster id, the node id and a fresh directory id, once some other directory is
  formatted;
- a formatted directory without ``directory.id`` (formatted before directory ids existed) gets
  one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from storage.errors import MetaPropertiesError
from storage.meta_properties import (
    MetaProperties,
    parse_uuid,
    random_directory_id,
    read_meta_properties,
    verify_log_dirs,
    write_meta_properties,
)

__all__ = ["LogDirs", "directory_uuid", "prepare_log_dirs", "read_directory_ids"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LogDirs:
    """What start-up found: the online directories' ``meta.properties`` and the offline ones."""

    metas: dict[str, MetaProperties] = field(default_factory=dict)
    offline: list[str] = field(default_factory=list)

    @property
    def cluster_id(self) -> str:
        return next(iter(self.metas.values())).cluster_id


def directory_uuid(directory_id: str) -> uuid.UUID:
    """A ``directory.id`` (Kafka's base64 form) as the ``uuid.UUID`` the metadata carries."""
    return uuid.UUID(bytes=parse_uuid(directory_id))


def _read(directory: str) -> MetaProperties | None | OSError:
    try:
        return read_meta_properties(directory)
    except MetaPropertiesError as e:
        if isinstance(e.__cause__, OSError):
            return e.__cause__
        raise


def prepare_log_dirs(log_dirs: Iterable[str], metadata_log_dir: str, node_id: int) -> LogDirs:
    """Check, complete and describe the node's directories; raises ``MetaPropertiesError``
    when the node must not start."""
    log_dirs = list(log_dirs)
    dirs = list(dict.fromkeys([*log_dirs, metadata_log_dir]))
    found: dict[str, MetaProperties] = {}
    empty: list[str] = []
    out = LogDirs()
    for d in dirs:
        meta = _read(d)
        if isinstance(meta, OSError):
            if d == metadata_log_dir:
                raise MetaPropertiesError(
                    f"The metadata log directory {d} is unreadable: {meta}") from meta
            log.error("Log directory %s is offline: %s", d, meta)
            out.offline.append(d)
        elif meta is None:
            empty.append(d)
        else:
            found[d] = meta
    if metadata_log_dir in empty or not found:
        # The same check and message as before any directory is formatted here.
        verify_log_dirs([d for d in dirs if d not in out.offline], metadata_log_dir, node_id)
    verified = verify_log_dirs(list(found), next(iter(found)), node_id)
    cluster_id = next(iter(verified.values())).cluster_id
    used = {m.directory_id for m in verified.values() if m.directory_id}
    for d in dirs:
        if d in out.offline:
            continue
        meta = verified.get(d) or MetaProperties(cluster_id, node_id)
        if meta.directory_id is None:
            new_id = random_directory_id()
            while new_id in used:
                new_id = random_directory_id()
            used.add(new_id)
            meta = replace(meta, directory_id=new_id)
            try:
                write_meta_properties(d, meta)
            except OSError as e:
                if d == metadata_log_dir:
                    raise MetaPropertiesError(f"Unable to write {d}/meta.properties: {e}") from e
                log.error("Log directory %s is offline: %s", d, e)
                out.offline.append(d)
                continue
            log.info("Log directory %s: wrote meta.properties with directory.id %s%s", d,
                     new_id, " (a new, empty directory)" if d in empty else "")
        out.metas[d] = meta
    if out.offline and all(d in out.offline for d in log_dirs):
        raise MetaPropertiesError(f"Every log dir failed: {', '.join(out.offline)}")
    return out


def read_directory_ids(log_dirs: Iterable[str | Path]) -> dict[Path, uuid.UUID]:
    """The directory id of every log directory whose ``meta.properties`` can be read."""
    out: dict[Path, uuid.UUID] = {}
    for d in log_dirs:
        try:
            meta = read_meta_properties(d)
        except MetaPropertiesError:
            continue
        if meta is not None and meta.directory_id is not None:
            out[Path(d)] = directory_uuid(meta.directory_id)
    return out
