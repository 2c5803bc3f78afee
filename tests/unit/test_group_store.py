"""Group metadata writes while ``__consumer_offsets`` is under min.insync.replicas
(broker/groups/metadata_manager.py ``_store_group``), over a real log and the real acks=all
admission of ``PartitionState``, with the pure coordinator (broker/groups/coordinator.py)
driven the way librdkafka drives it: a member whose SyncGroup fails rejoins at once.

A refused write used to be answered in a millisecond, so the JoinGroup/SyncGroup/store cycle
ran thousands of times a second; now it waits for the ISR (an ISR change wakes it) up to
offsets.commit.timeout.ms."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from broker.config import KafkaConfig
from broker.groups.group import Group, GroupState, JoinResult, SyncResult
from broker.groups.metadata_manager import GROUP_METADATA_TOPIC, GroupMetadataManager, _Owned
from broker.groups.records import GroupMetadataRecord
from broker.protocol.errors import ErrorCode
from broker.replication.partition import PartitionState
from broker.replication.purgatory import Purgatory
from kraft.image import MetadataImage
from storage.log import PartitionLog

T0 = 1_700_000_000_000
TP = (GROUP_METADATA_TOPIC, 0)
MIN_ISR = 2
TIMEOUT_S = 20


class OffsetsPartition:
    """The replica manager as the group coordinator uses it: one ``__consumer_offsets``
    partition led here (replicas 1-3, ISR just the leader), acks=all admitted by
    ``PartitionState.produce_admission`` against min.insync.replicas=2, appends to a real log
    (replication is instant once admitted)."""

    def __init__(self, log: PartitionLog) -> None:
        self.log = log
        self.state = PartitionState(local_id=1, replicas=(1, 2, 3), isr=(1,), leader=1,
                                    leader_epoch=0, partition_epoch=0)
        self.partitions = {TP: SimpleNamespace(log=log, state=self.state)}
        self.produce_purgatory: Purgatory[tuple[str, int]] = Purgatory("produce")
        self.txn_marker_listeners: list[Any] = []
        self.attempts = 0

    def min_insync_replicas(self, topic: str) -> int:
        return MIN_ISR

    async def append_and_wait(self, topic: str, partition: int, batch: bytes, *, acks: int,
                              timeout_s: float) -> tuple[ErrorCode, int]:
        assert (topic, partition) == TP and acks == -1
        self.attempts += 1
        code = self.state.produce_admission(acks, self.min_insync_replicas(topic))
        if code:
            return code, -1
        return ErrorCode.NONE, self.log.append(batch).first_offset

    def set_isr(self, isr: tuple[int, ...], leader: int = 1) -> None:
        """What an AlterPartition answer or a metadata publish does: new state, then a wake."""
        self.state.isr = isr
        self.state.leader = leader
        self.produce_purgatory.check(TP)

def manager(log: PartitionLog, commit_timeout_ms: int) -> tuple[GroupMetadataManager,
                                                                OffsetsPartition]:
    config = KafkaConfig({
        "node.id": "1", "process.roles": "broker", "listeners": "PLAINTEXT://127.0.0.1:9092",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.voters": "9@127.0.0.1:9093", "log.dirs": "/tmp/x",
        "offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "offsets.commit.timeout.ms": str(commit_timeout_ms)})
    rm = OffsetsPartition(log)
    mm = GroupMetadataManager(config, rm, MetadataImage)  # type: ignore[arg-type]
    mm.owned[0] = _Owned(0, loaded=True)
    return mm, rm


def open_log(tmp_path: Path) -> PartitionLog:
    return PartitionLog.open(tmp_path / f"{GROUP_METADATA_TOPIC}-0", now_ms=T0)


async def until(pred: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def written(log: PartitionLog) -> dict[str, Group]:
    """The groups a new coordinator loads back from the log."""
    mm, _ = manager(log, commit_timeout_ms=1000)
    owned = mm.owned[0] = _Owned(1)
    await mm._load(0, owned)
    assert owned.loaded
    return mm.coordinator.groups


class LibrdkafkaMember:
    """One consumer as librdkafka runs it: JoinGroup, then (as the leader) SyncGroup with an
    assignment; a SyncGroup error makes it rejoin at once, with no backoff."""

    def __init__(self, mm: GroupMetadataManager) -> None:
        self.mm = mm
        self.member_id = ""
        self.syncs: list[ErrorCode] = []
        self.joins = 0
        self.stopped = False

    def now(self) -> int:
        return self.mm.clock.wall_ms()

    def join(self) -> None:
        self.joins += 1
        self.mm.coordinator.join_group(
            "g", self.member_id, None, "rdkafka", "/127.0.0.1", 6000, 30000, "consumer",
            [("range", b"meta")], True, self.now(), self.on_join)

    def on_join(self, r: JoinResult) -> None:
        if r.error == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = r.member_id
            return self.join()
        assert r.error == ErrorCode.NONE, r
        self.member_id = r.member_id
        self.mm.coordinator.sync_group("g", r.generation_id, self.member_id, None, None, None,
                                       {self.member_id: b"all"}, self.now(), self.on_sync)
        return None

    def on_sync(self, r: SyncResult) -> None:
        self.syncs.append(r.error)
        if r.error and not self.stopped:
            # librdkafka's callbacks run on its own thread: the rejoin is a new request.
            asyncio.get_running_loop().call_soon(self.join)


def test_a_group_write_waits_for_the_isr_and_then_succeeds(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    try:
        mm, rm = manager(log, commit_timeout_ms=10_000)

        async def scenario() -> None:
            member = LibrdkafkaMember(mm)
            member.join()
            await asyncio.sleep(0.3)
            # The leader's SyncGroup is parked: nothing written, nothing answered yet.
            assert member.syncs == [] and await written(log) == {}
            assert mm.coordinator.groups["g"].is_(GroupState.COMPLETING_REBALANCE)
            rm.set_isr((1, 2))  # a follower caught up again
            await until(lambda: member.syncs)
            assert member.syncs == [ErrorCode.NONE]
            assert mm.coordinator.groups["g"].is_(GroupState.STABLE)
            loaded = (await written(log))["g"]
            assert loaded.is_(GroupState.STABLE) and loaded.generation_id == 1
            assert loaded.members[member.member_id].assignment == b"all"
            assert rm.attempts == 1

        asyncio.run(asyncio.wait_for(scenario(), TIMEOUT_S))
    finally:
        log.close()


def test_a_member_that_rejoins_at_once_does_not_spin_the_coordinator(tmp_path: Path) -> None:
    """The ISR stays below min.insync.replicas: every SyncGroup is answered
    COORDINATOR_NOT_AVAILABLE, but only after offsets.commit.timeout.ms, so a member that
    rejoins without a backoff makes one write attempt per timeout, not thousands a second."""
    timeout_ms = 250
    log = open_log(tmp_path)
    try:
        mm, rm = manager(log, commit_timeout_ms=timeout_ms)

        async def scenario() -> None:
            member = LibrdkafkaMember(mm)
            started = time.monotonic()
            member.join()
            await asyncio.sleep(1.2)
            member.stopped = True
            elapsed = time.monotonic() - started
            assert member.syncs and set(member.syncs) == {
                ErrorCode.COORDINATOR_NOT_AVAILABLE}
            assert await written(log) == {}
            # One SyncGroup (and one rejoin) per timeout; refused at once it was hundreds.
            assert len(member.syncs) <= elapsed / (timeout_ms / 1000) + 1, member.syncs
            assert member.joins <= len(member.syncs) + 2

        asyncio.run(asyncio.wait_for(scenario(), TIMEOUT_S))
        # Refused writes were never attempted: the wait ran out first.
        assert rm.attempts == 0
    finally:
        log.close()


def test_a_waiting_write_is_answered_when_the_partition_moves_away(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    try:
        mm, rm = manager(log, commit_timeout_ms=10_000)
        answers: list[ErrorCode] = []

        async def scenario() -> None:
            record = GroupMetadataRecord("g", "consumer", 1, "range", None, T0, ())
            mm._store_group("g", record, answers.append)
            await asyncio.sleep(0.1)
            assert answers == []
            rm.set_isr((2, 3), leader=2)  # another broker leads the partition now
            await until(lambda: answers)
            assert answers == [ErrorCode.NOT_COORDINATOR]

        asyncio.run(asyncio.wait_for(scenario(), TIMEOUT_S))
        assert asyncio.run(written(log)) == {}
    finally:
        log.close()


def test_writes_held_for_the_isr_keep_their_order(tmp_path: Path) -> None:
    """A write asked for while an older one waits for the ISR is appended after it, even when
    the ISR comes back before the newer write first runs: the later generation stays the
    later record, the one a new coordinator loads."""
    log = open_log(tmp_path)
    try:
        mm, rm = manager(log, commit_timeout_ms=10_000)
        answers: list[tuple[int, ErrorCode]] = []

        def record(generation: int) -> GroupMetadataRecord:
            return GroupMetadataRecord("g", "consumer", generation, None, None, T0, ())

        async def scenario() -> None:
            mm._store_group("g", record(1), lambda e: answers.append((1, e)))
            await asyncio.sleep(0.1)
            assert answers == []
            # In one turn of the event loop: a newer write, then the ISR grows back.
            mm._store_group("g", record(2), lambda e: answers.append((2, e)))
            rm.set_isr((1, 2))
            await until(lambda: len(answers) == 2)
            assert answers == [(1, ErrorCode.NONE), (2, ErrorCode.NONE)]
            assert (await written(log))["g"].generation_id == 2

        asyncio.run(asyncio.wait_for(scenario(), TIMEOUT_S))
        assert rm.attempts == 2
    finally:
        log.close()
