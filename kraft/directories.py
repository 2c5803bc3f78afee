"""Log directory ids in the metadata (KIP-858, JBOD in KRaft).

Every log directory of a broker has a directory id (a Uuid in its ``meta.properties``,
``storage.meta_properties``). A broker registers the ids of its online directories
(``RegisterBrokerRecord.LogDirs``); each partition records, next to each replica, the id of the
directory that replica lives in (``PartitionRecord.Directories``, parallel to ``Replicas``).

The lowest 100 ids are reserved, as Kafka's ``DirectoryId``: ``MIGRATING`` (the assignment is not
known, e.g. records written before directories existed), ``UNASSIGNED`` (the broker has not told
the controller yet; it picks a directory itself) and ``LOST`` (the directory is gone). Reserved
ids other than ``LOST`` count as online: nothing says otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Container, Mapping, Sequence
from typing import Any

__all__ = [
    "DIR_LOST", "DIR_MIGRATING", "DIR_UNASSIGNED", "directory_of", "is_dir_online",
    "is_reserved_dir", "merged_directories", "offline_replicas",
]

DIR_MIGRATING = uuid.UUID(int=0)
DIR_UNASSIGNED = uuid.UUID(int=1)
DIR_LOST = uuid.UUID(int=2)


def is_reserved_dir(dir_id: uuid.UUID) -> bool:
    """Kafka's ``DirectoryId.reserved``: the 100 lowest ids are never a real directory."""
    return dir_id.int < 100


def is_dir_online(dir_id: uuid.UUID, online_dirs: Collection[uuid.UUID]) -> bool:
    """Kafka's ``DirectoryId.isOnline``: whether a replica assigned to ``dir_id`` is on one of a
    broker's ``online_dirs``. A broker that registered no directories (an older broker) is taken
    at its word: every directory counts as online."""
    if dir_id in (DIR_UNASSIGNED, DIR_MIGRATING):
        return True
    if dir_id == DIR_LOST:
        return False
    if not online_dirs:
        return True
    return dir_id in online_dirs


def directory_of(replicas: Sequence[int], directories: Sequence[uuid.UUID],
                 broker_id: int) -> uuid.UUID:
    """The directory of ``broker_id``'s replica (MIGRATING when the record carries none)."""
    if len(directories) != len(replicas):
        return DIR_MIGRATING
    for r, d in zip(replicas, directories, strict=True):
        if r == broker_id:
            return d
    return DIR_MIGRATING


def merged_directories(old_replicas: Sequence[int], old_dirs: Sequence[uuid.UUID],
                       new_replicas: Sequence[int]) -> tuple[uuid.UUID, ...]:
    """Directories after the replicas change without a new ``Directories`` list: a replica that
    stays keeps its directory, a new one is UNASSIGNED (its broker will say where it is)."""
    if not old_dirs:
        return ()
    known = dict(zip(old_replicas, old_dirs, strict=False))
    return tuple(known.get(r, DIR_UNASSIGNED) for r in new_replicas)


def offline_replicas(brokers: Mapping[int, Any], live: Container[int], replicas: Sequence[int],
                     directories: Sequence[uuid.UUID]) -> list[int]:
    """Metadata's ``OfflineReplicas`` (Kafka's ``KRaftMetadataCache``): replicas on a broker
    that is not live, or in a directory that is not online on their broker."""
    out = []
    for r in replicas:
        reg = brokers.get(r)
        if r not in live or reg is None or not is_dir_online(
                directory_of(replicas, directories, r), reg.directories):
            out.append(r)
    return out
