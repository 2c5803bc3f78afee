"""The broker's partitions: appends, reads, ISR and high watermark of those it leads.

Kafka's ``ReplicaManager`` + the I/O half of ``Partition``. The replication state machine of
each partition is ``broker.replication.partition.PartitionState`` (pure); this module owns the logs
(through ``LogManager``), the delayed operations (``broker.replication.purgatory``), the follower fetchers
(``broker.replication.fetcher``) and the AlterPartition requests to the controller.

It is a metadata publisher (``on_metadata``): which partitions this broker leads, follows or
deletes, and the configs of their logs, follow the committed metadata through its base
``broker.replication.metadata_apply.MetadataApplier``.

Single-threaded (the event loop): every check-then-act on a partition happens without an
``await`` in between, which is what makes append + HW bookkeeping atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.client import KafkaProtocolError
from broker.clock import SYSTEM_CLOCK, Clock
from broker.config import KafkaConfig
from broker.network.sendfile import SENDFILE_MIN_BYTES, FileRegion
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import alter_partition
from broker.replication.delete_records_leader import DeleteRecordsOnLeader
from broker.replication.directories import DirectoryAssignments, replica_dir_online
from broker.replication.fetch_session import CachedPartition
from broker.replication.fetcher import ReplicaFetcherManager
from broker.replication.log_dir_failure import LogDirFailureHandler
from broker.replication.metadata_apply import MetadataApplier
from broker.replication.partition import IsrChange, Partition, batch_flags
from broker.replication.purgatory import Purgatory
from broker.replication.throttle import ReplicationThrottle
from kraft.image import MetadataImage
from storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogDirOfflineError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from storage.log_append import LogAppendInfo
from storage.log_config import LogConfig
from storage.log_manager import LogManager
from storage.producer_state import batch_headers
from storage.txn_index import AbortedTxn

__all__ = ["PartitionRead", "ReplicaManager"]

logger = logging.getLogger(__name__)

TP = tuple[str, int]
SendToController = Callable[..., Awaitable[Any]]

ALTER_PARTITION_TIMEOUT_S = 10.0
ALTER_PARTITION_RETRY_S = 0.1
MIN_ISR_CHECK_INTERVAL_MS = 100


@dataclass(slots=True)
class PartitionRead:
    """One partition's share of a Fetch answer."""

    error: ErrorCode
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes = b""
    diverging_epoch: tuple[int, int] | None = None
    # read_committed: the aborted transactions overlapping ``records``.
    aborted_txns: list[AbortedTxn] | None = None


