"""Applying committed metadata to the partitions this broker hosts (Kafka's
``ReplicaManager.applyDelta`` and ``DynamicConfigPublisher``): which partitions it must lead,
follow or delete, and the topic and dynamic broker configs their logs run with.

Each committed metadata delta says which partitions this broker must lead, follow or delete
(``MetadataDelta.local_changes``); a snapshot load (delta None) is reconciled in full against
the image. The work (creating and opening logs, fsyncs) is queued and runs in slices, so a burst
of thousands of partitions does not stall the event loop.

- **Become leader**: the new leader epoch is recorded in the leader epoch cache at the log end
  offset (so OffsetsForLeaderEpoch answers for the previous epoch end where this one starts),
  follower states are reset, the fetcher for the partition is removed.
- **Become follower**: produce is refused, the fetcher towards the leader (re)starts and first
  truncates with OffsetsForLeaderEpoch (KIP-101/KIP-279), never to the high watermark.
- **Delete**: the fetcher stops, waiting requests are answered, the log is deleted.

``MetadataApplier`` is a base of ``broker.replication.replica_manager.ReplicaManager``: it works
on the manager's partitions, logs, fetchers and image, and tells its leadership listeners.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from broker.config import effective_broker_config
from broker.replication.partition import Partition, PartitionState
from kraft.delta import MetadataDelta
from kraft.image import (
    ConfigResourceType,
    ConfigurationsImage,
    MetadataImage,
    PartitionRegistration,
)
from storage.errors import LogDirOfflineError, StorageError
from storage.log_config import LogConfig
from storage.producer_state import ProducerStateManager

__all__ = ["MetadataApplier"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]

# Metadata-driven partition work runs in slices of APPLY_BUDGET_MS with APPLY_GAP_S between
# them, so the loop (above all this broker's own Raft fetching) keeps moving during a burst.
APPLY_BUDGET_MS = 4.0
APPLY_GAP_S = 0.004
_LEADER, _FOLLOWER, _DELETE, _STRAYS = "leader", "follower", "delete", "strays"


class MetadataApplier:
    """The metadata publisher half of ``ReplicaManager``."""

    # (configs image, topic -> min.insync.replicas) of ``min_insync_replicas``
    _min_isr_cache: tuple[object, dict[str, int]] = (None, {})

    def on_metadata(self, delta: MetadataDelta | None, image: MetadataImage) -> None:
        """Loader publisher: queue what this broker must now lead, follow or delete.

        The work (creating and opening logs, fsyncs) runs right after, in publish order, in
        slices of at most APPLY_BUDGET_MS per loop iteration: thousands of new partitions
        must not stall the loop, least of all this broker's own metadata fetching."""
        previous = self.image
        self.image = image
        if self._stopped:
            return
        if delta is None:
            self._apply_config_changes(None)
        elif delta.changed_config_resources():
            self._apply_config_changes(delta.changed_config_resources())
        ops = self._ops
        if delta is None:
            seen: set[TP] = set()
            for t in image.topics.by_id.values():
                for pid, reg in t.partitions.items():
                    if self.node_id in reg.replicas:
                        tp = (t.name, pid)
                        seen.add(tp)
                        ops.append((_LEADER if reg.leader == self.node_id else _FOLLOWER,
                                    tp, t.topic_id, reg))
            ops.append((_STRAYS, seen, None, None))
        else:
            changes = delta.local_changes(self.node_id)
            for tp, (tid, _) in (changes.leaders | changes.followers).items():
                before = previous.topics.by_id.get(tid)
                reg = before.partitions.get(tp.partition) if before is not None else None
                if reg is None or self.node_id not in reg.replicas:
                    self._new_replicas.add((tp.topic, tp.partition))  # log_dir_failure.py
            ops.extend((_DELETE, (tp.topic, tp.partition), None, None) for tp in changes.deletes)
            ops.extend((_LEADER, (tp.topic, tp.partition), tid, reg)
                       for tp, (tid, reg) in changes.leaders.items())
            ops.extend((_FOLLOWER, (tp.topic, tp.partition), tid, reg)
                       for tp, (tid, reg) in changes.followers.items())
        if self._apply_scheduled or not ops:
            return
        self._apply_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._apply_pending)
        except RuntimeError:  # no running loop (tools, tests): apply everything now
            self._apply_pending(budget_ms=None)

    def _apply_pending(self, budget_ms: float | None = APPLY_BUDGET_MS) -> None:
        self._apply_scheduled = False
        started = self.clock.monotonic()
        ops = self._ops
        while ops and not self._stopped:
            kind, key, tid, reg = ops.popleft()
            try:
                if kind == _LEADER:
                    self._make_leader(key, tid, reg)
                elif kind == _FOLLOWER:
                    self._make_follower(key, tid, reg)
                elif kind == _DELETE:
                    self._delete(key)
                else:
                    for tp in [tp for tp in self.partitions if tp not in key]:
                        self._delete(tp)
            except (OSError, LogDirOfflineError) as e:
                # A leader epoch checkpoint or a truncation hit the disk: its dir goes offline.
                logger.error("Applying a metadata change to %s failed: %s", key, e)
                hp = self.partitions.get(key) if kind in (_LEADER, _FOLLOWER) else None
                if hp is not None:
                    self.storage_failed(hp, e)
            except Exception:
                logger.exception("Applying a metadata change to %s failed", key)
            if budget_ms is not None and (self.clock.monotonic() - started) * 1000 >= budget_ms:
                break
        if ops and not self._stopped:
            self._apply_scheduled = True
            asyncio.get_running_loop().call_later(APPLY_GAP_S, self._apply_pending)

    def _apply_config_changes(self, changed: set[tuple[int, str]] | None) -> None:
        """Apply dynamic config changes to the logs hosted here (Kafka's DynamicConfigPublisher):
        a changed topic config re-derives that topic's LogConfig; a changed broker-level config
        (the cluster default or this broker's) re-derives the defaults of every topic."""
        broker_keys = {(ConfigResourceType.BROKER, ""),
                       (ConfigResourceType.BROKER, str(self.node_id))}
        if changed is None or changed & broker_keys:
            self.log_defaults = self._dynamic_log_defaults()
            topics = None  # every hosted topic
        else:
            topics = {name for rtype, name in changed if rtype == ConfigResourceType.TOPIC}
            if not topics:
                return
        for hp in self.partitions.values():
            if topics is not None and hp.topic not in topics:
                continue
            config = self.topic_log_config(hp.topic)
            if hp.log.config != config and not hp.log.closed:
                logger.info("Applying changed configs to %s-%d", hp.topic, hp.partition)
                hp.log.update_config(config)

    def _dynamic_log_defaults(self) -> LogConfig:
        effective = effective_broker_config(self.config, self.image, self.node_id)
        if effective is self.config:
            return self.static_log_defaults
        try:
            return LogConfig.from_topic_configs(effective.log_config_defaults())
        except StorageError as e:
            logger.warning("Dynamic broker configs do not apply to logs (%s); keeping the "
                           "static defaults", e)
            return self.static_log_defaults

    def topic_log_config(self, topic: str) -> LogConfig:
        overrides = self.image.configs.topic_config(topic)
        if not overrides:
            return self.log_defaults
        try:
            return LogConfig.from_topic_configs(dict(overrides), self.log_defaults,
                                                ignore_unknown=True)
        except StorageError as e:
            logger.warning("Topic %s has an invalid config (%s); using broker defaults", topic, e)
            return self.log_defaults

    def min_insync_replicas(self, topic: str) -> int:
        # Asked for every acks=all produce and each check of its completion: remembered per
        # configs image (a new object whenever any config changes).
        configs = self.image.configs
        seen, cache = self._min_isr_cache
        if seen is not configs:
            cache = {}
            self._min_isr_cache = (configs, cache)
        value = cache.get(topic)
        if value is None:
            value = cache[topic] = self._read_min_insync_replicas(configs, topic)
        return value

    def _read_min_insync_replicas(self, configs: ConfigurationsImage, topic: str) -> int:
        raw = configs.topic_config(topic).get("min.insync.replicas")
        if raw is None:
            raw = configs.broker_config("").get("min.insync.replicas")
        try:
            return int(raw) if raw is not None else self.default_min_isr
        except ValueError:
            return self.default_min_isr

    def _hosted(self, tp: TP, topic_id: uuid.UUID,
                reg: PartitionRegistration | None = None) -> Partition | None:
        hp = self.partitions.get(tp)
        if hp is not None and hp.topic_id != topic_id:
            # Same name, new topic: the old replica is gone.
            self._delete(tp)
            hp = None
        assigned = None if reg is None else reg.directory(self.node_id)
        if hp is not None:
            self._new_replicas.discard(tp)
            if assigned is not None:
                self.dir_assignments.note(topic_id, tp[1], assigned,
                                          self.log_manager.dir_id_of(*tp))
            return hp
        if self._offline_for_metadata(tp, topic_id):
            return None
        config = self.topic_log_config(tp[0])
        try:
            # KIP-858: in the log dir the metadata names, never recreated elsewhere if that
            # dir is offline (broker/replication/directories.py, log_dir_failure.py).
            log = self.log_manager.get_or_create_log(tp[0], tp[1], config, dir_id=assigned)
            if assigned is not None:
                self.dir_assignments.note(topic_id, tp[1], assigned,
                                          self.log_manager.dir_id_of(*tp))
            if log.config != config:
                log.update_config(config)
        except (StorageError, OSError, ValueError) as e:
            logger.error("Cannot open the log of %s-%d: %s", tp[0], tp[1], e)
            self._creation_failed(tp, topic_id, e)
            return None
        hw = self._checkpointed_hw.pop(tp, 0)
        hw = max(min(hw, log.log_end_offset), log.log_start_offset)
        try:
            producers = ProducerStateManager(
                log.dir, producer_id_expiration_ms=self.producer_id_expiration_ms)
            producers.rebuild_from_log(log, self.clock.wall_ms())
        except (StorageError, OSError) as e:
            logger.error("Cannot load the producer state of %s-%d: %s", tp[0], tp[1], e)
            directory = self.log_manager.log_dir_of(*tp)
            if directory is not None and isinstance(e, (OSError, LogDirOfflineError)):
                self.offline_partitions[tp] = topic_id
                self.log_manager.fail_dir(directory, e)
            return None
        hp = Partition(tp[0], tp[1], topic_id, log,
                             PartitionState(self.node_id, high_watermark=hw), producers)
        self.partitions[tp] = hp
        return hp

    def _make_leader(self, tp: TP, topic_id: uuid.UUID, reg: PartitionRegistration) -> None:
        hp = self._hosted(tp, topic_id, reg)
        if hp is None:
            return
        self.fetchers.remove(tp)
        log = hp.log
        st = hp.state
        was_leader = st.is_leader
        new_epoch = st.become_leader(reg, log, self.clock.monotonic_ms())
        if new_epoch:
            logger.info("Leader of %s-%d at epoch %d (was %s), log end offset %d, HW %d, "
                        "ISR %s", tp[0], tp[1], reg.leader_epoch,
                        "leader" if was_leader else "follower or new", log.log_end_offset,
                        st.high_watermark, list(st.isr))
        self._maybe_increment_hw(hp)
        self._wake(tp)
        if new_epoch:
            self._tell_leadership(tp, True, reg.leader_epoch)

    def _make_follower(self, tp: TP, topic_id: uuid.UUID, reg: PartitionRegistration) -> None:
        hp = self._hosted(tp, topic_id, reg)
        if hp is None:
            return
        st = hp.state
        new_epoch = st.become_follower(reg, hp.log, self.clock.monotonic_ms())
        if not reg.has_leader:
            self.fetchers.remove(tp)
        elif new_epoch or not self.fetchers.has(tp, reg.leader):
            logger.info("Follower of %s-%d: leader %d at epoch %d, log end offset %d",
                        tp[0], tp[1], reg.leader, reg.leader_epoch, hp.log.log_end_offset)
            self.fetchers.add(tp, reg.leader, reg.leader_epoch)
        self._wake(tp)
        if new_epoch:
            self._tell_leadership(tp, False, reg.leader_epoch)

    def _delete(self, tp: TP) -> None:
        self.fetchers.remove(tp)
        hp = self.partitions.pop(tp, None)
        self._checkpointed_hw.pop(tp, None)
        self.offline_partitions.pop(tp, None)
        self._new_replicas.discard(tp)
        if hp is not None:
            hp.state.leader = -1
            self._tell_leadership(tp, False, -1)
        try:
            if self.log_manager.delete_log(*tp):
                logger.info("Deleted the log of %s-%d", *tp)
        except (StorageError, OSError) as e:
            logger.error("Deleting the log of %s-%d failed: %s", tp[0], tp[1], e)
        self._wake(tp)