class ReplicaManager(MetadataApplier, LogDirFailureHandler, DeleteRecordsOnLeader):
    def __init__(self, config: KafkaConfig, log_manager: LogManager, *,
                 send_to_controller: SendToController,
                 broker_epoch: Callable[[], int], clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.node_id = config.node_id
        # TLS/SASL towards the other brokers' inter-broker listener (broker/client/security.py).
        self.inter_broker_security: Any = None
        self.log_manager = log_manager
        self.send_to_controller = send_to_controller
        self.broker_epoch = broker_epoch
        self.replica_lag_time_max_ms: int = config.get("replica.lag.time.max.ms")
        self.default_min_isr: int = config.get("min.insync.replicas")
        self.static_log_defaults = LogConfig.from_topic_configs(config.log_config_defaults())
        # Static defaults with the dynamic broker configs (cluster default, then this broker)
        # from the metadata image applied on top.
        self.log_defaults = self.static_log_defaults
        self.partitions: dict[TP, Partition] = {}
        self.image = MetadataImage()
        self.produce_purgatory: Purgatory[TP] = Purgatory("produce")
        self.fetch_purgatory: Purgatory[TP] = Purgatory("fetch")
        self.delete_records_purgatory: Purgatory[TP] = Purgatory("deleteRecords")
        self._checkpointed_hw = log_manager.read_high_watermarks()
        self.fetchers = ReplicaFetcherManager(self)
        # What this broker's leaders send followers that are reassigned in (KIP-73).
        self.leader_throttle = ReplicationThrottle(self.node_id, config, lambda: self.image,
                                                   clock.monotonic, leader=True)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._isr_task: asyncio.Task[None] | None = None
        self._producer_task: asyncio.Task[None] | None = None
        self.producer_id_expiration_ms: int = config.get("producer.id.expiration.ms")
        self.producer_expiration_check_ms: int = config.get(
            "producer.id.expiration.check.interval.ms")
        # Queued partition changes from metadata: (kind, tp or set of tps, topic id, reg).
        self._ops: deque[tuple[str, Any, Any, Any]] = deque()
        self._apply_scheduled = False
        self._stopped = False
        # Called as fn(tp, is_leader, leader_epoch) after this broker becomes leader or
        # follower of a partition (a new epoch), and fn(tp, False, -1) after it stops hosting it:
        # internal-topic users (group coordinator) load and unload their state here.
        self._leadership_listeners: list[Callable[[TP, bool, int], None]] = []
        self.isr_shrinks = self.isr_expands = 0  # ISR changes proposed (broker.admin.metrics)
        # Called as fn(topic, partition, producer_id, committed) once a transaction marker
        # written through WriteTxnMarkers to that partition is replicated (acks=all), just
        # before the answer (broker/replication/txn_apis.py).
        self.txn_marker_listeners: list[Callable[[str, int, int, bool], None]] = []
        # Offline log dirs and their partitions (broker/replication/log_dir_failure.py).
        self._init_log_dir_failure()
        # KIP-858 (broker/replication/directories.py): where replicas live, told to the
        # controller.
        self.dir_assignments = DirectoryAssignments(self)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.dir_assignments.start()
        self._isr_task = asyncio.create_task(self._isr_expiration(), name="isr-expiration")
        self._producer_task = asyncio.create_task(self._producer_expiration(),
                                                  name="producer-expiration")

    async def stop(self) -> None:
        self._stopped = True
        for task in (self._isr_task, self._producer_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.fetchers.shutdown()
        await self.dir_assignments.stop()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.produce_purgatory.cancel_all()
        self.fetch_purgatory.cancel_all()
        self.delete_records_purgatory.cancel_all()

    def add_leadership_listener(self, fn: Callable[[TP, bool, int], None]) -> None:
        self._leadership_listeners.append(fn)

    def _tell_leadership(self, tp: TP, is_leader: bool, leader_epoch: int) -> None:
        for fn in self._leadership_listeners:
            try:
                fn(tp, is_leader, leader_epoch)
            except Exception:
                logger.exception("Leadership listener failed for %s-%d", *tp)

    async def append_and_wait(self, topic: str, partition: int, records: bytes, *,
                              acks: int = -1, timeout_s: float = 5.0
                              ) -> tuple[ErrorCode, int]:
        """Append batches as the leader (for internal topics: group metadata and offsets) and,
        for acks=-1, wait until the high watermark passes them. Returns (error, base offset)."""
        code, info, hp = self.append_to_leader(topic, partition, records, acks)
        if info is None or hp is None:
            return code, -1
        flush = hp.log.flush_wait(info.last_offset + 1)
        if flush is not None:
            code = await self.wait_flushed(hp, flush)
            if code:
                return code, -1
        if acks != -1:
            return ErrorCode.NONE, info.first_offset
        code = await self.wait_replicated(hp, hp.state.leader_epoch, info.last_offset,
                                          timeout_s)
        return code, info.first_offset

    async def wait_flushed(self, hp: Partition, flush: Awaitable[None]) -> ErrorCode:
        """Await a ``PartitionLog.flush_wait`` (the fsync the flush policy asked for after an
        append); KAFKA_STORAGE_ERROR if it failed (an fsync error takes the log offline)."""
        # ValueError: the log was closed meanwhile; RuntimeError: storage/group_commit.py.
        try:
            await flush
        except (StorageError, OSError, ValueError, RuntimeError) as e:
            logger.error("Flush of %s-%d failed: %s", hp.topic, hp.partition, e)
            return ErrorCode.KAFKA_STORAGE_ERROR
        return ErrorCode.NONE

    async def wait_replicated(self, hp: Partition, leader_epoch: int, last_offset: int,
                              timeout_s: float) -> ErrorCode:
        """acks=all: wait until the high watermark passes ``last_offset`` (appended at
        ``leader_epoch``); REQUEST_TIMED_OUT after ``timeout_s``."""
        result: list[ErrorCode] = []

        def ready() -> bool:
            status = self.produce_status(hp, leader_epoch, last_offset)
            if status is None:
                return False
            result.append(status)
            return True

        if not ready():
            await self.produce_purgatory.wait([hp.tp], ready, timeout_s)
            if not result and not ready():
                return ErrorCode.REQUEST_TIMED_OUT
        return result[0]

    def high_watermarks(self) -> dict[TP, int]:
        """For the replication-offset checkpoint: hosted partitions, plus the checkpointed
        value of logs metadata has not handed us yet (so an early checkpoint keeps them)."""
        out = dict(self._checkpointed_hw)
        out.update((tp, hp.state.high_watermark) for tp, hp in self.partitions.items())
        return out

    def _wake(self, tp: TP) -> None:
        self.produce_purgatory.check(tp)
        self.fetch_purgatory.check(tp)
        self.delete_records_purgatory.check(tp)

    # -- leader: produce ----------------------------------------------------------------------

    def unknown_or_not_leader(self, topic: str, partition: int) -> ErrorCode:
        if (topic, partition) in self.offline_partitions:
            return ErrorCode.KAFKA_STORAGE_ERROR
        t = self.image.topics.by_name.get(topic)
        if t is None or partition not in t.partitions:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.NOT_LEADER_OR_FOLLOWER

    def append_to_leader(self, topic: str, partition: int, records: Any, acks: int, *,
                         from_client: bool = False
                         ) -> tuple[ErrorCode, LogAppendInfo | None, Partition | None]:
        """Append a produce request's batches for one partition (leader only).
        ``from_client``: a Produce request's, which may not hold control batches (Kafka's
        LogValidator: only the broker writes transaction markers)."""
        tp = (topic, partition)
        hp = self.partitions.get(tp)
        if hp is None:
            return self.unknown_or_not_leader(topic, partition), None, None
        st = hp.state
        code = st.produce_admission(acks, self.min_insync_replicas(topic))
        if code:
            return code, None, None
        if records is None or len(records) == 0:
            return ErrorCode.INVALID_RECORD, None, None
        try:
            headers = batch_headers(records)
        except StorageError:
            return ErrorCode.CORRUPT_MESSAGE, None, None
        flags = batch_flags(headers)
        if from_client and flags[1]:
            return ErrorCode.INVALID_RECORD, None, None
        if flags[0]:
            # Idempotent producers: a retry of one of the last five batches is answered with
            # its original offsets; a gap or a stale epoch is refused.
            check = hp.producers.check_batches(headers)
            if check.duplicate is not None:
                d = check.duplicate
                return ErrorCode.NONE, LogAppendInfo(
                    d.first_offset, d.last_offset, d.max_timestamp, -1, -1, 0, 0, 0,
                    hp.log.log_start_offset), hp
            if check.error != ErrorCode.NONE:
                return check.error, None, None
        try:
            info = hp.append(records, headers, assign_offsets=True, leader_epoch=st.leader_epoch,
                             flags=flags)
        except CorruptRecordError:
            return ErrorCode.CORRUPT_MESSAGE, None, None
        except RecordTooLargeError:
            return ErrorCode.MESSAGE_TOO_LARGE, None, None
        except InvalidRecordError:
            return ErrorCode.INVALID_RECORD, None, None
        except (LogDirOfflineError, OSError) as e:
            logger.error("Append to %s-%d failed: %s", topic, partition, e)
            self.storage_failed(hp, e)
            return ErrorCode.KAFKA_STORAGE_ERROR, None, None
        self._maybe_increment_hw(hp)
        self.fetch_purgatory.check(tp)  # followers long-poll on the log end offset
        return ErrorCode.NONE, info, hp

    def produce_status(self, hp: Partition, leader_epoch: int, last_offset: int
                       ) -> ErrorCode | None:
        """acks=all: None while waiting for the HW to pass ``last_offset``, else the answer."""
        if self.partitions.get(hp.tp) is not hp:
            if hp.tp in self.offline_partitions:
                return ErrorCode.KAFKA_STORAGE_ERROR
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        return hp.state.produce_status(leader_epoch, last_offset,
                                       self.min_insync_replicas(hp.topic))

    # -- leader: HW and ISR -------------------------------------------------------------------

    def _maybe_increment_hw(self, hp: Partition) -> None:
        # A replica on an offline log dir (KIP-858) is not waited for, however caught up.
        if hp.state.maybe_increment_hw(
                hp.log.log_end_offset, self.clock.monotonic_ms(), self.replica_lag_time_max_ms,
                lambda b: self._eligible(b) and replica_dir_online(self.image, hp, b)):
            self._wake(hp.tp)

    def _eligible(self, broker_id: int) -> bool:
        b = self.image.cluster.brokers.get(broker_id)
        return b is not None and not b.fenced and not b.in_controlled_shutdown

    def _broker_epoch(self, broker_id: int) -> int:
        b = self.image.cluster.brokers.get(broker_id)
        return b.epoch if b is not None else -1

    async def _isr_expiration(self) -> None:
        interval_ms = max(self.replica_lag_time_max_ms // 2, MIN_ISR_CHECK_INTERVAL_MS)
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                self.maybe_shrink_isrs()
            except Exception:
                logger.exception("ISR expiration check failed")

    async def _producer_expiration(self) -> None:
        while True:
            await asyncio.sleep(self.producer_expiration_check_ms / 1000)
            try:
                self.maintain_producer_state(self.clock.wall_ms())
            except Exception:
                logger.exception("Producer state maintenance failed")

    def maintain_producer_state(self, now_ms: int) -> None:
        """Kafka's producer-id expiration check: forget producers idle for
        producer.id.expiration.ms, and once retention (or a leader's log start) moved the log
        start, drop the producer snapshots below the first remaining segment."""
        for hp in list(self.partitions.values()):
            producers = hp.producers
            removed = producers.remove_expired_producers(now_ms)
            if removed:
                logger.info("%s-%d: expired %d idle producer id(s)", hp.topic, hp.partition,
                            removed)
            log = hp.log
            if log.closed or log.offline:
                continue
            oldest = producers.oldest_snapshot_offset
            first_base = log.segments[0].base_offset
            if oldest is not None and oldest < first_base:
                producers.on_log_start_offset_incremented(log.log_start_offset)
                try:
                    producers.delete_snapshots_before(first_base)
                except OSError as e:
                    logger.error("Deleting producer snapshots of %s-%d failed: %s",
                                 hp.topic, hp.partition, e)
                    self.storage_failed(hp, e)

    def maybe_shrink_isrs(self) -> None:
        now = self.clock.monotonic_ms()
        for hp in list(self.partitions.values()):
            st = hp.state
            if not st.is_leader:
                continue
            change = st.shrink_candidate(hp.log.log_end_offset, now, self.replica_lag_time_max_ms,
                                          self._broker_epoch)
            if change is not None:
                logger.info("Shrinking ISR of %s-%d from %s to %s (HW %d, log end offset %d)",
                            hp.topic, hp.partition, list(st.isr), list(change.new_isr),
                            st.high_watermark, hp.log.log_end_offset)
                self.isr_shrinks += 1
                self._alter_isr(hp, change)
            else:
                self._maybe_increment_hw(hp)

    def _alter_isr(self, hp: Partition, change: IsrChange) -> None:
        hp.state.begin_isr_change(change)
        task = asyncio.create_task(self._send_alter_partition(hp, change),
                                   name=f"alter-partition-{hp.topic}-{hp.partition}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_alter_partition(self, hp: Partition, change: IsrChange) -> None:
        """Send ``change`` until the controller answers it, or newer metadata settles the
        partition (``PartitionState.isr_change_failed`` says when to give up)."""
        while not self._stopped and self.partitions.get(hp.tp) is hp:
            code, p = await self._alter_partition_once(hp, change)
            if code == ErrorCode.NONE and p is not None:
                break
            if not hp.state.isr_change_failed(change, code):
                return
            await asyncio.sleep(ALTER_PARTITION_RETRY_S)
        else:
            return
        applied = hp.state.complete_isr_change(change, leader_epoch=p.leader_epoch, isr=p.isr,
                                               partition_epoch=p.partition_epoch)
        if applied:
            logger.info("ISR of %s-%d is now %s (partition epoch %d)", hp.topic, hp.partition,
                        list(p.isr), p.partition_epoch)
        if self.partitions.get(hp.tp) is hp:
            self._maybe_increment_hw(hp)
            self._wake(hp.tp)

    async def _alter_partition_once(self, hp: Partition, change: IsrChange
                                    ) -> tuple[ErrorCode | None, Any]:
        """One AlterPartition: (error, the partition's answer); error None: no answer."""
        R = alter_partition.REQUEST
        pd = R.PartitionData(
            partition_index=hp.partition, leader_epoch=change.leader_epoch,
            # AlterPartition v3 (what the controller listener advertises): ISR with the
            # epochs of when the change was proposed, the same at every retry (KIP-903).
            new_isr_with_epochs=[R.BrokerState(broker_id=b, broker_epoch=e)
                                 for b, e in change.isr_with_epochs()],
            leader_recovery_state=0, partition_epoch=change.partition_epoch)
        req = R.cls(broker_id=self.node_id, broker_epoch=self.broker_epoch(), topics=[
            R.TopicData(topic_name=hp.topic, topic_id=hp.topic_id, partitions=[pd])])
        try:
            resp = await self.send_to_controller(ApiKey.ALTER_PARTITION, req,
                                                 timeout_s=ALTER_PARTITION_TIMEOUT_S)
        except (KafkaError, KafkaProtocolError, ConnectionError, TimeoutError, OSError) as e:
            logger.warning("AlterPartition of %s-%d to %s failed: %s; the proposal stays "
                           "pending", hp.topic, hp.partition, list(change.new_isr), e)
            return None, None
        code = resp.error_code
        p = None
        if code == 0 and resp.topics and resp.topics[0].partitions:
            p = resp.topics[0].partitions[0]
            code = p.error_code
        if code == 0 and p is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if code != 0:
            logger.info("AlterPartition of %s-%d to %s answered %s", hp.topic, hp.partition,
                        list(change.new_isr), ErrorCode(code).name)
        return ErrorCode(code), p

    # -- fetch --------------------------------------------------------------------------------

    def leader_partition(self, topic: str, partition: int, current_leader_epoch: int
                         ) -> tuple[ErrorCode, Partition | None]:
        hp = self.partitions.get((topic, partition))
        if hp is None:
            return self.unknown_or_not_leader(topic, partition), None
        code = hp.state.check_leader_epoch(current_leader_epoch)
        if code:
            return code, None
        if not hp.state.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER, None
        return ErrorCode.NONE, hp

    def read(self, topic: str, partition: int, *, fetch_offset: int, current_leader_epoch: int,
             last_fetched_epoch: int, max_bytes: int, min_one: bool, replica_id: int,
             log_start_offset: int = -1, read_committed: bool = False) -> PartitionRead:
        """Read one partition for a Fetch: consumers up to the HW (``read_committed``: up to
        the last stable offset, with the aborted transactions of the range), followers up to
        the log end (a follower fetch also records the follower's progress, which may move the
        HW). Every answer carries the LSO as Kafka's does."""
        code, hp = self.leader_partition(topic, partition, current_leader_epoch)
        if hp is None:
            return PartitionRead(code)
        log = hp.log
        st = hp.state
        # As in _maybe_increment_hw: a replica on an offline log dir is not waited for.
        pos = st.fetch_position(log, fetch_offset=fetch_offset,
                                last_fetched_epoch=last_fetched_epoch, replica_id=replica_id,
                                now_ms=self.clock.monotonic_ms() if replica_id >= 0 else 0,
                                max_lag_ms=self.replica_lag_time_max_ms,
                                eligible=lambda b: self._eligible(b)
                                and replica_dir_online(self.image, hp, b))
        if pos.error == ErrorCode.OFFSET_OUT_OF_RANGE:
            return PartitionRead(ErrorCode.OFFSET_OUT_OF_RANGE, st.high_watermark,
                                 hp.last_stable_offset(), log.log_start_offset)
        if pos.error:
            return PartitionRead(pos.error)
        if pos.diverging_epoch is not None:
            return PartitionRead(ErrorCode.NONE, st.high_watermark, hp.last_stable_offset(),
                                 log.log_start_offset, diverging_epoch=pos.diverging_epoch)
        if pos.hw_moved:
            self._wake(hp.tp)
        if replica_id >= 0 and log_start_offset >= 0:
            self._follower_log_start(hp, replica_id, log_start_offset)
        if pos.progress:
            self._after_follower_fetch(hp, replica_id)
        max_offset = pos.max_offset
        can_read = pos.read
        lso = hp.last_stable_offset()
        if read_committed and max_offset is not None:
            max_offset = min(max_offset, lso)
            can_read = fetch_offset < max_offset
        records = b""
        throttle = self.leader_throttle
        throttled = replica_id >= 0 and throttle.applies(topic, partition, replica_id in st.isr)
        if throttled:
            max_bytes = min(max_bytes, throttle.allowance())
        if not can_read or max_bytes <= 0:  # nothing to read yet, or throttled
            return PartitionRead(ErrorCode.NONE, st.high_watermark, lso, log.log_start_offset)
        aborted: list[AbortedTxn] | None = None
        try:
            sl = log.read(fetch_offset, max_bytes, max_offset=max_offset, min_one_batch=min_one)
            if sl is not None:
                if sl.length >= SENDFILE_MIN_BYTES and FileRegion.available():
                    # Sent from the file by the network server (broker/network/sendfile.py).
                    records = FileRegion(sl)  # type: ignore[assignment]
                else:
                    with sl:
                        records = sl.read_bytes()
            if throttled:
                throttle.record(len(records))
            if read_committed and records and max_offset is not None:
                aborted = log.collect_aborted_txns(fetch_offset, max_offset)
        except OffsetOutOfRangeError:
            return PartitionRead(ErrorCode.OFFSET_OUT_OF_RANGE, st.high_watermark,
                                 lso, log.log_start_offset)
        except (LogDirOfflineError, OSError) as e:
            logger.error("Read of %s-%d failed: %s", topic, partition, e)
            self.storage_failed(hp, e)
            return PartitionRead(ErrorCode.KAFKA_STORAGE_ERROR)
        return PartitionRead(ErrorCode.NONE, st.high_watermark, lso, log.log_start_offset,
                             records, aborted_txns=aborted)

    def idle_follower_fetch(self, c: CachedPartition, replica_id: int, now_ms: int) -> bool:
        """A follower's incremental fetch session names partition ``c``, which it has fully
        replicated and whose offsets the session already told it (HW, LSO and log start
        unchanged): record the fetch (the follower's clocks, as ``read`` would) and return
        True; the partition then needs neither a read nor a place in the answer. False for
        anything else (nothing recorded; the caller reads it as usual). A follower's session
        names every partition it replicates from us, most of them idle at any moment."""
        hp = self.partitions.get((c.topic, c.partition))
        if hp is None or c.last_fetched_epoch >= 0:
            return False
        st = hp.state
        log = hp.log
        leo = log.log_end_offset
        if (c.fetch_offset != leo or c.high_watermark != leo or not st.is_leader
                or (c.current_leader_epoch >= 0 and c.current_leader_epoch != st.leader_epoch)
                or c.leader_log_start != log.log_start_offset):
            return False
        r = st.followers.get(replica_id)
        if r is None or r.log_start_offset != c.log_start_offset:
            return False
        if c.last_stable_offset != hp.last_stable_offset():
            return False
        return st.idle_fetch(replica_id, leo, leo, now_ms)

    def _follower_log_start(self, hp: Partition, replica_id: int, log_start: int) -> None:
        r = hp.state.followers.get(replica_id)
        if r is not None and r.log_start_offset != log_start:
            r.log_start_offset = log_start
            self.delete_records_purgatory.check(hp.tp)

    def _after_follower_fetch(self, hp: Partition, replica_id: int) -> None:
        # Not a replica on an offline log dir (KIP-858): a fetch sent before it failed.
        eligible = (replica_id not in hp.state.isr and self._eligible(replica_id)
                    and replica_dir_online(self.image, hp, replica_id))
        change = hp.state.expand_candidate(replica_id, eligible, self._broker_epoch)
        if change is not None:
            logger.info("Expanding ISR of %s-%d from %s to %s", hp.topic, hp.partition,
                        list(hp.state.isr), list(change.new_isr))
            self.isr_expands += 1
            self._alter_isr(hp, change)

    def available_bytes(self, topic: str, partition: int, fetch_offset: int,
                        current_leader_epoch: int, replica_id: int, limit: int,
                        read_committed: bool = False) -> int:
        """For a waiting Fetch: bytes now readable at ``fetch_offset`` (up to ``limit``);
        -1 when the partition must be answered now (an error: leadership moved, offset out of
        range)."""
        hp = self.partitions.get((topic, partition))
        if hp is None or not hp.state.is_leader or hp.state.check_leader_epoch(
                current_leader_epoch):
            return -1
        log = hp.log
        if replica_id >= 0:
            end = log.log_end_offset
        else:
            end = hp.last_stable_offset() if read_committed else hp.state.high_watermark
        if fetch_offset >= end:
            return -1 if fetch_offset > log.log_end_offset else 0
        if replica_id >= 0 and self.leader_throttle.applies(
                topic, partition, replica_id in hp.state.isr) and (
                self.leader_throttle.allowance() <= 0):
            return 0  # a throttled replica waits like one with nothing to read
        if fetch_offset < log.log_start_offset:
            return -1
        if limit <= 1:
            return 1
        try:
            sl = log.read(fetch_offset, limit, max_offset=end)
        except (StorageError, OSError) as e:
            self.storage_failed(hp, e)
            return -1
        if sl is None:
            return 0
        with sl:
            return sl.length

    # -- ListOffsets / OffsetsForLeaderEpoch ---------------------------------------------------

    def end_offset_for_epoch(self, hp: Partition, leader_epoch: int) -> tuple[int, int]:
        cache = hp.log.leader_epoch_cache
        if cache is None:
            return -1, -1
        return cache.end_offset_for(leader_epoch, hp.log.log_end_offset)

    def hosted(self) -> Mapping[TP, Partition]:
        return self.partitions
